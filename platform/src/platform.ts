/** Wires one platform process: NATS, state, scheduler, bundle service, API and gateway over HTTP. */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Subjects } from "@hearth/protocol";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { createApi } from "./api/index.ts";
import { createConsole } from "./console/index.ts";
import { serveBundles } from "./bundles/index.ts";
import { AppHosts } from "./gateway/hosts.ts";
import { DoorService } from "./doors/index.ts";
import { DoorDirectory } from "./doors/directory.ts";
import { createGateway, type DeviceNearness } from "./gateway/index.ts";
import { DeviceLatency } from "./gateway/latency.ts";
import { LoadMeter } from "./scheduler/load.ts";
import { CallTracing } from "./tracing/index.ts";
import { startLedger, type Ledger, type LedgerMode } from "./ledger/index.ts";
import { EXACT_HEADERS_SERVER_OPTIONS } from "@hearth/edge";
import { CallLimits, DEFAULT_CALL_LIMITS, FRONT_DOOR, frontDoorServerOptions, onClientError, type CallLimitSettings } from "@hearth/edge";
import { errorResponse, notFound, onError, REQUEST_ID_HEADER, type HearthEnv } from "./http/index.ts";
import { AppNetworks, bearerToken, mayServe, DeviceRegistry, FabricAuthority, FabricControl, sameSecret, type FabricKeys } from "./identity/index.ts";
import { PlatformMetrics } from "./metrics/index.ts";
import { openApiDocument } from "./openapi/index.ts";
import { relayDeviceLogs } from "./logs/relay.ts";
import type { Logger } from "./log/index.ts";
import { FunctionLogs } from "./logs/index.ts";
import { Scheduler } from "./scheduler/index.ts";
import { connectRedis, Store } from "./state/index.ts";
import { FunctionStats } from "./stats/index.ts";

export interface PlatformOptions {
  natsUrl: string;
  token: string;
  /** The fabric's keys (hearth-platform fabric init): the platform connects with them and signs device credentials. */
  fabricKeys: FabricKeys;
  /** The region (NATS cluster) this platform process runs in: its gateway tries devices there first. */
  region?: string;
  /** Lifetime of device fabric credentials, seconds (default one day; tests shorten it). */
  credentialTtlSeconds?: number;
  log: Logger;
  redisUrl?: string;
  redisPrefix?: string;
  subjectPrefix?: string;
  host?: string;
  port?: number;
  publicUrl?: string;
  /** Scheduler timings (tests shorten them). */
  deadAfterMs?: number;
  tickMs?: number;
  scaleInAfterMs?: number;
  /** Usage metering without JetStream: "required" fails the start, "auto" (default) warns loudly and runs unmetered. */
  ledger?: LedgerMode;
  /** Fabric URL joined devices connect to (default: natsUrl). */
  publicNatsUrl?: string;
  /** Serve each app on its own host `<app>.<appDomain>` (docs/security.md); without it, only the path form `/fn/<app>/<fn>`. */
  appDomain?: string;
  /** Rate and concurrency limits on function calls (default DEFAULT_CALL_LIMITS). */
  callLimits?: CallLimitSettings;
  /** A header a trusted proxy sets to the client's IP (its last entry is used). */
  clientIpHeader?: string;
  /** A header a trusted proxy sets to the caller's location, `<lat>,<lon>` (docs/routing.md). */
  clientLocationHeader?: string;
  /** Where this platform process (its gateway) is: a door nearer a caller than this is named in a Link hint (docs/routing.md). */
  location?: { lat: number; lon: number };
  /** The door check may reach private, loopback and link-local addresses (a LAN deployment, tests). */
  doorsAllowPrivate?: boolean;
  /** How often advertised doors are looked at (default 2 s; tests shorten it). */
  doorSweepMs?: number;
  /** How often each live device's round trip is measured again (default 10 s; tests shorten it, so one slow ping washes out fast). */
  latencyEveryMs?: number;
  /** Export each call's spans to this OTLP/HTTP traces URL (…/v1/traces). */
  otlpTracesUrl?: string;
  /** How often spans are sent (default 2 s; tests shorten it). */
  otlpExportEveryMs?: number;
}

export interface Platform extends AsyncDisposable {
  readonly url: string;
  readonly app: Hono<HearthEnv>;
  readonly store: Store;
  readonly scheduler: Scheduler;
  readonly nc: NatsConnection;
  readonly embeddedState: boolean;
  readonly ledger: Ledger;
  readonly devices: DeviceRegistry;
  readonly fabric: FabricControl;
  /** Application networks: invites, members, private apps. */
  readonly networks: AppNetworks;
  /** Devices' own doors: peer lookups, door usage, network credentials. */
  readonly doors: DoorService;
  readonly authority: FabricAuthority;
  /** Each live device's measured round trip from this process. */
  readonly latency: DeviceLatency;
  /** The doors callers may be sent to (advertised, reached, live members of their networks). */
  readonly doorDirectory: DoorDirectory;
  readonly metrics: PlatformMetrics;
  close(): Promise<void>;
}

/** The HTTP app alone (API + gateway), for in-process tests with `app.request()`. */
export function createHttpApp(parts: {
  store: Store;
  scheduler: Scheduler;
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  token: string;
  publicUrl: () => string;
  embeddedState: boolean;
  ledger?: Ledger;
  logs?: FunctionLogs;
  devices: DeviceRegistry;
  fabric: FabricControl;
  networks: AppNetworks;
  region?: string;
  appHosts?: AppHosts;
  callLimits?: CallLimitSettings;
  clientIpHeader?: string;
  clientLocationHeader?: string;
  tracing?: CallTracing;
  latency?: DeviceNearness;
  load?: LoadMeter;
  stats?: FunctionStats;
  metrics?: PlatformMetrics;
  doorDirectory?: DoorDirectory;
  /** This process's location, for the gateway's nearer-door hint. */
  location?: { lat: number; lon: number };
}): Hono<HearthEnv> {
  const app = new Hono<HearthEnv>();
  const { metrics } = parts;
  const meter = parts.ledger?.onCall;
  const gateway = createGateway({
    ...parts,
    onNoDevice: (a, f) => parts.scheduler.suspect(a, f),
    onCall: metrics ? (facts) => (metrics.observeCall(facts), meter?.(facts)) : meter,
    liveDevice: (id) => parts.scheduler.liveDevice(id),
    deviceGone: (listener) => parts.scheduler.onGone(listener),
    placed: (listener) => parts.scheduler.onPlacement(listener),
    anyLiveDevice: () => parts.scheduler.hasLiveDevices(),
    region: parts.region,
    callLimits: new CallLimits(parts.callLimits ?? DEFAULT_CALL_LIMITS),
    clientIpHeader: parts.clientIpHeader,
    clientLocationHeader: parts.clientLocationHeader,
    tracing: parts.tracing,
    latency: parts.latency,
    load: parts.load,
    nearerDoor: parts.doorDirectory && parts.location ? nearerDoorOf(parts.doorDirectory, parts.location) : undefined,
  });
  app.use("*", requestId({ headerName: REQUEST_ID_HEADER, limitLength: 255 }));
  app.onError(onError(parts.log));
  app.notFound(notFound);
  app.use("*", async (c, next) => {
    const url = new URL(c.req.url);
    if (url.pathname.length + url.search.length > FRONT_DOOR.maxUrlBytes) {
      return errorResponse(c, "ERR_URL_TOO_LONG", `the URL's path and query are over ${FRONT_DOOR.maxUrlBytes} bytes`);
    }
    return next();
  });
  // before the API: a bad Host is refused, and an app's host answers everything itself, so /v1 is never served there
  app.use("*", gateway.hosts);
  // Prometheus metrics name apps and functions: the operator's only (a scrape config's `authorization`)
  if (metrics) {
    app.get("/metrics", async (c) => {
      const token = bearerToken(c.req.header("authorization"));
      if (!token) return errorResponse(c, "ERR_UNAUTHORIZED", "GET /metrics needs the operator token: `Authorization: Bearer <HEARTH_TOKEN>` (in Prometheus: authorization.credentials)");
      if (!sameSecret(token, parts.token)) return errorResponse(c, "ERR_FORBIDDEN", "GET /metrics needs the operator token (the HEARTH_TOKEN the platform runs with)");
      const { body, contentType } = await metrics.text();
      return c.body(body, 200, { "Content-Type": contentType, "Cache-Control": "no-store" });
    });
  }
  // built once: the routes and their schemas do not change while the process runs
  let openapi: string | undefined;
  app.get("/openapi.json", (c) => {
    openapi ??= JSON.stringify(openApiDocument(parts.publicUrl() || undefined));
    return c.body(openapi, 200, { "Content-Type": "application/json" });
  });
  app.route("/v1", createApi(parts));
  // the console is on the API's host like /v1: the hosts check above answers every app host first
  app.route("/", createConsole({ sharedOrigin: !parts.appHosts }));
  app.route("/", gateway.routes);
  return app;
}

function nearerDoorOf(directory: DoorDirectory, gateway: { lat: number; lon: number }) {
  return (app: string, fn: string, caller: { lat: number; lon: number }) => directory.nearerDoor(app, fn, caller, gateway);
}

export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const { log } = options;
  const subjects = new Subjects(options.subjectPrefix);
  const { redis, embedded } = connectRedis(options.redisUrl);
  if (embedded) log.warn("no REDIS_URL set: state is kept in memory (ioredis-mock) and lost when the platform stops");
  else {
    // ioredis reconnects on its own; say so in our log (once a few seconds), not as its own unhandled-error noise
    let lastRedisError = 0;
    redis.on("error", (error: Error) => {
      if (Date.now() - lastRedisError < 5_000) return;
      lastRedisError = Date.now();
      log.warn({ err: error }, "state store (Redis) unreachable; reconnecting");
    });
  }
  const store = new Store(redis, options.redisPrefix);
  // noAsyncTraces: nats.js otherwise builds two Error objects (stack traces) per request up front, in case it fails;
  // on the gateway's hot path that was ~5% of the platform's CPU (BENCHMARKS.md). Errors still carry their message and cause.
  const authority = new FabricAuthority(options.fabricKeys);
  // the platform's own credential: the whole Hearth account, a fresh key per process (docs/security.md)
  const nc = await connect({
    servers: options.natsUrl,
    name: "hearth-platform",
    maxReconnectAttempts: -1,
    noAsyncTraces: true,
    authenticator: credsAuthenticator(await authority.platformCreds()),
  });
  const devices = new DeviceRegistry({
    redis, prefix: options.redisPrefix ?? "hearth:", authority, subjects,
    publicNatsUrl: options.publicNatsUrl ?? options.natsUrl, credentialTtlSeconds: options.credentialTtlSeconds,
  });
  let fabric: FabricControl;
  try {
    fabric = await FabricControl.start({ authority, registry: devices, nc, natsUrl: options.natsUrl, subjects, log: log.child({ part: "fabric" }) });
  } catch (error) {
    await nc.close();
    redis.disconnect();
    throw error;
  }
  let doors: DoorService | undefined;
  const networks = new AppNetworks({ redis, prefix: options.redisPrefix ?? "hearth:", devices });
  const scheduler = new Scheduler({
    store, nc, subjects, log: log.child({ part: "scheduler" }), deadAfterMs: options.deadAfterMs, tickMs: options.tickMs, scaleInAfterMs: options.scaleInAfterMs, directory: fabric,
    onPlaced: (deviceId, app) => doors?.placed(deviceId, app),
    eligibility: (app) => networks.eligibility(app),
  });
  // membership changed: the device's functions move (the scheduler), and its credential says so (its control subject)
  // (the credential first: a placement sent while the agent moves to its new connection could be lost)
  networks.changed = async (deviceId) => {
    await doors?.pushCredential(deviceId).catch((error: unknown) =>
      log.warn({ err: error, deviceId }, "could not hand the device its new network credential now; it gets it with its next renewal"),
    );
    scheduler.kick();
  };
  fabric.onRevoked = (deviceId) => scheduler.forget(deviceId);
  // a device's connection closed: the scheduler asks the device, and if it is gone its calls move at once (docs/routing.md)
  fabric.onDisconnect = (deviceId) => void scheduler.connectionClosed(deviceId);
  const bundles = serveBundles(nc, subjects, store, log);
  const stats = new FunctionStats(redis, options.redisPrefix);
  const ledger = await startLedger({ nc, subjects, redis, embedded, prefix: options.redisPrefix, log, mode: options.ledger, onFolded: (r) => stats.record(r) }).catch(async (error: unknown) => {
    bundles.unsubscribe();
    await fabric.close();
    await nc.close();
    redis.disconnect();
    throw error;
  });
  // function logs live in JetStream next to usage; without it the platform runs and log reads say why they cannot
  const logs = await FunctionLogs.start({ nc, subjects, log }).catch((error: unknown) => {
    log.warn({ err: error }, "JetStream is not available: function logs are not kept (GET .../logs answers ERR_LOGS_UNAVAILABLE)");
    return undefined;
  });
  // devices' log lines reach the logs stream only through this check (the device from its subject, the function placed on it)
  const logRelay = logs ? relayDeviceLogs({ nc, subjects, store, log: log.child({ part: "logs" }) }) : undefined;
  // devices' own doors: peers of their networks, and the calls they took, metered like the gateway's (docs/ledger.md)
  doors = new DoorService({
    nc, subjects, store, devices, liveDevice: (id) => scheduler.liveDevice(id), log: log.child({ part: "doors" }), onCall: ledger?.onCall,
    mayServe: async (id, app) => mayServe(await networks.eligibility(app), id, scheduler.liveDevice(id)?.heartbeat.publicPool),
    invited: async (id, app) => (await networks.invitedApps(id)).includes(app),
  });
  let url = options.publicUrl ?? "";
  const appHosts = options.appDomain ? new AppHosts(options.appDomain, () => url) : undefined;
  // each call's spans, to the operator's collector when one is configured
  const tracing = options.otlpTracesUrl ? new CallTracing({ endpoint: options.otlpTracesUrl, region: options.region, exportEveryMs: options.otlpExportEveryMs }) : undefined;
  // each function's calls in flight, reported to every scheduler (scaling) every 2 s
  const load = new LoadMeter(nc, subjects, randomUUID(), options.region);
  // how near each live device is to this process (measured by pings, never taken from the device)
  const latency = new DeviceLatency({
    nc, subjects, devices: () => scheduler.liveDevices().map((d) => d.heartbeat.deviceId),
    ...(options.latencyEveryMs !== undefined ? { everyMs: options.latencyEveryMs } : {}),
  });
  const metrics = new PlatformMetrics({ store, scheduler, devices, ledger, nc });
  // advertised doors, checked at their URLs, for the public listing and the gateway's hint
  const doorDirectory = new DoorDirectory({
    liveDevices: () => scheduler.liveDevices(), liveDevice: (id) => scheduler.liveDevice(id), networks: (id) => devices.networks(id),
    rttOf: (id) => latency.rttOf(id), allowPrivate: options.doorsAllowPrivate, sweepMs: options.doorSweepMs, log: log.child({ part: "door-directory" }),
  });
  const app = createHttpApp({
    store, scheduler, nc, subjects, log, token: options.token, publicUrl: () => url, embeddedState: embedded, ledger, logs, appHosts, devices, fabric, networks,
    region: options.region, callLimits: options.callLimits, clientIpHeader: options.clientIpHeader,
    clientLocationHeader: options.clientLocationHeader, tracing, latency, load, stats, metrics, doorDirectory, location: options.location,
  });

  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve(
      { fetch: app.fetch, hostname: options.host ?? "127.0.0.1", port: options.port ?? 0, serverOptions: { ...EXACT_HEADERS_SERVER_OPTIONS, ...frontDoorServerOptions() } },
      () => resolve(s),
    );
    s.once("error", reject);
    s.on("clientError", onClientError);
    s.maxConnections = FRONT_DOOR.maxConnections;
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  if (!url) url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${address.port}`;
  scheduler.start();
  latency.start();
  doorDirectory.start();
  log.info({ url, nats: options.natsUrl, state: embedded ? "embedded (ioredis-mock)" : "redis", appDomain: options.appDomain }, "platform started");
  if (!appHosts) {
    log.info("no HEARTH_APP_DOMAIN: functions are served on the path form /fn/<app>/<fn>, where every app shares one origin; fine for local use, set HEARTH_APP_DOMAIN before browsers use it (docs/security.md)");
  }

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      // open log follow streams end first, or the HTTP server would wait for them
      await logs?.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await latency[Symbol.asyncDispose]();
      await doorDirectory[Symbol.asyncDispose]();
      await load[Symbol.asyncDispose]();
      await tracing?.close();
      await scheduler[Symbol.asyncDispose]();
      // every call answered so far has its usage record stored before the fabric connection goes
      await ledger.close();
      bundles.unsubscribe();
      logRelay?.unsubscribe();
      doors?.close();
      await fabric.close();
      await nc.drain().catch(() => undefined);
      redis.disconnect();
    })());
  return { url, app, store, scheduler, nc, embeddedState: embedded, ledger, devices, fabric, networks, doors, authority, latency, doorDirectory, metrics, close, [Symbol.asyncDispose]: close };
}
