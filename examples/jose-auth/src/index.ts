/**
 * examples/jose-auth — jose, the JOSE library most identity providers' SDKs
 * use, unchanged on Hearth as on Workers: JWTs signed and verified with ES256
 * and RS256, JWE made and opened, and an auth middleware that checks bearer
 * tokens against the identity provider's JWKS URL (env JWKS_URL, fetched and
 * cached by jose; deploy with --allow-fetch --fetch-host <its host>).
 *
 *   curl -X POST "$URL/sign/ES256" -d '{"sub":"ada"}'     {"token":"eyJ...","jwk":{...}}
 *   curl -X POST "$URL/verify/ES256" -d '{"token":"..."}'  {"valid":true,"payload":{...}}
 *   curl -H "authorization: Bearer $TOKEN" "$URL/me"       {"sub":"ada",...}
 */
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import * as jose from "jose";

type Bindings = { JWKS_URL?: string; ISSUER?: string; AUDIENCE?: string };
type Variables = { user: jose.JWTPayload };

const ISSUED_BY = "urn:hearth:examples:jose-auth";
const SIGNING = ["ES256", "RS256"] as const;
type SigningAlg = (typeof SIGNING)[number];

// Keys made once per isolate, on first use, and kept: as a Worker keeps them in module scope.
const signingKeys = new Map<SigningAlg, Promise<jose.GenerateKeyPairResult>>();
const signingKey = (alg: SigningAlg) => {
  let pair = signingKeys.get(alg);
  if (!pair) signingKeys.set(alg, (pair = jose.generateKeyPair(alg, { modulusLength: 2048 })));
  return pair;
};
let jweKeys: Promise<jose.GenerateKeyPairResult> | undefined;
const jweKey = () => (jweKeys ??= jose.generateKeyPair("ECDH-ES+A256KW", { crv: "P-256" }));
let remoteJwks: { url: string; get: ReturnType<typeof jose.createRemoteJWKSet> } | undefined;

const app = new Hono<{ Bindings: Bindings; Variables: Variables }>();

const isSigningAlg = (alg: string): alg is SigningAlg => (SIGNING as readonly string[]).includes(alg);

app.post("/sign/:alg", async (c) => {
  const alg = c.req.param("alg");
  if (!isSigningAlg(alg)) return c.json({ error: `alg must be one of ${SIGNING.join(", ")}` }, 400);
  const { privateKey, publicKey } = await signingKey(alg);
  const claims = await c.req.json<jose.JWTPayload>();
  const token = await new jose.SignJWT(claims).setProtectedHeader({ alg, kid: alg }).setIssuer(ISSUED_BY).setIssuedAt().setExpirationTime("5m").sign(privateKey);
  return c.json({ token, jwk: { ...(await jose.exportJWK(publicKey)), alg, kid: alg } });
});

app.post("/verify/:alg", async (c) => {
  const alg = c.req.param("alg");
  if (!isSigningAlg(alg)) return c.json({ error: `alg must be one of ${SIGNING.join(", ")}` }, 400);
  const { token } = await c.req.json<{ token: string }>();
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(token, (await signingKey(alg)).publicKey, { issuer: ISSUED_BY, algorithms: [alg] });
    return c.json({ valid: true, alg: protectedHeader.alg, payload });
  } catch (error) {
    return c.json({ valid: false, error: (error as jose.errors.JOSEError).code ?? "ERR_INVALID" }, 401);
  }
});

// JWE: encrypt to a recipient's RSA-OAEP-256 public JWK; open what was encrypted to this function's ECDH-ES key.
app.post("/encrypt", async (c) => {
  const { jwk, plaintext } = await c.req.json<{ jwk: jose.JWK; plaintext: string }>();
  const key = await jose.importJWK(jwk, "RSA-OAEP-256");
  const jwe = await new jose.CompactEncrypt(new TextEncoder().encode(plaintext)).setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" }).encrypt(key);
  return c.json({ jwe });
});
app.get("/jwe-key", async (c) => c.json({ ...(await jose.exportJWK((await jweKey()).publicKey)), alg: "ECDH-ES+A256KW" }));
app.post("/decrypt", async (c) => {
  const { jwe } = await c.req.json<{ jwe: string }>();
  try {
    const { plaintext, protectedHeader } = await jose.compactDecrypt(jwe, (await jweKey()).privateKey);
    return c.json({ plaintext: new TextDecoder().decode(plaintext), alg: protectedHeader.alg, enc: protectedHeader.enc });
  } catch (error) {
    return c.json({ error: (error as jose.errors.JOSEError).code ?? "ERR_INVALID" }, 400);
  }
});

/** Bearer tokens of the identity provider at JWKS_URL: verified against its published keys (fetched once, then cached by jose). */
const requireUser = createMiddleware<{ Bindings: Bindings; Variables: Variables }>(async (c, next) => {
  const url = c.env?.JWKS_URL;
  if (!url) return c.json({ error: "JWKS_URL is not set" }, 500);
  if (remoteJwks?.url !== url) remoteJwks = { url, get: jose.createRemoteJWKSet(new URL(url)) };
  const bearer = /^Bearer ([\w.-]+)$/.exec(c.req.header("authorization") ?? "");
  if (!bearer) return c.json({ error: "a bearer token is needed" }, 401, { "www-authenticate": 'Bearer realm="jose-auth"' });
  try {
    const { payload } = await jose.jwtVerify(bearer[1]!, remoteJwks.get, {
      ...(c.env.ISSUER ? { issuer: c.env.ISSUER } : {}),
      audience: c.env.AUDIENCE ?? "hearth-example",
    });
    c.set("user", payload);
  } catch (error) {
    return c.json({ error: (error as jose.errors.JOSEError).code ?? "ERR_INVALID" }, 401, { "www-authenticate": 'Bearer error="invalid_token"' });
  }
  await next();
});

app.get("/me", requireUser, (c) => {
  const user = c.get("user");
  return c.json({ sub: user.sub, scope: user["scope"] ?? null });
});

export default app;
