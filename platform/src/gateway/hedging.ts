/**
 * Hedged calls: an idempotent call still unanswered after its function's
 * usual time (the p95 of its recent answers through this gateway) is sent
 * to a second device as well, and the first answer wins. A slow or stuck
 * device then costs the caller about a p95, not the wall limit.
 *
 * Bounded so that hedging never doubles the load: a function hedges only
 * once it has MIN_SAMPLES answers to learn from, at most HEDGE_SHARE of its
 * calls (plus one), and never before MIN_DELAY_MS or after MAX_DELAY_MS.
 * See docs/routing.md.
 */

const WINDOW = 128;
const MIN_SAMPLES = 20;
/** Recompute the p95 after this many new answers. */
const EVERY = 16;
const HEDGE_SHARE = 0.05;
/** Calls counted before the hedge budget starts over. */
const BUDGET_WINDOW = 2_000;
export const HEDGE_BOUNDS = { minDelayMs: 10, maxDelayMs: 2_000 } as const;

interface FunctionStats {
  samples: Float64Array;
  count: number;
  p95?: number;
  calls: number;
  hedges: number;
}

export class HedgePolicy {
  private readonly stats = new Map<string, FunctionStats>();

  private of(key: string): FunctionStats {
    let s = this.stats.get(key);
    if (!s) {
      if (this.stats.size > 50_000) this.stats.clear();
      s = { samples: new Float64Array(WINDOW), count: 0, calls: 0, hedges: 0 };
      this.stats.set(key, s);
    }
    return s;
  }

  /** A call of this function answered in `ms` (a real answer, not a refusal). */
  observe(key: string, ms: number): void {
    const s = this.of(key);
    s.samples[s.count % WINDOW] = ms;
    s.count++;
    if (s.count >= MIN_SAMPLES && (s.p95 === undefined || s.count % EVERY === 0)) {
      const sorted = Array.from(s.samples.subarray(0, Math.min(s.count, WINDOW))).sort((a, b) => a - b);
      s.p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))];
    }
  }

  /** A call of this function began: counts toward its hedge budget. */
  called(key: string): void {
    const s = this.of(key);
    if (++s.calls > BUDGET_WINDOW) {
      s.calls = 1;
      s.hedges = 0;
    }
  }

  /** How long to wait before hedging a call of this function, or undefined: not enough known, or its budget spent. */
  delayFor(key: string, wallMs: number): number | undefined {
    const s = this.stats.get(key);
    if (!s || s.p95 === undefined) return undefined;
    if (s.hedges >= 1 + s.calls * HEDGE_SHARE) return undefined;
    return Math.min(Math.max(s.p95, HEDGE_BOUNDS.minDelayMs), HEDGE_BOUNDS.maxDelayMs, wallMs / 2);
  }

  /** A hedge was sent. */
  hedged(key: string): void {
    this.of(key).hedges++;
  }
}
