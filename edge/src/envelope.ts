/**
 * The error envelope `{ "error": { "code", "message", "requestId" } }` that
 * every HTTP answer made by Hearth itself carries, at the gateway and at a
 * device's door, and the one error handler that makes it of what was thrown.
 */
import { HearthError, type ErrorCode, type ErrorEnvelope } from "@hearth/protocol";
import type { Context, ErrorHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Refusal } from "./front-door.ts";

export const REQUEST_ID_HEADER = "X-Request-Id";

/** What the error handler logs with: any structured logger (pino's signature). */
export interface EdgeLogger {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export function errorResponse(c: Context, code: ErrorCode, message: string, status?: number): Response {
  const error = new HearthError(code, message);
  const body: ErrorEnvelope = { error: { code, message, requestId: c.get("requestId") ?? "" } };
  return c.json(body, (status ?? error.status) as ContentfulStatusCode);
}

/** The envelope as a Response, where there is no request context (a function's `env.call`, answered on its device). */
export function errorEnvelope(code: ErrorCode, message: string, requestId: string): Response {
  const body: ErrorEnvelope = { error: { code, message, requestId } };
  return Response.json(body, { status: new HearthError(code, message).status });
}

/** Known errors become their envelope; a 4xx from the router is a bad request; anything else is logged and an opaque 500. */
export function onError(log: EdgeLogger): ErrorHandler {
  return (err, c) => {
    if (err instanceof HearthError) {
      if (!err.isUserError) log.warn({ requestId: c.get("requestId"), code: err.code, err }, err.message);
      return errorResponse(c, err.code, err.message);
    }
    const status = (err as { status?: unknown }).status;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return errorResponse(c, "ERR_BAD_REQUEST", err.message || "bad request", status);
    }
    log.error({ requestId: c.get("requestId"), err }, "unexpected error");
    return errorResponse(c, "ERR_INTERNAL", "internal error; quote the request id when reporting it");
  };
}

/** 429 with Retry-After: a rate or in-flight limit of the front door. */
export function tooMany(c: Context, refusal: Refusal): Response {
  const response = errorResponse(c, "ERR_RATE_LIMITED", refusal.message);
  response.headers.set("Retry-After", String(refusal.retryAfterSeconds));
  return response;
}
