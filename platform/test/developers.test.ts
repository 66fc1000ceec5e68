/**
 * Developers, their tokens and app ownership, in-process (`app.request()`)
 * against a real nats-server with JetStream, on ioredis-mock and on a real
 * redis-server. Two developers: every route tried with the other's token
 * answers as if the app did not exist and changes nothing (the whole state
 * in Redis is compared before and after); operator routes refuse developer
 * tokens and developer routes the operator token; a revoked token fails at
 * once with its own code; no list and no Redis value holds a token.
 */
import { createHash } from "node:crypto";
import { redisServerBinary, startNatsServer, startRedisServer, waitFor, type NatsServer, type RedisServer } from "@hearth/devkit";
import {
  encodeEnvHeader,
  ENV_HEADER,
  INVOKE_HEADERS,
  resolveLimits,
  Subjects,
  type FunctionView,
  type LogEntry,
  type TokenView,
  type UsageReport,
  type WhoAmI,
} from "@hearth/protocol";
import { headers } from "@nats-io/transport-node";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FabricAuthority, FakeDevice, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { createDeveloper, type TestDeveloper } from "./helpers.ts";

const TOKEN = "tenancy-operator-token-0123456789";
const operator = { authorization: `Bearer ${TOKEN}` };
const BUNDLE = "export default { fetch() { return new Response('alpha') } }";
const json = { "content-type": "application/json" };

let nats: NatsServer;
const authority = FabricAuthority.generate();
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
});
afterAll(async () => {
  await nats?.stop();
});

type Envelope = { error: { code: string; message: string; requestId: string } };

async function envelope(res: Response): Promise<Envelope["error"]> {
  const body = (await res.json()) as Envelope;
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "requestId"]);
  expect(body.error.requestId).toBe(res.headers.get("x-request-id"));
  return body.error;
}

/** Everything under a key prefix: key → value (by type), to show that a refused request changed nothing. */
async function snapshot(redis: Redis, prefix: string): Promise<Record<string, unknown>> {
  const keys = (await redis.keys(`${prefix}*`)).sort();
  const state: Record<string, unknown> = {};
  for (const key of keys) {
    const type = await redis.type(key);
    if (type === "string") state[key] = (await redis.getBuffer(key))?.toString("base64");
    else if (type === "hash") state[key] = await redis.hgetall(key);
    else if (type === "set") state[key] = (await redis.smembers(key)).sort();
    else if (type === "zset") state[key] = await redis.zrange(key, 0, -1, "WITHSCORES");
    else if (type === "list") state[key] = await redis.lrange(key, 0, -1);
    else state[key] = type;
  }
  // a token's last-use time moves whenever it is used, refused or not: not a change the request made
  for (const [key, value] of Object.entries(state)) if (key.includes(":developers:token:")) delete (value as Record<string, string>)["lastUsedAt"];
  // the scheduler's leader lease is renewed on its own
  for (const key of Object.keys(state)) if (key.includes(":lease:")) delete state[key];
  return state;
}

const backends: [string, () => Promise<RedisServer | undefined>][] = [
  ["ioredis-mock", async () => undefined],
  ...(redisServerBinary() ? ([["redis-server", () => startRedisServer()]] as [string, () => Promise<RedisServer>][]) : []),
];

describe.each(backends)("developers and app ownership on %s", (backendName, startBackend) => {
  const prefix = `tenancy${backendName === "ioredis-mock" ? "mock" : "real"}`;
  const redisPrefix = `${prefix}:`;
  const subjects = new Subjects(prefix);
  let redisServer: RedisServer | undefined;
  let platform: Platform;
  let device: FakeDevice;
  let ada: TestDeveloper;
  let bob: TestDeveloper;
  let v1: string;
  let v2: string;

  const req = (path: string, init: RequestInit = {}) => platform.app.request(path, init);
  const deploy = (who: TestDeveloper, app: string, fn: string, body = BUNDLE, init: { query?: string; headers?: Record<string, string> } = {}) =>
    req(`/v1/apps/${app}/functions/${fn}${init.query ?? ""}`, { method: "PUT", headers: { ...who.auth, ...init.headers }, body });
  const settle = async () => {
    await platform.ledger.publisher!.flush();
    await waitFor("the ledger to catch up", () => platform.ledger.consumer!.caughtUp());
  };

  beforeAll(async () => {
    redisServer = await startBackend();
    platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: prefix, redisPrefix, redisUrl: redisServer?.url, ledger: "required" });
    ada = await createDeveloper(platform.app, TOKEN, "ada");
    bob = await createDeveloper(platform.app, TOKEN, "bob");
    // a device for ada's function, so it has usage
    device = await FakeDevice.start({
      url: nats.url, prefix, devices: platform.devices, deviceId: "tenancy-dev",
      accept: (app, fn) => app === "alpha" && fn === "one",
      onInvoke: (msg) => {
        const h = headers();
        h.set(INVOKE_HEADERS.status, "200");
        h.set(INVOKE_HEADERS.cpuMs, "0.5");
        h.set(INVOKE_HEADERS.device, "tenancy-dev");
        msg.respond(new TextEncoder().encode("alpha"), { headers: h });
      },
    });

    const first = await deploy(ada, "alpha", "one", BUNDLE, { headers: { [ENV_HEADER]: encodeEnvHeader({ SECRET: "ada-only" }) } });
    expect(first.status).toBe(201);
    v1 = ((await first.json()) as FunctionView).version;
    const second = await deploy(ada, "alpha", "one", `${BUNDLE}\n// v2`);
    v2 = ((await second.json()) as FunctionView).version;
    expect((await deploy(bob, "beta", "one")).status).toBe(201);
    await waitFor("alpha/one placed on the device at v2", async () => (await platform.store.getPlacement("alpha", "one")).devices["tenancy-dev"]?.version === v2, { timeoutMs: 20_000 });
    expect((await req("/fn/alpha/one/")).status).toBe(200);
    // a line in ada's logs
    const line = { app: "alpha", fn: "one", version: v2, requestId: "r1", deviceId: "tenancy-dev", level: "info", message: "ada's line", at: Date.now() };
    device.nc.publish(subjects.deviceLogs("tenancy-dev"), JSON.stringify(line));
    await device.nc.flush();
    await waitFor("ada's log line to be stored", async () => {
      const res = await req("/v1/apps/alpha/functions/one/logs", { headers: ada.auth });
      return ((await res.json()) as { lines: LogEntry[] }).lines.length === 1;
    });
    await settle();
  });

  afterAll(async () => {
    await device?.die();
    await platform?.close();
    await redisServer?.stop();
  });

  /** The answer a developer gets for a function that does not exist. */
  async function expectMissing(res: Response, app: string, fn: string): Promise<void> {
    expect(res.status).toBe(404);
    const error = await envelope(res);
    expect(error.code).toBe("ERR_FUNCTION_NOT_FOUND");
    expect(error.message).toBe(`no function ${app}/${fn}`);
  }

  it("answers every function route on another developer's app exactly as on an app that does not exist, and changes nothing", async () => {
    const before = await snapshot(platform.store.redis, redisPrefix);
    // each route twice: on ada's app, and on an app nobody has; bob must not be able to tell them apart
    for (const app of ["alpha", "nobody-here"]) {
      await expectMissing(await req(`/v1/apps/${app}/functions/one`, { headers: bob.auth }), app, "one");
      await expectMissing(await req(`/v1/apps/${app}/functions/one/versions`, { headers: bob.auth }), app, "one");
      await expectMissing(await req(`/v1/apps/${app}/functions/one/rollback`, { method: "POST", headers: { ...bob.auth, ...json }, body: JSON.stringify({ version: v1 }) }), app, "one");
      await expectMissing(await req(`/v1/apps/${app}/functions/one/logs`, { headers: bob.auth }), app, "one");
      await expectMissing(await req(`/v1/apps/${app}/functions/one/logs?follow=1`, { headers: bob.auth }), app, "one");
      const list = await req(`/v1/apps/${app}/functions`, { headers: bob.auth });
      expect(list.status).toBe(200);
      expect(await list.json()).toEqual({ functions: [] });
      const usage = await req(`/v1/usage?app=${app}`, { headers: bob.auth });
      expect(usage.status).toBe(200);
      expect(await usage.json()).toEqual({ apps: [{ app, totals: expect.objectContaining({ calls: 0, cpuUs: 0 }), days: [] }] });
      // a bad body is the same 400 on both
      const bad = await req(`/v1/apps/${app}/functions/one/rollback`, { method: "POST", headers: bob.auth, body: "{" });
      expect(bad.status).toBe(400);
    }
    // only on the app that does not exist does a delete differ in nothing: it is a 404 on both
    await expectMissing(await req("/v1/apps/alpha/functions/one", { method: "DELETE", headers: bob.auth }), "alpha", "one");
    await expectMissing(await req("/v1/apps/nobody-here/functions/one", { method: "DELETE", headers: bob.auth }), "nobody-here", "one");
    expect(await snapshot(platform.store.redis, redisPrefix)).toEqual(before);

    // ada still sees all of it as it was
    const fn = (await (await req("/v1/apps/alpha/functions/one", { headers: ada.auth })).json()) as FunctionView;
    expect(fn).toMatchObject({ version: v2, envNames: ["SECRET"] });
    const usage = (await (await req("/v1/usage?app=alpha", { headers: ada.auth })).json()) as UsageReport;
    expect(usage.apps[0]!.totals.calls).toBe(1);
  });

  it("refuses a deploy to another developer's app (a new version, a new function, a new env) with a 404, writing nothing", async () => {
    const before = await snapshot(platform.store.redis, redisPrefix);
    const theirs = "export default { fetch() { return new Response('bob was here') } }";
    for (const [fn, init] of [
      ["one", {}],
      ["one", { headers: { [ENV_HEADER]: encodeEnvHeader({ SECRET: "bob" }) } }],
      ["one", { query: "?replicas=1&cpuMs=5" }],
      ["brand-new", {}],
    ] as const) {
      const res = await deploy(bob, "alpha", fn, theirs, init);
      expect(res.status).toBe(404);
      const error = await envelope(res);
      expect(error.code).toBe("ERR_FUNCTION_NOT_FOUND");
      expect(error.message).toMatch(new RegExp(`^no function alpha/${fn}\\b`));
      expect(error.message).not.toMatch(/ada|dev_/);
    }
    expect(await snapshot(platform.store.redis, redisPrefix)).toEqual(before);
    // not even bob's bundle was stored
    expect(await platform.store.getBundle(createHash("sha256").update(theirs).digest("hex"))).toBeNull();
    expect(await (await req("/fn/alpha/one/")).text()).toBe("alpha");
  });

  it("lists only the caller's own functions and usage", async () => {
    const mine = (await (await req("/v1/functions", { headers: bob.auth })).json()) as { functions: FunctionView[] };
    expect(mine.functions.map((f) => `${f.app}/${f.name}`)).toEqual(["beta/one"]);
    const adas = (await (await req("/v1/functions", { headers: ada.auth })).json()) as { functions: FunctionView[] };
    expect(adas.functions.map((f) => `${f.app}/${f.name}`)).toEqual(["alpha/one"]);
    const usage = (await (await req("/v1/usage", { headers: bob.auth })).json()) as UsageReport;
    expect(usage.apps.map((a) => a.app)).not.toContain("alpha");
    const adaUsage = (await (await req("/v1/usage", { headers: ada.auth })).json()) as UsageReport;
    expect(adaUsage.apps.map((a) => a.app)).toEqual(["alpha"]);
  });

  it("keeps operator routes to the operator token: a developer token gets 403 and changes nothing", async () => {
    const before = await snapshot(platform.store.redis, redisPrefix);
    const attempts: [string, string, unknown?][] = [
      ["POST", "/v1/join-tokens", { ownerId: "bob" }],
      ["POST", "/v1/ledger/reconcile"],
      ["POST", "/v1/ledger/reconcile?repair=1"],
      ["GET", "/v1/devices"],
      ["POST", "/v1/developers", { name: "mallory" }],
      ["GET", "/v1/developers"],
      ["GET", `/v1/developers/${ada.id}/tokens`],
      ["POST", `/v1/developers/${bob.id}/tokens`, {}],
      ["DELETE", `/v1/developers/${ada.id}/tokens/${ada.tokenId}`],
      ["PUT", "/v1/apps/alpha/owner", { developerId: bob.id }],
    ];
    for (const [method, path, body] of attempts) {
      const res = await req(path, { method, headers: { ...bob.auth, ...json }, body: body === undefined ? undefined : JSON.stringify(body) });
      expect(res.status, `${method} ${path}`).toBe(403);
      const error = await envelope(res);
      expect(error.code).toBe("ERR_FORBIDDEN");
      expect(error.message).toMatch(/needs the operator token/);
    }
    expect(await snapshot(platform.store.redis, redisPrefix)).toEqual(before);
    expect((await req("/v1/apps/alpha/functions/one", { headers: ada.auth })).status).toBe(200);
  });

  it("keeps developer routes from the operator token (403, saying a developer token is needed)", async () => {
    for (const [method, path] of [
      ["GET", "/v1/functions"],
      ["GET", "/v1/apps/alpha/functions/one"],
      ["PUT", "/v1/apps/alpha/functions/one"],
      ["DELETE", "/v1/apps/alpha/functions/one"],
      ["GET", "/v1/apps/alpha/functions/one/logs"],
      ["GET", "/v1/usage"],
    ] as const) {
      const res = await req(path, { method, headers: operator, body: method === "PUT" ? BUNDLE : undefined });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect((await envelope(res)).message).toMatch(/needs a developer token/);
    }
    expect((await req("/v1/apps/alpha/functions/one", { headers: ada.auth })).status).toBe(200);
  });

  it("says who a token is", async () => {
    const me = (await (await req("/v1/whoami", { headers: ada.auth })).json()) as WhoAmI;
    expect(me).toEqual({ kind: "developer", developer: { id: ada.id, name: "ada" }, token: { id: ada.tokenId, name: "default" } });
    expect(await (await req("/v1/whoami", { headers: operator })).json()).toEqual({ kind: "operator" });
  });

  it("tells a missing token, an unknown one and a revoked one apart (401, each its own code)", async () => {
    const missing = await req("/v1/whoami");
    expect(missing.status).toBe(401);
    expect((await envelope(missing)).code).toBe("ERR_UNAUTHORIZED");
    const wrongSecret = ada.token.slice(0, -4) + (ada.token.endsWith("AAAA") ? "BBBB" : "AAAA");
    for (const token of ["nope", `hth_${"0".repeat(16)}_${"x".repeat(43)}`, wrongSecret, TOKEN.slice(1)]) {
      const res = await req("/v1/functions", { headers: { authorization: `Bearer ${token}` } });
      expect(res.status, token).toBe(401);
      expect((await envelope(res)).code).toBe("ERR_TOKEN_UNKNOWN");
    }

    const carol = await createDeveloper(platform.app, TOKEN, "carol");
    const spare = (await (await req(`/v1/developers/${carol.id}/tokens`, { method: "POST", headers: { ...operator, ...json }, body: JSON.stringify({ name: "ci" }) })).json()) as { id: string; value: string };
    expect((await deploy(carol, "gamma", "one")).status).toBe(201);
    expect((await req(`/v1/developers/${carol.id}/tokens/${carol.tokenId}`, { method: "DELETE", headers: operator })).status).toBe(204);
    // at once: the very next request
    const revoked = await req("/v1/apps/gamma/functions/one", { headers: carol.auth });
    expect(revoked.status).toBe(401);
    const error = await envelope(revoked);
    expect(error.code).toBe("ERR_TOKEN_REVOKED");
    expect(error.message).toMatch(/revoked at \d{4}-/);
    // her other token still works, and revoking again changes nothing
    expect((await req("/v1/apps/gamma/functions/one", { headers: { authorization: `Bearer ${spare.value}` } })).status).toBe(200);
    expect((await req(`/v1/developers/${carol.id}/tokens/${carol.tokenId}`, { method: "DELETE", headers: operator })).status).toBe(204);
    // a token is revoked only through its own developer
    const elsewhere = await req(`/v1/developers/${bob.id}/tokens/${spare.id}`, { method: "DELETE", headers: operator });
    expect(elsewhere.status).toBe(404);
    expect((await envelope(elsewhere)).code).toBe("ERR_TOKEN_NOT_FOUND");
    expect((await req("/v1/whoami", { headers: { authorization: `Bearer ${spare.value}` } })).status).toBe(200);
    const nobody = await req(`/v1/developers/dev_000000000000/tokens`, { headers: operator });
    expect((await envelope(nobody)).code).toBe("ERR_DEVELOPER_NOT_FOUND");
  });

  it("never shows a token's value or hash in a list, and keeps only its SHA-256 in Redis", async () => {
    const hash = createHash("sha256").update(ada.token).digest("hex");
    const secret = ada.token.split("_").slice(2).join("_");
    const developers = await (await req("/v1/developers", { headers: operator })).text();
    const tokens = await (await req(`/v1/developers/${ada.id}/tokens`, { headers: operator })).text();
    for (const body of [developers, tokens]) {
      expect(body).not.toContain(secret);
      expect(body).not.toContain(hash);
    }
    const listed = (JSON.parse(tokens) as { tokens: TokenView[] }).tokens;
    expect(listed).toEqual([{ id: ada.tokenId, name: "default", createdAt: expect.any(String), lastUsedAt: expect.any(String) }]);
    expect(JSON.parse(developers)).toMatchObject({ developers: expect.arrayContaining([{ id: ada.id, name: "ada", createdAt: expect.any(String), activeTokens: 1 }]) });

    const state = JSON.stringify(await snapshot(platform.store.redis, redisPrefix));
    expect(state).not.toContain(secret);
    expect(state).not.toContain(Buffer.from(secret).toString("base64"));
    expect(await platform.store.redis.hget(`${redisPrefix}developers:token:${ada.tokenId}`, "hash")).toBe(hash);
  });

  it("validates admin input and keeps developer names unique", async () => {
    const bad = await req("/v1/developers", { method: "POST", headers: { ...operator, ...json }, body: JSON.stringify({ name: "Not A Name" }) });
    expect(bad.status).toBe(400);
    expect((await envelope(bad)).message).toMatch(/name/);
    const again = await req("/v1/developers", { method: "POST", headers: { ...operator, ...json }, body: JSON.stringify({ name: "ada" }) });
    expect(again.status).toBe(409);
    expect((await envelope(again)).code).toBe("ERR_DEVELOPER_EXISTS");
    expect((await req("/v1/developers/not-an-id/tokens", { headers: operator })).status).toBe(400);
  });

  it("gives a new app to exactly one of two developers deploying it at once, and keeps it theirs after its functions are deleted", async () => {
    const answers = await Promise.all([deploy(ada, "race", "fn"), deploy(bob, "race", "fn")]);
    expect(answers.map((r) => r.status).sort()).toEqual([201, 404]);
    const winner = answers[0]!.status === 201 ? ada : bob;
    const loser = winner === ada ? bob : ada;
    expect(await platform.store.redis.get(`${redisPrefix}developers:app-owner:race`)).toBe(winner.id);
    expect((await req("/v1/apps/race/functions/fn", { method: "DELETE", headers: winner.auth })).status).toBe(204);
    expect((await deploy(loser, "race", "fn")).status).toBe(404);
    expect((await deploy(winner, "race", "fn")).status).toBe(201);
  });

  it("lets the operator give an app to another developer, and an app made before apps had owners to its developer", async () => {
    expect((await deploy(ada, "moving", "fn")).status).toBe(201);
    const moved = await req("/v1/apps/moving/owner", { method: "PUT", headers: { ...operator, ...json }, body: JSON.stringify({ developerId: bob.id }) });
    expect(moved.status).toBe(200);
    expect((await req("/v1/apps/moving/functions/fn", { headers: bob.auth })).status).toBe(200);
    await expectMissing(await req("/v1/apps/moving/functions/fn", { headers: ada.auth }), "moving", "fn");
    const bobs = (await (await req("/v1/functions", { headers: bob.auth })).json()) as { functions: FunctionView[] };
    expect(bobs.functions.map((f) => f.app)).toContain("moving");
    const adas = (await (await req("/v1/functions", { headers: ada.auth })).json()) as { functions: FunctionView[] };
    expect(adas.functions.map((f) => f.app)).not.toContain("moving");

    // a function stored with no owner (as before owners existed): nobody takes it by deploying
    const now = new Date().toISOString();
    const record = { app: "legacy", name: "fn", version: v1, limits: resolveLimits({}), replicas: 1, createdAt: now, updatedAt: now };
    await platform.store.saveFunction(record, { version: v1, size: 1, createdAt: now });
    expect((await deploy(bob, "legacy", "fn")).status).toBe(404);
    await expectMissing(await req("/v1/apps/legacy/functions/fn", { headers: bob.auth }), "legacy", "fn");
    expect((await req("/v1/apps/legacy/owner", { method: "PUT", headers: { ...operator, ...json }, body: JSON.stringify({ developerId: ada.id }) })).status).toBe(200);
    expect((await req("/v1/apps/legacy/functions/fn", { headers: ada.auth })).status).toBe(200);
    const unknown = await req("/v1/apps/legacy/owner", { method: "PUT", headers: { ...operator, ...json }, body: JSON.stringify({ developerId: "dev_000000000000" }) });
    expect((await envelope(unknown)).code).toBe("ERR_DEVELOPER_NOT_FOUND");
  });

  it.runIf(backendName === "ioredis-mock")("ends a log follow within seconds of its token being revoked, saying so", async () => {
    const dana = await createDeveloper(platform.app, TOKEN, "dana");
    expect((await deploy(dana, "delta", "fn")).status).toBe(201);
    const res = await req("/v1/apps/delta/functions/fn/logs?follow=1&limit=0", { headers: dana.auth });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const started = Date.now();
    expect((await req(`/v1/developers/${dana.id}/tokens/${dana.tokenId}`, { method: "DELETE", headers: operator })).status).toBe(204);
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text).toMatch(/event: error\ndata: .*"code":"ERR_TOKEN_REVOKED"/);
    expect(Date.now() - started).toBeLessThan(8_000);
  });
});
