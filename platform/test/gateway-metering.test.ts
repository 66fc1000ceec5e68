/**
 * The gateway against devices it cannot trust, and its usage record of each
 * call, in-process (`app.request()`) against a real nats-server with
 * JetStream. The device is a joined fake device whose answers the test
 * writes, so each test controls exactly what a device answers.
 */
import { redisServerBinary, startNatsServer, startRedisServer, type NatsServer } from "@hearth/devkit";
import { INVOKE_HEADERS, Subjects, type DeviceCredits, type ReconcileReport, type UsageRecord, type UsageReport } from "@hearth/protocol";
import { jetstreamManager } from "@nats-io/jetstream";
import { headers, type Msg, type MsgHdrs } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FabricAuthority, FakeDevice, joinTestDevice, natsAuth, silentLogger, startPlatform, type InvokeHandler, type Platform } from "../src/index.ts";
import { ensureUsageStream, usageNames } from "../src/usage/index.ts";
import { createDeveloper } from "./helpers.ts";

const TOKEN = "gateway-token-0123456789";
const operator = { authorization: `Bearer ${TOKEN}` };
/** The developer's who deploys to the main platform. */
let auth: { authorization: string };
const PREFIX = "gwmeter";
const subjects = new Subjects(PREFIX);
const DEVICE = "gw-dev";
/** Another joined device, whose name a lying reply borrows. */
const OTHER_DEVICE = "gw-other";
const authority = FabricAuthority.generate();

let nats: NatsServer;
let platform: Platform;
let device: FakeDevice;

/** A reply beyond its headers: another body than "ok", an answer after a while, or a header block written by hand (what nats.js would not send). */
interface Answer {
  body?: string;
  delayMs?: number;
  rawHeaders?: string;
}

/** A valid answer's reply headers, for the devices that then add what they try. */
function answered(h: MsgHdrs): void {
  h.set(INVOKE_HEADERS.status, "200");
  h.set(INVOKE_HEADERS.cpuMs, "0.5");
  h.set(INVOKE_HEADERS.device, DEVICE);
}

/** What the fake device answers, per function: its reply headers (the body is "ok"), or nothing at all. `self` is the device's own id. */
const answers: Record<string, (h: ReturnType<typeof headers>, msg: Msg, self: string) => "silent" | Answer | void> = {
  ok: (h, msg, self) => {
    h.set(INVOKE_HEADERS.status, "200");
    h.set(INVOKE_HEADERS.cpuMs, "0.5");
    h.set(INVOKE_HEADERS.wallMs, "1.0");
    h.set(INVOKE_HEADERS.cold, "0");
    h.set(INVOKE_HEADERS.device, self);
    // a function cannot set the gateway's own headers
    h.set("Http-Server-Timing", "fake;dur=0");
    h.set("Http-X-Seen-Request-Id", msg.headers?.get(INVOKE_HEADERS.requestId) ?? "");
  },
  threw: (h, _msg, self) => {
    h.set(INVOKE_HEADERS.errorCode, "ERR_FUNCTION_THREW");
    h.set(INVOKE_HEADERS.errorMessage, "Error: secret detail at handler (bundle.js:1:7)");
    h.set(INVOKE_HEADERS.device, self);
  },
  cpu: (h, _msg, self) => {
    h.set(INVOKE_HEADERS.errorCode, "ERR_CPU_LIMIT");
    h.set(INVOKE_HEADERS.errorMessage, "cpu");
    h.set(INVOKE_HEADERS.device, self);
  },
  liar: (h, _msg, self) => {
    h.set(INVOKE_HEADERS.errorCode, "ERR_UNAUTHORIZED");
    h.set(INVOKE_HEADERS.errorMessage, "log in again at https://evil.example");
    h.set(INVOKE_HEADERS.device, self);
  },
  unknown: (h, _msg, self) => {
    h.set(INVOKE_HEADERS.errorCode, "ERR_MADE_UP");
    h.set(INVOKE_HEADERS.device, self);
  },
  badstatus: (h, _msg, self) => {
    h.set(INVOKE_HEADERS.status, "abc");
    h.set(INVOKE_HEADERS.device, self);
  },
  badtiming: (h, _msg, self) => {
    h.set(INVOKE_HEADERS.status, "200");
    h.set(INVOKE_HEADERS.cpuMs, "1e9");
    h.set(INVOKE_HEADERS.device, self);
  },
  anonymous: (h) => {
    h.set(INVOKE_HEADERS.status, "200");
  },
  // an honest-looking answer in another device's name: it would earn that device the call
  impostor: (h) => {
    h.set(INVOKE_HEADERS.status, "200");
    h.set(INVOKE_HEADERS.cpuMs, "0.5");
    h.set(INVOKE_HEADERS.wallMs, "1.0");
    h.set(INVOKE_HEADERS.device, OTHER_DEVICE);
  },
  silent: () => "silent",
  // deployed with responseBytes=16
  big: (h) => (answered(h), { body: "x".repeat(17) }),
  exact: (h) => (answered(h), { body: "y".repeat(16) }),
  // headers a device may not set
  forged: (h) => (answered(h), h.set("X-Forged", "1")),
  echoed: (h) => (answered(h), h.set(INVOKE_HEADERS.app, "another-app")),
  lowercase: (h) => (answered(h), h.set("hearth-status", "200")),
  twostatus: (h) => (answered(h), h.append(INVOKE_HEADERS.status, "500")),
  // HTTP headers a device may not relay
  badname: (h) => (answered(h), h.set("Http-Bad(Name)", "x")),
  nul: (h) => (answered(h), h.set("Http-X-Nul", "a\0b")),
  toomany: (h) => {
    answered(h);
    for (let i = 0; i < 1_001; i++) h.set(`Http-X-H${i}`, "v");
  },
  toolarge: (h) => (answered(h), h.set("Http-X-Big", "v".repeat(64 * 1024))),
  rawnewline: () => ({ rawHeaders: `NATS/1.0\r\n${INVOKE_HEADERS.status}: 200\r\n${INVOKE_HEADERS.device}: gw-dev\r\nHttp-X-Split: a\nLocation: https://evil.example\r\n\r\n` }),
  rawspace: () => ({ rawHeaders: `NATS/1.0\r\n${INVOKE_HEADERS.status}: 200\r\n${INVOKE_HEADERS.device}: gw-dev\r\nHttp-X Space: a\r\n\r\n` }),
  // values the sandbox lets a function make but HTTP cannot carry are the function's to lose, not the device's fault
  oddvalues: (h) => {
    answered(h);
    h.set("Http-X-Emoji", "\u{1F600}");
    h.set("Http-X-Control", "a\u0001b");
    h.append("Http-Set-Cookie", "a=1");
    h.append("Http-Set-Cookie", "b=2");
    h.set("Http-X-Fine", "yes");
  },
  longthrow: (h) => {
    h.set(INVOKE_HEADERS.errorCode, "ERR_FUNCTION_THREW");
    h.set(INVOKE_HEADERS.errorMessage, "e".repeat(3_000));
    h.set(INVOKE_HEADERS.device, "gw-dev");
  },
  // CPU claims: deployed with cpuMs=30000 (over the call's wall time) and cpuMs=5 (under it)
  cpuwall: (h) => (answered(h), h.set(INVOKE_HEADERS.cpuMs, "5000")),
  cpulimit: (h) => (answered(h), h.set(INVOKE_HEADERS.cpuMs, "30"), { delayMs: 40 }),
};

/** A device's invocation handler that answers each function as `answers` says (the body "ok" unless the answer says otherwise). */
function answering(self: string): InvokeHandler {
  return (msg, fn) => {
    const answer = answers[fn];
    if (!answer) return "silent";
    const h = headers();
    const what = answer(h, msg, self);
    if (what === "silent") return "silent";
    const body = new TextEncoder().encode(what?.body ?? "ok");
    // a header block nats.js would refuse to write, sent as is
    const sent = what?.rawHeaders === undefined ? h : ({ encode: () => new TextEncoder().encode(what.rawHeaders) } as unknown as MsgHdrs);
    if (what?.delayMs) setTimeout(() => msg.respond(body, { headers: sent }), what.delayMs);
    else msg.respond(body, { headers: sent });
  };
}

async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until `p` has placed app/fn on the device and the device has taken it: the gateway then routes there. */
async function placedOn(p: Platform, d: FakeDevice, app: string, fn: string): Promise<void> {
  await until(`${app}/${fn} placed on ${d.id}`, async () => (await p.store.getPlacement(app, fn)).devices[d.id] !== undefined && d.functions.has(`${app}/${fn}`));
}

/** Deploy limits per function (the rest take requestBytes=16). */
const LIMITS: Record<string, string> = {
  silent: "?wallMs=100",
  big: "?responseBytes=16",
  exact: "?responseBytes=16",
  cpuwall: "?cpuMs=30000",
  cpulimit: "?cpuMs=5",
};

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, ledger: "required", tickMs: 200 });
  ({ auth } = await createDeveloper(platform.app, TOKEN, "gw-dev"));
  // serves every function but "nobody"
  device = await FakeDevice.start({
    url: nats.url, prefix: PREFIX, devices: platform.devices, deviceId: DEVICE,
    accept: (app, fn) => app === "gw" && fn !== "nobody",
    onInvoke: answering(DEVICE),
  });
  await joinTestDevice(platform.devices, OTHER_DEVICE);
  for (const fn of [...Object.keys(answers), "nobody"]) {
    const limits = LIMITS[fn] ?? "?requestBytes=16";
    const res = await platform.app.request(`/v1/apps/gw/functions/${fn}${limits}`, { method: "PUT", headers: auth, body: "export default { fetch() { return new Response('') } }" });
    expect(res.status).toBe(201);
  }
  for (const fn of Object.keys(answers)) await placedOn(platform, device, "gw", fn);
});

afterAll(async () => {
  await device?.die();
  await platform?.close();
  await nats?.stop();
});

async function errorOf(res: Response) {
  const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
  expect(res.headers.get("x-request-id")).toBe(body.error.requestId);
  return body.error;
}

async function settle(): Promise<void> {
  expect(await platform.ledger.publisher!.flush()).toBe(true);
  for (let i = 0; i < 400 && !(await platform.ledger.consumer!.caughtUp()); i++) await new Promise((r) => setTimeout(r, 25));
}

async function streamCount(): Promise<number> {
  const jsm = await jetstreamManager(platform.nc);
  return (await jsm.streams.info(usageNames(subjects).stream)).state.messages;
}

const TOTAL = /(^|, )total;dur=\d+\.\d\d$/;

describe("usage records at the gateway", () => {
  it("bills each call once, even when callers send the same X-Request-Id every time", async () => {
    const before = await usageOf("ok");
    const fixed = { "x-request-id": "always-the-same-id" };
    for (let i = 0; i < 3; i++) {
      const res = await platform.app.request("/fn/gw/ok", { headers: fixed });
      expect(res.status).toBe(200);
      // the caller's id stays the call's id for correlation and the function's logs
      expect(res.headers.get("x-request-id")).toBe("always-the-same-id");
      expect(res.headers.get("x-seen-request-id")).toBe("always-the-same-id");
    }
    await settle();
    expect((await usageOf("ok")) - before).toBe(3);
    const reconcile = await platform.app.request("/v1/ledger/reconcile", { method: "POST", headers: operator });
    expect(await reconcile.json()).toMatchObject({ pending: 0, missing: 0, differences: [] });
  });

  it("stores the record in JetStream before the caller has the answer", async () => {
    const stats = { ...platform.ledger.publisher!.stats };
    for (let i = 0; i < 5; i++) {
      const before = await streamCount();
      const res = await platform.app.request("/fn/gw/ok");
      expect(res.status).toBe(200);
      // no flush: the record is already stored
      expect(await streamCount()).toBe(before + 1);
      expect(res.headers.get("server-timing")).toMatch(/usage;dur=\d+\.\d\d/);
    }
    expect(platform.ledger.publisher!.stats.published - stats.published).toBe(5);
    expect(platform.ledger.publisher!.stats.deferred).toBe(stats.deferred);
  });

  it("holds a call to a function deployed moments ago until its first placement, instead of answering 503", async () => {
    const own = new Subjects("gwfresh");
    const p = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: own.prefix, redisPrefix: "gwfresh:", ledger: "required", tickMs: 200 });
    const d = await FakeDevice.start({ url: nats.url, prefix: own.prefix, devices: p.devices, deviceId: "fresh-dev", onInvoke: answering("fresh-dev") });
    try {
      const { auth: freshAuth } = await createDeveloper(p.app, TOKEN, "fresh-dev");
      await until("the device is live", () => p.scheduler.hasLiveDevices());
      for (const fn of ["ok"]) {
        expect((await p.app.request(`/v1/apps/fresh/functions/${fn}?responseBytes=16`, { method: "PUT", headers: freshAuth, body: "export default {}" })).status).toBe(201);
        // called at once: not placed yet, so the call waits for the placement (then it goes to the device)
        const res = await p.app.request(`/fn/fresh/${fn}`);
        expect(res.status, `${fn}: ${await res.clone().text()}`).toBe(200);
      }
    } finally {
      await d.die();
      await p.close();
    }
  });

  it("answers when JetStream does not store in time, and stores the record later (counted as deferred)", async () => {
    // a platform of its own, so the stream can be taken away and given back
    const own = new Subjects("gwdefer");
    const p = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: own.prefix, redisPrefix: "gwdefer:", ledger: "required", tickMs: 200 });
    const d = await FakeDevice.start({ url: nats.url, prefix: own.prefix, devices: p.devices, deviceId: "defer-dev", onInvoke: answering("defer-dev") });
    try {
      const { auth: deferAuth } = await createDeveloper(p.app, TOKEN, "defer-dev");
      expect((await p.app.request("/v1/apps/defer/functions/ok", { method: "PUT", headers: deferAuth, body: "export default {}" })).status).toBe(201);
      await placedOn(p, d, "defer", "ok");
      const jsm = await jetstreamManager(p.nc);
      const stream = usageNames(own).stream;
      await jsm.streams.delete(stream);
      const started = Date.now();
      for (let i = 0; i < 3; i++) expect((await p.app.request("/fn/defer/ok")).status).toBe(200);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(p.ledger.publisher!.stats.deferred).toBe(3);
      expect(p.ledger.publisher!.backlog).toBe(3);
      await ensureUsageStream(jsm, own);
      expect(await p.ledger.publisher!.flush(15_000)).toBe(true);
      expect((await jsm.streams.info(stream)).state.messages).toBe(3);
      // stored on the call's path again once JetStream is back
      expect((await p.app.request("/fn/defer/ok")).status).toBe(200);
      expect(p.ledger.publisher!.stats.deferred).toBe(3);
      expect((await jsm.streams.info(stream)).state.messages).toBe(4);
    } finally {
      await d.die();
      await p.close();
    }
  });
});

async function usageOf(fn: string): Promise<number> {
  const res = await platform.app.request("/v1/usage?app=gw", { headers: auth });
  const report = (await res.json()) as UsageReport;
  return report.apps[0]?.days.flatMap((d) => d.functions).filter((f) => f.fn === fn).reduce((a, f) => a + f.calls, 0) ?? 0;
}

describe("device replies", () => {
  it("a function that throws: 500 ERR_FUNCTION_THREW with the gateway's message, never the function's", async () => {
    const res = await platform.app.request("/fn/gw/threw", { headers: { "x-request-id": "req-threw-1" } });
    expect(res.status).toBe(500);
    const error = await errorOf(res);
    expect(error).toEqual({ code: "ERR_FUNCTION_THREW", message: "the function threw an uncaught exception; see its logs for request req-threw-1", requestId: "req-threw-1" });
    expect(res.headers.get("server-timing")).toMatch(TOTAL);
  });

  it("a CPU limit is a time limit: 504 ERR_CPU_LIMIT, and the bytes the device attached to its error are not billed", async () => {
    const bytesOf = async () => {
      const report = (await (await platform.app.request("/v1/usage?app=gw", { headers: auth })).json()) as UsageReport;
      const rows = report.apps[0]?.days.flatMap((d) => d.functions).filter((f) => f.fn === "cpu") ?? [];
      return { calls: rows.reduce((a, f) => a + f.calls, 0), responseBytes: rows.reduce((a, f) => a + f.responseBytes, 0) };
    };
    const before = await bytesOf();
    const res = await platform.app.request("/fn/gw/cpu");
    expect(res.status).toBe(504);
    expect((await errorOf(res)).code).toBe("ERR_CPU_LIMIT");
    await settle();
    // the fake device sent "ok" with its error; the caller got the gateway's envelope instead
    expect(await bytesOf()).toEqual({ calls: before.calls + 1, responseBytes: before.responseBytes });
  });

  it.each([
    ["liar", "an error code a device may not send"],
    ["unknown", "an unknown error code"],
    ["badstatus", "a status that is not a number"],
    ["badtiming", "a timing that is not a decimal"],
    ["anonymous", "no device id"],
  ])("%s: a reply with %s is 502 ERR_BAD_DEVICE_REPLY", async (fn) => {
    const res = await platform.app.request(`/fn/gw/${fn}`);
    expect(res.status).toBe(502);
    const error = await errorOf(res);
    expect(error.code).toBe("ERR_BAD_DEVICE_REPLY");
    expect(error.message).not.toMatch(/evil|log in/);
    expect(res.headers.get("server-timing")).toMatch(TOTAL);
  });

  it("a reply in another device's name is 502 ERR_BAD_DEVICE_REPLY, and credits neither device", async () => {
    const creditsOf = async (id: string) => ((await (await platform.app.request(`/v1/devices/${id}/credits`, { headers: operator })).json()) as DeviceCredits).total;
    await settle();
    const [mine, theirs, calls] = [await creditsOf(DEVICE), await creditsOf(OTHER_DEVICE), await usageOf("impostor")];
    const res = await platform.app.request("/fn/gw/impostor");
    expect(res.status).toBe(502);
    expect((await errorOf(res)).code).toBe("ERR_BAD_DEVICE_REPLY");
    // the device the call went to did answer it: that is the one the gateway knows, whatever the reply says
    expect(device.invocations.some((m) => m.headers?.get(INVOKE_HEADERS.fn) === "impostor")).toBe(true);
    await settle();
    expect(await usageOf("impostor")).toBe(calls + 1);
    expect(await creditsOf(DEVICE)).toEqual(mine);
    expect(await creditsOf(OTHER_DEVICE)).toEqual(theirs);
    expect(theirs.calls).toBe(0);
  });

  it("passes a function's answer through, with the gateway's own Server-Timing and request id", async () => {
    const res = await platform.app.request("/fn/gw/ok");
    expect(res.status).toBe(200);
    const timing = res.headers.get("server-timing")!;
    expect(timing).toMatch(/^cpu;dur=0\.50, wall;dur=1\.00, start;desc=warm, usage;dur=[\d.]+, total;dur=[\d.]+$/);
    expect(timing).not.toMatch(/fake/);
  });

  it("bills what the caller got: bad replies are errors and credit no device", async () => {
    await settle();
    const res = await platform.app.request("/v1/usage?app=gw", { headers: auth });
    const fns = ((await res.json()) as UsageReport).apps[0]!.days.flatMap((d) => d.functions);
    for (const fn of ["liar", "unknown", "badstatus", "badtiming", "anonymous", "impostor"]) {
      expect(fns.find((f) => f.fn === fn)).toMatchObject({ calls: 1, errors: 1, cpuUs: 0, responseBytes: 0 });
    }
    const reconcile = (await (await platform.app.request("/v1/ledger/reconcile", { method: "POST", headers: operator })).json()) as ReconcileReport;
    expect(reconcile).toMatchObject({ pending: 0, missing: 0, differences: [] });
  });
});

/** The usage record of the last call to gw/<fn>, as stored in the stream (it is stored before the caller has the answer). */
async function lastRecord(fn: string): Promise<UsageRecord> {
  const jsm = await jetstreamManager(platform.nc);
  const names = usageNames(subjects);
  const stored = await jsm.streams.getMessage(names.stream, { last_by_subj: names.subject("gw", fn) });
  return stored!.json<UsageRecord>();
}

describe("a device cannot forge what is billed or what the caller gets", () => {
  it("a reply body over the function's responseBytes is refused: none of it reaches the caller, none of it is billed", async () => {
    const res = await platform.app.request("/fn/gw/big");
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(JSON.parse(text).error.code).toBe("ERR_BAD_DEVICE_REPLY");
    expect(text).not.toContain("xxxxxxxxxxxxxxxxx");
    expect(await lastRecord("big")).toMatchObject({ responseBytes: 0, deviceId: null, cpuUs: 0, outcome: "ERR_BAD_DEVICE_REPLY", status: 502 });
    // at the limit is within it
    const exact = await platform.app.request("/fn/gw/exact");
    expect(exact.status).toBe(200);
    expect(await exact.text()).toBe("y".repeat(16));
    expect(await lastRecord("exact")).toMatchObject({ responseBytes: 16, deviceId: "gw-dev", outcome: "ok" });
  });

  it.each([
    ["forged", "a header that is not a reply header or an HTTP header"],
    ["echoed", "an invocation header (Hearth-App) in its reply"],
    ["lowercase", "a reply header in another case"],
    ["twostatus", "two statuses"],
    ["badname", "an HTTP header name that is not a token"],
    ["nul", "a NUL in an HTTP header value"],
    ["toomany", "more HTTP headers than the sandbox lets a function send"],
    ["toolarge", "HTTP headers larger than the sandbox lets a function send"],
    ["rawnewline", "a bare line feed in a header value (a header smuggled in)"],
    ["rawspace", "a header name NATS does not allow"],
  ])("%s: a reply with %s is 502 ERR_BAD_DEVICE_REPLY, billed as nothing the device did", async (fn) => {
    const res = await platform.app.request(`/fn/gw/${fn}`);
    expect(res.status).toBe(502);
    expect((await errorOf(res)).code).toBe("ERR_BAD_DEVICE_REPLY");
    expect(res.headers.get("location")).toBeNull();
    expect(res.headers.get("server-timing")).toMatch(TOTAL);
    expect(await lastRecord(fn)).toMatchObject({ responseBytes: 0, deviceId: null, cpuUs: 0, outcome: "ERR_BAD_DEVICE_REPLY" });
  });

  it("a header value HTTP cannot carry is dropped from a valid answer; the rest goes through", async () => {
    const res = await platform.app.request("/fn/gw/oddvalues");
    expect(res.status).toBe(200);
    expect(res.headers.get("x-emoji")).toBeNull();
    expect(res.headers.get("x-control")).toBeNull();
    expect(res.headers.get("x-fine")).toBe("yes");
    expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
  });

  it("a function's error message of up to the sandbox's 4,000 characters is a valid error reply", async () => {
    const res = await platform.app.request("/fn/gw/longthrow");
    expect(res.status).toBe(500);
    expect((await errorOf(res)).code).toBe("ERR_FUNCTION_THREW");
  });

  it("a CPU claim over the wall time the gateway observed is capped by it", async () => {
    expect((await platform.app.request("/fn/gw/cpuwall")).status).toBe(200);
    const record = await lastRecord("cpuwall");
    expect(record.claimedCpuUs).toBe(5_000_000);
    expect(record.wallUs).toBeLessThan(5_000_000);
    expect(record.cpuUs).toBe(record.wallUs);
  });

  it("a CPU claim over the function's cpuMs limit is capped by it", async () => {
    expect((await platform.app.request("/fn/gw/cpulimit")).status).toBe(200);
    const record = await lastRecord("cpulimit");
    expect(record.claimedCpuUs).toBe(30_000);
    // the call lasted longer than the claim (its device answered after 40 ms; timers may fire a hair early), so the cap is the limit's
    expect(record.wallUs).toBeGreaterThan(record.claimedCpuUs);
    expect(record.cpuUs).toBe(5_000);
  });
});

describe("errors the gateway makes carry Server-Timing too", () => {
  it("ERR_FUNCTION_NOT_FOUND, ERR_BODY_TOO_LARGE, ERR_NO_DEVICE, ERR_DEVICE_TIMEOUT", async () => {
    const cases: [string, RequestInit, number, string][] = [
      ["/fn/gw/missing", {}, 404, "ERR_FUNCTION_NOT_FOUND"],
      ["/fn/gw/ok", { method: "POST", body: "x".repeat(17) }, 413, "ERR_BODY_TOO_LARGE"],
      ["/fn/gw/nobody", {}, 503, "ERR_NO_DEVICE"],
      ["/fn/gw/silent", {}, 504, "ERR_DEVICE_TIMEOUT"],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await platform.app.request(path, init);
      expect(res.status, path).toBe(status);
      expect((await errorOf(res)).code).toBe(code);
      expect(res.headers.get("server-timing"), path).toMatch(TOTAL);
    }
  }, 15_000);
});

describe("with its state store down", () => {
  it.skipIf(redisServerBinary() === undefined)("keeps serving functions as it last saw them", async () => {
    const redis = await startRedisServer();
    const prefix = "gwstale";
    const stale = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: prefix, ledger: "off", redisUrl: redis.url, tickMs: 200 });
    const d = await FakeDevice.start({ url: nats.url, prefix, devices: stale.devices, deviceId: "stale-dev", onInvoke: answering("stale-dev") });
    try {
      const { auth: own } = await createDeveloper(stale.app, TOKEN, "stale-dev");
      const deployed = await stale.app.request("/v1/apps/gw/functions/ok", { method: "PUT", headers: own, body: "export default { fetch() { return new Response('') } }" });
      expect(deployed.status).toBe(201);
      await placedOn(stale, d, "gw", "ok");
      expect((await stale.app.request("/fn/gw/ok/")).status).toBe(200);

      await redis.stop(); // Redis is gone, past the gateway's cache time
      await new Promise((r) => setTimeout(r, 600));
      const res = await stale.app.request("/fn/gw/ok/");
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("ok");
    } finally {
      await d.die();
      await stale.close();
      await redis.stop();
    }
  });
});
