import { expect, it } from "vitest";
import { HANDLE, HandleTable } from "./handles.ts";

const LIMITS = { key: 3, hash: 1, zlib: 1 };

it("a handle means something in its own table only, and for its own kind", () => {
  const a = new HandleTable(1 << 20, LIMITS);
  const b = new HandleTable(1 << 20, LIMITS);
  const handle = a.add("key", "secret key", 100);
  expect(handle).toMatch(HANDLE);
  expect(a.get("key", handle)).toBe("secret key");
  expect(b.get("key", handle)).toBeUndefined();
  expect(a.get("zlib", handle)).toBeUndefined();
  expect(a.get("key", "A".repeat(22))).toBeUndefined();
  expect(a.get("key", { toString: () => handle })).toBeUndefined();
  // 128 random bits each: no two alike
  const many = new HandleTable(1 << 30, { key: 10_000, hash: 0, zlib: 0 });
  const seen = new Set(Array.from({ length: 5_000 }, () => many.add("key", 1, 1)));
  expect(seen.size).toBe(5_000);
});

it("is bounded by count per kind and by memory, and closes what it drops", () => {
  const closed: string[] = [];
  const table = new HandleTable(1000, LIMITS);
  table.add("zlib", "z1", 10, () => closed.push("z1"));
  expect(() => table.add("zlib", "z2", 10, () => closed.push("z2"))).toThrow(/compression streams/);
  expect(closed).toEqual(["z2"]);
  expect(() => table.add("key", "big", 2000)).toThrow(/MiB of host memory/);
  const k = table.add("key", "k", 500);
  table.delete(k);
  expect(table.get("key", k)).toBeUndefined();
  table.add("key", "k2", 900);
  table.clear();
  expect(closed).toEqual(["z2", "z1"]);
  expect(table.size).toBe(0);
});
