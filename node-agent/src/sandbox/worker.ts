/**
 * A sandbox process: runs tenant functions in isolated-vm isolates, one
 * isolate per function version, and nothing else. It holds no network
 * connection and no credentials; its only channel is the IPC pipe to the
 * supervisor, whose messages it validates (outbound `fetch` is asked of the
 * supervisor over that pipe). Started with --no-node-snapshot and a capped
 * host heap; see docs/runtime.md for the limits it enforces.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import type { ErrorCode } from "@hearth/protocol";
import ivm from "isolated-vm";
import { z } from "zod";
import {
  FromSandbox,
  ToSandbox,
  type OutboundRequest,
  type OutboundResponse,
  type SandboxLimits,
  type SandboxRequest,
  type SandboxSettings,
} from "./messages.ts";

// Trusted code only, read once at start: our runtime and the libraries it evaluates on demand.
const RUNTIME = readFileSync(new URL("./runtime.js", import.meta.url), "utf8");
const require = createRequire(import.meta.url);
const LIBRARIES: Record<string, string> = {
  "web-streams": readFileSync(require.resolve("web-streams-polyfill"), "utf8"),
};
/** The runtime as one function of its host callbacks, compiled per isolate from a code cache made here, from our own source. */
const RUNTIME_SCRIPT = `(function ($0, $1, $2, $3, $4, $5, $6) {\n${RUNTIME}\n})`;

const env = (name: string, fallback: number) => {
  const n = Number(process.env[name]);
  return Number.isFinite(n) && n > 0 ? n : fallback;
};
/** Warm isolates kept at most; the least recently used is disposed first. */
const MAX_WARM = env("HEARTH_SANDBOX_MAX_WARM", 64);
/** Resident memory this process may use; over it, isolates are disposed (idle ones first). */
const PROCESS_MEMORY_MB = env("HEARTH_SANDBOX_MEMORY_MB", 2048);
/** Time allowed for a module's top-level code and for binding it. */
const LOAD_TIMEOUT_MS = 2_000;
const CPU_POLL_MS = 5;
const MEMORY_POLL_MS = 250;
const MAX_TIMERS = 1_000;
/** Per call (or per run of overlapping calls) budgets: a function cannot flood the pipe, the logs or the network. */
const MAX_LOG_LINES = 1_000;
const MAX_LOG_BYTES = 256 * 1024;
const MAX_FETCHES = 50;
const MAX_URL_LENGTH = 2 * 1024 * 1024;
const MAX_RANDOM_BYTES = 65_536;
const MAX_HASH_INPUT = 64 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 60_000;
const USER_AGENT = "Hearth/0.1";
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"]);

interface Instance {
  key: string;
  isolate: ivm.Isolate;
  context: ivm.Context;
  dispatch: ivm.Reference<(req: unknown) => Promise<unknown>>;
  fire: ivm.Reference<(id: number) => void>;
  fetched: ivm.Reference<(id: number, answer: unknown) => void>;
  reset: ivm.Reference<() => void>;
  settle: ivm.Reference<(callId: number) => Promise<void>>;
  memoryMb: number;
  requestId: string;
  /** Calls running on this isolate now (including their waitUntil tail); timers live only while it is above 0. */
  active: number;
  timers: Map<number, NodeJS.Timeout>;
  /** The env the isolate holds, as JSON; sent again only when it changes. */
  envJson: string;
  /** Why the isolate was stopped, for every call that was on it. */
  killedFor?: ErrorCode;
  heapBytes: number;
  /** Spent from the budgets above since the isolate last went idle. */
  logLines: number;
  logBytes: number;
  fetchCount: number;
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
let callCounter = 0;
let runtimeCache: ivm.ExternalCopy<ArrayBuffer> | undefined;

function send(message: FromSandbox): void {
  process.send?.(message);
}

function parseUrl(input: string, base: string | undefined) {
  if (String(input).length > MAX_URL_LENGTH || (base !== undefined && String(base).length > MAX_URL_LENGTH)) return null;
  try {
    const u = new URL(String(input), base === undefined ? undefined : String(base));
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

const HASHES: Record<string, string> = { "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512" };
const bytesArg = (value: unknown): Uint8Array => {
  if (!(value instanceof Uint8Array)) throw new TypeError("expected bytes");
  if (value.byteLength > MAX_HASH_INPUT) throw new RangeError("input too large");
  return value;
};
/** The host side of `crypto`: everything copied in, a fresh Uint8Array copied out. */
function hostCrypto(op: string, a: unknown, b: unknown, c: unknown): Uint8Array {
  switch (op) {
    case "random": {
      const n = Number(a);
      if (!Number.isInteger(n) || n < 0 || n > MAX_RANDOM_BYTES) throw new RangeError("bad length");
      return new Uint8Array(randomBytes(n));
    }
    case "digest": {
      const alg = HASHES[String(a)];
      if (!alg) throw new TypeError("unsupported hash");
      return new Uint8Array(createHash(alg).update(bytesArg(b)).digest());
    }
    case "hmac": {
      const alg = HASHES[String(a)];
      if (!alg) throw new TypeError("unsupported hash");
      return new Uint8Array(createHmac(alg, bytesArg(b)).update(bytesArg(c)).digest());
    }
    default:
      throw new TypeError("unknown crypto operation");
  }
}

function librarySource(name: string): string {
  const source = LIBRARIES[String(name)];
  if (source === undefined) throw new TypeError("unknown library");
  return source;
}

// ---------- outbound fetch: asked of the supervisor ----------
const fetches = new Map<number, (response: OutboundResponse) => void>();
let fetchCounter = 0;
function outboundFetch(key: string, request: OutboundRequest): Promise<OutboundResponse> {
  const id = ++fetchCounter;
  return new Promise<OutboundResponse>((resolve) => {
    const timer = setTimeout(() => {
      fetches.delete(id);
      resolve({ error: "fetch timed out" });
    }, FETCH_TIMEOUT_MS);
    fetches.set(id, (response) => {
      clearTimeout(timer);
      fetches.delete(id);
      resolve(response);
    });
    send({ type: "fetch", id, key, request });
  });
}
const OutboundFromIsolate = z.strictObject({
  method: z.string().max(32),
  url: z.string().max(8192),
  headers: z.array(z.tuple([z.string(), z.string()])).max(256),
  body: z.instanceof(Uint8Array).nullable(),
  redirect: z.enum(["follow", "error", "manual"]),
});

// ---------- instances ----------
function clearTimers(instance: Instance): void {
  for (const timer of instance.timers.values()) clearTimeout(timer);
  instance.timers.clear();
  if (!instance.isolate.isDisposed) instance.reset.applyIgnored(undefined, []);
}

function dispose(instance: Instance, why?: ErrorCode): void {
  instance.killedFor ??= why;
  if (instances.get(instance.key) === instance) instances.delete(instance.key);
  for (const timer of instance.timers.values()) clearTimeout(timer);
  instance.timers.clear();
  if (!instance.isolate.isDisposed) instance.isolate.dispose();
}

/**
 * Compiles the runtime, from a V8 code cache that this process produced from
 * our own runtime source on its first isolate (never cachedData from anywhere else).
 */
async function compileRuntime(isolate: ivm.Isolate): Promise<ivm.Script> {
  type Compiled = ivm.Script & { cachedData?: ivm.ExternalCopy<ArrayBuffer>; cachedDataRejected?: boolean };
  if (runtimeCache) {
    const script = (await isolate.compileScript(RUNTIME_SCRIPT, { cachedData: runtimeCache, filename: "hearth:runtime" })) as Compiled;
    if (!script.cachedDataRejected) return script;
  }
  const script = (await isolate.compileScript(RUNTIME_SCRIPT, { produceCachedData: true, filename: "hearth:runtime" })) as Compiled;
  if (script.cachedData) runtimeCache = script.cachedData;
  return script;
}

async function createInstance(key: string, limits: SandboxLimits): Promise<Instance> {
  const code = codes.get(key);
  if (code === undefined) throw new CallError("ERR_INTERNAL", `no code for ${key}`);
  const isolate = new ivm.Isolate({ memoryLimit: limits.memoryMb });
  const instance = {
    key,
    isolate,
    memoryMb: limits.memoryMb,
    requestId: "",
    active: 0,
    timers: new Map(),
    envJson: "",
    heapBytes: 0,
    logLines: 0,
    logBytes: 0,
    fetchCount: 0,
  } as Instance;
  try {
    const context = await isolate.createContext();
    const log = new ivm.Callback((level: string, message: string) => writeLog(instance, level, String(message)));
    const timer = new ivm.Callback((op: number, id: number, ms: number) => armTimer(instance, op, id, ms));
    const fetchCallback = new ivm.Callback((id: number, raw: unknown) => startFetch(instance, id, raw));
    const options = new ivm.ExternalCopy({ userAgent: USER_AGENT, maxTimers: MAX_TIMERS }).copyInto();
    const runtime = await compileRuntime(isolate);
    const factory = (await runtime.run(context, { reference: true, timeout: LOAD_TIMEOUT_MS })) as ivm.Reference<(...args: unknown[]) => unknown>;
    const exported = (await factory.apply(
      undefined,
      [log, new ivm.Callback(parseUrl), new ivm.Callback(hostCrypto), new ivm.Callback(librarySource), timer, fetchCallback, options],
      { result: { reference: true }, timeout: LOAD_TIMEOUT_MS },
    )) as ivm.Reference<Record<string, unknown>>;
    factory.release();
    const part = async <T>(name: string) => (await exported.get(name, { reference: true })) as unknown as ivm.Reference<T>;
    const bind = await part<(ns: unknown) => unknown>("bind");
    Object.assign(instance, {
      context,
      fire: await part("fire"),
      fetched: await part("fetched"),
      reset: await part("reset"),
      settle: await part("settle"),
    });
    exported.release();
    const module = await isolate.compileModule(code, { filename: `file:///${key.replace(/[^a-z0-9-]/g, "_")}.js` });
    await module.instantiate(context, (specifier) => {
      throw new Error(`import of '${specifier}' is not supported: bundle the function first (hearth deploy does)`);
    });
    // Top-level code may arm timers; they belong to no call, so they are cleared when it finishes.
    instance.active++;
    try {
      await withDeadline(module.evaluate({ timeout: LOAD_TIMEOUT_MS }), LOAD_TIMEOUT_MS, "top-level code");
    } finally {
      instance.active--;
      clearTimers(instance);
    }
    const dispatch = (await bind.apply(undefined, [module.namespace.derefInto()], {
      result: { reference: true },
      timeout: LOAD_TIMEOUT_MS,
    })) as Instance["dispatch"];
    bind.release();
    instance.dispatch = dispatch;
    return instance;
  } catch (error) {
    const oom = /memory limit/i.test(String(error));
    dispose(instance);
    if (error instanceof CallError) throw error;
    throw new CallError(oom ? "ERR_MEMORY_LIMIT" : "ERR_BAD_BUNDLE", `could not load the function: ${errorMessage(error)}`);
  }
}

/** Starts an outbound fetch for the isolate; the answer goes back in only while a call still runs there. */
const LEVELS = new Set(["debug", "info", "warn", "error"]);
function writeLog(instance: Instance, level: string, message: string): void {
  if (instance.logLines > MAX_LOG_LINES || instance.logBytes > MAX_LOG_BYTES) return;
  const line = message.slice(0, 16_384);
  instance.logLines++;
  instance.logBytes += line.length;
  const over = instance.logLines > MAX_LOG_LINES || instance.logBytes > MAX_LOG_BYTES;
  send({
    type: "log",
    key: instance.key,
    requestId: instance.requestId,
    level: over ? "warn" : ((LEVELS.has(level) ? level : "info") as "info"),
    message: over ? `log limit reached (${MAX_LOG_LINES} lines or ${MAX_LOG_BYTES} bytes per call): further lines of this call are dropped` : line,
  });
}

function startFetch(instance: Instance, id: number, raw: unknown): void {
  if (instance.active === 0) return;
  const parsed = OutboundFromIsolate.safeParse(raw);
  const answer =
    ++instance.fetchCount > MAX_FETCHES
      ? Promise.resolve({ error: `too many fetches: at most ${MAX_FETCHES} per call` })
      : parsed.success
        ? outboundFetch(instance.key, parsed.data as OutboundRequest)
        : Promise.resolve({ error: "invalid fetch request" });
  void answer.then((response) => {
    if (instance.active === 0 || instance.isolate.isDisposed) return;
    instance.fetched
      .apply(undefined, [id, new ivm.ExternalCopy(response).copyInto({ release: true })])
      .catch(() => undefined);
  });
}

function armTimer(instance: Instance, op: number, id: number, ms: number): void {
  const previous = instance.timers.get(id);
  if (previous) clearTimeout(previous);
  instance.timers.delete(id);
  // No call is running: a timer armed now would outlive it, so it never fires.
  if (op === 0 || instance.active === 0 || instance.isolate.isDisposed) return;
  // the runtime bounds timers too, but it lives among tenant code: the host keeps its own bound
  if (instance.timers.size >= MAX_TIMERS) return;
  const delay = Math.max(0, Math.min(Number(ms) || 0, 2 ** 31 - 1));
  const fire = () => {
    if (op === 1) instance.timers.delete(id);
    if (instance.isolate.isDisposed) return;
    // CPU and wall limits of the running call(s) still apply: their pollers dispose the isolate.
    instance.fire.apply(undefined, [id]).catch(() => undefined);
  };
  instance.timers.set(id, op === 2 ? setInterval(fire, Math.max(1, delay)) : setTimeout(fire, delay));
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
  if (warm && !warm.isolate.isDisposed && warm.memoryMb === limits.memoryMb) {
    // LRU: re-insert as most recently used
    instances.delete(key);
    instances.set(key, warm);
    return { instance: warm, cold: false };
  }
  if (warm) dispose(warm);
  let pending = loading.get(key);
  if (!pending) {
    pending = createInstance(key, limits).finally(() => loading.delete(key));
    loading.set(key, pending);
  }
  const instance = await pending;
  instances.set(key, instance);
  while (instances.size > MAX_WARM) {
    const oldest = [...instances.values()].find((i) => i.active === 0) ?? instances.values().next().value!;
    dispose(oldest);
  }
  return { instance, cold: true };
}

/** What dispatch hands back, checked: tenant code shapes it, so it is validated like any input. */
const DispatchResult = z.union([
  z.object({
    error: z.object({ code: z.string(), message: z.string() }),
    waiting: z.boolean().optional(),
  }),
  z.object({
    status: z.number().int().min(200).max(599),
    headers: z.array(z.tuple([z.string(), z.string()])).max(1000),
    body: z.instanceof(Uint8Array),
    waiting: z.boolean(),
  }),
]);

async function invoke(
  id: number,
  key: string,
  requestId: string,
  limits: SandboxLimits,
  settings: SandboxSettings | undefined,
  request: SandboxRequest | null,
): Promise<void> {
  const started = performance.now();
  let cold = false;
  let cpuMs = 0;
  const timing = () => ({ cpuMs, wallMs: performance.now() - started, cold });
  const fail = (code: ErrorCode, message: string) => send({ type: "result", id, ok: false, code, message, ...timing() });
  let instance: Instance;
  try {
    ({ instance, cold } = await instanceFor(key, limits));
  } catch (error) {
    const e = error instanceof CallError ? error : new CallError("ERR_INTERNAL", errorMessage(error));
    return fail(e.code, e.message);
  }
  if (!request) return send({ type: "result", id, ok: true, status: 200, headers: [], body: new Uint8Array(0), ...timing() });

  instance.requestId = requestId;
  if (instance.active === 0) {
    instance.logLines = 0;
    instance.logBytes = 0;
    instance.fetchCount = 0;
  }
  instance.active++;
  const { isolate } = instance;
  const cpuStart = isolate.cpuTime;
  let reason: ErrorCode | undefined;
  const stop = (why: ErrorCode) => {
    reason ??= why;
    dispose(instance, why);
  };
  const cpuUsed = () => (isolate.isDisposed ? cpuMs : Number(isolate.cpuTime - cpuStart) / 1e6);
  const poll = setInterval(() => {
    cpuMs = cpuUsed();
    if (cpuMs > limits.cpuMs) stop("ERR_CPU_LIMIT");
  }, CPU_POLL_MS);
  const wall = setTimeout(() => stop("ERR_WALL_TIME_LIMIT"), Math.max(1, limits.wallMs - (performance.now() - started)));
  const finish = () => {
    clearInterval(poll);
    clearTimeout(wall);
    instance.active--;
    if (instance.active === 0 && !isolate.isDisposed) {
      clearTimers(instance);
      void measureHeap(instance);
    }
  };
  const callId = ++callCounter;
  let waiting = false;
  try {
    const envJson = JSON.stringify(settings?.env ?? {});
    const sendEnv = envJson !== instance.envJson;
    instance.envJson = envJson;
    const payload = { ...request, limit: limits.responseBytes, callId, ...(sendEnv ? { env: settings?.env ?? {} } : {}) };
    const raw = await instance.dispatch.apply(undefined, [new ivm.ExternalCopy(payload).copyInto({ release: true })], {
      result: { promise: true, copy: true },
      timeout: limits.wallMs,
    });
    cpuMs = cpuUsed();
    if (reason) throw new Error(reason);
    if (cpuMs > limits.cpuMs) {
      stop("ERR_CPU_LIMIT");
      throw new Error(reason);
    }
    const parsed = DispatchResult.safeParse(raw);
    if (!parsed.success) return fail("ERR_BAD_RESPONSE", "the function's response could not be read (bad status, headers or body)");
    const result = parsed.data;
    waiting = result.waiting === true;
    if ("error" in result) {
      const code: ErrorCode =
        result.error.code === "ERR_BAD_RESPONSE" || result.error.code === "ERR_RESPONSE_TOO_LARGE" ? result.error.code : "ERR_FUNCTION_THREW";
      return fail(code, result.error.message);
    }
    const body = result.body as Uint8Array<ArrayBuffer>;
    if (body.byteLength > limits.responseBytes) {
      return fail("ERR_RESPONSE_TOO_LARGE", `the response body is over this function's limit of ${limits.responseBytes} bytes`);
    }
    // framing is the gateway's business: hop-by-hop headers and a length the body may not have are dropped
    const headers = result.headers.filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase()));
    send({ type: "result", id, ok: true, status: result.status, headers, body, ...timing() });
  } catch (error) {
    const message = errorMessage(error);
    let code: ErrorCode = reason ?? instance.killedFor ?? "ERR_FUNCTION_THREW";
    if (code === "ERR_FUNCTION_THREW") {
      if (/memory limit/i.test(message)) code = "ERR_MEMORY_LIMIT";
      else if (/execution timed out/i.test(message)) code = "ERR_WALL_TIME_LIMIT";
      else if (isolate.isDisposed) code = "ERR_MEMORY_LIMIT";
    }
    // An isolate is never reused after a limit was hit.
    if (code !== "ERR_FUNCTION_THREW") dispose(instance, code);
    return fail(code, describe(code, limits, message));
  } finally {
    if (!waiting || isolate.isDisposed) finish();
    else {
      // The answer is out; ctx.waitUntil work goes on within the same CPU and wall limits, then timers stop.
      void instance.settle
        .apply(undefined, [callId], { result: { promise: true }, timeout: limits.wallMs })
        .catch(() => undefined)
        .finally(finish);
    }
  }
}

async function measureHeap(instance: Instance): Promise<void> {
  try {
    const stats = await instance.isolate.getHeapStatistics();
    instance.heapBytes = stats.used_heap_size + stats.externally_allocated_size;
    // memoryLimit is soft: an isolate that kept more than twice its limit between calls is not kept warm.
    if (instance.heapBytes > 2 * instance.memoryMb * 1024 * 1024) dispose(instance, "ERR_MEMORY_LIMIT");
  } catch {
    // disposed meanwhile
  }
}

/** The process's own cap: over it, idle isolates go first (least recently used), then the largest busy one. */
function enforceProcessMemory(): void {
  const limit = PROCESS_MEMORY_MB * 1024 * 1024;
  if (process.memoryUsage.rss() <= limit) return;
  for (const instance of [...instances.values()]) {
    if (instance.active > 0) continue;
    dispose(instance);
    if (process.memoryUsage.rss() <= limit) return;
  }
  const busy = [...instances.values()].sort((a, b) => b.heapBytes - a.heapBytes || b.memoryMb - a.memoryMb)[0];
  if (busy) dispose(busy, "ERR_MEMORY_LIMIT");
}
setInterval(enforceProcessMemory, MEMORY_POLL_MS).unref();

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
  if (message.type === "fetched") {
    fetches.get(message.id)?.(message.response);
    return;
  }
  if (message.code !== undefined) codes.set(message.key, message.code);
  const request = message.type === "invoke" ? message.request : null;
  const requestId = message.type === "invoke" ? message.requestId : "";
  invoke(message.id, message.key, requestId, message.limits, message.settings, request).catch((error: unknown) =>
    send({ type: "result", id: message.id, ok: false, code: "ERR_INTERNAL", message: errorMessage(error), cpuMs: 0, wallMs: 0, cold: false }),
  );
});
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });
