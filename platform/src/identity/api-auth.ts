/**
 * Who is calling the API, and what they may do. `apiAuth` reads the bearer
 * token of each `/v1` request (after the routes that authenticate on their
 * own) and sets the caller: the operator (HEARTH_TOKEN) or a developer (one
 * of their tokens). Each route then says whom it is for: `operatorOnly`
 * (developers, join tokens, the ledger, devices) or `developerOf(c)` (a
 * developer's own apps, which the operator's token does not reach).
 */
import { HearthError } from "@hearth/protocol";
import type { Context, MiddlewareHandler } from "hono";
import type { HearthEnv } from "../http/index.ts";
import { sameSecret, type Authenticated, type Developers } from "./developers.ts";

export type OperatorCaller = { kind: "operator" };
export type DeveloperCaller = Authenticated & {
  kind: "developer";
  /** Checks the token again (a long log follow does, so a revoked token stops it too); throws as authentication does. */
  recheck(): Promise<void>;
};
export type Caller = OperatorCaller | DeveloperCaller;

/** The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive); empty when there is none. */
export function bearerToken(header: string | undefined): string {
  return /^Bearer +([\x21-\x7e]{1,512}) *$/i.exec(header ?? "")?.[1] ?? "";
}

export function apiAuth(options: { operatorToken: string; developers: Developers }): MiddlewareHandler<HearthEnv> {
  const { operatorToken, developers } = options;
  return async (c, next) => {
    const token = bearerToken(c.req.header("authorization"));
    if (!token) {
      throw new HearthError("ERR_UNAUTHORIZED", "no API token: pass `Authorization: Bearer <token>` with a developer token from the platform's operator (the hearth CLI reads it from `hearth login` or HEARTH_TOKEN)");
    }
    if (sameSecret(token, operatorToken)) c.set("caller", { kind: "operator" });
    else {
      const who = await developers.authenticate(token);
      c.set("caller", { kind: "developer", ...who, recheck: async () => void (await developers.authenticate(token)) });
    }
    await next();
  };
}

function callerOf(c: Context<HearthEnv>): Caller {
  const caller = c.get("caller");
  // a route mounted without apiAuth in front of it is a bug, not the client's doing
  if (!caller) throw new HearthError("ERR_INTERNAL", "route reached without authentication");
  return caller;
}

/** The developer making the request; the operator's token gets 403 (it is for operator routes only). */
export function developerOf(c: Context<HearthEnv>): DeveloperCaller {
  const caller = callerOf(c);
  if (caller.kind !== "developer") {
    throw new HearthError(
      "ERR_FORBIDDEN",
      "this route needs a developer token, and this is the operator token (HEARTH_TOKEN), which is for operator routes only: create a developer and their token with `hearth-platform developers create <name>`",
    );
  }
  return caller;
}

/** Lets only the operator's token through; a developer token gets 403. */
export const operatorOnly: MiddlewareHandler<HearthEnv> = async (c, next) => {
  if (callerOf(c).kind !== "operator") {
    throw new HearthError("ERR_FORBIDDEN", `${c.req.method} ${c.req.path} needs the operator token (the HEARTH_TOKEN the platform runs with); a developer token cannot use it`);
  }
  await next();
};
