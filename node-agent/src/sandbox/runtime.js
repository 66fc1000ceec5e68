// The in-isolate runtime: the web-standard globals a Workers-style function
// needs, written against ECMAScript built-ins only. It runs as a closure in
// each new context: $0 (log) and $1 (parse a URL) are host callbacks captured
// here and never put on a global, so tenant code cannot reach them.
// It returns bind(namespace) -> dispatch(request) for the supervisor.
const hostLog = $0;
const hostParseUrl = $1;

const define = (name, value) =>
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

// ---------- text encoding (UTF-8 only, as on the web) ----------
class TextEncoder {
  get encoding() { return "utf-8"; }
  encode(input = "") {
    const s = String(input);
    const out = [];
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; } else c = 0xfffd;
      } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return new Uint8Array(out);
  }
}
class TextDecoder {
  get encoding() { return "utf-8"; }
  decode(input) {
    if (input === undefined) return "";
    const b = input instanceof ArrayBuffer ? new Uint8Array(input) : new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    let s = "";
    let i = b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
    const chunk = [];
    const flush = () => { s += String.fromCharCode.apply(null, chunk); chunk.length = 0; };
    while (i < b.length) {
      const x = b[i];
      let c = 0xfffd, n = 1;
      if (x < 0x80) c = x;
      else if (x >= 0xc2 && x < 0xe0 && (b[i + 1] & 0xc0) === 0x80) { c = ((x & 31) << 6) | (b[i + 1] & 63); n = 2; }
      else if (x >= 0xe0 && x < 0xf0 && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80) {
        c = ((x & 15) << 12) | ((b[i + 1] & 63) << 6) | (b[i + 2] & 63); n = 3;
        if (c < 0x800 || (c >= 0xd800 && c <= 0xdfff)) { c = 0xfffd; n = 1; }
      } else if (x >= 0xf0 && x < 0xf5 && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80 && (b[i + 3] & 0xc0) === 0x80) {
        c = ((x & 7) << 18) | ((b[i + 1] & 63) << 12) | ((b[i + 2] & 63) << 6) | (b[i + 3] & 63); n = 4;
        if (c < 0x10000 || c > 0x10ffff) { c = 0xfffd; n = 1; }
      }
      if (c > 0xffff) { c -= 0x10000; chunk.push(0xd800 + (c >> 10), 0xdc00 + (c & 1023)); } else chunk.push(c);
      if (chunk.length > 8000) flush();
      i += n;
    }
    flush();
    return s;
  }
}
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------- URL and URLSearchParams ----------
const formDecode = (s) => decodeURIComponent(s.replace(/\+/g, " "));
const formEncode = (s) => encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g, (ch) => "%" + ch.charCodeAt(0).toString(16).toUpperCase());
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
  _reset(s) { this.#parse(s); }
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
    const parsed = hostParseUrl(String(input), base === undefined ? undefined : String(base));
    if (parsed === null) throw new TypeError("Invalid URL: " + String(input));
    this.#p = parsed;
  }
  static canParse(input, base) { return hostParseUrl(String(input), base === undefined ? undefined : String(base)) !== null; }
  static parse(input, base) { try { return new URL(input, base); } catch { return null; } }
  // Setters rebuild the href and let the host's WHATWG parser normalise it.
  #rebuild(part, value) {
    const p = { ...this.#p, [part]: String(value) };
    const auth = p.username ? p.username + (p.password ? ":" + p.password : "") + "@" : "";
    const host = part === "host" ? p.host : p.hostname + (p.port ? ":" + p.port : "");
    const search = p.search && !p.search.startsWith("?") ? "?" + p.search : p.search;
    const hash = p.hash && !p.hash.startsWith("#") ? "#" + p.hash : p.hash;
    const protocol = p.protocol.endsWith(":") ? p.protocol : p.protocol + ":";
    const parsed = hostParseUrl(protocol + "//" + auth + host + p.pathname + search + hash, undefined);
    if (parsed !== null) this.#p = parsed;
    if (this.#params) this.#params._reset(this.#p.search);
  }
  get href() { return this.#p.href; }
  set href(v) {
    const parsed = hostParseUrl(String(v), undefined);
    if (parsed === null) throw new TypeError("Invalid URL: " + String(v));
    this.#p = parsed;
    if (this.#params) this.#params._reset(parsed.search);
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
      const parsed = hostParseUrl(this.#p.href.replace(/[?#].*$/, "") + (s ? "?" + s : "") + this.#p.hash, undefined);
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

// ---------- bodies ----------
const toBytes = (body) => {
  if (body === null || body === undefined) return null;
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body.slice(0));
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  if (body instanceof URLSearchParams) return encoder.encode(body.toString());
  return encoder.encode(String(body));
};
const defaultType = (body) =>
  typeof body === "string" ? "text/plain;charset=UTF-8"
  : body instanceof URLSearchParams ? "application/x-www-form-urlencoded;charset=UTF-8"
  : null;

class Body {
  #bytes;
  #used = false;
  _initBody(body, headers) {
    this.#bytes = toBytes(body);
    const type = defaultType(body);
    if (type && !headers.has("content-type")) headers.set("content-type", type);
  }
  get bodyUsed() { return this.#used; }
  get body() { return this.#bytes; }
  #take() {
    if (this.#used) return Promise.reject(new TypeError("Body has already been used"));
    this.#used = true;
    return Promise.resolve(this.#bytes ?? new Uint8Array(0));
  }
  _peekBytes() { return this.#bytes; }
  arrayBuffer() { return this.#take().then((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); }
  bytes() { return this.#take().then((b) => new Uint8Array(b)); }
  text() { return this.#take().then((b) => decoder.decode(b)); }
  json() { return this.text().then((t) => JSON.parse(t)); }
}

// ---------- Request and Response ----------
const METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];
class Request extends Body {
  #url; #method; #headers; #signal;
  constructor(input, init = {}) {
    super();
    const from = input instanceof Request ? input : null;
    this.#url = new URL(from ? from.url : String(input)).href;
    const method = String(init.method ?? (from ? from.method : "GET")).toUpperCase();
    this.#method = METHODS.includes(method) ? method : String(init.method ?? "GET");
    this.#headers = new Headers(init.headers ?? (from ? from.headers : undefined));
    const body = init.body !== undefined ? init.body : from ? from._peekBytes() : null;
    if (body !== null && body !== undefined && (this.#method === "GET" || this.#method === "HEAD")) {
      throw new TypeError("Request with GET/HEAD method cannot have body");
    }
    this._initBody(body, this.#headers);
    this.#signal = init.signal ?? (from ? from.signal : null);
  }
  get url() { return this.#url; }
  get method() { return this.#method; }
  get headers() { return this.#headers; }
  get signal() { return this.#signal; }
  get redirect() { return "follow"; }
  clone() {
    if (this.bodyUsed) throw new TypeError("Body has already been used");
    return new Request(this);
  }
}

class Response extends Body {
  #status; #statusText; #headers; #type = "default";
  constructor(body = null, init = {}) {
    super();
    const status = init.status === undefined ? 200 : Number(init.status);
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError("Response status must be 200-599, got " + init.status);
    this.#status = status;
    this.#statusText = String(init.statusText ?? "");
    this.#headers = new Headers(init.headers);
    if (body !== null && (status === 204 || status === 205 || status === 304)) throw new TypeError("Response with null body status cannot have body");
    this._initBody(body, this.#headers);
  }
  static json(data, init = {}) {
    const headers = new Headers(init.headers);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    return new Response(JSON.stringify(data), { ...init, headers });
  }
  static redirect(url, status = 302) {
    if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError("Invalid redirect status " + status);
    return new Response(null, { status, headers: { location: new URL(url).href } });
  }
  static error() { const r = new Response(null, { status: 200 }); r.#type = "error"; return r; }
  get status() { return this.#status; }
  get statusText() { return this.#statusText; }
  get ok() { return this.#status >= 200 && this.#status < 300; }
  get headers() { return this.#headers; }
  get type() { return this.#type; }
  get redirected() { return false; }
  clone() {
    if (this.bodyUsed) throw new TypeError("Body has already been used");
    return new Response(this._peekBytes(), { status: this.#status, statusText: this.#statusText, headers: this.#headers });
  }
}

// ---------- console ----------
const LEVELS = { debug: "debug", log: "info", info: "info", warn: "warn", error: "error", trace: "debug" };
const show = (v, depth = 0) => {
  if (typeof v === "string") return v;
  if (v instanceof Error) return v.stack || String(v);
  if (typeof v === "function") return "[Function " + (v.name || "anonymous") + "]";
  if (typeof v !== "object" || v === null) return String(v);
  try { return JSON.stringify(v, (k, x) => (typeof x === "bigint" ? x.toString() + "n" : x)); } catch { return depth ? "[Object]" : Object.prototype.toString.call(v); }
};
const consoleObject = {};
for (const name of Object.keys(LEVELS)) {
  consoleObject[name] = (...args) => { hostLog(LEVELS[name], args.map((a) => show(a)).join(" ").slice(0, 16384)); };
}

define("TextEncoder", TextEncoder);
define("TextDecoder", TextDecoder);
define("URL", URL);
define("URLSearchParams", URLSearchParams);
define("Headers", Headers);
define("Request", Request);
define("Response", Response);
define("console", consoleObject);

// ---------- dispatch ----------
// bind() takes the module namespace once after the module evaluated; the
// function it returns turns a plain request record into a Response and back.
return function bind(namespace) {
  const handler = namespace && namespace.default;
  if (!handler || typeof handler.fetch !== "function") {
    throw new TypeError("the module must `export default { fetch(request, env, ctx) { ... } }`");
  }
  const env = Object.freeze({});
  return async function dispatch(req) {
    try {
      return await run(req);
    } catch (error) {
      const known = error && (error.hearthCode === "ERR_BAD_RESPONSE" || error.hearthCode === "ERR_RESPONSE_TOO_LARGE");
      const code = known ? error.hearthCode : "ERR_FUNCTION_THREW";
      let message;
      try { message = String((error && error.stack) || error); } catch { message = "unprintable error"; }
      return { error: { code, message: message.slice(0, 4000) } };
    }
  };
  async function run(req) {
    const request = new Request(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.method === "GET" || req.method === "HEAD" ? null : req.body,
    });
    const waits = [];
    const ctx = Object.freeze({ waitUntil(p) { waits.push(Promise.resolve(p).catch(() => {})); }, passThroughOnException() {} });
    const response = await handler.fetch(request, env, ctx);
    if (!(response instanceof Response)) {
      const error = new TypeError("fetch() must return a Response, got " + (response === null ? "null" : typeof response));
      error.hearthCode = "ERR_BAD_RESPONSE";
      throw error;
    }
    const bytes = response._peekBytes() ?? new Uint8Array(0);
    if (bytes.byteLength > req.limit) {
      const error = new RangeError("the response body is over this function's limit of " + req.limit + " bytes");
      error.hearthCode = "ERR_RESPONSE_TOO_LARGE";
      throw error;
    }
    return { status: response.status, headers: [...response.headers], body: bytes };
  }
};
