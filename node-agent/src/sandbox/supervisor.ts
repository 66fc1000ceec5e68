/**
 * The sandbox supervisor: a pool of sandbox processes, each running isolates
 * for a share of the functions (a function always goes to the same process,
 * so its isolate stays warm). A process that dies is restarted; only the
 * calls that were on it fail, with ERR_SANDBOX_CRASHED.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ERROR_CODES, HearthError } from "@hearth/protocol";
import type { Logger } from "pino";
import {
  FromSandbox,
  type OutboundRequest,
  type OutboundResponse,
  type SandboxLimits,
  type SandboxLogLine,
  type SandboxRequest,
  type SandboxResult,
  type SandboxSettings,
  type ToSandbox,
} from "./messages.ts";
import { outboundFetch, type OutboundPolicy } from "./outbound.ts";

export type { OutboundPolicy } from "./outbound.ts";

export interface SandboxPoolOptions {
  size: number;
  log: Logger;
  /** Called for each console line a function writes. */
  onLog?: (entry: { key: string; requestId: string; level: string; message: string }) => void;
  /**
   * Resident memory one sandbox process may use (MiB, default 2048): over it,
   * the process disposes isolates (idle ones first). Its own V8 heap is capped
   * separately with --max-old-space-size (hostHeapMb, default 256).
   */
  processMemoryMb?: number;
  hostHeapMb?: number;
}

/** What a call may carry besides its limits; all optional, so existing callers need not change. */
export interface CallSettings {
  /** The function's `env` argument: vars and secrets, strings only. */
  env?: Record<string, string>;
  /** The function's outbound fetch policy; without one, `fetch` is refused. */
  outbound?: OutboundPolicy;
  /** Workers' `nodejs_compat`: `node:*` built-ins, `Buffer`, `process` (docs/runtime.md). */
  nodejsCompat?: boolean;
  /** Service bindings: env name → function of the same app. */
  bindings?: Record<string, string>;
}

/**
 * Answers a function's `env.call` (or service binding) made during one call:
 * given to `invoke` by whoever knows that call's app and budget (the agent),
 * never chosen by the sandbox.
 */
export type FunctionCaller = (request: OutboundRequest & { call: string }) => Promise<OutboundResponse>;

/** What the pool asks of a sandbox process; the code and the id are added per process. */
type CallMessage =
  | { type: "invoke"; key: string; requestId: string; limits: SandboxLimits; settings?: SandboxSettings; request: SandboxRequest; nested?: true }
  | { type: "load"; key: string; limits: SandboxLimits; settings?: SandboxSettings };

interface Pending {
  key: string;
  /** The call's own `env.call` answerer (invokes only). */
  onCall?: FunctionCaller;
  resolve: (result: SandboxResult) => void;
  reject: (error: Error) => void;
}

/** The env of a function without one: one object, so "the same env as last time" is a reference check. */
const NO_ENV: Readonly<Record<string, string>> = Object.freeze({});
const WORKER = fileURLToPath(new URL("./worker.ts", import.meta.url));
/** Hearth's own code and its dependencies: all a sandbox process may read. */
const CODE_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/**
 * Least privilege where Node offers it (its permission model): a sandbox
 * process may read Hearth's code and load isolated-vm, and nothing else — no
 * file writes, no child processes, no worker threads, no inspector. (Node 24
 * has no network permission; the sandbox holds no socket and tenant code never
 * reaches the host's APIs.)
 */
export const SANDBOX_PERMISSIONS = [
  "--permission",
  "--allow-addons",
  `--allow-fs-read=${CODE_ROOT}`,
  // node-gyp-build (which loads isolated-vm's binary) looks for this file to pick a build
  "--allow-fs-read=/etc/alpine-release",
  // Node warns that an addon could step around the model: isolated-vm is the one addon, and it is ours to trust
  "--disable-warning=SecurityWarning",
];
const RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 5_000;
/** A process that lived this long before dying resets the restart back-off. */
const HEALTHY_AFTER_MS = 10_000;
/** How long a function that crashed its sandbox process is refused. */
const QUARANTINE_MS = 60_000;
/** A function in flight at this many crashes within SUSPECT_WINDOW_MS is quarantined (at once if it was the only one in flight). */
const SUSPECT_CRASHES = 2;
const SUSPECT_WINDOW_MS = 10 * 60_000;
const STDERR_TAIL = 4096;

class SandboxProcess {
  child?: ChildProcess;
  readonly pending = new Map<number, Pending>();
  /** Function keys whose code this process has been sent since it (re)started. */
  readonly known = new Set<string>();
  /** The settings each key last sent to this process (its env compared by reference: the agent keeps one per placement). */
  private readonly sentSettings = new Map<string, SandboxSettings>();
  ready!: Promise<void>;
  restarts = 0;
  private startedAt = 0;
  private quickCrashes = 0;
  private stderrTail = "";
  private readonly index: number;
  private readonly pool: SandboxPool;

  constructor(index: number, pool: SandboxPool) {
    this.index = index;
    this.pool = pool;
  }

  start(): void {
    this.known.clear();
    this.sentSettings.clear();
    const child = fork(WORKER, [], {
      execArgv: [...SANDBOX_PERMISSIONS, "--no-node-snapshot", "--disable-warning=ExperimentalWarning", `--max-old-space-size=${this.pool.hostHeapMb}`],
      serialization: "advanced",
      // stderr is read, not inherited: V8's fatal-error dumps become one log line, not noise on the agent's stderr
      stdio: ["ignore", "inherit", "pipe", "ipc"],
      // the sandbox gets no inherited secrets: only what it needs to run
      env: {
        PATH: process.env["PATH"] ?? "",
        NODE_ENV: process.env["NODE_ENV"] ?? "production",
        // Every isolate runs in UTC, as on Workers: V8 takes its time zone from the process's TZ at start, and a
        // device's own zone would both change what functions compute and tell them where its owner lives.
        TZ: "UTC",
        HEARTH_SANDBOX_MEMORY_MB: String(this.pool.processMemoryMb),
        ...(process.env["HEARTH_SANDBOX_MAX_WARM"] ? { HEARTH_SANDBOX_MAX_WARM: process.env["HEARTH_SANDBOX_MAX_WARM"] } : {}),
        ...(process.env["HEARTH_SANDBOX_MAX_PER_FUNCTION"] ? { HEARTH_SANDBOX_MAX_PER_FUNCTION: process.env["HEARTH_SANDBOX_MAX_PER_FUNCTION"] } : {}),
      },
    });
    this.child = child;
    this.startedAt = Date.now();
    this.stderrTail = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL);
    });
    this.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: unknown) => {
        if ((m as { type?: unknown })?.type === "ready") {
          child.off("message", onMessage);
          resolve();
        }
      };
      child.on("message", onMessage);
      child.once("exit", () => reject(new HearthError("ERR_SANDBOX_CRASHED", "sandbox process exited while starting")));
    });
    this.ready.catch(() => undefined);
    child.on("message", (raw: unknown) => this.onMessage(raw));
    child.once("exit", (code, signal) => this.onExit(child, code, signal));
  }

  private onMessage(raw: unknown): void {
    const parsed = FromSandbox.safeParse(raw);
    if (!parsed.success) {
      this.pool.log.warn({ sandbox: this.index }, "dropped an invalid message from a sandbox process");
      return;
    }
    const message = parsed.data;
    // a sandbox process speaks only for the functions sent to it: a line for any other key is not passed on
    // a result brings the console lines held since the last message (before its call is answered: lines come first)
    if (message.type === "result" && message.logs) this.passLogs(message.logs);
    if (message.type === "logs") this.passLogs(message.lines);
    else if (message.type === "fetch") void this.fetchFor(message.id, message.key, message.invoke, message.request);
    else if (message.type === "result") {
      const p = this.pending.get(message.id);
      this.pending.delete(message.id);
      p?.resolve(message);
    }
  }

  /** Lines of the functions sent to this process go on to the function's developer; any other key's are not passed on. */
  private passLogs(lines: readonly SandboxLogLine[]): void {
    for (const line of lines) if (this.known.has(line.key)) this.pool.onLog?.(line);
  }

  /** Outbound fetch for a function on this process, under the policy the pool was given for it (never one the sandbox claims). */
  private async fetchFor(id: number, key: string, invoke: number | undefined, request: OutboundRequest): Promise<void> {
    const child = this.child;
    let response: OutboundResponse;
    if (request.call !== undefined) {
      // only a call under way on this process, of the function that asks, may call: the app is the agent's to know
      const pending = invoke === undefined ? undefined : this.pending.get(invoke);
      const onCall = pending !== undefined && pending.key === key && this.known.has(key) ? pending.onCall : undefined;
      response = onCall
        ? await onCall(request as OutboundRequest & { call: string }).catch((error: unknown) => {
            this.pool.log.warn({ err: error, key }, "a function's env.call failed");
            return { error: "env.call failed on this device; retry" };
          })
        : { error: "env.call is available only while the function answers a call" };
    } else {
      const policy = this.known.has(key) ? this.pool.outbound.get(key) : undefined;
      response = await outboundFetch(request, policy);
    }
    if (child && child === this.child && child.connected) child.send({ type: "fetched", id, response } satisfies ToSandbox);
  }

  private onExit(child: ChildProcess, code: number | null, signal: string | null): void {
    if (this.child !== child) return;
    this.child = undefined;
    const error = new HearthError("ERR_SANDBOX_CRASHED", "the sandbox process running this function stopped; the call was not completed");
    const inFlight = new Set([...this.pending.values()].map((p) => p.key));
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    if (this.pool.closed) return;
    this.restarts++;
    const oom = /heap out of memory|CALL_AND_RETRY_LAST|is_heap_oom|Ineffective mark-compacts|invalid table size|invalid array length/i.test(this.stderrTail);
    this.pool.log.warn(
      { sandbox: this.index, code, signal, restarts: this.restarts, oom, inFlight: [...inFlight], stderr: this.stderrTail.slice(-1000) },
      "sandbox process exited; restarting",
    );
    // Whoever was running when it died is suspect: a function that keeps crashing its process is refused for a while.
    // (An outside SIGKILL or SIGTERM says nothing about the functions; V8's aborts and faults do.)
    const faulted = oom || (signal !== null && ["SIGABRT", "SIGTRAP", "SIGSEGV", "SIGILL", "SIGBUS", "SIGFPE"].includes(signal));
    if (faulted) for (const key of inFlight) this.pool.suspect(key, inFlight.size === 1);
    this.quickCrashes = Date.now() - this.startedAt > HEALTHY_AFTER_MS ? 0 : this.quickCrashes + 1;
    const delay = Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** Math.max(0, this.quickCrashes - 1));
    // Calls that arrive meanwhile wait for the new process instead of failing.
    this.ready = new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        if (this.pool.closed) return reject(new HearthError("ERR_SANDBOX_CRASHED", "the sandbox pool is closed"));
        this.start();
        this.ready.then(resolve, reject);
      }, delay).unref();
    });
    this.ready.catch(() => undefined);
  }

  async call(message: CallMessage, code: string, onCall?: FunctionCaller): Promise<SandboxResult> {
    await this.ready;
    const child = this.child;
    if (!child?.connected) throw new HearthError("ERR_SANDBOX_CRASHED", "the sandbox process is restarting; try again");
    const id = this.pool.nextId();
    // The code goes once per key and process, and the env only when it is another than this process last got
    // (the agent keeps one env object per placement): a warm call carries neither.
    const known = this.known.has(message.key);
    let out: CallMessage & { code?: string } = known ? message : { ...message, code };
    const sent = this.sentSettings.get(message.key);
    if (
      known &&
      message.settings &&
      sent !== undefined &&
      sent.env === message.settings.env &&
      sent.nodejsCompat === message.settings.nodejsCompat &&
      sent.bindings === message.settings.bindings
    ) {
      const { settings: _sent, ...rest } = out;
      out = rest;
    }
    if (message.settings) this.sentSettings.set(message.key, message.settings);
    this.known.add(message.key);
    return new Promise<SandboxResult>((resolve, reject) => {
      this.pending.set(id, { key: message.key, resolve, reject, ...(onCall ? { onCall } : {}) });
      child.send({ ...out, id } as ToSandbox, (error) => {
        if (error && this.pending.delete(id)) reject(new HearthError("ERR_SANDBOX_CRASHED", `could not reach the sandbox: ${error.message}`));
      });
    });
  }

  drop(key: string): void {
    this.known.delete(key);
    this.sentSettings.delete(key);
    if (this.child?.connected) this.child.send({ type: "drop", key } satisfies ToSandbox);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 2_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Which of `n` sandbox processes runs a function: the same for all its calls (FNV-1a of its key; a digest per call cost more than the choice is worth). */
export function sandboxIndexOf(key: string, n: number): number {
  if (n <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % n;
}

export class SandboxPool implements AsyncDisposable {
  readonly log: Logger;
  readonly onLog: SandboxPoolOptions["onLog"];
  readonly processMemoryMb: number;
  readonly hostHeapMb: number;
  /** Outbound policy per function key, as the caller last gave it. */
  readonly outbound = new Map<string, OutboundPolicy>();
  private readonly suspects = new Map<string, number[]>();
  private readonly quarantined = new Map<string, number>();
  closed = false;
  private readonly processes: SandboxProcess[];
  private counter = 0;

  constructor(options: SandboxPoolOptions) {
    this.log = options.log;
    this.onLog = options.onLog;
    this.processMemoryMb = options.processMemoryMb ?? 2048;
    this.hostHeapMb = options.hostHeapMb ?? 256;
    this.processes = Array.from({ length: Math.max(1, options.size) }, (_, i) => new SandboxProcess(i, this));
  }

  async start(): Promise<void> {
    for (const p of this.processes) p.start();
    await Promise.all(this.processes.map((p) => p.ready));
  }

  nextId(): number {
    return ++this.counter;
  }

  /** Sandbox processes restarted after dying, since the pool started (metrics). */
  get restarts(): number {
    return this.processes.reduce((n, p) => n + p.restarts, 0);
  }

  /** Sandbox processes in the pool. */
  get size(): number {
    return this.processes.length;
  }

  private processFor(key: string): SandboxProcess {
    return this.processes[sandboxIndexOf(key, this.processes.length)]!;
  }

  /** Compiles a function ahead of its first call (warm-up at placement). */
  async load(key: string, code: string, limits: SandboxLimits, settings?: CallSettings): Promise<SandboxResult> {
    return this.refusal(key) ?? this.processFor(key).call({ type: "load", key, limits, ...this.settingsFor(key, settings) }, code);
  }

  /**
   * Runs one call; `onCall` answers the function's `env.call`s during it
   * (without one, env.call fails). `nested`: the call is a function's call
   * of another (or the same) function, whose caller holds an isolate while
   * it waits, so it may take an isolate past the per-function cap.
   */
  async invoke(
    key: string,
    code: string,
    requestId: string,
    limits: SandboxLimits,
    request: SandboxRequest,
    settings?: CallSettings,
    call: { onCall?: FunctionCaller; nested?: boolean } = {},
  ): Promise<SandboxResult> {
    const message: CallMessage = { type: "invoke", key, requestId, limits, ...this.settingsFor(key, settings), request, ...(call.nested ? { nested: true } : {}) };
    const result = await (this.refusal(key) ?? this.processFor(key).call(message, code, call.onCall));
    // The caller gets only a code and the request id; why the function failed (its stack, the limit it broke) goes to its logs.
    if (!result.ok && ERROR_CODES[result.code].kind === "user") this.onLog?.({ key, requestId, level: "error", message: `${result.code}: ${result.message}` });
    return result;
  }

  /**
   * Records that a function was running when its sandbox process died. Some
   * allocation patterns make V8 abort the whole process at an isolate's heap
   * limit instead of throwing; quarantine keeps such a function from taking
   * the process (and every other function on it) down again and again.
   */
  suspect(key: string, alone: boolean): void {
    const now = Date.now();
    const times = (this.suspects.get(key) ?? []).filter((t) => now - t < SUSPECT_WINDOW_MS);
    times.push(now);
    this.suspects.set(key, times);
    if (alone || times.length >= SUSPECT_CRASHES) {
      this.quarantined.set(key, now + QUARANTINE_MS);
      this.suspects.delete(key);
      this.log.warn({ key, forMs: QUARANTINE_MS }, "function quarantined: it crashed its sandbox process");
    }
  }

  private refusal(key: string): SandboxResult | undefined {
    const until = this.quarantined.get(key);
    if (until === undefined) return undefined;
    if (Date.now() >= until) {
      this.quarantined.delete(key);
      return undefined;
    }
    const seconds = Math.ceil((until - Date.now()) / 1000);
    return {
      type: "result",
      id: 0,
      ok: false,
      code: "ERR_FUNCTION_QUARANTINED",
      message: `this function crashed its sandbox process (most often by exhausting its memory in one allocation) and is refused for ${seconds} s more`,
      cpuMs: 0,
      wallMs: 0,
      cold: false,
    };
  }

  private settingsFor(key: string, settings: CallSettings | undefined): { settings: SandboxSettings } {
    if (settings?.outbound) this.outbound.set(key, settings.outbound);
    else this.outbound.delete(key);
    return { settings: { env: settings?.env ?? NO_ENV, ...(settings?.nodejsCompat ? { nodejsCompat: true } : {}), ...(settings?.bindings ? { bindings: settings.bindings } : {}) } };
  }

  drop(key: string): void {
    this.outbound.delete(key);
    this.processFor(key).drop(key);
  }

  /** Process ids of the sandbox processes (for tests and status). */
  pids(): number[] {
    return this.processes.flatMap((p) => (p.child?.pid ? [p.child.pid] : []));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.closed = true;
    await Promise.all(this.processes.map((p) => p.stop()));
  }
}
