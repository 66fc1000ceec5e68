/**
 * When the owner lets the device serve: schedule windows, idle-only mode
 * (with hysteresis) and pause-on-battery, checked every few seconds. The
 * agent pauses (drains: in-flight calls finish, no new ones) whenever one of
 * them says no, and serves again once none does.
 */
import { availableParallelism } from "node:os";
import { CpuSampler, IdleGate, onBattery } from "./sensors.ts";
import { inSchedule, type ScheduleWindow } from "./schedule.ts";

export { inSchedule, parseWindow, ScheduleWindowSchema } from "./schedule.ts";
export type { ScheduleWindow } from "./schedule.ts";
export { CpuSampler, IdleGate, onBattery } from "./sensors.ts";

/** Why the device is not serving. "owner" is a pause the owner asked for (`hearth-agent pause`). */
export type PauseReason = "schedule" | "owner-busy" | "battery" | "owner";

export interface AvailabilityOptions {
  schedule: readonly ScheduleWindow[];
  idleOnly: boolean;
  idlePauseAbove: number;
  idleResumeBelow: number;
  idleForMs: number;
  pauseOnBattery: boolean;
  checkMs: number;
  /** Sources, replaceable in tests. */
  now?: () => Date;
  battery?: () => boolean | undefined;
  /** The machine's busy fraction, 0..1. */
  load?: () => number;
  /** The share of the machine Hearth itself uses now, 0..1 (subtracted from the load: Hearth's own calls don't make the owner busy). */
  hearthShare?: () => number;
}

export class Availability {
  private readonly options: AvailabilityOptions;
  private readonly idle: IdleGate;
  private readonly now: () => Date;
  private readonly battery: () => boolean | undefined;
  private readonly load: () => number;
  private timer?: NodeJS.Timeout;
  private current: PauseReason[] = [];
  private manual = false;
  private listener?: (reasons: PauseReason[]) => void;
  /** Last owner load sample, for status. */
  ownerLoad = 0;

  constructor(options: AvailabilityOptions) {
    this.options = options;
    this.idle = new IdleGate({ pauseAbove: options.idlePauseAbove, resumeBelow: options.idleResumeBelow, forMs: options.idleForMs });
    this.now = options.now ?? (() => new Date());
    this.battery = options.battery ?? (() => onBattery());
    const sampler = new CpuSampler();
    this.load = options.load ?? (() => sampler.sample());
  }

  /** Reasons to pause right now; empty when the device may serve. */
  check(): PauseReason[] {
    const reasons: PauseReason[] = [];
    if (this.manual) reasons.push("owner");
    if (!inSchedule(this.options.schedule, this.now())) reasons.push("schedule");
    if (this.options.pauseOnBattery && this.battery() === true) reasons.push("battery");
    if (this.options.idleOnly) {
      this.ownerLoad = Math.max(0, this.load() - (this.options.hearthShare?.() ?? 0));
      if (this.idle.update(this.ownerLoad, this.now().getTime())) reasons.push("owner-busy");
    }
    return reasons;
  }

  get reasons(): readonly PauseReason[] {
    return this.current;
  }

  /** Checks now and every `checkMs`, telling `listener` whenever the set of reasons changes (and once at start). */
  start(listener: (reasons: PauseReason[]) => void): void {
    this.listener = listener;
    this.tick(true);
    this.timer = setInterval(() => this.tick(false), this.options.checkMs);
    this.timer.unref();
  }

  /** Re-checks at once (after a manual pause/resume, or in tests after moving the clock). */
  tick(force = false): void {
    const next = this.check();
    const changed = next.length !== this.current.length || next.some((r, i) => r !== this.current[i]);
    this.current = next;
    if (changed || force) this.listener?.(next);
  }

  /** The owner's own pause (`hearth-agent pause` / `resume`). */
  setManual(paused: boolean): void {
    this.manual = paused;
    this.tick();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Hearth's share of the machine when `active` calls run, each at most one core. */
export function hearthShareOf(active: number, cores = availableParallelism()): number {
  return Math.min(1, active / Math.max(1, cores));
}
