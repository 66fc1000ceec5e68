/**
 * Which developer owns which app. An app belongs to the developer whose
 * deploy first named it (SET NX, so two first deploys at once make one
 * owner); it stays theirs when its functions are deleted, so its name, its
 * logs and its usage never pass to someone else by accident. Only the
 * operator gives an app to another developer (`PUT /v1/apps/:app/owner`).
 *
 * Keys (`<prefix>developers:...`):
 *   app-owner:<app>  developer id
 *   apps:<id>        set of the developer's apps (for lists)
 */
import type { Redis } from "ioredis";

export class AppOwners {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(options: { redis: Redis; prefix: string }) {
    this.redis = options.redis;
    this.prefix = options.prefix;
  }

  private key(...parts: string[]): string {
    return `${this.prefix}developers:${parts.join(":")}`;
  }

  async ownerOf(app: string): Promise<string | null> {
    return this.redis.get(this.key("app-owner", app));
  }

  async owns(developerId: string, app: string): Promise<boolean> {
    return (await this.ownerOf(app)) === developerId;
  }

  /**
   * Makes `developerId` the owner of `app` unless someone else already is;
   * true when the app is theirs afterwards. `hasFunctions` tells an app that
   * exists without an owner (made before apps had owners): nobody takes
   * that by deploying to it, the operator gives it to its developer.
   */
  async claim(developerId: string, app: string, hasFunctions: () => Promise<boolean>): Promise<boolean> {
    const key = this.key("app-owner", app);
    let owner = await this.redis.get(key);
    if (owner === null) {
      if (await hasFunctions()) return false;
      if ((await this.redis.set(key, developerId, "NX")) !== "OK") owner = await this.redis.get(key);
      else owner = developerId;
    }
    if (owner !== developerId) return false;
    // every deploy adds it again (a no-op once there), so a crash between the two writes heals on the next deploy
    await this.redis.sadd(this.key("apps", developerId), app);
    return true;
  }

  /** The apps a developer owns. */
  async appsOf(developerId: string): Promise<Set<string>> {
    return new Set(await this.redis.smembers(this.key("apps", developerId)));
  }

  /** Gives an app to a developer (the operator's doing: a transfer, or an app made before apps had owners). */
  async assign(app: string, developerId: string): Promise<void> {
    // one script: the previous owner's list loses the app in the same step as the owner changes
    await this.redis.eval(ASSIGN, 2, this.key("app-owner", app), this.key("apps", developerId), developerId, app, this.key("apps", ""));
  }
}

/** KEYS: owner key, new owner's apps; ARGV: developer id, app, the apps key without its id. */
const ASSIGN = `
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if previous and previous ~= ARGV[1] then redis.call('SREM', ARGV[3] .. previous, ARGV[2]) end
return 1
`;
