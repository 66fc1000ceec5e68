/**
 * How the agent gets back on the fabric after losing it: exponential backoff
 * with jitter between reconnect attempts, forever (a device may be offline
 * for days), and a watch for clock jumps that notices the machine slept and
 * forces a reconnect at once instead of trusting a connection that may be
 * long dead.
 */

export interface ReconnectBackoffOptions {
  /** Upper bound of the first attempt's delay after an outage starts (a random share of it). Default 500 ms. */
  baseMs?: number;
  /** Longest wait between two attempts. Default 30 s. */
  maxMs?: number;
  /** A connection that lasted this long starts the next outage from the first delay again. Default 10 s. */
  healthyAfterMs?: number;
  random?: () => number;
  now?: () => number;
}

/**
 * Delays between reconnect attempts, for nats.js v3's `reconnectDelayHandler`.
 *
 * Attempt n waits `min(max, base * 2^n)` with "equal jitter" (a random point
 * in its upper half), so waits keep growing while many devices that lost the
 * same server spread out instead of dialing it all at once; the first attempt
 * of an outage comes after a random share of `base`.
 *
 * nats.js calls the handler on every pass of its dial loop, not once per
 * attempt: it dials when `lastConnect + wait <= now`, else sleeps
 * `lastConnect + wait - now` and asks again (lastConnect = when it last
 * dialed that server). So the handler keeps the time the next attempt is
 * due and answers 0 once it is (the loop dials at once, and we note that as
 * the attempt), else the wait from the last attempt it let through to that
 * time. That attempt is never later than the client's lastConnect, so the
 * loop never dials early; at worst it wakes a few milliseconds late. (A
 * second server in the pool, e.g. one a cluster announced, may be dialed
 * once between our attempts; the next wait then runs at most one gap long.)
 */
export class ReconnectBackoff {
  readonly baseMs: number;
  readonly maxMs: number;
  private readonly healthyAfterMs: number;
  private readonly random: () => number;
  private readonly now: () => number;
  /** Attempts made in this outage. */
  private attempts = 0;
  private lastDial = 0;
  /** When the next attempt is due; 0 = at once (the first connect). */
  private dueAt = 0;
  /** Connected: the next call of the handler starts an outage. */
  private up = false;
  private connectedAt = 0;

  constructor(options: ReconnectBackoffOptions = {}) {
    this.baseMs = options.baseMs ?? 500;
    this.maxMs = options.maxMs ?? 30_000;
    this.healthyAfterMs = options.healthyAfterMs ?? 10_000;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  /** The wait before attempt `n` (1 = the one after the first failed attempt), jitter included. */
  delayFor(n: number): number {
    const full = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(n, 30));
    return full / 2 + this.random() * (full / 2);
  }

  /** For `connect({ reconnectDelayHandler })`. */
  readonly handler = (): number => {
    const now = this.now();
    if (this.up) {
      // a new outage: after a connection that held, start gently again; after one that flapped, keep backing off
      this.up = false;
      if (now - this.connectedAt >= this.healthyAfterMs) this.attempts = 0;
      this.dueAt = now + (this.attempts === 0 ? this.random() * this.baseMs : this.delayFor(this.attempts));
    }
    if (now >= this.dueAt) {
      this.lastDial = now;
      this.attempts++;
      this.dueAt = now + this.delayFor(this.attempts);
      return 0;
    }
    return Math.max(1, this.dueAt - this.lastDial);
  };

  /** The connection is up (after connect, and on every reconnect). */
  connected(): void {
    this.up = true;
    this.connectedAt = this.now();
  }

  /** The machine just woke: the next attempt (if the client is still trying) is due at once. */
  wake(): void {
    this.attempts = 0;
    this.dueAt = 0;
  }

  /** Attempts made in the current (or last) outage. */
  get attemptsMade(): number {
    return this.attempts;
  }
}

export interface ClockJumpWatchOptions {
  /** How often the watch ticks. Default 1 s. */
  intervalMs?: number;
  /** A tick this much later than scheduled counts as a jump (sleep, suspend, a VM paused). Default 5 s. */
  thresholdMs?: number;
  now?: () => number;
  /** Called with how late the tick came. */
  onJump: (lateMs: number) => void;
}

/**
 * Notices that the machine slept: timers run on a monotonic clock that stops
 * while the machine is suspended, the wall clock does not, so after a wake a
 * tick comes far later (by the wall clock) than it was scheduled.
 */
export class ClockJumpWatch {
  readonly intervalMs: number;
  readonly thresholdMs: number;
  private readonly now: () => number;
  private readonly onJump: (lateMs: number) => void;
  private last = 0;
  private timer?: NodeJS.Timeout;

  constructor(options: ClockJumpWatchOptions) {
    this.intervalMs = options.intervalMs ?? 1_000;
    this.thresholdMs = options.thresholdMs ?? 5_000;
    this.now = options.now ?? Date.now;
    this.onJump = options.onJump;
  }

  start(): void {
    this.last = this.now();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    // never what keeps the process alive
    this.timer.unref();
  }

  /** One tick (the timer calls it; tests may too). */
  tick(): void {
    const now = this.now();
    const late = now - this.last - this.intervalMs;
    this.last = now;
    if (late > this.thresholdMs) this.onJump(late);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
