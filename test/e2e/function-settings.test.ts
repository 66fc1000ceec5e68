/**
 * End to end, a function's settings reach the devices that run it: its `env`
 * (vars and secrets) and its outbound fetch policy, set at deploy through the
 * SDK, carried in the placement to real agent processes, seen by the isolate.
 * A redeploy that changes only the env is seen by calls within seconds, and
 * no secret ever shows up in a log line of the platform or the agents.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startLocalHearth, waitFor, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const APP = "settings";
/** A value no log line may hold. */
const SECRET = `sk-live-${Math.random().toString(36).slice(2)}-do-not-log`;

/** Says what its env holds, or fetches `?to=` and says what happened. */
const CODE = `export default { async fetch(request, env) {
  const url = new URL(request.url);
  if (url.pathname.endsWith("/fetch")) {
    try {
      const res = await fetch(url.searchParams.get("to"));
      return Response.json({ fetched: res.status, body: await res.text() });
    } catch (e) {
      return Response.json({ refused: e instanceof TypeError, message: String(e && e.message) });
    }
  }
  return Response.json({
    greeting: env.GREETING ?? null,
    keyLength: typeof env.API_KEY === "string" ? env.API_KEY.length : null,
    keyMatches: env.API_KEY === url.searchParams.get("expect"),
    frozen: Object.isFrozen(env),
  });
} }`;

let hearth: LocalHearth;
let client: HearthClient;
let target: Server;
let targetUrl: string;
let targetPort: number;
let targetHits = 0;
const logDir = mkdtempSync(join(tmpdir(), "hearth-settings-logs-"));

beforeAll(async () => {
  // A server on loopback: what a function must never reach (the owner's own machine).
  target = createServer((_req, res) => {
    targetHits++;
    res.end("private");
  });
  await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
  targetPort = (target.address() as AddressInfo).port;
  targetUrl = `http://127.0.0.1:${targetPort}/`;
  hearth = await startLocalHearth({
    // debug: the most a log ever says, and still no secret in it
    logLevel: "debug",
    logDir,
    devices: [
      // the owners allow the target's port, so what refuses it below is the address check (or the function's own policy)
      { deviceId: "set-a", ownerId: "ada", env: { HEARTH_OUTBOUND_ALLOW_PORTS: String(targetPort) } },
      { deviceId: "set-b", ownerId: "grace", env: { HEARTH_OUTBOUND_ALLOW_PORTS: String(targetPort) } },
    ],
  });
  client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
}, 60_000);

afterAll(async () => {
  await hearth?.stop();
  await new Promise((resolve) => target?.close(resolve));
  rmSync(logDir, { recursive: true, force: true });
});

async function call(name: string, path = "/", query = ""): Promise<Record<string, unknown>> {
  const res = await client.invoke(APP, name, `${path}${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

describe("env", () => {
  it("a function deployed with env sees it, on every replica", async () => {
    await client.deploy({ app: APP, name: "env", code: CODE, replicas: 2, env: { GREETING: "hello", API_KEY: SECRET } });
    await client.waitUntilReady(APP, "env", { timeoutMs: 20_000 });
    // both replicas placed, so the calls below reach both devices
    await until("placed on both devices", async () => (await client.get(APP, "env")).devices.length === 2);
    for (let i = 0; i < 12; i++) {
      const res = await client.invoke(APP, "env", `/?expect=${SECRET}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ greeting: "hello", keyLength: SECRET.length, keyMatches: true, frozen: true });
    }
    // the API shows the names only
    const view = await client.get(APP, "env");
    expect(view.envNames?.sort()).toEqual(["API_KEY", "GREETING"]);
    expect(JSON.stringify(view)).not.toContain(SECRET);
  });

  it("a redeploy with a new env value is seen by calls within seconds, and one without env keeps it", async () => {
    const started = Date.now();
    const deployed = await client.deploy({ app: APP, name: "env", code: CODE, replicas: 2, env: { GREETING: "bonjour", API_KEY: SECRET } });
    // same version, new env: not "ready" until a device serves the new env
    expect(deployed.status).toBe("pending");
    await client.waitUntilReady(APP, "env", { timeoutMs: 10_000 });
    // every replica: several calls in a row all see the new value
    await until(
      "the new env on every call",
      async () => {
        for (let i = 0; i < 8; i++) if ((await call("env")).greeting !== "bonjour") return false;
        return true;
      },
      10_000,
    );
    expect(Date.now() - started).toBeLessThan(10_000);

    // a new version that names no env: once the devices serve it, the function still has its env
    await client.deploy({ app: APP, name: "env", code: `${CODE}\n// v2`, replicas: 2 });
    await client.waitUntilReady(APP, "env", { timeoutMs: 20_000 });
    await until("both replicas on the new version", async () => {
      const view = await client.get(APP, "env");
      return view.status === "ready" && view.devices.length === 2;
    });
    for (let i = 0; i < 4; i++) expect((await call("env")).greeting).toBe("bonjour");
  });
});

describe("outbound fetch", () => {
  it("is refused for a function deployed without allowFetch", async () => {
    await client.deploy({ app: APP, name: "nofetch", code: CODE, replicas: 1 });
    await client.waitUntilReady(APP, "nofetch", { timeoutMs: 20_000 });
    const answer = await call("nofetch", "/fetch", `?to=${encodeURIComponent(targetUrl)}`);
    expect(answer["refused"]).toBe(true);
    expect(answer["message"]).toMatch(/outbound fetch is not allowed/);
  });

  it("with allowFetch, reaching a loopback address is refused as a private address", async () => {
    await client.deploy({ app: APP, name: "fetcher", code: CODE, replicas: 1, allowFetch: true, fetchPorts: [targetPort] });
    await client.waitUntilReady(APP, "fetcher", { timeoutMs: 20_000 });
    const answer = await call("fetcher", "/fetch", `?to=${encodeURIComponent(targetUrl)}`);
    expect(answer["refused"]).toBe(true);
    // not "not allowed": the policy reached the device, and its address check refused loopback
    expect(answer["message"]).toMatch(/127\.0\.0\.1 is a private, loopback/);
    const byName = await call("fetcher", "/fetch", `?to=${encodeURIComponent(targetUrl.replace("127.0.0.1", "localhost"))}`);
    expect(byName["refused"]).toBe(true);
    expect(byName["message"]).toMatch(/private, loopback/);
  });

  it("with allowFetch but without the port in its policy, a port other than 80/443 is refused", async () => {
    await client.deploy({ app: APP, name: "noport", code: CODE, replicas: 1, allowFetch: true });
    await client.waitUntilReady(APP, "noport", { timeoutMs: 20_000 });
    const answer = await call("noport", "/fetch", `?to=${encodeURIComponent(targetUrl)}`);
    expect(answer["refused"]).toBe(true);
    expect(answer["message"]).toMatch(new RegExp(`port ${targetPort} is refused: only 80 and 443`));
    expect(targetHits).toBe(0);
  });

  it("fetchHosts narrows it, and turning it on later reaches a placed function", async () => {
    await client.deploy({ app: APP, name: "nofetch", code: CODE, replicas: 1, fetchHosts: ["api.example.com"] });
    await until(
      "the new policy on the device",
      async () => /not among this function's allowed hosts/.test(String((await call("nofetch", "/fetch", `?to=${encodeURIComponent(targetUrl)}`))["message"])),
      10_000,
    );
    expect(targetHits).toBe(0);
  });
});

describe("logs", () => {
  it("no secret appears in any log line of the platform or the agents", async () => {
    const files = readdirSync(logDir);
    expect(files.length).toBeGreaterThanOrEqual(3);
    const all = files.map((f) => readFileSync(join(logDir, f), "utf8")).join("\n");
    // the logs did record the placements (they are not just empty)
    expect(all).toMatch(/function placed/);
    expect(all).not.toContain(SECRET);
  });
});

const until = (what: string, check: () => Promise<boolean> | boolean, timeoutMs?: number) => waitFor(what, check, { timeoutMs });

describe("from the CLI", () => {
  const HEARTH_CLI = fileURLToPath(new URL("../../sdk/bin/hearth.js", import.meta.url));
  const run = promisify(execFile);
  /** `hearth ...` on the machine's own Node, as a developer runs it, with the platform in its environment. */
  const hearthCli = (...args: string[]) =>
    run(process.env["HEARTH_HOST_NODE"] ?? process.execPath, [HEARTH_CLI, ...args], {
      env: { ...process.env, HEARTH_PLATFORM_URL: hearth.url, HEARTH_TOKEN: hearth.developerToken },
    });

  it("hearth deploy takes --env-file, --env and --fetch-host; hearth info shows env names and the fetch policy, never values", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hearth-cli-env-"));
    try {
      const entry = join(dir, "fn.js");
      writeFileSync(entry, CODE);
      const envFile = join(dir, ".env");
      writeFileSync(envFile, `# secrets stay out of shell history\nGREETING="from the file"\nexport API_KEY=${SECRET}\n\n`);
      const deployed = await hearthCli("deploy", entry, "--app", APP, "--name", "cli", "--env-file", envFile, "--env", "GREETING=from a flag", "--fetch-host", "api.example.com");
      expect(deployed.stdout).toMatch(/^Function ready: /m);
      const answer = await client.invoke(APP, "cli", `/?expect=${SECRET}`);
      expect(await answer.json()).toMatchObject({ greeting: "from a flag", keyMatches: true });

      const info = await hearthCli("info", APP, "cli");
      expect(info.stdout).toMatch(/^ {2}env {7}GREETING, API_KEY \(values are never shown\)$/m);
      expect(info.stdout).toMatch(/^ {2}fetch {5}on, to api\.example\.com$/m);
      expect(info.stdout).not.toContain(SECRET);

      // a bad pair is refused before anything is uploaded, saying what is wrong
      const bad = await hearthCli("deploy", entry, "--app", APP, "--name", "cli", "--env", "1BAD=x").catch((e: { code: number; stderr: string }) => e);
      expect(bad).toMatchObject({ code: 2 });
      expect((bad as { stderr: string }).stderr).toMatch(/--env: key '1BAD' is not A-Z/);
      // a bad line of an env file is named by its line and key, never its value (it may be a secret)
      writeFileSync(envFile, `API-KEY=${SECRET}\n`);
      const badFile = await hearthCli("deploy", entry, "--app", APP, "--name", "cli", "--env-file", envFile).catch((e: { code: number; stderr: string }) => e);
      expect(badFile).toMatchObject({ code: 2 });
      expect((badFile as { stderr: string }).stderr).toMatch(/line 1: key 'API-KEY' is not A-Z/);
      expect((badFile as { stderr: string }).stderr).not.toContain(SECRET);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
