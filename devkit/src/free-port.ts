import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * The kernel's ephemeral range: the source ports of outgoing connections
 * (and of listen(0)) come from it. A port handed out from there can be taken
 * by any client connecting out before its server binds it; on a busy test
 * run (dozens of servers, thousands of connections) that happens.
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (low && high && low > 0 && high >= low) return [low, high];
  } catch {
    // not Linux: the IANA default range
  }
  return [49152, 65535];
}

/** Ports below the ephemeral range that freePort chooses from (at most 20,000 of them, never the well-known ones). */
function quietRange(): [number, number] | undefined {
  const [low] = ephemeralRange();
  const top = low - 1;
  const bottom = Math.max(1024 + 1, top - 20_000);
  return top - bottom >= 1_000 ? [bottom, top] : undefined;
}

/** Whether `port` can be listened on at 127.0.0.1 now. */
function canListen(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(undefined));
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      const bound = typeof address === "object" && address ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

/** Ports this process handed out already: never twice (its own servers would collide). */
const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 for a server to bind. Chosen at random below
 * the kernel's ephemeral range, where no outgoing connection takes it in the
 * meantime, checked by binding it, and never the same twice in one process;
 * the kernel's pick (listen on 0) only when that range is too small.
 */
export async function freePort(): Promise<number> {
  const range = quietRange();
  if (range) {
    for (let i = 0; i < 50; i++) {
      const port = range[0] + Math.floor(Math.random() * (range[1] - range[0] + 1));
      if (handedOut.has(port)) continue;
      if ((await canListen(port)) === port) {
        handedOut.add(port);
        return port;
      }
    }
  }
  const port = await canListen(0);
  if (!port) throw new Error("no free port on 127.0.0.1");
  handedOut.add(port);
  return port;
}
