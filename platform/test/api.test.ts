/**
 * The platform API and gateway in-process (`app.request()`), against a real
 * nats-server and the embedded state.
 */
import { startNatsServer, type NatsServer } from "@hearth/devkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FabricAuthority, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { createDeveloper } from "./helpers.ts";

const TOKEN = "test-token-0123456789";
let auth: { authorization: string };
const BUNDLE = "export default { fetch() { return new Response('hi') } }";

let nats: NatsServer;
let platform: Platform;

beforeAll(async () => {
  const authority = FabricAuthority.generate();
  nats = await startNatsServer({ auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: "apitest" });
  ({ auth } = await createDeveloper(platform.app, TOKEN, "api-tester"));
});
afterAll(async () => {
  await platform?.close();
  await nats?.stop();
});

const req = (path: string, init: RequestInit = {}) => platform.app.request(path, init);
const deploy = (app: string, fn: string, body: BodyInit = BUNDLE, query = "") =>
  req(`/v1/apps/${app}/functions/${fn}${query}`, { method: "PUT", headers: auth, body });

async function envelope(res: Response) {
  const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
  expect(body.error.requestId).toBe(res.headers.get("x-request-id"));
  expect(body.error.requestId).toBeTruthy();
  return body.error;
}

describe("API", () => {
  it("answers health without a token and says the state is embedded", async () => {
    const res = await req("/v1/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, embeddedState: true });
  });

  it("refuses calls without the token (401 envelope)", async () => {
    const res = await req("/v1/functions");
    expect(res.status).toBe(401);
    expect((await envelope(res)).code).toBe("ERR_UNAUTHORIZED");
    const wrong = await req("/v1/functions", { headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
  });

  it("deploys, lists, gets, versions, rolls back and deletes", async () => {
    const first = await deploy("api-a", "fn1");
    expect(first.status).toBe(201);
    const v1 = (await first.json()) as { version: string; status: string; url: string; limits: { cpuMs: number } };
    expect(v1.version).toMatch(/^[0-9a-f]{64}$/);
    expect(v1.status).toBe("pending"); // no device in this test
    expect(v1.url).toMatch(/\/fn\/api-a\/fn1$/);

    const second = await deploy("api-a", "fn1", BUNDLE + "\n// v2", "?cpuMs=50&replicas=1");
    expect(second.status).toBe(200);
    const v2 = (await second.json()) as { version: string; limits: { cpuMs: number }; replicas: number };
    expect(v2.version).not.toBe(v1.version);
    expect(v2.limits.cpuMs).toBe(50);
    expect(v2.replicas).toBe(1);

    const list = (await (await req("/v1/apps/api-a/functions", { headers: auth })).json()) as { functions: unknown[] };
    expect(list.functions).toHaveLength(1);
    const versions = (await (await req("/v1/apps/api-a/functions/fn1/versions", { headers: auth })).json()) as {
      versions: { version: string }[];
    };
    expect(versions.versions.map((v) => v.version).sort()).toEqual([v1.version, v2.version].sort());

    const rolled = await req("/v1/apps/api-a/functions/fn1/rollback", {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ version: v1.version }),
    });
    expect(rolled.status).toBe(200);
    expect(((await rolled.json()) as { version: string }).version).toBe(v1.version);

    expect((await req("/v1/apps/api-a/functions/fn1", { method: "DELETE", headers: auth })).status).toBe(204);
    const gone = await req("/v1/apps/api-a/functions/fn1", { headers: auth });
    expect(gone.status).toBe(404);
    expect((await envelope(gone)).code).toBe("ERR_FUNCTION_NOT_FOUND");
  });

  it.each([
    ["a bad app name", "/v1/apps/Bad_Name/functions/x", "path"],
    ["a non-numeric limit", "/v1/apps/ok/functions/x?cpuMs=lots", "cpuMs"],
    ["a limit over the platform cap", "/v1/apps/ok/functions/x?memoryMb=100000", "memoryMb"],
    ["an unknown option", "/v1/apps/ok/functions/x?color=red", "color"],
  ])("rejects %s with a 400 that names it", async (_what, path, mention) => {
    const res = await req(path, { method: "PUT", headers: auth, body: BUNDLE });
    expect(res.status).toBe(400);
    const error = await envelope(res);
    expect(error.code).toBe("ERR_BAD_REQUEST");
    expect(error.message).toContain(mention);
  });

  it("takes compatibility flags (compat=nodejs) and fetch ports, keeps them across deploys that do not name them, clears with compat=none", async () => {
    const on = await deploy("api-compat", "fn", BUNDLE, "?compat=nodejs&allowFetch=true&fetchPorts=8080,8443");
    expect(on.status).toBe(201);
    expect(await on.json()).toMatchObject({ compatibilityFlags: ["nodejs_compat"], outbound: { allow: true, ports: [8080, 8443] } });
    const kept = (await (await deploy("api-compat", "fn", BUNDLE + "\n// v2")).json()) as { compatibilityFlags?: string[] };
    expect(kept.compatibilityFlags).toEqual(["nodejs_compat"]);
    const cleared = (await (await deploy("api-compat", "fn", BUNDLE, "?compat=none")).json()) as { compatibilityFlags?: string[] };
    expect(cleared.compatibilityFlags).toBeUndefined();
    const badFlag = await deploy("api-compat", "fn", BUNDLE, "?compat=python_compat");
    expect(badFlag.status).toBe(400);
    expect((await envelope(badFlag)).code).toBe("ERR_BAD_REQUEST");
    const badPort = await deploy("api-compat", "fn", BUNDLE, "?allowFetch=true&fetchPorts=70000");
    expect(badPort.status).toBe(400);
  });

  it("rejects an empty or binary bundle", async () => {
    const empty = await deploy("api-b", "fn", "");
    expect(empty.status).toBe(400);
    expect((await envelope(empty)).code).toBe("ERR_BAD_BUNDLE");
    const binary = await deploy("api-b", "fn", new Uint8Array([0xff, 0xfe, 0x00]));
    expect((await envelope(binary)).code).toBe("ERR_BAD_BUNDLE");
  });

  it("rejects a bundle over 4 MiB with 413", async () => {
    const res = await deploy("api-b", "big", "x".repeat(4 * 1024 * 1024 + 1));
    expect(res.status).toBe(413);
    expect((await envelope(res)).code).toBe("ERR_BUNDLE_TOO_LARGE");
  });

  it("rejects a malformed rollback body", async () => {
    await deploy("api-c", "fn");
    const res = await req("/v1/apps/api-c/functions/fn/rollback", { method: "POST", headers: auth, body: "{not json" });
    expect(res.status).toBe(400);
    const missing = await req("/v1/apps/api-c/functions/fn/rollback", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ version: "f".repeat(64) }),
    });
    expect(missing.status).toBe(404);
    expect((await envelope(missing)).code).toBe("ERR_VERSION_NOT_FOUND");
  });

  it("answers unknown routes with a 404 envelope and keeps a valid caller request id", async () => {
    const res = await req("/nope", { headers: { "x-request-id": "caller-id-1" } });
    expect(res.status).toBe(404);
    expect(res.headers.get("x-request-id")).toBe("caller-id-1");
    expect((await envelope(res)).code).toBe("ERR_NOT_FOUND");
    const bad = await req("/nope", { headers: { "x-request-id": "bad id with spaces" } });
    expect(bad.headers.get("x-request-id")).not.toBe("bad id with spaces");
  });
});

describe("gateway (no devices)", () => {
  it("answers 404 for an unknown function", async () => {
    const res = await req("/fn/nobody/nothing/x");
    expect(res.status).toBe(404);
    expect((await envelope(res)).code).toBe("ERR_FUNCTION_NOT_FOUND");
  });

  it("answers 503 when no device serves the function", async () => {
    await deploy("gw-a", "fn");
    const res = await req("/fn/gw-a/fn/");
    expect(res.status).toBe(503);
    expect((await envelope(res)).code).toBe("ERR_NO_DEVICE");
  });

  it("answers 413 for a body over the function's limit, before any device is asked", async () => {
    await deploy("gw-b", "fn", BUNDLE, "?requestBytes=10");
    const res = await req("/fn/gw-b/fn/", { method: "POST", body: "more than ten bytes" });
    expect(res.status).toBe(413);
    expect((await envelope(res)).code).toBe("ERR_BODY_TOO_LARGE");
  });

  it("answers 405 for a method functions cannot take", async () => {
    await deploy("gw-c", "fn");
    const res = await req("/fn/gw-c/fn/", { method: "PROPFIND" });
    expect(res.status).toBe(405);
  });
});
