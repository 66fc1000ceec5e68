/**
 * The device agent: holds the device's fabric connection, reports heartbeats,
 * takes placements on its control subject, and serves invocations of placed
 * functions by handing them to the sandbox pool. It never runs tenant code
 * itself: that happens only in sandbox processes.
 */
import { performance } from "node:perf_hooks";
import {
  ControlMessage,
  HearthError,
  HTTP_HEADER_PREFIX,
  INVOKE_HEADERS,
  InvokeMeta,
  Subjects,
  type ControlReply,
  type FunctionBindings,
  type FunctionEnv,
  type FunctionLimits,
  type Heartbeat,
  type CompatibilityFlag,
  type OutboundSettings,
} from "@hearth/protocol";
import { DEFAULT_CALL_LIMITS } from "@hearth/edge";
import { connect, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { BundleCache } from "../bundles/index.ts";
import type { AgentConfig } from "../config/index.ts";
import { CoreGate, WarmIsolates } from "../limits/index.ts";
import { CallTraces, forwardFunctionLogs } from "../function-logs/index.ts";
import type { Logger } from "../log/index.ts";
import type { PauseReason } from "../owner/index.ts";
import { SandboxPool, type CallSettings } from "../sandbox/supervisor.ts";
import type { SandboxResult } from "../sandbox/messages.ts";
import { credsPath } from "../identity/index.ts";
import { FabricCredentials, type RenewOptions } from "./credentials.ts";
import { ClockJumpWatch, ReconnectBackoff } from "./reconnect.ts";
import { Door, type DoorCounts } from "../ingress/index.ts";
import { Peers } from "../ingress/peers.ts";
import { UsageReporter } from "../ingress/reporter.ts";
import { callDepth, callerFor, type CallerCalls, type CallsHost } from "./calls.ts";

export type { RenewOptions } from "./credentials.ts";

export const AGENT_VERSION = "0.1.0";
/** What heartbeats say of a device whose owner declared no location (`--location`): the platform does not sort by it. */
const UNDECLARED_LOCATION = { label: "unknown", lat: 0, lon: 0 } as const;

/** Resident memory a sandbox process needs for itself (Node, isolated-vm, the runtime; ~93 MiB measured empty), on top of its share of the donated memory. */
export const SANDBOX_PROCESS_BASE_MB = 128;

/** What `hearth-agent status` shows (from the running daemon, over its control socket). */
export interface AgentStatus {
  deviceId: string;
  ownerId: string;
  state: "serving" | "paused" | "draining";
  pausedFor: PauseReason[];
  cores: number;
  coresInUse: number;
  queued: number;
  memoryMb: number;
  memoryWarmMb: number;
  functions: { app: string; fn: string; version: string; memoryMb: number }[];
  /** Served today (UTC), as this device metered it; the platform's ledger is what counts for credits. */
  today: { day: string; calls: number; errors: number; cpuMs: number };
  connected: boolean;
  startedAt: string;
  /** The device's own door, when the owner opened one (`--listen`). */
  ingress?: DoorCounts;
}

interface Placed {
  app: string;
  fn: string;
  version: string;
  limits: FunctionLimits;
  /** The function's env (vars and secrets) and outbound policy: made once per placement, handed to the sandbox with each call, never logged. */
  settings: CallSettings;
}

export class Agent implements AsyncDisposable {
  readonly config: Readonly<AgentConfig>;
  readonly log: Logger;
  /** The fabric connection; replaced by a new one when the credential is renewed. */
  private conn: NatsConnection;
  readonly pool: SandboxPool;
  private readonly subjects: Subjects;
  private readonly bundles: BundleCache;
  private readonly placed = new Map<string, Placed>();
  private control?: Subscription;
  /** The device's one invocation subscription (every placed function's calls arrive on it), while it takes calls. */
  private invocations?: Subscription;
  /** Its relay subscriptions, one per app network it serves here and its credential lets it hear (docs/security.md). */
  private readonly relays = new Map<string, { sub: Subscription; nc: NatsConnection }>();
  private syncing: Promise<void> = Promise.resolve();
  /** The move to a connection with a new credential under way (renewal or re-issue): moves run one after the other. */
  private moving: Promise<void> = Promise.resolve();
  private readonly credentials: FabricCredentials;
  private heartbeatTimer?: NodeJS.Timeout;
  private active = 0;
  /** Calls running per connection they came in on (their replies must go out on it). */
  private readonly inflightOn = new Map<NatsConnection, number>();
  private idle?: () => void;
  private closing?: Promise<void>;
  draining = false;
  /** Set while the owner's schedule, load, battery or own wish keeps the device off the fabric. */
  private pausedFor: PauseReason[] = [];
  private pausing?: Promise<void>;
  readonly gate: CoreGate;
  /** Calls waiting for a core, by request id: a `cancel` from the platform drops one (its hedge answered elsewhere). */
  private readonly waiting = new Map<string, AbortController>();
  readonly memory: WarmIsolates;
  /** Trace ids of the calls running now, for their log lines. */
  private readonly traces: CallTraces;
  /** Sends the function log lines held for a batch (on close, before the connection drains). */
  private flushLogs?: () => void;
  /** Reply subjects of the calls heard while moving connections (see onInvoke), and until when that lasts. */
  private heardDuringMove?: Set<string>;
  private moveDedupeUntil = 0;
  private today = { day: "", calls: 0, errors: 0, cpuMs: 0 };
  /** Since the agent started, as this device metered it (metrics). */
  readonly served = { calls: 0, errors: 0, cpuMs: 0 };
  private readonly startedAt = new Date().toISOString();
  private readonly backoff: ReconnectBackoff;
  private readonly clock: ClockJumpWatch;
  /** The device's own door for HTTP clients, when the owner opened one. */
  door?: Door;
  /** Reports the door's calls and the relayed calls this device served to the platform. */
  readonly usage: UsageReporter;
  /** Peers of this device's networks, for the functions' calls of functions placed elsewhere. */
  private readonly peers: Peers;
  private readonly callsHost: CallsHost;

  private constructor(config: Readonly<AgentConfig>, log: Logger, nc: NatsConnection, pool: SandboxPool, backoff: ReconnectBackoff, credentials: FabricCredentials, traces: CallTraces) {
    this.traces = traces;
    this.config = config;
    this.log = log;
    this.conn = nc;
    this.pool = pool;
    this.credentials = credentials;
    this.subjects = new Subjects(config.subjectPrefix);
    this.bundles = new BundleCache(() => this.conn, this.subjects, config.deviceId);
    this.gate = new CoreGate({ slots: config.cores, maxQueued: config.queueMax, maxWaitMs: config.queueWaitMs });
    this.memory = new WarmIsolates(config.memoryMb, (key) => this.pool.drop(key));
    this.backoff = backoff;
    this.clock = new ClockJumpWatch({ onJump: (lateMs) => this.woke(lateMs) });
    this.usage = new UsageReporter({ deviceId: config.deviceId, subjects: this.subjects, nc: () => this.conn, log });
    this.peers = new Peers({ deviceId: config.deviceId, subjects: this.subjects, nc: () => this.conn });
    this.callsHost = {
      deviceId: config.deviceId,
      usage: this.usage,
      peers: this.peers,
      localFunction: (app, fn) => this.localFunction(app, fn),
      runInner: (h, data) => this.runCall(h, data, undefined, true),
    };
  }

  static async start(config: Readonly<AgentConfig>, log: Logger, options: { paused?: PauseReason[]; renew?: RenewOptions } = {}): Promise<Agent> {
    const credentials = new FabricCredentials({ path: config.credsFile ?? credsPath(config.dataDir), deviceId: config.deviceId, renew: options.renew, log });
    // a device without its credential cannot connect: nats-server accepts no anonymous client
    await credentials.prepare();
    const size = config.sandboxes ?? Math.max(1, Math.ceil(config.cores));
    const traces = new CallTraces();
    const functionLogs = forwardFunctionLogs({ deviceId: config.deviceId, subjects: new Subjects(config.subjectPrefix), connection: () => agent?.nc, log, traceOf: (k, r) => traces.of(k, r) });
    const pool = new SandboxPool({
      size,
      // The owner's memory cap, enforced on what the OS sees too: placements are admitted by their declared limits
      // against the donated memory (all processes together), and each sandbox process is held to the donated memory
      // plus room for itself, whichever of its functions uses it (over it: idle isolates go first, then the largest
      // call fails). A share per process would kill a function below its own limit when functions hash unevenly.
      processMemoryMb: SANDBOX_PROCESS_BASE_MB + config.memoryMb,
      log,
      // console lines go to the function's developer over the fabric; the owner's log gets only counts
      onLog: functionLogs,
    });
    await pool.start();
    let nc: NatsConnection;
    let agent: Agent | undefined;
    const backoff = new ReconnectBackoff();
    // A home device often starts before its network is up: it waits for the fabric (the same backoff), saying so.
    const waiting = setInterval(() => log.warn({ nats: config.natsUrl }, "still waiting for the fabric: is it reachable from here?"), 30_000);
    const firstWait = setTimeout(() => log.warn({ nats: config.natsUrl }, "the fabric does not answer yet; trying again with growing waits"), 3_000);
    try {
      nc = await connectFabric(config, credentials, backoff, true);
      backoff.connected();
    } catch (error) {
      await pool[Symbol.asyncDispose]();
      throw new HearthError("ERR_PLATFORM_UNREACHABLE", `could not connect to the fabric at ${config.natsUrl}: ${(error as Error).message}`);
    } finally {
      clearInterval(waiting);
      clearTimeout(firstWait);
    }
    const started = new Agent(config, log, nc, pool, backoff, credentials, traces);
    started.flushLogs = functionLogs.flush;
    agent = started;
    started.watchConnection(nc);
    credentials.onRenewed = () => void started.useRenewedCredential();
    credentials.onRevoked = (message) => {
      started.revoked = message;
      if (started.onRevoked) started.onRevoked(message);
      else void started.close();
    };
    await credentials.start();
    started.clock.start();
    if (options.paused && options.paused.length > 0) {
      started.pausedFor = [...options.paused];
      log.info({ reasons: started.pausedFor }, "starting paused: not joining the fabric for calls yet");
      started.beatWhileAway();
    } else started.listen();
    if (config.listen) {
      const at = config.listen.lastIndexOf(":");
      try {
        started.door = await Door.start(
          {
            deviceId: config.deviceId,
            subjects: started.subjects,
            nc: () => started.conn,
            localFunction: (app, fn) => started.localFunction(app, fn),
            runCall: (h, data) => started.runCall(h, data),
            usage: started.usage,
          },
          {
            host: config.listen.slice(0, at).replace(/^\[|\]$/g, ""), port: Number(config.listen.slice(at + 1)), log: log.child({ part: "door" }),
            callLimits: { ...DEFAULT_CALL_LIMITS, perIpPerSecond: config.doorRatePerIp },
          },
        );
      } catch (error) {
        await started.close();
        throw new HearthError("ERR_BAD_REQUEST", `could not open the door on ${config.listen}: ${(error as Error).message}`);
      }
    }
    return started;
  }

  /** The fabric connection in use now. */
  get nc(): NatsConnection {
    return this.conn;
  }

  /**
   * Logs the fabric connection going and coming back (nats.js reconnects
   * with our backoff, forever), and heartbeats at once when back. A
   * credential the server refuses (expired while the device was away,
   * revoked) is renewed at once: a new one is used from the next try, and a
   * revoked device learns it and stops.
   */
  private watchConnection(nc: NatsConnection): void {
    void (async () => {
      let lastAuthError = 0;
      for await (const s of nc.status()) {
        if (nc !== this.conn) break;
        if (s.type === "error" && /authoriz|authentic|expired|revoked/i.test(String(s.error?.message))) {
          if (Date.now() - lastAuthError < 30_000) continue;
          lastAuthError = Date.now();
          this.log.error({ err: s.error }, "the fabric refused this device's credential; renewing it");
          this.credentials.renewNow();
        } else if (s.type === "disconnect") this.log.warn({ server: s.server }, "lost the fabric; reconnecting with backoff");
        else if (s.type === "reconnect") {
          this.backoff.connected();
          this.log.info({ server: s.server }, "back on the fabric");
          this.heartbeat();
        }
      }
    })().catch(() => undefined);
  }

  /**
   * The machine slept (a timer came far later than scheduled): the
   * connection may be dead without the socket knowing yet, and the platform
   * has likely given this device up. Reconnect at once rather than wait for
   * missed pings; the heartbeat after the reconnect tells the platform we are
   * back (and one now, in case the connection did hold).
   */
  private woke(lateMs: number): void {
    if (this.nc.isClosed() || this.closing) return;
    this.log.warn({ lateMs: Math.round(lateMs) }, "the clock jumped (the machine slept?): reconnecting to the fabric");
    this.backoff.wake();
    this.heartbeat();
    this.nc.reconnect().catch(() => undefined);
  }

  /** Set (with the platform's words) when the operator revoked this device: the agent stops. */
  revoked?: string;
  /** Told when the operator revoked this device (the daemon stops; without it the agent closes itself). */
  onRevoked?: (message: string) => void;

  /**
   * A renewed credential is on disk: move to a new connection made with it
   * before the old one expires, without a gap. The new connection subscribes
   * first; then the old one leaves its subjects, and closes once the calls
   * that came in on it have answered (a reply can only go out on the
   * connection its request came in on, and nats-server allows it there).
   */
  private useRenewedCredential(): Promise<void> {
    this.moving = this.moving.then(() => this.moveConnection()).catch((error: unknown) => this.log.warn({ err: error }, "could not move to a new fabric connection"));
    return this.moving;
  }

  private async moveConnection(): Promise<void> {
    if (this.closing || this.conn.isClosed()) return;
    let next: NatsConnection;
    try {
      next = await connectFabric(this.config, this.credentials, this.backoff, false);
    } catch (error) {
      // the old credential still holds; nats.js reads the new file on its next reconnect anyway
      this.log.warn({ err: error }, "could not connect with the renewed credential; keeping the current connection");
      return;
    }
    const old = this.conn;
    const oldControl = this.control;
    const oldInvocations = this.invocations;
    // from the new subscriptions on until the old ones are surely gone, a call heard on both runs once
    this.heardDuringMove = new Set();
    this.moveDedupeUntil = Number.POSITIVE_INFINITY;
    try {
      this.conn = next;
      this.watchConnection(next);
      if (oldControl) this.subscribeControl();
      if (oldInvocations) this.takeCalls();
      await this.syncNetworks();
      await next.flush().catch(() => undefined);
      oldControl?.unsubscribe();
      oldInvocations?.unsubscribe();
    } finally {
      // what the old connection had already received may still be delivered for a moment
      this.moveDedupeUntil = performance.now() + MOVE_DEDUPE_MS;
    }
    this.heartbeat();
    this.log.info("moved to a connection with the renewed fabric credential");
    // the next move need not wait for this one's old calls
    void this.callsOn(old).then(() => old.close().catch(() => undefined));
  }

  /** Resolves once no call that came in on `nc` is still running (bounded by the longest reply window). */
  private async callsOn(nc: NatsConnection): Promise<void> {
    const deadline = Date.now() + 120_000;
    while ((this.inflightOn.get(nc) ?? 0) > 0 && Date.now() < deadline && !this.closing) await new Promise((r) => setTimeout(r, 50));
  }

  private subscribeControl(): void {
    const nc = this.conn;
    this.control = nc.subscribe(this.subjects.control(this.config.deviceId), {
      // a placement taken while the agent moves connections is answered on the connection it came in on
      callback: (err, msg) => {
        if (!err) void this.answeringOn(nc, () => this.onControl(msg));
      },
    });
  }

  private takeCalls(): void {
    const nc = this.conn;
    this.invocations = nc.subscribe(this.subjects.invoke(this.config.deviceId), {
      callback: (err, m) => {
        if (!err) void this.onInvoke(m, nc);
      },
    });
    void this.syncNetworks();
  }

  /**
   * Hears relays from peers in each app network that has a function placed
   * here and that its credential names (the credential comes first: a
   * subscription nats-server does not allow would only be refused), on the
   * connection in use; leaves the others.
   */
  private syncNetworks(): Promise<void> {
    // one at a time: two at once would both subscribe to a network's subject
    this.syncing = this.syncing.then(() => this.syncNetworksNow()).catch((error: unknown) => this.log.warn({ err: error }, "could not update relay subscriptions"));
    return this.syncing;
  }

  private async syncNetworksNow(): Promise<void> {
    const allowed = this.invocations ? new Set(await this.credentials.networks().catch(() => [])) : new Set<string>();
    const want = new Set([...this.placed.values()].map((p) => p.app).filter((app) => allowed.has(app)));
    const nc = this.conn;
    for (const [app, relay] of this.relays) {
      if (want.has(app) && relay.nc === nc) continue;
      this.relays.delete(app);
      if (!relay.nc.isClosed()) relay.sub.unsubscribe();
    }
    if (!this.invocations || nc.isClosed()) return;
    for (const app of want) {
      if (this.relays.has(app)) continue;
      const sub = nc.subscribe(this.subjects.netInvoke(app, this.config.deviceId), {
        callback: (err, m) => {
          if (!err) void this.onInvoke(m, nc, app);
        },
      });
      this.relays.set(app, { sub, nc });
    }
  }

  /**
   * A function this device serves now, for its own door: placed here, while
   * the device takes calls (not paused or draining). `busy` when every
   * donated core is taken (the door then prefers a peer).
   */
  localFunction(app: string, fn: string): { version: string; limits: FunctionLimits; busy: boolean } | undefined {
    if (this.draining || this.pausedFor.length > 0 || !this.invocations) return undefined;
    const placed = this.placed.get(`${app}/${fn}`);
    if (!placed) return undefined;
    return { version: placed.version, limits: placed.limits, busy: this.gate.inUse >= this.config.cores };
  }

  /** The device's fabric subjects. */
  get fabricSubjects(): Subjects {
    return this.subjects;
  }

  /** While paused, heartbeats go on saying so (and why), with no functions: the platform sends nothing, the owner sees why. */
  private beatWhileAway(): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.config.heartbeatMs);
    this.heartbeat();
  }

  private listen(): void {
    this.subscribeControl();
    this.takeCalls();
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.config.heartbeatMs);
    this.heartbeat();
    this.log.info({ deviceId: this.config.deviceId, nats: this.config.natsUrl, cores: this.config.cores }, "agent joined the fabric");
  }

  /** Calls being served right now. */
  get activeCalls(): number {
    return this.active;
  }

  heartbeat(): void {
    if (this.nc.isClosed()) return;
    const away = this.draining || this.pausedFor.length > 0;
    const beat: Heartbeat = {
      deviceId: this.config.deviceId,
      ownerId: this.config.ownerId,
      region: this.config.region,
      location: this.config.location ?? UNDECLARED_LOCATION,
      cores: this.config.cores,
      memoryMb: this.config.memoryMb,
      activeCalls: this.active,
      freeCores: Math.max(0, this.config.cores - this.gate.inUse),
      functions: away ? [] : [...this.placed.values()].map(({ app, fn, version }) => ({ app, fn, version })),
      agentVersion: AGENT_VERSION,
      sentAt: Date.now(),
      // the owner's advertised door, once it is open (the platform checks it leads here before listing it)
      ...(this.door && this.config.advertise ? { door: { url: this.config.advertise, located: this.config.location !== undefined } } : {}),
      ...(this.config.publicPool ? {} : { publicPool: false }),
      // a paused or draining device still says so, so its owner sees why it serves nothing; the platform sends it nothing
      ...(away ? { away: { state: this.draining ? "draining" : "paused", pausedFor: [...this.pausedFor] } } : {}),
    };
    this.nc.publish(this.subjects.heartbeat(this.config.deviceId), JSON.stringify(beat));
  }

  private async onControl(msg: Msg): Promise<void> {
    const reply = (body: ControlReply): void => {
      msg.respond(JSON.stringify(body));
    };
    let data: unknown;
    try {
      data = msg.json();
    } catch {
      return reply({ error: { code: "ERR_BAD_MESSAGE", message: "control message is not JSON" } });
    }
    const parsed = ControlMessage.safeParse(data);
    if (!parsed.success) return reply({ error: { code: "ERR_BAD_MESSAGE", message: "invalid control message" } });
    const message = parsed.data;
    if (message.type === "ping") return reply({ ok: true });
    if (message.type === "credential") {
      try {
        await this.credentials.accept(message.jwt);
      } catch (error) {
        const e = error instanceof HearthError ? error : new HearthError("ERR_INTERNAL", (error as Error).message);
        return reply({ error: e.toWire() });
      }
      reply({ ok: true });
      // the new permissions hold from the next connection on: move to one now
      void this.useRenewedCredential();
      return;
    }
    if (message.type === "cancel") {
      // only a call still waiting for a core: one already running finishes (its answer is dropped, unbilled)
      this.waiting.get(message.requestId)?.abort();
      return reply({ ok: true });
    }
    const id = `${message.app}/${message.fn}`;
    try {
      if (message.type === "unplace") {
        this.unplace(id);
        return reply({ ok: true });
      }
      if (this.draining || this.pausedFor.length > 0) throw new HearthError("ERR_NO_DEVICE", "this device is draining or paused");
      const key = `${id}@${message.version}`;
      // The owner's memory cap: the warm isolate needs room (idle ones are evicted first), or the placement is refused.
      const release = this.memory.use(key, message.limits.memoryMb);
      const settings = callSettings(message, this.config.outboundAllowAddresses, this.config.outboundAllowPorts);
      try {
        const code = await this.bundles.get(message.version);
        // Warm up: compile the new version before it takes calls, so a bad bundle fails the placement.
        const loaded = await this.pool.load(key, code, sandboxLimits(message.limits), settings);
        if (!loaded.ok) {
          this.memory.forget(key);
          throw new HearthError(loaded.code, loaded.message);
        }
        if (this.draining || this.pausedFor.length > 0) throw new HearthError("ERR_NO_DEVICE", "this device started draining or pausing");
      } finally {
        release();
      }
      const current = this.placed.get(id);
      if (current) {
        if (current.version !== message.version) {
          this.pool.drop(`${id}@${current.version}`);
          this.memory.forget(`${id}@${current.version}`);
        }
        // a redeploy that changes only env or outbound lands here too: later calls get the new ones
        Object.assign(current, { version: message.version, limits: message.limits, settings });
      } else {
        this.placed.set(id, { app: message.app, fn: message.fn, version: message.version, limits: message.limits, settings });
      }
      this.log.info({ app: message.app, fn: message.fn, version: message.version.slice(0, 12) }, "function placed");
      this.heartbeat();
      void this.syncNetworks();
      reply({ ok: true });
    } catch (error) {
      const e = error instanceof HearthError ? error : new HearthError("ERR_INTERNAL", (error as Error).message);
      this.log.warn({ app: message.app, fn: message.fn, code: e.code }, `placement refused: ${e.message}`);
      reply({ error: e.toWire() });
    }
  }

  private unplace(id: string): void {
    const placed = this.placed.get(id);
    if (!placed) return;
    this.placed.delete(id);
    this.memory.forget(`${id}@${placed.version}`);
    // calls already running keep their sandbox; later ones are answered ERR_NO_DEVICE and the gateway tries another device
    this.pool.drop(`${id}@${placed.version}`);
    this.log.info({ app: placed.app, fn: placed.fn }, "function unplaced");
    this.heartbeat();
    void this.syncNetworks();
  }

  private onInvoke(msg: Msg, nc: NatsConnection, network?: string): Promise<void> {
    // while two connections hear this device's subjects (a move to a renewed credential), each call comes on both:
    // it runs once, on the first (its reply subject is the gateway's own for that call)
    const heard = this.heardDuringMove;
    if (heard && msg.reply) {
      if (performance.now() > this.moveDedupeUntil) this.heardDuringMove = undefined;
      else if (heard.has(msg.reply)) return Promise.resolve();
      else heard.add(msg.reply);
    }
    return this.answeringOn(nc, async () => {
      const reply = await this.runCall(msg.headers, msg.data, network);
      msg.respond(reply.data, { headers: reply.headers });
    });
  }

  /**
   * Runs a request's handler, counted on the connection it came in on from
   * arrival, so a move to a renewed credential keeps that connection until
   * the answer is out (a reply goes out only where its request came in).
   */
  private async answeringOn(nc: NatsConnection, handle: () => Promise<void>): Promise<void> {
    this.inflightOn.set(nc, (this.inflightOn.get(nc) ?? 0) + 1);
    try {
      await handle();
    } finally {
      const left = (this.inflightOn.get(nc) ?? 1) - 1;
      if (left > 0) this.inflightOn.set(nc, left);
      else this.inflightOn.delete(nc);
    }
  }

  /**
   * Runs one call on this device and answers it as a device reply (headers
   * and body, the invocation wire of protocol/): for the gateway, for a
   * peer's relay (`network`: the app network whose relay subject it came
   * on, which it must be a call of), and for this device's own door
   * (in-process, no fabric hop). Never rejects.
   */
  async runCall(h: MsgHdrs | undefined, data: Uint8Array, network?: string, inner = false): Promise<{ headers: MsgHdrs; data: Uint8Array }> {
    const started = performance.now();
    // counted from arrival, so a drain waits for queued calls too: none is lost
    this.active++;
    let release: (() => void) | undefined;
    let metered: { cpuMs: number; ok: boolean } | undefined;
    let untrace: (() => void) | undefined;
    let calls: CallerCalls | undefined;
    try {
      const meta = InvokeMeta.safeParse({
        requestId: h?.get(INVOKE_HEADERS.requestId),
        app: h?.get(INVOKE_HEADERS.app),
        fn: h?.get(INVOKE_HEADERS.fn),
        version: h?.get(INVOKE_HEADERS.version),
        method: h?.get(INVOKE_HEADERS.method),
        url: h?.get(INVOKE_HEADERS.url),
        timeoutMs: h?.get(INVOKE_HEADERS.timeoutMs),
        traceparent: h?.get(INVOKE_HEADERS.traceparent) || undefined,
      });
      if (!meta.success) throw new HearthError("ERR_BAD_MESSAGE", "invocation headers are missing or invalid");
      const { app, fn, version, requestId } = meta.data;
      // the budget runs from this device's own receipt of the call, on its own clock
      const deadline = Date.now() - Math.round(performance.now() - started) + meta.data.timeoutMs;
      // a peer may relay only calls of the network it relayed in (nats-server let it publish there, nowhere else), once
      if (network !== undefined && (app !== network || h?.get(INVOKE_HEADERS.hops) !== "1")) {
        throw new HearthError("ERR_BAD_MESSAGE", `a relay in network ${network} carried a call of ${app}, or was relayed more than once`);
      }
      const placed = this.placed.get(`${app}/${fn}`);
      if (!placed) {
        throw new HearthError("ERR_NO_DEVICE", `${app}/${fn} is not placed on this device`);
      }
      const requestHeaders: [string, string][] = [];
      for (const key of h!.keys()) {
        if (!key.startsWith(HTTP_HEADER_PREFIX)) continue;
        for (const value of h!.values(key)) requestHeaders.push([key.slice(HTTP_HEADER_PREFIX.length), value]);
      }
      // The gateway may already run a newer (or rolled-back) version than the last placement: it names the version.
      const code = await this.bundles.get(version);
      // At most `cores` calls run at once; the rest wait (bounded) for a core. A function's call of another function
      // here runs under its caller's core (docs/function-calls.md).
      release = inner ? () => undefined : (this.gate.tryAcquire() ?? (await this.waitForCore(requestId, deadline)));
      const key = `${app}/${fn}@${version}`;
      const core = release;
      const isolate = this.memory.use(key, placed.limits.memoryMb);
      release = () => {
        isolate();
        core();
      };
      // the call's log lines carry its trace id (looked up by function and request id while the call runs)
      if (meta.data.traceparent) untrace = this.traces.open(key, requestId, meta.data.traceparent.slice(3, 35));
      const depth = callDepth(h?.has(INVOKE_HEADERS.depth) ? h.get(INVOKE_HEADERS.depth) : undefined);
      calls = callerFor(this.callsHost, { app, requestId, depth, deadline, ...(meta.data.traceparent ? { traceparent: meta.data.traceparent } : {}) });
      const remaining = deadline - Date.now();
      const limits = sandboxLimits({ ...placed.limits, wallMs: Math.max(1, Math.min(placed.limits.wallMs, remaining)) });
      const result = await this.pool.invoke(key, code, requestId, limits, {
        method: meta.data.method,
        url: meta.data.url,
        headers: requestHeaders,
        body: data.byteLength > 0 ? (data as Uint8Array<ArrayBuffer>) : null,
      }, placed.settings, {
        onCall: calls.onCall,
        // a call in a chain may find its function's isolates all held by callers up the chain (here, or relayed back)
        nested: inner || depth > 0,
      });
      metered = { cpuMs: result.cpuMs, ok: result.ok };
      // a relayed call is credited only when this device, which ran it, says so too (docs/ledger.md)
      const callId = h?.get(INVOKE_HEADERS.callId);
      if (network !== undefined && callId) {
        this.usage.served({ id: callId, app, fn, version, cpuMs: result.cpuMs.toFixed(3), ok: result.ok });
      }
      return this.replyOf(result);
    } catch (error) {
      const e = error instanceof HearthError ? error : new HearthError("ERR_INTERNAL", (error as Error).message);
      if (!e.isUserError) this.log.warn({ code: e.code, err: e }, "invocation failed");
      const out = natsHeaders();
      out.set(INVOKE_HEADERS.errorCode, e.code);
      out.set(INVOKE_HEADERS.errorMessage, e.message.slice(0, 1000));
      out.set(INVOKE_HEADERS.wallMs, (performance.now() - started).toFixed(3));
      out.set(INVOKE_HEADERS.device, this.config.deviceId);
      return { headers: out, data: new Uint8Array(0) };
    } finally {
      // the function has its answer (or failed): its calls end here, before the core is given back
      await calls?.close();
      release?.();
      untrace?.();
      if (metered) this.meter(metered.cpuMs, metered.ok);
      this.active--;
      if (this.active === 0) this.idle?.();
    }
  }

  /** Waits for a core, cancellable meanwhile (a hedge's other device answered): only a call that waits has a cancel. */
  private async waitForCore(requestId: string, deadline: number): Promise<() => void> {
    const cancel = new AbortController();
    // request ids come from callers and may repeat: the first call waiting under one is the one a cancel reaches
    const cancellable = !this.waiting.has(requestId) && this.waiting.size < 100_000;
    if (cancellable) this.waiting.set(requestId, cancel);
    try {
      return await this.gate.acquire(deadline - Date.now(), cancel.signal);
    } finally {
      if (this.waiting.get(requestId) === cancel) this.waiting.delete(requestId);
    }
  }

  private meter(cpuMs: number, ok: boolean): void {
    const day = new Date().toISOString().slice(0, 10);
    if (this.today.day !== day) this.today = { day, calls: 0, errors: 0, cpuMs: 0 };
    this.today.calls++;
    if (!ok) this.today.errors++;
    this.today.cpuMs += cpuMs;
    this.served.calls++;
    if (!ok) this.served.errors++;
    this.served.cpuMs += cpuMs;
  }

  /** A snapshot for `hearth-agent status`. */
  status(): AgentStatus {
    const day = new Date().toISOString().slice(0, 10);
    if (this.today.day !== day) this.today = { day, calls: 0, errors: 0, cpuMs: 0 };
    return {
      deviceId: this.config.deviceId,
      ownerId: this.config.ownerId,
      state: this.draining ? "draining" : this.pausedFor.length > 0 ? "paused" : "serving",
      pausedFor: [...this.pausedFor],
      cores: this.config.cores,
      coresInUse: this.gate.inUse,
      queued: this.gate.queued,
      memoryMb: this.config.memoryMb,
      memoryWarmMb: this.memory.usedMb,
      functions: [...this.placed.values()].map((p) => ({ app: p.app, fn: p.fn, version: p.version, memoryMb: p.limits.memoryMb })),
      today: { ...this.today },
      connected: !this.nc.isClosed() && this.nc.getServer() !== "",
      startedAt: this.startedAt,
      ...(this.door ? { ingress: { ...this.door.status(), ...(this.config.advertise ? { advertised: this.config.advertise } : {}) } } : {}),
    };
  }

  get paused(): readonly PauseReason[] {
    return this.pausedFor;
  }

  /**
   * Leaves the fabric for calls while the owner's schedule, load, battery or
   * wish says so: the same as a drain (no new calls at once, in-flight calls
   * finish within the grace period), but the agent stays up and serves again
   * on resume. An empty list resumes.
   */
  async setPaused(reasons: readonly PauseReason[]): Promise<void> {
    if (this.draining) return;
    await this.pausing;
    const was = this.pausedFor.length > 0;
    this.pausedFor = [...reasons];
    if (reasons.length > 0 && !was) {
      this.log.info({ reasons }, "pausing: leaving the fabric for new calls; in-flight calls may finish");
      this.pausing = this.leave(this.config.drainGraceMs);
      this.beatWhileAway();
      await this.pausing;
      this.log.info({ reasons }, "paused");
    } else if (reasons.length === 0 && was) {
      this.log.info("resuming: joining the fabric again");
      this.listen();
    }
  }

  /** Stops serving heartbeats, control and new calls, forgets placements, waits for calls in flight. */
  private async leave(graceMs: number): Promise<void> {
    clearInterval(this.heartbeatTimer);
    this.control?.unsubscribe();
    this.control = undefined;
    this.placed.clear();
    await this.stopTakingCalls();
    await this.waitIdle(graceMs);
    // the owner gets the memory back while paused
    for (const key of this.memory.clear()) this.pool.drop(key);
  }

  private async waitIdle(graceMs: number): Promise<void> {
    if (this.active === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, graceMs);
      this.idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private replyOf(result: SandboxResult): { headers: MsgHdrs; data: Uint8Array } {
    const h = natsHeaders();
    h.set(INVOKE_HEADERS.cpuMs, result.cpuMs.toFixed(3));
    h.set(INVOKE_HEADERS.wallMs, result.wallMs.toFixed(3));
    h.set(INVOKE_HEADERS.cold, result.cold ? "1" : "0");
    h.set(INVOKE_HEADERS.device, this.config.deviceId);
    if (!result.ok) {
      h.set(INVOKE_HEADERS.errorCode, result.code);
      // NATS header values are one line
      h.set(INVOKE_HEADERS.errorMessage, oneLine(result.message));
      // the message (and stack) is the tenant's: it goes to the gateway and the function's logs, never the owner's log
      return { headers: h, data: new Uint8Array(0) };
    }
    h.set(INVOKE_HEADERS.status, String(result.status));
    for (const [name, value] of result.headers) {
      if (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) h.append(HTTP_HEADER_PREFIX + name, oneLine(value));
    }
    return { headers: h, data: result.body };
  }

  /**
   * Stops taking new calls at once (leaves every queue group), lets calls in
   * flight finish within the grace period, and stops heartbeats (after one
   * that says it is draining).
   */
  async drain(graceMs = this.config.drainGraceMs): Promise<void> {
    this.draining = true;
    clearInterval(this.heartbeatTimer);
    // one last beat says it is draining, so the platform stops sending calls at once rather than after missed beats
    this.heartbeat();
    await this.pausing;
    await this.stopTakingCalls();
    await this.waitIdle(graceMs);
  }

  /** Leaves the invocation subject: calls already delivered still get their answer; new ones go to other devices. */
  private async stopTakingCalls(): Promise<void> {
    const invocations = this.invocations;
    this.invocations = undefined;
    const relays = [...this.relays.values()];
    this.relays.clear();
    if (invocations && !this.nc.isClosed()) await drainWithin(invocations);
    for (const relay of relays) if (!relay.nc.isClosed()) await drainWithin(relay.sub);
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      this.clock.stop();
      this.credentials[Symbol.dispose]();
      if (this.revoked !== undefined) return this.closeRevoked();
      // the door first: no new call comes in, and its usage is reported while the fabric is still there
      await this.door?.close();
      await this.drain();
      // attestations of the relayed calls it served, while the fabric is still there
      await this.usage.flush();
      this.usage[Symbol.dispose]();
      // the console lines of the last calls, still held for a batch
      this.flushLogs?.();
      this.control?.unsubscribe();
      if (!(await drainWithin(this.nc))) {
        this.log.warn(`the fabric did not confirm the drain within ${DRAIN_WAIT_MS / 1000} s (the connection is away); closing it`);
        await this.nc.close().catch(() => undefined);
      }
      await this.pool[Symbol.asyncDispose]();
      this.log.info("agent stopped");
    })());
  }

  /**
   * Revoked: the fabric takes nothing more from this device (no reply, no
   * report, no heartbeat reaches anyone), so nothing waits on it. Calls
   * still running end with their sandbox processes; their callers were told
   * already (the gateway saw the device leave).
   */
  private async closeRevoked(): Promise<void> {
    this.draining = true;
    clearInterval(this.heartbeatTimer);
    this.invocations = undefined;
    this.relays.clear();
    await this.door?.close();
    this.usage[Symbol.dispose]();
    await this.nc.close().catch(() => undefined);
    await this.pool[Symbol.asyncDispose]();
    this.log.info("agent stopped (revoked)");
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * How long the agent waits for nats-server to confirm a drain (its PONG)
 * on the way out. A connection that is away (reconnecting, or an old one
 * the server dropped after a credential moved) would never confirm, and an
 * owner's Ctrl-C must not hang on it: past this, the subscription is left
 * (or the connection closed) without the confirmation.
 */
const DRAIN_WAIT_MS = 2_000;

/** Drains a subscription or connection, waiting at most DRAIN_WAIT_MS; false when it was not confirmed in time (a subscription is then left at once). */
async function drainWithin(what: Subscription | NatsConnection): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const confirmed = await Promise.race([
    what.drain().then(() => true, () => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), DRAIN_WAIT_MS))),
  ]);
  clearTimeout(timer);
  if (!confirmed && "unsubscribe" in what) {
    try {
      what.unsubscribe();
    } catch {
      // closed meanwhile: nothing to leave
    }
  }
  return confirmed;
}

/** How long after a move to a renewed credential a call heard twice (on the old and the new connection) still runs once. */
const MOVE_DEDUPE_MS = 10_000;

/** The device's fabric connection: its own credential and inbox, reconnecting forever with backoff. */
function connectFabric(config: Readonly<AgentConfig>, credentials: FabricCredentials, backoff: ReconnectBackoff, waitOnFirstConnect: boolean): Promise<NatsConnection> {
  return connect({
    servers: config.natsUrl,
    name: `hearth-agent:${config.deviceId}`,
    // forever, with exponential backoff and jitter (reconnect.ts): a device may be offline for days
    maxReconnectAttempts: -1,
    waitOnFirstConnect,
    reconnectDelayHandler: backoff.handler,
    // the credential file is read at every connect, so a renewed one is used from the next (re)connect on
    authenticator: credentials.authenticator(),
    // replies to this device's own requests come under its own inbox prefix, the only inbox it may hear
    inboxPrefix: new Subjects(config.subjectPrefix).inbox(config.deviceId),
    // a refused credential is renewed while nats.js keeps trying (watchConnection); a revoked device stops
    ignoreAuthErrorAbort: true,
  });
}

function sandboxLimits(limits: FunctionLimits) {
  return { memoryMb: limits.memoryMb, cpuMs: limits.cpuMs, wallMs: limits.wallMs, responseBytes: limits.responseBytes };
}

/**
 * What the sandbox needs besides limits: the env, the outbound policy (without one, `fetch` is refused) and
 * whether Node compatibility is on. Ports other than 80/443 are those both the function and the owner allow.
 */
export function callSettings(
  f: { env?: FunctionEnv; outbound?: OutboundSettings; compatibilityFlags?: readonly CompatibilityFlag[]; bindings?: FunctionBindings },
  allowAddresses: readonly string[],
  allowPorts: readonly number[],
): CallSettings {
  // the owner's exceptions apply only where the function's own policy allows fetch at all
  const owner = allowAddresses.length > 0 ? { allowAddresses } : {};
  const ports = f.outbound?.ports?.filter((port) => allowPorts.includes(port)) ?? [];
  return {
    ...(f.env ? { env: f.env } : {}),
    ...(f.outbound
      ? { outbound: { allow: f.outbound.allow, ...(f.outbound.hosts ? { hosts: f.outbound.hosts } : {}), ...(ports.length > 0 ? { ports } : {}), ...owner } }
      : {}),
    ...(f.compatibilityFlags?.includes("nodejs_compat") ? { nodejsCompat: true } : {}),
    ...(f.bindings && Object.keys(f.bindings).length > 0 ? { bindings: f.bindings } : {}),
  };
}

function oneLine(value: string): string {
  return value.replace(/[\r\n]+/g, " ").slice(0, 4000);
}
