import { redisServerBinary, startRedisServer, type RedisServer } from "@hearth/devkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis, Store } from "./index.ts";

const hasRedis = redisServerBinary() !== undefined;
let server: RedisServer | undefined;

beforeAll(async () => {
  if (hasRedis) server = await startRedisServer();
});
afterAll(async () => {
  await server?.stop();
});

const backends: [string, () => Redis][] = [
  ["ioredis-mock", () => connectRedis(undefined).redis],
  ["redis-server", () => new Redis(server!.url)],
];

describe.each(backends)("Store on %s", (name, make) => {
  const skip = name === "redis-server" && !hasRedis;
  let n = 0;
  const store = () => new Store(make(), `t${process.pid}-${Date.now()}-${++n}:`);
  const record = (version: string) => ({
    app: "shop",
    name: "cart",
    version,
    limits: { memoryMb: 64, cpuMs: 100, wallMs: 1000, requestBytes: 1024, responseBytes: 1024 },
    replicas: 2,
    createdAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:00.000Z",
  });

  it.skipIf(skip)("keeps bundles by hash, immutable", async () => {
    const s = store();
    await s.putBundle("a".repeat(64), new TextEncoder().encode("one"));
    await s.putBundle("a".repeat(64), new TextEncoder().encode("two"));
    expect((await s.getBundle("a".repeat(64)))?.toString()).toBe("one");
    expect(await s.getBundle("b".repeat(64))).toBeNull();
    s.redis.disconnect();
  });

  it.skipIf(skip)("saves, lists, versions and deletes functions", async () => {
    const s = store();
    await s.saveFunction(record("1".repeat(64)), { version: "1".repeat(64), size: 3, createdAt: "2026-01-01T00:00:00.000Z" });
    await s.saveFunction(record("2".repeat(64)), { version: "2".repeat(64), size: 4, createdAt: "2026-01-02T00:00:00.000Z" });
    expect((await s.getFunction("shop", "cart"))?.version).toBe("2".repeat(64));
    expect((await s.listFunctions("shop")).map((f) => f.name)).toEqual(["cart"]);
    expect(await s.listFunctions("other")).toEqual([]);
    expect((await s.listVersions("shop", "cart")).map((v) => v.size)).toEqual([4, 3]);
    await s.setPlacement("shop", "cart", { devices: { d1: { version: "2".repeat(64), placedAt: 1 } } });
    expect(Object.keys((await s.getPlacement("shop", "cart")).devices)).toEqual(["d1"]);
    expect(await s.deleteFunction("shop", "cart")).toBe(true);
    expect(await s.deleteFunction("shop", "cart")).toBe(false);
    expect(await s.getFunction("shop", "cart")).toBeNull();
    // a placement written after the delete does not resurrect the function
    await s.setPlacement("shop", "cart", { devices: { d1: { version: "2".repeat(64), placedAt: 2 } } });
    expect((await s.getPlacement("shop", "cart")).devices).toEqual({});
    s.redis.disconnect();
  });

  it.skipIf(skip)("gives a lease to one holder at a time", async () => {
    const s = store();
    expect(await s.lease("x", "a", 10_000)).toBe(true);
    expect(await s.lease("x", "b", 10_000)).toBe(false);
    expect(await s.lease("x", "a", 10_000)).toBe(true);
    s.redis.disconnect();
  });
});
