/** Messages that cross the fabric between the platform and the devices. */
import { z } from "zod";
import { FunctionLimits, MAX_PLACED_FUNCTIONS } from "./limits.ts";
import { AppName, DeviceId, FunctionName, Sha256Hex } from "./names.ts";
import { CompatibilityFlags, FunctionBindings, FunctionEnv, OutboundSettings } from "./settings.ts";
import { Traceparent } from "./trace.ts";

/** Request ids: the charset and length the gateway accepts from callers. */
export const RequestId = z.string().regex(/^[\w=-]{1,255}$/, "request id must be 1-255 characters of A-Z, a-z, 0-9, _, - and =");

export const Location = z.strictObject({
  label: z.string().min(1).max(64),
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
});
export type Location = z.infer<typeof Location>;

export const PlacedFunction = z.strictObject({
  app: AppName,
  fn: FunctionName,
  version: Sha256Hex,
});
export type PlacedFunction = z.infer<typeof PlacedFunction>;

/**
 * The public URL of a device's door, as its owner advertises it
 * (`hearth-agent start --listen ... --advertise <url>`): an http(s) origin,
 * optionally with a path prefix, no credentials, query or fragment. Kept
 * without a trailing slash; callers append `/fn/<app>/<fn>/...`.
 */
export const DoorUrl = z
  .string()
  .max(256, "a door URL is at most 256 characters")
  .refine((v) => URL.canParse(v), "a door URL must be an absolute URL such as https://door.example.net:8787")
  .transform((v) => new URL(v))
  .refine((u) => u.protocol === "http:" || u.protocol === "https:", "a door URL must be http:// or https://")
  .refine((u) => u.username === "" && u.password === "", "a door URL must not carry a user name or password")
  .refine((u) => u.search === "" && u.hash === "", "a door URL must not have a query or a fragment")
  .transform((u) => `${u.origin}${u.pathname.replace(/\/+$/, "")}`);

/** Where a door answers who it is, so the platform can check an advertised URL leads to that device's own door. */
export const DOOR_IDENTITY_PATH = "/.well-known/hearth-door";
/** A door's answer at DOOR_IDENTITY_PATH: its device, and the platform's nonce back (so an answer cannot be replayed from a cache). */
export const DoorIdentity = z.strictObject({ deviceId: DeviceId, nonce: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/) });
export type DoorIdentity = z.infer<typeof DoorIdentity>;

/** A device's heartbeat: who it is, what it offers, how busy it is, what it serves. */
export const Heartbeat = z.strictObject({
  deviceId: DeviceId,
  ownerId: z.string().min(1).max(64),
  region: z.string().min(1).max(64),
  location: Location,
  cores: z.number().positive().max(1024),
  memoryMb: z.number().int().positive().max(4 * 1024 * 1024),
  activeCalls: z.number().int().min(0),
  freeCores: z.number().min(0),
  functions: z.array(PlacedFunction).max(MAX_PLACED_FUNCTIONS),
  agentVersion: z.string().max(32),
  sentAt: z.number().int().positive(),
  /** False when the owner keeps the device out of the public pool: only apps that invited it are placed there (absent: in it). */
  publicPool: z.boolean().optional(),
  /**
   * The door's public URL, when its owner opened a door and advertises it: listed once the platform reached this
   * device's door there (docs/routing.md). `located`: the owner declared `location` (otherwise it is a placeholder).
   */
  door: z.strictObject({ url: DoorUrl, located: z.boolean() }).optional(),
  /**
   * Set while the device takes no calls: paused (and why) or draining. Such
   * a beat keeps the device known to its owner and the operator, never live:
   * nothing is placed on it or sent to it.
   */
  away: z
    .strictObject({
      state: z.enum(["paused", "draining"]),
      pausedFor: z.array(z.enum(["schedule", "owner-busy", "battery", "owner"])).max(4),
    })
    .optional(),
});
export type Heartbeat = z.infer<typeof Heartbeat>;

/** Sent to a device's control subject. */
export const ControlMessage = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("place"),
    app: AppName,
    fn: FunctionName,
    version: Sha256Hex,
    limits: FunctionLimits,
    env: FunctionEnv.optional(),
    outbound: OutboundSettings.optional(),
    compatibilityFlags: CompatibilityFlags.optional(),
    bindings: FunctionBindings.optional(),
  }),
  z.strictObject({ type: z.literal("unplace"), app: AppName, fn: FunctionName }),
  /**
   * A new fabric credential (user JWT) for the device's own key, signed when
   * its network membership changed; the device writes it beside its seed and
   * moves to a connection made with it.
   */
  z.strictObject({ type: z.literal("credential"), jwt: z.string().min(1).max(16_384), expiresAt: z.iso.datetime() }),
  /** Liveness probe: a live agent answers `{ ok: true }`; a dead one has no responders. */
  z.strictObject({ type: z.literal("ping") }),
  /** The gateway has its answer from another device (a hedged call): a call still waiting for a core here is dropped. */
  z.strictObject({ type: z.literal("cancel"), requestId: RequestId }),
]);
export type ControlMessage = z.infer<typeof ControlMessage>;

export const ControlReply = z.union([
  z.strictObject({ ok: z.literal(true) }),
  z.strictObject({ error: z.strictObject({ code: z.string(), message: z.string() }) }),
]);
export type ControlReply = z.infer<typeof ControlReply>;

export const BundleRequest = z.strictObject({ hash: Sha256Hex });
export type BundleRequest = z.infer<typeof BundleRequest>;

/**
 * Headers of an invocation request and its reply. The body travels as raw
 * bytes; HTTP headers travel one NATS header each, prefixed with HTTP_HEADER_PREFIX.
 */
export const INVOKE_HEADERS = {
  requestId: "Hearth-Request-Id",
  app: "Hearth-App",
  fn: "Hearth-Function",
  version: "Hearth-Version",
  method: "Hearth-Method",
  url: "Hearth-Url",
  /**
   * The call's time budget in ms, counted from when the device receives it
   * (as gRPC's grpc-timeout): never an absolute time, which a device whose
   * clock runs ahead would read as a shorter one.
   */
  timeoutMs: "Hearth-Timeout-Ms",
  status: "Hearth-Status",
  errorCode: "Hearth-Error-Code",
  errorMessage: "Hearth-Error-Message",
  cpuMs: "Hearth-Cpu-Ms",
  wallMs: "Hearth-Wall-Ms",
  cold: "Hearth-Cold",
  device: "Hearth-Device",
  sha256: "Hearth-Sha256",
  /** A relayed call's id at the door that took it: the serving device attests the call under it. */
  callId: "Hearth-Call-Id",
  /** How many times the call was relayed between devices (absent: none); a device relays a call at most once. */
  hops: "Hearth-Hops",
  /**
   * How deep in a chain of function-to-function calls this call is (absent:
   * 0, a call from outside). A device refuses to make a call deeper than
   * MAX_CALL_DEPTH (ERR_CALL_DEPTH).
   */
  depth: "Hearth-Depth",
  /** The gateway's span of the call (W3C traceparent); the device tags the call's log lines with its trace id. */
  traceparent: "Hearth-Traceparent",
} as const;

export const HTTP_HEADER_PREFIX = "Http-";

/** The longest chain of function-to-function calls (`env.call`): a call at this depth may not call on (docs/function-calls.md). */
export const MAX_CALL_DEPTH = 4;

/**
 * The headers a device may set on an invocation reply besides its function's
 * HTTP headers (`Http-` prefixed); the gateway refuses a reply with any other.
 */
export const INVOKE_REPLY_HEADERS: readonly string[] = [
  INVOKE_HEADERS.status,
  INVOKE_HEADERS.errorCode,
  INVOKE_HEADERS.errorMessage,
  INVOKE_HEADERS.cpuMs,
  INVOKE_HEADERS.wallMs,
  INVOKE_HEADERS.cold,
  INVOKE_HEADERS.device,
];

/** An HTTP header name: an RFC 9110 token. */
export const HTTP_HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Bounds of a function's response headers: how many, and their size counted
 * as name + value + 4 characters each (": " and CRLF). The sandbox keeps a
 * function's answer within them; the gateway checks a device's reply against them.
 */
export const MAX_RESPONSE_HEADERS = 1_000;
export const MAX_RESPONSE_HEADER_BYTES = 64 * 1024;

/** HTTP methods a function can be called with. */
export const HttpMethod = z.enum(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
export type HttpMethod = z.infer<typeof HttpMethod>;

/** Metadata of one invocation, as the device parses it from the NATS headers. */
export const InvokeMeta = z.strictObject({
  requestId: RequestId,
  app: AppName,
  fn: FunctionName,
  version: Sha256Hex,
  method: HttpMethod,
  url: z.url().max(8192),
  /** The call's budget in ms from its arrival (at most a day). */
  timeoutMs: z.coerce.number().int().positive().max(86_400_000),
  traceparent: Traceparent.optional(),
});
export type InvokeMeta = z.infer<typeof InvokeMeta>;

/** A door asks the platform which peers of its network serve a function. */
export const DoorPeersRequest = z.strictObject({ app: AppName, fn: FunctionName });
export type DoorPeersRequest = z.infer<typeof DoorPeersRequest>;

/** The platform's answer: the function's current version and limits, and its devices, best first (never the asker). */
export const DoorPeersReply = z.union([
  z.strictObject({ version: Sha256Hex, limits: FunctionLimits, devices: z.array(DeviceId).max(64) }),
  z.strictObject({ error: z.strictObject({ code: z.string(), message: z.string() }) }),
]);
export type DoorPeersReply = z.infer<typeof DoorPeersReply>;

/**
 * One call a device's door took, as the door reports it: who served it
 * (the door's own device, or the peer it relayed to), what crossed the
 * door, and the serving device's CPU claim. `id` is the door's UUID for the
 * call: the usage record's identity, so a report sent twice counts once.
 */
export const DoorCall = z.strictObject({
  id: z.uuid(),
  requestId: z.string().min(1).max(255),
  app: AppName,
  fn: FunctionName,
  version: Sha256Hex,
  at: z.number().int().nonnegative(),
  wallMs: z.number().nonnegative().max(3_600_000),
  requestBytes: z.number().int().nonnegative(),
  responseBytes: z.number().int().nonnegative(),
  status: z.number().int().min(100).max(599),
  errorCode: z.string().max(64).optional(),
  /** The device that answered (none when none did). */
  servedBy: DeviceId.optional(),
  cpuMs: z.string().max(24).optional(),
  cold: z.boolean(),
  relayed: z.boolean(),
  /** How the call came: at the door from outside (absent: so), or from a function on this device (`env.call`). */
  via: z.enum(["door", "call"]).optional(),
});
export type DoorCall = z.infer<typeof DoorCall>;
/**
 * A relayed call this device served for a peer's door, under the door's
 * call id (the `Hearth-Call-Id` of the relay): the platform credits a
 * relayed call only when the door's report and the serving device's
 * attestation agree.
 */
export const RelayServed = z.strictObject({
  id: z.uuid(),
  app: AppName,
  fn: FunctionName,
  version: Sha256Hex,
  cpuMs: z.string().max(24),
  ok: z.boolean(),
});
export type RelayServed = z.infer<typeof RelayServed>;
export const DoorUsageReport = z
  .strictObject({ calls: z.array(DoorCall).max(500).default([]), served: z.array(RelayServed).max(500).default([]) })
  .refine((r) => r.calls.length + r.served.length > 0, "a report names at least one call");
export type DoorUsageReport = z.infer<typeof DoorUsageReport>;
