/**
 * HTTP plumbing of the platform's API and gateway: its request context, the
 * error envelope and handler (from @hearth/edge, which a device's door uses
 * too), and a zod validator whose failures use that envelope.
 */
import { errorResponse } from "@hearth/edge";
import { formatZodError, HearthError } from "@hearth/protocol";
import type { NotFoundHandler } from "hono";
import type { RequestIdVariables } from "hono/request-id";
import type { z } from "zod";
import type { Caller } from "../identity/api-auth.ts";

export { errorResponse, onError, REQUEST_ID_HEADER } from "@hearth/edge";

/** `caller` is set by the API's authentication (identity/api-auth.ts); the gateway has none. */
export type HearthEnv = { Variables: RequestIdVariables & { caller?: Caller } };

export const notFound: NotFoundHandler<HearthEnv> = (c) =>
  errorResponse(c, "ERR_NOT_FOUND", `no route for ${c.req.method} ${c.req.path}; see docs/api.md`);

/** Validates one part of a request with zod; a failure becomes an ERR_BAD_REQUEST envelope naming each bad field. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, subject: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", formatZodError(parsed.error, subject));
  return parsed.data;
}
