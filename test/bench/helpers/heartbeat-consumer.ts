/**
 * Baseline of the control plane: the least a process can do with the same
 * heartbeat stream — parse each one and keep a live table by device id.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { serveHelper } from "../lib/helper.ts";

let nc: NatsConnection | undefined;
const table = new Map<string, { heartbeat: unknown; lastSeen: number }>();
let received = 0;

serveHelper({
  start: async (params: { url: string; subject: string }) => {
    nc = await connect({ servers: params.url, name: "bench-heartbeat-consumer" });
    nc.subscribe(params.subject, {
      callback: (err, msg) => {
        if (err) return;
        const heartbeat = msg.json<{ deviceId: string }>();
        table.set(heartbeat.deviceId, { heartbeat, lastSeen: Date.now() });
        received++;
      },
    });
    await nc.flush();
    return true;
  },
  stats: () => ({ received, devices: table.size }),
});

process.once("SIGTERM", () => {
  void (nc?.close() ?? Promise.resolve()).finally(() => process.exit(0));
});
