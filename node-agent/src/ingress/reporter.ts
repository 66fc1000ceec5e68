/**
 * What this device tells the platform about calls that never passed the
 * gateway (`<p>.door.<id>.usage`, its own subject): the calls its door took,
 * and its attestations of relayed calls it served for a peer's door. Sent in
 * batches, kept (bounded) until the platform acknowledges them, sent again
 * with the same ids after a lost acknowledgement (the platform counts an id
 * once). See docs/ledger.md, "Calls at a device's door".
 */
import type { DoorCall, RelayServed, Subjects } from "@hearth/protocol";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log/index.ts";

/** Sent every this often, or at this many entries; at most this many kept while the platform is away (the oldest go first). */
const REPORT_EVERY_MS = 250;
const REPORT_BATCH = 200;
const REPORT_QUEUE_MAX = 50_000;

type Entry = { call: DoorCall } | { served: RelayServed };

export class UsageReporter {
  private readonly unsent: Entry[] = [];
  private timer?: NodeJS.Timeout;
  private reporting?: Promise<void>;
  private readonly options: { deviceId: string; subjects: Subjects; nc: () => NatsConnection; log: Logger };

  constructor(options: { deviceId: string; subjects: Subjects; nc: () => NatsConnection; log: Logger }) {
    this.options = options;
  }

  get unreported(): number {
    return this.unsent.length;
  }

  /** A call this device's door took. */
  call(call: DoorCall): void {
    this.queue({ call });
  }

  /** A relayed call this device served for a peer's door. */
  served(served: RelayServed): void {
    this.queue({ served });
  }

  private queue(entry: Entry): void {
    if (this.unsent.length >= REPORT_QUEUE_MAX) {
      this.unsent.shift();
      this.options.log.error("door usage queue full: the oldest unreported call was dropped (the platform has been away long)");
    }
    this.unsent.push(entry);
    if (this.unsent.length >= REPORT_BATCH) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), REPORT_EVERY_MS);
  }

  /** Sends what is queued; a batch the platform does not acknowledge is sent again 2 s later. */
  flush(): Promise<void> {
    // cleared once settled (asynchronously, so never before it is set, even when there is nothing to send)
    this.reporting ??= this.send().finally(() => {
      this.reporting = undefined;
    });
    return this.reporting;
  }

  private async send(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.unsent.length > 0) {
      const batch = this.unsent.slice(0, REPORT_BATCH);
      const calls = batch.flatMap((e) => ("call" in e ? [e.call] : []));
      const served = batch.flatMap((e) => ("served" in e ? [e.served] : []));
      try {
        const msg = await this.options.nc().request(this.options.subjects.doorUsage(this.options.deviceId), JSON.stringify({ calls, served }), { timeout: 5_000 });
        const answer = msg.json<{ ok?: boolean; error?: { code: string } }>();
        // refused as invalid or over the rate: sending it again would be refused again
        if (!answer.ok && answer.error?.code !== "ERR_BAD_MESSAGE" && answer.error?.code !== "ERR_RATE_LIMITED") throw new Error(answer.error?.code ?? "no ack");
      } catch (error) {
        this.options.log.warn({ err: error, unreported: this.unsent.length }, "could not report door usage; retrying");
        this.timer ??= setTimeout(() => void this.flush(), 2_000);
        return;
      }
      this.unsent.splice(0, batch.length);
    }
  }

  [Symbol.dispose](): void {
    clearTimeout(this.timer);
  }
}
