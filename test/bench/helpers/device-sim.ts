/**
 * Simulated devices for the control-plane benchmark: N devices in one
 * process, each publishing a valid Heartbeat at the real interval (spread
 * evenly over it), and answering its control subject like an agent would:
 * `{"ok":true}` to place/unplace, with the functions it holds reported in
 * its next heartbeats. Records when each control message arrived.
 *
 * Every device publishes on its own heartbeat subject and hears its own
 * control subject, as an agent does; all of them share one connection with
 * the platform's credential (which may use every device's subjects), since
 * 10,000 device connections would measure the simulator. The bench joins
 * the devices in the platform's Redis first, so their heartbeats are believed.
 */
import { Heartbeat, Subjects, type ControlMessage, type PlacedFunction } from "@hearth/protocol";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { serveHelper } from "../lib/helper.ts";
import { simDevices } from "../lib/sim-devices.ts";

interface Device {
  deviceId: string;
  /** Its own heartbeat subject, made once. */
  heartbeatSubject: string;
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
  /** The platform's credential, a `.creds` file's text. */
  creds: string;
}

let nc: NatsConnection | undefined;
let timer: NodeJS.Timeout | undefined;
const devices = new Map<string, Device>();
const placements: { app: string; fn: string; deviceId: string; at: number; type: string }[] = [];
let sent = 0;
let startedAt = 0;
let invalid = 0;

const now = () => performance.timeOrigin + performance.now();

function beat(d: Device): void {
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
  nc!.publish(d.heartbeatSubject, JSON.stringify(heartbeat));
  sent++;
}

serveHelper({
  start: async (params: StartParams) => {
    nc = await connect({ servers: params.url, name: "bench-device-sim", authenticator: credsAuthenticator(new TextEncoder().encode(params.creds)) });
    const subjects = new Subjects(params.prefix);
    for (const [i, { deviceId, ownerId }] of simDevices(params.idPrefix, params.count).entries()) {
      devices.set(deviceId, {
        deviceId,
        heartbeatSubject: subjects.heartbeat(deviceId),
        ownerId,
        location: { label: `sim-${i % 50}`, lat: ((i * 37) % 180) - 90, lon: ((i * 73) % 360) - 180 },
        functions: new Map(),
      });
    }
    // one subscription for every simulated device's control subject, control(id): `<prefix>.device.<id>.control`
    nc.subscribe(subjects.control("*"), {
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
        beat(list[cursor]!);
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
