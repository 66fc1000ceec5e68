/**
 * CompressionStream and DecompressionStream inside the sandbox, as a tenant
 * uses them: what they make is what zlib makes and reads (checked on the host
 * with node:zlib), across chunk boundaries and steps, with the web's errors.
 */
import { deflateRawSync, deflateSync, gunzipSync, gzipSync, inflateRawSync, inflateSync } from "node:zlib";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { SandboxPool } from "../src/sandbox/supervisor.ts";
import { call, json, jsonFunction, startPool, uniqueKey } from "./helpers.ts";

let pool: SandboxPool;
beforeAll(async () => {
  pool = await startPool();
});
afterAll(async () => {
  await pool?.[Symbol.asyncDispose]();
});

const ROUND_TRIP = `export default { async fetch(request) {
  const url = new URL(request.url);
  const format = url.searchParams.get("format");
  const stream = url.searchParams.get("way") === "in" ? new DecompressionStream(format) : new CompressionStream(format);
  return new Response(request.body.pipeThrough(stream));
} };`;

/** Bytes that compress somewhat, like real text: 3 MiB (many input pieces and output steps). */
const sample = () => {
  const words = ["hearth", "isolate", "device", "owner", "function", "stream", "gzip", "call"];
  let state = 7;
  const parts: string[] = [];
  for (let n = 0; n < 3 * 1024 * 1024; ) {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    const w = `${words[state % words.length]}${state % 97} `;
    parts.push(w);
    n += w.length;
  }
  return Buffer.from(parts.join(""));
};

it("gzip, deflate and deflate-raw: compressed in the sandbox, read by zlib, and back", async () => {
  const data = sample();
  const codecs = {
    gzip: [gunzipSync, gzipSync],
    deflate: [inflateSync, deflateSync],
    "deflate-raw": [inflateRawSync, deflateRawSync],
  } as const;
  const key = uniqueKey("zlib");
  for (const [format, [unpack, pack]] of Object.entries(codecs)) {
    const out = await call(pool, key, ROUND_TRIP, { path: `/?format=${format}&way=out`, body: data, limits: { cpuMs: 10_000, wallMs: 20_000, responseBytes: 16 << 20 } });
    if (!out.ok) throw new Error(out.message);
    expect(out.body.byteLength).toBeLessThan(data.byteLength / 2);
    expect(Buffer.from(unpack(out.body)).equals(data)).toBe(true);
    const back = await call(pool, key, ROUND_TRIP, { path: `/?format=${format}&way=in`, body: pack(data), limits: { cpuMs: 10_000, wallMs: 20_000, responseBytes: 16 << 20 } });
    if (!back.ok) throw new Error(back.message);
    expect(Buffer.from(back.body).equals(data)).toBe(true);
  }
});

it("a stream of highly compressible data inflates in many steps, chunk by chunk", async () => {
  const zeros = gzipSync(Buffer.alloc(20 << 20));
  const out = json(
    await call(
      pool,
      uniqueKey("zlib-steps"),
      jsonFunction(`
        const reader = request.body.pipeThrough(new DecompressionStream("gzip")).getReader();
        let total = 0, chunks = 0, biggest = 0, nonZero = 0;
        for (;;) { const { done, value } = await reader.read(); if (done) break; total += value.byteLength; chunks++; biggest = Math.max(biggest, value.byteLength); if (value.some((b) => b !== 0)) nonZero++; }
        return { total, many: chunks >= 20, biggest: biggest <= 1.1 * 1024 * 1024, nonZero };
      `),
      { body: zeros, limits: { cpuMs: 10_000, wallMs: 20_000 } },
    ),
  );
  expect(out).toEqual({ total: 20 << 20, many: true, biggest: true, nonZero: 0 });
});

it("answers as the web does: bad formats, corrupt and truncated data, non-byte chunks", async () => {
  const good = gzipSync(Buffer.from("hello hearth"));
  const out = json(
    await call(
      pool,
      uniqueKey("zlib-errors"),
      jsonFunction(`
        const fails = async (f) => { try { await f(); return "resolved"; } catch (e) { return e.name; } };
        const inflate = (bytes, format = "gzip") => new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream(format))).text();
        const good = new Uint8Array(await request.arrayBuffer());
        const corrupt = good.slice(); corrupt[12] ^= 0xff;
        const cs = new CompressionStream("gzip");
        const writer = cs.writable.getWriter();
        cs.readable.getReader().read().catch(() => {});
        return { ok: await inflate(good), format: await fails(() => new CompressionStream("brotli")), none: await fails(() => new DecompressionStream()),
                 corrupt: await fails(() => inflate(corrupt)), truncated: await fails(() => inflate(good.subarray(0, good.length - 6))),
                 wrongFormat: await fails(() => inflate(good, "deflate")), string: await fails(() => writer.write("text")),
                 names: [CompressionStream.name, DecompressionStream.name, Object.prototype.toString.call(new CompressionStream("deflate"))] };
      `),
      { body: good },
    ),
  );
  expect(out).toEqual({
    ok: "hello hearth",
    format: "TypeError",
    none: "TypeError",
    corrupt: "TypeError",
    truncated: "TypeError",
    wrongFormat: "TypeError",
    string: "TypeError",
    names: ["CompressionStream", "DecompressionStream", "[object CompressionStream]"],
  });
});
