/**
 * Platform state in Redis (ioredis). With no REDIS_URL the platform runs on
 * ioredis-mock in-process: the embedded default for a first run and for unit
 * tests, announced at start-up because it keeps nothing across restarts.
 */
import {
  FunctionRecord,
  VersionRecord,
  type Heartbeat as HeartbeatT,
  type FunctionRecord as FunctionRecordT,
  type VersionRecord as VersionRecordT,
} from "@hearth/protocol";
import { Redis } from "ioredis";
import RedisMock from "ioredis-mock";
import { z } from "zod";

export interface RedisHandle {
  redis: Redis;
  embedded: boolean;
}

export function connectRedis(url: string | undefined): RedisHandle {
  if (url) return { redis: new Redis(url, { maxRetriesPerRequest: 3 }), embedded: false };
  return { redis: new RedisMock() as unknown as Redis, embedded: true };
}

/** Where a function runs: device id → the version it acknowledged. */
export const Placement = z.strictObject({
  devices: z.record(
    z.string(),
    z.strictObject({
      version: z.string(),
      placedAt: z.number(),
      /** The limits the device was given (JSON), so a change of limits alone re-places too. */
      limits: z.string().optional(),
      /** A fingerprint of the env and outbound settings the device was given (never the values), so a change of those alone re-places too. */
      settings: z.string().optional(),
    }),
  ),
});
export type Placement = z.infer<typeof Placement>;

/** How long a placement's bundle grant lasts (a device fetches the bundle within its place timeout). */
const BUNDLE_GRANT_SECONDS = 600;

/** A device in the scheduler's live table (kept in each platform process's memory, not in Redis). */
export interface DeviceEntry {
  heartbeat: HeartbeatT;
  lastSeen: number;
}

/** Typed access to every key the platform keeps. Each instance owns one key prefix. */
export class Store {
  readonly redis: Redis;
  readonly prefix: string;

  constructor(redis: Redis, prefix = "hearth:") {
    this.redis = redis;
    this.prefix = prefix;
  }

  private key(...parts: string[]): string {
    return this.prefix + parts.join(":");
  }

  // bundles: content addressed and immutable

  async putBundle(hash: string, bytes: Uint8Array): Promise<void> {
    await this.redis.set(this.key("bundle", hash), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), "NX");
  }

  async getBundle(hash: string): Promise<Buffer | null> {
    return this.redis.getBuffer(this.key("bundle", hash));
  }

  /**
   * Lets a device fetch a bundle it is about to be asked to run as one
   * function (the scheduler's place message follows), and have its log lines
   * for that function believed. Withdrawn when the device refuses.
   */
  async grantBundle(deviceId: string, app: string, fn: string, hash: string): Promise<void> {
    await this.redis
      .multi()
      .set(this.key("bundlegrant", deviceId, hash), "1", "EX", BUNDLE_GRANT_SECONDS)
      .set(this.key("rungrant", deviceId, app, fn, hash), "1", "EX", BUNDLE_GRANT_SECONDS)
      .exec();
  }

  async withdrawGrant(deviceId: string, app: string, fn: string, hash: string): Promise<void> {
    await this.redis.del(this.key("bundlegrant", deviceId, hash), this.key("rungrant", deviceId, app, fn, hash));
  }

  /**
   * Whether a device may run this version of this function (its log lines
   * are believed): the version is the function's, and the device was granted
   * it for this very function or is placed for it. A grant for another
   * function with byte-identical code does not count.
   */
  async mayRun(deviceId: string, app: string, fn: string, version: string): Promise<boolean> {
    const [own, granted, placement] = await this.redis
      .multi()
      .sismember(this.key("bundlefns", version), `${app}/${fn}`)
      .exists(this.key("rungrant", deviceId, app, fn, version))
      .get(this.key("placement", app, fn))
      .exec()
      .then((r) => (r ?? []).map(([, v]) => v));
    if (own !== 1) return false;
    return granted === 1 || (typeof placement === "string" && Placement.parse(JSON.parse(placement)).devices[deviceId] !== undefined);
  }

  /**
   * Whether a device may fetch a bundle: it was granted it for a placement,
   * or it is placed for a function that has this bundle as a version (the
   * gateway may name a newer or rolled-back version before the scheduler
   * re-places). A device never gets code it was not asked to run.
   */
  async mayFetchBundle(deviceId: string, hash: string): Promise<boolean> {
    if ((await this.redis.exists(this.key("bundlegrant", deviceId, hash))) === 1) return true;
    const fns = await this.redis.smembers(this.key("bundlefns", hash));
    if (fns.length === 0) return false;
    const placements = await this.redis.mget(fns.map((id) => this.key("placement", ...id.split("/"))));
    return placements.some((raw) => raw !== null && Placement.parse(JSON.parse(raw)).devices[deviceId] !== undefined);
  }

  // functions and their versions

  async saveFunction(record: FunctionRecordT, version: VersionRecordT): Promise<void> {
    const id = `${record.app}/${record.name}`;
    await this.redis
      .multi()
      .set(this.key("fn", record.app, record.name), JSON.stringify(record))
      .sadd(this.key("fns"), id)
      .hset(this.key("versions", record.app, record.name), version.version, JSON.stringify(version))
      .sadd(this.key("bundlefns", version.version), id)
      .exec();
  }

  async getFunction(app: string, name: string): Promise<FunctionRecordT | null> {
    const raw = await this.redis.get(this.key("fn", app, name));
    return raw === null ? null : FunctionRecord.parse(JSON.parse(raw));
  }

  /** A function's record and its placement in one round trip (the gateway's read). */
  async getFunctionAndPlacement(app: string, name: string): Promise<{ record: FunctionRecordT | null; placement: Placement }> {
    const [record, placement] = await this.redis.mget(this.key("fn", app, name), this.key("placement", app, name));
    return {
      record: record == null ? null : FunctionRecord.parse(JSON.parse(record)),
      placement: placement == null ? { devices: {} } : Placement.parse(JSON.parse(placement)),
    };
  }

  /** Functions of one app, of a set of apps (a developer's), or all. */
  async listFunctions(apps?: string | ReadonlySet<string>): Promise<FunctionRecordT[]> {
    const ids = (await this.redis.smembers(this.key("fns"))).sort();
    const appOf = (id: string) => id.slice(0, id.indexOf("/"));
    const wanted = apps === undefined ? ids : typeof apps === "string" ? ids.filter((id) => appOf(id) === apps) : ids.filter((id) => apps.has(appOf(id)));
    if (wanted.length === 0) return [];
    const raws = await this.redis.mget(wanted.map((id) => this.key("fn", ...id.split("/"))));
    return raws.flatMap((raw) => (raw === null ? [] : [FunctionRecord.parse(JSON.parse(raw))]));
  }

  async deleteFunction(app: string, name: string): Promise<boolean> {
    const results = await this.redis
      .multi()
      .del(this.key("fn", app, name))
      .srem(this.key("fns"), `${app}/${name}`)
      .del(this.key("versions", app, name))
      .del(this.key("placement", app, name))
      .exec();
    return results?.[0]?.[1] === 1;
  }

  async getVersion(app: string, name: string, version: string): Promise<VersionRecordT | null> {
    const raw = await this.redis.hget(this.key("versions", app, name), version);
    return raw === null ? null : VersionRecord.parse(JSON.parse(raw));
  }

  async listVersions(app: string, name: string): Promise<VersionRecordT[]> {
    const all = await this.redis.hvals(this.key("versions", app, name));
    return all.map((raw) => VersionRecord.parse(JSON.parse(raw))).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  // placements, written by the scheduler

  async getPlacement(app: string, name: string): Promise<Placement> {
    const raw = await this.redis.get(this.key("placement", app, name));
    return raw === null ? { devices: {} } : Placement.parse(JSON.parse(raw));
  }

  /** Placements of many functions in one round trip, in the order asked. */
  async getPlacements(ids: readonly { app: string; name: string }[]): Promise<Placement[]> {
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map(({ app, name }) => this.key("placement", app, name)));
    return raws.map((raw) => (raw === null ? { devices: {} } : Placement.parse(JSON.parse(raw))));
  }

  async setPlacement(app: string, name: string, placement: Placement): Promise<void> {
    // Only while the function exists: a placement never resurrects a deleted function.
    const exists = await this.redis.exists(this.key("fn", app, name));
    if (exists) await this.redis.set(this.key("placement", app, name), JSON.stringify(placement));
  }

  /**
   * Takes or renews a lease (for one scheduler leader among platform
   * processes). Returns true while `holder` holds it.
   */
  async lease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const key = this.key("lease", name);
    const taken = await this.redis.set(key, holder, "PX", ttlMs, "NX");
    if (taken === "OK") return true;
    if ((await this.redis.get(key)) !== holder) return false;
    await this.redis.pexpire(key, ttlMs);
    return true;
  }
}
