/**
 * Per-function settings that are not limits: the `env` a function receives
 * (vars and secrets) and its outbound fetch policy. Set at deploy, carried to
 * the devices in the placement, enforced by the agent's sandbox supervisor.
 */
import { z } from "zod";
import { FunctionName } from "./names.ts";

/** Env var names: what shells and bundlers accept. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const MAX_ENV_VARS = 64;
/** The whole env as JSON, at most: it travels in one HTTP header at deploy (base64url of JSON). */
export const MAX_ENV_BYTES = 8 * 1024;
/** The deploy request header that carries the env (never the URL: URLs end up in logs). */
export const ENV_HEADER = "Hearth-Env";

export const FunctionEnv = z
  .record(z.string().regex(ENV_NAME_PATTERN, "env names must be 1-128 characters of A-Z, a-z, 0-9 and '_', not starting with a digit"), z.string())
  .refine((env) => Object.keys(env).length <= MAX_ENV_VARS, `at most ${MAX_ENV_VARS} env vars`)
  .refine((env) => new TextEncoder().encode(JSON.stringify(env)).byteLength <= MAX_ENV_BYTES, `the env is at most ${MAX_ENV_BYTES} bytes as JSON`);
export type FunctionEnv = z.infer<typeof FunctionEnv>;

/**
 * Service bindings (docs/function-calls.md): `env.NAME.fetch(request)` calls
 * function `fn` of the same app, as `env.call(fn, request)` does. Names are
 * env names, never `call` (the env's own method); a binding may not share a
 * name with an env var (checked where both are known).
 */
export const MAX_BINDINGS = 32;
/** Names an object's prototype machinery answers to: never a binding (parsers may drop them silently). */
const RESERVED_BINDING_NAMES: readonly string[] = ["__proto__", "constructor", "prototype"];
export const FunctionBindings = z
  .record(
    z
      .string()
      .regex(ENV_NAME_PATTERN, "binding names must be 1-128 characters of A-Z, a-z, 0-9 and '_', not starting with a digit")
      .refine((name) => name !== "call", "a binding may not be named call: env.call is the runtime's own")
      .refine((name) => !RESERVED_BINDING_NAMES.includes(name), "a binding may not be named __proto__, constructor or prototype"),
    FunctionName,
  )
  .refine((bindings) => Object.keys(bindings).length <= MAX_BINDINGS, `at most ${MAX_BINDINGS} bindings`);
export type FunctionBindings = z.infer<typeof FunctionBindings>;

/** Parses `NAME=fn,OTHER=fn2` (the deploy query's and the CLI's form) into bindings; validate the result with FunctionBindings. */
export function parseBindingList(values: readonly string[]): Record<string, string> | { error: string } {
  const out = new Map<string, string>();
  for (const value of values) {
    for (const part of value.split(",").map((p) => p.trim()).filter(Boolean)) {
      const eq = part.indexOf("=");
      if (eq <= 0) return { error: `binding "${part.slice(0, 64)}" must be NAME=function` };
      const name = part.slice(0, eq).trim();
      if (out.has(name)) return { error: `binding ${name.slice(0, 64)} is named twice` };
      if (RESERVED_BINDING_NAMES.includes(name)) return { error: `a binding may not be named ${name}` };
      out.set(name, part.slice(eq + 1).trim());
    }
  }
  return Object.fromEntries(out);
}

/** Hosts a function may fetch: exact names or `*.example.com` (subdomains only). */
export const HostPattern = z
  .string()
  .max(253)
  .regex(/^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "hosts must be DNS names, optionally starting with '*.'");

/** Outbound fetch: off unless `allow`; `hosts` narrows it further. Private and local addresses are refused whatever this says. */
export const OutboundSettings = z.strictObject({
  allow: z.boolean(),
  hosts: z.array(HostPattern).min(1).max(64).optional(),
  /** Ports besides 80 and 443 the function may fetch; the device's owner must allow each too (outboundAllowPorts). */
  ports: z.array(z.number().int().min(1).max(65_535)).min(1).max(64).optional(),
});
export type OutboundSettings = z.infer<typeof OutboundSettings>;

/**
 * Opt-in runtime features, named as Workers' compatibility flags.
 * `nodejs_compat`: the Node built-ins of docs/runtime.md (`node:buffer`, `node:events`, `node:util`,
 * `node:async_hooks`, parts of `node:crypto`, `process`), importable and as the globals `Buffer`, `process`, `global`.
 */
export const CompatibilityFlag = z.enum(["nodejs_compat"]);
export type CompatibilityFlag = z.infer<typeof CompatibilityFlag>;
export const CompatibilityFlags = z.array(CompatibilityFlag).max(8);

/** Encodes an env for the ENV_HEADER (base64url of its JSON, so any Unicode value fits a header). */
export function encodeEnvHeader(env: FunctionEnv): string {
  const bytes = new TextEncoder().encode(JSON.stringify(env));
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes an ENV_HEADER value; undefined if it is not base64url of a JSON object (validate the result with FunctionEnv). */
export function decodeEnvHeader(value: string): unknown {
  if (!/^[A-Za-z0-9_-]*$/.test(value) || value.length > Math.ceil((MAX_ENV_BYTES * 4) / 3) + 4) return undefined;
  try {
    const binary = atob(value.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as unknown;
  } catch {
    return undefined;
  }
}
