/**
 * Simulated devices for the control-plane benchmark: N devices in one
 * process, each publishing a valid Heartbeat at the real interval (spread
 * evenly over it), and answering its control subject like an agent would:
 * `{"ok":true}` to place/unplace, with the functions it holds reported in
 * its next heartbeats. Records when each control message arrived.
 */
import { Heartbeat, type ControlMessage, type PlacedFunction } from "@hearth/protocol";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { serveHelper } from "../lib/helper.ts";

interface Device {
  deviceId: string;
  ownerId: string;
  location: { label: string; lat: number; lon: number };
  functions: Map<string, PlacedFunction>;
}

interface StartParams {
  url: string;
  prefix: string;
  count: number;
  intervalMs: number;
  idPrefix: string;
}

let nc: NatsConnection | undefined;
let timer: NodeJS.Timeout | undefined;
const devices = new Map<string, Device>();
const placements: { app: string; fn: string; deviceId: string; at: number; type: string }[] = [];
let sent = 0;
let startedAt = 0;
let invalid = 0;

const now = () => performance.timeOrigin + performance.now();

function beat(d: Device, prefix: string): void {
  const heartbeat: Heartbeat = {
    deviceId: d.deviceId,
    ownerId: d.ownerId,
    region: "local",
    location: d.location,
    cores: 4,
    memoryMb: 4096,
    activeCalls: 0,
    freeCores: 4,
    functions: [...d.functions.values()],
    agentVersion: "sim-0.1.0",
    sentAt: Date.now(),
  };
  nc!.publish(`${prefix}.heartbeat`, JSON.stringify(heartbeat));
  sent++;
}

serveHelper({
  start: async (params: StartParams) => {
    nc = await connect({ servers: params.url, name: "bench-device-sim" });
    for (let i = 0; i < params.count; i++) {
      const deviceId = `${params.idPrefix}-${i}`;
      devices.set(deviceId, {
        deviceId,
        ownerId: `owner-${i % 997}`,
        location: { label: `sim-${i % 50}`, lat: ((i * 37) % 180) - 90, lon: ((i * 73) % 360) - 180 },
        functions: new Map(),
      });
    }
    // one subscription for every simulated device's control subject
    nc.subscribe(`${params.prefix}.device.*.control`, {
      callback: (err, msg) => {
        if (err) return;
        const deviceId = msg.subject.split(".").at(-2)!;
        const device = devices.get(deviceId);
        let message: ControlMessage;
        try {
          message = msg.json<ControlMessage>();
        } catch {
          invalid++;
          return;
        }
        if (!device) return; // not one of ours: no answer, like a gone device
        if (message.type === "place" || message.type === "unplace") {
          placements.push({ app: message.app, fn: message.fn, deviceId, at: now(), type: message.type });
          const id = `${message.app}/${message.fn}`;
          if (message.type === "place") device.functions.set(id, { app: message.app, fn: message.fn, version: message.version });
          else device.functions.delete(id);
        }
        // place, unplace and ping (liveness probe) are all acknowledged like an agent does
        msg.respond(JSON.stringify({ ok: true }));
      },
    });
    await nc.flush();
    // Paced by the clock: by time t, t/interval of a round of heartbeats went out, whatever the timer's jitter.
    const list = [...devices.values()];
    startedAt = performance.now();
    let cursor = 0;
    timer = setInterval(() => {
      const due = Math.floor(((performance.now() - startedAt) / params.intervalMs) * list.length);
      let budget = list.length; // never more than one round per tick
      while (sent < due && budget-- > 0) {
        beat(list[cursor]!, params.prefix);
        cursor = (cursor + 1) % list.length;
      }
    }, 5);
    return true;
  },
  stats: () => ({ sent, elapsedMs: performance.now() - startedAt, placements: placements.length, invalid }),
  /** Control messages received since `from` (an index into the log). */
  placements: (params: { from: number }) => placements.slice(params.from),
  stop: async () => {
    clearInterval(timer);
    await nc?.drain();
    return true;
  },
});

process.once("SIGTERM", () => {
  clearInterval(timer);
  void (nc?.close() ?? Promise.resolve()).finally(() => process.exit(0));
});
