/** What every benchmark gets from the runner, and the local Hearth they share the recipe of. */
import { redisServerBinary, startLocalHearth, startRedisServer, type DeviceSpec, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import type { Cleanup } from "./cleanup.ts";
import { treeOf } from "./proc.ts";
import type { Section } from "./report.ts";

export interface BenchContext {
  quick: boolean;
  /** Platform state: a real redis-server (as in production) or ioredis-mock in the platform process. */
  state: "redis" | "embedded";
  cleanup: Cleanup;
  /** Repo root, with a trailing slash. */
  root: string;
  log(line: string): void;
}

export interface Benchmark {
  name: string;
  run(ctx: BenchContext): Promise<Section[]>;
}

export interface BenchHearth {
  hearth: LocalHearth;
  client: HearthClient;
  /** Pids of every process a call goes through: platform, nats-server, agents and their sandboxes. */
  pathPids(): number[];
  /** The same, grouped by role, for a per-process breakdown. */
  pidsByRole(): Record<string, number[]>;
}

/** The state the run uses: `auto` is a real redis-server when one is installed. */
export function resolveState(wanted: "auto" | "redis" | "embedded"): "redis" | "embedded" {
  if (wanted !== "auto") return wanted;
  return redisServerBinary() ? "redis" : "embedded";
}

/** A local Hearth (with its own redis-server when the run uses one), stopped by the cleanup. */
export async function startStatefulHearth(ctx: BenchContext, devices: DeviceSpec[]): Promise<{ hearth: LocalHearth; redisPid?: number; redisUrl?: string }> {
  let redisUrl: string | undefined;
  let redisPid: number | undefined;
  if (ctx.state === "redis") {
    const redis = ctx.cleanup.add("redis-server", await startRedisServer(), (r) => r.stop());
    redisUrl = redis.url;
    redisPid = redis.server.process.pid;
  }
  const hearth = ctx.cleanup.add("local Hearth", await startLocalHearth({ devices, logLevel: "warn", redisUrl }), (h) => h.stop());
  return { hearth, redisPid, redisUrl };
}

export async function startBenchHearth(ctx: BenchContext, devices: DeviceSpec[]): Promise<BenchHearth> {
  const { hearth, redisPid } = await startStatefulHearth(ctx, devices);
  const client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
  const pidsByRole = () => {
    const agents: number[] = [];
    const sandboxes: number[] = [];
    for (const device of hearth.devices.values()) {
      const pid = device.server.process.pid;
      if (pid === undefined) continue;
      agents.push(pid);
      sandboxes.push(...treeOf(pid).slice(1));
    }
    const roles: Record<string, number[]> = {
      platform: [hearth.platform.process.pid!],
      "nats-server": [hearth.nats.server.process.pid!],
      agent: agents,
      sandbox: sandboxes,
    };
    if (redisPid !== undefined) roles["redis-server"] = [redisPid];
    return roles;
  };
  return { hearth, client, pidsByRole, pathPids: () => Object.values(pidsByRole()).flat() };
}
