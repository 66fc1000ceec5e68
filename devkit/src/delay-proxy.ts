/**
 * A TCP proxy on 127.0.0.1 that delays every byte by a fixed time each way:
 * real latency on one machine (these machines have no netem qdisc). Put it
 * between a device and its nats-server, or between two regions' servers,
 * and that link's round trip grows by twice the delay. Order is kept, and
 * nothing is dropped.
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface DelayProxy extends AsyncDisposable {
  readonly port: number;
  /** `nats://127.0.0.1:<port>`, for a NATS client or a route. */
  readonly url: string;
  /** The delay each way, ms; may be changed while running (applies to bytes read from then on). */
  delayMs: number;
  stop(): Promise<void>;
}

/** Forwards `from` to `to`, each chunk `delay()` ms after it arrived, in order. */
function delayedPipe(from: Socket, to: Socket, delay: () => number): void {
  const queue: { at: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    const now = Date.now();
    while (queue.length > 0 && queue[0]!.at <= now) to.write(queue.shift()!.chunk);
    if (queue.length > 0) timer = setTimeout(flush, queue[0]!.at - now);
    else if (from.readableEnded) to.end();
  };
  from.on("data", (chunk: Buffer) => {
    queue.push({ at: Date.now() + delay(), chunk });
    if (!timer) timer = setTimeout(flush, Math.max(0, queue[0]!.at - Date.now()));
  });
  from.on("end", () => {
    if (queue.length === 0 && !timer) to.end();
  });
}

export async function startDelayProxy(options: { targetPort: number; delayMs: number; targetHost?: string }): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(options.targetPort, options.targetHost ?? "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    delayedPipe(client, upstream, () => proxy.delayMs);
    delayedPipe(upstream, client, () => proxy.delayMs);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  const proxy: DelayProxy = { port, url: `nats://127.0.0.1:${port}`, delayMs: options.delayMs, stop, [Symbol.asyncDispose]: stop };
  return proxy;
}
