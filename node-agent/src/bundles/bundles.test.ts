import { createHash } from "node:crypto";
import { startNatsServer, type NatsServer } from "@hearth/devkit";
import { INVOKE_HEADERS, Subjects } from "@hearth/protocol";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BundleCache } from "./index.ts";

const subjects = new Subjects("bundletest");
const GOOD = "export default { fetch: () => new Response('good') }";
const GOOD_HASH = createHash("sha256").update(GOOD).digest("hex");
const LIE_HASH = "0".repeat(64);

let nats: NatsServer;
let server: NatsConnection;
let device: NatsConnection;
let served = 0;

beforeAll(async () => {
  nats = await startNatsServer();
  server = await connect({ servers: nats.url });
  device = await connect({ servers: nats.url });
  server.subscribe(subjects.bundleGet, {
    callback: (_err, msg) => {
      served++;
      const { hash } = msg.json<{ hash: string }>();
      if (hash === GOOD_HASH || hash === LIE_HASH) return void msg.respond(GOOD); // the lie: other bytes than asked for
      const h = headers();
      h.set(INVOKE_HEADERS.errorCode, "ERR_VERSION_NOT_FOUND");
      h.set(INVOKE_HEADERS.errorMessage, `no bundle ${hash}`);
      msg.respond(new Uint8Array(0), { headers: h });
    },
  });
  await server.flush();
});
afterAll(async () => {
  await device?.close();
  await server?.close();
  await nats?.stop();
});

describe("BundleCache", () => {
  it("fetches a bundle once, verifies its hash, and serves it from memory after", async () => {
    const cache = new BundleCache(device, subjects);
    const before = served;
    const [a, b] = await Promise.all([cache.get(GOOD_HASH), cache.get(GOOD_HASH)]);
    expect(a).toBe(GOOD);
    expect(b).toBe(GOOD);
    expect(await cache.get(GOOD_HASH)).toBe(GOOD);
    expect(served - before).toBe(1);
  });

  it("refuses bytes whose SHA-256 is not the one asked for", async () => {
    const cache = new BundleCache(device, subjects);
    await expect(cache.get(LIE_HASH)).rejects.toMatchObject({ code: "ERR_BUNDLE_INTEGRITY" });
  });

  it("turns the platform's error reply into a typed error", async () => {
    const cache = new BundleCache(device, subjects);
    await expect(cache.get("1".repeat(64))).rejects.toMatchObject({ code: "ERR_VERSION_NOT_FOUND" });
  });
});
