// Web Crypto inside the isolate: crypto.subtle, CryptoKey, SubtleCrypto and
// crypto.DigestStream. Part of the runtime's closure (see worker.ts); this
// function runs on a function's first touch of any of them, so a function
// that never uses them never pays for them.
//
// The host does the work (web-crypto.ts) and keeps the keys: a CryptoKey
// here holds a handle, its type, algorithm, usages and extractability, never
// key material. The handle sits in a private field, so tenant code can
// neither read it nor make a CryptoKey of its own (a forged, cloned or
// proxied one fails the brand check). Requests are built here from
// primitives and bounded bytes, at call time (a buffer changed afterwards
// changes nothing), and checked again by the host.
function makeWebCrypto() {
  const TOKEN = Symbol("internal");
  const HASH_NAMES = { __proto__: null, "SHA-1": true, "SHA-256": true, "SHA-384": true, "SHA-512": true };
  const ALGORITHM_NUMBERS = ["length", "modulusLength", "saltLength", "tagLength", "iterations"];
  const ALGORITHM_BYTES = ["publicExponent", "label", "iv", "counter", "additionalData", "salt", "info"];
  const JWK_STRINGS = ["kty", "crv", "alg", "use", "k", "x", "y", "d", "n", "e", "p", "q", "dp", "dq", "qi"];
  const MAX_JWK_STRING = 65536;

  /** A BufferSource as bytes of its own, at most MAX_CRYPTO_BYTES. */
  const bytesOf = (value, what) => {
    let view;
    try { view = asBytes(value); } catch { throw new TypeError(what + " is not an ArrayBuffer or ArrayBufferView"); }
    return ownBytes(view, MAX_CRYPTO_BYTES, what);
  };
  /** An ArrayBuffer holding exactly these bytes. */
  const bufferOf = (bytes) => {
    const buffer = TypedArrayPrototypeGetBuffer(bytes);
    if (TypedArrayPrototypeGetByteOffset(bytes) === 0 && ArrayBufferPrototypeGetByteLength(buffer) === TypedArrayPrototypeGetByteLength(bytes)) return buffer;
    const copy = new Uint8Array(TypedArrayPrototypeGetByteLength(bytes));
    TypedArrayPrototypeSet(copy, bytes);
    return TypedArrayPrototypeGetBuffer(copy);
  };
  const hashName = (algorithm) => {
    const a = typeof algorithm === "string" ? algorithm : algorithm !== null && typeof algorithm === "object" ? algorithm.name : undefined;
    if (a === undefined) throw new TypeError("Algorithm: name is missing");
    const name = StringPrototypeToUpperCase(boundedString(a, 64));
    if (HASH_NAMES[name] !== true) throw new DOMException("Unrecognized hash " + name + ": SHA-1, SHA-256, SHA-384 and SHA-512 are supported", "NotSupportedError");
    return name;
  };

  // ---------- CryptoKey ----------
  let keyHandle, newKey;
  const freezeAlgorithm = (a) => {
    const out = { name: String(a.name) };
    if (ObjectHasOwn(a, "hash")) out.hash = ObjectFreeze({ name: String(a.hash.name) });
    if (ObjectHasOwn(a, "namedCurve")) out.namedCurve = String(a.namedCurve);
    if (ObjectHasOwn(a, "length")) out.length = Number(a.length);
    if (ObjectHasOwn(a, "modulusLength")) out.modulusLength = Number(a.modulusLength);
    if (ObjectHasOwn(a, "publicExponent")) out.publicExponent = new Uint8Array(a.publicExponent);
    return ObjectFreeze(out);
  };
  class CryptoKey {
    #handle; #type; #extractable; #algorithm; #usages;
    static {
      keyHandle = (key, what) => {
        if ((typeof key !== "object" && typeof key !== "function") || key === null || !(#handle in key)) {
          throw new TypeError(what + " is not of type 'CryptoKey'");
        }
        return key.#handle;
      };
      newKey = (info) => new CryptoKey(TOKEN, info);
    }
    constructor(token, info) {
      if (token !== TOKEN) throw new TypeError("Illegal constructor");
      this.#handle = String(info.handle);
      this.#type = String(info.type);
      this.#extractable = info.extractable === true;
      this.#algorithm = freezeAlgorithm(info.algorithm);
      const usages = [];
      for (let i = 0; i < info.usages.length; i++) append(usages, String(info.usages[i]));
      this.#usages = ObjectFreeze(usages);
      // unreachable here means unusable: the host may drop the key (FinalizationRegistry, see runtime.js)
      registerHandle(this, this.#handle);
    }
    get type() { return this.#type; }
    get extractable() { return this.#extractable; }
    get algorithm() { return this.#algorithm; }
    get usages() { return this.#usages; }
    get [Symbol.toStringTag]() { return "CryptoKey"; }
  }

  // ---------- requests ----------
  const algorithmRecord = (algorithm, what) => {
    const a = typeof algorithm === "string" ? { name: algorithm } : algorithm;
    if (a === null || (typeof a !== "object" && typeof a !== "function")) throw new TypeError(what + ": an algorithm is a name or an object with a name");
    const name = a.name;
    if (name === undefined) throw new TypeError(what + ": the algorithm has no name");
    const out = { __proto__: null, name: boundedString(name, 64) };
    const hash = a.hash;
    if (hash !== undefined) out.hash = boundedString(hash !== null && typeof hash === "object" ? hash.name : hash, 64);
    const curve = a.namedCurve;
    if (curve !== undefined) out.namedCurve = boundedString(curve, 64);
    for (let i = 0; i < ALGORITHM_NUMBERS.length; i++) {
      const k = ALGORITHM_NUMBERS[i], v = a[k];
      if (v !== undefined) out[k] = Number(v);
    }
    for (let i = 0; i < ALGORITHM_BYTES.length; i++) {
      const k = ALGORITHM_BYTES[i], v = a[k];
      if (v !== undefined) out[k] = bytesOf(v, what + ": algorithm." + k);
    }
    const publicKey = a.public;
    if (publicKey !== undefined) out.public = keyHandle(publicKey, what + ": algorithm.public");
    return out;
  };
  const usageList = (usages) => {
    if (usages === null || typeof usages !== "object") throw new TypeError("keyUsages must be a sequence of strings");
    const out = [];
    for (const usage of usages) {
      if (out.length >= 16) throw new TypeError("keyUsages has more than 16 entries");
      append(out, boundedString(usage, 32));
    }
    return out;
  };
  const jwkRecord = (jwk) => {
    if (jwk === null || typeof jwk !== "object") throw new TypeError("keyData must be a JsonWebKey object for the jwk format");
    const out = { __proto__: null };
    for (let i = 0; i < JWK_STRINGS.length; i++) {
      const k = JWK_STRINGS[i], v = jwk[k];
      if (v !== undefined) out[k] = boundedString(v, MAX_JWK_STRING);
    }
    const ops = jwk.key_ops;
    if (ops !== undefined) out.key_ops = usageList(ops);
    const ext = jwk.ext;
    if (ext !== undefined) out.ext = Boolean(ext);
    return out;
  };
  const formatOf = (format) => boundedString(format, 16);
  /** Sends one request; what comes back is made into keys, buffers, a JWK or a boolean here. */
  const run = async (request) => {
    const r = (await hostJob("subtle", request)).value;
    switch (r.type) {
      case "key": return newKey(r.key);
      case "pair": return { publicKey: newKey(r.publicKey), privateKey: newKey(r.privateKey) };
      case "bytes": return bufferOf(r.bytes);
      case "jwk": return r.jwk;
      case "boolean": return r.value === true;
    }
    throw new DOMException("the host gave an unknown answer", "OperationError");
  };

  class SubtleCrypto {
    constructor(token) { if (token !== TOKEN) throw new TypeError("Illegal constructor"); }
    async digest(algorithm, data) {
      const name = hashName(algorithm);
      return bufferOf(hostCrypto("digest", name, bytesOf(data, "digest: data")));
    }
    async generateKey(algorithm, extractable, keyUsages) {
      return run({ __proto__: null, op: "generateKey", algorithm: algorithmRecord(algorithm, "generateKey"), extractable: Boolean(extractable), usages: usageList(keyUsages) });
    }
    async importKey(format, keyData, algorithm, extractable, keyUsages) {
      const f = formatOf(format);
      return run({
        __proto__: null, op: "importKey", format: f, keyData: f === "jwk" ? jwkRecord(keyData) : bytesOf(keyData, "importKey: keyData"),
        algorithm: algorithmRecord(algorithm, "importKey"), extractable: Boolean(extractable), usages: usageList(keyUsages),
      });
    }
    async exportKey(format, key) {
      return run({ __proto__: null, op: "exportKey", format: formatOf(format), key: keyHandle(key, "exportKey: key") });
    }
    async sign(algorithm, key, data) {
      return run({ __proto__: null, op: "sign", algorithm: algorithmRecord(algorithm, "sign"), key: keyHandle(key, "sign: key"), data: bytesOf(data, "sign: data") });
    }
    async verify(algorithm, key, signature, data) {
      return run({
        __proto__: null, op: "verify", algorithm: algorithmRecord(algorithm, "verify"), key: keyHandle(key, "verify: key"),
        signature: bytesOf(signature, "verify: signature"), data: bytesOf(data, "verify: data"),
      });
    }
    async encrypt(algorithm, key, data) {
      return run({ __proto__: null, op: "encrypt", algorithm: algorithmRecord(algorithm, "encrypt"), key: keyHandle(key, "encrypt: key"), data: bytesOf(data, "encrypt: data") });
    }
    async decrypt(algorithm, key, data) {
      return run({ __proto__: null, op: "decrypt", algorithm: algorithmRecord(algorithm, "decrypt"), key: keyHandle(key, "decrypt: key"), data: bytesOf(data, "decrypt: data") });
    }
    async deriveBits(algorithm, baseKey, length) {
      return run({
        __proto__: null, op: "deriveBits", algorithm: algorithmRecord(algorithm, "deriveBits"), key: keyHandle(baseKey, "deriveBits: baseKey"),
        length: length === undefined || length === null ? null : Number(length),
      });
    }
    async deriveKey(algorithm, baseKey, derivedKeyType, extractable, keyUsages) {
      return run({
        __proto__: null, op: "deriveKey", algorithm: algorithmRecord(algorithm, "deriveKey"), key: keyHandle(baseKey, "deriveKey: baseKey"),
        derivedKeyType: algorithmRecord(derivedKeyType, "deriveKey: derivedKeyType"), extractable: Boolean(extractable), usages: usageList(keyUsages),
      });
    }
    async wrapKey(format, key, wrappingKey, wrapAlgorithm) {
      return run({
        __proto__: null, op: "wrapKey", format: formatOf(format), key: keyHandle(key, "wrapKey: key"), wrappingKey: keyHandle(wrappingKey, "wrapKey: wrappingKey"),
        wrapAlgorithm: algorithmRecord(wrapAlgorithm, "wrapKey"),
      });
    }
    async unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm, extractable, keyUsages) {
      return run({
        __proto__: null, op: "unwrapKey", format: formatOf(format), wrappedKey: bytesOf(wrappedKey, "unwrapKey: wrappedKey"),
        unwrappingKey: keyHandle(unwrappingKey, "unwrapKey: unwrappingKey"), unwrapAlgorithm: algorithmRecord(unwrapAlgorithm, "unwrapKey"),
        unwrappedKeyAlgorithm: algorithmRecord(unwrappedKeyAlgorithm, "unwrapKey: unwrappedKeyAlgorithm"), extractable: Boolean(extractable),
        usages: usageList(keyUsages),
      });
    }
    get [Symbol.toStringTag]() { return "SubtleCrypto"; }
  }
  const subtle = ObjectFreeze(new SubtleCrypto(TOKEN));

  // ---------- crypto.DigestStream (Workers): a WritableStream that hashes what is written to it ----------
  let digestStream;
  const makeDigestStream = () => {
    if (digestStream) return digestStream;
    const { WritableStream } = streams();
    class DigestStream extends WritableStream {
      #digest;
      constructor(algorithm) {
        const handle = hostCrypto("hash-open", hashName(algorithm));
        let resolve, reject;
        const digest = new Promise((a, b) => { resolve = a; reject = b; });
        digest.catch(() => {});
        const sink = {
          write(chunk) { hostCrypto("hash-update", "", handle, bytesOf(chunk, "DigestStream: a chunk")); },
          close() { resolve(bufferOf(hostCrypto("hash-final", "", handle))); },
          abort(reason) { reject(reason); },
        };
        super(sink);
        registerHandle(sink, handle);
        this.#digest = digest;
      }
      get digest() { return this.#digest; }
      get [Symbol.toStringTag]() { return "DigestStream"; }
    }
    return (digestStream = DigestStream);
  };

  return { subtle, SubtleCrypto, CryptoKey, DigestStream: makeDigestStream };
}
