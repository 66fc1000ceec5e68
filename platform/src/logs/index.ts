/**
 * Function logs for developers: the logs stream (JetStream, limits
 * retention) that keeps every console line devices publish on
 * `<prefix>.logs.<app>.<fn>`, reads of one function's recent lines, and
 * follow mode (Server-Sent Events: the recent lines, then new ones live).
 *
 * A read filters the stream on one function's subject, so it can only ever
 * return that function's lines; each line is validated again on the way out
 * and one whose body names another function is dropped. See docs/api.md,
 * "Function logs".
 */
import {
  AppName,
  DEFAULT_LOG_LIMIT,
  FunctionName,
  HearthError,
  LogLine,
  LogsQuery,
  logSubject,
  logSubjectFilter,
  type LogEntry,
  type Subjects,
} from "@hearth/protocol";
import {
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { parseInput, type HearthEnv } from "../http/index.ts";
import { developerOf, type AppOwners } from "../identity/index.ts";
import type { Logger } from "../log/index.ts";
import type { Store } from "../state/index.ts";

const NANOS_PER_MS = 1_000_000;

/** How long lines are kept. */
export const LOGS_MAX_AGE_MS = 7 * 86_400_000;
/** All functions' lines together, at most; the oldest go first. */
export const LOGS_MAX_BYTES = 1024 * 1024 * 1024;
/** One function's lines, at most: a chatty function pushes out its own old lines, not other functions'. */
export const LOGS_MAX_PER_FUNCTION = 20_000;
/** One stored line, at most (a 16 KiB message plus JSON escaping and the other fields). */
export const LOGS_MAX_MESSAGE_BYTES = 128 * 1024;
/** Followers (open SSE streams) one platform process serves at once. */
export const MAX_FOLLOWERS = 256;
/** A read gives up scanning after this long and answers with what it has. */
const READ_TIMEOUT_MS = 10_000;
/** A comment line keeps idle follow streams (and the proxies on their way) open. */
const KEEPALIVE_MS = 15_000;
/** A follow checks its token again this often, so a revoked token ends it within this time. */
const RECHECK_MS = 5_000;

/** Names of the logs stream and its subjects for one subject prefix. */
export function logNames(subjects: Subjects) {
  return {
    stream: `${subjects.prefix.toUpperCase().replace(/[^A-Z0-9_-]/g, "_")}_LOGS`,
    filter: logSubjectFilter(subjects),
    subject: (app: string, fn: string) => logSubject(subjects, app, fn),
  };
}

/** Makes sure the logs stream exists with the retention above. */
export async function ensureLogStream(jsm: JetStreamManager, subjects: Subjects): Promise<StreamConfig> {
  const names = logNames(subjects);
  const limits = {
    max_age: LOGS_MAX_AGE_MS * NANOS_PER_MS,
    max_bytes: LOGS_MAX_BYTES,
    max_msgs_per_subject: LOGS_MAX_PER_FUNCTION,
    max_msg_size: LOGS_MAX_MESSAGE_BYTES,
  };
  try {
    const current = (await jsm.streams.info(names.stream)).config;
    const same = (Object.keys(limits) as (keyof typeof limits)[]).every((k) => current[k] === limits[k]);
    return same ? current : (await jsm.streams.update(names.stream, { ...current, ...limits })).config;
  } catch (error) {
    if ((error as { name?: string }).name !== "StreamNotFoundError" && !/stream not found/i.test((error as Error).message)) throw error;
    return (
      await jsm.streams.add({
        name: names.stream,
        subjects: [names.filter],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        ...limits,
      })
    ).config;
  }
}

export interface LogReadOptions {
  /** Lines stored at or after this time (ms since epoch); all retained lines when omitted. */
  since?: number;
  /** The newest this many lines (of those matching); default DEFAULT_LOG_LIMIT. */
  limit?: number;
  /** Only lines of this call. */
  requestId?: string;
  /** Only lines after this stream sequence (a line's `seq`); wins over `since`. */
  after?: number;
}

export interface FollowOptions extends LogReadOptions {
  /** Called with the recent lines (oldest first) once, then with each new line. */
  onLines: (lines: LogEntry[]) => Promise<void>;
  signal: AbortSignal;
}

/** Reads and follows function logs in the logs stream. */
export class FunctionLogs {
  private readonly js: JetStreamClient;
  private readonly jsm: JetStreamManager;
  private readonly subjects: Subjects;
  private readonly log: Logger;
  /** Open follow streams: how to end each, and when it has ended. */
  private readonly followers = new Map<AbortController, Promise<void>>();
  private closed = false;

  private constructor(js: JetStreamClient, jsm: JetStreamManager, subjects: Subjects, log: Logger) {
    this.js = js;
    this.jsm = jsm;
    this.subjects = subjects;
    this.log = log;
  }

  /** Creates the logs stream if needed; throws when JetStream is not available. */
  static async start(options: { nc: NatsConnection; subjects: Subjects; log: Logger }): Promise<FunctionLogs> {
    const jsm = await jetstreamManager(options.nc, { timeout: 5_000 });
    await ensureLogStream(jsm, options.subjects);
    return new FunctionLogs(jetstream(options.nc, { timeout: 5_000 }), jsm, options.subjects, options.log);
  }

  /** The newest lines of one function (oldest first). */
  async read(app: string, fn: string, options: LogReadOptions = {}): Promise<LogEntry[]> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), READ_TIMEOUT_MS);
    let lines: LogEntry[] = [];
    try {
      await this.scan(app, fn, options, controller.signal, false, async (recent) => {
        lines = recent;
      });
    } finally {
      clearTimeout(timer);
    }
    return lines;
  }

  /** Sends the recent lines of one function, then every new line, until `signal` aborts or the platform closes. */
  async follow(app: string, fn: string, options: FollowOptions): Promise<void> {
    if (this.closed) throw new HearthError("ERR_LOGS_UNAVAILABLE", "the platform is stopping; follow again on another platform process");
    if (this.followers.size >= MAX_FOLLOWERS) {
      throw new HearthError("ERR_LOGS_UNAVAILABLE", `this platform process already serves ${MAX_FOLLOWERS} log followers; retry later`);
    }
    const controller = new AbortController();
    const abort = () => controller.abort();
    options.signal.addEventListener("abort", abort, { once: true });
    const scanned = this.scan(app, fn, options, controller.signal, true, options.onLines).finally(() => {
      this.followers.delete(controller);
      options.signal.removeEventListener("abort", abort);
    });
    this.followers.set(controller, scanned.catch(() => undefined));
    await scanned;
  }

  /**
   * One ordered consumer on the function's subject from `since`: lines up to
   * the function's last line at the start are the backlog (only the newest
   * `limit` are kept); after it, in follow mode, each new line goes out alone.
   */
  private async scan(
    app: string,
    fn: string,
    options: LogReadOptions,
    signal: AbortSignal,
    follow: boolean,
    emit: (lines: LogEntry[]) => Promise<void>,
  ): Promise<void> {
    const names = logNames(this.subjects);
    const subject = names.subject(app, fn);
    const limit = options.limit ?? DEFAULT_LOG_LIMIT;
    const { since, after } = options;
    const last = await this.jsm.streams.getMessage(names.stream, { last_by_subj: subject });
    // the backlog ends at the function's last line now; none (or none recent or new enough) means no backlog
    const backlogEnd =
      last && (after !== undefined ? last.seq > after : since === undefined || last.time.getTime() >= since) ? last.seq : 0;
    if (backlogEnd === 0) {
      await emit([]);
      if (!follow) return;
    }
    const consumer = await this.js.consumers.get(names.stream, {
      filter_subjects: [subject],
      // from the start when no `since`: a function with no line yet gets every line from now on, none missed
      ...(after !== undefined
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 }
        : since === undefined
          ? { deliver_policy: DeliverPolicy.All }
          : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(since).toISOString() }),
    });
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 500 });
    const stop = () => messages.stop();
    signal.addEventListener("abort", stop, { once: true });
    // aborted while the consumer was being created
    if (signal.aborted) stop();
    let keepalive: NodeJS.Timeout | undefined;
    try {
      const backlog: LogEntry[] = [];
      let inBacklog = backlogEnd > 0;
      if (follow && !inBacklog) keepalive = setInterval(() => void emit([]).catch(stop), KEEPALIVE_MS);
      for await (const m of messages) {
        const entry = this.entryOf(m.data, m.seq, app, fn);
        const wanted = entry !== undefined && (options.requestId === undefined || entry.requestId === options.requestId);
        if (inBacklog) {
          if (wanted && limit > 0) {
            backlog.push(entry);
            if (backlog.length > limit) backlog.shift();
          }
          if (m.seq >= backlogEnd || m.info.pending === 0) {
            inBacklog = false;
            await emit(backlog.splice(0));
            if (!follow) break;
            keepalive = setInterval(() => void emit([]).catch(stop), KEEPALIVE_MS);
          }
        } else if (wanted) await emit([entry]);
      }
      // a read cut short by its time limit answers with the newest lines it found
      if (inBacklog) {
        this.log.warn({ app, fn, lines: backlog.length }, "log read stopped before the end of the backlog");
        await emit(backlog);
      }
    } finally {
      clearInterval(keepalive);
      signal.removeEventListener("abort", stop);
      messages.stop();
    }
  }

  /** A stored line, validated; undefined when malformed or when it names another function than its subject. */
  private entryOf(data: Uint8Array, seq: number, app: string, fn: string): LogEntry | undefined {
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(data));
    } catch {
      return undefined;
    }
    const parsed = LogLine.safeParse(json);
    if (!parsed.success || parsed.data.app !== app || parsed.data.fn !== fn) return undefined;
    return { ...parsed.data, seq };
  }

  /** Ends every follow stream and waits until they have ended (so the HTTP server can close at once). */
  async close(): Promise<void> {
    this.closed = true;
    for (const controller of this.followers.keys()) controller.abort();
    await Promise.all(this.followers.values());
  }
}

const FunctionParams = z.object({ app: AppName, fn: FunctionName });

/**
 * `GET /apps/:app/functions/:fn/logs`: mounted under `/v1` behind the API's
 * auth, for the developer who owns the app (another's app is a missing
 * function). Without `logs` (no JetStream) every read answers ERR_LOGS_UNAVAILABLE.
 */
export function createLogRoutes(options: { store: Store; owners: AppOwners; logs?: FunctionLogs; log?: Logger }): Hono<HearthEnv> {
  const routes = new Hono<HearthEnv>();
  routes.get("/apps/:app/functions/:fn/logs", async (c) => {
    const me = developerOf(c);
    const { app, fn } = parseInput(FunctionParams, c.req.param(), "path");
    const query = parseInput(LogsQuery, c.req.query(), "query");
    if (!(await options.owners.owns(me.developer.id, app)) || !(await options.store.getFunction(app, fn))) {
      throw new HearthError("ERR_FUNCTION_NOT_FOUND", `no function ${app}/${fn}`);
    }
    const logs = options.logs;
    if (!logs) throw new HearthError("ERR_LOGS_UNAVAILABLE", "function logs need JetStream, and this platform runs without it; see docs/api.md");
    const read = { since: query.since, limit: query.limit, requestId: query.requestId, after: query.after };
    if (query.follow !== "1" && query.follow !== "true") return c.json({ lines: await logs.read(app, fn, read) });

    const requestId = c.get("requestId");
    const response = streamSSE(c, async (stream) => {
      const done = new AbortController();
      stream.onAbort(() => done.abort());
      c.req.raw.signal.addEventListener("abort", () => done.abort(), { once: true });
      // a token revoked while it follows ends the stream with the reason, like any later request with it
      let revoked: unknown;
      const recheck = setInterval(() => {
        me.recheck().catch((error: unknown) => {
          // only the token's own failure ends it; a passing Redis error does not
          if (!(error instanceof HearthError)) return;
          revoked = error;
          done.abort();
        });
      }, RECHECK_MS);
      try {
        await logs.follow(app, fn, {
          ...read,
          signal: done.signal,
          onLines: async (lines) => {
            if (lines.length === 0) return stream.write(": keep-alive\n\n").then(() => undefined);
            for (const line of lines) await stream.writeSSE({ event: "line", id: String(line.seq), data: JSON.stringify(line) });
          },
        });
        if (revoked !== undefined) throw revoked;
      } catch (error) {
        if (done.signal.aborted && revoked === undefined) return;
        const failure = revoked ?? error;
        const e = failure instanceof HearthError ? failure : new HearthError("ERR_INTERNAL", "internal error; quote the request id when reporting it");
        if (!(failure instanceof HearthError)) options.log?.error({ requestId, err: failure }, "log follow failed");
        await stream.writeSSE({ event: "error", data: JSON.stringify({ error: { ...e.toWire(), requestId } }) }).catch(() => undefined);
      } finally {
        clearInterval(recheck);
      }
    });
    // a follow stream is long and its end means a stop: the connection is not reused, so a closing server need not wait for it
    response.headers.set("Connection", "close");
    return response;
  });
  return routes;
}
