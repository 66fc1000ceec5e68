/**
 * Warm call at a device's own door (issue 14), beside the gateway path and
 * the same-run baselines: two devices with doors open, both members of the
 * app's network; examples/hello placed on one of them. "Local" calls the
 * door of the device it is placed on (no gateway, no fabric hop); "relayed"
 * calls the other device's door, which relays over the fabric to the first;
 * "gateway" is the usual path to the same device.
 */
import { join } from "node:path";
import { freePort, waitFor } from "@hearth/devkit";
import type { BenchContext, Benchmark } from "./lib/bench.ts";
import { startBenchHearth } from "./lib/bench.ts";
import { httpLoad, type LoadResult } from "./lib/load.ts";
import type { Row, Section } from "./lib/report.ts";
import { fmt } from "./lib/stats.ts";
import { baselines, CONCURRENCY, HELLO_JSON, measure, PATH, type Measured } from "./warm-call.ts";

const DEVICES = ["bench-door-a", "bench-door-b"] as const;

export const doorCall: Benchmark = {
  name: "door",
  async run(ctx: BenchContext): Promise<Section[]> {
    const seconds = ctx.quick ? 3 : 10;
    const warmupSeconds = ctx.quick ? 1 : 2;
    const singleSeconds = ctx.quick ? 2 : 5;
    const ports = new Map<string, number>();
    for (const id of DEVICES) ports.set(id, await freePort());
    ctx.log("door: local Hearth with two devices, doors open");
    const h = await startBenchHearth(ctx, DEVICES.map((deviceId) => ({ deviceId, cores: 1, listen: `127.0.0.1:${ports.get(deviceId)}` })));
    // both devices members of the app's network (a function placed on each), hello on one of them only
    await h.client.deploy({ app: "bench", name: "anchor", code: "export default { fetch: () => new Response('') }", replicas: 2 });
    await waitFor("bench/anchor on both devices", async () => (await h.client.get("bench", "anchor")).devices.length === 2, { timeoutMs: 30_000 });
    await h.client.deployFile(join(ctx.root, "examples/hello/src/index.ts"), { app: "bench", name: "hello", replicas: 1 });
    const fn = await h.client.waitUntilReady("bench", "hello", { timeoutMs: 30_000, intervalMs: 50 });
    const placed = fn.devices[0]!;
    const other = DEVICES.find((id) => id !== placed)!;
    const doorUrl = (id: string, name = "hello") => `http://127.0.0.1:${ports.get(id)}/fn/bench/${name}${PATH}`;
    // a function on both devices that calls hello with env.call: at hello's device the callee runs there, at the other it is relayed
    await h.client.deploy({
      app: "bench", name: "front", replicas: 2,
      code: `export default { async fetch(request, env) { const r = await env.call("hello", "${PATH}"); return new Response(await r.text(), { status: r.status, headers: { "content-type": "application/json" } }); } }`,
    });
    await waitFor("bench/front on both devices", async () => (await h.client.get("bench", "front")).devices.length === 2 && (await h.client.get("bench", "front")).status === "ready", { timeoutMs: 30_000 });
    const urls = { gateway: `${fn.url}${PATH}`, local: doorUrl(placed), relayed: doorUrl(other), callLocal: doorUrl(placed, "front"), callRelayed: doorUrl(other, "front") };
    // the other door relays once its credential carries the network: wait until both doors answer as they should
    await waitFor("both doors answering hello", async () => {
      const [local, relayed] = await Promise.all([fetch(urls.local), fetch(urls.relayed)]);
      const ok = (await local.text()) === HELLO_JSON && (await relayed.text()) === HELLO_JSON;
      return ok && local.headers.get("x-hearth-relayed") === null && relayed.headers.get("x-hearth-relayed") === "1" && relayed.headers.get("x-hearth-device") === placed;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    await waitFor("front answering hello through env.call at both doors", async () => {
      const [a, b] = await Promise.all([fetch(urls.callLocal), fetch(urls.callRelayed)]);
      return (await a.text()) === HELLO_JSON && (await b.text()) === HELLO_JSON && a.headers.get("x-hearth-device") === placed && b.headers.get("x-hearth-device") === other;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    const results = {} as Record<keyof typeof urls, Measured>;
    const single = {} as Record<keyof typeof urls, LoadResult>;
    for (const [path, url] of Object.entries(urls) as [keyof typeof urls, string][]) {
      ctx.log(`door: ${path}`);
      await httpLoad(url, { connections: CONCURRENCY, seconds: warmupSeconds });
      results[path] = await measure(h.pidsByRole(), () => httpLoad(url, { connections: CONCURRENCY, seconds }));
      // one call at a time: the hops themselves, without the queue for the device's one donated core
      single[path] = await httpLoad(url, { connections: 1, seconds: singleSeconds });
      const failures = results[path].failures + single[path].failures;
      if (failures > 0) ctx.log(`door: warning: ${failures} failed calls on the ${path} path`);
    }
    await h.hearth.stop();
    const { bare, echo } = await baselines(ctx, seconds, warmupSeconds);

    const { gateway, local, relayed, callLocal, callRelayed } = results;
    const base = {
      gateway: (value: number) => ({ name: "gateway, same run", value }),
      nats: (value: number) => ({ name: "NATS echo", value }),
      hono: (value: number) => ({ name: "bare Hono", value }),
    };
    const rows: Row[] = [];
    for (const [label, r, key] of [["at the door, local", local, "local"], ["at the door, relayed", relayed, "relayed"]] as const) {
      rows.push(
        { bench: "door", metric: `requests/s, ${label}`, value: r.rps, unit: "req/s", baseline: base.gateway(gateway.rps), better: "higher" },
        { bench: "door", metric: `requests/s, ${label}`, value: r.rps, unit: "req/s", baseline: base.nats(echo.rps), better: "higher" },
        { bench: "door", metric: `p50 latency, ${label}`, value: r.p50, unit: "ms", baseline: base.gateway(gateway.p50), better: "lower" },
        { bench: "door", metric: `p50 latency, ${label}`, value: r.p50, unit: "ms", baseline: base.nats(echo.p50), better: "lower" },
        { bench: "door", metric: `p99 latency, ${label}`, value: r.p99, unit: "ms", baseline: base.gateway(gateway.p99), better: "lower" },
        { bench: "door", metric: `p50 latency, one call at a time, ${label}`, value: single[key].p50, unit: "ms", baseline: base.gateway(single.gateway.p50), better: "lower" },
        { bench: "door", metric: `p99 latency, one call at a time, ${label}`, value: single[key].p99, unit: "ms", baseline: base.gateway(single.gateway.p99), better: "lower" },
        { bench: "door", metric: `CPU per call, whole path, ${label}`, value: r.cpuMsPerCall * 1000, unit: "µs", baseline: base.gateway(gateway.cpuMsPerCall * 1000), better: "lower" },
        { bench: "door", metric: `CPU per call, whole path, ${label}`, value: r.cpuMsPerCall * 1000, unit: "µs", baseline: base.hono(bare.cpuMsPerCall * 1000), better: "lower" },
      );
    }
    const direct = (value: number) => ({ name: "hello at its own door, same run", value });
    for (const [label, r, key] of [["env.call, callee on the same device", callLocal, "callLocal"], ["env.call, callee relayed to a peer", callRelayed, "callRelayed"]] as const) {
      rows.push(
        { bench: "door", metric: `p50 latency, one call at a time, ${label}`, value: single[key].p50, unit: "ms", baseline: direct(single.local.p50), better: "lower" },
        { bench: "door", metric: `p99 latency, one call at a time, ${label}`, value: single[key].p99, unit: "ms", baseline: direct(single.local.p99), better: "lower" },
        { bench: "door", metric: `CPU per call, whole path, ${label}`, value: r.cpuMsPerCall * 1000, unit: "µs", baseline: direct(local.cpuMsPerCall * 1000), better: "lower" },
      );
    }
    rows.push(
      { bench: "door", metric: "requests/s, through the gateway", value: gateway.rps, unit: "req/s", baseline: base.nats(echo.rps), better: "higher" },
      { bench: "door", metric: "p50 latency, through the gateway", value: gateway.p50, unit: "ms", baseline: base.nats(echo.p50), better: "lower" },
      { bench: "door", metric: "p50 latency, through the gateway", value: gateway.p50, unit: "ms", baseline: base.hono(bare.p50), better: "lower" },
      { bench: "door", metric: "p50 latency, one call at a time, through the gateway", value: single.gateway.p50, unit: "ms", baseline: base.nats(echo.p50), better: "lower" },
    );
    const cpu = (r: Measured) => Object.entries(r.cpuByRole ?? {}).map(([role, ms]) => `${role} ${fmt(ms * 1000)}`).join(", ");
    return [
      {
        title: "Warm call at a device's own door (local and relayed) beside the gateway",
        rows,
        notes: [
          `GET /fn/bench/hello${PATH} (examples/hello on one device, one sandbox process; a second device of the same network, its door open too), ${CONCURRENCY} connections for ${seconds} s after ${warmupSeconds} s of warm-up on each path, then ${singleSeconds} s of one call at a time, one path after the other; platform state ${ctx.state === "redis" ? "in redis-server" : "embedded"}, usage metering on; ${fmt(local.calls)} local, ${fmt(relayed.calls)} relayed and ${fmt(gateway.calls)} gateway calls.`,
          "Local: the door of the device the function is placed on runs it in-process (door → sandbox, no gateway, no fabric hop). Relayed: the other device's door sends it over the fabric to that device (door → nats-server → agent → sandbox). Gateway: HTTP → platform → nats-server → agent → sandbox, as in the warm-call section.",
          "Door calls are metered too: each door reports its calls to the platform in batches, off the call's path (docs/ledger.md); a gateway call's record is durable before its answer.",
          `CPU per call (µs) by process — local: ${cpu(local)}; relayed: ${cpu(relayed)}; gateway: ${cpu(gateway)}. Both agents count as "agent" (on the relayed path one takes the call at its door, the other runs it).`,
          "The device donates one core, so at 8 connections every path queues for it and the device, not the path, sets requests/s; one call at a time shows what the hops cost. The NATS echo baseline runs 8 in flight.",
          "Baselines as in the warm-call section (bare Hono, NATS echo of the same bytes), measured in this run after the three paths.",
          `env.call: bench/front (on both devices) answers with what env.call("hello") gave it, called at a door: at hello's device the callee runs there under the caller's core (two isolate runs, no fabric hop); at the other device it is relayed to hello's (door → front → nats-server → agent → hello). Against hello at its own door, the difference is what one function-to-function call costs. CPU by process — same device: ${cpu(callLocal)}; relayed: ${cpu(callRelayed)}.`,
        ],
      },
    ];
  },
};
