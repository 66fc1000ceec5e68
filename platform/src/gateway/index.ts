/**
 * The gateway: a call becomes a NATS request to one device the gateway
 * chose among the function's placement (metadata in headers, the body as
 * raw bytes), and that device's reply becomes the HTTP response. Only the
 * chosen device can hear the request (its own invocation subject) or answer
 * it (nats-server allows one reply, from the receiver): the gateway knows
 * which device answered from where it sent the call, never from what the
 * device wrote. A device that has no responder, or answers that it did not
 * run the call (not placed, busy), is passed over for the next one.
 *
 * A call comes in on its app's own host (`ANY <app>.<app-domain>/<fn>/<path...>`,
 * when an app domain is configured) or on the path form
 * (`ANY /fn/<app>/<fn>/<path...>`, which puts every app on one origin and is
 * for local use; with an app domain it redirects to the app's host). See
 * docs/security.md.
 *
 * A device is a stranger's machine: its reply is checked with zod before
 * anything of it is used (only the headers a device may set, well formed and
 * within bounds, a body within the function's limit), only the error codes a
 * device may legitimately send pass (anything else is 502
 * ERR_BAD_DEVICE_REPLY), and the caller gets the gateway's own message for
 * each, never the device's (a function's error message or stack stays in
 * its logs). The call's usage record is stored before the answer goes out
 * (see platform/src/usage). Every response carries Server-Timing.
 */
import {
  AppName,
  FunctionName,
  HttpMethod,
  INVOKE_HEADERS,
  type FunctionRecord,
  type Subjects,
} from "@hearth/protocol";
import { RequestError, TimeoutError, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { z } from "zod";
import { errorResponse, onError, type HearthEnv } from "../http/index.ts";
import type { Logger } from "../log/index.ts";
import type { DeviceEntry, Placement, Store } from "../state/index.ts";
import type { CallFacts, CallHook } from "../usage/index.ts";
import {
  addServerTiming,
  invocationHeaders,
  isIdempotent,
  readBody,
  replyToResponse,
  SERVED_BY_HEADERS,
  tooMany,
  type CallLimits,
} from "@hearth/edge";
import { HedgePolicy } from "./hedging.ts";
import type { CallTracing } from "../tracing/index.ts";
import type { LoadMeter } from "../scheduler/load.ts";
import { firstSegment, RequestHostName, type AppHosts } from "./hosts.ts";

export interface GatewayOptions {
  store: Store;
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** How long a function record is cached; a deploy shows up within this. */
  cacheMs?: number;
  /** Told when a known function had no device to answer (the scheduler probes and re-places). */
  onNoDevice?: (app: string, fn: string) => void;
  /** Told of every call that reached the fabric, once it is over; awaited before the answer goes out (usage metering; see platform/src/usage). */
  onCall?: CallHook;
  /** A live device's entry in the scheduler's table (undefined when not live); placed devices that are not live are skipped. */
  liveDevice?: (deviceId: string) => DeviceEntry | undefined;
  /** The region this gateway runs in: its devices are tried first. */
  region?: string;
  /** Each app on its own host (HEARTH_APP_DOMAIN); without it, functions are served on the path form only. */
  appHosts?: AppHosts;
  /** Subscribes to devices found gone from the fabric: calls waiting on one move (idempotent) or end at once. */
  deviceGone?: (listener: (deviceId: string) => void) => void;
  /** Subscribes to placements written by this process's scheduler: calls waiting for one go on at once (others read the placement again every 200 ms). */
  placed?: (listener: (app: string, fn: string) => void) => void;
  /** Whether any device is live: a call to a function deployed moments ago waits for its first placement only then. */
  anyLiveDevice?: () => boolean;
  /** Rate limits per client IP and app, and the in-flight cap per function (the front door). */
  callLimits?: CallLimits;
  /** A header a trusted proxy sets to the client's IP; without it, the socket's peer address. */
  clientIpHeader?: string;
  /** Each device's measured round trip from here and recent failures (ranking within a region). */
  latency?: DeviceNearness;
  /** Counts each function's calls in flight for the scheduler's scaling, and wakes functions scaled to zero. */
  load?: LoadMeter;
  /** A header a trusted proxy sets to the caller's location (`<lat>,<lon>`); a tie-breaker among equally near devices. */
  clientLocationHeader?: string;
  /**
   * The public URL of a listed door of the app's network nearer the caller (from clientLocationHeader) than this
   * gateway, if any: the answer names it in a `Link: <...>; rel="alternate"` header. Read from a cached index.
   */
  nearerDoor?: (app: string, fn: string, caller: { lat: number; lon: number }) => string | undefined;
  /** Exports each call's spans over OTLP when an endpoint is configured. */
  tracing?: CallTracing;
}

/** What the gateway ranks devices by besides their tier: see DeviceLatency. */
export interface DeviceNearness {
  rttOf(deviceId: string): number | undefined;
  penalty(deviceId: string): number;
  outcome(deviceId: string, ok: boolean): void;
}

export interface Gateway {
  /** Runs before every other route: refuses a bad host (400) and answers every request on the app domain, so nothing else is ever served there. */
  readonly hosts: MiddlewareHandler<HearthEnv>;
  /** The path form, `/fn/<app>/<fn>/...`, mounted at the root. */
  readonly routes: Hono<HearthEnv>;
}


/** Where a call came in: which app and function, the function's own path (from `/`), and on which kind of origin. */
interface Target {
  app: string;
  fn: string;
  /** The function's path, as it came (percent-encoded). */
  path: string;
  /** The URL the call came in on. */
  url: URL;
  /** `host`: the app's own origin; `path`: the shared origin of the path form. */
  form: "host" | "path";
}


/** Extra time the gateway waits past the function's wall limit, for the fabric round trip. */
const FABRIC_MARGIN_MS = 2_000;
/** The longest an idempotent call whose devices all left waits for the function to be placed elsewhere. */
const REPLACEMENT_WAIT_MS = 10_000;
/** A function deployed (or changed) this recently, and placed nowhere yet, is being placed: its calls wait for that. */
const FRESH_DEPLOY_MS = 10_000;
/** The longest such a call waits for the function's first placement before ERR_NO_DEVICE. */
const FIRST_PLACEMENT_WAIT_MS = 2_000;
/** How often a call waiting for a placement reads it again, when no placement by this process wakes it first. */
const PLACEMENT_POLL_MS = 200;

/** What one device's try at a call came to. */
type Outcome =
  | { deviceId: string; kind: "reply"; msg: Msg; code: string | undefined }
  | { deviceId: string; kind: "no-responders" | "lost" | "timeout" };


/**
 * The caller's IP: the socket's peer, or, behind a trusted proxy that sets
 * `header`, the last entry of that header (what the proxy itself added;
 * entries before it are the client's own say). Undefined in-process (tests).
 */
export function clientIp(c: Context<HearthEnv>, header: string | undefined): string | undefined {
  if (header) {
    const value = c.req.header(header);
    const last = value?.split(",").pop()?.trim();
    if (last) return last;
  }
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress;
}

/** The device a call was sent to left the fabric before it answered. */
class DeviceLost extends Error {
  readonly deviceId: string;
  constructor(deviceId: string) {
    super(`device ${deviceId} left the fabric`);
    this.deviceId = deviceId;
  }
}


export function createGateway(options: GatewayOptions): Gateway {
  const { store, nc, subjects, log } = options;
  const records = new RecordCache(store, options.cacheMs ?? 500);
  let lastStaleLog = 0;
  records.onStale = (error) => {
    if (Date.now() - lastStaleLog < 5_000) return;
    lastStaleLog = Date.now();
    log.warn({ err: error }, "state store unreachable: the gateway serves functions as it last saw them");
  };
  const app = new Hono<HearthEnv>();
  const hedging = new HedgePolicy();
  /** Calls this gateway has in flight per device (a least-loaded pick among a function's devices). */
  const inflight = new Map<string, number>();

  // While the platform's own fabric connection is down, calls fail at once with a clear 503 instead of each
  // waiting out its wall limit (nats.js reconnects on its own; calls already sent get their answer or a 504).
  let fabricDown = false;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") fabricDown = true;
      else if (s.type === "reconnect") fabricDown = false;
    }
  })().catch(() => undefined);

  // Every gateway response, errors made here included, says how long the gateway took.
  app.use("/fn/*", async (c, next) => {
    const started = performance.now();
    await next();
    addServerTiming(c.res.headers, `total;dur=${(performance.now() - started).toFixed(2)}`);
  });

  // Calls waiting on each device: told at once when the device is found gone from the fabric (Scheduler.connectionClosed).
  const watchers = new Map<string, Set<() => void>>();
  options.deviceGone?.((deviceId) => {
    for (const lost of watchers.get(deviceId) ?? []) lost();
    watchers.delete(deviceId);
  });
  const watchDevice = (deviceId: string) => {
    let fire!: () => void;
    const lost = new Promise<never>((_, reject) => {
      fire = () => reject(new DeviceLost(deviceId));
    });
    lost.catch(() => undefined);
    let set = watchers.get(deviceId);
    if (!set) watchers.set(deviceId, (set = new Set()));
    set.add(fire);
    return {
      lost,
      done: () => {
        set.delete(fire);
        if (set.size === 0 && watchers.get(deviceId) === set) watchers.delete(deviceId);
      },
    };
  };
  /**
   * Devices to move an idempotent call to once every device it was tried on
   * left: the function's placement read again until the scheduler has placed
   * it on a live device not yet tried, within the call's deadline (at most
   * REPLACEMENT_WAIT_MS).
   */
  // calls waiting for a function's placement, by function: woken as soon as this process's scheduler writes one
  const placementWaiters = new Map<string, Set<() => void>>();
  options.placed?.((app, fn) => {
    const key = `${app}/${fn}`;
    // a call arriving right after reads the placement afresh too, not the cached one from before
    records.forget(app, fn);
    const waiting = placementWaiters.get(key);
    if (!waiting) return;
    placementWaiters.delete(key);
    for (const wake of waiting) wake();
  });
  /** Resolves when this process places the function, or after `ms`. */
  const placement = (key: string, ms: number) =>
    new Promise<void>((resolve) => {
      let waiting = placementWaiters.get(key);
      if (!waiting) placementWaiters.set(key, (waiting = new Set()));
      const wake = () => {
        clearTimeout(timer);
        waiting.delete(wake);
        if (waiting.size === 0 && placementWaiters.get(key) === waiting) placementWaiters.delete(key);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      waiting.add(wake);
    });

  const replacements = async (app: string, fn: string, tried: Set<string>, deadline: number, waitMs = REPLACEMENT_WAIT_MS): Promise<string[]> => {
    const until = Math.min(deadline - 100, performance.now() + waitMs);
    options.onNoDevice?.(app, fn);
    while (performance.now() < until) {
      // the short-lived cache, shared by every call waiting here: at most a couple of Redis reads a second per function
      const entry = await records.get(app, fn);
      if (!entry?.record) return [];
      const fresh = chooseDevices(entry, options.liveDevice, inflight, options.region, options.latency).filter((id) => !tried.has(id) && options.liveDevice?.(id) !== undefined);
      if (fresh.length > 0) return fresh;
      await placement(`${app}/${fn}`, Math.max(1, Math.min(PLACEMENT_POLL_MS, until - performance.now())));
    }
    return [];
  };

  const handle = async (c: Context<HearthEnv>, target: Target) => {
    const received = performance.now();
    const { app: appName, fn: fnName } = target;
    if (!AppName.safeParse(appName).success || !FunctionName.safeParse(fnName).success) {
      return errorResponse(c, "ERR_FUNCTION_NOT_FOUND", `no function ${appName.slice(0, 64)}/${fnName.slice(0, 64)}: app and function names are a-z, 0-9 and '-'`);
    }
    const entry = await records.get(appName, fnName);
    const record = entry?.record;
    if (!entry || !record) return errorResponse(c, "ERR_FUNCTION_NOT_FOUND", `no function ${appName}/${fnName}; deploy it first (hearth deploy)`);
    const method = HttpMethod.safeParse(c.req.method);
    if (!method.success) return errorResponse(c, "ERR_METHOD_NOT_ALLOWED", `method ${c.req.method} is not supported`);

    if (fabricDown || nc.isClosed()) {
      return errorResponse(c, "ERR_PLATFORM_UNREACHABLE", "the gateway has lost its connection to the fabric and is reconnecting; retry in a few seconds");
    }
    const limits = options.callLimits;
    const ip = clientIp(c, options.clientIpHeader);
    const refused = await limits?.admit(ip, appName);
    if (refused) return tooMany(c, refused);
    // one client's requests at once, body reading included: a client that trickles bodies holds only its own share
    const ipSlot = limits?.enterClient(ip);
    if (ipSlot && typeof ipSlot !== "function") return tooMany(c, ipSlot);
    try {
      // the body is whole before the call counts against its function (its in-flight cap, its demand for scaling)
      const body = await readBody(c.req.raw, record.limits.requestBytes);
      const slot = limits?.enter(`${appName}/${fnName}`);
      if (slot && typeof slot !== "function") return tooMany(c, slot);
      const ended = options.load?.begin(`${appName}/${fnName}`);
      try {
        return await call(c, target, entry, record, method.data, received, body);
      } finally {
        ended?.();
        slot?.();
      }
    } finally {
      ipSlot?.();
    }
  };

  const call = async (
    c: Context<HearthEnv>, target: Target, entry: CachedFunction, record: FunctionRecord, method: HttpMethod, received: number, body: Uint8Array,
  ) => {
    const { app: appName, fn: fnName } = target;
    const requestId = c.get("requestId");
    const fnUrl = new URL(target.path + target.url.search, target.url.origin);

    // the gateway's span, in the caller's trace or a new one (invocationHeaders); with an OTLP endpoint, that span is
    // exported too (platform/src/tracing)
    const span = options.tracing?.start(c.req.header("traceparent"), { app: appName, fn: fnName, method, door: target.form, requestId });
    const h = invocationHeaders({
      requestId, app: appName, fn: fnName, version: record.version, method, url: fnUrl.href, wallMs: record.limits.wallMs, headers: c.req.raw.headers,
      ...(span ? { traceparent: span.traceparent } : {}),
    });

    const at = Date.now();
    let started = performance.now();
    const locationHeader = options.clientLocationHeader ? c.req.header(options.clientLocationHeader) : undefined;
    const caller = locationHeader === undefined ? undefined : CallerLocation.safeParse(locationHeader).data;
    /** When the answer the caller gets came from its device. */
    let answeredAt: number | undefined;
    /** Stores the call's usage record (awaited: it is durable before the caller has the answer), then answers. */
    const answer = async (response: Response, facts: Pick<CallFacts, "responseBytes" | "errorCode" | "device">) => {
      const wallMs = performance.now() - started;
      span?.end({
        status: response.status, errorCode: facts.errorCode, deviceId: facts.device?.id, sentAt: started, answeredAt,
        deviceWallMs: facts.device?.wallMs === undefined ? undefined : Number(facts.device.wallMs),
        cpuMs: facts.device?.cpuMs === undefined ? undefined : Number(facts.device.cpuMs),
      });
      if (options.onCall) {
        const metering = performance.now();
        await options.onCall({
          requestId, app: appName, fn: fnName, version: record.version, at, wallMs,
          requestBytes: body.byteLength, cpuLimitMs: record.limits.cpuMs, status: response.status, ...facts,
          door: target.form, gatewayMs: performance.now() - received,
        });
        addServerTiming(response.headers, `usage;dur=${(performance.now() - metering).toFixed(2)}`);
      }
      // a door of the function's network nearer the caller than this gateway: where to call next time (docs/routing.md)
      const door = caller && options.nearerDoor?.(appName, fnName, caller);
      if (door) response.headers.append("Link", `<${door}/fn/${appName}/${fnName}${target.path}${target.url.search}>; rel="alternate"`);
      return response;
    };
    const idempotent = isIdempotent(method, c.req.raw.headers);
    let deadline = started + record.limits.wallMs + FABRIC_MARGIN_MS;
    const fnKey = `${appName}/${fnName}`;
    const candidates = chooseDevices(entry, options.liveDevice, inflight, options.region, options.latency, caller);
    const tried = new Set<string>();
    let waited = false;
    if (candidates.length === 0 && (record.scaling?.idleSeconds ?? 0) > 0) {
      // scaled to zero: the scheduler places it again at once, and the call waits for that (a cold start)
      options.load?.wake(fnKey);
      candidates.push(...(await replacements(appName, fnName, tried, deadline)));
      waited = true;
    } else if (candidates.length === 0 && Object.keys(entry.placement.devices).length === 0 && freshlyDeployed(record) && options.anyLiveDevice?.()) {
      // deployed moments ago and being placed: the call waits for the first placement rather than get a 503 (a cold start)
      candidates.push(...(await replacements(appName, fnName, tried, deadline, FIRST_PLACEMENT_WAIT_MS)));
      waited = true;
    }
    if (waited) {
      // a wait for a placement is not the function's: its wall limit (and the wall time billed and credited) starts now
      started = performance.now();
      deadline = started + record.limits.wallMs + FABRIC_MARGIN_MS;
    }

    /** One device's try at the call: what came of it (never rejects for what a device or the fabric did). */
    const attempt = async (deviceId: string): Promise<Outcome> => {
      const timeout = Math.max(1, Math.round(deadline - performance.now()));
      // a call moved or hedged to another device takes what is left of its budget (relative: the device's clock is its own)
      h.set(INVOKE_HEADERS.timeoutMs, String(Math.max(1, timeout - FABRIC_MARGIN_MS)));
      inflight.set(deviceId, (inflight.get(deviceId) ?? 0) + 1);
      const watch = watchDevice(deviceId);
      const sent = performance.now();
      try {
        const request = nc.request(subjects.invoke(deviceId), body, { headers: h, timeout });
        // the loser of the race below must not become an unhandled rejection
        request.catch(() => undefined);
        const msg = await Promise.race([request, watch.lost]);
        let code: string | undefined;
        try {
          code = msg.headers?.get(INVOKE_HEADERS.errorCode) || undefined;
        } catch {
          // headers nats.js cannot decode: parseDeviceReply refuses the reply
        }
        if (code === undefined) hedging.observe(fnKey, performance.now() - sent);
        options.latency?.outcome(deviceId, code !== "ERR_DEVICE_BUSY" && code !== "ERR_SANDBOX_CRASHED" && code !== "ERR_INTERNAL");
        return { deviceId, kind: "reply", msg, code };
      } catch (error) {
        const failed = (kind: "no-responders" | "lost" | "timeout"): Outcome => {
          options.latency?.outcome(deviceId, false);
          return { deviceId, kind };
        };
        if (error instanceof RequestError && error.isNoResponders()) return failed("no-responders");
        if (error instanceof DeviceLost) return failed("lost");
        if (error instanceof TimeoutError || (error instanceof RequestError && error.cause instanceof TimeoutError)) return failed("timeout");
        throw error;
      } finally {
        watch.done();
        const n = (inflight.get(deviceId) ?? 1) - 1;
        if (n <= 0) inflight.delete(deviceId);
        else inflight.set(deviceId, n);
      }
    };

    // Tries run one after the other as devices turn the call away; an idempotent call still unanswered after the
    // function's usual time also goes to the next device (a hedge), and the first answer wins. Only the winner is billed.
    const pending = new Map<string, Promise<Outcome>>();
    // a hedge stays in the region of the device it backs up: another region is farther, and is for when a region has none
    const sameRegion = (a: string, b: string) => {
      const ra = options.liveDevice?.(a)?.heartbeat.region;
      return ra !== undefined && ra === options.liveDevice?.(b)?.heartbeat.region;
    };
    let next = 0;
    const launch = () => {
      const id = candidates[next++]!;
      tried.add(id);
      pending.set(id, attempt(id));
    };
    hedging.called(fnKey);
    let reply: Msg | undefined;
    let chosen = "";
    let turnedAway: { msg: Msg; deviceId: string } | undefined;
    let lostOne = false;
    let timedOut = false;
    let hedged = false;
    /** The placement was read again once after every known device turned the call away. */
    let refreshed = false;
    if (candidates.length > 0) launch();
    while (pending.size > 0) {
      const hedgeIn =
        idempotent && !hedged && next < candidates.length && pending.size === 1 && sameRegion(candidates[next - 1]!, candidates[next]!)
          ? hedging.delayFor(fnKey, record.limits.wallMs)
          : undefined;
      let timer: NodeJS.Timeout | undefined;
      const hedge = hedgeIn === undefined ? [] : [new Promise<"hedge">((resolve) => (timer = setTimeout(() => resolve("hedge"), hedgeIn)))];
      const first = await Promise.race([...pending.values(), ...hedge]);
      clearTimeout(timer);
      if (first === "hedge") {
        hedged = true;
        hedging.hedged(fnKey);
        launch();
        continue;
      }
      pending.delete(first.deviceId);
      if (first.kind === "reply") {
        // a device that did not run the call (not placed there any more, at capacity) passes it on
        if (first.code === "ERR_NO_DEVICE" || first.code === "ERR_DEVICE_BUSY") {
          turnedAway = { msg: first.msg, deviceId: first.deviceId };
          // every device this gateway knew turned it away without running it (a placement moving under it): once,
          // the placement is read again and the call handed to a device placed since, whatever the method
          if (pending.size === 0 && next >= candidates.length && first.code === "ERR_NO_DEVICE" && !refreshed) {
            refreshed = true;
            records.forget(appName, fnName);
            candidates.push(...(await replacements(appName, fnName, tried, deadline)));
          }
          if (pending.size === 0 && next < candidates.length) launch();
          continue;
        }
        reply = first.msg;
        chosen = first.deviceId;
        // a hedge's other device: if the call still waits for a core there, it is dropped (fire and forget)
        for (const loser of pending.keys()) {
          if (!nc.isClosed()) nc.publish(subjects.control(loser), JSON.stringify({ type: "cancel", requestId }));
        }
        break;
      }
      if (first.kind === "timeout") {
        timedOut = true;
        continue;
      }
      if (first.kind === "lost") {
        lostOne = true;
        // it may have run: only an idempotent call goes to another device
        if (!idempotent) {
          const response = errorResponse(c, "ERR_DEVICE_LOST", "the device running the call left the fabric before it answered; the call may or may not have run, retry if that is safe");
          return answer(response, { responseBytes: 0, errorCode: "ERR_DEVICE_LOST" });
        }
        if (pending.size === 0 && next >= candidates.length) candidates.push(...(await replacements(appName, fnName, tried, deadline)));
      }
      // lost, or no responders (nobody heard it: safe to hand on, whatever the method)
      if (pending.size === 0 && next < candidates.length) launch();
    }
    if (!reply && turnedAway) ({ msg: reply, deviceId: chosen } = turnedAway);
    if (!reply && timedOut) {
      const response = errorResponse(c, "ERR_DEVICE_TIMEOUT", `the device did not answer within ${record.limits.wallMs + FABRIC_MARGIN_MS} ms`);
      return answer(response, { responseBytes: 0, errorCode: "ERR_DEVICE_TIMEOUT" });
    }
    if (!reply) {
      records.forget(appName, fnName);
      options.onNoDevice?.(appName, fnName);
      const response = lostOne
        ? errorResponse(c, "ERR_DEVICE_LOST", `the device running the call left the fabric and no other device took ${appName}/${fnName} in time; retry`)
        : errorResponse(c, "ERR_NO_DEVICE", `no device is serving ${appName}/${fnName} right now; try again in a few seconds`);
      return answer(response, { responseBytes: 0, errorCode: lostOne ? "ERR_DEVICE_LOST" : "ERR_NO_DEVICE" });
    }
    answeredAt = performance.now();
    const made = replyToResponse(reply, { requestId, method, app: appName, form: target.form, limits: record.limits, deviceId: chosen }, {
      error: (code, message) => errorResponse(c, code, message),
      servedBy: (headers) => servedBy(headers, chosen),
    });
    if (!made.ok) {
      log.warn({ requestId, app: appName, fn: fnName, problem: made.problem }, "device sent an invalid reply");
      // none of its bytes reach the caller, and it earns its device nothing
      return answer(made.response, { responseBytes: 0, errorCode: made.errorCode });
    }
    if (made.systemFailure !== undefined) log.warn({ requestId, app: appName, fn: fnName, code: made.errorCode, deviceId: chosen, deviceMessage: made.systemFailure }, "device reported a failure");
    if (made.errorCode === "ERR_NO_DEVICE") {
      records.forget(appName, fnName);
      options.onNoDevice?.(appName, fnName);
    }
    return answer(made.response, { responseBytes: made.responseBytes, ...(made.errorCode ? { errorCode: made.errorCode } : {}), device: made.device });
  };

  /** Which device (and its region, from its join record) served the call. */
  const servedBy = (headers: Headers, deviceId: string) => {
    headers.set(SERVED_BY_HEADERS.device, deviceId);
    const region = options.liveDevice?.(deviceId)?.heartbeat.region;
    if (region) headers.set(SERVED_BY_HEADERS.region, region);
  };

  const { appHosts } = options;
  // the path form: /fn/<app>/<fn>/<path...>, split from the raw path (the names are checked as they came, not percent-decoded)
  const pathForm = (c: Context<HearthEnv>) => {
    const url = new URL(c.req.url);
    const [app, afterApp] = firstSegment(url.pathname.slice("/fn".length));
    const [fn, path] = firstSegment(afterApp);
    if (appHosts && AppName.safeParse(app).success && FunctionName.safeParse(fn).success) return toAppHost(c, appHosts, url, app, fn, path);
    return handle(c, { app, fn, path, url, form: "path" });
  };
  app.all("/fn/:app/:fn", pathForm);
  app.all("/fn/:app/:fn/*", pathForm);

  const failed = onError(log);
  const hosts: MiddlewareHandler<HearthEnv> = async (c, next) => {
    const url = new URL(c.req.url);
    const hostname = url.hostname;
    if (!RequestHostName.safeParse(hostname).success) {
      return errorResponse(c, "ERR_BAD_REQUEST", "the Host header is not a valid host name (DNS labels of a-z, 0-9, '-' and '_', up to 253 characters, or an IP address)");
    }
    const where = appHosts?.classify(hostname);
    if (!where || where.kind === "other") return next();
    // the app domain: every path goes to the app (the API included: /v1 there is a function named v1 of that app)
    const started = performance.now();
    const [fn, path] = firstSegment(url.pathname);
    let response: Response;
    try {
      if (where.kind === "app-domain") {
        response = errorResponse(c, "ERR_FUNCTION_NOT_FOUND", `no app is served on this host; apps are served on <app>.${appHosts!.domain}`);
      } else if (fn === "") {
        response = errorResponse(c, "ERR_FUNCTION_NOT_FOUND", `no function in the path: call /<function>/... on the host of app ${where.app}`);
      } else {
        response = await handle(c, { app: where.app, fn, path, url, form: "host" });
      }
    } catch (error) {
      // the app's error handler, here so that errors carry Server-Timing like the path form's
      response = await failed(error as Error, c);
    }
    addServerTiming(response.headers, `total;dur=${(performance.now() - started).toFixed(2)}`);
    return response;
  };
  return { hosts, routes: app };
}

/**
 * With an app domain configured, the path form serves nothing: it answers
 * 308 with the app host's URL (method and body preserved), so no function
 * ever runs on the shared origin where every app could read every other's
 * responses and cookies.
 */
function toAppHost(c: Context<HearthEnv>, appHosts: AppHosts, url: URL, app: string, fn: string, path: string): Response {
  const location = `${appHosts.origin(app)}/${fn}${path === "/" && !url.pathname.endsWith("/") ? "" : path}${url.search}`;
  const response = errorResponse(c, "ERR_APP_HOST_REQUIRED", `functions of app ${app} are served on its own host: ${location}`);
  response.headers.set("Location", location);
  return response;
}


/** A function record and its placement, as the gateway last read them. */
/** Deployed or changed within FRESH_DEPLOY_MS. */
function freshlyDeployed(record: FunctionRecord): boolean {
  const age = Date.now() - Date.parse(record.updatedAt);
  // (a record stamped ahead of this clock by more than a second does not stretch the window)
  return Number.isFinite(age) && age > -1_000 && age < FRESH_DEPLOY_MS;
}

interface CachedFunction {
  record: FunctionRecord | null;
  placement: Placement;
}

/** Round trip assumed for a device not measured yet, ms: behind a measured near one, ahead of a far one. */
const UNMEASURED_RTT_MS = 50;
/** What one call this gateway has in flight on a device adds to its score, ms. */
const INFLIGHT_MS = 2;
/**
 * What a call adds when the device's donated cores are all taken by this
 * gateway's calls already (it would wait for a core there), ms: more than
 * any difference in round trips within a region, so a saturated nearest
 * device spills to the next one instead of queueing.
 */
const QUEUED_MS = 25;
/**
 * Round trips closer than this many ms are near-equals: each choice adds a
 * random share of it, so such devices share the calls (the nearer one more
 * often) instead of one taking all of them over a difference that is noise.
 */
const RTT_STEP_MS = 5;

/**
 * The devices to try for one call, best first, among the function's placed
 * devices. First by tier: live ones (in this process's table) before others
 * (a process that just started has not heard them yet; one that is gone
 * costs a quick "no responders"); then those on the current version; then
 * those in the gateway's own region (from their join records). Within a
 * tier by a score in ms: the device's measured round trip from this gateway
 * (DeviceLatency), plus 2 ms per call in flight on it from here (25 ms more
 * for each once they fill its donated cores), plus up to 200 ms for recent
 * failures; ties in random order (spread). See
 * docs/routing.md.
 */
export function chooseDevices(
  entry: CachedFunction,
  liveDevice: ((id: string) => DeviceEntry | undefined) | undefined,
  inflight: Map<string, number>,
  region?: string,
  nearness?: Pick<DeviceNearness, "rttOf" | "penalty">,
  caller?: { lat: number; lon: number },
): string[] {
  const version = entry.record?.version;
  const ranked: { id: string; score: number }[] = [];
  for (const [id, placed] of Object.entries(entry.placement.devices)) {
    const live = liveDevice?.(id);
    const unheard = liveDevice !== undefined && live === undefined;
    const elsewhere = region !== undefined && live !== undefined && live.heartbeat.region !== region;
    const tier = (unheard ? 4e6 : 0) + (placed.version === version ? 0 : 2e6) + (elsewhere ? 1e6 : 0);
    const near = (nearness?.rttOf(id) ?? UNMEASURED_RTT_MS) + (nearness?.penalty(id) ?? 0);
    // the caller's distance (from a trusted proxy's header) weighs less than one round-trip step: a device's location
    // is its owner's word, so a false one can at most tip the share among devices about equally near the gateway
    const where = caller && live ? Math.min(distanceKm(caller, live.heartbeat.location) / 2_000, 1) * (RTT_STEP_MS - 1) : 0;
    const flying = inflight.get(id) ?? 0;
    const said = live?.heartbeat.cores;
    const cores = typeof said === "number" && Number.isFinite(said) ? Math.min(Math.max(Math.round(said), 1), 64) : 1;
    const queued = Math.max(0, flying - cores + 1);
    ranked.push({ id, score: tier + near + where + flying * INFLIGHT_MS + queued * QUEUED_MS + Math.random() * RTT_STEP_MS });
  }
  return ranked.sort((a, b) => a.score - b.score).map((r) => r.id);
}

/** Great-circle distance, km (haversine). */
export function distanceKm(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** A caller's location as a trusted proxy states it: `<lat>,<lon>` in degrees. */
export const CallerLocation = z
  .string()
  .max(64)
  .transform((v) => v.split(",").map((p) => Number(p.trim())))
  .pipe(z.tuple([z.number().min(-90).max(90), z.number().min(-180).max(180)]))
  .transform(([lat, lon]) => ({ lat, lon }));

/** A short-lived cache of function records and placements, so a warm call costs no Redis round trip. */
class RecordCache {
  private readonly entries = new Map<string, { value: CachedFunction; at: number }>();
  private readonly store: Store;
  private readonly ttlMs: number;

  constructor(store: Store, ttlMs: number) {
    this.store = store;
    this.ttlMs = ttlMs;
  }

  /** Reads under way, by function: the calls missing the cache at once (a burst, or waiters woken by a placement) share one. */
  private readonly loading = new Map<string, Promise<CachedFunction | null>>();

  get(app: string, fn: string): Promise<CachedFunction | null> {
    const key = `${app}/${fn}`;
    const hit = this.entries.get(key);
    const now = Date.now();
    if (hit && now - hit.at < this.ttlMs) return Promise.resolve(hit.value);
    const under = this.loading.get(key);
    if (under) return under;
    const load: Promise<CachedFunction | null> = this.read(app, fn, hit).then(
      (value) => {
        // kept only while it is still the read of record: a forget meanwhile dropped it (it may hold what was true before)
        if (this.loading.get(key) !== load) return value;
        this.loading.delete(key);
        if (this.entries.size > 10_000) this.entries.clear();
        this.entries.set(key, { value, at: now });
        return value;
      },
      (error: unknown) => {
        if (this.loading.get(key) === load) this.loading.delete(key);
        throw error;
      },
    );
    this.loading.set(key, load);
    return load;
  }

  private async read(app: string, fn: string, hit: { value: CachedFunction } | undefined): Promise<CachedFunction> {
    try {
      return await this.store.getFunctionAndPlacement(app, fn);
    } catch (error) {
      // State unreachable (Redis restarting, failing over): keep serving what was deployed as last seen
      // rather than failing calls the devices could answer (asked again after another cache period, not on every
      // call meanwhile: each try can wait on Redis's retries). Without a last-seen record, the error stands.
      if (!hit) throw error;
      this.onStale?.(error);
      return hit.value;
    }
  }

  /** Read again on the next call (its devices changed). */
  forget(app: string, fn: string): void {
    const key = `${app}/${fn}`;
    this.entries.delete(key);
    this.loading.delete(key);
  }

  /** Told when a call was served from a stale record because the state store failed. */
  onStale?: (error: unknown) => void;
}
