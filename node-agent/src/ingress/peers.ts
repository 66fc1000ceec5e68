/**
 * Peers of this device's networks, for a call it does not run itself: who
 * serves a function (the platform's answer, kept briefly) and the relay of a
 * call to them over the fabric (`<p>.net.<app>.invoke.<peer>`, the only
 * subjects a device's credential lets it use for another device). Used by
 * the door (calls from outside) and by function-to-function calls
 * (`env.call`), so both pick and try peers alike.
 */
import { DoorPeersReply, INVOKE_HEADERS, type Subjects } from "@hearth/protocol";
import { RequestError, TimeoutError, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";

/** How long the platform's answer to "who serves this function" is kept. */
const PEERS_CACHE_MS = 2_000;
/**
 * Lookups one app may ask of the platform a second from this device (a
 * burst of as many): the platform answers a device at most 100 a second,
 * so no one app's callers or functions can use them all up for the others.
 */
const LOOKUPS_PER_APP_PER_SECOND = 25;

export interface PeersHost {
  readonly deviceId: string;
  readonly subjects: Subjects;
  /** The fabric connection in use now. */
  nc(): NatsConnection;
}

/** How a relay ended: a peer's reply (the last one that answered, when each passed the call on), or none. */
export type RelayOutcome =
  | { reply: Pick<Msg, "headers" | "data">; servedBy: string }
  | { timedOut: true }
  | { none: true };

export class Peers {
  private readonly host: PeersHost;
  private readonly cache = new Map<string, { at: number; reply: DoorPeersReply }>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(host: PeersHost) {
    this.host = host;
  }

  /** The platform's answer to "who else serves app/fn", kept briefly. Only for an app this device is a member of. */
  async lookup(app: string, fn: string): Promise<DoorPeersReply> {
    const key = `${app}/${fn}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < PEERS_CACHE_MS) return hit.reply;
    if (!this.mayAsk(app)) return { error: { code: "ERR_RATE_LIMITED", message: "this device asked the platform about this app's functions too often; retry in a second" } };
    let reply: DoorPeersReply;
    try {
      const msg = await this.host.nc().request(this.host.subjects.doorPeers(this.host.deviceId), JSON.stringify({ app, fn }), { timeout: 2_000 });
      const parsed = DoorPeersReply.safeParse(msg.json());
      reply = parsed.success ? parsed.data : { error: { code: "ERR_BAD_MESSAGE", message: "the platform's answer did not parse" } };
    } catch {
      reply = { error: { code: "ERR_PLATFORM_UNREACHABLE", message: "the platform did not answer" } };
    }
    // a not-found is kept as long as a hit (a client cannot make the device ask the platform on every request);
    // a failure of the moment (the platform away, busy, or over this device's lookup rate) is not kept
    const transient = "error" in reply && reply.error.code !== "ERR_FUNCTION_NOT_FOUND";
    if (!transient) {
      // bounded: the oldest answers go first, never everyone's at once
      if (this.cache.size >= 10_000) for (const old of [...this.cache.keys()].slice(0, 1_000)) this.cache.delete(old);
      this.cache.set(key, { at: Date.now(), reply });
    }
    return reply;
  }

  /** Takes one of the app's lookups this second, if it has one left (a token bucket per app, bounded in apps). */
  private mayAsk(app: string): boolean {
    const now = Date.now();
    let bucket = this.buckets.get(app);
    if (!bucket) {
      if (this.buckets.size >= 10_000) this.buckets.clear();
      bucket = { tokens: LOOKUPS_PER_APP_PER_SECOND, at: now };
      this.buckets.set(app, bucket);
    }
    bucket.tokens = Math.min(LOOKUPS_PER_APP_PER_SECOND, bucket.tokens + ((now - bucket.at) / 1000) * LOOKUPS_PER_APP_PER_SECOND);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Forgets what the platform said of app/fn (its peers all failed): the next call asks again. */
  forget(app: string, fn: string): void {
    this.cache.delete(`${app}/${fn}`);
  }

  /**
   * Relays a call to the peers in order, once each, until one runs it.
   * A peer that did not run it (not placed there any more, at capacity)
   * passes it on. A peer that timed out may have run it: only an idempotent
   * call goes on to the next, within what is left of `deadline`
   * (performance.now() time).
   */
  async relay(app: string, peers: readonly string[], h: MsgHdrs, body: Uint8Array, options: { deadline: number; idempotent: boolean }): Promise<RelayOutcome> {
    h.set(INVOKE_HEADERS.hops, "1");
    let last: RelayOutcome = { none: true };
    for (const peer of peers) {
      const timeout = Math.round(options.deadline - performance.now());
      if (timeout <= 0) break;
      try {
        const msg = await this.host.nc().request(this.host.subjects.netInvoke(app, peer), body, { headers: h, timeout });
        const code = msg.headers?.get(INVOKE_HEADERS.errorCode);
        last = { reply: msg, servedBy: peer };
        if (code === "ERR_NO_DEVICE" || code === "ERR_DEVICE_BUSY") continue;
        return last;
      } catch (error) {
        if (error instanceof RequestError && error.isNoResponders()) continue;
        if (error instanceof TimeoutError || (error instanceof RequestError && error.cause instanceof TimeoutError)) {
          // a peer's earlier answer (it passed the call on) says more than this silence
          if (!("reply" in last)) last = { timedOut: true };
          if (options.idempotent) continue;
          return last;
        }
        throw error;
      }
    }
    return last;
  }
}
