/** Per-function limits: set at deploy, capped by the platform. */
import { z } from "zod";

/** Platform-wide caps: no function may ask for more. */
export const LIMIT_CAPS = {
  memoryMb: 512,
  cpuMs: 30_000,
  wallMs: 60_000,
  requestBytes: 6 * 1024 * 1024,
  responseBytes: 6 * 1024 * 1024,
} as const;

export const DEFAULT_LIMITS = {
  memoryMb: 64,
  cpuMs: 1_000,
  wallMs: 10_000,
  requestBytes: 1024 * 1024,
  responseBytes: 4 * 1024 * 1024,
} as const;

/** The largest bundle the platform stores (the fabric carries it in one message; see docs/architecture.md for max_payload). */
export const MAX_BUNDLE_BYTES = 4 * 1024 * 1024;

const bounded = (min: number, max: number, unit: string) =>
  z
    .number()
    .int(`must be a whole number of ${unit}`)
    .min(min, `must be at least ${min} ${unit}`)
    .max(max, `must be at most ${max} ${unit} (platform cap)`);

export const FunctionLimits = z.strictObject({
  memoryMb: bounded(8, LIMIT_CAPS.memoryMb, "MiB"),
  cpuMs: bounded(1, LIMIT_CAPS.cpuMs, "ms"),
  wallMs: bounded(10, LIMIT_CAPS.wallMs, "ms"),
  requestBytes: bounded(0, LIMIT_CAPS.requestBytes, "bytes"),
  responseBytes: bounded(0, LIMIT_CAPS.responseBytes, "bytes"),
});
export type FunctionLimits = z.infer<typeof FunctionLimits>;

/** What a developer may send: any subset; the rest takes the defaults. */
export const FunctionLimitsInput = FunctionLimits.partial();
export type FunctionLimitsInput = z.infer<typeof FunctionLimitsInput>;

export function resolveLimits(input: FunctionLimitsInput | undefined): FunctionLimits {
  return { ...DEFAULT_LIMITS, ...input };
}

/**
 * What one device's fabric credential lets it do, enforced by nats-server:
 * the largest message it may publish (the largest reply a function may send,
 * plus room for its headers) and how many subscriptions one connection may
 * hold (its control, invocation and inbox subjects, with room to spare).
 */
export const DEVICE_CREDENTIAL_LIMITS = {
  payloadBytes: LIMIT_CAPS.responseBytes + 64 * 1024,
  /** Its own subjects and inbox, plus one relay subscription per network (MAX_DEVICE_NETWORKS, names.ts). */
  subscriptions: 16 + 64,
} as const;

/**
 * The largest device message of each kind the platform reads; a larger one
 * is dropped before it is parsed, so a device cannot make every platform
 * process parse megabytes a second. A heartbeat lists at most
 * MAX_PLACED_FUNCTIONS entries of about 220 bytes.
 */
export const DEVICE_MESSAGE_BYTES = {
  heartbeat: 512 * 1024,
  /** A message of function log lines (a batch of up to MAX_LOG_BATCH_LINES, or one line). */
  logLines: 512 * 1024,
  bundleRequest: 1024,
} as const;

/** The most functions one device's heartbeat may list (far past what its memory could hold). */
export const MAX_PLACED_FUNCTIONS = 2_000;
