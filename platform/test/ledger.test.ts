/**
 * The usage ledger against a real nats-server with JetStream, on ioredis-mock
 * and (when installed) a real redis-server: records are stored once, folded
 * once, survive a consumer killed between write and ack, a replay of the
 * whole stream and a Redis restart, and reconciliation finds no difference.
 */
import { randomUUID } from "node:crypto";
import { redisServerBinary, startNatsServer, startRedisServer, type NatsServer, type RedisServer } from "@hearth/devkit";
import { Subjects, usageCodec, usageDay, type UsageRecord } from "@hearth/protocol";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import RedisMock from "ioredis-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAsPlatform, FabricAuthority, natsAuth, silentLogger } from "../src/index.ts";
import { LedgerConsumer, LedgerStore, reconcileLedger, startLedger } from "../src/ledger/index.ts";
import { accountDelta } from "../src/ledger/store.ts";
import { ensureUsageStream, usageNames } from "../src/usage/index.ts";

const log = silentLogger();
const VERSION = "a".repeat(64);
const HAS_REDIS = redisServerBinary() !== undefined;
const authority = FabricAuthority.generate();

let nats: NatsServer;
let nc: NatsConnection;
let redisServer: RedisServer | undefined;

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  nc = await connectAsPlatform(nats.url, authority);
  if (HAS_REDIS) redisServer = await startRedisServer();
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  await redisServer?.stop();
});

let counter = 0;
/** A unique subject prefix and Redis key prefix per test, so tests share servers without sharing state. */
function owned() {
  const n = ++counter;
  return { subjects: new Subjects(`led${n}${randomUUID().slice(0, 6)}`), prefix: `t${n}${randomUUID().slice(0, 6)}:` };
}

function record(i: number, over: Partial<UsageRecord> = {}): UsageRecord {
  const at = Date.UTC(2026, 10, 22, 12, 0, 0) + i;
  return {
    v: 2,
    id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
    requestId: `req-${i}`,
    app: "shop",
    fn: i % 3 === 0 ? "cart" : "search",
    version: VERSION,
    deviceId: i % 2 === 0 ? "dev-a" : "dev-b",
    at,
    day: usageDay(at),
    wallUs: 1_000 + i,
    cpuUs: 500 + i,
    claimedCpuUs: 500 + i,
    requestBytes: 10 + i,
    responseBytes: 100 + i,
    cold: i % 5 === 0,
    status: i % 7 === 0 ? 500 : 200,
    outcome: i % 7 === 0 ? "ERR_FUNCTION_THREW" : "ok",
    ...over,
  };
}

/** What N records must add up to, computed independently of the ledger's code. */
function expected(records: UsageRecord[]) {
  const sum = (f: (r: UsageRecord) => number) => records.reduce((a, r) => a + f(r), 0);
  return {
    calls: records.length,
    errors: records.filter((r) => r.outcome !== "ok").length,
    coldStarts: records.filter((r) => r.cold).length,
    cpuUs: sum((r) => r.cpuUs),
    wallUs: sum((r) => r.wallUs),
    requestBytes: sum((r) => r.requestBytes),
    responseBytes: sum((r) => r.responseBytes),
  };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 2_000; i++) {
    if (await check()) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const backends: [string, () => Promise<Redis>][] = [["ioredis-mock", async () => new RedisMock() as unknown as Redis]];
if (HAS_REDIS) backends.push(["redis-server", async () => new Redis(redisServer!.url, { maxRetriesPerRequest: 1 })]);

describe.each(backends)("usage ledger on %s", (_name, makeRedis) => {
  it("folds each record once: per app by day and function, per device by day", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required" });
    try {
      // every fourth a call at dev-a's own door, on its word alone: billed, held as claimed
      const records = Array.from({ length: 60 }, (_, i) => record(i, i % 4 === 2 ? { door: "device", credited: false } : {}));
      for (const r of records) ledger.publisher!.enqueue(r);
      // the same records again: JetStream drops them as duplicates (same message id)
      for (const r of records.slice(0, 20)) ledger.publisher!.enqueue(r);
      expect(await ledger.publisher!.flush()).toBe(true);
      expect(ledger.publisher!.stats.duplicates).toBe(20);
      await waitFor("ledger caught up", () => ledger.consumer!.caughtUp());

      const usage = await ledger.usage("shop");
      expect(usage.apps).toHaveLength(1);
      const app = usage.apps[0]!;
      expect(app.totals).toMatchObject(expected(records));
      expect(app.days.map((d) => d.day)).toEqual(["2026-11-22"]);
      const cart = app.days[0]!.functions.find((f) => f.fn === "cart")!;
      expect(cart).toMatchObject(expected(records.filter((r) => r.fn === "cart")));
      const devA = await ledger.store.deviceCredits("dev-a");
      const a = records.filter((r) => r.deviceId === "dev-a" && r.credited !== false);
      const claimed = records.filter((r) => r.credited === false);
      expect(claimed.length).toBe(15);
      expect(devA.total).toEqual({
        calls: a.length, cpuUs: expected(a).cpuUs, wallUs: expected(a).wallUs, credits: expected(a).cpuUs / 1e6,
        claimed: { calls: claimed.length, cpuUs: expected(claimed).cpuUs },
      });
      expect(app.totals.doors).toEqual({ gateway: 45, device: 15, "device-relay": 0, call: 0, "call-relay": 0 });
      const report = await reconcileLedger({ nc, subjects, store: ledger.store, log });
      expect(report).toMatchObject({ records: 60, pending: 0, differences: [] });
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("folds records in groups, one round trip each, and a record twice in one group or seen before counts once", async () => {
    const { prefix } = owned();
    const redis = await makeRedis();
    const store = new LedgerStore(redis, prefix, { embedded: _name === "ioredis-mock" });
    try {
      const records = Array.from({ length: 30 }, (_, i) => record(i));
      expect(await store.applyMany(records.slice(0, 10))).toEqual(Array(10).fill(true));
      // seen before (0..9), new (10..29), and 12 a second time in the same group
      const again = await store.applyMany([...records, records[12]!]);
      expect(again).toEqual([...Array(10).fill(false), ...Array(20).fill(true), false]);
      expect((await store.appUsage("shop")).totals).toMatchObject(expected(records));
    } finally {
      redis.disconnect();
    }
  });

  it("a consumer under load folds many records per round trip, and counts each once", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required", consume: false });
    try {
      const records = Array.from({ length: 400 }, (_, i) => record(i));
      for (const r of records) ledger.publisher!.enqueue(r);
      await ledger.publisher!.flush();
      const consumer = await LedgerConsumer.start({ nc, subjects, store: ledger.store, log });
      await waitFor("consumer caught up", () => consumer.caughtUp());
      await consumer.close();
      expect(consumer.stats.applied).toBe(400);
      // a backlog is folded in groups: far fewer round trips than records
      expect(consumer.stats.folds).toBeLessThan(200);
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject(expected(records));
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("folds at once when idle, holds what follows until the spacing is up, and folds what it holds when it stops", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required", consume: false });
    const names = usageNames(subjects);
    const jsm = await jetstreamManager(nc);
    try {
      // spacing far longer than the test: only the first record may be folded before close
      const consumer = await LedgerConsumer.start({ nc, subjects, store: ledger.store, log, foldSpacingMs: 600_000 });
      const records = Array.from({ length: 21 }, (_, i) => record(i));
      ledger.publisher!.enqueue(records[0]!);
      await waitFor("the first record folded at once", async () => consumer.stats.applied === 1);
      for (const r of records.slice(1)) ledger.publisher!.enqueue(r);
      await ledger.publisher!.flush();
      // all delivered to the consumer and none acked: it holds them for the next fold
      await waitFor("the rest delivered and held", async () => consumer.holding === 20);
      const info = await jsm.consumers.info(names.stream, names.durable);
      expect(info).toMatchObject({ num_pending: 0, num_ack_pending: 20 });
      expect(consumer.stats.applied).toBe(1);
      await consumer.close();
      expect(consumer.stats).toMatchObject({ applied: 21, duplicates: 0, folds: 2 });
      await waitFor("acked", () => consumer.caughtUp());
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject(expected(records));
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("stores the records of calls finishing together in one message (group commit), each counted once, replay included", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required" });
    const names = usageNames(subjects);
    const jsm = await jetstreamManager(nc);
    try {
      // one function's calls finishing at once: the first goes alone, the rest wait for its ack and go as one message
      const records = Array.from({ length: 90 }, (_, i) => record(i * 3)); // all "cart"
      const before = { ...ledger.publisher!.stats };
      await Promise.all(records.map((r) => ledger.publisher!.store(r)));
      expect(ledger.publisher!.stats.published - before.published).toBe(90);
      expect(ledger.publisher!.stats.commits - before.commits).toBe(2);
      expect(ledger.publisher!.backlog).toBe(0);
      expect((await jsm.streams.info(names.stream)).state.messages).toBe(2);
      // the second message holds the other 89, in order
      const second = await jsm.streams.getMessage(names.stream, { seq: 2 });
      expect((second!.json<UsageRecord[]>()).map((r) => r.id)).toEqual(records.slice(1).map((r) => r.id));

      await waitFor("ledger caught up", () => ledger.consumer!.caughtUp());
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject(expected(records));
      expect(await reconcileLedger({ nc, subjects, store: ledger.store, log })).toMatchObject({ records: 90, pending: 0, missing: 0, differences: [] });

      // the whole stream again to a fresh consumer: every record of both messages is a duplicate
      await ledger.consumer!.close();
      await jsm.consumers.delete(names.stream, names.durable);
      const replay = await LedgerConsumer.start({ nc, subjects, store: ledger.store, log });
      await waitFor("replay caught up", () => replay.caughtUp());
      expect(replay.stats).toMatchObject({ applied: 0, duplicates: 90 });
      await replay.close();
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject(expected(records));
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("a group JetStream does not store in time is retried record by record, and a group stored after all counts once", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    // this platform only publishes; the ledger's consumer starts once the stream is back
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required", consume: false });
    const names = usageNames(subjects);
    const jsm = await jetstreamManager(nc);
    try {
      const records = Array.from({ length: 30 }, (_, i) => record(i * 3));
      // a group already in the stream under its first record's id, as if its ack had been lost: the retries of its records come on top
      await jsm.streams.delete(names.stream);
      const publisher = ledger.publisher!;
      await Promise.all(records.map((r) => publisher.store(r)));
      expect(publisher.stats.deferred).toBe(30);
      expect(publisher.backlog).toBe(30);
      await ensureUsageStream(jsm, subjects);
      const js = jetstream(nc);
      await js.publish(names.subject("shop", "cart"), usageCodec.encode(records.slice(0, 10)), { msgID: records[0]!.id });
      expect(await publisher.flush(15_000)).toBe(true);
      // the group, and each other record alone (the first one's retry has the group's id: JetStream drops it)
      expect(publisher.stats.duplicates).toBe(1);
      expect((await jsm.streams.info(names.stream)).state.messages).toBe(30);
      const consumer = await LedgerConsumer.start({ nc, subjects, store: ledger.store, log });
      await waitFor("ledger caught up", () => consumer.caughtUp());
      await consumer.close();
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject(expected(records));
      expect(consumer.stats).toMatchObject({ applied: 30, duplicates: 9 });
      expect(await reconcileLedger({ nc, subjects, store: ledger.store, log })).toMatchObject({ records: 30, pending: 0, missing: 0, differences: [] });
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("a group whose first record's id was stored before (a door's report sent again) still stores the rest", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required" });
    try {
      const publisher = ledger.publisher!;
      const door = record(0); // "cart"
      await publisher.store(door);
      // the next call goes alone; the report sent again and four other calls queue behind it, the report first
      const others = [3, 6, 9, 12, 15].map((i) => record(i));
      await Promise.all([publisher.store(others[0]!), publisher.store(door), ...others.slice(1).map((r) => publisher.store(r))]);
      expect(publisher.stats.commits).toBe(3);
      await waitFor("ledger caught up", () => ledger.consumer!.caughtUp());
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject(expected([door, ...others]));
      expect(await reconcileLedger({ nc, subjects, store: ledger.store, log })).toMatchObject({ records: 6, differences: [] });
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("when a group is not acked in time, it and every record queued behind it go to the retry queue at once", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required", consume: false, usageAckTimeoutMs: 300 });
    const names = usageNames(subjects);
    const jsm = await jetstreamManager(nc);
    try {
      // no stream, and something on the subject that never answers: each publish waits its whole timeout
      await jsm.streams.delete(names.stream);
      let asked = 0;
      const silent = nc.subscribe(names.filter, { callback: () => { asked++; } });
      await nc.flush();
      const publisher = ledger.publisher!;
      const records = Array.from({ length: 40 }, (_, i) => record(i * 3));
      const first = publisher.store(records[0]!);
      const rest = records.slice(1).map((r) => publisher.store(r));
      await Promise.all([first, ...rest]);
      // one message tried on the call's path, not one per group queued behind it
      expect(asked).toBe(1);
      expect(publisher.stats).toMatchObject({ deferred: 40, commits: 0 });
      silent.unsubscribe();
      await ensureUsageStream(jsm, subjects);
      expect(await publisher.flush(15_000)).toBe(true);
      expect((await jsm.streams.info(names.stream)).state.messages).toBe(40);
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("terminates a message that is not usage (a group with one bad record included) and counts none of it", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required" });
    const names = usageNames(subjects);
    const js = jetstream(nc);
    try {
      const good = record(3);
      const bad = { ...record(6), cpuUs: -1 };
      await js.publish(names.subject("shop", "cart"), JSON.stringify([good, bad]));
      await js.publish(names.subject("shop", "cart"), JSON.stringify([]));
      await js.publish(names.subject("shop", "cart"), "not json");
      await js.publish(names.subject("shop", "cart"), usageCodec.encode([record(9), record(12)]));
      await waitFor("ledger caught up", () => ledger.consumer!.caughtUp());
      expect(ledger.consumer!.stats).toMatchObject({ applied: 2, invalid: 3 });
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject(expected([record(9), record(12)]));
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("replaying the whole stream to a fresh consumer counts nothing twice", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required" });
    try {
      const records = Array.from({ length: 40 }, (_, i) => record(i));
      for (const r of records) ledger.publisher!.enqueue(r);
      await ledger.publisher!.flush();
      await waitFor("ledger caught up", () => ledger.consumer!.caughtUp());
      const before = (await ledger.usage("shop")).apps[0]!.totals;

      // replay: delete the durable consumer and start over from the first record, twice
      await ledger.consumer!.close();
      const jsm = await jetstreamManager(nc);
      for (let round = 0; round < 2; round++) {
        await jsm.consumers.delete(usageNames(subjects).stream, "ledger");
        const replay = await LedgerConsumer.start({ nc, subjects, store: ledger.store, log });
        await waitFor("replay caught up", () => replay.caughtUp());
        expect(replay.stats).toMatchObject({ applied: 0, duplicates: 40 });
        await replay.close();
      }
      expect((await ledger.usage("shop")).apps[0]!.totals).toEqual(before);
      expect(before).toMatchObject(expected(records));
      expect((await reconcileLedger({ nc, subjects, store: ledger.store, log })).differences).toEqual([]);
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("a consumer killed between write and ack, then restarted, loses nothing and counts nothing twice", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    // this platform only publishes; the consumer runs on its own connection so it can be killed
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required", consume: false });
    const store = new LedgerStore(redis, prefix);
    try {
      const records = Array.from({ length: 50 }, (_, i) => record(i));
      for (const r of records) ledger.publisher!.enqueue(r);
      await ledger.publisher!.flush();

      const doomed = await connectAsPlatform(nats.url, authority, "doomed-ledger");
      let written = 0;
      const victim = await LedgerConsumer.start({
        nc: doomed,
        subjects,
        store,
        log,
        ackWaitMs: 1_000, // a dead consumer's unacked records come back after this
        // folds of up to 5 records: the one holding the 17th is written whole, and none of it acked
        foldBatch: 5,
        afterApply: async () => {
          // the 17th record is written to Redis; the process "dies" before its ack
          if (++written === 17) await doomed.close();
        },
      });
      await doomed.closed();
      await victim.close();
      const partial = (await ledger.usage("shop")).apps[0]!.totals.calls;
      expect(partial).toBeGreaterThanOrEqual(17);
      expect(partial).toBeLessThan(50);

      const survivor = await LedgerConsumer.start({ nc, subjects, store, log });
      await waitFor("survivor caught up", () => survivor.caughtUp());
      // at least the record written but never acked comes back, and counts nothing
      expect(survivor.stats.duplicates).toBeGreaterThanOrEqual(1);
      await survivor.close();
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject(expected(records));
      expect((await reconcileLedger({ nc, subjects, store, log })).differences).toEqual([]);
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("reconciliation reports a tampered account, field by field", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required" });
    try {
      for (let i = 0; i < 10; i++) ledger.publisher!.enqueue(record(i));
      await ledger.publisher!.flush();
      await waitFor("ledger caught up", () => ledger.consumer!.caughtUp());
      expect((await ledger.reconcile()).differences).toEqual([]);
      await redis.hincrby(ledger.store.appDayKey("shop", "2026-11-22"), "cpuUs", 7);
      await redis.hincrby(ledger.store.deviceDayKey("dev-a", "2026-11-22"), "calls", 1);
      const report = await ledger.reconcile();
      expect(report.differences).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ account: "app shop 2026-11-22", field: "cpuUs", ledger: expected(Array.from({ length: 10 }, (_, i) => record(i))).cpuUs + 7 }),
          expect.objectContaining({ account: "device dev-a 2026-11-22", field: "calls", ledger: 6, stream: 5 }),
        ]),
      );
      expect(report.differences).toHaveLength(2);
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });
});

describe.each(backends)("reconcile --repair on %s", (_name, makeRedis) => {
  it("records acknowledged and then lost by Redis are missing (not pending); repair folds them back once", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required" });
    try {
      const records = Array.from({ length: 30 }, (_, i) => record(i));
      for (const r of records) await ledger.publisher!.store(r);
      await waitFor("ledger caught up", () => ledger.consumer!.caughtUp());
      // Redis loses the last writes: 12 records' seen marks and their share of the totals
      const lost = records.slice(18);
      for (const r of lost) {
        await redis.srem(ledger.store.seenKey(r.day, r.id), r.id);
        await redis.decr(ledger.store.seenCountKey(r.day));
        const app = ledger.store.appDayKey("shop", r.day);
        for (const [field, value] of Object.entries(accountDelta(r))) {
          await redis.hincrby(app, field, -value);
          await redis.hincrby(app, `${r.fn}|${field}`, -value);
        }
        const device = ledger.store.deviceDayKey(r.deviceId!, r.day);
        await redis.hincrby(device, "calls", -1);
        await redis.hincrby(device, "cpuUs", -r.cpuUs);
        await redis.hincrby(device, "wallUs", -r.wallUs);
      }
      const report = await ledger.reconcile();
      expect(report).toMatchObject({ records: 30, pending: 0, missing: 12 });
      expect(report.differences.length).toBeGreaterThan(0);

      const repair = await ledger.repair();
      expect(repair.before.missing).toBe(12);
      expect(repair.reapplied).toBe(12);
      // folded in whole again: nothing else needed rewriting
      expect(repair.rewritten).toEqual([]);
      expect(repair.after).toMatchObject({ records: 30, pending: 0, missing: 0, differences: [] });
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject({ calls: 30, cpuUs: expected(records).cpuUs });

      // idempotent: a second repair finds nothing and does nothing
      const again = await ledger.repair();
      expect(again).toMatchObject({ reapplied: 0, rewritten: [], before: { missing: 0, differences: [] } });
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject(expected(records));
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("records not yet acknowledged are pending, not missing", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required", consume: false });
    try {
      for (let i = 0; i < 7; i++) await ledger.publisher!.store(record(i));
      expect(await ledger.reconcile()).toMatchObject({ records: 7, pending: 7, missing: 0, differences: [] });
      const repair = await ledger.repair();
      expect(repair).toMatchObject({ reapplied: 0, rewritten: [] });
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });

  it("rewrites a tampered account to what the stream says, and only that account", async () => {
    const { subjects, prefix } = owned();
    const redis = await makeRedis();
    const ledger = await startLedger({ nc, subjects, redis, prefix, log, mode: "required" });
    try {
      const records = Array.from({ length: 20 }, (_, i) => record(i));
      for (const r of records) await ledger.publisher!.store(r);
      await waitFor("ledger caught up", () => ledger.consumer!.caughtUp());
      await redis.hincrby(ledger.store.appDayKey("shop", "2026-11-22"), "respB", 1_000);
      await redis.hset(ledger.store.appDayKey("shop", "2026-11-22"), "ghost|calls", "3");
      await redis.hincrby(ledger.store.deviceDayKey("dev-b", "2026-11-22"), "cpuUs", -5);
      const repair = await ledger.repair();
      expect(repair.before.differences.length).toBeGreaterThanOrEqual(3);
      expect(repair.reapplied).toBe(0);
      expect(repair.rewritten.sort()).toEqual(["app shop 2026-11-22", "device dev-b 2026-11-22"]);
      expect(repair.after).toMatchObject({ missing: 0, differences: [] });
      const usage = (await ledger.usage("shop")).apps[0]!;
      expect(usage.totals).toMatchObject(expected(records));
      expect(usage.days[0]!.functions.map((f) => f.fn)).toEqual(["cart", "search"]);
      // and the consumer keeps folding into the rewritten account
      await ledger.publisher!.store(record(100));
      await waitFor("ledger caught up", () => ledger.consumer!.caughtUp());
      expect((await ledger.usage("shop")).apps[0]!.totals.calls).toBe(21);
      expect((await ledger.reconcile()).differences).toEqual([]);
    } finally {
      await ledger.close();
      redis.disconnect();
    }
  });
});

describe.skipIf(!HAS_REDIS)("usage ledger across a Redis restart (redis-server)", () => {
  it("keeps totals exact when Redis restarts while records stream in", async () => {
    const redis = await startRedisServer();
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    client.on("error", () => undefined);
    const { subjects, prefix } = owned();
    const ledger = await startLedger({ nc, subjects, redis: client, prefix, log, mode: "required" });
    try {
      const records = Array.from({ length: 300 }, (_, i) => record(i));
      for (const r of records.slice(0, 150)) ledger.publisher!.enqueue(r);
      await ledger.publisher!.flush();
      await redis.restart(); // stops (AOF on) and starts again on the same port and data dir
      for (const r of records.slice(150)) ledger.publisher!.enqueue(r);
      await ledger.publisher!.flush();
      await waitFor("ledger caught up", () => ledger.consumer!.caughtUp(), 30_000);
      expect((await ledger.usage("shop")).apps[0]!.totals).toMatchObject(expected(records));
      expect((await ledger.reconcile()).differences).toEqual([]);
    } finally {
      await ledger.close();
      client.disconnect();
      await redis.stop();
    }
  });
});

describe("usage ledger without JetStream", () => {
  let plain: NatsServer;
  let plainNc: NatsConnection;
  beforeAll(async () => {
    plain = await startNatsServer({ auth: natsAuth(authority) });
    plainNc = await connectAsPlatform(plain.url, authority);
  });
  afterAll(async () => {
    await plainNc?.close();
    await plain?.stop();
  });

  it("refuses to start when required, naming the fix", async () => {
    const { subjects, prefix } = owned();
    const redis = new RedisMock() as unknown as Redis;
    await expect(startLedger({ nc: plainNc, subjects, redis, prefix, log, mode: "required" })).rejects.toMatchObject({
      code: "ERR_LEDGER_UNAVAILABLE",
      message: expect.stringMatching(/Enable it \(nats-server -js/),
    });
  });

  it("runs unmetered in auto mode and says so on usage requests", async () => {
    const { subjects, prefix } = owned();
    const redis = new RedisMock() as unknown as Redis;
    const ledger = await startLedger({ nc: plainNc, subjects, redis, prefix, log, mode: "auto" });
    expect(ledger.metering).toBe(false);
    await expect(ledger.usage()).rejects.toMatchObject({ code: "ERR_LEDGER_UNAVAILABLE" });
    await ledger.close();
  });
});
