/**
 * End to end, developers and their tokens as people use them: the operator
 * creates developers and tokens with `hearth-platform developers ...`; a
 * developer runs `hearth login` (the login file is 0600), `hearth whoami`,
 * `hearth logout`; a missing, a wrong and a revoked token each get their
 * own message saying what to do, with no stack trace; and another
 * developer's app is, to the CLI, a function that does not exist.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLocalHearth, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const HEARTH_CLI = fileURLToPath(new URL("../../sdk/bin/hearth.js", import.meta.url));
const PLATFORM_CLI = fileURLToPath(new URL("../../platform/bin/hearth-platform.js", import.meta.url));
const CODE = "export default { fetch: () => new Response('private') }";

let hearth: LocalHearth;
let dir: string;

beforeAll(async () => {
  hearth = await startLocalHearth({ logLevel: "warn", devices: [] });
  dir = mkdtempSync(join(tmpdir(), "hearth-login-"));
}, 60_000);

afterAll(async () => {
  await hearth?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a CLI with only the environment given (no HEARTH_TOKEN or URL of the test's own), feeding `input` on stdin. */
function runCli(node: string, script: string, args: string[], env: Record<string, string>, input?: string): Promise<Ran> {
  const base = { ...process.env };
  for (const key of ["HEARTH_TOKEN", "HEARTH_PLATFORM_URL", "HEARTH_CONFIG", "HEARTH_PUBLIC_URL", "HEARTH_PORT", "HEARTH_HOST"]) delete base[key];
  return new Promise((resolve, reject) => {
    const child = spawn(node, [script, ...args], { env: { ...base, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

/** `hearth ...` on the machine's own Node, as a developer runs it. */
const hearthCli = (args: string[], env: Record<string, string> = {}, input?: string) =>
  runCli(process.env["HEARTH_HOST_NODE"] ?? process.execPath, HEARTH_CLI, args, env, input);
/** `hearth-platform developers ...` as the operator runs it, with the platform's HEARTH_TOKEN. */
const operatorCli = (args: string[], token = hearth.token) => runCli(process.execPath, PLATFORM_CLI, ["developers", ...args], { HEARTH_TOKEN: token, HEARTH_PLATFORM_URL: hearth.url });

function expectNoStack(ran: Ran): void {
  expect(ran.stderr).not.toMatch(/\n\s+at /);
}

/** The token in `developers create` / `create-token` output. */
function tokenIn(stdout: string): string {
  const token = /^ {2}(hth_\S+)$/m.exec(stdout)?.[1];
  expect(token, stdout).toBeTruthy();
  return token!;
}

describe("the operator's developer commands", () => {
  it("create a developer with a token shown once, list developers and tokens without values, add and revoke tokens", async () => {
    const created = await operatorCli(["create", "erin"]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^Created developer erin \(dev_[0-9a-f]{12}\)\.$/m);
    const token = tokenIn(created.stdout);
    expect(created.stdout).toContain(`hearth login --url ${hearth.url}`);

    const list = await operatorCli(["list"]);
    expect(list.stdout).toMatch(/^dev_[0-9a-f]{12}\terin\t1 active token\t/m);
    expect(list.stdout).toMatch(/\tdemo\t/);

    const extra = await operatorCli(["create-token", "erin", "--name", "laptop"]);
    expect(extra.code, extra.stderr).toBe(0);
    const laptop = tokenIn(extra.stdout);
    const laptopId = /\(id ([0-9a-f]{16})\)/.exec(extra.stdout)![1]!;
    const tokens = await operatorCli(["tokens", "erin"]);
    expect(tokens.stdout).toMatch(new RegExp(`^${laptopId}\\tlaptop\\tcreated \\S+\\tnever used$`, "m"));
    expect(tokens.stdout).not.toContain(token.slice(21));
    expect(tokens.stdout).not.toContain(laptop.slice(21));

    const revoked = await operatorCli(["revoke-token", "erin", laptopId]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await operatorCli(["tokens", "erin"])).stdout).toMatch(new RegExp(`^${laptopId}\\tlaptop\\t.*\\trevoked \\S+$`, "m"));
    expect((await new HearthClient({ url: hearth.url, token }).whoami()).kind).toBe("developer");
  });

  it("explain a bad name, a taken name, an unknown developer and a token that is not the operator's", async () => {
    const bad = await operatorCli(["create", "Erin Smith"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^hearth-platform: invalid name: /);
    const taken = await operatorCli(["create", "demo"]);
    expect(taken.code).toBe(2);
    expect(taken.stderr).toMatch(/already exists/);
    const nobody = await operatorCli(["tokens", "nobody"]);
    expect(nobody.code).toBe(2);
    expect(nobody.stderr).toMatch(/no developer nobody/);
    const developer = await operatorCli(["list"], hearth.developerToken);
    expect(developer.code).toBe(2);
    expect(developer.stderr).toMatch(/needs the operator token/);
    for (const ran of [bad, taken, nobody, developer]) expectNoStack(ran);
  });
});

describe("hearth login, whoami and logout", () => {
  let frank: string;
  const config = () => join(dir, "conf", "config.json");
  const env = () => ({ HEARTH_CONFIG: config() });

  beforeAll(async () => {
    frank = tokenIn((await operatorCli(["create", "frank"])).stdout);
  });

  it("login checks the token, saves it readable by the owner only, and later commands use it", async () => {
    const login = await hearthCli(["login", "--url", hearth.url, "--token", frank], env());
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toMatch(new RegExp(`^Logged in to ${hearth.url} as frank \\(dev_[0-9a-f]{12}\\)\\. Saved to ${config()}`, "m"));
    expect(statSync(config()).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "conf")).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(config(), "utf8"))).toMatchObject({ url: hearth.url, token: frank, developer: { name: "frank" } });

    // no flag, no HEARTH_TOKEN, no HEARTH_PLATFORM_URL: the login
    const me = await hearthCli(["whoami"], env());
    expect(me.code, me.stderr).toBe(0);
    expect(me.stdout).toMatch(new RegExp(`^frank \\(dev_[0-9a-f]{12}\\) at ${hearth.url}, token default \\([0-9a-f]{16}\\), from the login in ${config()}$`, "m"));
    const list = await hearthCli(["list"], env());
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/no functions yet/);
    // HEARTH_TOKEN wins over the login
    const demo = await hearthCli(["whoami"], { ...env(), HEARTH_TOKEN: hearth.developerToken });
    expect(demo.stdout).toMatch(/^demo \(dev_[0-9a-f]{12}\) at .*, from HEARTH_TOKEN$/m);
  });

  it("login takes the token from stdin, and a wrong one saves nothing", async () => {
    const other = join(dir, "piped", "config.json");
    const piped = await hearthCli(["login", "--url", hearth.url], { HEARTH_CONFIG: other }, `${frank}\n`);
    expect(piped.code, piped.stderr).toBe(0);
    expect(statSync(other).mode & 0o777).toBe(0o600);

    const wrongPath = join(dir, "wrong", "config.json");
    const wrong = await hearthCli(["login", "--url", hearth.url], { HEARTH_CONFIG: wrongPath }, "hth_0123456789abcdef_not-a-real-token-at-all-0000000000000000\n");
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/does not know this API token \(from what you entered\)/);
    expect(() => statSync(wrongPath)).toThrow();
    expectNoStack(wrong);
  });

  it("the saved token goes only to the platform it was saved for", async () => {
    const elsewhere = await hearthCli(["whoami", "--url", "http://127.0.0.1:9"], env());
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr).toMatch(/^hearth: no API token for http:\/\/127\.0\.0\.1:9\/?: run `hearth login/m);
  });

  it("a missing, a wrong and a revoked token each say which it is and what to do", async () => {
    const missing = await hearthCli(["list"], { HEARTH_CONFIG: join(dir, "none.json"), HEARTH_PLATFORM_URL: hearth.url });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^hearth: no API token for .*: run `hearth login --url .*` and paste the token the platform's operator gave you, or set HEARTH_TOKEN$/m);

    const wrong = await hearthCli(["list"], { HEARTH_CONFIG: join(dir, "none.json"), HEARTH_PLATFORM_URL: hearth.url, HEARTH_TOKEN: "hth_0123456789abcdef_" + "x".repeat(43) });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/^hearth: .* does not know this API token \(from HEARTH_TOKEN\): check that it was copied whole and that it is for this platform, or ask its operator for a new one; then run `hearth login`$/m);

    const grace = await operatorCli(["create", "grace"]);
    const graceToken = tokenIn(grace.stdout);
    const graceTokenId = /\(id ([0-9a-f]{16})\)/.exec(grace.stdout)![1]!;
    expect((await hearthCli(["list"], { HEARTH_CONFIG: join(dir, "none.json"), HEARTH_PLATFORM_URL: hearth.url, HEARTH_TOKEN: graceToken })).code).toBe(0);
    expect((await operatorCli(["revoke-token", "grace", graceTokenId])).code).toBe(0);
    const revoked = await hearthCli(["list"], { HEARTH_CONFIG: join(dir, "none.json"), HEARTH_PLATFORM_URL: hearth.url, HEARTH_TOKEN: graceToken });
    expect(revoked.code).toBe(2);
    expect(revoked.stderr).toMatch(/^hearth: this API token \(from HEARTH_TOKEN\) was revoked by the platform's operator at \d{4}-\S+: ask them for a new one, then run `hearth login`$/m);

    const messages = [missing, wrong, revoked].map((r) => r.stderr);
    expect(new Set(messages).size).toBe(3);
    for (const ran of [missing, wrong, revoked]) expectNoStack(ran);
  });

  it("another developer's app is, to the CLI, a function that does not exist", async () => {
    const demo = new HearthClient({ url: hearth.url, token: hearth.developerToken });
    await demo.deploy({ app: "demo-private", name: "fn", code: CODE });
    const info = await hearthCli(["info", "demo-private", "fn"], env());
    const missing = await hearthCli(["info", "demo-nothing", "fn"], env());
    expect(info.code).toBe(2);
    expect(info.stderr.replace(/ \(request \S+\)/, "")).toBe("hearth: no function demo-private/fn\n");
    expect(missing.stderr.replace(/ \(request \S+\)/, "")).toBe("hearth: no function demo-nothing/fn\n");
    const deleted = await hearthCli(["delete", "demo-private", "fn"], env());
    expect(deleted.code).toBe(2);
    expect(deleted.stderr).toMatch(/^hearth: no function demo-private\/fn/);
    const logs = await hearthCli(["logs", "demo-private", "fn"], env());
    expect(logs.stderr).toMatch(/^hearth: no function demo-private\/fn/);
    const before = await demo.get("demo-private", "fn");
    const versions = await hearthCli(["versions", "demo-private", "fn"], env());
    expect(versions.code).toBe(2);
    expect(versions.stderr).toMatch(/^hearth: no function demo-private\/fn/);
    const rollback = await hearthCli(["rollback", "demo-private", "fn", before.version], env());
    expect(rollback.code).toBe(2);
    expect(rollback.stderr).toMatch(/^hearth: no function demo-private\/fn/);
    const entry = join(dir, "mine.js");
    writeFileSync(entry, "export default { fetch: () => new Response('frank was here') }");
    const deploy = await hearthCli(["deploy", entry, "--app", "demo-private", "--name", "fn", "--env", "SECRET=frank", "--timeout", "1000"], env());
    expect(deploy.code).not.toBe(0);
    expect(deploy.stderr).toMatch(/demo-private/);
    expect(deploy.stderr).not.toMatch(/\n\s+at /);
    const listed = await hearthCli(["list", "--json"], env());
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain("demo-private");
    const usage = await hearthCli(["usage", "--app", "demo-private", "--json"], env());
    expect(usage.stdout + usage.stderr).not.toMatch(/"calls":\s*[1-9]/);
    // still there, unchanged, for its developer
    const after = await demo.get("demo-private", "fn");
    expect(after).toEqual(before);
    expect(await demo.versions("demo-private", "fn")).toHaveLength(1);
  });

  it("app networks: the developer mints invites, makes the app private and lists members; another developer reaches none of it", async () => {
    const demoEnv = { HEARTH_TOKEN: hearth.developerToken, HEARTH_PLATFORM_URL: hearth.url };
    const demo = new HearthClient({ url: hearth.url, token: hearth.developerToken });
    await demo.deploy({ app: "demo-net", name: "fn", code: CODE });
    const invite = await hearthCli(["networks", "invite", "demo-net", "--ttl", "600"], demoEnv);
    expect(invite.code).toBe(0);
    expect(invite.stdout).toMatch(/^hn_[A-Za-z0-9_-]{32}\n$/);
    expect(invite.stderr).toMatch(/single use, until .*hearth-agent networks add/);
    const badTtl = await hearthCli(["networks", "invite", "demo-net", "--ttl", "5"], demoEnv);
    expect(badTtl.code).toBe(2);
    expect(badTtl.stderr).toMatch(/--ttl/);
    const set = await hearthCli(["apps", "set", "demo-net", "--private"], demoEnv);
    expect(set.stdout).toMatch(/^demo-net is private/);
    const listed = await hearthCli(["networks", "list", "demo-net"], demoEnv);
    expect(listed.stdout).toMatch(/^demo-net: private/);
    expect(listed.stdout).toMatch(/no invited devices yet/);
    for (const args of [["networks", "invite", "demo-net"], ["networks", "list", "demo-net"], ["networks", "remove", "demo-net", "some-box"], ["apps", "set", "demo-net", "--public"]]) {
      const ran = await hearthCli(args, env());
      expect(ran.code).toBe(2);
      expect(ran.stderr).toMatch(/^hearth: no app demo-net among your apps/);
      expectNoStack(ran);
    }
    expect((await demo.network("demo-net")).private).toBe(true);
  });

  it("logout forgets the login", async () => {
    const out = await hearthCli(["logout"], env());
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^Logged out: removed /);
    expect(() => statSync(config())).toThrow();
    const after = await hearthCli(["whoami"], env());
    expect(after.code).toBe(2);
    expect(after.stderr).toMatch(/no platform URL: run `hearth login --url <platform-url>`/);
    expect((await hearthCli(["logout"], env())).stdout).toMatch(/^Not logged in/);
  });
});
