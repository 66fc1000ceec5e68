/**
 * The ledger's two folds agree: the Lua script (real redis-server when
 * installed, else ioredis-mock's Lua) and the embedded store's commands under
 * a lock leave exactly the same keys, and a record delivered many times at
 * once counts once in each.
 */
import { redisServerBinary, startRedisServer, type RedisServer } from "@hearth/devkit";
import { USAGE_DOORS, usageDay, type UsageRecord } from "@hearth/protocol";
import { Redis } from "ioredis";
import RedisMock from "ioredis-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerStore } from "../src/ledger/index.ts";

let server: RedisServer | undefined;
beforeAll(async () => {
  if (redisServerBinary()) server = await startRedisServer();
});
afterAll(async () => {
  await server?.stop();
});

function record(i: number): UsageRecord {
  const at = Date.UTC(2026, 11, 1, 23, 59, 59) + i * 7; // crosses midnight: two days
  return {
    v: 2,
    id: `00000000-0000-4000-8000-${String(i % 40).padStart(12, "0")}`, // ids 0-39 come again: duplicates
    requestId: `req-${i}`,
    app: i % 4 === 0 ? "blog" : "shop",
    fn: i % 3 === 0 ? "cart" : "search",
    version: "a".repeat(64),
    deviceId: i % 5 === 0 ? null : i % 2 === 0 ? "dev-a" : "dev-b",
    at,
    day: usageDay(at),
    wallUs: i % 6 === 0 ? 0 : 1_000 + i,
    cpuUs: i % 6 === 0 ? 0 : 500 + i,
    claimedCpuUs: 500 + i,
    requestBytes: i % 2 ? 0 : 10 + i,
    responseBytes: 100 + i,
    cold: i % 5 === 0,
    status: i % 7 === 0 ? 500 : 200,
    outcome: i % 7 === 0 ? "ERR_FUNCTION_THREW" : "ok",
    // every door, and records from before doors were kept (none: the gateway's)
    ...(i % 6 === 5 ? {} : { door: USAGE_DOORS[i % 6]! }),
    // some of a door's own calls on its word alone: held as claimed on the device's account
    ...(i % 12 === 1 ? { credited: false as const } : {}),
  };
}

/** Every key under the prefix with its whole value (sets sorted), for comparison. */
async function dump(redis: Redis, prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of (await redis.keys(`${prefix}*`)).sort()) {
    const type = await redis.type(key);
    out[key.slice(prefix.length)] = type === "hash" ? await redis.hgetall(key) : type === "set" ? (await redis.smembers(key)).sort() : type;
  }
  return out;
}

describe("ledger fold", () => {
  it("the embedded fold leaves what the Lua script leaves, record for record", async () => {
    const script = server ? new Redis(server.url) : (new RedisMock() as unknown as Redis);
    const mock = new RedisMock() as unknown as Redis;
    try {
      const lua = new LedgerStore(script, "fold-lua:");
      const embedded = new LedgerStore(mock, "fold-js:", { embedded: true });
      const records = Array.from({ length: 60 }, (_, i) => record(i));
      const counted = { lua: 0, embedded: 0 };
      for (const r of records) {
        if (await lua.apply(r)) counted.lua++;
        if (await embedded.apply(r)) counted.embedded++;
      }
      expect(counted).toEqual({ lua: 40, embedded: 40 });
      const a = await dump(script, "fold-lua:");
      const b = await dump(mock, "fold-js:");
      expect(Object.keys(a).length).toBeGreaterThan(8);
      expect(b).toEqual(a);
      expect(await mock.ttl(`fold-js:ledger:seen:${records[0]!.day}:${records[0]!.id.slice(0, 3)}`)).toBeGreaterThan(0);
      expect(await mock.get(`fold-js:ledger:seen-count:${records[0]!.day}`)).toBe(String(records.slice(0, 40).filter((r) => r.day === records[0]!.day).length));
      // the usage report tells each function's calls by door, and they add up to its calls
      const expected = new Map<string, Record<string, number>>();
      for (const r of records.slice(0, 40).filter((r) => r.app === "shop")) {
        const doors = expected.get(r.fn) ?? { gateway: 0, device: 0, "device-relay": 0, call: 0, "call-relay": 0 };
        doors[r.door ?? "gateway"]!++;
        expected.set(r.fn, doors);
      }
      for (const store of [lua, embedded]) {
        const usage = await store.appUsage("shop");
        const byFn = new Map<string, Record<string, number>>();
        for (const f of usage.days.flatMap((d) => d.functions)) {
          const doors = byFn.get(f.fn) ?? { gateway: 0, device: 0, "device-relay": 0, call: 0, "call-relay": 0 };
          for (const [door, n] of Object.entries(f.doors)) doors[door]! += n;
          byFn.set(f.fn, doors);
          expect(Object.values(f.doors).reduce((a, n) => a + n, 0)).toBe(f.calls);
        }
        expect(byFn).toEqual(expected);
        expect(Object.values(usage.totals.doors).every((n) => n > 0)).toBe(true);
      }
    } finally {
      script.disconnect();
      mock.disconnect();
    }
  });

  it("the script takes a record marked in its day's old single set of marks (before buckets) as counted", async () => {
    const script = server ? new Redis(server.url) : (new RedisMock() as unknown as Redis);
    try {
      const lua = new LedgerStore(script, "fold-legacy:");
      const r = record(3);
      await script.sadd(lua.legacySeenKey(r.day), r.id);
      expect(await lua.apply(r)).toBe(false);
      expect(await script.exists(lua.appDayKey(r.app, r.day))).toBe(0);
      expect(await lua.apply(record(4))).toBe(true);
    } finally {
      script.disconnect();
    }
  });

  it("a record delivered many times at once counts once in the embedded store, and a snapshot never sees it half-folded", async () => {
    const mock = new RedisMock() as unknown as Redis;
    try {
      const store = new LedgerStore(mock, "fold-race:", { embedded: true });
      const r = record(1);
      const key = store.appDayKey(r.app, r.day);
      const [applied, snap] = await Promise.all([
        Promise.all(Array.from({ length: 20 }, () => store.apply(r))),
        Promise.all(Array.from({ length: 20 }, () => store.snapshot(r.day, key, [r.id]))),
      ]);
      expect(applied.filter(Boolean)).toHaveLength(1);
      for (const s of snap) expect(s.seen[0] ? s.hash["calls"] : undefined).toBe(s.seen[0] ? "1" : undefined);
      expect((await mock.hgetall(key))["calls"]).toBe("1");
    } finally {
      mock.disconnect();
    }
  });
});
