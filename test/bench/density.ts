import type { Benchmark } from "./lib/bench.ts";
export const density: Benchmark = { name: "density", run: async () => [] };
