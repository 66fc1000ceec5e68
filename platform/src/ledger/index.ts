/**
 * The usage ledger of one platform process: the usage stream (created at
 * start), the publisher the gateway hands each finished call to, the
 * durable consumer that folds records into Redis, reconciliation, and the
 * HTTP routes that show usage (device credits: platform/src/identity).
 *
 * Without JetStream there is no durable usage stream. `mode` decides what
 * then happens: "required" stops the platform with a clear error (the
 * `hearth-platform` default), "auto" starts without metering and says so
 * loudly at start and on every usage request (the library default, so
 * embedded and test platforms on a plain nats-server still run).
 * See docs/ledger.md.
 */
import {
  AppName,
  formatZodError,
  HearthError,
  UsageDay,
  type ReconcileReport,
  type RepairReport,
  type Subjects,
  LastReconcile,
  type UsageRecord,
  type UsageReport,
} from "@hearth/protocol";
import type { NatsConnection } from "@nats-io/transport-node";
import { Hono } from "hono";
import type { Redis } from "ioredis";
import { z } from "zod";
import { parseInput, type HearthEnv } from "../http/index.ts";
import { developerOf, operatorOnly, type AppOwners } from "../identity/index.ts";
import type { Logger } from "../log/index.ts";
import { UsagePublisher, type CallHook } from "../usage/index.ts";
import { LedgerConsumer } from "./consumer.ts";
import { reconcileLedger, repairLedger } from "./reconcile.ts";
import { emptyAccount, LedgerStore, totalsOf } from "./store.ts";

export { LedgerConsumer, ensureLedgerConsumer } from "./consumer.ts";
export { formatReconcile, formatRepair, readUsageStream, reconcileLedger, repairLedger } from "./reconcile.ts";
export { LedgerStore, SEEN_TTL_SECONDS } from "./store.ts";

export type LedgerMode = "required" | "auto" | "off";
export const LedgerMode = z.enum(["required", "auto", "off"]);

/** The ledger's environment variables, read through zod like every other (docs/configuration.md). */
export const LedgerEnv = z.object({
  HEARTH_LEDGER: LedgerMode.default("required"),
  HEARTH_PUBLIC_NATS_URL: z.string().regex(/^(nats|tls|ws|wss):\/\/.+/, "HEARTH_PUBLIC_NATS_URL must be a nats://, tls://, ws:// or wss:// URL").optional(),
});
export type LedgerEnv = z.infer<typeof LedgerEnv>;

export function readLedgerEnv(env: NodeJS.ProcessEnv = process.env): Readonly<LedgerEnv> {
  const parsed = LedgerEnv.safeParse(env);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", formatZodError(parsed.error, "environment"));
  return Object.freeze(parsed.data);
}

export interface LedgerOptions {
  nc: NatsConnection;
  subjects: Subjects;
  redis: Redis;
  /** `redis` is the embedded store (ioredis-mock in this process): see LedgerStore. */
  embedded?: boolean;
  prefix?: string;
  log: Logger;
  mode?: LedgerMode;
  /** Run the consumer in this process (default true; several platform processes may all run it). */
  consume?: boolean;
  /** How long a call waits for its usage record to be stored before it falls back to the retry queue (see platform/src/usage). */
  usageAckTimeoutMs?: number;
  /** Told of each record the consumer folds for the first time (function stats, platform/src/stats). */
  onFolded?: (record: UsageRecord) => Promise<void>;
}

export interface Ledger extends AsyncDisposable {
  /** False when running without JetStream: nothing is metered. */
  readonly metering: boolean;
  readonly store: LedgerStore;
  readonly publisher?: UsagePublisher;
  readonly consumer?: LedgerConsumer;
  /** The gateway's hook (a no-op without metering). */
  readonly onCall: CallHook;
  reconcile(): Promise<ReconcileReport>;
  /** The last reconciliation's outcome (any platform process's), for the operator's console; null before the first. */
  lastReconcile(): Promise<LastReconcile | null>;
  /** Makes the ledger match the stream again (idempotent); see reconcile.ts. */
  repair(): Promise<RepairReport>;
  /**
   * Usage of one app, or of every app with usage. With `visible`, only those
   * apps: one outside it answers as an app with no usage at all.
   */
  usage(app?: string, day?: string, visible?: ReadonlySet<string>): Promise<UsageReport>;
  close(): Promise<void>;
}

export async function startLedger(options: LedgerOptions): Promise<Ledger> {
  const { nc, subjects, redis, log } = options;
  const prefix = options.prefix ?? "hearth:";
  const mode = options.mode ?? "auto";
  const store = new LedgerStore(redis, prefix, { embedded: options.embedded ?? false });
  let publisher: UsagePublisher | undefined;
  let consumer: LedgerConsumer | undefined;
  if (mode !== "off") {
    try {
      publisher = await UsagePublisher.start({ nc, subjects, log: log.child({ part: "usage" }), ackTimeoutMs: options.usageAckTimeoutMs });
      if (options.consume !== false) consumer = await LedgerConsumer.start({ nc, subjects, store, log: log.child({ part: "ledger" }), onFolded: options.onFolded });
    } catch (error) {
      const reason = (error as Error).message;
      if (mode === "required") {
        throw new HearthError(
          "ERR_LEDGER_UNAVAILABLE",
          `usage metering needs JetStream, and it is not available on the fabric (${reason}). Enable it (nats-server -js, or jetstream {} in its config), or set HEARTH_LEDGER=off to run without metering (calls are then not billed or credited).`,
          { cause: error },
        );
      }
      log.warn({ err: error }, "!!! JetStream is not available: calls are NOT metered, billed or credited (HEARTH_LEDGER=auto). Enable JetStream on the nats-server.");
      await publisher?.close(0);
      publisher = undefined;
    }
  } else {
    log.warn("!!! HEARTH_LEDGER=off: calls are NOT metered, billed or credited");
  }
  const metering = publisher !== undefined;
  const unavailable = () =>
    new HearthError("ERR_LEDGER_UNAVAILABLE", "usage metering is off on this platform (no JetStream); see docs/ledger.md");

  const lastReconcileKey = `${prefix}ledger:last-reconcile`;
  const remember = async (report: ReconcileReport, repaired: boolean) => {
    const last: LastReconcile = {
      at: new Date().toISOString(), records: report.records, pending: report.pending, missing: report.missing, differences: report.differences.length, repaired,
    };
    await redis.set(lastReconcileKey, JSON.stringify(last)).catch((error: unknown) => log.warn({ err: error }, "could not keep the reconciliation's outcome for the console"));
  };
  const close = async () => {
    await publisher?.close();
    await consumer?.close();
  };
  return {
    metering,
    store,
    publisher,
    consumer,
    onCall: publisher ? publisher.record : () => undefined,
    async reconcile() {
      if (!metering) throw unavailable();
      const report = await reconcileLedger({ nc, subjects, store, log });
      await remember(report, false);
      return report;
    },
    async repair() {
      if (!metering) throw unavailable();
      const report = await repairLedger({ nc, subjects, store, log: log.child({ part: "ledger" }) });
      await remember(report.after, true);
      return report;
    },
    async lastReconcile() {
      const raw = await redis.get(lastReconcileKey);
      if (raw === null) return null;
      const parsed = LastReconcile.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : null;
    },
    async usage(app, day, visible) {
      if (!metering) throw unavailable();
      const shown = (a: string) => visible === undefined || visible.has(a);
      const apps = app ? [app] : (await store.apps()).filter(shown);
      return { apps: await Promise.all(apps.map((a) => (shown(a) ? store.appUsage(a, day) : { app: a, totals: totalsOf(emptyAccount()), days: [] }))) };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

export const UsageQuery = z.strictObject({ app: AppName.optional(), day: UsageDay.optional() });
export const ReconcileQuery = z.strictObject({ repair: z.enum(["0", "1", "false", "true"]).optional() });
/** Routes behind the API's authentication: a developer's usage of their own apps; reconciliation (the operator's). */
export function createLedgerRoutes(ledger: Ledger, owners: AppOwners): Hono<HearthEnv> {
  const app = new Hono<HearthEnv>();
  app.get("/usage", async (c) => {
    const me = developerOf(c);
    const query = parseInput(UsageQuery, c.req.query(), "query");
    return c.json(await ledger.usage(query.app, query.day, await owners.appsOf(me.developer.id)));
  });
  app.post("/ledger/reconcile", operatorOnly, async (c) => {
    const query = parseInput(ReconcileQuery, c.req.query(), "query");
    const repair = query.repair === "1" || query.repair === "true";
    return c.json(repair ? await ledger.repair() : await ledger.reconcile());
  });
  return app;
}
