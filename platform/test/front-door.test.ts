/**
 * The front door against a real platform process's HTTP server (a real
 * nats-server with auth behind it, a fake device answering calls): slow
 * clients are cut off, oversized requests are refused with the JSON
 * envelope and the right status, and rate and in-flight limits answer 429
 * with Retry-After.
 */
import { connect as connectTcp, type Socket } from "node:net";
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { INVOKE_HEADERS } from "@hearth/protocol";
import { headers, type Msg } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FabricAuthority, FakeDevice, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { FRONT_DOOR } from "@hearth/edge";
import { createDeveloper } from "./helpers.ts";

const TOKEN = "front-door-token-0123456789";
const authority = FabricAuthority.generate();
let nats: NatsServer;
let platform: Platform;
let device: FakeDevice;
/** Calls of `door/held` the device holds until the test lets them go. */
const held: Msg[] = [];

const answer = (msg: Msg) => {
  const h = headers();
  h.set(INVOKE_HEADERS.status, "200");
  h.set(INVOKE_HEADERS.device, "door-dev");
  msg.respond("ok", { headers: h });
};

beforeAll(async () => {
  nats = await startNatsServer({ auth: natsAuth(authority) });
  platform = await startPlatform({
    fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), ledger: "off", tickMs: 200,
    subjectPrefix: "door", redisPrefix: "door:",
    callLimits: { perIpPerSecond: 5, perAppPerSecond: 30, perFunctionInFlight: 2, perIpInFlight: 3 },
    clientIpHeader: "x-client-ip",
  });
  const { auth } = await createDeveloper(platform.app, TOKEN, "door-dev");
  device = await FakeDevice.start({
    url: nats.url, prefix: "door", devices: platform.devices, deviceId: "door-dev",
    onInvoke: (msg, fn) => {
      if (fn === "held") {
        held.push(msg);
        return "silent";
      }
      answer(msg);
    },
  });
  for (const [app, fn] of [["door", "echo"], ["door", "held"], ["busy", "echo"]] as const) {
    const res = await platform.app.request(`/v1/apps/${app}/functions/${fn}?requestBytes=1024`, { method: "PUT", headers: auth, body: "export default { fetch() { return new Response('') } }" });
    expect(res.status).toBe(201);
    await waitFor(`${app}/${fn} placed`, async () => device.functions.has(`${app}/${fn}`) && (await platform.store.getPlacement(app, fn)).devices["door-dev"] !== undefined, { timeoutMs: 10_000 });
  }
}, 30_000);

afterAll(async () => {
  for (const msg of held.splice(0)) answer(msg);
  await device?.die();
  await platform?.close();
  await nats?.stop();
});

/** Opens a raw TCP connection to the platform and writes `text`; resolves with all it hears until the server closes. */
function rawExchange(text: string, keepWriting?: (socket: Socket) => void): Promise<{ heard: string; afterMs: number }> {
  const { port } = new URL(platform.url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connectTcp(Number(port), "127.0.0.1", () => {
      socket.write(text);
      keepWriting?.(socket);
    });
    let heard = "";
    socket.on("data", (d: Buffer) => (heard += d.toString()));
    socket.once("close", () => resolve({ heard, afterMs: Date.now() - started }));
    socket.once("error", reject);
    // bounded: a server that never cuts the client off fails the test, not the suite
    setTimeout(() => socket.destroy(), 30_000).unref();
  });
}

const envelopeOf = (raw: string) => JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4)) as { error: { code: string; message: string } };

describe("slow clients", () => {
  it("cuts off a client trickling its headers, and one stalling mid-body, within about 10 s, with 408", async () => {
    const slowloris = rawExchange("GET /fn/door/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-One: 1\r\n", (socket) => {
      // one more header line every 2 s, never the blank line that ends them
      const timer = setInterval(() => socket.writable && socket.write(`X-More: ${Date.now()}\r\n`), 2_000);
      socket.once("close", () => clearInterval(timer));
    });
    const stalled = rawExchange("POST /fn/door/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nonly part of it");
    const [a, b] = await Promise.all([slowloris, stalled]);
    for (const cut of [a, b]) {
      expect(cut.afterMs).toBeLessThan(FRONT_DOOR.headersTimeoutMs + 3 * FRONT_DOOR.checkEveryMs + 1_000);
      expect(cut.heard).toMatch(/^HTTP\/1\.1 408 /);
      expect(envelopeOf(cut.heard).error.code).toBe("ERR_REQUEST_TIMEOUT");
    }
  }, 30_000);
});

describe("oversized requests", () => {
  it("answers a long URL with 414, big headers with 431 and a big body with 413, each in the envelope", async () => {
    const url = await fetch(`${platform.url}/fn/door/echo?q=${"a".repeat(FRONT_DOOR.maxUrlBytes)}`, { headers: { "x-client-ip": "10.0.0.1" } });
    expect(url.status).toBe(414);
    expect(((await url.json()) as { error: { code: string } }).error.code).toBe("ERR_URL_TOO_LONG");

    const big = await rawExchange(`GET /fn/door/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${"b".repeat(FRONT_DOOR.maxHeaderBytes + 1)}\r\n\r\n`);
    expect(big.heard).toMatch(/^HTTP\/1\.1 431 /);
    expect(envelopeOf(big.heard).error.code).toBe("ERR_HEADERS_TOO_LARGE");

    const body = await fetch(`${platform.url}/fn/door/echo`, { method: "POST", body: "x".repeat(2_000), headers: { "x-client-ip": "10.0.0.2" } });
    expect(body.status).toBe(413);
    expect(((await body.json()) as { error: { code: string } }).error.code).toBe("ERR_BODY_TOO_LARGE");
  });
});

describe("rate and in-flight limits", () => {
  const call = (app: string, fn: string, ip: string) => fetch(`${platform.url}/fn/${app}/${fn}`, { headers: { "x-client-ip": ip } });
  /** Calls one after the other (each answered at once: all within the rate's second, none held in flight). */
  const inTurn = async (count: number, app: string, ip: (i: number) => string) => {
    const out: Response[] = [];
    for (let i = 0; i < count; i++) out.push(await call(app, "echo", ip(i)));
    return out;
  };

  /**
   * A burst that took longer than the limiters' 1 s window (a loaded machine) shows nothing: it is sent again in a
   * fresh window, a few times at most.
   */
  const inOneWindow = async (count: number, app: string, ip: (attempt: number, i: number) => string) => {
    for (let attempt = 0; ; attempt++) {
      const started = performance.now();
      const out = await inTurn(count, app, (i) => ip(attempt, i));
      if (performance.now() - started < 900 || attempt === 4) return { out, attempt };
      await new Promise((r) => setTimeout(r, 1_100)); // every window this burst touched is over
    }
  };

  it("answers one client IP over its rate with 429 and Retry-After, and serves another meanwhile", async () => {
    const { out: burst, attempt } = await inOneWindow(9, "door", (attempt) => `192.0.2.${1 + 10 * attempt}`);
    const ip = `192.0.2.${1 + 10 * attempt}`;
    const statuses = burst.map((r) => r.status);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(5);
    const refused = burst.find((r) => r.status === 429)!;
    expect(refused).toBeDefined();
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const error = ((await refused.json()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe("ERR_RATE_LIMITED");
    expect(error.message).toContain(`from ${ip};`);
    expect((await call("door", "echo", "192.0.2.2")).status).toBe(200);
  });

  it("answers an app over its rate with 429, whichever IPs call", async () => {
    const { out: burst } = await inOneWindow(40, "busy", (_attempt, i) => `198.51.100.${i}`);
    expect(burst.filter((r) => r.status === 200).length).toBeLessThanOrEqual(30);
    const refused = burst.find((r) => r.status === 429)!;
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/app busy/);
  });

  it("caps one client's calls in flight, body reading included, and serves other clients meanwhile", async () => {
    const { port } = new URL(platform.url);
    /** A request from the client that trickles its body: it holds one of the client's three slots, and nothing of the function's. */
    const trickle = () => {
      const socket = connectTcp(Number(port), "127.0.0.1");
      let answered = false;
      socket.on("error", () => undefined);
      socket.once("data", () => (answered = true));
      socket.once("close", () => (answered = true));
      socket.write("POST /fn/door/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Client-Ip: 192.0.2.77\r\nContent-Length: 100\r\n\r\nsome");
      return { socket, answered: () => answered };
    };
    const trickling = Array.from({ length: 3 }, trickle);
    try {
      // polled once a second: the client's rate (5 a second) is not what this test is about
      let message = "";
      await waitFor("the client's fourth call refused for its calls in flight", async () => {
        // a trickle that reached the server while a poll held a slot was itself refused: send it again, and poll next time
        let resent = false;
        for (const [i, t] of trickling.entries()) {
          if (!t.answered()) continue;
          t.socket.destroy();
          trickling[i] = trickle();
          resent = true;
        }
        if (resent) return false;
        const res = await call("door", "echo", "192.0.2.77");
        message = res.status === 429 ? ((await res.json()) as { error: { message: string } }).error.message : "";
        return /in flight/.test(message);
      }, { timeoutMs: 15_000, intervalMs: 1_000 });
      expect(message).toMatch(/192\.0\.2\.77 has 3 calls in flight/);
      // the function's own slots (2) are free: another client is served
      expect((await call("door", "echo", "192.0.2.78")).status).toBe(200);
    } finally {
      for (const t of trickling) t.socket.destroy();
    }
  });

  it("caps the calls of one function in flight, and frees the slots as calls end", async () => {
    const first = [call("door", "held", "203.0.113.1"), call("door", "held", "203.0.113.2")];
    await waitFor("two calls held by the device", () => held.length === 2, { timeoutMs: 15_000 });
    const third = await call("door", "held", "203.0.113.3");
    expect(third.status).toBe(429);
    expect(((await third.json()) as { error: { message: string } }).error.message).toMatch(/door\/held has 2 calls in flight/);
    // other functions are not held up by it
    expect((await call("door", "echo", "203.0.113.4")).status).toBe(200);
    for (const msg of held.splice(0)) answer(msg);
    expect((await Promise.all(first)).map((r) => r.status)).toEqual([200, 200]);
    const after = call("door", "held", "203.0.113.5");
    await waitFor("the next call held", () => held.length === 1, { timeoutMs: 15_000 });
    answer(held.shift()!);
    expect((await after).status).toBe(200);
  });
});
