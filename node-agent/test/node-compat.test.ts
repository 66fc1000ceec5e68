/**
 * Node compatibility (nodejs_compat) inside a function, through a real
 * SandboxPool: modules written as the SDK's bundler leaves them (imports of
 * `node:*` stay imports; async functions compiled to generators, as
 * bundleFunction does under the flag), called as a tenant's would be.
 */
import { transform } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxPool } from "../src/sandbox/supervisor.ts";
import { call, json, startPool, uniqueKey } from "./helpers.ts";

let pool: SandboxPool;
const logs: { key: string; level: string; message: string }[] = [];
beforeAll(async () => {
  pool = await startPool({ onLog: (entry) => logs.push(entry) });
});
afterAll(async () => {
  await pool?.[Symbol.asyncDispose]();
});

const NODE = { nodejsCompat: true };
/** A module of `imports` whose fetch answers JSON of what `body` returns; lowered as bundleFunction lowers it under nodejs_compat. */
const nodeFunction = async (imports: string, body: string) =>
  (
    await transform(`${imports}\nexport default { async fetch(request, env, ctx) { const out = await (async () => { ${body} })(); return Response.json(out); } };`, {
      format: "esm",
      target: "es2023",
      supported: { "async-await": false, "async-generator": false, "for-await": false },
    })
  ).code;
const run = async (imports: string, body: string, settings: Record<string, unknown> = NODE) =>
  json(await call(pool, uniqueKey("node"), await nodeFunction(imports, body), { settings }));

describe("node:buffer", () => {
  it("Buffer encodes, decodes, concatenates and compares as in Node, importable and global", async () => {
    const out = await run(`import { Buffer } from "node:buffer"; import bufferModule from "buffer";`, `
      const b = Buffer.from("héllo wörld");
      return {
        hex: b.toString("hex"), base64: b.toString("base64"), base64url: Buffer.from([251, 255]).toString("base64url"), fromUrl: [...Buffer.from("-_8", "base64url")],
        back: Buffer.from(b.toString("base64"), "base64").toString("utf8"), latin1: Buffer.from("ÿ", "latin1")[0],
        concat: Buffer.concat([Buffer.from("a"), Buffer.from("bc")]).toString(), equals: Buffer.from("x").equals(Buffer.from("x")),
        compare: Buffer.compare(Buffer.from("a"), Buffer.from("b")), int: Buffer.from([1, 2, 3, 4]).readUInt32BE(0),
        isBuffer: Buffer.isBuffer(b), uint8: b instanceof Uint8Array, global: globalThis.Buffer === Buffer, def: bufferModule.Buffer === Buffer,
        json: JSON.stringify(Buffer.from("hi")), byteLength: Buffer.byteLength("héllo"),
      };`);
    expect(out).toEqual({
      hex: Buffer.from("héllo wörld").toString("hex"), base64: Buffer.from("héllo wörld").toString("base64"), base64url: "-_8",
      fromUrl: [251, 255], back: "héllo wörld", latin1: 255, concat: "abc", equals: true, compare: -1, int: 0x01020304, isBuffer: true, uint8: true,
      global: true, def: true, json: '{"type":"Buffer","data":[104,105]}', byteLength: 6,
    });
  });

  it("Buffer.allocUnsafe never shows bytes of an earlier call or another function", async () => {
    const key = uniqueKey("node-unsafe");
    const code = await nodeFunction(`import { Buffer } from "node:buffer";`, `
      const fill = new URL(request.url).searchParams.get("fill");
      if (fill) { const secret = Buffer.alloc(1 << 20, fill); globalThis.keep = null; return { wrote: secret.length }; }
      const bufs = [Buffer.allocUnsafe(1 << 20), Buffer.allocUnsafeSlow(4096), Buffer.allocUnsafe(10)];
      return { nonZero: bufs.reduce((n, b) => n + b.filter((x) => x !== 0).length, 0) };`);
    await call(pool, key, code, { settings: NODE, path: "/?fill=s" });
    await call(pool, uniqueKey("node-other"), code, { settings: NODE, path: "/?fill=t" });
    expect(json(await call(pool, key, code, { settings: NODE }))).toEqual({ nonZero: 0 });
  });
});

describe("node:events and node:util", () => {
  it("EventEmitter (on, once, off, error, listenerCount, events.once) and util basics", async () => {
    const out = await run(`import EventEmitter, { once } from "node:events"; import util, { format, inspect, promisify, inherits, types, deprecate } from "node:util";`, `
      const e = new EventEmitter(); const seen = [];
      e.on("x", (v) => seen.push("on:" + v)); e.once("x", (v) => seen.push("once:" + v));
      e.emit("x", 1); e.emit("x", 2);
      let unhandled = null; try { e.emit("error", new Error("boom")); } catch (err) { unhandled = err.message; }
      setTimeout(() => e.emit("later", 42), 1);
      const [later] = await once(e, "later");
      function Old() { EventEmitter.call(this); } inherits(Old, EventEmitter);
      const sleep = promisify((ms, cb) => setTimeout(() => cb(null, "slept " + ms), ms));
      let warned = 0; const dep = deprecate(() => "d", "old api", "DEP0"); dep(); dep();
      return {
        seen, count: e.listenerCount("x"), unhandled, later, old: new Old() instanceof EventEmitter, slept: await sleep(1),
        format: format("%s is %d years and %j", "Ada", 36, { a: [1] }, "extra"), inspect: inspect({ a: [1, { b: new Map([["k", 1]]) }], s: "x" }),
        types: [types.isDate(new Date()), types.isRegExp(/x/), types.isPromise(Promise.resolve()), types.isUint8Array(new Uint8Array()), types.isMap({})],
        enc: new util.TextEncoder().encode("é").length, dep: dep(),
      };`);
    expect(out).toEqual({
      seen: ["on:1", "once:1", "on:2"], count: 1, unhandled: "boom", later: 42, old: true, slept: "slept 1",
      format: 'Ada is 36 years and {"a":[1]} extra', inspect: "{ a: [ 1, { b: [Map] } ], s: 'x' }",
      types: [true, true, true, true, false], enc: 2, dep: "d",
    });
    await expect.poll(() => logs.filter((l) => l.message.includes("DeprecationWarning: old api")).length).toBe(1);
  });
});

describe("node:async_hooks AsyncLocalStorage", () => {
  it("carries the store across awaits, then chains, Promise.all, timers and nextTick, keeps concurrent runs apart, and starts each call empty", async () => {
    const key = uniqueKey("node-als");
    const code = await nodeFunction(`import { AsyncLocalStorage } from "node:async_hooks";\nconst als = new AsyncLocalStorage();`, `
      const before = als.getStore() ?? null;
      const tick = () => new Promise((r) => setTimeout(r, 1));
      const job = (id) => als.run({ id }, async () => {
        const seen = [als.getStore().id];
        await null; seen.push(als.getStore().id);
        await tick(); seen.push(als.getStore().id);
        await Promise.all([tick(), Promise.resolve()]); seen.push(als.getStore().id);
        seen.push(await new Promise((r) => process.nextTick(() => r(als.getStore().id))));
        seen.push(await Promise.resolve().then(() => als.getStore().id));
        seen.push(await new Promise((r) => queueMicrotask(() => r(als.getStore().id))));
        return seen;
      });
      const [a, b] = await Promise.all([job("a"), job("b")]);
      als.enterWith({ id: "left over" });
      return { before, a, b, outside: als.getStore()?.id, bound: AsyncLocalStorage.bind(() => 1)() };`);
    const first = json(await call(pool, key, code, { settings: NODE }));
    expect(first).toEqual({ before: null, a: Array(7).fill("a"), b: Array(7).fill("b"), outside: "left over", bound: 1 });
    // the next call on the same isolate starts with no store
    expect((json(await call(pool, key, code, { settings: NODE })) as { before: unknown }).before).toBeNull();
  });

  it("the limit, shown: a native await (a bundle not made by the SDK under the flag) does not carry the store", async () => {
    const code = `import { AsyncLocalStorage } from "node:async_hooks";
      const als = new AsyncLocalStorage();
      export default { async fetch() {
        const out = await als.run("s", async () => { const before = als.getStore(); await null; return [before, als.getStore() ?? null]; });
        const chained = await als.run("s", () => Promise.resolve().then(() => als.getStore()));
        return Response.json({ out, chained });
      } };`;
    expect(json(await call(pool, uniqueKey("node-native-await"), code, { settings: NODE }))).toEqual({ out: ["s", null], chained: "s" });
  });
});

describe("node:crypto", () => {
  it("hashes, HMACs, random and timingSafeEqual answer as Node's", async () => {
    const { createHash, createHmac } = await import("node:crypto");
    const out = await run(`import crypto, { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual, getRandomValues, randomInt } from "node:crypto";`, `
      return {
        sha256: createHash("sha256").update("hello ").update(Buffer.from("world")).digest("hex"),
        md5: createHash("md5").update("x").digest("base64"), sha1: crypto.createHash("SHA1").update(new Uint8Array([1, 2])).digest().length,
        hmac: createHmac("sha512", "key").update("msg").digest("hex"), random: randomBytes(100000).length,
        uuid: /^[0-9a-f-]{36}$/.test(randomUUID()), tse: [timingSafeEqual(Buffer.from("ab"), Buffer.from("ab")), timingSafeEqual(Buffer.from("ab"), Buffer.from("ac"))],
        tseLength: (() => { try { timingSafeEqual(Buffer.from("a"), Buffer.from("ab")); } catch (e) { return e.code; } })(),
        values: getRandomValues(new Uint8Array(8)).length, int: (() => { const n = randomInt(10); return n >= 0 && n < 10; })(),
        bad: (() => { try { createHash("whirlpool"); } catch (e) { return e.name; } })(),
      };`);
    expect(out).toEqual({
      sha256: createHash("sha256").update("hello world").digest("hex"), md5: createHash("md5").update("x").digest("base64"), sha1: 20,
      hmac: createHmac("sha512", "key").update("msg").digest("hex"), random: 100000, uuid: true, tse: [true, false],
      tseLength: "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH", values: 8, int: true, bad: "TypeError",
    });
  });

  it("createHash on huge input is bounded by the call's host budget and charged to its CPU", async () => {
    const result = await call(pool, uniqueKey("node-hash-bomb"), await nodeFunction(`import { createHash } from "node:crypto";`, `
      // a URL the host parses (one not seen before): its bytes count too
      new URL("https://fresh.example/" + crypto.randomUUID());
      const chunk = new Uint8Array(16 * 1024 * 1024);
      const h = createHash("sha256");
      let fed = 0;
      try { for (let i = 0; i < 64; i++) { h.update(chunk); fed++; } } catch (e) { return { fed, error: e.name }; }
      return { fed };`), { settings: NODE, limits: { cpuMs: 5_000, wallMs: 20_000, memoryMb: 128 } });
    expect(result.ok).toBe(true);
    const out = JSON.parse(new TextDecoder().decode(result.ok ? result.body : new Uint8Array()));
    // 256 MiB of host work per call (the URL parsed counts too, so the 16th piece is over it), then RangeError;
    // hashing 240 MiB costs the host real CPU, which the call is charged
    expect(out).toEqual({ fed: 15, error: "RangeError" });
    expect(result.cpuMs).toBeGreaterThan(100);
  });
});

describe("process", () => {
  it("process.env mirrors the function's env (at top level too) and nothing of the host's; basics libraries read", async () => {
    const key = uniqueKey("node-env");
    const code = await nodeFunction(`import process, { env as importedEnv } from "node:process";\nconst atLoad = process.env.API_KEY;\nprocess.env.DEFAULTED ??= "set at load";`, `
      const env = { ...globalThis.process.env };
      process.env.WRITTEN = "1";
      const defaulted = process.env.DEFAULTED ?? null;
      return { env, atLoad, imported: importedEnv.API_KEY, same: process === globalThis.process, version: process.version.startsWith("v"),
               platform: process.platform, tick: await new Promise((r) => process.nextTick(r, "ticked")), path: process.env.PATH ?? null,
               global: global === globalThis, defaulted };`);
    const settings = { ...NODE, env: { API_KEY: "k1", OTHER: "o" } };
    const out = json(await call(pool, key, code, { settings }));
    // a value top-level code wrote is still there at the first call (the env is not sent again over it)
    expect(out).toEqual({
      env: { API_KEY: "k1", OTHER: "o", DEFAULTED: "set at load" }, defaulted: "set at load", atLoad: "k1", imported: "k1", same: true, version: true,
      platform: "linux", tick: "ticked", path: null, global: true,
    });
    // a new env (a redeploy) replaces process.env, the tenant's own writes included
    const next = json(await call(pool, key, code, { settings: { ...NODE, env: { API_KEY: "k2" } } })) as { env: unknown };
    expect(next.env).toEqual({ API_KEY: "k2" });
  });
});

describe("the flag", () => {
  it("without nodejs_compat, a bundle importing node:buffer fails to load naming the flag, and no Node global exists", async () => {
    const code = `import { Buffer } from "node:buffer"; export default { fetch: () => new Response(String(Buffer)) };`;
    const off = await call(pool, uniqueKey("node-off"), code);
    expect(off.ok).toBe(false);
    expect(off.ok ? "" : `${off.code} ${off.message}`).toMatch(/ERR_BAD_BUNDLE .*nodejs_compat.*--compat nodejs/);
    const globals = json(await call(pool, uniqueKey("node-off-globals"), `export default { fetch: () => Response.json([typeof Buffer, typeof process, typeof global, Object.getOwnPropertySymbols(globalThis).length]) };`));
    expect(globals).toEqual(["undefined", "undefined", "undefined", 0]);
  });

  it("a change of the flag for a loaded function takes effect at once: its isolates are replaced, not reused", async () => {
    const key = uniqueKey("node-flip");
    const code = `import { Buffer } from "node:buffer"; export default { fetch: () => new Response(Buffer.from("on").toString("hex")) };`;
    const on = await call(pool, key, code, { settings: NODE });
    expect(on.ok && new TextDecoder().decode(on.body)).toBe("6f6e");
    const off = await call(pool, key, code, { settings: {} });
    expect(off.ok ? "" : off.code).toBe("ERR_BAD_BUNDLE");
    const back = await call(pool, key, code, { settings: NODE });
    expect(back.ok).toBe(true);
  });

  it("with it, a built-in Hearth does not provide fails to load naming it", async () => {
    const result = await call(pool, uniqueKey("node-fs"), `import fs from "node:fs"; export default { fetch: () => new Response("x") };`, { settings: NODE });
    expect(result.ok ? "" : `${result.code} ${result.message}`).toMatch(/ERR_BAD_BUNDLE .*'node:fs' is not among the Node built-ins/);
  });
});

describe("hostile code under nodejs_compat", () => {
  it("everything reachable from the Node globals, modules and their instances holds nothing of the host", async () => {
    const out = await run(
      `import * as buffer from "node:buffer"; import * as events from "node:events"; import * as util from "node:util";
       import * as hooks from "node:async_hooks"; import * as nodeCrypto from "node:crypto"; import * as proc from "node:process";`,
      `
      const NODE = new Set(["Buffer", "process", "global"]);
      const OURS = new Set(["DOMException", "TextEncoder", "TextDecoder", "URL", "URLSearchParams", "Headers", "Request", "Response", "Blob", "File",
        "FormData", "Event", "EventTarget", "CustomEvent", "AbortController", "AbortSignal", "Crypto", "CryptoKey", "SubtleCrypto", "atob", "btoa",
        "setTimeout", "clearTimeout", "setInterval", "clearInterval", "queueMicrotask", "structuredClone", "fetch", "console", "crypto", "performance",
        "navigator", "self", ...NODE]);
      const HOSTISH = /^(Reference|ExternalCopy|Callback|Isolate|Context|Script|NativeModule)$/;
      const seen = new Set(); const found = [];
      const native = (f) => { try { return /\\{\\s*\\[native code\\]\\s*\\}$/.test(Function.prototype.toString.call(f)); } catch { return true; } };
      const walk = (root, path, phase) => {
        const stack = [[root, path]];
        while (stack.length) {
          const [v, p] = stack.pop();
          if ((typeof v !== "object" && typeof v !== "function") || v === null || seen.has(v)) continue;
          seen.add(v);
          let tag = ""; try { tag = Object.prototype.toString.call(v); } catch {}
          let ctor = ""; try { ctor = String(v.constructor && v.constructor.name); } catch {}
          if (HOSTISH.test(tag.slice(8, -1)) || HOSTISH.test(ctor)) found.push(p + " " + tag + " " + ctor);
          if (phase === 2 && typeof v === "function" && native(v)) found.push("native " + p);
          stack.push([Object.getPrototypeOf(v), p + ".__proto__"]);
          for (const k of Reflect.ownKeys(v)) {
            const d = Object.getOwnPropertyDescriptor(v, k);
            if ("value" in d) stack.push([d.value, p + "." + String(k)]);
            else { stack.push([d.get, p + "[get]"], [d.set, p + "[set]"]); try { const x = Reflect.get(v, k); if (x instanceof Promise) x.catch(() => {}); stack.push([x, p + "." + String(k)]); } catch {} }
          }
        }
      };
      const names = Reflect.ownKeys(globalThis);
      walk(Object.getPrototypeOf(globalThis), "globalThis.__proto__", 1);
      for (const n of names) if (!OURS.has(n) && typeof n === "string") { const d = Object.getOwnPropertyDescriptor(globalThis, n); walk(d.value ?? d.get, n, 1); }
      // the runtime's own objects are plain JavaScript (a native function among them would be a host callback)
      walk(Promise.prototype.then, "then", 2);
      const hash = nodeCrypto.createHash("sha256"); const hmac = nodeCrypto.createHmac("sha1", "k");
      const roots = { Buffer, process, buffer, events, util, hooks, nodeCrypto, proc, hash, hmac, emitter: new events.EventEmitter(), als: new hooks.AsyncLocalStorage(),
        resource: new hooks.AsyncResource("x"), buf: Buffer.allocUnsafe(8), builtin: globalThis[Symbol.for("hearth.node.builtin")] };
      for (const [name, v] of Object.entries(roots)) walk(v, name, 2);
      hash.digest(); hmac.digest();
      return { found, require: typeof require, module: typeof module, binding: typeof process.binding, dlopen: typeof process.dlopen, envKeys: Object.keys(process.env) };`,
      { ...NODE, env: { ONLY: "this" } },
    );
    // the Buffer polyfill's functions are JavaScript; what is native must be ECMAScript's, found in phase 1
    expect(out).toEqual({ found: [], require: "undefined", module: "undefined", binding: "undefined", dlopen: "undefined", envKeys: ["ONLY"] });
  });

  it("open hashes are bounded per isolate (64): the next is refused, the open ones still finish, and a digested one frees its place", async () => {
    const out = await run(`import { createHash } from "node:crypto";`, `
      const open = []; let refused = null;
      try { for (let i = 0; i < 100; i++) open.push(createHash("sha256").update("x")); } catch (e) { refused = e.name + ": " + e.message; }
      const done = open.map((h) => h.digest("hex")).length;
      const again = createHash("sha256").update("y").digest("hex").length;
      return { refused: refused !== null, done, again };`);
    expect(out).toEqual({ refused: true, done: 64, again: 64 });
  });
});
