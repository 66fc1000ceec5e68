import { createHash } from "node:crypto";
import { startNatsServer, type NatsServer } from "@hearth/devkit";
import { devicePermissions, INVOKE_HEADERS, Subjects } from "@hearth/protocol";
import { createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser, fmtCreds, type UserPermissionsLimits } from "@nats-io/jwt";
import { connect, credsAuthenticator, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BundleCache } from "./index.ts";

const subjects = new Subjects("bundletest");
const DEVICE = "bundle-dev";
const GOOD = "export default { fetch: () => new Response('good') }";
const GOOD_HASH = createHash("sha256").update(GOOD).digest("hex");
const LIE_HASH = "0".repeat(64);

/**
 * A fabric of the test's own, as the platform sets one up (decentralized JWT,
 * no anonymous clients): the platform's side holds the whole account, the
 * device's credential has exactly a device's permissions (protocol's
 * devicePermissions) and its own inbox prefix.
 */
async function fabric() {
  const operator = createOperator();
  const system = createAccount();
  const account = createAccount();
  const open = { limits: { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 } };
  const config = [
    `operator: ${await encodeOperator("bundletest", operator, { system_account: system.getPublicKey() })}`,
    `system_account: ${system.getPublicKey()}`,
    "resolver: MEMORY",
    "resolver_preload: {",
    `  ${system.getPublicKey()}: ${await encodeAccount("SYS", system, open, { signer: operator })}`,
    `  ${account.getPublicKey()}: ${await encodeAccount("HEARTH", account, open, { signer: operator })}`,
    "}",
  ].join("\n");
  const creds = async (name: string, permissions: Partial<UserPermissionsLimits> = {}) => {
    const user = createUser();
    return fmtCreds(await encodeUser(name, user, account, permissions), user);
  };
  const allowed = devicePermissions(subjects, DEVICE, 10_000);
  const device = await creds(DEVICE, {
    pub: { allow: allowed.pub.allow, deny: [] },
    sub: { allow: allowed.sub.allow, deny: [] },
    resp: { max: allowed.resp.max, ttl: allowed.resp.ttlMs * 1_000_000 },
  });
  return { config, platform: await creds("test-platform"), device };
}

let nats: NatsServer;
let server: NatsConnection;
let device: NatsConnection;
let served = 0;
/** The device each request came from, as the platform knows it: from the subject it was sent on. */
const askedBy: (string | undefined)[] = [];

beforeAll(async () => {
  const { config, platform, device: deviceCreds } = await fabric();
  nats = await startNatsServer({ auth: () => config });
  server = await connect({ servers: nats.url, authenticator: credsAuthenticator(platform) });
  device = await connect({ servers: nats.url, authenticator: credsAuthenticator(deviceCreds), inboxPrefix: subjects.inbox(DEVICE) });
  server.subscribe(subjects.bundleGets, {
    callback: (_err, msg) => {
      served++;
      askedBy.push(subjects.deviceOf(msg.subject, "bundle"));
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
  it("fetches a bundle once, on the device's own subject, verifies its hash, and serves it from memory after", async () => {
    const cache = new BundleCache(() => device, subjects, DEVICE);
    const before = served;
    const [a, b] = await Promise.all([cache.get(GOOD_HASH), cache.get(GOOD_HASH)]);
    expect(a).toBe(GOOD);
    expect(b).toBe(GOOD);
    expect(await cache.get(GOOD_HASH)).toBe(GOOD);
    expect(served - before).toBe(1);
    expect(askedBy.at(-1)).toBe(DEVICE);
  });

  it("refuses bytes whose SHA-256 is not the one asked for", async () => {
    const cache = new BundleCache(() => device, subjects, DEVICE);
    await expect(cache.get(LIE_HASH)).rejects.toMatchObject({ code: "ERR_BUNDLE_INTEGRITY" });
  });

  it("turns the platform's error reply into a typed error", async () => {
    const cache = new BundleCache(() => device, subjects, DEVICE);
    await expect(cache.get("1".repeat(64))).rejects.toMatchObject({ code: "ERR_VERSION_NOT_FOUND" });
  });
});
