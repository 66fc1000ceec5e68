import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { afterAll, beforeAll, expect, it } from "vitest";
import { EXACT_HEADERS_SERVER_OPTIONS, NO_CONTENT_TYPE } from "./exact-headers.ts";

let server: ServerType;
let port: number;

beforeAll(async () => {
  server = await new Promise<ServerType>((resolve) => {
    const s = serve(
      {
        hostname: "127.0.0.1",
        port: 0,
        serverOptions: EXACT_HEADERS_SERVER_OPTIONS,
        fetch: (req) => {
          const path = new URL(req.url).pathname;
          if (path === "/marked-204") return new Response(null, { status: 204, headers: { [NO_CONTENT_TYPE]: "1", "access-control-allow-origin": "*" } });
          if (path === "/marked-body") return new Response(new Uint8Array([1, 2]), { headers: { [NO_CONTENT_TYPE]: "1" } });
          if (path === "/typed") return new Response("{}", { headers: { "content-type": "application/json" } });
          return new Response(null, { status: 204 });
        },
      },
      () => resolve(s),
    );
  });
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** The raw header names and values the server wrote (no fetch client in between to add or fold any). */
const rawHeaders = (path: string) =>
  new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on("error", reject);
    req.end();
  });

it("a marked response goes out with no content-type and no mark", async () => {
  const preflight = await rawHeaders("/marked-204");
  expect(preflight.status).toBe(204);
  expect(preflight.headers["content-type"]).toBeUndefined();
  expect(preflight.headers[NO_CONTENT_TYPE]).toBeUndefined();
  expect(preflight.headers["access-control-allow-origin"]).toBe("*");
  const bytes = await rawHeaders("/marked-body");
  expect(bytes.headers["content-type"]).toBeUndefined();
  expect(bytes.headers[NO_CONTENT_TYPE]).toBeUndefined();
});

it("an unmarked response keeps what it had, and the adapter's default is still there for the platform's own answers", async () => {
  expect((await rawHeaders("/typed")).headers["content-type"]).toBe("application/json");
  // the adapter's behaviour this module undoes, shown: without the mark it invents text/plain
  expect((await rawHeaders("/plain-204")).headers["content-type"]).toBe("text/plain; charset=UTF-8");
});
