/**
 * The front door: what every HTTP client of the platform (callers of
 * functions and of the API) meets before any route runs, so that one client
 * cannot hold the server's sockets or take every donated core.
 *
 * - Slow clients: headers must arrive within 10 s (slowloris), and a request
 *   body must keep flowing (no 10 s without a byte, checked in readBody);
 *   Node's own defaults wait 60-300 s. The whole request must be in within
 *   60 s.
 * - Sizes: a URL over 8 KiB is 414, headers over 16 KiB are 431, a body over
 *   the function's limit is 413, each with the JSON error envelope (Node's
 *   parser refuses oversized headers before any route runs; the
 *   `clientError` handler below answers in the envelope too).
 * - Rates (function calls only): per client IP and per app, in calls per
 *   second, and per function the calls in flight through this process; over
 *   any of them is 429 with Retry-After.
 *
 * Limits are per platform process (each keeps its own counters in memory).
 * See docs/configuration.md for the settings and docs/routing.md.
 */
import { STATUS_CODES, type ServerOptions } from "node:http";
import type { Socket } from "node:net";
import { ERROR_CODES, type ErrorCode } from "@hearth/protocol";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";

export const FRONT_DOOR = {
  /** All of a request's headers must be in within this long. */
  headersTimeoutMs: 10_000,
  /** The whole request, body included, within this long. */
  requestTimeoutMs: 60_000,
  /** A body that sends nothing for this long is cut off (408). */
  bodyIdleMs: 10_000,
  /** How often Node checks the two timeouts above (its default, 30 s, would let a slow client stay 40 s). */
  checkEveryMs: 1_000,
  /** The request line's target. */
  maxUrlBytes: 8 * 1024,
  /** All headers, the request line included (Node's own default, stated here). */
  maxHeaderBytes: 16 * 1024,
  /** Open client connections one platform process keeps; more are refused at accept. */
  maxConnections: 20_000,
} as const;

/** Options for `http.createServer` that enforce the timeouts and sizes above. */
export function frontDoorServerOptions(): ServerOptions {
  return {
    headersTimeout: FRONT_DOOR.headersTimeoutMs,
    requestTimeout: FRONT_DOOR.requestTimeoutMs,
    connectionsCheckingInterval: FRONT_DOOR.checkEveryMs,
    maxHeaderSize: FRONT_DOOR.maxHeaderBytes,
  };
}

/** A raw HTTP/1.1 response with the error envelope, for when Node refuses a request before any route runs. */
function rawError(code: ErrorCode, message: string): string {
  const status = ERROR_CODES[code].status;
  const body = JSON.stringify({ error: { code, message, requestId: "" } });
  const reason = STATUS_CODES[status] ?? "Error";
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** Answers what Node's HTTP parser refused (too-large headers, too slow a client, malformed) in the envelope, then closes. */
export function onClientError(error: Error & { code?: string }, socket: Socket): void {
  // as Node's own handler: never into a response already under way, never to a socket the client reset
  const pending = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (error.code === "ECONNRESET" || (pending && pending.headersSent)) {
    socket.destroy();
    return;
  }
  if (socket.writable && !socket.writableEnded) {
    const text =
      error.code === "HPE_HEADER_OVERFLOW"
        ? rawError("ERR_HEADERS_TOO_LARGE", `request headers are over ${FRONT_DOOR.maxHeaderBytes} bytes in all`)
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? rawError("ERR_REQUEST_TIMEOUT", `the request did not arrive in time (headers within ${FRONT_DOOR.headersTimeoutMs / 1000} s, all of it within ${FRONT_DOOR.requestTimeoutMs / 1000} s)`)
          : rawError("ERR_BAD_REQUEST", "malformed HTTP request");
    socket.end(text);
  }
  socket.destroySoon?.();
}

export interface CallLimitSettings {
  /** Function calls per second from one client IP (0: no limit). */
  perIpPerSecond: number;
  /** Function calls per second to one app (0: no limit). */
  perAppPerSecond: number;
  /** Calls of one function in flight through this process at once (0: no limit). */
  perFunctionInFlight: number;
  /** Function calls from one client IP in flight through this process at once, body reading included (0: no limit). */
  perIpInFlight: number;
}

export const DEFAULT_CALL_LIMITS: CallLimitSettings = { perIpPerSecond: 1_000, perAppPerSecond: 0, perFunctionInFlight: 256, perIpInFlight: 64 };

/**
 * The key a client IP is limited by: an IPv4 address as it is, an IPv6
 * address by its /64 (one subscriber's network: a client could otherwise
 * take a fresh address for every request).
 */
export function clientKey(ip: string): string {
  if (!ip.includes(":")) return ip;
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (v4) return v4[1]!;
  const [head = "", tail = ""] = ip.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = ip.includes("::") ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

/** Why a call was refused, and when to come back. */
export interface Refusal {
  message: string;
  retryAfterSeconds: number;
}

/** The rate and concurrency limits on function calls. */
export class CallLimits {
  private readonly perIp?: RateLimiterMemory;
  private readonly perApp?: RateLimiterMemory;
  private readonly inFlight = new Map<string, number>();
  private readonly clients = new Map<string, number>();
  private readonly settings: CallLimitSettings;

  constructor(settings: CallLimitSettings) {
    this.settings = settings;
    if (settings.perIpPerSecond > 0) this.perIp = new RateLimiterMemory({ points: settings.perIpPerSecond, duration: 1 });
    if (settings.perAppPerSecond > 0) this.perApp = new RateLimiterMemory({ points: settings.perAppPerSecond, duration: 1 });
  }

  /** Counts a call against its client's and its app's rates: a refusal, or undefined when it may go on. */
  async admit(ip: string | undefined, app: string): Promise<Refusal | undefined> {
    if (this.perIp && ip !== undefined) {
      const refused = await spend(this.perIp, clientKey(ip));
      if (refused !== undefined) return { message: `more than ${this.settings.perIpPerSecond} calls a second from ${ip}; slow down`, retryAfterSeconds: refused };
    }
    if (this.perApp) {
      const refused = await spend(this.perApp, app);
      if (refused !== undefined) return { message: `more than ${this.settings.perAppPerSecond} calls a second to app ${app}; slow down`, retryAfterSeconds: refused };
    }
    return undefined;
  }

  /** Takes one of the function's in-flight slots: a release function, or a refusal when all are taken. */
  enter(fnKey: string): (() => void) | Refusal {
    return take(this.inFlight, fnKey, this.settings.perFunctionInFlight, `${fnKey} has ${this.settings.perFunctionInFlight} calls in flight here, its most; retry in a moment`);
  }

  /** Takes one of a client's in-flight slots (none to take without an IP: in-process requests). */
  enterClient(ip: string | undefined): (() => void) | Refusal | undefined {
    if (ip === undefined) return undefined;
    const key = clientKey(ip);
    return take(this.clients, key, this.settings.perIpInFlight, `${ip} has ${this.settings.perIpInFlight} calls in flight here, its most; retry in a moment`);
  }
}

function take(counts: Map<string, number>, key: string, cap: number, refusal: string): (() => void) | Refusal {
  const now = counts.get(key) ?? 0;
  if (cap > 0 && now >= cap) return { message: refusal, retryAfterSeconds: 1 };
  counts.set(key, now + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = (counts.get(key) ?? 1) - 1;
    if (left <= 0) counts.delete(key);
    else counts.set(key, left);
  };
}

/** Spends one point: undefined when within the rate, else the seconds until there is room again. */
async function spend(limiter: RateLimiterMemory, key: string): Promise<number | undefined> {
  try {
    await limiter.consume(key);
    return undefined;
  } catch (refused) {
    if (refused instanceof RateLimiterRes) return Math.max(1, Math.ceil(refused.msBeforeNext / 1000));
    throw refused;
  }
}
