/**
 * HTTP plumbing shared by the API and the gateway: request ids, the one error
 * handler that turns errors into the `{ error: { code, message, requestId } }`
 * envelope, and a zod validator whose failures use that envelope too.
 */
import { formatZodError, HearthError, type ErrorCode, type ErrorEnvelope } from "@hearth/protocol";
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import type { RequestIdVariables } from "hono/request-id";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import type { Caller } from "../identity/api-auth.ts";
import type { Logger } from "../log/index.ts";

export const REQUEST_ID_HEADER = "X-Request-Id";

/** `caller` is set by the API's authentication (identity/api-auth.ts); the gateway has none. */
export type HearthEnv = { Variables: RequestIdVariables & { caller?: Caller } };

export function errorResponse(c: Context, code: ErrorCode, message: string, status?: number): Response {
  const error = new HearthError(code, message);
  const body: ErrorEnvelope = { error: { code, message, requestId: c.get("requestId") ?? "" } };
  return c.json(body, (status ?? error.status) as ContentfulStatusCode);
}

export function onError(log: Logger): ErrorHandler<HearthEnv> {
  return (err, c) => {
    if (err instanceof HearthError) {
      if (!err.isUserError) log.warn({ requestId: c.get("requestId"), code: err.code, err }, err.message);
      return errorResponse(c, err.code, err.message);
    }
    // hono's own errors for malformed requests (e.g. bad JSON) carry a status
    const status = (err as { status?: unknown }).status;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return errorResponse(c, "ERR_BAD_REQUEST", err.message || "bad request", status);
    }
    log.error({ requestId: c.get("requestId"), err }, "unexpected error");
    return errorResponse(c, "ERR_INTERNAL", "internal error; quote the request id when reporting it");
  };
}

export const notFound: NotFoundHandler<HearthEnv> = (c) =>
  errorResponse(c, "ERR_NOT_FOUND", `no route for ${c.req.method} ${c.req.path}; see docs/api.md`);

/** Validates one part of a request with zod; a failure becomes an ERR_BAD_REQUEST envelope naming each bad field. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, subject: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", formatZodError(parsed.error, subject));
  return parsed.data;
}
