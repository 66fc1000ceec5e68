/**
 * Hostile functions against a real SandboxPool: each must fail with a clear
 * code without harming the sandbox process, the device or other tenants, and
 * a well-behaved function on the same pool must still answer afterwards.
 */
import { execFileSync } from "node:child_process";
import { createHash, pbkdf2Sync } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGzip } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxResult } from "../src/sandbox/messages.ts";
import { SANDBOX_PERMISSIONS, sandboxIndexOf, type SandboxPool } from "../src/sandbox/supervisor.ts";
import { call, json, jsonFunction, startPool, text, uniqueKey, type CallInput } from "./helpers.ts";

let pool: SandboxPool;
const logs: { key: string; requestId: string; message: string }[] = [];
const TIGHT = { cpuMs: 200, wallMs: 2_000, memoryMb: 32 };

beforeAll(async () => {
  pool = await startPool({ onLog: (e) => logs.push(e) });
});
afterAll(async () => {
  await pool?.[Symbol.asyncDispose]();
});

const HELLO = `export default { fetch(request) { return new Response("still serving " + new URL(request.url).pathname); } }`;
const hello = uniqueKey("hello");

async function stillServing(): Promise<void> {
  expect(text(await call(pool, hello, HELLO, { path: "/ok" }))).toBe("still serving /ok");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU time (ms) a process spends over the next `ms` of wall time, from /proc (Linux). */
async function cpuOver(pid: number, ms: number): Promise<number> {
  const ticks = () => {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100 Hz)
  };
  const before = ticks();
  await sleep(ms);
  return (ticks() - before) * 10;
}

async function hostile(name: string, body: string, input: CallInput = {}): Promise<SandboxResult & { ok: false }> {
  const result = await call(pool, uniqueKey(name), `export default { async fetch(request, env, ctx) { ${body} } };`, {
    ...input,
    limits: { ...TIGHT, ...input.limits },
  });
  if (result.ok) throw new Error(`${name} was expected to fail but answered ${result.status}`);
  return result;
}

describe("runaway code is stopped with its own error code", () => {
  it("an infinite synchronous loop: ERR_CPU_LIMIT, and the isolate is not reused", async () => {
    const key = uniqueKey("loop");
    const code = `export default { fetch(request) { if (request.url.endsWith("/spin")) for (;;) {} return new Response("ok"); } }`;
    const first = await call(pool, key, code, { limits: TIGHT });
    expect(first.ok).toBe(true);
    const spun = await call(pool, key, code, { path: "/spin", limits: TIGHT });
    expect(!spun.ok && spun.code).toBe("ERR_CPU_LIMIT");
    expect(!spun.ok && spun.message).toMatch(/200 ms of CPU time/);
    const after = await call(pool, key, code, { limits: TIGHT });
    expect(after.ok && after.cold).toBe(true);
    await stillServing();
  });

  it("an infinite asynchronous loop (await in a loop): ERR_CPU_LIMIT", async () => {
    const result = await hostile("async-loop", `for (;;) await null;`);
    expect(result.code).toBe("ERR_CPU_LIMIT");
    await stillServing();
  });

  it("a promise that never settles: ERR_WALL_TIME_LIMIT", async () => {
    const result = await hostile("never", `await new Promise(() => {});`, { limits: { wallMs: 300 } });
    expect(result.code).toBe("ERR_WALL_TIME_LIMIT");
    expect(result.message).toMatch(/300 ms wall-time limit/);
    await stillServing();
  });

  it("a timer chain that keeps the call waiting forever: ERR_WALL_TIME_LIMIT", async () => {
    const result = await hostile("timer-chain", `await new Promise(() => { const again = () => setTimeout(again, 1); again(); });`, { limits: { wallMs: 300 } });
    expect(result.code).toBe("ERR_WALL_TIME_LIMIT");
    await stillServing();
  });

  it("a microtask bomb: stopped by CPU or memory", async () => {
    const result = await hostile("microtasks", `const f = () => { Promise.resolve().then(f); Promise.resolve().then(f); }; f(); await new Promise(() => {});`);
    expect(["ERR_CPU_LIMIT", "ERR_MEMORY_LIMIT"]).toContain(result.code);
    await stillServing();
  });

  it("Atomics.wait on a shared buffer cannot hold the sandbox past the wall limit", async () => {
    const result = await hostile(
      "atomics",
      `if (typeof SharedArrayBuffer === "undefined") return new Promise(() => {}); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); return new Response("woke");`,
      { limits: { wallMs: 300 } },
    );
    expect(["ERR_WALL_TIME_LIMIT", "ERR_FUNCTION_THREW", "ERR_CPU_LIMIT"]).toContain(result.code);
    await stillServing();
  });

  it("deep recursion: a stack overflow is the function's own error", async () => {
    const result = await hostile("recursion", `const f = (n) => f(n + 1) + 1; return new Response(String(f(0)));`);
    expect(result.code).toBe("ERR_FUNCTION_THREW");
    expect(result.message).toMatch(/Maximum call stack size exceeded/);
    await stillServing();
  });

  it("top-level code that never ends fails the load, not the process", async () => {
    const result = await call(pool, uniqueKey("toplevel"), `for (;;) {} export default { fetch() { return new Response("x"); } };`, { limits: TIGHT });
    expect(!result.ok && result.code).toBe("ERR_BAD_BUNDLE");
    await stillServing();
  });
});

describe("memory bombs end in ERR_MEMORY_LIMIT (or the language's own error), never in a dead sandbox", () => {
  const cases: [string, string][] = [
    ["array", `const keep = []; for (;;) keep.push({ a: keep.length, b: [1, 2, 3] });`],
    ["strings", `const keep = []; let s = "x".repeat(1 << 16); for (let i = 0; ; i++) keep.push(s + i);`],
    ["bigint", `const keep = []; let x = 3n; for (;;) { x = x * x + 1n; keep.push(x); }`],
    ["arraybuffers", `const keep = []; for (;;) keep.push(new Uint8Array(4 * 1024 * 1024).fill(1));`],
    ["one huge arraybuffer", `const b = new ArrayBuffer(2 ** 31); return new Response(String(b.byteLength));`],
    ["wasm memory", `const m = new WebAssembly.Memory({ initial: 1, maximum: 65536 }); for (;;) m.grow(160);`],
  ];
  for (const [name, body] of cases) {
    it(name, async () => {
      const result = await hostile(`mem-${name.replace(/ /g, "-")}`, body, { limits: { cpuMs: 5_000, wallMs: 10_000 } });
      expect(["ERR_MEMORY_LIMIT", "ERR_FUNCTION_THREW"]).toContain(result.code);
      if (result.code === "ERR_FUNCTION_THREW") expect(result.message).toMatch(/RangeError|allocation|Invalid|Maximum|memory|too big/i);
      await stillServing();
    });
  }
});

describe("a function whose allocation makes V8 abort its sandbox process", () => {
  it("fails only the calls on that process, and is quarantined so it cannot do it again", async () => {
    // A Map grown to the heap limit: V8 cannot fit the next backing store and aborts the process instead of throwing.
    const key = uniqueKey("map-bomb");
    const code = `export default { fetch() { const keep = new Map(); for (let i = 0; ; i++) keep.set(i, "v" + i); } };`;
    const limits = { memoryMb: 32, cpuMs: 5_000, wallMs: 10_000 };
    const first = await call(pool, key, code, { limits }).then(
      (result) => (result.ok ? "answered" : result.code),
      (error: { code: string }) => error.code,
    );
    expect(["ERR_MEMORY_LIMIT", "ERR_SANDBOX_CRASHED"]).toContain(first);
    await stillServing();
    if (first === "ERR_SANDBOX_CRASHED") {
      const again = await call(pool, key, code, { limits });
      expect(!again.ok && again.code).toBe("ERR_FUNCTION_QUARANTINED");
      await stillServing();
    }
  });
});

describe("no way out of the isolate", () => {
  it("has no require, process, Buffer, module, host callbacks or isolated-vm objects to find", async () => {
    const out = json(
      await call(
        pool,
        uniqueKey("escape"),
        jsonFunction(`
          const found = {};
          const probe = (name, f) => { try { const v = f(); found[name] = v === undefined || v === null ? String(v) : typeof v; } catch (e) { found[name] = "threw " + e.name; } };
          probe("ctor", () => this.constructor.constructor("return process")());
          probe("fnThis", () => Function("return this")().process);
          probe("require", () => Function("return typeof require")() === "undefined" ? undefined : "require");
          probe("global", () => globalThis.global);
          probe("Buffer", () => globalThis.Buffer);
          probe("module", () => Function("return typeof module")() === "undefined" ? undefined : "module");
          probe("ivm", () => globalThis.ivm ?? globalThis._ivm ?? globalThis.$0);
          probe("errorCtor", () => new Error().constructor.constructor("return process")());
          let asyncCtor; try { asyncCtor = await (async () => {}).constructor("return typeof process")(); } catch (e) { asyncCtor = "threw " + e.name; }
          let dynamicImport; try { await import("node:fs"); dynamicImport = "imported"; } catch (e) { dynamicImport = "refused"; }
          const names = Object.getOwnPropertyNames(globalThis);
          const suspicious = names.filter((n) => /^(_?ivm|isolated.*|\\$\\d*|require|process|Buffer|global|module|exports|host.*|Reference|ExternalCopy|Callback|Isolate|Context|Script|Module|NativeModule|setImmediate|__.*)$/i.test(n));
          const stack = new Error("probe").stack;
          const values = names.map((n) => { try { return globalThis[n]; } catch { return undefined; } });
          const refs = values.filter((v) => v && typeof v === "object" && /Reference|ExternalCopy|Callback|Isolate|Context/.test(Object.prototype.toString.call(v))).length;
          return { found, asyncCtor, dynamicImport, suspicious, hostPath: /\\/work\\/|node_modules|worker\\.ts/.test(stack), refs };
        `),
      ),
    );
    expect(out).toEqual({
      found: {
        ctor: "threw ReferenceError",
        fnThis: "undefined",
        require: "undefined",
        global: "undefined",
        Buffer: "undefined",
        module: "undefined",
        ivm: "undefined",
        errorCtor: "threw ReferenceError",
      },
      asyncCtor: "undefined",
      dynamicImport: "refused",
      suspicious: [],
      hostPath: false,
      refs: 0,
    });
    await stillServing();
  });

  it("an error from a host callback does not reveal the host's files", async () => {
    const out = json(
      await call(
        pool,
        uniqueKey("host-error"),
        jsonFunction(`
          const messages = [];
          for (const f of [() => crypto.getRandomValues(new Float64Array(2)), () => crypto.subtle.digest("MD5", new Uint8Array(1)), () => new URL("::"), () => console.log({ toString() { throw new Error("x"); } })]) {
            try { await f(); } catch (e) { messages.push(String(e.stack)); }
          }
          return { leaks: messages.filter((m) => /\\/work\\/|node_modules|\\.ts:/.test(m)) };
        `),
      ),
    );
    expect(out).toEqual({ leaks: [] });
  });

  it("prototype pollution stays inside the polluter's own isolate", async () => {
    const polluter = await call(
      pool,
      uniqueKey("polluter"),
      `Object.prototype.polluted = "yes"; Array.prototype.map = () => "hijacked"; JSON.parse = () => "hijacked";
       Response.prototype.text = () => "hijacked"; globalThis.URL = class { constructor() { this.href = "https://evil.example/"; } };
       String.prototype.toUpperCase = () => "hijacked";
       export default { fetch() { return new Response(String({}.polluted)); } };`,
    );
    expect(text(polluter)).toBe("yes");
    const victim = json(
      await call(
        pool,
        uniqueKey("victim"),
        jsonFunction(`return { polluted: ({}).polluted ?? null, map: [1].map((x) => x + 1), json: JSON.parse("[1]"),
          text: await new Response("real").text(), url: new URL(request.url).href, upper: "a".toUpperCase() };`),
      ),
    );
    expect(victim).toEqual({ polluted: null, map: [2], json: [1], text: "real", url: "https://fn.example/", upper: "A" });
  });

  it("a function that breaks its own runtime (deletes Response, freezes prototypes) only breaks itself", async () => {
    const broken = await call(
      pool,
      uniqueKey("breaker"),
      `Object.freeze(Object.prototype); Object.freeze(Array.prototype); delete globalThis.Headers; Promise.prototype.then = function () { return this; };
       export default { fetch() { return new Response("x"); } };`,
    );
    // whatever the broken runtime makes of it, the host gets a well-formed answer or error
    expect(typeof broken.ok).toBe("boolean");
    await stillServing();
  });
});

describe("timers and giant answers", () => {
  it("timers that would outlive the call never fire after it", async () => {
    const key = uniqueKey("outlive");
    const result = await call(
      pool,
      key,
      `setTimeout(() => console.log("top-level timer fired"), 1);
       export default { fetch() {
        setInterval(() => console.log("tick"), 1);
        setTimeout(() => console.log("late"), 30);
        return new Response("done");
      } };`,
    );
    expect(text(result)).toBe("done");
    // What was logged while the load and the call ran arrived before the answer (one ordered pipe): a timer may
    // fire inside its own window (the top-level one while the module still loads, the interval during the call).
    const during = logs.filter((l) => l.key === key).length;
    // A later call to another function gives the timers every chance to fire if they were alive.
    for (let i = 0; i < 5; i++) {
      await stillServing();
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 50));
    const after = logs.filter((l) => l.key === key).slice(during).map((l) => l.message);
    expect(after).toEqual([]);
  });

  it("a log flood is cut at the per-call budget with one notice", async () => {
    const key = uniqueKey("log-flood");
    const result = await call(pool, key, `export default { fetch() { for (let i = 0; i < 100000; i++) console.log("line " + i); return new Response("done"); } }`);
    expect(text(result)).toBe("done");
    for (let i = 0; i < 50 && !logs.some((l) => l.key === key && /log limit reached/.test(l.message)); i++) await new Promise((r) => setTimeout(r, 20));
    const lines = logs.filter((l) => l.key === key);
    expect(lines.length).toBeLessThanOrEqual(1_001);
    expect(lines.at(-1)?.message).toMatch(/log limit reached/);
    await stillServing();
  });

  it("tampering with the runtime's own built-ins does not lift the host's bounds", async () => {
    const result = await hostile(
      "tamper-timers",
      `Object.defineProperty(Map.prototype, "size", { get: () => 0 });
       for (let i = 0; i < 50000; i++) setTimeout(() => {}, 60_000);
       throw new Error("armed them all");`,
      { limits: { cpuMs: 5_000 } },
    );
    expect(["ERR_FUNCTION_THREW", "ERR_CPU_LIMIT", "ERR_MEMORY_LIMIT", "ERR_WALL_TIME_LIMIT"]).toContain(result.code);
    await stillServing();
  });

  it("too many timers: the function gets a RangeError, the host stays bounded", async () => {
    const result = await hostile("timers", `for (let i = 0; ; i++) setTimeout(() => {}, 60_000);`);
    expect(result.code).toBe("ERR_FUNCTION_THREW");
    expect(result.message).toMatch(/too many timers/);
    await stillServing();
  });

  it("a response over the limit: ERR_RESPONSE_TOO_LARGE, for bytes and for a stream that never ends", async () => {
    const big = await hostile("giant", `return new Response("x".repeat(2 * 1024 * 1024));`, { limits: { responseBytes: 1024 * 1024 } });
    expect(big.code).toBe("ERR_RESPONSE_TOO_LARGE");
    const endless = await hostile(
      "endless",
      `const chunk = new Uint8Array(64 * 1024); return new Response(new ReadableStream({ pull(c) { c.enqueue(chunk.slice()); } }));`,
      { limits: { responseBytes: 1024 * 1024, cpuMs: 5_000 } },
    );
    expect(endless.code).toBe("ERR_RESPONSE_TOO_LARGE");
    await stillServing();
  });

  it("absurd headers or status are refused as ERR_BAD_RESPONSE, not passed on", async () => {
    const result = await hostile("headers", `const h = new Headers(); for (let i = 0; i < 5000; i++) h.append("x-" + i, "v"); return new Response("x", { headers: h });`);
    expect(result.code).toBe("ERR_BAD_RESPONSE");
    await stillServing();
  });
});

describe("the runtime's own bounds hold against tenant code", () => {
  const SPIN = `function () { for (;;) {} }`;
  // What the runtime's housekeeping between calls would use, were it not for its primordials (the call's own path still works).
  const PATCH_BUILTINS = `for (const C of [Map, Set, WeakMap]) for (const m of ["clear", "delete"]) C.prototype[m] = ${SPIN};
    Object.defineProperty(Map.prototype, "size", { get: ${SPIN} }); Reflect.apply = ${SPIN};`;

  it("built-ins replaced by top-level code cannot make the runtime spin while no call runs", async () => {
    const code = `${PATCH_BUILTINS} export default { fetch() { return new Response("fine"); } };`;
    const result = await Promise.race([call(pool, uniqueKey("spin-reset-top"), code), sleep(5_000).then(() => "hung" as const)]);
    expect(result !== "hung" && text(result)).toBe("fine");
    expect(await cpuOver(pool.pids()[0]!, 500)).toBeLessThan(150);
    await stillServing();
  });

  it("built-ins replaced during a call cannot make the runtime spin after it", async () => {
    const key = uniqueKey("spin-reset-call");
    const code = `export default { fetch(request) { if (request.url.endsWith("/patch")) { ${PATCH_BUILTINS} } return new Response("fine"); } };`;
    expect(text(await call(pool, key, code, { path: "/patch" }))).toBe("fine");
    expect(await cpuOver(pool.pids()[0]!, 500)).toBeLessThan(150);
    const again = await call(pool, key, code, { limits: { wallMs: 2_000 } });
    expect(again.ok || again.code).toBe(true);
    await stillServing();
  });

  it("code the engine runs between calls (FinalizationRegistry callbacks) is stopped, not left spinning", async () => {
    const key = uniqueKey("finalizer");
    const code = `const registry = new FinalizationRegistry(() => { const end = Date.now() + 5_000; while (Date.now() < end) {} });
      let keep; export default { fetch() { for (let i = 0; i < 1000; i++) registry.register({ i }, i);
        let junk = []; for (let i = 0; i < 2e5; i++) junk.push({ i }); keep = new Array(1e6).fill(0); return new Response("ok"); } };`;
    expect(text(await call(pool, key, code))).toBe("ok");
    // a finalizer left spinning would use the whole second; the patrol stops it within a few of its 250 ms rounds
    expect(await cpuOver(pool.pids()[0]!, 1_000)).toBeLessThan(800);
    await stillServing();
  });

  it("a microtask chain that never ends, calling into the host each turn, keeps the answer in and is stopped at the wall limit", async () => {
    const key = uniqueKey("tail-chain");
    const code = `export default { fetch() {
      const f = () => { try { crypto.getRandomValues(new Uint8Array(65536)); } catch {} Promise.resolve().then(f); };
      Promise.resolve().then(() => Promise.resolve()).then(() => Promise.resolve()).then(f);
      return new Response("answered");
    } };`;
    const started = Date.now();
    const result = await call(pool, key, code, { limits: { wallMs: 1_000 } });
    // microtasks run before the isolate hands its answer back: an endless chain holds it in until the call's limit
    expect(!result.ok && result.code).toMatch(/^(ERR_WALL_TIME_LIMIT|ERR_CPU_LIMIT)$/);
    expect(Date.now() - started).toBeLessThan(5_000);
    // and nothing of it keeps the sandbox process busy afterwards
    expect(await cpuOver(pool.pids()[0]!, 1_000)).toBeLessThan(800);
    await stillServing();
  });

  it("top-level code is bounded by the function's CPU limit, not only by the load's wall time", async () => {
    const started = Date.now();
    const result = await call(pool, uniqueKey("toplevel-cpu"), `const end = Date.now() + 1_500; while (Date.now() < end) {} export default { fetch() { return new Response("x"); } };`, {
      limits: TIGHT,
    });
    expect(!result.ok && result.code).toBe("ERR_BAD_BUNDLE");
    expect(!result.ok && result.message).toMatch(/200 ms of CPU time/);
    // stopped well before the loop's own end at 1.5 s (a loaded machine gives the isolate less than a core)
    expect(Date.now() - started).toBeLessThan(1_450);
    await stillServing();
  });

  it("hides its internals: no CryptoKey secret, no underscore methods, nothing through fn.caller or structured stack frames", async () => {
    const out = json(
      await call(
        pool,
        uniqueKey("internals"),
        jsonFunction(`
          const key = await crypto.subtle.importKey("raw", new TextEncoder().encode("s3cret"), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
          let secret; try { secret = typeof CryptoKey._secret === "function" ? new TextDecoder().decode(CryptoKey._secret(key)) : "none"; } catch (e) { secret = "threw"; }
          let exported; try { await crypto.subtle.exportKey("raw", key); exported = "exported"; } catch (e) { exported = e.name; }
          const underscored = [];
          const things = { Blob: new Blob(["x"]), Request: new Request("https://a.example/", { method: "POST", body: "x" }), Response: new Response("x"),
            AbortSignal: new AbortController().signal, Event: new Event("x"), URLSearchParams: new URLSearchParams("a=1"), CryptoKey: key, Headers: new Headers() };
          for (const [name, thing] of Object.entries(things)) {
            for (let o = thing; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
              for (const p of Object.getOwnPropertyNames(o)) if (p.startsWith("_")) underscored.push(name + "." + p);
            }
            for (const p of Object.getOwnPropertyNames(thing.constructor)) if (p.startsWith("_")) underscored.push(name + "." + p);
          }
          // sloppy functions (made with Function) called by the runtime: who called them?
          const callers = [];
          const grab = Function("callers", "return function grab() { callers.push(typeof grab.caller === 'function' ? String(grab.caller).slice(0, 40) : null); }")(callers);
          const target = new EventTarget(); target.addEventListener("x", grab); target.dispatchEvent(new Event("x"));
          new Headers({ a: "1" }).forEach(grab);
          new URLSearchParams("a=1").forEach(grab);
          new ReadableStream({ start: grab });
          try { new URL({ toString() { grab(); return "https://a.example/"; } }); } catch {}
          await new Promise((resolve) => setTimeout(() => { grab(); resolve(); }, 1));
          await new Promise((resolve) => setTimeout(grab, 1) && setTimeout(resolve, 5));
          // structured stack frames of errors raised inside the runtime
          const frames = [];
          Error.prepareStackTrace = (error, list) => {
            for (const f of list) if (String(f.getFileName()).includes("hearth:runtime")) frames.push([typeof f.getFunction(), typeof f.getThis()]);
            return "stack";
          };
          for (const f of [() => new Headers([["bad name", "v"]]), () => new Response(null, { status: 99 }), () => atob("*"), () => structuredClone(() => 1),
                           () => new EventTarget().dispatchEvent({}), () => crypto.getRandomValues(new Float32Array(1))]) {
            try { f(); } catch (e) { void e.stack; }
          }
          try { new EventTarget().addEventListener("y", () => { throw new Error("in listener"); }); } catch {}
          const t = new EventTarget(); t.addEventListener("z", () => { void new Error("from listener").stack; }); t.dispatchEvent(new Event("z"));
          delete Error.prepareStackTrace;
          return { secret, exported, underscored, callers: callers.filter((c) => c !== null), runtimeFrames: frames.length > 0, exposed: frames.filter(([f, t]) => f !== "undefined" || t !== "undefined").length };
        `),
      ),
    );
    expect(out).toEqual({ secret: "none", exported: "InvalidAccessError", underscored: [], callers: [], runtimeFrames: true, exposed: 0 });
  });

  it("a search of everything reachable from the globals finds nothing of the host", async () => {
    const out = json(
      await call(
        pool,
        uniqueKey("reachable"),
        jsonFunction(`
          // The runtime's own globals; everything else on globalThis is ECMAScript's. Native functions are fine among the
          // built-ins; under the runtime's globals (all plain JavaScript) a native function not already found among the
          // built-ins would be a host callback.
          const RUNTIME = new Set(["DOMException", "TextEncoder", "TextDecoder", "URL", "URLSearchParams", "Headers", "Request", "Response", "Blob", "File",
            "FormData", "Event", "EventTarget", "CustomEvent", "AbortController", "AbortSignal", "Crypto", "CryptoKey", "SubtleCrypto", "atob", "btoa",
            "setTimeout", "clearTimeout", "setInterval", "clearInterval", "queueMicrotask", "structuredClone", "fetch", "console", "crypto", "performance",
            "navigator", "self", "ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamBYOBReader", "ReadableStreamBYOBRequest",
            "ReadableByteStreamController", "ReadableStreamDefaultController", "TransformStream", "TransformStreamDefaultController", "WritableStream",
            "WritableStreamDefaultWriter", "WritableStreamDefaultController", "ByteLengthQueuingStrategy", "CountQueuingStrategy", "TextEncoderStream", "TextDecoderStream",
            "CompressionStream", "DecompressionStream"]);
          const HOSTISH = /^(Reference|ExternalCopy|Callback|Isolate|Context|Script|NativeModule|process|require|Buffer)$/;
          const seen = new Set();
          const found = [];
          let visited = 0;
          const native = (f) => { try { return /\\{\\s*\\[native code\\]\\s*\\}$/.test(Function.prototype.toString.call(f)); } catch { return true; } };
          const quiet = (x) => { if (x instanceof Promise) x.catch(() => {}); return x; };
          const walk = (root, path, phase) => {
            const stack = [[root, path]];
            while (stack.length) {
              const [v, p] = stack.pop();
              if ((typeof v !== "object" && typeof v !== "function") || v === null || seen.has(v)) continue;
              seen.add(v);
              visited++;
              let tag = ""; try { tag = Object.prototype.toString.call(v); } catch {}
              let ctor = ""; try { ctor = String(v.constructor && v.constructor.name); } catch {}
              if (HOSTISH.test(tag.slice(8, -1)) || HOSTISH.test(ctor)) found.push(p + " " + tag + " " + ctor);
              if (phase === 2 && typeof v === "function" && native(v)) found.push("native " + p);
              stack.push([Object.getPrototypeOf(v), p + ".__proto__"]);
              for (const k of Reflect.ownKeys(v)) {
                const d = Object.getOwnPropertyDescriptor(v, k);
                const name = p + "." + String(k);
                if ("value" in d) stack.push([d.value, name]);
                else {
                  stack.push([d.get, name + "[get]"], [d.set, name + "[set]"]);
                  try { stack.push([quiet(Reflect.get(v, k)), name]); } catch {}
                }
              }
            }
          };
          const names = Reflect.ownKeys(globalThis);
          walk(Object.getPrototypeOf(globalThis), "globalThis.__proto__", 1);
          walk(new TypeError("an error"), "anError", 1);
          for (const n of names) if (!RUNTIME.has(n)) { const d = Object.getOwnPropertyDescriptor(globalThis, n); walk(d.value ?? d.get, String(n), 1); }
          for (const n of names) if (RUNTIME.has(n)) walk(globalThis[n], String(n), 2);
          // and instances the runtime makes, with their private-state getters exercised
          const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
          const pair = await crypto.subtle.generateKey({ name: "RSA-PSS", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, false, ["sign", "verify"]);
          const instances = { request, env, ctx, key, pair, gzip: new CompressionStream("gzip"), gunzip: new DecompressionStream("deflate"), digestStream: new crypto.DigestStream("SHA-256"), response: new Response(new ReadableStream({ start(c) { c.close(); } })), headers: new Headers({ a: "b" }),
            url: new URL("https://a.example/?q=1"), form: new FormData(), blob: new File(["x"], "f"), signal: AbortSignal.timeout(10), event: new CustomEvent("x"),
            decoder: new TextDecoderStream(), fetched: await fetch("https://a.example/").catch((e) => e) };
          for (const [name, v] of Object.entries(instances)) walk(v, name, 2);
          return { found, visited: visited > 1_000 };
        `),
      ),
    );
    expect(out).toEqual({ found: [], visited: true });
  });
});

describe("nothing unbounded crosses to the host", () => {
  let small: SandboxPool;
  beforeAll(async () => {
    // A host heap far below what an isolate may hold: any string or bytes a function could push across unchecked would kill it.
    small = await startPool({ hostHeapMb: 64 });
  });
  afterAll(async () => {
    await small?.[Symbol.asyncDispose]();
  });
  const BIG = { memoryMb: 512, cpuMs: 10_000, wallMs: 20_000 };
  const NO_SLICE = `String.prototype.slice = function () { return String(this); }; Array.prototype.join = function () { return "a".repeat(1e8); };`;

  /** Resets the process's peak resident memory (Linux), so the next peak is the next call's; false where that is not allowed. */
  const resetPeak = (pid: number) => {
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, "5");
      return true;
    } catch {
      return false;
    }
  };
  const residentMb = (pid: number, field: "VmRSS" | "VmHWM") => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
  // [name, function body, check, at most this much growth of the process's peak memory (MiB)]
  const cases: [string, string, (r: SandboxResult) => void, number?][] = [
    // "a".repeat(3e8) is a small tree of string halves in the isolate; copied to the host it would be 300 MB (and flattened first)
    ["a giant URL", `try { new URL("https://a.example/" + "a".repeat(3e8)); return new Response("parsed"); } catch (e) { return new Response(e.name); }`,
      (r) => expect(text(r)).toBe("TypeError"), 150],
    // (taking its first 16 KiB flattens it in the isolate, 300 MB there; copying it would add as much again)
    ["a giant log line, with slice and join replaced", `${NO_SLICE} Array.prototype.join = function () { return this[0]; }; console.log("a".repeat(3e8)); console.log("x", "y"); return new Response("logged");`,
      (r) => expect(text(r)).toBe("logged"), 450],
    ["a giant header value", `return new Response("x", { headers: { "x-big": "a".repeat(1e8) } });`,
      (r) => expect(!r.ok && r.code).toBe("ERR_BAD_RESPONSE")],
    ["many big headers", `const h = new Headers(); for (let i = 0; i < 900; i++) h.set("x-" + i, "a".repeat(1000)); return new Response("x", { headers: h });`,
      (r) => expect(!r.ok && r.code).toBe("ERR_BAD_RESPONSE")],
    ["a giant error message, with slice replaced", `${NO_SLICE} throw new Error("a".repeat(1e8));`,
      (r) => expect(!r.ok && r.code === "ERR_FUNCTION_THREW" && r.message.length <= 4_000).toBe(true)],
    ["a body that is a small view on a giant buffer", `Uint8Array.prototype.slice = function () { return this; };
      return new Response(new Uint8Array(new ArrayBuffer(1e8), 0, 10));`,
      (r) => expect(r.ok && r.body.byteLength).toBe(10)],
    ["a digest of a small view on a giant buffer", `const slice = Uint8Array.prototype.slice; Uint8Array.prototype.slice = function () { return this; };
      const d = await crypto.subtle.digest("SHA-256", new Uint8Array(new ArrayBuffer(1e8), 0, 3)); Uint8Array.prototype.slice = slice;
      return new Response(String(d.byteLength));`,
      (r) => expect(text(r)).toBe("32")],
    ["an answer hijacked through Object.prototype.then", `Object.defineProperty(Object.prototype, "then", { configurable: true, get() {
        // only for the runtime's own answer record, when it resolves the promise of dispatch
        if (!(this && typeof this === "object" && "waiting" in this && "body" in this)) return undefined;
        delete Object.prototype.then;
        return (resolve) => resolve({ status: 200, headers: [["x-big", "a".repeat(1e8)]], body: new Uint8Array(1), waiting: false }); } });
      return new Response("honest");`,
      (r) => expect(text(r)).toBe("honest")],
    // a `constructor` getter makes every await on a native promise call `then`, which the tenant replaced
    ["an answer forged by hooking await (Promise.prototype.constructor and then)", `Object.defineProperty(Promise.prototype, "constructor", { configurable: true, get() { return undefined; } });
      const then = Promise.prototype.then;
      const big = "y".repeat(1 << 20);
      Promise.prototype.then = function (ok, bad) {
        return then.call(this, (v) => ok(v && typeof v === "object" && !(v instanceof Response) && ("status" in v || "waiting" in v) ? { status: 299, headers: [["x-forged", "1"]], body: new Uint8Array(1), waiting: false } : v), bad);
      };
      return new Response("honest");`,
      (r) => {
        // the honest answer, or a refusal; never the forged status or headers
        if (r.ok) {
          expect(r.status).toBe(200);
          expect(text(r)).toBe("honest");
          expect(r.headers.some(([name]) => name === "x-forged")).toBe(false);
        } else expect(r.code).toMatch(/^ERR_(BAD_RESPONSE|FUNCTION_THREW|WALL_TIME_LIMIT)$/);
      }],
    ["an answer that would copy 400 MiB to the host, through hooked awaits", `Object.defineProperty(Promise.prototype, "constructor", { configurable: true, get() { return undefined; } });
      const then = Promise.prototype.then;
      const big = "y".repeat(1 << 20);
      Promise.prototype.then = function (ok, bad) {
        return then.call(this, (v) => ok(v && typeof v === "object" && !(v instanceof Response) && ("status" in v || "waiting" in v) ? { status: 200, headers: Array.from({ length: 200 }, () => [big, big]), body: new Uint8Array(1), waiting: false } : v), bad);
      };
      return new Response("honest");`,
      (r) => {
        if (r.ok) expect(text(r)).toBe("honest");
        else expect(r.code).toMatch(/^ERR_(BAD_RESPONSE|FUNCTION_THREW|WALL_TIME_LIMIT)$/);
      }, 64],
  ];
  for (const [name, body, check, maxGrowthMb] of cases) {
    it(name, async () => {
      const before = small.pids();
      const pid = before[0]!;
      const peakKnown = maxGrowthMb !== undefined && resetPeak(pid);
      const baseline = peakKnown ? residentMb(pid, "VmRSS") : 0;
      const result = await call(small, uniqueKey("cross"), `export default { async fetch(request, env, ctx) { ${body} } };`, { limits: BIG });
      check(result);
      if (peakKnown) expect(residentMb(pid, "VmHWM") - baseline).toBeLessThan(maxGrowthMb);
      if (result.ok) expect(result.headers.every(([k, v]) => k.length + v.length < 70_000)).toBe(true);
      expect(small.pids()).toEqual(before);
      expect(text(await call(small, hello, HELLO, { path: "/ok" }))).toBe("still serving /ok");
    });
  }
});

/** A gzip of `mib` MiB of zeros (about a thousandth of that), made a chunk at a time. */
async function gzipBomb(mib: number): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const parts: Buffer[] = [];
  gzip.on("data", (chunk: Buffer) => parts.push(chunk));
  const done = new Promise((resolve) => gzip.on("end", resolve));
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib; i++) if (!gzip.write(zeros)) await new Promise((resolve) => gzip.once("drain", resolve));
  gzip.end();
  await done;
  return Buffer.concat(parts);
}

describe("Web Crypto and compression against hostile code", () => {
  it("huge key generations are refused, or bounded and charged to the caller", async () => {
    const refused = json(
      await call(
        pool,
        uniqueKey("rsa-huge"),
        jsonFunction(`
          const fails = async (f) => { try { await f(); return "resolved"; } catch (e) { return e.name + ": " + e.message; } };
          return { rsa: await fails(() => crypto.subtle.generateKey({ name: "RSA-PSS", modulusLength: 16384, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign"])),
                   exponent: await fails(() => crypto.subtle.generateKey({ name: "RSA-OAEP", modulusLength: 2048, publicExponent: new Uint8Array([255, 255, 255, 255, 255]), hash: "SHA-256" }, true, ["encrypt"])),
                   hmac: await fails(() => crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256", length: 2 ** 31 }, true, ["sign"])),
                   pbkdf2: await fails(async () => crypto.subtle.deriveBits({ name: "PBKDF2", salt: new Uint8Array(8), iterations: 1e9, hash: "SHA-256" },
                     await crypto.subtle.importKey("raw", new Uint8Array(8), "PBKDF2", false, ["deriveBits"]), 256)),
                   pbkdf2Long: await fails(async () => crypto.subtle.deriveBits({ name: "PBKDF2", salt: new Uint8Array(8), iterations: 100000, hash: "SHA-1" },
                     await crypto.subtle.importKey("raw", new Uint8Array(8), "PBKDF2", false, ["deriveBits"]), 8 * 1024 * 1024)) };
        `),
        { limits: TIGHT },
      ),
    );
    expect(refused).toEqual({
      rsa: "NotSupportedError: RSA keys of over 4096 bits cannot be generated here (asked for 16384)",
      exponent: "OperationError: the RSA public exponent must be 3 or 65537",
      hmac: expect.stringMatching(/^OperationError/),
      pbkdf2: "NotSupportedError: PBKDF2 iteration counts above 100000 are not supported (requested 1000000000)",
      pbkdf2Long: expect.stringMatching(/^NotSupportedError: PBKDF2 work over/),
    });
    // the largest allowed, over and over: its threadpool time counts against the call's CPU limit while it runs
    const started = performance.now();
    const stopped = await hostile(
      "rsa-4096-loop",
      `for (;;) await crypto.subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 4096, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, false, ["sign"]);`,
      { limits: { cpuMs: 300, wallMs: 30_000 } },
    );
    expect(stopped.code).toBe("ERR_CPU_LIMIT");
    // stopped at its CPU limit (one RSA-4096 generation takes about 0.1-2 s), far from its 30 s wall limit
    expect(performance.now() - started).toBeLessThan(15_000);
    await stillServing();
  });

  it("a decompression bomb fails its call with a clear error; the sandbox process's memory stays bounded", async () => {
    const bomb = await gzipBomb(1024);
    expect(bomb.byteLength).toBeLessThan(2 << 20);
    const pid = pool.pids()[0]!;
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
    const before = rss();
    let peak = before;
    const watch = setInterval(() => (peak = Math.max(peak, rss())), 5);
    try {
      // kept: 1 GiB will not fit in 32 MiB
      const kept = await hostile("bomb-kept", `return new Response(await new Response(request.body.pipeThrough(new DecompressionStream("gzip"))).arrayBuffer());`, {
        body: bomb,
        limits: { memoryMb: 32, cpuMs: 5_000, wallMs: 20_000 },
      });
      expect(kept.code).toBe("ERR_MEMORY_LIMIT");
      // streamed and thrown away: bounded by the CPU the inflation costs
      const streamed = await hostile(
        "bomb-streamed",
        `const reader = request.body.pipeThrough(new DecompressionStream("gzip")).getReader(); let n = 0; for (;;) { const { done, value } = await reader.read(); if (done) break; n += value.byteLength; } return new Response(String(n));`,
        { body: bomb, limits: { memoryMb: 32, cpuMs: 150, wallMs: 20_000 } },
      );
      expect(streamed.code).toBe("ERR_CPU_LIMIT");
    } finally {
      clearInterval(watch);
    }
    // the host held at most a step of output at a time, never the gigabyte (the isolate's 32 MiB and copies are in this)
    expect(peak - before).toBeLessThan(200);
    expect(pool.pids()).toEqual([pid]);
    await stillServing();
    // the stopped calls' zlib steps gave their threadpool slots back: host jobs still run for everyone
    const jobs = await call(pool, uniqueKey("after-bombs"), jsonFunction(`
      const all = await Promise.all(Array.from({ length: 8 }, () => crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"])));
      return all.length;`), { limits: { wallMs: 5_000 } });
    expect(json(jobs)).toBe(8);
  });

  it("key objects where they do not belong: forged, copied, proxied or cloned keys are refused; nothing reveals a handle", async () => {
    const out = json(
      await call(
        pool,
        uniqueKey("forged-keys"),
        jsonFunction(`
          const s = crypto.subtle;
          const real = await s.importKey("raw", new Uint8Array(32), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
          const fails = async (f) => { try { await f(); return "resolved"; } catch (e) { return e.name; } };
          const data = new Uint8Array(1);
          const forged = Object.create(CryptoKey.prototype);
          const copied = { type: real.type, extractable: real.extractable, algorithm: real.algorithm, usages: real.usages, __proto__: CryptoKey.prototype };
          const proxied = new Proxy(real, {});
          class Sub extends CryptoKey { constructor() { super(); } }
          const ecdh = await s.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
          return {
            forged: await fails(() => s.sign("HMAC", forged, data)), copied: await fails(() => s.sign("HMAC", copied, data)),
            proxied: await fails(() => s.sign("HMAC", proxied, data)), cloned: await fails(() => structuredClone(real)),
            sub: await fails(() => new Sub()), ctor: await fails(() => new CryptoKey(Symbol("internal"), { handle: "A".repeat(22) })),
            publicForged: await fails(() => s.deriveBits({ name: "ECDH", public: Object.create(CryptoKey.prototype) }, ecdh.privateKey, 256)),
            getter: await fails(() => Object.getOwnPropertyDescriptor(CryptoKey.prototype, "type").get.call({})),
            own: Reflect.ownKeys(real).length, json: JSON.stringify(real), realStillWorks: (await s.sign("HMAC", real, data)).byteLength,
          };
        `),
      ),
    );
    expect(out).toEqual({
      forged: "TypeError",
      copied: "TypeError",
      proxied: "TypeError",
      cloned: "DataCloneError",
      sub: "TypeError",
      ctor: "TypeError",
      publicForged: "TypeError",
      getter: "TypeError",
      own: 0,
      json: "{}",
      realStillWorks: 32,
    });
  });

  it("a crypto answer that arrives after its call ended goes nowhere, and a then-getter on Object.prototype sees no host answer", async () => {
    const key = uniqueKey("late-answer");
    const code = `export default { async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/start") {
        // not awaited: the call answers before the key exists
        // (2048 bits: the job left running is charged to the next call, and a 4096-bit one can pass its 1 s of CPU on a loaded machine)
        crypto.subtle.generateKey({ name: "RSA-PSS", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, false, ["sign"]).then(() => console.log("late key"));
        return new Response("started");
      }
      const seen = [];
      Object.defineProperty(Object.prototype, "then", { configurable: true, get() { seen.push(Object.keys(this).join(",")); return undefined; } });
      const k = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      delete Object.prototype.then;
      return Response.json({ seen: seen.filter((s) => /handle|type|value|ok/.test(s)), key: k instanceof CryptoKey });
    } };`;
    expect(text(await call(pool, key, code, { path: "/start" }))).toBe("started");
    const next = await call(pool, key, code, { path: "/next" });
    expect(json(next)).toEqual({ seen: [], key: true });
    // the job left running did not count against the bounded reset between the calls: the isolate was kept warm
    expect(next.cold).toBe(false);
    await sleep(2_500);
    expect(logs.filter((l) => l.key === key && l.message === "late key")).toEqual([]);
  });
});

describe("host work is charged to the call", () => {
  it("hashing on the host counts as the call's CPU time, and against its limit", async () => {
    const code = `export default { async fetch(request) {
      const data = new Uint8Array(16 * 1024 * 1024);
      const n = Number(new URL(request.url).searchParams.get("n"));
      for (let i = 0; i < n; i++) await crypto.subtle.digest("SHA-512", data);
      return new Response("hashed");
    } };`;
    const measured = await call(pool, uniqueKey("hash-cpu"), code, { path: "/?n=8", limits: { cpuMs: 10_000, wallMs: 20_000, memoryMb: 128 } });
    expect(text(measured)).toBe("hashed");
    // the same hashing done here: the call's CPU time holds about that much (plus the isolate's own work). Two processes'
    // CPU times for the same work differ on a loaded machine (caches, a shared core), so half of it is the bar: uncharged,
    // the call would show only the isolate's few ms
    const data = new Uint8Array(16 * 1024 * 1024);
    const before = process.threadCpuUsage();
    for (let i = 0; i < 8; i++) createHash("sha512").update(data).digest();
    const spent = process.threadCpuUsage(before);
    expect(measured.cpuMs).toBeGreaterThan(((spent.user + spent.system) / 1000) * 0.5);
    const stopped = await call(pool, uniqueKey("hash-limit"), code, { path: "/?n=200", limits: { cpuMs: 100, wallMs: 20_000, memoryMb: 128 } });
    expect(!stopped.ok && stopped.code).toBe("ERR_CPU_LIMIT");
    await stillServing();
  });

  it("Web Crypto work on the host's threadpool counts as the call's CPU time, and against its limit", async () => {
    const code = `export default { async fetch(request) {
      const n = Number(new URL(request.url).searchParams.get("n"));
      const key = await crypto.subtle.importKey("raw", new TextEncoder().encode("password"), "PBKDF2", false, ["deriveBits"]);
      for (let i = 0; i < n; i++) await crypto.subtle.deriveBits({ name: "PBKDF2", salt: new Uint8Array(16), iterations: 100000, hash: "SHA-256" }, key, 256);
      return new Response("derived");
    } };`;
    const measured = await call(pool, uniqueKey("pbkdf2-cpu"), code, { path: "/?n=6", limits: { cpuMs: 20_000, wallMs: 30_000 } });
    expect(text(measured)).toBe("derived");
    const before = process.threadCpuUsage();
    for (let i = 0; i < 6; i++) pbkdf2Sync("password", Buffer.alloc(16), 100_000, 32, "sha256");
    const spent = process.threadCpuUsage(before);
    expect(measured.cpuMs).toBeGreaterThan(((spent.user + spent.system) / 1000) * 0.5);
    const stopped = await call(pool, uniqueKey("pbkdf2-limit"), code, { path: "/?n=1000", limits: { cpuMs: 150, wallMs: 30_000 } });
    expect(!stopped.ok && stopped.code).toBe("ERR_CPU_LIMIT");
    await stillServing();
  });

  it("a call hands the host a bounded number of bytes", async () => {
    const result = json(
      await call(
        pool,
        uniqueKey("host-bytes"),
        jsonFunction(`
          new URL("https://fresh.example/" + crypto.randomUUID());
          const data = new Uint8Array(16 * 1024 * 1024 + 1);
          let big; try { await crypto.subtle.digest("SHA-256", data); big = "hashed"; } catch (e) { big = e.name; }
          const chunk = data.subarray(0, 16 * 1024 * 1024);
          let n = 0; try { for (; n < 100; n++) await crypto.subtle.digest("SHA-1", chunk); } catch (e) {}
          return { big, n };
        `),
        { limits: { cpuMs: 20_000, wallMs: 30_000, memoryMb: 128 } },
      ),
    );
    // 256 MiB per call: 16 digests of 16 MiB, less the few bytes the URL it parsed took (the request's own URL the host
    // parses before the call, at no cost to the function)
    expect(result).toEqual({ big: "RangeError", n: 15 });
  });
});

describe("overlapping calls of one function", () => {
  it("each gets its own console request id and is charged only its own CPU time", async () => {
    const key = uniqueKey("overlap");
    const code = `export default { async fetch(request) {
      const who = new URL(request.url).pathname.slice(1);
      if (who === "busy") {
        // ~150 ms of CPU in slices, with timers in between, while the other call waits
        for (let i = 0; i < 10; i++) { const end = Date.now() + 15; while (Date.now() < end) {} await new Promise((r) => setTimeout(r, 2)); }
      } else await new Promise((r) => setTimeout(r, 300));
      console.log("I am " + who);
      return new Response(who);
    } };`;
    await call(pool, key, code, { path: "/idle" });
    const [busy, idle] = await Promise.all([
      call(pool, key, code, { path: "/busy", requestId: "req-busy" }),
      call(pool, key, code, { path: "/idle", requestId: "req-idle" }),
    ]);
    expect([text(busy), text(idle)]).toEqual(["busy", "idle"]);
    // each call is charged its own CPU: the busy one's slices (about 150 ms on an idle machine), not the other's
    expect(busy.cpuMs).toBeGreaterThan(40);
    // (a loaded machine charges the idle call its few turns' preemptions too: ~20 ms seen; the busy one's slices would be ~150)
    expect(idle.cpuMs).toBeLessThan(75);
    expect(busy.cpuMs).toBeGreaterThan(idle.cpuMs * 4);
    const lines = logs.filter((l) => l.key === key && l.message.startsWith("I am ")).map((l) => [l.requestId, l.message]);
    expect(lines).toContainEqual(["req-busy", "I am busy"]);
    expect(lines).toContainEqual(["req-idle", "I am idle"]);
    expect(lines.filter(([id]) => id === "req-1")).toHaveLength(1);
  });
});

describe("the device keeps serving", () => {
  it("a well-behaved function answers while a runaway one burns its CPU budget on the same process", async () => {
    const runaway = call(pool, uniqueKey("runaway"), `export default { fetch() { for (;;) {} } }`, { limits: { cpuMs: 1_500, wallMs: 5_000 } });
    let runawayDone = false;
    void runaway.then(() => (runawayDone = true));
    await stillServing();
    expect(runawayDone).toBe(false);
    const result = await runaway;
    expect(!result.ok && result.code).toBe("ERR_CPU_LIMIT");
  });

  it("a sandbox process over its own memory cap sheds idle isolates (they start cold next time) and keeps serving", async () => {
    const small = await startPool({ processMemoryMb: 160 });
    try {
      const holder = `let keep; export default { fetch() { keep ??= new Uint8Array(40 * 1024 * 1024).fill(7); return new Response(String(keep.length)); } };`;
      const keys = Array.from({ length: 5 }, (_, i) => uniqueKey(`holder-${i}`));
      for (const key of keys) expect(text(await call(small, key, holder, { limits: { memoryMb: 64 } }))).toBe(String(40 * 1024 * 1024));
      // Five holders of 40 MiB put the process over 160 MiB; it checks its memory after every call (not only on its
      // 250 ms poll), so the least recently used idle isolate, the first holder's, is gone by now. Calling it once:
      // polling it again and again would keep it the most recently used, and so the one kept.
      const first = await call(small, keys[0]!, holder, { limits: { memoryMb: 64 } });
      expect(first.ok && first.cold).toBe(true);
      expect(text(await call(small, uniqueKey("after"), HELLO, { path: "/ok" }))).toBe("still serving /ok");
    } finally {
      await small[Symbol.asyncDispose]();
    }
  });

  it("a sandbox process killed with SIGKILL is restarted; only the calls on it fail, with ERR_SANDBOX_CRASHED", async () => {
    const two = await startPool({ size: 2 });
    try {
      const processOf = (key: string) => sandboxIndexOf(key, 2);
      const keys: string[][] = [[], []];
      for (let i = 0; keys[0]!.length === 0 || keys[1]!.length === 0; i++) {
        const key = uniqueKey(`crash-${i}`);
        keys[processOf(key)]!.push(key);
      }
      const victimKey = keys[0]![0]!;
      const bystanderKey = keys[1]![0]!;
      const slow = `export default { async fetch() { await new Promise((r) => setTimeout(r, 5_000)); return new Response("slow"); } }`;
      const before = two.pids();
      expect(before).toHaveLength(2);
      const inFlight = call(two, victimKey, slow);
      const bystanderInFlight = call(two, bystanderKey, `export default { async fetch() { await new Promise((r) => setTimeout(r, 300)); return new Response("bystander"); } }`);
      // let both calls reach their processes
      await call(two, keys[0]!.length > 1 ? keys[0]![1]! : uniqueKey("warm"), HELLO);
      process.kill(before[0]!, "SIGKILL");
      await expect(inFlight).rejects.toMatchObject({ code: "ERR_SANDBOX_CRASHED" });
      expect(text(await bystanderInFlight)).toBe("bystander");
      let again: SandboxResult | undefined;
      for (let i = 0; i < 100; i++) {
        again = await call(two, victimKey, HELLO).catch((error: { code?: string }) => ({ ok: false, code: error.code }) as SandboxResult);
        if (again.ok) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(again && text(again)).toBe("still serving /");
      expect(two.pids()).toHaveLength(2);
      expect(two.pids()[0]).not.toBe(before[0]);
      expect(two.pids()[1]).toBe(before[1]);
    } finally {
      await two[Symbol.asyncDispose]();
    }
  });
});

describe("the sandbox process itself runs with the least Node allows", () => {
  it("is started under Node's permission model, which refuses file writes, child processes and worker threads", async () => {
    // the flags are on every sandbox process of the pool
    const [pid] = pool.pids();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    for (const flag of SANDBOX_PERMISSIONS) expect(cmdline).toContain(flag);
    // and, under those flags, what a sandbox process could do if code ever got out of its isolate is refused
    const dir = mkdtempSync(join(tmpdir(), "hearth-perm-"));
    try {
      const target = join(dir, "written");
      const probe = `
        const out = {};
        const tryIt = (name, f) => { try { f(); out[name] = "allowed"; } catch (e) { out[name] = e.code ?? String(e); } };
        tryIt("fsWrite", () => require("node:fs").writeFileSync(${JSON.stringify(target)}, "x"));
        tryIt("childProcess", () => require("node:child_process").execFileSync("true"));
        tryIt("worker", () => new (require("node:worker_threads").Worker)("1", { eval: true }));
        tryIt("readOutside", () => require("node:fs").readFileSync("/etc/hostname"));
        console.log(JSON.stringify(out));`;
      const out = execFileSync(process.execPath, [...SANDBOX_PERMISSIONS, "-e", probe], { encoding: "utf8" });
      expect(JSON.parse(out)).toEqual({ fsWrite: "ERR_ACCESS_DENIED", childProcess: "ERR_ACCESS_DENIED", worker: "ERR_ACCESS_DENIED", readOutside: "ERR_ACCESS_DENIED" });
      expect(existsSync(target)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
