/**
 * End to end, as users do it: a local Hearth of real processes (nats-server,
 * platform, three agents), functions deployed through the SDK and the CLI,
 * called over HTTP through the gateway, answered by isolates on the agents.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { redisServerBinary, startLocalHearth, startRedisServer, type LocalHearth } from "@hearth/devkit";
import { HearthClient, HearthError } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const HELLO = `${ROOT}examples/hello/src/index.ts`;
const run = promisify(execFile);

let hearth: LocalHearth;
let client: HearthClient;

beforeAll(async () => {
  hearth = await startLocalHearth({
    logLevel: "warn",
    devices: [
      { deviceId: "e2e-berlin", ownerId: "ada", location: "berlin:52.52,13.40" },
      { deviceId: "e2e-lisbon", ownerId: "grace", location: "lisbon:38.72,-9.14" },
      { deviceId: "e2e-osaka", ownerId: "linus", location: "osaka:34.69,135.50" },
    ],
  });
  client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
}, 60_000);

afterAll(async () => {
  await hearth?.stop();
});

async function deployCode(name: string, code: string, limits = {}, replicas?: number) {
  await client.deploy({ app: "e2e", name, code, limits, replicas });
  return client.waitUntilReady("e2e", name, { timeoutMs: 20_000 });
}

async function errorOf(res: Response) {
  const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
  expect(res.headers.get("x-request-id")).toBe(body.error.requestId);
  return body.error;
}

describe("walking skeleton", () => {
  it("deploys examples/hello with the SDK and answers over HTTP from an isolate on a device", async () => {
    await client.deployFile(HELLO, { app: "e2e", name: "hello" });
    const fn = await client.waitUntilReady("e2e", "hello", { timeoutMs: 20_000 });
    expect(fn.devices.length).toBeGreaterThanOrEqual(1);
    const res = await fetch(`${fn.url}/greet?name=Ada`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ message: "Hello, Ada!", path: "/greet", method: "GET" });
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("x-request-id")).toBeTruthy();
    expect(res.headers.get("server-timing")).toMatch(/cpu;dur=[\d.]+, wall;dur=[\d.]+, start;desc=(cold|warm)/);
  });

  it("carries method, headers and a binary body both ways, unchanged", async () => {
    await deployCode(
      "echo",
      `export default { async fetch(req) {
        const body = new Uint8Array(await req.arrayBuffer());
        return new Response(body, { status: 201, headers: { "x-method": req.method, "x-seen": req.headers.get("x-custom") ?? "", "content-type": "application/octet-stream" } });
      } }`,
    );
    const payload = new Uint8Array(256).map((_, i) => i);
    const res = await client.invoke("e2e", "echo", "/x", { method: "PUT", headers: { "x-custom": "yes" }, body: payload });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-method")).toBe("PUT");
    expect(res.headers.get("x-seen")).toBe("yes");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(payload);
  });

  it("answers 500 ERR_FUNCTION_THREW when the function throws, without leaking its stack", async () => {
    await deployCode("thrower", `export default { fetch() { throw new Error("secret detail") } }`);
    const res = await client.invoke("e2e", "thrower");
    expect(res.status).toBe(500);
    const text = await res.clone().text();
    const error = await errorOf(res);
    expect(error.code).toBe("ERR_FUNCTION_THREW");
    // the caller learns only that it threw and where to look, never what the function said or where
    expect(error.message).toBe(`the function threw an uncaught exception; see its logs for request ${error.requestId}`);
    expect(text).not.toMatch(/secret detail/);
    expect(text).not.toMatch(/\bat\s+\S+\s*\(|\.js:\d+|\.ts:\d+|Error:/);
  });

  it("answers 504 ERR_WALL_TIME_LIMIT when a call outlives its wall limit", async () => {
    await deployCode("sleeper", `export default { fetch() { return new Promise(() => {}) } }`, { wallMs: 300 });
    const res = await client.invoke("e2e", "sleeper");
    expect(res.status).toBe(504);
    expect((await errorOf(res)).code).toBe("ERR_WALL_TIME_LIMIT");
  });

  it("answers 504 ERR_CPU_LIMIT for a busy loop (a time limit), and the device keeps serving others", async () => {
    await deployCode("spinner", `export default { fetch() { for (;;) {} } }`, { cpuMs: 50 });
    const res = await client.invoke("e2e", "spinner");
    expect(res.status).toBe(504);
    expect((await errorOf(res)).code).toBe("ERR_CPU_LIMIT");
    const ok = await client.invoke("e2e", "hello", "/after");
    expect(ok.status).toBe(200);
  });

  it("answers 413 for a body over the limit and 404 for an unknown function", async () => {
    await deployCode("small", `export default { fetch: () => new Response("ok") }`, { requestBytes: 16 });
    const big = await client.invoke("e2e", "small", "/", { method: "POST", body: "x".repeat(17) });
    expect(big.status).toBe(413);
    expect((await errorOf(big)).code).toBe("ERR_BODY_TOO_LARGE");
    const missing = await client.invoke("e2e", "nope");
    expect(missing.status).toBe(404);
    expect((await errorOf(missing)).code).toBe("ERR_FUNCTION_NOT_FOUND");
  });

  it("turns malformed API input into a typed 400 error in the SDK", async () => {
    const attempt = client.deploy({ app: "e2e", name: "bad", code: "export default {}", limits: { cpuMs: -1 } });
    await expect(attempt).rejects.toBeInstanceOf(HearthError);
    await expect(attempt).rejects.toMatchObject({ code: "ERR_BAD_REQUEST" });
  });

  it("refuses a bundle without a fetch handler: the function never becomes ready", async () => {
    await client.deploy({ app: "e2e", name: "nofetch", code: "export default { hello: 1 }" });
    await expect(client.waitUntilReady("e2e", "nofetch", { timeoutMs: 3_000 })).rejects.toMatchObject({ code: "ERR_NO_DEVICE" });
  });

  it("deploys with the CLI (bundled with esbuild) and prints a URL that answers", async () => {
    const { stdout } = await run(process.execPath, [`${ROOT}sdk/bin/hearth.js`, "deploy", HELLO, "--app", "e2e", "--name", "cli"], {
      env: { ...process.env, HEARTH_PLATFORM_URL: hearth.url, HEARTH_TOKEN: hearth.developerToken },
    });
    const url = /Function ready: (\S+)/.exec(stdout)?.[1];
    expect(url).toBeTruthy();
    const res = await fetch(`${url}/cli?name=Grace`);
    expect(await res.json()).toMatchObject({ message: "Hello, Grace!" });
  });

  const hostNode = process.env["HEARTH_HOST_NODE"];
  it.skipIf(!hostNode || hostNode === process.execPath)("the CLI runs on the machine's own, older Node too", async () => {
    const { stdout: version } = await run(hostNode!, ["--version"]);
    const { stdout } = await run(hostNode!, [`${ROOT}sdk/bin/hearth.js`, "deploy", HELLO, "--app", "e2e", "--name", "old-node"], {
      env: { ...process.env, HEARTH_PLATFORM_URL: hearth.url, HEARTH_TOKEN: hearth.developerToken },
    });
    expect(stdout, `CLI on node ${version.trim()}`).toMatch(/Function ready: \S+\/fn\/e2e\/old-node/);
  });

  it("the CLI explains a user error without a stack trace", async () => {
    const failed = await run(process.execPath, [`${ROOT}sdk/bin/hearth.js`, "deploy", HELLO, "--app", "Bad Name", "--name", "x"], {
      env: { ...process.env, HEARTH_PLATFORM_URL: hearth.url, HEARTH_TOKEN: hearth.developerToken },
    }).catch((error: { code: number; stderr: string }) => error);
    expect("code" in failed && failed.code).toBe(2);
    expect(failed.stderr).toMatch(/app name must be/);
    expect(failed.stderr).not.toMatch(/\n\s+at /);
  });

  it("re-places a function within seconds when its device is killed", async () => {
    const fn = await deployCode("failover", `export default { fetch: () => new Response("alive") }`, {}, 1);
    expect(fn.devices).toHaveLength(1);
    const victim = fn.devices[0]!;
    const agent = hearth.devices.get(victim)!.server.process;
    const exited = new Promise((resolve) => agent.once("exit", resolve));
    agent.kill("SIGKILL");
    await exited; // a call already on its way to the dying device is lost with it (504 after the wall limit)
    const killedAt = Date.now();
    let answered = false;
    const deadline = Date.now() + 20_000;
    while (!answered && Date.now() < deadline) {
      const res = await client.invoke("e2e", "failover");
      answered = res.status === 200 && (await res.text()) === "alive";
      if (!answered) await new Promise((r) => setTimeout(r, 250));
    }
    expect(answered).toBe(true);
    console.log(`failover: answered again ${Date.now() - killedAt} ms after the device died`);
    const after = await client.get("e2e", "failover");
    expect(after.devices).not.toContain(victim);
  }, 60_000);
});

describe.skipIf(!redisServerBinary())("walking skeleton on a real redis-server", () => {
  it("deploys and calls with the platform's state in Redis", async () => {
    await using redis = await startRedisServer();
    await using local = await startLocalHearth({ logLevel: "warn", redisUrl: redis.url, devices: [{ deviceId: "redis-dev" }] });
    const c = new HearthClient({ url: local.url, token: local.developerToken });
    await c.deployFile(HELLO, { app: "r", name: "hello", replicas: 1 });
    const fn = await c.waitUntilReady("r", "hello", { timeoutMs: 20_000 });
    const res = await fetch(`${fn.url}/?name=Redis`);
    expect(await res.json()).toMatchObject({ message: "Hello, Redis!" });
    const health = (await (await fetch(`${local.url}/v1/health`)).json()) as { embeddedState: boolean };
    expect(health.embeddedState).toBe(false);
  });
});
