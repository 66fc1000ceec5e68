/**
 * Function logs end to end: a local Hearth of real processes (nats-server
 * with JetStream, platform, an agent), a function that writes console lines
 * at every level, read back by its developer through the SDK and the CLI,
 * followed live, and kept from everyone else: other apps' routes and the
 * device owner's own log.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { redisServerBinary, startLocalHearth, startRedisServer, type LocalHearth } from "@hearth/devkit";
import { HearthClient, HearthError, type LogEntry } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = `${ROOT}sdk/bin/hearth.js`;
const run = promisify(execFile);
const APP = "logs-e2e";
const OTHER = "logs-rival";

/** Logs at every level; the request id rides along without the function passing it. */
const CHATTY = `
console.log("module loaded");
export default {
  async fetch(request) {
    const word = new URL(request.url).searchParams.get("word") ?? "none";
    console.debug("debug", word);
    console.info("info", word);
    console.warn("warn", word);
    console.error("error", word);
    console.log({ word, n: 1 });
    return new Response("ok");
  },
};`;

let hearth: LocalHearth;
let client: HearthClient;
let logDir: string;

beforeAll(async () => {
  logDir = mkdtempSync(join(tmpdir(), "hearth-logs-e2e-"));
  // debug, so the test can see that even the owner's most detailed log holds no line of a function
  hearth = await startLocalHearth({ logLevel: "debug", logDir, devices: [{ deviceId: "logs-dev", ownerId: "olive" }] });
  client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
  await Promise.all([
    client.deploy({ app: APP, name: "chatty", code: CHATTY }),
    client.deploy({ app: OTHER, name: "chatty", code: CHATTY }),
  ]);
  await Promise.all([client.waitUntilReady(APP, "chatty", { timeoutMs: 20_000 }), client.waitUntilReady(OTHER, "chatty", { timeoutMs: 20_000 })]);
}, 60_000);

afterAll(async () => {
  await hearth?.stop();
  if (logDir) rmSync(logDir, { recursive: true, force: true });
});

async function call(app: string, requestId: string, word: string): Promise<void> {
  const res = await client.invoke(app, "chatty", `/?word=${word}`, { headers: { "x-request-id": requestId } });
  expect(res.status).toBe(200);
  expect(res.headers.get("x-request-id")).toBe(requestId);
  await res.arrayBuffer();
}

/** Lines reach the stream within moments of the call: poll until `n` are there. */
async function linesOf(app: string, requestId: string, n: number): Promise<LogEntry[]> {
  for (let i = 0; ; i++) {
    const lines = await client.logs(app, "chatty", { requestId });
    if (lines.length >= n || i === 100) return lines;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const cliEnv = () => ({ ...process.env, HEARTH_PLATFORM_URL: hearth.url, HEARTH_TOKEN: hearth.developerToken });

describe("function logs", () => {
  it("gives the developer every console line of a call with its level, request id, device and version", async () => {
    await call(APP, "e2e-logs-1", "alpha");
    const lines = await linesOf(APP, "e2e-logs-1", 5);
    expect(lines.map((l) => [l.level, l.message])).toEqual([
      ["debug", "debug alpha"],
      ["info", "info alpha"],
      ["warn", "warn alpha"],
      ["error", "error alpha"],
      ["info", '{"word":"alpha","n":1}'],
    ]);
    const fn = await client.get(APP, "chatty");
    for (const l of lines) expect(l).toMatchObject({ app: APP, fn: "chatty", requestId: "e2e-logs-1", deviceId: "logs-dev", version: fn.version });
    // the module's top-level line belongs to no call
    const all = await client.logs(APP, "chatty", { since: "10m" });
    expect(all.find((l) => l.message === "module loaded")).toMatchObject({ requestId: null });
    expect((await client.logs(APP, "chatty", { limit: 2 })).length).toBe(2);
  });

  it("carries the caller's W3C trace to the function and onto every log line of the call, or starts one", async () => {
    const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
    await client.deploy({
      app: APP, name: "traced",
      code: `export default { fetch(request) { const t = request.headers.get("traceparent"); console.log("seen", t); console.warn("again"); return new Response(t) } }`,
    });
    await client.waitUntilReady(APP, "traced", { timeoutMs: 20_000 });
    const res = await client.invoke(APP, "traced", "/", { headers: { "x-request-id": "e2e-trace-1", traceparent: `00-${TRACE}-00f067aa0ba902b7-01`, tracestate: "vendor=1" } });
    expect(res.status).toBe(200);
    // the function's parent is the gateway's span in the caller's trace, not the caller's span
    const seen = await res.text();
    expect(seen).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    expect(seen).not.toContain("00f067aa0ba902b7");
    let lines: LogEntry[] = [];
    for (let i = 0; i < 100 && lines.length < 2; i++) {
      lines = await client.logs(APP, "traced", { requestId: "e2e-trace-1" });
      if (lines.length < 2) await new Promise((r) => setTimeout(r, 50));
    }
    expect(lines.map((l) => l.traceId)).toEqual([TRACE, TRACE]);

    // no (or a malformed) traceparent: the gateway starts a trace, and the lines carry it
    const fresh = await client.invoke(APP, "traced", "/", { headers: { "x-request-id": "e2e-trace-2", traceparent: "00-not-a-trace" } });
    const started = /^00-([0-9a-f]{32})-[0-9a-f]{16}-00$/.exec(await fresh.text());
    expect(started).not.toBeNull();
    lines = [];
    for (let i = 0; i < 100 && lines.length < 2; i++) {
      lines = await client.logs(APP, "traced", { requestId: "e2e-trace-2" });
      if (lines.length < 2) await new Promise((r) => setTimeout(r, 50));
    }
    expect(lines.map((l) => l.traceId)).toEqual([started![1], started![1]]);
  });

  it("tells the developer why a call failed: the uncaught exception with its stack, under the call's request id", async () => {
    await client.deploy({ app: APP, name: "thrower", code: `export default { fetch() { throw new Error("thrown on purpose") } }` });
    await client.waitUntilReady(APP, "thrower", { timeoutMs: 20_000 });
    const res = await client.invoke(APP, "thrower", "/", { headers: { "x-request-id": "e2e-logs-throw" } });
    expect(res.status).toBe(500);
    // the caller learns only the code and where to look
    expect(JSON.stringify(await res.json())).not.toContain("thrown on purpose");
    let lines: LogEntry[] = [];
    for (let i = 0; i < 100 && lines.length === 0; i++) {
      lines = await client.logs(APP, "thrower", { requestId: "e2e-logs-throw" });
      if (lines.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "error", requestId: "e2e-logs-throw" });
    expect(lines[0]!.message).toMatch(/^ERR_FUNCTION_THREW: Error: thrown on purpose\n\s+at /);
  });

  it("prints them with the CLI: time level requestId message, or JSON", async () => {
    const { stdout } = await run(process.execPath, [CLI, "logs", APP, "chatty", "--request-id", "e2e-logs-1", "--since", "10m"], { env: cliEnv() });
    const printed = stdout.trim().split("\n");
    expect(printed.length).toBe(5);
    expect(printed[2]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warn {2}e2e-logs-1 warn alpha$/);
    const { stdout: json } = await run(process.execPath, [CLI, "logs", APP, "chatty", "--request-id", "e2e-logs-1", "--limit", "1", "--json"], { env: cliEnv() });
    expect(JSON.parse(json)).toMatchObject({ level: "info", message: '{"word":"alpha","n":1}', requestId: "e2e-logs-1" });
  });

  it("follows new lines live through the SDK", async () => {
    const stop = new AbortController();
    const seen: LogEntry[] = [];
    // follow from the function's newest line so far: whenever the stream opens, the call's lines come after it
    const [newest] = await client.logs(APP, "chatty", { limit: 1 });
    const following = (async () => {
      for await (const line of client.tailLogs(APP, "chatty", { after: newest?.seq ?? 0, signal: stop.signal })) {
        seen.push(line);
        if (line.level === "error") break;
      }
    })();
    await call(APP, "e2e-logs-live", "beta");
    await Promise.race([following, new Promise((_, reject) => setTimeout(() => reject(new Error("no live line within 10 s")), 10_000))]);
    stop.abort();
    expect(seen.map((l) => l.message)).toEqual(["debug beta", "info beta", "warn beta", "error beta"]);
    expect(seen.every((l) => l.requestId === "e2e-logs-live")).toBe(true);
  });

  it("follows with the CLI until interrupted", async () => {
    const child = spawn(process.execPath, [CLI, "logs", APP, "chatty", "--follow", "--limit", "0"], { env: cliEnv() });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      // the CLI opens its stream when it can (a slow machine may take a while): call until a line comes through
      for (let i = 0; i < 60 && !stdout.includes("error gamma"); i++) {
        await call(APP, "e2e-logs-cli", "gamma");
        for (let j = 0; j < 10 && !stdout.includes("error gamma"); j++) await new Promise((r) => setTimeout(r, 50));
      }
      expect(stdout).toMatch(/Z error e2e-logs-cli error gamma\n/);
      child.kill("SIGINT");
      expect(await exited).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("keeps each app's lines to itself", async () => {
    await call(OTHER, "e2e-rival-1", "rivalsecret");
    expect((await linesOf(OTHER, "e2e-rival-1", 5)).length).toBe(5);
    const mine = await client.logs(APP, "chatty", { since: "1h", limit: 1000 });
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((l) => l.app === APP)).toBe(true);
    expect(JSON.stringify(mine)).not.toContain("rivalsecret");
    // a function my app does not have: 404, not someone else's lines
    await expect(client.logs(APP, "nope")).rejects.toMatchObject({ code: "ERR_FUNCTION_NOT_FOUND" });
  });

  it("answers a bad query with a 400 envelope, in the SDK as a typed error, in the CLI without a stack", async () => {
    const res = await fetch(`${hearth.url}/v1/apps/${APP}/functions/chatty/logs?since=soon&limit=5000`, { headers: { authorization: `Bearer ${hearth.developerToken}` } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
    expect(body.error.code).toBe("ERR_BAD_REQUEST");
    expect(body.error.message).toMatch(/since/);
    expect(body.error.message).toMatch(/limit/);
    expect(body.error.requestId).toBe(res.headers.get("x-request-id"));
    const attempt = client.logs(APP, "chatty", { limit: 5000 });
    await expect(attempt).rejects.toBeInstanceOf(HearthError);
    await expect(attempt).rejects.toMatchObject({ code: "ERR_BAD_REQUEST" });
    const failed = await run(process.execPath, [CLI, "logs", APP, "chatty", "--since", "soon"], { env: cliEnv() }).catch((e: { code: number; stderr: string }) => e);
    expect("code" in failed && failed.code).toBe(2);
    expect(failed.stderr).toMatch(/since must be/);
    expect(failed.stderr).not.toMatch(/\n\s+at /);
  });

  it("leaves the device owner's log without any line's content, only counts", async () => {
    const owner = readFileSync(join(logDir, "agent-logs-dev.log"), "utf8");
    expect(owner).toMatch(/function log lines sent to their developers/);
    for (const secret of ["alpha", "beta", "gamma", "rivalsecret", "module loaded"]) expect(owner).not.toContain(secret);
  });
});

describe("following across a platform restart", () => {
  it.skipIf(redisServerBinary() === undefined)(
    "the SDK picks the stream up again after the last line it got: nothing missed, nothing twice",
    async () => {
      const redis = await startRedisServer();
      // state in a real Redis, so the restarted platform still knows the function
      const h = await startLocalHearth({ redisUrl: redis.url, devices: [{ deviceId: "logs-restart" }] });
      try {
        const c = new HearthClient({ url: h.url, token: h.developerToken });
        await c.deploy({ app: APP, name: "chatty", code: CHATTY });
        await c.waitUntilReady(APP, "chatty", { timeoutMs: 20_000 });
        const invoke = async (word: string) => {
          for (let i = 0; i < 100; i++) {
            const res = await c.invoke(APP, "chatty", `/?word=${word}`).catch(() => undefined);
            if (res?.status === 200) return void (await res.arrayBuffer());
            await res?.arrayBuffer();
            await new Promise((r) => setTimeout(r, 100));
          }
          throw new Error(`no answer for ${word}`);
        };

        const stop = new AbortController();
        const seen: string[] = [];
        const reconnects: string[] = [];
        const [newest] = await c.logs(APP, "chatty", { limit: 1 });
        let gotSecond!: () => void;
        const second = new Promise<void>((r) => (gotSecond = r));
        const following = (async () => {
          for await (const line of c.tailLogs(APP, "chatty", { after: newest?.seq ?? 0, signal: stop.signal, onReconnect: (e) => reconnects.push(e.message) })) {
            if (line.level !== "error") continue;
            seen.push(line.message);
            if (line.message === "error after") gotSecond();
          }
        })();
        await invoke("before");
        for (let i = 0; i < 100 && seen.length < 1; i++) await new Promise((r) => setTimeout(r, 50));

        await h.restartPlatform();
        await invoke("after");
        await Promise.race([second, new Promise((_, reject) => setTimeout(() => reject(new Error(`no line after the restart: ${JSON.stringify({ seen, reconnects })}`)), 20_000))]);
        stop.abort();
        await following;
        expect(seen).toEqual(["error before", "error after"]);
        expect(reconnects.length).toBeGreaterThanOrEqual(1);
      } finally {
        await h.stop();
        await redis.stop();
      }
    },
    60_000,
  );
});
