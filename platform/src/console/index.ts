/**
 * The web console: static pages served by the platform at `/console/`, on
 * the API's own host (never on an app's host: the gateway answers every
 * request there before any other route). Plain ES modules and CSS from
 * `assets/`, read once at start: nothing is built at run time and nothing
 * comes from another origin. The pages read the API with the token the
 * person signed in with (kept in sessionStorage, sent as a bearer header,
 * never a cookie: no ambient credential, so no CSRF). Every tenant string
 * is rendered as text, never markup, and a strict Content-Security-Policy
 * with Trusted Types makes markup sinks throw. See docs/console.md.
 */
import { readFileSync } from "node:fs";
import { Hono } from "hono";
import { errorResponse, type HearthEnv } from "../http/index.ts";

const ASSETS = new URL("./assets/", import.meta.url);

/** Every file the console serves, by name; anything else is a 404. */
const FILES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "api.js": "text/javascript; charset=utf-8",
  "dom.js": "text/javascript; charset=utf-8",
  "charts.js": "text/javascript; charset=utf-8",
  "text.js": "text/javascript; charset=utf-8",
  "developer.js": "text/javascript; charset=utf-8",
  "operator.js": "text/javascript; charset=utf-8",
  "owner.js": "text/javascript; charset=utf-8",
  "favicon.svg": "image/svg+xml",
};

/**
 * Only this origin's own scripts, styles and API; no inline script or
 * style, no eval, no frames, no plugins, no forms posting elsewhere; and
 * Trusted Types with no policy, so `innerHTML` and the like throw.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "Content-Security-Policy": CONSOLE_CSP,
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
};

export interface ConsoleOptions {
  /** True when functions share this origin (the path form, no HEARTH_APP_DOMAIN): the console warns that it is for local use. */
  sharedOrigin: boolean;
}

export function createConsole(options: ConsoleOptions): Hono<HearthEnv> {
  const files = new Map(Object.entries(FILES).map(([name, type]) => [name, { type, body: readFileSync(new URL(name, ASSETS)) }]));
  const config = JSON.stringify({ sharedOrigin: options.sharedOrigin });
  const routes = new Hono<HearthEnv>();
  const send = (name: string) => {
    const file = files.get(name)!;
    const headers = new Headers(SECURITY_HEADERS);
    headers.set("Content-Type", file.type);
    // the page always asks again (a new platform version brings new modules with it)
    headers.set("Cache-Control", "no-cache");
    return new Response(file.body, { status: 200, headers });
  };
  routes.get("/console", (c) => c.redirect("/console/", 308));
  routes.get("/console/", () => send("index.html"));
  routes.get("/console/config.json", () => {
    const headers = new Headers(SECURITY_HEADERS);
    headers.set("Content-Type", "application/json");
    headers.set("Cache-Control", "no-store");
    return new Response(config, { status: 200, headers });
  });
  routes.get("/console/:file", (c) => {
    const name = c.req.param("file");
    if (!files.has(name)) return errorResponse(c, "ERR_NOT_FOUND", "no such console file; open /console/");
    return send(name);
  });
  return routes;
}
