/**
 * The ledger consumer: a durable pull consumer on the usage stream that folds
 * each message's records (one, or a gateway's group commit) into Redis
 * (LedgerStore.applyMany, idempotent) and acks the message only after the
 * write. Messages that arrive while a fold is under way, or within the fold
 * spacing, are folded together next, in one Redis round trip (under load a
 * fold takes many records, idle it takes one at once). A crash between the write and the ack means a redelivery,
 * which the seen marks turn into a no-op; a crash before the write means a
 * redelivery that counts. Either way each record counts exactly once.
 */
import { usageCodec, type Subjects, type UsageRecord } from "@hearth/protocol";
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log/index.ts";
import { usageNames } from "../usage/index.ts";
import type { LedgerStore } from "./store.ts";

const NANOS_PER_MS = 1_000_000;

/** A delivered message and its records (undefined: it is not a usage message). */
interface Waiting {
  m: JsMsg;
  records: UsageRecord[] | undefined;
}

export interface LedgerConsumerOptions {
  nc: NatsConnection;
  subjects: Subjects;
  store: LedgerStore;
  log: Logger;
  /** Fault injection for tests: runs after a record is written, before it is acked. */
  afterApply?: (record: UsageRecord, applied: boolean) => void | Promise<void>;
  /** Told of each record folded for the first time (not of redeliveries), not awaited: the console's stats. Its failure is logged, never retried. */
  onFolded?: (record: UsageRecord) => Promise<void>;
  /** How long a delivered record may stay unacked before JetStream redelivers it (when the consumer is created). */
  ackWaitMs?: number;
  /** Records folded in one Redis round trip at most (default FOLD_BATCH). */
  foldBatch?: number;
  /** Under load, folds start at most this often, so each takes the records of that span (default FOLD_SPACING_MS; 0: fold at once). */
  foldSpacingMs?: number;
}

/**
 * Under load, folds are spaced this far apart (ms): the records that arrive
 * in between go in one Redis pipeline and one burst of acks, so the fold's
 * round trips are paid per group, not per call. A record arriving when no
 * fold ran for this long is folded at once: an idle ledger adds no delay.
 * The answer to the caller never waits for this (its record is durable in
 * the stream before the answer); only the accounts lag by at most this much.
 */
export const FOLD_SPACING_MS = 10;

/** Records one fold takes at most: a Redis pipeline of this many scripts stays well under a millisecond. */
export const FOLD_BATCH = 128;

/** Creates (or keeps) the ledger's durable consumer on the usage stream. */
export async function ensureLedgerConsumer(jsm: JetStreamManager, subjects: Subjects, ackWaitMs = 30_000): Promise<void> {
  const names = usageNames(subjects);
  try {
    await jsm.consumers.info(names.stream, names.durable);
    return;
  } catch (error) {
    if ((error as { name?: string }).name !== "ConsumerNotFoundError" && !/consumer not found/i.test((error as Error).message)) throw error;
  }
  await jsm.consumers.add(names.stream, {
    durable_name: names.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: names.filter,
    ack_wait: ackWaitMs * NANOS_PER_MS,
    max_ack_pending: 1_000,
  });
}

export class LedgerConsumer implements AsyncDisposable {
  private readonly options: LedgerConsumerOptions;
  private messages?: ConsumerMessages;
  private running?: Promise<void>;
  private stopped = false;
  /** Messages delivered and not folded yet, oldest first, with their records (undefined: not a usage message), and their stream sequences (a redelivery of one waiting is not kept twice). */
  private readonly waiting: Waiting[] = [];
  /** Records in `waiting`. */
  private waitingRecords = 0;
  private readonly waitingSeqs = new Set<number>();
  /** The fold under way, if any (one at a time: a record is acked only after its own fold). */
  private folding?: Promise<void>;
  /** When the last fold started (performance.now()), and the timer that starts the next one under load. */
  private lastFoldAt = -Infinity;
  private spacingTimer?: NodeJS.Timeout;
  /** Counters for tests and logs (`folds`: Redis round trips, each of one or more records). */
  readonly stats = { applied: 0, duplicates: 0, invalid: 0, retries: 0, folds: 0 };

  private constructor(options: LedgerConsumerOptions) {
    this.options = options;
  }

  static async start(options: LedgerConsumerOptions): Promise<LedgerConsumer> {
    const jsm = await jetstreamManager(options.nc, { timeout: 5_000 });
    await ensureLedgerConsumer(jsm, options.subjects, options.ackWaitMs);
    const consumer = new LedgerConsumer(options);
    consumer.running = consumer.run();
    return consumer;
  }

  private async run(): Promise<void> {
    const { nc, subjects, log } = this.options;
    const names = usageNames(subjects);
    const js = jetstream(nc);
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const consumer = await js.consumers.get(names.stream, names.durable);
        this.messages = await consumer.consume({ max_messages: 256 });
        if (this.stopped) this.messages.stop();
        attempt = 0;
        for await (const m of this.messages) {
          if (this.stopped) break;
          if (this.waitingSeqs.has(m.seq)) continue;
          this.waitingSeqs.add(m.seq);
          const records = usageCodec.decode(m.data);
          this.waiting.push({ m, records });
          this.waitingRecords += records?.length ?? 1;
          this.kick();
        }
        await this.folding;
      } catch (error) {
        if (this.stopped || nc.isClosed()) break;
        log.warn({ err: error, attempt }, "ledger consumer interrupted; resuming");
      }
      if (!this.stopped && !nc.isClosed()) await sleep(Math.min(5_000, 100 * 2 ** Math.min(attempt, 6)));
      if (nc.isClosed()) break;
    }
  }

  /** Starts folding what waits, unless a fold is under way (it takes what waits when it is done). */
  private kick(): void {
    if (this.folding || this.stopped || this.waiting.length === 0) return;
    const full = this.waitingRecords >= (this.options.foldBatch ?? FOLD_BATCH);
    if (this.spacingTimer && !full) return;
    clearTimeout(this.spacingTimer);
    this.spacingTimer = undefined;
    const spacing = this.options.foldSpacingMs ?? FOLD_SPACING_MS;
    const wait = this.lastFoldAt + spacing - performance.now();
    if (wait > 0 && !full) {
      this.spacingTimer = setTimeout(() => {
        this.spacingTimer = undefined;
        this.kick();
      }, wait);
      return;
    }
    this.lastFoldAt = performance.now();
    this.folding = this.foldWaiting().finally(() => {
      this.folding = undefined;
      this.kick();
    });
  }

  /** Folds one group of what waits (kick starts the next, spaced under load). */
  private async foldWaiting(): Promise<void> {
    if (this.waiting.length === 0 || this.stopped) return;
    try {
      await this.fold(this.take(this.options.foldBatch ?? FOLD_BATCH));
    } catch (error) {
      // not acked: JetStream delivers them again after the ack wait, and the seen marks keep them from counting twice
      this.options.log.warn({ err: error }, "could not fold usage records; they will be delivered again");
    }
  }

  /** Takes waiting messages, oldest first, up to `records` records (always at least one message). */
  private take(records: number): Waiting[] {
    let n = 0;
    let count = 0;
    while (n < this.waiting.length && (n === 0 || count + (this.waiting[n]!.records?.length ?? 1) <= records)) count += this.waiting[n++]!.records?.length ?? 1;
    const taken = this.waiting.splice(0, n);
    this.waitingRecords -= count;
    for (const { m } of taken) this.waitingSeqs.delete(m.seq);
    return taken;
  }

  /** Folds delivered messages' records in one round trip and acks each message after the write. */
  private async fold(messages: Waiting[]): Promise<void> {
    const { store, log } = this.options;
    const valid: { m: JsMsg; records: UsageRecord[] }[] = [];
    for (const { m, records } of messages) {
      if (records) {
        valid.push({ m, records });
        continue;
      }
      // a message that can never be folded is kept in the stream (for people) but not redelivered
      this.stats.invalid++;
      log.error({ seq: m.seq, subject: m.subject }, "usage message did not validate; terminated, not counted");
      m.term();
    }
    if (valid.length === 0) return;
    const records = valid.flatMap((v) => v.records);
    let applied: boolean[];
    for (let attempt = 0; ; attempt++) {
      if (this.stopped && attempt > 0) return; // not acked: redelivered to whoever consumes next
      try {
        applied = await store.applyMany(records);
        this.stats.folds++;
        break;
      } catch (error) {
        this.stats.retries++;
        if (attempt % 10 === 0) log.warn({ err: error, records: records.length, usageId: records[0]!.id, attempt }, "could not write usage to Redis; retrying before ack");
        // the group and those waiting behind it stay this consumer's while Redis is away (no redelivery meanwhile)
        for (const { m } of valid) m.working();
        for (const { m } of this.waiting) m.working();
        await sleep(Math.min(2_000, 50 * 2 ** Math.min(attempt, 6)));
      }
    }
    for (const [i, record] of records.entries()) {
      if (applied[i]) this.stats.applied++;
      else this.stats.duplicates++;
      // not awaited: stats are written in groups (platform/src/stats) and never hold up the ledger
      if (applied[i] && this.options.onFolded) void this.folded(record);
      await this.options.afterApply?.(record, applied[i]!);
    }
    for (const { m } of valid) {
      try {
        m.ack();
      } catch {
        // the connection went away: the message is redelivered and counts nothing twice
      }
    }
  }

  private lastFoldedError = 0;

  /** Stats are for people: a failed write is logged (once a few seconds) and the record is acked all the same. */
  private async folded(record: UsageRecord): Promise<void> {
    try {
      await this.options.onFolded!(record);
    } catch (error) {
      if (Date.now() - this.lastFoldedError < 5_000) return;
      this.lastFoldedError = Date.now();
      this.options.log.warn({ err: error, requestId: record.requestId }, "could not add a call to the function stats (the ledger has it)");
    }
  }

  /** Records delivered to this consumer and waiting for their fold. */
  get holding(): number {
    return this.waitingRecords;
  }

  /** Records in the usage stream the ledger has not folded and acknowledged yet (its lag). */
  async lag(): Promise<number> {
    const names = usageNames(this.options.subjects);
    const jsm = await jetstreamManager(this.options.nc);
    const info = await jsm.consumers.info(names.stream, names.durable);
    return info.num_pending + info.num_ack_pending;
  }

  /** True once the consumer has nothing pending and nothing unacknowledged. */
  async caughtUp(): Promise<boolean> {
    const names = usageNames(this.options.subjects);
    const jsm = await jetstreamManager(this.options.nc);
    const info = await jsm.consumers.info(names.stream, names.durable);
    return info.num_pending === 0 && info.num_ack_pending === 0;
  }

  /** Stops taking records; what was delivered is folded once more while the connection lasts (if Redis fails it, it is left for a redelivery). */
  async close(): Promise<void> {
    this.stopped = true;
    this.messages?.stop();
    clearTimeout(this.spacingTimer);
    this.spacingTimer = undefined;
    await this.running;
    await this.folding;
    const rest = this.take(Infinity);
    // folded only while their acks can still go out; else they come back to whoever consumes next
    if (rest.length > 0 && !this.options.nc.isClosed()) await this.fold(rest).catch(() => undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
