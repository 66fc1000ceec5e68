/**
 * Developers and their API tokens, in Redis under the store's prefix.
 *
 * A token is `hth_<token id>_<secret>`. Only the SHA-256 of the whole token
 * is kept (a 256-bit random secret needs no slow hash: there is nothing to
 * guess), compared in constant time. A revoked token keeps its record with
 * `revokedAt`, so whoever still holds it is told it was revoked rather than
 * that it is unknown; it stops working on the next request, since nothing
 * here is cached.
 *
 * Keys (`<prefix>developers:...`):
 *   ids              set of developer ids
 *   developer:<id>   JSON { id, name, createdAt }
 *   name:<name>      developer id (names are unique)
 *   tokens:<id>      set of the developer's token ids
 *   token:<tokenId>  hash { developerId, name, hash, createdAt, lastUsedAt?, revokedAt? }
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  API_TOKEN_PATTERN,
  API_TOKEN_PREFIX,
  Developer,
  HearthError,
  type Developer as DeveloperT,
  type DeveloperView,
  type IssuedToken,
  type TokenView,
} from "@hearth/protocol";
import type { Redis } from "ioredis";
import { z } from "zod";

/** What a token record holds in Redis (a hash). */
const TokenRecord = z.object({
  developerId: z.string(),
  name: z.string(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.string(),
  lastUsedAt: z.string().optional(),
  revokedAt: z.string().optional(),
});
type TokenRecord = z.infer<typeof TokenRecord>;

/** `lastUsedAt` is written at most this often per token, so a busy token does not cost a write per request. */
const LAST_USED_RESOLUTION_MS = 60_000;
export const DEFAULT_TOKEN_NAME = "default";

/** Who a valid developer token belongs to. */
export interface Authenticated {
  developer: DeveloperT;
  token: { id: string; name: string };
}

export function sha256Hex(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** Constant-time equality of two secrets of any length (their digests are compared). */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(createHash("sha256").update(given).digest(), createHash("sha256").update(expected).digest());
}

export class Developers {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(options: { redis: Redis; prefix: string }) {
    this.redis = options.redis;
    this.prefix = options.prefix;
  }

  private key(...parts: string[]): string {
    return `${this.prefix}developers:${parts.join(":")}`;
  }

  /** A new developer and their first token (its value is in the answer, and nowhere else ever). */
  async create(name: string, tokenName = DEFAULT_TOKEN_NAME): Promise<{ developer: DeveloperView; token: IssuedToken }> {
    const id = `dev_${randomBytes(6).toString("hex")}`;
    // the name is taken first, atomically: two operators creating the same name get one developer
    if ((await this.redis.set(this.key("name", name), id, "NX")) !== "OK") {
      throw new HearthError("ERR_DEVELOPER_EXISTS", `a developer named ${name} already exists; list them with hearth-platform developers list`);
    }
    const developer: DeveloperT = { id, name, createdAt: new Date().toISOString() };
    await this.redis.multi().set(this.key("developer", id), JSON.stringify(developer)).sadd(this.key("ids"), id).exec();
    const token = await this.createToken(id, tokenName);
    return { developer: { ...developer, activeTokens: 1 }, token };
  }

  async get(id: string): Promise<DeveloperT | null> {
    const raw = await this.redis.get(this.key("developer", id));
    if (raw === null) return null;
    const parsed = Developer.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  }

  async mustGet(id: string): Promise<DeveloperT> {
    const developer = await this.get(id);
    if (!developer) throw new HearthError("ERR_DEVELOPER_NOT_FOUND", `no developer ${id}; list them with GET /v1/developers`);
    return developer;
  }

  /** Every developer, oldest first, with how many tokens of theirs work. */
  async list(): Promise<DeveloperView[]> {
    const ids = await this.redis.smembers(this.key("ids"));
    const developers = (await Promise.all(ids.map((id) => this.get(id)))).filter((d): d is DeveloperT => d !== null);
    const views = await Promise.all(
      developers.map(async (d) => ({ ...d, activeTokens: (await this.listTokens(d.id)).filter((t) => !t.revokedAt).length })),
    );
    return views.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** A new token for a developer; its value is shown once, here. */
  async createToken(developerId: string, name = DEFAULT_TOKEN_NAME): Promise<IssuedToken> {
    await this.mustGet(developerId);
    for (;;) {
      const id = randomBytes(8).toString("hex");
      const value = `${API_TOKEN_PREFIX}${id}_${randomBytes(32).toString("base64url")}`;
      const createdAt = new Date().toISOString();
      // HSETNX on the hash field that every record has: a token id is never reused, even one made at the same instant
      if ((await this.redis.hsetnx(this.key("token", id), "hash", sha256Hex(value))) !== 1) continue;
      await this.redis
        .multi()
        .hset(this.key("token", id), { developerId, name, createdAt })
        .sadd(this.key("tokens", developerId), id)
        .exec();
      return { id, name, createdAt, value };
    }
  }

  /** A developer's tokens, newest first: ids, names and times, never a secret or its hash. */
  async listTokens(developerId: string): Promise<TokenView[]> {
    const ids = await this.redis.smembers(this.key("tokens", developerId));
    const records = await Promise.all(ids.map(async (id) => [id, await this.tokenRecord(id)] as const));
    return records
      .flatMap(([id, r]) =>
        r && r.developerId === developerId
          ? [{ id, name: r.name, createdAt: r.createdAt, ...(r.lastUsedAt ? { lastUsedAt: r.lastUsedAt } : {}), ...(r.revokedAt ? { revokedAt: r.revokedAt } : {}) }]
          : [],
      )
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.id.localeCompare(b.id));
  }

  /** Revokes one token of a developer; it fails on the next request that uses it. Revoking it again changes nothing. */
  async revokeToken(developerId: string, tokenId: string): Promise<TokenView> {
    await this.mustGet(developerId);
    const record = await this.tokenRecord(tokenId);
    if (!record || record.developerId !== developerId) {
      throw new HearthError("ERR_TOKEN_NOT_FOUND", `developer ${developerId} has no token ${tokenId}; list them with GET /v1/developers/${developerId}/tokens`);
    }
    // HSETNX: the first revocation's time stays
    await this.redis.hsetnx(this.key("token", tokenId), "revokedAt", new Date().toISOString());
    const revoked = (await this.listTokens(developerId)).find((t) => t.id === tokenId);
    return revoked!;
  }

  /**
   * Who `token` belongs to. Throws ERR_TOKEN_UNKNOWN for anything that is not
   * a live token of this platform, and ERR_TOKEN_REVOKED for a real token
   * that was revoked (told only to whoever holds the whole token).
   */
  async authenticate(token: string): Promise<Authenticated> {
    const match = API_TOKEN_PATTERN.exec(token);
    const record = match ? await this.tokenRecord(match[1]!) : null;
    if (!match || !record || !timingSafeEqual(Buffer.from(record.hash, "hex"), createHash("sha256").update(token).digest())) {
      throw new HearthError(
        "ERR_TOKEN_UNKNOWN",
        "this API token is not known to this platform: check that it was copied whole and that it was issued by this platform; the platform's operator can issue a new one",
      );
    }
    if (record.revokedAt) {
      throw new HearthError("ERR_TOKEN_REVOKED", `this API token was revoked at ${record.revokedAt}; ask the platform's operator for a new one`);
    }
    const developer = await this.get(record.developerId);
    if (!developer) throw new HearthError("ERR_TOKEN_UNKNOWN", "this API token belongs to no developer of this platform; ask the platform's operator for a new one");
    const now = Date.now();
    if (!record.lastUsedAt || now - Date.parse(record.lastUsedAt) >= LAST_USED_RESOLUTION_MS) {
      // best effort: a failed write of the last-use time never fails the request
      await this.redis.hset(this.key("token", match[1]!), "lastUsedAt", new Date(now).toISOString()).catch(() => undefined);
    }
    return { developer, token: { id: match[1]!, name: record.name } };
  }

  private async tokenRecord(tokenId: string): Promise<TokenRecord | null> {
    const hash = await this.redis.hgetall(this.key("token", tokenId));
    if (Object.keys(hash).length === 0) return null;
    const parsed = TokenRecord.safeParse(hash);
    return parsed.success ? parsed.data : null;
  }
}
