/**
 * `hearth-platform reconcile [--repair] [--json]`: recomputes every account
 * from the usage stream, compares it with the ledger in Redis, prints the
 * difference (which must be zero) and exits 0 when it is, 1 when it is not.
 * With `--repair` it first makes the ledger match the stream (idempotent,
 * safe while platforms run) and exits on what is left afterwards.
 */
import { Subjects } from "@hearth/protocol";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import { pino } from "pino";
import type { PlatformEnv } from "../config/index.ts";
import { FabricAuthority, type FabricKeys } from "../identity/index.ts";
import type { Logger } from "../log/index.ts";
import { connectRedis } from "../state/index.ts";
import { formatReconcile, formatRepair, reconcileLedger, repairLedger } from "./reconcile.ts";
import { LedgerStore } from "./store.ts";

export async function runReconcile(env: Readonly<PlatformEnv>, fabricKeys: FabricKeys, platformLog: Logger, json: boolean, repair = false): Promise<number> {
  // the report goes to stdout (people, or --json for programs); log lines go to stderr so they never mix with it
  const log = pino({ level: platformLog.level, base: { service: "hearth-reconcile" } }, pino.destination(2));
  const { redis, embedded } = connectRedis(env.REDIS_URL);
  if (embedded) {
    process.stderr.write("hearth-platform reconcile: REDIS_URL is not set; the ledger lives in the platform's Redis, so set REDIS_URL to the one it uses\n");
    redis.disconnect();
    return 2;
  }
  const nc = await connect({
    servers: env.HEARTH_NATS_URL,
    name: "hearth-reconcile",
    authenticator: credsAuthenticator(await new FabricAuthority(fabricKeys).platformCreds("hearth-reconcile")),
  });
  try {
    const options = { nc, subjects: new Subjects(env.HEARTH_SUBJECT_PREFIX), store: new LedgerStore(redis, env.HEARTH_REDIS_PREFIX), log };
    if (repair) {
      const result = await repairLedger(options);
      process.stdout.write(json ? JSON.stringify(result, null, 2) + "\n" : formatRepair(result).join("\n") + "\n");
      return result.after.differences.length === 0 && result.after.missing === 0 ? 0 : 1;
    }
    const report = await reconcileLedger(options);
    process.stdout.write(json ? JSON.stringify(report, null, 2) + "\n" : formatReconcile(report).join("\n") + "\n");
    return report.differences.length === 0 && report.missing === 0 ? 0 : 1;
  } finally {
    await nc.drain().catch(() => undefined);
    redis.disconnect();
  }
}
