/**
 * The device's caps on what it runs: a semaphore of donated cores (at most
 * that many calls run at once; the rest wait in a bounded queue for a bounded
 * time, then fail with ERR_DEVICE_BUSY), and the memory budget placements
 * must fit in.
 */
import { HearthError } from "@hearth/protocol";

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (error: HearthError) => void;
  timer: NodeJS.Timeout;
}

export class CoreGate {
  readonly slots: number;
  readonly maxQueued: number;
  readonly maxWaitMs: number;
  private running = 0;
  private readonly waiting: Waiter[] = [];
  /** Highest number of calls that ever ran at once (for tests and status). */
  peak = 0;

  constructor(options: { slots: number; maxQueued: number; maxWaitMs: number }) {
    this.slots = Math.max(1, Math.floor(options.slots));
    this.maxQueued = options.maxQueued;
    this.maxWaitMs = options.maxWaitMs;
  }

  get inUse(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Takes a free core at once (none is free while calls wait for one: they come first), or undefined. */
  tryAcquire(): (() => void) | undefined {
    return this.running < this.slots ? this.take() : undefined;
  }

  /**
   * Takes a core, waiting at most `waitMs` (and the gate's own cap) for one.
   * Resolves to the function that gives it back (call it exactly once).
   */
  acquire(waitMs = this.maxWaitMs, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(new HearthError("ERR_NO_DEVICE", "the call was cancelled: another device answered it"));
    if (this.running < this.slots) return Promise.resolve(this.take());
    if (this.waiting.length >= this.maxQueued) {
      return Promise.reject(new HearthError("ERR_DEVICE_BUSY", `this device runs ${this.slots} call(s) at once (its donated cores) and ${this.waiting.length} are waiting; retry`));
    }
    const wait = Math.max(0, Math.min(waitMs, this.maxWaitMs));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiting.indexOf(waiter);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new HearthError("ERR_DEVICE_BUSY", `no free core on this device within ${wait} ms (it donates ${this.slots}); retry`));
        }, wait),
      };
      this.waiting.push(waiter);
      signal?.addEventListener(
        "abort",
        () => {
          const i = this.waiting.indexOf(waiter);
          if (i < 0) return;
          this.waiting.splice(i, 1);
          clearTimeout(waiter.timer);
          reject(new HearthError("ERR_NO_DEVICE", "the call was cancelled while it waited for a core: another device answered it"));
        },
        { once: true },
      );
    });
  }

  private take(): () => void {
    this.running++;
    this.peak = Math.max(this.peak, this.running);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      const next = this.waiting.shift();
      if (next) {
        clearTimeout(next.timer);
        next.resolve(this.take());
      }
    };
  }
}

/**
 * The memory budget: warm isolates (one per function version, each up to its
 * memory limit) never add up to more than the owner donated. To make room,
 * the least recently used idle isolates are evicted first (the next call of
 * that function starts cold); a call that still does not fit fails with
 * ERR_DEVICE_BUSY rather than go over.
 */
export class WarmIsolates {
  readonly totalMb: number;
  private readonly evict: (key: string) => void;
  private readonly entries = new Map<string, { mb: number; running: number; lastUsed: number }>();
  private clock = 0;
  /** Isolates evicted to make room (for tests and status). */
  evictions = 0;

  constructor(totalMb: number, evict: (key: string) => void) {
    this.totalMb = totalMb;
    this.evict = evict;
  }

  /** Warm isolates held now (one per function version). */
  get count(): number {
    return this.entries.size;
  }

  get usedMb(): number {
    let sum = 0;
    for (const e of this.entries.values()) sum += e.mb;
    return sum;
  }

  /** Makes room for `key` (up to `mb`) and marks it running; returns the function that marks it idle again. */
  use(key: string, mb: number): () => void {
    if (mb > this.totalMb) {
      throw new HearthError("ERR_DEVICE_BUSY", `${key} may use ${mb} MiB and this device donates only ${this.totalMb} MiB`);
    }
    const entry = this.entries.get(key);
    const need = mb - (entry?.mb ?? 0);
    let used = this.usedMb;
    while (used + need > this.totalMb) {
      let victim: string | undefined;
      let oldest = Infinity;
      for (const [k, e] of this.entries) {
        if (k !== key && e.running === 0 && e.lastUsed < oldest) {
          oldest = e.lastUsed;
          victim = k;
        }
      }
      if (victim === undefined) {
        throw new HearthError("ERR_DEVICE_BUSY", `no room for ${key} (${mb} MiB): the ${this.totalMb} MiB this device donates are all held by running calls`);
      }
      used -= this.entries.get(victim)!.mb;
      this.entries.delete(victim);
      this.evictions++;
      this.evict(victim);
    }
    const current = entry ?? { mb, running: 0, lastUsed: 0 };
    current.mb = Math.max(current.mb, mb);
    current.running++;
    current.lastUsed = ++this.clock;
    this.entries.set(key, current);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      current.running = Math.max(0, current.running - 1);
      current.lastUsed = ++this.clock;
    };
  }

  /** Forgets an isolate that was dropped (unplaced or replaced). */
  forget(key: string): void {
    this.entries.delete(key);
  }

  /** Forgets every isolate; returns their keys (to drop them). */
  clear(): string[] {
    const keys = [...this.entries.keys()];
    this.entries.clear();
    return keys;
  }
}
