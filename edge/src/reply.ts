/**
 * One call's way across the HTTP edge, the same at the platform's gateway
 * and at a device's own door: the invocation a request becomes (metadata in
 * NATS headers, the body as raw bytes), the check of a device's reply where
 * it enters (parseDeviceReply), and the HTTP answer made of it (replyToResponse).
 * Both doors import these, so the two cannot drift apart.
 */
import {
  childSpan,
  formatTraceparent,
  HearthError,
  HTTP_HEADER_NAME,
  HTTP_HEADER_PREFIX,
  INVOKE_HEADERS,
  INVOKE_REPLY_HEADERS,
  isDeviceErrorCode,
  MAX_RESPONSE_HEADER_BYTES,
  MAX_RESPONSE_HEADERS,
  parseTraceparent,
  type DeviceErrorCode,
  type ErrorCode,
  type FunctionLimits,
  type HttpMethod,
} from "@hearth/protocol";
import { headers as natsHeaders, type Msg, type MsgHdrs } from "@nats-io/transport-node";
import { z } from "zod";
import { scopeSetCookie } from "./cookies.ts";
import { NO_CONTENT_TYPE } from "./exact-headers.ts";
import { FRONT_DOOR } from "./front-door.ts";

/** Marks responses of the path form: every app shares that origin (docs/security.md). */
export const SHARED_ORIGIN_HEADER = "Hearth-Shared-Origin";
const SHARED_ORIGIN_NOTE = "path form for local use: apps are not isolated from each other in browsers here (docs/security.md)";

/** Hop-by-hop headers never cross a proxy (RFC 9110 §7.6.1). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Response headers that say which device, in which region, served a call. */
export const SERVED_BY_HEADERS = { device: "X-Hearth-Device", region: "X-Hearth-Region" } as const;

/**
 * Calls that may run twice without harm, so a call whose device left is
 * sent to another: the safe methods (RFC 9110 §9.2.1), and any call the
 * client marked with an Idempotency-Key.
 */
export function isIdempotent(method: string, headers: Headers): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS" || headers.has("idempotency-key");
}

/** Codes a device may send that are the device's or its sandbox's failing, not the function's (logged). */
export const ERROR_CODES_KIND_SYSTEM = new Set<string>(["ERR_SANDBOX_CRASHED", "ERR_BUNDLE_INTEGRITY", "ERR_PLATFORM_UNREACHABLE", "ERR_BAD_MESSAGE", "ERR_INTERNAL"]);

/** The caller's message for each code a device may send: the gateway's words, built from what the gateway knows. */
export function deviceErrorMessage(code: DeviceErrorCode, requestId: string, limits: FunctionLimits): string {
  switch (code) {
    case "ERR_FUNCTION_THREW":
      return `the function threw an uncaught exception; see its logs for request ${requestId}`;
    case "ERR_BAD_RESPONSE":
      return `the function's fetch() did not return a Response; see its logs for request ${requestId}`;
    case "ERR_RESPONSE_TOO_LARGE":
      return `the function's response body is over its limit of ${limits.responseBytes} bytes`;
    case "ERR_CPU_LIMIT":
      return `the call used more than its ${limits.cpuMs} ms of CPU time and was stopped`;
    case "ERR_MEMORY_LIMIT":
      return `the function went over its ${limits.memoryMb} MiB memory limit and was stopped`;
    case "ERR_WALL_TIME_LIMIT":
      return `the call ran longer than its ${limits.wallMs} ms wall limit and was stopped`;
    case "ERR_FUNCTION_QUARANTINED":
      return "the function crashed its sandbox on the device that took the call and is refused there for a minute; see docs/runtime.md";
    case "ERR_BAD_BUNDLE":
      return `the function's bundle did not load on the device; see its logs for request ${requestId}`;
    case "ERR_SANDBOX_CRASHED":
      return "the sandbox running the call died; retry";
    case "ERR_BUNDLE_INTEGRITY":
      return "the device received a bundle that failed its hash check and refused to run it; retry";
    case "ERR_DEVICE_BUSY":
      return "the device that took the call is at its donated capacity; retry";
    case "ERR_NO_DEVICE":
      return "the device that took the call no longer serves this function; try again in a few seconds";
    case "ERR_PLATFORM_UNREACHABLE":
      return "the device could not fetch the function from the platform; retry";
    case "ERR_BAD_MESSAGE":
      return "the device could not read the invocation; retry";
    case "ERR_INTERNAL":
      return "the device failed unexpectedly; quote the request id when reporting it";
  }
}

/** A header value the device sets that must be absent or match. */
const optionalHeader = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === "" ? undefined : v), schema.optional());
const Millis = z.string().max(24).regex(/^\d{1,12}(\.\d{1,6})?$/, "must be a decimal number of ms");
const ReplyCommon = {
  cpuMs: optionalHeader(Millis),
  wallMs: optionalHeader(Millis),
  cold: optionalHeader(z.enum(["0", "1"])),
};
/** A device's reply: an answer (status) or an error (a device code), with its timings and its id. */
const DeviceError = z.strictObject({
  ...ReplyCommon,
  errorCode: z.string().refine(isDeviceErrorCode, "must be an error code a device may send").transform((c) => c as DeviceErrorCode),
  // the sandbox and the agent cut a function's error message at 4,000 characters
  errorMessage: optionalHeader(z.string().max(4_000)),
});
const DeviceAnswer = z.strictObject({
  ...ReplyCommon,
  status: z.string().regex(/^[2-5]\d\d$/, "must be an HTTP status 200-599").transform(Number),
});
export type DeviceReply = z.infer<typeof DeviceError> | z.infer<typeof DeviceAnswer>;

/** Each reply header a device may set, by the field of DeviceReply it fills (the field is its INVOKE_HEADERS key). */
const REPLY_FIELDS = new Map(
  Object.entries(INVOKE_HEADERS)
    .filter(([, header]) => INVOKE_REPLY_HEADERS.includes(header))
    .map(([field, header]) => [header as string, field]),
);

/**
 * A function's HTTP headers as a device relays them: token names, values of
 * one line, as many and as large as the sandbox lets a function send (an
 * honest device never sends more, so more is the device's doing).
 */
const HttpHeaders = z
  .array(z.tuple([z.string().regex(HTTP_HEADER_NAME), z.string().refine((v) => !/[\0\r\n]/.test(v), "must be one line, without NUL")]))
  .max(MAX_RESPONSE_HEADERS)
  .refine((list) => list.reduce((n, [k, v]) => n + k.length + v.length + 4, 0) <= MAX_RESPONSE_HEADER_BYTES, `must be at most ${MAX_RESPONSE_HEADER_BYTES} characters in all`);

export type ParsedReply = { ok: true; reply: DeviceReply; http: [string, string][] } | { ok: false; problem: string };

/**
 * Checks a device's reply where it enters the gateway: its headers are the
 * reply headers a device may set (INVOKE_REPLY_HEADERS, one value each) and
 * its function's HTTP headers (`Http-`, see HttpHeaders), nothing else; it
 * names the device it was sent to; its body is within the function's
 * `responseBytes`. Anything else makes the
 * whole reply invalid: none of it reaches the caller or is billed.
 */
export function parseDeviceReply(msg: Pick<Msg, "headers" | "data">, limits: FunctionLimits, deviceId: string): ParsedReply {
  let h: MsgHdrs | undefined;
  try {
    h = msg.headers;
  } catch {
    // nats.js decodes headers when first read, and throws on a name or value NATS does not allow
    return { ok: false, problem: "headers do not parse" };
  }
  if (!h) return { ok: false, problem: "no headers" };
  if (msg.data.byteLength > limits.responseBytes) {
    return { ok: false, problem: `body of ${msg.data.byteLength} bytes is over the function's responseBytes limit of ${limits.responseBytes}` };
  }
  const fields: Record<string, string> = {};
  const http: [string, string][] = [];
  for (const [key, values] of h) {
    if (key.startsWith(HTTP_HEADER_PREFIX)) {
      const name = key.slice(HTTP_HEADER_PREFIX.length);
      for (const value of values) http.push([name, value]);
      if (http.length > MAX_RESPONSE_HEADERS) return { ok: false, problem: `more than ${MAX_RESPONSE_HEADERS} HTTP headers` };
      continue;
    }
    const field = REPLY_FIELDS.get(key);
    if (field === undefined) return { ok: false, problem: `header ${JSON.stringify(key.slice(0, 64))} is not one a device may set` };
    if (values.length !== 1) return { ok: false, problem: `header ${key} has ${values.length} values` };
    if (values[0] !== "") fields[field] = values[0]!;
  }
  // the answer came from the device the call was sent to: one that says it is another is lying
  if (fields["device"] !== deviceId) return { ok: false, problem: `claims to be device ${fields["device"]?.slice(0, 64) ?? "(none)"}` };
  delete fields["device"];
  const errorCode = fields["errorCode"];
  if (errorCode === undefined) delete fields["errorMessage"];
  else delete fields["status"];
  // an error code makes it an error reply (a union would try each form in turn, and fail the first for most replies)
  const parsed = errorCode === undefined ? DeviceAnswer.safeParse(fields) : DeviceError.safeParse(fields);
  if (!parsed.success) {
    const problem = parsed.error.issues.map((i) => `${i.path.join(".") || "reply"}: ${i.message}`).join("; ");
    return { ok: false, problem: errorCode !== undefined ? `error code ${errorCode.slice(0, 64)}: ${problem}` : problem };
  }
  const headers = HttpHeaders.safeParse(http);
  if (!headers.success) return { ok: false, problem: `HTTP headers: ${headers.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}` };
  return { ok: true, reply: parsed.data, http: headers.data };
}

/**
 * A call's body, whole: refused (413) past the function's limit, and cut
 * off (408) when the client sends nothing for FRONT_DOOR.bodyIdleMs.
 */
export async function readBody(request: Request, limit: number, idleMs: number = FRONT_DOOR.bodyIdleMs): Promise<Uint8Array> {
  const length = request.headers.get("content-length");
  const declared = Number(length ?? "0");
  const tooLarge = () => new HearthError("ERR_BODY_TOO_LARGE", `request body is over this function's limit of ${limit} bytes`);
  if (declared > limit) throw tooLarge();
  // a request without a body (GET and HEAD never have one; others may say Content-Length: 0): `body` is not touched,
  // since on @hono/node-server's lightweight Request that builds a whole undici Request and an AbortController
  if (request.method === "GET" || request.method === "HEAD" || (length === "0" && !request.headers.has("transfer-encoding"))) return new Uint8Array(0);
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HearthError("ERR_REQUEST_TIMEOUT", `the request body stalled: nothing arrived for ${idleMs / 1000} s`)), idleMs);
    });
    let read: ReadableStreamReadResult<Uint8Array>;
    try {
      read = await Promise.race([reader.read(), stalled]);
    } catch (error) {
      await reader.cancel().catch(() => undefined);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    const { done, value } = read;
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

/** Response headers the gateway sets, or that no function may send through it. */
const GATEWAY_OWNED = new Set([...HOP_BY_HOP, "content-length", "server-timing", "x-request-id", SHARED_ORIGIN_HEADER.toLowerCase()]);
/**
 * On the shared origin of the path form, headers that would act on every
 * app's pages: a service worker scope widened past the function's path
 * (`Service-Worker-Allowed: /` lets one app's worker intercept every app's
 * requests) and clearing the whole origin's cookies and storage.
 */
const SHARED_ORIGIN_DROPPED = new Set(["service-worker-allowed", "clear-site-data"]);
/** A field value Node's HTTP server can write (RFC 9110 §5.5: visible ASCII, space, tab, obs-text). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * A function's answer as the HTTP response: its headers less the ones the
 * edge owns (and on the shared origin of the path form, the ones that act on
 * every app), cookies kept to the app, the request id, the body (none for
 * HEAD, 204 and 304).
 */
export function toResponse(call: { requestId: string; method: string; app: string; form: "host" | "path" }, status: number, http: readonly [string, string][], data: Uint8Array): Response {
  const target = call;
  const out = new Headers();
  const shared = target.form === "path";
  for (const [name, value] of http) {
    const lower = name.toLowerCase();
    if (GATEWAY_OWNED.has(lower) || lower.startsWith("x-hearth-") || (shared && SHARED_ORIGIN_DROPPED.has(lower))) continue;
    // a value the function made that HTTP cannot carry (the sandbox allows any one-line string) is dropped, not fatal
    if (!FIELD_VALUE.test(value)) continue;
    // a cookie stays on the function's app: no Domain, and on the shared origin a Path under /fn/<app>/
    out.append(name, lower === "set-cookie" ? scopeSetCookie(value, shared ? `/fn/${target.app}` : undefined) : value);
  }
  // the adapter would add a text/plain content-type to an answer without one (a 204, a 304, a redirect): see http/exact-headers.ts
  if (!out.has("content-type")) out.set(NO_CONTENT_TYPE, "1");
  out.set("X-Request-Id", call.requestId);
  if (shared) out.set(SHARED_ORIGIN_HEADER, SHARED_ORIGIN_NOTE);
  const nullBody = status === 204 || status === 304 || call.method === "HEAD";
  return new Response(nullBody ? null : (data as Uint8Array<ArrayBuffer>), { status, headers: out });
}

export function serverTiming(reply: DeviceReply): string {
  const cpu = Number(reply.cpuMs ?? "0");
  const wall = Number(reply.wallMs ?? "0");
  return `cpu;dur=${cpu.toFixed(2)}, wall;dur=${wall.toFixed(2)}, start;desc=${reply.cold === "1" ? "cold" : "warm"}`;
}

/** Appends metrics to a response's Server-Timing header. */
export function addServerTiming(headers: Headers, metrics: string): void {
  const existing = headers.get("Server-Timing");
  headers.set("Server-Timing", existing ? `${existing}, ${metrics}` : metrics);
}

/** What a door knows of a call when it builds its invocation. */
export interface InvocationOf {
  requestId: string;
  app: string;
  fn: string;
  version: string;
  method: HttpMethod;
  /** The URL the function sees. */
  url: string;
  wallMs: number;
  /** The caller's request headers. */
  headers: Headers;
  /** The edge's span when a tracer made it; else a child of the caller's traceparent, or a new trace. */
  traceparent?: string;
}

/**
 * The invocation message's headers: the call's metadata, the edge's own span
 * in the caller's trace (W3C Trace Context: a hop updates traceparent, keeps
 * tracestate), and the caller's headers less the hop-by-hop ones.
 */
export function invocationHeaders(call: InvocationOf): MsgHdrs {
  const h = natsHeaders();
  h.set(INVOKE_HEADERS.requestId, call.requestId);
  h.set(INVOKE_HEADERS.app, call.app);
  h.set(INVOKE_HEADERS.fn, call.fn);
  h.set(INVOKE_HEADERS.version, call.version);
  h.set(INVOKE_HEADERS.method, call.method);
  h.set(INVOKE_HEADERS.url, call.url);
  h.set(INVOKE_HEADERS.timeoutMs, String(Math.max(1, Math.round(call.wallMs))));
  const traceparent = call.traceparent ?? formatTraceparent(childSpan(parseTraceparent(call.headers.get("traceparent") ?? undefined)));
  h.set(INVOKE_HEADERS.traceparent, traceparent);
  call.headers.forEach((value, key) => {
    if (!HOP_BY_HOP.has(key) && key !== "traceparent") h.append(HTTP_HEADER_PREFIX + key, value);
  });
  h.set(`${HTTP_HEADER_PREFIX}traceparent`, traceparent);
  return h;
}

/** A device's reply made into the caller's answer, and what metering needs of it. */
export type ReplyAnswer =
  | { ok: false; problem: string; response: Response; responseBytes: 0; errorCode: "ERR_BAD_DEVICE_REPLY" }
  | {
      ok: true;
      response: Response;
      responseBytes: number;
      errorCode?: DeviceErrorCode;
      /** The device's own words on a failure of its or its sandbox's (for the log, never for the caller). */
      systemFailure?: string;
      device: { id: string; cpuMs?: string; wallMs?: string; cold: boolean };
    };

/**
 * A reply from `deviceId` (the device the call was sent to) as the caller's
 * answer: an invalid reply becomes 502 ERR_BAD_DEVICE_REPLY with none of its
 * bytes; a device's error code becomes the edge's own message for it (the
 * device's words can hold the function's error text: never the caller's);
 * an answer becomes toResponse's. Each carries Server-Timing from the
 * device's timings and says which device served it.
 */
export function replyToResponse(
  reply: Pick<Msg, "headers" | "data">,
  call: { requestId: string; method: string; app: string; form: "host" | "path"; limits: FunctionLimits; deviceId: string },
  edge: { error: (code: ErrorCode, message: string) => Response; servedBy: (headers: Headers) => void },
): ReplyAnswer {
  const { servedBy } = edge;
  const parsed = parseDeviceReply(reply, call.limits, call.deviceId);
  if (!parsed.ok) {
    const response = edge.error("ERR_BAD_DEVICE_REPLY", "the device that took the call answered with an invalid reply; retry");
    return { ok: false, problem: parsed.problem, response, responseBytes: 0, errorCode: "ERR_BAD_DEVICE_REPLY" };
  }
  const device = { id: call.deviceId, cpuMs: parsed.reply.cpuMs, wallMs: parsed.reply.wallMs, cold: parsed.reply.cold === "1" };
  const timing = serverTiming(parsed.reply);
  if ("errorCode" in parsed.reply) {
    const { errorCode, errorMessage } = parsed.reply;
    const response = edge.error(errorCode, deviceErrorMessage(errorCode, call.requestId, call.limits));
    addServerTiming(response.headers, timing);
    servedBy(response.headers);
    return { ok: true, response, responseBytes: 0, errorCode, device, ...(ERROR_CODES_KIND_SYSTEM.has(errorCode) ? { systemFailure: errorMessage ?? "" } : {}) };
  }
  const response = toResponse(call, parsed.reply.status, parsed.http, reply.data);
  addServerTiming(response.headers, timing);
  servedBy(response.headers);
  return { ok: true, response, responseBytes: reply.data.byteLength, device };
}

/** Splits `/<segment>/<rest...>` into its first segment and the rest (which starts with `/`; `/` when there is none). */
export function firstSegment(path: string): [segment: string, rest: string] {
  const end = path.indexOf("/", 1);
  return end < 0 ? [path.slice(1), "/"] : [path.slice(1, end), path.slice(end)];
}
