/**
 * The devices' HTTP routes. Joining authenticates with a join token,
 * renewing a fabric credential and reading credits with the device's own
 * token (or, for credits, the operator's); revoking is the operator's.
 */
import { timingSafeEqual } from "node:crypto";
import {
  AppName,
  DeviceId,
  DeviceNetworkJoinRequest,
  HearthError,
  JoinRequest,
  JoinTokenRequest,
  UsageDay,
  type DeviceNetworkJoinResponse,
  type DeviceNetworksView,
  type RevokeResponse,
} from "@hearth/protocol";
import { Hono } from "hono";
import { z } from "zod";
import { parseInput, type HearthEnv } from "../http/index.ts";
import type { Ledger } from "../ledger/index.ts";
import { operatorOnly } from "./api-auth.ts";
import type { DeviceRegistry } from "./devices.ts";
import type { FabricControl } from "./fabric-control.ts";
import type { AppNetworks } from "./networks.ts";

const DeviceParams = z.object({ id: DeviceId });
const DeviceNetworkParams = z.object({ id: DeviceId, app: AppName });
export const CreditsQuery = z.strictObject({ day: UsageDay.optional() });

function bearer(header: string | undefined): string {
  return /^Bearer (.{1,512})$/.exec(header ?? "")?.[1] ?? "";
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface DeviceRouteOptions {
  registry: DeviceRegistry;
  control: FabricControl;
  ledger?: Ledger;
  /** The operator's token: it may read any device's credits. */
  operatorToken: string;
  /** Network membership by invite: the device's own token redeems invites, lists and leaves its networks. */
  networks: AppNetworks;
}

/** Routes that authenticate on their own (mounted before the API's token check). */
export function createDeviceRoutes(options: DeviceRouteOptions): Hono<HearthEnv> {
  const { registry, control, ledger, networks } = options;
  /** The device, when the request carries its own device token (the one join stored). */
  const deviceItself = async (id: string, header: string | undefined) => {
    const given = bearer(header);
    if (!given) throw new HearthError("ERR_UNAUTHORIZED", "pass `Authorization: Bearer <device token>`: the one hearth-agent join stored");
    return registry.authenticate(id, given);
  };
  const app = new Hono<HearthEnv>();
  app.post("/devices/join", async (c) => {
    const body = parseInput(JoinRequest, await c.req.json().catch(() => undefined), "body");
    const { response, revokeKeys } = await registry.join(body);
    // a device that joined again under a new key: its old credential leaves the fabric
    if (revokeKeys.length > 0) await control.push();
    return c.json(response, 201);
  });
  app.post("/devices/:id/credentials", async (c) => {
    const { id } = parseInput(DeviceParams, c.req.param(), "path");
    const given = bearer(c.req.header("authorization"));
    if (!given) throw new HearthError("ERR_UNAUTHORIZED", "pass `Authorization: Bearer <device token>`: the one hearth-agent join stored");
    return c.json(await registry.renew(id, given));
  });
  // the owner's side of network membership, with the device's own token: nothing is added to its fabric permissions for it
  app.get("/devices/:id/networks", async (c) => {
    const { id } = parseInput(DeviceParams, c.req.param(), "path");
    await deviceItself(id, c.req.header("authorization"));
    const body: DeviceNetworksView = { deviceId: id, invited: await networks.invitedApps(id), credential: await registry.networks(id) };
    return c.json(body);
  });
  app.post("/devices/:id/networks", async (c) => {
    const { id } = parseInput(DeviceParams, c.req.param(), "path");
    await deviceItself(id, c.req.header("authorization"));
    const { invite } = parseInput(DeviceNetworkJoinRequest, await c.req.json().catch(() => undefined), "body");
    const joined = await networks.redeem(id, invite);
    await networks.changed?.(id);
    const fabric = await registry.reissue(id);
    if (!fabric) throw new HearthError("ERR_DEVICE_REVOKED", `device ${id} was revoked by the operator`);
    const body: DeviceNetworkJoinResponse = { app: joined, fabric };
    return c.json(body, 201);
  });
  app.delete("/devices/:id/networks/:app", async (c) => {
    const { id, app: appName } = parseInput(DeviceNetworkParams, c.req.param(), "path");
    await deviceItself(id, c.req.header("authorization"));
    if (!(await networks.remove(appName, id))) throw new HearthError("ERR_NOT_FOUND", `device ${id} is not a member of app ${appName}'s network; see hearth-agent networks list`);
    return c.body(null, 204);
  });
  app.get("/devices/:id/credits", async (c) => {
    const { id } = parseInput(DeviceParams, c.req.param(), "path");
    const query = parseInput(CreditsQuery, c.req.query(), "query");
    const given = bearer(c.req.header("authorization"));
    if (!given) throw new HearthError("ERR_UNAUTHORIZED", "pass `Authorization: Bearer <token>`: the operator token, or the device token `hearth-agent join` stored");
    if (!sameToken(given, options.operatorToken) && !(await registry.isDeviceToken(id, given))) {
      throw new HearthError("ERR_FORBIDDEN", `this token cannot read the credits of device ${id}`);
    }
    if (!ledger?.metering) throw new HearthError("ERR_LEDGER_UNAVAILABLE", "usage metering is off on this platform (no JetStream); see docs/ledger.md");
    return c.json(await ledger.store.deviceCredits(id, query.day));
  });
  return app;
}

/** The operator's device routes (behind the operator check): join tokens, revocation. */
export function createDeviceAdminRoutes(options: Pick<DeviceRouteOptions, "registry" | "control">): Hono<HearthEnv> {
  const app = new Hono<HearthEnv>();
  app.post("/join-tokens", operatorOnly, async (c) => {
    const body = parseInput(JoinTokenRequest, await c.req.json().catch(() => undefined), "body");
    return c.json(await options.registry.createJoinToken(body.ownerId, body.region, body.ttlSeconds), 201);
  });
  app.post("/devices/:id/revoke", operatorOnly, async (c) => {
    const { id } = parseInput(DeviceParams, c.req.param(), "path");
    const { revokedAt } = await options.control.revoke(id);
    const body: RevokeResponse = { deviceId: id, revokedAt };
    return c.json(body);
  });
  return app;
}
