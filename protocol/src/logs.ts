/**
 * Function logs on the wire: the line a device publishes for each console
 * call of a function (on `<prefix>.logs.<app>.<fn>`, kept by the platform's
 * logs stream in JetStream), and what the API answers with when a developer
 * reads them (docs/api.md, "Function logs").
 *
 * A line belongs to one function: its subject names the app and the function,
 * and app and function names are single subject tokens (no `.`, `*` or `>`),
 * so a reader filtering on one function's subject sees that function's lines
 * and no one else's.
 */
import { z } from "zod";
import { RequestId } from "./messages.ts";
import { AppName, DeviceId, FunctionName, Sha256Hex, type Subjects } from "./names.ts";
import { TraceId } from "./trace.ts";

export const LogLevel = z.enum(["debug", "info", "warn", "error"]);
export type LogLevel = z.infer<typeof LogLevel>;

/** Longest message of one line, in characters (the sandbox cuts console lines at the same length). */
export const MAX_LOG_MESSAGE_CHARS = 16_384;

/** One console line of one call, as a device publishes it. */
export const LogLine = z.strictObject({
  app: AppName,
  fn: FunctionName,
  version: Sha256Hex,
  /** The call's request id; null for lines written while the module loads (top-level code). */
  requestId: RequestId.nullable(),
  /** The device that ran the call. */
  deviceId: DeviceId,
  level: LogLevel,
  message: z.string().max(MAX_LOG_MESSAGE_CHARS),
  /** When the device saw the line (ms since epoch, the device's clock). */
  at: z.number().int().positive(),
  /** The W3C trace id of the call (the caller's `traceparent`, or the one the gateway started); absent outside a call. */
  traceId: TraceId.optional(),
});
export type LogLine = z.infer<typeof LogLine>;

/** Lines one device message carries at most: a device sends its lines in batches, a JSON array of LogLine per message. */
export const MAX_LOG_BATCH_LINES = 256;

/** A stored line as the API returns it: the line plus its position in the logs stream (later lines have higher `seq`). */
export const LogEntry = LogLine.extend({ seq: z.number().int().positive() });
export type LogEntry = z.infer<typeof LogEntry>;

/** `GET /v1/apps/:app/functions/:fn/logs`: oldest first. */
export const LogList = z.strictObject({ lines: z.array(LogEntry) });
export type LogList = z.infer<typeof LogList>;

/** Lines one read returns at most, and by default. */
export const MAX_LOG_LIMIT = 1_000;
export const DEFAULT_LOG_LIMIT = 100;

const DURATION = /^(\d{1,9})(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * Where a read starts: an ISO 8601 time (`2026-11-23T14:00:00Z`) or a
 * duration back from now (`30s`, `10m`, `2h`, `7d`). Parses to ms since epoch.
 */
export const LogSince = z
  .string()
  .max(64)
  .transform((value, ctx) => {
    const duration = DURATION.exec(value);
    if (duration) {
      const back = Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS];
      // lines are kept 7 days: anything longer means "all of them" (and a huge one would not be a valid time at all)
      return Date.now() - Math.min(back, 365 * UNIT_MS.d);
    }
    if (z.iso.datetime({ offset: true }).safeParse(value).success) return Date.parse(value);
    ctx.addIssue({ code: "custom", message: "since must be an ISO 8601 time (2026-11-23T14:00:00Z) or a duration like 30s, 10m, 2h, 7d" });
    return z.NEVER;
  });

/** Query of a logs read (strings in, as they come in a URL). */
export const LogsQuery = z.strictObject({
  since: LogSince.optional(),
  limit: z.coerce.number().int().min(0).max(MAX_LOG_LIMIT).optional(),
  requestId: RequestId.optional(),
  /** Only lines after this one (a line's `seq`): how a follow picks up where it left off. Wins over `since`. */
  after: z.coerce.number().int().min(0).optional(),
  /** `1`/`true`: answer with Server-Sent Events, the recent lines first, then new lines as they come. */
  follow: z.enum(["1", "0", "true", "false"]).optional(),
});
export type LogsQuery = z.infer<typeof LogsQuery>;

/** Subject the logs stream keeps one function's lines on (the platform publishes there, once it checked a device's line). */
export function logSubject(subjects: Subjects, app: string, fn: string): string {
  return `${subjects.prefix}.logs.${app}.${fn}`;
}

/** Every function's lines (what the logs stream keeps). */
export function logSubjectFilter(subjects: Subjects): string {
  return `${subjects.prefix}.logs.>`;
}
