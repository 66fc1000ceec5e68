/**
 * Each call's spans reach an OTLP/HTTP collector (a small one on 127.0.0.1
 * that keeps what it is sent): gateway, fabric and device, in the caller's
 * trace, the device's parent being the gateway's span that the device was
 * told of in its invocation headers.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { INVOKE_HEADERS } from "@hearth/protocol";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FabricAuthority, FakeDevice, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { createDeveloper } from "./helpers.ts";

const TOKEN = "otlp-token-0123456789";
const authority = FabricAuthority.generate();
let nats: NatsServer;
let platform: Platform;
let device: FakeDevice;
let collector: Server;
/** Every span the collector got: OTLP/JSON, ids in hex. */
const spans: { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes: { key: string; value: Record<string, unknown> }[] }[] = [];
/** The traceparent each invocation carried to the device. */
const sentToDevice: string[] = [];

beforeAll(async () => {
  collector = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      if (req.url === "/v1/traces" && req.headers["content-type"]?.includes("json")) {
        const doc = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: typeof spans }[] }[] };
        for (const r of doc.resourceSpans) for (const s of r.scopeSpans) spans.push(...s.spans);
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  const { port } = collector.address() as AddressInfo;
  nats = await startNatsServer({ auth: natsAuth(authority) });
  platform = await startPlatform({
    fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), ledger: "off", tickMs: 200, subjectPrefix: "otlp", redisPrefix: "otlp:",
    otlpTracesUrl: `http://127.0.0.1:${port}/v1/traces`, otlpExportEveryMs: 100,
  });
  const { auth } = await createDeveloper(platform.app, TOKEN, "otlp-dev");
  device = await FakeDevice.start({
    url: nats.url, prefix: "otlp", devices: platform.devices, deviceId: "otlp-dev",
    onInvoke: (msg) => {
      sentToDevice.push(msg.headers?.get(INVOKE_HEADERS.traceparent) ?? "");
      const h = headers();
      h.set(INVOKE_HEADERS.status, "200");
      h.set(INVOKE_HEADERS.device, "otlp-dev");
      h.set(INVOKE_HEADERS.wallMs, "1.5");
      h.set(INVOKE_HEADERS.cpuMs, "0.7");
      msg.respond("ok", { headers: h });
    },
  });
  const res = await platform.app.request("/v1/apps/otlp/functions/fn", { method: "PUT", headers: auth, body: "export default { fetch() { return new Response('') } }" });
  expect(res.status).toBe(201);
  await waitFor("otlp/fn placed", async () => (await platform.store.getPlacement("otlp", "fn")).devices["otlp-dev"] !== undefined, { timeoutMs: 10_000 });
}, 30_000);

afterAll(async () => {
  await device?.die();
  await platform?.close();
  await nats?.stop();
  await new Promise((resolve) => collector?.close(resolve));
});

describe("OTLP spans", () => {
  it("exports gateway, fabric and device spans of a call, in the caller's trace", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const res = await platform.app.request("/fn/otlp/fn", { headers: { traceparent: `00-${traceId}-${callerSpan}-01` } });
    expect(res.status).toBe(200);
    await waitFor("three spans of the trace at the collector", () => spans.filter((s) => s.traceId === traceId).length >= 3, { timeoutMs: 10_000 });
    const mine = spans.filter((s) => s.traceId === traceId);
    const gateway = mine.find((s) => s.name === "gateway otlp/fn")!;
    const fabric = mine.find((s) => s.name === "fabric")!;
    const onDevice = mine.find((s) => s.name === "device")!;
    expect(gateway.parentSpanId).toBe(callerSpan);
    expect(fabric.parentSpanId).toBe(gateway.spanId);
    expect(onDevice.parentSpanId).toBe(fabric.spanId);
    // the device was told the gateway's span as its parent
    expect(sentToDevice.at(-1)).toBe(`00-${traceId}-${gateway.spanId}-01`);
    expect(fabric.attributes.find((a) => a.key === "hearth.device")?.value).toEqual({ stringValue: "otlp-dev" });
  });

  it("starts a trace of its own for a call without one", async () => {
    const before = spans.length;
    expect((await platform.app.request("/fn/otlp/fn")).status).toBe(200);
    await waitFor("a gateway span", () => spans.slice(before).some((s) => s.name === "gateway otlp/fn" && !s.parentSpanId), { timeoutMs: 10_000 });
  });
});
