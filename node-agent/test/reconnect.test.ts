/**
 * The agent's way back onto the fabric: reconnect backoff (exponential, with
 * jitter, forever) driven by a faithful model of nats.js v3's dial loop on a
 * fake clock, and the clock-jump watch that notices a sleep/wake.
 */
import { describe, expect, it } from "vitest";
import { ClockJumpWatch, ReconnectBackoff } from "../src/agent/reconnect.ts";

/** A clock the test moves. */
class FakeClock {
  t = 1_000_000;
  readonly now = () => this.t;
}

/**
 * nats.js v3's `dodialLoop` (protocol.js) for one server: ask the handler for
 * the wait, dial when `lastConnect === 0 || lastConnect + wait <= now`, else
 * sleep `min(wait, lastConnect + wait - now)` and ask again. A dial takes
 * `dialMs`. Returns the times it dialed, up to the first that succeeded.
 */
function dialLoop(
  backoff: ReconnectBackoff,
  clock: FakeClock,
  server: { lastConnect: number },
  up: (t: number) => boolean,
  options: { dialMs?: number; maxDials?: number; spuriousCalls?: boolean } = {},
): number[] {
  const dials: number[] = [];
  for (let pass = 0; pass < 100_000; pass++) {
    const wait = backoff.handler();
    // the real loop may ask again without dialing (e.g. a sleep that woke early): the answer must not move the schedule
    if (options.spuriousCalls) backoff.handler();
    const now = clock.t;
    if (server.lastConnect === 0 || server.lastConnect + wait <= now) {
      server.lastConnect = now;
      dials.push(now);
      clock.t += options.dialMs ?? 2;
      if (up(now)) {
        backoff.connected();
        return dials;
      }
      if (dials.length >= (options.maxDials ?? Infinity)) return dials;
    } else {
      clock.t += Math.min(wait, server.lastConnect + wait - now);
    }
  }
  throw new Error("the dial loop spun without dialing");
}

const gaps = (times: number[]) => times.slice(1).map((t, i) => t - times[i]!);

describe("ReconnectBackoff", () => {
  it("dials at once on the first connect", () => {
    const clock = new FakeClock();
    const backoff = new ReconnectBackoff({ now: clock.now });
    const dials = dialLoop(backoff, clock, { lastConnect: 0 }, () => true);
    expect(dials).toEqual([1_000_000]);
  });

  it("waits longer after each failed attempt (exponential, within its jitter band), up to the cap, and never gives up", () => {
    const clock = new FakeClock();
    const backoff = new ReconnectBackoff({ now: clock.now, baseMs: 500, maxMs: 30_000 });
    const server = { lastConnect: 0 };
    dialLoop(backoff, clock, server, () => true);
    clock.t += 60_000; // connected for a minute
    const downUntil = clock.t + 3_600_000; // then the server is gone for an hour
    const dials = dialLoop(backoff, clock, server, (t) => t >= downUntil);
    expect(dials.length).toBeGreaterThan(100); // an hour at most 30 s apart: still trying
    const g = gaps(dials);
    // gap n lies in [d/2, d] for d = min(max, base * 2^n) (plus the time a dial takes)
    g.forEach((gap, i) => {
      const full = Math.min(30_000, 500 * 2 ** (i + 1));
      expect(gap).toBeGreaterThanOrEqual(full / 2);
      expect(gap).toBeLessThanOrEqual(full + 5);
    });
    expect(Math.max(...g)).toBeLessThanOrEqual(30_005);
    // reconnected within one gap of the server coming back
    expect(dials.at(-1)! - downUntil).toBeLessThanOrEqual(30_005);
  });

  it("answers the same schedule however often the dial loop asks", () => {
    const run = (spuriousCalls: boolean) => {
      const clock = new FakeClock();
      let seed = 1;
      const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
      const backoff = new ReconnectBackoff({ now: clock.now, random });
      const server = { lastConnect: 0 };
      dialLoop(backoff, clock, server, () => true);
      clock.t += 20_000;
      return gaps(dialLoop(backoff, clock, server, () => false, { maxDials: 12, spuriousCalls }));
    };
    expect(run(true)).toEqual(run(false));
  });

  it("spreads the first attempt of many devices that lost the same server over the base delay", () => {
    const firsts = Array.from({ length: 200 }, () => {
      const clock = new FakeClock();
      const backoff = new ReconnectBackoff({ now: clock.now, baseMs: 500 });
      const server = { lastConnect: 0 };
      dialLoop(backoff, clock, server, () => true);
      clock.t += 20_000;
      const lost = clock.t;
      return dialLoop(backoff, clock, server, () => true)[0]! - lost;
    });
    expect(Math.min(...firsts)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...firsts)).toBeLessThanOrEqual(500);
    // not all at once: spread over the window
    expect(new Set(firsts.map((t) => Math.floor(t / 100))).size).toBeGreaterThanOrEqual(4);
  });

  it("starts over after a connection that held, keeps backing off after one that flapped", () => {
    const clock = new FakeClock();
    const backoff = new ReconnectBackoff({ now: clock.now, baseMs: 500, healthyAfterMs: 10_000, random: () => 1 });
    const server = { lastConnect: 0 };
    dialLoop(backoff, clock, server, () => true);
    clock.t += 20_000;
    let n = 0;
    dialLoop(backoff, clock, server, () => ++n > 6);
    expect(backoff.attemptsMade).toBe(7);
    // connected for 1 s only, then lost again: the next first wait is long already
    clock.t += 1_000;
    const flapped = clock.t;
    const afterFlap = dialLoop(backoff, clock, server, () => true)[0]! - flapped;
    expect(afterFlap).toBeGreaterThan(10_000);
    // connected for a minute: the next outage starts gently
    clock.t += 60_000;
    const held = clock.t;
    expect(dialLoop(backoff, clock, server, () => true)[0]! - held).toBeLessThanOrEqual(500);
  });

  it("after a wake, the next attempt is due at once", () => {
    const clock = new FakeClock();
    const backoff = new ReconnectBackoff({ now: clock.now, random: () => 1 });
    const server = { lastConnect: 0 };
    dialLoop(backoff, clock, server, () => true);
    clock.t += 20_000;
    dialLoop(backoff, clock, server, () => false, { maxDials: 10 });
    const before = clock.t;
    backoff.wake();
    expect(dialLoop(backoff, clock, server, () => true)[0]).toBe(before);
  });
});

describe("ClockJumpWatch", () => {
  it("says nothing while ticks come on time, and reports a tick that came far later than scheduled", () => {
    const clock = new FakeClock();
    const jumps: number[] = [];
    const watch = new ClockJumpWatch({ now: clock.now, intervalMs: 1_000, thresholdMs: 5_000, onJump: (late) => jumps.push(late) });
    watch.start();
    watch.stop(); // the test ticks by hand
    for (let i = 0; i < 10; i++) {
      clock.t += 1_000 + (i % 3) * 400; // a busy event loop is a little late, not a jump
      watch.tick();
    }
    expect(jumps).toEqual([]);
    clock.t += 45 * 60_000; // the lid was closed for 45 minutes
    watch.tick();
    expect(jumps).toEqual([45 * 60_000 - 1_000]);
    clock.t += 1_000;
    watch.tick();
    expect(jumps).toHaveLength(1);
  });
});
