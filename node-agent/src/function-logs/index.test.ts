import { DEVICE_MESSAGE_BYTES, LogLine, Subjects } from "@hearth/protocol";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { forwardFunctionLogs, LOG_BATCH_LINES, LOG_FLUSH_MS, logLineOf } from "./index.ts";

const VERSION = "b".repeat(64);

function fakeFabric() {
  const published: { subject: string; line: LogLine }[] = [];
  const messages: string[] = [];
  const nc = {
    isClosed: () => false,
    publish: (subject: string, data: string) => {
      messages.push(data);
      for (const line of z.array(LogLine).parse(JSON.parse(data))) published.push({ subject, line });
    },
  } as unknown as NatsConnection;
  return { nc, published, messages };
}

function ownerLog() {
  const lines: string[] = [];
  const log = pino({ level: "debug" }, { write: (s: string) => lines.push(s) });
  return { log, lines };
}

describe("function logs on the device", () => {
  it("publishes console lines in batches on the device's own log subject, naming function, request id and device", async () => {
    const { nc, published, messages } = fakeFabric();
    const { log } = ownerLog();
    const onLog = forwardFunctionLogs({ deviceId: "dev-7", subjects: new Subjects("t1"), connection: () => nc, log });
    onLog({ key: `shop/cart@${VERSION}`, requestId: "req-9", level: "warn", message: "low stock" });
    onLog({ key: `shop/cart@${VERSION}`, requestId: "", level: "trace", message: "loading" });
    // held for a batch, then sent within LOG_FLUSH_MS as one message
    expect(messages).toEqual([]);
    await vi.waitFor(() => expect(messages.length).toBe(1), { timeout: LOG_FLUSH_MS * 50 });
    expect(published.map((p) => p.subject)).toEqual(["t1.devlogs.dev-7", "t1.devlogs.dev-7"]);
    expect(published[0]!.line).toMatchObject({ app: "shop", fn: "cart", version: VERSION, requestId: "req-9", deviceId: "dev-7", level: "warn", message: "low stock" });
    // top-level code runs outside a call; an unknown level is kept as info
    expect(published[1]!.line).toMatchObject({ requestId: null, level: "info" });
  });

  it("never writes a line's content to the owner's log, only counts at debug level", () => {
    const { nc } = fakeFabric();
    const { log, lines } = ownerLog();
    const onLog = forwardFunctionLogs({ deviceId: "dev-7", subjects: new Subjects("t2"), connection: () => nc, log, reportEveryMs: 0 });
    onLog({ key: `shop/cart@${VERSION}`, requestId: "req-1", level: "error", message: "card 4242-secret declined" });
    onLog.flush();
    expect(lines.length).toBe(1);
    expect(lines.join("")).not.toContain("4242-secret");
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 20, fnLogLines: 1, fnLogLinesDropped: 0 });
  });

  it("drops (and counts) lines before the fabric connection exists or with a key that is not a function's", () => {
    const { log, lines } = ownerLog();
    let nc: NatsConnection | undefined;
    const onLog = forwardFunctionLogs({ deviceId: "dev-7", subjects: new Subjects("t3"), connection: () => nc, log, reportEveryMs: 0 });
    onLog({ key: `shop/cart@${VERSION}`, requestId: "r", level: "info", message: "early" });
    const fabric = fakeFabric();
    nc = fabric.nc;
    onLog({ key: "shop/cart", requestId: "r", level: "info", message: "no version" });
    onLog({ key: `Shop.*/cart@${VERSION}`, requestId: "r", level: "info", message: "bad app" });
    expect(fabric.published).toEqual([]);
    expect(lines.map((l) => JSON.parse(l).fnLogLinesDropped)).toEqual([1, 1, 1]);
  });

  it("sends a full batch at once, and what is held on flush, each message within the platform's bound", () => {
    const { nc, published, messages } = fakeFabric();
    const { log } = ownerLog();
    const onLog = forwardFunctionLogs({ deviceId: "dev-7", subjects: new Subjects("t4"), connection: () => nc, log });
    for (let i = 0; i < LOG_BATCH_LINES + 3; i++) onLog({ key: `shop/cart@${VERSION}`, requestId: `r${i}`, level: "info", message: `line ${i}` });
    expect(messages.length).toBe(1);
    onLog.flush();
    expect(messages.length).toBe(2);
    expect(published.map((p) => p.line.message)).toEqual(Array.from({ length: LOG_BATCH_LINES + 3 }, (_, i) => `line ${i}`));
    // long lines: a batch goes before one would take it past about 256 KiB
    for (let i = 0; i < 40; i++) onLog({ key: `shop/cart@${VERSION}`, requestId: "r", level: "info", message: "\u0001".repeat(16_000) });
    // three UTF-8 bytes a character: counted as bytes, as the platform reads them
    for (let i = 0; i < 40; i++) onLog({ key: `shop/cart@${VERSION}`, requestId: "r", level: "info", message: "中".repeat(16_000) });
    onLog.flush();
    for (const m of messages) expect(Buffer.byteLength(m)).toBeLessThanOrEqual(DEVICE_MESSAGE_BYTES.logLines);
    expect(published.length).toBe(LOG_BATCH_LINES + 3 + 80);
  });

  it("cuts a long message to the wire's bound", () => {
    const line = logLineOf({ key: `a/b@${VERSION}`, requestId: "r", level: "info", message: "x".repeat(20_000) }, "d");
    expect(line?.message.length).toBe(16_384);
  });
});
