/**
 * The identity routes under `/v1`, behind `apiAuth`: `GET /whoami` for any
 * valid token, and the operator's admin API for developers, their tokens
 * and app ownership. A token's value appears in exactly two answers (the
 * developer's creation and a token's creation), never in a list.
 */
import {
  AppName,
  AppOwnerRequest,
  CreateDeveloperRequest,
  CreateTokenRequest,
  DeveloperId,
  TokenId,
  type AppOwner,
  type WhoAmI,
} from "@hearth/protocol";
import { Hono } from "hono";
import { z } from "zod";
import { parseInput, type HearthEnv } from "../http/index.ts";
import type { Logger } from "../log/index.ts";
import { operatorOnly } from "./api-auth.ts";
import type { AppOwners } from "./app-owners.ts";
import type { Developers } from "./developers.ts";

const DeveloperParams = z.object({ id: DeveloperId });
const TokenParams = z.object({ id: DeveloperId, tokenId: TokenId });
const AppParams = z.object({ app: AppName });

async function jsonBody(c: { req: { json(): Promise<unknown> } }): Promise<unknown> {
  return c.req.json().catch(() => undefined);
}

export function createDeveloperRoutes(options: { developers: Developers; owners: AppOwners; log?: Logger }): Hono<HearthEnv> {
  const { developers, owners, log } = options;
  const routes = new Hono<HearthEnv>();

  routes.get("/whoami", (c) => {
    const caller = c.get("caller");
    const body: WhoAmI =
      caller?.kind === "developer"
        ? { kind: "developer", developer: { id: caller.developer.id, name: caller.developer.name }, token: caller.token }
        : caller?.kind === "owner"
          ? { kind: "owner", ownerId: caller.ownerId, deviceId: caller.deviceId }
          : { kind: "operator" };
    return c.json(body);
  });

  routes.use("/developers", operatorOnly);
  routes.use("/developers/*", operatorOnly);

  routes.post("/developers", async (c) => {
    const body = parseInput(CreateDeveloperRequest, await jsonBody(c), "body");
    const created = await developers.create(body.name, body.tokenName);
    log?.info({ developerId: created.developer.id, name: created.developer.name, tokenId: created.token.id, requestId: c.get("requestId") }, "developer created");
    return c.json(created, 201);
  });

  routes.get("/developers", async (c) => c.json({ developers: await developers.list() }));

  routes.post("/developers/:id/tokens", async (c) => {
    const { id } = parseInput(DeveloperParams, c.req.param(), "path");
    const body = parseInput(CreateTokenRequest, (await jsonBody(c)) ?? {}, "body");
    const token = await developers.createToken(id, body.name);
    log?.info({ developerId: id, tokenId: token.id, requestId: c.get("requestId") }, "developer token created");
    return c.json(token, 201);
  });

  routes.get("/developers/:id/tokens", async (c) => {
    const { id } = parseInput(DeveloperParams, c.req.param(), "path");
    await developers.mustGet(id);
    return c.json({ tokens: await developers.listTokens(id) });
  });

  routes.delete("/developers/:id/tokens/:tokenId", async (c) => {
    const { id, tokenId } = parseInput(TokenParams, c.req.param(), "path");
    await developers.revokeToken(id, tokenId);
    log?.info({ developerId: id, tokenId, requestId: c.get("requestId") }, "developer token revoked");
    return c.body(null, 204);
  });

  routes.put("/apps/:app/owner", operatorOnly, async (c) => {
    const { app } = parseInput(AppParams, c.req.param(), "path");
    const body = parseInput(AppOwnerRequest, await jsonBody(c), "body");
    await developers.mustGet(body.developerId);
    const previous = await owners.ownerOf(app);
    await owners.assign(app, body.developerId);
    log?.info({ app, developerId: body.developerId, previous, requestId: c.get("requestId") }, "app owner set");
    const answer: AppOwner = { app, developerId: body.developerId };
    return c.json(answer);
  });

  return routes;
}
