/**
 * `GET /v1/apps/:app/doors?near=<region | lat,lon>`: the reachable doors of
 * an app's network, nearest first (DoorDirectory). Public, like the
 * functions themselves: the doors of an app are for that app's own callers
 * (a browser or a phone that has no developer token), and what the list
 * shows — door URLs their owners chose to publish, device ids and regions
 * that every function answer names anyway (`X-Hearth-Device`) — reveals
 * nothing of the app's code, logs or usage. Rate limited per client IP.
 */
import { AppName, DoorsQuery, HearthError, type DoorList } from "@hearth/protocol";
import { Hono } from "hono";
import { RateLimiterMemory } from "rate-limiter-flexible";
import { z } from "zod";
import { CallerLocation, clientIp } from "../gateway/index.ts";
import { parseInput, type HearthEnv } from "../http/index.ts";
import type { AppOwners } from "../identity/index.ts";
import type { DoorDirectory } from "./directory.ts";

/** Listings one client IP may ask for a second, per platform process. */
const LISTINGS_PER_SECOND = 20;

export interface DoorRoutesOptions {
  directory: DoorDirectory;
  owners: AppOwners;
  /** This process's region: without `near`, its doors first. */
  region?: string;
  clientIpHeader?: string;
  /** A trusted proxy's header with the caller's `<lat>,<lon>`: without `near`, the caller is there. */
  clientLocationHeader?: string;
}

export function createDoorRoutes(options: DoorRoutesOptions): Hono<HearthEnv> {
  const routes = new Hono<HearthEnv>();
  const rate = new RateLimiterMemory({ points: LISTINGS_PER_SECOND, duration: 1 });
  routes.get("/apps/:app/doors", async (c) => {
    const { app } = parseInput(z.object({ app: AppName }), c.req.param(), "path");
    const query = parseInput(DoorsQuery, c.req.query(), "query");
    try {
      await rate.consume(clientIp(c, options.clientIpHeader) ?? "in-process");
    } catch {
      throw new HearthError("ERR_RATE_LIMITED", `more than ${LISTINGS_PER_SECOND} door listings a second from this address; wait a second`);
    }
    // an app with no doors listed yet may still not exist: that is a 404, as at the gateway
    if (!options.directory.has(app) && (await options.owners.ownerOf(app)) === null) {
      throw new HearthError("ERR_FUNCTION_NOT_FOUND", `no app ${app}; deploy it first (hearth deploy)`);
    }
    const header = query.near === undefined && options.clientLocationHeader ? c.req.header(options.clientLocationHeader) : undefined;
    const near = query.near ?? (header !== undefined ? CallerLocation.safeParse(header).data : undefined) ?? (options.region ? { region: options.region } : undefined);
    const body: DoorList = { app, doors: options.directory.list(app, near) };
    // short-lived: doors come and go within seconds
    return c.json(body, 200, { "Cache-Control": "public, max-age=5" });
  });
  return routes;
}
