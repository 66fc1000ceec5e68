/**
 * Web Crypto conformance inside the sandbox, run exactly as a tenant runs it:
 * each case is a function deployed to a real SandboxPool, checked against
 * published vectors (RFC 8032 Ed25519, RFC 7515 JOSE examples, RFC 7748
 * X25519, the GCM specification's and NIST SP 800-38A's AES vectors, RFC 6070
 * and RFC 7914 PBKDF2, RFC 5869 HKDF, RFC 3394 AES-KW, RFC 4231 HMAC), or, for
 * RSA and ECDH (whose published vectors are too long to carry here), against
 * the host's own OpenSSL through node:crypto.
 */
import { constants, createECDH, createPublicKey, generateKeyPairSync, privateDecrypt, publicEncrypt, sign, verify } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxPool } from "../src/sandbox/supervisor.ts";
import { call, json, jsonFunction, startPool, uniqueKey } from "./helpers.ts";

let pool: SandboxPool;
beforeAll(async () => {
  pool = await startPool();
});
afterAll(async () => {
  await pool?.[Symbol.asyncDispose]();
});

/** Helpers every case's function starts with. */
const PRELUDE = `
  const s = crypto.subtle, enc = new TextEncoder();
  const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
  const h = (x) => new Uint8Array(x.match(/../g).map((p) => parseInt(p, 16)));
  const b64u = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  const fromB64u = (t) => Uint8Array.from(atob(t.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const fails = async (f) => { try { await f(); return "resolved"; } catch (e) { return e.name; } };
`;
const run = async (body: string, limits = {}) => {
  const result = await call(pool, uniqueKey("wc"), jsonFunction(PRELUDE + body), { limits: { cpuMs: 10_000, wallMs: 20_000, ...limits } });
  return json(result) as Record<string, unknown>;
};

describe("known vectors", () => {
  it("Ed25519: RFC 8032 tests 1 and 2 (sign is deterministic, verify, raw and pkcs8 keys)", async () => {
    const out = await run(`
      const key = await s.importKey("pkcs8", h("302e020100300506032b657004220420" + "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"), "Ed25519", true, ["sign"]);
      const jwk = await s.exportKey("jwk", key);
      const pub = await s.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, "Ed25519", true, ["verify"]);
      const sig = await s.sign("Ed25519", key, new Uint8Array(0));
      const pub2 = await s.importKey("raw", h("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"), { name: "Ed25519" }, false, ["verify"]);
      const sig2 = h("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
      return { sig: hex(sig), pub: hex(await s.exportKey("raw", pub)), ok: await s.verify("Ed25519", pub, sig, new Uint8Array(0)),
               ok2: await s.verify("Ed25519", pub2, sig2, h("72")), bad2: await s.verify("Ed25519", pub2, sig2, h("73")), alg: key.algorithm, type: [key.type, pub.type] };
    `);
    expect(out).toEqual({
      sig: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
      pub: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
      ok: true,
      ok2: true,
      bad2: false,
      alg: { name: "Ed25519" },
      type: ["private", "public"],
    });
  });

  it("JOSE: RFC 7515 A.1 (HS256 with a JWK oct key) and A.3 (ES256 verify with a JWK EC key)", async () => {
    const out = await run(`
      const input = enc.encode("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ");
      const hk = await s.importKey("jwk", { kty: "oct", k: "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow" }, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
      const es = await s.importKey("jwk", { kty: "EC", crv: "P-256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
        { name: "ECDSA", namedCurve: "P-256" }, true, ["verify"]);
      const esInput = enc.encode("eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ");
      const esSig = fromB64u("DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q");
      const tampered = esSig.slice(); tampered[0] ^= 1;
      const spki = await s.exportKey("spki", es);
      const back = await s.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, true, ["verify"]);
      return { hs: b64u(await s.sign("HMAC", hk, input)), hsOk: await s.verify("HMAC", hk, fromB64u("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), input),
               es: await s.verify({ name: "ECDSA", hash: "SHA-256" }, es, esSig, esInput), esBad: await s.verify({ name: "ECDSA", hash: "SHA-256" }, es, tampered, esInput),
               raw: (await s.exportKey("raw", es)).byteLength, spki: await s.verify({ name: "ECDSA", hash: { name: "SHA-256" } }, back, esSig, esInput), alg: es.algorithm, ext: es.extractable };
    `);
    expect(out).toEqual({ hs: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", hsOk: true, es: true, esBad: false, raw: 65, spki: true, alg: { name: "ECDSA", namedCurve: "P-256" }, ext: true });
  });

  it("AES-GCM (GCM spec tests 2 and 3), AES-CBC and AES-CTR (NIST SP 800-38A F.2.1, F.5.1), AES-KW (RFC 3394 4.1)", async () => {
    const out = await run(`
      const g = await s.importKey("raw", h("feffe9928665731c6d6a8f9467308308"), "AES-GCM", false, ["encrypt", "decrypt"]);
      const iv = h("cafebabefacedbaddecaf888");
      const c3 = await s.encrypt({ name: "AES-GCM", iv }, g, h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"));
      const p3 = await s.decrypt({ name: "AES-GCM", iv }, g, c3);
      const broken = new Uint8Array(c3).slice(); broken[5] ^= 1;
      const g0 = await s.importKey("raw", new Uint8Array(16), "AES-GCM", false, ["encrypt"]);
      const c2 = await s.encrypt({ name: "AES-GCM", iv: new Uint8Array(12), tagLength: 128 }, g0, new Uint8Array(16));
      const aesKey = h("2b7e151628aed2a6abf7158809cf4f3c");
      const cbc = await s.importKey("raw", aesKey, { name: "AES-CBC" }, false, ["encrypt", "decrypt"]);
      const cbcIv = h("000102030405060708090a0b0c0d0e0f");
      const cc = await s.encrypt({ name: "AES-CBC", iv: cbcIv }, cbc, h("6bc1bee22e409f96e93d7e117393172a"));
      const ctr = await s.importKey("raw", aesKey, "AES-CTR", false, ["encrypt"]);
      const ct = await s.encrypt({ name: "AES-CTR", counter: h("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"), length: 64 }, ctr, h("6bc1bee22e409f96e93d7e117393172a"));
      const kek = await s.importKey("raw", h("000102030405060708090a0b0c0d0e0f"), "AES-KW", false, ["wrapKey", "unwrapKey"]);
      const data = await s.importKey("raw", h("00112233445566778899aabbccddeeff"), "AES-GCM", true, ["encrypt"]);
      const wrapped = await s.wrapKey("raw", data, kek, "AES-KW");
      const unwrapped = await s.unwrapKey("raw", wrapped, kek, "AES-KW", "AES-GCM", true, ["encrypt"]);
      return { c3: hex(c3), p3: hex(p3).slice(0, 16), broken: await fails(() => s.decrypt({ name: "AES-GCM", iv }, g, broken)), c2: hex(c2),
               cbc: hex(cc), cbcBack: hex(await s.decrypt({ name: "AES-CBC", iv: cbcIv }, cbc, cc)), ctr: hex(ct),
               kw: hex(wrapped), unwrapped: hex(await s.exportKey("raw", unwrapped)), alg: unwrapped.algorithm };
    `);
    expect(out).toEqual({
      c3: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985" + "4d5c2af327cd64a62cf35abd2ba6fab4",
      p3: "d9313225f88406e5",
      broken: "OperationError",
      c2: "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf",
      cbc: expect.stringMatching(/^7649abac8119b246cee98e9b12e9197d[0-9a-f]{32}$/),
      cbcBack: "6bc1bee22e409f96e93d7e117393172a",
      ctr: "874d6191b620e3261bef6864990db6ce",
      kw: "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5",
      unwrapped: "00112233445566778899aabbccddeeff",
      alg: { name: "AES-GCM", length: 128 },
    });
  });

  it("PBKDF2 (RFC 6070 SHA-1, RFC 7914 SHA-256), HKDF (RFC 5869 test 1), HMAC (RFC 4231 test 2), X25519 (RFC 7748 6.1), digests", async () => {
    const out = await run(`
      const pw = await s.importKey("raw", enc.encode("password"), "PBKDF2", false, ["deriveBits"]);
      const p = {};
      for (const c of [1, 2, 4096]) p[c] = hex(await s.deriveBits({ name: "PBKDF2", salt: enc.encode("salt"), iterations: c, hash: "SHA-1" }, pw, 160));
      const pw2 = await s.importKey("raw", enc.encode("passwd"), { name: "PBKDF2" }, false, ["deriveBits"]);
      const p256 = hex(await s.deriveBits({ name: "PBKDF2", salt: enc.encode("salt"), iterations: 1, hash: "SHA-256" }, pw2, 512));
      const ikm = await s.importKey("raw", new Uint8Array(22).fill(0x0b), "HKDF", false, ["deriveBits", "deriveKey"]);
      const hkdf = hex(await s.deriveBits({ name: "HKDF", hash: "SHA-256", salt: h("000102030405060708090a0b0c"), info: h("f0f1f2f3f4f5f6f7f8f9") }, ikm, 336));
      const jefe = await s.importKey("raw", enc.encode("Jefe"), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      const hmac = hex(await s.sign("HMAC", jefe, enc.encode("what do ya want for nothing?")));
      const alice = await s.importKey("pkcs8", h("302e020100300506032b656e04220420" + "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"), "X25519", false, ["deriveBits"]);
      const bob = await s.importKey("raw", h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"), "X25519", true, []);
      const shared = hex(await s.deriveBits({ name: "X25519", public: bob }, alice, 256));
      const d = {};
      for (const a of ["SHA-1", "SHA-256", "SHA-384", "SHA-512"]) d[a] = hex(await s.digest(a, enc.encode("abc"))).slice(0, 16);
      return { p, p256, hkdf, hmac, shared, d };
    `);
    expect(out).toEqual({
      p: { 1: "0c60c80f961f0e71f3a9b524af6012062fe037a6", 2: "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957", 4096: "4b007901b765489abead49d926f721d065a429c1" },
      p256: "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
      hkdf: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
      hmac: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      shared: "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
      d: { "SHA-1": "a9993e364706816a", "SHA-256": "ba7816bf8f01cfea", "SHA-384": "cb00753f45a35e8b", "SHA-512": "ddaf35a193617aba" },
    });
  });
});

describe("against the host's OpenSSL", () => {
  it("RSASSA-PKCS1-v1_5 (deterministic: same bytes as node:crypto), RSA-PSS and RSA-OAEP both ways, with pkcs8/spki/jwk keys", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pkcs8 = privateKey.export({ format: "der", type: "pkcs8" }).toString("hex");
    const spki = publicKey.export({ format: "der", type: "spki" }).toString("hex");
    const message = Buffer.from("signed by the sandbox");
    const oaep = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, Buffer.from("for the sandbox only"));
    const out = await run(`
      const priv = await s.importKey("pkcs8", h("${pkcs8}"), { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["sign"]);
      const pub = await s.importKey("spki", h("${spki}"), { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, true, ["verify"]);
      const msg = enc.encode("signed by the sandbox");
      const rs256 = await s.sign("RSASSA-PKCS1-v1_5", priv, msg);
      const pss = await s.importKey("pkcs8", h("${pkcs8}"), { name: "RSA-PSS", hash: "SHA-256" }, false, ["sign"]);
      const ps256 = await s.sign({ name: "RSA-PSS", saltLength: 32 }, pss, msg);
      const dec = await s.importKey("pkcs8", h("${pkcs8}"), { name: "RSA-OAEP", hash: "SHA-256" }, false, ["decrypt"]);
      const jwk = await s.exportKey("jwk", pub);
      const encKey = await s.importKey("jwk", { kty: "RSA", n: jwk.n, e: jwk.e }, { name: "RSA-OAEP", hash: "SHA-256" }, false, ["encrypt"]);
      return { rs256: hex(rs256), ok: await s.verify("RSASSA-PKCS1-v1_5", pub, rs256, msg), ps256: hex(ps256),
               oaep: new TextDecoder().decode(await s.decrypt({ name: "RSA-OAEP" }, dec, h("${oaep.toString("hex")}"))),
               sealed: hex(await s.encrypt({ name: "RSA-OAEP", label: new Uint8Array(0) }, encKey, enc.encode("for the host"))),
               alg: pub.algorithm, jwk: [jwk.kty, jwk.alg, jwk.e, jwk.ext, jwk.key_ops] };
    `);
    expect(out.rs256).toBe(sign("sha256", message, privateKey).toString("hex"));
    expect(out.ok).toBe(true);
    expect(verify("sha256", message, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, Buffer.from(out.ps256 as string, "hex"))).toBe(true);
    expect(out.oaep).toBe("for the sandbox only");
    const sealed = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, Buffer.from(out.sealed as string, "hex"));
    expect(sealed.toString()).toBe("for the host");
    expect(out.alg).toEqual({ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: { 0: 1, 1: 0, 2: 1 }, hash: { name: "SHA-256" } });
    expect(out.jwk).toEqual(["RSA", "RS256", "AQAB", true, ["verify"]]);
  });

  it("ECDH on P-256, P-384 and P-521: the sandbox derives what the host derives", async () => {
    for (const [curve, nodeCurve, bits] of [["P-256", "prime256v1", 256], ["P-384", "secp384r1", 384], ["P-521", "secp521r1", 528]] as const) {
      const host = createECDH(nodeCurve);
      host.generateKeys();
      const out = await run(`
        const pair = await s.generateKey({ name: "ECDH", namedCurve: "${curve}" }, false, ["deriveBits"]);
        const peer = await s.importKey("raw", h("${host.getPublicKey("hex")}"), { name: "ECDH", namedCurve: "${curve}" }, false, []);
        const bits = await s.deriveBits({ name: "ECDH", public: peer }, pair.privateKey, ${bits});
        return { bits: hex(bits), pub: hex(await s.exportKey("raw", pair.publicKey)), usages: [pair.publicKey.usages, pair.privateKey.usages], ext: pair.publicKey.extractable };
      `);
      expect(out.bits).toBe(host.computeSecret(Buffer.from(out.pub as string, "hex")).toString("hex"));
      expect(out.usages).toEqual([[], ["deriveBits"]]);
      // the public half of a pair is always extractable
      expect(out.ext).toBe(true);
    }
  });
});

describe("the API as functions use it", () => {
  it("generateKey for every algorithm gives keys with the right algorithm, type and usages", async () => {
    const out = await run(`
      const rsa = { modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
      const cases = {
        hmac: [{ name: "HMAC", hash: "SHA-512" }, ["sign", "verify"]], rsassa: [{ name: "RSASSA-PKCS1-v1_5", ...rsa }, ["sign", "verify"]],
        pss: [{ name: "RSA-PSS", ...rsa }, ["sign", "verify"]], oaep: [{ name: "RSA-OAEP", ...rsa }, ["encrypt", "decrypt", "wrapKey", "unwrapKey"]],
        p384: [{ name: "ECDSA", namedCurve: "P-384" }, ["sign", "verify"]], p521: [{ name: "ECDSA", namedCurve: "P-521" }, ["sign", "verify"]],
        ecdh: [{ name: "ECDH", namedCurve: "P-256" }, ["deriveKey"]], ed: [{ name: "Ed25519" }, ["sign", "verify"]], x: [{ name: "X25519" }, ["deriveBits"]],
        gcm: [{ name: "AES-GCM", length: 256 }, ["encrypt", "decrypt"]], cbc: [{ name: "AES-CBC", length: 128 }, ["encrypt"]],
        ctr: [{ name: "AES-CTR", length: 192 }, ["decrypt"]], kw: [{ name: "AES-KW", length: 256 }, ["wrapKey", "unwrapKey"]],
      };
      const out = {};
      for (const [name, [alg, usages]] of Object.entries(cases)) {
        const k = await s.generateKey(alg, true, usages);
        const list = k instanceof CryptoKey ? [k] : [k.publicKey, k.privateKey];
        out[name] = list.map((key) => [key.type, key.algorithm.name, key.algorithm.namedCurve ?? key.algorithm.length ?? key.algorithm.modulusLength ?? null, key.usages.join(",")]);
      }
      const p521 = await s.generateKey({ name: "ECDSA", namedCurve: "P-521" }, false, ["sign", "verify"]);
      const sig = await s.sign({ name: "ECDSA", hash: "SHA-512" }, p521.privateKey, enc.encode("x"));
      out.p521sig = [sig.byteLength, await s.verify({ name: "ECDSA", hash: "SHA-512" }, p521.publicKey, sig, enc.encode("x"))];
      return out;
    `);
    expect(out).toEqual({
      hmac: [["secret", "HMAC", 1024, "sign,verify"]],
      rsassa: [["public", "RSASSA-PKCS1-v1_5", 2048, "verify"], ["private", "RSASSA-PKCS1-v1_5", 2048, "sign"]],
      pss: [["public", "RSA-PSS", 2048, "verify"], ["private", "RSA-PSS", 2048, "sign"]],
      oaep: [["public", "RSA-OAEP", 2048, "encrypt,wrapKey"], ["private", "RSA-OAEP", 2048, "decrypt,unwrapKey"]],
      p384: [["public", "ECDSA", "P-384", "verify"], ["private", "ECDSA", "P-384", "sign"]],
      p521: [["public", "ECDSA", "P-521", "verify"], ["private", "ECDSA", "P-521", "sign"]],
      ecdh: [["public", "ECDH", "P-256", ""], ["private", "ECDH", "P-256", "deriveKey"]],
      ed: [["public", "Ed25519", null, "verify"], ["private", "Ed25519", null, "sign"]],
      x: [["public", "X25519", null, ""], ["private", "X25519", null, "deriveBits"]],
      gcm: [["secret", "AES-GCM", 256, "encrypt,decrypt"]],
      cbc: [["secret", "AES-CBC", 128, "encrypt"]],
      ctr: [["secret", "AES-CTR", 192, "decrypt"]],
      kw: [["secret", "AES-KW", 256, "wrapKey,unwrapKey"]],
      p521sig: [132, true],
    });
  });

  it("deriveKey (PBKDF2 → AES-GCM, HKDF → HMAC, ECDH → AES-KW), wrapKey/unwrapKey of a JWK with AES-GCM and RSA-OAEP", async () => {
    const out = await run(`
      const pw = await s.importKey("raw", enc.encode("correct horse"), "PBKDF2", false, ["deriveKey"]);
      const aes = await s.deriveKey({ name: "PBKDF2", salt: enc.encode("pepper"), iterations: 1000, hash: "SHA-256" }, pw, { name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
      const ikm = await s.importKey("raw", new Uint8Array(32).fill(7), "HKDF", false, ["deriveKey"]);
      const mac = await s.deriveKey({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: enc.encode("mac") }, ikm, { name: "HMAC", hash: "SHA-256", length: 256 }, false, ["sign"]);
      const a = await s.generateKey({ name: "ECDH", namedCurve: "P-384" }, false, ["deriveKey"]);
      const b = await s.generateKey({ name: "ECDH", namedCurve: "P-384" }, false, ["deriveKey"]);
      const kwA = await s.deriveKey({ name: "ECDH", public: b.publicKey }, a.privateKey, { name: "AES-KW", length: 256 }, false, ["wrapKey"]);
      const kwB = await s.deriveKey({ name: "ECDH", public: a.publicKey }, b.privateKey, { name: "AES-KW", length: 256 }, false, ["unwrapKey"]);
      const wrapped = await s.wrapKey("raw", aes, kwA, "AES-KW");
      const same = await s.unwrapKey("raw", wrapped, kwB, "AES-KW", "AES-GCM", true, ["decrypt"]);
      const iv = new Uint8Array(12);
      const sealed = await s.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode("aad") }, aes, enc.encode("secret note"));
      const rsa = await s.generateKey({ name: "RSA-OAEP", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, false, ["wrapKey", "unwrapKey"]);
      const gcmWrap = await s.generateKey({ name: "AES-GCM", length: 128 }, false, ["wrapKey", "unwrapKey"]);
      const asJwk = await s.wrapKey("jwk", aes, gcmWrap, { name: "AES-GCM", iv });
      const fromJwk = await s.unwrapKey("jwk", asJwk, gcmWrap, { name: "AES-GCM", iv }, { name: "AES-GCM" }, false, ["decrypt"]);
      const viaRsa = await s.unwrapKey("raw", await s.wrapKey("raw", aes, rsa.publicKey, { name: "RSA-OAEP" }), rsa.privateKey, { name: "RSA-OAEP" }, "AES-GCM", false, ["decrypt"]);
      const open = async (k) => new TextDecoder().decode(await s.decrypt({ name: "AES-GCM", iv, additionalData: enc.encode("aad") }, k, sealed));
      return { same: await open(same), jwk: await open(fromJwk), rsa: await open(viaRsa), mac: [mac.algorithm.length, (await s.sign("HMAC", mac, enc.encode("m"))).byteLength],
               exported: (await s.exportKey("raw", aes)).byteLength };
    `);
    expect(out).toEqual({ same: "secret note", jwk: "secret note", rsa: "secret note", mac: [256, 32], exported: 32 });
  });

  it("honours extractable, usages and algorithms with the errors Workers give", async () => {
    const out = await run(`
      const locked = await s.generateKey({ name: "AES-GCM", length: 128 }, false, ["encrypt"]);
      const kw = await s.generateKey({ name: "AES-KW", length: 128 }, true, ["wrapKey"]);
      const hmac = await s.importKey("raw", enc.encode("k"), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
      return {
        exportRaw: await fails(() => s.exportKey("raw", locked)), exportJwk: await fails(() => s.exportKey("jwk", locked)),
        wrap: await fails(() => s.wrapKey("raw", locked, kw, "AES-KW")), usage: await fails(() => s.sign("HMAC", hmac, enc.encode("x"))),
        decryptUsage: await fails(() => s.decrypt({ name: "AES-GCM", iv: new Uint8Array(12) }, locked, new Uint8Array(32))),
        unknown: await fails(() => s.generateKey({ name: "MD5-RSA" }, true, ["sign"])), badUsage: await fails(() => s.generateKey({ name: "AES-GCM", length: 128 }, true, ["sign"])),
        badLength: await fails(() => s.generateKey({ name: "AES-GCM", length: 100 }, true, ["encrypt"])), digest: await fails(() => s.digest("MD5", new Uint8Array(1))),
        badJwk: await fails(() => s.importKey("jwk", { kty: "EC", crv: "P-256", x: "AA" }, { name: "ECDSA", namedCurve: "P-256" }, true, ["verify"])),
        notBytes: await fails(() => s.sign("HMAC", hmac, "a string")), noKey: await fails(() => s.sign("HMAC", { type: "secret" }, new Uint8Array(1))),
        json: JSON.stringify(locked), string: String(locked), ext: locked.extractable,
        subtle: [crypto.subtle instanceof SubtleCrypto, crypto.subtle === crypto.subtle, Object.prototype.toString.call(crypto.subtle)],
        ctor: await fails(() => new CryptoKey()),
      };
    `);
    expect(out).toEqual({
      exportRaw: "InvalidAccessError",
      exportJwk: "InvalidAccessError",
      wrap: "InvalidAccessError",
      usage: "InvalidAccessError",
      decryptUsage: "InvalidAccessError",
      unknown: "NotSupportedError",
      badUsage: "SyntaxError",
      badLength: "OperationError",
      digest: "NotSupportedError",
      badJwk: "DataError",
      notBytes: "TypeError",
      noKey: "TypeError",
      json: "{}",
      string: "[object CryptoKey]",
      ext: false,
      subtle: [true, true, "[object SubtleCrypto]"],
      ctor: "TypeError",
    });
  });

  it("a key kept in a global serves later calls of the same isolate, as on Workers; a buffer changed after the call changes nothing", async () => {
    const key = uniqueKey("cached-key");
    const code = `let cached;
      export default { async fetch(request) {
        const s = crypto.subtle, enc = new TextEncoder();
        cached ??= await s.importKey("raw", enc.encode("kept"), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
        const data = enc.encode("message");
        const pending = s.sign("HMAC", cached, data);
        data.fill(0);
        const sig = new Uint8Array(await pending);
        return new Response([...sig.slice(0, 4)].join(","));
      } };`;
    const first = await call(pool, key, code, {});
    const second = await call(pool, key, code, {});
    const { createHmac } = await import("node:crypto");
    const expected = [...createHmac("sha256", "kept").update("message").digest().subarray(0, 4)].join(",");
    expect(first.ok && new TextDecoder().decode(first.body)).toBe(expected);
    expect(second.ok && new TextDecoder().decode(second.body)).toBe(expected);
  });

  it("crypto.DigestStream hashes what is written to it", async () => {
    const out = await run(`
      const ds = new crypto.DigestStream("SHA-256");
      const w = ds.getWriter();
      await w.write(enc.encode("ab"));
      await w.write(enc.encode("c"));
      await w.close();
      const piped = new crypto.DigestStream({ name: "SHA-1" });
      await new Blob(["abc"]).stream().pipeTo(piped);
      return { d: hex(await ds.digest), p: hex(await piped.digest), isStream: ds instanceof WritableStream };
    `);
    expect(out).toEqual({ d: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", p: "a9993e364706816aba3e25717850c26c9cd0d89d", isStream: true });
  });
});

// ECDSA signatures made in the sandbox verify on the host (DER-free, IEEE P1363 as Web Crypto makes them)
it("an ES384 signature made in the sandbox verifies with node:crypto", async () => {
  const out = await run(`
    const k = await s.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, ["sign", "verify"]);
    const sig = await s.sign({ name: "ECDSA", hash: "SHA-384" }, k.privateKey, enc.encode("hello"));
    return { sig: hex(sig), spki: hex(await s.exportKey("spki", k.publicKey)), pkcs8: (await s.exportKey("pkcs8", k.privateKey)).byteLength > 100 };
  `);
  const key = createPublicKey({ key: Buffer.from(out.spki as string, "hex"), format: "der", type: "spki" });
  expect(verify("sha384", Buffer.from("hello"), { key, dsaEncoding: "ieee-p1363" }, Buffer.from(out.sig as string, "hex"))).toBe(true);
  expect(out.pkcs8).toBe(true);
});
