/**
 * The host side of CompressionStream and DecompressionStream: one Node zlib
 * stream per web stream, in the isolate's handle table. The isolate pushes
 * input in small pieces and pulls output in bounded steps: zlib stops
 * producing when a step's output is full (Node's zlib honours backpressure)
 * and goes on only when the isolate asks for more, so a decompression bomb
 * never has more than one step of output on the host. What it costs is the
 * call's: its CPU (the time its steps run) and its memory (what the isolate
 * keeps of the output).
 */
import zlib from "node:zlib";
import { z } from "zod";
import { HANDLE } from "./handles.ts";

/** Input the isolate hands over at once; output one step gives back at most (about: plus one zlib chunk). */
export const MAX_ZLIB_INPUT = 64 * 1024;
export const ZLIB_STEP_OUTPUT = 1024 * 1024;
/** Host memory a (de)compressor holds, roughly (window, state, buffers): what the handle table counts it as. */
export const ZLIB_COST = 384 * 1024;

export const ZlibFormat = z.enum(["gzip", "deflate", "deflate-raw"]);
export type ZlibFormat = z.infer<typeof ZlibFormat>;

export const ZlibRequest = z.strictObject({
  handle: z.string().regex(HANDLE),
  /** Input to take (bytes), the end of the input (null), or only more of the output (omitted). */
  input: z
    .instanceof(Uint8Array)
    .refine((b) => b.byteLength <= MAX_ZLIB_INPUT)
    .nullable()
    .optional(),
});
export type ZlibRequest = z.infer<typeof ZlibRequest>;

export interface ZlibStep {
  output: Uint8Array;
  /** More output is ready for this input: ask again (with no input) before giving more. */
  more: boolean;
}

function create(format: ZlibFormat, decompress: boolean): zlib.Gzip | zlib.Gunzip | zlib.Deflate | zlib.Inflate | zlib.DeflateRaw | zlib.InflateRaw {
  switch (format) {
    case "gzip":
      return decompress ? zlib.createGunzip() : zlib.createGzip();
    case "deflate":
      return decompress ? zlib.createInflate() : zlib.createDeflate();
    case "deflate-raw":
      return decompress ? zlib.createInflateRaw() : zlib.createDeflateRaw();
  }
}

export class ZlibStream {
  private readonly stream: ReturnType<typeof create>;
  private readonly decompress: boolean;
  private pendingWrite = false;
  private ending = false;
  private ended = false;
  private failure: Error | undefined;
  private closed = false;
  private wake: (() => void) | undefined;
  private busy = false;

  constructor(format: ZlibFormat, decompress: boolean) {
    this.decompress = decompress;
    this.stream = create(format, decompress);
    const wake = () => {
      const w = this.wake;
      this.wake = undefined;
      w?.();
    };
    // paused mode: output is taken with read(), and zlib waits when it is not taken
    this.stream.on("readable", wake);
    this.stream.on("end", () => {
      this.ended = true;
      wake();
    });
    this.stream.on("error", (error) => {
      this.failure = error;
      wake();
    });
    // destroyed (its isolate went away) while a step waits: the step ends, and with it the job's threadpool slot
    this.stream.on("close", () => {
      this.closed = true;
      wake();
    });
  }

  /** Gives input (or the end of it) and takes output, at most about ZLIB_STEP_OUTPUT bytes. */
  async step(input: Uint8Array | null | undefined): Promise<ZlibStep> {
    if (this.busy) throw new TypeError("a compression stream step is already running");
    this.busy = true;
    try {
      if (this.failure) throw this.error();
      if (input !== undefined) {
        if (this.pendingWrite || this.ending) throw new TypeError("the compression stream is not ready for more input");
        if (input === null) {
          this.ending = true;
          this.stream.end();
        } else if (input.byteLength > 0) {
          this.pendingWrite = true;
          this.stream.write(input, () => {
            this.pendingWrite = false;
            this.wake?.();
          });
        }
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for (;;) {
        let chunk: Buffer | null;
        while (size < ZLIB_STEP_OUTPUT && (chunk = this.stream.read() as Buffer | null) !== null) {
          chunks.push(chunk);
          size += chunk.byteLength;
        }
        if (this.failure) throw this.error();
        if (this.closed && !this.ended) throw new TypeError("the compression stream was closed");
        const drained = this.stream.readableLength === 0;
        if (size >= ZLIB_STEP_OUTPUT) return { output: join(chunks, size), more: true };
        if (this.ending ? this.ended : !this.pendingWrite && drained) return { output: join(chunks, size), more: false };
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    } finally {
      this.busy = false;
    }
  }

  private error(): TypeError {
    const what = this.decompress ? "DecompressionStream" : "CompressionStream";
    const why = this.failure?.message ?? "failed";
    return new TypeError(`${what}: ${this.decompress ? "the data is not valid compressed data" : "compression failed"} (${why})`);
  }

  close(): void {
    this.stream.destroy();
  }
}

function join(chunks: Buffer[], size: number): Uint8Array {
  if (chunks.length === 1) return new Uint8Array(chunks[0]!.buffer, chunks[0]!.byteOffset, size);
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
