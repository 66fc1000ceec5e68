/**
 * Function logs through the API, in-process (`app.request()`), against a real
 * nats-server with JetStream. The "devices" are joined fake devices that
 * publish lines the way an agent does, on their own subject, so the test
 * controls exactly what reaches the platform (forged and malformed lines too)
 * and sees what the platform keeps of it.
 */
import { createHash } from "node:crypto";
import { startNatsServer, type NatsServer } from "@hearth/devkit";
import { logSubject, MAX_LOG_BATCH_LINES, Subjects, type LogEntry, type LogLine } from "@hearth/protocol";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAsDevice, connectAsPlatform, FabricAuthority, FakeDevice, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { logNames } from "../src/logs/index.ts";
import { createDeveloper } from "./helpers.ts";

const TOKEN = "logs-token-0123456789";
let auth: { authorization: string };
const PREFIX = "logsapi";
const subjects = new Subjects(PREFIX);
const BUNDLE = "export default { fetch() { return new Response('') } }";
/** Every function here runs this bundle: a line names the version its device runs. */
const VERSION = createHash("sha256").update(BUNDLE).digest("hex");
const authority = FabricAuthority.generate();

let nats: NatsServer;
let platform: Platform;
/** A live device every function here is placed on. */
let device: FakeDevice;
/** A device that joined properly but was never given anything to run (it sends no heartbeats, so it is offered nothing). */
let stranger: { id: string; nc: NatsConnection };

async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, tickMs: 200 });
  ({ auth } = await createDeveloper(platform.app, TOKEN, "logs-dev"));
  device = await FakeDevice.start({ url: nats.url, prefix: PREFIX, devices: platform.devices, deviceId: "dev-1" });
  const joined = await joinTestDevice(platform.devices, "dev-stranger");
  stranger = { id: joined.deviceId, nc: await connectAsDevice(nats.url, joined, PREFIX) };
  const functions = [["shop", "cart"], ["shop", "quiet"], ["rival", "cart"]] as const;
  for (const [app, fn] of functions) {
    const res = await platform.app.request(`/v1/apps/${app}/functions/${fn}`, { method: "PUT", headers: auth, body: BUNDLE });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { version: string }).version).toBe(VERSION);
  }
  // the platform keeps a device's lines only for functions placed on it
  for (const [app, fn] of functions) {
    await until(`${app}/${fn} placed on ${device.id}`, async () => (await platform.store.getPlacement(app, fn)).devices[device.id] !== undefined && device.functions.has(`${app}/${fn}`));
  }
});

afterAll(async () => {
  await device?.die();
  await stranger?.nc.close();
  await platform?.close();
  await nats?.stop();
});

function line(app: string, fn: string, requestId: string | null, message: string, level: LogLine["level"] = "info"): LogLine {
  return { app, fn, version: VERSION, requestId, deviceId: "dev-1", level, message, at: Date.now() };
}

/** How many lines the logs stream holds, all functions together. */
async function storedLines(): Promise<number> {
  const jsm = await jetstreamManager(platform.nc);
  return (await jsm.streams.info(logNames(subjects).stream)).state.messages;
}

/** Publishes lines as a device does, on its own subject, without waiting for them. */
function send(from: { id: string; nc: NatsConnection }, ...lines: (LogLine | string)[]): void {
  for (const l of lines) from.nc.publish(subjects.deviceLogs(from.id), typeof l === "string" ? l : JSON.stringify(l));
}

/** Publishes lines the platform keeps, as a device does, and waits until the stream holds them. */
async function publish(...lines: LogLine[]): Promise<void> {
  const before = await storedLines();
  send(device, ...lines);
  await device.nc.flush();
  await until(`${lines.length} more stored lines`, async () => (await storedLines()) >= before + lines.length);
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
    const before = await storedLines();
    // dropped by the platform: malformed lines, and a line in another device's name
    send(device, "not json", JSON.stringify({ ...line("shop", "cart", "bad", "x"), level: "fatal" }), { ...line("shop", "cart", "other-device", "in the stranger's name"), deviceId: stranger.id });
    // a joined device that shop/cart is not placed on: neither in its own name nor in the name of the device that runs it
    send(stranger, { ...line("shop", "cart", "not-placed", "from a device it is not placed on"), deviceId: stranger.id }, line("shop", "cart", "impersonated", "in dev-1's name"));
    await stranger.nc.flush();
    // kept: sent after those, so they have been seen by the time it is stored
    await publish(line("rival", "cart", "rival-req", "rival secret"));
    expect(await storedLines()).toBe(before + 1);

    // a device cannot publish on a function's logs subject at all: nats-server refuses it
    const errors: string[] = [];
    void (async () => {
      for await (const s of device.nc.status()) if (s.type === "error") errors.push(String(s.error?.message));
    })();
    device.nc.publish(logSubject(subjects, "shop", "cart"), JSON.stringify(line("shop", "cart", "direct", "straight into the stream")));
    await until("the server refused the direct publish", () => errors.some((e) => /Permissions Violation for Publish/.test(e)));

    // a line on shop/cart's subject that claims to be rival's (only a platform credential can put it there): shown to neither
    const nc = await connectAsPlatform(nats.url, authority);
    const beforeForged = await storedLines();
    nc.publish(logSubject(subjects, "shop", "cart"), JSON.stringify(line("rival", "cart", "forged", "forged line")));
    await nc.flush();
    await nc.close();
    await until("the forged line stored", async () => (await storedLines()) === beforeForged + 1);

    const shop = await read("shop/functions/cart");
    const dropped = ["rival secret", "forged line", "x", "in the stranger's name", "from a device it is not placed on", "in dev-1's name", "straight into the stream"];
    for (const message of dropped) expect(shop.map((l) => l.message)).not.toContain(message);
    expect(shop.every((l) => l.app === "shop" && l.fn === "cart" && l.deviceId === "dev-1")).toBe(true);
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
  it("reads a device's batch (what agents send) line by line, in order: a bad line drops itself, not its neighbours", async () => {
    const before = await storedLines();
    const batch = [
      line("shop", "cart", "batch-1", "batch first"),
      { ...line("shop", "cart", "batch-2", "in the stranger's name, in a batch"), deviceId: stranger.id },
      { ...line("shop", "cart", "batch-3", "bad level"), level: "fatal" },
      "not a line",
      line("rival", "cart", "batch-4", "batch second, another function"),
      line("shop", "cart", "batch-5", "batch third"),
    ];
    device.nc.publish(subjects.deviceLogs(device.id), JSON.stringify(batch));
    // a batch over the line cap is dropped whole, before any line is looked at
    device.nc.publish(subjects.deviceLogs(device.id), JSON.stringify(Array.from({ length: MAX_LOG_BATCH_LINES + 1 }, (_, i) => line("shop", "cart", "too-many", `over ${i}`))));
    device.nc.publish(subjects.deviceLogs(device.id), "[]");
    await device.nc.flush();
    await publish(line("shop", "cart", "batch-6", "after the batches"));
    expect(await storedLines()).toBe(before + 4);
    const shop = (await read("shop/functions/cart")).filter((l) => l.requestId?.startsWith("batch-"));
    expect(shop.map((l) => l.message)).toEqual(["batch first", "batch third", "after the batches"]);
    expect((await read("rival/functions/cart")).map((l) => l.message)).toContain("batch second, another function");
  });

  it("a platform that stops ends its open follow streams instead of waiting for them", async () => {
    const second = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX });
    // over real HTTP: an open response would keep the server from closing
    const res = await fetch(`${second.url}/v1/apps/shop/functions/cart/logs?follow=1&limit=0`, { headers: auth });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read(); // the stream is open
    // the stream's end is timed, read alongside the close (which waits for no follower: it would never return if it did)
    const started = Date.now();
    const ended = (async () => {
      for (;;) if ((await reader.read()).done) return Date.now() - started;
    })();
    await second.close();
    expect(await ended).toBeLessThan(10_000);
  });
});

describe("function logs without JetStream", () => {
  it("answers 503 ERR_LOGS_UNAVAILABLE and the platform still runs", async () => {
    await using plain = await startNatsServer({ auth: natsAuth(authority) });
    await using bare = await startPlatform({ fabricKeys: authority.keys, natsUrl: plain.url, token: TOKEN, log: silentLogger(), subjectPrefix: "logsbare", ledger: "off" });
    await bare.app.request("/v1/apps/shop/functions/cart", { method: "PUT", headers: auth, body: BUNDLE });
    const res = await bare.app.request("/v1/apps/shop/functions/cart/logs", { headers: auth });
    expect(res.status).toBe(503);
    expect((await envelope(res)).code).toBe("ERR_LOGS_UNAVAILABLE");
  });
});
