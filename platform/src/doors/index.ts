/**
 * The platform's side of devices' own doors (node-agent ingress, issue 14):
 *
 * - `<p>.door.<id>.peers`: a door asks which peers of its network serve a
 *   function it is not placed for. Answered only for an app the device is a
 *   member of (anything else reads as an unknown function), with the
 *   function's version and limits and its live devices, best first: same
 *   region, then most free cores, then fewest calls in flight.
 * - `<p>.door.<id>.usage`: a door reports the calls it took. Each is checked
 *   against what the platform knows (the door a member of the app, the
 *   serving device placed for the function, sizes and times within the
 *   function's limits, the CPU claim capped like the gateway's), capped in
 *   rate per door, and metered through the same hook as a gateway call,
 *   with the door's call id as the record's id, so a report sent twice
 *   counts once. See docs/ledger.md ("Calls at a device's door").
 * - membership changes: a device placed for an app it was not a member of
 *   (or that joined or left a network, identity/networks.ts) gets a new
 *   credential on its control subject at once.
 *
 * The device is known from the subject (only it may publish there), never
 * from what it wrote.
 */
import {
  ControlReply,
  DoorPeersRequest,
  DoorUsageReport,
  HearthError,
  type DoorCall,
  type DoorPeersReply,
  type RelayServed,
  type Subjects,
} from "@hearth/protocol";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { RateLimiterMemory } from "rate-limiter-flexible";
import type { DeviceRegistry } from "../identity/devices.ts";
import type { Logger } from "../log/index.ts";
import type { DeviceEntry, Store } from "../state/index.ts";
import type { CallHook } from "../usage/index.ts";

/** The largest door message the platform reads (a usage report of 500 calls is about 150 KiB). */
const DOOR_MESSAGE_BYTES = 256 * 1024;
/** Calls one door may report a second, on average over 10 s: more are dropped and counted (docs/ledger.md). */
export const DOOR_CALLS_PER_SECOND = 500;
/** How long a relayed call waits for its serving device's attestation (or an attestation for its door's report). */
export const ATTEST_WAIT_MS = 10_000;
/** Peer lookups one door may make a second, on average over 10 s. */
export const DOOR_LOOKUPS_PER_SECOND = 100;
/** Peers named in one answer. */
const MAX_PEERS = 8;
/** The door's wall time may exceed the function's wall limit by the relay's round trip, no more. */
const WALL_MARGIN_MS = 2_000;

export interface DoorServiceOptions {
  nc: NatsConnection;
  subjects: Subjects;
  store: Store;
  devices: DeviceRegistry;
  liveDevice: (deviceId: string) => DeviceEntry | undefined;
  log: Logger;
  /** Meters one accepted door call (the ledger's hook). */
  onCall?: CallHook;
  /** Whether the device may serve the app now (its network membership, identity/networks.ts). */
  mayServe?: (deviceId: string, app: string) => Promise<boolean>;
  /** Whether the app's developer invited the device into its network (vouched for it: its word is taken). */
  invited?: (deviceId: string, app: string) => Promise<boolean>;
}

export class DoorService {
  private readonly options: DoorServiceOptions;
  private readonly subs: Subscription[] = [];
  private readonly rate = new RateLimiterMemory({ points: DOOR_CALLS_PER_SECOND * 10, duration: 10 });
  /** Peer lookups cost Redis reads: a door that keeps its answers (2 s) asks far less than this. */
  private readonly lookups = new RateLimiterMemory({ points: DOOR_LOOKUPS_PER_SECOND * 10, duration: 10 });
  /** Door calls refused, by why (the operator's view; also logged). */
  readonly refused = new Map<string, number>();
  /** Door calls metered. */
  metered = 0;
  /** Relayed calls metered without their serving device's attestation (billed, credited to nobody). */
  unattested = 0;
  /** Door calls metered on a device's word the platform could not verify (billed, held as claimed, not credited). */
  claimed = 0;
  /** Relayed calls waiting for their serving device's attestation, by the door's call id. */
  private readonly awaiting = new Map<string, { call: DoorCall; door: string; timer: NodeJS.Timeout }>();
  /** Attestations that came before their door's report. */
  private readonly attested = new Map<string, { from: string; served: RelayServed; at: number }>();

  constructor(options: DoorServiceOptions) {
    this.options = options;
    const { nc, subjects } = options;
    this.subs.push(nc.subscribe(subjects.doorPeersAll, { callback: (err, msg) => void (err ? undefined : this.onPeers(msg)) }));
    this.subs.push(nc.subscribe(subjects.doorUsageAll, { callback: (err, msg) => void (err ? undefined : this.onUsage(msg)) }));
  }

  private refuse(why: string, n = 1): void {
    this.refused.set(why, (this.refused.get(why) ?? 0) + n);
  }

  private async onPeers(msg: Msg): Promise<void> {
    const reply = (body: DoorPeersReply): void => void msg.respond(JSON.stringify(body));
    const notFound = (app: string, fn: string) => reply({ error: { code: "ERR_FUNCTION_NOT_FOUND", message: `no function ${app}/${fn} in this device's networks` } });
    const deviceId = this.options.subjects.doorDeviceOf(msg.subject);
    if (!deviceId || msg.data.byteLength > 1024) return;
    let parsed;
    try {
      parsed = DoorPeersRequest.safeParse(msg.json());
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) return reply({ error: { code: "ERR_BAD_MESSAGE", message: "invalid door peers request" } });
    const { app, fn } = parsed.data;
    try {
      await this.lookups.consume(deviceId);
    } catch {
      return reply({ error: { code: "ERR_RATE_LIMITED", message: "too many peer lookups from this door" } });
    }
    try {
      // a function of a network the device is not a member of reads the same as one that does not exist
      if (!(await this.options.devices.networks(deviceId)).includes(app)) return notFound(app, fn);
      const { record, placement } = await this.options.store.getFunctionAndPlacement(app, fn);
      if (!record) return notFound(app, fn);
      const region = this.options.liveDevice(deviceId)?.heartbeat.region;
      const ranked = Object.keys(placement.devices)
        .filter((id) => id !== deviceId)
        .map((id) => ({ id, live: this.options.liveDevice(id) }))
        .filter((d): d is { id: string; live: DeviceEntry } => d.live !== undefined)
        .sort((a, b) => {
          const ra = a.live.heartbeat.region === region ? 0 : 1;
          const rb = b.live.heartbeat.region === region ? 0 : 1;
          if (ra !== rb) return ra - rb;
          if (a.live.heartbeat.freeCores !== b.live.heartbeat.freeCores) return b.live.heartbeat.freeCores - a.live.heartbeat.freeCores;
          return a.live.heartbeat.activeCalls - b.live.heartbeat.activeCalls;
        })
        .slice(0, MAX_PEERS)
        .map((d) => d.id);
      reply({ version: record.version, limits: record.limits, devices: ranked });
    } catch (error) {
      this.options.log.warn({ err: error, deviceId }, "door peers lookup failed");
      reply({ error: { code: "ERR_INTERNAL", message: "the platform could not look the function up; retry" } });
    }
  }

  private async onUsage(msg: Msg): Promise<void> {
    const door = this.options.subjects.doorDeviceOf(msg.subject);
    if (!door) return;
    const ack = (body: ControlReply): void => void (msg.reply && msg.respond(JSON.stringify(body)));
    if (msg.data.byteLength > DOOR_MESSAGE_BYTES) {
      this.refuse("too-large");
      return ack({ error: { code: "ERR_BAD_MESSAGE", message: "usage report too large" } });
    }
    let parsed;
    try {
      parsed = DoorUsageReport.safeParse(msg.json());
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) {
      this.refuse("invalid");
      return ack({ error: { code: "ERR_BAD_MESSAGE", message: "invalid usage report" } });
    }
    const { calls, served } = parsed.data;
    try {
      await this.rate.consume(door, calls.length + served.length);
    } catch {
      this.refuse("rate", calls.length + served.length);
      this.options.log.warn({ deviceId: door, calls: calls.length, served: served.length }, "door reported more calls than it can have taken; dropped");
      return ack({ error: { code: "ERR_RATE_LIMITED", message: "more door calls than allowed; dropped" } });
    }
    // attestations first: a door's report in the same batch as its peer's (one device both) finds them
    for (const s of served) {
      try {
        await this.attest(door, s);
      } catch (error) {
        this.options.log.warn({ err: error, deviceId: door }, "relay attestation could not be taken");
      }
    }
    const networks = new Set(await this.options.devices.networks(door));
    for (const call of calls) {
      try {
        const why = await this.check(door, networks, call);
        if (why) {
          this.refuse(why);
          this.options.log.warn({ deviceId: door, app: call.app, fn: call.fn, why }, "door call not metered");
          continue;
        }
        if (call.relayed && call.servedBy) await this.relayedCall(door, call);
        else await this.meter(door, call, call.servedBy ? { id: call.servedBy, ...(call.cpuMs ? { cpuMs: call.cpuMs } : {}), cold: call.cold } : undefined);
      } catch (error) {
        this.options.log.warn({ err: error, deviceId: door }, "door call could not be metered");
        this.refuse("error");
      }
    }
    ack({ ok: true });
  }

  /**
   * A relayed call is credited to the device that served it only when that
   * device attests it too (under the door's call id, on its own subject):
   * the first of the two to arrive waits for the other up to ATTEST_WAIT_MS.
   * Without the attestation the call is billed as the door saw it and
   * credits no device.
   */
  private async relayedCall(door: string, call: DoorCall): Promise<void> {
    const attested = this.attested.get(call.id);
    if (attested && attested.from === call.servedBy) {
      this.attested.delete(call.id);
      return this.meter(door, call, { id: attested.from, cpuMs: minMs(call.cpuMs, attested.served.cpuMs), cold: call.cold });
    }
    if (this.awaiting.has(call.id)) return;
    const timer = setTimeout(() => {
      this.awaiting.delete(call.id);
      this.unattested++;
      void this.meter(door, call, undefined).catch((error: unknown) => this.options.log.warn({ err: error }, "door call could not be metered"));
    }, ATTEST_WAIT_MS);
    timer.unref();
    this.awaiting.set(call.id, { call, door, timer });
  }

  private async attest(from: string, served: RelayServed): Promise<void> {
    // only a device that was given that function can have served it
    if (!(await this.options.store.mayRun(from, served.app, served.fn, served.version))) {
      this.refuse("attest-not-placed");
      return;
    }
    const waiting = this.awaiting.get(served.id);
    if (waiting) {
      if (waiting.call.servedBy !== from || waiting.call.app !== served.app || waiting.call.fn !== served.fn) {
        this.refuse("attest-mismatch");
        return;
      }
      clearTimeout(waiting.timer);
      this.awaiting.delete(served.id);
      return this.meter(waiting.door, waiting.call, { id: from, cpuMs: minMs(waiting.call.cpuMs, served.cpuMs), cold: waiting.call.cold });
    }
    const now = Date.now();
    if (this.attested.size >= 100_000) {
      for (const [id, a] of this.attested) if (now - a.at > ATTEST_WAIT_MS * 3) this.attested.delete(id);
      if (this.attested.size >= 100_000) return this.refuse("attest-overflow");
    }
    this.attested.set(served.id, { from, served, at: now });
  }

  /**
   * Whether the platform can take the word that `servedBy` served the call
   * `door` reported, and so credit it: when the app's developer invited the
   * device (vouched for it), or when two devices of different owners agree
   * on it (the door's report and the peer's attestation of a relay). A
   * door's word alone about its own device, or two devices of one owner,
   * is a claim: billed as reported, not credited (docs/ledger.md).
   */
  private async verified(door: string, call: DoorCall, servedBy: string): Promise<boolean> {
    if (await this.options.invited?.(servedBy, call.app)) return true;
    if (!call.relayed || servedBy === door) return false;
    const [a, b] = await Promise.all([this.options.devices.device(door), this.options.devices.device(servedBy)]);
    return a !== null && b !== null && a.ownerId !== b.ownerId;
  }

  private async meter(door: string, call: DoorCall, device: { id: string; cpuMs?: string; cold: boolean } | undefined): Promise<void> {
    const credited = device === undefined || (await this.verified(door, call, device.id));
    if (!credited) this.claimed++;
    const record = await this.options.store.getFunction(call.app, call.fn);
    const cpuLimitMs = record?.limits.cpuMs ?? 0;
    const wallCapMs = (record?.limits.wallMs ?? 0) + WALL_MARGIN_MS;
    await this.options.onCall?.({
      id: call.id,
      requestId: call.requestId,
      app: call.app,
      fn: call.fn,
      version: call.version,
      at: call.at,
      // the door's own observation, capped: no call lasts longer than its function may run plus a relay
      wallMs: Math.min(call.wallMs, wallCapMs),
      requestBytes: call.requestBytes,
      responseBytes: call.responseBytes,
      cpuLimitMs,
      status: call.status,
      ...(call.errorCode ? { errorCode: call.errorCode } : {}),
      ...(device ? { device } : {}),
      ...(credited ? {} : { credited: false as const }),
      door: call.via === "call" ? (call.relayed ? "call-relay" : "call") : call.relayed ? "device-relay" : "device",
    });
    this.metered++;
  }

  /** Why a reported call is not believed, or undefined when it is. */
  private async check(door: string, networks: ReadonlySet<string>, call: DoorUsageReport["calls"][number]): Promise<string | undefined> {
    if (!networks.has(call.app)) return "not-member";
    const record = await this.options.store.getFunction(call.app, call.fn);
    if (!record) return "no-function";
    if (call.requestBytes > record.limits.requestBytes) return "request-bytes";
    if (call.responseBytes > record.limits.responseBytes) return "response-bytes";
    if (Math.abs(call.at - Date.now()) > 10 * 60_000) return "stale";
    if (call.servedBy === undefined) return undefined;
    // a local call is served by the door itself; a relayed one by a peer: either must be one the function was given to
    if (call.relayed === (call.servedBy === door)) return "served-by";
    if (!(await this.options.store.mayRun(call.servedBy, call.app, call.fn, call.version))) return "not-placed";
    return undefined;
  }

  /** Signs the device's credential again (its networks changed) and hands it over on its control subject. */
  async pushCredential(deviceId: string): Promise<void> {
    const credential = await this.options.devices.reissue(deviceId);
    if (!credential) return;
    const reply = await this.options.nc.request(this.options.subjects.control(deviceId), JSON.stringify({ type: "credential", ...credential }), { timeout: 5_000 });
    const parsed = ControlReply.safeParse(reply.json());
    if (parsed.success && "error" in parsed.data) throw HearthError.fromWire(parsed.data.error);
  }

  /**
   * A device was placed for an app: it joins that network, and gets a
   * credential that says so when it is new; unless it may no longer serve
   * the app (it left the network while the placement was under way).
   */
  placed(deviceId: string, app: string): void {
    void (async () => {
      if (this.options.mayServe && !(await this.options.mayServe(deviceId, app))) return;
      if (await this.options.devices.joinNetwork(deviceId, app)) await this.pushCredential(deviceId);
    })().catch((error: unknown) => this.options.log.warn({ err: error, deviceId, app }, "could not hand the device its new network credential"));
  }

  close(): void {
    for (const sub of this.subs) sub.unsubscribe();
    for (const { timer } of this.awaiting.values()) clearTimeout(timer);
  }
}

/** The smaller of two CPU claims in ms (the door's and the serving device's), as the decimal string a reply carries. */
function minMs(a: string | undefined, b: string): string {
  if (a === undefined) return b;
  return Number(a) <= Number(b) ? a : b;
}
