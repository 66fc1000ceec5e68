/**
 * Routing (issue 12): what choosing the device costs per call, what a caller
 * in each region waits with real latency between the regions, and what the
 * first call after a scale to zero costs.
 *
 * - Choice: chooseDevices over a placement of 16 devices, their round trips
 *   known (DeviceLatency), timed in this process over many calls. Baseline:
 *   a raw NATS request/reply of the warm call's bytes on one server.
 * - Per region: three regions (one nats-server each) joined by NATS
 *   gateways behind delay proxies (eu 5 ms, us 15 ms, ap 60 ms each way, as
 *   in test/e2e/three-regions.test.ts), a platform process in each (sharing
 *   one redis-server), two real agents in each; one function with a replica
 *   on every device. A caller in each region calls its own region's gateway,
 *   one call at a time. Baseline: the raw NATS echo inside that region. Then
 *   eu's devices are stopped and eu's caller is served from the nearest
 *   other region.
 * - Scale from zero: a function that scales to zero after 10 s, called once
 *   it has: the first call (the scheduler places it again, the device fetches
 *   and compiles it) against its warm calls.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, redisServerBinary, startDelayProxy, startNatsServer, startRedisServer, waitFor, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { chooseDevices, DeviceLatency, FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { Subjects } from "@hearth/protocol";
import { HearthClient } from "@hearth/sdk";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import type { BenchContext, Benchmark } from "./lib/bench.ts";
import type { Row, Section } from "./lib/report.ts";
import { percentile } from "./lib/stats.ts";
import { HELLO_JSON } from "./warm-call.ts";

const REGIONS = { eu: 5, us: 15, ap: 60 } as const;
type Region = keyof typeof REGIONS;
const HELLO = "export default { fetch: () => new Response('hello') }";

/** p50 and p99 of `count` round trips, one at a time. */
async function timed(count: number, once: () => Promise<void>): Promise<{ p50: number; p99: number }> {
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await once();
    ms.push(performance.now() - t);
  }
  return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
}

/** A raw NATS echo inside one server: the floor of a call's fabric hop there. */
async function echoIn(url: string, creds: Uint8Array, count: number): Promise<{ p50: number; p99: number }> {
  const a = await connect({ servers: url, authenticator: credsAuthenticator(creds) });
  const b = await connect({ servers: url, authenticator: credsAuthenticator(creds) });
  try {
    b.subscribe("bench.routing.echo", { callback: (_e, m) => void m.respond(m.data) });
    await b.flush();
    const body = new TextEncoder().encode(HELLO_JSON);
    return await timed(count, async () => {
      await a.request("bench.routing.echo", body, { timeout: 5_000 });
    });
  } finally {
    await a.close();
    await b.close();
  }
}

function choiceCost(): { us: number } {
  const devices: Record<string, { version: string; placedAt: number; limits: string }> = {};
  const ids = Array.from({ length: 16 }, (_, i) => `dev-${i}`);
  for (const id of ids) devices[id] = { version: "v", placedAt: 0, limits: "{}" };
  const entry = { record: { version: "v" }, placement: { devices } } as unknown as Parameters<typeof chooseDevices>[0];
  const latency = new DeviceLatency({ nc: undefined as unknown as NatsConnection, subjects: new Subjects("bench"), devices: () => [] });
  for (const [i, id] of ids.entries()) latency.record(id, 2 + i * 3);
  const inflight = new Map<string, number>();
  const live = () => undefined;
  for (let i = 0; i < 20_000; i++) chooseDevices(entry, live, inflight, "eu", latency);
  const n = 200_000;
  const t = performance.now();
  for (let i = 0; i < n; i++) chooseDevices(entry, live, inflight, "eu", latency);
  return { us: ((performance.now() - t) * 1000) / n };
}

export const routing: Benchmark = {
  name: "routing",
  async run(ctx: BenchContext): Promise<Section[]> {
    const count = ctx.quick ? 100 : 400;
    const authority = FabricAuthority.generate();
    const rows: Row[] = [];
    const notes: string[] = [];
    const choice = choiceCost();

    if (!redisServerBinary()) {
      ctx.log("routing: no redis-server: only the device choice is measured");
      return [{ title: "Routing (issue 12)", rows: [{ bench: "routing", metric: "device choice per call (16 placed devices)", value: choice.us, unit: "µs", baseline: null, better: "lower" }], notes }];
    }
    ctx.log("routing: three regions behind delay proxies, a platform and two agents in each");
    const dir = mkdtempSync(join(tmpdir(), "hearth-bench-routing-"));
    ctx.cleanup.add("routing temp dir", dir, (d) => rmSync(d, { recursive: true, force: true }));
    const redis = ctx.cleanup.add("redis-server (routing)", await startRedisServer(), (r) => r.stop());
    const gw = new Map<Region, { port: number; proxy: number }>();
    for (const region of Object.keys(REGIONS) as Region[]) {
      const port = await freePort();
      const proxy = ctx.cleanup.add(`delay proxy ${region}`, await startDelayProxy({ targetPort: port, delayMs: REGIONS[region] }), (p) => p.stop());
      gw.set(region, { port, proxy: proxy.port });
    }
    const nats = new Map<Region, NatsServer>();
    for (const region of Object.keys(REGIONS) as Region[]) {
      const others = (Object.keys(REGIONS) as Region[]).filter((r) => r !== region);
      const { port, proxy } = gw.get(region)!;
      nats.set(
        region,
        ctx.cleanup.add(
          `nats-server ${region}`,
          await startNatsServer({
            auth: natsAuth(authority),
            config: `gateway { name: ${region}, listen: "127.0.0.1:${port}", advertise: "127.0.0.1:${proxy}", gateways: [${others.map((o) => `{ name: ${o}, url: "nats://127.0.0.1:${gw.get(o)!.proxy}" }`).join(", ")}] }`,
          }),
          (n) => n.stop(),
        ),
      );
    }
    const platforms = new Map<Region, Platform>();
    for (const region of Object.keys(REGIONS) as Region[]) {
      platforms.set(
        region,
        ctx.cleanup.add(
          `platform ${region}`,
          await startPlatform({
            fabricKeys: authority.keys, natsUrl: nats.get(region)!.url, token: "routing-bench-token-0123456789", log: silentLogger(), subjectPrefix: "routing",
            region, tickMs: 200, redisUrl: redis.url, redisPrefix: "routing:", ledger: "off",
          }),
          (p) => p.close(),
        ),
      );
    }
    const eu = platforms.get("eu")!;
    const token = (await new HearthClient({ url: eu.url, token: "routing-bench-token-0123456789" }).createDeveloper("routing")).token.value;
    const agents = new Map<string, Agent>();
    for (const region of Object.keys(REGIONS) as Region[]) {
      for (const n of [1, 2]) {
        const id = `${region}-${n}`;
        const joined = await joinTestDevice(eu.devices, id, { region, cores: 2 });
        const creds = join(dir, `${id}.creds`);
        writeFileSync(creds, joined.creds, { mode: 0o600 });
        const config = parseAgentConfig({ natsUrl: nats.get(region)!.url, deviceId: id, subjectPrefix: "routing", cores: 2, memoryMb: 128, drainGraceMs: 500, credsFile: creds, dataDir: join(dir, id) });
        agents.set(id, ctx.cleanup.add(`agent ${id}`, await Agent.start(config, agentLogger()), (a) => a.close().catch(() => undefined)));
      }
    }
    const clientIn = (region: Region) => new HearthClient({ url: platforms.get(region)!.url, token });
    await clientIn("eu").deploy({ app: "routing", name: "hello", code: HELLO, replicas: 6 });
    await waitFor("placed on all six devices", async () => (await clientIn("eu").get("routing", "hello")).devices.length === 6, { timeoutMs: 60_000 });
    await waitFor("every device measured from every region", () => [...platforms.values()].every((p) => [...agents.keys()].every((id) => p.latency.rttOf(id) !== undefined)), { timeoutMs: 30_000 });
    const platformCreds = await authority.platformCreds("routing-bench");

    const call = (region: Region, served: Map<string, number>) => async () => {
      const res = await clientIn(region).invoke("routing", "hello");
      if (res.status !== 200) throw new Error(`routing: call through ${region} answered ${res.status}`);
      await res.arrayBuffer();
      const where = res.headers.get("x-hearth-region") ?? "?";
      served.set(where, (served.get(where) ?? 0) + 1);
    };
    for (const region of Object.keys(REGIONS) as Region[]) {
      const served = new Map<string, number>();
      await timed(20, call(region, served));
      served.clear();
      const hearth = await timed(count, call(region, served));
      const echo = await echoIn(nats.get(region)!.url, platformCreds, count);
      const local = served.get(region) ?? 0;
      rows.push({ bench: "routing", metric: `caller in ${region}: p50`, value: hearth.p50, unit: "ms", baseline: { name: `NATS echo in ${region}`, value: echo.p50 }, better: "lower" });
      rows.push({ bench: "routing", metric: `caller in ${region}: p99`, value: hearth.p99, unit: "ms", baseline: { name: `NATS echo in ${region}`, value: echo.p99 }, better: "lower" });
      notes.push(`caller in ${region}: ${local} of ${count} calls served in ${region}`);
    }
    // eu without devices: served by the nearest other region
    for (const id of ["eu-1", "eu-2"]) await agents.get(id)!.close();
    await waitFor("eu's devices gone", () => eu.scheduler.liveDevice("eu-1") === undefined && eu.scheduler.liveDevice("eu-2") === undefined, { timeoutMs: 15_000 });
    const away = new Map<string, number>();
    await timed(20, call("eu", away));
    away.clear();
    const crossed = await timed(count, call("eu", away));
    const euEcho = await echoIn(nats.get("eu")!.url, platformCreds, count);
    rows.push({ bench: "routing", metric: "caller in eu, no device in eu: p50", value: crossed.p50, unit: "ms", baseline: { name: "NATS echo in eu", value: euEcho.p50 }, better: "lower" });
    notes.push(`caller in eu with eu's devices stopped: served by ${[...away].map(([r, n]) => `${r} ${n}`).join(", ")} (eu-us is 20 ms of round trip, eu-ap 65 ms)`);

    // the first call after a scale to zero
    await clientIn("us").deploy({ app: "routing", name: "idle", code: HELLO, replicas: 1, scaleToZeroAfterSeconds: 10 });
    await waitFor("idle placed", async () => (await clientIn("us").get("routing", "idle")).devices.length === 1, { timeoutMs: 30_000 });
    const warm = await timed(50, async () => void (await (await clientIn("us").invoke("routing", "idle")).arrayBuffer()));
    await waitFor("scaled to zero", async () => (await clientIn("us").get("routing", "idle")).status === "idle", { timeoutMs: 40_000, intervalMs: 500 });
    const first = await timed(1, async () => {
      const res = await clientIn("us").invoke("routing", "idle");
      if (res.status !== 200) throw new Error(`routing: the call after a scale to zero answered ${res.status}`);
      await res.arrayBuffer();
    });
    rows.push({ bench: "routing", metric: "first call after a scale to zero", value: first.p50, unit: "ms", baseline: { name: "its warm calls, p50", value: warm.p50 }, better: "lower" });
    rows.push({ bench: "routing", metric: "device choice per call (16 placed devices)", value: choice.us * 1000, unit: "ns", baseline: { name: "NATS echo in eu, p50", value: euEcho.p50 * 1e6 }, better: "lower" });
    notes.unshift(
      "Three regions, one nats-server each, joined by NATS gateways whose listeners sit behind delay proxies (eu 5 ms, us 15 ms, ap 60 ms each way); a platform process in each region (one redis-server), two real agents in each, one function placed on all six. One call at a time through the caller's own region's gateway; baselines are raw NATS request/replies inside that region's server.",
    );
    return [{ title: "Routing across regions (issue 12)", rows, notes }];
  },
};
