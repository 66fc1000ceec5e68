/**
 * Function logs through the API, in-process (`app.request()`), against a real
 * nats-server with JetStream. The "device" is a plain NATS connection that
 * publishes lines the way an agent does, so the test controls exactly what
 * lands in the logs stream (forged and malformed lines too).
 */
import { startNatsServer, type NatsServer } from "@hearth/devkit";
import { logSubject, Subjects, type LogEntry, type LogLine } from "@hearth/protocol";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { createDeveloper } from "./helpers.ts";

const TOKEN = "logs-token-0123456789";
let auth: { authorization: string };
const PREFIX = "logsapi";
const subjects = new Subjects(PREFIX);
const VERSION = "a".repeat(64);
const BUNDLE = "export default { fetch() { return new Response('') } }";

let nats: NatsServer;
let platform: Platform;
let device: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  platform = await startPlatform({ natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX });
  ({ auth } = await createDeveloper(platform.app, TOKEN, "logs-dev"));
  device = await connect({ servers: nats.url });
  for (const [app, fn] of [["shop", "cart"], ["shop", "quiet"], ["rival", "cart"]] as const) {
    const res = await platform.app.request(`/v1/apps/${app}/functions/${fn}`, { method: "PUT", headers: auth, body: BUNDLE });
    expect(res.status).toBe(201);
  }
});

afterAll(async () => {
  await device?.close();
  await platform?.close();
  await nats?.stop();
});

function line(app: string, fn: string, requestId: string | null, message: string, level: LogLine["level"] = "info"): LogLine {
  return { app, fn, version: VERSION, requestId, deviceId: "dev-1", level, message, at: Date.now() };
}

/** Publishes lines as a device does, and waits until the stream holds them. */
async function publish(...lines: (LogLine | string)[]): Promise<void> {
  for (const l of lines) {
    if (typeof l === "string") device.publish(logSubject(subjects, "shop", "cart"), l);
    else device.publish(logSubject(subjects, l.app, l.fn), JSON.stringify(l));
  }
  await device.flush();
  // core publishes are stored asynchronously: give the stream a moment
  await new Promise((r) => setTimeout(r, 100));
}

async function read(path: string, query = ""): Promise<LogEntry[]> {
  const res = await platform.app.request(`/v1/apps/${path}/logs${query}`, { headers: auth });
  expect(res.status).toBe(200);
  return ((await res.json()) as { lines: LogEntry[] }).lines;
}

async function envelope(res: Response) {
  const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
  expect(body.error.requestId).toBe(res.headers.get("x-request-id"));
  return body.error;
}

describe("function logs API", () => {
  it("answers an empty list for a function that has not logged yet", async () => {
    expect(await read("shop/functions/quiet")).toEqual([]);
  });

  it("returns a function's lines oldest first, with level, request id and stream position", async () => {
    await publish(line("shop", "cart", "req-1", "first", "debug"), line("shop", "cart", "req-1", "second", "warn"), line("shop", "cart", "req-2", "third", "error"));
    const lines = await read("shop/functions/cart");
    expect(lines.map((l) => [l.message, l.level, l.requestId])).toEqual([
      ["first", "debug", "req-1"],
      ["second", "warn", "req-1"],
      ["third", "error", "req-2"],
    ]);
    expect(lines[0]!.seq).toBeLessThan(lines[2]!.seq);
    expect(lines[0]).toMatchObject({ app: "shop", fn: "cart", version: VERSION, deviceId: "dev-1" });
  });

  it("keeps the newest `limit` lines, filters by request id and by since", async () => {
    expect((await read("shop/functions/cart", "?limit=2")).map((l) => l.message)).toEqual(["second", "third"]);
    expect((await read("shop/functions/cart", "?requestId=req-1")).map((l) => l.message)).toEqual(["first", "second"]);
    expect(await read("shop/functions/cart", "?limit=0")).toEqual([]);
    const cut = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    await publish(line("shop", "cart", "req-3", "after the cut"));
    expect((await read("shop/functions/cart", `?since=${cut}`)).map((l) => l.message)).toEqual(["after the cut"]);
    expect((await read("shop/functions/cart", "?since=10m")).length).toBe(4);
    // a duration longer than anything kept means all lines (not a time too far back to exist)
    expect((await read("shop/functions/cart", "?since=999999999d")).length).toBe(4);
    expect(await read("shop/functions/cart", `?since=${new Date(Date.now() + 60_000).toISOString()}`)).toEqual([]);
  });

  it("never shows another function's lines: same function name in another app, forged and malformed lines", async () => {
    await publish(
      line("rival", "cart", "rival-req", "rival secret"),
      "not json",
      JSON.stringify({ ...line("shop", "cart", "bad", "x"), level: "fatal" }),
    );
    // a line on shop/cart's subject that claims to be rival's: dropped, shown to neither
    device.publish(logSubject(subjects, "shop", "cart"), JSON.stringify(line("rival", "cart", "forged", "forged line")));
    await device.flush();
    await new Promise((r) => setTimeout(r, 100));
    const shop = await read("shop/functions/cart");
    expect(shop.map((l) => l.message)).not.toContain("rival secret");
    expect(shop.map((l) => l.message)).not.toContain("forged line");
    expect(shop.every((l) => l.app === "shop" && l.fn === "cart")).toBe(true);
    const rival = await read("rival/functions/cart");
    expect(rival.map((l) => l.message)).toEqual(["rival secret"]);
  });

  it("answers 404 for an unknown function, 400 for a bad query, 401 without the token", async () => {
    const missing = await platform.app.request("/v1/apps/shop/functions/nope/logs", { headers: auth });
    expect(missing.status).toBe(404);
    expect((await envelope(missing)).code).toBe("ERR_FUNCTION_NOT_FOUND");
    for (const query of ["?since=yesterday", "?limit=5000", "?limit=-1", "?requestId=a%20b", "?follow=maybe", "?colour=red"]) {
      const bad = await platform.app.request(`/v1/apps/shop/functions/cart/logs${query}`, { headers: auth });
      expect(bad.status, query).toBe(400);
      const error = await envelope(bad);
      expect(error.code).toBe("ERR_BAD_REQUEST");
      expect(error.message).not.toMatch(/ZodError|"code":/);
    }
    const noToken = await platform.app.request("/v1/apps/shop/functions/cart/logs");
    expect(noToken.status).toBe(401);
  });

  it("follows: recent lines first, then each new line as it is published (Server-Sent Events)", async () => {
    const abort = new AbortController();
    const res = await platform.app.request("/v1/apps/shop/functions/cart/logs?follow=1&limit=1", { headers: auth, signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    const events = async (n: number): Promise<LogEntry[]> => {
      for (;;) {
        const found = [...text.matchAll(/event: line\ndata: (.*)\nid: (\d+)\n\n/g)].map((m) => JSON.parse(m[1]!) as LogEntry);
        if (found.length >= n) return found;
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended after ${found.length} events`);
        text += decoder.decode(value, { stream: true });
      }
    };
    const backlog = await events(1);
    expect(backlog.map((l) => l.message)).toEqual(["after the cut"]);
    await publish(line("rival", "cart", "r", "not mine"), line("shop", "cart", "req-live", "live line"));
    const live = await events(2);
    expect(live[1]).toMatchObject({ message: "live line", requestId: "req-live", app: "shop", fn: "cart" });
    expect(text).not.toContain("not mine");
    abort.abort();
    await reader.cancel().catch(() => undefined);
  });
});

describe("function logs and shutdown", () => {
  it("a platform that stops ends its open follow streams instead of waiting for them", async () => {
    const second = await startPlatform({ natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX });
    // over real HTTP: an open response would keep the server from closing
    const res = await fetch(`${second.url}/v1/apps/shop/functions/cart/logs?follow=1&limit=0`, { headers: auth });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read(); // the stream is open
    const started = Date.now();
    await second.close();
    for (;;) if ((await reader.read()).done) break;
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe("function logs without JetStream", () => {
  it("answers 503 ERR_LOGS_UNAVAILABLE and the platform still runs", async () => {
    await using plain = await startNatsServer();
    await using bare = await startPlatform({ natsUrl: plain.url, token: TOKEN, log: silentLogger(), subjectPrefix: "logsbare", ledger: "off" });
    await bare.app.request("/v1/apps/shop/functions/cart", { method: "PUT", headers: auth, body: BUNDLE });
    const res = await bare.app.request("/v1/apps/shop/functions/cart/logs", { headers: auth });
    expect(res.status).toBe(503);
    expect((await envelope(res)).code).toBe("ERR_LOGS_UNAVAILABLE");
  });
});
