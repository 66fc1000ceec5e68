/**
 * How near each device is to this gateway, and how well it has answered
 * lately: what the gateway ranks devices by within a region (docs/routing.md).
 *
 * Nearness is measured here, never taken from the device: the gateway pings
 * each live device's control subject now and then and times the answer. A
 * device can make itself look farther (answer late) but never nearer than
 * the network is, so a hostile device cannot draw calls by claiming to be
 * close. Its owner's declared location is not used for this.
 *
 * Answers: each call's outcome (answered, or timed out / left / refused)
 * moves a per-device failure rate; a device that failed lately ranks lower
 * until it answers well again.
 */
import { ControlReply, type Subjects } from "@hearth/protocol";
import type { NatsConnection } from "@nats-io/transport-node";

/** Round trips are smoothed: each new one counts this much. */
const RTT_WEIGHT = 0.3;
/** Failures are smoothed the same way (a rate between 0 and 1). */
const FAILURE_WEIGHT = 0.2;
/** What a failure rate of 1 adds to a device's score, in ms of round trip. */
const FAILURE_PENALTY_MS = 200;
/**
 * The failure rate also halves every this many ms without news: otherwise a
 * device that failed a few calls would be passed over for good (it gets no
 * calls, so no good outcome ever lowers its rate again).
 */
const FAILURE_HALF_LIFE_MS = 5_000;

export interface LatencyOptions {
  nc: NatsConnection;
  subjects: Subjects;
  /** The devices worth measuring (the live table). */
  devices: () => string[];
  /** A device is measured again after this long (default 10 s). */
  everyMs?: number;
  /** At most this many pings a second (default 50), so a big fleet is measured over a longer cycle. */
  perSecond?: number;
}

interface DeviceFacts {
  rttMs?: number;
  measuredAt: number;
  failure: number;
  /** When `failure` was last set (ms since epoch). */
  failureAt?: number;
}

export class DeviceLatency implements AsyncDisposable {
  private readonly facts = new Map<string, DeviceFacts>();
  private readonly options: Required<LatencyOptions>;
  private timer?: NodeJS.Timeout;
  private readonly probing = new Set<string>();

  constructor(options: LatencyOptions) {
    this.options = { everyMs: 10_000, perSecond: 50, ...options };
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), 1_000);
    this.timer.unref();
    this.tick();
  }

  /** The device's smoothed round trip from this gateway, ms; undefined until measured. */
  rttOf(deviceId: string): number | undefined {
    return this.facts.get(deviceId)?.rttMs;
  }

  /** What the device's recent failures add to its score, ms. */
  penalty(deviceId: string): number {
    const f = this.facts.get(deviceId);
    return f ? failureNow(f, Date.now()) * FAILURE_PENALTY_MS : 0;
  }

  /** A call to the device answered (true) or failed: timed out, left, refused as busy (false). */
  outcome(deviceId: string, ok: boolean): void {
    const f = this.factsOf(deviceId);
    const now = Date.now();
    f.failure = failureNow(f, now) * (1 - FAILURE_WEIGHT) + (ok ? 0 : FAILURE_WEIGHT);
    f.failureAt = now;
  }

  /** A measured round trip (the prober's, or a test's). */
  record(deviceId: string, rttMs: number): void {
    const f = this.factsOf(deviceId);
    f.rttMs = f.rttMs === undefined ? rttMs : f.rttMs * (1 - RTT_WEIGHT) + rttMs * RTT_WEIGHT;
    f.measuredAt = Date.now();
  }

  private factsOf(deviceId: string): DeviceFacts {
    let f = this.facts.get(deviceId);
    if (!f) {
      if (this.facts.size > 200_000) this.facts.clear();
      f = { measuredAt: 0, failure: 0 };
      this.facts.set(deviceId, f);
    }
    return f;
  }

  /** Pings the devices measured longest ago (none more often than everyMs), up to perSecond of them. */
  private tick(): void {
    const now = Date.now();
    const due = this.options
      .devices()
      .filter((id) => !this.probing.has(id) && now - (this.facts.get(id)?.measuredAt ?? 0) >= this.options.everyMs)
      .sort((a, b) => (this.facts.get(a)?.measuredAt ?? 0) - (this.facts.get(b)?.measuredAt ?? 0))
      .slice(0, this.options.perSecond);
    for (const id of due) void this.probe(id);
  }

  private async probe(deviceId: string): Promise<void> {
    if (this.options.nc.isClosed()) return;
    this.probing.add(deviceId);
    const started = performance.now();
    try {
      const reply = await this.options.nc.request(this.options.subjects.control(deviceId), JSON.stringify({ type: "ping" }), { timeout: 2_000 });
      if (ControlReply.safeParse(reply.json()).success) this.record(deviceId, performance.now() - started);
    } catch {
      // no answer: the scheduler's liveness and the call outcomes deal with it
      this.factsOf(deviceId).measuredAt = Date.now();
    } finally {
      this.probing.delete(deviceId);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearInterval(this.timer);
  }
}

/** A device's failure rate decayed to `now` (halving every FAILURE_HALF_LIFE_MS since it was set). */
function failureNow(f: DeviceFacts, now: number): number {
  if (f.failure === 0 || f.failureAt === undefined) return f.failure;
  return f.failure * 0.5 ** (Math.max(0, now - f.failureAt) / FAILURE_HALF_LIFE_MS);
}
