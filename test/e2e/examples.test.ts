/**
 * End to end, the examples as a developer ships them: each bundled with
 * esbuild and deployed through the SDK (HearthClient.deployFile) to a local
 * Hearth of real processes, then called over HTTP through the gateway. Proof
 * that code written for edge runtimes — Hono, zod, Web Crypto, web streams —
 * runs unchanged in Hearth's isolates.
 */
import { createHmac } from "node:crypto";
import { fileURLToPath } from "node:url";
import { startLocalHearth, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const APP = "examples";

let hearth: LocalHearth;
let client: HearthClient;
const urls = new Map<string, string>();

beforeAll(async () => {
  hearth = await startLocalHearth({ logLevel: "warn", devices: [{ deviceId: "ex-device", ownerId: "ada", location: "berlin:52.52,13.40" }] });
  client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
  for (const name of ["hono-app", "zod-api", "crypto-streams"]) {
    await client.deployFile(`${ROOT}examples/${name}/src/index.ts`, { app: APP, name, replicas: 1 });
    const fn = await client.waitUntilReady(APP, name, { timeoutMs: 30_000 });
    urls.set(name, fn.url);
  }
}, 120_000);

afterAll(async () => {
  await hearth?.stop();
});

const url = (name: string, path: string) => `${urls.get(name)}${path}`;

describe("examples/hono-app", () => {
  it("routes, path params with a pattern, JSON in and out, ETag and conditional GET", async () => {
    const root = await fetch(url("hono-app", "/"));
    expect(root.status).toBe(200);
    expect(await root.text()).toBe("Hello from Hono on Hearth");

    const user = await fetch(url("hono-app", "/api/users/2"));
    expect(user.status).toBe(200);
    expect(await user.json()).toEqual({ id: 2, name: "Grace Hopper" });
    const tag = user.headers.get("etag");
    expect(tag).toMatch(/^"[0-9a-f]+"$/);
    const again = await fetch(url("hono-app", "/api/users/2"), { headers: { "if-none-match": tag! } });
    expect(again.status).toBe(304);

    const echo = await fetch(url("hono-app", "/api/echo?lang=en"), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ a: [1, 2] }) });
    expect(echo.status).toBe(201);
    expect(await echo.json()).toEqual({ received: { a: [1, 2] }, query: { lang: "en" } });
  });

  it("runs its middleware: timing, secure headers, CORS preflight, basic auth", async () => {
    const res = await fetch(url("hono-app", "/api/users"), { headers: { origin: "https://example.com" } });
    expect(res.headers.get("x-response-time")).toMatch(/^\d+ms$/);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("access-control-allow-origin")).toBe("https://example.com");
    const preflight = await fetch(url("hono-app", "/api/echo"), {
      method: "OPTIONS",
      headers: { origin: "https://example.com", "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-methods")).toBe("GET,POST");

    const denied = await fetch(url("hono-app", "/admin"));
    expect(denied.status).toBe(401);
    expect(denied.headers.get("www-authenticate")).toMatch(/^Basic/);
    const admitted = await fetch(url("hono-app", "/admin"), { headers: { authorization: `Basic ${btoa("admin:hearth")}` } });
    expect(admitted.status).toBe(200);
    expect(await admitted.json()).toEqual({ secret: "only for admins" });
  });

  it("streams text, and answers its own 404 and 500", async () => {
    const stream = await fetch(url("hono-app", "/stream"));
    expect(stream.status).toBe(200);
    expect(await stream.text()).toBe("line 1\nline 2\nline 3\n");
    const missing = await fetch(url("hono-app", "/nope"));
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: "not found", path: "/nope" });
    const boom = await fetch(url("hono-app", "/boom"));
    expect(boom.status).toBe(500);
    expect(await boom.json()).toEqual({ error: "internal error" });
  });
});

describe("examples/zod-api", () => {
  it("creates and lists todos with validated input", async () => {
    const created = await fetch(url("zod-api", "/todos"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: "  write the runtime docs ", tags: ["docs"], due: "2026-12-01" }),
    });
    expect(created.status).toBe(201);
    const todo = (await created.json()) as { id: string; title: string; done: boolean; tags: string[] };
    expect(todo).toMatchObject({ title: "write the runtime docs", done: false, tags: ["docs"] });
    expect(created.headers.get("location")).toBe(`/todos/${todo.id}`);

    const one = await fetch(url("zod-api", `/todos/${todo.id}`));
    expect(await one.json()).toMatchObject({ id: todo.id, title: "write the runtime docs" });
    const list = await fetch(url("zod-api", "/todos?limit=10&done=false"));
    const body = (await list.json()) as { todos: { id: string }[]; count: number };
    expect(body.todos.map((t) => t.id)).toContain(todo.id);
  });

  it("answers 400 with zod's issues for bad bodies, queries and ids", async () => {
    const bad = await fetch(url("zod-api", "/todos"), { method: "POST", body: JSON.stringify({ title: "", tags: ["Not Valid"], extra: 1 }) });
    expect(bad.status).toBe(400);
    const issues = ((await bad.json()) as { issues: { path: string }[] }).issues.map((i) => i.path);
    expect(issues).toEqual(expect.arrayContaining(["title", "tags.0"]));
    expect((await fetch(url("zod-api", "/todos?limit=1000"))).status).toBe(400);
    expect((await fetch(url("zod-api", "/todos/not-a-uuid"))).status).toBe(400);
    expect((await fetch(url("zod-api", "/todos"), { method: "POST", body: "{not json" })).status).toBe(400);
  });
});

describe("examples/crypto-streams", () => {
  it("signs and verifies HMAC tokens with crypto.subtle", async () => {
    const issued = await fetch(url("crypto-streams", "/token"), { method: "POST", body: JSON.stringify({ sub: "ada" }) });
    const { token } = (await issued.json()) as { token: string };
    const ok = await fetch(url("crypto-streams", `/verify?token=${encodeURIComponent(token)}`));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ valid: true, claims: { sub: "ada" } });
    // change the signature's first character: its last one carries padding bits in base64url, so swapping it
    // can decode to the same bytes (A and B do, for a 32-byte HMAC) and prove nothing
    const dot = token.lastIndexOf(".");
    const tampered = token.slice(0, dot + 1) + (token[dot + 1] === "A" ? "B" : "A") + token.slice(dot + 2);
    expect((await fetch(url("crypto-streams", `/verify?token=${encodeURIComponent(tampered)}`))).status).toBe(401);
  });

  it("hashes a streamed body, transforms a stream, and streams generated lines", async () => {
    const payload = new Uint8Array(300_000).map((_, i) => i % 251);
    const digest = await fetch(url("crypto-streams", "/digest"), { method: "POST", body: payload });
    const expected = Buffer.from(await crypto.subtle.digest("SHA-256", payload)).toString("hex");
    expect(await digest.json()).toEqual({ size: payload.byteLength, sha256: expected });

    const upper = await fetch(url("crypto-streams", "/upper"), { method: "POST", body: "streams über alles" });
    expect(await upper.text()).toBe("STREAMS ÜBER ALLES");

    const ticks = await fetch(url("crypto-streams", "/ticks?n=4"));
    expect(ticks.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = (await ticks.text()).trim().split("\n").map((l) => JSON.parse(l) as { tick: number });
    expect(lines.map((l) => l.tick)).toEqual([1, 2, 3, 4]);
  });
});

describe("deploy settings", () => {
  it("keeps env values out of API answers (names only) and validates env names", async () => {
    const fn = await client.deployFile(`${ROOT}examples/crypto-streams/src/index.ts`, {
      app: APP,
      name: "crypto-streams",
      replicas: 1,
      env: { TOKEN_KEY: "s3cret-value" },
      fetchHosts: ["api.example.com"],
    });
    expect(fn.envNames).toEqual(["TOKEN_KEY"]);
    expect(JSON.stringify(fn)).not.toContain("s3cret-value");
    expect(fn.outbound).toEqual({ allow: true, hosts: ["api.example.com"] });
    const listed = await client.get(APP, "crypto-streams");
    expect(JSON.stringify(listed)).not.toContain("s3cret-value");
    await expect(client.deployFile(`${ROOT}examples/crypto-streams/src/index.ts`, { app: APP, name: "crypto-streams", env: { "1BAD": "x" } })).rejects.toMatchObject({
      code: "ERR_BAD_REQUEST",
    });
  });

  it("the env reaches the function on its device: tokens are signed with the deployed TOKEN_KEY, within seconds of the deploy", async () => {
    // the deploy above set TOKEN_KEY; the example signs with it (else with its default key)
    const signedWith = async (key: string) => {
      const res = await fetch(url("crypto-streams", "/token"), { method: "POST", body: JSON.stringify({ sub: "env" }) });
      const { token } = (await res.json()) as { token: string };
      const [payload, signature] = token.split(".");
      return signature === createHmac("sha256", key).update(payload!).digest("base64url");
    };
    const deadline = Date.now() + 10_000;
    while (!(await signedWith("s3cret-value"))) {
      if (Date.now() > deadline) throw new Error("the function never signed with the deployed TOKEN_KEY");
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await signedWith("example-key-change-me")).toBe(false);
  });
});
