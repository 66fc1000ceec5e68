/**
 * The gateway: `ANY /fn/<app>/<fn>/<path...>` becomes a NATS request on the
 * function's invocation subject (metadata in headers, the body as raw bytes),
 * and the device's reply becomes the HTTP response.
 */
import {
  AppName,
  FunctionName,
  HearthError,
  HTTP_HEADER_PREFIX,
  HttpMethod,
  INVOKE_HEADERS,
  isErrorCode,
  type FunctionRecord,
  type Subjects,
} from "@hearth/protocol";
import { headers as natsHeaders, RequestError, TimeoutError, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { Hono, type Context } from "hono";
import { errorResponse, type HearthEnv } from "../http/index.ts";
import type { Logger } from "../log/index.ts";
import type { Store } from "../state/index.ts";
import type { CallHook } from "../usage/index.ts";

export interface GatewayOptions {
  store: Store;
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** How long a function record is cached; a deploy shows up within this. */
  cacheMs?: number;
  /** Told when a known function had no device to answer (the scheduler probes and re-places). */
  onNoDevice?: (app: string, fn: string) => void;
  /** Told of every call that reached the fabric, once it is over (usage metering; see platform/src/usage). */
  onCall?: CallHook;
}

/** Hop-by-hop headers never cross a proxy (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
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

/** Extra time the gateway waits past the function's wall limit, for the fabric round trip. */
const FABRIC_MARGIN_MS = 2_000;

export function createGateway(options: GatewayOptions): Hono<HearthEnv> {
  const { store, nc, subjects, log } = options;
  const records = new RecordCache(store, options.cacheMs ?? 500);
  const app = new Hono<HearthEnv>();

  const handle = async (c: Context<HearthEnv>) => {
    const appName = c.req.param("app") ?? "";
    const fnName = c.req.param("fn") ?? "";
    if (!AppName.safeParse(appName).success || !FunctionName.safeParse(fnName).success) {
      return errorResponse(c, "ERR_FUNCTION_NOT_FOUND", `no function ${appName}/${fnName}: app and function names are a-z, 0-9 and '-'`);
    }
    const record = await records.get(appName, fnName);
    if (!record) return errorResponse(c, "ERR_FUNCTION_NOT_FOUND", `no function ${appName}/${fnName}; deploy it first (hearth deploy)`);
    const method = HttpMethod.safeParse(c.req.method);
    if (!method.success) return errorResponse(c, "ERR_METHOD_NOT_ALLOWED", `method ${c.req.method} is not supported`);

    const body = await readBody(c.req.raw, record.limits.requestBytes);
    const requestId = c.get("requestId");
    const incoming = new URL(c.req.url);
    const prefix = `/fn/${appName}/${fnName}`;
    const fnUrl = new URL((incoming.pathname.slice(prefix.length) || "/") + incoming.search, incoming.origin);

    const h = natsHeaders();
    h.set(INVOKE_HEADERS.requestId, requestId);
    h.set(INVOKE_HEADERS.app, appName);
    h.set(INVOKE_HEADERS.fn, fnName);
    h.set(INVOKE_HEADERS.version, record.version);
    h.set(INVOKE_HEADERS.method, method.data);
    h.set(INVOKE_HEADERS.url, fnUrl.href);
    h.set(INVOKE_HEADERS.deadline, String(Date.now() + record.limits.wallMs));
    c.req.raw.headers.forEach((value, key) => {
      if (!HOP_BY_HOP.has(key)) h.append(HTTP_HEADER_PREFIX + key, value);
    });

    const at = Date.now();
    const started = performance.now();
    const meter = (status: number, reply?: { headers?: MsgHdrs; data: Uint8Array }, gatewayError?: string) =>
      options.onCall?.({
        requestId, app: appName, fn: fnName, version: record.version, at, wallMs: performance.now() - started,
        requestBytes: body.byteLength, responseBytes: reply?.data.byteLength ?? 0, status, reply: reply?.headers, gatewayError,
      });
    let reply;
    try {
      reply = await nc.request(subjects.invoke(appName, fnName), body, {
        headers: h,
        timeout: record.limits.wallMs + FABRIC_MARGIN_MS,
      });
    } catch (error) {
      if (error instanceof RequestError && error.isNoResponders()) {
        options.onNoDevice?.(appName, fnName);
        meter(503, undefined, "ERR_NO_DEVICE");
        return errorResponse(c, "ERR_NO_DEVICE", `no device is serving ${appName}/${fnName} right now; try again in a few seconds`);
      }
      if (error instanceof TimeoutError || (error instanceof RequestError && error.cause instanceof TimeoutError)) {
        meter(504, undefined, "ERR_DEVICE_TIMEOUT");
        return errorResponse(c, "ERR_DEVICE_TIMEOUT", `the device did not answer within ${record.limits.wallMs + FABRIC_MARGIN_MS} ms`);
      }
      throw error;
    }
    const response = toResponse(c, reply.headers, reply.data, log);
    meter(response.status, reply);
    return response;
  };

  app.all("/fn/:app/:fn", handle);
  app.all("/fn/:app/:fn/*", handle);
  return app;
}

/** Reads a request body, refusing with 413 once it passes `limit` bytes (before reading it all). */
export async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  const tooLarge = () => new HearthError("ERR_BODY_TOO_LARGE", `request body is over this function's limit of ${limit} bytes`);
  if (declared > limit) throw tooLarge();
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
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

function toResponse(c: Context<HearthEnv>, h: MsgHdrs | undefined, data: Uint8Array, log: Logger): Response {
  if (!h) return errorResponse(c, "ERR_BAD_MESSAGE", "the device sent a reply without headers");
  const code = h.get(INVOKE_HEADERS.errorCode);
  if (code) {
    const message = h.get(INVOKE_HEADERS.errorMessage) || "the function failed";
    if (!isErrorCode(code)) {
      log.warn({ requestId: c.get("requestId"), code }, "device replied with an unknown error code");
      return errorResponse(c, "ERR_BAD_MESSAGE", "the device replied with an unknown error");
    }
    const response = errorResponse(c, code, message);
    response.headers.set("Server-Timing", serverTiming(h));
    return response;
  }
  const status = Number(h.get(INVOKE_HEADERS.status));
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    return errorResponse(c, "ERR_BAD_MESSAGE", "the device replied with an invalid status");
  }
  const out = new Headers();
  for (const key of h.keys()) {
    if (!key.startsWith(HTTP_HEADER_PREFIX)) continue;
    const name = key.slice(HTTP_HEADER_PREFIX.length);
    if (HOP_BY_HOP.has(name.toLowerCase()) || name.toLowerCase() === "content-length") continue;
    for (const value of h.values(key)) {
      try {
        out.append(name, value);
      } catch {
        // a header the function made that HTTP can't carry is dropped, not fatal
      }
    }
  }
  out.set("Server-Timing", serverTiming(h));
  out.set("X-Request-Id", c.get("requestId"));
  const nullBody = status === 204 || status === 304 || c.req.method === "HEAD";
  return new Response(nullBody ? null : (data as Uint8Array<ArrayBuffer>), { status, headers: out });
}

function serverTiming(h: MsgHdrs): string {
  const cpu = Number(h.get(INVOKE_HEADERS.cpuMs)) || 0;
  const wall = Number(h.get(INVOKE_HEADERS.wallMs)) || 0;
  const cold = h.get(INVOKE_HEADERS.cold) === "1";
  return `cpu;dur=${cpu.toFixed(2)}, wall;dur=${wall.toFixed(2)}, start;desc=${cold ? "cold" : "warm"}`;
}

/** A short-lived cache of function records, so a warm call costs no Redis round trip. */
class RecordCache {
  private readonly entries = new Map<string, { record: FunctionRecord | null; at: number }>();
  private readonly store: Store;
  private readonly ttlMs: number;

  constructor(store: Store, ttlMs: number) {
    this.store = store;
    this.ttlMs = ttlMs;
  }

  async get(app: string, fn: string): Promise<FunctionRecord | null> {
    const key = `${app}/${fn}`;
    const hit = this.entries.get(key);
    const now = Date.now();
    if (hit && now - hit.at < this.ttlMs) return hit.record;
    const record = await this.store.getFunction(app, fn);
    if (this.entries.size > 10_000) this.entries.clear();
    this.entries.set(key, { record, at: now });
    return record;
  }
}
