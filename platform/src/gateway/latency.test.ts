import { Subjects } from "@hearth/protocol";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DeviceLatency } from "./latency.ts";

describe("a device's failure penalty", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("rises with failures, falls with good answers, and fades with time when the device gets no calls", () => {
    vi.useFakeTimers({ now: 1_000_000, toFake: ["Date"] });
    const latency = new DeviceLatency({ nc: {} as NatsConnection, subjects: new Subjects("t"), devices: () => [] });
    expect(latency.penalty("d")).toBe(0);
    for (let i = 0; i < 5; i++) latency.outcome("d", false);
    const failed = latency.penalty("d");
    expect(failed).toBeGreaterThan(100);
    latency.outcome("d", true);
    expect(latency.penalty("d")).toBeLessThan(failed);
    const now = latency.penalty("d");
    // passed over for its failures, it gets no calls: the penalty still halves every 5 s
    vi.setSystemTime(1_000_000 + 5_000);
    expect(latency.penalty("d")).toBeCloseTo(now / 2, 5);
    vi.setSystemTime(1_000_000 + 60_000);
    expect(latency.penalty("d")).toBeLessThan(1);
  });
});
