/**
 * `hearth-agent`: the device owner's command.
 *
 * - `join <platform-url> --token <join-token>` registers the device and keeps
 *   its identity in the data dir (0600).
 * - `start` serves placed functions within the owner's caps (cores, memory,
 *   schedule, idle-only, battery) until SIGINT/SIGTERM or `drain`, then
 *   drains: no new calls, in-flight calls finish within the grace period.
 * - `networks add <invite>`, `networks list`, `networks leave <app>`: the
 *   application networks the device is a member of, over HTTPS with the
 *   device token `join` stored (docs/agent.md, "Networks").
 * - `status` shows what the running agent does and the credits it earned;
 *   `pause`, `resume` and `drain` steer it (over its control socket).
 *
 * Flags override the config file (--config, or <dataDir>/config.json), which
 * overrides the environment, which overrides the joined identity. All are
 * validated by one zod schema; a bad value names its key.
 */
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { join } from "node:path";
import {
  AppName,
  DeviceCredits,
  DeviceNetworkJoinResponse,
  DeviceNetworksView,
  formatZodError,
  HearthError,
  JoinResponse,
  NetworkInvite,
} from "@hearth/protocol";
import { Command, InvalidArgumentError } from "commander";
import { z } from "zod";
import { AGENT_VERSION, type AgentStatus } from "./agent/index.ts";
import { defaultDataDir, defaultDeviceId, resolveAgentConfig } from "./config/index.ts";
import { pickDevice, request } from "./control/index.ts";
import { startDaemon } from "./daemon/index.ts";
import { credsPath, newDeviceKey, readCreds, readIdentity, writeCreds, writeIdentity, type Identity } from "./identity/index.ts";
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

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
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

const out = (line: string): void => {
  process.stdout.write(line + "\n");
};

const program = new Command("hearth-agent")
  .description("Donate a bounded share of this device to run Hearth functions")
  .showHelpAfterError();

program
  .command("join <platform-url>")
  .description("register this device with a platform, using a join token from its operator")
  .requiredOption("--token <join-token>", "the join token (single use)")
  .option("--device-id <id>", "this device's id (default: host name)")
  .option("--data-dir <dir>", "where to keep the identity (or HEARTH_AGENT_DIR; default ~/.hearth-agent)")
  .option("--network <invite>", "join an app's network with the invite its developer gave you (repeatable)", collect)
  .action(async (platformUrl: string, flags: { token: string; deviceId?: string; dataDir?: string; network?: string[] }) => {
    const invites = (flags.network ?? []).map(inviteArg);
    const url = z.url().safeParse(platformUrl);
    if (!url.success) throw new HearthError("ERR_BAD_REQUEST", `'${platformUrl}' is not a URL (e.g. https://hearth.example.org)`);
    const dataDir = flags.dataDir ?? defaultDataDir();
    const deviceId = flags.deviceId ?? defaultDeviceId();
    const base = url.data.replace(/\/+$/, "");
    // the device's own key: the platform signs its public half; the seed is written to fabric.creds here and nowhere else
    const key = newDeviceKey();
    let response: Response;
    try {
      response = await fetch(`${base}/v1/devices/join`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          token: flags.token,
          deviceId,
          publicKey: key.getPublicKey(),
          // the machine's size: the most this device can ever donate (the platform caps heartbeats to it)
          cores: availableParallelism(),
          memoryMb: Math.floor(totalmem() / 1024 / 1024),
          agentVersion: AGENT_VERSION,
        }),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (error) {
      throw new HearthError("ERR_PLATFORM_UNREACHABLE", `cannot reach the platform at ${base}: ${(error as Error).message}`);
    }
    const body: unknown = await response.json().catch(() => undefined);
    if (!response.ok) {
      const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      throw HearthError.fromWire({ code: error?.code, message: error?.message ?? `the platform answered ${response.status}` });
    }
    const parsed = JoinResponse.safeParse(body);
    if (!parsed.success) throw new HearthError("ERR_BAD_MESSAGE", formatZodError(parsed.error, "join response"));
    const { fabric, ...identity } = parsed.data;
    const { path, warning } = writeIdentity(dataDir, { ...identity, platformUrl: base });
    writeCreds(credsPath(dataDir), fabric.jwt, key);
    if (warning) process.stderr.write(`hearth-agent: note: ${warning}\n`);
    out(`Joined ${base} as device ${parsed.data.deviceId} (owner ${parsed.data.ownerId}, region ${parsed.data.region}).`);
    out(`Fabric: ${parsed.data.natsUrl}`);
    out(`Identity and device token saved to ${path}, fabric credential to ${credsPath(dataDir)} (readable by you only).`);
    for (const invite of invites) {
      try {
        out(`Member of app ${(await addNetwork({ ...identity, platformUrl: base }, dataDir, invite)).app}'s network.`);
      } catch (error) {
        if (!(error instanceof HearthError)) throw error;
        throw new HearthError(error.code, `joined, but an invite was refused: ${error.message}; the device is joined, add the network later with hearth-agent networks add <invite>`);
      }
    }
    out("Start serving with: hearth-agent start   (caps: --cores, --memory-mb, --schedule, --idle-only)");
  });

program
  .command("start")
  .description("join the fabric and serve functions within your caps until stopped (Ctrl-C or hearth-agent drain drains)")
  .option("--nats <url>", "fabric URL (or HEARTH_NATS_URL; join stores it)")
  .option("--config <file>", "JSON config file with the keys of docs/agent.md (default <data-dir>/config.json when it exists)")
  .option("--data-dir <dir>", "identity, control socket and pid file (or HEARTH_AGENT_DIR; default ~/.hearth-agent)")
  .option("--device-id <id>", "this device's id (default: the joined id, else host name)")
  .option("--creds <file>", "the fabric credential (or HEARTH_FABRIC_CREDS; default <data-dir>/fabric.creds, written by join)")
  .option("--location <label:lat,lon>", "where the device is, e.g. berlin:52.52,13.40", location)
  .option("--cores <n>", "cores to donate: at most this many calls run at once (default: half of this machine's)", number)
  .option("--memory-mb <n>", "memory to donate to functions, MiB (default 512)", number)
  .option("--schedule <window>", "serve only in this window, local time, e.g. 'weekdays 22:00-07:00' (repeatable)", collect)
  .option("--idle-only", "pause while your own load is high")
  .option("--no-pause-on-battery", "keep serving on battery")
  .option("--no-public-pool", "serve only apps that invited this device (hearth-agent networks add), never the public pool")
  .option("--drain-grace-ms <n>", "how long in-flight calls may finish after a drain", number)
  .option("--sandboxes <n>", "sandbox processes (default: one per donated core)", number)
  .option("--metrics-port <n>", "serve Prometheus metrics on 127.0.0.1:<n> (off by default)", number)
  .option("--listen <host:port>", "open this device's own door for HTTP clients: /fn/<app>/<fn>/... of its networks only (off by default)")
  .option("--advertise <url>", "the public URL clients reach your door at (e.g. https://door.example.net): the platform lists it for your networks' callers once it reached your door there")
  .option("--log-level <level>", "fatal, error, warn, info, debug, trace or silent")
  .action(async (flags: Record<string, unknown>) => {
    const dataDir = (flags["dataDir"] as string | undefined) ?? defaultDataDir();
    const configPath = (flags["config"] as string | undefined) ?? (existsSync(join(dataDir, "config.json")) ? join(dataDir, "config.json") : undefined);
    const config = resolveAgentConfig({
      env: process.env,
      identity: readIdentity(dataDir),
      file: configPath ? readConfigFile(configPath) : undefined,
      filePath: configPath,
      flags: {
        natsUrl: flags["nats"],
        dataDir: flags["dataDir"],
        deviceId: flags["deviceId"],
        credsFile: flags["creds"],
        location: flags["location"],
        cores: flags["cores"],
        memoryMb: flags["memoryMb"],
        schedule: flags["schedule"],
        idleOnly: flags["idleOnly"],
        // commander sets it true by default; only an explicit --no-pause-on-battery counts as a flag
        pauseOnBattery: flags["pauseOnBattery"] === false ? false : undefined,
        publicPool: flags["publicPool"] === false ? false : undefined,
        drainGraceMs: flags["drainGraceMs"],
        sandboxes: flags["sandboxes"],
        metricsPort: flags["metricsPort"],
        listen: flags["listen"],
        advertise: flags["advertise"],
        logLevel: flags["logLevel"],
      },
    });
    const log = createLogger("hearth-agent", config.logLevel);
    const identity = readIdentity(config.dataDir);
    // the device token renews the fabric credential before it expires (over HTTPS to the platform it joined)
    const renew = identity && identity.deviceId === config.deviceId ? { platformUrl: identity.platformUrl, deviceToken: identity.deviceToken } : undefined;
    const daemon = await startDaemon(config, log, { renew });
    process.stdout.write(`HEARTH_AGENT_READY ${config.deviceId}\n`);
    const stop = (signal: string) => {
      log.info({ signal }, "stopping");
      daemon.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    await daemon.stopped;
    if (daemon.agent.revoked) {
      process.stderr.write(`hearth-agent: ${daemon.agent.revoked}. This device no longer serves; join again under another id with a new join token from the operator.\n`);
      process.exit(3);
    }
    process.exit(0);
  });

/**
 * One of this device's own routes (`/v1/devices/<id>/<path>`), authorized by
 * the device token `join` stored; the answer checked against `schema`
 * (undefined: no body expected), the platform's error envelope as a typed error.
 */
async function deviceRequest<T>(
  identity: Identity,
  path: string,
  schema: z.ZodType<T> | undefined,
  init: { method?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${identity.platformUrl}/v1/devices/${encodeURIComponent(identity.deviceId)}/${path}`, {
      method: init.method ?? "GET",
      headers: { authorization: `Bearer ${identity.deviceToken}`, ...(init.body === undefined ? {} : { "content-type": "application/json" }) },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      signal: AbortSignal.timeout(init.timeoutMs ?? 15_000),
    });
  } catch (error) {
    throw new HearthError("ERR_PLATFORM_UNREACHABLE", `cannot reach the platform at ${identity.platformUrl}: ${(error as Error).message}`);
  }
  const body: unknown = res.status === 204 ? undefined : await res.json().catch(() => undefined);
  if (!res.ok) {
    const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    throw HearthError.fromWire({ code: error?.code, message: error?.message ?? `the platform answered ${res.status}` });
  }
  if (!schema) return undefined as T;
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new HearthError("ERR_BAD_MESSAGE", formatZodError(parsed.error, `the platform's answer to ${path}`));
  return parsed.data;
}

/** The device's credits as the platform metered them (the device token `join` stored authorizes it). */
function fetchCredits(identity: Identity, timeoutMs: number): Promise<DeviceCredits> {
  return deviceRequest(identity, "credits", DeviceCredits, { timeoutMs });
}

/** An invite from the command line, checked before it is sent. */
function inviteArg(value: string): string {
  const parsed = NetworkInvite.safeParse(value);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", `'${value}' is not a network invite: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  return parsed.data;
}

/**
 * Redeems an invite: the device becomes a member of the app's network. The
 * new credential names it; it is written beside the seed for the next start
 * (a running agent also gets it on its control subject and moves to it).
 */
async function addNetwork(identity: Identity, dataDir: string, invite: string): Promise<DeviceNetworkJoinResponse> {
  const joined = await deviceRequest(identity, "networks", DeviceNetworkJoinResponse, { method: "POST", body: { invite } });
  const path = credsPath(dataDir);
  writeCreds(path, joined.fabric.jwt, (await readCreds(path)).key);
  return joined;
}

function joinedIdentity(dataDir: string): Identity {
  const identity = readIdentity(dataDir);
  if (!identity) throw new HearthError("ERR_BAD_REQUEST", `this device has not joined a platform (no identity in ${dataDir}): run hearth-agent join <platform-url> --token <join-token>`);
  return identity;
}

const today = () => new Date().toISOString().slice(0, 10);

async function credits(identity: Identity | undefined, deviceId: string): Promise<string> {
  if (!identity || identity.deviceId !== deviceId) return "credits   (join a platform with hearth-agent join to see them)";
  try {
    const data = await fetchCredits(identity, 3_000);
    const day = data.days.find((d) => d.day === today());
    return `credits   ${(day?.credits ?? 0).toFixed(3)} today, ${data.total.credits.toFixed(3)} in all (1 credit = 1 CPU-second served, as the platform metered it)`;
  } catch (error) {
    return `credits   unavailable (${(error as Error).message})`;
  }
}

function statusLines(s: AgentStatus, creditLine: string): string[] {
  const state = s.state === "paused" ? `paused (${s.pausedFor.join(", ")})` : s.state;
  return [
    `device    ${s.deviceId} (owner ${s.ownerId})  ${state}${s.connected ? "" : "  [fabric: reconnecting]"}`,
    `cores     ${s.coresInUse} in use of ${s.cores} donated${s.queued > 0 ? `, ${s.queued} call(s) waiting` : ""}`,
    `memory    ${s.memoryWarmMb} MiB in warm isolates of ${s.memoryMb} MiB donated`,
    `today     ${s.today.calls} calls (${s.today.errors} failed), ${(s.today.cpuMs / 1000).toFixed(3)} CPU-seconds`,
    creditLine,
    ...(s.ingress
      ? [
          `door      ${s.ingress.listen}: ${s.ingress.taken} calls taken (${s.ingress.local} served here, ${s.ingress.relayed} relayed), ${s.ingress.refused} refused`,
          ...(s.ingress.advertised ? [`          advertised as ${s.ingress.advertised} (listed for clients once the platform reached this door there)`] : []),
        ]
      : []),
    `functions ${s.functions.length === 0 ? "(none placed)" : s.functions.map((f) => `${f.app}/${f.fn}`).join(", ")}`,
  ];
}

program
  .command("status")
  .description("what the running agent does: cores in use vs donated, calls and CPU-seconds today, credits (live in a terminal)")
  .option("--data-dir <dir>", "the running agent's data dir (or HEARTH_AGENT_DIR)")
  .option("--device-id <id>", "which agent, when several run with this data dir")
  .option("--json", "print JSON once")
  .option("--once", "print once, even in a terminal")
  .action(async (flags: { dataDir?: string; deviceId?: string; json?: boolean; once?: boolean }) => {
    const dataDir = flags.dataDir ?? defaultDataDir();
    const identity = readIdentity(dataDir);
    const deviceId = pickDevice(dataDir, flags.deviceId, identity?.deviceId);
    const fetchStatus = async () => {
      const reply = await request(dataDir, deviceId, { cmd: "status" });
      if (!reply.ok || !reply.status) throw new HearthError("ERR_BAD_MESSAGE", reply.ok ? "the agent sent no status" : reply.error);
      return reply.status;
    };
    if (flags.json) {
      const status = await fetchStatus();
      // credits as the platform metered them, when this device joined one (or why they could not be read)
      const credits =
        identity && identity.deviceId === status.deviceId ? await fetchCredits(identity, 3_000).catch((error: Error) => ({ unavailable: error.message })) : undefined;
      return out(JSON.stringify(credits === undefined ? status : { ...status, credits }, null, 2));
    }
    const live = process.stdout.isTTY && !flags.once;
    for (let frame = 0; ; frame++) {
      const s = await fetchStatus();
      const lines = statusLines(s, frame % 5 === 0 || !live ? (lastCredits = await credits(identity, s.deviceId)) : lastCredits);
      if (!live) {
        for (const line of lines) out(line);
        return;
      }
      process.stdout.write("\x1b[H\x1b[2J" + lines.join("\n") + "\n\n(live; Ctrl-C to quit)\n");
      await new Promise((r) => setTimeout(r, 1_000));
    }
  });
let lastCredits = "";

program
  .command("credits")
  .description("credits this device earned, by day, as the platform metered them (needs hearth-agent join; the agent need not run)")
  .option("--data-dir <dir>", "where join kept the identity (or HEARTH_AGENT_DIR)")
  .option("--json", "print the platform's answer as JSON")
  .action(async (flags: { dataDir?: string; json?: boolean }) => {
    const dataDir = flags.dataDir ?? defaultDataDir();
    const identity = joinedIdentity(dataDir);
    const data = await fetchCredits(identity, 15_000);
    if (flags.json) return out(JSON.stringify(data, null, 2));
    out(`device ${data.deviceId} on ${identity.platformUrl} (1 credit = 1 CPU-second served)`);
    out(`${"day".padEnd(12)}${"calls".padStart(10)}${"CPU-seconds".padStart(14)}${"credits".padStart(12)}${"claimed calls".padStart(15)}`);
    const row = (label: string, d: { calls: number; cpuUs: number; credits: number; claimed: { calls: number } }) =>
      out(`${label.padEnd(12)}${String(d.calls).padStart(10)}${(d.cpuUs / 1e6).toFixed(3).padStart(14)}${d.credits.toFixed(3).padStart(12)}${String(d.claimed.calls).padStart(15)}`);
    for (const d of [...data.days].sort((a, b) => a.day.localeCompare(b.day))) row(d.day, d);
    row("total", data.total);
    if (data.total.claimed.calls > 0) {
      out("claimed: calls your door served that the platform cannot verify (your device's word alone), so not credited. An app credits them once its developer invites this device: ask them for an invite (hearth networks invite <app>) and run hearth-agent networks add <invite> (docs/ledger.md).");
    }
  });

const networks = program
  .command("networks")
  .description("the application networks this device is a member of: the public pool (start --no-public-pool leaves it) and apps that invited it");

networks
  .command("add <invite>")
  .description("join an app's network with the single-use invite its developer gave you (hearth networks invite <app>)")
  .option("--data-dir <dir>", "where join kept the identity (or HEARTH_AGENT_DIR)")
  .action(async (invite: string, flags: { dataDir?: string }) => {
    const dataDir = flags.dataDir ?? defaultDataDir();
    const joined = await addNetwork(joinedIdentity(dataDir), dataDir, inviteArg(invite));
    out(`Member of app ${joined.app}'s network: its functions may be placed here, and this device may relay for it.`);
  });

networks
  .command("list")
  .description("the networks this device is a member of, as the platform knows them")
  .option("--data-dir <dir>", "where join kept the identity (or HEARTH_AGENT_DIR)")
  .option("--json", "print the platform's answer as JSON")
  .action(async (flags: { dataDir?: string; json?: boolean }) => {
    const view = await deviceRequest(joinedIdentity(flags.dataDir ?? defaultDataDir()), "networks", DeviceNetworksView);
    if (flags.json) return out(JSON.stringify(view, null, 2));
    out(`invited by  ${view.invited.length === 0 ? "(no app)" : view.invited.join(", ")}`);
    out(`credential  ${view.credential.length === 0 ? "(no network)" : view.credential.join(", ")}  (invited, and apps placed here from the public pool)`);
  });

networks
  .command("leave <app>")
  .description("leave an app's network: its functions stop here and the credential no longer names it")
  .option("--data-dir <dir>", "where join kept the identity (or HEARTH_AGENT_DIR)")
  .action(async (app: string, flags: { dataDir?: string }) => {
    const name = AppName.safeParse(app);
    if (!name.success) throw new HearthError("ERR_BAD_REQUEST", `'${app}' is not an app name: ${name.error.issues[0]?.message ?? "invalid"}`);
    await deviceRequest(joinedIdentity(flags.dataDir ?? defaultDataDir()), `networks/${encodeURIComponent(name.data)}`, undefined, { method: "DELETE" });
    out(`Left app ${name.data}'s network: its functions are unplaced from this device and a credential without it is on its way.`);
  });

for (const [cmd, description] of [
  ["pause", "stop taking calls (in-flight calls finish); the agent stays up"],
  ["resume", "take calls again after pause"],
  ["drain", "stop taking calls, let in-flight calls finish within the grace period, then stop the agent"],
] as const) {
  program
    .command(cmd)
    .description(description)
    .option("--data-dir <dir>", "the running agent's data dir (or HEARTH_AGENT_DIR)")
    .option("--device-id <id>", "which agent, when several run with this data dir")
    .action(async (flags: { dataDir?: string; deviceId?: string }) => {
      const dataDir = flags.dataDir ?? defaultDataDir();
      const reply = await request(dataDir, pickDevice(dataDir, flags.deviceId, readIdentity(dataDir)?.deviceId), { cmd });
      if (!reply.ok) throw new HearthError("ERR_BAD_REQUEST", reply.error);
      out(cmd === "drain" ? "draining: no new calls; the agent stops once in-flight calls finish" : cmd === "pause" ? "paused: in-flight calls finish, no new ones" : "resumed");
    });
}

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof HearthError) {
    process.stderr.write(`hearth-agent: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`hearth-agent: unexpected error\n${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
