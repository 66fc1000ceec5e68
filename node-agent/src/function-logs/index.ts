/**
 * Function logs leave the device for their developer: the console lines a
 * sandbox reports go, a batch per message (a JSON array of lines), on the
 * device's own log subject (`<prefix>.devlogs.<deviceId>`); the platform checks that the function is
 * placed here and keeps it in its logs stream (docs/api.md, "Function logs"). The
 * device owner's own log gets only counts at debug level, never a line's
 * content: owners must not see more of a function than running it.
 *
 * Publishing is core NATS (fire and forget, buffered by nats.js while it
 * reconnects): a console call never waits on the fabric.
 */
import { LogLine, MAX_LOG_BATCH_LINES, MAX_LOG_MESSAGE_CHARS, type LogLevel, type Subjects } from "@hearth/protocol";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log/index.ts";

/** What a sandbox reports for one console line (the key is `app/fn@version`). */
export interface SandboxLogEntry {
  key: string;
  requestId: string;
  level: string;
  message: string;
}

export interface FunctionLogOptions {
  deviceId: string;
  subjects: Subjects;
  /** The device's fabric connection; a getter because the sandbox pool starts before the agent connects. */
  connection: () => NatsConnection | undefined;
  /** The owner's log: counts only. */
  log: Logger;
  /** How often at most the owner's log gets a count line (default 60 s). */
  reportEveryMs?: number;
  /** The trace id of the call a line belongs to, while it runs (CallTraces.of). */
  traceOf?: (key: string, requestId: string) => string | undefined;
}

/**
 * The trace ids of the calls running now, by function key and request id,
 * so each console line of a call carries its trace id. Two calls of one
 * function that run at once under the same (caller-chosen) request id share
 * the later one's; a line written after its call ended carries none.
 */
export class CallTraces {
  private readonly running = new Map<string, { traceId: string; calls: number }>();

  /** Marks a call running; returns what marks it done. */
  open(key: string, requestId: string, traceId: string): () => void {
    const id = `${key} ${requestId}`;
    const entry = this.running.get(id);
    if (entry) {
      entry.traceId = traceId;
      entry.calls++;
    } else this.running.set(id, { traceId, calls: 1 });
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const e = this.running.get(id);
      if (e && --e.calls === 0) this.running.delete(id);
    };
  }

  of(key: string, requestId: string): string | undefined {
    return requestId === "" ? undefined : this.running.get(`${key} ${requestId}`)?.traceId;
  }
}

const KEY = /^([^/@]+)\/([^/@]+)@([0-9a-f]{64})$/;

/** Turns a sandbox's log entry into the wire line, or undefined when it cannot belong to a function. */
export function logLineOf(entry: SandboxLogEntry, deviceId: string, at = Date.now(), traceId?: string): LogLine | undefined {
  const key = KEY.exec(entry.key);
  if (!key) return undefined;
  const parsed = LogLine.safeParse({
    app: key[1],
    fn: key[2],
    version: key[3],
    requestId: entry.requestId === "" ? null : entry.requestId,
    deviceId,
    level: (LEVELS.has(entry.level) ? entry.level : "info") as LogLevel,
    message: entry.message.slice(0, MAX_LOG_MESSAGE_CHARS),
    at,
    ...(traceId ? { traceId } : {}),
  });
  return parsed.success ? parsed.data : undefined;
}

const LEVELS = new Set<string>(["debug", "info", "warn", "error"]);

/** How long a line waits on the device for others to go in the same message, at most (ms). */
export const LOG_FLUSH_MS = 20;
/** A device message's lines, at most (the platform reads no more of one message). */
export const LOG_BATCH_LINES = MAX_LOG_BATCH_LINES;
/** A device message's bytes, about at most: a batch is sent before a line would take it past this. */
const LOG_BATCH_BYTES = 256 * 1024;

/** The sandbox pool's `onLog`, and what sends the lines still held (on shutdown). */
export interface FunctionLogForwarder {
  (entry: SandboxLogEntry): void;
  /** Publishes the lines held now (call before the connection drains). */
  flush(): void;
}

/**
 * The sandbox pool's `onLog`: sends each line to the platform on the
 * device's own log subject, in batches (one message of up to
 * LOG_BATCH_LINES lines, each sent within LOG_FLUSH_MS of its console
 * call: a message per line cost the device, nats-server and the platform
 * more than the call itself), and keeps counts for the owner's log.
 *
 * @example
 * new SandboxPool({ size, log, onLog: forwardFunctionLogs({ deviceId, subjects, connection: () => nc, log }) });
 */
export function forwardFunctionLogs(options: FunctionLogOptions): FunctionLogForwarder {
  const reportEveryMs = options.reportEveryMs ?? 60_000;
  const counts = { sent: 0, dropped: 0 };
  let reported = { sent: 0, dropped: 0 };
  let lastReport = 0;
  let held: string[] = [];
  let heldBytes = 0;
  let timer: NodeJS.Timeout | undefined;
  const connection = (): NatsConnection | undefined => {
    try {
      const nc = options.connection();
      return nc && !nc.isClosed() ? nc : undefined;
    } catch {
      // not connected yet (a line before the agent joined the fabric)
      return undefined;
    }
  };
  const report = () => {
    const now = Date.now();
    if (now - lastReport < reportEveryMs) return;
    lastReport = now;
    options.log.debug(
      { fnLogLines: counts.sent - reported.sent, fnLogLinesDropped: counts.dropped - reported.dropped },
      "function log lines sent to their developers",
    );
    reported = { ...counts };
  };
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (held.length === 0) return;
    const lines = held;
    held = [];
    heldBytes = 0;
    const nc = connection();
    try {
      if (!nc) throw new Error("not connected");
      nc.publish(options.subjects.deviceLogs(options.deviceId), `[${lines.join(",")}]`);
      counts.sent += lines.length;
    } catch {
      counts.dropped += lines.length;
    }
    report();
  };
  const forward = ((entry: SandboxLogEntry) => {
    const line = logLineOf(entry, options.deviceId, Date.now(), options.traceOf?.(entry.key, entry.requestId));
    if (!line || !connection()) {
      counts.dropped++;
      return report();
    }
    const json = JSON.stringify(line);
    // bytes as the platform counts them (UTF-8), not characters: a batch of CJK text is three times its length
    const bytes = Buffer.byteLength(json) + 1;
    if (held.length > 0 && (held.length >= LOG_BATCH_LINES || heldBytes + bytes > LOG_BATCH_BYTES)) flush();
    held.push(json);
    heldBytes += bytes;
    if (!timer) {
      timer = setTimeout(flush, LOG_FLUSH_MS);
      timer.unref();
    }
  }) as FunctionLogForwarder;
  forward.flush = flush;
  return forward;
}
