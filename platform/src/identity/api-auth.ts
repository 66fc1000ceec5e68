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
import type { DeviceRegistry } from "./devices.ts";

export type OperatorCaller = { kind: "operator" };
/** A device owner, signed in with one of their devices' tokens (the console's owner view only). */
export type OwnerCaller = { kind: "owner"; ownerId: string; deviceId: string };
export type DeveloperCaller = Authenticated & {
  kind: "developer";
  /** Checks the token again (a long log follow does, so a revoked token stops it too); throws as authentication does. */
  recheck(): Promise<void>;
};
export type Caller = OperatorCaller | DeveloperCaller | OwnerCaller;

/** Device tokens start so (identity/devices.ts). */
const DEVICE_TOKEN_PREFIX = "hd_";

/** The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive); empty when there is none. */
export function bearerToken(header: string | undefined): string {
  return /^Bearer +([\x21-\x7e]{1,512}) *$/i.exec(header ?? "")?.[1] ?? "";
}

export function apiAuth(options: { operatorToken: string; developers: Developers; devices?: DeviceRegistry }): MiddlewareHandler<HearthEnv> {
  const { operatorToken, developers, devices } = options;
  return async (c, next) => {
    const token = bearerToken(c.req.header("authorization"));
    if (!token) {
      throw new HearthError("ERR_UNAUTHORIZED", "no API token: pass `Authorization: Bearer <token>` with a developer token from the platform's operator (the hearth CLI reads it from `hearth login` or HEARTH_TOKEN)");
    }
    if (sameSecret(token, operatorToken)) c.set("caller", { kind: "operator" });
    else if (devices && token.startsWith(DEVICE_TOKEN_PREFIX)) c.set("caller", await ownerOf(devices, token));
    else {
      const who = await developers.authenticate(token);
      c.set("caller", { kind: "developer", ...who, recheck: async () => void (await developers.authenticate(token)) });
    }
    await next();
  };
}

/** A device token signs its owner in (console only): unknown or revoked tokens get the API's own 401s. */
async function ownerOf(devices: DeviceRegistry, token: string): Promise<OwnerCaller> {
  const found = await devices.deviceOfToken(token);
  if (!found) throw new HearthError("ERR_TOKEN_UNKNOWN", "this platform issued no such token: check that it was copied whole (a device token is in the agent's data dir, written by hearth-agent join)");
  if (found.record.revokedAt) throw new HearthError("ERR_TOKEN_REVOKED", `device ${found.deviceId} was revoked at ${found.record.revokedAt}; its token signs no one in`);
  return { kind: "owner", ownerId: found.record.ownerId, deviceId: found.deviceId };
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
  if (caller.kind === "owner") throw new HearthError("ERR_FORBIDDEN", "this route needs a developer token; a device token signs its owner in to the console's owner view only");
  if (caller.kind !== "developer") {
    throw new HearthError(
      "ERR_FORBIDDEN",
      "this route needs a developer token, and this is the operator token (HEARTH_TOKEN), which is for operator routes only: create a developer and their token with `hearth-platform developers create <name>`",
    );
  }
  return caller;
}

/** The owner signed in with a device token; any other caller gets 403. */
export function deviceOwnerOf(c: Context<HearthEnv>): OwnerCaller {
  const caller = callerOf(c);
  if (caller.kind !== "owner") throw new HearthError("ERR_FORBIDDEN", "this route is a device owner's: sign in with one of your devices' tokens (from hearth-agent join)");
  return caller;
}

/** Lets only the operator's token through; a developer token gets 403. */
export const operatorOnly: MiddlewareHandler<HearthEnv> = async (c, next) => {
  if (callerOf(c).kind !== "operator") {
    throw new HearthError("ERR_FORBIDDEN", `${c.req.method} ${c.req.path} needs the operator token (the HEARTH_TOKEN the platform runs with); a developer token cannot use it`);
  }
  await next();
};
