/**
 * HTTP load with autocannon (as a library) at a fixed concurrency, for a
 * fixed time or a fixed number of calls (bounded in time too). Latencies are
 * taken from autocannon's per-response event in float milliseconds (its own
 * histogram rounds to whole ms, too coarse here).
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

export interface LoadOptions {
  connections: number;
  /** How long to run; with `calls`, the bound on time: the run stops there with fewer calls. */
  seconds: number;
  /** Run until this many requests were sent instead of for `seconds`. */
  calls?: number;
  /** Told the number of 2xx answers so far, after each one. */
  onAnswer?: (answered: number) => void;
}

export function httpLoad(url: string, options: LoadOptions): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    let failures = 0;
    let settled = false;
    /** Connection errors and timeouts seen so far (autocannon's result has them too, when it gets to call back). */
    let reqErrors = 0;
    const started = performance.now();
    const instance = autocannon(
      {
        url,
        connections: options.connections,
        pipelining: 1,
        timeout: 10,
        ...(options.calls === undefined ? { duration: options.seconds } : { amount: options.calls }),
      },
      (error: unknown, result: autocannon.Result) => {
        clearTimeout(bound);
        if (settled) return;
        if (error) return reject(error instanceof Error ? error : new Error(String(error)));
        finish(result.errors + result.timeouts, result.duration * 1000);
      },
    );
    const finish = (errors: number, autocannonMs?: number) => {
      settled = true;
      const wallMs = performance.now() - started;
      resolve({
        calls: latencies.length,
        failures: failures + errors,
        rps: (latencies.length / (options.calls === undefined ? autocannonMs || wallMs : wallMs)) * 1000,
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        wallMs,
      });
    };
    // a fixed count still ends in bounded time: stop() ends the run and calls back with what was done
    const bound = options.calls === undefined ? undefined : setTimeout(() => instance.stop(), options.seconds * 1000);
    instance.on("response", (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      if (statusCode >= 200 && statusCode < 300) {
        latencies.push(responseTime);
        options.onAnswer?.(latencies.length);
      } else failures++;
      // a fixed count ends at its last answer: autocannon itself would notice only at its next whole second,
      // and that idle tail would count in the run's time and in the CPU measured over it
      if (options.calls !== undefined && !settled && latencies.length + failures + reqErrors >= options.calls) {
        clearTimeout(bound);
        instance.stop();
        finish(reqErrors);
      }
    });
    instance.on("reqError", () => reqErrors++);
  });
}
