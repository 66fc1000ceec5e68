import { randomUUID } from "node:crypto";
import { usageDay, type UsageRecord } from "@hearth/protocol";
import { redisServerBinary, startRedisServer, type RedisServer } from "@hearth/devkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis } from "../state/index.ts";
import { bucketOf, FunctionStats, HISTOGRAM_BUCKETS, quantileMs, RECENT_ERRORS } from "./index.ts";

const NOW = Date.UTC(2026, 11, 2, 17, 30, 20);

function call(at: number, wallMs: number, outcome = "ok"): UsageRecord {
  return {
    v: 2, id: randomUUID(), requestId: `req-${randomUUID()}`, app: "shop", fn: "cart", version: "a".repeat(64), deviceId: "d1",
    at, day: usageDay(at), wallUs: Math.round(wallMs * 1000), cpuUs: 0, claimedCpuUs: 0, requestBytes: 0, responseBytes: 0,
    cold: false, status: outcome === "ok" ? 200 : 500, outcome,
  };
}

const hasRedis = redisServerBinary() !== undefined;
let server: RedisServer | undefined;
const clients: Redis[] = [];
beforeAll(async () => {
  if (hasRedis) server = await startRedisServer();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await server?.stop();
});

const backends: [string, () => Redis][] = [
  ["ioredis-mock", () => connectRedis(undefined).redis],
  ["redis-server", () => new Redis(server!.url)],
];

describe("wall-time histogram", () => {
  it("puts each wall time in a bounded log-spaced bucket", () => {
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(99)).toBe(0);
    expect(bucketOf(100)).toBe(1);
    expect(bucketOf(1e12)).toBe(HISTOGRAM_BUCKETS - 1);
    expect(bucketOf(Number.NaN)).toBe(0);
    for (let us = 100; us < 1e8; us *= 1.07) expect(bucketOf(us * 1.07)).toBeGreaterThanOrEqual(bucketOf(us));
  });

  it("estimates percentiles within a bucket's width (about 19%)", () => {
    const histogram = new Map<number, number>();
    // 1..1000 ms, one call each: p50 ≈ 500 ms, p99 ≈ 990 ms
    for (let ms = 1; ms <= 1000; ms++) histogram.set(bucketOf(ms * 1000), (histogram.get(bucketOf(ms * 1000)) ?? 0) + 1);
    expect(quantileMs(histogram, 0.5)!).toBeGreaterThan(500 / 1.19);
    expect(quantileMs(histogram, 0.5)!).toBeLessThan(500 * 1.19);
    expect(quantileMs(histogram, 0.99)!).toBeGreaterThan(990 / 1.19);
    expect(quantileMs(histogram, 0.99)!).toBeLessThan(990 * 1.19);
    expect(quantileMs(new Map(), 0.5)).toBeNull();
  });
});

describe.each(backends)("FunctionStats on %s", (name, make) => {
  const stats = () => {
    const redis = make();
    clients.push(redis);
    return new FunctionStats(redis, `stats-test-${randomUUID()}:`);
  };
  const skip = name === "redis-server" && !hasRedis;
  it.skipIf(skip)("charts the last hour per minute: calls, errors, p50 and p99 in the minute they happened", async () => {
    const s = stats();
    for (let i = 0; i < 98; i++) await s.record(call(NOW - 5_000, 10));
    await s.record(call(NOW - 5_000, 900, "ERR_CPU_LIMIT"));
    await s.record(call(NOW - 5_000, 1000, "ERR_CPU_LIMIT"));
    await s.record(call(NOW - 10 * 60_000, 3));
    // older than the hour: not in it
    await s.record(call(NOW - 2 * 3600_000, 3));
    const { points, totals, stepSeconds } = await s.series("shop", "cart", "hour", NOW);
    expect(stepSeconds).toBe(60);
    expect(points).toHaveLength(60);
    const last = points.at(-1)!;
    expect(last.at).toBe(Math.floor(NOW / 60_000) * 60_000);
    expect(last).toMatchObject({ calls: 100, errors: 2 });
    expect(last.p50Ms!).toBeGreaterThan(8);
    expect(last.p50Ms!).toBeLessThan(12);
    expect(last.p99Ms!).toBeGreaterThan(700);
    expect(points.at(-11)).toMatchObject({ calls: 1, errors: 0 });
    expect(points.filter((p) => p.calls === 0).every((p) => p.p50Ms === null && p.p99Ms === null)).toBe(true);
    expect(totals).toMatchObject({ calls: 101, errors: 2 });
  });

  it.skipIf(skip)("charts the last day in 15-minute points, and keeps another function's calls apart", async () => {
    const s = stats();
    await s.record(call(NOW - 2 * 3600_000, 3));
    await s.record({ ...call(NOW, 3), fn: "other" });
    const { points, totals } = await s.series("shop", "cart", "day", NOW);
    expect(points).toHaveLength(96);
    expect(totals.calls).toBe(1);
    expect(points.reduce((n, p) => n + p.calls, 0)).toBe(1);
  });

  it.skipIf(skip)("keeps the newest failed calls with their request ids, at most RECENT_ERRORS", async () => {
    const s = stats();
    const failed: UsageRecord[] = [];
    for (let i = 0; i < RECENT_ERRORS + 5; i++) {
      const r = call(NOW + i, 5, "ERR_WALL_LIMIT");
      failed.push(r);
      await s.record(r);
    }
    await s.record(call(NOW, 5));
    const errors = await s.recentErrors("shop", "cart");
    expect(errors).toHaveLength(RECENT_ERRORS);
    expect(errors[0]).toEqual({ at: failed.at(-1)!.at, requestId: failed.at(-1)!.requestId, code: "ERR_WALL_LIMIT", status: 500, deviceId: "d1" });
  });

  it.skipIf(skip)("writes calls that come at once in one group, newest error first, as one by one", async () => {
    const s = stats();
    const redis = (s as unknown as { redis: Redis }).redis;
    let multis = 0;
    const multi = redis.multi.bind(redis);
    (redis as unknown as { multi: typeof multi }).multi = ((...args: Parameters<typeof multi>) => (multis++, multi(...args))) as typeof multi;
    const failed = Array.from({ length: RECENT_ERRORS + 5 }, (_, i) => call(NOW + i, 5, "ERR_WALL_LIMIT"));
    await Promise.all([...failed, ...Array.from({ length: 45 }, () => call(NOW, 10))].map((r) => s.record(r)));
    expect(multis).toBeLessThanOrEqual(2);
    const { points } = await s.series("shop", "cart", "hour", NOW);
    expect(points.at(-1)).toMatchObject({ calls: 100, errors: RECENT_ERRORS + 5 });
    const errors = await s.recentErrors("shop", "cart");
    expect(errors).toHaveLength(RECENT_ERRORS);
    expect(errors[0]!.requestId).toBe(failed.at(-1)!.requestId);
    expect(errors.at(-1)!.requestId).toBe(failed[5]!.requestId);
  });
});
