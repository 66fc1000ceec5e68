#!/usr/bin/env node
/**
 * `hearth-platform`: the platform's command line. With no command (or
 * `start`) it runs one platform process configured from the environment
 * (docs/configuration.md); `reconcile` checks the ledger against the usage
 * stream (docs/ledger.md); `developers ...` manages developers and their API
 * tokens, `devices revoke` takes a device off the fabric, `fabric init` makes
 * the fabric's keys (docs/security.md). Each command group lives beside its feature and
 * is added to the program here.
 */
import { HearthError } from "@hearth/protocol";
import { Command } from "commander";
import { readPlatformEnv, type PlatformEnv } from "./config/index.ts";
import { readFabricKeys, type FabricKeys } from "./identity/index.ts";
import { developersCommand } from "./identity/developers-cli.ts";
import { devicesCommand, fabricCommand } from "./identity/fabric-cli.ts";
import { readLedgerEnv, type LedgerEnv } from "./ledger/index.ts";
import { runReconcile } from "./ledger/cli.ts";
import { createLogger } from "./log/index.ts";
import { startPlatform } from "./platform.ts";

/** The platform's whole environment, or a message naming each bad variable and exit 2. */
function platformEnv(): { env: Readonly<PlatformEnv>; ledger: Readonly<LedgerEnv>; fabricKeys: FabricKeys } {
  try {
    return { env: readPlatformEnv(), ledger: readLedgerEnv(), fabricKeys: readFabricKeys() };
  } catch (error) {
    if (error instanceof HearthError) {
      process.stderr.write(`hearth-platform: ${error.message}\nSee docs/configuration.md for every variable.\n`);
      process.exit(2);
    }
    throw error;
  }
}

async function start(): Promise<void> {
  const { env, ledger, fabricKeys } = platformEnv();
  const log = createLogger("hearth-platform", env.HEARTH_LOG_LEVEL);
  const platform = await startPlatform({
    fabricKeys,
    region: env.HEARTH_REGION,
    credentialTtlSeconds: env.HEARTH_CREDENTIAL_TTL_SECONDS,
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
    callLimits: {
      perIpPerSecond: env.HEARTH_RATE_LIMIT_PER_IP,
      perAppPerSecond: env.HEARTH_RATE_LIMIT_PER_APP,
      perFunctionInFlight: env.HEARTH_MAX_IN_FLIGHT_PER_FUNCTION,
      perIpInFlight: env.HEARTH_MAX_IN_FLIGHT_PER_IP,
    },
    clientIpHeader: env.HEARTH_CLIENT_IP_HEADER,
    clientLocationHeader: env.HEARTH_CLIENT_LOCATION_HEADER,
    location: env.HEARTH_LOCATION,
    doorsAllowPrivate: env.HEARTH_DOORS_ALLOW_PRIVATE,
    otlpTracesUrl: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (env.OTEL_EXPORTER_OTLP_ENDPOINT ? `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces` : undefined),
    ledger: ledger.HEARTH_LEDGER,
    publicNatsUrl: ledger.HEARTH_PUBLIC_NATS_URL,
  }).catch((error: unknown) => {
    process.stderr.write(`hearth-platform: could not start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
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

export function buildProgram(): Command {
  const program = new Command("hearth-platform")
    .description("Hearth's control plane and gateway, and the operator's commands (configured from the environment: docs/configuration.md)")
    .showHelpAfterError();

  program.command("start", { isDefault: true }).description("run one platform process (the default command)").action(start);

  program
    .command("reconcile")
    .description("recompute the ledger from the usage stream and print the difference; exit 1 when there is one")
    .option("--repair", "first make the ledger match the stream (idempotent, safe while platforms run)")
    .option("--json", "print the report as JSON")
    .action(async (flags: { repair?: boolean; json?: boolean }) => {
      const { env, fabricKeys } = platformEnv();
      process.exit(await runReconcile(env, fabricKeys, createLogger("hearth-platform", env.HEARTH_LOG_LEVEL), flags.json === true, flags.repair === true));
    });

  program.addCommand(developersCommand());
  program.addCommand(devicesCommand());
  program.addCommand(fabricCommand());
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    if (error instanceof HearthError) {
      // what happened and what to do; a stack only for the unexpected
      process.stderr.write(`hearth-platform: ${error.message}\n`);
      process.exit(error.isUserError ? 2 : 1);
    }
    process.stderr.write(`hearth-platform: unexpected error\n${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
