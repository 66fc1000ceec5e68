import type { Benchmark } from "./lib/bench.ts";
export const coldStart: Benchmark = { name: "cold-start", run: async () => [] };
