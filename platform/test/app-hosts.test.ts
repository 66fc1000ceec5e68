/**
 * Each app on its own host: routing by Host, the API never answered on an
 * app's host, the path form (redirected when an app domain is configured,
 * served with its cookies kept under /fn/<app>/ when not), and bad Host
 * headers. In-process (`app.request()` with full URLs, so the host is the
 * URL's, as @hono/node-server builds it from the Host header) against a real
 * nats-server whose devices are joined fake devices; one test goes over
 * a real socket to see what raw Host headers do.
 */
import { connect as connectTcp } from "node:net";
import { startNatsServer, type NatsServer } from "@hearth/devkit";
import { INVOKE_HEADERS, type FunctionView } from "@hearth/protocol";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FabricAuthority, FakeDevice, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { createDeveloper } from "./helpers.ts";

const TOKEN = "app-hosts-token-0123456789";
/** A developer's token on the hosted platform, and on the local one. */
let auth: { authorization: string };
let localAuth: { authorization: string };
const authority = FabricAuthority.generate();

let nats: NatsServer;
/** With HEARTH_APP_DOMAIN=fn.test and its API on https://api.test. */
let hosted: Platform;
/** Without an app domain: the path form, for local use. */
let local: Platform;
const fakeDevices: FakeDevice[] = [];
/** Calls each fake device took, by `<prefix> <app>/<fn>`. */
const calls = new Map<string, number>();

/** The functions the fake device serves, on both platforms: they answer with what they were called as, or set cookies. */
const FUNCTIONS = [
  ["alpha", "who"],
  ["alpha", "v1"],
  ["alpha", "cookies"],
  ["beta", "who"],
] as const;

beforeAll(async () => {
  nats = await startNatsServer({ auth: natsAuth(authority) });
  const common = { fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), ledger: "off" as const, tickMs: 200 };
  hosted = await startPlatform({ ...common, subjectPrefix: "apphost", redisPrefix: "apphost:", appDomain: "fn.test", publicUrl: "https://api.test" });
  local = await startPlatform({ ...common, subjectPrefix: "apppath", redisPrefix: "apppath:" });
  ({ auth } = await createDeveloper(hosted.app, TOKEN, "hosts-dev"));
  ({ auth: localAuth } = await createDeveloper(local.app, TOKEN, "hosts-dev"));
  for (const [prefix, platform] of [["apphost", hosted], ["apppath", local]] as const) {
    const device = await FakeDevice.start({
      url: nats.url, prefix, devices: platform.devices, deviceId: "hosts-dev",
      onInvoke: (msg, fn) => {
        const app = msg.headers?.get(INVOKE_HEADERS.app);
        const key = `${prefix} ${app}/${fn}`;
        calls.set(key, (calls.get(key) ?? 0) + 1);
        const h = headers();
        h.set(INVOKE_HEADERS.status, "200");
        h.set(INVOKE_HEADERS.device, "hosts-dev");
        if (fn === "cookies") {
          h.append("Http-Set-Cookie", "sid=1; Path=/; HttpOnly");
          h.append("Http-Set-Cookie", "theirs=1; Path=/fn/beta/; Domain=127.0.0.1");
          h.append("Http-Set-Cookie", "wide=1; Domain=fn.test");
          h.set("Http-Service-Worker-Allowed", "/");
          h.set("Http-Clear-Site-Data", '"cookies", "storage"');
        }
        const seen = { app, fn: msg.headers?.get(INVOKE_HEADERS.fn), url: msg.headers?.get(INVOKE_HEADERS.url) };
        msg.respond(JSON.stringify(seen), { headers: h });
      },
    });
    fakeDevices.push(device);
    const who = platform === hosted ? auth : localAuth;
    for (const [app, fn] of FUNCTIONS) {
      const res = await platform.app.request(`/v1/apps/${app}/functions/${fn}?requestBytes=16`, { method: "PUT", headers: who, body: "export default { fetch() { return new Response('') } }" });
      expect(res.status).toBe(201);
    }
    for (const [app, fn] of FUNCTIONS) {
      const deadline = Date.now() + 10_000;
      while (!device.functions.has(`${app}/${fn}`) || (await platform.store.getPlacement(app, fn)).devices["hosts-dev"] === undefined) {
        if (Date.now() > deadline) throw new Error(`${app}/${fn} was not placed on the fake device`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
});

afterAll(async () => {
  await Promise.all(fakeDevices.map((d) => d.die()));
  await hosted?.close();
  await local?.close();
  await nats?.stop();
});

async function errorOf(res: Response) {
  const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
  expect(res.headers.get("x-request-id")).toBe(body.error.requestId);
  return body.error;
}

const seen = async (res: Response) => (await res.json()) as { app: string; fn: string; url: string };

describe("each app on its own host", () => {
  it("the Host picks the app, the first path segment the function; the function sees its own path on its own host", async () => {
    const alpha = await hosted.app.request("http://alpha.fn.test/who/x/y?z=1");
    expect(alpha.status).toBe(200);
    expect(await seen(alpha)).toEqual({ app: "alpha", fn: "who", url: "http://alpha.fn.test/x/y?z=1" });
    const beta = await hosted.app.request("http://beta.fn.test:8443/who");
    expect(await seen(beta)).toEqual({ app: "beta", fn: "who", url: "http://beta.fn.test:8443/" });
    // host names are case-insensitive, and may end in the root's dot
    expect((await seen(await hosted.app.request("http://ALPHA.Fn.Test/who/"))).app).toBe("alpha");
    expect((await seen(await hosted.app.request("http://beta.fn.test./who/"))).app).toBe("beta");
    expect(alpha.headers.get("server-timing")).toMatch(/total;dur=/);
    expect(alpha.headers.get("hearth-shared-origin")).toBeNull();
  });

  it("an app's host never answers the API: /v1 there is a function of that app, or a 404", async () => {
    // alpha has a function named v1: it gets the call, the API does not
    const mine = await hosted.app.request("http://alpha.fn.test/v1/health", { headers: auth });
    expect(await seen(mine)).toEqual({ app: "alpha", fn: "v1", url: "http://alpha.fn.test/health" });
    // beta has none: 404, not the API's answer, even with the operator's token
    const theirs = await hosted.app.request("http://beta.fn.test/v1/apps/alpha/functions", { headers: auth });
    expect(theirs.status).toBe(404);
    expect((await errorOf(theirs)).code).toBe("ERR_FUNCTION_NOT_FOUND");
    // the app domain itself and names under it that are no app's host serve nothing
    for (const url of ["http://fn.test/v1/health", "http://x.alpha.fn.test/v1/health", "http://a_b.fn.test/v1/health"]) {
      const res = await hosted.app.request(url, { headers: auth });
      expect(res.status, url).toBe(404);
      expect((await errorOf(res)).code, url).toBe("ERR_FUNCTION_NOT_FOUND");
    }
    // on its own host, the API answers
    const api = await hosted.app.request("http://api.test/v1/health");
    expect(api.status).toBe(200);
    expect(await api.json()).toMatchObject({ ok: true });
  });

  it("an unknown app's host gets the same 404 envelope as an unknown app on the path form", async () => {
    const res = await hosted.app.request("http://nope.fn.test/who");
    const pathForm = await local.app.request("/fn/nope/who");
    expect(res.status).toBe(404);
    expect(pathForm.status).toBe(404);
    const [error, expected] = [await errorOf(res), await errorOf(pathForm)];
    expect(error.code).toBe("ERR_FUNCTION_NOT_FOUND");
    expect(error.message).toBe(expected.message);
    expect(res.headers.get("server-timing")).toMatch(/total;dur=/);
    // a host of a known app with no function in the path
    const bare = await hosted.app.request("http://alpha.fn.test/");
    expect(bare.status).toBe(404);
    expect((await errorOf(bare)).code).toBe("ERR_FUNCTION_NOT_FOUND");
  });

  it("errors on an app's host are the gateway's envelopes with Server-Timing, a body over the limit included", async () => {
    const res = await hosted.app.request("http://alpha.fn.test/who", { method: "POST", body: "x".repeat(17) });
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe("ERR_BODY_TOO_LARGE");
    expect(res.headers.get("server-timing")).toMatch(/total;dur=/);
  });

  it("the API gives each function's URL on its app's host", async () => {
    const res = await hosted.app.request("http://api.test/v1/apps/alpha/functions/who", { headers: auth });
    expect(((await res.json()) as FunctionView).url).toBe("https://alpha.fn.test/who");
    const pathForm = await local.app.request("/v1/apps/alpha/functions/who", { headers: localAuth });
    expect(((await pathForm.json()) as FunctionView).url).toBe(`${local.url}/fn/alpha/who`);
  });
});

describe("the path form with an app domain configured", () => {
  it("serves nothing on the shared origin: 308 to the app's host, method and body kept, no device called", async () => {
    const subject = "apphost alpha/who";
    const before = calls.get(subject) ?? 0;
    const res = await hosted.app.request("http://api.test/fn/alpha/who/x/y?z=1", { method: "POST", body: "hello" });
    expect(res.status).toBe(308);
    expect(res.headers.get("location")).toBe("https://alpha.fn.test/who/x/y?z=1");
    const error = await errorOf(res);
    expect(error.code).toBe("ERR_APP_HOST_REQUIRED");
    expect(error.message).toContain("https://alpha.fn.test/who/x/y?z=1");
    expect((await hosted.app.request("/fn/alpha/who")).headers.get("location")).toBe("https://alpha.fn.test/who");
    expect((await hosted.app.request("/fn/alpha/who/")).headers.get("location")).toBe("https://alpha.fn.test/who/");
    expect(calls.get(subject) ?? 0).toBe(before);
    // names no app or function can have are not redirected anywhere
    const bad = await hosted.app.request("/fn/Alpha%2F..%2Fevil/who");
    expect(bad.status).toBe(404);
    expect(bad.headers.get("location")).toBeNull();
  });
});

describe("cookies and origin-wide headers a function sends", () => {
  it("on its own host: a cookie loses any Domain (host-only, so no other app and not the parent domain gets it); the rest is the app's", async () => {
    const res = await hosted.app.request("http://alpha.fn.test/cookies/");
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()).toEqual(["sid=1; Path=/; HttpOnly", "theirs=1; Path=/fn/beta/", "wide=1"]);
    expect(res.headers.get("service-worker-allowed")).toBe("/");
    expect(res.headers.get("clear-site-data")).toBe('"cookies", "storage"');
  });

  it("on the shared origin of the path form: cookies stay under /fn/<app>/, no Domain, nothing that acts on the whole origin, and the response says it is the path form", async () => {
    const res = await local.app.request("/fn/alpha/cookies/");
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()).toEqual(["sid=1; HttpOnly; Path=/fn/alpha/", "theirs=1; Path=/fn/alpha/fn/beta/", "wide=1"]);
    expect(res.headers.get("service-worker-allowed")).toBeNull();
    expect(res.headers.get("clear-site-data")).toBeNull();
    expect(res.headers.get("hearth-shared-origin")).toMatch(/local use/);
    // the path form still serves, the function seeing the path after /fn/<app>/<fn>
    expect(await seen(await local.app.request("/fn/beta/who/x?y=1"))).toEqual({ app: "beta", fn: "who", url: "http://localhost/x?y=1" });
  });
});

describe("bad Host headers", () => {
  it.each([
    ["a character no host name has", "http://a$b.fn.test/who"],
    ["a label over 63 characters", `http://${"a".repeat(64)}.fn.test/who`],
    ["a name over 253 characters", `http://${Array.from({ length: 50 }, () => "abcdef").join(".")}/v1/health`],
  ])("%s: 400 ERR_BAD_REQUEST, before any route (the API's included)", async (_why, url) => {
    const res = await hosted.app.request(url);
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.code).toBe("ERR_BAD_REQUEST");
    expect(error.message).toMatch(/Host/);
  });

  it("over a real socket, a malformed Host is a 400 and the server keeps serving", async () => {
    const { hostname, port } = new URL(local.url);
    const statusOf = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const socket = connectTcp({ host: hostname, port: Number(port) }, () => {
          socket.write(`GET /v1/health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        });
        let data = "";
        socket.setEncoding("latin1");
        socket.on("data", (chunk: string) => (data += chunk));
        socket.on("end", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
        socket.on("error", reject);
        socket.setTimeout(5_000, () => reject(new Error(`no answer for Host ${host.slice(0, 40)}`)));
      });
    for (const host of ["a b", "a$b", "a'b.test", `${"a".repeat(300)}.test`, "[::1", "a\u00e9b"]) {
      expect(await statusOf(host), JSON.stringify(host.slice(0, 40))).toBe(400);
    }
    expect(await statusOf(`${hostname}:${port}`)).toBe(200);
  });
});
