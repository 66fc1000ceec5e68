/**
 * Which devices' doors callers may be sent to (`GET /v1/apps/:app/doors`,
 * and the gateway's `Link: <door>; rel="alternate"` hint): doors whose
 * owner advertises a URL (`hearth-agent start --listen ... --advertise`),
 * that this platform process reached at that URL and found to be that
 * device's own door, of devices that are live (not gone, paused or
 * draining) and members of the app's network. docs/routing.md, "Finding
 * a door".
 *
 * A device is a stranger's machine, so nothing it says is listed on its
 * word alone: the URL comes from its own heartbeat subject (only its
 * credential may publish there), and the platform fetches
 * `<url>/.well-known/hearth-door?nonce=<random>` and lists the URL only
 * when the answer names that same device and nonce. A device cannot list
 * another's door as its own (that door names the other device), nor a URL
 * that is not a Hearth door at all; the check never connects to a private,
 * loopback or link-local address (unless the operator allows it, for a
 * LAN or tests), follows no redirect and reads at most 1 KiB.
 *
 * The sweep runs in the background (every 2 s); listing and the gateway's
 * hint read only its in-memory index, so neither costs a Redis read or a
 * fetch per request.
 */
import { randomBytes } from "node:crypto";
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { isPublicAddress } from "@hearth/edge";
import { DOOR_IDENTITY_PATH, DoorIdentity, type DoorView, type Location, type Near } from "@hearth/protocol";
import { distanceKm } from "../gateway/index.ts";
import type { Logger } from "../log/index.ts";
import type { DeviceEntry } from "../state/index.ts";

/** How often the directory looks at the live table (new doors, changed URLs, memberships). */
const SWEEP_MS = 2_000;
/** A listed door is checked again this often: a door whose port closed leaves the list. */
const REVERIFY_MS = 5 * 60_000;
/** A door that failed its check is tried again after this long. */
const RETRY_MS = 30_000;
/** A device's networks are read again this often. */
const MEMBERS_MS = 5_000;
/** The door check's time limit and the most of its answer read. */
const CHECK_TIMEOUT_MS = 3_000;
const CHECK_MAX_BYTES = 1024;
/** Checks under way at once. */
const CHECK_CONCURRENCY = 16;
/** Doors in one answer. */
export const MAX_DOORS_LISTED = 32;
/** A door must be at least this much nearer the caller than the gateway for the gateway to point to it (noise in declared locations). */
const HINT_MARGIN_KM = 50;

export interface DoorDirectoryOptions {
  /** The live table (paused, draining and gone devices are not in it). */
  liveDevices: () => DeviceEntry[];
  liveDevice: (deviceId: string) => DeviceEntry | undefined;
  /** The app networks a device is a member of. */
  networks: (deviceId: string) => Promise<string[]>;
  /** The device's measured round trip from this process, ms. */
  rttOf?: (deviceId: string) => number | undefined;
  /** Let the check reach private, loopback and link-local addresses (a LAN deployment, tests). */
  allowPrivate?: boolean;
  log: Logger;
  sweepMs?: number;
}

interface Checked {
  url: string;
  at: number;
  ok: boolean;
}

/** A door as the index keeps it, for one app. */
interface IndexedDoor {
  deviceId: string;
  url: string;
  location?: Location;
}

export class DoorDirectory implements AsyncDisposable {
  private readonly options: DoorDirectoryOptions;
  private readonly checked = new Map<string, Checked>();
  private readonly checking = new Set<string>();
  private readonly members = new Map<string, { apps: ReadonlySet<string>; at: number }>();
  /** app → its listed doors, rebuilt on each sweep. */
  private index = new Map<string, IndexedDoor[]>();
  private timer?: NodeJS.Timeout;
  private sweeping = false;

  constructor(options: DoorDirectoryOptions) {
    this.options = options;
  }

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.options.sweepMs ?? SWEEP_MS);
    this.timer.unref();
    void this.sweep();
  }

  /** Looks at the live table once: checks new or changed door URLs, reads memberships, rebuilds the index. */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = Date.now();
      const advertised = this.options.liveDevices().filter((d) => d.heartbeat.door !== undefined);
      const ids = new Set(advertised.map((d) => d.heartbeat.deviceId));
      for (const id of this.checked.keys()) if (!ids.has(id)) this.checked.delete(id);
      for (const id of this.members.keys()) if (!ids.has(id)) this.members.delete(id);
      const due = advertised.filter((d) => {
        const c = this.checked.get(d.heartbeat.deviceId);
        if (this.checking.has(d.heartbeat.deviceId)) return false;
        if (!c || c.url !== d.heartbeat.door!.url) return true;
        return now - c.at >= (c.ok ? REVERIFY_MS : RETRY_MS);
      });
      for (let i = 0; i < due.length; i += CHECK_CONCURRENCY) await Promise.all(due.slice(i, i + CHECK_CONCURRENCY).map((d) => this.check(d)));
      await Promise.all(
        advertised
          .filter((d) => this.isVerified(d) && now - (this.members.get(d.heartbeat.deviceId)?.at ?? 0) >= MEMBERS_MS)
          .map(async (d) => {
            try {
              this.members.set(d.heartbeat.deviceId, { apps: new Set(await this.options.networks(d.heartbeat.deviceId)), at: Date.now() });
            } catch (error) {
              this.options.log.warn({ err: error, deviceId: d.heartbeat.deviceId }, "could not read a door's networks; kept as last seen");
            }
          }),
      );
      const index = new Map<string, IndexedDoor[]>();
      for (const d of advertised) {
        if (!this.isVerified(d)) continue;
        const door: IndexedDoor = { deviceId: d.heartbeat.deviceId, url: d.heartbeat.door!.url, ...(d.heartbeat.door!.located ? { location: d.heartbeat.location } : {}) };
        for (const app of this.members.get(door.deviceId)?.apps ?? []) {
          let list = index.get(app);
          if (!list) index.set(app, (list = []));
          list.push(door);
        }
      }
      this.index = index;
    } finally {
      this.sweeping = false;
    }
  }

  private isVerified(d: DeviceEntry): boolean {
    const c = this.checked.get(d.heartbeat.deviceId);
    return c !== undefined && c.ok && c.url === d.heartbeat.door?.url;
  }

  private async check(d: DeviceEntry): Promise<void> {
    const deviceId = d.heartbeat.deviceId;
    const url = d.heartbeat.door!.url;
    this.checking.add(deviceId);
    try {
      const nonce = randomBytes(18).toString("base64url");
      const answer = await fetchIdentity(`${url}${DOOR_IDENTITY_PATH}?nonce=${nonce}`, this.options.allowPrivate ?? false);
      const ok = answer.deviceId === deviceId && answer.nonce === nonce;
      if (!ok) this.options.log.warn({ deviceId, url, answeredAs: answer.deviceId }, "a device advertised a door URL that is another device's door; not listed");
      else if (this.checked.get(deviceId)?.url !== url) this.options.log.info({ deviceId, url }, "door reached at its advertised URL: listed for its networks");
      this.checked.set(deviceId, { url, at: Date.now(), ok });
    } catch (error) {
      this.options.log.info({ deviceId, url, why: (error as Error).message }, "a device's advertised door could not be reached there; not listed");
      this.checked.set(deviceId, { url, at: Date.now(), ok: false });
    } finally {
      this.checking.delete(deviceId);
    }
  }

  /** What the last check of a device's advertised URL found (undefined: not checked, or not advertising now). */
  checkOf(deviceId: string): { url: string; ok: boolean } | undefined {
    const c = this.checked.get(deviceId);
    return c && { url: c.url, ok: c.ok };
  }

  /** Whether any door of the app's network is listed (the index as of the last sweep). */
  has(app: string): boolean {
    return (this.index.get(app)?.length ?? 0) > 0;
  }

  /**
   * The app's doors, nearest first: by distance from `near` coordinates
   * where the owner declared a location (undeclared ones after), or with
   * `near` a region, that region's first; then by this process's measured
   * round trip (unmeasured last), then by device id.
   */
  list(app: string, near: Near | undefined): DoorView[] {
    const point = near?.lat !== undefined && near.lon !== undefined ? { lat: near.lat, lon: near.lon } : undefined;
    const region = near?.region;
    const rows = this.live(app).map(({ door, entry }) => {
      const rtt = this.options.rttOf?.(door.deviceId);
      const km = point && door.location ? distanceKm(point, door.location) : undefined;
      const view: DoorView = {
        deviceId: door.deviceId,
        url: door.url,
        region: entry.heartbeat.region,
        ...(door.location ? { location: door.location } : {}),
        ...(km !== undefined ? { distanceKm: Math.round(km * 10) / 10 } : {}),
        ...(rtt !== undefined ? { rttMs: Math.round(rtt * 100) / 100 } : {}),
        functions: [...new Set(entry.heartbeat.functions.filter((f) => f.app === app).map((f) => f.fn))].sort(),
      };
      const tier = region !== undefined ? (entry.heartbeat.region === region ? 0 : 1) : point && km === undefined ? 1 : 0;
      return { view, tier, km: km ?? 0, rtt: rtt ?? Number.POSITIVE_INFINITY };
    });
    rows.sort((a, b) => a.tier - b.tier || a.km - b.km || a.rtt - b.rtt || (a.view.deviceId < b.view.deviceId ? -1 : 1));
    return rows.slice(0, MAX_DOORS_LISTED).map((r) => r.view);
  }

  /**
   * The door of the app's network nearest a caller, when it is nearer than
   * the gateway (by HINT_MARGIN_KM at least): one where the function is
   * placed (it runs there) before one that would relay it. Undefined when
   * no door is nearer, or none declared where it is.
   */
  nearerDoor(app: string, fn: string, caller: { lat: number; lon: number }, gateway: { lat: number; lon: number }): string | undefined {
    const doors = this.index.get(app);
    if (!doors) return undefined;
    const limit = distanceKm(caller, gateway) - HINT_MARGIN_KM;
    let best: { url: string; placed: boolean; km: number } | undefined;
    for (const door of doors) {
      if (!door.location) continue;
      const km = distanceKm(caller, door.location);
      if (km >= limit) continue;
      const entry = this.options.liveDevice(door.deviceId);
      if (!entry) continue;
      const placed = entry.heartbeat.functions.some((f) => f.app === app && f.fn === fn);
      if (!best || (placed && !best.placed) || (placed === best.placed && km < best.km)) best = { url: door.url, placed, km };
    }
    return best?.url;
  }

  /** The app's indexed doors whose devices are still live, with the same URL, right now. */
  private live(app: string): { door: IndexedDoor; entry: DeviceEntry }[] {
    return (this.index.get(app) ?? []).flatMap((door) => {
      const entry = this.options.liveDevice(door.deviceId);
      return entry && entry.heartbeat.door?.url === door.url ? [{ door, entry }] : [];
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearInterval(this.timer);
  }
}

/**
 * GETs a door's identity: no redirects, a short time limit, at most 1 KiB
 * read, and (unless allowPrivate) only to public addresses, checked on what
 * DNS answered right where the socket connects.
 */
function fetchIdentity(url: string, allowPrivate: boolean): Promise<DoorIdentity> {
  const target = new URL(url);
  const host = target.hostname.replace(/^\[|\]$/g, "");
  if (!allowPrivate && isIP(host) && !isPublicAddress(host)) return Promise.reject(new Error(`${host} is not a public address`));
  const lookup = (hostname: string, options: object, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) =>
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const usable = allowPrivate ? addresses : addresses.filter((a) => isPublicAddress(a.address));
      if (usable.length === 0) return callback(Object.assign(new Error(`${hostname} resolves to no public address`), { code: "ENOTFOUND" }), []);
      const wantsAll = (options as { all?: boolean }).all === true;
      if (wantsAll) callback(null, usable);
      else callback(null, usable[0]!.address, usable[0]!.family);
    });
  const get = target.protocol === "https:" ? https.get : http.get;
  return new Promise((resolve, reject) => {
    const req = get(url, { lookup: lookup as never, timeout: CHECK_TIMEOUT_MS, headers: { accept: "application/json" } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`answered ${res.statusCode} at ${DOOR_IDENTITY_PATH}`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.byteLength;
        if (size > CHECK_MAX_BYTES) return req.destroy(new Error("answer too large"));
        chunks.push(chunk);
      });
      res.on("end", () => {
        try {
          const parsed = DoorIdentity.safeParse(JSON.parse(Buffer.concat(chunks).toString("utf8")));
          if (parsed.success) resolve(parsed.data);
          else reject(new Error("answer is not a door's identity"));
        } catch {
          reject(new Error("answer is not JSON"));
        }
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)));
    req.on("error", reject);
  });
}
