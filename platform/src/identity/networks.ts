/**
 * Application-network membership by invite, and private apps
 * (docs/security.md, "Application networks in the credential").
 *
 * - An app's developer mints single-use invites (only their SHA-256 is
 *   kept, with the app, until it expires or is redeemed).
 * - A device redeems one with its own device token (at join, or later): it
 *   becomes an invited member of the app's network, and its credential names
 *   the network from then on (DeviceRegistry.joinNetwork).
 * - A private app is placed only on its invited members; any other app on
 *   invited members and on devices in the public pool (the owner's choice,
 *   from its heartbeat).
 * - A member leaves (its owner) or is removed (the developer): the network
 *   leaves its credential, `changed` re-issues it and the scheduler unplaces
 *   the app's functions from it.
 *
 * Keys (`<prefix>networks:...`):
 *   invite:<sha256>   app, with the invite's expiry
 *   private:<app>     "1" while the app is private
 *   members:<app>     hash device id → when it joined by invite
 *   invited:<device>  set of apps that invited the device
 */
import { randomBytes } from "node:crypto";
import { HearthError, MAX_DEVICE_NETWORKS, type AppNetworkView, type NetworkInviteResponse } from "@hearth/protocol";
import type { Redis } from "ioredis";
import { sha256Hex } from "./developers.ts";
import type { DeviceRegistry } from "./devices.ts";

/** How long an invite can be redeemed unless its developer says otherwise. */
export const DEFAULT_INVITE_TTL_SECONDS = 24 * 3600;

/** Who may be placed for one app: its invited members, and (unless it is private) any device in the public pool. */
export interface NetworkEligibility {
  private: boolean;
  members: ReadonlySet<string>;
}

export interface AppNetworksOptions {
  redis: Redis;
  prefix: string;
  devices: DeviceRegistry;
  /** A device's membership changed: re-issue its credential and re-place (set once the scheduler and doors exist). */
  changed?: (deviceId: string) => Promise<void>;
}

export class AppNetworks {
  private readonly options: AppNetworksOptions;
  changed?: (deviceId: string) => Promise<void>;

  constructor(options: AppNetworksOptions) {
    this.options = options;
    this.changed = options.changed;
  }

  private key(...parts: string[]): string {
    return `${this.options.prefix}networks:${parts.join(":")}`;
  }

  /** A single-use invite into `app`'s network (the caller checked that the app is the developer's). */
  async invite(app: string, ttlSeconds = DEFAULT_INVITE_TTL_SECONDS): Promise<NetworkInviteResponse> {
    const invite = `hn_${randomBytes(24).toString("base64url")}`;
    await this.options.redis.set(this.key("invite", sha256Hex(invite)), app, "EX", ttlSeconds);
    return { invite, app, expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString() };
  }

  /**
   * Redeems an invite for a joined device: it becomes an invited member of
   * the invite's app. The invite is gone afterwards, whoever redeemed it.
   */
  async redeem(deviceId: string, invite: string): Promise<string> {
    const current = await this.options.devices.networks(deviceId);
    if (current.length >= MAX_DEVICE_NETWORKS) {
      throw new HearthError("ERR_BAD_REQUEST", `device ${deviceId} is a member of ${MAX_DEVICE_NETWORKS} networks, the most a credential carries; leave one first (hearth-agent networks leave <app>)`);
    }
    const key = this.key("invite", sha256Hex(invite));
    const results = await this.options.redis.multi().get(key).del(key).exec();
    const app = results?.[0]?.[1];
    if (typeof app !== "string") {
      throw new HearthError("ERR_INVITE_INVALID", "this network invite is unknown, expired or already used; ask the app's developer for a new one (hearth networks invite <app>)");
    }
    await this.options.redis
      .multi()
      .hset(this.key("members", app), deviceId, new Date().toISOString())
      .sadd(this.key("invited", deviceId), app)
      .exec();
    await this.options.devices.joinNetwork(deviceId, app);
    return app;
  }

  /** Takes a device out of an app's network (it left, or its developer removed it): false when it was not a member. */
  async remove(app: string, deviceId: string): Promise<boolean> {
    const [invited] = await Promise.all([
      this.options.redis.hdel(this.key("members", app), deviceId),
      this.options.redis.srem(this.key("invited", deviceId), app),
    ]);
    const inCredential = await this.options.devices.leaveNetwork(deviceId, app);
    if (invited === 0 && !inCredential) return false;
    await this.changed?.(deviceId);
    return true;
  }

  /** The apps that invited a device (sorted). */
  async invitedApps(deviceId: string): Promise<string[]> {
    return (await this.options.redis.smembers(this.key("invited", deviceId))).sort();
  }

  async view(app: string): Promise<AppNetworkView> {
    const [members, isPrivate] = await Promise.all([this.options.redis.hgetall(this.key("members", app)), this.isPrivate(app)]);
    return {
      app,
      private: isPrivate,
      members: Object.entries(members)
        .map(([deviceId, joinedAt]) => ({ deviceId, joinedAt }))
        .sort((a, b) => a.deviceId.localeCompare(b.deviceId)),
    };
  }

  async isPrivate(app: string): Promise<boolean> {
    return (await this.options.redis.get(this.key("private", app))) === "1";
  }

  async setPrivate(app: string, value: boolean): Promise<void> {
    if (value) await this.options.redis.set(this.key("private", app), "1");
    else await this.options.redis.del(this.key("private", app));
  }

  /** What the scheduler places one app by. */
  async eligibility(app: string): Promise<NetworkEligibility> {
    const [isPrivate, members] = await Promise.all([this.isPrivate(app), this.options.redis.hkeys(this.key("members", app))]);
    return { private: isPrivate, members: new Set(members) };
  }
}

/** Whether a device may serve an app: an invited member always; else only a public app on a device in the public pool. */
export function mayServe(eligibility: NetworkEligibility, deviceId: string, publicPool: boolean | undefined): boolean {
  if (eligibility.members.has(deviceId)) return true;
  return !eligibility.private && publicPool !== false;
}
