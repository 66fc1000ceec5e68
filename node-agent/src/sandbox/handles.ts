/**
 * Host objects an isolate works with but must never hold: CryptoKeys,
 * running hashes, (de)compressors. Each isolate has its own table; the
 * isolate gets only a handle, a random id that means something in this table
 * alone (another isolate's handle, or a guessed one, finds nothing). The
 * table is bounded by count and by an estimate of the host memory its
 * entries hold, and everything in it is dropped with the isolate.
 */
import { randomBytes } from "node:crypto";

export type HandleKind = "key" | "hash" | "zlib";

interface Entry {
  kind: HandleKind;
  value: unknown;
  cost: number;
  close?: () => void;
}

/** A handle is 128 random bits, base64url: unguessable, and cheap to check. */
export const HANDLE = /^[A-Za-z0-9_-]{22}$/;

export class HandleLimitError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "QuotaExceededError";
  }
}

export class HandleTable {
  private readonly entries = new Map<string, Entry>();
  private readonly counts: Record<HandleKind, number> = { key: 0, hash: 0, zlib: 0 };
  private cost = 0;
  private readonly maxCost: number;
  private readonly maxCount: Readonly<Record<HandleKind, number>>;

  constructor(maxCost: number, maxCount: Readonly<Record<HandleKind, number>>) {
    this.maxCost = maxCost;
    this.maxCount = maxCount;
  }

  /** Adds an object; refuses once its kind's count or the table's memory estimate would pass its bound. */
  add(kind: HandleKind, value: unknown, cost: number, close?: () => void): string {
    if (this.counts[kind] >= this.maxCount[kind]) {
      close?.();
      throw new HandleLimitError(`this isolate holds ${this.maxCount[kind]} live ${kind === "key" ? "CryptoKeys" : kind === "hash" ? "DigestStreams" : "compression streams"} already`);
    }
    if (this.cost + cost > this.maxCost) {
      close?.();
      throw new HandleLimitError(`this isolate's keys and streams hold over ${this.maxCost >> 20} MiB of host memory already`);
    }
    const handle = randomBytes(16).toString("base64url");
    this.entries.set(handle, { kind, value, cost, ...(close ? { close } : {}) });
    this.counts[kind]++;
    this.cost += cost;
    return handle;
  }

  /** The object behind a handle, if it is of this kind and in this table. */
  get<T>(kind: HandleKind, handle: unknown): T | undefined {
    if (typeof handle !== "string") return undefined;
    const entry = this.entries.get(handle);
    return entry?.kind === kind ? (entry.value as T) : undefined;
  }

  delete(handle: string): void {
    const entry = this.entries.get(handle);
    if (!entry) return;
    this.entries.delete(handle);
    this.counts[entry.kind]--;
    this.cost -= entry.cost;
    entry.close?.();
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    for (const handle of [...this.entries.keys()]) this.delete(handle);
  }
}
