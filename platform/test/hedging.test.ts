/**
 * Hedged calls, against a real nats-server and ledger: two fake devices
 * serve one function; once the gateway has learnt the function's usual time,
 * one device turns slow. An idempotent call sent to it is sent to the other
 * device too after about the usual time, the first answer wins, and the
 * call is billed once; a non-idempotent call is never sent twice.
 */
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { INVOKE_HEADERS, type UsageReport } from "@hearth/protocol";
import { headers, type Msg } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FabricAuthority, FakeDevice, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { createDeveloper } from "./helpers.ts";

const TOKEN = "hedging-token-0123456789";
const PREFIX = "hedge";
const authority = FabricAuthority.generate();
let nats: NatsServer;
let platform: Platform;
let auth: { authorization: string };
const devices: FakeDevice[] = [];
/** Devices answering late, and how late. */
const slow = new Map<string, number>();
/** Late answers sent so far. */
let lateSent = 0;
let lateHeld = 0;
/** Calls each device received, by method. */
const received = new Map<string, string[]>();

const reply = (deviceId: string, msg: Msg) => {
  const h = headers();
  h.set(INVOKE_HEADERS.status, "200");
  h.set(INVOKE_HEADERS.device, deviceId);
  msg.respond(deviceId, { headers: h });
};

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({
    fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), ledger: "required", tickMs: 200, subjectPrefix: PREFIX, redisPrefix: "hedge:",
    region: "eu", latencyEveryMs: 1_000,
    callLimits: { perIpPerSecond: 0, perAppPerSecond: 0, perFunctionInFlight: 0, perIpInFlight: 0 },
  });
  ({ auth } = await createDeveloper(platform.app, TOKEN, "hedge-dev"));
  for (const [deviceId, region] of [["hedge-a", "eu"], ["hedge-b", "eu"]] as const) {
    received.set(deviceId, []);
    devices.push(
      await FakeDevice.start({
        url: nats.url, prefix: PREFIX, devices: platform.devices, deviceId, region,
        // hedge-b answers control messages (the gateway's pings) 250 ms late: it measures farther, so every call tries hedge-a
        // first (by more than a stall of a loaded machine adds to one ping)
        ...(deviceId === "hedge-b" ? { controlDelayMs: 250 } : {}),
        onInvoke: (msg) => {
          received.get(deviceId)!.push(msg.headers?.get(INVOKE_HEADERS.method) ?? "");
          const late = slow.get(deviceId);
          if (late === undefined) return reply(deviceId, msg);
          lateHeld++;
          setTimeout(() => {
            reply(deviceId, msg);
            // counted once nats-server has it, so settled() can wait for the gateway to have it too
            void devices.find((d) => d.id === deviceId)!.nc.flush().then(() => lateSent++);
          }, late);
          return "silent";
        },
      }),
    );
  }
  const res = await platform.app.request("/v1/apps/hedge/functions/fn?replicas=2&wallMs=3000", { method: "PUT", headers: auth, body: "export default { fetch() { return new Response('') } }" });
  expect(res.status).toBe(201);
  await waitFor("hedge/fn on both devices", async () => Object.keys((await platform.store.getPlacement("hedge", "fn")).devices).length === 2, { timeoutMs: 10_000 });
  await waitFor("hedge-b measured farther", () => (platform.latency.rttOf("hedge-b") ?? 0) > (platform.latency.rttOf("hedge-a") ?? Infinity) + 150, { timeoutMs: 35_000 });
}, 60_000);

afterAll(async () => {
  await Promise.all(devices.map((d) => d.die()));
  await platform?.close();
  await nats?.stop();
});

const call = (method = "GET") => platform.app.request("/fn/hedge/fn", { method, ...(method === "GET" ? {} : { body: "x" }) });

/**
 * Waits for the slow device's late answers to reach the gateway: the gateway
 * prefers the device with fewer calls in flight, and a late answer still on
 * its way counts as one.
 */
const settled = async () => {
  await waitFor("the slow device's late answers sent", () => lateSent === lateHeld, { timeoutMs: 10_000, intervalMs: 10 });
  // nats-server writes to the platform's connection in order: what it had before this PONG has arrived
  await platform.nc.flush();
  await new Promise((resolve) => setImmediate(resolve));
};

async function billed(): Promise<number> {
  const res = await platform.app.request("/v1/usage?app=hedge", { headers: auth });
  const report = (await res.json()) as UsageReport;
  return report.apps[0]?.totals.calls ?? 0;
}

describe("hedged calls", () => {
  it("sends an idempotent call stuck on a slow device to another, answers with the first, and bills it once", async () => {
    // the gateway learns the function's usual time (a few ms) and earns a hedge budget
    let made = 0;
    for (let i = 0; i < 200; i++, made++) expect((await call()).status).toBe(200);
    expect(received.get("hedge-a")!.length).toBeGreaterThanOrEqual(200);

    // the hedge goes after the function's learnt p95, at most half its wall limit (1.5 s; a loaded machine can push the
    // p95 to hundreds of ms): 2.5 s late leaves the other device a second or more to win, and is still within the 3 s
    // wall limit, so the slow device is not charged a timeout (which would rank it last and end the test's loop)
    slow.set("hedge-a", 2_500);
    const before = received.get("hedge-a")!.length;
    const served: string[] = [];
    // until a few calls went to the slow device first (bounded)
    for (let i = 0; i < 40 && received.get("hedge-a")!.length - before < 3; i++, made++) {
      // the gateway prefers the device with fewer calls in flight: let the slow one's late answers come first
      await settled();
      const res = await call();
      expect(res.status).toBe(200);
      served.push(res.headers.get("x-hearth-device")!);
    }
    expect(received.get("hedge-a")!.length - before).toBeGreaterThanOrEqual(3);
    // every call was answered by the fast device: those sent to the slow one first were hedged
    expect(new Set(served)).toEqual(new Set(["hedge-b"]));
    // and the slow device was told to drop each such call if it was still waiting for a core
    const slowDevice = devices.find((d) => d.id === "hedge-a")!;
    await waitFor("cancel messages at the slow device", () => slowDevice.received.filter((m) => m.type === "cancel").length >= 3, { timeoutMs: 5_000 });

    // each call billed once, the slow device's late answers included
    await waitFor("every call billed", async () => (await billed()) >= made, { timeoutMs: 10_000 });
    await settled();
    await platform.nc.flush();
    expect(await billed()).toBe(made);
  }, 60_000);

  it("never sends a non-idempotent call twice", async () => {
    slow.set("hedge-a", 600);
    const posted = () => received.get("hedge-a")!.filter((m) => m === "POST").length + received.get("hedge-b")!.filter((m) => m === "POST").length;
    const start = posted();
    let sentToSlow = false;
    let made = 0;
    for (let i = 0; i < 20 && !sentToSlow; i++, made++) {
      await settled();
      const onSlow = received.get("hedge-a")!.filter((m) => m === "POST").length;
      const res = await call("POST");
      expect(res.status).toBe(200);
      sentToSlow = received.get("hedge-a")!.filter((m) => m === "POST").length > onSlow;
      if (sentToSlow) expect(res.headers.get("x-hearth-device")).toBe("hedge-a");
    }
    expect(sentToSlow).toBe(true);
    // one device heard each POST, once
    expect(posted() - start).toBe(made);
    slow.delete("hedge-a");
  }, 60_000);
});
