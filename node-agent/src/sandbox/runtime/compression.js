// CompressionStream and DecompressionStream (gzip, deflate, deflate-raw) inside
// the isolate. Part of the runtime's closure (see worker.ts); runs on a
// function's first touch of either.
//
// Node's zlib does the work on the host (compression.ts), one stream per web
// stream, by handle. Input goes over in pieces of at most MAX_ZLIB_INPUT
// bytes; output comes back in bounded steps, and the next step is asked for
// only once this one was enqueued, so a decompression bomb is never more
// than one step ahead on the host: what it inflates lands in this isolate,
// under the call's memory and CPU limits.
function makeCompressionStreams() {
  const { TransformStream } = streams();
  const FORMATS = { __proto__: null, gzip: true, deflate: true, "deflate-raw": true };

  const make = (decompress) => {
    const what = decompress ? "DecompressionStream" : "CompressionStream";
    return class {
      #stream;
      constructor(format) {
        if (arguments.length < 1) throw new TypeError("Failed to construct '" + what + "': 1 argument required, but only 0 present.");
        const name = boundedString(format, 32);
        if (FORMATS[name] !== true) throw new TypeError("Failed to construct '" + what + "': Unsupported compression format: '" + name + "'");
        const handle = hostHandles("zlib-open", name, decompress);
        const pump = async (controller, input) => {
          let step = (await hostJob("zlib", { __proto__: null, handle, input })).value;
          for (;;) {
            if (TypedArrayPrototypeGetByteLength(step.output) > 0) controller.enqueue(step.output);
            if (step.more !== true) return;
            step = (await hostJob("zlib", { __proto__: null, handle })).value;
          }
        };
        const transformer = {
          async transform(chunk, controller) {
            let bytes;
            try { bytes = asBytes(chunk); } catch { throw new TypeError(what + ": chunks must be ArrayBuffer or ArrayBufferView"); }
            const length = TypedArrayPrototypeGetByteLength(bytes);
            // copied now: the writer may reuse its buffer once write() returned
            const own = new Uint8Array(length);
            TypedArrayPrototypeSet(own, bytes);
            for (let at = 0; at < length; at += MAX_ZLIB_INPUT) {
              const end = MathMin(length, at + MAX_ZLIB_INPUT);
              const piece = new Uint8Array(end - at);
              TypedArrayPrototypeSet(piece, new Uint8Array(TypedArrayPrototypeGetBuffer(own), at, end - at));
              await pump(controller, piece);
            }
          },
          async flush(controller) {
            try { await pump(controller, null); } finally { hostHandles("zlib-close", handle); }
          },
        };
        this.#stream = new TransformStream(transformer);
        // the transformer lives as long as the stream is in use; once it is unreachable the host may drop its zlib
        registerHandle(transformer, handle);
      }
      get readable() { return this.#stream.readable; }
      get writable() { return this.#stream.writable; }
      get [Symbol.toStringTag]() { return what; }
    };
  };
  const CompressionStream = make(false);
  const DecompressionStream = make(true);
  ReflectDefineProperty(CompressionStream, "name", { __proto__: null, value: "CompressionStream" });
  ReflectDefineProperty(DecompressionStream, "name", { __proto__: null, value: "DecompressionStream" });
  return { CompressionStream, DecompressionStream };
}
