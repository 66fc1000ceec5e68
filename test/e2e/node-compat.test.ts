/**
 * End to end, Node compatibility (nodejs_compat): examples/node-compat, a
 * Hono app on contextStorage() (AsyncLocalStorage), node:crypto, Buffer and
 * EventEmitter, bundled by the SDK with the flag, deployed to a local Hearth
 * of real processes and called over HTTP through the gateway; and the same
 * bundle refused, naming the flag, without it.
 */
import { execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { startLocalHearth, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ENTRY = `${ROOT}examples/node-compat/src/index.ts`;
const APP = "nodecompat";
const SECRET = "whsec-test-1";

let hearth: LocalHearth;
let client: HearthClient;
let base: string;

beforeAll(async () => {
  hearth = await startLocalHearth({ logLevel: "warn", devices: [{ deviceId: "node-compat-device", location: "berlin:52.52,13.40" }] });
  client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
  await client.deployFile(ENTRY, { app: APP, name: "node", replicas: 1, compatibilityFlags: ["nodejs_compat"], env: { WEBHOOK_SECRET: SECRET } });
  const fn = await client.waitUntilReady(APP, "node", { timeoutMs: 30_000 });
  expect(fn.compatibilityFlags).toEqual(["nodejs_compat"]);
  base = fn.url;
}, 120_000);

afterAll(async () => {
  await hearth?.stop();
});

describe("examples/node-compat", () => {
  it("Hono's contextStorage(): each call's context follows it through awaits, timers and Promise.all, concurrent calls kept apart", async () => {
    const calls = Array.from({ length: 8 }, (_, i) =>
      fetch(`${base}/whoami`, { headers: { "x-request-id": `req-${i}`, "x-user": `user-${i}` } }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, { requestId: string; user: string }> })),
    );
    const answers = await Promise.all(calls);
    answers.forEach(({ status, body }, i) => {
      expect(status).toBe(200);
      for (const step of ["first", "second", "third"]) expect(body[step]).toMatchObject({ requestId: `req-${i}`, user: `user-${i}` });
    });
  });

  it("verifies webhook signatures with createHmac/timingSafeEqual and the secret from process.env", async () => {
    const body = JSON.stringify({ id: "evt_1", type: "push" });
    const signature = createHmac("sha256", SECRET).update(body).digest("hex");
    const ok = await fetch(`${base}/webhook`, { method: "POST", headers: { "x-signature": signature }, body });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ ok: true, seen: ["received evt_1"], digest: (await import("node:crypto")).createHash("sha256").update(body).digest("base64url") });
    const forged = await fetch(`${base}/webhook`, { method: "POST", headers: { "x-signature": createHmac("sha256", "guess").update(body).digest("hex") }, body });
    expect(forged.status).toBe(401);
    const short = await fetch(`${base}/webhook`, { method: "POST", headers: { "x-signature": "00" }, body });
    expect(short.status).toBe(401);
  });

  it("without the flag the SDK refuses to bundle it, naming the flag; a raw bundle importing node:buffer is refused by the device", async () => {
    await expect(client.deployFile(ENTRY, { app: APP, name: "no-flag", replicas: 1 })).rejects.toMatchObject({
      code: "ERR_BAD_BUNDLE",
      message: expect.stringMatching(/node:buffer is a Node built-in: deploy with --compat nodejs/),
    });
  });
});

describe("CommonJS that requires Node built-ins", () => {
  it("require('events'), require('buffer') and require('node:crypto') in a CommonJS dependency become the runtime's modules", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hearth-node-cjs-"));
    try {
      // a dependency written for Node, as many on npm still are
      writeFileSync(join(dir, "legacy.cjs"), `
        const EventEmitter = require("events");
        const { Buffer } = require("buffer");
        const { createHash } = require("node:crypto");
        const util = require("util");
        function Queue() { EventEmitter.call(this); this.items = []; }
        util.inherits(Queue, EventEmitter);
        Queue.prototype.push = function (item) { this.items.push(item); this.emit("pushed", item); };
        module.exports = { Queue, encode: (s) => Buffer.from(s).toString("base64"), sha1: (s) => createHash("sha1").update(s).digest("hex") };
      `);
      writeFileSync(join(dir, "index.js"), `
        import legacy from "./legacy.cjs";
        export default { fetch() {
          const q = new legacy.Queue(); const seen = [];
          q.on("pushed", (x) => seen.push(x)); q.push("a"); q.push("b");
          return Response.json({ seen, encoded: legacy.encode("hi"), sha1: legacy.sha1("abc") });
        } };
      `);
      await client.deployFile(join(dir, "index.js"), { app: APP, name: "cjs", replicas: 1, compatibilityFlags: ["nodejs_compat"] });
      const fn = await client.waitUntilReady(APP, "cjs", { timeoutMs: 30_000 });
      const answer = await fetch(fn.url);
      expect(await answer.json()).toEqual({ seen: ["a", "b"], encoded: "aGk=", sha1: "a9993e364706816aba3e25717850c26c9cd0d89d" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("from the CLI", () => {
  const HEARTH_CLI = fileURLToPath(new URL("../../sdk/bin/hearth.js", import.meta.url));
  const run = promisify(execFile);
  const hearthCli = (...args: string[]) =>
    run(process.env["HEARTH_HOST_NODE"] ?? process.execPath, [HEARTH_CLI, ...args], {
      env: { ...process.env, HEARTH_PLATFORM_URL: hearth.url, HEARTH_TOKEN: hearth.developerToken },
    });

  it("hearth deploy --compat nodejs --fetch-port; hearth info shows the flag and the ports", async () => {
    const deployed = await hearthCli("deploy", ENTRY, "--app", APP, "--name", "cli", "--compat", "nodejs", "--env", `WEBHOOK_SECRET=${SECRET}`, "--fetch-port", "8443");
    expect(deployed.stdout).toMatch(/^Function ready: /m);
    const body = JSON.stringify({ id: "evt_cli" });
    const answer = await client.invoke(APP, "cli", "/webhook", { method: "POST", headers: { "x-signature": createHmac("sha256", SECRET).update(body).digest("hex") }, body });
    expect(await answer.json()).toMatchObject({ ok: true, seen: ["received evt_cli"] });
    const info = await hearthCli("info", APP, "cli");
    expect(info.stdout).toMatch(/^ {2}compat {4}nodejs_compat$/m);
    expect(info.stdout).toMatch(/^ {2}fetch {5}on \(public addresses only\), ports 80, 443, 8443$/m);
    const bad = await hearthCli("deploy", ENTRY, "--app", APP, "--name", "cli", "--compat", "python").catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 2 });
  });

  it("hearth deploy --bind NAME=fn declares service bindings; hearth info lists them; a bad one is refused before upload", async () => {
    await hearthCli("deploy", ENTRY, "--app", APP, "--name", "bound", "--compat", "nodejs", "--bind", "AUTH=auth", "--bind", "STORE=store");
    const info = await hearthCli("info", APP, "bound");
    expect(info.stdout).toMatch(/^ {2}bindings {2}env\.AUTH → auth, env\.STORE → store$/m);
    expect((await client.get(APP, "bound")).bindings).toEqual({ AUTH: "auth", STORE: "store" });
    for (const wrong of ["call=auth", "AUTH", "AUTH=Not/A/Name"]) {
      const bad = await hearthCli("deploy", ENTRY, "--app", APP, "--name", "bound", "--bind", wrong).catch((e: { code: number; stderr: string }) => e);
      expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining("--bind") });
    }
    await hearthCli("deploy", ENTRY, "--app", APP, "--name", "bound", "--compat", "nodejs", "--bind", "none");
    expect((await client.get(APP, "bound")).bindings).toBeUndefined();
  });
});
