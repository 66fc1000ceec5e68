import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Heartbeat } from "@hearth/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../log/index.ts";
import type { DeviceEntry } from "../state/index.ts";
import { DoorDirectory } from "./directory.ts";

/** A stand-in door: answers its identity as `deviceId`, or redirects, and counts what it was asked. */
let server: Server;
let base = "";
const asked: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    asked.push(req.url ?? "");
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname.startsWith("/moved")) {
      res.writeHead(302, { location: `${base}/d1/.well-known/hearth-door${url.search}` }).end();
      return;
    }
    const deviceId = url.pathname.split("/")[1];
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ deviceId, nonce: url.searchParams.get("nonce") }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function entry(deviceId: string, url: string, location?: { label: string; lat: number; lon: number }): DeviceEntry {
  const heartbeat = {
    deviceId, ownerId: "o", region: "eu", location: location ?? { label: "unknown", lat: 0, lon: 0 }, cores: 1, memoryMb: 256, activeCalls: 0, freeCores: 1,
    functions: [{ app: "a", fn: "f", version: "0".repeat(64) }], agentVersion: "t", sentAt: Date.now(), door: { url, located: location !== undefined },
  } satisfies Heartbeat;
  return { heartbeat, lastSeen: Date.now() } as DeviceEntry;
}

function directory(devices: DeviceEntry[], allowPrivate: boolean, networks: Record<string, string[]> = {}) {
  const byId = new Map(devices.map((d) => [d.heartbeat.deviceId, d]));
  return new DoorDirectory({ liveDevices: () => [...byId.values()], liveDevice: (id) => byId.get(id), networks: async (id) => networks[id] ?? ["a"], allowPrivate, log: silentLogger() });
}

describe("the door directory's check of advertised URLs", () => {
  it("lists a door that answers as its own device, never one that answers as another", async () => {
    const dir = directory([entry("d1", `${base}/d1`), entry("d2", `${base}/d1`), entry("d3", `${base}/d3`)], true, { d3: ["other"] });
    await dir.sweep();
    expect(dir.checkOf("d1")).toEqual({ url: `${base}/d1`, ok: true });
    expect(dir.checkOf("d2")).toEqual({ url: `${base}/d1`, ok: false });
    // d3's door is real, but it is a member of another network
    expect(dir.list("a", undefined).map((d) => d.deviceId)).toEqual(["d1"]);
    expect(dir.list("other", undefined).map((d) => d.deviceId)).toEqual(["d3"]);
  });

  it("never connects to a private or loopback address unless the operator allows it", async () => {
    const before = asked.length;
    const dir = directory([entry("d1", `${base}/d1`)], false);
    await dir.sweep();
    expect(dir.checkOf("d1")?.ok).toBe(false);
    expect(asked.length).toBe(before);
    expect(dir.list("a", undefined)).toEqual([]);
  });

  it("follows no redirect", async () => {
    const dir = directory([entry("d1", `${base}/moved`)], true);
    await dir.sweep();
    expect(dir.checkOf("d1")?.ok).toBe(false);
  });

  it("points to a door nearer the caller than the gateway, preferring one where the function runs", async () => {
    const berlin = { label: "berlin", lat: 52.52, lon: 13.4 };
    const dir = directory([entry("d1", `${base}/d1`, berlin)], true);
    await dir.sweep();
    const frankfurt = { lat: 50.11, lon: 8.68 };
    expect(dir.nearerDoor("a", "f", { lat: 52.5, lon: 13.4 }, frankfurt)).toBe(`${base}/d1`);
    expect(dir.nearerDoor("a", "f", { lat: 50.1, lon: 8.7 }, frankfurt)).toBeUndefined();
    expect(dir.nearerDoor("b", "f", { lat: 52.5, lon: 13.4 }, frankfurt)).toBeUndefined();
  });
});
