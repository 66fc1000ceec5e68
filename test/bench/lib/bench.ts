/** What every benchmark gets from the runner, and the local Hearth they share the recipe of. */
import { startLocalHearth, type DeviceSpec, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import type { Cleanup } from "./cleanup.ts";
import { treeOf } from "./proc.ts";
import type { Section } from "./report.ts";

export interface BenchContext {
  quick: boolean;
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

export async function startBenchHearth(ctx: BenchContext, devices: DeviceSpec[]): Promise<BenchHearth> {
  const hearth = ctx.cleanup.add("local Hearth", await startLocalHearth({ devices, logLevel: "warn" }), (h) => h.stop());
  const client = new HearthClient({ url: hearth.url, token: hearth.token });
  const pidsByRole = () => {
    const agents: number[] = [];
    const sandboxes: number[] = [];
    for (const device of hearth.devices.values()) {
      const pid = device.server.process.pid;
      if (pid === undefined) continue;
      agents.push(pid);
      sandboxes.push(...treeOf(pid).slice(1));
    }
    return {
      platform: [hearth.platform.process.pid!],
      "nats-server": [hearth.nats.server.process.pid!],
      agent: agents,
      sandbox: sandboxes,
    };
  };
  return { hearth, client, pidsByRole, pathPids: () => Object.values(pidsByRole()).flat() };
}
