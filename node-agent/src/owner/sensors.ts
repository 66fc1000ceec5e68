/**
 * What the agent reads about the owner's machine: whether it runs on
 * battery (where the OS says so), and how busy the owner keeps it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";

/**
 * True when the machine runs on battery, false when on mains, undefined when
 * the OS does not tell. Linux: /sys/class/power_supply (a Battery whose
 * status is Discharging, or every Mains supply offline).
 */
export function onBattery(root = "/sys/class/power_supply"): boolean | undefined {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return undefined;
  }
  const read = (name: string, file: string) => {
    try {
      return readFileSync(join(root, name, file), "utf8").trim();
    } catch {
      return undefined;
    }
  };
  let mains: boolean | undefined;
  let discharging = false;
  let batteries = 0;
  for (const name of names) {
    const type = read(name, "type");
    if (type === "Mains") mains = (mains ?? false) || read(name, "online") === "1";
    if (type === "Battery") {
      batteries++;
      if (read(name, "status") === "Discharging") discharging = true;
    }
  }
  if (batteries === 0 && mains === undefined) return undefined;
  if (discharging) return true;
  if (mains === false) return batteries > 0;
  return false;
}

/** Samples the machine's CPU busy fraction (0..1) between calls. */
export class CpuSampler {
  private last = totals();

  /** Busy fraction of all cores since the previous sample. */
  sample(): number {
    const now = totals();
    const idle = now.idle - this.last.idle;
    const total = now.total - this.last.total;
    this.last = now;
    return total > 0 ? Math.min(1, Math.max(0, 1 - idle / total)) : 0;
  }
}

function totals(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of cpus()) {
    idle += c.times.idle;
    total += c.times.idle + c.times.user + c.times.nice + c.times.sys + c.times.irq;
  }
  return { idle, total };
}

/**
 * Idle-only mode with hysteresis: the owner counts as busy once their load
 * stays above `pauseAbove` for `forMs`, and as idle again once it stays below
 * `resumeBelow` for `forMs`. Short spikes change nothing.
 */
export class IdleGate {
  private busy = false;
  private since?: number;
  private readonly pauseAbove: number;
  private readonly resumeBelow: number;
  private readonly forMs: number;

  constructor(options: { pauseAbove: number; resumeBelow: number; forMs: number }) {
    this.pauseAbove = options.pauseAbove;
    this.resumeBelow = options.resumeBelow;
    this.forMs = options.forMs;
  }

  /** Feeds one load sample (the owner's share, 0..1) taken at `now`; returns whether the owner is busy. */
  update(load: number, now: number): boolean {
    const crossing = this.busy ? load < this.resumeBelow : load > this.pauseAbove;
    if (!crossing) {
      this.since = undefined;
      return this.busy;
    }
    this.since ??= now;
    if (now - this.since >= this.forMs) {
      this.busy = !this.busy;
      this.since = undefined;
    }
    return this.busy;
  }

  get ownerBusy(): boolean {
    return this.busy;
  }
}
