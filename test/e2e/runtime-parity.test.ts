/**
 * End to end, libraries that support Cloudflare Workers, as tenants: each
 * bundled by the SDK the way `hearth deploy` bundles it (workerd conditions),
 * deployed to a local Hearth of real processes and called over HTTP through
 * the gateway. jose (ES256/RS256 JWTs, JWE both ways, a JWKS-verifying auth
 * middleware against an identity provider served on 127.0.0.1, on a port the
 * function's policy and the device's owner both allow), an app built
 * on CompressionStream/DecompressionStream, and Hono's cors() and etag()
 * answering a preflight and a 304 with exactly the headers the app set.
 */
import { createHash } from "node:crypto";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { gzipSync, inflateRawSync } from "node:zlib";
import { startLocalHearth, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import * as jose from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import honoApp from "../../examples/hono-app/src/index.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const APP = "parity";
const ISSUER = "https://idp.example/";

let hearth: LocalHearth;
let client: HearthClient;
let idp: Server;
let idpKeys: jose.GenerateKeyPairResult;
let jwksRequests = 0;
const urls = new Map<string, string>();

beforeAll(async () => {
  // the identity provider: a JWKS on 127.0.0.1, which the device's owner lets functions reach
  idpKeys = await jose.generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await jose.exportJWK(idpKeys.publicKey)), kid: "idp-1", alg: "RS256", use: "sig" };
  idp = createServer((req, res) => {
    jwksRequests++;
    if (req.url !== "/.well-known/jwks.json") return res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => idp.listen(0, "127.0.0.1", resolve));
  const idpPort = (idp.address() as AddressInfo).port;
  const jwksUrl = `http://127.0.0.1:${idpPort}/.well-known/jwks.json`;

  hearth = await startLocalHearth({
    logLevel: "warn",
    devices: [{ deviceId: "parity-device", location: "berlin:52.52,13.40", env: { HEARTH_OUTBOUND_ALLOW_ADDRESSES: "127.0.0.1", HEARTH_OUTBOUND_ALLOW_PORTS: String(idpPort) } }],
  });
  client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
  const deploys: [string, string, Parameters<HearthClient["deployFile"]>[1]][] = [
    ["jose-auth", "examples/jose-auth/src/index.ts", { app: APP, name: "jose-auth", replicas: 1, env: { JWKS_URL: jwksUrl, ISSUER, AUDIENCE: "parity" }, fetchHosts: ["127.0.0.1"], fetchPorts: [idpPort] }],
    ["compression", "examples/compression/src/index.ts", { app: APP, name: "compression", replicas: 1 }],
    ["hono-app", "examples/hono-app/src/index.ts", { app: APP, name: "hono-app", replicas: 1 }],
  ];
  for (const [name, file, options] of deploys) {
    await client.deployFile(`${ROOT}${file}`, options);
    urls.set(name, (await client.waitUntilReady(APP, name, { timeoutMs: 30_000 })).url);
  }
  await client.deploy({
    app: APP,
    name: "bare",
    replicas: 1,
    code: `export default { fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/moved") return Response.redirect("https://example.com/elsewhere", 301);
      if (path === "/found") return Response.redirect("https://example.com/there");
      if (path === "/empty") return new Response(null, { status: 204 });
      if (path === "/bytes") return new Response(new Uint8Array([1, 2, 3]));
      return new Response(null);
    } };`,
  });
  urls.set("bare", (await client.waitUntilReady(APP, "bare", { timeoutMs: 30_000 })).url);
}, 180_000);

afterAll(async () => {
  await hearth?.stop();
  await new Promise<void>((resolve) => (idp ? idp.close(() => resolve()) : resolve()));
});

const url = (name: string, path: string) => `${urls.get(name)}${path}`;
const post = (name: string, path: string, body: unknown) => fetch(url(name, path), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** The headers the server wrote, as written (no fetch client in between to add, fold or decode any). */
function rawResponse(target: string, init: { method?: string; headers?: Record<string, string> } = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
    const req = httpRequest(target, { method: init.method ?? "GET", headers: init.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("jose", () => {
  it("signs ES256 and RS256 JWTs that the host's jose verifies, and verifies its own, refusing tampered ones", async () => {
    for (const alg of ["ES256", "RS256"] as const) {
      const signed = await post("jose-auth", `/sign/${alg}`, { sub: "ada", scope: "read" });
      expect(signed.status).toBe(200);
      const { token, jwk } = (await signed.json()) as { token: string; jwk: jose.JWK };
      const { payload, protectedHeader } = await jose.jwtVerify(token, await jose.importJWK(jwk, alg), { issuer: "urn:hearth:examples:jose-auth" });
      expect(protectedHeader.alg).toBe(alg);
      expect(payload).toMatchObject({ sub: "ada", scope: "read" });
      const verified = await post("jose-auth", `/verify/${alg}`, { token });
      expect(await verified.json()).toMatchObject({ valid: true, alg, payload: { sub: "ada" } });
      const [h, , s] = token.split(".");
      const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: "mallory" })).toString("base64url")}.${s}`;
      const refused = await post("jose-auth", `/verify/${alg}`, { token: forged });
      expect(refused.status).toBe(401);
      expect(await refused.json()).toEqual({ valid: false, error: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" });
    }
  });

  it("JWE both ways: encrypts to the host's RSA-OAEP-256 key, decrypts what the host encrypted to its ECDH-ES key", async () => {
    const recipient = await jose.generateKeyPair("RSA-OAEP-256", { extractable: true });
    const sealed = await post("jose-auth", "/encrypt", { jwk: await jose.exportJWK(recipient.publicKey), plaintext: "for the host's eyes" });
    const { jwe } = (await sealed.json()) as { jwe: string };
    const opened = await jose.compactDecrypt(jwe, recipient.privateKey);
    expect(new TextDecoder().decode(opened.plaintext)).toBe("for the host's eyes");
    expect(opened.protectedHeader).toMatchObject({ alg: "RSA-OAEP-256", enc: "A256GCM" });

    const fnKey = (await (await fetch(url("jose-auth", "/jwe-key"))).json()) as jose.JWK;
    expect(fnKey).toMatchObject({ kty: "EC", crv: "P-256", alg: "ECDH-ES+A256KW" });
    expect(fnKey.d).toBeUndefined();
    const toFn = await new jose.CompactEncrypt(new TextEncoder().encode("for the function")).setProtectedHeader({ alg: "ECDH-ES+A256KW", enc: "A128CBC-HS256" }).encrypt(await jose.importJWK(fnKey, "ECDH-ES+A256KW"));
    expect(await (await post("jose-auth", "/decrypt", { jwe: toFn })).json()).toEqual({ plaintext: "for the function", alg: "ECDH-ES+A256KW", enc: "A128CBC-HS256" });
  });

  it("an auth middleware verifies bearer tokens against the identity provider's JWKS, fetched from 127.0.0.1", async () => {
    const token = (claims: jose.JWTPayload, audience = "parity", expires = "2m") =>
      new jose.SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "idp-1" }).setIssuer(ISSUER).setAudience(audience).setIssuedAt().setExpirationTime(expires).sign(idpKeys.privateKey);
    const me = (bearer?: string) => fetch(url("jose-auth", "/me"), bearer ? { headers: { authorization: `Bearer ${bearer}` } } : {});
    const ok = await me(await token({ sub: "grace", scope: "admin" }));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ sub: "grace", scope: "admin" });
    expect(jwksRequests).toBeGreaterThan(0);
    const again = await me(await token({ sub: "grace" }));
    expect(again.status).toBe(200);

    const wrongAudience = await me(await token({ sub: "grace" }, "someone-else"));
    expect(wrongAudience.status).toBe(401);
    expect(await wrongAudience.json()).toEqual({ error: "ERR_JWT_CLAIM_VALIDATION_FAILED" });
    const expired = await me(await token({ sub: "grace", exp: Math.floor(Date.now() / 1000) - 60 }, "parity", "-1m"));
    expect(expired.status).toBe(401);
    const otherKey = await jose.generateKeyPair("RS256");
    const strangers = await new jose.SignJWT({ sub: "mallory" }).setProtectedHeader({ alg: "RS256", kid: "idp-1" }).setIssuer(ISSUER).setAudience("parity").setExpirationTime("2m").sign(otherKey.privateKey);
    expect((await me(strangers)).status).toBe(401);
    const none = await me();
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="jose-auth"');
  });
});

describe("an app on CompressionStream and DecompressionStream", () => {
  it("streams a gzip-encoded report that any HTTP client reads", async () => {
    const raw = await rawResponse(url("compression", "/report?rows=1000"));
    expect(raw.status).toBe(200);
    expect(raw.headers["content-encoding"]).toBe("gzip");
    const lines = (await import("node:zlib")).gunzipSync(raw.body).toString().trim().split("\n");
    expect(lines).toHaveLength(1000);
    expect(JSON.parse(lines[999]!)).toEqual({ row: 999, day: "2026-09-27", value: (999 * 7919) % 1000 });
    // and a fetch client decodes it itself
    expect((await (await fetch(url("compression", "/report?rows=10"))).text()).trim().split("\n")).toHaveLength(10);
  });

  it("inflates and hashes uploads as they stream; makes raw deflate that zlib reads; refuses what is not gzip", async () => {
    const data = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `line ${i} of the upload\n`).join(""));
    const inflated = await fetch(url("compression", "/inflate?format=gzip"), { method: "POST", body: gzipSync(data) });
    expect(await inflated.json()).toEqual({ bytes: data.byteLength, lines: 20_000, sha256: createHash("sha256").update(data).digest("hex") });
    const deflated = await fetch(url("compression", "/deflate-raw"), { method: "POST", body: data });
    expect(inflateRawSync(Buffer.from(await deflated.arrayBuffer())).equals(data)).toBe(true);
    const bad = await fetch(url("compression", "/inflate?format=gzip"), { method: "POST", body: data });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/^DecompressionStream: /);
  });
});

describe("exactly the headers the function set", () => {
  /** What the gateway adds to every answer of a function (its own, documented in docs/api.md) and HTTP/1.1 framing. */
  const GATEWAY = new Set(["x-request-id", "server-timing", "x-hearth-device", "x-hearth-region", "hearth-shared-origin", "date", "connection", "keep-alive", "transfer-encoding", "content-length"]);
  const functionHeaders = (headers: Record<string, string | string[] | undefined>) =>
    Object.fromEntries(Object.entries(headers).filter(([name]) => !GATEWAY.has(name)).map(([name, value]) => [name, name === "x-response-time" ? "(timing)" : value]));
  /** The same Hono app run here, in-process: the headers it sets itself. */
  const inProcess = async (path: string, init: RequestInit) => {
    const res = await honoApp.request(path, init);
    const out: Record<string, string> = {};
    res.headers.forEach((value, name) => (out[name] = name === "x-response-time" ? "(timing)" : value));
    return { status: res.status, headers: out };
  };

  it("Hono's cors() preflight: a 204 with its CORS headers and no content-type", async () => {
    const headers = { origin: "https://example.com", "access-control-request-method": "POST", "access-control-request-headers": "content-type" };
    const res = await rawResponse(url("hono-app", "/api/echo"), { method: "OPTIONS", headers });
    const expected = await inProcess("/api/echo", { method: "OPTIONS", headers });
    expect(res.status).toBe(204);
    expect(expected.status).toBe(204);
    expect(res.headers["content-type"]).toBeUndefined();
    expect(res.headers["access-control-allow-methods"]).toBe("GET,POST");
    expect(functionHeaders(res.headers)).toEqual(expected.headers);
  });

  it("Hono's etag(): a 304 with its ETag and no content-type", async () => {
    const first = await fetch(url("hono-app", "/api/users/1"));
    const tag = first.headers.get("etag")!;
    const res = await rawResponse(url("hono-app", "/api/users/1"), { headers: { "if-none-match": tag } });
    const expected = await inProcess("/api/users/1", { headers: { "if-none-match": tag } });
    expect(res.status).toBe(304);
    expect(expected.status).toBe(304);
    expect(res.headers["content-type"]).toBeUndefined();
    expect(res.headers["etag"]).toBe(tag);
    expect(functionHeaders(res.headers)).toEqual(expected.headers);
  });

  it("Response.redirect (301, 302), a 204 and header-less answers gain no content-type", async () => {
    const moved = await rawResponse(url("bare", "/moved"));
    expect([moved.status, moved.headers["location"], moved.headers["content-type"]]).toEqual([301, "https://example.com/elsewhere", undefined]);
    const found = await rawResponse(url("bare", "/found"));
    expect([found.status, found.headers["location"], found.headers["content-type"]]).toEqual([302, "https://example.com/there", undefined]);
    for (const path of ["/empty", "/bytes", "/nothing"]) {
      const res = await rawResponse(url("bare", path));
      expect(functionHeaders(res.headers)).toEqual({});
    }
    expect((await rawResponse(url("bare", "/bytes"))).body).toEqual(Buffer.from([1, 2, 3]));
  });
});
