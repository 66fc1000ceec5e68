/**
 * Baselines for the sandbox, with isolated-vm in this process (started with
 * --no-node-snapshot): the cost of a bare isolate (new Isolate + Context +
 * a tiny script), and the resident memory a bare idle isolate holds.
 */
import { readFileSync } from "node:fs";
import ivm from "isolated-vm";
import { serveHelper } from "../lib/helper.ts";
import { percentile } from "../lib/stats.ts";

function rss(): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

const kept: ivm.Isolate[] = [];

serveHelper({
  /** Times `count` bare cold starts, each isolate disposed after. */
  coldStarts: async (params: { count: number }) => {
    const times: number[] = [];
    for (let i = 0; i < params.count; i++) {
      const t = performance.now();
      const isolate = new ivm.Isolate({ memoryLimit: 64 });
      const context = await isolate.createContext();
      const script = await isolate.compileScript(`const n = ${i}; JSON.stringify({ n, ok: true })`);
      await script.run(context, { timeout: 1_000 });
      times.push(performance.now() - t);
      isolate.dispose();
    }
    return { p50: percentile(times, 50), p99: percentile(times, 99) };
  },
  /** Resident memory of this process before and after keeping `count` bare idle isolates alive. */
  density: async (params: { count: number }) => {
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 200));
    const before = rss();
    for (let i = 0; i < params.count; i++) {
      const isolate = new ivm.Isolate({ memoryLimit: 64 });
      const context = await isolate.createContext();
      await (await isolate.compileScript(`globalThis.n = ${i};`)).run(context, { timeout: 1_000 });
      kept.push(isolate);
    }
    await new Promise((r) => setTimeout(r, 500));
    return { before, after: rss() };
  },
});
