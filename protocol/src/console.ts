/**
 * What the web console reads besides the CLI's routes: the fleet as the
 * operator sees it, a device owner's devices and credits, and the health
 * check. See docs/console.md.
 */
import { z } from "zod";
import { AppName, FunctionName } from "./names.ts";
import { DeviceCredits } from "./usage.ts";

export const HealthResponse = z.strictObject({ ok: z.literal(true), embeddedState: z.boolean(), devices: z.number().int().min(0) });
export type HealthResponse = z.infer<typeof HealthResponse>;

export const DeviceState = z.enum(["serving", "idle", "paused", "draining", "offline", "revoked"]);
export type DeviceState = z.infer<typeof DeviceState>;

/** A device as the console shows it; null where the platform does not know (an offline device has no heartbeat). */
export const ConsoleDevice = z.strictObject({
  deviceId: z.string(),
  ownerId: z.string(),
  region: z.string(),
  state: DeviceState,
  /** Why a paused device is paused: `schedule`, `owner-busy`, `battery`, `owner`. */
  pausedFor: z.array(z.string()),
  location: z.string().nullable(),
  cores: z.number().nullable(),
  freeCores: z.number().nullable(),
  memoryMb: z.number().nullable(),
  activeCalls: z.number().int().min(0),
  functions: z.number().int().min(0),
  lastSeenMs: z.number().nullable(),
  joinedAt: z.string().nullable(),
});
export type ConsoleDevice = z.infer<typeof ConsoleDevice>;

export const LastReconcile = z.strictObject({
  at: z.string(),
  records: z.number(),
  pending: z.number(),
  missing: z.number(),
  differences: z.number(),
  repaired: z.boolean(),
});
export type LastReconcile = z.infer<typeof LastReconcile>;

export const OperatorView = z.strictObject({
  devices: z.array(ConsoleDevice),
  withoutDevice: z.array(z.strictObject({ app: AppName, fn: FunctionName, replicas: z.number().int(), updatedAt: z.string() })),
  functions: z.number().int().min(0),
  ledger: z.strictObject({
    metering: z.boolean(),
    lag: z.number().nullable(),
    usageBacklog: z.number().int().min(0),
    usage: z.strictObject({ published: z.number(), duplicates: z.number(), deferred: z.number(), retries: z.number(), dropped: z.number(), commits: z.number() }).nullable(),
    lastReconcile: LastReconcile.nullable(),
  }),
});
export type OperatorView = z.infer<typeof OperatorView>;

export const OwnerView = z.strictObject({
  ownerId: z.string(),
  signedInWith: z.string(),
  metering: z.boolean(),
  devices: z.array(ConsoleDevice),
  credits: z.array(DeviceCredits),
});
export type OwnerView = z.infer<typeof OwnerView>;
