/**
 * Baseline of the fabric: a raw NATS request/reply echo between two
 * processes. As `responder` it answers every request on a subject with the
 * bytes it got; as `requester` it runs a bounded loop of requests at a fixed
 * concurrency and reports throughput and latency. Connects anonymously, or
 * with a credential (a `.creds` file's text) and the inbox prefix it allows.
 */
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
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

interface ConnectParams {
  url: string;
  /** A `.creds` file's text; anonymous when omitted. */
  creds?: string;
  /** Where this connection's request replies arrive (a device may use only its own). */
  inboxPrefix?: string;
}

serveHelper({
  connect: async (params: ConnectParams) => {
    // no async stack traces per request: the floor of our path, as the gateway connects too
    nc = await connect({
      servers: params.url,
      name: "bench-nats-echo",
      noAsyncTraces: true,
      ...(params.creds ? { authenticator: credsAuthenticator(new TextEncoder().encode(params.creds)) } : {}),
      ...(params.inboxPrefix ? { inboxPrefix: params.inboxPrefix } : {}),
    });
    return true;
  },
  /** A plain subscription, as an agent has on its own invocation subject (the gateway picks the device). */
  respond: (params: { subject: string }) => {
    const conn = nc!;
    conn.subscribe(params.subject, {
      callback: (err, msg) => {
        if (!err) msg.respond(msg.data);
      },
    });
    return conn.flush().then(() => true);
  },
  run: async (params: RunParams) => {
    const conn = nc!;
    const payload = new TextEncoder().encode(params.payload);
    const latencies: number[] = [];
    let failures = 0;
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
          failures++;
        }
      }
    };
    await Promise.all(Array.from({ length: params.concurrency }, worker));
    const wallMs = performance.now() - started;
    return {
      calls: latencies.length,
      failures,
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
