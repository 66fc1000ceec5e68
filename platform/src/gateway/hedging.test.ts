import { describe, expect, it } from "vitest";
import { HEDGE_BOUNDS, HedgePolicy } from "./hedging.ts";

describe("the hedge policy", () => {
  it("waits for enough answers, then hedges after their p95, within its bounds", () => {
    const policy = new HedgePolicy();
    for (let i = 0; i < 19; i++) policy.observe("a/f", 100);
    expect(policy.delayFor("a/f", 10_000)).toBeUndefined();
    // 112 answers (the p95 is taken again every 16), 6 of them slow
    for (let i = 0; i < 93; i++) policy.observe("a/f", i < 87 ? 100 : 900);
    expect(policy.delayFor("a/f", 10_000)).toBe(900);
    // never sooner than the floor, never later than the ceiling or half the wall limit
    const fast = new HedgePolicy();
    for (let i = 0; i < 40; i++) fast.observe("a/f", 1);
    expect(fast.delayFor("a/f", 10_000)).toBe(HEDGE_BOUNDS.minDelayMs);
    const slow = new HedgePolicy();
    for (let i = 0; i < 40; i++) slow.observe("a/f", 60_000);
    expect(slow.delayFor("a/f", 60_000)).toBe(HEDGE_BOUNDS.maxDelayMs);
    expect(slow.delayFor("a/f", 1_000)).toBe(500);
  });

  it("hedges at most one call in twenty, plus one", () => {
    const policy = new HedgePolicy();
    for (let i = 0; i < 40; i++) policy.observe("a/f", 5);
    let hedges = 0;
    for (let i = 0; i < 200; i++) {
      policy.called("a/f");
      if (policy.delayFor("a/f", 10_000) !== undefined) {
        policy.hedged("a/f");
        hedges++;
      }
    }
    expect(hedges).toBeLessThanOrEqual(11);
    expect(hedges).toBeGreaterThanOrEqual(10);
  });
});
