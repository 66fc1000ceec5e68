/**
 * Platform configuration, read from the environment through one zod schema.
 * Read with `readPlatformEnv()` each time (not memoised) so tests can stub it.
 */
import { formatZodError, HearthError } from "@hearth/protocol";
import { z } from "zod";

/**
 * The operator's app domain: lowercase DNS labels, not an IP address, short
 * enough that `<app>.<app-domain>` (an app name is up to 63 characters) stays
 * within DNS's 253.
 */
export const AppDomain = z
  .string()
  .max(189, "must be at most 189 characters, so that <app>.<domain> fits in a DNS name")
  .regex(
    /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
    "must be a lowercase DNS name such as fn.example.org, without scheme, port or trailing dot",
  )
  .refine((d) => !/^[0-9.]+$/.test(d), "must be a DNS name, not an IP address");

/** Every environment variable the platform reads; docs/configuration.md lists them too. */
const PlatformEnvFields = z.object({
  HEARTH_PORT: z.coerce.number().int().min(0).max(65535).default(8787),
  HEARTH_HOST: z.string().min(1).default("127.0.0.1"),
  HEARTH_PUBLIC_URL: z.url().optional(),
  /** Serve each app on its own host `<app>.<HEARTH_APP_DOMAIN>` (docs/security.md). */
  HEARTH_APP_DOMAIN: AppDomain.optional(),
  HEARTH_NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  HEARTH_SUBJECT_PREFIX: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/).default("hearth"),
  HEARTH_TOKEN: z.string().min(16, "HEARTH_TOKEN must be at least 16 characters"),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, "REDIS_URL must start with redis:// or rediss://").optional(),
  HEARTH_REDIS_PREFIX: z.string().regex(/^[a-z0-9:_-]{1,32}$/).default("hearth:"),
  HEARTH_REGION: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "HEARTH_REGION must be 1-64 characters of A-Z, a-z, 0-9, _ . -").optional(),
  HEARTH_CREDENTIAL_TTL_SECONDS: z.coerce.number().int().min(10, "HEARTH_CREDENTIAL_TTL_SECONDS must be at least 10").max(30 * 86_400).optional(),
  /** Function calls a second from one client IP, per platform process (0: no limit). */
  HEARTH_RATE_LIMIT_PER_IP: z.coerce.number().int().min(0).max(1_000_000).default(1_000),
  /** Function calls a second to one app, per platform process (0: no limit). */
  HEARTH_RATE_LIMIT_PER_APP: z.coerce.number().int().min(0).max(10_000_000).default(0),
  /** Calls of one function in flight through one platform process (0: no limit). */
  HEARTH_MAX_IN_FLIGHT_PER_FUNCTION: z.coerce.number().int().min(0).max(1_000_000).default(256),
  /** Function calls from one client IP (an IPv6 /64) in flight through one platform process, body reading included (0: no limit). */
  HEARTH_MAX_IN_FLIGHT_PER_IP: z.coerce.number().int().min(0).max(1_000_000).default(64),
  /** A header a trusted proxy in front sets to the client's IP (e.g. x-forwarded-for: its last entry is used); unset, the socket's address. */
  HEARTH_CLIENT_IP_HEADER: z.string().regex(/^[a-z0-9-]{1,64}$/, "HEARTH_CLIENT_IP_HEADER must be a lower-case header name").optional(),
  /** A header a trusted proxy sets to the caller's location as `<lat>,<lon>`: a tie-breaker among devices equally near the gateway. */
  HEARTH_CLIENT_LOCATION_HEADER: z.string().regex(/^[a-z0-9-]{1,64}$/, "HEARTH_CLIENT_LOCATION_HEADER must be a lower-case header name").optional(),
  /** Where this platform process (its gateway) is, `<lat>,<lon>`: with HEARTH_CLIENT_LOCATION_HEADER, answers name a door nearer the caller (Link). */
  HEARTH_LOCATION: z
    .string()
    .regex(/^\s*-?\d+(\.\d+)?\s*,\s*-?\d+(\.\d+)?\s*$/, "HEARTH_LOCATION must be <lat>,<lon> in degrees, e.g. 50.11,8.68")
    .transform((v) => v.split(",").map(Number) as [number, number])
    .refine(([lat, lon]) => Math.abs(lat) <= 90 && Math.abs(lon) <= 180, "HEARTH_LOCATION must be a latitude of -90 to 90 and a longitude of -180 to 180")
    .transform(([lat, lon]) => ({ lat, lon }))
    .optional(),
  /** Let the platform's check of advertised door URLs reach private, loopback and link-local addresses (a LAN-only deployment). */
  HEARTH_DOORS_ALLOW_PRIVATE: z.enum(["0", "1"], "HEARTH_DOORS_ALLOW_PRIVATE must be 0 or 1").default("0").transform((v) => v === "1"),
  /** OpenTelemetry's own variables: where to send each call's spans (OTLP/HTTP). The traces URL wins; the base gets /v1/traces. */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be a URL like http://collector:4318/v1/traces").optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url("OTEL_EXPORTER_OTLP_ENDPOINT must be a URL like http://collector:4318").optional(),
  HEARTH_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});
export const PlatformEnv = PlatformEnvFields.superRefine((env, ctx) => {
  // the API is never on an app's origin (nor on the app domain itself, whose cookies every app's host gets)
  if (!env.HEARTH_APP_DOMAIN || !env.HEARTH_PUBLIC_URL) return;
  const host = new URL(env.HEARTH_PUBLIC_URL).hostname.replace(/\.$/, "");
  if (host === env.HEARTH_APP_DOMAIN || host.endsWith(`.${env.HEARTH_APP_DOMAIN}`)) {
    ctx.addIssue({
      code: "custom",
      path: ["HEARTH_PUBLIC_URL"],
      message: `must be on a host outside HEARTH_APP_DOMAIN (${env.HEARTH_APP_DOMAIN}): the API is never served on an app's host`,
    });
  }
});
export type PlatformEnv = z.infer<typeof PlatformEnv>;

export function readPlatformEnv(env: NodeJS.ProcessEnv = process.env): Readonly<PlatformEnv> {
  const parsed = PlatformEnv.safeParse(env);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", formatZodError(parsed.error, "environment"));
  return Object.freeze(parsed.data);
}

/**
 * What the operator's admin commands (`hearth-platform developers ...`) read:
 * the operator token and where the platform listens. HEARTH_PLATFORM_URL,
 * when set, is the platform to talk to.
 */
export const AdminEnv = PlatformEnvFields.pick({ HEARTH_TOKEN: true, HEARTH_HOST: true, HEARTH_PORT: true, HEARTH_PUBLIC_URL: true }).extend({
  HEARTH_PLATFORM_URL: z.url().optional(),
});
export type AdminEnv = z.infer<typeof AdminEnv>;

export function readAdminEnv(env: NodeJS.ProcessEnv = process.env): Readonly<AdminEnv> {
  const parsed = AdminEnv.safeParse(env);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", formatZodError(parsed.error, "environment"));
  return Object.freeze(parsed.data);
}
