/**
 * Function stats: a bounded per-minute rollup of every function's calls,
 * errors and wall-time histogram, and its most recent failed calls, kept in
 * Redis for the console's charts (docs/console.md).
 *
 * The ledger's consumer hands each usage record here once it has folded it
 * for the first time (a redelivered record is not counted again). Stats are
 * for people, not for billing: calls are written in groups (at most one
 * write every STATS_WRITE_GAP_MS), and a platform crash between the
 * ledger's fold and a group's write loses those calls from the charts (at
 * most the calls of that gap), never from the ledger.
 *
 * Size is bounded by design: one hash per function and hour (fields
 * `<minute>|c`, `<minute>|e` and `<minute>|<bucket>` for the buckets that
 * saw a call), kept 26 hours; one list of at most 50 recent errors per
 * function, kept 7 days. A histogram has HISTOGRAM_BUCKETS log-spaced
 * buckets (4 per doubling, so a percentile is within about 9% of the truth).
 */
import type { FunctionStatsReport, RecentError, StatsPoint, StatsRange, UsageRecord } from "@hearth/protocol";
import type { Redis } from "ioredis";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
/** Hour hashes live long enough for a day's chart, plus margin. */
export const STATS_TTL_SECONDS = 26 * 3600;
/** Writes go out at most this often: a busy platform puts many calls in each, an idle one writes a call at once. */
export const STATS_WRITE_GAP_MS = 20;
/** Recent errors kept per function. */
export const RECENT_ERRORS = 50;
const RECENT_ERRORS_TTL_SECONDS = 7 * 86_400;

/** Bucket 0 holds calls under 100 µs; bucket i ≥ 1 holds [100·2^((i-1)/4), 100·2^(i/4)) µs; the last is open-ended (over ~104 s). */
export const HISTOGRAM_BUCKETS = 82;
const BASE_US = 100;
const PER_DOUBLING = 4;

export function bucketOf(wallUs: number): number {
  if (!(wallUs >= BASE_US)) return 0;
  return Math.min(HISTOGRAM_BUCKETS - 1, 1 + Math.floor(PER_DOUBLING * Math.log2(wallUs / BASE_US)));
}

/** The lower and upper bound of a bucket, in µs. */
function bucketBounds(i: number): [number, number] {
  if (i === 0) return [0, BASE_US];
  return [BASE_US * 2 ** ((i - 1) / PER_DOUBLING), BASE_US * 2 ** (i / PER_DOUBLING)];
}

/**
 * The q-quantile (0..1) of a histogram, in ms, interpolated inside the
 * bucket it falls in; null for an empty histogram.
 */
export function quantileMs(histogram: ReadonlyMap<number, number>, q: number): number | null {
  let total = 0;
  for (const n of histogram.values()) total += n;
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (const i of [...histogram.keys()].sort((a, b) => a - b)) {
    const n = histogram.get(i)!;
    if (seen + n >= rank) {
      const [lo, hi] = bucketBounds(i);
      const within = n === 0 ? 0 : (rank - seen) / n;
      return Math.round((lo + (hi - lo) * within) / 10) / 100;
    }
    seen += n;
  }
  return Math.round(bucketBounds(HISTOGRAM_BUCKETS - 1)[1] / 10) / 100;
}

interface Interval {
  calls: number;
  errors: number;
  histogram: Map<number, number>;
}

function emptyInterval(): Interval {
  return { calls: 0, errors: 0, histogram: new Map() };
}

function addInto(into: Interval, from: Interval): void {
  into.calls += from.calls;
  into.errors += from.errors;
  for (const [i, n] of from.histogram) into.histogram.set(i, (into.histogram.get(i) ?? 0) + n);
}

function pointOf(at: number, interval: Interval): StatsPoint {
  return { at, calls: interval.calls, errors: interval.errors, p50Ms: quantileMs(interval.histogram, 0.5), p99Ms: quantileMs(interval.histogram, 0.99) };
}

const RANGES: Record<StatsRange, { points: number; stepMs: number }> = {
  hour: { points: 60, stepMs: MINUTE_MS },
  day: { points: 96, stepMs: 15 * MINUTE_MS },
};

interface Batch {
  /** Hour hash → field → calls to add. */
  counts: Map<string, Map<string, number>>;
  /** Recent-errors list → entries, oldest first. */
  errors: Map<string, string[]>;
  written: Promise<void>;
  done: () => void;
  fail: (error: unknown) => void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  // a failed write is the caller's to log; nobody awaiting it is no unhandled rejection
  promise.catch(() => undefined);
  return { counts: new Map(), errors: new Map(), written: promise, done: resolve, fail: reject };
}

export class FunctionStats {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix = "hearth:") {
    this.redis = redis;
    this.prefix = prefix;
  }

  private hourKey(app: string, fn: string, hourStart: number): string {
    return `${this.prefix}stats:${app}:${fn}:${hourStart / HOUR_MS}`;
  }

  private errorsKey(app: string, fn: string): string {
    return `${this.prefix}stats-errors:${app}:${fn}`;
  }

  /** Calls counted but not yet written, and who waits for their write. */
  private pending?: Batch;
  private flushing = false;
  /** When the last write went out (performance.now()). */
  private lastWrite = -Infinity;
  /** When this process last set each hour hash's expiry: again after a few minutes, in case Redis lost the key meanwhile. */
  private readonly expiring = new Map<string, number>();

  /**
   * Counts one call (a usage record the ledger folded for the first time).
   * Calls are written in groups: the first goes out at once, and those that
   * come while a write is under way go together in the next one (one MULTI
   * for all of them, not one per call). Resolves once this call's group is written.
   */
  record(record: UsageRecord): Promise<void> {
    const batch = (this.pending ??= newBatch());
    const hourStart = Math.floor(record.at / HOUR_MS) * HOUR_MS;
    const minute = Math.floor((record.at - hourStart) / MINUTE_MS);
    const key = this.hourKey(record.app, record.fn, hourStart);
    let fields = batch.counts.get(key);
    if (!fields) batch.counts.set(key, (fields = new Map()));
    const add = (field: string) => fields.set(field, (fields.get(field) ?? 0) + 1);
    const failed = record.outcome !== "ok";
    add(`${minute}|c`);
    if (failed) add(`${minute}|e`);
    add(`${minute}|${bucketOf(record.wallUs)}`);
    if (failed) {
      const entry: RecentError = { at: record.at, requestId: record.requestId, code: record.outcome, status: record.status, deviceId: record.deviceId };
      const errors = this.errorsKey(record.app, record.fn);
      let list = batch.errors.get(errors);
      if (!list) batch.errors.set(errors, (list = []));
      list.push(JSON.stringify(entry));
    }
    if (!this.flushing) {
      this.flushing = true;
      // flush keeps the gap between writes
      setImmediate(() => void this.flush());
    }
    return batch.written;
  }

  /** Writes groups until none is left. */
  private async flush(): Promise<void> {
    while (this.pending) {
      const wait = this.lastWrite + STATS_WRITE_GAP_MS - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const batch = this.pending;
      this.pending = undefined;
      this.lastWrite = performance.now();
      try {
        const multi = this.redis.multi();
        const expired: string[] = [];
        for (const [key, fields] of batch.counts) {
          for (const [field, n] of fields) multi.hincrby(key, field, n);
          const set = this.expiring.get(key);
          if (set === undefined || this.lastWrite - set > 5 * MINUTE_MS) {
            expired.push(key);
            multi.expire(key, STATS_TTL_SECONDS);
          }
        }
        for (const [key, entries] of batch.errors) {
          // each LPUSH argument goes to the head in turn: the newest ends first, as one LPUSH per call left it
          multi.lpush(key, ...entries.slice(-RECENT_ERRORS));
          multi.ltrim(key, 0, RECENT_ERRORS - 1);
          multi.expire(key, RECENT_ERRORS_TTL_SECONDS);
        }
        const results = (await multi.exec()) ?? [];
        const failed = results.find(([error]) => error);
        if (failed) throw failed[0];
        // remembered only once written: a failed write sets the expiry again next time
        if (this.expiring.size + expired.length > 10_000) this.expiring.clear();
        for (const key of expired) this.expiring.set(key, this.lastWrite);
        batch.done();
      } catch (error) {
        batch.fail(error);
      }
    }
    this.flushing = false;
  }

  /** Per-minute intervals of one function from `from` (inclusive) to `to` (exclusive), keyed by minute start. */
  private async minutes(app: string, fn: string, from: number, to: number): Promise<Map<number, Interval>> {
    const hours: number[] = [];
    for (let h = Math.floor(from / HOUR_MS) * HOUR_MS; h < to; h += HOUR_MS) hours.push(h);
    const multi = this.redis.multi();
    for (const h of hours) multi.hgetall(this.hourKey(app, fn, h));
    const results = (await multi.exec()) ?? [];
    const out = new Map<number, Interval>();
    results.forEach(([error, hash], index) => {
      if (error) throw error;
      const hourStart = hours[index]!;
      for (const [field, value] of Object.entries((hash ?? {}) as Record<string, string>)) {
        const bar = field.indexOf("|");
        const minute = Number(field.slice(0, bar));
        const kind = field.slice(bar + 1);
        const n = Number(value);
        if (bar < 0 || !Number.isInteger(minute) || minute < 0 || minute > 59 || !Number.isSafeInteger(n)) continue;
        const at = hourStart + minute * MINUTE_MS;
        if (at < from || at >= to) continue;
        let interval = out.get(at);
        if (!interval) out.set(at, (interval = emptyInterval()));
        if (kind === "c") interval.calls += n;
        else if (kind === "e") interval.errors += n;
        else {
          const bucket = Number(kind);
          if (Number.isInteger(bucket) && bucket >= 0 && bucket < HISTOGRAM_BUCKETS) interval.histogram.set(bucket, (interval.histogram.get(bucket) ?? 0) + n);
        }
      }
    });
    return out;
  }

  /** The last hour (60 one-minute points) or day (96 points of 15 minutes), oldest first, ending with the interval that holds `now`. */
  async series(app: string, fn: string, range: StatsRange, now = Date.now()): Promise<Pick<FunctionStatsReport, "stepSeconds" | "points" | "totals">> {
    const { points, stepMs } = RANGES[range];
    const end = Math.floor(now / stepMs) * stepMs + stepMs;
    const start = end - points * stepMs;
    const minutes = await this.minutes(app, fn, start, end);
    const total = emptyInterval();
    const out: StatsPoint[] = [];
    for (let at = start; at < end; at += stepMs) {
      const interval = emptyInterval();
      for (let m = at; m < at + stepMs; m += MINUTE_MS) {
        const minute = minutes.get(m);
        if (minute) addInto(interval, minute);
      }
      addInto(total, interval);
      out.push(pointOf(at, interval));
    }
    const { at: _at, ...totals } = pointOf(start, total);
    return { stepSeconds: stepMs / 1000, points: out, totals };
  }

  /** The function's most recent failed calls, newest first. */
  async recentErrors(app: string, fn: string): Promise<RecentError[]> {
    const raw = await this.redis.lrange(this.errorsKey(app, fn), 0, RECENT_ERRORS - 1);
    const out: RecentError[] = [];
    for (const item of raw) {
      try {
        out.push(JSON.parse(item) as RecentError);
      } catch {
        // only this module writes the list; a damaged entry is skipped, not shown
      }
    }
    return out;
  }
}
