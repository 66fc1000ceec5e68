/**
 * The scheduler: a live table of devices from their heartbeats, and a
 * reconcile loop that keeps each function placed on enough live devices,
 * spread over owners, re-placing within seconds when a device goes silent.
 *
 * Every platform process records heartbeats (one of them per heartbeat, by
 * queue group); one process at a time, the holder of a Redis lease, places.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  ControlReply,
  Heartbeat,
  HearthError,
  type ControlMessage,
  type FunctionRecord,
  type Subjects,
} from "@hearth/protocol";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "../log/index.ts";
import type { DeviceEntry, Placement, Store } from "../state/index.ts";

export interface SchedulerOptions {
  store: Store;
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** A device silent for this long is dead and its functions are re-placed. */
  deadAfterMs?: number;
  tickMs?: number;
  /** How long a device may take to fetch, verify and load a bundle. */
  placeTimeoutMs?: number;
}

const PLATFORM_QUEUE = "platform";
const LEASE_NAME = "scheduler";

export class Scheduler implements AsyncDisposable {
  readonly deadAfterMs: number;
  private readonly store: Store;
  private readonly nc: NatsConnection;
  private readonly subjects: Subjects;
  private readonly log: Logger;
  private readonly tickMs: number;
  private readonly placeTimeoutMs: number;
  private readonly holder = randomUUID();
  private heartbeats?: Subscription;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  /** Devices this process has heard from: a new one triggers a pass at once. */
  private readonly known = new Set<string>();

  constructor(options: SchedulerOptions) {
    this.store = options.store;
    this.nc = options.nc;
    this.subjects = options.subjects;
    this.log = options.log;
    this.deadAfterMs = options.deadAfterMs ?? 3_500;
    this.tickMs = options.tickMs ?? 1_000;
    this.placeTimeoutMs = options.placeTimeoutMs ?? 15_000;
  }

  start(): void {
    this.heartbeats = this.nc.subscribe(this.subjects.heartbeat, {
      queue: PLATFORM_QUEUE,
      callback: (err, msg) => {
        if (err) return;
        let data: unknown;
        try {
          data = msg.json();
        } catch {
          this.log.warn({ subject: msg.subject }, "dropped a heartbeat that is not JSON");
          return;
        }
        const parsed = Heartbeat.safeParse(data);
        if (!parsed.success) {
          this.log.warn({ issues: parsed.error.issues.slice(0, 3) }, "dropped an invalid heartbeat");
          return;
        }
        const isNew = !this.known.has(parsed.data.deviceId);
        this.known.add(parsed.data.deviceId);
        this.store.recordHeartbeat(parsed.data, Date.now()).then(
          () => isNew && this.kick(),
          (error: unknown) => this.log.error({ err: error }, "could not record a heartbeat"),
        );
      },
    });
    this.timer = setInterval(() => this.kick(), this.tickMs);
    this.kick();
  }

  /** Runs a reconcile pass now (or right after the one under way). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.reconcile()
      .catch((error: unknown) => this.log.error({ err: error }, "reconcile failed"))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Waits for the reconcile pass under way, if any. */
  async settle(): Promise<void> {
    while (this.running) await this.running;
  }

  async liveDevices(now = Date.now()): Promise<DeviceEntry[]> {
    return this.store.devicesSeenSince(now - this.deadAfterMs);
  }

  private async reconcile(): Promise<void> {
    if (!(await this.store.lease(LEASE_NAME, this.holder, this.tickMs * 5))) return;
    const now = Date.now();
    await this.store.pruneDevices(now - 10 * 60_000);
    const live = new Map((await this.liveDevices(now)).map((d) => [d.heartbeat.deviceId, d]));
    const functions = await this.store.listFunctions();
    const wanted = new Set<string>();
    await Promise.all(
      functions.map(async (record) => {
        const placement = await this.reconcileFunction(record, live);
        for (const id of Object.keys(placement.devices)) wanted.add(`${id} ${record.app}/${record.name}`);
      }),
    );
    // A device serving a function that is no longer placed there (deleted, or scaled in) is told to stop.
    const stale: Promise<unknown>[] = [];
    for (const [id, device] of live) {
      for (const f of device.heartbeat.functions) {
        if (!wanted.has(`${id} ${f.app}/${f.fn}`)) stale.push(this.send(id, { type: "unplace", app: f.app, fn: f.fn }).catch(() => undefined));
      }
    }
    await Promise.all(stale);
  }

  private async reconcileFunction(record: FunctionRecord, live: Map<string, DeviceEntry>): Promise<Placement> {
    const { app, name } = record;
    const placement = await this.store.getPlacement(app, name);
    const next: Placement = { devices: {} };
    for (const [id, placed] of Object.entries(placement.devices)) {
      const device = live.get(id);
      if (!device) continue; // silent: re-placed below
      const reported = device.heartbeat.functions.some((f) => f.app === app && f.fn === name);
      // A device that restarted lost its functions; once a heartbeat after the placement says so, place again.
      if (!reported && device.heartbeat.sentAt > placed.placedAt + 500) continue;
      next.devices[id] = placed;
    }

    const place = async (id: string): Promise<boolean> => {
      try {
        await this.send(id, { type: "place", app, fn: name, version: record.version, limits: record.limits });
        next.devices[id] = { version: record.version, placedAt: Date.now() };
        return true;
      } catch (error) {
        this.log.warn({ deviceId: id, app, fn: name, err: error }, "placement failed");
        return false;
      }
    };

    // Devices on an older version get the new one.
    const outdated = Object.entries(next.devices).filter(([, p]) => p.version !== record.version);
    await Promise.all(
      outdated.map(async ([id]) => {
        if (!(await place(id))) delete next.devices[id];
      }),
    );

    const want = Math.min(record.replicas, live.size);
    let missing = want - Object.keys(next.devices).length;
    if (missing > 0) {
      const candidates = rankCandidates(record, [...live.values()].filter((d) => !next.devices[d.heartbeat.deviceId]), next, live);
      for (const candidate of candidates) {
        if (missing <= 0) break;
        if (await place(candidate.heartbeat.deviceId)) missing--;
      }
    } else if (missing < 0) {
      const extra = Object.keys(next.devices).slice(want);
      for (const id of extra) {
        delete next.devices[id];
        await this.send(id, { type: "unplace", app, fn: name }).catch(() => undefined);
      }
    }

    if (JSON.stringify(next) !== JSON.stringify(placement)) {
      await this.store.setPlacement(app, name, next);
      this.log.info({ app, fn: name, devices: Object.keys(next.devices) }, "placement changed");
    }
    return next;
  }

  /** Sends a control message to a device and waits for its acknowledgement. */
  private async send(deviceId: string, message: ControlMessage): Promise<void> {
    const reply = await this.nc.request(this.subjects.control(deviceId), JSON.stringify(message), {
      timeout: this.placeTimeoutMs,
    });
    const parsed = ControlReply.safeParse(reply.json());
    if (!parsed.success) throw new HearthError("ERR_BAD_MESSAGE", `device ${deviceId} sent an invalid control reply`);
    if ("error" in parsed.data) throw HearthError.fromWire(parsed.data.error);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.settle();
    if (this.heartbeats && !this.nc.isClosed()) this.heartbeats.unsubscribe();
  }
}

/**
 * Orders candidate devices for one function: owners not yet serving it first
 * (spread), then more free cores, fewer calls in flight, and a stable
 * per-function shuffle so functions don't all pile on the same device.
 */
export function rankCandidates(
  record: FunctionRecord,
  candidates: DeviceEntry[],
  placement: Placement,
  live: Map<string, DeviceEntry>,
): DeviceEntry[] {
  const owners = new Set(
    Object.keys(placement.devices).flatMap((id) => {
      const d = live.get(id);
      return d ? [d.heartbeat.ownerId] : [];
    }),
  );
  const spread = (d: DeviceEntry) => createHash("sha1").update(`${record.app}/${record.name}/${d.heartbeat.deviceId}`).digest().readUInt32BE(0);
  return [...candidates].sort(
    (a, b) =>
      Number(owners.has(a.heartbeat.ownerId)) - Number(owners.has(b.heartbeat.ownerId)) ||
      b.heartbeat.freeCores - a.heartbeat.freeCores ||
      a.heartbeat.activeCalls - b.heartbeat.activeCalls ||
      spread(a) - spread(b),
  );
}
