import { describe, expect, it } from "vitest";
import { CoreGate, WarmIsolates } from "./index.ts";

describe("CoreGate", () => {
  it("never lets more calls run than donated cores; the rest wait their turn in order", async () => {
    const gate = new CoreGate({ slots: 1, maxQueued: 10, maxWaitMs: 5_000 });
    const order: number[] = [];
    const first = await gate.acquire();
    const waiting = [1, 2, 3].map((n) => gate.acquire().then((release) => (order.push(n), release)));
    expect(gate.inUse).toBe(1);
    expect(gate.queued).toBe(3);
    first();
    for (const p of waiting) (await p)();
    expect(order).toEqual([1, 2, 3]);
    expect(gate.peak).toBe(1);
    expect(gate.inUse).toBe(0);
  });

  it("takes a free core at once with tryAcquire, and never one a waiting call is owed", async () => {
    const gate = new CoreGate({ slots: 1, maxQueued: 10, maxWaitMs: 5_000 });
    const first = gate.tryAcquire()!;
    expect(gate.inUse).toBe(1);
    expect(gate.tryAcquire()).toBeUndefined();
    const waiting = gate.acquire();
    first();
    // the freed core went to the call that waited for it
    expect(gate.tryAcquire()).toBeUndefined();
    (await waiting)();
    const again = gate.tryAcquire();
    expect(again).toBeTypeOf("function");
    again!();
    expect(gate.inUse).toBe(0);
  });

  it("fails with ERR_DEVICE_BUSY when the queue is full or the wait too long", async () => {
    const gate = new CoreGate({ slots: 1, maxQueued: 1, maxWaitMs: 20 });
    const held = await gate.acquire();
    const queued = gate.acquire();
    await expect(gate.acquire()).rejects.toMatchObject({ code: "ERR_DEVICE_BUSY", message: expect.stringMatching(/1 are waiting/) });
    await expect(queued).rejects.toMatchObject({ code: "ERR_DEVICE_BUSY", message: expect.stringMatching(/no free core/) });
    held();
    expect(gate.queued).toBe(0);
  });

  it("drops a waiting call that is cancelled, and gives its turn to the next", async () => {
    const gate = new CoreGate({ slots: 1, maxQueued: 4, maxWaitMs: 5_000 });
    const first = await gate.acquire();
    const cancel = new AbortController();
    const cancelled = gate.acquire(5_000, cancel.signal);
    const next = gate.acquire();
    expect(gate.queued).toBe(2);
    cancel.abort();
    await expect(cancelled).rejects.toMatchObject({ code: "ERR_NO_DEVICE" });
    expect(gate.queued).toBe(1);
    first();
    const release = await next;
    expect(gate.inUse).toBe(1);
    release();
    // an already-cancelled call never waits
    await expect(gate.acquire(5_000, cancel.signal)).rejects.toMatchObject({ code: "ERR_NO_DEVICE" });
  });

  it("uses whole cores: 2.5 donated cores run two calls at once", () => {
    expect(new CoreGate({ slots: 2.5, maxQueued: 0, maxWaitMs: 0 }).slots).toBe(2);
  });
});

describe("WarmIsolates", () => {
  it("evicts the least recently used idle isolates first to stay within the donated memory", () => {
    const evicted: string[] = [];
    const warm = new WarmIsolates(256, (k) => evicted.push(k));
    warm.use("a", 128)();
    warm.use("b", 64)();
    warm.use("a", 128)(); // a used again: b is now the oldest
    warm.use("c", 128)();
    expect(evicted).toEqual(["b"]);
    expect(warm.usedMb).toBe(256);
    warm.use("d", 256)();
    expect(evicted).toEqual(["b", "a", "c"]);
    expect(warm.usedMb).toBe(256);
  });

  it("never evicts a running isolate; refuses instead of going over", () => {
    const warm = new WarmIsolates(128, () => undefined);
    const running = warm.use("a", 128);
    expect(() => warm.use("b", 64)).toThrow(expect.objectContaining({ code: "ERR_DEVICE_BUSY" }));
    running();
    expect(() => warm.use("b", 64)).not.toThrow();
    expect(() => warm.use("huge", 512)).toThrow(/donates only 128 MiB/);
  });
});
