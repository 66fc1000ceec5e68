/**
 * `hearth-agent`: the device owner's command. `start` joins the fabric and
 * serves placed functions until SIGINT/SIGTERM, then drains: no new calls,
 * in-flight calls finish within the grace period.
 *
 * Flags override the config file (--config, JSON), which overrides the
 * environment (HEARTH_NATS_URL, HEARTH_DEVICE_ID, ...). All three are
 * validated by one zod schema; a bad value names its key.
 */
import { readFileSync } from "node:fs";
import { HearthError } from "@hearth/protocol";
import { Command, InvalidArgumentError } from "commander";
import { Agent } from "./agent/index.ts";
import { defaultDeviceId, parseAgentConfig } from "./config/index.ts";
import { createLogger } from "./log/index.ts";

function number(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`'${value}' is not a number`);
  return n;
}

/** `label:lat,lon`, e.g. `berlin:52.52,13.40`. */
function location(value: string) {
  const match = /^([^:]{1,64}):(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)$/.exec(value);
  if (!match) throw new InvalidArgumentError(`'${value}' is not label:lat,lon (e.g. berlin:52.52,13.40)`);
  return { label: match[1]!, lat: Number(match[2]), lon: Number(match[3]) };
}

function fromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (env["HEARTH_NATS_URL"]) out["natsUrl"] = env["HEARTH_NATS_URL"];
  if (env["HEARTH_DEVICE_ID"]) out["deviceId"] = env["HEARTH_DEVICE_ID"];
  if (env["HEARTH_SUBJECT_PREFIX"]) out["subjectPrefix"] = env["HEARTH_SUBJECT_PREFIX"];
  if (env["HEARTH_LOG_LEVEL"]) out["logLevel"] = env["HEARTH_LOG_LEVEL"];
  return out;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new HearthError("ERR_BAD_REQUEST", `cannot read config file ${path}: ${(error as Error).message}`);
  }
  try {
    const data: unknown = JSON.parse(text);
    if (typeof data !== "object" || data === null || Array.isArray(data)) throw new Error("not a JSON object");
    return data as Record<string, unknown>;
  } catch (error) {
    throw new HearthError("ERR_BAD_REQUEST", `config file ${path} is not a JSON object: ${(error as Error).message}`);
  }
}

const program = new Command("hearth-agent")
  .description("Donate a bounded share of this device to run Hearth functions")
  .showHelpAfterError();

program
  .command("start")
  .description("join the fabric and serve functions until stopped (Ctrl-C drains)")
  .option("--nats <url>", "fabric URL (or HEARTH_NATS_URL)")
  .option("--config <file>", "JSON config file with the same keys as docs/agent.md")
  .option("--device-id <id>", "this device's id (default: host name)")
  .option("--owner <id>", "owner id, for spreading replicas over owners")
  .option("--region <name>", "region (NATS cluster) this device joins")
  .option("--location <label:lat,lon>", "where the device is, e.g. berlin:52.52,13.40", location)
  .option("--cores <n>", "cores to donate (default: half of this machine's)", number)
  .option("--memory-mb <n>", "memory to donate to functions, MiB", number)
  .option("--sandboxes <n>", "sandbox processes (default: one per donated core)", number)
  .option("--log-level <level>", "fatal, error, warn, info, debug, trace or silent")
  .action(async (flags: Record<string, unknown>) => {
    const file = typeof flags["config"] === "string" ? readConfigFile(flags["config"]) : {};
    const cli = Object.fromEntries(
      Object.entries({
        natsUrl: flags["nats"],
        deviceId: flags["deviceId"],
        ownerId: flags["owner"],
        region: flags["region"],
        location: flags["location"],
        cores: flags["cores"],
        memoryMb: flags["memoryMb"],
        sandboxes: flags["sandboxes"],
        logLevel: flags["logLevel"],
      }).filter(([, v]) => v !== undefined),
    );
    const merged: Record<string, unknown> = { deviceId: defaultDeviceId(), ...fromEnv(process.env), ...file, ...cli };
    if (merged["natsUrl"] === undefined) {
      throw new HearthError("ERR_BAD_REQUEST", "no fabric URL: pass --nats nats://host:4222 or set HEARTH_NATS_URL");
    }
    const config = parseAgentConfig(merged);
    const log = createLogger("hearth-agent", config.logLevel);
    const agent = await Agent.start(config, log);
    process.stdout.write(`HEARTH_AGENT_READY ${config.deviceId}\n`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "draining: no new calls; in-flight calls may finish");
      agent.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof HearthError) {
    process.stderr.write(`hearth-agent: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`hearth-agent: unexpected error\n${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
