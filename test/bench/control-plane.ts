/**
 * Control plane at scale: N simulated devices heartbeating at the real
 * interval (1 s) into a real platform process, then F functions deployed
 * through the API and placed on them (the fake devices acknowledge their
 * control messages like agents). Measures the platform's CPU share with
 * heartbeats alone and with F functions placed, and placement latency
 * (deploy acknowledged → control message at the device), at two sizes to
 * show how both grow. Baselines in the same run: a bare consumer of the same
 * heartbeat stream (parse + live table), and raw NATS request/reply to the
 * same fake devices' control subjects.
 */
import { randomUUID } from "node:crypto";
import type { LocalHearth } from "@hearth/devkit";
import { Subjects } from "@hearth/protocol";
import { HearthClient } from "@hearth/sdk";
import { connectAsPlatform } from "@hearth/platform";
import { distinctFunction } from "./cold-start.ts";
import { startStatefulHearth, type BenchContext, type Benchmark } from "./lib/bench.ts";
import { withTimeout } from "./lib/cleanup.ts";
import { authorityOf, credsText, joinSimDevices } from "./lib/fabric.ts";
import { startHelper, type Helper } from "./lib/helper.ts";
import { CpuMeter } from "./lib/proc.ts";
import type { Row, Section } from "./lib/report.ts";
import { simDevices } from "./lib/sim-devices.ts";
import { fmt, percentile, sleep } from "./lib/stats.ts";

const HEARTBEAT_MS = 1_000;
const REPLICAS = 2;
const DEPLOY_CONCURRENCY = 8;

interface SizeResult {
  devices: number;
  registered: number;
  joinMs: number;
  registerMs: number;
  heartbeatsPerSec: number;
  idleShare: number;
  idleBaselineShare: number;
  placedShare: number;
  placedBaselineShare: number;
  natsShare: number;
  redisShare: number;
  placed: number;
  deployed: number;
  functions: number;
  placeAllMs: number;
  deployP50: number;
  latency: number[];
  raw: number[];
  rawAllMs: number;
}

interface PlacementEvent {
  app: string;
  fn: string;
  deviceId: string;
  at: number;
  type: string;
}

const now = () => performance.timeOrigin + performance.now();

let slowReports = 0;

/** Throws with the platform's last words when it is gone; otherwise a passing error (a slow answer) is only logged. */
function platformAlive(hearth: LocalHearth, error?: unknown): void {
  const p = hearth.platform.process;
  if (p.exitCode !== null || p.signalCode !== null) {
    throw new Error(`the platform process exited (code ${p.exitCode}, signal ${p.signalCode}):\n${hearth.platform.output().slice(-3_000)}`);
  }
  if (error && slowReports++ < 3) process.stderr.write(`bench: control-plane: platform slow to answer: ${error instanceof Error ? error.message : String(error)}\n`);
}

async function share(pids: number[], ms: number): Promise<number> {
  const meter = new CpuMeter(() => pids);
  meter.start();
  await sleep(ms);
  const { totalMs, wallMs } = meter.stop();
  return totalMs / wallMs;
}

/** Runs `task` over `items` with at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let index = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (index < items.length) await task(items[index++]!);
    }),
  );
}

async function runSize(ctx: BenchContext, devices: number, functions: number, windowMs: number): Promise<SizeResult> {
  const runId = randomUUID().slice(0, 8);
  ctx.log(`control-plane: ${devices} devices, then ${functions} functions`);
  if (ctx.state !== "redis") {
    throw new Error("control-plane joins its simulated devices in the platform's Redis, so it needs a redis-server (--state redis or auto with redis-server on PATH)");
  }
  const { hearth, redisPid, redisUrl } = await startStatefulHearth(ctx, []);
  // every API call bounded: a saturated platform must not hold the bench
  const client = new HearthClient({ url: hearth.url, token: hearth.developerToken, fetch: (input, init) => fetch(input, { ...init, signal: AbortSignal.timeout(20_000) }) });
  const platformPid = hearth.platform.process.pid!;
  const natsPid = hearth.nats.server.process.pid!;
  const subjects = new Subjects();
  const authority = authorityOf(hearth);
  const idPrefix = `sim${runId}`;

  // joined before their first heartbeat: the platform remembers for a while that a device it asked Redis about was unknown
  const joinMs = await joinSimDevices({
    redisUrl: redisUrl!, authority, subjects, natsUrl: hearth.nats.url, devices: simDevices(idPrefix, devices), cores: 4, memoryMb: 4096,
  });
  const consumer = await startHelper(ctx.cleanup, "heartbeat-consumer.ts");
  await consumer.call("start", { url: hearth.nats.url, subject: subjects.heartbeats, creds: credsText(await authority.platformCreds("bench-heartbeat-consumer")) });
  const sim: Helper = await startHelper(ctx.cleanup, "device-sim.ts");
  const t0 = performance.now();
  await sim.call("start", {
    url: hearth.nats.url, prefix: subjects.prefix, count: devices, intervalMs: HEARTBEAT_MS, idPrefix, creds: credsText(await authority.platformCreds("bench-device-sim")),
  });

  // every device known to the platform (bounded: a saturated platform may never list them all)
  let registered = 0;
  const registerUntil = performance.now() + (ctx.quick ? 8_000 : 30_000);
  while (registered < devices && performance.now() < registerUntil) {
    try {
      const health = await withTimeout(fetch(`${hearth.url}/v1/health`).then((r) => r.json() as Promise<{ devices: number }>), 15_000, "GET /v1/health");
      registered = health.devices;
    } catch (error) {
      platformAlive(hearth, error);
    }
    if (registered < devices) await sleep(250);
  }
  platformAlive(hearth);
  const registerMs = performance.now() - t0;
  await sleep(HEARTBEAT_MS);

  // heartbeats alone
  const simBefore = await sim.call<{ sent: number; elapsedMs: number }>("stats");
  const [idleShare, idleBaselineShare, natsShare, redisShare] = await Promise.all([
    share([platformPid], windowMs),
    share([consumer.pid], windowMs),
    share([natsPid], windowMs),
    redisPid === undefined ? Promise.resolve(Number.NaN) : share([redisPid], windowMs),
  ]);
  const simAfter = await sim.call<{ sent: number; elapsedMs: number }>("stats");
  const heartbeatsPerSec = ((simAfter.sent - simBefore.sent) / (simAfter.elapsedMs - simBefore.elapsedMs)) * 1000;

  // F functions, deployed DEPLOY_CONCURRENCY at a time while placements are collected; both bounded in time
  const salt = randomUUID();
  const acked = new Map<string, number>();
  const deployMs: number[] = [];
  const deployUntil = performance.now() + (ctx.quick ? 8_000 : 60_000);
  const tDeploy = performance.now();
  let next = 0;
  let deployErrors = 0;
  const deploying = Promise.all(
    Array.from({ length: DEPLOY_CONCURRENCY }, async () => {
      while (next < functions && performance.now() < deployUntil) {
        const i = next++;
        const t = performance.now();
        try {
          await client.deploy({ app: "cp", name: `f-${i}`, code: distinctFunction(i, salt), replicas: REPLICAS });
        } catch (error) {
          deployErrors++;
          platformAlive(hearth, error);
          continue;
        }
        deployMs.push(performance.now() - t);
        acked.set(`cp/f-${i}`, now());
      }
    }),
  );
  let deployed = false;
  void deploying.then(() => (deployed = true), () => (deployed = true));

  // placements: every deployed function with its replicas placed, or the time is up
  const placedAt = new Map<string, number[]>();
  let seen = 0;
  const want = Math.min(REPLICAS, devices);
  const countPlaced = () => [...placedAt.values()].filter((list) => list.length >= want).length;
  const placeUntil = deployUntil + (ctx.quick ? 5_000 : 30_000);
  while (!(deployed && countPlaced() >= acked.size) && performance.now() < placeUntil) {
    const events = await sim.call<PlacementEvent[]>("placements", { from: seen });
    seen += events.length;
    for (const e of events) {
      if (e.type !== "place") continue;
      const id = `${e.app}/${e.fn}`;
      const list = placedAt.get(id) ?? [];
      list.push(e.at);
      placedAt.set(id, list);
    }
    await sleep(100);
  }
  await withTimeout(deploying, 30_000, "deploys in flight");
  if (deployErrors > 0) ctx.log(`control-plane: ${deployErrors} deploys failed at ${devices} devices`);
  const placed = countPlaced();
  const deployedCount = acked.size;
  const placeAllMs = performance.now() - tDeploy;
  const latency: number[] = [];
  for (const [id, list] of placedAt) {
    const ack = acked.get(id);
    if (ack === undefined || list.length < want) continue;
    latency.push(Math.max(0, list.sort((a, b) => a - b)[want - 1]! - ack));
  }
  await sleep(HEARTBEAT_MS);

  // steady state with the functions placed
  const [placedShare, placedBaselineShare] = await Promise.all([share([platformPid], windowMs), share([consumer.pid], windowMs)]);

  // baseline: the same number of control round trips over raw NATS, same concurrency, same fake devices
  const nc = ctx.cleanup.add("nats connection", await connectAsPlatform(hearth.nats.url, authority, "bench-control-raw"), (c) => c.close());
  const raw: number[] = [];
  const trips = Array.from({ length: Math.max(1, placed) * want }, (_, i) => i);
  const tRaw = performance.now();
  await pool(trips, DEPLOY_CONCURRENCY, async (i) => {
    const t = performance.now();
    // unplace of a function no device holds: answered like a placement, changes nothing
    await nc.request(subjects.control(`${idPrefix}-${i % devices}`), JSON.stringify({ type: "unplace", app: "raw", fn: `r-${i}` }), { timeout: 5_000 });
    raw.push(performance.now() - t);
  });
  const rawAllMs = performance.now() - tRaw;
  await nc.close();

  await sim.call("stop");
  await sim.stop();
  await consumer.stop();
  await hearth.stop();
  return {
    devices,
    registered,
    joinMs,
    registerMs,
    heartbeatsPerSec,
    idleShare,
    idleBaselineShare,
    placedShare,
    placedBaselineShare,
    natsShare,
    redisShare,
    placed,
    deployed: deployedCount,
    functions,
    placeAllMs,
    deployP50: percentile(deployMs, 50),
    latency,
    raw,
    rawAllMs,
  };
}

export const controlPlane: Benchmark = {
  name: "control-plane",
  async run(ctx: BenchContext): Promise<Section[]> {
    const sizes = ctx.quick ? [200, 1_000] : [1_000, 10_000];
    const functions = ctx.quick ? 30 : 1_000;
    const windowMs = ctx.quick ? 1_500 : 8_000;
    const results: SizeResult[] = [];
    for (const devices of sizes) results.push(await runSize(ctx, devices, functions, windowMs));

    const rows: Row[] = [];
    const pct = (x: number) => x * 100;
    for (const r of results) {
      const n = `${fmt(r.devices)} devices`;
      rows.push(
        { bench: "control", metric: `${n}: platform CPU, heartbeats only`, value: pct(r.idleShare), unit: "% of a core", baseline: { name: "bare heartbeat consumer", value: pct(r.idleBaselineShare) }, better: "lower" },
        { bench: "control", metric: `${n}: platform CPU, ${fmt(r.functions)} functions placed`, value: pct(r.placedShare), unit: "% of a core", baseline: { name: "bare heartbeat consumer", value: pct(r.placedBaselineShare) }, better: "lower" },
        { bench: "control", metric: `${n}: placement latency p50`, value: percentile(r.latency, 50), unit: "ms", baseline: { name: "raw NATS control round trip p50", value: percentile(r.raw, 50) }, better: "lower" },
        { bench: "control", metric: `${n}: placement latency p99`, value: percentile(r.latency, 99), unit: "ms", baseline: { name: "raw NATS control round trip p99", value: percentile(r.raw, 99) }, better: "lower" },
        { bench: "control", metric: `${n}: ${fmt(r.placed)} of ${fmt(r.functions)} functions deployed and placed ×${REPLICAS} in`, value: r.placeAllMs, unit: "ms", baseline: { name: `same number of raw control round trips`, value: r.rawAllMs }, better: "lower" },
      );
    }
    const [a, b] = [results[0]!, results[results.length - 1]!];
    const growth = `${fmt(a.devices)} → ${fmt(b.devices)} devices`;
    rows.push(
      { bench: "control", metric: `growth ${growth}: platform CPU, heartbeats only`, value: b.idleShare / a.idleShare, unit: "×", baseline: { name: "bare heartbeat consumer growth", value: b.idleBaselineShare / a.idleBaselineShare }, better: "lower" },
      { bench: "control", metric: `growth ${growth}: placement latency p50`, value: percentile(b.latency, 50) / percentile(a.latency, 50), unit: "×", baseline: { name: "raw control round trip growth", value: percentile(b.raw, 50) / percentile(a.raw, 50) }, better: "lower" },
    );
    return [
      {
        title: "Control plane (simulated devices, real platform process)",
        rows,
        notes: [
          ...results.map(
            (r) =>
              `${fmt(r.devices)} devices (joined in ${fmt(r.joinMs)} ms): heartbeats achieved ${fmt(r.heartbeatsPerSec)}/s (target ${fmt((r.devices * 1000) / HEARTBEAT_MS)}/s), ${r.registered >= r.devices ? "all" : `only ${fmt(r.registered)}`} listed by the platform ${fmt(r.registerMs)} ms after the first, nats-server ${fmt(r.natsShare * 100)}%${Number.isNaN(r.redisShare) ? "" : ` and redis-server ${fmt(r.redisShare * 100)}%`} of a core (heartbeats only); deploy API p50 ${fmt(r.deployP50)} ms; ${fmt(r.deployed)} of ${fmt(r.functions)} deployed and ${fmt(r.placed)} placed within the time bound.`,
          ),
          `Devices are simulated in one helper process (valid Heartbeats every ${HEARTBEAT_MS} ms, spread over the interval, each on its own hb.<id> subject; control messages answered {"ok":true} on each device's control subject), all on one connection with the platform's credential; each was joined first (join token + its own nkey public key, through DeviceRegistry into the platform's Redis, without signing a device JWT it would not use), so the platform believes its heartbeats and takes owner, region and size from the join record. The platform runs as its own process with its state in a real redis-server (whose CPU is reported in the notes); CPU share = CPU time ÷ wall time over ${windowMs / 1000} s windows.`,
          `${fmt(functions)} functions deployed through the API ${DEPLOY_CONCURRENCY} at a time, ${REPLICAS} replicas each; placement latency = deploy acknowledged → the last wanted replica's control message at its device. Deploys stop after ${ctx.quick ? 8 : 60} s and placements are awaited ${ctx.quick ? 5 : 30} s more, so a saturated platform shows as fewer functions placed. Baseline: as many raw request/replies to the same fake devices' control subjects from a platform-credential connection, ${DEPLOY_CONCURRENCY} at a time.`,
        ],
      },
    ];
  },
};
