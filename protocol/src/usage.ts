/**
 * Usage metering on the wire: the record the gateway writes for every call
 * (the basis of billing and of device credits), and the views the API gives
 * developers (usage) and device owners (credits).
 *
 * Times are whole microseconds and sizes whole bytes, so the ledger only ever
 * adds integers: totals are exact, whatever order records are folded in.
 */
import { z } from "zod";
import { AppName, DeviceId, FunctionName, Sha256Hex } from "./names.ts";
import { RequestId } from "./messages.ts";

/** A UTC calendar day, `YYYY-MM-DD`. */
export const UsageDay = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/, "day must be YYYY-MM-DD (UTC)");
export type UsageDay = z.infer<typeof UsageDay>;

/** `ok`, or the error code the caller got. */
export const UsageOutcome = z.string().regex(/^(ok|ERR_[A-Z_]{1,60})$/, "outcome must be ok or an ERR_ code");

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * Which door a call came in by: the platform's gateway, a device's own door
 * (served there, or relayed to a peer of the app's network), or another
 * function of the app (`env.call`, served on the same device or relayed).
 * See docs/ledger.md, "Calls at a device's door".
 */
export const USAGE_DOORS = ["gateway", "device", "device-relay", "call", "call-relay"] as const;
export const UsageDoor = z.enum(USAGE_DOORS);
export type UsageDoor = z.infer<typeof UsageDoor>;

/** A usage record's own id: made by the gateway for each call (a UUID), never by the caller. */
export const UsageId = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "usage id must be a lowercase UUID");
export type UsageId = z.infer<typeof UsageId>;

/**
 * One call, as the gateway saw it. `cpuUs` is what is billed and credited:
 * the device's claim (`claimedCpuUs`) capped by the wall time the gateway
 * observed (`wallUs`) and by the function's CPU limit, so a device cannot
 * claim more than the call lasted or than the function was allowed to use.
 *
 * `id` identifies the record: the stream's message id (duplicates dropped
 * inside the window) and the ledger's seen mark. It is made by the gateway,
 * one per call; `requestId` is the caller's (or the gateway's) request id,
 * kept for correlation with logs only, since a caller may send the same
 * `X-Request-Id` many times. See docs/ledger.md.
 */
export const UsageRecord = z.strictObject({
  v: z.literal(2),
  id: UsageId,
  requestId: RequestId,
  app: AppName,
  fn: FunctionName,
  version: Sha256Hex,
  /** The device that answered; null when none did (no device, timeout). */
  deviceId: DeviceId.nullable(),
  /** When the gateway received the call (ms since epoch). */
  at: z.number().int().positive(),
  day: UsageDay,
  wallUs: count,
  cpuUs: count,
  claimedCpuUs: count,
  requestBytes: count,
  responseBytes: count,
  cold: z.boolean(),
  status: z.number().int().min(100).max(599),
  outcome: UsageOutcome,
  /** Which door the call came in by; absent in records written before doors were kept (those came in at the gateway). */
  door: UsageDoor.optional(),
  /**
   * False when the platform could not verify that the device served the
   * call (a door's word alone, docs/ledger.md): billed as reported, but the
   * device's account holds it as claimed, not credited. Absent: credited.
   */
  credited: z.literal(false).optional(),
});
export type UsageRecord = z.infer<typeof UsageRecord>;

/** Records one usage-stream message holds at most (a group commit's; about 100 KB of JSON, well under NATS's max payload). */
export const USAGE_GROUP_MAX = 256;

/** The records of one group commit. */
const UsageGroup = z.array(UsageRecord).min(1).max(USAGE_GROUP_MAX);

/**
 * One message of the usage stream: a record (a call whose record was
 * stored alone, and every message written before group commits), or the
 * records of one group commit, oldest first. See docs/ledger.md.
 */
export const UsageMessage = z.union([UsageRecord, UsageGroup]);
export type UsageMessage = z.infer<typeof UsageMessage>;

/** The usage stream's codec, used by the gateway that writes it and the ledger and reconciliation that read it. */
export const usageCodec = {
  /** One record is written as itself; a group as an array of them. */
  encode(records: readonly UsageRecord[]): string {
    if (records.length === 0 || records.length > USAGE_GROUP_MAX) throw new RangeError(`a usage message holds 1 to ${USAGE_GROUP_MAX} records, not ${records.length}`);
    return JSON.stringify(records.length === 1 ? records[0] : records);
  },
  /** The records of one stored message, checked; undefined when it is not a usage message. */
  decode(data: Uint8Array): UsageRecord[] | undefined {
    let json: unknown;
    try {
      json = JSON.parse(textDecoder.decode(data));
    } catch {
      return undefined;
    }
    // the form picks the schema (UsageMessage's union would first try a group as one record, and fail)
    if (!Array.isArray(json)) {
      const one = UsageRecord.safeParse(json);
      return one.success ? [one.data] : undefined;
    }
    const group = UsageGroup.safeParse(json);
    return group.success ? group.data : undefined;
  },
};
const textDecoder = new TextDecoder();

/** Sums over a set of calls. */
export const UsageTotals = z.strictObject({
  calls: count,
  /** Calls whose outcome was not `ok`. */
  errors: count,
  coldStarts: count,
  cpuUs: count,
  wallUs: count,
  requestBytes: count,
  responseBytes: count,
  /** cpuUs / 1e6, for people. */
  cpuSeconds: z.number().min(0),
  /** The calls by the door they came in by (they add up to `calls`). */
  doors: z.record(UsageDoor, count),
});
export type UsageTotals = z.infer<typeof UsageTotals>;

export const FunctionUsage = UsageTotals.extend({ fn: FunctionName });
export type FunctionUsage = z.infer<typeof FunctionUsage>;

export const DayUsage = z.strictObject({ day: UsageDay, totals: UsageTotals, functions: z.array(FunctionUsage) });
export type DayUsage = z.infer<typeof DayUsage>;

export const AppUsage = z.strictObject({ app: AppName, totals: UsageTotals, days: z.array(DayUsage) });
export type AppUsage = z.infer<typeof AppUsage>;

/** `GET /v1/usage?app=&day=` */
export const UsageReport = z.strictObject({ apps: z.array(AppUsage) });
export type UsageReport = z.infer<typeof UsageReport>;

/** A device's credit for one day: 1 credit = 1 CPU-second served (as billed). */
/** Calls a device served that the platform could not verify (its own door's word alone): shown to its owner, not credited. */
const Claimed = z.strictObject({ calls: count, cpuUs: count });

export const DeviceCreditDay = z.strictObject({
  day: UsageDay,
  calls: count,
  cpuUs: count,
  wallUs: count,
  credits: z.number().min(0),
  claimed: Claimed,
});
export type DeviceCreditDay = z.infer<typeof DeviceCreditDay>;

/** `GET /v1/devices/:id/credits` */
export const DeviceCredits = z.strictObject({
  deviceId: DeviceId,
  days: z.array(DeviceCreditDay),
  total: z.strictObject({ calls: count, cpuUs: count, wallUs: count, credits: z.number().min(0), claimed: Claimed }),
});
export type DeviceCredits = z.infer<typeof DeviceCredits>;

/** The result of recomputing the ledger from the stream. */
export const ReconcileReport = z.strictObject({
  records: count,
  /** Records in the stream the ledger's consumer has not acknowledged yet and has not folded in (still in flight). */
  pending: count,
  /** Records the consumer acknowledged that the ledger does not hold (Redis lost the write): a difference. */
  missing: count,
  days: z.array(UsageDay),
  /** Every account whose stored total differs from the recomputed one; empty when exact. */
  differences: z.array(
    z.strictObject({ account: z.string(), field: z.string(), ledger: z.number(), stream: z.number() }),
  ),
});
export type ReconcileReport = z.infer<typeof ReconcileReport>;

/** `reconcile --repair`: what was found, what was done, and the ledger afterwards. */
export const RepairReport = z.strictObject({
  before: ReconcileReport,
  /** Missing records folded in again (each once: the fold is idempotent). */
  reapplied: count,
  /** Accounts whose totals were rewritten to what the stream says. */
  rewritten: z.array(z.string()),
  after: ReconcileReport,
});
export type RepairReport = z.infer<typeof RepairReport>;

/** The UTC day of a time (ms since epoch). */
export function usageDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
