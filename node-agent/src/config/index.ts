/**
 * The agent's configuration: one zod schema for flags, config files and
 * environment alike, parsed once at start-up and frozen.
 */
import { availableParallelism, hostname, totalmem } from "node:os";
import { DeviceId, formatZodError, HearthError, Location } from "@hearth/protocol";
import { z } from "zod";

export const AgentConfig = z.strictObject({
  natsUrl: z.string().regex(/^(nats|tls|ws|wss):\/\/.+/, "natsUrl must be a nats://, tls://, ws:// or wss:// URL"),
  subjectPrefix: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/).default("hearth"),
  deviceId: DeviceId,
  ownerId: z.string().min(1).max(64).default("local"),
  region: z.string().min(1).max(64).default("local"),
  location: Location.default({ label: "unknown", lat: 0, lon: 0 }),
  /** Cores donated: at most this many calls run at once. */
  cores: z
    .number()
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
});
export type AgentConfig = z.infer<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;

export function parseAgentConfig(input: unknown, subject = "agent config"): Readonly<AgentConfig> {
  const parsed = AgentConfig.safeParse(input);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", formatZodError(parsed.error, subject));
  return Object.freeze(parsed.data);
}

export function defaultDeviceId(): string {
  return hostname().replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 48) || "device";
}
