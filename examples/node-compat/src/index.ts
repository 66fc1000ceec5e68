/**
 * A Hono app that needs Node compatibility: deploy it with
 * `hearth deploy examples/node-compat/src/index.ts --app demo --name node --compat nodejs --env WEBHOOK_SECRET=...`.
 *
 * - Hono's `contextStorage()` keeps each request's context in an
 *   AsyncLocalStorage (`node:async_hooks`), so code deep in a call reads it
 *   with `getContext()` across awaits and timers, without passing `c` along.
 * - `/webhook` checks a GitHub-style `x-signature` (hex HMAC-SHA256 of the
 *   body) with `node:crypto`'s createHmac and timingSafeEqual, the secret from
 *   `process.env`, and reports the body's digest in base64url with Buffer.
 * - An EventEmitter (`node:events`) collects what the handler did.
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import { Hono } from "hono";
import { contextStorage, getContext } from "hono/context-storage";

type AppEnv = { Variables: { requestId: string; user: string } };

const app = new Hono<AppEnv>();
app.use(contextStorage());
app.use(async (c, next) => {
  c.set("requestId", c.req.header("x-request-id") ?? crypto.randomUUID());
  c.set("user", c.req.header("x-user") ?? "anonymous");
  await next();
});

/** Somewhere deep in the app: no context passed in, it comes from the call's AsyncLocalStorage. */
async function audit(action: string) {
  await new Promise((resolve) => setTimeout(resolve, 2));
  const c = getContext<AppEnv>();
  return { action, requestId: c.var.requestId, user: c.var.user };
}

app.get("/whoami", async (c) => {
  const first = await audit("read");
  const [second, third] = await Promise.all([audit("parallel-1"), audit("parallel-2")]);
  return c.json({ first, second, third });
});

app.post("/webhook", async (c) => {
  const body = Buffer.from(await c.req.arrayBuffer());
  const given = Buffer.from(c.req.header("x-signature") ?? "", "hex");
  const expected = createHmac("sha256", process.env["WEBHOOK_SECRET"] ?? "").update(body).digest();
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return c.json({ ok: false, error: "bad signature" }, 401);
  const events = new EventEmitter();
  const seen: string[] = [];
  events.on("received", (id: string) => seen.push(`received ${id}`));
  const payload = JSON.parse(body.toString("utf8")) as { id: string };
  events.emit("received", payload.id);
  return c.json({ ok: true, seen, digest: createHash("sha256").update(body).digest("base64url") });
});

export default app;
