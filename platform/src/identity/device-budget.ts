/**
 * What one device may ask of the platform over the fabric in a window of
 * time. nats-server stops a device at its own subjects, but what it may
 * publish there still costs the platform work (a bundle request is
 * answered with up to 4 MiB, a log line is checked and stored): a budget
 * per device keeps one hostile device from spending it all. Kept in each
 * platform process's memory; each process spends its own share.
 */
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";

export interface DeviceBudget {
  /** Spends `cost` of the device's budget: false when it has not that much left in this window. */
  spend(deviceId: string, cost?: number): Promise<boolean>;
}

export function deviceBudget(options: { points: number; perSeconds: number }): DeviceBudget {
  const limiter = new RateLimiterMemory({ points: options.points, duration: options.perSeconds });
  return {
    spend: (deviceId, cost = 1) =>
      limiter.consume(deviceId, cost).then(
        () => true,
        (refused: unknown) => {
          // the memory limiter rejects with its result when over budget, and with an Error only on a fault
          if (refused instanceof RateLimiterRes) return false;
          throw refused;
        },
      ),
  };
}

/** Bundle requests: a device fetches a bundle when it is placed, so a few a second is plenty even as it starts. */
export const BUNDLE_REQUEST_BUDGET = { points: 120, perSeconds: 60 } as const;
/** Function log lines, in bytes (each line counts at least LOG_LINE_MIN_COST): a busy device logging freely stays under it. */
export const LOG_BYTES_BUDGET = { points: 8 * 1024 * 1024, perSeconds: 10 } as const;
/** What one log line costs of the budget at least, however short: a flood of tiny lines is a flood. */
export const LOG_LINE_MIN_COST = 512;
