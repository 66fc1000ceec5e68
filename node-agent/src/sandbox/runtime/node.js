// Node compatibility as Workers' `nodejs_compat` offers it, for functions
// deployed with that flag (docs/runtime.md): node:buffer, node:events,
// node:util (its pure parts), node:async_hooks (AsyncLocalStorage,
// AsyncResource), node:crypto (hashes, HMAC, random, timingSafeEqual) and
// process. Part of the runtime's closure (see worker.ts); each module is made
// on the first import or touch of it, so a function pays only for what it uses.
//
// Buffer and EventEmitter are the well-kept npm polyfills (`buffer`, `events`),
// trusted source the sandbox process read at start, evaluated here as
// CommonJS. Everything that does work on the host (hashing, random bytes) goes
// through the same bounded, charged callbacks as Web Crypto.
function makeNode() {
  const NODE_VERSION = "v22.0.0";
  const MAX_RANDOM = 64 * 1024 * 1024;
  const NODE_HASHES = { __proto__: null, md5: "md5", sha1: "sha1", sha256: "sha256", sha384: "sha384", sha512: "sha512", "sha-1": "sha1", "sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512" };

  // ---------- the npm polyfills, as CommonJS ----------
  const libraries = new Map();
  const requireLibrary = (name) => {
    let module = MapPrototypeGet(libraries, name);
    if (module === undefined) {
      module = { exports: {} };
      MapPrototypeSet(libraries, name, module);
      new FunctionCtor("module", "exports", "require", hostSource(name))(module, module.exports, requireLibrary);
    }
    return module.exports;
  };

  const modules = new Map();
  const once = (name, make) => () => {
    let value = MapPrototypeGet(modules, name);
    if (value === undefined) { value = make(); MapPrototypeSet(modules, name, value); }
    return value;
  };

  // ---------- node:buffer ----------
  const buffer = once("buffer", () => {
    const lib = requireLibrary("buffer");
    addBase64url(lib.Buffer);
    return ObjectFreeze({
      __proto__: null, default: lib, Buffer: lib.Buffer, SlowBuffer: lib.SlowBuffer, kMaxLength: lib.kMaxLength, INSPECT_MAX_BYTES: lib.INSPECT_MAX_BYTES,
      constants: ObjectFreeze({ MAX_LENGTH: lib.kMaxLength, MAX_STRING_LENGTH: (1 << 29) - 24 }), Blob, File, atob, btoa,
    });
  });
  const Buffer = () => buffer().Buffer;
  // The polyfill predates Node's `base64url`: its base64 decoder already reads the URL alphabet, so decoding
  // maps the name; encoding maps the alphabet of its base64 output.
  function addBase64url(B) {
    const url = (encoding) => typeof encoding === "string" && encoding.toLowerCase() === "base64url";
    const { from, byteLength, isEncoding } = B;
    const { toString, write } = B.prototype;
    B.from = function (value, encodingOrOffset, length) { return ReflectApply(from, this, [value, url(encodingOrOffset) ? "base64" : encodingOrOffset, length]); };
    B.byteLength = function (value, encoding) { return ReflectApply(byteLength, this, [value, url(encoding) ? "base64" : encoding]); };
    B.isEncoding = function (encoding) { return url(encoding) || ReflectApply(isEncoding, this, [encoding]); };
    B.prototype.toString = function (encoding, start, end) {
      if (!url(encoding)) return ReflectApply(toString, this, arguments);
      return ReflectApply(toString, this, ["base64", start, end]).replace(/[+/=]/g, (c) => (c === "+" ? "-" : c === "/" ? "_" : ""));
    };
    B.prototype.write = function (string, ...rest) { return ReflectApply(write, this, [string, ...rest.map((a) => (url(a) ? "base64" : a))]); };
  }
  /** A fresh Uint8Array of these bytes (never a Buffer or a view on a bigger buffer: only its own bytes cross). */
  const plainBytes = (value, encoding, what) => {
    let view = value;
    if (typeof value === "string") view = Buffer().from(value, encoding ?? "utf8");
    let tag;
    try { tag = TypedArrayPrototypeGetTag(view); } catch { tag = undefined; }
    if (tag === undefined) {
      try { view = asBytes(view); } catch { throw new TypeError("The \"" + what + "\" argument must be of type string or an instance of Buffer, TypedArray, or DataView."); }
    } else if (tag !== "Uint8Array") {
      view = new Uint8Array(TypedArrayPrototypeGetBuffer(view), TypedArrayPrototypeGetByteOffset(view), TypedArrayPrototypeGetByteLength(view));
    }
    const length = TypedArrayPrototypeGetByteLength(view);
    const copy = new Uint8Array(length);
    TypedArrayPrototypeSet(copy, view);
    return copy;
  };

  // ---------- node:events ----------
  const events = once("events", () => {
    const EventEmitter = requireLibrary("events");
    return ObjectFreeze({ __proto__: null, default: EventEmitter, EventEmitter, once: EventEmitter.once, defaultMaxListeners: EventEmitter.defaultMaxListeners });
  });

  // ---------- node:async_hooks ----------
  // isolated-vm has no async_hooks, so the context is carried by the runtime: a frame (which store each
  // AsyncLocalStorage holds) is current while code runs inside `run`, and every callback handed to a promise's
  // `then` (so `catch`, `finally`, `Promise.all`, and `await` in code the SDK bundled under nodejs_compat, which
  // compiles async functions to generators over `then`), to a timer, queueMicrotask or process.nextTick runs in
  // the frame it was handed over in. A native `await` (a bundle made elsewhere) does not call `then`: after it,
  // the context is the one the await resumed in (see docs/runtime.md).
  let frame = null;
  const inFrame = (f, fn, self, args) => {
    const previous = frame;
    frame = f;
    try { return ReflectApply(fn, self, args); } finally { frame = previous; }
  };
  const bindFrame = (fn) => {
    if (typeof fn !== "function" || frame === null) return fn;
    const f = frame;
    return function (...args) { return inFrame(f, fn, this, args); };
  };
  const withStore = (f, key, store) => {
    const next = new Map(f === null ? undefined : f);
    MapPrototypeSet(next, key, store);
    return next;
  };
  const withoutStore = (f, key) => {
    if (f === null || !MapPrototypeHas(f, key)) return f;
    const next = new Map(f);
    MapPrototypeDelete(next, key);
    return MapPrototypeGetSize(next) === 0 ? null : next;
  };
  let contextCarried = false;
  const carryContext = () => {
    if (contextCarried) return;
    contextCarried = true;
    const then = Promise.prototype.then;
    ReflectDefineProperty(Promise.prototype, "then", {
      __proto__: null, writable: true, enumerable: false, configurable: true,
      value: {
        then(onFulfilled, onRejected) {
          return frame === null ? ReflectApply(then, this, [onFulfilled, onRejected]) : ReflectApply(then, this, [bindFrame(onFulfilled), bindFrame(onRejected)]);
        },
      }.then,
    });
    for (const name of ["setTimeout", "setInterval", "queueMicrotask"]) {
      const original = globalThis[name];
      if (typeof original !== "function") continue;
      define(name, { [name](fn, ...args) { return ReflectApply(original, this, [bindFrame(fn), ...args]); } }[name]);
    }
  };
  const asyncHooks = once("async_hooks", () => {
    carryContext();
    class AsyncLocalStorage {
      run(store, fn, ...args) { return inFrame(withStore(frame, this, store), fn, undefined, args); }
      exit(fn, ...args) { return inFrame(withoutStore(frame, this), fn, undefined, args); }
      getStore() { return frame === null ? undefined : MapPrototypeGet(frame, this); }
      enterWith(store) { frame = withStore(frame, this, store); }
      disable() { frame = withoutStore(frame, this); }
      static bind(fn) {
        if (typeof fn !== "function") throw new TypeError("The \"fn\" argument must be of type function");
        const f = frame;
        return function (...args) { return inFrame(f, fn, this, args); };
      }
      static snapshot() {
        const f = frame;
        return (fn, ...args) => inFrame(f, fn, undefined, args);
      }
    }
    class AsyncResource {
      #frame = frame;
      constructor(type) { this.type = String(type); }
      runInAsyncScope(fn, self, ...args) { return inFrame(this.#frame, fn, self, args); }
      bind(fn) { const f = this.#frame; return function (...args) { return inFrame(f, fn, this, args); }; }
      emitDestroy() { return this; }
      asyncId() { return 0; }
      triggerAsyncId() { return 0; }
      static bind(fn, type) { return new AsyncResource(type ?? "bound-anonymous-fn").bind(fn); }
    }
    const lib = { AsyncLocalStorage, AsyncResource };
    return ObjectFreeze({ __proto__: null, default: lib, AsyncLocalStorage, AsyncResource });
  });

  // ---------- node:util ----------
  const CUSTOM_INSPECT = Symbol.for("nodejs.util.inspect.custom");
  const CUSTOM_PROMISIFY = Symbol.for("nodejs.util.promisify.custom");
  const brand = (fn) => (value) => { try { fn(value); return true; } catch { return false; } };
  const isDate = brand(uncurryThis(Date.prototype.getTime));
  const isRegExp = brand(getter(RegExp.prototype, "source"));
  const isMap = brand(getter(Map.prototype, "size"));
  const isSet = brand(getter(Set.prototype, "size"));
  const isArrayBuffer = brand(ArrayBufferPrototypeGetByteLength);
  const isTypedArray = (value) => { try { return TypedArrayPrototypeGetTag(value) !== undefined; } catch { return false; } };
  const isDataView = brand(getter(DataView.prototype, "byteLength"));
  const tagOf = (value) => Object.prototype.toString.call(value);
  const types = ObjectFreeze({
    isDate, isRegExp, isMap, isSet, isArrayBuffer, isTypedArray, isDataView,
    isAnyArrayBuffer: isArrayBuffer,
    isArrayBufferView: (v) => isTypedArray(v) || isDataView(v),
    isUint8Array: (v) => { try { return TypedArrayPrototypeGetTag(v) === "Uint8Array"; } catch { return false; } },
    isWeakMap: brand(uncurryThis(WeakMap.prototype.has)),
    isPromise: (v) => v instanceof Promise,
    isNativeError: (v) => v instanceof Error,
    isAsyncFunction: (v) => typeof v === "function" && tagOf(v) === "[object AsyncFunction]",
    isGeneratorFunction: (v) => typeof v === "function" && (tagOf(v) === "[object GeneratorFunction]" || tagOf(v) === "[object AsyncGeneratorFunction]"),
    isBoxedPrimitive: (v) => v !== null && typeof v === "object" && ["[object Number]", "[object String]", "[object Boolean]", "[object Symbol]", "[object BigInt]"].includes(tagOf(v)),
    isProxy: () => false,
  });
  const inspect = (value, options) => {
    const opts = typeof options === "object" && options !== null ? options : {};
    const maxDepth = opts.depth === null ? Infinity : typeof opts.depth === "number" ? opts.depth : 2;
    const seen = [];
    const key = (k) => (typeof k === "symbol" ? "[" + String(k) + "]" : /^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k));
    const str = (v, depth) => {
      if (typeof v === "string") return depth === 0 ? v : JSON.stringify(v).replace(/^"|"$/g, "'");
      if (typeof v === "bigint") return v + "n";
      if (typeof v === "symbol") return String(v);
      if (typeof v === "function") return v.name ? "[Function: " + v.name + "]" : "[Function (anonymous)]";
      if (v === null || typeof v !== "object") return String(v);
      if (typeof v[CUSTOM_INSPECT] === "function" && v[CUSTOM_INSPECT] !== inspect) {
        const out = v[CUSTOM_INSPECT](maxDepth - depth, opts, inspect);
        return typeof out === "string" ? out : str(out, depth);
      }
      if (seen.includes(v)) return "[Circular *1]";
      if (v instanceof Error) return v.stack || String(v);
      if (isDate(v)) return Number.isNaN(v.getTime()) ? "Invalid Date" : v.toISOString();
      if (isRegExp(v)) return String(v);
      if (depth > maxDepth) {
        if (ArrayIsArray(v)) return "[Array]";
        const proto = Object.getPrototypeOf(v);
        return "[" + (proto && proto.constructor && typeof proto.constructor.name === "string" && proto.constructor.name !== "" ? proto.constructor.name : "Object") + "]";
      }
      seen.push(v);
      try {
        const inner = (list, open, close, prefix = "") => (list.length === 0 ? prefix + open + close : prefix + open + " " + list.join(", ") + " " + close);
        if (ArrayIsArray(v)) return inner(v.map((x) => str(x, depth + 1)), "[", "]");
        if (isTypedArray(v)) {
          const shown = Array.from(v.subarray(0, 100), (x) => str(x, depth + 1));
          if (v.length > 100) shown.push("... " + (v.length - 100) + " more items");
          return inner(shown, "[", "]", TypedArrayPrototypeGetTag(v) + "(" + v.length + ") ");
        }
        if (isMap(v)) return inner(Array.from(v, ([k, x]) => str(k, depth + 1) + " => " + str(x, depth + 1)), "{", "}", "Map(" + v.size + ") ");
        if (isSet(v)) return inner(Array.from(v, (x) => str(x, depth + 1)), "{", "}", "Set(" + v.size + ") ");
        if (isArrayBuffer(v)) return "ArrayBuffer { byteLength: " + v.byteLength + " }";
        if (v instanceof Promise) return "Promise { <unknown> }";
        const proto = Object.getPrototypeOf(v);
        const name = proto === null ? "[Object: null prototype] " : proto !== Object.prototype && proto.constructor && proto.constructor.name ? proto.constructor.name + " " : "";
        const entries = Reflect.ownKeys(v)
          .filter((k) => Object.prototype.propertyIsEnumerable.call(v, k))
          .map((k) => key(k) + ": " + str(v[k], depth + 1));
        return inner(entries, "{", "}", name);
      } finally {
        seen.pop();
      }
    };
    return str(value, 0);
  };
  inspect.custom = CUSTOM_INSPECT;
  const format = (first, ...args) => {
    if (typeof first !== "string") return [first, ...args].map((v) => (typeof v === "string" ? v : inspect(v))).join(" ");
    let i = 0;
    const out = first.replace(/%([sdifjoOc%])/g, (match, c) => {
      if (c === "%") return "%";
      if (i >= args.length) return match;
      const v = args[i++];
      switch (c) {
        case "s": return typeof v === "string" ? v : typeof v === "bigint" ? v + "n" : typeof v === "object" && v !== null ? inspect(v, { depth: 1 }) : String(v);
        case "d": return typeof v === "bigint" ? v + "n" : typeof v === "symbol" ? "NaN" : String(Number(v));
        case "i": return typeof v === "bigint" ? v + "n" : String(Number.parseInt(v));
        case "f": return String(Number.parseFloat(v));
        case "j": try { return JSON.stringify(v); } catch { return "[Circular]"; }
        case "c": return "";
        default: return inspect(v, c === "O" ? {} : { depth: 4 });
      }
    });
    return [out, ...args.slice(i).map((v) => (typeof v === "string" ? v : inspect(v)))].join(" ");
  };
  const promisify = (original) => {
    if (typeof original !== "function") throw new TypeError("The \"original\" argument must be of type function");
    if (typeof original[CUSTOM_PROMISIFY] === "function") return original[CUSTOM_PROMISIFY];
    function fn(...args) {
      return new Promise((resolve, reject) => {
        ReflectApply(original, this, [...args, (error, value) => (error ? reject(error) : resolve(value))]);
      });
    }
    Object.setPrototypeOf(fn, Object.getPrototypeOf(original));
    return Object.defineProperties(fn, Object.getOwnPropertyDescriptors(original));
  };
  promisify.custom = CUSTOM_PROMISIFY;
  const callbackify = (original) => {
    if (typeof original !== "function") throw new TypeError("The \"original\" argument must be of type function");
    return function (...args) {
      const callback = args.pop();
      if (typeof callback !== "function") throw new TypeError("The last argument must be of type function");
      ReflectApply(original, this, args).then(
        (value) => process().nextTick(callback, null, value),
        (error) => process().nextTick(callback, error || Object.assign(new Error("Promise was rejected with a falsy value"), { reason: error })),
      );
    };
  };
  const inherits = (ctor, superCtor) => {
    if (typeof ctor !== "function" || typeof superCtor !== "function" || superCtor.prototype === undefined) {
      throw new TypeError("The \"ctor\" and \"superCtor\" arguments must be functions with a prototype");
    }
    Object.defineProperty(ctor, "super_", { value: superCtor, writable: true, configurable: true });
    Object.setPrototypeOf(ctor.prototype, superCtor.prototype);
  };
  const warned = new Set();
  const deprecate = (fn, message, code) => {
    let done = false;
    return function (...args) {
      if (!done && !(code !== undefined && warned.has(code))) {
        done = true;
        if (code !== undefined) warned.add(code);
        process().emitWarning(message, "DeprecationWarning", code);
      }
      return new.target ? Reflect.construct(fn, args, new.target) : ReflectApply(fn, this, args);
    };
  };
  const isDeepStrictEqual = (a, b) => {
    if (Object.is(a, b)) return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
    if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
    if (isDate(a)) return a.getTime() === b.getTime();
    if (isTypedArray(a)) return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
    if (isMap(a) || isSet(a)) return a.size === b.size && isDeepStrictEqual([...a], [...b]);
    const ka = Reflect.ownKeys(a), kb = Reflect.ownKeys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && isDeepStrictEqual(a[k], b[k]));
  };
  const util = once("util", () => {
    const debuglog = () => Object.assign(() => {}, { enabled: false });
    const lib = {
      format, inspect, promisify, callbackify, inherits, deprecate, isDeepStrictEqual, types, debuglog, debug: debuglog,
      TextEncoder, TextDecoder, isArray: ArrayIsArray,
      formatWithOptions: (options, ...args) => format(...args),
    };
    return ObjectFreeze({ __proto__: null, default: lib, ...lib });
  });

  // ---------- node:crypto ----------
  const crypto = once("crypto", () => {
    const hostHash = (name) => {
      const algorithm = NODE_HASHES[String(name).toLowerCase()];
      if (algorithm === undefined) throw new TypeError("Digest method not supported: " + String(name) + " (md5, sha1, sha256, sha384, sha512)");
      return algorithm;
    };
    // Input crosses in pieces the host accepts (MAX_CRYPTO_BYTES each); the call's budget of host bytes bounds the whole.
    const feed = (handle, bytes) => {
      const length = TypedArrayPrototypeGetByteLength(bytes);
      for (let at = 0; at < length; at += MAX_CRYPTO_BYTES) {
        hostCrypto("hash-update", "", handle, at === 0 && length <= MAX_CRYPTO_BYTES ? bytes : bytes.slice(at, at + MAX_CRYPTO_BYTES));
      }
    };
    const output = (bytes, encoding) => {
      const buf = Buffer().from(TypedArrayPrototypeGetBuffer(bytes), TypedArrayPrototypeGetByteOffset(bytes), TypedArrayPrototypeGetByteLength(bytes));
      return encoding === undefined || encoding === "buffer" ? buf : buf.toString(encoding);
    };
    class Hash {
      #handle;
      #done = false;
      constructor(handle) { this.#handle = handle; registerHandle(this, handle); }
      update(data, encoding) {
        if (this.#done) throw new Error("Digest already called");
        feed(this.#handle, plainBytes(data, encoding, "data"));
        return this;
      }
      digest(encoding) {
        if (this.#done) throw new Error("Digest already called");
        this.#done = true;
        return output(hostCrypto("hash-final", "", this.#handle), encoding);
      }
      copy() { throw new Error("Hash.copy() is not supported on Hearth"); }
    }
    const createHash = (algorithm) => new Hash(hostCrypto("node-hash-open", hostHash(algorithm)));
    const createHmac = (algorithm, key) => {
      const bytes = plainBytes(key, "utf8", "key");
      if (TypedArrayPrototypeGetByteLength(bytes) > MAX_CRYPTO_BYTES) throw new RangeError("the HMAC key is over " + MAX_CRYPTO_BYTES + " bytes");
      return new Hash(hostCrypto("node-hmac-open", hostHash(algorithm), bytes));
    };
    const randomBytes = (size, callback) => {
      const n = Number(size);
      if (!Number.isInteger(n) || n < 0 || n > MAX_RANDOM) throw new RangeError("The value of \"size\" is out of range. It must be >= 0 && <= " + MAX_RANDOM + ". Received " + String(size));
      const out = Buffer().alloc(n);
      for (let at = 0; at < n; at += 65536) TypedArrayPrototypeSet(out, hostCrypto("random", MathMin(65536, n - at)), at);
      if (typeof callback === "function") { process().nextTick(callback, null, out); return undefined; }
      return out;
    };
    const randomInt = (min, max, callback) => {
      if (max === undefined || typeof max === "function") { callback = max; max = min; min = 0; }
      if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || max <= min || max - min > 2 ** 48) throw new RangeError("randomInt needs safe integers min < max, at most 2^48 apart");
      const range = max - min, limit = 2 ** 48 - (2 ** 48 % range);
      let x;
      do { const b = hostCrypto("random", 6); x = b[0] * 2 ** 40 + b[1] * 2 ** 32 + b[2] * 2 ** 24 + b[3] * 2 ** 16 + b[4] * 2 ** 8 + b[5]; } while (x >= limit);
      const value = min + (x % range);
      if (typeof callback === "function") { process().nextTick(callback, null, value); return undefined; }
      return value;
    };
    const timingSafeEqual = (a, b) => {
      const x = plainBytes(a, undefined, "buf1"), y = plainBytes(b, undefined, "buf2");
      if (x.length !== y.length) throw Object.assign(new RangeError("Input buffers must have the same byte length"), { code: "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH" });
      let diff = 0;
      for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
      return diff === 0;
    };
    const lib = {
      createHash, createHmac, randomBytes, randomInt, timingSafeEqual, Hash,
      randomUUID: () => randomUUID(),
      getRandomValues: (array) => getRandomValues(array),
      getHashes: () => ["md5", "sha1", "sha256", "sha384", "sha512"],
      get webcrypto() { return globalThis.crypto; },
      get subtle() { return globalThis.crypto.subtle; },
    };
    return ObjectFreeze({
      __proto__: null, default: lib, createHash, createHmac, randomBytes, randomInt, timingSafeEqual, Hash,
      randomUUID: lib.randomUUID, getRandomValues: lib.getRandomValues, getHashes: lib.getHashes, webcrypto: globalThis.crypto, subtle: globalThis.crypto.subtle,
    });
  });

  // ---------- process ----------
  /** process.env: the function's env vars (strings), a plain object of its own; the host's environment never enters an isolate. */
  const envCopy = (from) => {
    const copy = {};
    for (const name of Object.keys(from)) if (typeof from[name] === "string") copy[name] = from[name];
    return copy;
  };
  let processEnv;
  const process = once("process", () => {
    processEnv = envCopy(env);
    const EventEmitter = events().EventEmitter;
    const start = Date.now();
    const nextTick = (fn, ...args) => {
      if (typeof fn !== "function") throw new TypeError("The \"callback\" argument must be of type function");
      globalThis.queueMicrotask(() => ReflectApply(fn, undefined, args));
    };
    const hrtime = (previous) => {
      const ms = Date.now() - start, s = Math.floor(ms / 1000), ns = (ms % 1000) * 1e6;
      if (!ArrayIsArray(previous)) return [s, ns];
      let ds = s - previous[0], dns = ns - previous[1];
      if (dns < 0) { ds--; dns += 1e9; }
      return [ds, dns];
    };
    hrtime.bigint = () => BigInt(Date.now() - start) * 1000000n;
    const p = new EventEmitter();
    Object.defineProperty(p, "env", { get: () => processEnv, set: (v) => { processEnv = v; }, enumerable: true, configurable: true });
    Object.assign(p, {
      title: "hearth", version: NODE_VERSION, versions: ObjectFreeze({ node: StringPrototypeSlice(NODE_VERSION, 1) }),
      platform: "linux", arch: "x64", release: ObjectFreeze({ name: "node" }), argv: ["node"], execArgv: [], argv0: "node", pid: 1, ppid: 0,
      exitCode: undefined, features: ObjectFreeze({}), config: ObjectFreeze({ variables: {} }),
      nextTick, hrtime,
      cwd: () => "/", chdir: () => { throw new Error("process.chdir() is not supported on Hearth"); },
      umask: () => 0o22, uptime: () => (Date.now() - start) / 1000,
      exit: (code) => { throw new Error("process.exit(" + (code ?? "") + ") was called: a function ends by returning a Response"); },
      abort: () => { throw new Error("process.abort() was called"); },
      emitWarning: (warning, type, code) => {
        const name = typeof type === "string" ? type : "Warning";
        globalThis.console.warn("(node) " + (code ? "[" + code + "] " : "") + name + ": " + (warning instanceof Error ? warning.message : String(warning)));
      },
      memoryUsage: Object.assign(() => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }), { rss: () => 0 }),
      stdout: ObjectFreeze({ write: (s) => { globalThis.console.log(String(s)); return true; }, isTTY: false }),
      stderr: ObjectFreeze({ write: (s) => { globalThis.console.error(String(s)); return true; }, isTTY: false }),
    });
    return p;
  });
  const processModule = once("process-module", () => ObjectFreeze({ __proto__: null, default: process(), ...process() }));

  const BUILTINS = { __proto__: null, buffer, events, util, async_hooks: asyncHooks, crypto, process: processModule };
  /** A built-in's exports by its bare name (the worker's module for `node:<name>` reads them from here). */
  const builtin = (name) => {
    const make = typeof name === "string" ? BUILTINS[name] : undefined;
    if (make === undefined) throw new TypeError("no Node built-in " + String(name));
    return make();
  };
  return {
    builtin,
    Buffer,
    process,
    /** At each call: a fresh `process.env` when the env changed, and no async context left over from the last call. */
    beginCall(changed) {
      if (changed !== undefined && processEnv !== undefined) processEnv = envCopy(changed);
      frame = null;
    },
  };
}
