/**
 * Platform configuration, read from the environment through one zod schema.
 * Read with `readPlatformEnv()` each time (not memoised) so tests can stub it.
 */
import { formatZodError, HearthError } from "@hearth/protocol";
import { z } from "zod";

/** Every environment variable the platform reads; docs/configuration.md lists them too. */
export const PlatformEnv = z.object({
  HEARTH_PORT: z.coerce.number().int().min(0).max(65535).default(8787),
  HEARTH_HOST: z.string().min(1).default("127.0.0.1"),
  HEARTH_PUBLIC_URL: z.url().optional(),
  HEARTH_NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  HEARTH_SUBJECT_PREFIX: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/).default("hearth"),
  HEARTH_TOKEN: z.string().min(16, "HEARTH_TOKEN must be at least 16 characters"),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, "REDIS_URL must start with redis:// or rediss://").optional(),
  HEARTH_REDIS_PREFIX: z.string().regex(/^[a-z0-9:_-]{1,32}$/).default("hearth:"),
  HEARTH_REGION: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "HEARTH_REGION must be 1-64 characters of A-Z, a-z, 0-9, _ . -").optional(),
  HEARTH_CREDENTIAL_TTL_SECONDS: z.coerce.number().int().min(10, "HEARTH_CREDENTIAL_TTL_SECONDS must be at least 10").max(30 * 86_400).optional(),
  HEARTH_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
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
export const AdminEnv = PlatformEnv.pick({ HEARTH_TOKEN: true, HEARTH_HOST: true, HEARTH_PORT: true, HEARTH_PUBLIC_URL: true }).extend({
  HEARTH_PLATFORM_URL: z.url().optional(),
});
export type AdminEnv = z.infer<typeof AdminEnv>;

export function readAdminEnv(env: NodeJS.ProcessEnv = process.env): Readonly<AdminEnv> {
  const parsed = AdminEnv.safeParse(env);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", formatZodError(parsed.error, "environment"));
  return Object.freeze(parsed.data);
}
