/** Shapes of the platform's HTTP API, shared with the SDK. */
import { z } from "zod";
import { FunctionLimits, FunctionLimitsInput } from "./limits.ts";
import { AppName, DeviceId, FunctionName, Sha256Hex } from "./names.ts";
import { Location } from "./messages.ts";
import { CompatibilityFlags, FunctionBindings, FunctionEnv, OutboundSettings } from "./settings.ts";

/**
 * How a function scales (docs/routing.md): up to `maxReplicas` devices
 * while its calls in flight near its replicas' donated cores, back to its
 * `replicas` when they ease; to no device at all after `idleSeconds` without
 * a call (0: never), the next call waking it with a cold start.
 */
export const Scaling = z.strictObject({
  maxReplicas: z.number().int().min(1).max(16),
  idleSeconds: z
    .number()
    .int()
    .min(0)
    .max(7 * 86_400)
    .refine((s) => s === 0 || s >= 10, "must be 0 (never) or at least 10 seconds"),
});
export type Scaling = z.infer<typeof Scaling>;

/** Query/JSON part of a deploy; the bundle itself is the raw request body. */
export const DeployOptions = z.strictObject({
  limits: FunctionLimitsInput.optional(),
  replicas: z.number().int().min(1).max(16).optional(),
  env: FunctionEnv.optional(),
  outbound: OutboundSettings.optional(),
  compatibilityFlags: CompatibilityFlags.optional(),
  bindings: FunctionBindings.optional(),
});
export type DeployOptions = z.infer<typeof DeployOptions>;

/** ready: a live device serves the latest deploy; pending: not yet; idle: scaled to zero, the next call wakes it. */
export const FunctionStatus = z.enum(["pending", "ready", "idle"]);
export type FunctionStatus = z.infer<typeof FunctionStatus>;

export const VersionRecord = z.strictObject({
  version: Sha256Hex,
  size: z.number().int().min(0),
  createdAt: z.string(),
});
export type VersionRecord = z.infer<typeof VersionRecord>;

export const FunctionRecord = z.strictObject({
  app: AppName,
  name: FunctionName,
  version: Sha256Hex,
  limits: FunctionLimits,
  replicas: z.number().int().min(1),
  scaling: Scaling.optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** The function's `env` (vars and secrets). Never shown by the API: views list the names only. */
  env: FunctionEnv.optional(),
  outbound: OutboundSettings.optional(),
  /** Opt-in runtime features (`nodejs_compat`); none when absent. */
  compatibilityFlags: CompatibilityFlags.optional(),
  /** Service bindings: `env.NAME.fetch(request)` calls the named function of the same app; none when absent. */
  bindings: FunctionBindings.optional(),
});
export type FunctionRecord = z.infer<typeof FunctionRecord>;

/** A function as the API shows it: its record, where it runs, and whether it serves. */
export const FunctionView = FunctionRecord.omit({ env: true }).extend({
  envNames: z.array(z.string()).optional(),
  status: FunctionStatus,
  devices: z.array(DeviceId),
  /** The region of each device in `devices` (from its join record). */
  regions: z.record(z.string(), z.string()).optional(),
  url: z.string(),
});
export type FunctionView = z.infer<typeof FunctionView>;

export const DeviceView = z.strictObject({
  deviceId: DeviceId,
  ownerId: z.string(),
  region: z.string(),
  location: Location,
  cores: z.number(),
  memoryMb: z.number(),
  activeCalls: z.number(),
  freeCores: z.number(),
  functions: z.number(),
  lastSeenMs: z.number(),
});
export type DeviceView = z.infer<typeof DeviceView>;

export const FunctionList = z.strictObject({ functions: z.array(FunctionView) });
export const DeviceList = z.strictObject({ devices: z.array(DeviceView) });
export const VersionList = z.strictObject({ versions: z.array(VersionRecord) });
export const RollbackRequest = z.strictObject({ version: Sha256Hex });


/**
 * Where a caller is, for `GET /v1/apps/:app/doors?near=`: a region name
 * (`eu`), or `<lat>,<lon>` in degrees (`52.52,13.40`).
 */
export const Near = z
  .string()
  .max(64, "near is at most 64 characters")
  .transform((v, ctx) => {
    if (!v.includes(",")) {
      if (/^[A-Za-z0-9_.-]{1,64}$/.test(v)) return { region: v };
      ctx.addIssue({ code: "custom", message: "near must be a region (1-64 characters of A-Z, a-z, 0-9, _ . -) or <lat>,<lon> in degrees, e.g. near=eu or near=52.52,13.40" });
      return z.NEVER;
    }
    const parts = v.split(",");
    const [lat, lon] = parts.map((p) => (/^\s*-?\d+(\.\d+)?\s*$/.test(p) ? Number(p) : NaN));
    if (parts.length !== 2 || !(lat! >= -90 && lat! <= 90) || !(lon! >= -180 && lon! <= 180)) {
      ctx.addIssue({ code: "custom", message: "near as coordinates must be <lat>,<lon> in degrees, lat -90 to 90 and lon -180 to 180, e.g. near=52.52,13.40" });
      return z.NEVER;
    }
    return { lat: lat!, lon: lon! };
  });
export type Near = z.output<typeof Near>;

export const DoorsQuery = z.strictObject({ near: Near.optional() });

/** One door of an app's network, as `GET /v1/apps/:app/doors` lists it. */
export const DoorView = z.strictObject({
  deviceId: DeviceId,
  /** Call `<url>/fn/<app>/<fn>/...` there. */
  url: z.string(),
  region: z.string(),
  /** The owner's declared location, when they declared one (`hearth-agent start --location`). */
  location: Location.optional(),
  /** From the `near` coordinates, when both are known. */
  distanceKm: z.number().optional(),
  /** The device's round trip from the platform process that answered, when measured. */
  rttMs: z.number().optional(),
  /** The app's functions placed there (served at that door without a relay); the door relays the others. */
  functions: z.array(FunctionName),
});
export type DoorView = z.infer<typeof DoorView>;

export const DoorList = z.strictObject({ app: AppName, doors: z.array(DoorView) });
export type DoorList = z.infer<typeof DoorList>;
