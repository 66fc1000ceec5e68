/**
 * Density: resident memory per idle warm function in a sandbox process, and
 * how many warm functions fit in 1 GiB. The agent's own SandboxPool (one
 * sandbox process) is driven in-process; RSS is the kernel's (VmRSS).
 * Baselines: the RSS of an empty sandbox process, and the RSS a bare idle
 * isolated-vm isolate (Isolate + Context + one script) holds.
 */
import { randomUUID } from "node:crypto";
import { SandboxPool, silentLogger, type SandboxLimits } from "@hearth/node-agent";
import { DEFAULT_LIMITS } from "@hearth/protocol";
import { distinctFunction } from "./cold-start.ts";
import type { BenchContext, Benchmark } from "./lib/bench.ts";
import { startHelper } from "./lib/helper.ts";
import { rssOf } from "./lib/proc.ts";
import type { Section } from "./lib/report.ts";
import { fmt, MiB, sleep } from "./lib/stats.ts";

/** The sandbox keeps at most this many warm isolates (HEARTH_SANDBOX_MAX_WARM, default 64): stay under it. */
const MAX_WARM = 64;
const GiB = 1024 * MiB;

const LIMITS: SandboxLimits = {
  memoryMb: DEFAULT_LIMITS.memoryMb,
  cpuMs: DEFAULT_LIMITS.cpuMs,
  wallMs: DEFAULT_LIMITS.wallMs,
  responseBytes: DEFAULT_LIMITS.responseBytes,
};

/** RSS sampled a few times after things settle; the median resists a GC in flight. */
async function settledRss(pid: number): Promise<number> {
  await sleep(500);
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rssOf(pid));
    await sleep(100);
  }
  return samples.sort((a, b) => a - b)[2]!;
}

export const density: Benchmark = {
  name: "density",
  async run(ctx: BenchContext): Promise<Section[]> {
    const count = ctx.quick ? 16 : MAX_WARM - 4;
    const salt = randomUUID();
    ctx.log(`density: warming ${count} functions in one sandbox process`);
    const pool = ctx.cleanup.add("sandbox pool", new SandboxPool({ size: 1, log: silentLogger() }), (p) => p[Symbol.asyncDispose]());
    await pool.start();
    const pid = pool.pids()[0]!;
    const empty = await settledRss(pid);
    for (let i = 0; i < count; i++) {
      const key = `bench/density-${i}@${i.toString(16).padStart(64, "0")}`;
      const code = distinctFunction(i, salt);
      const loaded = await pool.load(key, code, LIMITS);
      if (!loaded.ok) throw new Error(`could not load ${key}: ${loaded.message}`);
      const result = await pool.invoke(key, code, `density-${i}`, LIMITS, { method: "GET", url: "http://device.local/", headers: [], body: null });
      if (!result.ok) throw new Error(`${key} failed: ${result.message}`);
    }
    const warm = await settledRss(pid);
    if (pool.pids()[0] !== pid) throw new Error("the sandbox process restarted during the density run");
    const perFunction = (warm - empty) / count;

    ctx.log("density: bare isolate baseline");
    const helper = await startHelper(ctx.cleanup, "ivm-baseline.ts", { execArgv: ["--no-node-snapshot"] });
    const bare = await helper.call<{ before: number; after: number }>("density", { count });
    await helper.stop();
    const barePerIsolate = (bare.after - bare.before) / count;

    const fit = Math.floor((GiB - empty) / perFunction);
    const bareFit = Math.floor((GiB - bare.before) / barePerIsolate);
    // with the per-process cap, every MAX_WARM functions bring another sandbox process
    let capped = 0;
    while ((capped + 1) * perFunction + Math.ceil((capped + 1) / MAX_WARM) * empty <= GiB && capped < 1_000_000) capped++;
    return [
      {
        title: "Density (idle warm functions in one sandbox process)",
        rows: [
          { bench: "density", metric: "RSS per idle warm function", value: perFunction / MiB, unit: "MiB", baseline: { name: "bare idle isolate (Isolate + Context + script)", value: barePerIsolate / MiB }, better: "lower" },
          { bench: "density", metric: `sandbox process RSS with ${count} warm functions`, value: warm / MiB, unit: "MiB", baseline: { name: "empty sandbox process", value: empty / MiB }, better: "lower" },
          { bench: "density", metric: "warm functions per GiB (one sandbox process)", value: fit, unit: "fns", baseline: { name: "bare idle isolates per GiB", value: bareFit }, better: "higher" },
          { bench: "density", metric: `warm functions per GiB (${MAX_WARM} per sandbox process)`, value: capped, unit: "fns", baseline: { name: "bare idle isolates per GiB", value: bareFit }, better: "higher" },
        ],
        notes: [
          `${count} distinct small functions loaded and called once each, then left idle; RSS (VmRSS) of the sandbox process, median of 5 samples after 0.5 s, empty process ${fmt(empty / MiB)} MiB.`,
          `Per GiB = (1 GiB − empty process) ÷ per-function RSS. A sandbox process also keeps at most ${MAX_WARM} warm isolates (HEARTH_SANDBOX_MAX_WARM), so a device needs ⌈n/${MAX_WARM}⌉ sandbox processes (each ${fmt(empty / MiB)} MiB empty) to hold n warm functions.`,
        ],
      },
    ];
  },
};
