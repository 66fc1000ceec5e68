/**
 * A device's own door (issue 14): real agents with ingress on loopback
 * ports, a real nats-server with auth, the platform in-process. A watcher
 * with the platform's credential hears every invocation subject, so "no
 * gateway call" and "the other network's devices never saw it" are what the
 * fabric carried, not what the agents say.
 *
 * Devices: A (door open) and B serve app `neta`; C serves app `other`.
 * Placement is steered by memory (C donates 64 MiB, too little for neta's
 * functions, which ask for 128) and by pausing A and B while other/secret
 * and B's own functions are deployed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type JoinedDevice, type Platform } from "@hearth/platform";
import { Subjects, type UsageDoor } from "@hearth/protocol";
import { HearthClient } from "@hearth/sdk";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "door-token-0123456789abcdef";
const PREFIX = "door";
const subjects = new Subjects(PREFIX);
const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-door-"));
let nats: NatsServer;
let platform: Platform;
let client: HearthClient;
let watcher: NatsConnection;
const agents = new Map<string, Agent>();
const joined = new Map<string, JoinedDevice>();
/** Every invocation the fabric carried, by subject. */
const seen: string[] = [];

/** Each device its own owner's: a relay between two of them is two independent words (docs/ledger.md). */
const OWNERS: Record<string, string> = { A: "ada", B: "bob", C: "cy" };

async function startAgent(id: string, memoryMb: number, listen?: string): Promise<Agent> {
  const device = await joinTestDevice(platform.devices, id, { region: "eu", cores: 2, ownerId: OWNERS[id]! });
  joined.set(id, device);
  writeFileSync(join(dir, `${id}.creds`), device.creds, { mode: 0o600 });
  const agent = await Agent.start(
    parseAgentConfig({
      natsUrl: nats.url, deviceId: id, subjectPrefix: PREFIX, cores: 2, memoryMb, drainGraceMs: 500, heartbeatMs: 200,
      credsFile: join(dir, `${id}.creds`), dataDir: join(dir, id), ...(listen ? { listen } : {}),
    }),
    agentLogger(),
  );
  agents.set(id, agent);
  return agent;
}

const door = () => agents.get("A")!.door!.url;
const seenSince = (mark: number) => seen.slice(mark);

/** Deploys with only `on` serving (the others paused), and waits until it is placed there. */
async function deployOn(on: string[], pause: string[], app: string, name: string, code: string, limits?: { wallMs?: number; memoryMb?: number }): Promise<void> {
  const others = pause;
  for (const id of others) await agents.get(id)!.setPaused(["owner"]);
  await waitFor("paused devices out of the live table", () => others.every((id) => platform.scheduler.liveDevice(id) === undefined || platform.scheduler.liveDevice(id)!.heartbeat.away !== undefined), { timeoutMs: 10_000 });
  await client.deploy({ app, name, code, replicas: on.length, ...(limits ? { limits } : {}) });
  await waitFor(`${app}/${name} placed on ${on.join(", ")}`, async () => {
    const devices = (await client.get(app, name)).devices;
    return on.every((id) => devices.includes(id));
  }, { timeoutMs: 30_000 });
  for (const id of others) await agents.get(id)!.setPaused([]);
}

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, region: "eu", tickMs: 200 });
  const developer = await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("door-dev");
  client = new HearthClient({ url: platform.url, token: developer.token.value });
  watcher = await connect({ servers: nats.url, authenticator: credsAuthenticator(await authority.platformCreds("door-watcher")) });
  watcher.subscribe(`${PREFIX}.device.*.invoke`, { callback: (_, m) => void seen.push(m.subject) });
  watcher.subscribe(`${PREFIX}.net.>`, { callback: (_, m) => void seen.push(m.subject) });
  await startAgent("A", 256, "127.0.0.1:0");
  await startAgent("B", 256);
  await startAgent("C", 64);
  const neta = { memoryMb: 128 };
  await deployOn(["C"], ["A", "B"], "other", "secret", "export default { fetch: () => new Response('secret of other') }", { memoryMb: 32 });
  await deployOn(["A", "B"], [], "neta", "both", "export default { fetch: (r) => new Response('both ' + new URL(r.url).pathname) }", neta);
  await deployOn(["B"], ["A"], "neta", "there", "export default { fetch: () => new Response('from there') }", neta);
  await deployOn(["B"], ["A"], "neta", "slow", "export default { fetch: async () => { await new Promise((r) => setTimeout(r, 5000)); return new Response('late') } }", { ...neta, wallMs: 1_000 });
  // back from the pauses: neta/both is on A again, and A's credential carries network neta
  await waitFor("neta/both on A and B again", async () => {
    const devices = (await client.get("neta", "both")).devices;
    return devices.includes("A") && devices.includes("B");
  }, { timeoutMs: 30_000 });
  await waitFor("neta/both placed on A itself", () => agents.get("A")!.status().functions.some((f) => f.app === "neta" && f.fn === "both"), { timeoutMs: 15_000 });
  await waitFor("A's door serves neta/both", async () => (await fetch(`${door()}/fn/neta/both/`)).status === 200, { timeoutMs: 15_000 });
}, 120_000);

afterAll(async () => {
  for (const agent of agents.values()) await agent.close().catch(() => undefined);
  await watcher?.close();
  await platform?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a device's door", () => {
  it("runs a function placed on it there: same answer as the gateway, no gateway and no fabric hop", async () => {
    await watcher.flush();
    const mark = seen.length;
    const res = await fetch(`${door()}/fn/neta/both/a/b?q=1`, { headers: { "x-request-id": "door-local-1" } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("both /a/b");
    expect(res.headers.get("x-hearth-device")).toBe("A");
    expect(res.headers.get("x-hearth-door")).toBe("A");
    expect(res.headers.get("x-hearth-relayed")).toBeNull();
    expect(res.headers.get("x-request-id")).toBe("door-local-1");
    expect(res.headers.get("server-timing")).toMatch(/cpu;dur=.*total;dur=/);
    // the same call at the gateway: the same body and the same shape of answer
    const gw = await fetch(`${platform.url}/fn/neta/both/a/b?q=1`);
    expect(await gw.text()).toBe("both /a/b");
    await watcher.flush();
    // the gateway's call went over the fabric; the door's did not
    expect(seenSince(mark)).toHaveLength(1);
    expect(seenSince(mark)[0]).toMatch(/^door\.device\.[AB]\.invoke$/);
    // the developer's usage tells the two apart: one call at the gateway, one at a device's door
    await waitFor("both calls metered, by door", async () => {
      const doors = await doorsOf("neta", "both");
      return doors.gateway >= 1 && doors.device >= 1;
    }, { timeoutMs: 15_000 });
  });

  it("relays a function of its network placed only on a peer, once, and says so", async () => {
    const creditsBefore = await creditsOf("B");
    await watcher.flush();
    const mark = seen.length;
    const res = await fetch(`${door()}/fn/neta/there`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("from there");
    expect(res.headers.get("x-hearth-device")).toBe("B");
    expect(res.headers.get("x-hearth-door")).toBe("A");
    expect(res.headers.get("x-hearth-relayed")).toBe("1");
    expect(res.headers.get("x-hearth-hops")).toBe("1");
    await watcher.flush();
    expect(seenSince(mark)).toEqual(["door.net.neta.invoke.B"]);
    // reported by the door, attested by B under the same call id: metered once, credited to B
    await waitFor("the relayed call metered", async () => (await callsOf("neta", "there")) === 1, { timeoutMs: 15_000 });
    expect(platform.doors.unattested).toBe(0);
    // the developer's usage says which door it came in by
    expect(await doorsOf("neta", "there")).toEqual({ gateway: 0, device: 0, "device-relay": 1, call: 0, "call-relay": 0 });
    // two owners' devices agree on it (ada's door, bob's attestation): B is credited
    await waitFor("B credited for the relayed call", async () => (await creditsOf("B")).calls === creditsBefore.calls + 1, { timeoutMs: 15_000 });
    expect((await creditsOf("B")).claimed.calls).toBe(creditsBefore.claimed.calls);
  });

  it("credits a call served at a device's own door only once the app's developer invited the device; before, it is billed and held as claimed", async () => {
    // A is in neta's network by placement (the public pool), not by invite: its door's word alone about its own call is a claim
    const before = await creditsOf("A");
    const usageBefore = await callsOf("neta", "both");
    expect((await fetch(`${door()}/fn/neta/both/claimed`)).status).toBe(200);
    await waitFor("the door's own call held as claimed", async () => (await creditsOf("A")).claimed.calls === before.claimed.calls + 1, { timeoutMs: 15_000 });
    expect((await creditsOf("A")).calls).toBe(before.calls);
    // billed as reported: the developer's usage has it
    expect(await callsOf("neta", "both")).toBe(usageBefore + 1);
    expect(platform.doors.claimed).toBeGreaterThanOrEqual(1);
    // the developer invites A (vouches for it): its door's calls are credited from then on
    const { invite } = await client.networkInvite("neta");
    const joinedNet = await fetch(`${platform.url}/v1/devices/A/networks`, {
      method: "POST", headers: { authorization: `Bearer ${joined.get("A")!.deviceToken}`, "content-type": "application/json" }, body: JSON.stringify({ invite }),
    });
    expect(joinedNet.status).toBe(201);
    const mid = await creditsOf("A");
    expect((await fetch(`${door()}/fn/neta/both/vouched`)).status).toBe(200);
    await waitFor("the door's own call credited", async () => (await creditsOf("A")).calls === mid.calls + 1, { timeoutMs: 15_000 });
    expect((await creditsOf("A")).claimed.calls).toBe(mid.claimed.calls);
  });

  it("refuses another network's function as unknown, and its device never hears of it", async () => {
    await watcher.flush();
    const mark = seen.length;
    const before = agents.get("C")!.status().today.calls;
    const res = await fetch(`${door()}/fn/other/secret`);
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { code: string; requestId: string } };
    expect(body.error.code).toBe("ERR_FUNCTION_NOT_FOUND");
    expect(body.error.requestId).toBe(res.headers.get("x-request-id"));
    // read exactly as a function that does not exist
    const unknown = await fetch(`${door()}/fn/nope/nothing`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("ERR_FUNCTION_NOT_FOUND");
    await watcher.flush();
    expect(seenSince(mark)).toEqual([]);
    expect(agents.get("C")!.status().today.calls).toBe(before);
  });

  it("lets nats-server, not the agent, keep A out of another network: A's credential cannot reach C's relay subject", async () => {
    const raw = await connect({ servers: nats.url, authenticator: credsAuthenticator(readCreds("A")) });
    try {
      const errors: string[] = [];
      void (async () => {
        for await (const s of raw.status()) if (s.type === "error") errors.push(String(s.error?.message));
      })();
      raw.publish(subjects.netInvoke("other", "C"), "hello");
      raw.publish(subjects.netInvoke("neta", "B"), "hello");
      await raw.flush();
      await waitFor("the violation reported", () => errors.some((e) => /permissions violation/i.test(e) && e.includes("door.net.other.invoke.C")), { timeoutMs: 5_000 });
      expect(errors.some((e) => e.includes("door.net.neta.invoke.B"))).toBe(false);
    } finally {
      await raw.close();
    }
  });

  it("has the gateway's front-door defences, and serves nothing but functions", async () => {
    const long = await fetch(`${door()}/fn/neta/both/${"x".repeat(9 * 1024)}`);
    expect(long.status).toBe(414);
    expect(((await long.json()) as { error: { code: string } }).error.code).toBe("ERR_URL_TOO_LONG");
    const big = await fetch(`${door()}/fn/neta/both/`, { method: "POST", body: new Uint8Array(7 * 1024 * 1024) });
    expect(big.status).toBe(413);
    for (const path of ["/v1/whoami", "/console/", "/metrics", "/"]) {
      const res = await fetch(`${door()}${path}`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("ERR_NOT_FOUND");
    }
    const bad = await fetch(`${door()}/fn/neta/both/`, { method: "PROPFIND" });
    expect(bad.status).toBe(405);
  });

  it("meters what a door reports only within what the platform can check, and each call once", { timeout: 40_000 }, async () => {
    const raw = await connect({ servers: nats.url, authenticator: credsAuthenticator(readCreds("A")), inboxPrefix: subjects.inbox("A") });
    try {
      const both = await client.get("neta", "both");
      const secret = await client.get("other", "secret");
      const there = await client.get("neta", "there");
      const unattested = platform.doors.unattested;
      const base = { requestId: "forged", at: Date.now(), wallMs: 5, requestBytes: 0, responseBytes: 2, status: 200, cold: false };
      const id = crypto.randomUUID();
      const report = (calls: object[]) => raw.request(subjects.doorUsage("A"), JSON.stringify({ calls }), { timeout: 5_000 });
      // earlier calls' records are in before counting from here
      await agents.get("A")!.usage.flush();
      const before = { both: await settledCallsOf("neta", "both"), secret: await settledCallsOf("other", "secret") };
      const refusedBefore = sum(platform.doors.refused);
      await report([
        // honest: served here, reported twice (a lost ack): one record
        { ...base, id, app: "neta", fn: "both", version: both.version, servedBy: "A", relayed: false },
        { ...base, id, app: "neta", fn: "both", version: both.version, servedBy: "A", relayed: false },
        // another network's function: A is no member of it
        { ...base, id: crypto.randomUUID(), app: "other", fn: "secret", version: secret.version, servedBy: "C", relayed: true },
        // "served here" by a device that is not this door
        { ...base, id: crypto.randomUUID(), app: "neta", fn: "both", version: both.version, servedBy: "B", relayed: false },
        // relayed to a device that was never given the function
        { ...base, id: crypto.randomUUID(), app: "neta", fn: "both", version: both.version, servedBy: "C", relayed: true },
        // more bytes than the function may answer
        { ...base, id: crypto.randomUUID(), app: "neta", fn: "both", version: both.version, servedBy: "A", relayed: false, responseBytes: 1e9 },
        // relayed to B, which is placed for it, but B never attests it: billed as seen, credited to nobody
        { ...base, id: crypto.randomUUID(), app: "neta", fn: "there", version: there.version, servedBy: "B", relayed: true },
      ]);
      await waitFor("the honest call metered", async () => (await callsOf("neta", "both")) === before.both + 1, { timeoutMs: 15_000 });
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await callsOf("neta", "both")).toBe(before.both + 1);
      expect(await callsOf("other", "secret")).toBe(before.secret);
      expect(sum(platform.doors.refused) - refusedBefore).toBe(4);
      await waitFor("the unattested relay metered without credit", () => platform.doors.unattested === unattested + 1, { timeoutMs: 15_000 });
    } finally {
      await raw.close();
    }
  });

  it("shows the owner what came in at the door", async () => {
    const status = agents.get("A")!.status();
    expect(status.ingress).toBeDefined();
    expect(status.ingress!.local).toBeGreaterThanOrEqual(2);
    expect(status.ingress!.relayed).toBeGreaterThanOrEqual(1);
    expect(status.ingress!.refused).toBeGreaterThanOrEqual(2);
    expect(status.ingress!.taken).toBe(status.ingress!.local + status.ingress!.relayed);
    expect(status.ingress!.unreported).toBe(0);
  });
  it("a relay peer lost mid-call: a clear 504, never a hang, and the call is metered once", async () => {
    const usageBefore = await callsOf("neta", "slow");
    const call = fetch(`${door()}/fn/neta/slow`, { method: "POST", body: "x" });
    await waitFor("B running the call", () => agents.get("B")!.activeCalls > 0, { timeoutMs: 5_000 });
    // B's fabric connection goes, as when its machine dies: its answer never leaves
    await agents.get("B")!.nc.close();
    const started = Date.now();
    const res = await call;
    expect(res.status).toBe(504);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("ERR_DEVICE_TIMEOUT");
    expect(Date.now() - started).toBeLessThan(5_000);
    await waitFor("the door call metered", async () => (await callsOf("neta", "slow")) === usageBefore + 1, { timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await callsOf("neta", "slow")).toBe(usageBefore + 1);
  }, 30_000);
});

/** The device's credential as it is on disk now (re-issued for its networks since it joined). */
function readCreds(id: string): Uint8Array {
  return readFileSync(join(dir, `${id}.creds`));
}

function sum(counts: ReadonlyMap<string, number>): number {
  return [...counts.values()].reduce((a, b) => a + b, 0);
}

/** The count once it has stayed the same for a second (records still being folded are in). */
async function settledCallsOf(app: string, fn: string): Promise<number> {
  let last = await callsOf(app, fn);
  for (;;) {
    await new Promise((r) => setTimeout(r, 1_000));
    const now = await callsOf(app, fn);
    if (now === last) return now;
    last = now;
  }
}

/** A device's credits, as its owner reads them (its device token). */
async function creditsOf(id: string): Promise<{ calls: number; claimed: { calls: number } }> {
  const res = await fetch(`${platform.url}/v1/devices/${id}/credits`, { headers: { authorization: `Bearer ${joined.get(id)!.deviceToken}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { total: { calls: number; claimed: { calls: number } } }).total;
}

/** A function's calls by the door they came in by, over every day. */
async function doorsOf(app: string, fn: string): Promise<Record<UsageDoor, number>> {
  const out: Record<UsageDoor, number> = { gateway: 0, device: 0, "device-relay": 0, call: 0, "call-relay": 0 };
  const report = await client.usage({ app });
  for (const f of report.apps[0]?.days.flatMap((d) => d.functions).filter((f) => f.fn === fn) ?? []) for (const [door, n] of Object.entries(f.doors)) out[door as keyof typeof out] += n;
  return out;
}

async function callsOf(app: string, fn: string): Promise<number> {
  const report = await client.usage({ app });
  return report.apps[0]?.days.flatMap((d) => d.functions).filter((f) => f.fn === fn).reduce((a, f) => a + f.calls, 0) ?? 0;
}
