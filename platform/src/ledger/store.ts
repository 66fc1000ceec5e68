/**
 * The ledger's accounts in Redis: per-app usage by day and function, and
 * per-device credits by day, folded from usage records.
 *
 * Folding is idempotent: one Lua script marks the record's id (made by the
 * gateway, one per call) as seen (in a per-day set) and adds its integers to the accounts, or does nothing
 * at all when the id was already seen. Redis runs a script atomically, so a
 * record is counted once or not at all, however often it is delivered. The
 * script is sent once and then called by its SHA (ioredis `defineCommand`).
 *
 * The embedded store (ioredis-mock) would run that script in a Lua VM written
 * in JavaScript, for every call: most of a warm call's CPU. There the same
 * fold is plain commands (SADD, then the increments in one MULTI) under an
 * in-process lock that every ledger write and snapshot of this store takes:
 * the embedded state lives in this one process, so the lock makes the fold as
 * atomic as the script is in Redis.
 */
import type { AppUsage, DayUsage, DeviceCredits, FunctionUsage, UsageDoor, UsageRecord, UsageTotals } from "@hearth/protocol";
import type { Redis } from "ioredis";

/** How long a day's seen marks live: longer than the stream keeps records, so no replayable record is forgotten. */
export const SEEN_TTL_SECONDS = 36 * 86_400;

/**
 * Hex characters of a record's id that pick its day's seen-mark bucket
 * (16^3 = 4,096 sets a day). One set of a whole day's ids made each fold in
 * the embedded store cost O(day's calls): ioredis-mock copies a set on every
 * read and write (measured: 464 µs per SADD at 20,000 ids, growing).
 */
const SEEN_BUCKET_CHARS = 3;

/**
 * The account field that counts the calls of each door but the gateway's:
 * those are the rest of `calls` (so a gateway call, the common case, costs no
 * write more, and accounts folded before doors were kept read right).
 */
const DOOR_FIELDS = { device: "viaDoor", "device-relay": "viaDoorRelay", call: "viaCall", "call-relay": "viaCallRelay" } as const satisfies Record<Exclude<UsageDoor, "gateway">, string>;

function doorFieldOf(record: UsageRecord): (typeof DOOR_FIELDS)[keyof typeof DOOR_FIELDS] | undefined {
  return record.door === undefined || record.door === "gateway" ? undefined : DOOR_FIELDS[record.door];
}

/** Hash fields of an account, all whole numbers. */
export const ACCOUNT_FIELDS = ["calls", "errors", "cold", "cpuUs", "wallUs", "reqB", "respB", ...Object.values(DOOR_FIELDS)] as const;
export type AccountField = (typeof ACCOUNT_FIELDS)[number];
export type Account = Record<AccountField, number>;

/** Device account fields: what it is credited for, and what it served that the platform could not verify (claimed). */
export const CREDIT_FIELDS = ["calls", "cpuUs", "wallUs", "claimedCalls", "claimedCpuUs"] as const;
export type CreditField = (typeof CREDIT_FIELDS)[number];
export type Credits = Record<CreditField, number>;

export function emptyCredits(): Credits {
  return { calls: 0, cpuUs: 0, wallUs: 0, claimedCalls: 0, claimedCpuUs: 0 };
}

/** What one record adds to the account of the device that served it (none when no device did). */
export function creditDelta(record: UsageRecord): Credits | undefined {
  if (!record.deviceId) return undefined;
  if (record.credited === false) return { ...emptyCredits(), claimedCalls: 1, claimedCpuUs: record.cpuUs };
  return { ...emptyCredits(), calls: 1, cpuUs: record.cpuUs, wallUs: record.wallUs };
}

const APPLY = `
if redis.call('SISMEMBER', KEYS[9], ARGV[1]) == 1 then return 0 end
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if redis.call('INCR', KEYS[8]) == 1 then redis.call('EXPIRE', KEYS[8], ARGV[2]) end
local fn = ARGV[3]
local values = { calls = '1', errors = ARGV[4], cold = ARGV[5], cpuUs = ARGV[6], wallUs = ARGV[7], reqB = ARGV[8], respB = ARGV[9] }
local names = { 'calls', 'errors', 'cold', 'cpuUs', 'wallUs', 'reqB', 'respB' }
for i = 1, #names do
  local name = names[i]
  local v = values[name]
  if v ~= '0' then
    redis.call('HINCRBY', KEYS[2], name, v)
    redis.call('HINCRBY', KEYS[2], fn .. '|' .. name, v)
  end
end
if ARGV[13] ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[13], 1)
  redis.call('HINCRBY', KEYS[2], fn .. '|' .. ARGV[13], 1)
end
redis.call('SADD', KEYS[3], ARGV[10])
redis.call('SADD', KEYS[4], ARGV[11])
if ARGV[12] ~= '' then
  if ARGV[14] == '0' then
    redis.call('HINCRBY', KEYS[5], 'claimedCalls', 1)
    if ARGV[6] ~= '0' then redis.call('HINCRBY', KEYS[5], 'claimedCpuUs', ARGV[6]) end
  else
    redis.call('HINCRBY', KEYS[5], 'calls', 1)
    if ARGV[6] ~= '0' then redis.call('HINCRBY', KEYS[5], 'cpuUs', ARGV[6]) end
    if ARGV[7] ~= '0' then redis.call('HINCRBY', KEYS[5], 'wallUs', ARGV[7]) end
  end
  redis.call('SADD', KEYS[6], ARGV[10])
  redis.call('SADD', KEYS[7], ARGV[12])
end
return 1
`;

export function emptyAccount(): Account {
  return { calls: 0, errors: 0, cold: 0, cpuUs: 0, wallUs: 0, reqB: 0, respB: 0, viaDoor: 0, viaDoorRelay: 0, viaCall: 0, viaCallRelay: 0 };
}

/** What one record adds to its app's account (the device's account takes calls, cpuUs and wallUs). */
export function accountDelta(record: UsageRecord): Account {
  const door = doorFieldOf(record);
  return {
    ...emptyAccount(),
    ...(door ? { [door]: 1 } : {}),
    calls: 1,
    errors: record.outcome === "ok" ? 0 : 1,
    cold: record.cold ? 1 : 0,
    cpuUs: record.cpuUs,
    wallUs: record.wallUs,
    reqB: record.requestBytes,
    respB: record.responseBytes,
  };
}

export function totalsOf(a: Account): UsageTotals {
  return {
    calls: a.calls,
    errors: a.errors,
    coldStarts: a.cold,
    cpuUs: a.cpuUs,
    wallUs: a.wallUs,
    requestBytes: a.reqB,
    responseBytes: a.respB,
    cpuSeconds: a.cpuUs / 1e6,
    doors: { gateway: Math.max(0, a.calls - a.viaDoor - a.viaDoorRelay - a.viaCall - a.viaCallRelay), device: a.viaDoor, "device-relay": a.viaDoorRelay, call: a.viaCall, "call-relay": a.viaCallRelay },
  };
}

function int(value: string | undefined): number {
  const n = Number(value ?? "0");
  return Number.isSafeInteger(n) ? n : 0;
}

/** Splits an app-day hash into the day's total and each function's. */
export function parseAppDay(hash: Record<string, string>): { total: Account; functions: Map<string, Account> } {
  const total = emptyAccount();
  const functions = new Map<string, Account>();
  for (const [key, value] of Object.entries(hash)) {
    const bar = key.indexOf("|");
    if (bar < 0) {
      if ((ACCOUNT_FIELDS as readonly string[]).includes(key)) total[key as AccountField] = int(value);
      continue;
    }
    const fn = key.slice(0, bar);
    const field = key.slice(bar + 1);
    if (!(ACCOUNT_FIELDS as readonly string[]).includes(field)) continue;
    let account = functions.get(fn);
    if (!account) functions.set(fn, (account = emptyAccount()));
    account[field as AccountField] = int(value);
  }
  return { total, functions };
}

type ApplyCommand = (...keysAndArgs: string[]) => Promise<unknown>;

export interface LedgerStoreOptions {
  /** The state is ioredis-mock in this process: fold with commands under a lock, not a Lua script. */
  embedded?: boolean;
}

export class LedgerStore {
  readonly redis: Redis;
  readonly prefix: string;
  private readonly embedded: boolean;
  /** The embedded store's lock: the tail of the chain of ledger writes and snapshots. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(redis: Redis, prefix = "hearth:", options: LedgerStoreOptions = {}) {
    this.redis = redis;
    this.prefix = prefix;
    this.embedded = options.embedded ?? false;
    if (!this.embedded && typeof (redis as unknown as Record<string, unknown>)["hearthLedgerApply"] !== "function") {
      redis.defineCommand("hearthLedgerApply", { numberOfKeys: 9, lua: APPLY });
    }
  }

  /** Runs `work` alone among this store's embedded writes and snapshots (at once on Redis, where the script is atomic). */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    if (!this.embedded) return work();
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => undefined);
    return run;
  }

  key(...parts: string[]): string {
    return this.prefix + "ledger:" + parts.join(":");
  }

  /** The set that marks `id` as counted: its day's bucket of seen marks. */
  seenKey(day: string, id: string): string {
    return this.key("seen", day, id.slice(0, SEEN_BUCKET_CHARS));
  }
  /** How many records of the day are marked seen (what reconcile's repair watches). */
  seenCountKey(day: string): string {
    return this.key("seen-count", day);
  }
  /**
   * The day's one set of seen marks before they were bucketed: the script
   * still takes a record marked there as counted (a Redis ledger upgraded
   * with records in flight counts none twice); nothing writes it any more.
   */
  legacySeenKey(day: string): string {
    return this.key("seen", day);
  }
  appDayKey(app: string, day: string): string {
    return this.key("app", app, day);
  }
  deviceDayKey(deviceId: string, day: string): string {
    return this.key("device", deviceId, day);
  }

  /** Folds one record in. True when it counted now; false when it had been counted before. */
  async apply(record: UsageRecord): Promise<boolean> {
    const [keys, args, d] = this.foldOf(record);
    if (!this.embedded) {
      const apply = (this.redis as unknown as { hearthLedgerApply: ApplyCommand }).hearthLedgerApply;
      return Number(await apply.call(this.redis, ...keys, ...args)) === 1;
    }
    return this.exclusive(() => this.applyEmbedded(record, d, keys));
  }

  /**
   * Folds records in, in order, each as `apply` does (the script per record,
   * atomic on its own), in one round trip to Redis (a pipeline). Throws when
   * any of them failed: then some may have counted and some not, and folding
   * them all again counts each exactly once (the seen marks).
   */
  async applyMany(records: readonly UsageRecord[]): Promise<boolean[]> {
    if (records.length === 1) return [await this.apply(records[0]!)];
    if (this.embedded) {
      return this.exclusive(async () => {
        const out: boolean[] = [];
        for (const record of records) {
          const [keys, , d] = this.foldOf(record);
          out.push(await this.applyEmbedded(record, d, keys));
        }
        return out;
      });
    }
    const pipeline = this.redis.pipeline() as unknown as { hearthLedgerApply: ApplyCommand; exec(): Promise<[Error | null, unknown][] | null> };
    for (const record of records) {
      const [keys, args] = this.foldOf(record);
      void pipeline.hearthLedgerApply(...keys, ...args);
    }
    const results = (await pipeline.exec()) ?? [];
    if (results.length !== records.length) throw new Error(`the ledger's pipeline answered ${results.length} of ${records.length} folds`);
    return results.map(([error, value]) => {
      if (error) throw error;
      return Number(value) === 1;
    });
  }

  /** The script's keys and arguments for one record, and what it adds. */
  private foldOf(record: UsageRecord): [string[], string[], Account] {
    const d = accountDelta(record);
    const keys = [
      this.seenKey(record.day, record.id),
      this.appDayKey(record.app, record.day),
      this.key("app-days", record.app),
      this.key("apps"),
      this.deviceDayKey(record.deviceId ?? "-", record.day),
      this.key("device-days", record.deviceId ?? "-"),
      this.key("devices"),
      this.seenCountKey(record.day),
      this.legacySeenKey(record.day),
    ];
    const args = [
      record.id,
      String(SEEN_TTL_SECONDS),
      record.fn,
      String(d.errors),
      String(d.cold),
      String(d.cpuUs),
      String(d.wallUs),
      String(d.reqB),
      String(d.respB),
      record.day,
      record.app,
      record.deviceId ?? "",
      doorFieldOf(record) ?? "",
      record.credited === false ? "0" : "1",
    ];
    return [keys, args, d];
  }

  /** The script's fold as commands (the embedded store only; called under the lock). */
  private async applyEmbedded(record: UsageRecord, d: Account, keys: string[]): Promise<boolean> {
    const [seen, appDay, appDays, apps, deviceDay, deviceDays, devices, seenCount] = keys as [string, string, string, string, string, string, string, string];
    // (no legacy set here: the embedded state lives in this process and was never written the old way)
    if ((await this.redis.sadd(seen, record.id)) === 0) return false;
    const multi = this.redis.multi();
    multi.expire(seen, SEEN_TTL_SECONDS);
    multi.incr(seenCount);
    multi.expire(seenCount, SEEN_TTL_SECONDS);
    for (const field of ACCOUNT_FIELDS) {
      if (d[field] === 0) continue;
      multi.hincrby(appDay, field, d[field]);
      multi.hincrby(appDay, `${record.fn}|${field}`, d[field]);
    }
    multi.sadd(appDays, record.day);
    multi.sadd(apps, record.app);
    const credit = creditDelta(record);
    if (record.deviceId && credit) {
      // as the script: calls always, the rest when not 0
      for (const field of CREDIT_FIELDS) if (credit[field] !== 0) multi.hincrby(deviceDay, field, credit[field]);
      multi.sadd(deviceDays, record.day);
      multi.sadd(devices, record.deviceId);
    }
    const results = (await multi.exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    return true;
  }

  async apps(): Promise<string[]> {
    return (await this.redis.smembers(this.key("apps"))).sort();
  }

  async devices(): Promise<string[]> {
    return (await this.redis.smembers(this.key("devices"))).sort();
  }

  async appDays(app: string): Promise<string[]> {
    return (await this.redis.smembers(this.key("app-days", app))).sort();
  }

  async deviceDays(deviceId: string): Promise<string[]> {
    return (await this.redis.smembers(this.key("device-days", deviceId))).sort();
  }

  /** One app's usage, every day it has (or one day), by function. */
  async appUsage(app: string, day?: string): Promise<AppUsage> {
    const days = day ? [day] : await this.appDays(app);
    const out: DayUsage[] = [];
    const sum = emptyAccount();
    for (const d of days) {
      const hash = await this.redis.hgetall(this.appDayKey(app, d));
      if (Object.keys(hash).length === 0) continue;
      const { total, functions } = parseAppDay(hash);
      for (const f of ACCOUNT_FIELDS) sum[f] += total[f];
      const fns: FunctionUsage[] = [...functions.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([fn, account]) => ({ fn, ...totalsOf(account) }));
      out.push({ day: d, totals: totalsOf(total), functions: fns });
    }
    return { app, totals: totalsOf(sum), days: out };
  }

  async deviceCredits(deviceId: string, day?: string): Promise<DeviceCredits> {
    const days = day ? [day] : await this.deviceDays(deviceId);
    const total = { calls: 0, cpuUs: 0, wallUs: 0, credits: 0, claimed: { calls: 0, cpuUs: 0 } };
    const out: DeviceCredits["days"] = [];
    for (const d of days) {
      const hash = await this.redis.hgetall(this.deviceDayKey(deviceId, d));
      if (Object.keys(hash).length === 0) continue;
      const entry = {
        day: d, calls: int(hash["calls"]), cpuUs: int(hash["cpuUs"]), wallUs: int(hash["wallUs"]), credits: 0,
        claimed: { calls: int(hash["claimedCalls"]), cpuUs: int(hash["claimedCpuUs"]) },
      };
      entry.credits = entry.cpuUs / 1e6;
      total.calls += entry.calls;
      total.cpuUs += entry.cpuUs;
      total.wallUs += entry.wallUs;
      total.claimed.calls += entry.claimed.calls;
      total.claimed.cpuUs += entry.claimed.cpuUs;
      out.push(entry);
    }
    total.credits = total.cpuUs / 1e6;
    return { deviceId, days: out, total };
  }

  /**
   * Atomically (MULTI): which of the records `ids` the ledger has counted, and the
   * account hash as it is at that same instant. Reconciliation compares the
   * two without racing the consumer.
   */
  async snapshot(day: string, accountKey: string, ids: string[]): Promise<{ seen: boolean[]; hash: Record<string, string> }> {
    return this.exclusive(() => this.snapshotNow(day, accountKey, ids));
  }

  private async snapshotNow(day: string, accountKey: string, ids: string[]): Promise<{ seen: boolean[]; hash: Record<string, string> }> {
    const multi = this.redis.multi();
    for (const id of ids) multi.sismember(this.seenKey(day, id), id);
    multi.hgetall(accountKey);
    const results = (await multi.exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    const seen = results.slice(0, ids.length).map(([, v]) => Number(v) === 1);
    const hash = (results[ids.length]?.[1] ?? {}) as Record<string, string>;
    return { seen, hash };
  }
}
