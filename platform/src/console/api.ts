/**
 * The API routes the web console reads besides the ones the CLI uses
 * (mounted under `/v1`, behind the API's authentication): a function's
 * stats (developer, own apps only), the operator's view of the fleet, and a
 * device owner's view of their devices. Each person sees only what is
 * theirs: another developer's function is a missing one (404), an owner
 * sees only the devices joined under their owner id.
 */
import {
  AppName,
  FunctionName,
  HearthError,
  StatsQuery,
  type ConsoleDevice,
  type DeviceState,
  type FunctionStatsReport,
  type OperatorView,
  type OwnerView,
  type StatsDay,
} from "@hearth/protocol";
import { Hono } from "hono";
import { z } from "zod";
import { parseInput, type HearthEnv } from "../http/index.ts";
import { developerOf, deviceOwnerOf, operatorOnly, type AppOwners, type DeviceRecord, type DeviceRegistry } from "../identity/index.ts";
import type { Ledger } from "../ledger/index.ts";
import type { Scheduler } from "../scheduler/index.ts";
import type { DeviceEntry, Store } from "../state/index.ts";
import type { FunctionStats } from "../stats/index.ts";

const FunctionParams = z.object({ app: AppName, fn: FunctionName });

export interface ConsoleApiOptions {
  store: Store;
  owners: AppOwners;
  scheduler: Scheduler;
  devices: DeviceRegistry;
  stats: FunctionStats;
  ledger?: Ledger;
}

type Away = ReturnType<Scheduler["awayDevice"]>;

export function deviceState(revoked: boolean, live: DeviceEntry | undefined, away: Away): DeviceState {
  if (revoked) return "revoked";
  if (live) return live.heartbeat.functions.length > 0 ? "serving" : "idle";
  return away?.state ?? "offline";
}

function deviceOf(deviceId: string, record: DeviceRecord | null, live: DeviceEntry | undefined, away: Away, now: number): ConsoleDevice {
  const h = live?.heartbeat;
  const state = deviceState(record?.revokedAt !== undefined, live, away);
  return {
    deviceId,
    ownerId: record?.ownerId ?? h?.ownerId ?? "",
    region: record?.region ?? h?.region ?? "",
    state,
    pausedFor: state === "paused" ? (away?.pausedFor ?? []) : [],
    location: h?.location.label ?? null,
    cores: h?.cores ?? record?.cores ?? null,
    freeCores: h?.freeCores ?? null,
    memoryMb: h?.memoryMb ?? record?.memoryMb ?? null,
    activeCalls: h?.activeCalls ?? 0,
    functions: h?.functions.length ?? 0,
    lastSeenMs: live ? now - live.lastSeen : null,
    joinedAt: record?.joinedAt ?? null,
  };
}

export function createConsoleApi(options: ConsoleApiOptions): Hono<HearthEnv> {
  const { store, owners, scheduler, devices, stats, ledger } = options;
  const routes = new Hono<HearthEnv>();

  const describe = async (ids: Iterable<string>) => {
    const now = Date.now();
    return Promise.all([...ids].map(async (id) => deviceOf(id, await devices.device(id), scheduler.liveDevice(id, now), scheduler.awayDevice(id, now), now)));
  };

  routes.get("/apps/:app/functions/:fn/stats", async (c) => {
    const me = developerOf(c);
    const { app, fn } = parseInput(FunctionParams, c.req.param(), "path");
    const { range } = parseInput(StatsQuery, c.req.query(), "query");
    if (!(await owners.owns(me.developer.id, app)) || !(await store.getFunction(app, fn))) {
      throw new HearthError("ERR_FUNCTION_NOT_FOUND", `no function ${app}/${fn}`);
    }
    const [series, recentErrors, usage] = await Promise.all([
      stats.series(app, fn, range),
      stats.recentErrors(app, fn),
      ledger?.metering ? ledger.store.appUsage(app) : undefined,
    ]);
    const days: StatsDay[] = (usage?.days ?? []).flatMap((d) =>
      d.functions
        .filter((f) => f.fn === fn)
        .map((f) => ({ day: d.day, calls: f.calls, errors: f.errors, cpuSeconds: f.cpuSeconds, requestBytes: f.requestBytes, responseBytes: f.responseBytes, doors: f.doors })),
    );
    const body: FunctionStatsReport = { app, fn, range, ...series, recentErrors, days };
    return c.json(body);
  });

  routes.get("/console/operator", operatorOnly, async (c) => {
    const ids = new Set(await devices.deviceIds());
    for (const d of scheduler.liveDevices()) ids.add(d.heartbeat.deviceId);
    const fleet = await describe([...ids].sort());
    const functions = await store.listFunctions();
    const placements = await store.getPlacements(functions);
    const withoutDevice = functions
      .filter((_, i) => !Object.keys(placements[i]!.devices).some((id) => scheduler.liveDevice(id)))
      .map((f) => ({ app: f.app, fn: f.name, replicas: f.replicas, updatedAt: f.updatedAt }));
    const lag = ledger?.consumer ? await ledger.consumer.lag().catch(() => null) : null;
    const body: OperatorView = {
      devices: fleet,
      withoutDevice,
      functions: functions.length,
      ledger: {
        metering: ledger?.metering ?? false,
        lag,
        usageBacklog: ledger?.publisher?.backlog ?? 0,
        usage: ledger?.publisher ? { ...ledger.publisher.stats } : null,
        lastReconcile: ledger ? await ledger.lastReconcile() : null,
      },
    };
    return c.json(body);
  });

  routes.get("/console/owner", async (c) => {
    const me = deviceOwnerOf(c);
    const ids = await devices.devicesOf(me.ownerId);
    const mine = await describe(ids);
    const credits = ledger?.metering ? await Promise.all(ids.map((id) => ledger.store.deviceCredits(id))) : [];
    const body: OwnerView = { ownerId: me.ownerId, signedInWith: me.deviceId, metering: ledger?.metering ?? false, devices: mine, credits };
    return c.json(body);
  });

  return routes;
}
