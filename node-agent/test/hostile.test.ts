/**
 * Hostile functions against a real SandboxPool: each must fail with a clear
 * code without harming the sandbox process, the device or other tenants, and
 * a well-behaved function on the same pool must still answer afterwards.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxResult } from "../src/sandbox/messages.ts";
import type { SandboxPool } from "../src/sandbox/supervisor.ts";
import { call, json, jsonFunction, startPool, text, uniqueKey, type CallInput } from "./helpers.ts";

let pool: SandboxPool;
const logs: { key: string; message: string }[] = [];
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
    // A later call to another function gives the timers every chance to fire if they were alive.
    for (let i = 0; i < 5; i++) {
      await stillServing();
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = logs.filter((l) => l.key === key).map((l) => l.message);
    expect(after.filter((m) => m === "late" || m === "top-level timer fired")).toEqual([]);
    // an interval may tick at most while the call itself still runs, never afterwards
    const ticks = after.filter((m) => m === "tick").length;
    await new Promise((r) => setTimeout(r, 50));
    expect(logs.filter((l) => l.key === key && l.message === "tick").length).toBe(ticks);
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
      let first: SandboxResult | undefined;
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 50));
        first = await call(small, keys[0]!, holder, { limits: { memoryMb: 64 } });
        if (first.ok && first.cold) break;
      }
      expect(first?.ok && first.cold).toBe(true);
      expect(text(await call(small, uniqueKey("after"), HELLO, { path: "/ok" }))).toBe("still serving /ok");
    } finally {
      await small[Symbol.asyncDispose]();
    }
  });

  it("a sandbox process killed with SIGKILL is restarted; only the calls on it fail, with ERR_SANDBOX_CRASHED", async () => {
    const two = await startPool({ size: 2 });
    try {
      const processOf = (key: string) => createHash("sha1").update(key).digest().readUInt32BE(0) % 2;
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
