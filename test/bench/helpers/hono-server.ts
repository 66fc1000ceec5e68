/**
 * Baseline server: a bare Hono app on @hono/node-server doing the same work
 * as examples/hello (read the path and `name`, answer the same JSON), in its
 * own process like the platform, so its CPU time is measured the same way.
 */
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { serveHelper } from "../lib/helper.ts";

const app = new Hono();
app.all("/fn/:app/:fn/*", (c) => {
  const url = new URL(c.req.url);
  const name = url.searchParams.get("name")?.trim() || "world";
  if (name.length > 100) return c.json({ error: "name must be at most 100 characters" }, 400);
  const path = url.pathname.slice(`/fn/${c.req.param("app")}/${c.req.param("fn")}`.length) || "/";
  return Response.json({ message: `Hello, ${name}!`, path, method: c.req.method });
});

serveHelper({
  start: () =>
    new Promise<{ port: number }>((resolve, reject) => {
      const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => resolve({ port: info.port }));
      server.once("error", reject);
      process.once("SIGTERM", () => server.close(() => process.exit(0)));
    }),
});
