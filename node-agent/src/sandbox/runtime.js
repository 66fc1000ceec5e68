"use strict";
// The in-isolate runtime: the web-standard globals a Workers-style function
// needs, written against ECMAScript built-ins only (plus web-streams-polyfill,
// evaluated lazily). It runs as a closure in each new context; its arguments
// are host callbacks captured here and never put on a global, so tenant code
// cannot reach them:
//   $0 log(level, message)             console lines
//   $1 parseUrl(input, base)           WHATWG URL parsing by the host
//   $2 crypto(op, a, b, c)             random bytes, digests, running hashes (bytes are copied)
//   $3 source(name)                    trusted library source read by the agent at start
//   $4 timer(op, id, ms)               arm (1 once, 2 repeat) or clear (0) a host timer
//   $5 fetch(id, request)              start an outbound fetch through the host; it answers with fetched(id, answer)
//   $6 options                         { userAgent, maxTimers, maxUrlLength, maxLogLength, maxLogLines, maxCryptoBytes, ... }
//   $7 job(id, { kind, request })      start async host work (Web Crypto, compression); it answers with jobDone(id, outcome)
//   $8 handles(op, a, b)               open a compressor, drop handles the garbage collector freed
// It returns { bind, fire, fetched, jobDone, reset, settle, enter } for the sandbox worker. The families
// of globals in runtime/*.js are function declarations in the same closure, run on first touch.
//
// Strict mode: a tenant function called from here cannot climb to the
// runtime's functions through `fn.caller`/`arguments.callee`, and V8 hands
// out no function or receiver of a strict frame in structured stack traces.
const hostLog = $0;
const hostParseUrl = $1;
const hostCrypto = $2;
const hostSource = $3;
const hostTimer = $4;
const hostFetch = $5;
const hostJobStart = $7;
const hostHandles = $8;

// ---------- primordials ----------
// Captured before any tenant code runs (as Node's own primordials): tenant
// code shares these built-ins and may replace `Map.prototype.clear`,
// `String.prototype.slice`, a global `String`, or add a setter on
// `Array.prototype[0]`. Everything that bounds what crosses to the host, and
// everything the host calls while no call is running, uses only these.
const {
  Array, ArrayBuffer, Boolean, DataView, Date, Error, EvalError, JSON, Map, Math, Number, Object, Promise, RangeError,
  ReferenceError, Reflect, RegExp, Set, String, Symbol, SyntaxError, TypeError, URIError, Uint8Array, WeakMap,
  decodeURIComponent, encodeURIComponent, Function: FunctionCtor,
} = globalThis;
const uncurryThis = FunctionCtor.prototype.bind.bind(FunctionCtor.prototype.call);
const getter = (proto, name) => uncurryThis(Object.getOwnPropertyDescriptor(proto, name).get);
const ReflectApply = Reflect.apply;
const ReflectDefineProperty = Reflect.defineProperty;
const ObjectFreeze = Object.freeze;
const ObjectHasOwn = Object.hasOwn;
const ArrayIsArray = Array.isArray;
const MathMin = Math.min;
const MapPrototypeGet = uncurryThis(Map.prototype.get);
const MapPrototypeSet = uncurryThis(Map.prototype.set);
const MapPrototypeHas = uncurryThis(Map.prototype.has);
const MapPrototypeDelete = uncurryThis(Map.prototype.delete);
const MapPrototypeClear = uncurryThis(Map.prototype.clear);
const MapPrototypeGetSize = getter(Map.prototype, "size");
const WeakMapPrototypeGet = uncurryThis(WeakMap.prototype.get);
const WeakMapPrototypeSet = uncurryThis(WeakMap.prototype.set);
const StringPrototypeSlice = uncurryThis(String.prototype.slice);
const StringPrototypeToUpperCase = uncurryThis(String.prototype.toUpperCase);
const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype);
const TypedArrayPrototypeGetTag = getter(TypedArrayPrototype, Symbol.toStringTag);
const TypedArrayPrototypeGetByteLength = getter(TypedArrayPrototype, "byteLength");
const TypedArrayPrototypeGetByteOffset = getter(TypedArrayPrototype, "byteOffset");
const TypedArrayPrototypeGetBuffer = getter(TypedArrayPrototype, "buffer");
const TypedArrayPrototypeSet = uncurryThis(TypedArrayPrototype.set);
const ArrayBufferPrototypeGetByteLength = getter(ArrayBuffer.prototype, "byteLength");
/** Appends to an array of ours without [[Set]] (which would run a setter a tenant put on Array.prototype). */
const append = (array, value) => { ReflectDefineProperty(array, array.length, { __proto__: null, value, writable: true, enumerable: true, configurable: true }); };

// Bounds on what may cross to the host, checked here before the copy is made
// (the host checks again, but by then the bytes would already be on its heap).
const OPTIONS = { __proto__: null, ...$6 };
const MAX_TIMERS = OPTIONS.maxTimers;
const MAX_URL = OPTIONS.maxUrlLength;
const MAX_LOG = OPTIONS.maxLogLength;
const MAX_LOG_LINES = OPTIONS.maxLogLines;
const MAX_LOG_CHARS = OPTIONS.maxLogBytes;
const MAX_CRYPTO_BYTES = OPTIONS.maxCryptoBytes;
const MAX_ZLIB_INPUT = OPTIONS.maxZlibInput;
const MAX_HEADER_BYTES = OPTIONS.maxHeaderBytes;
const MAX_HEADERS = OPTIONS.maxHeaders;
const MAX_FETCH_BODY = OPTIONS.maxFetchBody;
const MAX_ERROR = OPTIONS.maxErrorLength;
const USER_AGENT = OPTIONS.userAgent;

/** A Uint8Array of exactly its own bytes, at most `max` of them: a view on a bigger buffer would copy the whole buffer. */
const ownBytes = (value, max, what) => {
  let tag;
  try { tag = TypedArrayPrototypeGetTag(value); } catch { tag = undefined; }
  if (tag !== "Uint8Array") throw new TypeError(what + " must be bytes");
  const length = TypedArrayPrototypeGetByteLength(value);
  if (length > max) throw new RangeError(what + " is over " + max + " bytes");
  let whole = false;
  try { whole = TypedArrayPrototypeGetByteOffset(value) === 0 && ArrayBufferPrototypeGetByteLength(TypedArrayPrototypeGetBuffer(value)) === length; } catch { whole = false; }
  if (whole) return value;
  const copy = new Uint8Array(length);
  TypedArrayPrototypeSet(copy, value);
  return copy;
};
/** A string of at most `max` UTF-16 units (a primitive: its length cannot lie). */
const boundedString = (value, max) => {
  const s = typeof value === "string" ? value : String(value);
  return s.length > max ? StringPrototypeSlice(s, 0, max) : s;
};
/** [name, value] pairs as plain strings, checked for count and total size; anything else is an error of `what`. */
const boundedHeaders = (list, maxCount, maxBytes, fail) => {
  if (!ArrayIsArray(list)) throw fail("headers are not a list");
  const n = list.length;
  if (n > maxCount) throw fail("more than " + maxCount + " headers");
  const out = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const pair = list[i];
    if (!ArrayIsArray(pair) || pair.length !== 2) throw fail("a header is not a [name, value] pair");
    const name = pair[0], value = pair[1];
    if (typeof name !== "string" || typeof value !== "string") throw fail("a header name or value is not a string");
    bytes += name.length + value.length + 4;
    if (bytes > maxBytes) throw fail("headers are over " + maxBytes + " bytes in total");
    append(out, [name, value]);
  }
  return out;
};
// Every call to the host goes through these: sizes are checked here, before the copy.
// WHATWG parsing is a pure function of (input, base), so this isolate (one function's) keeps the answers for short
// URLs: a call into the host costs a thread switch each way (about 25 µs of the device's CPU), and most functions parse
// request.url on every call. Answers are frozen records that only the URL class reads (it copies before it changes one).
const urlMemo = new Map();
const URL_MEMO_ENTRIES = 256;
const URL_MEMO_CHARS = 2048;
const memoKey = (s, b) => (b === undefined ? "u" + s : b.length + ":" + b + s);
const rememberUrl = (key, parsed) => {
  if (MapPrototypeGetSize(urlMemo) >= URL_MEMO_ENTRIES) MapPrototypeClear(urlMemo);
  MapPrototypeSet(urlMemo, key, parsed === null ? null : ObjectFreeze(parsed));
};
const parseUrl = (input, base) => {
  const s = typeof input === "string" ? input : String(input);
  const b = base === undefined ? undefined : typeof base === "string" ? base : String(base);
  if (s.length > MAX_URL || (b !== undefined && b.length > MAX_URL)) return null;
  const short = s.length + (b === undefined ? 0 : b.length) <= URL_MEMO_CHARS;
  const key = short ? memoKey(s, b) : undefined;
  if (key !== undefined && MapPrototypeHas(urlMemo, key)) return MapPrototypeGet(urlMemo, key);
  const parsed = hostParseUrl(s, b);
  if (key !== undefined) rememberUrl(key, parsed);
  return parsed;
};
/** The host parsed the request's URL already (it sends the parts with the call): its Request and `new URL(request.url)` find it. */
const knownUrl = (url, parts) => {
  if (typeof url !== "string" || parts === null || typeof parts !== "object" || url.length > URL_MEMO_CHARS) return;
  const record = ObjectFreeze({ __proto__: null, ...parts });
  rememberUrl(memoKey(url, undefined), record);
  if (typeof record.href === "string" && record.href !== url && record.href.length <= URL_MEMO_CHARS) rememberUrl(memoKey(record.href, undefined), record);
};
// The call's lines so far (from its dispatch on; top-level code's from the load): past the budget none is sent, as
// the host would drop them anyway (it counts too: it does not trust this), and the line past it brings the notice.
let logLines = 0;
let logChars = 0;
const logLine = (level, message) => {
  if (logLines > MAX_LOG_LINES || logChars > MAX_LOG_CHARS) return;
  const line = boundedString(message, MAX_LOG);
  logLines++;
  logChars += line.length;
  hostLog(level, line);
};
const randomBytes = (n) => {
  if (typeof n !== "number" || !(n >= 0 && n <= 65536)) throw new RangeError("bad length");
  return hostCrypto("random", n);
};

const define = (name, value) =>
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
// A global whose value is made on first touch (heavy polyfills): a function that never uses it never pays for it.
const lazy = (name, make) =>
  Object.defineProperty(globalThis, name, {
    get() { const value = make(); define(name, value); return value; },
    set(value) { define(name, value); },
    configurable: true,
    enumerable: false,
  });

// ---------- DOMException ----------
const DOM_CODES = {
  IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5, NoModificationAllowedError: 7,
  NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11, SyntaxError: 12, InvalidModificationError: 13,
  NamespaceError: 14, InvalidAccessError: 15, TypeMismatchError: 17, SecurityError: 18, NetworkError: 19,
  AbortError: 20, URLMismatchError: 21, QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25,
};
class DOMException extends Error {
  #name;
  constructor(message = "", name = "Error") {
    super(String(message));
    this.#name = String(name);
  }
  get name() { return this.#name; }
  get code() { return DOM_CODES[this.#name] ?? 0; }
}
for (const [name, code] of Object.entries(DOM_CODES)) {
  const constant = name.replace(/Error$/, "").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase() + "_ERR";
  Object.defineProperty(DOMException, constant, { value: code, enumerable: true });
}

// ---------- text encoding (UTF-8 only, as on the web) ----------
const encodeUtf8 = (s) => {
  const out = new Uint8Array(s.length * 3);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; } else c = 0xfffd;
    } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x80) out[n++] = c;
    else if (c < 0x800) { out[n++] = 0xc0 | (c >> 6); out[n++] = 0x80 | (c & 63); }
    else if (c < 0x10000) { out[n++] = 0xe0 | (c >> 12); out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63); }
    else { out[n++] = 0xf0 | (c >> 18); out[n++] = 0x80 | ((c >> 12) & 63); out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63); }
  }
  return out.slice(0, n);
};
class TextEncoder {
  get encoding() { return "utf-8"; }
  encode(input = "") { return encodeUtf8(String(input)); }
  encodeInto(input, dest) {
    const bytes = encodeUtf8(String(input));
    // never split a character: back off to the last sequence start that fits
    let n = Math.min(bytes.length, dest.length);
    if (n < bytes.length) while (n > 0 && (bytes[n] & 0xc0) === 0x80) n--;
    dest.set(bytes.subarray(0, n));
    let read = 0;
    for (let i = 0; i < n; i++) if ((bytes[i] & 0xc0) !== 0x80) read += bytes[i] >= 0xf0 ? 2 : 1;
    return { read, written: n };
  }
}
const UTF8_LABELS = ["utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"];
const asBytes = (input) => {
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (input && Object.prototype.toString.call(input) === "[object SharedArrayBuffer]") return new Uint8Array(input);
  throw new TypeError("The provided value is not of type '(ArrayBuffer or ArrayBufferView)'");
};
class TextDecoder {
  #fatal; #ignoreBOM; #pending = null; #bomSeen = false;
  constructor(label = "utf-8", options = {}) {
    if (!UTF8_LABELS.includes(String(label).trim().toLowerCase())) throw new RangeError("The encoding label provided ('" + label + "') is not supported: only utf-8 is");
    this.#fatal = Boolean(options && options.fatal);
    this.#ignoreBOM = Boolean(options && options.ignoreBOM);
  }
  get encoding() { return "utf-8"; }
  get fatal() { return this.#fatal; }
  get ignoreBOM() { return this.#ignoreBOM; }
  decode(input, options = {}) {
    const stream = Boolean(options && options.stream);
    let b = input === undefined ? new Uint8Array(0) : asBytes(input);
    if (this.#pending) { const joined = new Uint8Array(this.#pending.length + b.length); joined.set(this.#pending); joined.set(b, this.#pending.length); b = joined; this.#pending = null; }
    let s = "";
    let i = 0;
    if (!this.#bomSeen && !this.#ignoreBOM) {
      if (b.length < 3 && stream && b.length > 0 && [0xef, 0xbb, 0xbf].slice(0, b.length).every((x, j) => b[j] === x)) { this.#pending = b; return ""; }
      if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) i = 3;
    }
    if (b.length > 0) this.#bomSeen = true;
    const chunk = [];
    const flush = () => { s += String.fromCharCode.apply(null, chunk); chunk.length = 0; };
    const bad = () => { if (this.#fatal) throw new TypeError("The encoded data was not valid utf-8"); return 0xfffd; };
    while (i < b.length) {
      const x = b[i];
      const need = x < 0x80 ? 1 : x >= 0xc2 && x < 0xe0 ? 2 : x >= 0xe0 && x < 0xf0 ? 3 : x >= 0xf0 && x < 0xf5 ? 4 : 0;
      if (stream && need > 1 && i + need > b.length) {
        let ok = true;
        for (let j = i + 1; j < b.length; j++) if ((b[j] & 0xc0) !== 0x80) ok = false;
        if (ok) { this.#pending = b.slice(i); break; }
      }
      let c, n = 1;
      if (need === 1) c = x;
      else if (need === 2 && (b[i + 1] & 0xc0) === 0x80) { c = ((x & 31) << 6) | (b[i + 1] & 63); n = 2; }
      else if (need === 3 && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80) {
        c = ((x & 15) << 12) | ((b[i + 1] & 63) << 6) | (b[i + 2] & 63); n = 3;
        if (c < 0x800 || (c >= 0xd800 && c <= 0xdfff)) { c = bad(); n = 1; }
      } else if (need === 4 && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80 && (b[i + 3] & 0xc0) === 0x80) {
        c = ((x & 7) << 18) | ((b[i + 1] & 63) << 12) | ((b[i + 2] & 63) << 6) | (b[i + 3] & 63); n = 4;
        if (c < 0x10000 || c > 0x10ffff) { c = bad(); n = 1; }
      } else c = bad();
      if (c > 0xffff) { c -= 0x10000; chunk.push(0xd800 + (c >> 10), 0xdc00 + (c & 1023)); } else chunk.push(c);
      if (chunk.length > 8000) flush();
      i += n;
    }
    flush();
    if (!stream) this.#bomSeen = false;
    return s;
  }
}
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const utf8 = (bytes) => decoder.decode(bytes);

// ---------- URL and URLSearchParams ----------
const formDecode = (s) => decodeURIComponent(s.replace(/\+/g, " "));
const formEncode = (s) => encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g, (ch) => "%" + ch.charCodeAt(0).toString(16).toUpperCase());
let resetParams;
class URLSearchParams {
  #list = [];
  #onChange;
  constructor(init = "", onChange) {
    this.#onChange = onChange;
    if (typeof init === "string") this.#parse(init);
    else if (init instanceof URLSearchParams) this.#list = [...init];
    else if (init && typeof init[Symbol.iterator] === "function") for (const [k, v] of init) this.#list.push([String(k), String(v)]);
    else if (init && typeof init === "object") for (const k of Object.keys(init)) this.#list.push([k, String(init[k])]);
  }
  #parse(s) {
    this.#list = [];
    for (const part of s.replace(/^\?/, "").split("&")) {
      if (!part) continue;
      const eq = part.indexOf("=");
      this.#list.push(eq < 0 ? [formDecode(part), ""] : [formDecode(part.slice(0, eq)), formDecode(part.slice(eq + 1))]);
    }
  }
  static { resetParams = (params, s) => params.#parse(s); }
  #changed() { if (this.#onChange) this.#onChange(this.toString()); }
  get size() { return this.#list.length; }
  append(k, v) { this.#list.push([String(k), String(v)]); this.#changed(); }
  delete(k) { this.#list = this.#list.filter(([n]) => n !== String(k)); this.#changed(); }
  get(k) { const e = this.#list.find(([n]) => n === String(k)); return e ? e[1] : null; }
  getAll(k) { return this.#list.filter(([n]) => n === String(k)).map(([, v]) => v); }
  has(k) { return this.#list.some(([n]) => n === String(k)); }
  set(k, v) {
    const i = this.#list.findIndex(([n]) => n === String(k));
    if (i < 0) this.#list.push([String(k), String(v)]);
    else { this.#list[i] = [String(k), String(v)]; this.#list = this.#list.filter(([n], j) => j <= i || n !== String(k)); }
    this.#changed();
  }
  sort() { this.#list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this.#changed(); }
  forEach(fn, self) { for (const [k, v] of this.#list) fn.call(self, v, k, this); }
  keys() { return this.#list.map(([k]) => k)[Symbol.iterator](); }
  values() { return this.#list.map(([, v]) => v)[Symbol.iterator](); }
  entries() { return this.#list.map(([k, v]) => [k, v])[Symbol.iterator](); }
  [Symbol.iterator]() { return this.entries(); }
  toString() { return this.#list.map(([k, v]) => formEncode(k) + "=" + formEncode(v)).join("&"); }
}

class URL {
  #p;
  #params;
  constructor(input, base) {
    const parsed = parseUrl(input, base);
    if (parsed === null) throw new TypeError("Invalid URL: " + String(input));
    this.#p = parsed;
  }
  static canParse(input, base) { return parseUrl(input, base) !== null; }
  static parse(input, base) { try { return new URL(input, base); } catch { return null; } }
  // Setters rebuild the href and let the host's WHATWG parser normalise it.
  #rebuild(part, value) {
    const p = { ...this.#p, [part]: String(value) };
    const auth = p.username ? p.username + (p.password ? ":" + p.password : "") + "@" : "";
    const host = part === "host" ? p.host : p.hostname + (p.port ? ":" + p.port : "");
    const search = p.search && !p.search.startsWith("?") ? "?" + p.search : p.search;
    const hash = p.hash && !p.hash.startsWith("#") ? "#" + p.hash : p.hash;
    const protocol = p.protocol.endsWith(":") ? p.protocol : p.protocol + ":";
    const parsed = parseUrl(protocol + "//" + auth + host + p.pathname + search + hash, undefined);
    if (parsed !== null) this.#p = parsed;
    if (this.#params) resetParams(this.#params, this.#p.search);
  }
  get href() { return this.#p.href; }
  set href(v) {
    const parsed = parseUrl(String(v), undefined);
    if (parsed === null) throw new TypeError("Invalid URL: " + String(v));
    this.#p = parsed;
    if (this.#params) resetParams(this.#params, parsed.search);
  }
  get origin() { return this.#p.origin; }
  get protocol() { return this.#p.protocol; }
  set protocol(v) { this.#rebuild("protocol", v); }
  get username() { return this.#p.username; }
  set username(v) { this.#rebuild("username", v); }
  get password() { return this.#p.password; }
  set password(v) { this.#rebuild("password", v); }
  get host() { return this.#p.host; }
  set host(v) { this.#rebuild("host", v); }
  get hostname() { return this.#p.hostname; }
  set hostname(v) { this.#rebuild("hostname", v); }
  get port() { return this.#p.port; }
  set port(v) { this.#rebuild("port", v); }
  get pathname() { return this.#p.pathname; }
  set pathname(v) { this.#rebuild("pathname", String(v).startsWith("/") ? v : "/" + v); }
  get search() { return this.#p.search; }
  set search(v) { this.#rebuild("search", v); }
  get hash() { return this.#p.hash; }
  set hash(v) { this.#rebuild("hash", v); }
  get searchParams() {
    return (this.#params ??= new URLSearchParams(this.#p.search, (s) => {
      const parsed = parseUrl(this.#p.href.replace(/[?#].*$/, "") + (s ? "?" + s : "") + this.#p.hash, undefined);
      if (parsed) this.#p = parsed;
    }));
  }
  toString() { return this.#p.href; }
  toJSON() { return this.#p.href; }
}

// ---------- Headers ----------
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const normalizeName = (name) => {
  const n = String(name);
  if (!HEADER_NAME.test(n)) throw new TypeError("Invalid header name: " + n);
  return n.toLowerCase();
};
const normalizeValue = (value) => {
  const v = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
  if (/[\0\r\n]/.test(v)) throw new TypeError("Invalid header value");
  return v;
};
class Headers {
  #map = new Map();
  #cookies = [];
  constructor(init) {
    if (init instanceof Headers) for (const [k, v] of init.#entriesRaw()) this.append(k, v);
    else if (Array.isArray(init) || (init && typeof init[Symbol.iterator] === "function")) for (const pair of init) {
      const [k, v] = pair;
      if (pair.length !== 2) throw new TypeError("Header pairs must have two items");
      this.append(k, v);
    }
    else if (init && typeof init === "object") for (const k of Object.keys(init)) this.append(k, init[k]);
  }
  #entriesRaw() {
    const out = [...this.#map].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const c of this.#cookies) out.push(["set-cookie", c]);
    return out;
  }
  append(name, value) {
    const n = normalizeName(name), v = normalizeValue(value);
    if (n === "set-cookie") { this.#cookies.push(v); return; }
    const prev = this.#map.get(n);
    this.#map.set(n, prev === undefined ? v : prev + ", " + v);
  }
  set(name, value) {
    const n = normalizeName(name), v = normalizeValue(value);
    if (n === "set-cookie") this.#cookies = [v];
    else this.#map.set(n, v);
  }
  get(name) {
    const n = normalizeName(name);
    if (n === "set-cookie") return this.#cookies.length ? this.#cookies.join(", ") : null;
    return this.#map.has(n) ? this.#map.get(n) : null;
  }
  getSetCookie() { return [...this.#cookies]; }
  has(name) { const n = normalizeName(name); return n === "set-cookie" ? this.#cookies.length > 0 : this.#map.has(n); }
  delete(name) { const n = normalizeName(name); if (n === "set-cookie") this.#cookies = []; else this.#map.delete(n); }
  forEach(fn, self) { for (const [k, v] of this) fn.call(self, v, k, this); }
  *entries() { yield* this.#entriesRaw(); }
  *keys() { for (const [k] of this.#entriesRaw()) yield k; }
  *values() { for (const [, v] of this.#entriesRaw()) yield v; }
  [Symbol.iterator]() { return this.entries(); }
}

// ---------- base64 ----------
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Map([...B64].map((ch, i) => [ch, i]));
const bytesToBase64 = (b) => {
  let out = "";
  for (let i = 0; i < b.length; i += 3) {
    const n = (b[i] << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < b.length ? B64[(n >> 6) & 63] : "=") + (i + 2 < b.length ? B64[n & 63] : "=");
  }
  return out;
};
const base64ToBytes = (input) => {
  let s = String(input).replace(/[\t\n\f\r ]+/g, "");
  if (s.length % 4 === 0) s = s.replace(/==?$/, "");
  if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) throw new DOMException("The string to be decoded is not correctly encoded.", "InvalidCharacterError");
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let bits = 0, acc = 0, n = 0;
  for (const ch of s) {
    acc = (acc << 6) | B64_INDEX.get(ch);
    bits += 6;
    if (bits >= 8) { bits -= 8; out[n++] = (acc >> bits) & 255; }
  }
  return out.subarray(0, n);
};
function btoa(data) {
  if (arguments.length === 0) throw new TypeError("btoa requires 1 argument");
  const s = String(data);
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) throw new DOMException("The string to be encoded contains characters outside of the Latin1 range.", "InvalidCharacterError");
    b[i] = c;
  }
  return bytesToBase64(b);
}
function atob(data) {
  if (arguments.length === 0) throw new TypeError("atob requires 1 argument");
  const b = base64ToBytes(data);
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, i + 8192));
  return s;
}

// ---------- Event, EventTarget ----------
let setEventTarget, immediateStopped;
class Event {
  #type; #bubbles; #cancelable; #composed; #defaultPrevented = false; #stop = false; #immediateStop = false; #timeStamp;
  #target = null;
  static {
    setEventTarget = (event, target) => { event.#target = target; };
    immediateStopped = (event) => event.#immediateStop;
  }
  constructor(type, init = {}) {
    if (arguments.length === 0) throw new TypeError("Event requires a type");
    this.#type = String(type);
    this.#bubbles = Boolean(init && init.bubbles);
    this.#cancelable = Boolean(init && init.cancelable);
    this.#composed = Boolean(init && init.composed);
    this.#timeStamp = performanceNow();
  }
  get type() { return this.#type; }
  get bubbles() { return this.#bubbles; }
  get cancelable() { return this.#cancelable; }
  get composed() { return this.#composed; }
  get defaultPrevented() { return this.#defaultPrevented; }
  get target() { return this.#target; }
  get currentTarget() { return this.#target; }
  get srcElement() { return this.#target; }
  get timeStamp() { return this.#timeStamp; }
  get eventPhase() { return this.#target ? 2 : 0; }
  get isTrusted() { return false; }
  get returnValue() { return !this.#defaultPrevented; }
  get cancelBubble() { return this.#stop; }
  composedPath() { return this.#target ? [this.#target] : []; }
  preventDefault() { if (this.#cancelable) this.#defaultPrevented = true; }
  stopPropagation() { this.#stop = true; }
  stopImmediatePropagation() { this.#stop = true; this.#immediateStop = true; }
}
Object.assign(Event, { NONE: 0, CAPTURING_PHASE: 1, AT_TARGET: 2, BUBBLING_PHASE: 3 });
class CustomEvent extends Event {
  #detail;
  constructor(type, init = {}) { super(type, init); this.#detail = init && init.detail !== undefined ? init.detail : null; }
  get detail() { return this.#detail; }
}
const reportError = (error) => {
  try { logLine("error", "Uncaught " + show(error)); } catch { /* nothing left to report with */ }
};
class EventTarget {
  #listeners = new Map();
  addEventListener(type, listener, options) {
    if (listener === null || listener === undefined) return;
    const once = typeof options === "object" && options !== null && Boolean(options.once);
    const signal = typeof options === "object" && options !== null ? options.signal : undefined;
    if (signal && signal.aborted) return;
    const list = this.#listeners.get(String(type)) ?? [];
    if (list.some((l) => l.listener === listener)) return;
    const entry = { listener, once };
    list.push(entry);
    this.#listeners.set(String(type), list);
    if (signal) signal.addEventListener("abort", () => this.removeEventListener(type, listener));
  }
  removeEventListener(type, listener) {
    const list = this.#listeners.get(String(type));
    if (!list) return;
    const i = list.findIndex((l) => l.listener === listener);
    if (i >= 0) list.splice(i, 1);
  }
  dispatchEvent(event) {
    if (!(event instanceof Event)) throw new TypeError("dispatchEvent needs an Event");
    setEventTarget(event, this);
    const handler = this["on" + event.type];
    const list = [...(this.#listeners.get(event.type) ?? [])];
    if (typeof handler === "function") list.unshift({ listener: handler, once: false, own: true });
    for (const entry of list) {
      if (entry.once) this.removeEventListener(event.type, entry.listener);
      try {
        if (typeof entry.listener === "function") entry.listener.call(this, event);
        else if (entry.listener && typeof entry.listener.handleEvent === "function") entry.listener.handleEvent(event);
      } catch (error) { reportError(error); }
      if (immediateStopped(event)) break;
    }
    return !event.defaultPrevented;
  }
}

// ---------- AbortController, AbortSignal ----------
const ABORT = Symbol("abort");
let abortSignal;
class AbortSignal extends EventTarget {
  #aborted = false; #reason = undefined;
  onabort = null;
  constructor(key) { super(); if (key !== ABORT) throw new TypeError("Illegal constructor"); }
  get aborted() { return this.#aborted; }
  get reason() { return this.#reason; }
  throwIfAborted() { if (this.#aborted) throw this.#reason; }
  static { abortSignal = (signal, reason) => signal.#abort(reason); }
  #abort(reason) {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
    this.dispatchEvent(new Event("abort"));
  }
  static abort(reason) { const s = new AbortSignal(ABORT); abortSignal(s, reason); return s; }
  static timeout(ms) {
    const s = new AbortSignal(ABORT);
    setTimeout(() => abortSignal(s, new DOMException("The operation timed out.", "TimeoutError")), ms);
    return s;
  }
  static any(signals) {
    const s = new AbortSignal(ABORT);
    for (const other of signals) {
      if (other.aborted) { abortSignal(s, other.reason); return s; }
    }
    for (const other of signals) other.addEventListener("abort", () => abortSignal(s, other.reason), { once: true });
    return s;
  }
}
class AbortController {
  #signal = new AbortSignal(ABORT);
  get signal() { return this.#signal; }
  abort(reason) { abortSignal(this.#signal, reason); }
}

// ---------- timers (bounded by the call: the host clears them all when no call is running) ----------
const timers = new Map();
let nextTimer = 1;
const armTimer = (repeat, fn, ms, args) => {
  if (typeof fn !== "function") throw new TypeError("the callback of a timer must be a function (strings are not evaluated)");
  if (MapPrototypeGetSize(timers) >= MAX_TIMERS) throw new RangeError("too many timers: at most " + MAX_TIMERS + " may be pending");
  const id = nextTimer++;
  const delay = Math.max(repeat ? 1 : 0, Math.min(2 ** 31 - 1, Number(ms) || 0));
  MapPrototypeSet(timers, id, { __proto__: null, fn, args, repeat });
  hostTimer(repeat ? 2 : 1, id, delay);
  return id;
};
function setTimeout(fn, ms, ...args) { return armTimer(false, fn, ms, args); }
function setInterval(fn, ms, ...args) { return armTimer(true, fn, ms, args); }
function clearTimeout(id) { const n = Number(id); if (MapPrototypeDelete(timers, n)) hostTimer(0, n, 0); }
const clearInterval = clearTimeout;
function fireTimer(id) {
  const timer = MapPrototypeGet(timers, id);
  if (!timer) return;
  if (!timer.repeat) MapPrototypeDelete(timers, id);
  try { ReflectApply(timer.fn, undefined, timer.args); } catch (error) { reportError(error); }
}
function queueMicrotask(callback) {
  if (typeof callback !== "function") throw new TypeError("queueMicrotask needs a function");
  Promise.resolve().then(() => { try { callback(); } catch (error) { reportError(error); } });
}

// ---------- performance, navigator ----------
// Coarse on purpose (whole milliseconds): precise clocks help timing side channels.
const timeOrigin = Date.now();
const performanceNow = () => Date.now() - timeOrigin;
const performanceObject = ObjectFreeze({ now: performanceNow, timeOrigin, toJSON: () => ({ timeOrigin }) });
const navigatorObject = ObjectFreeze({ userAgent: USER_AGENT, hardwareConcurrency: 1, language: "en", languages: ObjectFreeze(["en"]) });

// ---------- structuredClone ----------
const TYPED = ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array", "DataView"];
function structuredClone(value, options) {
  if (arguments.length === 0) throw new TypeError("structuredClone requires 1 argument");
  const seen = new Map();
  const cloneError = (what) => new DOMException(what + " could not be cloned.", "DataCloneError");
  const walk = (v) => {
    if (typeof v === "function") throw cloneError(String(v).slice(0, 60));
    if (typeof v === "symbol") throw cloneError(String(v));
    if (typeof v !== "object" || v === null) return v;
    if (seen.has(v)) return seen.get(v);
    const tag = Object.prototype.toString.call(v).slice(8, -1);
    let out;
    switch (tag) {
      case "Boolean": case "Number": case "String": case "BigInt":
        out = Object(v.valueOf()); seen.set(v, out); return out;
      case "Date": out = new Date(v.getTime()); seen.set(v, out); return out;
      case "RegExp": out = new RegExp(v.source, v.flags); seen.set(v, out); return out;
      case "ArrayBuffer": out = v.slice(0); seen.set(v, out); return out;
      case "Map": out = new Map(); seen.set(v, out); for (const [k, x] of v) out.set(walk(k), walk(x)); return out;
      case "Set": out = new Set(); seen.set(v, out); for (const x of v) out.add(walk(x)); return out;
      case "Error": {
        const Ctor = { EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError }[v.name] ?? Error;
        out = new Ctor(String(v.message)); seen.set(v, out);
        if (v.stack !== undefined) out.stack = String(v.stack);
        if ("cause" in v) out.cause = walk(v.cause);
        return out;
      }
      case "Array": out = new Array(v.length); seen.set(v, out); for (const k of Object.keys(v)) out[k] = walk(v[k]); return out;
      case "Object": out = {}; seen.set(v, out); for (const k of Object.keys(v)) out[k] = walk(v[k]); return out;
    }
    if (TYPED.includes(tag)) {
      const buffer = walk(v.buffer);
      const Ctor = globalThis[tag];
      out = tag === "DataView" ? new DataView(buffer, v.byteOffset, v.byteLength) : new Ctor(buffer, v.byteOffset, v.length);
      seen.set(v, out);
      return out;
    }
    if (v instanceof Blob) { out = v.slice(0, v.size, v.type); seen.set(v, out); return out; }
    throw cloneError(tag + " object");
  };
  void options;
  return walk(value);
}

// ---------- Blob, File, FormData ----------
const concatBytes = (chunks, total) => {
  if (total === undefined) { total = 0; for (const c of chunks) total += c.byteLength; }
  const out = new Uint8Array(total);
  let n = 0;
  for (const c of chunks) { out.set(c, n); n += c.byteLength; }
  return out;
};
let blobBytes;
class Blob {
  #bytes; #type;
  static { blobBytes = (blob) => blob.#bytes; }
  constructor(parts = [], options = {}) {
    if (parts === null || typeof parts !== "object" || typeof parts[Symbol.iterator] !== "function") throw new TypeError("Blob parts must be a sequence");
    const chunks = [];
    for (const part of parts) {
      if (part instanceof Blob) chunks.push(blobBytes(part));
      else if (part instanceof ArrayBuffer || ArrayBuffer.isView(part)) chunks.push(asBytes(part).slice());
      else chunks.push(encoder.encode(String(part)));
    }
    this.#bytes = concatBytes(chunks);
    const type = options && options.type !== undefined ? String(options.type) : "";
    this.#type = /^[\x20-\x7e]*$/.test(type) ? type.toLowerCase() : "";
  }
  get size() { return this.#bytes.byteLength; }
  get type() { return this.#type; }
  slice(start = 0, end = this.size, type = "") {
    const size = this.size;
    const clamp = (x) => (x < 0 ? Math.max(size + x, 0) : Math.min(x, size));
    return new Blob([this.#bytes.subarray(clamp(Number(start) || 0), clamp(end === undefined ? size : Number(end) || 0))], { type });
  }
  text() { return Promise.resolve(utf8(this.#bytes)); }
  arrayBuffer() { return Promise.resolve(this.#bytes.slice().buffer); }
  bytes() { return Promise.resolve(this.#bytes.slice()); }
  stream() { return streamOfBytes(this.#bytes); }
  get [Symbol.toStringTag]() { return "Blob"; }
}
class File extends Blob {
  #name; #lastModified;
  constructor(parts, name, options = {}) {
    if (arguments.length < 2) throw new TypeError("File requires parts and a name");
    super(parts, options);
    this.#name = String(name);
    this.#lastModified = options && options.lastModified !== undefined ? Number(options.lastModified) : Date.now();
  }
  get name() { return this.#name; }
  get lastModified() { return this.#lastModified; }
  get webkitRelativePath() { return ""; }
  get [Symbol.toStringTag]() { return "File"; }
}
const formValue = (value, filename) => {
  if (value instanceof Blob) {
    if (filename !== undefined) return new File([value], String(filename), { type: value.type });
    return value instanceof File ? value : new File([value], "blob", { type: value.type });
  }
  return String(value);
};
class FormData {
  #list = [];
  constructor(form) { if (form !== undefined) throw new TypeError("FormData takes no form element here"); }
  append(name, value, filename) { this.#list.push([String(name), formValue(value, filename)]); }
  set(name, value, filename) {
    const n = String(name), v = formValue(value, filename);
    const i = this.#list.findIndex(([k]) => k === n);
    if (i < 0) this.#list.push([n, v]);
    else { this.#list[i] = [n, v]; this.#list = this.#list.filter(([k], j) => j <= i || k !== n); }
  }
  get(name) { const e = this.#list.find(([k]) => k === String(name)); return e ? e[1] : null; }
  getAll(name) { return this.#list.filter(([k]) => k === String(name)).map(([, v]) => v); }
  has(name) { return this.#list.some(([k]) => k === String(name)); }
  delete(name) { this.#list = this.#list.filter(([k]) => k !== String(name)); }
  forEach(fn, self) { for (const [k, v] of this.#list) fn.call(self, v, k, this); }
  *entries() { for (const [k, v] of this.#list) yield [k, v]; }
  *keys() { for (const [k] of this.#list) yield k; }
  *values() { for (const [, v] of this.#list) yield v; }
  [Symbol.iterator]() { return this.entries(); }
  get [Symbol.toStringTag]() { return "FormData"; }
}
const escapeFormName = (s) => s.replace(/\r/g, "%0D").replace(/\n/g, "%0A").replace(/"/g, "%22");
const encodeMultipart = (form) => {
  const boundary = "----HearthFormBoundary" + bytesToHex(randomBytes(12));
  const chunks = [];
  for (const [name, value] of form) {
    let head = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + escapeFormName(name.replace(/\r\n?|\n/g, "\r\n")) + "\"";
    if (typeof value === "string") {
      chunks.push(encoder.encode(head + "\r\n\r\n" + value.replace(/\r\n?|\n/g, "\r\n") + "\r\n"));
    } else {
      head += "; filename=\"" + escapeFormName(value.name) + "\"\r\nContent-Type: " + (value.type || "application/octet-stream") + "\r\n\r\n";
      chunks.push(encoder.encode(head), blobBytes(value), encoder.encode("\r\n"));
    }
  }
  chunks.push(encoder.encode("--" + boundary + "--\r\n"));
  return { bytes: concatBytes(chunks), type: "multipart/form-data; boundary=" + boundary };
};
const indexOfBytes = (hay, needle, from) => {
  const first = needle[0];
  outer: for (let i = hay.indexOf(first, from); i >= 0 && i <= hay.length - needle.length; i = hay.indexOf(first, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
};
const headerParam = (header, param) => {
  const m = new RegExp("(?:^|;)\\s*" + param + "\\s*=\\s*(?:\"((?:[^\"\\\\]|\\\\.)*)\"|([^;\\s]*))", "i").exec(header);
  return m ? (m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]) : undefined;
};
const parseMultipart = (bytes, boundary) => {
  const form = new FormData();
  const delimiter = encoder.encode("--" + boundary);
  const crlf2 = encoder.encode("\r\n\r\n");
  let at = indexOfBytes(bytes, delimiter, 0);
  if (at < 0) throw new TypeError("Failed to parse body as FormData: no boundary found");
  for (;;) {
    at += delimiter.length;
    if (bytes[at] === 0x2d && bytes[at + 1] === 0x2d) break; // closing delimiter
    if (bytes[at] === 0x0d && bytes[at + 1] === 0x0a) at += 2;
    const headEnd = indexOfBytes(bytes, crlf2, at);
    if (headEnd < 0) throw new TypeError("Failed to parse body as FormData: a part has no header end");
    const head = utf8(bytes.subarray(at, headEnd));
    const next = indexOfBytes(bytes, encoder.encode("\r\n--" + boundary), headEnd + 4);
    if (next < 0) throw new TypeError("Failed to parse body as FormData: a part is not terminated");
    const content = bytes.subarray(headEnd + 4, next);
    let disposition = "", type = "";
    for (const line of head.split("\r\n")) {
      const colon = line.indexOf(":");
      const key = line.slice(0, colon).trim().toLowerCase();
      if (key === "content-disposition") disposition = line.slice(colon + 1).trim();
      else if (key === "content-type") type = line.slice(colon + 1).trim();
    }
    const name = headerParam(disposition, "name");
    if (name === undefined) throw new TypeError("Failed to parse body as FormData: a part has no name");
    const filename = headerParam(disposition, "filename");
    if (filename !== undefined) form.append(name, new File([content], filename, { type }));
    else form.append(name, utf8(content));
    at = next + 2;
  }
  return form;
};

// ---------- streams (web-streams-polyfill, evaluated on first touch) ----------
let streamsModule;
const streams = () => {
  if (!streamsModule) {
    const module = { exports: {} };
    new FunctionCtor("module", "exports", hostSource("web-streams"))(module, module.exports);
    streamsModule = module.exports;
  }
  return streamsModule;
};
const isStream = (x) => x !== null && typeof x === "object" && typeof x.getReader === "function" && typeof x.tee === "function";
const streamOfBytes = (bytes) =>
  new (streams().ReadableStream)({
    type: "bytes",
    start(controller) {
      if (bytes.byteLength > 0) controller.enqueue(bytes.slice());
      controller.close();
    },
  });
// Reads a stream to its end; `limit` stops a producer that never ends from eating the memory.
const readAll = async (stream, limit = Infinity, onLimit) => {
  const reader = stream.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const chunk = typeof value === "string" ? encoder.encode(value) : value instanceof ArrayBuffer || ArrayBuffer.isView(value) ? asBytes(value) : null;
    if (chunk === null) { reader.cancel().catch(() => {}); throw new TypeError("a body stream must yield Uint8Array chunks"); }
    total += chunk.byteLength;
    if (total > limit) { reader.cancel().catch(() => {}); throw onLimit(); }
    chunks.push(chunk.slice());
  }
  return concatBytes(chunks, total);
};
const STREAM_GLOBALS = [
  "ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamBYOBReader", "ReadableStreamBYOBRequest",
  "ReadableByteStreamController", "ReadableStreamDefaultController", "TransformStream", "TransformStreamDefaultController",
  "WritableStream", "WritableStreamDefaultWriter", "WritableStreamDefaultController", "ByteLengthQueuingStrategy", "CountQueuingStrategy",
];
let textStreams;
const makeTextStreams = () => {
  if (textStreams) return textStreams;
  const { TransformStream } = streams();
  class TextEncoderStream {
    #t = new TransformStream({ transform(chunk, c) { const b = encoder.encode(String(chunk)); if (b.length) c.enqueue(b); } });
    get encoding() { return "utf-8"; }
    get readable() { return this.#t.readable; }
    get writable() { return this.#t.writable; }
  }
  class TextDecoderStream {
    #d; #t;
    constructor(label = "utf-8", options = {}) {
      const d = (this.#d = new TextDecoder(label, options));
      this.#t = new TransformStream({
        transform(chunk, c) { const s = d.decode(chunk, { stream: true }); if (s) c.enqueue(s); },
        flush(c) { const s = d.decode(); if (s) c.enqueue(s); },
      });
    }
    get encoding() { return "utf-8"; }
    get fatal() { return this.#d.fatal; }
    get ignoreBOM() { return this.#d.ignoreBOM; }
    get readable() { return this.#t.readable; }
    get writable() { return this.#t.writable; }
  }
  return (textStreams = { TextEncoderStream, TextDecoderStream });
};

// ---------- bodies ----------
// A body is bytes (most bodies: cheap, no streams loaded) or a ReadableStream.
const extractBody = (body) => {
  if (body === null || body === undefined) return { bytes: null, stream: null, type: null };
  if (typeof body === "string") return { bytes: encoder.encode(body), stream: null, type: "text/plain;charset=UTF-8" };
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return { bytes: asBytes(body).slice(), stream: null, type: null };
  if (body instanceof URLSearchParams) return { bytes: encoder.encode(body.toString()), stream: null, type: "application/x-www-form-urlencoded;charset=UTF-8" };
  if (body instanceof Blob) return { bytes: blobBytes(body), stream: null, type: body.type || null };
  if (body instanceof FormData) { const m = encodeMultipart(body); return { bytes: m.bytes, stream: null, type: m.type }; }
  if (isStream(body)) {
    if (body.locked) throw new TypeError("the body stream is locked or was already read");
    return { bytes: null, stream: body, type: null };
  }
  return { bytes: encoder.encode(String(body)), stream: null, type: "text/plain;charset=UTF-8" };
};
const EMPTY = new Uint8Array(0);
// The body's internals are private; the runtime reaches them through these closure-held functions, tenant code cannot.
let initBody, hasBody, cloneBody, takeBody, consumeBody;
class Body {
  #bytes = null; #stream = null; #used = false;
  static {
    initBody = (b, body, headers) => b.#init(body, headers);
    hasBody = (b) => b.#bytes !== null || b.#stream !== null;
    cloneBody = (b) => b.#clone();
    takeBody = (b) => b.#take();
    consumeBody = (b, limit, onLimit) => b.#consume(limit, onLimit);
  }
  #init(body, headers) {
    const b = extractBody(body);
    this.#bytes = b.bytes;
    this.#stream = b.stream;
    if (b.type && !headers.has("content-type")) headers.set("content-type", b.type);
  }
  get body() {
    if (this.#stream === null && this.#bytes !== null) { this.#stream = streamOfBytes(this.#bytes); this.#bytes = null; }
    return this.#stream;
  }
  get bodyUsed() { return this.#used || (this.#stream !== null && this.#stream.locked); }
  /** The body for a copy (clone, new Request(request)): bytes are shared (never mutated), a stream is teed. */
  #clone() {
    if (this.#stream !== null) { const [a, b] = this.#stream.tee(); this.#stream = a; return b; }
    return this.#bytes;
  }
  #take() {
    if (this.bodyUsed) throw new TypeError("Body has already been used");
    if (this.#stream !== null) this.#used = true;
    return this.#stream ?? this.#bytes;
  }
  /** All the bytes; `limit` caps a stream. */
  async #consume(limit, onLimit) {
    if (this.bodyUsed) throw new TypeError("Body has already been used");
    this.#used = true;
    if (this.#stream !== null) return readAll(this.#stream, limit, onLimit);
    return this.#bytes ?? EMPTY;
  }
  arrayBuffer() { return consumeBody(this).then((b) => b.slice().buffer); }
  bytes() { return consumeBody(this).then((b) => b.slice()); }
  text() { return consumeBody(this).then(utf8); }
  json() { return this.text().then((t) => JSON.parse(t)); }
  blob() { return consumeBody(this).then((b) => new Blob([b], { type: this.headers.get("content-type") ?? "" })); }
  async formData() {
    const type = this.headers.get("content-type") ?? "";
    const bytes = await consumeBody(this);
    if (/^multipart\/form-data/i.test(type)) {
      const boundary = headerParam(type, "boundary");
      if (!boundary) throw new TypeError("Failed to parse body as FormData: the multipart content type has no boundary");
      return parseMultipart(bytes, boundary);
    }
    if (/^application\/x-www-form-urlencoded/i.test(type)) {
      const form = new FormData();
      for (const [k, v] of new URLSearchParams(utf8(bytes))) form.append(k, v);
      return form;
    }
    throw new TypeError("Failed to parse body as FormData: content-type is neither multipart/form-data nor application/x-www-form-urlencoded");
  }
}

// ---------- Request and Response ----------
const METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const neverAborted = () => new AbortController().signal;
class Request extends Body {
  #url; #method; #headers; #signal; #redirect; #cache; #credentials; #mode; #integrity; #keepalive;
  constructor(input, init = {}) {
    super();
    if (init === null || typeof init !== "object") init = {};
    const from = input instanceof Request ? input : null;
    this.#url = from ? from.url : new URL(input instanceof URL ? input.href : String(input)).href;
    const rawMethod = init.method !== undefined ? String(init.method) : from ? from.method : "GET";
    if (!TOKEN.test(rawMethod)) throw new TypeError("'" + rawMethod + "' is not a valid HTTP method");
    if (/^(CONNECT|TRACE|TRACK)$/i.test(rawMethod)) throw new TypeError("'" + rawMethod + "' HTTP method is unsupported");
    this.#method = METHODS.includes(rawMethod.toUpperCase()) ? rawMethod.toUpperCase() : rawMethod;
    this.#headers = new Headers(init.headers !== undefined ? init.headers : from ? from.headers : undefined);
    let body = init.body;
    if (body === undefined && from && hasBody(from)) body = takeBody(from);
    if (body !== null && body !== undefined && (this.#method === "GET" || this.#method === "HEAD")) {
      throw new TypeError("Request with GET/HEAD method cannot have body");
    }
    initBody(this, body, this.#headers);
    this.#signal = init.signal ?? (from ? from.signal : null) ?? neverAborted();
    this.#redirect = String(init.redirect ?? (from ? from.redirect : "follow"));
    if (!["follow", "error", "manual"].includes(this.#redirect)) throw new TypeError("invalid redirect mode " + this.#redirect);
    this.#cache = String(init.cache ?? (from ? from.cache : "default"));
    this.#credentials = String(init.credentials ?? (from ? from.credentials : "same-origin"));
    this.#mode = String(init.mode ?? (from ? from.mode : "cors"));
    this.#integrity = String(init.integrity ?? (from ? from.integrity : ""));
    this.#keepalive = Boolean(init.keepalive ?? (from ? from.keepalive : false));
  }
  get url() { return this.#url; }
  get method() { return this.#method; }
  get headers() { return this.#headers; }
  get signal() { return this.#signal; }
  get redirect() { return this.#redirect; }
  get cache() { return this.#cache; }
  get credentials() { return this.#credentials; }
  get mode() { return this.#mode; }
  get integrity() { return this.#integrity; }
  get keepalive() { return this.#keepalive; }
  get destination() { return ""; }
  get referrer() { return "about:client"; }
  get referrerPolicy() { return ""; }
  clone() {
    if (this.bodyUsed) throw new TypeError("Body has already been used");
    return new Request(this.#url, { method: this.#method, headers: this.#headers, body: cloneBody(this), signal: this.#signal, redirect: this.#redirect });
  }
  get [Symbol.toStringTag]() { return "Request"; }
}

const NULL_BODY = [101, 103, 204, 205, 304];
const INTERNAL = Symbol("internal");
class Response extends Body {
  #status; #statusText; #headers; #type = "default"; #url = ""; #redirected = false;
  constructor(body = null, init = {}) {
    super();
    if (init === null || typeof init !== "object") init = {};
    const status = init.status === undefined ? 200 : Number(init.status);
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError("Response status must be 200-599, got " + init.status);
    this.#status = status;
    this.#statusText = String(init.statusText ?? "");
    if (/[^\t\x20-\x7e\x80-\xff]/.test(this.#statusText)) throw new TypeError("Invalid statusText");
    this.#headers = new Headers(init.headers);
    if (body !== null && body !== undefined && NULL_BODY.includes(status)) throw new TypeError("Response with null body status cannot have body");
    initBody(this, body, this.#headers);
    if (init[INTERNAL]) { this.#url = init[INTERNAL].url; this.#redirected = init[INTERNAL].redirected; }
  }
  static json(data, init = {}) {
    const text = JSON.stringify(data);
    if (text === undefined) throw new TypeError("Response.json: the value is not JSON-serialisable");
    const headers = new Headers(init && init.headers);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    return new Response(text, { ...init, headers });
  }
  static redirect(url, status = 302) {
    if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError("Invalid redirect status " + status);
    return new Response(null, { status, headers: { location: new URL(url).href } });
  }
  static error() { const r = new Response(null, { status: 200 }); r.#type = "error"; r.#status = 0; return r; }
  get status() { return this.#status; }
  get statusText() { return this.#statusText; }
  get ok() { return this.#status >= 200 && this.#status < 300; }
  get headers() { return this.#headers; }
  get type() { return this.#type; }
  get url() { return this.#url; }
  get redirected() { return this.#redirected; }
  clone() {
    if (this.bodyUsed) throw new TypeError("Body has already been used");
    return new Response(cloneBody(this), {
      status: this.#status, statusText: this.#statusText, headers: this.#headers,
      [INTERNAL]: { url: this.#url, redirected: this.#redirected },
    });
  }
  get [Symbol.toStringTag]() { return "Response"; }
}

// ---------- crypto (the host computes; bytes are copied both ways) ----------
const MAX_RANDOM = 65536;
const bytesToHex = (b) => { let s = ""; for (const x of b) s += (x < 16 ? "0" : "") + x.toString(16); return s; };
const INTEGER_ARRAYS = ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array", "BigInt64Array", "BigUint64Array"];
function getRandomValues(array) {
  const tag = ArrayBuffer.isView(array) ? Object.prototype.toString.call(array).slice(8, -1) : "";
  if (!INTEGER_ARRAYS.includes(tag)) throw new DOMException("The provided ArrayBufferView is not an integer array", "TypeMismatchError");
  if (array.byteLength > MAX_RANDOM) throw new DOMException("The ArrayBufferView's byte length (" + array.byteLength + ") exceeds the number of bytes of entropy available via this API (65536)", "QuotaExceededError");
  new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(randomBytes(array.byteLength));
  return array;
}
function randomUUID() {
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = bytesToHex(b);
  return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
}
// crypto.subtle, CryptoKey, SubtleCrypto, crypto.DigestStream: runtime/web-crypto.js, made on first touch.
let webCryptoParts;
const webCrypto = () => (webCryptoParts ??= makeWebCrypto());
class Crypto { constructor() { throw new TypeError("Illegal constructor"); } }
const cryptoObject = Object.create(Crypto.prototype);
Object.defineProperties(cryptoObject, {
  subtle: { get: () => webCrypto().subtle, enumerable: true },
  DigestStream: { get: () => webCrypto().DigestStream(), enumerable: false },
  getRandomValues: { value: getRandomValues, enumerable: true },
  randomUUID: { value: randomUUID, enumerable: true },
});
ObjectFreeze(cryptoObject);

// ---------- async host work (Web Crypto, compression) ----------
// A job is asked of the host by id; the host answers with jobDone(id, outcome) while the call runs. The
// promise is resolved with a null-prototype box, so no `then` a tenant put on Object.prototype sees the answer.
const jobs = new Map();
let nextJob = 1;
const hostJob = (kind, request) => {
  if (freedHandles.length > 0) flushFreedHandles();
  return new Promise((resolve, reject) => {
    const id = nextJob++;
    MapPrototypeSet(jobs, id, { __proto__: null, resolve, reject });
    hostJobStart(id, { __proto__: null, kind, request });
  });
};
const jobError = (error) => {
  const name = String(error.name), message = String(error.message);
  if (name === "TypeError") return new TypeError(message);
  if (name === "RangeError") return new RangeError(message);
  return new DOMException(message, name);
};
function jobDone(id, outcome) {
  const job = MapPrototypeGet(jobs, id);
  MapPrototypeDelete(jobs, id);
  if (job === undefined) return;
  if (outcome.ok === true) job.resolve({ __proto__: null, value: outcome.value });
  else job.reject(jobError(outcome.error));
}
// Host objects behind handles (keys, hashes, compressors) whose holder here was garbage collected: the host drops
// them with the next job. (The callback runs our code only: it appends to an array of ours.)
const freedHandles = [];
const handleRegistry = new FinalizationRegistry((handle) => append(freedHandles, handle));
const registerHandle = (holder, handle) => { handleRegistry.register(holder, handle); };
const flushFreedHandles = () => {
  const n = MathMin(freedHandles.length, 1024);
  const batch = [];
  for (let i = freedHandles.length - n; i < freedHandles.length; i++) append(batch, freedHandles[i]);
  freedHandles.length -= n;
  hostHandles("free", batch);
};

// CompressionStream, DecompressionStream: runtime/compression.js, made on first touch.
let compressionParts;
const compression = () => (compressionParts ??= makeCompressionStreams());

// ---------- console ----------
const LEVELS = { debug: "debug", log: "info", info: "info", warn: "warn", error: "error", trace: "debug" };
const show = (v, depth = 0) => {
  if (typeof v === "string") return v;
  if (v instanceof Error) return v.stack || String(v);
  if (typeof v === "function") return "[Function " + (v.name || "anonymous") + "]";
  if (typeof v === "bigint") return v.toString() + "n";
  if (typeof v === "symbol") return v.toString();
  if (typeof v !== "object" || v === null) return String(v);
  try { return JSON.stringify(v, (k, x) => (typeof x === "bigint" ? x.toString() + "n" : x)) ?? String(v); } catch { return depth ? "[Object]" : Object.prototype.toString.call(v); }
};
const writeLog = (level, args) => {
  let line = "";
  for (let i = 0; i < args.length && line.length <= MAX_LOG; i++) line += (i ? " " : "") + boundedString(show(args[i]), MAX_LOG);
  logLine(level, line);
};
const consoleObject = {};
for (const name of Object.keys(LEVELS)) consoleObject[name] = (...args) => writeLog(LEVELS[name], args);
const counts = new Map(), started = new Map();
Object.assign(consoleObject, {
  dir: (v) => writeLog("info", [v]),
  table: (v) => writeLog("info", [v]),
  assert: (ok, ...args) => { if (!ok) writeLog("error", ["Assertion failed" + (args.length ? ":" : ""), ...args]); },
  count: (label = "default") => { const n = (counts.get(label) ?? 0) + 1; counts.set(label, n); writeLog("info", [label + ": " + n]); },
  countReset: (label = "default") => { counts.delete(label); },
  time: (label = "default") => { started.set(label, performanceNow()); },
  timeEnd: (label = "default") => { if (started.has(label)) writeLog("info", [label + ": " + (performanceNow() - started.get(label)) + "ms"]); started.delete(label); },
  timeLog: (label = "default", ...args) => { if (started.has(label)) writeLog("info", [label + ": " + (performanceNow() - started.get(label)) + "ms", ...args]); },
  group: (...args) => { if (args.length) writeLog("info", args); },
  groupCollapsed: (...args) => { if (args.length) writeLog("info", args); },
  groupEnd: () => {},
});

// ---------- fetch (outbound, through the host; the host decides what is allowed) ----------
const fetches = new Map();
let nextFetch = 1;
function fetched(id, answer) {
  const resolve = MapPrototypeGet(fetches, id);
  MapPrototypeDelete(fetches, id);
  if (resolve) resolve(answer);
}
async function fetch(input, init) {
  return hostRequest(new Request(input, init), undefined);
}
// A request asked of the host: an outbound fetch (`call` undefined), or a call of a function of this app (`call` its name).
async function hostRequest(request, call) {
  const signal = request.signal;
  signal.throwIfAborted();
  const body = hasBody(request) ? ownBytes(await consumeBody(request, MAX_FETCH_BODY, () => new TypeError("the request body is over " + MAX_FETCH_BODY + " bytes")), MAX_FETCH_BODY, "the request body") : null;
  // checked here, before anything is copied to the host
  const method = boundedString(request.method, 33), url = boundedString(request.url, 8193), redirect = boundedString(request.redirect, 9);
  if (method.length > 32 || url.length > 8192) throw new TypeError("fetch: the method or URL is too long");
  const headers = boundedHeaders([...request.headers], 256, MAX_HEADER_BYTES, (why) => new TypeError("fetch: " + why));
  const id = nextFetch++;
  const answer = await new Promise((resolve, reject) => {
    const onAbort = () => { MapPrototypeDelete(fetches, id); reject(signal.reason); };
    signal.addEventListener("abort", onAbort, { once: true });
    MapPrototypeSet(fetches, id, (value) => { signal.removeEventListener("abort", onAbort); resolve(value); });
    const asked = { __proto__: null, method, url, headers, body, redirect };
    if (call !== undefined) asked.call = call;
    hostFetch(id, asked);
  });
  if (answer.error) throw new TypeError(answer.error);
  const nullBody = NULL_BODY.includes(answer.status) || request.method === "HEAD";
  return new Response(nullBody ? null : answer.body, {
    status: answer.status,
    statusText: answer.statusText,
    headers: answer.headers,
    [INTERNAL]: { url: answer.url, redirected: answer.redirected },
  });
}

// ---------- function-to-function calls (env.call, service bindings): through the host, never by URL ----------
// `target` is a function of this app ("name", or "app/name" with this app's own name); the host finds where it runs.
// A relative URL is resolved against https://<function>.internal/ (the callee sees the URL it was called with).
async function callFunction(target, input, init) {
  if (typeof target !== "string" || target.length === 0 || target.length > 200) {
    throw new TypeError("env.call: the first argument must be the name of a function of this app");
  }
  if (input === undefined) input = "/";
  if (typeof input === "string" && !/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(input)) {
    const host = StringPrototypeSlice(target, target.lastIndexOf("/") + 1);
    input = new URL(input, "https://" + host + ".internal/").href;
  }
  return hostRequest(new Request(input, init), target);
}
const bindingOf = (target) => ObjectFreeze({
  __proto__: null,
  fetch: (input, init) => callFunction(target, input, init),
  connect() { throw new TypeError("a service binding takes fetch() only here"); },
});
// The `env` argument: the function's vars and secrets, its service bindings (env.NAME.fetch), and env.call (not
// enumerable, so Object.keys(env) lists what was deployed; a var named "call" wins over it).
function makeEnv(vars, bindings) {
  const out = {};
  for (const name in vars) if (ObjectHasOwn(vars, name)) out[name] = vars[name];
  if (bindings) for (const name in bindings) if (ObjectHasOwn(bindings, name) && !ObjectHasOwn(out, name)) out[name] = bindingOf(bindings[name]);
  if (!ObjectHasOwn(out, "call")) ReflectDefineProperty(out, "call", { __proto__: null, value: callFunction, enumerable: false });
  return ObjectFreeze(out);
}

// ---------- the globals ----------
const GLOBALS = {
  DOMException, TextEncoder, TextDecoder, URL, URLSearchParams, Headers, Request, Response, Blob, File, FormData,
  Event, EventTarget, CustomEvent, AbortController, AbortSignal, Crypto,
  atob, btoa, setTimeout, clearTimeout, setInterval, clearInterval, queueMicrotask, structuredClone, fetch,
  console: consoleObject, crypto: cryptoObject, performance: performanceObject, navigator: navigatorObject,
};
for (const [name, value] of Object.entries(GLOBALS)) define(name, value);
define("self", globalThis);
for (const name of STREAM_GLOBALS) lazy(name, () => streams()[name]);
lazy("TextEncoderStream", () => makeTextStreams().TextEncoderStream);
lazy("TextDecoderStream", () => makeTextStreams().TextDecoderStream);
lazy("CryptoKey", () => webCrypto().CryptoKey);
lazy("SubtleCrypto", () => webCrypto().SubtleCrypto);
lazy("CompressionStream", () => compression().CompressionStream);
lazy("DecompressionStream", () => compression().DecompressionStream);

// Node compatibility (nodejs_compat, runtime/node.js), for functions deployed with it: `Buffer`, `process` and
// `global` as globals, as on workerd, and the built-ins the worker's `node:*` modules read through NODE_BUILTIN.
let nodeParts;
const node = () => (nodeParts ??= makeNode());
if (OPTIONS.nodejsCompat === true) {
  lazy("Buffer", () => node().Buffer());
  lazy("process", () => node().process());
  define("global", globalThis);
  ReflectDefineProperty(globalThis, Symbol.for("hearth.node.builtin"), { __proto__: null, value: (name) => node().builtin(name), enumerable: false });
}

// ---------- dispatch ----------
// Errors the runtime itself raised about the answer (a tenant cannot forge these codes by setting a property).
const OWN_ERRORS = new WeakMap();
const hearthError = (code, error) => { WeakMapPrototypeSet(OWN_ERRORS, error, code); return error; };
const calls = new Map();
const deepFreeze = (o) => { for (const v of Object.values(o)) if (typeof v === "object" && v !== null) deepFreeze(v); return ObjectFreeze(o); };
// A function with nodejs_compat gets its env at load too, for top-level `process.env` reads.
let env = OPTIONS.env !== undefined && OPTIONS.nodejsCompat === true ? makeEnv(deepFreeze(OPTIONS.env), OPTIONS.bindings) : makeEnv({}, undefined);

// bind() takes the module namespace once after the module evaluated; the
// function it returns turns a plain request record into a Response and back.
function bind(namespace) {
  const handler = namespace && namespace.default;
  if (!handler || typeof handler.fetch !== "function") {
    throw new TypeError("the module must `export default { fetch(request, env, ctx) { ... } }`");
  }
  // timers armed by top-level code end with the load: they never fire into a later call
  MapPrototypeClear(timers);
  // What goes back to the host is built here from primitives and arrays of our own, with null prototypes (no
  // tenant `then` or setter can step in), and bounded before the copy: headers, body and error message.
  // The answer is handed over in `into` (the call's slot), never as a promise's value: `await` on a promise whose
  // `constructor` a tenant redefined calls the tenant's `then`, which could pass on any value it likes.
  boundDispatch = async function dispatch(req, into) {
    const callId = req.callId;
    // one call at a time per isolate: whatever an earlier call left behind (a timer armed after its reset) ends here
    reset();
    logLines = 0;
    logChars = 0;
    try {
      const box = { __proto__: null, out: undefined };
      await run(req, box);
      const out = box.out;
      if (out === undefined) throw hearthError("ERR_BAD_RESPONSE", new TypeError("the function's answer did not come back through the runtime"));
      const waits = MapPrototypeGet(calls, callId);
      const waiting = waits !== undefined && waits.length > 0;
      // The answer is ready: unless ctx.waitUntil work goes on, the call's timers, fetches and jobs end here, so a
      // fire the host had already queued finds nothing to run after the answer (the host clears its side right
      // after, and need not call reset: a round trip into the isolate per call, BENCHMARKS.md).
      if (!waiting) reset();
      hand(into, { __proto__: null, status: out.status, headers: out.headers, body: out.body, waiting });
    } catch (error) {
      let code = "ERR_FUNCTION_THREW", message;
      try {
        const own = WeakMapPrototypeGet(OWN_ERRORS, error);
        if (own !== undefined) code = own;
        message = boundedString((error && error.stack) || error, MAX_ERROR);
      } catch { message = "unprintable error"; }
      const waits = MapPrototypeGet(calls, callId);
      const waiting = waits !== undefined && waits.length > 0;
      if (!waiting) reset();
      hand(into, { __proto__: null, error: { __proto__: null, code, message }, waiting });
    }
  };
  async function run(req, box) {
    if (req.urlParts !== undefined) knownUrl(req.url, req.urlParts);
    if (req.env !== undefined) env = makeEnv(deepFreeze(req.env), req.bindings);
    if (nodeParts !== undefined) nodeParts.beginCall(req.env);
    const request = new Request(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.method === "GET" || req.method === "HEAD" ? null : req.body,
    });
    const waits = [];
    MapPrototypeSet(calls, req.callId, waits);
    const ctx = ObjectFreeze({
      waitUntil(p) { waits.push(Promise.resolve(p).catch(reportError)); },
      passThroughOnException() {},
    });
    const response = await handler.fetch.call(handler, request, env, ctx);
    if (!(response instanceof Response) || response.type === "error") {
      const what = response instanceof Response ? "Response.error()" : response === null ? "null" : typeof response;
      throw hearthError("ERR_BAD_RESPONSE", new TypeError("fetch() must return a Response, got " + what));
    }
    const limit = req.limit;
    const tooLarge = () => hearthError("ERR_RESPONSE_TOO_LARGE", new RangeError("the response body is over this function's limit of " + limit + " bytes"));
    const status = response.status;
    const headers = boundedHeaders([...response.headers], MAX_HEADERS, MAX_HEADER_BYTES, (why) => hearthError("ERR_BAD_RESPONSE", new TypeError("the response headers are refused: " + why)));
    const bytes = hasBody(response) ? await consumeBody(response, limit, tooLarge) : EMPTY;
    let body;
    try { body = ownBytes(bytes, limit, "the response body"); } catch (error) { throw error instanceof RangeError ? tooLarge() : error; }
    box.out = { __proto__: null, status: typeof status === "number" ? status : 0, headers, body };
  }
}
// The host's entry for a call: the isolate on isolated-vm's thread pool (an async apply), its answer read from the
// call's slot once dispatch is done, never passed on as the value of a promise the tenant could hook.
// (Why not a synchronous entry, which would save a thread crossing per call: docs/runtime.md.)
let boundDispatch;
let slot;
const hand = (into, value) => {
  if (into === undefined || into !== slot) return;
  into.value = value;
  into.done = true;
};
async function enter(req) {
  const mine = (slot = { __proto__: null, done: false, value: null });
  // a tenant's `then` can make this await end sooner or never; the answer is only ever what dispatch handed over
  try { await boundDispatch(req, mine); } catch {}
  slot = undefined;
  return mine.done ? mine.value : null;
}
// Resolves when every promise the call handed to ctx.waitUntil has settled (also ones added meanwhile).
async function settle(callId) {
  const waits = MapPrototypeGet(calls, callId) ?? [];
  for (let i = 0; i < waits.length; i++) await waits[i];
  MapPrototypeDelete(calls, callId);
  MapPrototypeClear(timers);
}
// Called by the host when no call runs, and by dispatch at a call's start and end: primordials only, so tenant code
// cannot make it spin (the host bounds it too).
function reset() {
  MapPrototypeClear(timers);
  MapPrototypeClear(calls);
  MapPrototypeClear(fetches);
  MapPrototypeClear(jobs);
}
return { bind, fire: fireTimer, fetched, jobDone, reset, settle, enter };
