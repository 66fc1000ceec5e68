/**
 * Metering through the gateway and the usage, credits and join endpoints,
 * in-process (`app.request()`), against a real nats-server with JetStream.
 * The "devices" are joined fake devices, each taking only the function it is
 * meant to serve, so the test controls exactly what each one claims.
 */
import { startNatsServer, type NatsServer } from "@hearth/devkit";
import { INVOKE_HEADERS, type DeviceCredits, type UsageReport } from "@hearth/protocol";
import { createUser } from "@nats-io/jwt";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FabricAuthority, FakeDevice, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { createDeveloper } from "./helpers.ts";

const TOKEN = "usage-token-0123456789";
/** The operator's: join tokens, reconciliation, any device's credits. */
const operator = { authorization: `Bearer ${TOKEN}` };
/** The developer's who deploys the functions and reads their usage. */
let auth: { authorization: string };
const PREFIX = "usageapi";

let nats: NatsServer;
let platform: Platform;
const devices: FakeDevice[] = [];

beforeAll(async () => {
  const authority = FabricAuthority.generate();
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, ledger: "required", tickMs: 200 });
  ({ auth } = await createDeveloper(platform.app, TOKEN, "meterer"));
  const only = (fn: string) => (a: string, f: string) => a === "meter" && f === fn;
  // A device that claims far more CPU than the call can have taken.
  devices.push(
    await FakeDevice.start({
      url: nats.url,
      prefix: PREFIX,
      devices: platform.devices,
      deviceId: "greedy-dev",
      accept: only("greedy"),
      onInvoke: (msg) => {
        const h = headers();
        h.set(INVOKE_HEADERS.status, "200");
        h.set(INVOKE_HEADERS.cpuMs, "999999.5");
        h.set(INVOKE_HEADERS.wallMs, "1.0");
        h.set(INVOKE_HEADERS.cold, "1");
        h.set(INVOKE_HEADERS.device, "greedy-dev");
        msg.respond(new TextEncoder().encode("x".repeat(42)), { headers: h });
      },
    }),
  );
  // An honest one that fails the call.
  devices.push(
    await FakeDevice.start({
      url: nats.url,
      prefix: PREFIX,
      devices: platform.devices,
      deviceId: "honest-dev",
      accept: only("thrower"),
      onInvoke: (msg) => {
        const h = headers();
        h.set(INVOKE_HEADERS.errorCode, "ERR_FUNCTION_THREW");
        h.set(INVOKE_HEADERS.errorMessage, "boom");
        h.set(INVOKE_HEADERS.cpuMs, "0.25");
        h.set(INVOKE_HEADERS.device, "honest-dev");
        msg.respond(new Uint8Array(0), { headers: h });
      },
    }),
  );
  // "nobody" is taken by no device
  for (const fn of ["greedy", "thrower", "nobody"]) {
    const res = await platform.app.request(`/v1/apps/meter/functions/${fn}`, { method: "PUT", headers: auth, body: "export default { fetch() { return new Response('') } }" });
    expect(res.status).toBe(201);
  }
  for (const [fn, device] of [["greedy", devices[0]!], ["thrower", devices[1]!]] as const) {
    await until(`meter/${fn} placed on ${device.id}`, async () =>
      Object.keys((await platform.store.getPlacement("meter", fn)).devices).join() === device.id && device.functions.has(`meter/${fn}`),
    );
  }
});

afterAll(async () => {
  await Promise.all(devices.map((d) => d.die()));
  await platform?.close();
  await nats?.stop();
});

async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function usage(query = "app=meter"): Promise<UsageReport> {
  const res = await platform.app.request(`/v1/usage?${query}`, { headers: auth });
  expect(res.status).toBe(200);
  return (await res.json()) as UsageReport;
}

async function settle(): Promise<void> {
  await platform.ledger.publisher!.flush();
  for (let i = 0; i < 400 && !(await platform.ledger.consumer!.caughtUp()); i++) await new Promise((r) => setTimeout(r, 25));
}

describe("metering at the gateway", () => {
  it("bills the gateway's record: bytes as seen, the device's CPU claim capped by the observed wall time", async () => {
    const body = "y".repeat(100);
    for (let i = 0; i < 3; i++) {
      const res = await platform.app.request("/fn/meter/greedy/x", { method: "POST", body });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("x".repeat(42));
    }
    const thrown = await platform.app.request("/fn/meter/thrower");
    expect(thrown.status).toBe(500);
    const none = await platform.app.request("/fn/meter/nobody");
    expect(none.status).toBe(503);
    await settle();

    const report = await usage();
    const app = report.apps[0]!;
    expect(app.totals).toMatchObject({ calls: 5, errors: 2, coldStarts: 3, requestBytes: 300, responseBytes: 126 });
    const day = app.days[0]!;
    const greedy = day.functions.find((f) => f.fn === "greedy")!;
    expect(greedy.calls).toBe(3);
    // the claim was ~1000 s per call; what is billed never exceeds what the gateway saw
    expect(greedy.cpuUs).toBeLessThanOrEqual(greedy.wallUs);
    expect(greedy.cpuUs).toBeGreaterThan(0);
    expect(day.functions.find((f) => f.fn === "thrower")).toMatchObject({ calls: 1, errors: 1, cpuUs: 250 });
    expect(day.functions.find((f) => f.fn === "nobody")).toMatchObject({ calls: 1, errors: 1, cpuUs: 0 });

    const credits = await platform.app.request("/v1/devices/greedy-dev/credits", { headers: operator });
    const c = (await credits.json()) as DeviceCredits;
    expect(c.total.calls).toBe(3);
    expect(c.total.cpuUs).toBe(greedy.cpuUs);

    const reconcile = await platform.app.request("/v1/ledger/reconcile", { method: "POST", headers: operator });
    expect(await reconcile.json()).toMatchObject({ records: 5, pending: 0, missing: 0, differences: [] });
    const repair = await platform.app.request("/v1/ledger/reconcile?repair=1", { method: "POST", headers: operator });
    expect(repair.status).toBe(200);
    expect(await repair.json()).toMatchObject({ reapplied: 0, rewritten: [], before: { records: 5, differences: [] }, after: { records: 5, missing: 0, differences: [] } });
    expect((await platform.app.request("/v1/ledger/reconcile?repair=maybe", { method: "POST", headers: operator })).status).toBe(400);
    expect((await platform.app.request("/v1/ledger/reconcile?repair=1", { method: "POST" })).status).toBe(401);
  });

  it("validates the usage query and needs the API token", async () => {
    expect((await platform.app.request("/v1/usage?day=yesterday", { headers: auth })).status).toBe(400);
    expect((await platform.app.request("/v1/usage?app=Bad_App", { headers: auth })).status).toBe(400);
    expect((await platform.app.request("/v1/usage")).status).toBe(401);
    const other = await usage("app=meter&day=1999-01-01");
    expect(other.apps[0]!.days).toEqual([]);
  });
});

describe("joining devices", () => {
  it("issues a single-use join token; the device token reads only its own credits", async () => {
    const made = await platform.app.request("/v1/join-tokens", { method: "POST", headers: { ...operator, "content-type": "application/json" }, body: JSON.stringify({ ownerId: "ada" }) });
    expect(made.status).toBe(201);
    const { token } = (await made.json()) as { token: string };
    const join = (deviceId: string) =>
      platform.app.request("/v1/devices/join", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token, deviceId, publicKey: createUser().getPublicKey(), cores: 4, memoryMb: 8192 }) });
    const joined = await join("ada-laptop");
    expect(joined.status).toBe(201);
    const identity = (await joined.json()) as { deviceToken: string; ownerId: string; natsUrl: string; subjectPrefix: string };
    expect(identity).toMatchObject({ ownerId: "ada", natsUrl: nats.url, subjectPrefix: PREFIX });

    const again = await join("ada-laptop-2");
    expect(again.status).toBe(401);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe("ERR_JOIN_TOKEN_INVALID");

    const mine = await platform.app.request("/v1/devices/ada-laptop/credits", { headers: { authorization: `Bearer ${identity.deviceToken}` } });
    expect(mine.status).toBe(200);
    expect(await mine.json()).toMatchObject({ deviceId: "ada-laptop", total: { calls: 0, credits: 0 } });
    const theirs = await platform.app.request("/v1/devices/greedy-dev/credits", { headers: { authorization: `Bearer ${identity.deviceToken}` } });
    expect(theirs.status).toBe(403);
    expect((await platform.app.request("/v1/devices/ada-laptop/credits")).status).toBe(401);
  });

  it("refuses a bad join body with a message naming the field", async () => {
    const res = await platform.app.request("/v1/devices/join", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: "short", deviceId: "ok" }) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/token/);
  });
});
