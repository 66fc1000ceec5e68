/**
 * Function-to-function calls (`env.call(fn, request)`, `env.NAME.fetch(request)`),
 * made by a function while it answers a call on this device. See
 * docs/function-calls.md.
 *
 * - The caller's app is the placement's, never what the sandbox says; a
 *   function of another app is refused (403 ERR_CALL_OTHER_APP) and nothing
 *   leaves the device.
 * - Placed here: run here, under the caller's core (a 1-core device would
 *   otherwise wait on itself). Else relayed to a peer of the app's network
 *   that serves it, as the door relays (ingress/peers.ts); never through
 *   the platform.
 * - A chain is at most MAX_CALL_DEPTH deep (508 ERR_CALL_DEPTH); the callee's
 *   budget is what is left of the caller's; its request id is the caller's
 *   with `_c<n>` appended, so `hearth logs` shows the chain.
 * - Each call is reported once as a door call `via: "call"`; a relayed one
 *   carries a call id the serving peer attests (docs/ledger.md).
 *
 * The answer the function gets is what an HTTP client of the gateway would
 * get: the callee's response, or Hearth's error envelope with its status.
 */
import { createHash, randomUUID } from "node:crypto";
import { errorEnvelope, invocationHeaders, isIdempotent, NO_CONTENT_TYPE, replyToResponse, SERVED_BY_HEADERS } from "@hearth/edge";
import { AppName, FunctionName, HttpMethod, INVOKE_HEADERS, MAX_CALL_DEPTH, type ErrorCode, type FunctionLimits } from "@hearth/protocol";
import type { Msg, MsgHdrs } from "@nats-io/transport-node";
import type { Peers } from "../ingress/peers.ts";
import type { UsageReporter } from "../ingress/reporter.ts";
import type { OutboundRequest, OutboundResponse } from "../sandbox/messages.ts";

/** Extra time past the caller's budget a relayed call waits for its peer's answer (the fabric round trip). */
const RELAY_MARGIN_MS = 250;
/** The longest request id (RequestId's bound): a deep chain's id is cut at the end, keeping its start. */
const MAX_REQUEST_ID = 255;

/** What the calls need of their agent. */
export interface CallsHost {
  readonly deviceId: string;
  readonly usage: UsageReporter;
  readonly peers: Peers;
  /** The function placed here, while the device serves. */
  localFunction(app: string, fn: string): { version: string; limits: FunctionLimits } | undefined;
  /** Runs a call here under the caller's core (no core gate), answered as a device reply. */
  runInner(h: MsgHdrs, data: Uint8Array): Promise<{ headers: MsgHdrs; data: Uint8Array }>;
}

/** The call a function is answering, as the agent knows it. */
export interface CallerContext {
  app: string;
  requestId: string;
  /** Its own depth in the chain (0: called from outside). */
  depth: number;
  /** When its budget ends (ms since epoch, this device's clock). */
  deadline: number;
  traceparent?: string;
}

/** Parses the `Hearth-Depth` of an invocation: absent is 0; anything odd, or over the limit, is the limit (such a call may not call on). */
export function callDepth(value: string | undefined): number {
  if (value === undefined) return 0;
  const n = /^\d{1,2}$/.test(value) ? Number(value) : Infinity;
  return Math.min(n, MAX_CALL_DEPTH);
}

/** The `env.call`s of one call: its answerer, and the end of them once the call has its answer. */
export interface CallerCalls {
  onCall: (request: OutboundRequest & { call: string }) => Promise<OutboundResponse>;
  /**
   * The call has its answer: a sub-call not started yet is refused, and the
   * returned promise settles once the one under way (if any) has. The
   * caller's core is held until then, so a function cannot leave calls
   * running on the device after it answered.
   */
  close(): Promise<void>;
}

/**
 * The `env.call` answerer of one call: its sub-calls run one after another
 * (a fan-out may not take more of the owner's cores than the caller holds),
 * numbered in order for their request ids.
 */
export function callerFor(host: CallsHost, caller: CallerContext): CallerCalls {
  let n = 0;
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();
  return {
    onCall: (request) => {
      const id = childRequestId(caller.requestId, ++n);
      const next = queue.then(() =>
        closed ? asOutbound(errorEnvelope("ERR_BAD_REQUEST", "the calling function had already answered: env.call must be awaited before the answer", id), request.url) : subCall(host, caller, id, request),
      );
      queue = next.catch(() => undefined);
      return next;
    },
    close: async () => {
      closed = true;
      await queue;
    },
  };
}

/** The request id of a call's n-th sub-call: the caller's plus `_c<n>`; a long one keeps its start and a hash of the rest. */
export function childRequestId(parent: string, n: number): string {
  const suffix = `_c${n}`;
  if (parent.length + suffix.length <= MAX_REQUEST_ID) return parent + suffix;
  const hash = createHash("sha256").update(parent).digest("base64url").slice(0, 10);
  return `${parent.slice(0, MAX_REQUEST_ID - suffix.length - hash.length - 1)}-${hash}${suffix}`;
}

async function subCall(host: CallsHost, caller: CallerContext, requestId: string, request: OutboundRequest & { call: string }): Promise<OutboundResponse> {
  const refuse = (code: ErrorCode, message: string) => asOutbound(errorEnvelope(code, message, requestId), request.url);
  const [appPart, fnPart] = request.call.includes("/") ? request.call.split("/", 2) : [caller.app, request.call];
  const app = AppName.safeParse(appPart);
  const fn = FunctionName.safeParse(fnPart);
  if (!app.success || !fn.success || request.call.split("/").length > 2) {
    return refuse("ERR_FUNCTION_NOT_FOUND", `no function ${request.call.slice(0, 130)}: name a function of this app (a-z, 0-9 and '-')`);
  }
  if (app.data !== caller.app) {
    return refuse("ERR_CALL_OTHER_APP", `a function of ${caller.app} may call only ${caller.app}'s functions, not ${app.data}/${fn.data}`);
  }
  if (caller.depth >= MAX_CALL_DEPTH) {
    return refuse("ERR_CALL_DEPTH", `a chain of function calls may be at most ${MAX_CALL_DEPTH} deep: this call, at depth ${caller.depth}, may not call ${fn.data}`);
  }
  const method = HttpMethod.safeParse(request.method.toUpperCase());
  if (!method.success) return refuse("ERR_METHOD_NOT_ALLOWED", `method ${request.method.slice(0, 32)} is not supported`);
  const remaining = caller.deadline - Date.now();
  if (remaining <= 0) return refuse("ERR_DEVICE_TIMEOUT", "the calling function's time was up before the call could be made");

  const name = fn.data;
  const local = host.localFunction(caller.app, name);
  let target: { version: string; limits: FunctionLimits; peers?: readonly string[] };
  if (local) target = local;
  else {
    const known = await host.peers.lookup(caller.app, name);
    if ("error" in known) {
      if (known.error.code === "ERR_FUNCTION_NOT_FOUND") return refuse("ERR_FUNCTION_NOT_FOUND", `no function ${caller.app}/${name}`);
      return known.error.code === "ERR_RATE_LIMITED"
        ? refuse("ERR_RATE_LIMITED", `this device looked up ${caller.app}'s functions too often; retry in a second`)
        : refuse("ERR_PLATFORM_UNREACHABLE", `this device does not serve ${caller.app}/${name} and cannot reach the platform to find a peer; retry`);
    }
    target = { version: known.version, limits: known.limits, peers: known.devices.filter((d) => d !== host.deviceId) };
    // the lookup took time of the caller's: a call that cannot be sent any more is not sent, nor billed
    if (caller.deadline - Date.now() <= 0) return refuse("ERR_DEVICE_TIMEOUT", "the calling function's time was up before the call could be made");
  }
  const body = request.body ?? new Uint8Array(0);
  if (body.byteLength > target.limits.requestBytes) {
    return refuse("ERR_BODY_TOO_LARGE", `the request body is over ${caller.app}/${name}'s limit of ${target.limits.requestBytes} bytes`);
  }

  const headers = new Headers();
  for (const [k, v] of request.headers) headers.append(k, v);
  // the callee's span is a child of the caller's, unless the function passed a traceparent of its own
  if (!headers.has("traceparent") && caller.traceparent) headers.set("traceparent", caller.traceparent);
  const h = invocationHeaders({ requestId, app: caller.app, fn: name, version: target.version, method: method.data, url: request.url, wallMs: caller.deadline - Date.now(), headers });
  h.set(INVOKE_HEADERS.depth, String(caller.depth + 1));
  const callId = randomUUID();
  const at = Date.now();
  const started = performance.now();
  let reply: Pick<Msg, "headers" | "data">;
  let servedBy = host.deviceId;
  const relayed = target.peers !== undefined;
  const report = (response: Response, facts: { servedBy?: string; responseBytes: number; errorCode?: string; cpuMs?: string; cold?: boolean }) => {
    host.usage.call({
      id: callId, requestId, app: caller.app, fn: name, version: target.version, at, wallMs: performance.now() - started,
      requestBytes: body.byteLength, responseBytes: facts.responseBytes, status: response.status,
      ...(facts.errorCode ? { errorCode: facts.errorCode } : {}), ...(facts.servedBy ? { servedBy: facts.servedBy } : {}),
      ...(facts.cpuMs ? { cpuMs: facts.cpuMs } : {}), cold: facts.cold ?? false, relayed, via: "call",
    });
    return asOutbound(response, request.url);
  };
  if (target.peers === undefined) reply = await host.runInner(h, body);
  else {
    // the peer attests the call under this id (docs/ledger.md, door calls)
    h.set(INVOKE_HEADERS.callId, callId);
    let outcome: Awaited<ReturnType<Peers["relay"]>>;
    try {
      outcome = await host.peers.relay(caller.app, target.peers, h, body, {
        deadline: started + (caller.deadline - Date.now()) + RELAY_MARGIN_MS,
        idempotent: isIdempotent(method.data, headers),
      });
    } catch {
      // the fabric failed under the relay (the connection moving or lost): the peer may have run it, so it is reported
      return report(errorEnvelope("ERR_DEVICE_LOST", `the call of ${caller.app}/${name} was cut off on its way to the device serving it; retry`, requestId), { responseBytes: 0, errorCode: "ERR_DEVICE_LOST" });
    }
    if ("timedOut" in outcome) {
      return report(errorEnvelope("ERR_DEVICE_TIMEOUT", `the device serving ${caller.app}/${name} did not answer in time`, requestId), { responseBytes: 0, errorCode: "ERR_DEVICE_TIMEOUT" });
    }
    if ("none" in outcome) {
      host.peers.forget(caller.app, name);
      return report(errorEnvelope("ERR_NO_DEVICE", `no device is serving ${caller.app}/${name} right now; try again in a few seconds`, requestId), { responseBytes: 0, errorCode: "ERR_NO_DEVICE" });
    }
    reply = outcome.reply;
    servedBy = outcome.servedBy;
  }
  const made = replyToResponse(reply, { requestId, method: method.data, app: caller.app, form: "host", limits: target.limits, deviceId: servedBy }, {
    error: (code, message) => errorEnvelope(code, message, requestId),
    servedBy: (out) => out.set(SERVED_BY_HEADERS.device, servedBy),
  });
  if (!made.ok) return report(made.response, { responseBytes: 0, errorCode: made.errorCode });
  return report(made.response, {
    servedBy, responseBytes: made.responseBytes, ...(made.errorCode ? { errorCode: made.errorCode } : {}),
    ...(made.device.cpuMs ? { cpuMs: made.device.cpuMs } : {}), cold: made.device.cold,
  });
}

/** A Response as the sandbox's answer to the isolate (the edge's internal marker headers left out). */
async function asOutbound(response: Response, url: string): Promise<OutboundResponse> {
  const headers: [string, string][] = [];
  response.headers.forEach((value, name) => {
    if (name !== NO_CONTENT_TYPE) headers.push([name, value]);
  });
  const body = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, statusText: response.statusText, headers, body, url, redirected: false };
}
