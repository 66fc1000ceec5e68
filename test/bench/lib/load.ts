/**
 * HTTP load with autocannon (as a library) at a fixed concurrency for a
 * fixed time. Latencies are taken from autocannon's per-response event in
 * float milliseconds (its own histogram rounds to whole ms, too coarse here).
 */
import autocannon from "autocannon";
import { percentile } from "./stats.ts";

export interface LoadResult {
  calls: number;
  /** Responses that were not 2xx, plus connection errors and timeouts. */
  failures: number;
  rps: number;
  p50: number;
  p99: number;
  wallMs: number;
}

export function httpLoad(url: string, options: { connections: number; seconds: number }): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    let failures = 0;
    const started = performance.now();
    const instance = autocannon(
      { url, connections: options.connections, duration: options.seconds, pipelining: 1, timeout: 10 },
      (error: unknown, result: autocannon.Result) => {
        if (error) return reject(error instanceof Error ? error : new Error(String(error)));
        const wallMs = performance.now() - started;
        failures += result.errors + result.timeouts;
        resolve({
          calls: latencies.length,
          failures,
          rps: (latencies.length / (result.duration * 1000 || wallMs)) * 1000,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          wallMs,
        });
      },
    );
    instance.on("response", (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
      else failures++;
    });
  });
}
