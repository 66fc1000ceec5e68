/**
 * Baseline of the control plane: the least a process can do with the same
 * heartbeat stream — parse each one, check it names the device whose own
 * subject it came on, and keep a live table by device id. Connects with the
 * platform's credential (a `.creds` file's text), as the platform does.
 */
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { serveHelper } from "../lib/helper.ts";

let nc: NatsConnection | undefined;
const table = new Map<string, { heartbeat: unknown; lastSeen: number }>();
let received = 0;
let mismatched = 0;

serveHelper({
  start: async (params: { url: string; subject: string; creds: string }) => {
    nc = await connect({ servers: params.url, name: "bench-heartbeat-consumer", authenticator: credsAuthenticator(new TextEncoder().encode(params.creds)) });
    nc.subscribe(params.subject, {
      callback: (err, msg) => {
        if (err) return;
        const heartbeat = msg.json<{ deviceId: string }>();
        // the device id is the subject's last token; a heartbeat naming another device is not believed
        if (msg.subject.slice(msg.subject.lastIndexOf(".") + 1) !== heartbeat.deviceId) {
          mismatched++;
          return;
        }
        table.set(heartbeat.deviceId, { heartbeat, lastSeen: Date.now() });
        received++;
      },
    });
    await nc.flush();
    return true;
  },
  stats: () => ({ received, devices: table.size, mismatched }),
});

process.once("SIGTERM", () => {
  void (nc?.close() ?? Promise.resolve()).finally(() => process.exit(0));
});
