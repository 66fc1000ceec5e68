import { gunzipSync, gzipSync } from "node:zlib";
import { expect, it } from "vitest";
import { ZLIB_STEP_OUTPUT, ZlibStream } from "./compression.ts";

it("gives output in bounded steps, and only when asked for more", async () => {
  const bomb = gzipSync(Buffer.alloc(8 * ZLIB_STEP_OUTPUT));
  const stream = new ZlibStream("gzip", true);
  let step = await stream.step(bomb.subarray(0, 60_000));
  let total = step.output.byteLength;
  let steps = 1;
  while (step.more) {
    expect(step.output.byteLength).toBeLessThanOrEqual(ZLIB_STEP_OUTPUT + 64 * 1024);
    step = await stream.step(undefined);
    total += step.output.byteLength;
    steps++;
  }
  step = await stream.step(null);
  total += step.output.byteLength;
  expect(total).toBe(8 * ZLIB_STEP_OUTPUT);
  expect(steps).toBeGreaterThanOrEqual(8);
});

it("compresses across steps into one valid stream", async () => {
  const stream = new ZlibStream("gzip", false);
  const parts: Uint8Array[] = [];
  for (const piece of ["hello ", "hearth ", "again"]) parts.push((await stream.step(Buffer.from(piece))).output);
  parts.push((await stream.step(null)).output);
  expect(gunzipSync(Buffer.concat(parts)).toString()).toBe("hello hearth again");
});

it("a step waiting when its stream is closed ends (its threadpool slot with it)", async () => {
  const stream = new ZlibStream("gzip", true);
  // zlib is still inflating this on the threadpool when the stream goes away
  const pending = stream.step(gzipSync(Buffer.alloc(4 * ZLIB_STEP_OUTPUT)).subarray(0, 60_000));
  stream.close();
  await expect(pending).rejects.toThrow(TypeError);
}, 5_000);
