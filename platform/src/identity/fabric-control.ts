/**
 * The platform's hold on the fabric's trust: the connection in nats-server's
 * system account that pushes the Hearth account's JWT (with its revocation
 * list) to the resolver, and the device directory other parts ask whether a
 * device is joined and not revoked, and what its join record says.
 *
 * A revocation is pushed at once (nats-server then closes the device's
 * connections and refuses its credential), told to every platform process
 * on the revoked subject, and pushed again every few minutes and at start,
 * so a push lost to a restart of either side is made good.
 */
import { DeviceId, HearthError, type Subjects } from "@hearth/protocol";
import { credsAuthenticator, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { connect } from "@nats-io/transport-node";
import { z } from "zod";
import type { Logger } from "../log/index.ts";
import type { DeviceRecord, DeviceRegistry } from "./devices.ts";
import type { FabricAuthority } from "./fabric.ts";

const ClaimsUpdateReply = z.object({
  data: z.object({ code: z.number(), message: z.string().optional() }).optional(),
  error: z.object({ code: z.number().optional(), description: z.string().optional() }).optional(),
});

const RevokedNotice = z.strictObject({ deviceId: z.string() });

/**
 * nats-server's advisory for a closed client connection: `name_tag` is the
 * name in the user JWT the platform signed (the device id), never what the
 * client said of itself.
 */
const DisconnectAdvisory = z.object({
  client: z.object({ name_tag: z.string().optional(), user: z.string().optional() }),
  reason: z.string().optional(),
});

/** How often the account JWT is pushed again without a change. */
const REPUSH_MS = 5 * 60_000;
/** A revocation's push: tries at once, then every PUSH_RETRY_MS until nats-server takes it. */
const PUSH_ATTEMPTS = 3;
const PUSH_RETRY_MS = 5_000;
/** How long a device's record is trusted from memory before Redis is asked again. */
const DIRECTORY_TTL_MS = 30_000;

export interface FabricControlOptions {
  authority: FabricAuthority;
  registry: DeviceRegistry;
  nc: NatsConnection;
  natsUrl: string;
  subjects: Subjects;
  log: Logger;
}

/** What a heartbeat is checked against: the device's join record, or why it is not believed. */
export type DeviceLookup =
  | { state: "joined"; record: DeviceRecord }
  | { state: "unknown" | "revoked" }
  /** Being read from Redis: `ready` resolves once `lookup` knows. */
  | { state: "loading"; ready: Promise<void> };

export class FabricControl implements AsyncDisposable {
  private readonly options: FabricControlOptions;
  private readonly system: NatsConnection;
  private readonly notices: Subscription;
  private readonly timer: NodeJS.Timeout;
  private readonly cache = new Map<string, { lookup: DeviceLookup; at: number }>();
  private pushing: Promise<void> = Promise.resolve();
  private retrying?: NodeJS.Timeout;
  private closed = false;
  /** Told when a device is revoked (by this process or another): the scheduler forgets it at once. */
  onRevoked?: (deviceId: string) => void;
  /**
   * Told when one of a device's fabric connections closes (nats-server's
   * DISCONNECT advisory, from the system account): the device may be gone
   * (killed, unplugged) or may be moving to a renewed credential's
   * connection, so the listener checks before it gives up on the device.
   */
  onDisconnect?: (deviceId: string, reason: string) => void;
  private readonly disconnects: Subscription;

  private constructor(options: FabricControlOptions, system: NatsConnection) {
    this.options = options;
    this.system = system;
    this.notices = options.nc.subscribe(options.subjects.revoked, {
      callback: (err, msg) => {
        if (err) return;
        let parsed;
        try {
          parsed = RevokedNotice.safeParse(msg.json());
        } catch {
          return;
        }
        if (parsed.success) this.forget(parsed.data.deviceId, true);
      },
    });
    this.disconnects = system.subscribe(`$SYS.ACCOUNT.${options.authority.publicKeys.account}.DISCONNECT`, {
      callback: (err, msg) => {
        if (err) return;
        let parsed;
        try {
          parsed = DisconnectAdvisory.safeParse(msg.json());
        } catch {
          return;
        }
        if (!parsed.success) return;
        const deviceId = parsed.data.client.name_tag;
        if (deviceId && DeviceId.safeParse(deviceId).success) this.onDisconnect?.(deviceId, parsed.data.reason ?? "closed");
      },
    });
    this.timer = setInterval(() => {
      this.push().catch((error: unknown) => options.log.warn({ err: error }, "could not push the fabric account to nats-server; trying again later"));
    }, REPUSH_MS);
    this.timer.unref();
  }

  static async start(options: FabricControlOptions): Promise<FabricControl> {
    const system = await connect({
      servers: options.natsUrl,
      name: "hearth-platform-system",
      authenticator: credsAuthenticator(await options.authority.systemCreds()),
      maxReconnectAttempts: -1,
    });
    const control = new FabricControl(options, system);
    await control.push();
    return control;
  }

  /** Pushes the account JWT with the current revocation list (one push at a time). */
  push(): Promise<void> {
    const run = this.pushing.then(async () => {
      const jwt = await this.options.authority.accountJwt(await this.options.registry.revocations());
      const reply = await this.system.request("$SYS.REQ.CLAIMS.UPDATE", jwt, { timeout: 2_000 });
      const parsed = ClaimsUpdateReply.safeParse(reply.json());
      const code = parsed.success ? (parsed.data.data?.code ?? parsed.data.error?.code) : undefined;
      if (code !== 200) {
        const why = parsed.success ? (parsed.data.data?.message ?? parsed.data.error?.description) : "an unreadable reply";
        throw new HearthError("ERR_INTERNAL", `nats-server refused the account update: ${why ?? `code ${code}`}`);
      }
    });
    this.pushing = run.catch(() => undefined);
    return run;
  }

  /**
   * Revokes a device: its record first (so no restart forgets it), then
   * every platform process's memory (its heartbeats and replies stop
   * counting at once), then the fabric (nats-server closes its connections
   * and refuses its credential). A push that fails is tried again a few
   * times here and then every few seconds until one succeeds; the caller
   * hears that the fabric part is still pending.
   */
  async revoke(deviceId: string): Promise<{ revokedAt: string }> {
    const { revokedAt } = await this.options.registry.revoke(deviceId);
    this.forget(deviceId, true);
    this.options.nc.publish(this.options.subjects.revoked, JSON.stringify({ deviceId }));
    this.options.log.info({ deviceId }, "device revoked");
    try {
      await this.pushWithRetries();
    } catch (error) {
      this.retryPushSoon();
      throw new HearthError(
        "ERR_INTERNAL",
        `device ${deviceId} is revoked, but nats-server has not taken the revocation yet (${(error as Error).message}); the platform keeps trying every ${PUSH_RETRY_MS / 1000} s`,
      );
    }
    return { revokedAt };
  }

  private async pushWithRetries(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.push();
      } catch (error) {
        if (attempt >= PUSH_ATTEMPTS || this.closed) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
      }
    }
  }

  private retryPushSoon(): void {
    if (this.retrying || this.closed) return;
    this.retrying = setInterval(() => {
      this.push().then(
        () => {
          clearInterval(this.retrying);
          this.retrying = undefined;
          this.options.log.info("nats-server took the pending revocations");
        },
        (error: unknown) => this.options.log.warn({ err: error }, "could not push the revocations to nats-server; trying again"),
      );
    }, PUSH_RETRY_MS);
    this.retrying.unref();
  }

  /**
   * The device's join record from memory, loading it from Redis when not
   * known (answering "loading" meanwhile, so a heartbeat path never waits).
   */
  lookup(deviceId: string, now = Date.now()): DeviceLookup {
    const hit = this.cache.get(deviceId);
    if (hit && (now - hit.at < DIRECTORY_TTL_MS || hit.lookup.state === "loading")) return hit.lookup;
    const ready = this.load(deviceId).then(
      () => undefined,
      (error: unknown) => {
        this.cache.delete(deviceId);
        this.options.log.warn({ err: error, deviceId }, "could not read a device's record");
      },
    );
    // a joined device stays believed while its record is read again; a new one waits for it
    const lookup: DeviceLookup = hit?.lookup.state === "joined" ? hit.lookup : { state: "loading", ready };
    this.cache.set(deviceId, { lookup, at: now });
    if (this.cache.size > 100_000) this.cache.clear();
    return lookup;
  }

  /** Waits until `lookup` has an answer from Redis for this device (tests and join use it). */
  async load(deviceId: string): Promise<DeviceLookup> {
    const record = await this.options.registry.device(deviceId);
    const lookup: DeviceLookup = !record ? { state: "unknown" } : record.revokedAt ? { state: "revoked" } : { state: "joined", record };
    this.cache.set(deviceId, { lookup, at: Date.now() });
    return lookup;
  }

  private forget(deviceId: string, revoked: boolean): void {
    if (revoked) this.cache.set(deviceId, { lookup: { state: "revoked" }, at: Date.now() });
    else this.cache.delete(deviceId);
    if (revoked) this.onRevoked?.(deviceId);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    clearInterval(this.retrying);
    if (!this.options.nc.isClosed()) this.notices.unsubscribe();
    if (!this.system.isClosed()) this.disconnects.unsubscribe();
    await this.pushing;
    await this.system.close().catch(() => undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
