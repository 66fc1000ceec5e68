/**
 * Warm call through the gateway (examples/hello deployed, one device) at a
 * fixed concurrency, against a bare Hono server doing the same work and a raw
 * NATS request/reply echo between two processes (the floor of our path);
 * the same at one connection, one call at a time; the CPU time each costs
 * per call, summed over every process in its path; and the resident memory
 * of each process before and after a fixed number of warm calls.
 */
import { join } from "node:path";
import { startNatsServer } from "@hearth/devkit";
import type { BenchContext, Benchmark } from "./lib/bench.ts";
import { startBenchHearth } from "./lib/bench.ts";
import { startHelper } from "./lib/helper.ts";
import { httpLoad, type LoadResult } from "./lib/load.ts";
import { CpuMeter, rssOf } from "./lib/proc.ts";
import { ensureWorkerd, startWorkerd } from "./lib/workerd.ts";
import type { Row, Section } from "./lib/report.ts";
import { fmt, sleep } from "./lib/stats.ts";

export const CONCURRENCY = 8;
export const PATH = "/greet?name=Ada";
/** What examples/hello answers to PATH: the echo baselines (here and in auth.ts) carry the same bytes. */
export const HELLO_JSON = JSON.stringify({ message: "Hello, Ada!", path: "/greet", method: "GET" });

/** Warm calls the metered run makes, a fixed count (bounded in time too), so memory growth compares between runs. */
export const FIXED_CALLS = { quick: 3_000, full: 100_000 } as const;

export interface Measured extends LoadResult {
  cpuMsPerCall: number;
  cpuByRole?: Record<string, number>;
  /** Resident memory of each role's processes (MB) before and after the measured calls. */
  rssByRole?: Record<string, { before: number; after: number }>;
}

export const warmCall: Benchmark = {
  name: "warm-call",
  async run(ctx: BenchContext): Promise<Section[]> {
    const seconds = ctx.quick ? 3 : 10;
    const warmupSeconds = ctx.quick ? 1 : 2;
    const singleSeconds = ctx.quick ? 2 : 5;
    const fixedCalls = ctx.quick ? FIXED_CALLS.quick : FIXED_CALLS.full;
    // the fixed count's bound on time: at the ~1,000 calls/s measured so far it is two to four times what the count needs
    const fixedBoundSeconds = ctx.quick ? 15 : 240;

    // Hearth: platform + nats-server (+ redis-server) + one device (one sandbox process); with usage metering as shipped
    // (a fixed number of calls, resident memory read at each quarter of them, then one call at a time), then without
    const hearthRun = async (ledger: "required" | "off"): Promise<{ measured: Measured; single?: LoadResult; rssAt: RssCheckpoint[]; groups?: string }> => {
      ctx.log(`warm-call: local Hearth with one device, usage metering ${ledger === "off" ? "off" : "on"}`);
      const previous = process.env["HEARTH_LEDGER"];
      process.env["HEARTH_LEDGER"] = ledger; // startLocalHearth hands the platform this environment
      let h;
      try {
        h = await startBenchHearth(ctx, [{ deviceId: "bench-warm", cores: 1 }]);
      } finally {
        if (previous === undefined) delete process.env["HEARTH_LEDGER"];
        else process.env["HEARTH_LEDGER"] = previous;
      }
      await h.client.deployFile(join(ctx.root, "examples/hello/src/index.ts"), { app: "bench", name: "hello", replicas: 1 });
      const fn = await h.client.waitUntilReady("bench", "hello", { timeoutMs: 30_000, intervalMs: 50 });
      const url = `${fn.url}${PATH}`;
      const check = await fetch(url);
      const text = await check.text();
      if (!check.ok || text !== HELLO_JSON) throw new Error(`examples/hello answered ${check.status} ${text}, not what the bench expects`);
      await httpLoad(url, { connections: CONCURRENCY, seconds: warmupSeconds });
      const roles = h.pidsByRole();
      if (ledger === "off") {
        const measured = await measure(roles, () => httpLoad(url, { connections: CONCURRENCY, seconds }));
        await h.hearth.stop();
        return { measured, rssAt: [] };
      }
      const rssAt: RssCheckpoint[] = [];
      const quarters = [1, 2, 3].map((q) => Math.floor((fixedCalls * q) / 4));
      const onAnswer = (answered: number) => {
        if (answered === quarters[rssAt.length]) rssAt.push({ calls: answered, mb: residentMbByRole(roles) });
      };
      const countersBefore = await meteringCounters(h.hearth.url, h.hearth.token);
      const measured = await measure(roles, () => httpLoad(url, { connections: CONCURRENCY, seconds: fixedBoundSeconds, calls: fixedCalls, onAnswer }));
      const groups = groupsNote(countersBefore, await meteringCounters(h.hearth.url, h.hearth.token));
      // one connection, one call at a time: what the hops cost without the queue for the device's one donated core
      const single = await httpLoad(url, { connections: 1, seconds: singleSeconds });
      await h.hearth.stop();
      return { measured, single, rssAt, groups };
    };
    const metered = await hearthRun("required");
    const hearth = metered.measured;
    const single = metered.single!;
    const unmetered = (await hearthRun("off")).measured;

    const { bare, echo, echoSingle } = await baselines(ctx, seconds, warmupSeconds, { singleSeconds });
    const workerd = await workerdBaseline(ctx, seconds, warmupSeconds);

    const checked = [["gateway", hearth], ["gateway, one call at a time", single], ["gateway unmetered", unmetered], ["Hono", bare], ["NATS echo", echo], ["NATS echo, one call at a time", echoSingle!]] as const;
    for (const [name, r] of checked) {
      if (r.failures > 0) ctx.log(`warm-call: warning: ${r.failures} failed calls on ${name}`);
    }

    const honoBase = (value: number) => ({ name: "bare Hono", value });
    const natsBase = (value: number) => ({ name: "NATS echo", value });
    const rows: Row[] = [
      { bench: "warm", metric: "requests/s", value: hearth.rps, unit: "req/s", baseline: honoBase(bare.rps), better: "higher" },
      { bench: "warm", metric: "requests/s", value: hearth.rps, unit: "req/s", baseline: natsBase(echo.rps), better: "higher" },
      { bench: "warm", metric: "p50 latency", value: hearth.p50, unit: "ms", baseline: honoBase(bare.p50), better: "lower" },
      { bench: "warm", metric: "p50 latency", value: hearth.p50, unit: "ms", baseline: natsBase(echo.p50), better: "lower" },
      { bench: "warm", metric: "p99 latency", value: hearth.p99, unit: "ms", baseline: honoBase(bare.p99), better: "lower" },
      { bench: "warm", metric: "p99 latency", value: hearth.p99, unit: "ms", baseline: natsBase(echo.p99), better: "lower" },
      { bench: "warm", metric: "p50 latency, one connection, one call at a time", value: single.p50, unit: "ms", baseline: { name: "NATS echo, one call at a time", value: echoSingle!.p50 }, better: "lower" },
      { bench: "warm", metric: "p99 latency, one connection, one call at a time", value: single.p99, unit: "ms", baseline: { name: "NATS echo, one call at a time", value: echoSingle!.p99 }, better: "lower" },
      { bench: "warm", metric: "requests/s, usage metering off", value: unmetered.rps, unit: "req/s", baseline: honoBase(bare.rps), better: "higher" },
      { bench: "warm", metric: "p50 latency, usage metering off", value: unmetered.p50, unit: "ms", baseline: honoBase(bare.p50), better: "lower" },
      { bench: "warm", metric: "p99 latency, usage metering off", value: unmetered.p99, unit: "ms", baseline: honoBase(bare.p99), better: "lower" },
    ];
    const cost: Row[] = [
      { bench: "cost", metric: "CPU per call, whole path", value: hearth.cpuMsPerCall * 1000, unit: "µs", baseline: honoBase(bare.cpuMsPerCall * 1000), better: "lower" },
      { bench: "cost", metric: "CPU per call, whole path", value: hearth.cpuMsPerCall * 1000, unit: "µs", baseline: natsBase(echo.cpuMsPerCall * 1000), better: "lower" },
    ];
    for (const [role, ms] of Object.entries(hearth.cpuByRole ?? {})) {
      cost.push({ bench: "cost", metric: `CPU per call: ${role}`, value: ms * 1000, unit: "µs", baseline: honoBase(bare.cpuMsPerCall * 1000), better: "lower" });
    }
    cost.push({ bench: "cost", metric: "CPU per call, whole path, usage metering off", value: unmetered.cpuMsPerCall * 1000, unit: "µs", baseline: honoBase(bare.cpuMsPerCall * 1000), better: "lower" });
    for (const [role, ms] of Object.entries(unmetered.cpuByRole ?? {})) {
      cost.push({ bench: "cost", metric: `CPU per call: ${role}, usage metering off`, value: ms * 1000, unit: "µs", baseline: honoBase(bare.cpuMsPerCall * 1000), better: "lower" });
    }
    if (workerd.measured) {
      const w = workerd.measured;
      const base = (value: number) => ({ name: "workerd", value });
      rows.push(
        { bench: "warm", metric: "requests/s", value: hearth.rps, unit: "req/s", baseline: base(w.rps), better: "higher" },
        { bench: "warm", metric: "p50 latency", value: hearth.p50, unit: "ms", baseline: base(w.p50), better: "lower" },
      );
      cost.splice(2, 0, { bench: "cost", metric: "CPU per call, whole path", value: hearth.cpuMsPerCall * 1000, unit: "µs", baseline: base(w.cpuMsPerCall * 1000), better: "lower" });
    }
    const memory: Row[] = Object.entries(hearth.rssByRole ?? {}).map(([role, m]) => ({
      bench: "memory",
      metric: `resident memory after ${fmt(hearth.calls)} warm calls: ${role}`,
      value: m.after,
      unit: "MB",
      baseline: { name: "after warm-up, same process", value: m.before },
      better: "lower",
    }));
    const fixedNote =
      hearth.calls >= fixedCalls
        ? `${fmt(fixedCalls)} calls`
        : `${fmt(fixedCalls)} calls, stopped at its ${fixedBoundSeconds} s bound after ${fmt(hearth.calls)}`;
    const trajectory = Object.keys(hearth.rssByRole ?? {}).map((role) => {
      const points = [hearth.rssByRole![role]!.before, ...metered.rssAt.map((c) => c.mb[role]!), hearth.rssByRole![role]!.after];
      return `${role} ${points.map((mb) => mb.toFixed(0)).join(" → ")}`;
    });
    const calls = `${fmt(hearth.calls)} gateway calls (${fmt(unmetered.calls)} unmetered), ${fmt(bare.calls)} Hono calls, ${fmt(echo.calls)} echo round trips; one call at a time ${fmt(single.calls)} gateway calls and ${fmt(echoSingle!.calls)} echo round trips`;
    return [
      {
        title: "Warm call through the gateway",
        rows,
        notes: [
          `GET /fn/bench/hello${PATH} (examples/hello, one device with one sandbox process, platform state ${ctx.state === "redis" ? "in redis-server" : "embedded"}), ${CONCURRENCY} connections after ${warmupSeconds} s of warm-up: metering on for a fixed ${fixedNote}, metering off for ${seconds} s; then, metering on, one connection making one call at a time for ${singleSeconds} s; autocannon in the bench process; ${calls}.`,
          `Usage metering on is the platform as shipped (each call's usage record stored in JetStream before the answer, in group commits, and folded into the ledger in the same platform process, in groups); off is HEARTH_LEDGER=off, to show what metering costs. Over the metered calls: ${metered.groups}.`,
          "bare Hono: @hono/node-server in its own process answering the same JSON; NATS echo: nats.js request/reply of the same bytes between two processes, same concurrency (and one request at a time for the one-connection rows, same duration), on a nats-server with no authentication and a plain subscription (the fabric's credentials are measured in the Authentication section).",
          "The gateway sends each call to the subject of the one device it chose (per-device subjects, device credentials; it was a queue group of every device holding the function before issue 9); with one device the path is the same four processes.",
          "Warm call straight to a device's own door (local and relayed): the door section (--only door).",
          workerd.note,
        ],
      },
      {
        title: "Cost per call (CPU time summed over every process in the path ÷ calls served)",
        rows: cost,
        notes: [
          "Hearth path: platform (gateway, usage metering and ledger), nats-server, redis-server when used, agent and its sandbox processes; bare Hono: its one process; NATS echo: nats-server + requester + responder. The load generator is not counted.",
          "CPU time from /proc/<pid>/stat (utime + stime, 10 ms ticks) over the measured window.",
          "Resident memory over the metered calls: the next section.",
        ],
      },
      {
        title: "Resident memory before and after a fixed number of warm calls",
        rows: memory,
        notes: [
          `VmRSS of each process in the path (all of a role's processes summed) after the warm-up → after the ${fixedNote} through the gateway at ${CONCURRENCY} connections, metering on; Hearth ÷ baseline is the growth over those calls (1.00× is flat).`,
          `At each quarter of the calls (MB): ${trajectory.join("; ")}.`,
        ],
      },
    ];
  },
};

/** The platform's group-commit counters, from its /metrics (operator token). */
async function meteringCounters(url: string, token: string): Promise<Record<string, number>> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  const text = await res.text();
  const read = (line: RegExp) => Number(line.exec(text)?.[1] ?? 0);
  return {
    stored: read(/^hearth_usage_records_total\{result="stored"\} (\d+)$/m),
    commits: read(/^hearth_usage_commits_total (\d+)$/m),
    folded: read(/^hearth_ledger_folded_records_total\{result="applied"\} (\d+)$/m),
    folds: read(/^hearth_ledger_folds_total (\d+)$/m),
  };
}

function groupsNote(before: Record<string, number>, after: Record<string, number>): string {
  const d = (k: string) => after[k]! - before[k]!;
  const per = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : "n/a");
  return `${fmt(d("stored"))} records stored in ${fmt(d("commits"))} JetStream messages (${per(d("stored"), d("commits"))} records per group commit), ${fmt(d("folded"))} folded in ${fmt(d("folds"))} Redis round trips (${per(d("folded"), d("folds"))} per fold)`;
}

/** Resident memory of each role's processes, summed (MB). */
export function residentMbByRole(roles: Record<string, number[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(roles).map(([role, pids]) => [role, pids.reduce((n, pid) => n + rssOf(pid), 0) / 2 ** 20]));
}

export interface RssCheckpoint {
  calls: number;
  mb: Record<string, number>;
}

export async function measure(roles: Record<string, number[]>, load: () => Promise<LoadResult>): Promise<Measured> {
  const meters = Object.fromEntries(Object.entries(roles).map(([role, pids]) => [role, new CpuMeter(() => pids)]));
  const rss = () => residentMbByRole(roles);
  const rssBefore = rss();
  for (const m of Object.values(meters)) m.start();
  const result = await load();
  const rssAfter = rss();
  const rssByRole = Object.fromEntries(Object.keys(roles).map((role) => [role, { before: rssBefore[role]!, after: rssAfter[role]! }]));
  await sleep(0);
  const cpuByRole: Record<string, number> = {};
  let total = 0;
  for (const [role, m] of Object.entries(meters)) {
    const used = m.stop().totalMs;
    total += used;
    cpuByRole[role] = result.calls > 0 ? used / result.calls : Number.NaN;
  }
  return { ...result, cpuMsPerCall: result.calls > 0 ? total / result.calls : Number.NaN, cpuByRole, rssByRole };
}

/** workerd serving examples/hello bundled as wrangler would, same path, same concurrency (or why it could not run). */
async function workerdBaseline(ctx: BenchContext, seconds: number, warmupSeconds: number): Promise<{ measured?: Measured; note: string }> {
  const { binary, reason } = ensureWorkerd(ctx);
  if (!binary) return { note: `workerd: not measured in this run (${reason}).` };
  ctx.log("baseline: workerd");
  const w = await startWorkerd(ctx, binary, join(ctx.root, "examples/hello/src/index.ts"));
  const url = `${w.url}${PATH}`;
  const text = await (await fetch(url)).text();
  if (text !== HELLO_JSON) throw new Error(`workerd answered ${text}, not what hello answers`);
  await httpLoad(url, { connections: CONCURRENCY, seconds: warmupSeconds });
  const measured = await measure({ workerd: [w.pid] }, () => httpLoad(url, { connections: CONCURRENCY, seconds }));
  await w.stop();
  return {
    measured,
    note: `workerd ${w.version} (Cloudflare's Workers runtime, the \`workerd\` npm package): examples/hello bundled with esbuild as wrangler does, one process, same path and concurrency; ${fmt(measured.calls)} calls. It runs the function in the process that takes the HTTP call; Hearth crosses four processes by design.`,
  };
}

/**
 * The same-run baselines of a warm call: bare Hono answering the same JSON, and a raw NATS echo of the same bytes
 * between two processes; with `singleSeconds`, the echo one request at a time too, for that long.
 */
export async function baselines(
  ctx: BenchContext,
  seconds: number,
  warmupSeconds: number,
  options: { singleSeconds?: number } = {},
): Promise<{ bare: Measured; echo: Measured; echoSingle?: LoadResult }> {
  // Baseline 1: bare Hono in its own process, same JSON
  ctx.log("baseline: bare Hono");
  const hono = await startHelper(ctx.cleanup, "hono-server.ts");
  const { port } = await hono.call<{ port: number }>("start");
  const honoUrl = `http://127.0.0.1:${port}/fn/bench/hello${PATH}`;
  const honoCheck = await (await fetch(honoUrl)).text();
  if (honoCheck !== HELLO_JSON) throw new Error(`the Hono baseline answers ${honoCheck}, not what hello answers`);
  await httpLoad(honoUrl, { connections: CONCURRENCY, seconds: warmupSeconds });
  const bare = await measure({ hono: [hono.pid] }, () => httpLoad(honoUrl, { connections: CONCURRENCY, seconds }));
  await hono.stop();

  // Baseline 2: raw NATS request/reply echo between two processes (no authentication: the floor; auth.ts measures what credentials add)
  ctx.log("baseline: raw NATS echo");
  const nats = ctx.cleanup.add("nats-server", await startNatsServer({ insecureNoAuth: true }), (n) => n.stop());
  const responder = await startHelper(ctx.cleanup, "nats-echo.ts");
  const requester = await startHelper(ctx.cleanup, "nats-echo.ts");
  await responder.call("connect", { url: nats.url });
  await requester.call("connect", { url: nats.url });
  // a plain subscription on one device-like subject, as the gateway now sends each call to the device it chose
  const echoSubject = "bench.device.echo.invoke";
  await responder.call("respond", { subject: echoSubject });
  const run = { subject: echoSubject, payload: HELLO_JSON, concurrency: CONCURRENCY, maxCalls: 5_000_000 };
  await requester.call("run", { ...run, maxMs: warmupSeconds * 1000 });
  const echo = await measure(
    { "nats-server": [nats.server.process.pid!], responder: [responder.pid], requester: [requester.pid] },
    () => requester.call<LoadResult>("run", { ...run, maxMs: seconds * 1000 }),
  );
  const echoSingle =
    options.singleSeconds === undefined ? undefined : await requester.call<LoadResult>("run", { ...run, concurrency: 1, maxMs: options.singleSeconds * 1000 });
  await requester.stop();
  await responder.stop();
  await nats.stop();
  return { bare, echo, ...(echoSingle ? { echoSingle } : {}) };
}
