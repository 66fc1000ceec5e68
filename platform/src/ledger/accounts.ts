/**
 * Device accounts: join tokens an operator hands to device owners, and the
 * device token each device gets when it joins (it reads the device's
 * credits). Only SHA-256 hashes of tokens are kept in Redis.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { HearthError, type JoinResponse, type JoinTokenResponse } from "@hearth/protocol";
import type { Redis } from "ioredis";
import { z } from "zod";

const JoinGrant = z.strictObject({ ownerId: z.string(), region: z.string() });
const DeviceAccount = z.strictObject({ ownerId: z.string(), tokenHash: z.string(), joinedAt: z.string(), region: z.string() });

function sha256(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

export interface AccountsOptions {
  redis: Redis;
  prefix: string;
  /** The fabric URL devices connect to (may differ from the one the platform uses). */
  publicNatsUrl: string;
  subjectPrefix: string;
}

export class Accounts {
  private readonly options: AccountsOptions;

  constructor(options: AccountsOptions) {
    this.options = options;
  }

  private key(...parts: string[]): string {
    return this.options.prefix + "accounts:" + parts.join(":");
  }

  /** A single-use join token for one owner. */
  async createJoinToken(ownerId: string, region = "local", ttlSeconds = 86_400): Promise<JoinTokenResponse> {
    const token = `hj_${randomBytes(24).toString("base64url")}`;
    await this.options.redis.set(this.key("join", sha256(token)), JSON.stringify({ ownerId, region }), "EX", ttlSeconds);
    return { token, ownerId, expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString() };
  }

  /** Redeems a join token for a device: registers it under the token's owner and issues its device token. */
  async join(token: string, deviceId: string): Promise<JoinResponse> {
    const key = this.key("join", sha256(token));
    const results = await this.options.redis.multi().get(key).del(key).exec();
    const raw = results?.[0]?.[1];
    const grant = typeof raw === "string" ? JoinGrant.safeParse(JSON.parse(raw)) : undefined;
    if (!grant?.success) {
      throw new HearthError("ERR_JOIN_TOKEN_INVALID", "this join token is unknown, expired or already used; ask the platform's operator for a new one");
    }
    const existing = await this.device(deviceId);
    if (existing && existing.ownerId !== grant.data.ownerId) {
      throw new HearthError("ERR_FORBIDDEN", `device id ${deviceId} belongs to another owner; choose another with --device-id`);
    }
    const deviceToken = `hd_${randomBytes(32).toString("base64url")}`;
    const joinedAt = new Date().toISOString();
    const account = { ownerId: grant.data.ownerId, tokenHash: sha256(deviceToken), joinedAt, region: grant.data.region };
    await this.options.redis.set(this.key("device", deviceId), JSON.stringify(account));
    return {
      deviceId,
      ownerId: grant.data.ownerId,
      region: grant.data.region,
      natsUrl: this.options.publicNatsUrl,
      subjectPrefix: this.options.subjectPrefix,
      deviceToken,
      joinedAt,
    };
  }

  async device(deviceId: string): Promise<z.infer<typeof DeviceAccount> | null> {
    const raw = await this.options.redis.get(this.key("device", deviceId));
    if (raw === null) return null;
    const parsed = DeviceAccount.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  }

  /** True when `token` is this device's token. */
  async isDeviceToken(deviceId: string, token: string): Promise<boolean> {
    const account = await this.device(deviceId);
    if (!account) return false;
    const a = Buffer.from(account.tokenHash, "hex");
    const b = Buffer.from(sha256(token), "hex");
    return a.length === b.length && timingSafeEqual(a, b);
  }
}
