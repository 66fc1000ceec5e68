/**
 * Reconciliation: recomputes every account from the usage stream and
 * compares it with what the ledger holds in Redis. The difference must be
 * zero; anything else is printed account by account. `repairLedger` makes
 * it zero again. See docs/ledger.md.
 *
 * The stream is read once, in order, and folded as it goes: per account,
 * the sums of the records the ledger's consumer has already acknowledged
 * (at or below its ack floor when the scan starts: "settled") and the
 * records still in flight above it. Only ids (for de-duplication), in-flight
 * records and missing ones are kept, never the whole stream.
 *
 * - A settled record must be in the ledger (its seen mark set): one that is
 *   not was lost by Redis after the ack, and counts as `missing`.
 * - An in-flight record may or may not be folded yet: for each account, one
 *   MULTI reads which of its in-flight records are marked seen and the
 *   account's totals at the same instant, so the comparison does not race
 *   the consumer; unseen in-flight records are `pending`, not differences.
 */
import { usageCodec, type UsageRecord, type ReconcileReport, type RepairReport, type Subjects } from "@hearth/protocol";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log/index.ts";
import { usageNames } from "../usage/index.ts";
import { ACCOUNT_FIELDS, accountDelta, CREDIT_FIELDS, creditDelta, emptyAccount, emptyCredits, parseAppDay, type Account, type Credits, type LedgerStore } from "./store.ts";

export interface ReconcileOptions {
  nc: NatsConnection;
  subjects: Subjects;
  store: LedgerStore;
  log: Logger;
}


interface AppDayFold {
  app: string;
  day: string;
  settled: Account;
  settledFns: Map<string, Account>;
  inFlight: UsageRecord[];
}

interface DeviceDayFold {
  deviceId: string;
  day: string;
  settled: Credits;
  inFlight: UsageRecord[];
}

interface Scan {
  report: ReconcileReport;
  /** Settled records the ledger does not hold. */
  missing: UsageRecord[];
  apps: Map<string, AppDayFold>;
  devices: Map<string, DeviceDayFold>;
  /** Per day: settled records the ledger holds, and the ids of in-flight records. */
  dayCounts: Map<string, { settledSeen: number; inFlight: string[] }>;
}

/** Yields every valid record of the usage stream up to its last sequence now, with its sequence, de-duplicated by id (first wins). */
export async function* readUsageStream(nc: NatsConnection, subjects: Subjects): AsyncGenerator<{ seq: number; record: UsageRecord; firstSeq: number }> {
  const names = usageNames(subjects);
  const jsm = await jetstreamManager(nc, { timeout: 5_000 });
  const info = await jsm.streams.info(names.stream);
  const { first_seq: firstSeq, last_seq: lastSeq, messages } = info.state;
  if (messages === 0) return;
  const js = jetstream(nc);
  const consumer = await js.consumers.get(names.stream, { deliver_policy: DeliverPolicy.All });
  const ids = new Set<string>();
  const iter = await consumer.consume({ max_messages: 1_000 });
  try {
    for await (const m of iter) {
      if (m.seq > lastSeq) break;
      for (const record of usageCodec.decode(m.data) ?? []) {
        if (ids.has(record.id)) continue;
        ids.add(record.id);
        yield { seq: m.seq, record, firstSeq };
      }
      if (m.seq >= lastSeq || m.info.pending === 0) break;
    }
  } finally {
    iter.stop();
  }
}

function add(a: Account, b: Account): void {
  for (const f of ACCOUNT_FIELDS) a[f] += b[f];
}

/** The ledger consumer's ack floor: every record at or below it was folded and acknowledged. 0 when there is no consumer. */
async function ackFloor(nc: NatsConnection, subjects: Subjects): Promise<number> {
  const names = usageNames(subjects);
  const jsm = await jetstreamManager(nc, { timeout: 5_000 });
  try {
    return (await jsm.consumers.info(names.stream, names.durable)).ack_floor.stream_seq;
  } catch (error) {
    if ((error as { name?: string }).name === "ConsumerNotFoundError" || /consumer not found/i.test((error as Error).message)) return 0;
    throw error;
  }
}

const SEEN_BATCH = 500;

async function scan(options: ReconcileOptions): Promise<Scan> {
  const { store } = options;
  const floor = await ackFloor(options.nc, options.subjects);
  const apps = new Map<string, AppDayFold>();
  const devices = new Map<string, DeviceDayFold>();
  const dayCounts = new Map<string, { settledSeen: number; inFlight: string[] }>();
  const missing: UsageRecord[] = [];
  const days = new Set<string>();
  let records = 0;
  let partialDay: string | undefined;
  let first = true;

  const countsOf = (day: string) => {
    let c = dayCounts.get(day);
    if (!c) dayCounts.set(day, (c = { settledSeen: 0, inFlight: [] }));
    return c;
  };
  const appFold = (app: string, day: string) => {
    const k = `${app} ${day}`;
    let f = apps.get(k);
    if (!f) apps.set(k, (f = { app, day, settled: emptyAccount(), settledFns: new Map(), inFlight: [] }));
    return f;
  };
  const deviceFold = (deviceId: string, day: string) => {
    const k = `${deviceId} ${day}`;
    let f = devices.get(k);
    if (!f) devices.set(k, (f = { deviceId, day, settled: emptyCredits(), inFlight: [] }));
    return f;
  };

  let batch: UsageRecord[] = [];
  const checkSeen = async () => {
    if (batch.length === 0) return;
    const pipeline = store.redis.pipeline();
    for (const r of batch) pipeline.sismember(store.seenKey(r.day, r.id), r.id);
    const results = (await pipeline.exec()) ?? [];
    batch.forEach((r, i) => {
      const [error, value] = results[i] ?? [new Error("no reply")];
      if (error) throw error;
      if (Number(value) === 1) countsOf(r.day).settledSeen++;
      else missing.push(r);
    });
    batch = [];
  };

  for await (const { seq, record: r, firstSeq } of readUsageStream(options.nc, options.subjects)) {
    // Records older than the stream's retention are gone: the oldest day left may be incomplete.
    if (first && firstSeq > 1) partialDay = r.day;
    first = false;
    if (r.day === partialDay) continue;
    records++;
    days.add(r.day);
    const app = appFold(r.app, r.day);
    const device = r.deviceId ? deviceFold(r.deviceId, r.day) : undefined;
    if (seq <= floor) {
      const d = accountDelta(r);
      add(app.settled, d);
      let fn = app.settledFns.get(r.fn);
      if (!fn) app.settledFns.set(r.fn, (fn = emptyAccount()));
      add(fn, d);
      if (device) addCredits(device.settled, creditDelta(r));
      batch.push(r);
      if (batch.length >= SEEN_BATCH) await checkSeen();
    } else {
      app.inFlight.push(r);
      device?.inFlight.push(r);
      countsOf(r.day).inFlight.push(r.id);
    }
  }
  await checkSeen();

  // accounts the ledger holds for a covered day but the stream has no record of
  for (const app of await store.apps()) for (const day of await store.appDays(app)) if (days.has(day)) appFold(app, day);
  for (const deviceId of await store.devices()) for (const day of await store.deviceDays(deviceId)) if (days.has(day)) deviceFold(deviceId, day);

  const differences: ReconcileReport["differences"] = [];
  let pending = 0;
  for (const fold of apps.values()) {
    const snap = await store.snapshot(fold.day, store.appDayKey(fold.app, fold.day), fold.inFlight.map((r) => r.id));
    const { total, functions } = expectedApp(fold, snap.seen);
    pending += snap.seen.filter((s) => !s).length;
    differences.push(...compareApp(fold, parseAppDay(snap.hash), total, functions));
  }
  for (const fold of devices.values()) {
    const snap = await store.snapshot(fold.day, store.deviceDayKey(fold.deviceId, fold.day), fold.inFlight.map((r) => r.id));
    differences.push(...compareDevice(fold, snap.hash, expectedDevice(fold, snap.seen)));
  }
  return { report: { records, pending, missing: missing.length, days: [...days].sort(), differences }, missing, apps, devices, dayCounts };
}

function expectedApp(fold: AppDayFold, seen: boolean[]): { total: Account; functions: Map<string, Account> } {
  const total = { ...fold.settled };
  const functions = new Map([...fold.settledFns].map(([fn, a]) => [fn, { ...a }]));
  fold.inFlight.forEach((r, i) => {
    if (!seen[i]) return;
    const d = accountDelta(r);
    add(total, d);
    let f = functions.get(r.fn);
    if (!f) functions.set(r.fn, (f = emptyAccount()));
    add(f, d);
  });
  return { total, functions };
}

function expectedDevice(fold: DeviceDayFold, seen: boolean[]): Credits {
  const out = { ...fold.settled };
  fold.inFlight.forEach((r, i) => {
    if (seen[i]) addCredits(out, creditDelta(r));
  });
  return out;
}

function addCredits(a: Credits, b: Credits | undefined): void {
  if (b) for (const f of CREDIT_FIELDS) a[f] += b[f];
}

function compareApp(fold: AppDayFold, held: ReturnType<typeof parseAppDay>, total: Account, functions: Map<string, Account>): ReconcileReport["differences"] {
  const out: ReconcileReport["differences"] = [];
  const compare = (account: string, ledger: Account, stream: Account) => {
    for (const field of ACCOUNT_FIELDS) if (ledger[field] !== stream[field]) out.push({ account, field, ledger: ledger[field], stream: stream[field] });
  };
  compare(`app ${fold.app} ${fold.day}`, held.total, total);
  for (const fn of new Set([...functions.keys(), ...held.functions.keys()])) {
    compare(`app ${fold.app} ${fold.day} fn ${fn}`, held.functions.get(fn) ?? emptyAccount(), functions.get(fn) ?? emptyAccount());
  }
  return out;
}

function compareDevice(fold: DeviceDayFold, hash: Record<string, string>, stream: Credits): ReconcileReport["differences"] {
  const out: ReconcileReport["differences"] = [];
  for (const field of CREDIT_FIELDS) {
    const ledger = Number(hash[field] ?? "0");
    if (ledger !== stream[field]) out.push({ account: `device ${fold.deviceId} ${fold.day}`, field, ledger, stream: stream[field] });
  }
  return out;
}

export async function reconcileLedger(options: ReconcileOptions): Promise<ReconcileReport> {
  return (await scan(options)).report;
}

/**
 * `reconcile --repair`: makes the ledger match the stream again, safely
 * while the consumer runs, and idempotently (a second run finds nothing).
 *
 * 1. Missing records (acknowledged, then lost by Redis) are folded in again
 *    with the consumer's own idempotent fold: counted once, marked seen.
 * 2. Accounts that still differ (their records are marked seen but the
 *    totals are wrong: a partial restore, a hand edit) are rewritten to what
 *    the stream says, in a WATCHed transaction: it only commits when no
 *    record was folded into the account or its day meanwhile, and when every
 *    record the day's seen marks hold is one this scan knows. Otherwise the
 *    account is left alone and shows in `after`; run the repair again.
 */
export async function repairLedger(options: ReconcileOptions): Promise<RepairReport> {
  const { store, log } = options;
  const first = await scan(options);
  let reapplied = 0;
  for (const r of first.missing) if (await store.apply(r)) reapplied++;
  if (reapplied > 0) log.warn({ reapplied }, "repair: folded in again usage records the ledger had lost");
  const second = reapplied > 0 ? await scan(options) : first;
  const rewritten: string[] = [];
  if (second.report.differences.length > 0) {
    const conn = store.redis.duplicate();
    try {
      const accounts = new Set(second.report.differences.map((d) => d.account.split(" fn ")[0]!));
      for (const fold of second.apps.values()) {
        const name = `app ${fold.app} ${fold.day}`;
        if (accounts.has(name) && (await rewriteApp(conn, options, second, fold))) rewritten.push(name);
      }
      for (const fold of second.devices.values()) {
        const name = `device ${fold.deviceId} ${fold.day}`;
        if (accounts.has(name) && (await rewriteDevice(conn, options, second, fold))) rewritten.push(name);
      }
    } finally {
      conn.disconnect();
    }
    if (rewritten.length > 0) log.warn({ rewritten }, "repair: rewrote ledger accounts to what the usage stream says");
  }
  const after = reapplied > 0 || rewritten.length > 0 ? (await scan(options)).report : second.report;
  return { before: first.report, reapplied, rewritten, after };
}

type Conn = LedgerStore["redis"];

/**
 * Under WATCH of the account and its day's count of seen marks: reads which in-flight
 * records of the day are folded, checks the day's marks are of no record this
 * scan does not know, and returns the seen flags of the account's own
 * in-flight records; undefined when the day holds unknown records.
 */
async function watchedSeen(conn: Conn, store: LedgerStore, scanned: Scan, day: string, accountKey: string, own: UsageRecord[]): Promise<boolean[] | undefined> {
  await conn.unwatch(); // a clean slate (EXEC unwatches on Redis; some clients' mocks do not)
  // the day's count of seen marks moves with every fold of the day: watching it is watching all its buckets
  await conn.watch(accountKey, store.seenCountKey(day));
  const counts = scanned.dayCounts.get(day) ?? { settledSeen: 0, inFlight: [] };
  const pipeline = conn.pipeline();
  pipeline.get(store.seenCountKey(day));
  for (const id of counts.inFlight) pipeline.sismember(store.seenKey(day, id), id);
  for (const r of own) pipeline.sismember(store.seenKey(day, r.id), r.id);
  const results = (await pipeline.exec()) ?? [];
  for (const [error] of results) if (error) throw error;
  const values = results.map(([, v]) => Number(v));
  const seenInFlight = values.slice(1, 1 + counts.inFlight.length).filter((v) => v === 1).length;
  if (values[0] !== counts.settledSeen + seenInFlight) {
    await conn.unwatch();
    return undefined;
  }
  return values.slice(1 + counts.inFlight.length).map((v) => v === 1);
}

const REWRITE_ATTEMPTS = 5;

async function rewriteApp(conn: Conn, options: ReconcileOptions, scanned: Scan, fold: AppDayFold): Promise<boolean> {
  const { store, log } = options;
  const key = store.appDayKey(fold.app, fold.day);
  for (let attempt = 0; attempt < REWRITE_ATTEMPTS; attempt++) {
    const seen = await watchedSeen(conn, store, scanned, fold.day, key, fold.inFlight);
    if (!seen) break;
    const { total, functions } = expectedApp(fold, seen);
    const held = await conn.hgetall(key);
    const wanted: Record<string, string> = {};
    for (const f of ACCOUNT_FIELDS) if (total[f] !== 0) wanted[f] = String(total[f]);
    for (const [fn, a] of functions) for (const f of ACCOUNT_FIELDS) if (a[f] !== 0) wanted[`${fn}|${f}`] = String(a[f]);
    const stale = Object.keys(held).filter((f) => !(f in wanted));
    const multi = conn.multi();
    if (stale.length > 0) multi.hdel(key, ...stale);
    if (Object.keys(wanted).length > 0) multi.hset(key, wanted);
    multi.sadd(store.key("apps"), fold.app);
    multi.sadd(store.key("app-days", fold.app), fold.day);
    if ((await multi.exec()) !== null) return true;
  }
  log.warn({ app: fold.app, day: fold.day }, "repair: the account kept changing (or its day holds records this scan did not see); left as is, run the repair again");
  return false;
}

async function rewriteDevice(conn: Conn, options: ReconcileOptions, scanned: Scan, fold: DeviceDayFold): Promise<boolean> {
  const { store, log } = options;
  const key = store.deviceDayKey(fold.deviceId, fold.day);
  for (let attempt = 0; attempt < REWRITE_ATTEMPTS; attempt++) {
    const seen = await watchedSeen(conn, store, scanned, fold.day, key, fold.inFlight);
    if (!seen) break;
    const credits = expectedDevice(fold, seen);
    const multi = conn.multi();
    multi.hset(key, Object.fromEntries(CREDIT_FIELDS.map((f) => [f, String(credits[f])])));
    multi.sadd(store.key("devices"), fold.deviceId);
    multi.sadd(store.key("device-days", fold.deviceId), fold.day);
    if ((await multi.exec()) !== null) return true;
  }
  log.warn({ deviceId: fold.deviceId, day: fold.day }, "repair: the device account kept changing; left as is, run the repair again");
  return false;
}

/** The report as lines for people. */
export function formatReconcile(report: ReconcileReport): string[] {
  const lines = [
    `usage records in the stream: ${report.records} (days ${report.days.join(", ") || "none"})`,
    `not yet folded in (in flight): ${report.pending}`,
    `acknowledged but missing from the ledger: ${report.missing}`,
  ];
  if (report.differences.length === 0) lines.push("difference: 0 (the ledger matches the stream exactly)");
  else {
    lines.push(`difference: ${report.differences.length} account field(s) differ`);
    for (const d of report.differences) lines.push(`  ${d.account} ${d.field}: ledger ${d.ledger}, stream ${d.stream} (${d.ledger - d.stream > 0 ? "+" : ""}${d.ledger - d.stream})`);
  }
  return lines;
}

/** A repair as lines for people. */
export function formatRepair(repair: RepairReport): string[] {
  return [
    "before:",
    ...formatReconcile(repair.before).map((l) => `  ${l}`),
    `repair: ${repair.reapplied} missing record(s) folded in again; ${repair.rewritten.length} account(s) rewritten${repair.rewritten.length ? ` (${repair.rewritten.join(", ")})` : ""}`,
    "after:",
    ...formatReconcile(repair.after).map((l) => `  ${l}`),
  ];
}
