/**
 * The agent's configuration: one zod schema for flags, config files and
 * environment alike, parsed once at start-up and frozen.
 */
import { availableParallelism, homedir, hostname, totalmem } from "node:os";
import { join } from "node:path";
import { DeviceId, DoorUrl, formatZodError, HearthError, Location } from "@hearth/protocol";
import { z } from "zod";
import { ScheduleWindowSchema } from "../owner/schedule.ts";

export const AgentConfig = z.strictObject({
  natsUrl: z.string().regex(/^(nats|tls|ws|wss):\/\/.+/, "natsUrl must be a nats://, tls://, ws:// or wss:// URL"),
  subjectPrefix: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/).default("hearth"),
  deviceId: DeviceId,
  ownerId: z.string().min(1).max(64).default("local"),
  region: z.string().min(1).max(64).default("local"),
  /** Where the device is, as its owner declares it; undeclared, heartbeats say "unknown" and door listings sort it by region and round trip. */
  location: Location.optional(),
  /** Cores donated: at most this many calls run at once. */
  cores: z
    .number()
    .int("cores must be a whole number: at most this many calls run at once")
    .positive("cores must be more than 0")
    .max(availableParallelism(), `cores must be at most ${availableParallelism()} (this machine's cores)`)
    .default(Math.max(1, Math.floor(availableParallelism() / 2))),
  /** Memory donated to isolates, in MiB. */
  memoryMb: z
    .number()
    .int()
    .min(64, "memoryMb must be at least 64")
    .max(Math.floor(totalmem() / 1024 / 1024), "memoryMb must be at most this machine's memory")
    .default(512),
  heartbeatMs: z.number().int().min(100).max(60_000).default(1_000),
  /** How long in-flight calls may run on after a drain or SIGTERM. */
  drainGraceMs: z.number().int().min(0).max(600_000).default(15_000),
  /** Sandbox processes; defaults to one per donated core. */
  sandboxes: z.number().int().min(1).max(64).optional(),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** The device's fabric credential (a NATS .creds file `hearth-agent join` wrote); default `<dataDir>/fabric.creds`. */
  credsFile: z.string().min(1).max(1024).optional(),
  /** Where the agent keeps its identity (0600), its control socket and its pid file. */
  dataDir: z.string().min(1, "dataDir must not be empty").max(1024).default(() => defaultDataDir()),
  /** When to serve, local time, e.g. ["weekdays 22:00-07:00", "weekends 00:00-24:00"]; empty = always. */
  schedule: z.array(ScheduleWindowSchema).max(32, "schedule takes at most 32 windows").default([]),
  /** Pause while the owner's own load is high (idlePauseAbove for idleForMs); serve again once it stays below idleResumeBelow. */
  idleOnly: z.boolean().default(false),
  idlePauseAbove: z.number().gt(0, "idlePauseAbove must be more than 0").max(1, "idlePauseAbove is a fraction of the machine, at most 1").default(0.5),
  idleResumeBelow: z.number().min(0, "idleResumeBelow must be at least 0").lt(1, "idleResumeBelow must be less than 1").default(0.25),
  idleForMs: z.number().int().min(0).max(3_600_000).default(30_000),
  /** Pause while the machine runs on battery (where the OS says so). */
  pauseOnBattery: z.boolean().default(true),
  /** How often schedule, battery and load are checked. */
  checkMs: z.number().int().min(50).max(60_000).default(2_000),
  /** Calls that may wait for a free core, and for how long, before failing with ERR_DEVICE_BUSY. */
  queueMax: z.number().int().min(0).max(10_000).default(32),
  queueWaitMs: z.number().int().min(0).max(60_000).default(5_000),
  /**
   * In the public pool: any non-private app may be placed here. False keeps the device to the networks of apps that
   * invited it (hearth-agent networks add); `--no-public-pool`.
   */
  publicPool: z.boolean().default(true),
  /** Serve Prometheus metrics on 127.0.0.1:<port> (off unless set). */
  /**
   * The device's own door for HTTP clients (`host:port`, e.g. `0.0.0.0:8787`); off unless the owner sets it.
   * Serves /fn/<app>/<fn>/... of this device's networks only (docs/agent.md).
   */
  listen: z
    .string()
    .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "listen must be host:port, e.g. 127.0.0.1:8787 or [::]:8787")
    .refine((v) => Number(v.slice(v.lastIndexOf(":") + 1)) <= 65535, "listen's port must be 0-65535")
    .optional(),
  /**
   * The public URL clients reach this door at (the owner's router, a tunnel, a reverse proxy), e.g.
   * `https://door.example.net`; only an advertised door is listed for callers (GET /v1/apps/<app>/doors).
   */
  advertise: DoorUrl.optional(),
  /** Calls a second one client IP may make at the door (0: no limit); the other front-door limits are the gateway's defaults. */
  doorRatePerIp: z.coerce.number().int().min(0, "doorRatePerIp must be 0 (no limit) or more").max(1_000_000).default(1_000),
  metricsPort: z.number().int().min(1, "metricsPort must be 1-65535").max(65535, "metricsPort must be 1-65535").optional(),
  /**
   * Addresses on the owner's own networks that functions allowed outbound fetch may reach all the same (a local
   * JWKS or API the owner runs for them; tests). Exact IP addresses only; from the environment, comma-separated.
   */
  outboundAllowAddresses: z
    .preprocess((v) => (typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean) : v), z.array(z.union([z.ipv4(), z.ipv6()])).max(16))
    .default([]),
  /**
   * Ports besides 80 and 443 that outbound fetch may reach, for functions whose own policy names them too (both
   * must allow a port). From the environment, comma-separated.
   */
  outboundAllowPorts: z
    .preprocess(
      (v) => (typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean).map(Number) : v),
      z.array(z.number().int().min(1).max(65_535)).max(64),
    )
    .default([]),
}).refine((c) => c.idleResumeBelow < c.idlePauseAbove, {
  message: "idleResumeBelow must be below idlePauseAbove (the gap is the hysteresis that stops flapping)",
  path: ["idleResumeBelow"],
}).refine((c) => c.advertise === undefined || c.listen !== undefined, {
  message: "advertise needs a door to advertise: open one with --listen <host:port> too",
  path: ["advertise"],
});
export type AgentConfig = z.infer<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;

/**
 * Validates a whole config. `origin`, when given, says where each top-level
 * key's value came from, so an error tells the owner which flag, file or
 * variable to fix.
 */
export function parseAgentConfig(input: unknown, subject = "agent config", origin?: (key: string) => string | undefined): Readonly<AgentConfig> {
  const parsed = AgentConfig.safeParse(input);
  if (!parsed.success) {
    let message = formatZodError(parsed.error, subject);
    const origins = [...new Set(parsed.error.issues.map((i) => (i.path.length > 0 ? origin?.(String(i.path[0])) : undefined)).filter((o) => o !== undefined))];
    if (origins.length > 0) message += ` (set by ${origins.join("; ")})`;
    throw new HearthError("ERR_BAD_REQUEST", message);
  }
  return Object.freeze(parsed.data);
}

/** The flag that sets a config key (`memoryMb` → `--memory-mb`). */
const FLAG_OF: Record<string, string> = { natsUrl: "--nats", ownerId: "--owner" };
const flagOf = (key: string) => FLAG_OF[key] ?? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The environment variable that sets each config key. */
const ENV_OF: Record<string, string> = {
  natsUrl: "HEARTH_NATS_URL",
  deviceId: "HEARTH_DEVICE_ID",
  subjectPrefix: "HEARTH_SUBJECT_PREFIX",
  logLevel: "HEARTH_LOG_LEVEL",
  dataDir: "HEARTH_AGENT_DIR",
  credsFile: "HEARTH_FABRIC_CREDS",
  outboundAllowAddresses: "HEARTH_OUTBOUND_ALLOW_ADDRESSES",
  outboundAllowPorts: "HEARTH_OUTBOUND_ALLOW_PORTS",
  doorRatePerIp: "HEARTH_DOOR_RATE_LIMIT_PER_IP",
};

/** `HEARTH_AGENT_DIR`, else ~/.hearth-agent. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env["HEARTH_AGENT_DIR"] || join(homedir(), ".hearth-agent");
}

export function defaultDeviceId(): string {
  return hostname().replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 48) || "device";
}

/** The environment variables the agent reads (docs/agent.md). */
export function configFromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, variable] of Object.entries(ENV_OF)) if (env[variable]) out[key] = env[variable];
  return out;
}

export interface ConfigSources {
  /** Parsed command-line flags (undefined = not given). */
  flags?: Record<string, unknown>;
  /** The config file's object. */
  file?: Record<string, unknown>;
  /** Where the config file is, for error messages. */
  filePath?: string;
  env?: NodeJS.ProcessEnv;
  /** What `hearth-agent join` stored: the device's id, owner, region and fabric. */
  identity?: { deviceId: string; ownerId: string; region: string; natsUrl: string; subjectPrefix: string };
}

/**
 * One config from every source, later ones winning: defaults, the joined
 * identity, the environment, the config file, flags. Validated once; a bad
 * value is an ERR_BAD_REQUEST naming its key.
 */
export function resolveAgentConfig(sources: ConfigSources): Readonly<AgentConfig> {
  const defined = (o: Record<string, unknown> | undefined) => Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined));
  const id = sources.identity;
  const layers: [source: (key: string) => string, values: Record<string, unknown>][] = [
    [() => "the default", { deviceId: defaultDeviceId() }],
    [() => "the identity hearth-agent join stored", id ? { deviceId: id.deviceId, ownerId: id.ownerId, region: id.region, natsUrl: id.natsUrl, subjectPrefix: id.subjectPrefix } : {}],
    [(key) => `environment variable ${ENV_OF[key]}`, configFromEnv(sources.env ?? {})],
    [(key) => `key "${key}" of the config file${sources.filePath ? ` ${sources.filePath}` : ""}`, defined(sources.file)],
    [(key) => `flag ${flagOf(key)}`, defined(sources.flags)],
  ];
  const merged: Record<string, unknown> = {};
  const origin = new Map<string, string>();
  for (const [source, values] of layers) {
    for (const [key, value] of Object.entries(values)) {
      merged[key] = value;
      origin.set(key, source(key));
    }
  }
  if (merged["natsUrl"] === undefined) {
    throw new HearthError("ERR_BAD_REQUEST", "no fabric URL: run hearth-agent join <platform-url> --token <token>, pass --nats nats://host:4222, or set HEARTH_NATS_URL");
  }
  return parseAgentConfig(merged, "agent config", (key) => origin.get(key));
}
