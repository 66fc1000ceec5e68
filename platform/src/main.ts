#!/usr/bin/env node
/** `hearth-platform`: runs one platform process configured from the environment (docs/configuration.md). */
import { HearthError } from "@hearth/protocol";
import { readPlatformEnv } from "./config/index.ts";
import { readLedgerEnv } from "./ledger/index.ts";
import { runReconcile } from "./ledger/cli.ts";
import { createLogger } from "./log/index.ts";
import { startPlatform } from "./platform.ts";

async function main(): Promise<void> {
  let env;
  let ledger;
  try {
    env = readPlatformEnv();
    ledger = readLedgerEnv();
  } catch (error) {
    if (error instanceof HearthError) {
      process.stderr.write(`hearth-platform: ${error.message}\nSee docs/configuration.md for every variable.\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger("hearth-platform", env.HEARTH_LOG_LEVEL);
  // `hearth-platform reconcile [--repair] [--json]`: recompute the ledger from the usage stream and print the difference (docs/ledger.md)
  if (process.argv[2] === "reconcile") process.exit(await runReconcile(env, log, process.argv.includes("--json"), process.argv.includes("--repair")));
  const platform = await startPlatform({
    natsUrl: env.HEARTH_NATS_URL,
    token: env.HEARTH_TOKEN,
    log,
    redisUrl: env.REDIS_URL,
    redisPrefix: env.HEARTH_REDIS_PREFIX,
    subjectPrefix: env.HEARTH_SUBJECT_PREFIX,
    host: env.HEARTH_HOST,
    port: env.HEARTH_PORT,
    publicUrl: env.HEARTH_PUBLIC_URL,
    appDomain: env.HEARTH_APP_DOMAIN,
    ledger: ledger.HEARTH_LEDGER,
    publicNatsUrl: ledger.HEARTH_PUBLIC_NATS_URL,
  });
  // The parent (e.g. the demo) reads this line to learn the URL.
  process.stdout.write(`HEARTH_PLATFORM_READY ${platform.url}\n`);
  const stop = () => {
    log.info("stopping");
    platform.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`hearth-platform: could not start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
