/**
 * Baseline of the fabric: a raw NATS request/reply echo between two
 * processes. As `responder` it answers every request on a subject with the
 * bytes it got; as `requester` it runs a bounded loop of requests at a fixed
 * concurrency and reports throughput and latency.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { serveHelper } from "../lib/helper.ts";
import { percentile } from "../lib/stats.ts";

let nc: NatsConnection | undefined;

interface RunParams {
  subject: string;
  payload: string;
  concurrency: number;
  maxCalls: number;
  maxMs: number;
}

serveHelper({
  connect: async (params: { url: string }) => {
    // no async stack traces per request: the floor of our path, as the gateway connects too
    nc = await connect({ servers: params.url, name: "bench-nats-echo", noAsyncTraces: true });
    return true;
  },
  respond: (params: { subject: string }) => {
    const conn = nc!;
    conn.subscribe(params.subject, { queue: "echo", callback: (err, msg) => {
        if (!err) msg.respond(msg.data);
      },
    });
    return conn.flush().then(() => true);
  },
  run: async (params: RunParams) => {
    const conn = nc!;
    const payload = new TextEncoder().encode(params.payload);
    const latencies: number[] = [];
    let errors = 0;
    const started = performance.now();
    const until = started + params.maxMs;
    let issued = 0;
    const worker = async () => {
      while (issued < params.maxCalls && performance.now() < until) {
        issued++;
        const t = performance.now();
        try {
          await conn.request(params.subject, payload, { timeout: 5_000 });
          latencies.push(performance.now() - t);
        } catch {
          errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: params.concurrency }, worker));
    const wallMs = performance.now() - started;
    return {
      calls: latencies.length,
      errors,
      wallMs,
      rps: (latencies.length / wallMs) * 1000,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
    };
  },
});

process.once("SIGTERM", () => {
  void (nc?.close() ?? Promise.resolve()).finally(() => process.exit(0));
});
