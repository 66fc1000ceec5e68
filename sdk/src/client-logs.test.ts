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

async function collect(it: AsyncIterable<LogEntry>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const line of it) out.push(line);
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
    const lines = await collect(client.tailLogs("shop", "cart", { since: "10m", limit: 5, requestId: "r1" }));
    expect(lines.map((l) => l.message)).toEqual(["one", "two: with colon"]);
    expect(Object.fromEntries(seen[0]!.searchParams)).toEqual({ since: "10m", limit: "5", requestId: "r1", follow: "1" });
    expect(seen[0]!.pathname).toBe("/v1/apps/shop/functions/cart/logs");
  });

  it("turns an error event into a typed HearthError", async () => {
    const client = sseClient([`event: error\ndata: {"error":{"code":"ERR_LOGS_UNAVAILABLE","message":"stopping","requestId":"x"}}\n\n`]);
    const attempt = collect(client.tailLogs("shop", "cart"));
    await expect(attempt).rejects.toBeInstanceOf(HearthError);
    await expect(attempt).rejects.toMatchObject({ code: "ERR_LOGS_UNAVAILABLE" });
  });

  it("refuses a line it does not understand instead of passing it on", async () => {
    const client = sseClient([`event: line\ndata: {"message":"no fields"}\n\n`]);
    await expect(collect(client.tailLogs("shop", "cart"))).rejects.toMatchObject({ code: "ERR_BAD_MESSAGE" });
  });
});
