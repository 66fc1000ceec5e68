import type { Benchmark } from "./lib/bench.ts";
export const controlPlane: Benchmark = { name: "control-plane", run: async () => [] };
