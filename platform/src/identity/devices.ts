/**
 * Devices as the platform knows them: join tokens the operator hands to
 * device owners, the record each device gets when it joins (its owner,
 * region and machine size from the join, its nkey public key, a hash of its
 * device token), its fabric credential (a user JWT for its public key, made
 * at join and renewed by the running agent), and revocation.
 *
 * Only SHA-256 hashes of tokens are kept in Redis; no seed ever reaches the
 * platform (the device sends its public key). A revoked device's key goes
 * into the account's revocation list, which the platform pushes to
 * nats-server (fabric-control.ts), so its connections close and it cannot
 * connect again.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  MAX_DEVICE_NETWORKS,
  HearthError,
  type FabricCredential,
  type JoinRequest,
  type JoinResponse,
  type JoinTokenResponse,
  type Subjects,
} from "@hearth/protocol";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { FabricAuthority } from "./fabric.ts";

const JoinGrant = z.strictObject({ ownerId: z.string(), region: z.string() });

/** A joined device's record. */
export const DeviceRecord = z.strictObject({
  ownerId: z.string(),
  region: z.string(),
  tokenHash: z.string(),
  joinedAt: z.string(),
  publicKey: z.string(),
  /** The machine's size as the agent reported it at join: heartbeats claiming more are capped to this. */
  cores: z.number(),
  memoryMb: z.number(),
  revokedAt: z.string().optional(),
});
export type DeviceRecord = z.infer<typeof DeviceRecord>;

function sha256(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** Default lifetime of a device's fabric credential; the agent renews it at half-life. */
export const DEFAULT_CREDENTIAL_TTL_SECONDS = 24 * 3600;
/** How long a device may take to answer a request it received: the longest wall limit plus margin. */
export const DEVICE_REPLY_TTL_MS = 120_000;

export interface DeviceRegistryOptions {
  redis: Redis;
  prefix: string;
  authority: FabricAuthority;
  subjects: Subjects;
  /** The fabric URL devices connect to (may differ from the one the platform uses). */
  publicNatsUrl: string;
  credentialTtlSeconds?: number;
}

export class DeviceRegistry {
  private readonly options: DeviceRegistryOptions;
  readonly credentialTtlSeconds: number;

  constructor(options: DeviceRegistryOptions) {
    this.options = options;
    this.credentialTtlSeconds = options.credentialTtlSeconds ?? DEFAULT_CREDENTIAL_TTL_SECONDS;
  }

  // Device records keep the keys they had before identity had its own home, so joined devices stay joined.
  private key(...parts: string[]): string {
    return this.options.prefix + "accounts:" + parts.join(":");
  }

  /** User public key → unix seconds: the account's revocation list. */
  get revocationsKey(): string {
    return this.options.prefix + "identity:revocations";
  }

  /** A single-use join token for one owner. */
  async createJoinToken(ownerId: string, region = "local", ttlSeconds = 86_400): Promise<JoinTokenResponse> {
    const token = `hj_${randomBytes(24).toString("base64url")}`;
    await this.options.redis.set(this.key("join", sha256(token)), JSON.stringify({ ownerId, region }), "EX", ttlSeconds);
    return { token, ownerId, expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString() };
  }

  /**
   * Redeems a join token: registers the device under the token's owner with
   * its public key, and returns its device token and first fabric
   * credential. A device joining again (same owner) gets a new key; its old
   * key is revoked. Returns the keys to revoke on the fabric, if any.
   */
  async join(request: JoinRequest): Promise<{ response: JoinResponse; revokeKeys: string[] }> {
    const key = this.key("join", sha256(request.token));
    const results = await this.options.redis.multi().get(key).del(key).exec();
    const raw = results?.[0]?.[1];
    const grant = typeof raw === "string" ? JoinGrant.safeParse(JSON.parse(raw)) : undefined;
    if (!grant?.success) {
      throw new HearthError("ERR_JOIN_TOKEN_INVALID", "this join token is unknown, expired or already used; ask the platform's operator for a new one");
    }
    const existing = await this.device(request.deviceId);
    if (existing && existing.ownerId !== grant.data.ownerId) {
      throw new HearthError("ERR_FORBIDDEN", `device id ${request.deviceId} belongs to another owner; choose another with --device-id`);
    }
    if (existing?.revokedAt) {
      throw new HearthError("ERR_DEVICE_REVOKED", `device ${request.deviceId} was revoked by the operator; join under another id (--device-id)`);
    }
    const deviceToken = `hd_${randomBytes(32).toString("base64url")}`;
    const joinedAt = new Date().toISOString();
    const record: DeviceRecord = {
      ownerId: grant.data.ownerId,
      region: grant.data.region,
      tokenHash: sha256(deviceToken),
      joinedAt,
      publicKey: request.publicKey,
      cores: request.cores,
      memoryMb: request.memoryMb,
    };
    // indexes for the console: every joined device, each owner's devices, and a device token's device (by its hash)
    const multi = this.options.redis
      .multi()
      .set(this.key("device", request.deviceId), JSON.stringify(record))
      .sadd(this.key("devices"), request.deviceId)
      .sadd(this.key("owner-devices", record.ownerId), request.deviceId)
      .set(this.key("device-token", record.tokenHash), request.deviceId);
    if (existing) multi.del(this.key("device-token", existing.tokenHash));
    await multi.exec();
    const revokeKeys = existing && existing.publicKey !== request.publicKey ? [existing.publicKey] : [];
    if (revokeKeys.length > 0) await this.addRevocations(revokeKeys);
    return {
      response: {
        deviceId: request.deviceId,
        ownerId: record.ownerId,
        region: record.region,
        natsUrl: this.options.publicNatsUrl,
        subjectPrefix: this.options.subjects.prefix,
        deviceToken,
        joinedAt,
        fabric: await this.credential(request.deviceId, record),
      },
      revokeKeys,
    };
  }

  /** A fresh fabric credential for a joined, unrevoked device that proves itself with its device token. */
  async renew(deviceId: string, token: string): Promise<FabricCredential> {
    const record = await this.authenticate(deviceId, token);
    return this.credential(deviceId, record);
  }

  /**
   * Makes the device a member of an app's network (it was placed for one of
   * the app's functions): true when it was not one yet, so its credential
   * must be signed again to carry it.
   */
  async joinNetwork(deviceId: string, app: string): Promise<boolean> {
    const key = this.key("device-networks", deviceId);
    if ((await this.options.redis.scard(key)) >= MAX_DEVICE_NETWORKS) return false;
    return (await this.options.redis.sadd(key, app)) === 1;
  }

  /** Takes an app's network out of the device's credential: true when it was in it. */
  async leaveNetwork(deviceId: string, app: string): Promise<boolean> {
    return (await this.options.redis.srem(this.key("device-networks", deviceId), app)) === 1;
  }

  /** The app networks the device is a member of (what its credential lets it relay in). */
  async networks(deviceId: string): Promise<string[]> {
    return (await this.options.redis.smembers(this.key("device-networks", deviceId))).sort();
  }

  /** A fresh credential for a joined, unrevoked device, without its token: the platform re-signs it when its networks change. */
  async reissue(deviceId: string): Promise<FabricCredential | undefined> {
    const record = await this.device(deviceId);
    if (!record || record.revokedAt) return undefined;
    return this.credential(deviceId, record);
  }

  private async credential(deviceId: string, record: DeviceRecord): Promise<FabricCredential> {
    const jwt = await this.options.authority.deviceJwt({
      deviceId,
      publicKey: record.publicKey,
      subjects: this.options.subjects,
      ttlSeconds: this.credentialTtlSeconds,
      replyTtlMs: DEVICE_REPLY_TTL_MS,
      networks: await this.networks(deviceId),
    });
    return { jwt, expiresAt: new Date(Date.now() + this.credentialTtlSeconds * 1000).toISOString() };
  }

  async device(deviceId: string): Promise<DeviceRecord | null> {
    const raw = await this.options.redis.get(this.key("device", deviceId));
    if (raw === null) return null;
    const parsed = DeviceRecord.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  }

  /** The device's record when `token` is its device token and it is not revoked; else a clear error. */
  async authenticate(deviceId: string, token: string): Promise<DeviceRecord> {
    const record = await this.device(deviceId);
    if (!record || !sameHash(record.tokenHash, token)) {
      throw new HearthError("ERR_UNAUTHORIZED", `this is not device ${deviceId}'s token; use the one hearth-agent join stored, or join again`);
    }
    if (record.revokedAt) throw new HearthError("ERR_DEVICE_REVOKED", `device ${deviceId} was revoked by the operator at ${record.revokedAt}`);
    return record;
  }

  /**
   * The device whose token this is, for an owner signing in to the console
   * with it: its id and record, or null for a token no device has (now).
   * A revoked device's token still names it; the caller decides.
   */
  async deviceOfToken(token: string): Promise<{ deviceId: string; record: DeviceRecord } | null> {
    const deviceId = await this.options.redis.get(this.key("device-token", sha256(token)));
    if (deviceId === null) return null;
    const record = await this.device(deviceId);
    // the index is written with the record; the record's own hash has the last word
    return record && sameHash(record.tokenHash, token) ? { deviceId, record } : null;
  }

  /** Every device that joined (ids, sorted). */
  async deviceIds(): Promise<string[]> {
    return (await this.options.redis.smembers(this.key("devices"))).sort();
  }

  /** The devices an owner joined (ids, sorted). */
  async devicesOf(ownerId: string): Promise<string[]> {
    return (await this.options.redis.smembers(this.key("owner-devices", ownerId))).sort();
  }

  /** True when `token` is this device's token (revoked or not). */
  async isDeviceToken(deviceId: string, token: string): Promise<boolean> {
    const record = await this.device(deviceId);
    return record !== null && sameHash(record.tokenHash, token);
  }

  /**
   * Marks a device revoked and puts its key on the revocation list. Returns
   * the revocation time; the caller pushes the account update to the fabric.
   */
  async revoke(deviceId: string): Promise<{ revokedAt: string; publicKey: string }> {
    const record = await this.device(deviceId);
    if (!record) throw new HearthError("ERR_DEVICE_NOT_FOUND", `no device ${deviceId} has joined this platform`);
    const revokedAt = record.revokedAt ?? new Date().toISOString();
    await this.options.redis.set(this.key("device", deviceId), JSON.stringify({ ...record, revokedAt }));
    await this.addRevocations([record.publicKey]);
    return { revokedAt, publicKey: record.publicKey };
  }

  private async addRevocations(publicKeys: string[]): Promise<void> {
    // a revocation covers every JWT of that key issued up to now; the second after, so one issued this second is covered too
    const at = Math.floor(Date.now() / 1000) + 1;
    await this.options.redis.hset(this.revocationsKey, Object.fromEntries(publicKeys.map((k) => [k, String(at)])));
  }

  /**
   * The revocation list, without entries old enough that every JWT they
   * cover has expired (a revoked key is never issued a new one).
   */
  async revocations(now = Date.now()): Promise<Record<string, number>> {
    const all = await this.options.redis.hgetall(this.revocationsKey);
    const horizon = Math.floor(now / 1000) - this.credentialTtlSeconds - 3600;
    const out: Record<string, number> = {};
    const stale: string[] = [];
    for (const [key, value] of Object.entries(all)) {
      const at = Number(value);
      if (Number.isFinite(at) && at > horizon) out[key] = at;
      else stale.push(key);
    }
    if (stale.length > 0) await this.options.redis.hdel(this.revocationsKey, ...stale);
    return out;
  }
}

function sameHash(expectedHex: string, token: string): boolean {
  const a = Buffer.from(expectedHex, "hex");
  const b = Buffer.from(sha256(token), "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}
