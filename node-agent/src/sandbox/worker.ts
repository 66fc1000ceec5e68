/**
 * A sandbox process: runs tenant functions in isolated-vm isolates, one
 * isolate per function version, and nothing else. It holds no network
 * connection and no credentials; its only channel is the IPC pipe to the
 * supervisor, whose messages it validates. Started with --no-node-snapshot.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import type { ErrorCode } from "@hearth/protocol";
import ivm from "isolated-vm";
import { FromSandbox, ToSandbox, type SandboxLimits, type SandboxRequest } from "./messages.ts";

const RUNTIME = readFileSync(new URL("./runtime.js", import.meta.url), "utf8");
/** Warm isolates kept at most; the least recently used is disposed first. */
const MAX_WARM = Number(process.env["HEARTH_SANDBOX_MAX_WARM"] ?? 64);
/** Time allowed for a module's top-level code and for binding it. */
const LOAD_TIMEOUT_MS = 2_000;
const CPU_POLL_MS = 5;

interface Instance {
  key: string;
  isolate: ivm.Isolate;
  context: ivm.Context;
  dispatch: ivm.Reference<(req: unknown) => Promise<unknown>>;
  memoryMb: number;
  requestId: string;
}

class CallError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const codes = new Map<string, string>();
const instances = new Map<string, Instance>();
const loading = new Map<string, Promise<Instance>>();

function send(message: FromSandbox): void {
  process.send?.(message);
}

function parseUrl(input: string, base: string | undefined) {
  try {
    const u = new URL(input, base);
    return {
      href: u.href,
      origin: u.origin,
      protocol: u.protocol,
      username: u.username,
      password: u.password,
      host: u.host,
      hostname: u.hostname,
      port: u.port,
      pathname: u.pathname,
      search: u.search,
      hash: u.hash,
    };
  } catch {
    return null;
  }
}

function dispose(instance: Instance): void {
  if (instances.get(instance.key) === instance) instances.delete(instance.key);
  if (!instance.isolate.isDisposed) instance.isolate.dispose();
}

async function createInstance(key: string, limits: SandboxLimits): Promise<Instance> {
  const code = codes.get(key);
  if (code === undefined) throw new CallError("ERR_INTERNAL", `no code for ${key}`);
  const isolate = new ivm.Isolate({ memoryLimit: limits.memoryMb });
  const instance = { key, isolate, memoryMb: limits.memoryMb, requestId: "" } as Instance;
  try {
    const context = await isolate.createContext();
    const log = new ivm.Callback((level: string, message: string) => {
      send({ type: "log", key, requestId: instance.requestId, level: level as "info", message: String(message) });
    });
    const bind = (await context.evalClosure(RUNTIME, [log, new ivm.Callback(parseUrl)], {
      result: { reference: true },
      timeout: LOAD_TIMEOUT_MS,
    })) as ivm.Reference<(ns: unknown) => unknown>;
    const module = await isolate.compileModule(code, { filename: `file:///${key.replace(/[^a-z0-9-]/g, "_")}.js` });
    await module.instantiate(context, (specifier) => {
      throw new Error(`import of '${specifier}' is not supported: bundle the function first (hearth deploy does)`);
    });
    await withDeadline(module.evaluate({ timeout: LOAD_TIMEOUT_MS }), LOAD_TIMEOUT_MS, "top-level code");
    const dispatch = (await bind.apply(undefined, [module.namespace.derefInto()], {
      result: { reference: true },
      timeout: LOAD_TIMEOUT_MS,
    })) as Instance["dispatch"];
    Object.assign(instance, { context, dispatch });
    return instance;
  } catch (error) {
    if (!isolate.isDisposed) isolate.dispose();
    if (error instanceof CallError) throw error;
    const oom = isolate.isDisposed && /memory/i.test(String(error));
    throw new CallError(oom ? "ERR_MEMORY_LIMIT" : "ERR_BAD_BUNDLE", `could not load the function: ${errorMessage(error)}`);
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function errorMessage(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 2000);
}

/** The warm instance of a function version, or a new one (a cold start). */
async function instanceFor(key: string, limits: SandboxLimits): Promise<{ instance: Instance; cold: boolean }> {
  const warm = instances.get(key);
  if (warm && !warm.isolate.isDisposed) {
    // LRU: re-insert as most recently used
    instances.delete(key);
    instances.set(key, warm);
    return { instance: warm, cold: false };
  }
  let pending = loading.get(key);
  if (!pending) {
    pending = createInstance(key, limits).finally(() => loading.delete(key));
    loading.set(key, pending);
  }
  const instance = await pending;
  instances.set(key, instance);
  while (instances.size > MAX_WARM) {
    const oldest = instances.values().next().value!;
    dispose(oldest);
  }
  return { instance, cold: true };
}

async function invoke(
  id: number,
  key: string,
  requestId: string,
  limits: SandboxLimits,
  request: SandboxRequest | null,
): Promise<FromSandbox> {
  const started = performance.now();
  let cold = false;
  let cpuMs = 0;
  const timing = () => ({ cpuMs, wallMs: performance.now() - started, cold });
  let instance: Instance;
  try {
    ({ instance, cold } = await instanceFor(key, limits));
  } catch (error) {
    const e = error instanceof CallError ? error : new CallError("ERR_INTERNAL", errorMessage(error));
    return { type: "result", id, ok: false, code: e.code, message: e.message, ...timing() };
  }
  if (!request) return { type: "result", id, ok: true, status: 200, headers: [], body: new Uint8Array(0), ...timing() };

  instance.requestId = requestId;
  const { isolate } = instance;
  const cpuStart = isolate.cpuTime;
  let reason: ErrorCode | undefined;
  const stop = (why: ErrorCode) => {
    reason ??= why;
    dispose(instance);
  };
  const cpuUsed = () => (isolate.isDisposed ? cpuMs : Number(isolate.cpuTime - cpuStart) / 1e6);
  const poll = setInterval(() => {
    cpuMs = cpuUsed();
    if (cpuMs > limits.cpuMs) stop("ERR_CPU_LIMIT");
  }, CPU_POLL_MS);
  const wall = setTimeout(() => stop("ERR_WALL_TIME_LIMIT"), Math.max(1, limits.wallMs - (performance.now() - started)));
  try {
    const raw = (await instance.dispatch.apply(undefined, [new ivm.ExternalCopy({ ...request, limit: limits.responseBytes }).copyInto()], {
      result: { promise: true, copy: true },
      timeout: limits.wallMs,
    })) as { error?: { code: string; message: string }; status?: number; headers?: [string, string][]; body?: Uint8Array };
    cpuMs = cpuUsed();
    if (reason) throw new Error(reason);
    if (cpuMs > limits.cpuMs) {
      stop("ERR_CPU_LIMIT");
      throw new Error(reason);
    }
    if (raw.error) {
      const code: ErrorCode =
        raw.error.code === "ERR_BAD_RESPONSE" || raw.error.code === "ERR_RESPONSE_TOO_LARGE" ? raw.error.code : "ERR_FUNCTION_THREW";
      return { type: "result", id, ok: false, code, message: String(raw.error.message), ...timing() };
    }
    const body = (raw.body instanceof Uint8Array ? raw.body : new Uint8Array(0)) as Uint8Array<ArrayBuffer>;
    if (body.byteLength > limits.responseBytes) {
      return { type: "result", id, ok: false, code: "ERR_RESPONSE_TOO_LARGE", message: `the response body is over this function's limit of ${limits.responseBytes} bytes`, ...timing() };
    }
    return { type: "result", id, ok: true, status: Number(raw.status), headers: raw.headers ?? [], body, ...timing() };
  } catch (error) {
    const message = errorMessage(error);
    let code: ErrorCode = reason ?? "ERR_FUNCTION_THREW";
    if (!reason) {
      if (/execution timed out/i.test(message)) code = "ERR_WALL_TIME_LIMIT";
      else if (isolate.isDisposed) code = "ERR_MEMORY_LIMIT";
    }
    // An isolate is never reused after a limit was hit.
    if (code !== "ERR_FUNCTION_THREW") dispose(instance);
    return { type: "result", id, ok: false, code, message: describe(code, limits, message), ...timing() };
  } finally {
    clearInterval(poll);
    clearTimeout(wall);
  }
}

function describe(code: ErrorCode, limits: SandboxLimits, message: string): string {
  switch (code) {
    case "ERR_CPU_LIMIT":
      return `the function used more than its ${limits.cpuMs} ms of CPU time and was stopped`;
    case "ERR_WALL_TIME_LIMIT":
      return `the function ran longer than its ${limits.wallMs} ms wall-time limit and was stopped`;
    case "ERR_MEMORY_LIMIT":
      return `the function used more than its ${limits.memoryMb} MiB of memory and was stopped`;
    default:
      return message;
  }
}

process.on("message", (raw: unknown) => {
  const parsed = ToSandbox.safeParse(raw);
  if (!parsed.success) return; // only the supervisor writes to this pipe; anything else is dropped
  const message = parsed.data;
  if (message.type === "drop") {
    const instance = instances.get(message.key);
    if (instance) dispose(instance);
    codes.delete(message.key);
    return;
  }
  if (message.code !== undefined) codes.set(message.key, message.code);
  const request = message.type === "invoke" ? message.request : null;
  const requestId = message.type === "invoke" ? message.requestId : "";
  invoke(message.id, message.key, requestId, message.limits, request).then(send, (error: unknown) =>
    send({ type: "result", id: message.id, ok: false, code: "ERR_INTERNAL", message: errorMessage(error), cpuMs: 0, wallMs: 0, cold: false }),
  );
});
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });
