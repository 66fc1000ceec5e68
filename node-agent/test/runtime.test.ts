/**
 * The web APIs inside a function, driven through a real SandboxPool: each
 * test deploys a small function and checks what a developer would observe.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { SandboxPool } from "../src/sandbox/supervisor.ts";
import { call, json, jsonFunction, startPool, text, uniqueKey } from "./helpers.ts";

let pool: SandboxPool;
const logs: { key: string; requestId: string; level: string; message: string }[] = [];

beforeAll(async () => {
  pool = await startPool({ onLog: (entry) => logs.push(entry) });
});
afterAll(async () => {
  await pool?.[Symbol.asyncDispose]();
});

const run = async (body: string, input: Parameters<typeof call>[3] = {}) => json(await call(pool, uniqueKey("rt"), jsonFunction(body), input));

describe("Request, Response, Headers", () => {
  it("reads the request: method, url, headers, text, json, arrayBuffer, formData (urlencoded and multipart)", async () => {
    const out = await run(
      `const r2 = request.clone();
       const r3 = request.clone();
       const form = await request.formData();
       return { method: request.method, url: request.url, type: request.headers.get("Content-Type"), name: form.get("name"),
                text: await r2.text(), bytes: (await r3.arrayBuffer()).byteLength, used: request.bodyUsed };`,
      { method: "POST", path: "/a?x=1", headers: [["content-type", "application/x-www-form-urlencoded"]], body: "name=Ada+L&x=%C3%A9" },
    );
    expect(out).toEqual({
      method: "POST",
      url: "https://fn.example/a?x=1",
      type: "application/x-www-form-urlencoded",
      name: "Ada L",
      text: "name=Ada+L&x=%C3%A9",
      bytes: 19,
      used: true,
    });
    const multipart = await run(`
      const fd = new FormData();
      fd.append("title", "hello\\nworld");
      fd.append("file", new Blob([new Uint8Array([0, 1, 2, 255])], { type: "application/x-bin" }), "data.bin");
      const req = new Request("https://x.example/", { method: "POST", body: fd });
      const back = await req.formData();
      const file = back.get("file");
      return { ct: req.headers.get("content-type").startsWith("multipart/form-data; boundary="), title: back.get("title"),
               name: file.name, type: file.type, size: file.size, bytes: [...new Uint8Array(await file.arrayBuffer())], isFile: file instanceof File };
    `);
    expect(multipart).toEqual({ ct: true, title: "hello\r\nworld", name: "data.bin", type: "application/x-bin", size: 4, bytes: [0, 1, 2, 255], isFile: true });
  });

  it("builds responses: Response.json, redirect, status rules, headers and set-cookie, body used once", async () => {
    const out = await run(`
      const j = Response.json({ a: 1 }, { status: 201, headers: { "x-a": "b" } });
      const r = Response.redirect("https://example.com/next", 307);
      const h = new Headers([["Set-Cookie", "a=1"], ["set-cookie", "b=2"], ["X-Multi", "1"]]);
      h.append("x-multi", "2");
      let badStatus = null; try { new Response("x", { status: 99 }); } catch (e) { badStatus = e.name; }
      let nullBody = null; try { new Response("x", { status: 204 }); } catch (e) { nullBody = e.name; }
      let badHeader = null; try { h.set("bad name", "x"); } catch (e) { badHeader = e.name; }
      const once = new Response("x"); await once.text();
      let reused = null; try { await once.text(); } catch (e) { reused = e.name; }
      return { j: [j.status, j.headers.get("content-type"), j.headers.get("x-a"), await j.json()],
               r: [r.status, r.headers.get("location")], cookies: h.getSetCookie(), multi: h.get("x-multi"),
               badStatus, nullBody, badHeader, reused, ok: new Response(null, { status: 404 }).ok };
    `);
    expect(out).toEqual({
      j: [201, "application/json", "b", { a: 1 }],
      r: [307, "https://example.com/next"],
      cookies: ["a=1", "b=2"],
      multi: "1, 2",
      badStatus: "RangeError",
      nullBody: "TypeError",
      badHeader: "TypeError",
      reused: "TypeError",
      ok: false,
    });
  });

  it("sends the function's status, headers and binary body back", async () => {
    const result = await call(
      pool,
      uniqueKey("bin"),
      `export default { fetch() { return new Response(new Uint8Array([1, 2, 3]), { status: 418, headers: { "x-y": "z" } }); } }`,
    );
    expect(result.ok && result.status).toBe(418);
    expect(result.ok && [...result.body]).toEqual([1, 2, 3]);
    expect(result.ok && result.headers).toContainEqual(["x-y", "z"]);
  });

  it("streams: a ReadableStream response body, TransformStream, request.body as a stream, TextDecoderStream", async () => {
    const result = await call(
      pool,
      uniqueKey("streams"),
      `export default { async fetch(request) {
        const upper = new TransformStream({ transform(chunk, c) { c.enqueue(new TextEncoder().encode(new TextDecoder().decode(chunk).toUpperCase())); } });
        const reader = request.body.pipeThrough(new TextDecoderStream()).getReader();
        let seen = ""; for (;;) { const { done, value } = await reader.read(); if (done) break; seen += value; }
        const source = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("a-" + seen + "-")); c.enqueue(new TextEncoder().encode("z")); c.close(); } });
        return new Response(source.pipeThrough(upper), { headers: { "content-type": "text/plain" } });
      } }`,
      { body: "héllo" },
    );
    expect(text(result)).toBe("A-HÉLLO-Z");
  });
});

describe("URL, encoding, base64, structuredClone, events, abort", () => {
  it("parses and edits URLs and search params", async () => {
    const out = await run(`
      const u = new URL("/p/a th?x=1&y=2#h", "https://Example.com:443");
      u.searchParams.append("z", "a b");
      u.searchParams.delete("x");
      const bad = URL.canParse("not a url");
      return { href: u.href, host: u.host, path: u.pathname, q: [...new URLSearchParams("a=1&a=2&b=%20")], bad };
    `);
    expect(out).toEqual({
      href: "https://example.com/p/a%20th?y=2&z=a+b#h",
      host: "example.com",
      path: "/p/a%20th",
      q: [["a", "1"], ["a", "2"], ["b", " "]],
      bad: false,
    });
  });

  it("URLs parsed again are the same and independent: the isolate's memo of parses changes nothing a function sees", async () => {
    const out = await run(`
      const a = new URL(request.url), b = new URL(request.url);
      a.pathname = "/changed"; a.searchParams.set("q", "1");
      const rel = [new URL("x", "https://one.example/d/").href, new URL("x", "https://two.example/d/").href];
      // the same characters split differently between input and base are different parses
      const split = [new URL("b/c", "https://h.example/a/").href, new URL("/c", "https://h.example/a/b").href];
      const bad = []; for (let i = 0; i < 2; i++) { try { new URL("no scheme"); bad.push("parsed"); } catch (e) { bad.push(e.name); } }
      const many = []; for (let i = 0; i < 600; i++) many.push(new URL("/n" + (i % 300), "https://m.example").pathname);
      return { a: a.href, b: b.href, same: b.href === request.url, rel, split, bad, many: many.slice(295, 305), search: b.search };
    `, { path: "/orig?x=1" });
    expect(out).toEqual({
      a: "https://fn.example/changed?x=1&q=1",
      b: "https://fn.example/orig?x=1",
      same: true,
      rel: ["https://one.example/d/x", "https://two.example/d/x"],
      split: ["https://h.example/a/b/c", "https://h.example/c"],
      bad: ["TypeError", "TypeError"],
      many: ["/n295", "/n296", "/n297", "/n298", "/n299", "/n0", "/n1", "/n2", "/n3", "/n4"],
      search: "?x=1",
    });
  });

  it("TextEncoder/TextDecoder (UTF-8, fatal, streaming), atob/btoa", async () => {
    const out = await run(`
      const bytes = new TextEncoder().encode("é€😀");
      const d = new TextDecoder();
      const streamed = d.decode(bytes.subarray(0, 3), { stream: true }) + d.decode(bytes.subarray(3));
      let fatal = null; try { new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xff])); } catch (e) { fatal = e.name; }
      let latin = null; try { btoa("€"); } catch (e) { latin = e.name; }
      return { len: bytes.length, streamed, fatal, b: btoa("\\u00ff\\u0000ab"), a: atob(" /wBhYg== "), latin };
    `);
    expect(out).toEqual({ len: 9, streamed: "é€😀", fatal: "TypeError", b: "/wBhYg==", a: "\u00ff\u0000ab", latin: "InvalidCharacterError" });
  });

  it("structuredClone keeps types and cycles and refuses functions", async () => {
    const out = await run(`
      const src = { d: new Date(0), m: new Map([[1, { a: 1 }]]), s: new Set([1]), u: new Uint8Array([1, 2]), r: /x/g, big: 10n };
      src.self = src;
      const c = structuredClone(src);
      let fn = null; try { structuredClone({ f() {} }); } catch (e) { fn = e.name; }
      return { date: c.d instanceof Date && c.d.getTime() === 0, map: c.m.get(1).a, set: c.s.has(1), u: [...c.u], cycle: c.self === c,
               distinct: c.m !== src.m, re: c.r.flags, big: typeof c.big, fn };
    `);
    expect(out).toEqual({ date: true, map: 1, set: true, u: [1, 2], cycle: true, distinct: true, re: "g", big: "bigint", fn: "DataCloneError" });
  });

  it("EventTarget, AbortController, AbortSignal.timeout and any", async () => {
    const out = await run(`
      const target = new EventTarget(); const seen = [];
      target.addEventListener("ping", (e) => seen.push(e.type + ":" + (e instanceof Event)), { once: true });
      target.dispatchEvent(new Event("ping")); target.dispatchEvent(new Event("ping"));
      const c = new AbortController(); let reason = null;
      c.signal.addEventListener("abort", () => { reason = c.signal.reason.name; });
      c.abort();
      const t = AbortSignal.timeout(5);
      await new Promise((r) => t.addEventListener("abort", r));
      const any = AbortSignal.any([new AbortController().signal, AbortSignal.abort("why")]);
      return { seen, reason, aborted: c.signal.aborted, timeout: t.reason.name, any: any.reason };
    `);
    expect(out).toEqual({ seen: ["ping:true"], reason: "AbortError", aborted: true, timeout: "TimeoutError", any: "why" });
  });
});

describe("crypto, timers, misc globals, env, ctx, console", () => {
  it("crypto.getRandomValues, randomUUID, subtle.digest, HMAC sign/verify, import/export jwk", async () => {
    const out = await run(`
      const enc = new TextEncoder();
      const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
      const key = await crypto.subtle.importKey("raw", enc.encode("key"), { name: "HMAC", hash: "SHA-256" }, true, ["sign", "verify"]);
      const sig = await crypto.subtle.sign("HMAC", key, enc.encode("The quick brown fox jumps over the lazy dog"));
      const good = await crypto.subtle.verify("HMAC", key, sig, enc.encode("The quick brown fox jumps over the lazy dog"));
      const bad = await crypto.subtle.verify("HMAC", key, sig, enc.encode("tampered"));
      const jwk = await crypto.subtle.exportKey("jwk", key);
      const gen = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-512" }, false, ["sign"]);
      const r = crypto.getRandomValues(new Uint32Array(4));
      let quota = null; try { crypto.getRandomValues(new Uint8Array(65537)); } catch (e) { quota = e.name; }
      return { sha1: hex(await crypto.subtle.digest("SHA-1", enc.encode("abc"))), hmac: hex(sig), good, bad, jwk: jwk.k, genBits: gen.algorithm.length,
               rand: r.length, uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()), quota };
    `);
    expect(out).toEqual({
      sha1: "a9993e364706816aba3e25717850c26c9cd0d89d",
      hmac: "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
      good: true,
      bad: false,
      jwk: "a2V5",
      genBits: 1024,
      rand: 4,
      uuid: true,
      quota: "QuotaExceededError",
    });
  });

  it("setTimeout, setInterval, clearTimeout, queueMicrotask within the call", async () => {
    const out = await run(`
      const order = [];
      queueMicrotask(() => order.push("micro"));
      const cancelled = setTimeout(() => order.push("cancelled"), 1); clearTimeout(cancelled);
      await new Promise((r) => setTimeout(() => { order.push("timeout"); r(); }, 5));
      let n = 0;
      await new Promise((r) => { const id = setInterval(() => { if (++n === 3) { clearInterval(id); r(); } }, 1); });
      let str = null; try { setTimeout("order.push(1)", 1); } catch (e) { str = e.name; }
      return { order, n, str };
    `);
    expect(out).toEqual({ order: ["micro", "timeout"], n: 3, str: "TypeError" });
  });

  it("performance.now, navigator.userAgent, self, Blob and File", async () => {
    const out = await run(`
      const b = new Blob(["ab", new Uint8Array([99])], { type: "Text/Plain" });
      const f = new File(["x"], "f.txt", { lastModified: 5 });
      return { perf: typeof performance.now(), whole: Number.isInteger(performance.now()), ua: navigator.userAgent.startsWith("Hearth"), self: self === globalThis,
               blob: [b.size, b.type, await b.text(), await b.slice(1).text()], file: [f.name, f.lastModified, f instanceof Blob] };
    `);
    expect(out).toEqual({ perf: "number", whole: true, ua: true, self: true, blob: [3, "text/plain", "abc", "bc"], file: ["f.txt", 5, true] });
  });

  it("passes env (frozen) to fetch and picks up a changed env on the next call", async () => {
    const key = uniqueKey("env");
    const code = jsonFunction(`let frozen = false; try { env.X = "y"; } catch { frozen = true; } return { env, frozen: frozen || Object.isFrozen(env) };`);
    expect(json(await call(pool, key, code, { settings: { env: { API_KEY: "s3cret", MODE: "a" } } }))).toEqual({
      env: { API_KEY: "s3cret", MODE: "a" },
      frozen: true,
    });
    expect(json(await call(pool, key, code, { settings: { env: { MODE: "b" } } }))).toEqual({ env: { MODE: "b" }, frozen: true });
    expect(json(await call(pool, key, code))).toEqual({ env: {}, frozen: true });
    // the same env again (as the agent passes it for every call of a placement) is not sent again, and still holds
    const placed = { MODE: "c" };
    expect(json(await call(pool, key, code, { settings: { env: placed } }))).toEqual({ env: { MODE: "c" }, frozen: true });
    expect(json(await call(pool, key, code, { settings: { env: placed } }))).toEqual({ env: { MODE: "c" }, frozen: true });
  });

  it("runs ctx.waitUntil work after the answer, and bridges console lines with level and request id", async () => {
    const key = uniqueKey("wait");
    const result = await call(
      pool,
      key,
      `export default { fetch(request, env, ctx) {
        console.log("hello", { a: 1 }); console.warn("careful");
        ctx.waitUntil(new Promise((r) => setTimeout(() => { console.error("later"); r(); }, 20)));
        return new Response("ok");
      } }`,
      { requestId: "req-wait" },
    );
    expect(text(result)).toBe("ok");
    for (let i = 0; i < 100 && !logs.some((l) => l.key === key && l.message === "later"); i++) await new Promise((r) => setTimeout(r, 20));
    expect(logs.filter((l) => l.key === key).map((l) => [l.level, l.message, l.requestId])).toEqual([
      ["info", 'hello {"a":1}', "req-wait"],
      ["warn", "careful", "req-wait"],
      ["error", "later", "req-wait"],
    ]);
  });

  it("hands on a call's console lines with its answer, and a long call's lines while it still runs", async () => {
    const key = uniqueKey("lines");
    const code = `export default { async fetch(request) {
      const long = new URL(request.url).pathname === "/long";
      console.log(long ? "long call started" : "one"); if (!long) console.log("two");
      if (long) await new Promise((r) => setTimeout(r, 3000));
      return new Response("ok");
    } }`;
    await call(pool, key, code, { requestId: "req-lines" });
    // in the same message as the answer: there by the time the call resolves, in order
    expect(logs.filter((l) => l.key === key).map((l) => l.message)).toEqual(["one", "two"]);
    let answered = false;
    const long = call(pool, key, code, { path: "/long", requestId: "req-long" }).then((r) => ((answered = true), r));
    await vi.waitFor(() => expect(logs.some((l) => l.key === key && l.message === "long call started")).toBe(true), { timeout: 2_500, interval: 10 });
    expect(answered).toBe(false);
    expect(text(await long)).toBe("ok");
  });

  it("refuses outbound fetch unless the function is allowed it", async () => {
    const out = await run(`try { await fetch("https://example.com/"); return "fetched"; } catch (e) { return e.name + ": " + e.message; }`);
    expect(out).toMatch(/^TypeError: outbound fetch is not allowed/);
  });

  it("reports a thrown error as ERR_FUNCTION_THREW and a non-Response as ERR_BAD_RESPONSE, and keeps serving", async () => {
    const key = uniqueKey("throws");
    const threw = await call(pool, key, `export default { fetch(r) { if (r.url.endsWith("/ok")) return new Response("fine"); throw new Error("boom"); } }`);
    expect(!threw.ok && threw.code).toBe("ERR_FUNCTION_THREW");
    expect(!threw.ok && threw.message).toMatch(/boom/);
    expect(text(await call(pool, key, "", { path: "/ok" }))).toBe("fine");
    const bad = await call(pool, uniqueKey("bad"), `export default { fetch() { return { status: 200 }; } }`);
    expect(!bad.ok && bad.code).toBe("ERR_BAD_RESPONSE");
    const err = await call(pool, uniqueKey("bad2"), `export default { fetch() { return Response.error(); } }`);
    expect(!err.ok && err.code).toBe("ERR_BAD_RESPONSE");
  });
});

describe("a function dropped from the device while a call of it runs", () => {
  it("lets that call finish with its answer, then serves the function again if it comes back", async () => {
    const key = uniqueKey("dropped");
    const code = `export default { async fetch(request) {
      console.log("running " + new URL(request.url).pathname);
      await new Promise((r) => setTimeout(r, 300));
      return new Response("done " + new URL(request.url).pathname);
    } }`;
    // warm, so the call below is a warm one on an isolate the drop finds busy
    expect(text(await call(pool, key, code, { path: "/warm" }))).toBe("done /warm");
    const running = call(pool, key, code, { path: "/moving", requestId: "req-moving" });
    await vi.waitFor(() => expect(logs.some((l) => l.key === key && l.message === "running /moving")).toBe(true), { timeout: 5_000, interval: 10 });
    // the scheduler moved the function away (or the owner paused): before, this killed the call as ERR_MEMORY_LIMIT
    pool.drop(key);
    const result = await running;
    expect(result.ok).toBe(true);
    expect(text(result)).toBe("done /moving");
    // placed here again later: it loads afresh and serves
    expect(text(await call(pool, key, code, { path: "/back" }))).toBe("done /back");
  });
});
