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

export const ToSandbox = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("invoke"),
    id: z.number().int(),
    key: z.string(),
    code: z.string().optional(),
    requestId: z.string(),
    limits: SandboxLimits,
    request: SandboxRequest,
  }),
  z.strictObject({
    type: z.literal("load"),
    id: z.number().int(),
    key: z.string(),
    code: z.string().optional(),
    limits: SandboxLimits,
  }),
  z.strictObject({ type: z.literal("drop"), key: z.string() }),
]);
export type ToSandbox = z.infer<typeof ToSandbox>;

const Timing = { cpuMs: z.number().min(0), wallMs: z.number().min(0), cold: z.boolean() };

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
  z.strictObject({
    type: z.literal("log"),
    key: z.string(),
    requestId: z.string(),
    level: z.enum(["debug", "info", "warn", "error"]),
    message: z.string(),
  }),
  z.strictObject({ type: z.literal("ready") }),
]);
export type FromSandbox = z.infer<typeof FromSandbox>;
export type SandboxResult = Extract<FromSandbox, { type: "result" }>;
