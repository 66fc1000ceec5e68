/**
 * examples/hono-app — a Hono app, deployed unchanged: Hono's own `fetch` is
 * the function. Several routes and the middleware real apps use: timing,
 * secure headers, CORS, ETag (crypto.subtle), basic auth, a streamed answer,
 * a 404 and an error handler.
 *
 *   curl "$URL/api/users/1"            {"id":1,"name":"Ada Lovelace"}
 *   curl -u admin:hearth "$URL/admin"  {"secret":"only for admins"}
 *   curl "$URL/stream"                 three lines, streamed
 */
import { Hono } from "hono";
import { basicAuth } from "hono/basic-auth";
import { cors } from "hono/cors";
import { etag } from "hono/etag";
import { HTTPException } from "hono/http-exception";
import { secureHeaders } from "hono/secure-headers";
import { streamText } from "hono/streaming";

type Bindings = { ADMIN_PASSWORD?: string };

const USERS = [
  { id: 1, name: "Ada Lovelace" },
  { id: 2, name: "Grace Hopper" },
];

// The function sees the path after /fn/<app>/<function>, so routes start at "/".
const app = new Hono<{ Bindings: Bindings }>();

app.use("*", async (c, next) => {
  const started = Date.now();
  await next();
  c.header("x-response-time", `${Date.now() - started}ms`);
});
app.use("*", secureHeaders());
app.use("/api/*", cors({ origin: "https://example.com", allowMethods: ["GET", "POST"] }));
app.use("/api/users/*", etag());
app.use("/admin/*", async (c, next) => basicAuth({ username: "admin", password: c.env?.ADMIN_PASSWORD ?? "hearth" })(c, next));

app.get("/", (c) => c.text("Hello from Hono on Hearth"));

app.get("/api/users", (c) => c.json(USERS));

app.get("/api/users/:id{[0-9]+}", (c) => {
  const user = USERS.find((u) => u.id === Number(c.req.param("id")));
  if (!user) throw new HTTPException(404, { message: "no such user" });
  return c.json(user);
});

app.post("/api/echo", async (c) => {
  const body = await c.req.json<unknown>();
  return c.json({ received: body, query: c.req.query() }, 201);
});

app.get("/admin", (c) => c.json({ secret: "only for admins" }));

app.get("/stream", (c) =>
  streamText(c, async (stream) => {
    for (let i = 1; i <= 3; i++) {
      await stream.writeln(`line ${i}`);
      await stream.sleep(5);
    }
  }),
);

app.get("/boom", () => {
  throw new Error("something broke");
});

app.notFound((c) => c.json({ error: "not found", path: new URL(c.req.url).pathname }, 404));
app.onError((error, c) => {
  // HTTPExceptions carry their own answer (basicAuth's 401 has its WWW-Authenticate challenge)
  if (error instanceof HTTPException) return error.res ?? c.json({ error: error.message }, error.status);
  return c.json({ error: "internal error" }, 500);
});

export default app;
