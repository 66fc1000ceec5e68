/**
 * Each function's demand, as the gateways see it, for the scheduler to
 * scale by (docs/routing.md, "Scaling").
 *
 * Every platform process's gateway measures, per function, how many calls
 * it had in flight on average (the time-integral of in-flight calls over
 * the window) and how many calls came in, and publishes that every
 * REPORT_MS on `<p>.platform.load` (core NATS; devices may not publish
 * there). Every process's scheduler listens and keeps the last report of
 * each process; the leader sums them. A call for a function scaled to zero
 * is also announced at once on `<p>.platform.wake`, so the leader places it
 * without waiting for the next report.
 */
import type { Subjects } from "@hearth/protocol";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { z } from "zod";

export const REPORT_MS = 2_000;
/** A process's report counts this long (a process that stopped reporting stops counting). */
const REPORT_TTL_MS = 3 * REPORT_MS;

/** Calls a region made of a function fade by half in this long: placement follows where they come from now. */
const DEMAND_HALF_LIFE_MS = 20_000;

const LoadReport = z.strictObject({
  process: z.string().max(64),
  /** The reporting gateway's region (HEARTH_REGION), where its callers are. */
  region: z.string().max(64).optional(),
  functions: z.array(z.strictObject({ fn: z.string().max(200), inflight: z.number().min(0).max(1e6), calls: z.number().int().min(0).max(1e9) })).max(100_000),
});
const Wake = z.strictObject({ fn: z.string().max(200) });

/** The gateway's side: counts in-flight calls per function and reports them. */
export class LoadMeter implements AsyncDisposable {
  private readonly stats = new Map<string, { inflight: number; since: number; area: number; calls: number }>();
  private readonly timer: NodeJS.Timeout;
  private windowStart = performance.now();
  private readonly nc: NatsConnection;
  private readonly subjects: Subjects;
  private readonly process: string;
  private readonly region: string | undefined;
  private readonly woken = new Map<string, number>();

  constructor(nc: NatsConnection, subjects: Subjects, process: string, region?: string) {
    this.nc = nc;
    this.subjects = subjects;
    this.process = process;
    this.region = region;
    this.timer = setInterval(() => this.report(), REPORT_MS);
    this.timer.unref();
  }

  private statsOf(fn: string) {
    let s = this.stats.get(fn);
    if (!s) {
      s = { inflight: 0, since: performance.now(), area: 0, calls: 0 };
      this.stats.set(fn, s);
    }
    return s;
  }

  private advance(s: { inflight: number; since: number; area: number }, now: number): void {
    s.area += s.inflight * (now - s.since);
    s.since = now;
  }

  /** A call of `fn` (`app/name`) began; the returned function ends it. */
  begin(fn: string): () => void {
    const s = this.statsOf(fn);
    const now = performance.now();
    this.advance(s, now);
    s.inflight++;
    s.calls++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.advance(s, performance.now());
      s.inflight--;
    };
  }

  /** A call is waiting for a function scaled to zero (announced at most once a second per function). */
  wake(fn: string): void {
    const now = Date.now();
    if ((this.woken.get(fn) ?? 0) > now - 1_000) return;
    if (this.woken.size > 10_000) this.woken.clear();
    this.woken.set(fn, now);
    if (!this.nc.isClosed()) this.nc.publish(this.subjects.wake, JSON.stringify({ fn }));
  }

  private report(): void {
    const now = performance.now();
    const span = Math.max(1, now - this.windowStart);
    this.windowStart = now;
    const functions: { fn: string; inflight: number; calls: number }[] = [];
    for (const [fn, s] of this.stats) {
      this.advance(s, now);
      if (s.calls > 0 || s.area > 0) functions.push({ fn, inflight: s.area / span, calls: s.calls });
      s.area = 0;
      s.calls = 0;
      if (s.inflight === 0) this.stats.delete(fn);
    }
    if (functions.length > 0 && !this.nc.isClosed()) {
      this.nc.publish(this.subjects.load, JSON.stringify({ process: this.process, ...(this.region ? { region: this.region } : {}), functions }));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearInterval(this.timer);
  }
}

/** The scheduler's side: what every gateway reported, summed per function. */
export class LoadBoard {
  private readonly reports = new Map<string, { at: number; functions: Map<string, number> }>();
  private readonly lastCall = new Map<string, number>();
  /** Per function, per region: calls lately (fading with DEMAND_HALF_LIFE_MS), and when last updated. */
  private readonly regional = new Map<string, Map<string, { calls: number; at: number }>>();
  private readonly subs: Subscription[];
  /** Before this, a function's last call is unknown: counted as this (a process that just started never scales a function to zero at once). */
  readonly since = Date.now();

  constructor(nc: NatsConnection, subjects: Subjects, onWake: () => void) {
    const read = <T>(schema: z.ZodType<T>, data: Uint8Array): T | undefined => {
      try {
        const parsed = schema.safeParse(JSON.parse(new TextDecoder().decode(data)));
        return parsed.success ? parsed.data : undefined;
      } catch {
        return undefined;
      }
    };
    this.subs = [
      nc.subscribe(subjects.load, {
        callback: (err, msg) => {
          const report = err ? undefined : read(LoadReport, msg.data);
          if (!report) return;
          const now = Date.now();
          const functions = new Map<string, number>();
          for (const f of report.functions) {
            functions.set(f.fn, f.inflight);
            if (f.calls > 0) this.lastCall.set(f.fn, now);
            if (f.calls > 0 && report.region) this.addRegional(f.fn, report.region, f.calls, now);
          }
          this.reports.set(report.process, { at: now, functions });
        },
      }),
      nc.subscribe(subjects.wake, {
        callback: (err, msg) => {
          const wake = err ? undefined : read(Wake, msg.data);
          if (!wake) return;
          const now = Date.now();
          // every gateway may ask: one placement pass a second per function is plenty
          const before = this.lastCall.get(wake.fn) ?? 0;
          this.lastCall.set(wake.fn, now);
          if (before <= now - 1_000) onWake();
        },
      }),
    ];
  }

  /** Calls of `fn` in flight on average over the last report of every live gateway. */
  demand(fn: string, now = Date.now()): number {
    let sum = 0;
    for (const [process, r] of this.reports) {
      if (now - r.at > REPORT_TTL_MS) {
        this.reports.delete(process);
        continue;
      }
      sum += r.functions.get(fn) ?? 0;
    }
    return sum;
  }

  private addRegional(fn: string, region: string, calls: number, now: number): void {
    let byRegion = this.regional.get(fn);
    if (!byRegion) {
      if (this.regional.size > 100_000) this.regional.clear();
      this.regional.set(fn, (byRegion = new Map()));
    }
    const entry = byRegion.get(region);
    if (entry) {
      entry.calls = faded(entry, now) + calls;
      entry.at = now;
    } else if (byRegion.size < 64) byRegion.set(region, { calls, at: now });
  }

  /** Each region's share of `fn`'s calls lately (summing to 1), or an empty map when it has too few calls to say. */
  regionShares(fn: string, now = Date.now(), minCalls = 20): Map<string, number> {
    const shares = new Map<string, number>();
    const byRegion = this.regional.get(fn);
    if (!byRegion) return shares;
    let total = 0;
    for (const [region, entry] of byRegion) {
      const calls = faded(entry, now);
      shares.set(region, calls);
      total += calls;
    }
    if (total < minCalls) return new Map();
    for (const [region, calls] of shares) shares.set(region, calls / total);
    return shares;
  }

  /** When `fn` was last called, as far as this process heard. */
  lastCallAt(fn: string): number {
    return this.lastCall.get(fn) ?? this.since;
  }

  close(): void {
    for (const s of this.subs) s.unsubscribe();
  }
}

function faded(entry: { calls: number; at: number }, now: number): number {
  return entry.calls * 0.5 ** ((now - entry.at) / DEMAND_HALF_LIFE_MS);
}
