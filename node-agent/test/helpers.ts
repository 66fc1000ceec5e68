/** Test helpers: a real SandboxPool (real sandbox processes, real isolates) and a way to call code on it. */
import { DEFAULT_LIMITS } from "@hearth/protocol";
import { pino } from "pino";
import { SandboxPool, type CallSettings, type SandboxPoolOptions } from "../src/sandbox/supervisor.ts";
import type { SandboxLimits, SandboxResult } from "../src/sandbox/messages.ts";

export const LIMITS: SandboxLimits = {
  memoryMb: DEFAULT_LIMITS.memoryMb,
  cpuMs: DEFAULT_LIMITS.cpuMs,
  wallMs: DEFAULT_LIMITS.wallMs,
  responseBytes: DEFAULT_LIMITS.responseBytes,
};

export async function startPool(options: Partial<SandboxPoolOptions> = {}): Promise<SandboxPool> {
  const pool = new SandboxPool({ size: 1, log: pino({ level: "silent" }), ...options });
  await pool.start();
  return pool;
}

let counter = 0;
/** A fresh function key per deployment, so tests never share an isolate by accident. */
export const uniqueKey = (name: string) => `test/${name}-${process.pid}-${++counter}@${"0".repeat(64)}`;

export interface CallInput {
  method?: string;
  path?: string;
  headers?: [string, string][];
  body?: Uint8Array | string | null;
  limits?: Partial<SandboxLimits>;
  settings?: CallSettings;
  requestId?: string;
}

export async function call(pool: SandboxPool, key: string, code: string, input: CallInput = {}): Promise<SandboxResult> {
  const body = typeof input.body === "string" ? new TextEncoder().encode(input.body) : (input.body ?? null);
  return pool.invoke(
    key,
    code,
    input.requestId ?? "req-1",
    { ...LIMITS, ...input.limits },
    {
      method: input.method ?? (body ? "POST" : "GET"),
      url: `https://fn.example/${(input.path ?? "").replace(/^\//, "")}`,
      headers: input.headers ?? [],
      body: body as Uint8Array<ArrayBuffer> | null,
    },
    input.settings,
  );
}

export function text(result: SandboxResult): string {
  if (!result.ok) throw new Error(`call failed: ${result.code}: ${result.message}`, { cause: result });
  return new TextDecoder().decode(result.body);
}

export function json(result: SandboxResult): unknown {
  return JSON.parse(text(result));
}

/** A module that answers JSON of what `body` (an async function body with `request`, `env`, `ctx`) returns. */
export const jsonFunction = (body: string) =>
  `export default { async fetch(request, env, ctx) { const out = await (async () => { ${body} })(); return Response.json(out); } };`;
