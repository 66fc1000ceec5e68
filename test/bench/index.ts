/**
 * `npm run bench`: Hearth's benchmarks, each figure beside a baseline
 * measured in the same run (absolute times on a shared machine drift; the
 * ratios don't, much). Starts everything it needs, stops it all at the end,
 * on error and on Ctrl-C; prints a table and writes it to BENCHMARKS.md.
 *
 *   npm run bench                  # full run, under ten minutes
 *   npm run bench -- --quick       # smaller sizes, under one minute
 *   npm run bench -- --only warm-call,auth --no-write
 *   npm run bench -- --quick --only door   # a device's own door, local and relayed
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { z } from "zod";
import { auth } from "./auth.ts";
import { coldStart } from "./cold-start.ts";
import { controlPlane } from "./control-plane.ts";
import { density } from "./density.ts";
import { doorCall } from "./door.ts";
import { resolveState, type BenchContext, type Benchmark } from "./lib/bench.ts";
import { routing } from "./routing.ts";
import { Cleanup, withTimeout } from "./lib/cleanup.ts";
import { describeMachine, renderMachine, renderSections, writeBenchmarksMd, type Section } from "./lib/report.ts";
import { warmCall } from "./warm-call.ts";

const BENCHMARKS: Benchmark[] = [warmCall, doorCall, auth, coldStart, density, controlPlane, routing];
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

const Flags = z.strictObject({
  quick: z.boolean().default(false),
  state: z.enum(["auto", "redis", "embedded"]).default("auto"),
  only: z
    .string()
    .optional()
    .transform((s) => (s ? s.split(",").map((x) => x.trim()).filter(Boolean) : undefined))
    .refine((names) => !names || names.every((n) => BENCHMARKS.some((b) => b.name === n)), {
      message: `--only takes a comma-separated list of: ${BENCHMARKS.map((b) => b.name).join(", ")}`,
    }),
  write: z.boolean().default(true),
  out: z.string().min(1).default(`${ROOT}BENCHMARKS.md`),
  "cpu-prof": z.string().min(1).optional(),
  help: z.boolean().default(false),
});

const USAGE = `Usage: npm run bench -- [--quick] [--only ${BENCHMARKS.map((b) => b.name).join(",")}] [--no-write] [--out FILE] [--state auto|redis|embedded] [--cpu-prof DIR]

  --state          platform state: a real redis-server (auto picks it when installed) or ioredis-mock in-process
  --cpu-prof DIR   every process the bench starts (platform, agents, helpers) writes a V8 CPU profile to DIR when it exits`;

function readFlags() {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        quick: { type: "boolean" },
        state: { type: "string" },
        only: { type: "string" },
        "no-write": { type: "boolean" },
        out: { type: "string" },
        "cpu-prof": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    fail(`${(error as Error).message}\n${USAGE}`);
  }
  const { "no-write": noWrite, ...rest } = values;
  const parsed = Flags.safeParse({ ...rest, write: noWrite ? false : undefined });
  if (!parsed.success) fail(`${parsed.error.issues.map((i) => i.message).join("\n")}\n${USAGE}`);
  return parsed.data;
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const flags = readFlags();
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (flags["cpu-prof"]) {
    // inherited by every child: platform and agents through startLocalHearth's env, helpers through fork
    const dir = resolve(flags["cpu-prof"]);
    process.env["NODE_OPTIONS"] = `${process.env["NODE_OPTIONS"] ?? ""} --cpu-prof --cpu-prof-dir=${dir}`.trim();
    process.stderr.write(`bench: CPU profiles of the processes the bench starts go to ${dir} (figures are slower while profiling)\n`);
  }
  // the load comes from one IP (127.0.0.1): the per-IP limit stays on the path, high enough never to refuse
  process.env["HEARTH_RATE_LIMIT_PER_IP"] ??= "1000000";
  process.env["HEARTH_MAX_IN_FLIGHT_PER_IP"] ??= "100000";
  process.env["HEARTH_DOOR_RATE_LIMIT_PER_IP"] ??= "0";
  const cleanup = new Cleanup();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}: stopping every process the bench started...\n`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const started = new Date();
  const t0 = performance.now();
  const ctx: BenchContext = {
    quick: flags.quick,
    state: resolveState(flags.state),
    cleanup,
    root: ROOT,
    log: (line) => process.stderr.write(`bench: ${line}\n`),
  };
  // a hard bound on each benchmark, so a hang can't hold the run
  const budgetMs = flags.quick ? 45_000 : 360_000;
  const sections: Section[] = [];
  const failed: string[] = [];
  for (const bench of BENCHMARKS) {
    if (flags.only && !flags.only.includes(bench.name)) continue;
    const t = performance.now();
    try {
      sections.push(...(await withTimeout(bench.run(ctx), budgetMs, bench.name)));
    } catch (error) {
      failed.push(bench.name);
      process.stderr.write(`bench: ${bench.name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    } finally {
      await cleanup.run();
    }
    ctx.log(`${bench.name} took ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const mode = `${flags.quick ? "--quick" : "full"}, state ${ctx.state === "redis" ? "redis-server" : "embedded (ioredis-mock)"}`;
  const text = `${renderMachine(describeMachine(), mode, started, seconds)}\n${renderSections(sections)}${
    failed.length > 0 ? `\nFailed in this run: ${failed.join(", ")} (see the bench's output).\n` : ""
  }`;
  process.stdout.write(`\n${text}\n`);
  if (flags.write && sections.length > 0 && !flags["cpu-prof"]) {
    writeBenchmarksMd(flags.out, text);
    ctx.log(`wrote ${flags.out}`);
  }
  if (failed.length > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
