/**
 * Devices' console lines into the logs stream, checked, one stream message
 * per line. A device publishes its lines in batches (a JSON array; one
 * line alone is read too) on its own subject (`<prefix>.devlogs.<deviceId>`,
 * which only its credential may publish on), and a line is stored on its function's
 * subject only when it names that device and a version of that function
 * the device was given to run (Store.mayRun: placed there, or being placed).
 * A device cannot write into the logs of a function it does not run, nor
 * in another device's name.
 */
import { DEVICE_MESSAGE_BYTES, LogLine, logSubject, MAX_LOG_BATCH_LINES, type Subjects } from "@hearth/protocol";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { deviceBudget, LOG_BYTES_BUDGET, LOG_LINE_MIN_COST } from "../identity/device-budget.ts";
import type { Logger } from "../log/index.ts";
import type { Store } from "../state/index.ts";

/** How long a "device D may run F@v" answer is trusted from memory (yes: long, it rarely changes; no: briefly, it may be about to). */
const YES_TTL_MS = 10_000;
const NO_TTL_MS = 500;

export interface LogRelayOptions {
  nc: NatsConnection;
  subjects: Subjects;
  store: Store;
  log: Logger;
}

export function relayDeviceLogs(options: LogRelayOptions): Subscription {
  const { nc, subjects, store, log } = options;
  const answers = new Map<string, { yes: boolean; at: number }>();
  const budget = deviceBudget(LOG_BYTES_BUDGET);
  let dropped = 0;
  let lastReport = 0;
  const drop = (deviceId: string, why: string) => {
    dropped++;
    if (Date.now() - lastReport < 10_000) return;
    lastReport = Date.now();
    log.warn({ deviceId, dropped }, `dropped function log lines from a device: ${why}`);
  };
  const mayRun = async (deviceId: string, app: string, fn: string, version: string): Promise<boolean> => {
    const key = `${deviceId} ${app}/${fn}@${version}`;
    const hit = answers.get(key);
    if (hit && Date.now() - hit.at < (hit.yes ? YES_TTL_MS : NO_TTL_MS)) return hit.yes;
    const yes = await store.mayRun(deviceId, app, fn, version);
    if (answers.size > 10_000) answers.clear();
    answers.set(key, { yes, at: Date.now() });
    return yes;
  };
  /** Stores one line of a device's message, if it is the device's own and of a function it runs. */
  const store1 = async (deviceId: string, raw: unknown): Promise<void> => {
    const line = LogLine.safeParse(raw);
    if (!line.success) return drop(deviceId, "not a log line");
    if (line.data.deviceId !== deviceId) return drop(deviceId, "a line in another device's name");
    const { app, fn, version } = line.data;
    if (!(await mayRun(deviceId, app, fn, version))) return drop(deviceId, `a line for ${app}/${fn}, which it was not given to run`);
    nc.publish(logSubject(subjects, app, fn), JSON.stringify(line.data));
  };
  /** Reads one message of a device's lines (spent from its budget already) and stores each line of it. */
  const readBatch = async (deviceId: string, json: () => unknown, spent: number): Promise<void> => {
    let data: unknown;
    try {
      data = json();
    } catch {
      return drop(deviceId, "not JSON");
    }
    // a batch (what agents send: a JSON array of lines), or one line
    const lines = Array.isArray(data) ? data : [data];
    if (lines.length === 0) return;
    if (lines.length > MAX_LOG_BATCH_LINES) return drop(deviceId, `more than ${MAX_LOG_BATCH_LINES} lines in one message`);
    // each line costs at least the minimum: many tiny lines are as many lookups
    const rest = LOG_LINE_MIN_COST * lines.length - spent;
    if (rest > 0 && !(await budget.spend(deviceId, rest))) return drop(deviceId, "more log lines than its budget");
    for (const raw of lines) await store1(deviceId, raw);
  };
  /** Each device's messages, one at a time (what waits is bounded by the device's budget, spent before it waits). */
  const tails = new Map<string, Promise<void>>();
  const inOrder = (deviceId: string, work: () => Promise<void>): Promise<void> => {
    const next = (tails.get(deviceId) ?? Promise.resolve()).then(work, work);
    tails.set(deviceId, next);
    void next.finally(() => {
      if (tails.get(deviceId) === next) tails.delete(deviceId);
    }).catch(() => undefined);
    return next;
  };
  return nc.subscribe(subjects.deviceLogsAll, {
    // one platform process stores each line
    queue: "platform",
    callback: (err, msg) => {
      if (err) return;
      const deviceId = subjects.deviceOf(msg.subject, "devlogs");
      if (!deviceId) return;
      if (msg.data.length > DEVICE_MESSAGE_BYTES.logLines) return drop(deviceId, "a message of lines too big to read");
      // its bytes are spent before it is read: what is over budget costs no parse and no lookup
      const bytes = Math.max(msg.data.length, LOG_LINE_MIN_COST);
      budget
        .spend(deviceId, bytes)
        .then((within) => {
          if (!within) return drop(deviceId, "more log bytes than its budget");
          // one device's messages are read one after another, so its lines are stored in the order it sent them
          return inOrder(deviceId, () => readBatch(deviceId, msg.json.bind(msg), bytes));
        })
        .catch((error: unknown) => log.warn({ err: error }, "could not check a function log line's placement"));
    },
  });
}
