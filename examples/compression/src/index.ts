/**
 * examples/compression — CompressionStream and DecompressionStream as a
 * Worker uses them: a report generated row by row and gzip-encoded as it
 * streams out, and uploads (gzip, deflate or deflate-raw) inflated, counted
 * and hashed as they stream in, never held whole.
 *
 *   curl --compressed "$URL/report?rows=1000"                  1000 lines of NDJSON, sent gzip-encoded
 *   gzip -c file | curl --data-binary @- "$URL/inflate?format=gzip"  {"bytes":...,"lines":...,"sha256":"..."}
 *   curl --data-binary @file "$URL/deflate-raw" > file.raw
 */
const FORMATS = ["gzip", "deflate", "deflate-raw"] as const;
type Format = (typeof FORMATS)[number];
const isFormat = (f: string | null): f is Format => f !== null && (FORMATS as readonly string[]).includes(f);
// Workers' crypto.DigestStream and byte-typed (de)compression streams, which the DOM typings lack
type DigestStream = WritableStream<ArrayBufferView> & { readonly digest: Promise<ArrayBuffer> };
const { DigestStream } = crypto as unknown as { DigestStream: new (algorithm: string) => DigestStream };
const compress = (format: Format) => new CompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>;
const decompress = (format: Format) => new DecompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>;

function report(rows: number): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let row = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      // a few rows a pull: the stream is made as the client reads it
      for (let i = 0; i < 100 && row < rows; i++, row++) {
        controller.enqueue(encoder.encode(`${JSON.stringify({ row, day: new Date(Date.UTC(2026, 0, 1 + (row % 365))).toISOString().slice(0, 10), value: (row * 7919) % 1000 })}\n`));
      }
      if (row >= rows) controller.close();
    },
  });
}

async function inflate(body: ReadableStream<Uint8Array>, format: Format) {
  const hash = new DigestStream("SHA-256");
  const writer = hash.getWriter();
  let bytes = 0;
  let lines = 0;
  const reader = body.pipeThrough(decompress(format)).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    for (const b of value) if (b === 10) lines++;
    await writer.write(value);
  }
  await writer.close();
  const digest = [...new Uint8Array(await hash.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return { bytes, lines, sha256: digest };
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/report") {
      const rows = Math.min(Number(url.searchParams.get("rows") ?? "100") || 0, 100_000);
      return new Response(report(rows).pipeThrough(compress("gzip")), {
        headers: { "content-type": "application/x-ndjson", "content-encoding": "gzip" },
      });
    }
    if (url.pathname === "/inflate" && request.method === "POST" && request.body) {
      const format = url.searchParams.get("format");
      if (!isFormat(format)) return Response.json({ error: `format must be one of ${FORMATS.join(", ")}` }, { status: 400 });
      try {
        return Response.json(await inflate(request.body, format));
      } catch (error) {
        return Response.json({ error: (error as Error).message }, { status: 400 });
      }
    }
    if (url.pathname === "/deflate-raw" && request.method === "POST" && request.body) {
      return new Response(request.body.pipeThrough(compress("deflate-raw")), { headers: { "content-type": "application/octet-stream" } });
    }
    return Response.json({ error: "not found" }, { status: 404 });
  },
};
