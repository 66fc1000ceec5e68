/**
 * Bundles by hash: fetched from the platform over the fabric, verified
 * against their SHA-256 before anything runs, and kept in a small LRU.
 */
import { createHash } from "node:crypto";
import { HearthError, INVOKE_HEADERS, isErrorCode, type Subjects } from "@hearth/protocol";
import type { NatsConnection } from "@nats-io/transport-node";

export class BundleCache {
  /** The device's fabric connection now (it is replaced when the credential is renewed). */
  private readonly nc: () => NatsConnection;
  private readonly subjects: Subjects;
  private readonly deviceId: string;
  private readonly max: number;
  private readonly cache = new Map<string, string>();
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(nc: () => NatsConnection, subjects: Subjects, deviceId: string, max = 256) {
    this.nc = nc;
    this.subjects = subjects;
    this.deviceId = deviceId;
    this.max = max;
  }

  /** The bundle's source, fetched and verified on first use. */
  async get(hash: string): Promise<string> {
    const hit = this.cache.get(hash);
    if (hit !== undefined) {
      this.cache.delete(hash);
      this.cache.set(hash, hit);
      return hit;
    }
    let pending = this.inflight.get(hash);
    if (!pending) {
      pending = this.fetch(hash).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, pending);
    }
    return pending;
  }

  private async fetch(hash: string): Promise<string> {
    const reply = await this.nc().request(this.subjects.bundleGet(this.deviceId), JSON.stringify({ hash }), { timeout: 10_000 });
    const code = reply.headers?.get(INVOKE_HEADERS.errorCode);
    if (code) {
      const message = reply.headers?.get(INVOKE_HEADERS.errorMessage) ?? "bundle fetch failed";
      throw new HearthError(isErrorCode(code) ? code : "ERR_BAD_MESSAGE", message);
    }
    const actual = createHash("sha256").update(reply.data).digest("hex");
    if (actual !== hash) {
      throw new HearthError("ERR_BUNDLE_INTEGRITY", `bundle ${hash} arrived with hash ${actual}; refusing to run it`);
    }
    const code_ = new TextDecoder("utf-8", { fatal: true }).decode(reply.data);
    this.cache.set(hash, code_);
    while (this.cache.size > this.max) this.cache.delete(this.cache.keys().next().value!);
    return code_;
  }
}
