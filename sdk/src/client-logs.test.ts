import { HearthError, type LogEntry } from "@hearth/protocol";
import { describe, expect, it } from "vitest";
import { HearthClient } from "./client.ts";

const VERSION = "c".repeat(64);
const entry = (seq: number, message: string): LogEntry => ({
  app: "shop", fn: "cart", version: VERSION, requestId: "r1", deviceId: "d1", level: "info", message, at: 1_700_000_000_000 + seq, seq,
});

/** A platform that answers a follow request with these chunks of Server-Sent Events. */
function sseClient(chunks: string[], seen: URL[] = []): HearthClient {
  const fakeFetch = (async (input: URL | RequestInfo) => {
    seen.push(new URL(String(input)));
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(encoder.encode(c));
        controller.close();
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  }) as typeof fetch;
  return new HearthClient({ url: "http://platform.test", token: "t", fetch: fakeFetch });
}

/** The first `n` lines (a follow never ends by itself: it picks a lost stream up again). */
async function collect(it: AsyncIterable<LogEntry>, n = Number.POSITIVE_INFINITY): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const line of it) {
    out.push(line);
    if (out.length >= n) break;
  }
  return out;
}

describe("tailLogs", () => {
  it("parses events split anywhere across chunks (a CRLF too), skips comments, and asks for follow with the query", async () => {
    const a = `event: line\nid: 1\ndata: ${JSON.stringify(entry(1, "one"))}\n\n`;
    const b = `: keep-alive\n\nevent: line\r\nid: 2\r\ndata: ${JSON.stringify(entry(2, "two: with colon"))}\r\n\r\n`;
    const text = a + b;
    const seen: URL[] = [];
    const crlf = text.indexOf("\r\n");
    const client = sseClient([text.slice(0, 7), text.slice(7, 50), text.slice(50, a.length + 3), text.slice(a.length + 3, crlf + 1), text.slice(crlf + 1)], seen);
    const lines = await collect(client.tailLogs("shop", "cart", { since: "10m", limit: 5, requestId: "r1" }), 2);
    expect(lines.map((l) => l.message)).toEqual(["one", "two: with colon"]);
    expect(Object.fromEntries(seen[0]!.searchParams)).toEqual({ since: "10m", limit: "5", requestId: "r1", follow: "1" });
    expect(seen[0]!.pathname).toBe("/v1/apps/shop/functions/cart/logs");
  });

  it("turns an error event into a typed HearthError", async () => {
    const client = sseClient([`event: error\ndata: {"error":{"code":"ERR_INTERNAL","message":"broken","requestId":"x"}}\n\n`]);
    const attempt = collect(client.tailLogs("shop", "cart"));
    await expect(attempt).rejects.toBeInstanceOf(HearthError);
    await expect(attempt).rejects.toMatchObject({ code: "ERR_INTERNAL" });
  });

  it("asks again when the process it reached is stopping or full (ERR_LOGS_UNAVAILABLE), after the last line", async () => {
    const seen: URL[] = [];
    const client = sseClient([`event: line\ndata: ${JSON.stringify(entry(3, "three"))}\n\nevent: error\ndata: {"error":{"code":"ERR_LOGS_UNAVAILABLE","message":"stopping","requestId":"x"}}\n\n`], seen);
    const lines = await collect(client.tailLogs("shop", "cart"), 2);
    expect(lines.map((l) => l.seq)).toEqual([3, 3]);
    expect(seen[1]!.searchParams.get("after")).toBe("3");
  });

  it("refuses a line it does not understand instead of passing it on", async () => {
    const client = sseClient([`event: line\ndata: {"message":"no fields"}\n\n`]);
    await expect(collect(client.tailLogs("shop", "cart"))).rejects.toMatchObject({ code: "ERR_BAD_MESSAGE" });
  });

  it("when the stream ends, asks again for the lines after the last one it got, and says so", async () => {
    const seen: URL[] = [];
    const reasons: string[] = [];
    const client = sseClient([`event: line\ndata: ${JSON.stringify(entry(7, "seven"))}\n\n`], seen);
    const lines = await collect(client.tailLogs("shop", "cart", { since: "10m", limit: 5, onReconnect: (e) => reasons.push(e.message) }), 2);
    expect(lines.map((l) => l.seq)).toEqual([7, 7]); // the fake platform answers the same line again; a real one sends only later ones
    expect(Object.fromEntries(seen[1]!.searchParams)).toMatchObject({ after: "7", limit: "1000", follow: "1" });
    expect(reasons).toEqual(["the platform ended the log stream"]);
  });

  it("does not retry a first connection that fails: a wrong URL or token is the caller's to see", async () => {
    const client = new HearthClient({ url: "http://platform.test", token: "t", fetch: (async () => { throw new TypeError("fetch failed"); }) as typeof fetch });
    await expect(collect(client.tailLogs("shop", "cart"))).rejects.toMatchObject({ code: "ERR_PLATFORM_UNREACHABLE" });
  });
});
