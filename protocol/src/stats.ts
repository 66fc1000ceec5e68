/**
 * A function's recent health as the API shows it (the console's charts):
 * calls, errors and wall-time percentiles per minute over the last hour, or
 * per 15 minutes over the last day, its most recent failed calls with their
 * request ids, and its usage by day. Built by the platform from the usage
 * records it folds (platform/src/stats).
 */
import { z } from "zod";
import { AppName, DeviceId, FunctionName } from "./names.ts";
import { RequestId } from "./messages.ts";
import { UsageDay, UsageOutcome, UsageTotals } from "./usage.ts";

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const StatsRange = z.enum(["hour", "day"]);
export type StatsRange = z.infer<typeof StatsRange>;

/** `GET .../stats` query: `range=hour` (default: 60 one-minute points) or `range=day` (96 points of 15 minutes). */
export const StatsQuery = z.strictObject({ range: StatsRange.default("hour") });

/** One interval: its start (ms since epoch), its calls and errors, and wall-time percentiles (null without calls). */
export const StatsPoint = z.strictObject({
  at: z.number().int(),
  calls: count,
  errors: count,
  p50Ms: z.number().min(0).nullable(),
  p99Ms: z.number().min(0).nullable(),
});
export type StatsPoint = z.infer<typeof StatsPoint>;

export const RecentError = z.strictObject({
  at: z.number().int().positive(),
  requestId: RequestId,
  code: UsageOutcome,
  status: z.number().int().min(100).max(599),
  deviceId: DeviceId.nullable(),
});
export type RecentError = z.infer<typeof RecentError>;

export const StatsDay = z.strictObject({
  day: UsageDay,
  calls: count,
  errors: count,
  cpuSeconds: z.number().min(0),
  requestBytes: count,
  responseBytes: count,
  doors: UsageTotals.shape.doors,
});
export type StatsDay = z.infer<typeof StatsDay>;

export const FunctionStatsReport = z.strictObject({
  app: AppName,
  fn: FunctionName,
  range: StatsRange,
  stepSeconds: z.number().int().positive(),
  points: z.array(StatsPoint),
  /** Over the whole range. */
  totals: StatsPoint.omit({ at: true }),
  /** Newest first, at most 50. */
  recentErrors: z.array(RecentError),
  /** From the ledger, oldest first; empty when metering is off. */
  days: z.array(StatsDay),
});
export type FunctionStatsReport = z.infer<typeof FunctionStatsReport>;
