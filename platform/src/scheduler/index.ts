/**
 * The scheduler: a live table of devices from their heartbeats, and a
 * reconcile loop that keeps each function placed on enough live devices,
 * spread over owners, re-placing within seconds when a device goes silent.
 *
 * Every platform process hears every heartbeat and keeps the live table in
 * its own memory (no Redis write per heartbeat: 10,000 devices send 10,000 a
 * second); one process at a time, the holder of a Redis lease, places, and
 * placements live in Redis. See docs/architecture.md ("Placement").
 */
import { createHash, randomUUID } from "node:crypto";
import {
  ControlReply,
  DEVICE_MESSAGE_BYTES,
  Heartbeat,
  HearthError,
  type ControlMessage,
  type FunctionRecord,
  type Subjects,
} from "@hearth/protocol";
import { RequestError, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { Logger } from "../log/index.ts";
import { mayServe, type DeviceLookup, type NetworkEligibility } from "../identity/index.ts";
import type { DeviceEntry, Placement, Store } from "../state/index.ts";
import { LoadBoard } from "./load.ts";

export interface SchedulerOptions {
  store: Store;
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** A device silent for this long is dead and its functions are re-placed. */
  deadAfterMs?: number;
  tickMs?: number;
  /** A function scales back in no sooner than this after it last scaled out (default 30 s; tests shorten it). */
  scaleInAfterMs?: number;
  /** How long a device may take to fetch, verify and load a bundle. */
  placeTimeoutMs?: number;
  /** Joined devices: a heartbeat counts only for a joined, unrevoked device, with owner, region and size from its join record. */
  directory: { lookup(deviceId: string): DeviceLookup };
  /** Told once a device took a placement: it is then a member of the app's network (docs/security.md). */
  onPlaced?: (deviceId: string, app: string) => void;
  /** Which devices may serve an app (its invited members; the public pool unless it is private): default, every device. */
  eligibility?: (app: string) => Promise<NetworkEligibility>;
}

const LEASE_NAME = "scheduler";
/** A device silent this long is forgotten (it no longer shows in the device list). */
const FORGET_AFTER_MS = 10 * 60_000;
/** After a failed placement, the same device is not asked for the same version again for this long. */
const PLACE_RETRY_MS = 10_000;
const SUSPECT_DEBOUNCE_MS = 500;
/**
 * A device is told to stop serving one function at most once in this long:
 * an honest device stops at once and its next heartbeat says so, while one
 * that keeps claiming (thousands of made-up functions) must not buy a
 * control request per claim per placement pass.
 */
const UNPLACE_REPEAT_MS = 5_000;
/** A function scales out when its calls in flight pass this share of its devices' donated cores. */
const SCALE_UTILIZATION = 0.7;
/** A function scales back in no sooner than this after it last scaled out. */
const SCALE_IN_AFTER_MS = 30_000;
/** A function's replicas move towards its demand at most one every this long. */
const MOVE_EVERY_MS = 5_000;
const PROBE_TIMEOUT_MS = 1_000;
/** A device whose connection closed counts as gone when it has not answered for this long since. */
const GONE_AFTER_MS = 2_000;

export class Scheduler implements AsyncDisposable {
  readonly deadAfterMs: number;
  private readonly store: Store;
  private readonly nc: NatsConnection;
  private readonly subjects: Subjects;
  private readonly log: Logger;
  private readonly tickMs: number;
  private readonly scaleInAfterMs: number;
  private readonly placeTimeoutMs: number;
  private readonly directory: SchedulerOptions["directory"];
  private readonly onPlaced: SchedulerOptions["onPlaced"];
  private readonly eligibility: SchedulerOptions["eligibility"];
  private lastRefusedLog = 0;
  private readonly holder = randomUUID();
  private heartbeats?: Subscription;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  /** Rejected when the scheduler stops: requests to devices under way stop waiting. */
  private readonly stopping: { promise: Promise<never>; reject: (error: Error) => void } = (() => {
    let reject!: (error: Error) => void;
    const promise = new Promise<never>((_, r) => {
      reject = r;
    });
    return { promise, reject };
  })();
  /** Per-function reconcile work under way. */
  private readonly working = new Map<string, Promise<void>>();
  /** `<device> <app>/<fn>@<version>` → time before which that placement is not tried again. */
  private readonly failed = new Map<string, number>();
  /** Devices a probe found gone, with when. */
  private readonly dead = new Map<string, number>();
  /** `<device> <app>/<fn>` → when it was last told to stop serving it. */
  private readonly unplaced = new Map<string, number>();
  /** What the gateways report of each function's calls (scaling). */
  private load?: LoadBoard;
  /** Functions whose replica was last moved towards their demand, with when. */
  private readonly moved = new Map<string, number>();
  /** Functions scaled out, with their highest count lately and when. */
  private readonly scaled = new Map<string, { count: number; at: number }>();
  /** Devices being asked whether they are still there after a connection of theirs closed. */
  private readonly checking = new Map<string, Promise<boolean>>();
  private readonly goneListeners: ((deviceId: string) => void)[] = [];
  private readonly placedListeners: ((app: string, fn: string) => void)[] = [];
  /** Functions probed lately, with when. */
  private readonly suspected = new Map<string, number>();
  /** Devices whose last heartbeat said they are paused (and why) or draining, with when. */
  private readonly away = new Map<string, { state: "paused" | "draining"; pausedFor: string[]; at: number }>();
  /** The live table: every device this process heard from, with when. */
  private readonly devices = new Map<string, DeviceEntry>();
  /** When this process started hearing heartbeats (until deadAfterMs later, a device not heard yet may still be alive). */
  private listeningSince = Number.POSITIVE_INFINITY;

  constructor(options: SchedulerOptions) {
    this.store = options.store;
    this.nc = options.nc;
    this.subjects = options.subjects;
    this.log = options.log;
    this.deadAfterMs = options.deadAfterMs ?? 3_500;
    this.tickMs = options.tickMs ?? 1_000;
    this.scaleInAfterMs = options.scaleInAfterMs ?? SCALE_IN_AFTER_MS;
    this.placeTimeoutMs = options.placeTimeoutMs ?? 10_000;
    this.directory = options.directory;
    this.onPlaced = options.onPlaced;
    this.eligibility = options.eligibility;
    this.stopping.promise.catch(() => undefined);
  }

  start(): void {
    this.listeningSince = Date.now();
    this.load = new LoadBoard(this.nc, this.subjects, () => this.kick());
    // no queue group: every platform process keeps the whole table
    this.heartbeats = this.nc.subscribe(this.subjects.heartbeats, {
      callback: (err, msg) => {
        if (!err) this.onHeartbeat(msg.subject, msg.data);
      },
    });
    this.timer = setInterval(() => this.kick(), this.tickMs);
    this.kick();
  }

  /**
   * A heartbeat is believed only for the device whose own subject it came on
   * (nats-server lets only that device's credential publish there), only
   * while the device is joined and not revoked, and only for what it may
   * claim: its load and functions. Owner and region come from its join
   * record, and its cores and memory are capped by what it joined with.
   */
  private onHeartbeat(subject: string, data: Uint8Array, retried = false): void {
    const deviceId = this.subjects.deviceOf(subject, "hb");
    if (!deviceId) return;
    if (data.length > DEVICE_MESSAGE_BYTES.heartbeat) {
      this.refused(deviceId, "a heartbeat too big to read", { bytes: data.length });
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(data));
    } catch {
      this.refused(deviceId, "a heartbeat that is not JSON");
      return;
    }
    const parsed = Heartbeat.safeParse(json);
    if (!parsed.success) {
      this.refused(deviceId, "an invalid heartbeat", { issues: parsed.error.issues.slice(0, 3) });
      return;
    }
    if (parsed.data.deviceId !== deviceId) {
      this.refused(deviceId, "a heartbeat naming another device", { claimed: parsed.data.deviceId });
      return;
    }
    const lookup = this.directory.lookup(deviceId);
    if (lookup.state === "loading") {
      // its record is on its way from Redis: this beat counts once it is here
      if (!retried) void lookup.ready.then(() => this.onHeartbeat(subject, data, true));
      return;
    }
    if (lookup.state !== "joined") {
      this.refused(deviceId, `a heartbeat from a device that is ${lookup.state === "revoked" ? "revoked" : "not joined"}`);
      return;
    }
    const { record } = lookup;
    const now = Date.now();
    if (parsed.data.away) {
      // paused or draining: known (for its owner and the operator), never live; what it served moves now
      this.away.set(deviceId, { ...parsed.data.away, at: now });
      if (this.devices.delete(deviceId)) this.kick();
      return;
    }
    this.away.delete(deviceId);
    const cores = Math.min(parsed.data.cores, record.cores);
    const heartbeat: Heartbeat = {
      ...parsed.data,
      ownerId: record.ownerId,
      region: record.region,
      cores,
      freeCores: Math.min(parsed.data.freeCores, cores),
      memoryMb: Math.min(parsed.data.memoryMb, record.memoryMb),
    };
    const previous = this.devices.get(deviceId);
    this.devices.set(deviceId, { heartbeat, lastSeen: now });
    // a device that is new, or back after it was given up, is a chance to place at once
    if (!previous || previous.lastSeen < now - this.deadAfterMs) this.kick();
  }

  private refused(deviceId: string, what: string, extra: Record<string, unknown> = {}): void {
    if (Date.now() - this.lastRefusedLog < 5_000) return;
    this.lastRefusedLog = Date.now();
    this.log.warn({ deviceId, ...extra }, `dropped ${what}`);
  }

  /** A revoked device: out of the live table at once, its functions re-placed. */
  forget(deviceId: string): void {
    this.devices.delete(deviceId);
    this.away.delete(deviceId);
    this.dead.set(deviceId, Date.now());
    this.kick();
  }

  /**
   * One of a device's fabric connections closed: asks the device itself
   * (its control subject). No one there, or no answer twice, and it is gone:
   * out of the live table at once, its functions re-placed, and everyone
   * waiting on it told (the gateway moves or ends its calls). An answer
   * means it lives on another connection (a renewed credential's).
   */
  connectionClosed(deviceId: string): Promise<boolean> {
    const under = this.checking.get(deviceId);
    if (under) return under;
    const check = (async () => {
      // nats.js reconnects on its own within moments (a network blip, a slow-consumer cut): keep asking for a
      // little while before a device counts as gone, so a short absence costs its callers nothing
      const until = Date.now() + GONE_AFTER_MS;
      for (;;) {
        try {
          await this.send(deviceId, { type: "ping" }, PROBE_TIMEOUT_MS);
          return false;
        } catch {
          // no responders, or no answer: ask again until the grace is over
        }
        if (Date.now() >= until || this.stopped) return true;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })().then((gone) => {
      if (gone && !this.stopped) {
        this.log.info({ deviceId }, "device left the fabric: its calls move and its functions are re-placed");
        this.dead.set(deviceId, Date.now());
        for (const listener of this.goneListeners) listener(deviceId);
        this.kick();
      }
      return gone;
    }).finally(() => this.checking.delete(deviceId));
    this.checking.set(deviceId, check);
    return check;
  }

  /** Calls `listener` with each device found gone from the fabric (connectionClosed). */
  onGone(listener: (deviceId: string) => void): void {
    this.goneListeners.push(listener);
  }

  /** Calls `listener` each time this process wrote a function's placement onto at least one device. */
  onPlacement(listener: (app: string, fn: string) => void): void {
    this.placedListeners.push(listener);
  }

  /** Whether any device is live in this process's table (so a function not yet placed is likely to be, soon). */
  hasLiveDevices(now = Date.now()): boolean {
    for (const id of this.devices.keys()) if (this.liveDevice(id, now)) return true;
    return false;
  }

  /** The device's entry while it is live in this process's table. */
  liveDevice(deviceId: string, now = Date.now()): DeviceEntry | undefined {
    const d = this.devices.get(deviceId);
    return d !== undefined && d.lastSeen >= now - this.deadAfterMs && (this.dead.get(deviceId) ?? 0) < d.lastSeen ? d : undefined;
  }

  /** Why a device serves nothing, while its heartbeats say it is paused or draining (undefined otherwise, or once they stop). */
  awayDevice(deviceId: string, now = Date.now()): { state: "paused" | "draining"; pausedFor: string[] } | undefined {
    const a = this.away.get(deviceId);
    if (!a) return undefined;
    if (a.at < now - this.deadAfterMs) {
      if (a.at < now - FORGET_AFTER_MS) this.away.delete(deviceId);
      return undefined;
    }
    return { state: a.state, pausedFor: a.pausedFor };
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

  /** Waits for the reconcile pass and the per-function work under way, if any. */
  async settle(): Promise<void> {
    while (this.running || this.working.size > 0) {
      await this.running;
      await Promise.all(this.working.values());
    }
  }

  /** Devices heard from within deadAfterMs, from this process's own table. */
  liveDevices(now = Date.now()): DeviceEntry[] {
    const since = now - this.deadAfterMs;
    const live: DeviceEntry[] = [];
    for (const d of this.devices.values()) {
      // A device found dead by a probe stays dead until it sends a heartbeat after that.
      if (d.lastSeen >= since && (this.dead.get(d.heartbeat.deviceId) ?? 0) < d.lastSeen) live.push(d);
    }
    return live;
  }

  /**
   * True until this process has listened for one dead-after period: a device
   * it has not heard from yet may be alive, so its placements are kept.
   */
  private warmingUp(now: number): boolean {
    return now - this.listeningSince < this.deadAfterMs;
  }

  /**
   * Called when a call found no device for a function: probes the devices it
   * is placed on and, if one is gone (NATS has no responder for its control
   * subject), re-places at once instead of waiting for its heartbeats to stop.
   */
  suspect(app: string, fn: string): void {
    const id = `${app}/${fn}`;
    const now = Date.now();
    if ((this.suspected.get(id) ?? 0) > now - SUSPECT_DEBOUNCE_MS || this.stopped) return;
    this.suspected.set(id, now);
    if (this.suspected.size > 10_000) this.suspected.clear();
    void (async () => {
      const placement = await this.store.getPlacement(app, fn);
      const probes = Object.keys(placement.devices).map(async (deviceId) => {
        try {
          await this.send(deviceId, { type: "ping" }, PROBE_TIMEOUT_MS);
        } catch (error) {
          if (error instanceof RequestError && error.isNoResponders()) {
            this.dead.set(deviceId, Date.now());
            return true;
          }
        }
        return false;
      });
      if ((await Promise.all(probes)).some(Boolean)) this.kick();
    })().catch((error: unknown) => this.log.warn({ err: error, fn: id }, "probe failed"));
  }

  private async reconcile(): Promise<void> {
    // every process keeps its own table, leader or not: forget devices long gone
    for (const [id, d] of this.devices) if (d.lastSeen < Date.now() - FORGET_AFTER_MS) this.devices.delete(id);
    if (!(await this.store.lease(LEASE_NAME, this.holder, this.tickMs * 5))) return;
    const now = Date.now();
    const live = new Map(this.liveDevices(now).map((d) => [d.heartbeat.deviceId, d]));
    const warming = this.warmingUp(now);
    // Work under way now may write its placement after the read below: those functions wait for the next pass.
    const busy = new Set(this.working.keys());
    const functions = await this.store.listFunctions();
    const placements = await this.store.getPlacements(functions);
    // Which live devices say they serve which function: one pass over the table, not one per function.
    const servedBy = new Map<string, string[]>();
    for (const [deviceId, device] of live) {
      for (const f of device.heartbeat.functions) {
        const id = `${f.app}/${f.fn}`;
        const list = servedBy.get(id);
        if (list) list.push(deviceId);
        else servedBy.set(id, [deviceId]);
      }
    }
    for (const [i, record] of functions.entries()) {
      const id = `${record.app}/${record.name}`;
      const served = servedBy.get(id) ?? [];
      servedBy.delete(id);
      // Each function reconciles on its own: a device that is slow to answer
      // holds up only the function it was asked to take, never the others.
      if (busy.has(id) || this.working.has(id)) continue;
      const task = this.reconcileFunction(record, placements[i]!, live, warming, served)
        .then(() => undefined)
        .catch((error: unknown) => this.log.error({ err: error, fn: id }, "reconcile of a function failed"))
        .finally(() => this.working.delete(id));
      this.working.set(id, task);
    }
    // What is left are functions that no longer exist (deleted): every device still serving one is told to stop.
    for (const [id, deviceIds] of servedBy) {
      if (busy.has(id) || this.working.has(id)) continue;
      const [app, fn] = id.split("/") as [string, string];
      for (const deviceId of deviceIds) void this.unplace(deviceId, app, fn);
    }
    for (const [key, at] of this.unplaced) if (at < now - UNPLACE_REPEAT_MS) this.unplaced.delete(key);
  }

  /**
   * How many devices a function should have now (docs/routing.md,
   * "Scaling"): none once it has had no call for its idle time (scaled to
   * zero); else its replicas, and more, up to its maxReplicas, while the
   * calls in flight through every gateway come near 70% of its devices'
   * donated cores. Scaling in waits SCALE_IN_AFTER_MS after the last scale
   * out, so a burst does not make it flap.
   */
  private targetReplicas(record: FunctionRecord, placement: Placement, live: Map<string, DeviceEntry>, now = Date.now()): number {
    const key = `${record.app}/${record.name}`;
    if (this.isIdle(record, now)) {
      this.scaled.delete(key);
      return 0;
    }
    const max = record.scaling?.maxReplicas ?? record.replicas;
    if (max <= record.replicas || !this.load) return record.replicas;
    // what a device says it donates steers scaling only within sane bounds (a claim of 1024 cores or of 0.001)
    const cores = Object.keys(placement.devices).map((id) => Math.min(Math.max(Math.round(live.get(id)?.heartbeat.cores ?? 1), 1), 64));
    const perReplica = cores.length > 0 ? cores.reduce((a, b) => a + b, 0) / cores.length : 1;
    const need = Math.ceil(this.load.demand(key, now) / (perReplica * SCALE_UTILIZATION));
    let target = Math.min(Math.max(need, record.replicas), max);
    const high = this.scaled.get(key);
    if (high && target < high.count && now - high.at < this.scaleInAfterMs) target = high.count;
    else if (target > record.replicas) this.scaled.set(key, { count: target, at: now });
    else this.scaled.delete(key);
    return target;
  }

  /** Whether a function that scales to zero has had no call (nor deploy) for its idle time. */
  isIdle(record: FunctionRecord, now = Date.now()): boolean {
    const idleMs = (record.scaling?.idleSeconds ?? 0) * 1000;
    if (idleMs === 0 || !this.load) return false;
    return now - Math.max(this.load.lastCallAt(`${record.app}/${record.name}`), Date.parse(record.updatedAt)) > idleMs;
  }

  /** Tells a device to stop serving a function, unless it was told so lately. */
  private async unplace(deviceId: string, app: string, fn: string): Promise<void> {
    const key = `${deviceId} ${app}/${fn}`;
    const now = Date.now();
    if ((this.unplaced.get(key) ?? 0) > now - UNPLACE_REPEAT_MS) return;
    this.unplaced.set(key, now);
    await this.send(deviceId, { type: "unplace", app, fn }).catch(() => undefined);
  }

  /**
   * Places one function: keeps its replicas on live devices, moves them to
   * the current version, limits and settings, adds or removes replicas, then
   * tells every device that serves it without being in the placement (it
   * came back after being given up, it could not take the new settings, it
   * was scaled in) to stop. `served`: the live devices whose heartbeat says
   * they serve it, when the pass began.
   */
  private async reconcileFunction(
    record: FunctionRecord,
    placement: Placement,
    live: Map<string, DeviceEntry>,
    warming: boolean,
    served: readonly string[],
  ): Promise<Placement> {
    const { app, name } = record;
    const next: Placement = { devices: {} };
    // the app's network: a device that left it (or a private app's non-member) is never kept nor chosen
    const network = await this.eligibility?.(app);
    const excluded = (id: string) => network !== undefined && !mayServe(network, id, live.get(id)?.heartbeat.publicPool);
    for (const [id, placed] of Object.entries(placement.devices)) {
      const device = live.get(id);
      if (device && excluded(id)) continue;
      if (!device) {
        // silent: re-placed below; unless this process started listening too lately to know
        if (warming && !this.devices.has(id)) next.devices[id] = placed;
        continue;
      }
      const reported = device.heartbeat.functions.some((f) => f.app === app && f.fn === name);
      // A device that restarted lost its functions; once a heartbeat after the placement says so, place again.
      if (!reported && device.heartbeat.sentAt > placed.placedAt + 500) continue;
      next.devices[id] = placed;
    }

    const settings = settingsFingerprint(record);
    const failKey = (id: string) => `${id} ${app}/${name}@${record.version}`;
    const place = async (id: string): Promise<boolean> => {
      // a scheduler that is stopping places nothing more (each placement may wait out a device's answer)
      if (this.stopped || (this.failed.get(failKey(id)) ?? 0) > Date.now()) return false;
      try {
        // env holds secrets: it goes to the device in the place message only, never into a log line or the placement record
        const message: ControlMessage = { type: "place", app, fn: name, version: record.version, limits: record.limits };
        if (record.env) message.env = record.env;
        if (record.outbound) message.outbound = record.outbound;
        if (record.compatibilityFlags) message.compatibilityFlags = record.compatibilityFlags;
        if (record.bindings) message.bindings = record.bindings;
        await this.store.grantBundle(id, app, name, record.version);
        // placed again: a later stop order goes out at once
        this.unplaced.delete(`${id} ${app}/${name}`);
        await this.send(id, message).catch(async (error: unknown) => {
          await this.store.withdrawGrant(id, app, name, record.version).catch(() => undefined);
          throw error;
        });
        this.onPlaced?.(id, app);
        next.devices[id] = {
          version: record.version,
          placedAt: Date.now(),
          limits: JSON.stringify(record.limits),
          ...(settings === undefined ? {} : { settings }),
        };
        return true;
      } catch (error) {
        this.log.warn({ deviceId: id, app, fn: name, err: error }, "placement failed");
        // Don't ask the same device for the same version again for a while (a bad bundle fails everywhere).
        this.failed.set(failKey(id), Date.now() + PLACE_RETRY_MS);
        if (this.failed.size > 10_000) this.failed.clear();
        return false;
      }
    };

    // Devices on an older version (or with older limits, env or outbound settings) get the current one.
    const limits = JSON.stringify(record.limits);
    const outdated = Object.entries(next.devices).filter(
      ([, p]) => p.version !== record.version || p.limits !== limits || p.settings !== settings,
    );
    await Promise.all(
      outdated.map(async ([id]) => {
        if (!(await place(id))) delete next.devices[id];
      }),
    );

    const want = Math.min(this.targetReplicas(record, next, live), live.size);
    let missing = want - Object.keys(next.devices).length;
    // where its calls come from lately (the gateways' regions): new replicas go there first
    const shares = this.load?.regionShares(`${app}/${name}`) ?? new Map<string, number>();
    if (missing > 0) {
      const tried = new Set<string>();
      while (missing > 0) {
        // Rank again after each placement: the owner just used goes to the back.
        const best = bestCandidate(record, live.values(), (id) => next.devices[id] !== undefined || tried.has(id) || excluded(id), next, live, shares);
        if (!best) break;
        tried.add(best.heartbeat.deviceId);
        if (await place(best.heartbeat.deviceId)) missing--;
      }
    } else if (missing < 0 && !warming) {
      for (const id of Object.keys(next.devices).slice(want)) delete next.devices[id];
    } else if (!warming && shares.size > 0) {
      // as demand moves: one replica at a time from a region with more than its share to one with less
      const move = demandMove(next, live, shares);
      const key = `${app}/${name}`;
      if (move && (this.moved.get(key) ?? 0) < Date.now() - MOVE_EVERY_MS) {
        this.moved.set(key, Date.now());
        const best = bestCandidate(
          record,
          live.values(),
          (id) => next.devices[id] !== undefined || live.get(id)?.heartbeat.region !== move.to || excluded(id),
          next,
          live,
          shares,
        );
        if (best && (await place(best.heartbeat.deviceId))) {
          delete next.devices[move.from];
          this.log.info({ app, fn: name, from: move.from, to: best.heartbeat.deviceId, region: move.to }, "replica moved to where the calls come from");
        }
      }
    }

    if (JSON.stringify(next) !== JSON.stringify(placement)) {
      await this.store.setPlacement(app, name, next);
      this.log.info({ app, fn: name, devices: Object.keys(next.devices) }, "placement changed");
      if (Object.keys(next.devices).length > 0) for (const listener of this.placedListeners) listener(app, name);
    }
    // Only once the placement is written: a device that stops is never one the placement still counts on.
    const strays = [...new Set([...served, ...Object.keys(placement.devices)])].filter((id) => next.devices[id] === undefined && live.has(id));
    await Promise.all(
      strays.map(async (id) => {
        // what it was granted for this function stops counting with the order to stop
        const versions = new Set([record.version, placement.devices[id]?.version].filter((v): v is string => v !== undefined));
        await Promise.all([...versions].map((v) => this.store.withdrawGrant(id, app, name, v).catch(() => undefined)));
        await this.unplace(id, app, name);
      }),
    );
    return next;
  }

  /** Sends a control message to a device and waits for its acknowledgement. */
  private async send(deviceId: string, message: ControlMessage, timeoutMs = this.placeTimeoutMs): Promise<void> {
    // a stopping scheduler does not wait out a device that went away with the request (up to timeoutMs)
    const reply = await Promise.race([this.nc.request(this.subjects.control(deviceId), JSON.stringify(message), { timeout: timeoutMs }), this.stopping.promise]);
    const parsed = ControlReply.safeParse(reply.json());
    if (!parsed.success) throw new HearthError("ERR_BAD_MESSAGE", `device ${deviceId} sent an invalid control reply`);
    if ("error" in parsed.data) throw HearthError.fromWire(parsed.data.error);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stopped = true;
    this.stopping.reject(new HearthError("ERR_INTERNAL", "the scheduler is stopping"));
    clearInterval(this.timer);
    await this.settle();
    if (this.heartbeats && !this.nc.isClosed()) this.heartbeats.unsubscribe();
    if (!this.nc.isClosed()) this.load?.close();
  }
}

/**
 * A fingerprint of a function's env, outbound settings and compatibility flags, so a deploy that
 * changes only those re-places it: a SHA-256 over both, or undefined when it
 * has neither (placements made before settings existed still match). The
 * placement record keeps this, never the env itself.
 */
export function settingsFingerprint(record: Pick<FunctionRecord, "env" | "outbound" | "compatibilityFlags" | "bindings">): string | undefined {
  if (record.env === undefined && record.outbound === undefined && record.compatibilityFlags === undefined && record.bindings === undefined) return undefined;
  // the flags and bindings join the hashed list only when set, so the fingerprints of functions without them stay as they were
  const parts = [
    record.env ?? null,
    record.outbound ?? null,
    ...(record.compatibilityFlags || record.bindings ? [record.compatibilityFlags ?? null] : []),
    ...(record.bindings ? [record.bindings] : []),
  ];
  return createHash("sha256")
    .update(JSON.stringify(parts))
    .digest("base64url");
}

/**
 * Orders candidate devices for one function: regions not yet serving it
 * first (so replicas cover more regions, and NATS, which prefers queue
 * members in the caller's own cluster, answers callers near them), then
 * owners not yet serving it (spread), then more free cores, fewer calls in
 * flight, and a stable per-function shuffle so functions don't all pile on
 * the same device.
 */
export function rankCandidates(
  record: FunctionRecord,
  candidates: DeviceEntry[],
  placement: Placement,
  live: Map<string, DeviceEntry>,
  shares: Map<string, number> = new Map(),
): DeviceEntry[] {
  const ranker = new Ranker(record, placement, live, shares);
  return candidates
    .map((d) => ({ d, spread: ranker.spread(d) }))
    .sort((a, b) => ranker.compare(a.d, a.spread, b.d, b.spread))
    .map(({ d }) => d);
}

/**
 * The first of rankCandidates' order without sorting or allocating: one pass
 * over the devices (10,000 devices cost about a millisecond).
 */
export function bestCandidate(
  record: FunctionRecord,
  devices: Iterable<DeviceEntry>,
  skip: (deviceId: string) => boolean,
  placement: Placement,
  live: Map<string, DeviceEntry>,
  shares: Map<string, number> = new Map(),
): DeviceEntry | undefined {
  const ranker = new Ranker(record, placement, live, shares);
  let best: DeviceEntry | undefined;
  let bestSpread = 0;
  for (const d of devices) {
    if (skip(d.heartbeat.deviceId)) continue;
    const spread = ranker.spread(d);
    if (!best || ranker.compare(d, spread, best, bestSpread) < 0) {
      best = d;
      bestSpread = spread;
    }
  }
  return best;
}

class Ranker {
  private readonly owners: Set<string>;
  private readonly regions: Set<string>;
  private readonly salt: number;
  /** How far each region is below its share of the calls, in replicas (higher: place there first). */
  private readonly wanted = new Map<string, number>();

  constructor(record: FunctionRecord, placement: Placement, live: Map<string, DeviceEntry>, shares: Map<string, number>) {
    const placed = Object.keys(placement.devices).flatMap((id) => {
      const d = live.get(id);
      return d ? [d.heartbeat] : [];
    });
    this.owners = new Set(placed.map((h) => h.ownerId));
    this.regions = new Set(placed.map((h) => h.region));
    this.salt = fnv1a(`${record.app}/${record.name}/`);
    for (const [region, share] of shares) this.wanted.set(region, share * (placed.length + 1) - placed.filter((h) => h.region === region).length);
  }

  /** The per-function shuffle: a hash of the function and the device (FNV-1a: a stable spread, no security role). */
  spread(d: DeviceEntry): number {
    return fnv1a(d.heartbeat.deviceId, this.salt);
  }

  compare(a: DeviceEntry, aSpread: number, b: DeviceEntry, bSpread: number): number {
    const x = a.heartbeat;
    const y = b.heartbeat;
    return (
      (this.wanted.get(y.region) ?? 0) - (this.wanted.get(x.region) ?? 0) ||
      Number(this.regions.has(x.region)) - Number(this.regions.has(y.region)) ||
      Number(this.owners.has(x.ownerId)) - Number(this.owners.has(y.ownerId)) ||
      y.freeCores - x.freeCores ||
      x.activeCalls - y.activeCalls ||
      aSpread - bSpread
    );
  }
}

/**
 * The one move that brings a function's replicas nearer its calls: from the
 * region most over its share to the one most under it, each by at least half
 * a replica (so a move never calls for the move back), or undefined when they
 * are as near as whole replicas allow.
 */
export function demandMove(placement: Placement, live: Map<string, DeviceEntry>, shares: Map<string, number>): { from: string; to: string } | undefined {
  const placed = Object.keys(placement.devices).flatMap((id) => {
    const d = live.get(id);
    return d ? [{ id, region: d.heartbeat.region }] : [];
  });
  if (placed.length === 0) return undefined;
  const counts = new Map<string, number>();
  for (const p of placed) counts.set(p.region, (counts.get(p.region) ?? 0) + 1);
  let over: { region: string; by: number } | undefined;
  for (const [region, count] of counts) {
    const by = count - (shares.get(region) ?? 0) * placed.length;
    if (by >= 0.5 && (!over || by > over.by)) over = { region, by };
  }
  let under: { region: string; by: number } | undefined;
  for (const [region, share] of shares) {
    const by = share * placed.length - (counts.get(region) ?? 0);
    if (by >= 0.5 && (!under || by > under.by)) under = { region, by };
  }
  if (!over || !under || over.region === under.region) return undefined;
  const from = placed.find((p) => p.region === over.region)!;
  return { from: from.id, to: under.region };
}

/** 32-bit FNV-1a over a string's UTF-16 code units, continuing from `hash`. */
function fnv1a(text: string, hash = 0x811c9dc5): number {
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
