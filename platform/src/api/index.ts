/**
 * The platform API (`/v1`): deploy, list, get, delete and roll back
 * functions; list devices; developers and their tokens (identity/). Every
 * input is validated with zod; every error is the `{ error: { code,
 * message, requestId } }` envelope.
 *
 * Function routes are a developer's, on their own apps only: another
 * developer's app answers exactly as an app that does not exist (404, the
 * same message), and nothing is changed. The operator's token reaches only
 * operator routes (`operatorOnly`).
 */
import { createHash } from "node:crypto";
import {
  AppName,
  decodeEnvHeader,
  DeviceId,
  AppNetworkSettings,
  ENV_HEADER,
  FunctionEnv,
  FunctionLimitsInput,
  Scaling,
  CompatibilityFlags,
  FunctionBindings,
  parseBindingList,
  OutboundSettings,
  FunctionName,
  HearthError,
  NetworkInviteRequest,
  MAX_BUNDLE_BYTES,
  resolveLimits,
  RollbackRequest,
  type DeviceView,
  type FunctionRecord,
  type FunctionView,
} from "@hearth/protocol";
import { Hono } from "hono";
import { z } from "zod";
import type { AppHosts } from "../gateway/hosts.ts";
import { readBody } from "@hearth/edge";
import { createConsoleApi } from "../console/api.ts";
import type { DoorDirectory } from "../doors/directory.ts";
import { createDoorRoutes } from "../doors/routes.ts";
import { parseInput, type HearthEnv } from "../http/index.ts";
import { apiAuth, AppOwners, type AppNetworks, createDeveloperRoutes, createDeviceAdminRoutes, createDeviceRoutes, developerOf, Developers, operatorOnly, type DeviceRegistry, type FabricControl } from "../identity/index.ts";
import { createLedgerRoutes, type Ledger } from "../ledger/index.ts";
import type { Logger } from "../log/index.ts";
import { createLogRoutes, type FunctionLogs } from "../logs/index.ts";
import { settingsFingerprint, type Scheduler } from "../scheduler/index.ts";
import type { Store } from "../state/index.ts";
import { FunctionStats } from "../stats/index.ts";

export interface ApiOptions {
  store: Store;
  scheduler: Scheduler;
  token: string;
  /** Base URL callers use, for the function URLs the API returns. */
  publicUrl: () => string;
  /** Each app on its own host: function URLs are on it. */
  appHosts?: AppHosts;
  embeddedState: boolean;
  /** Usage and credits (docs/ledger.md). */
  ledger?: Ledger;
  /** Joined devices and the fabric's trust (docs/security.md). */
  devices: DeviceRegistry;
  fabric: FabricControl;
  /** Application networks: invites, members, private apps (docs/security.md). */
  networks: AppNetworks;
  /** Function logs (needs JetStream); without them log reads answer ERR_LOGS_UNAVAILABLE. */
  logs?: FunctionLogs;
  log?: Logger;
  /** Per-minute function stats for the console (default: read from the store's Redis). */
  stats?: FunctionStats;
  /** Devices' doors callers may be sent to (GET /apps/:app/doors, public). */
  doorDirectory?: DoorDirectory;
  region?: string;
  clientIpHeader?: string;
  clientLocationHeader?: string;
}

const FunctionParams = z.object({ app: AppName, fn: FunctionName });
const AppParams = z.object({ app: AppName });
const MemberParams = z.object({ app: AppName, device: DeviceId });

/** Deploy options travel as query parameters; the bundle is the raw body. */
export const DeployQuery = z.strictObject({
  replicas: z.coerce.number().int().min(1).max(16).optional(),
  /** Scale out to this many devices under load (default: replicas, no scaling out). */
  maxReplicas: z.coerce.number().optional(),
  /** Scale to zero after this many seconds without a call (0: never, the default). */
  scaleToZeroAfter: z.coerce.number().optional(),
  memoryMb: z.coerce.number().optional(),
  cpuMs: z.coerce.number().optional(),
  wallMs: z.coerce.number().optional(),
  requestBytes: z.coerce.number().optional(),
  responseBytes: z.coerce.number().optional(),
  /** Outbound fetch: `allowFetch=true`, optionally narrowed by `fetchHosts=a.example,*.b.example`. The env travels in the Hearth-Env header. */
  allowFetch: z.enum(["true", "false"]).optional(),
  fetchHosts: z.string().max(16_384).optional(),
  /** Ports besides 80/443 the function may fetch, `fetchPorts=8080,8443` (the device's owner must allow them too). */
  fetchPorts: z.string().max(1_024).optional(),
  /** Compatibility flags, comma separated: `nodejs_compat` (or `nodejs`); `none` clears them. */
  compat: z.string().max(256).optional(),
  /** `private=true`: the app's functions are placed only on devices invited into its network; `false` opens it to the public pool again. */
  private: z.enum(["true", "false"]).optional(),
  /** Service bindings, comma separated: `bind=AUTH=auth,STORE=store` (`env.AUTH.fetch(request)` calls function auth of the app); `bind=none` clears them. */
  bind: z.string().max(8_192).optional(),
});

const bindingsOf = (bindings: FunctionRecord["bindings"]) => (bindings && Object.keys(bindings).length > 0 ? { bindings } : {});

/** `NAME=fn,OTHER=fn2` (or `none`) from the deploy query, as bindings. */
function parseBindings(value: string): FunctionBindings {
  if (value.trim() === "none") return {};
  if (value.trim() === "") throw new HearthError("ERR_BAD_REQUEST", "bind: name at least one binding as NAME=function, or bind=none to clear them");
  const list = parseBindingList([value]);
  if ("error" in list) throw new HearthError("ERR_BAD_REQUEST", `bind: ${list.error}`);
  return parseInput(FunctionBindings, list, "bind");
}

const compatFlags = (flags: FunctionRecord["compatibilityFlags"]) => (flags && flags.length > 0 ? { compatibilityFlags: flags } : {});

/** `compat=` as flags: `nodejs` is short for `nodejs_compat`, `none` (or empty) means none. */
function parseCompat(value: string): unknown {
  const names = value.split(",").map((n) => n.trim()).filter((n) => n !== "" && n !== "none");
  return [...new Set(names.map((n) => (n === "nodejs" ? "nodejs_compat" : n)))];
}

const DEFAULT_REPLICAS = 2;

export function createApi(options: ApiOptions): Hono<HearthEnv> {
  const { store, scheduler } = options;
  const api = new Hono<HearthEnv>();
  const developers = new Developers({ redis: store.redis, prefix: store.prefix });
  const owners = new AppOwners({ redis: store.redis, prefix: store.prefix });

  api.get("/health", async (c) => {
    const devices = await scheduler.liveDevices();
    return c.json({ ok: true, embeddedState: options.embeddedState, devices: devices.length });
  });

  // joining and reading a device's credits authenticate with join and device tokens
  api.route("/", createDeviceRoutes({ registry: options.devices, control: options.fabric, ledger: options.ledger, operatorToken: options.token, networks: options.networks }));

  // public: an app's doors are for its own callers (platform/src/doors/routes.ts says why)
  if (options.doorDirectory) {
    api.route("/", createDoorRoutes({
      directory: options.doorDirectory, owners, region: options.region, clientIpHeader: options.clientIpHeader, clientLocationHeader: options.clientLocationHeader,
    }));
  }

  api.use("*", apiAuth({ operatorToken: options.token, developers, devices: options.devices }));

  api.route("/", createDeveloperRoutes({ developers, owners, log: options.log }));
  api.route("/", createDeviceAdminRoutes({ registry: options.devices, control: options.fabric }));
  if (options.ledger) api.route("/", createLedgerRoutes(options.ledger, owners));
  api.route("/", createLogRoutes({ store, owners, logs: options.logs, log: options.log }));
  api.route("/", createConsoleApi({
    store, owners, scheduler, devices: options.devices, ledger: options.ledger, stats: options.stats ?? new FunctionStats(store.redis, store.prefix),
  }));

  /** The function, when it exists and the caller owns its app; otherwise the one 404 a missing function gets. */
  const ownFunction = async (developerId: string, app: string, fn: string): Promise<FunctionRecord> => {
    const record = (await owners.owns(developerId, app)) ? await store.getFunction(app, fn) : null;
    if (!record) throw notFound(app, fn);
    return record;
  };

  const view = async (record: FunctionRecord): Promise<FunctionView> => {
    const placement = await store.getPlacement(record.app, record.name);
    const live = new Set((await scheduler.liveDevices()).map((d) => d.heartbeat.deviceId));
    const devices = Object.entries(placement.devices).filter(([id]) => live.has(id));
    // ready = a live device serves exactly what was deployed last: version, limits, env and outbound settings
    const limits = JSON.stringify(record.limits);
    const settings = settingsFingerprint(record);
    const ready = devices.some(([, p]) => p.version === record.version && p.limits === limits && p.settings === settings);
    // env values (secrets) never leave the platform through the API: only their names
    const { env, ...shown } = record;
    return {
      ...shown,
      ...(env ? { envNames: Object.keys(env) } : {}),
      status: ready ? "ready" : devices.length === 0 && scheduler.isIdle(record) ? "idle" : "pending",
      devices: devices.map(([id]) => id),
      regions: Object.fromEntries(devices.map(([id]) => [id, scheduler.liveDevice(id)?.heartbeat.region ?? "unknown"])),
      url: options.appHosts ? options.appHosts.functionUrl(record.app, record.name) : `${options.publicUrl()}/fn/${record.app}/${record.name}`,
    };
  };

  api.put("/apps/:app/functions/:fn", async (c) => {
    const me = developerOf(c);
    const { app, fn } = parseInput(FunctionParams, c.req.param(), "path");
    const query = parseInput(DeployQuery, c.req.query(), "query");
    const { replicas: replicasInput, maxReplicas, scaleToZeroAfter, allowFetch, fetchHosts, fetchPorts, compat, private: privateApp, bind, ...limitInput } = query;
    const envHeader = c.req.header(ENV_HEADER);
    const env = envHeader === undefined ? undefined : parseInput(FunctionEnv, decodeEnvHeader(envHeader), "env");
    const outbound =
      allowFetch === undefined && fetchHosts === undefined && fetchPorts === undefined
        ? undefined
        : parseInput(
            OutboundSettings,
            dropUndefined({
              allow: allowFetch !== "false",
              hosts: fetchHosts?.split(",").map((h) => h.trim()).filter(Boolean),
              ports: fetchPorts?.split(",").map((p) => p.trim()).filter(Boolean).map(Number),
            }),
            "outbound",
          );
    const compatibilityFlags = compat === undefined ? undefined : parseInput(CompatibilityFlags, parseCompat(compat), "compat");
    const bindings = bind === undefined ? undefined : parseBindings(bind);
    const limits = resolveLimits(parseInput(FunctionLimitsInput, dropUndefined(limitInput), "limits"));
    const bundle = await readBody(c.req.raw, MAX_BUNDLE_BYTES).catch((error: unknown) => {
      if (error instanceof HearthError && error.code === "ERR_BODY_TOO_LARGE") {
        throw new HearthError("ERR_BUNDLE_TOO_LARGE", `bundle is over ${MAX_BUNDLE_BYTES} bytes; split the function or drop unused dependencies`);
      }
      throw error;
    });
    if (bundle.byteLength === 0) throw new HearthError("ERR_BAD_BUNDLE", "the request body must be the function's bundled JavaScript module; it was empty");
    checkBundle(bundle);
    // the first deploy to an app makes it the caller's; another developer's app is refused before anything is written
    if (!(await owners.claim(me.developer.id, app, async () => (await store.listFunctions(app)).length > 0))) throw notYours(app, fn);
    // before the function is saved: a private app's new function is never placed outside its network, not even once
    if (privateApp !== undefined) await options.networks.setPrivate(app, privateApp === "true");
    const version = createHash("sha256").update(bundle).digest("hex");
    const now = new Date().toISOString();
    const previous = await store.getFunction(app, fn);
    const replicas = replicasInput ?? previous?.replicas ?? DEFAULT_REPLICAS;
    // a deploy that names neither keeps the function's scaling; naming one keeps the other
    const scaling =
      maxReplicas === undefined && scaleToZeroAfter === undefined
        ? previous?.scaling
        : parseInput(
            Scaling,
            { maxReplicas: maxReplicas ?? previous?.scaling?.maxReplicas ?? replicas, idleSeconds: scaleToZeroAfter ?? previous?.scaling?.idleSeconds ?? 0 },
            "scaling",
          );
    if (scaling && scaling.maxReplicas < replicas) throw new HearthError("ERR_BAD_REQUEST", `scaling: maxReplicas (${scaling.maxReplicas}) must be at least replicas (${replicas})`);
    const record: FunctionRecord = {
      app,
      name: fn,
      version,
      limits,
      replicas,
      ...(scaling ? { scaling } : {}),
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
      // a deploy that does not name them keeps the function's env and outbound settings
      ...dropUndefined({ env: env ?? previous?.env, outbound: outbound ?? previous?.outbound }),
      ...compatFlags(compatibilityFlags ?? previous?.compatibilityFlags),
      ...bindingsOf(bindings ?? previous?.bindings),
    };
    const clash = Object.keys(record.bindings ?? {}).find((name) => record.env !== undefined && Object.hasOwn(record.env, name));
    if (clash) throw new HearthError("ERR_BAD_REQUEST", `bind: ${clash} is both an env var and a binding; rename one (env.${clash} can be only one of them)`);
    await store.putBundle(version, bundle);
    const existing = await store.getVersion(app, fn, version);
    await store.saveFunction(record, existing ?? { version, size: bundle.byteLength, createdAt: now });
    scheduler.kick();
    return c.json(await view(record), previous ? 200 : 201);
  });

  api.get("/functions", async (c) => {
    // only the caller's apps' records are read at all
    const records = await store.listFunctions(await owners.appsOf(developerOf(c).developer.id));
    return c.json({ functions: await Promise.all(records.map((r) => view(r))) });
  });

  api.get("/apps/:app/functions", async (c) => {
    const me = developerOf(c);
    const { app } = parseInput(AppParams, c.req.param(), "path");
    // another developer's app lists as an app with no functions, like one that does not exist
    const records = (await owners.owns(me.developer.id, app)) ? await store.listFunctions(app) : [];
    return c.json({ functions: await Promise.all(records.map((r) => view(r))) });
  });

  api.get("/apps/:app/functions/:fn", async (c) => {
    const me = developerOf(c);
    const { app, fn } = parseInput(FunctionParams, c.req.param(), "path");
    return c.json(await view(await ownFunction(me.developer.id, app, fn)));
  });

  api.delete("/apps/:app/functions/:fn", async (c) => {
    const me = developerOf(c);
    const { app, fn } = parseInput(FunctionParams, c.req.param(), "path");
    if (!(await owners.owns(me.developer.id, app)) || !(await store.deleteFunction(app, fn))) throw notFound(app, fn);
    scheduler.kick();
    return c.body(null, 204);
  });

  api.get("/apps/:app/functions/:fn/versions", async (c) => {
    const me = developerOf(c);
    const { app, fn } = parseInput(FunctionParams, c.req.param(), "path");
    await ownFunction(me.developer.id, app, fn);
    return c.json({ versions: await store.listVersions(app, fn) });
  });

  api.post("/apps/:app/functions/:fn/rollback", async (c) => {
    const me = developerOf(c);
    const { app, fn } = parseInput(FunctionParams, c.req.param(), "path");
    const body = parseInput(RollbackRequest, await c.req.json().catch(() => undefined), "body");
    const record = await ownFunction(me.developer.id, app, fn);
    if (!(await store.getVersion(app, fn, body.version))) {
      throw new HearthError("ERR_VERSION_NOT_FOUND", `${app}/${fn} has no version ${body.version}; list them with GET .../versions`);
    }
    const next: FunctionRecord = { ...record, version: body.version, updatedAt: new Date().toISOString() };
    const version = await store.getVersion(app, fn, body.version);
    await store.saveFunction(next, version!);
    scheduler.kick();
    return c.json(await view(next));
  });

  /** The app, when the caller owns it; otherwise the 404 an app that does not exist gets. */
  const ownApp = async (c: Parameters<typeof developerOf>[0]): Promise<string> => {
    const { app } = parseInput(AppParams, c.req.param(), "path");
    if (!(await owners.owns(developerOf(c).developer.id, app))) throw appNotFound(app);
    return app;
  };

  api.post("/apps/:app/network/invites", async (c) => {
    const app = await ownApp(c);
    const body = parseInput(NetworkInviteRequest, (await c.req.json().catch(() => undefined)) ?? {}, "body");
    return c.json(await options.networks.invite(app, body.ttlSeconds), 201);
  });

  api.get("/apps/:app/network", async (c) => c.json(await options.networks.view(await ownApp(c))));

  api.put("/apps/:app/network", async (c) => {
    const app = await ownApp(c);
    const body = parseInput(AppNetworkSettings, await c.req.json().catch(() => undefined), "body");
    await options.networks.setPrivate(app, body.private);
    scheduler.kick();
    return c.json(await options.networks.view(app));
  });

  api.delete("/apps/:app/network/members/:device", async (c) => {
    const app = await ownApp(c);
    const { device } = parseInput(MemberParams, c.req.param(), "path");
    if (!(await options.networks.remove(app, device))) throw new HearthError("ERR_NOT_FOUND", `device ${device} is not a member of app ${app}'s network; see hearth networks list ${app}`);
    return c.body(null, 204);
  });

  api.get("/devices", operatorOnly, async (c) => {
    const now = Date.now();
    const devices: DeviceView[] = (await scheduler.liveDevices(now)).map(({ heartbeat: h, lastSeen }) => ({
      deviceId: DeviceId.parse(h.deviceId),
      ownerId: h.ownerId,
      region: h.region,
      location: h.location,
      cores: h.cores,
      memoryMb: h.memoryMb,
      activeCalls: h.activeCalls,
      freeCores: h.freeCores,
      functions: h.functions.length,
      lastSeenMs: now - lastSeen,
    }));
    return c.json({ devices });
  });

  return api;
}

function notFound(app: string, fn: string): HearthError {
  return new HearthError("ERR_FUNCTION_NOT_FOUND", `no function ${app}/${fn}`);
}

function appNotFound(app: string): HearthError {
  return new HearthError("ERR_NOT_FOUND", `no app ${app} among your apps; deploy a function to it first (hearth deploy)`);
}

/**
 * A deploy to another developer's app. App names are one namespace (they are
 * in every function's URL), so a deploy cannot pretend the app is free; it
 * gets the same 404 and code as any missing function, says nothing of whose
 * the app is, and suggests another name.
 */
function notYours(app: string, fn: string): HearthError {
  return new HearthError("ERR_FUNCTION_NOT_FOUND", `no function ${app}/${fn} among your apps, and app ${app} cannot be yours: app names are shared by every developer of this platform, so deploy under another app name`);
}

function dropUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A bundle must be UTF-8 text (an ES module); devices compile it, this only catches the obvious. */
function checkBundle(bundle: Uint8Array): void {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bundle);
  } catch {
    throw new HearthError("ERR_BAD_BUNDLE", "the bundle is not UTF-8 text; upload the JavaScript module esbuild produced (hearth deploy does this)");
  }
}
