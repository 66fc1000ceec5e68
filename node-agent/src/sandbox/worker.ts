/**
 * A sandbox process: runs tenant functions in isolated-vm isolates, and
 * nothing else. An isolate holds one function version and runs one call at a
 * time (so its CPU time and console lines are that call's alone); a function
 * called concurrently gets a few isolates. It holds no network
 * connection and no credentials; its only channel is the IPC pipe to the
 * supervisor, whose messages it validates (outbound `fetch` is asked of the
 * supervisor over that pipe). Started with --no-node-snapshot and a capped
 * host heap; see docs/runtime.md for the limits it enforces.
 */
import { createHash, createHmac, randomBytes, type Hash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { MAX_CALL_DEPTH, type ErrorCode } from "@hearth/protocol";
import ivm from "isolated-vm";
import { z } from "zod";
import { MAX_ZLIB_INPUT, ZLIB_COST, ZlibFormat, ZlibRequest, ZlibStream, type ZlibStep } from "./compression.ts";
import { HANDLE, HandleTable } from "./handles.ts";
import { JOB_SLOTS, JobGate, JobQueue } from "./host-jobs.ts";
import {
  FromSandbox,
  SANDBOX_LOG_BATCH,
  ToSandbox,
  type SandboxLogLine,
  type OutboundRequest,
  type OutboundResponse,
  type SandboxLimits,
  type SandboxRequest,
} from "./messages.ts";
import { builtinName, builtinSource, unresolvedImport } from "./node-builtins.ts";
import { describeError, MAX_CRYPTO_INPUT, runSubtle, SubtleRequest, type SubtleResult } from "./web-crypto.ts";

// Trusted code only, read once at start: our runtime and the libraries it evaluates on demand.
const RUNTIME = readFileSync(new URL("./runtime.js", import.meta.url), "utf8");
/** Families of globals installed on first touch: compiled with the runtime (from its code cache), run only when a function uses them. */
const RUNTIME_PARTS = ["web-crypto.js", "compression.js", "node.js"].map((name) => readFileSync(new URL(`./runtime/${name}`, import.meta.url), "utf8"));
const require = createRequire(import.meta.url);
// (`buffer/` with its slash: the npm package, not Node's own module of that name; its dependencies as it resolves them)
const bufferEntry = require.resolve("buffer/");
const requireOfBuffer = createRequire(bufferEntry);
const LIBRARIES: Record<string, string> = {
  "web-streams": readFileSync(require.resolve("web-streams-polyfill"), "utf8"),
  buffer: readFileSync(bufferEntry, "utf8"),
  "base64-js": readFileSync(requireOfBuffer.resolve("base64-js"), "utf8"),
  ieee754: readFileSync(requireOfBuffer.resolve("ieee754"), "utf8"),
  events: readFileSync(require.resolve("events/"), "utf8"),
};
/** The runtime as one function of its host callbacks, compiled per isolate from a code cache made here, from our own source. */
const RUNTIME_SCRIPT = `(function ($0, $1, $2, $3, $4, $5, $6, $7, $8) {"use strict";\n${RUNTIME_PARTS.join("\n")}\n${RUNTIME}\n})`;

const env = (name: string, fallback: number) => {
  const n = Number(process.env[name]);
  return Number.isFinite(n) && n > 0 ? n : fallback;
};
/** Warm isolates kept at most; the least recently used is disposed first. */
const MAX_WARM = env("HEARTH_SANDBOX_MAX_WARM", 64);
/** Isolates one function may have at once: each runs one call at a time, so this is the function's concurrency on this process. */
const MAX_PER_FUNCTION = env("HEARTH_SANDBOX_MAX_PER_FUNCTION", 4);
/** Resident memory this process may use; over it, isolates are disposed (idle ones first). */
const PROCESS_MEMORY_MB = env("HEARTH_SANDBOX_MEMORY_MB", 2048);
/** Wall time allowed for loading a function: compiling it, its top-level code and binding it. Its CPU is bounded by the function's cpuMs. */
const LOAD_TIMEOUT_MS = 2_000;
/** Wall time the runtime's own housekeeping (reset between calls) may take in the isolate; over it the isolate is disposed. */
const RESET_TIMEOUT_MS = 250;
const CPU_POLL_MS = 5;
const MEMORY_POLL_MS = 250;
/** CPU an idle isolate may use between two patrols (GC housekeeping); more means tenant code ran outside any call. */
const IDLE_CPU_MS = 50;
const MAX_TIMERS = 1_000;
/** Per call budgets: a function cannot flood the pipe, the logs, the network or the host's heap. */
const MAX_LOG_LINES = 1_000;
const MAX_LOG_BYTES = 256 * 1024;
const MAX_LOG_LINE = 16_384;
const MAX_FETCHES = 50;
const MAX_URL_LENGTH = 2 * 1024 * 1024;
const MAX_RANDOM_BYTES = 65_536;
/** One crypto input; and all the bytes one call may hand the host (crypto and compression inputs, URLs). */
const MAX_HASH_INPUT = MAX_CRYPTO_INPUT;
const MAX_HOST_BYTES_PER_CALL = 256 * 1024 * 1024;
/** The response's headers: count and total bytes (names + values). */
const MAX_HEADERS = 1_000;
const MAX_HEADER_BYTES = 64 * 1024;
const MAX_FETCH_BODY = 8 * 1024 * 1024;
const MAX_ERROR_LENGTH = 4_000;
const FETCH_TIMEOUT_MS = 60_000;
const USER_AGENT = "Hearth/0.1";
/** Per isolate: live handles of each kind, and the host memory they may hold in all (an estimate per entry). */
const MAX_HANDLES = { key: 20_000, hash: 64, zlib: 64 } as const;
const MAX_HANDLE_BYTES = 64 * 1024 * 1024;
/** Async host work (Web Crypto, compression) runs on the threadpool, in this many slots for the whole process. */
const jobGate = new JobGate(JOB_SLOTS);
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"]);

interface Instance {
  key: string;
  isolate: ivm.Isolate;
  context: ivm.Context;
  /** A call's entry (runtime.js `enter`): runs dispatch, resolves with the answer it handed over. */
  enter: ivm.Reference<(req: unknown) => Promise<unknown>>;
  fire: ivm.Reference<(id: number) => void>;
  fetched: ivm.Reference<(id: number, answer: unknown) => void>;
  reset: ivm.Reference<() => void>;
  settle: ivm.Reference<(callId: number) => Promise<void>>;
  jobDone: ivm.Reference<(id: number, outcome: unknown) => void>;
  /** Host objects the isolate works with by handle (keys, hashes, compressors): dropped with it. */
  handles: HandleTable;
  /** Its async host work, one job at a time; the job running since jobStartedAt (0: none) is charged live. */
  jobs: JobQueue;
  jobStartedAt: number;
  /** Host time of its finished jobs (µs, cumulative), charged to the call that was running. */
  jobCpuUs: number;
  memoryMb: number;
  requestId: string;
  /** The supervisor's id of the call running now (its function-to-function calls are that call's). */
  invokeId: number;
  /** 1 while a call (or the module's top-level code) runs here, including the call's waitUntil tail; timers live only then. */
  active: number;
  /** Taken by a call (from acquire to release): an isolate runs one call at a time, so its CPU time is that call's alone. */
  busy: boolean;
  /** Busy only with the reset after a call: about to be free, so a new call waits for it rather than start another isolate. */
  releasing: boolean;
  /** Its function was dropped (moved off this device) while a call ran here: that call finishes, then the isolate goes. */
  retired?: boolean;
  /** Loaded but not yet called (e.g. warmed at placement): a call that waited for its load was a cold start. */
  fresh: boolean;
  timers: Map<number, NodeJS.Timeout>;
  /** Which env the isolate holds (its version in `envs`); sent again only when it changes. */
  envVersion: number;
  /** Loaded with Node compatibility (nodejs_compat): an isolate never changes that, so a change of the setting means new isolates. */
  nodejsCompat: boolean;
  /** Why the isolate was stopped, for every call that was on it. */
  killedFor?: ErrorCode;
  heapBytes: number;
  /** When its heap was last measured after a call (performance.now(); 0 = never: a new isolate). */
  heapMeasuredAt: number;
  /** isolate.cpuTime when the patrol last looked at the idle isolate. */
  idleCpu: bigint;
  /** hostCpuUs then: an idle isolate's host callbacks count too (its own cpuTime pauses during them). */
  idleHostUs: number;
  /** Host CPU spent in this isolate's callbacks (µs, cumulative): charged to the call that made them. */
  hostCpuUs: number;
  /** Wall bound for a host->isolate call made for the running call (its wall limit). */
  callTimeoutMs: number;
  /** Spent from the budgets above by the running call. */
  logLines: number;
  logBytes: number;
  fetchCount: number;
  hostBytes: number;
}

class CallError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const codes = new Map<string, string>();
/** Each function's env as the supervisor last sent it, with a version that changes with it. */
const envs = new Map<string, { env: Record<string, string>; bindings: Record<string, string>; version: number }>();
const NO_ENV = { env: {}, bindings: {}, version: 0 };
/** Functions deployed with nodejs_compat, as the supervisor last said. */
const nodejsCompat = new Set<string>();
let envVersions = 0;
/** Every live isolate, least recently used first. */
const instances = new Set<Instance>();
/** The isolate being created for a function, if any (one at a time per function). */
const creating = new Map<string, Promise<Instance>>();
/** Calls waiting for an isolate of a function to come free. */
const waiters = new Map<string, (() => void)[]>();
let callCounter = 0;
let runtimeCache: ivm.ExternalCopy<ArrayBuffer> | undefined;

/** Console lines not sent yet: they go with the next result (one message for both), or after LOG_HOLD_MS. */
let heldLogs: SandboxLogLine[] = [];
let heldLogChars = 0;
let logTimer: NodeJS.Timeout | undefined;
const LOG_HOLD_MS = 10;
const LOG_HOLD_CHARS = 256 * 1024;

function send(message: FromSandbox): void {
  if (message.type === "result" && heldLogs.length > 0) {
    clearTimeout(logTimer);
    logTimer = undefined;
    message.logs = heldLogs;
    heldLogs = [];
    heldLogChars = 0;
  }
  process.send?.(message);
}

function sendLogs(): void {
  clearTimeout(logTimer);
  logTimer = undefined;
  if (heldLogs.length === 0) return;
  const lines = heldLogs;
  heldLogs = [];
  heldLogChars = 0;
  process.send?.({ type: "logs", lines } satisfies FromSandbox);
}

function holdLog(line: SandboxLogLine): void {
  if (heldLogs.length >= SANDBOX_LOG_BATCH || heldLogChars + line.message.length > LOG_HOLD_CHARS) sendLogs();
  heldLogs.push(line);
  heldLogChars += line.message.length;
  logTimer ??= setTimeout(sendLogs, LOG_HOLD_MS);
}

/**
 * A host callback for an isolate. The host's own CPU time in it (hashing,
 * URL parsing, arming timers) is charged to the isolate's running call:
 * isolate.cpuTime does not count it, as it runs on this process's main thread.
 */
function charged<A extends unknown[], R>(instance: Instance, fn: (...args: A) => R): (...args: A) => R {
  return (...args: A) => {
    const before = process.threadCpuUsage();
    try {
      return fn(...args);
    } finally {
      const after = process.threadCpuUsage(before);
      instance.hostCpuUs += after.user + after.system;
    }
  };
}
/** Counts bytes a call hands the host against its per-call budget (the runtime checked each one's size before the copy). */
function spendHostBytes(instance: Instance, n: number): void {
  instance.hostBytes += n;
  if (instance.hostBytes > MAX_HOST_BYTES_PER_CALL) throw new RangeError(`over this call's budget of ${MAX_HOST_BYTES_PER_CALL} bytes of host work (crypto, URLs)`);
}

function parseUrl(instance: Instance, input: string, base: string | undefined) {
  if (typeof input !== "string" || (base !== undefined && typeof base !== "string")) return null;
  if (input.length > MAX_URL_LENGTH || (base !== undefined && base.length > MAX_URL_LENGTH)) return null;
  spendHostBytes(instance, input.length + (base?.length ?? 0));
  return urlParts(input, base);
}

/** The parts of a WHATWG URL the runtime's URL class holds, or null when it does not parse. */
function urlParts(input: string, base?: string) {
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

const HASHES: Record<string, string> = { "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512" };
const hashArg = (value: unknown): string => {
  const alg = typeof value === "string" && Object.hasOwn(HASHES, value) ? HASHES[value] : undefined;
  if (!alg) throw new TypeError("unsupported hash");
  return alg;
};
const NODE_HASHES = new Set(["md5", "sha1", "sha256", "sha384", "sha512"]);
const nodeHashArg = (value: unknown): string => {
  if (typeof value !== "string" || !NODE_HASHES.has(value)) throw new TypeError("unsupported hash");
  return value;
};
/** The host side of `crypto`: everything copied in, a fresh Uint8Array copied out. */
function hostCrypto(instance: Instance, op: string, a: unknown, b: unknown, c: unknown): Uint8Array | string {
  const bytesArg = (value: unknown): Uint8Array => {
    if (!(value instanceof Uint8Array)) throw new TypeError("expected bytes");
    if (value.byteLength > MAX_HASH_INPUT) throw new RangeError("input too large");
    spendHostBytes(instance, value.byteLength);
    return value;
  };
  switch (op) {
    case "random": {
      const n = Number(a);
      if (!Number.isInteger(n) || n < 0 || n > MAX_RANDOM_BYTES) throw new RangeError("bad length");
      return new Uint8Array(randomBytes(n));
    }
    case "digest":
      return new Uint8Array(createHash(hashArg(a)).update(bytesArg(b)).digest());
    // a DigestStream: a running hash in the handle table, fed chunk by chunk
    case "hash-open":
      return instance.handles.add("hash", createHash(hashArg(a)), 1024);
    // node:crypto's createHash/createHmac: the same running hash by handle, and more algorithms than Web Crypto's
    case "node-hash-open":
      return instance.handles.add("hash", createHash(nodeHashArg(a)), 1024);
    case "node-hmac-open":
      return instance.handles.add("hash", createHmac(nodeHashArg(a), bytesArg(b)), 1024);
    case "hash-update": {
      const hash = instance.handles.get<Hash>("hash", b);
      if (!hash) throw new TypeError("not a DigestStream of this isolate");
      hash.update(bytesArg(c));
      return new Uint8Array(0);
    }
    case "hash-final": {
      const hash = instance.handles.get<Hash>("hash", b);
      if (!hash) throw new TypeError("not a DigestStream of this isolate");
      instance.handles.delete(b as string);
      return new Uint8Array(hash.digest());
    }
    default:
      throw new TypeError("unknown crypto operation");
  }
}

const FreedHandles = z.array(z.string().regex(HANDLE)).max(1024);
/**
 * The handle side of the runtime, synchronous: opens a (de)compressor, and
 * drops handles whose objects the isolate's garbage collector found
 * unreachable (a FinalizationRegistry there reports them).
 */
function hostHandles(instance: Instance, op: string, a: unknown, b: unknown): string | undefined {
  switch (op) {
    case "zlib-open": {
      const format = ZlibFormat.safeParse(a);
      if (!format.success) throw new TypeError("unsupported compression format");
      const stream = new ZlibStream(format.data, b === true);
      return instance.handles.add("zlib", stream, ZLIB_COST, () => stream.close());
    }
    case "free": {
      const freed = FreedHandles.safeParse(a);
      if (freed.success) for (const handle of freed.data) instance.handles.delete(handle);
      return undefined;
    }
    case "zlib-close":
      if (typeof a === "string" && instance.handles.get("zlib", a)) instance.handles.delete(a);
      return undefined;
    default:
      throw new TypeError("unknown handle operation");
  }
}

const HostJob = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("subtle"), request: SubtleRequest }),
  z.strictObject({ kind: z.literal("zlib"), request: ZlibRequest }),
]);
type JobOutcome = { ok: true; value: SubtleResult | ZlibStep } | { ok: false; error: { name: string; message: string } };

/**
 * Starts async host work for the isolate's running call (queued behind its
 * other jobs); the outcome goes back in with jobDone(id, outcome), only while
 * a call still runs there. Bytes handed over count against the call's budget.
 */
function startJob(instance: Instance, id: number, raw: unknown): void {
  if (instance.active === 0 || instance.isolate.isDisposed) return;
  const deliver = (outcome: JobOutcome) => {
    if (instance.active === 0 || instance.isolate.isDisposed) return;
    instance.jobDone
      .apply(undefined, [id, new ivm.ExternalCopy(outcome).copyInto({ release: true })], { timeout: instance.callTimeoutMs })
      .catch(() => undefined);
  };
  const parsed = HostJob.safeParse(raw);
  if (!parsed.success) return void queueMicrotask(() => deliver({ ok: false, error: { name: "TypeError", message: "invalid crypto or compression request" } }));
  const job = parsed.data;
  try {
    spendHostBytes(instance, requestBytes(job.request));
  } catch (error) {
    return void queueMicrotask(() => deliver({ ok: false, error: describeError(error) }));
  }
  const work: () => Promise<SubtleResult | ZlibStep> =
    job.kind === "subtle"
      ? () => runSubtle(instance.handles, job.request)
      : () => {
          const stream = instance.handles.get<ZlibStream>("zlib", job.request.handle);
          if (!stream) return Promise.reject(new TypeError("not a compression stream of this isolate"));
          return stream.step(job.request.input);
        };
  const queued = instance.jobs.push(work, (outcome) => deliver(outcome.ok ? outcome : { ok: false, error: describeError(outcome.error) }));
  if (!queued) queueMicrotask(() => deliver({ ok: false, error: { name: "QuotaExceededError", message: "too many crypto or compression operations waiting in this call" } }));
}

/** The bytes a request hands the host. */
function requestBytes(request: object): number {
  let n = 0;
  for (const value of Object.values(request)) {
    if (value instanceof Uint8Array) n += value.byteLength;
    else if (value !== null && typeof value === "object") n += requestBytes(value);
    else if (typeof value === "string") n += value.length;
  }
  return n;
}

function librarySource(name: string): string {
  const source = typeof name === "string" && Object.hasOwn(LIBRARIES, name) ? LIBRARIES[name] : undefined;
  if (source === undefined) throw new TypeError("unknown library");
  return source;
}

// ---------- outbound fetch: asked of the supervisor ----------
const fetches = new Map<number, (response: OutboundResponse) => void>();
let fetchCounter = 0;
function outboundFetch(key: string, invoke: number, request: OutboundRequest): Promise<OutboundResponse> {
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
    send({ type: "fetch", id, key, invoke, request });
  });
}
const OutboundFromIsolate = z.strictObject({
  method: z.string().max(32),
  url: z.string().max(8192),
  headers: z.array(z.tuple([z.string(), z.string()])).max(256),
  body: z
    .instanceof(Uint8Array)
    .refine((b) => b.byteLength <= MAX_FETCH_BODY)
    .nullable(),
  redirect: z.enum(["follow", "error", "manual"]),
  call: z.string().max(200).optional(),
});

// ---------- instances ----------
/**
 * Meters host->isolate work against a CPU budget (isolate.cpuTime, polled,
 * plus host time charged to the isolate's callbacks) and a wall deadline. An
 * isolate that breaks either is disposed, which ends whatever it was running.
 */
class Meter {
  reason: ErrorCode | undefined;
  private last = 0;
  private readonly instance: Instance;
  private readonly cpuStart: bigint;
  private readonly hostStart: number;
  private readonly jobStart: number;
  private readonly poll: NodeJS.Timeout;
  private readonly wall: NodeJS.Timeout;
  private readonly countJobs: boolean;

  /**
   * `countJobs`: whether a host job running meanwhile counts, live. It does for a call (its own work); not for
   * the reset after one, where a job the call left running is no fault of the reset's (it falls on the next call).
   */
  constructor(instance: Instance, cpuLimitMs: number, wallLimitMs: number, countJobs = true) {
    this.instance = instance;
    this.countJobs = countJobs;
    this.cpuStart = instance.isolate.cpuTime;
    this.hostStart = instance.hostCpuUs;
    this.jobStart = instance.jobCpuUs;
    this.poll = setInterval(() => {
      if (this.used() > cpuLimitMs) this.break("ERR_CPU_LIMIT");
    }, CPU_POLL_MS);
    this.wall = setTimeout(() => this.break("ERR_WALL_TIME_LIMIT"), Math.max(1, wallLimitMs));
  }

  /** CPU milliseconds spent since the meter started: in the isolate and in the host for it. */
  used(): number {
    const { isolate, hostCpuUs } = this.instance;
    const { jobCpuUs, jobStartedAt } = this.instance;
    const jobs = this.countJobs ? (jobCpuUs - this.jobStart) / 1000 + (jobStartedAt > 0 ? performance.now() - jobStartedAt : 0) : 0;
    if (!isolate.isDisposed) this.last = Number(isolate.cpuTime - this.cpuStart) / 1e6 + (hostCpuUs - this.hostStart) / 1000 + jobs;
    return this.last;
  }

  break(why: ErrorCode): void {
    this.reason ??= why;
    // the last reading before the isolate goes (its cpuTime is gone after): what the call is billed
    this.used();
    dispose(this.instance, why);
  }

  stop(): number {
    clearInterval(this.poll);
    clearTimeout(this.wall);
    return this.used();
  }
}

function dispose(instance: Instance, why?: ErrorCode): void {
  instance.killedFor ??= why;
  instances.delete(instance);
  for (const timer of instance.timers.values()) clearTimeout(timer);
  instance.timers.clear();
  instance.jobs.close();
  instance.handles.clear();
  if (!instance.isolate.isDisposed) instance.isolate.dispose();
  wake(instance.key);
}

/**
 * Stops the isolate's timers and lets its runtime forget the finished call.
 * No call runs now, so this is bounded like any host->isolate call: a time
 * limit and a CPU meter; over either, the isolate is disposed.
 */
async function resetAfterCall(instance: Instance, inIsolate = true): Promise<void> {
  for (const timer of instance.timers.values()) clearTimeout(timer);
  instance.timers.clear();
  instance.jobs.dropWaiting();
  // a call that answered with nothing left to wait for was reset by dispatch itself, on its way out (runtime.js)
  if (instance.isolate.isDisposed || !inIsolate) return;
  const meter = new Meter(instance, RESET_TIMEOUT_MS, RESET_TIMEOUT_MS, false);
  try {
    await instance.reset.apply(undefined, [], { timeout: RESET_TIMEOUT_MS });
  } catch {
    dispose(instance, "ERR_CPU_LIMIT");
  } finally {
    meter.stop();
  }
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

const RUNTIME_OPTIONS = {
  userAgent: USER_AGENT,
  maxTimers: MAX_TIMERS,
  maxUrlLength: MAX_URL_LENGTH,
  maxLogLength: MAX_LOG_LINE,
  maxLogLines: MAX_LOG_LINES,
  maxLogBytes: MAX_LOG_BYTES,
  maxCryptoBytes: MAX_HASH_INPUT,
  maxHeaders: MAX_HEADERS,
  maxHeaderBytes: MAX_HEADER_BYTES,
  maxFetchBody: MAX_FETCH_BODY,
  maxErrorLength: MAX_ERROR_LENGTH,
  maxZlibInput: MAX_ZLIB_INPUT,
};

/**
 * A new isolate for a function, taken (busy) by its caller. The whole load has
 * one wall deadline; from the module's top-level code on, the function's own
 * CPU limit applies too. Whatever breaks a bound disposes the isolate.
 */
async function createInstance(key: string, limits: SandboxLimits): Promise<Instance> {
  const code = codes.get(key);
  if (code === undefined) throw new CallError("ERR_INTERNAL", `no code for ${key}`);
  const isolate = new ivm.Isolate({ memoryLimit: limits.memoryMb });
  const instance = {
    key,
    isolate,
    memoryMb: limits.memoryMb,
    requestId: "",
    invokeId: 0,
    active: 0,
    busy: true,
    releasing: false,
    fresh: true,
    timers: new Map(),
    // with nodejs_compat the isolate gets the env at load (below), so its first call need not send it again
    envVersion: nodejsCompat.has(key) ? (envs.get(key) ?? NO_ENV).version : -1,
    nodejsCompat: nodejsCompat.has(key),
    heapBytes: 0,
    heapMeasuredAt: 0,
    hostCpuUs: 0,
    jobStartedAt: 0,
    jobCpuUs: 0,
    handles: new HandleTable(MAX_HANDLE_BYTES, MAX_HANDLES),
    idleCpu: 0n,
    idleHostUs: 0,
    callTimeoutMs: LOAD_TIMEOUT_MS,
    logLines: 0,
    logBytes: 0,
    fetchCount: 0,
    hostBytes: 0,
  } as Instance;
  instance.jobs = new JobQueue(instance, jobGate);
  const deadline = setTimeout(() => dispose(instance, "ERR_WALL_TIME_LIMIT"), LOAD_TIMEOUT_MS);
  let meter: Meter | undefined;
  try {
    const context = await isolate.createContext();
    // fire and forget (the isolate does not wait for the host: a thread switch each way saved per line), in order
    // with the call's answer; the runtime stops sending past the per-call budget, and writeLog holds it again
    const log = new ivm.Callback(charged(instance, (level: string, message: string) => writeLog(instance, level, message)), { ignored: true });
    const timer = new ivm.Callback(charged(instance, (op: number, id: number, ms: number) => armTimer(instance, op, id, ms)));
    const fetchCallback = new ivm.Callback(charged(instance, (id: number, raw: unknown) => startFetch(instance, id, raw)));
    const url = new ivm.Callback(charged(instance, (input: string, base: string | undefined) => parseUrl(instance, input, base)));
    const crypto = new ivm.Callback(charged(instance, (op: string, a: unknown, b: unknown, c: unknown) => hostCrypto(instance, op, a, b, c)));
    const source = new ivm.Callback(charged(instance, librarySource));
    // (not `charged`: a job's time is measured where it runs, see host-jobs.ts; queuing it is part of that)
    const job = new ivm.Callback((id: number, raw: unknown) => startJob(instance, id, raw));
    const handles = new ivm.Callback(charged(instance, (op: string, a: unknown, b: unknown) => hostHandles(instance, op, a, b)));
    // with nodejs_compat the env is there at load too (process.env at top level)
    const atLoad = envs.get(key) ?? NO_ENV;
    const node = instance.nodejsCompat ? { nodejsCompat: true, env: atLoad.env, bindings: atLoad.bindings } : {};
    const options = new ivm.ExternalCopy({ ...RUNTIME_OPTIONS, ...node }).copyInto();
    const runtime = await compileRuntime(isolate);
    const factory = (await runtime.run(context, { reference: true, timeout: LOAD_TIMEOUT_MS })) as ivm.Reference<(...args: unknown[]) => unknown>;
    const exported = (await factory.apply(undefined, [log, url, crypto, source, timer, fetchCallback, options, job, handles], {
      result: { reference: true },
      timeout: LOAD_TIMEOUT_MS,
    })) as ivm.Reference<Record<string, unknown>>;
    factory.release();
    // Read synchronously: plain data properties of the runtime's own answer, before any tenant code exists, so
    // nothing can run in the isolate meanwhile; an async hop into the isolate per part cost more than the read.
    const part = <T>(name: string) => exported.getSync(name, { reference: true }) as unknown as ivm.Reference<T>;
    const bind = part<(ns: unknown) => unknown>("bind");
    Object.assign(instance, {
      context,
      fire: part("fire"),
      fetched: part("fetched"),
      reset: part("reset"),
      settle: part("settle"),
      jobDone: part("jobDone"),
      enter: part("enter"),
    });
    exported.release();
    const module = await isolate.compileModule(code, { filename: `file:///${key.replace(/[^a-z0-9-]/g, "_")}.js` });
    const builtins = new Map<string, Promise<ivm.Module>>();
    await module.instantiate(context, (specifier) => {
      const name = instance.nodejsCompat ? builtinName(specifier) : undefined;
      if (name === undefined) throw new Error(unresolvedImport(specifier, instance.nodejsCompat));
      let builtin = builtins.get(name);
      if (!builtin) {
        builtin = isolate.compileModule(builtinSource(name), { filename: `node:${name}` }).then(async (m) => {
          await m.instantiate(context, () => {
            throw new Error("a built-in imports nothing");
          });
          return m;
        });
        builtins.set(name, builtin);
      }
      return builtin;
    });
    // Tenant code runs from here: top-level code and the module's default export, under the function's CPU limit.
    // Timers it arms belong to no call: they are cleared when it finishes and never fire.
    meter = new Meter(instance, limits.cpuMs, LOAD_TIMEOUT_MS);
    instance.active++;
    try {
      await module.evaluate({ timeout: LOAD_TIMEOUT_MS });
      await bind.apply(undefined, [module.namespace.derefInto()], { timeout: LOAD_TIMEOUT_MS });
    } finally {
      instance.active--;
    }
    bind.release();
    if (meter.stop() > limits.cpuMs) meter.break("ERR_CPU_LIMIT");
    await resetAfterCall(instance);
    if (isolate.isDisposed) throw new Error("stopped");
    return instance;
  } catch (error) {
    const why = meter?.reason ?? instance.killedFor;
    const oom = /memory limit/i.test(String(error));
    dispose(instance);
    if (error instanceof CallError) throw error;
    const message =
      why === "ERR_CPU_LIMIT"
        ? `its top-level code used more than the function's ${limits.cpuMs} ms of CPU time`
        : why === "ERR_WALL_TIME_LIMIT"
          ? `loading it took longer than ${LOAD_TIMEOUT_MS} ms`
          : errorMessage(error);
    throw new CallError(oom ? "ERR_MEMORY_LIMIT" : "ERR_BAD_BUNDLE", `could not load the function: ${message}`);
  } finally {
    clearTimeout(deadline);
    meter?.stop();
  }
}

const LEVELS = new Set(["debug", "info", "warn", "error"]);
function writeLog(instance: Instance, level: string, message: string): void {
  if (instance.logLines > MAX_LOG_LINES || instance.logBytes > MAX_LOG_BYTES) return;
  const line = (typeof message === "string" ? message : "[not a string]").slice(0, MAX_LOG_LINE);
  instance.logLines++;
  instance.logBytes += line.length;
  const over = instance.logLines > MAX_LOG_LINES || instance.logBytes > MAX_LOG_BYTES;
  holdLog({
    key: instance.key,
    requestId: instance.requestId,
    level: over ? "warn" : ((LEVELS.has(level) ? level : "info") as "info"),
    message: over ? `log limit reached (${MAX_LOG_LINES} lines or ${MAX_LOG_BYTES} bytes per call): further lines of this call are dropped` : line,
  });
}

/** Starts an outbound fetch for the isolate; the answer goes back in only while a call still runs there. */
function startFetch(instance: Instance, id: number, raw: unknown): void {
  if (instance.active === 0) return;
  const parsed = OutboundFromIsolate.safeParse(raw);
  const answer =
    ++instance.fetchCount > MAX_FETCHES
      ? Promise.resolve({ error: `too many fetches: at most ${MAX_FETCHES} per call` })
      : parsed.success
        ? outboundFetch(instance.key, instance.invokeId, parsed.data as OutboundRequest)
        : Promise.resolve({ error: "invalid fetch request" });
  void answer.then((response) => {
    if (instance.active === 0 || instance.isolate.isDisposed) return;
    instance.fetched
      .apply(undefined, [id, new ivm.ExternalCopy(response).copyInto({ release: true })], { timeout: instance.callTimeoutMs })
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
  // The host's own work to fire a timer is the call's too (a thousand 1 ms intervals would otherwise keep this thread busy for free).
  const fire = charged(instance, () => {
    if (op === 1) instance.timers.delete(id);
    if (instance.isolate.isDisposed) return;
    // The running call's meter still applies: over its CPU or wall limit the isolate is disposed.
    instance.fire.apply(undefined, [id], { timeout: instance.callTimeoutMs }).catch(() => undefined);
  });
  instance.timers.set(id, op === 2 ? setInterval(fire, Math.max(1, delay)) : setTimeout(fire, delay));
}

function errorMessage(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, MAX_ERROR_LENGTH);
}

// ---------- one call at a time per isolate, a few isolates per function ----------
function wake(key: string): void {
  waiters.get(key)?.[0]?.();
}

/**
 * Resolves when an isolate of this function may have come free (or was
 * disposed, or one was created), or after `ms`. `cancel` takes the waiter off
 * the queue, so a wake-up is never spent on a call that stopped waiting.
 */
function waitForFree(key: string, ms: number): { promise: Promise<void>; cancel: () => void } {
  let list = waiters.get(key);
  if (!list) waiters.set(key, (list = []));
  const queue = list;
  let done!: () => void;
  const promise = new Promise<void>((resolve) => {
    done = () => {
      clearTimeout(timer);
      const i = queue.indexOf(done);
      if (i >= 0) queue.splice(i, 1);
      if (queue.length === 0 && waiters.get(key) === queue) waiters.delete(key);
      resolve();
    };
    const timer = setTimeout(done, ms);
    queue.push(done);
  });
  return { promise, cancel: done };
}

/**
 * Takes an idle isolate of the function (warm), or creates one (cold) if the
 * function has fewer than MAX_PER_FUNCTION and none is being created, or waits
 * for one to come free, until the call's wall deadline.
 */
async function acquire(key: string, limits: SandboxLimits, deadline: number, nested = false): Promise<{ instance: Instance; cold: boolean }> {
  // a nested call's callers each hold an isolate while they wait on it (a function calling itself holds its own):
  // it may go past the cap, by at most a chain's depth per call, or a chain would wait on itself until its deadline
  const cap = nested ? MAX_PER_FUNCTION * (MAX_CALL_DEPTH + 1) : MAX_PER_FUNCTION;
  let cold = false;
  for (;;) {
    let count = 0;
    let releasing = false;
    for (const instance of instances) {
      if (instance.key !== key || instance.retired) continue;
      if (instance.memoryMb !== limits.memoryMb || instance.nodejsCompat !== nodejsCompat.has(key)) {
        if (!instance.busy) dispose(instance);
        continue;
      }
      if (!instance.busy) {
        instance.busy = true;
        // LRU: most recently used last
        instances.delete(instance);
        instances.add(instance);
        return { instance, cold: cold && instance.fresh };
      }
      count++;
      releasing ||= instance.releasing;
    }
    const pending = creating.get(key);
    if (!pending && !releasing && count < cap) {
      const created = createInstance(key, limits);
      creating.set(key, created);
      let instance: Instance;
      try {
        instance = await created;
      } finally {
        creating.delete(key);
        wake(key);
      }
      instances.add(instance);
      evictOverWarm();
      return { instance, cold: true };
    }
    const remaining = deadline - performance.now();
    if (remaining <= 0) throw new CallError("ERR_WALL_TIME_LIMIT", `no isolate of this function came free within its ${limits.wallMs} ms wall-time limit`);
    // a call that waits for a cold start is a cold start; if that load fails, the call fails alike
    if (pending) cold = true;
    const waiter = waitForFree(key, remaining);
    try {
      await (pending ? Promise.race([pending, waiter.promise]) : waiter.promise);
    } finally {
      waiter.cancel();
    }
  }
}

/**
 * Gives an isolate back after a call: reset (bounded), then free for the next call of its function. `reset`: the
 * host's side of the reset; `inIsolate`: the runtime's too, a round trip into the isolate (not needed when dispatch
 * reset it on its way out).
 */
async function release(instance: Instance, reset = true, inIsolate = true): Promise<void> {
  instance.releasing = true;
  if (reset) await resetAfterCall(instance, inIsolate);
  instance.releasing = false;
  instance.busy = false;
  if (instance.retired) {
    dispose(instance);
    return;
  }
  if (!instance.isolate.isDisposed) {
    instance.idleCpu = instance.isolate.cpuTime;
    instance.idleHostUs = instance.hostCpuUs;
  }
  if (!instance.isolate.isDisposed) {
    // Memory is looked at after a new isolate's first call (where it jumps), else at most every few ms per
    // process and every 250 ms per isolate, plus the 250 ms poll: reading it after every warm call cost ~10%
    // of a small call's CPU in the sandbox (BENCHMARKS.md).
    const now = performance.now();
    const first = instance.heapMeasuredAt === 0;
    if (first || now - instance.heapMeasuredAt >= MEMORY_POLL_MS) {
      instance.heapMeasuredAt = now;
      void measureHeap(instance);
    }
    if (first || now - lastMemoryCheck >= MEMORY_RECHECK_MS) enforceProcessMemory();
  }
  wake(instance.key);
}

function evictOverWarm(): void {
  for (const instance of instances) {
    if (instances.size <= MAX_WARM) return;
    if (!instance.busy) dispose(instance);
  }
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What dispatch hands back, checked: tenant code shapes it, so it is validated like any input (the runtime bounded its size before the copy). */
const DispatchResult = z.union([
  z.object({
    error: z.object({ code: z.string().max(64), message: z.string() }),
    waiting: z.boolean().optional(),
  }),
  z.object({
    status: z.number().int().min(200).max(599),
    headers: z
      .array(z.tuple([z.string().regex(HEADER_NAME), z.string().refine((v) => !/[\0\r\n]/.test(v))]))
      .max(MAX_HEADERS)
      .refine((list) => list.reduce((n, [k, v]) => n + k.length + v.length + 4, 0) <= MAX_HEADER_BYTES),
    body: z.instanceof(Uint8Array),
    waiting: z.boolean(),
  }),
]);

async function invoke(
  id: number,
  key: string,
  requestId: string,
  limits: SandboxLimits,
  request: SandboxRequest | null,
  nested = false,
): Promise<void> {
  const started = performance.now();
  let cold = false;
  let cpuMs = 0;
  const timing = () => ({ cpuMs, wallMs: performance.now() - started, cold });
  const fail = (code: ErrorCode, message: string) => send({ type: "result", id, ok: false, code, message, ...timing() });
  let instance: Instance;
  try {
    ({ instance, cold } = await acquire(key, limits, started + limits.wallMs, nested));
  } catch (error) {
    const e = error instanceof CallError ? error : new CallError("ERR_INTERNAL", errorMessage(error));
    return fail(e.code, e.message);
  }
  if (!request) {
    void release(instance, false);
    return send({ type: "result", id, ok: true, status: 200, headers: [], body: new Uint8Array(0), ...timing() });
  }

  instance.fresh = false;
  // The isolate is this call's alone until release: its console lines carry this request id, its CPU is this call's.
  instance.requestId = requestId;
  instance.invokeId = id;
  instance.logLines = 0;
  instance.logBytes = 0;
  instance.fetchCount = 0;
  instance.hostBytes = 0;
  instance.callTimeoutMs = limits.wallMs;
  instance.active++;
  const { isolate } = instance;
  const meter = new Meter(instance, limits.cpuMs, limits.wallMs - (performance.now() - started));
  /** Dispatch answered and, with no ctx.waitUntil work left, reset the runtime's side itself. */
  let settled = false;
  const finish = () => {
    meter.stop();
    instance.active--;
    void release(instance, true, !settled);
  };
  const callId = ++callCounter;
  let waiting = false;
  try {
    const current = envs.get(key) ?? NO_ENV;
    const sendEnv = current.version !== instance.envVersion;
    instance.envVersion = current.version;
    // the request's URL parsed here, where it costs no thread switch: the isolate's Request and `new URL(request.url)` use it
    const urlPartsOfRequest = request.url.length <= 2048 ? urlParts(request.url) : null;
    const payload = {
      ...request,
      limit: limits.responseBytes,
      callId,
      ...(urlPartsOfRequest ? { urlParts: urlPartsOfRequest } : {}),
      ...(sendEnv ? { env: current.env, bindings: current.bindings } : {}),
    };
    const arg = new ivm.ExternalCopy(payload).copyInto({ release: true });
    // the answer is what the runtime's dispatch handed over (null when it did not: refused below)
    const raw = await instance.enter.apply(undefined, [arg], { result: { promise: true, copy: true }, timeout: limits.wallMs });
    cpuMs = meter.used();
    if (meter.reason) throw new Error(meter.reason);
    if (cpuMs > limits.cpuMs) {
      meter.break("ERR_CPU_LIMIT");
      throw new Error(meter.reason);
    }
    const parsed = DispatchResult.safeParse(raw);
    if (!parsed.success) return fail("ERR_BAD_RESPONSE", "the function's response could not be read (bad status, headers or body)");
    const result = parsed.data;
    waiting = result.waiting === true;
    settled = !waiting;
    if ("error" in result) {
      const code: ErrorCode =
        result.error.code === "ERR_BAD_RESPONSE" || result.error.code === "ERR_RESPONSE_TOO_LARGE" ? result.error.code : "ERR_FUNCTION_THREW";
      return fail(code, result.error.message.slice(0, MAX_ERROR_LENGTH));
    }
    const body = result.body as Uint8Array<ArrayBuffer>;
    if (body.byteLength > limits.responseBytes) {
      return fail("ERR_RESPONSE_TOO_LARGE", `the response body is over this function's limit of ${limits.responseBytes} bytes`);
    }
    // framing is the gateway's business: hop-by-hop headers and a length the body may not have are dropped
    const headers = result.headers.filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase()));
    send({ type: "result", id, ok: true, status: result.status, headers, body, ...timing() });
  } catch (error) {
    cpuMs = meter.used();
    const message = errorMessage(error);
    let code: ErrorCode = meter.reason ?? instance.killedFor ?? "ERR_FUNCTION_THREW";
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

/**
 * The process's own cap: over it, idle isolates go first (least recently
 * used), then the largest busy one. Checked every MEMORY_POLL_MS, after a new
 * isolate's first call, and after other calls at most every
 * MEMORY_RECHECK_MS, so a call that grew the process sheds the idle ones at once.
 */
let lastMemoryCheck = 0;
/** After calls, the process's memory is read at most this often (the poll reads it every MEMORY_POLL_MS). */
const MEMORY_RECHECK_MS = 20;

function enforceProcessMemory(): void {
  lastMemoryCheck = performance.now();
  const limit = PROCESS_MEMORY_MB * 1024 * 1024;
  if (process.memoryUsage.rss() <= limit) return;
  for (const instance of [...instances]) {
    if (instance.busy) continue;
    dispose(instance);
    if (process.memoryUsage.rss() <= limit) return;
  }
  const busy = [...instances].sort((a, b) => b.heapBytes - a.heapBytes || b.memoryMb - a.memoryMb)[0];
  if (busy) dispose(busy, "ERR_MEMORY_LIMIT");
}

/**
 * V8 can run tenant code with no call active: FinalizationRegistry callbacks
 * after a garbage collection, for one. No host->isolate call is open to bound
 * it, so idle isolates are watched: one that used more CPU since the last
 * look than GC housekeeping would is disposed (its next call starts cold).
 */
function patrolIdle(): void {
  for (const instance of [...instances]) {
    if (instance.busy || instance.isolate.isDisposed) continue;
    // code left running after its call (a microtask chain past dispatch's end, a FinalizationRegistry callback):
    // the isolate's own CPU and what its host callbacks cost, since the call's release or the last look
    const now = instance.isolate.cpuTime;
    const host = instance.hostCpuUs;
    const spent = Number(now - instance.idleCpu) / 1e6 + (host - instance.idleHostUs) / 1000;
    instance.idleCpu = now;
    instance.idleHostUs = host;
    if (spent > IDLE_CPU_MS) {
      holdLog({ key: instance.key, requestId: "", level: "warn", message: `stopped: this function's isolate ran ${Math.round(spent)} ms of code while no call was active (e.g. a FinalizationRegistry callback)` });
      dispose(instance, "ERR_CPU_LIMIT");
    }
  }
}
setInterval(() => {
  patrolIdle();
  enforceProcessMemory();
}, MEMORY_POLL_MS).unref();

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
    // a call under way finishes (its function moved away, or the device pauses: calls in flight end as they would);
    // its isolate goes when it is given back, and no new call takes it
    for (const instance of [...instances]) {
      if (instance.key !== message.key) continue;
      if (instance.busy) instance.retired = true;
      else dispose(instance);
    }
    codes.delete(message.key);
    envs.delete(message.key);
    nodejsCompat.delete(message.key);
    return;
  }
  if (message.type === "fetched") {
    fetches.get(message.id)?.(message.response);
    return;
  }
  if (message.code !== undefined) codes.set(message.key, message.code);
  // sent only when it changed (the supervisor keeps track): otherwise the env from before holds
  if (message.settings !== undefined) {
    envs.set(message.key, { env: message.settings.env ?? {}, bindings: message.settings.bindings ?? {}, version: ++envVersions });
    if (message.settings.nodejsCompat) nodejsCompat.add(message.key);
    else nodejsCompat.delete(message.key);
  }
  const request = message.type === "invoke" ? message.request : null;
  const requestId = message.type === "invoke" ? message.requestId : "";
  invoke(message.id, message.key, requestId, message.limits, request, message.type === "invoke" && message.nested === true).catch((error: unknown) =>
    send({ type: "result", id: message.id, ok: false, code: "ERR_INTERNAL", message: errorMessage(error), cpuMs: 0, wallMs: 0, cold: false }),
  );
});
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });
