/**
 * The device's own door (`hearth-agent start --listen <host:port>`, off by
 * default): `ANY /fn/<app>/<fn>/<path>` answered exactly as the gateway
 * answers it, with the gateway's own code for it (@hearth/edge: front-door
 * defences, invocation codec, reply check, error envelope). Nothing else is
 * served: no API, no owner controls; only `GET /.well-known/hearth-door`,
 * which says which device this is (the platform checks an advertised URL
 * with it).
 *
 * - A function placed here (and the device serving, a core free) runs here,
 *   in-process: no gateway and no fabric hop.
 * - A function of one of the device's networks placed elsewhere (or this
 *   device busy or paused) is relayed over the fabric to a peer that serves
 *   it (`<p>.net.<app>.invoke.<peer>`), the platform's ranking first (same
 *   region, most free cores); the answer names the device that served it and
 *   says it was relayed. A relay carries `Hearth-Hops: 1`; a peer never
 *   relays a relayed call on.
 * - Anything else (another network's function, an unknown one) is 404
 *   ERR_FUNCTION_NOT_FOUND, and no device of that network hears of it:
 *   nats-server would refuse the relay anyway (docs/security.md).
 *
 * Every call taken is reported once to the platform (`<p>.door.<id>.usage`),
 * which meters it within what it can check (docs/ledger.md).
 */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import {
  addServerTiming,
  CallLimits,
  DEFAULT_CALL_LIMITS,
  errorResponse,
  EXACT_HEADERS_SERVER_OPTIONS,
  FRONT_DOOR,
  firstSegment,
  frontDoorServerOptions,
  invocationHeaders,
  isIdempotent,
  onClientError,
  onError,
  readBody,
  REQUEST_ID_HEADER,
  replyToResponse,
  SERVED_BY_HEADERS,
  tooMany,
  type CallLimitSettings,
} from "@hearth/edge";
import {
  AppName,
  DOOR_IDENTITY_PATH,
  DoorIdentity,
  FunctionName,
  HttpMethod,
  INVOKE_HEADERS,
  type FunctionLimits,
  type Subjects,
} from "@hearth/protocol";
import { serve, type ServerType } from "@hono/node-server";
import type { Msg, MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import { Hono, type Context } from "hono";
import { requestId } from "hono/request-id";
import type { Logger } from "../log/index.ts";
import { Peers } from "./peers.ts";
import type { UsageReporter } from "./reporter.ts";

/** Response headers a door adds: the door that took the call, and whether (and how often) it was relayed. */
export const DOOR_HEADERS = { door: "X-Hearth-Door", relayed: "X-Hearth-Relayed", hops: "X-Hearth-Hops" } as const;

/** Extra time past the function's wall limit a relay waits for its peer (the fabric round trip), as the gateway does. */
const FABRIC_MARGIN_MS = 2_000;
/** Open connections one door keeps (a home machine, not a data centre). */
const MAX_CONNECTIONS = 1_024;
/** How long calls under way at the door may finish when the agent stops. */
const CLOSE_GRACE_MS = 5_000;

/** What the door needs of its agent. */
export interface DoorHost {
  readonly deviceId: string;
  readonly subjects: Subjects;
  /** The fabric connection in use now. */
  nc(): NatsConnection;
  localFunction(app: string, fn: string): { version: string; limits: FunctionLimits; busy: boolean } | undefined;
  /** Where the door's calls are reported to the platform (the agent's, shared with its relay attestations). */
  readonly usage: UsageReporter;
  /** Runs a call here, answered as a device reply. */
  runCall(h: MsgHdrs, data: Uint8Array): Promise<{ headers: MsgHdrs; data: Uint8Array }>;
}

export interface DoorOptions {
  host: string;
  port: number;
  log: Logger;
  /** Per client IP and app, as the gateway's (docs/configuration.md). */
  callLimits?: CallLimitSettings;
}

/** What the owner sees in `hearth-agent status`. */
export interface DoorCounts {
  listen: string;
  /** Calls taken at the door (names valid, within limits). */
  taken: number;
  /** Of those, served on this device. */
  local: number;
  /** Of those, relayed to a peer. */
  relayed: number;
  /** Refused: unknown or another network's function, bad method, too large, rate limited. */
  refused: number;
  /** Usage records the platform has not acknowledged yet. */
  unreported: number;
  /** The public URL the owner advertises for the door (`--advertise`), when one. */
  advertised?: string;
}

type Where =
  | { kind: "local"; version: string; limits: FunctionLimits }
  | { kind: "relay"; version: string; limits: FunctionLimits; peers: string[] }
  | { kind: "unknown" }
  | { kind: "unreachable" }
  | { kind: "limited" };

export class Door implements AsyncDisposable {
  private readonly host: DoorHost;
  private readonly log: Logger;
  private readonly server: ServerType;
  private readonly limits: CallLimits;
  private readonly peers: Peers;
  private readonly usage: UsageReporter;
  readonly counts: Omit<DoorCounts, "listen" | "unreported" | "advertised"> = { taken: 0, local: 0, relayed: 0, refused: 0 };
  readonly url: string;

  private constructor(host: DoorHost, options: DoorOptions, server: ServerType, limits: CallLimits, url: string) {
    this.host = host;
    this.peers = new Peers(host);
    this.usage = host.usage;
    this.log = options.log;
    this.server = server;
    this.limits = limits;
    this.url = url;
  }

  static async start(host: DoorHost, options: DoorOptions): Promise<Door> {
    const limits = new CallLimits(options.callLimits ?? DEFAULT_CALL_LIMITS);
    let door: Door | undefined;
    const app = new Hono();
    app.use("*", requestId({ headerName: REQUEST_ID_HEADER, limitLength: 255 }));
    app.onError(onError(options.log));
    // nothing but functions is served here
    app.notFound((c) => errorResponse(c, "ERR_NOT_FOUND", "a device's door serves /fn/<app>/<function>/... only"));
    app.use("*", async (c, next) => {
      const started = performance.now();
      const url = new URL(c.req.url);
      if (url.pathname.length + url.search.length > FRONT_DOOR.maxUrlBytes) {
        c.res = errorResponse(c, "ERR_URL_TOO_LONG", `the URL's path and query are over ${FRONT_DOOR.maxUrlBytes} bytes`);
      } else await next();
      addServerTiming(c.res.headers, `total;dur=${(performance.now() - started).toFixed(2)}`);
    });
    const pathForm = (c: Context) => door!.handle(c);
    // who this door is, for the platform checking the URL its owner advertises (a nonce back, never cached)
    app.get(DOOR_IDENTITY_PATH, (c) => {
      const nonce = DoorIdentity.shape.nonce.safeParse(c.req.query("nonce"));
      if (!nonce.success) return errorResponse(c, "ERR_BAD_REQUEST", "nonce must be 16-64 characters of A-Z, a-z, 0-9, _ and -");
      const body: DoorIdentity = { deviceId: host.deviceId, nonce: nonce.data };
      return c.json(body, 200, { "Cache-Control": "no-store" });
    });
    app.all("/fn/:app/:fn", pathForm);
    app.all("/fn/:app/:fn/*", pathForm);
    const server: ServerType = await new Promise((resolve, reject) => {
      const s = serve({ fetch: app.fetch, hostname: options.host, port: options.port, serverOptions: { ...EXACT_HEADERS_SERVER_OPTIONS, ...frontDoorServerOptions() } }, () => resolve(s));
      s.once("error", reject);
      s.on("clientError", onClientError);
      s.maxConnections = MAX_CONNECTIONS;
    });
    const address = server.address() as AddressInfo;
    const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
    door = new Door(host, options, server, limits, `http://${shown}:${address.port}`);
    options.log.info({ url: door.url }, "door open: serving this device's networks' functions");
    return door;
  }

  status(): DoorCounts {
    return { listen: this.url, ...this.counts, unreported: this.usage.unreported };
  }

  private refused(response: Response): Response {
    this.counts.refused++;
    return response;
  }

  private async handle(c: Context): Promise<Response> {
    const received = performance.now();
    const url = new URL(c.req.url);
    const [appName, afterApp] = firstSegment(url.pathname.slice("/fn".length));
    const [fnName, path] = firstSegment(afterApp);
    if (!AppName.safeParse(appName).success || !FunctionName.safeParse(fnName).success) {
      return this.refused(errorResponse(c, "ERR_FUNCTION_NOT_FOUND", `no function ${appName.slice(0, 64)}/${fnName.slice(0, 64)}: app and function names are a-z, 0-9 and '-'`));
    }
    const method = HttpMethod.safeParse(c.req.method);
    if (!method.success) return this.refused(errorResponse(c, "ERR_METHOD_NOT_ALLOWED", `method ${c.req.method} is not supported`));
    const ip = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress;
    const admitted = await this.limits.admit(ip, appName);
    if (admitted) return this.refused(tooMany(c, admitted));
    const ipSlot = this.limits.enterClient(ip);
    if (ipSlot && typeof ipSlot !== "function") return this.refused(tooMany(c, ipSlot));
    try {
      const where = await this.where(appName, fnName);
      if (where.kind === "unknown") return this.refused(errorResponse(c, "ERR_FUNCTION_NOT_FOUND", `no function ${appName}/${fnName} in this device's networks`));
      if (where.kind === "limited") {
        return this.refused(errorResponse(c, "ERR_RATE_LIMITED", `this door asked after ${appName}'s functions too often; retry in a second`));
      }
      if (where.kind === "unreachable") {
        return this.refused(errorResponse(c, "ERR_PLATFORM_UNREACHABLE", `this device does not serve ${appName}/${fnName} itself and cannot reach the platform to find a peer; retry in a few seconds`));
      }
      let body: Uint8Array;
      try {
        body = await readBody(c.req.raw, where.limits.requestBytes);
      } catch (error) {
        this.counts.refused++;
        throw error;
      }
      const slot = this.limits.enter(`${appName}/${fnName}`);
      if (typeof slot !== "function") return this.refused(tooMany(c, slot));
      try {
        this.counts.taken++;
        return await this.call(c, { app: appName, fn: fnName, path, url, method: method.data, received, body, where });
      } finally {
        slot();
      }
    } finally {
      ipSlot?.();
    }
  }

  /** Where a call goes: here, to peers of the network (the platform's answer), or nowhere (404; 503 when the platform cannot be asked). */
  private async where(app: string, fn: string): Promise<Where> {
    const local = this.host.localFunction(app, fn);
    if (local && !local.busy) return { kind: "local", version: local.version, limits: local.limits };
    const known = await this.peers.lookup(app, fn);
    if ("error" in known) {
      // a function placed here still runs here, busy or not, whatever the platform said
      if (local) return { kind: "local", version: local.version, limits: local.limits };
      if (known.error.code === "ERR_RATE_LIMITED") return { kind: "limited" };
      return known.error.code === "ERR_FUNCTION_NOT_FOUND" ? { kind: "unknown" } : { kind: "unreachable" };
    }
    if (known.devices.length === 0 && local) return { kind: "local", version: local.version, limits: local.limits };
    if (known.devices.length === 0) return { kind: "relay", version: known.version, limits: known.limits, peers: [] };
    return { kind: "relay", version: known.version, limits: known.limits, peers: known.devices };
  }

  private async call(
    c: Context,
    call: { app: string; fn: string; path: string; url: URL; method: HttpMethod; received: number; body: Uint8Array; where: Extract<Where, { version: string }> },
  ): Promise<Response> {
    const { app, fn, where, body } = call;
    const requestId = c.get("requestId") as string;
    const fnUrl = new URL(call.path + call.url.search, call.url.origin);
    const h = invocationHeaders({ requestId, app, fn, version: where.version, method: call.method, url: fnUrl.href, wallMs: where.limits.wallMs, headers: c.req.raw.headers });
    const at = Date.now();
    const started = performance.now();
    const relayed = where.kind === "relay";
    const callId = randomUUID();
    const report = (response: Response, facts: { servedBy?: string; responseBytes: number; errorCode?: string; cpuMs?: string; cold?: boolean }) => {
      this.usage.call({
        id: callId, requestId, app, fn, version: where.version, at, wallMs: performance.now() - started,
        requestBytes: body.byteLength, responseBytes: facts.responseBytes, status: response.status,
        ...(facts.errorCode ? { errorCode: facts.errorCode } : {}), ...(facts.servedBy ? { servedBy: facts.servedBy } : {}),
        ...(facts.cpuMs ? { cpuMs: facts.cpuMs } : {}), cold: facts.cold ?? false, relayed,
      });
      response.headers.set(DOOR_HEADERS.door, this.host.deviceId);
      if (relayed) {
        response.headers.set(DOOR_HEADERS.relayed, "1");
        response.headers.set(DOOR_HEADERS.hops, "1");
      }
      return response;
    };

    let reply: Pick<Msg, "headers" | "data"> | undefined;
    let servedBy = this.host.deviceId;
    if (where.kind === "local") {
      this.counts.local++;
      reply = await this.host.runCall(h, body);
    } else {
      this.counts.relayed++;
      // the peer attests the call under the same id, so the platform credits it only when both say so (docs/ledger.md)
      h.set(INVOKE_HEADERS.callId, callId);
      const outcome = await this.peers.relay(app, where.peers, h, body, {
        deadline: started + where.limits.wallMs + FABRIC_MARGIN_MS,
        idempotent: isIdempotent(call.method, c.req.raw.headers),
      });
      if ("timedOut" in outcome) {
        return report(errorResponse(c, "ERR_DEVICE_TIMEOUT", `the device the call was relayed to did not answer within ${where.limits.wallMs + FABRIC_MARGIN_MS} ms`), { responseBytes: 0, errorCode: "ERR_DEVICE_TIMEOUT" });
      }
      if ("none" in outcome) {
        this.peers.forget(app, fn);
        return report(errorResponse(c, "ERR_NO_DEVICE", `no device is serving ${app}/${fn} right now; try again in a few seconds`), { responseBytes: 0, errorCode: "ERR_NO_DEVICE" });
      }
      reply = outcome.reply;
      servedBy = outcome.servedBy;
    }
    const made = replyToResponse(reply, { requestId, method: call.method, app, form: "path", limits: where.limits, deviceId: servedBy }, {
      error: (code, message) => errorResponse(c, code, message),
      servedBy: (headers) => headers.set(SERVED_BY_HEADERS.device, servedBy),
    });
    if (!made.ok) {
      this.log.warn({ requestId, app, fn, deviceId: servedBy, problem: made.problem }, "a peer sent an invalid reply");
      return report(made.response, { responseBytes: 0, errorCode: made.errorCode });
    }
    return report(made.response, {
      servedBy, responseBytes: made.responseBytes, ...(made.errorCode ? { errorCode: made.errorCode } : {}),
      ...(made.device.cpuMs ? { cpuMs: made.device.cpuMs } : {}), cold: made.device.cold,
    });
  }

  /** Stops taking connections; calls under way get CLOSE_GRACE_MS to finish, then their connections are cut. */
  async close(): Promise<void> {
    const server = this.server as ServerType & { closeIdleConnections?: () => void; closeAllConnections?: () => void };
    await new Promise<void>((resolve) => {
      const cut = setTimeout(() => server.closeAllConnections?.(), CLOSE_GRACE_MS);
      server.close(() => {
        clearTimeout(cut);
        resolve();
      });
      server.closeIdleConnections?.();
    });
    await this.usage.flush();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

