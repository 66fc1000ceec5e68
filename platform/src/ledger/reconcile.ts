/**
 * Reconciliation: recomputes every account from the usage stream and
 * compares it with what the ledger holds in Redis. The difference must be
 * zero; anything else is printed account by account.
 *
 * Records the ledger has not folded in yet (still in flight) are counted as
 * `pending`, not as differences: for each account, one MULTI reads which of
 * its records are marked seen and the account's totals at the same instant,
 * so the comparison does not race the consumer.
 */
import { UsageRecord, type ReconcileReport, type Subjects } from "@hearth/protocol";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log/index.ts";
import { usageNames } from "../usage/index.ts";
import { ACCOUNT_FIELDS, accountDelta, CREDIT_FIELDS, emptyAccount, parseAppDay, type Account, type LedgerStore } from "./store.ts";

export interface ReconcileOptions {
  nc: NatsConnection;
  subjects: Subjects;
  store: LedgerStore;
  log: Logger;
}

/** Reads every record of the usage stream up to its last sequence now (deduplicated by request id, first wins). */
export async function readUsageStream(nc: NatsConnection, subjects: Subjects): Promise<{ records: UsageRecord[]; partialDay?: string }> {
  const names = usageNames(subjects);
  const jsm = await jetstreamManager(nc, { timeout: 5_000 });
  const info = await jsm.streams.info(names.stream);
  const { first_seq: firstSeq, last_seq: lastSeq, messages } = info.state;
  if (messages === 0) return { records: [] };
  const js = jetstream(nc);
  const consumer = await js.consumers.get(names.stream, { deliver_policy: DeliverPolicy.All });
  const seen = new Set<string>();
  const records: UsageRecord[] = [];
  const iter = await consumer.consume({ max_messages: 1_000 });
  try {
    for await (const m of iter) {
      const parsed = UsageRecord.safeParse(jsonOf(m.data));
      if (parsed.success && !seen.has(parsed.data.requestId)) {
        seen.add(parsed.data.requestId);
        records.push(parsed.data);
      }
      if (m.seq >= lastSeq || m.info.pending === 0) break;
    }
  } finally {
    iter.stop();
  }
  // Records older than the stream's retention are gone: the oldest day left may be incomplete.
  const partialDay = firstSeq > 1 && records.length > 0 ? records[0]!.day : undefined;
  return { records, partialDay };
}

function jsonOf(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}

function add(a: Account, b: Account): void {
  for (const f of ACCOUNT_FIELDS) a[f] += b[f];
}

export async function reconcileLedger(options: ReconcileOptions): Promise<ReconcileReport> {
  const { store } = options;
  const { records, partialDay } = await readUsageStream(options.nc, options.subjects);
  const wanted = records.filter((r) => r.day !== partialDay);
  const days = [...new Set(wanted.map((r) => r.day))].sort();
  const differences: ReconcileReport["differences"] = [];
  let pending = 0;

  const byKey = (key: (r: UsageRecord) => string | null) => {
    const groups = new Map<string, UsageRecord[]>();
    for (const r of wanted) {
      const k = key(r);
      if (k === null) continue;
      let list = groups.get(k);
      if (!list) groups.set(k, (list = []));
      list.push(r);
    }
    return groups;
  };

  // apps: every (app, day) with records, plus every (app, day) the ledger holds for a covered day
  const appGroups = byKey((r) => `${r.app} ${r.day}`);
  for (const app of await store.apps()) {
    for (const day of await store.appDays(app)) if (days.includes(day) && !appGroups.has(`${app} ${day}`)) appGroups.set(`${app} ${day}`, []);
  }
  for (const [k, list] of appGroups) {
    const [app, day] = k.split(" ") as [string, string];
    const snap = await store.snapshot(day, store.appDayKey(app, day), list.map((r) => r.requestId));
    const total = emptyAccount();
    const fns = new Map<string, Account>();
    list.forEach((r, i) => {
      if (!snap.seen[i]) return void pending++;
      const d = accountDelta(r);
      add(total, d);
      let f = fns.get(r.fn);
      if (!f) fns.set(r.fn, (f = emptyAccount()));
      add(f, d);
    });
    const held = parseAppDay(snap.hash);
    const compare = (account: string, ledger: Account, stream: Account) => {
      for (const field of ACCOUNT_FIELDS) {
        if (ledger[field] !== stream[field]) differences.push({ account, field, ledger: ledger[field], stream: stream[field] });
      }
    };
    compare(`app ${app} ${day}`, held.total, total);
    for (const fn of new Set([...fns.keys(), ...held.functions.keys()])) {
      compare(`app ${app} ${day} fn ${fn}`, held.functions.get(fn) ?? emptyAccount(), fns.get(fn) ?? emptyAccount());
    }
  }

  // devices: credits by (device, day)
  const deviceGroups = byKey((r) => (r.deviceId ? `${r.deviceId} ${r.day}` : null));
  for (const deviceId of await store.devices()) {
    for (const day of await store.deviceDays(deviceId)) {
      if (days.includes(day) && !deviceGroups.has(`${deviceId} ${day}`)) deviceGroups.set(`${deviceId} ${day}`, []);
    }
  }
  for (const [k, list] of deviceGroups) {
    const [deviceId, day] = k.split(" ") as [string, string];
    const snap = await store.snapshot(day, store.deviceDayKey(deviceId, day), list.map((r) => r.requestId));
    const stream = { calls: 0, cpuUs: 0, wallUs: 0 };
    list.forEach((r, i) => {
      if (!snap.seen[i]) return; // already counted as pending above
      stream.calls++;
      stream.cpuUs += r.cpuUs;
      stream.wallUs += r.wallUs;
    });
    for (const field of CREDIT_FIELDS) {
      const ledger = Number(snap.hash[field] ?? "0");
      if (ledger !== stream[field]) differences.push({ account: `device ${deviceId} ${day}`, field, ledger, stream: stream[field] });
    }
  }

  return { records: wanted.length, pending, days, differences };
}

/** The report as lines for people. */
export function formatReconcile(report: ReconcileReport): string[] {
  const lines = [
    `usage records in the stream: ${report.records} (days ${report.days.join(", ") || "none"})`,
    `not yet folded in (in flight): ${report.pending}`,
  ];
  if (report.differences.length === 0) lines.push("difference: 0 (the ledger matches the stream exactly)");
  else {
    lines.push(`difference: ${report.differences.length} account field(s) differ`);
    for (const d of report.differences) lines.push(`  ${d.account} ${d.field}: ledger ${d.ledger}, stream ${d.stream} (${d.ledger - d.stream > 0 ? "+" : ""}${d.ledger - d.stream})`);
  }
  return lines;
}
