/**
 * The host side of `crypto.subtle`: Node's own Web Crypto does the work, in
 * the sandbox process, on the isolate's behalf. Keys stay here, in the
 * isolate's handle table; the isolate holds an opaque CryptoKey with a
 * handle, its algorithm, usages and extractability, never key material (a
 * non-extractable key's bytes never leave this process, an extractable one's
 * only through exportKey/wrapKey). Requests come from the isolate, so they
 * are checked here (zod) like any input, and the work a request may ask for
 * is bounded before Node starts it: Node's jobs run on the libuv threadpool
 * and cannot be stopped once started.
 */
import { webcrypto } from "node:crypto";
import { z } from "zod";
import { HANDLE, type HandleTable } from "./handles.ts";

type CryptoKey = webcrypto.CryptoKey;
const { subtle } = webcrypto;

/** One BufferSource a request may carry (the runtime checks it too, before the copy). */
export const MAX_CRYPTO_INPUT = 16 * 1024 * 1024;
/** RSA keys made here: generation time grows with the fourth power of the size, and a started job cannot be stopped. */
export const MAX_RSA_GENERATE_BITS = 4096;
/** RSA keys imported: every private-key operation costs about the cube of the size. */
export const MAX_RSA_IMPORT_BITS = 8192;
/** PBKDF2: the iteration cap of Workers, and a cap on the whole derivation (iterations × output blocks). */
export const MAX_PBKDF2_ITERATIONS = 100_000;
export const MAX_PBKDF2_WORK = 1_600_000;
/** HMAC and AES keys made or derived here, in bits. */
const MAX_SECRET_BITS = 65_536;

const Bytes = z.instanceof(Uint8Array).refine((b) => b.byteLength <= MAX_CRYPTO_INPUT, "over the crypto input limit");
const Handle = z.string().regex(HANDLE);
const Name = z.string().max(64);
const Algorithm = z.strictObject({
  name: Name,
  hash: Name.optional(),
  namedCurve: Name.optional(),
  length: z.number().optional(),
  modulusLength: z.number().optional(),
  publicExponent: z.instanceof(Uint8Array).refine((b) => b.byteLength <= 16).optional(),
  saltLength: z.number().optional(),
  tagLength: z.number().optional(),
  iterations: z.number().optional(),
  label: Bytes.optional(),
  iv: Bytes.optional(),
  counter: Bytes.optional(),
  additionalData: Bytes.optional(),
  salt: Bytes.optional(),
  info: Bytes.optional(),
  public: Handle.optional(),
});
type Algorithm = z.infer<typeof Algorithm>;
const JwkString = z.string().max(65_536);
const Jwk = z.strictObject({
  kty: JwkString.optional(),
  crv: JwkString.optional(),
  alg: JwkString.optional(),
  use: JwkString.optional(),
  key_ops: z.array(z.string().max(64)).max(16).optional(),
  ext: z.boolean().optional(),
  k: JwkString.optional(),
  x: JwkString.optional(),
  y: JwkString.optional(),
  d: JwkString.optional(),
  n: JwkString.optional(),
  e: JwkString.optional(),
  p: JwkString.optional(),
  q: JwkString.optional(),
  dp: JwkString.optional(),
  dq: JwkString.optional(),
  qi: JwkString.optional(),
});
const Format = z.string().max(16);
const Usages = z.array(z.string().max(32)).max(16);

/** What the runtime may ask of subtle (digest stays a quick synchronous host call, see worker.ts). */
export const SubtleRequest = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("generateKey"), algorithm: Algorithm, extractable: z.boolean(), usages: Usages }),
  z.strictObject({ op: z.literal("importKey"), format: Format, keyData: z.union([Bytes, Jwk]), algorithm: Algorithm, extractable: z.boolean(), usages: Usages }),
  z.strictObject({ op: z.literal("exportKey"), format: Format, key: Handle }),
  z.strictObject({ op: z.enum(["sign", "encrypt", "decrypt"]), algorithm: Algorithm, key: Handle, data: Bytes }),
  z.strictObject({ op: z.literal("verify"), algorithm: Algorithm, key: Handle, signature: Bytes, data: Bytes }),
  z.strictObject({ op: z.literal("deriveBits"), algorithm: Algorithm, key: Handle, length: z.number().nullable() }),
  z.strictObject({ op: z.literal("deriveKey"), algorithm: Algorithm, key: Handle, derivedKeyType: Algorithm, extractable: z.boolean(), usages: Usages }),
  z.strictObject({ op: z.literal("wrapKey"), format: Format, key: Handle, wrappingKey: Handle, wrapAlgorithm: Algorithm }),
  z.strictObject({
    op: z.literal("unwrapKey"),
    format: Format,
    wrappedKey: Bytes,
    unwrappingKey: Handle,
    unwrapAlgorithm: Algorithm,
    unwrappedKeyAlgorithm: Algorithm,
    extractable: z.boolean(),
    usages: Usages,
  }),
]);
export type SubtleRequest = z.infer<typeof SubtleRequest>;

/** A key as the isolate sees it: everything but its material. */
export interface KeyInfo {
  handle: string;
  type: string;
  extractable: boolean;
  usages: string[];
  algorithm: Record<string, unknown>;
}
export type SubtleResult =
  | { type: "key"; key: KeyInfo }
  | { type: "pair"; publicKey: KeyInfo; privateKey: KeyInfo }
  | { type: "bytes"; bytes: Uint8Array }
  | { type: "jwk"; jwk: Record<string, unknown> }
  | { type: "boolean"; value: boolean };

const HASH_BITS: Record<string, number> = { "SHA-1": 160, "SHA-256": 256, "SHA-384": 384, "SHA-512": 512 };
const HASH_BLOCK_BITS: Record<string, number> = { "SHA-1": 512, "SHA-256": 512, "SHA-384": 1024, "SHA-512": 1024 };

const domError = (message: string, name: string) => new DOMException(message, name);
const upper = (s: string | undefined) => (s ?? "").toUpperCase();

/** Refuses, before Node starts a job it could not stop, work whose size the request chooses. */
function bound(op: string, algorithm: Algorithm, bits?: number | null): void {
  const name = upper(algorithm.name);
  if (op === "generateKey" && name.startsWith("RSA")) {
    const size = algorithm.modulusLength ?? 0;
    if (size > MAX_RSA_GENERATE_BITS) throw domError(`RSA keys of over ${MAX_RSA_GENERATE_BITS} bits cannot be generated here (asked for ${size})`, "NotSupportedError");
    const e = algorithm.publicExponent;
    const exponent = e ? e.reduce((n, byte) => n * 256 + byte, 0) : 0;
    if (exponent !== 3 && exponent !== 65537) throw domError("the RSA public exponent must be 3 or 65537", "OperationError");
  }
  if (op === "generateKey" && (name === "HMAC" || name.startsWith("AES")) && (algorithm.length ?? 0) > MAX_SECRET_BITS) {
    throw domError(`keys of over ${MAX_SECRET_BITS} bits are not supported`, "OperationError");
  }
  if (name === "PBKDF2" && (op === "deriveBits" || op === "deriveKey")) {
    const iterations = algorithm.iterations ?? 0;
    if (iterations > MAX_PBKDF2_ITERATIONS) {
      throw domError(`PBKDF2 iteration counts above ${MAX_PBKDF2_ITERATIONS} are not supported (requested ${iterations})`, "NotSupportedError");
    }
    const hashBits = HASH_BITS[upper(algorithm.hash)] ?? 160;
    const blocks = Math.ceil((bits ?? 0) / hashBits);
    if (iterations * blocks > MAX_PBKDF2_WORK) {
      throw domError(`PBKDF2 work over ${MAX_PBKDF2_WORK} iterations × output blocks is not supported (${iterations} × ${blocks})`, "NotSupportedError");
    }
  }
}

/** The bits deriveKey will derive for a key of this type (what Node asks of the KDF). */
function derivedBits(type: Algorithm): number {
  const name = upper(type.name);
  if (type.length !== undefined) return type.length;
  if (name === "HMAC") return HASH_BLOCK_BITS[upper(type.hash)] ?? 512;
  return 256;
}

/** Host memory a key holds, roughly: what the handle table counts it as. */
function keyCost(key: CryptoKey): number {
  const a = key.algorithm as { length?: number; modulusLength?: number };
  if (a.modulusLength) return 1024 + (a.modulusLength / 8) * (key.type === "private" ? 5 : 1);
  if (a.length) return 512 + a.length / 8;
  return 1024;
}

function describe(table: HandleTable, key: CryptoKey): KeyInfo {
  const a = key.algorithm as { name: string; hash?: { name: string }; namedCurve?: string; length?: number; modulusLength?: number; publicExponent?: Uint8Array };
  if (a.modulusLength !== undefined && a.modulusLength > MAX_RSA_IMPORT_BITS) {
    throw domError(`RSA keys of over ${MAX_RSA_IMPORT_BITS} bits are not supported here (this one has ${a.modulusLength})`, "NotSupportedError");
  }
  const algorithm: Record<string, unknown> = { name: a.name };
  if (a.hash) algorithm["hash"] = { name: a.hash.name };
  if (a.namedCurve !== undefined) algorithm["namedCurve"] = a.namedCurve;
  if (a.length !== undefined) algorithm["length"] = a.length;
  if (a.modulusLength !== undefined) algorithm["modulusLength"] = a.modulusLength;
  if (a.publicExponent !== undefined) algorithm["publicExponent"] = new Uint8Array(a.publicExponent);
  const handle = table.add("key", key, keyCost(key));
  return { handle, type: key.type, extractable: key.extractable, usages: [...key.usages], algorithm };
}

function keyOf(table: HandleTable, handle: string): CryptoKey {
  const key = table.get<CryptoKey>("key", handle);
  if (!key) throw new TypeError("the key is not a CryptoKey of this isolate");
  return key;
}

/** The algorithm as Node takes it: handles become this isolate's keys. */
function toNode(table: HandleTable, algorithm: Algorithm): Record<string, unknown> {
  const { public: publicHandle, ...rest } = algorithm;
  return publicHandle === undefined ? rest : { ...rest, public: keyOf(table, publicHandle) };
}

/** Runs one request. Throws what Node throws (DOMExceptions, TypeErrors) or a bound's refusal. */
export async function runSubtle(table: HandleTable, request: SubtleRequest): Promise<SubtleResult> {
  const alg = (a: Algorithm) => toNode(table, a) as unknown as webcrypto.AlgorithmIdentifier;
  const added = (key: CryptoKey | webcrypto.CryptoKeyPair): SubtleResult => {
    if (!("privateKey" in key)) return { type: "key", key: describe(table, key) };
    const publicKey = describe(table, key.publicKey);
    try {
      return { type: "pair", publicKey, privateKey: describe(table, key.privateKey) };
    } catch (error) {
      // a pair is added whole or not at all
      table.delete(publicKey.handle);
      throw error;
    }
  };
  const bytes = (b: ArrayBuffer): SubtleResult => ({ type: "bytes", bytes: new Uint8Array(b) });
  const usages = (u: string[]) => u as webcrypto.KeyUsage[];
  switch (request.op) {
    case "generateKey":
      bound("generateKey", request.algorithm);
      return added(await subtle.generateKey(alg(request.algorithm) as webcrypto.RsaHashedKeyGenParams, request.extractable, usages(request.usages)));
    case "importKey": {
      const { format, keyData } = request;
      const key =
        format === "jwk"
          ? keyData instanceof Uint8Array
            ? Promise.reject(new TypeError("a jwk key must be an object"))
            : subtle.importKey("jwk", keyData as webcrypto.JsonWebKey, alg(request.algorithm), request.extractable, usages(request.usages))
          : keyData instanceof Uint8Array
            ? subtle.importKey(format as "raw", keyData, alg(request.algorithm), request.extractable, usages(request.usages))
            : Promise.reject(new TypeError(`key data for format ${format} must be a BufferSource`));
      return added(await key);
    }
    case "exportKey": {
      const out = await subtle.exportKey(request.format as "raw", keyOf(table, request.key));
      return out instanceof ArrayBuffer ? bytes(out) : { type: "jwk", jwk: out as Record<string, unknown> };
    }
    case "sign":
      return bytes(await subtle.sign(alg(request.algorithm), keyOf(table, request.key), request.data));
    case "verify":
      return { type: "boolean", value: await subtle.verify(alg(request.algorithm), keyOf(table, request.key), request.signature, request.data) };
    case "encrypt":
      return bytes(await subtle.encrypt(alg(request.algorithm), keyOf(table, request.key), request.data));
    case "decrypt":
      return bytes(await subtle.decrypt(alg(request.algorithm), keyOf(table, request.key), request.data));
    case "deriveBits":
      bound("deriveBits", request.algorithm, request.length);
      return bytes(await subtle.deriveBits(alg(request.algorithm) as webcrypto.EcdhKeyDeriveParams, keyOf(table, request.key), request.length as number));
    case "deriveKey":
      bound("deriveKey", request.algorithm, derivedBits(request.derivedKeyType));
      bound("generateKey", request.derivedKeyType);
      return added(
        await subtle.deriveKey(
          alg(request.algorithm) as webcrypto.EcdhKeyDeriveParams,
          keyOf(table, request.key),
          alg(request.derivedKeyType) as webcrypto.AesDerivedKeyParams,
          request.extractable,
          usages(request.usages),
        ),
      );
    case "wrapKey": {
      const out = await subtle.wrapKey(request.format as "raw", keyOf(table, request.key), keyOf(table, request.wrappingKey), alg(request.wrapAlgorithm));
      return bytes(out);
    }
    case "unwrapKey":
      return added(
        await subtle.unwrapKey(
          request.format as "raw",
          request.wrappedKey,
          keyOf(table, request.unwrappingKey),
          alg(request.unwrapAlgorithm),
          alg(request.unwrappedKeyAlgorithm),
          request.extractable,
          usages(request.usages),
        ),
      );
  }
}

const ERROR_NAMES = new Set([
  "NotSupportedError", "SyntaxError", "InvalidAccessError", "DataError", "OperationError", "QuotaExceededError", "InvalidStateError",
  "NotAllowedError", "TypeError", "RangeError",
]);
/** An error as the isolate gets it: a name it turns back into a DOMException or TypeError, and a bounded message. */
export function describeError(error: unknown): { name: string; message: string } {
  const name = error instanceof Error && ERROR_NAMES.has(error.name) ? error.name : "OperationError";
  const message = error instanceof Error ? error.message : "the operation failed";
  return { name, message: message.slice(0, 1_000) };
}
