/** Messages on the pipe between the sandbox supervisor and a sandbox process (validated on both ends). */
import { ERROR_CODES } from "@hearth/protocol";
import { z } from "zod";

const ErrorCodeSchema = z.enum(Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...(keyof typeof ERROR_CODES)[]]);

export const SandboxLimits = z.strictObject({
  memoryMb: z.number().int().positive(),
  cpuMs: z.number().positive(),
  wallMs: z.number().positive(),
  responseBytes: z.number().int().min(0),
});
export type SandboxLimits = z.infer<typeof SandboxLimits>;

export const SandboxRequest = z.strictObject({
  method: z.string(),
  url: z.string(),
  headers: z.array(z.tuple([z.string(), z.string()])),
  body: z.instanceof(Uint8Array).nullable(),
});
export type SandboxRequest = z.infer<typeof SandboxRequest>;

/** Per-function settings that are not limits: the `env` argument (vars, secrets), and whether Node compatibility is on. Sent when they change. */
export const SandboxSettings = z.strictObject({
  env: z.record(z.string(), z.string()).optional(),
  nodejsCompat: z.literal(true).optional(),
  /** Service bindings: env name → function of the same app (`env.NAME.fetch(request)`). */
  bindings: z.record(z.string(), z.string()).optional(),
});
export type SandboxSettings = z.infer<typeof SandboxSettings>;

/**
 * An outbound request a function makes with `fetch`, asked of the supervisor:
 * it alone holds the function's outbound policy and may reach the network.
 */
export const OutboundRequest = z.strictObject({
  method: z.string().max(32),
  url: z.string().max(8192),
  headers: z.array(z.tuple([z.string(), z.string()])).max(256),
  body: z.instanceof(Uint8Array).nullable(),
  redirect: z.enum(["follow", "error", "manual"]),
  /** Set for `env.call` and service bindings: the function of the caller's app to call, instead of the URL's host. */
  call: z.string().max(200).optional(),
});
export type OutboundRequest = z.infer<typeof OutboundRequest>;

export const OutboundResponse = z.union([
  z.strictObject({
    status: z.number().int().min(200).max(599),
    statusText: z.string(),
    headers: z.array(z.tuple([z.string(), z.string()])),
    body: z.instanceof(Uint8Array),
    url: z.string(),
    redirected: z.boolean(),
  }),
  z.strictObject({ error: z.string() }),
]);
export type OutboundResponse = z.infer<typeof OutboundResponse>;

export const ToSandbox = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("invoke"),
    id: z.number().int(),
    key: z.string(),
    code: z.string().optional(),
    requestId: z.string(),
    limits: SandboxLimits,
    settings: SandboxSettings.optional(),
    request: SandboxRequest,
    /** A function's call of a function (env.call): its caller waits on it holding an isolate. */
    nested: z.literal(true).optional(),
  }),
  z.strictObject({
    type: z.literal("load"),
    id: z.number().int(),
    key: z.string(),
    code: z.string().optional(),
    limits: SandboxLimits,
    settings: SandboxSettings.optional(),
  }),
  z.strictObject({ type: z.literal("drop"), key: z.string() }),
  z.strictObject({ type: z.literal("fetched"), id: z.number().int(), response: OutboundResponse }),
]);
export type ToSandbox = z.infer<typeof ToSandbox>;

/** One console line of a function, from the sandbox process (the supervisor passes on only lines of keys it sent there). */
export const SandboxLogLine = z.strictObject({
  key: z.string(),
  requestId: z.string(),
  level: z.enum(["debug", "info", "warn", "error"]),
  message: z.string(),
});
export type SandboxLogLine = z.infer<typeof SandboxLogLine>;
/** Lines a sandbox process sends in one message at most (it holds them briefly and sends them with a result). */
export const SANDBOX_LOG_BATCH = 256;
const SandboxLogLines = z.array(SandboxLogLine).max(SANDBOX_LOG_BATCH);

/** Timing of a call, and the console lines held since the last message (of this call and of others on the process). */
const Timing = { cpuMs: z.number().min(0), wallMs: z.number().min(0), cold: z.boolean(), logs: SandboxLogLines.optional() };

export const FromSandbox = z.union([
  z.strictObject({
    type: z.literal("result"),
    id: z.number().int(),
    ok: z.literal(true),
    status: z.number().int().min(200).max(599),
    headers: z.array(z.tuple([z.string(), z.string()])),
    body: z.instanceof(Uint8Array),
    ...Timing,
  }),
  z.strictObject({
    type: z.literal("result"),
    id: z.number().int(),
    ok: z.literal(false),
    code: ErrorCodeSchema,
    message: z.string(),
    ...Timing,
  }),
  /** Console lines held while no result went out for a while. */
  z.strictObject({ type: z.literal("logs"), lines: SandboxLogLines }),
  z.strictObject({ type: z.literal("ready") }),
  /** `invoke`: the id of the call the fetch is made in (a function-to-function call is that call's). */
  z.strictObject({ type: z.literal("fetch"), id: z.number().int(), key: z.string(), invoke: z.number().int().optional(), request: OutboundRequest }),
]);
export type FromSandbox = z.infer<typeof FromSandbox>;
export type SandboxResult = Extract<FromSandbox, { type: "result" }>;
