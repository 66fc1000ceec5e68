/**
 * Usage metering at the gateway: every finished call becomes one
 * UsageRecord, published to the usage stream (JetStream) with the record's
 * own id (made here, one per call, never the caller's request id) as its
 * message id, so a retried publish is dropped as a duplicate inside the
 * stream's window. The gateway's own observations (who called what, when,
 * how long, how many bytes) are the record; the device's CPU claim rides
 * along, capped by the wall time the gateway observed and by the function's
 * CPU limit.
 *
 * The record is durable before the caller gets the answer: the gateway
 * awaits JetStream's ack (a short timeout). Records are stored in group
 * commits: while a function's message is on its way to JetStream, the
 * records of the calls finishing meanwhile wait and go together in the next
 * message, so under load one publish and one ack serve many calls (and an
 * idle gateway stores each record at once, alone). Only when JetStream does
 * not ack in time does a record fall back to an in-memory retry queue
 * (logged loudly, counted in `stats.deferred`); `flush()` waits for that
 * queue on shutdown. See docs/ledger.md.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  usageCodec,
  usageDay,
  USAGE_GROUP_MAX,
  UsageRecord,
  type Subjects,
  type UsageRecord as UsageRecordT,
} from "@hearth/protocol";
import {
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log/index.ts";

/** What the gateway knows when a call is over. */
export interface CallFacts {
  /** The record's id when the call already has one (a door's report, sent again after a lost ack); else a new one. */
  id?: string;
  /** The caller's request id (or the gateway's, when the caller sent none): for correlation, not identity. */
  requestId: string;
  app: string;
  fn: string;
  version: string;
  /** When the gateway received the call (ms since epoch). */
  at: number;
  /** Wall time the gateway observed, from sending the invocation to having the reply (ms). */
  wallMs: number;
  requestBytes: number;
  responseBytes: number;
  /** The function's CPU limit for this call (ms): no call bills more CPU than it. */
  cpuLimitMs: number;
  /** The HTTP status the caller got. */
  status: number;
  /** The error code the caller got; none when the device's answer went through. */
  errorCode?: string;
  /** What a device that answered with a valid reply said about itself (none when no device did). */
  device?: { id: string; cpuMs?: string; wallMs?: string; cold: boolean };
  /** False when the platform could not verify that the device served it (a door's word alone): billed, not credited. */
  credited?: false;
  /** Which door the call came in by: the app's own host, the path form, or a device's own door, served there or relayed. */
  door?: "host" | "path" | "device" | "device-relay" | "call" | "call-relay";
  /** The gateway's whole time on the call so far, from the request to the device's answer (ms; metrics only). */
  gatewayMs?: number;
}

/** Hands a finished call's facts to whoever meters them (the gateway awaits it once per call, before answering). */
export type CallHook = (facts: CallFacts) => Promise<void> | void;

const NANOS_PER_MS = 1_000_000;
const DAY_MS = 86_400_000;

/** How long the usage stream keeps records: a billing month plus margin. */
export const USAGE_MAX_AGE_MS = 35 * DAY_MS;
/** Window in which JetStream drops a record whose request id it already holds. */
export const USAGE_DUPLICATE_WINDOW_MS = 10 * 60_000;

/** Names of the usage stream and its subjects for one subject prefix (each Hearth, or test, owns its own). */
export function usageNames(subjects: Subjects) {
  const stream = `${subjects.prefix.toUpperCase().replace(/[^A-Z0-9_-]/g, "_")}_USAGE`;
  return {
    stream,
    /** Every usage record's subject. */
    filter: `${subjects.prefix}.usage.>`,
    subject: (app: string, fn: string) => `${subjects.prefix}.usage.${app}.${fn}`,
    /** The ledger's durable consumer. */
    durable: "ledger",
  };
}

/** Makes sure the usage stream exists with the settings the ledger's exactness relies on. */
export async function ensureUsageStream(jsm: JetStreamManager, subjects: Subjects): Promise<StreamConfig> {
  const names = usageNames(subjects);
  const config: Partial<StreamConfig> & { name: string } = {
    name: names.stream,
    subjects: [names.filter],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: USAGE_MAX_AGE_MS * NANOS_PER_MS,
    duplicate_window: USAGE_DUPLICATE_WINDOW_MS * NANOS_PER_MS,
  };
  try {
    const info = await jsm.streams.info(names.stream);
    const current = info.config;
    if (current.max_age !== config.max_age || current.duplicate_window !== config.duplicate_window) {
      return (await jsm.streams.update(names.stream, { ...current, max_age: config.max_age, duplicate_window: config.duplicate_window })).config;
    }
    return current;
  } catch (error) {
    if ((error as { name?: string }).name !== "StreamNotFoundError" && !/stream not found/i.test((error as Error).message)) throw error;
    return (await jsm.streams.add(config)).config;
  }
}

/** Parses a device-reported number of milliseconds into whole microseconds; anything odd counts as 0. */
function microsFromHeader(value: string | undefined): number {
  if (!value || value.length > 32 || !/^\d+(\.\d+)?$/.test(value)) return 0;
  const ms = Number(value);
  return Number.isFinite(ms) ? Math.round(ms * 1000) : 0;
}

/** Builds the record of one call from what the gateway saw (and the device's claims, capped); `id` is new and unique. */
export function usageRecordOf(facts: CallFacts): UsageRecordT {
  const wallUs = Math.max(0, Math.round(facts.wallMs * 1000));
  // the gateway validated the device's reply (its id included) before it told us
  const deviceId = facts.device?.id ?? null;
  const claimedCpuUs = deviceId ? microsFromHeader(facts.device?.cpuMs) : 0;
  return UsageRecord.parse({
    v: 2,
    id: facts.id ?? randomUUID(),
    requestId: facts.requestId,
    app: facts.app,
    fn: facts.fn,
    version: facts.version,
    deviceId,
    at: Math.round(facts.at),
    day: usageDay(facts.at),
    wallUs,
    // a device cannot bill for more CPU than the call lasted as the gateway saw it, nor than the function may use
    // (a call stopped at its limit overshoots it by the watchdog's tick; the claim stays in claimedCpuUs)
    cpuUs: Math.min(claimedCpuUs, wallUs, Math.round(facts.cpuLimitMs * 1000)),
    claimedCpuUs,
    requestBytes: facts.requestBytes,
    responseBytes: facts.responseBytes,
    cold: deviceId !== null && facts.device?.cold === true,
    status: facts.status,
    outcome: facts.errorCode ?? "ok",
    // the app's host and the path form are both the gateway's
    door: facts.door === undefined || facts.door === "host" || facts.door === "path" ? "gateway" : facts.door,
    ...(facts.credited === false && deviceId !== null ? { credited: false } : {}),
  });
}

export interface UsagePublisherOptions {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** How long a call waits for JetStream to store its record before the record falls back to the retry queue. */
  ackTimeoutMs?: number;
  /** Retry-queue publishes at once; the rest wait in order. */
  maxInFlight?: number;
  /** Records held in the retry queue while JetStream is unreachable before the oldest are logged and dropped. */
  maxQueued?: number;
}

/** Default wait for JetStream's ack on the call's path: well above a healthy ack (~1 ms), well below any caller's patience. */
export const USAGE_ACK_TIMEOUT_MS = 1_000;

/** A group commit's message id: a digest of its records' ids, in order. */
function groupId(records: readonly UsageRecordT[]): string {
  const hash = createHash("sha256");
  for (const r of records) hash.update(r.id);
  return `group-${hash.digest("base64url")}`;
}

/** The records of one function waiting for the message on its way to be stored, and whether one is. */
interface CommitLane {
  busy: boolean;
  waiting: { record: UsageRecordT; stored: () => void }[];
}

/** Publishes usage records to the usage stream: on the call's path in group commits, with a retry queue behind it. */
export class UsagePublisher implements AsyncDisposable {
  readonly js: JetStreamClient;
  private readonly names: ReturnType<typeof usageNames>;
  private readonly log: Logger;
  private readonly ackTimeoutMs: number;
  private readonly maxInFlight: number;
  private readonly maxQueued: number;
  private readonly queue: UsageRecordT[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  /** Group commits on the call's path, one lane per usage subject (app and function), dropped when idle. */
  private readonly lanes = new Map<string, CommitLane>();
  /** Records in the lanes: waiting for, or in, a message on its way. */
  private onPath = 0;
  private closed = false;
  private idle: (() => void)[] = [];
  /** When a record last failed to be stored on the call's path; cleared by the next record stored. */
  private failedAt = 0;
  private lastDeferredLog = 0;
  private deferredSinceLog = 0;
  /**
   * Counters for tests, status and alerts: `published` stored (on the call's
   * path or later), `deferred` not acked in time on the call's path (went to
   * the retry queue), `dropped` lost (logged in full); all counted in
   * records. `commits` counts messages stored on the call's path (each one
   * record or a group of them).
   */
  readonly stats = { published: 0, duplicates: 0, deferred: 0, retries: 0, dropped: 0, commits: 0 };

  private constructor(js: JetStreamClient, options: UsagePublisherOptions) {
    this.js = js;
    this.names = usageNames(options.subjects);
    this.log = options.log;
    this.ackTimeoutMs = options.ackTimeoutMs ?? USAGE_ACK_TIMEOUT_MS;
    this.maxInFlight = options.maxInFlight ?? 256;
    this.maxQueued = options.maxQueued ?? 100_000;
  }

  /** Creates the usage stream if needed; throws when JetStream is not available. */
  static async start(options: UsagePublisherOptions): Promise<UsagePublisher> {
    const jsm = await jetstreamManager(options.nc, { timeout: 5_000 });
    await ensureUsageStream(jsm, options.subjects);
    return new UsagePublisher(jetstream(options.nc, { timeout: 5_000 }), options);
  }

  /**
   * The gateway's hook: meters one finished call and resolves once its record
   * is stored in JetStream, or once it is in the retry queue (after
   * `ackTimeoutMs`). Never throws.
   */
  readonly record: CallHook = async (facts) => {
    let record: UsageRecordT;
    try {
      record = usageRecordOf(facts);
    } catch (error) {
      this.log.error({ requestId: facts.requestId, err: error }, "could not build the usage record of a call");
      return;
    }
    await this.store(record);
  };

  /**
   * Stores one record on the call's path: resolves once JetStream acked the
   * message holding it, or once it is in the retry queue (JetStream did not
   * ack within `ackTimeoutMs`). While JetStream is failing (a message failed
   * in the last `ackTimeoutMs` and none was stored since), records go to the
   * queue at once, so an outage does not add the timeout to every call.
   */
  store(record: UsageRecordT): Promise<void> {
    if (this.failedAt > 0 && performance.now() - this.failedAt < this.ackTimeoutMs) {
      this.defer(record, undefined);
      return Promise.resolve();
    }
    const subject = this.names.subject(record.app, record.fn);
    let lane = this.lanes.get(subject);
    if (!lane) this.lanes.set(subject, (lane = { busy: false, waiting: [] }));
    this.onPath++;
    const stored = new Promise<void>((resolve) => lane.waiting.push({ record, stored: resolve }));
    if (!lane.busy) void this.commit(subject, lane);
    return stored;
  }

  /** Sends what waits in a lane as one message; when it is acked (or failed), its callers go on and the next group goes. */
  private async commit(subject: string, lane: CommitLane): Promise<void> {
    lane.busy = true;
    try {
      while (lane.waiting.length > 0) {
        const group = lane.waiting.splice(0, USAGE_GROUP_MAX);
        try {
          await this.publishOnce(subject, group.map((g) => g.record), this.ackTimeoutMs);
          this.stats.commits++;
        } catch (error) {
          this.failedAt = performance.now();
          // The group and every record that queued behind it while it waited go to the retry queue, each alone under
          // its own id (the ledger's seen marks absorb a group stored after all): no caller waits a second timeout.
          group.push(...lane.waiting.splice(0));
          for (const { record } of group) this.defer(record, error);
        } finally {
          this.onPath -= group.length;
          for (const g of group) g.stored();
        }
      }
    } finally {
      lane.busy = false;
      this.lanes.delete(subject);
      this.wakeIfIdle();
    }
  }

  private defer(record: UsageRecordT, error: unknown): void {
    this.stats.deferred++;
    this.deferredSinceLog++;
    // the answer goes out without its record stored: a platform crash before the retry succeeds loses it
    const now = performance.now();
    if (now - this.lastDeferredLog >= 1_000) {
      this.log.error(
        { usageId: record.id, requestId: record.requestId, err: error, deferredSinceLastLine: this.deferredSinceLog, deferred: this.stats.deferred, backlog: this.backlog + 1 },
        `!!! usage records not stored by JetStream within ${this.ackTimeoutMs} ms; answering anyway and retrying them in the background`,
      );
      this.lastDeferredLog = now;
      this.deferredSinceLog = 0;
    }
    this.enqueue(record);
  }

  /**
   * Publishes one message of records and waits for the ack. A record alone
   * goes under its own id (a door's report sent again is dropped as the
   * duplicate it is); a group under a digest of all its ids, so it is a
   * duplicate only of the very same group, never of an earlier message that
   * shares its first record (that would drop the others unstored).
   */
  private async publishOnce(subject: string, records: readonly UsageRecordT[], timeout: number): Promise<void> {
    const msgID = records.length === 1 ? records[0]!.id : groupId(records);
    const ack = await this.js.publish(subject, usageCodec.encode(records), { msgID, timeout });
    this.failedAt = 0;
    if (ack.duplicate) this.stats.duplicates += records.length;
    else this.stats.published += records.length;
  }

  /** Queues a record for publishing with retries (the fallback path; also used to replay records in tests and repairs). */
  enqueue(record: UsageRecordT): void {
    if (this.inFlight.size < this.maxInFlight) return this.start(record);
    if (this.queue.length >= this.maxQueued) {
      const lost = this.queue.shift()!;
      this.stats.dropped++;
      // the record goes to the log in full so an operator can replay it
      this.log.error({ usageRecord: lost }, "usage queue is full: JetStream has been unreachable too long; record logged and dropped");
    }
    this.queue.push(record);
  }

  private start(record: UsageRecordT): void {
    const p = this.publish(record).finally(() => {
      this.inFlight.delete(p);
      const next = this.queue.shift();
      if (next) this.start(next);
      else this.wakeIfIdle();
    });
    this.inFlight.add(p);
  }

  private async publish(record: UsageRecordT): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.publishOnce(this.names.subject(record.app, record.fn), [record], 5_000);
        return;
      } catch (error) {
        if (this.closed && attempt >= 3) {
          this.stats.dropped++;
          this.log.error({ usageRecord: record, err: error }, "platform stopping and JetStream unreachable: usage record logged and dropped");
          return;
        }
        this.stats.retries++;
        if (attempt === 0 || attempt % 10 === 0) this.log.warn({ usageId: record.id, requestId: record.requestId, attempt, err: error }, "usage record not yet stored; retrying");
        await new Promise((r) => setTimeout(r, Math.min(5_000, 50 * 2 ** Math.min(attempt, 7))));
      }
    }
  }

  /** Records not yet acknowledged by JetStream: on the call's path (their callers wait) and in the retry queue. */
  get backlog(): number {
    return this.onPath + this.queue.length + this.inFlight.size;
  }

  private wakeIfIdle(): void {
    if (this.backlog === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /** Waits until every record so far is stored (or `timeoutMs` passes); true when nothing is left. */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    if (this.backlog === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.idle.push(resolve)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
    return this.backlog === 0;
  }

  async close(timeoutMs = 10_000): Promise<void> {
    this.closed = true;
    if (!(await this.flush(timeoutMs))) {
      this.log.error({ backlog: this.backlog }, "stopping with usage records not yet stored in JetStream");
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
