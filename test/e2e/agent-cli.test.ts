/**
 * The device owner's first steps, as real `hearth-agent` processes: join with
 * a join token (identity and a standard NATS .creds file kept 0600 in a 0700
 * dir; the seed made on the device and never sent), start with the joined
 * identity, see credits in `status`, and clear errors for bad flags, bad
 * config files and a missing credential, each naming what to fix. Real
 * nats-server (authenticated) and platform.
 */
import { execFile, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startNatsServer, type NatsServer } from "@hearth/devkit";
import { FabricAuthority, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { decode, parseCreds } from "@nats-io/jwt";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const AGENT_BIN = join(ROOT, "node-agent/bin/hearth-agent.js");
const TOKEN = "agent-cli-token-0123456789abcdef";
const PREFIX = "agentcli";

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `hearth-agent ...` to completion (bounded), without HEARTH_* from the test's own environment. */
function agent(args: string[], timeoutMs = 20_000): Promise<Ran> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HEARTH_")));
  return new Promise((resolve) => {
    execFile(process.execPath, [AGENT_BIN, ...args], { env, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe("hearth-agent for an owner", () => {
  let nats: NatsServer;
  let platform: Platform;
  const dir = mkdtempSync(join(tmpdir(), "hearth-agent-cli-"));
  const dataDir = join(dir, "data");

  beforeAll(async () => {
    const authority = FabricAuthority.generate();
    nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
    platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX });
  });

  afterAll(async () => {
    await platform?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function createJoinToken(): Promise<string> {
    const res = await fetch(`${platform.url}/v1/join-tokens`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ ownerId: "ada", region: "eu" }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { token: string }).token;
  }

  it("joins with a join token and keeps the identity readable by the owner only", async () => {
    const token = await createJoinToken();

    // a folder join makes is private
    const joined = await agent(["join", platform.url, "--token", token, "--device-id", "owner-box", "--data-dir", dataDir]);
    expect(joined.stderr).toBe("");
    expect(joined.code).toBe(0);
    expect(joined.stdout).toMatch(/^Joined .* as device owner-box \(owner ada, region eu\)\./m);
    const identityFile = join(dataDir, "identity.json");
    expect(statSync(identityFile).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(identityFile, "utf8"))).toMatchObject({ deviceId: "owner-box", ownerId: "ada", natsUrl: nats.url, subjectPrefix: PREFIX });

    // the fabric credential: a standard .creds file (what the nats CLI reads), 0600, for the key made here
    const credsFile = join(dataDir, "fabric.creds");
    expect(statSync(credsFile).mode & 0o777).toBe(0o600);
    const creds = await parseCreds(readFileSync(credsFile));
    expect(creds.key).toMatch(/^SU[A-Z2-7]{56}$/);
    const claims = decode<{ pub: { allow: string[] }; sub: { allow: string[] }; resp: { max: number } }>(creds.jwt);
    expect(claims.name).toBe("owner-box");
    expect(claims.exp).toBeGreaterThan(Date.now() / 1000);
    expect(claims.nats.sub?.allow).toEqual([`${PREFIX}.device.owner-box.control`, `${PREFIX}.device.owner-box.invoke`, `${PREFIX}.inbox.owner-box.>`]);
    expect(claims.nats.resp?.max).toBe(1);
    const record = await platform.devices.device("owner-box");
    expect(record?.publicKey).toBe(claims.sub);
    // the seed never reached the platform: nothing in its state holds it
    const redis = platform.store.redis;
    const values = async (k: string) => {
      const type = await redis.type(k);
      return type === "string" ? redis.getBuffer(k).then((b) => b?.toString("latin1")) : type === "hash" ? redis.hgetall(k) : type === "set" ? redis.smembers(k) : type;
    };
    const dump = JSON.stringify(await Promise.all((await redis.keys("*")).map(async (k) => [k, await values(k)])));
    expect(dump).toContain(claims.sub);
    expect(dump).not.toContain(creds.key);

    // an existing folder others can read is left as the owner made it, with a note; the identity in it is still 0600
    const shared = join(dir, "shared");
    mkdirSync(shared);
    chmodSync(shared, 0o755);
    const second = await createJoinToken();
    const noted = await agent(["join", platform.url, "--token", second, "--device-id", "shared-box", "--data-dir", shared]);
    expect(noted.code).toBe(0);
    expect(noted.stderr).toMatch(/^hearth-agent: note: .*shared is readable by others \(mode 755\).*chmod 700/m);
    expect(statSync(shared).mode & 0o777).toBe(0o755);
    expect(statSync(join(shared, "identity.json")).mode & 0o777).toBe(0o600);

    // a join token is single use
    const again = await agent(["join", platform.url, "--token", token, "--device-id", "other-box", "--data-dir", join(dir, "other")]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/^hearth-agent: .*token/m);
    expect(again.stderr).not.toMatch(/\n\s+at /); // a user error: no stack trace
  });

  it("joins an app's network with an invite at join and later, lists and leaves it; a used invite is refused", async () => {
    const operator = new HearthClient({ url: platform.url, token: TOKEN });
    const dev = new HearthClient({ url: platform.url, token: (await operator.createDeveloper("cli-net-dev")).token.value });
    for (const app of ["cli-neta", "cli-netb"]) await dev.deploy({ app, name: "f", code: "export default { fetch: () => new Response('ok') }", private: true });
    const first = await dev.networkInvite("cli-neta");
    const netDir = join(dir, "net-box");
    const joined = await agent(["join", platform.url, "--token", await createJoinToken(), "--device-id", "net-box", "--data-dir", netDir, "--network", first.invite]);
    expect(joined.stderr).toBe("");
    expect(joined.code).toBe(0);
    expect(joined.stdout).toMatch(/^Member of app cli-neta's network\./m);
    // the credential on disk names the network: its relay subject is in the JWT's subscribe permissions
    const netCreds = await parseCreds(readFileSync(join(netDir, "fabric.creds")));
    expect(decode<{ sub: { allow: string[] } }>(netCreds.jwt).nats.sub?.allow).toContain(`${PREFIX}.net.cli-neta.invoke.net-box`);

    const second = await dev.networkInvite("cli-netb");
    expect((await agent(["networks", "add", second.invite, "--data-dir", netDir])).stdout).toMatch(/^Member of app cli-netb's network/m);
    const used = await agent(["networks", "add", second.invite, "--data-dir", netDir]);
    expect(used.code).toBe(2);
    expect(used.stderr).toMatch(/^hearth-agent: this network invite is unknown, expired or already used; ask the app's developer for a new one/m);
    expect(used.stderr).not.toMatch(/\n\s+at /);
    const bad = await agent(["networks", "add", "hn_short", "--data-dir", netDir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/is not a network invite/);

    const listed = JSON.parse((await agent(["networks", "list", "--json", "--data-dir", netDir])).stdout) as { invited: string[] };
    expect(listed.invited).toEqual(["cli-neta", "cli-netb"]);
    expect((await dev.network("cli-netb")).members.map((m) => m.deviceId)).toEqual(["net-box"]);
    const left = await agent(["networks", "leave", "cli-netb", "--data-dir", netDir]);
    expect(left.code).toBe(0);
    expect(JSON.parse((await agent(["networks", "list", "--json", "--data-dir", netDir])).stdout)).toMatchObject({ invited: ["cli-neta"], credential: ["cli-neta"] });
    expect((await dev.network("cli-netb")).members).toEqual([]);
    const notMember = await agent(["networks", "leave", "cli-netb", "--data-dir", netDir]);
    expect(notMember.code).toBe(2);
    expect(notMember.stderr).toMatch(/not a member of app cli-netb's network/);
  });

  it("refuses bad flags, bad config files and a missing credential with a message naming what to fix, and no stack trace", async () => {
    const never = await agent(["start", "--data-dir", join(dir, "never-joined"), "--nats", nats.url, "--device-id", "stranger"]);
    expect(never.code).toBe(2);
    expect(never.stderr).toMatch(/^hearth-agent: no fabric credential at .*fabric\.creds .*run hearth-agent join/m);
    expect(never.stderr).not.toMatch(/\n\s+at /);

    const notNumber = await agent(["start", "--data-dir", dataDir, "--cores", "two"]);
    expect(notNumber.code).not.toBe(0);
    expect(notNumber.stderr).toMatch(/'two' is not a number/);

    const tooSmall = await agent(["start", "--data-dir", dataDir, "--memory-mb", "10"]);
    expect(tooSmall.code).toBe(2);
    expect(tooSmall.stderr).toMatch(/memoryMb: memoryMb must be at least 64 \(set by flag --memory-mb\)/);
    expect(tooSmall.stderr).not.toMatch(/\n\s+at /);

    const notJson = join(dir, "broken.json");
    writeFileSync(notJson, "{ cores: 1 ");
    const broken = await agent(["start", "--data-dir", dataDir, "--config", notJson]);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain(`config file ${notJson} is not a JSON object`);

    const badKey = join(dir, "bad-key.json");
    writeFileSync(badKey, JSON.stringify({ schedule: ["weekdays 25:00-07:00"] }));
    const badValue = await agent(["start", "--data-dir", dataDir, "--config", badKey]);
    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toMatch(/schedule\.0: .*\(set by key "schedule" of the config file .*bad-key\.json\)/);
  });

  it("starts from the joined identity alone, shows its credits in status and by day, serves at its own door, and stops cleanly on SIGTERM", async () => {
    const child = spawn(process.execPath, [AGENT_BIN, "start", "--data-dir", dataDir, "--cores", "1", "--memory-mb", "128", "--no-pause-on-battery", "--listen", "127.0.0.1:0", "--advertise", "http://127.0.0.1:9"], {
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HEARTH_"))),
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      let output = "";
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`agent did not start: ${output}`)), 20_000);
        child.stdout.on("data", (d: Buffer) => {
          output += d.toString();
          if (output.includes("HEARTH_AGENT_READY owner-box")) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once("exit", (code) => reject(new Error(`agent exited with ${code}: ${output}`)));
      });
      const status = await agent(["status", "--data-dir", dataDir]);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/^device {4}owner-box \(owner ada\) {2}serving/m);
      expect(status.stdout).toMatch(/^cores {5}0 in use of 1 donated/m);
      expect(status.stdout).toMatch(/^credits {3}0\.000 today, 0\.000 in all/m);

      // serve three calls, then read the credits the platform metered for them, by day
      const { token } = await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("owner-dev");
      const client = new HearthClient({ url: platform.url, token: token.value });
      await client.deploy({ app: "owner", name: "work", code: `export default { fetch() { let x = 0; for (let i = 0; i < 2e5; i++) x += i; return new Response(String(x)); } }` });
      await client.waitUntilReady("owner", "work", { timeoutMs: 20_000 });
      for (let i = 0; i < 3; i++) expect((await client.invoke("owner", "work")).status).toBe(200);
      let credits: { days: { day: string; calls: number }[]; total: { calls: number; credits: number; claimed: { calls: number } } } | undefined;
      for (let i = 0; i < 50; i++) {
        const res = await agent(["credits", "--data-dir", dataDir, "--json"]);
        expect(res.code).toBe(0);
        credits = JSON.parse(res.stdout) as typeof credits;
        if (credits!.total.calls >= 3) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(credits!.total.calls).toBe(3);
      expect(credits!.total.credits).toBeGreaterThan(0);
      const table = await agent(["credits", "--data-dir", dataDir]);
      expect(table.stdout).toMatch(new RegExp(`^${new Date().toISOString().slice(0, 10)} +3 +[\\d.]+ +[\\d.]+ +0$`, "m"));
      expect(table.stdout).toMatch(/^total +3 /m);
      const json = JSON.parse((await agent(["status", "--data-dir", dataDir, "--json"])).stdout) as { deviceId: string; credits: { total: { calls: number } }; ingress: { listen: string } };
      expect(json).toMatchObject({ deviceId: "owner-box", credits: { total: { calls: 3 } } });

      // the owner's door: the same function, served here without the gateway, metered once, and (the app never invited
      // this device: its word alone) held as claimed, not credited
      const atDoor = await fetch(`${json.ingress.listen}/fn/owner/work`);
      expect(atDoor.status).toBe(200);
      expect(atDoor.headers.get("x-hearth-device")).toBe("owner-box");
      expect(atDoor.headers.get("x-hearth-door")).toBe("owner-box");
      const doorStatus = (await agent(["status", "--data-dir", dataDir])).stdout;
      expect(doorStatus).toMatch(/^door {6}http:\/\/127\.0\.0\.1:\d+: 1 calls taken \(1 served here, 0 relayed\), 0 refused$/m);
      // what the owner advertises is shown too (a private address: the platform never lists it)
      expect(doorStatus).toMatch(/^ {10}advertised as http:\/\/127\.0\.0\.1:9 \(listed for clients once the platform reached this door there\)$/m);
      for (let i = 0; i < 100 && credits!.total.claimed.calls < 1; i++) {
        credits = JSON.parse((await agent(["credits", "--data-dir", dataDir, "--json"])).stdout) as typeof credits;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(credits!.total).toMatchObject({ calls: 3, claimed: { calls: 1 } });
      const claimedTable = (await agent(["credits", "--data-dir", dataDir])).stdout;
      expect(claimedTable).toMatch(/^total +3 +[\d.]+ +[\d.]+ +1$/m);
      expect(claimedTable).toMatch(/^claimed: calls your door served that the platform cannot verify/m);
    } finally {
      const exited = new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once("exit", (code) => r(code))));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
  });
});
