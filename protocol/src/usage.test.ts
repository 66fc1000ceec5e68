import { describe, expect, it } from "vitest";
import { usageCodec, usageDay, USAGE_GROUP_MAX, type UsageRecord } from "./usage.ts";

const enc = new TextEncoder();

function record(i: number): UsageRecord {
  const at = Date.UTC(2026, 11, 3, 12, 0, 0) + i;
  return {
    v: 2, id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, requestId: `req-${i}`, app: "shop", fn: "cart", version: "a".repeat(64),
    deviceId: "dev-a", at, day: usageDay(at), wallUs: 1_000, cpuUs: 500, claimedCpuUs: 500, requestBytes: 10, responseBytes: 100,
    cold: false, status: 200, outcome: "ok", door: "gateway",
  };
}

describe("the usage stream's codec", () => {
  it("writes one record as itself and a group as an array, and reads both back checked", () => {
    const one = usageCodec.encode([record(1)]);
    expect(JSON.parse(one)).toEqual(record(1));
    expect(usageCodec.decode(enc.encode(one))).toEqual([record(1)]);
    const group = [record(1), record(2), record(3)];
    expect(JSON.parse(usageCodec.encode(group))).toEqual(group);
    expect(usageCodec.decode(enc.encode(usageCodec.encode(group)))).toEqual(group);
  });

  it("holds 1 to USAGE_GROUP_MAX records a message, and reads nothing else", () => {
    const full = Array.from({ length: USAGE_GROUP_MAX }, (_, i) => record(i));
    expect(usageCodec.decode(enc.encode(usageCodec.encode(full)))).toHaveLength(USAGE_GROUP_MAX);
    expect(() => usageCodec.encode([])).toThrow(RangeError);
    expect(() => usageCodec.encode([...full, record(999)])).toThrow(RangeError);
    for (const bad of [JSON.stringify([...full, record(999)]), "[]", "not json", JSON.stringify([record(1), { ...record(2), cpuUs: -1 }]), JSON.stringify({ ...record(1), extra: 1 })]) {
      expect(usageCodec.decode(enc.encode(bad)), bad.slice(0, 40)).toBeUndefined();
    }
  });
});
