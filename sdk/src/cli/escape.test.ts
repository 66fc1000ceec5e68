import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { LogEntry } from "@hearth/protocol";
import { afterEach, describe, expect, it, vi } from "vitest";
import { escapeForTerminal, jsonForTerminal } from "./escape.ts";
import { run } from "./index.ts";

/** Every byte a terminal acts on: C0 but tab and newline, DEL, C1. */
// eslint-disable-next-line no-control-regex -- control characters are what this pattern finds, to escape them
const TERMINAL_CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

describe("escapeForTerminal", () => {
  it("shows ANSI, OSC and 8-bit CSI sequences as visible escapes", () => {
    expect(escapeForTerminal("\x1b[2J\x1b[31mred")).toBe("\\u001b[2J\\u001b[31mred");
    expect(escapeForTerminal("\x1b]0;pwned\x07")).toBe("\\u001b]0;pwned\\u0007");
    expect(escapeForTerminal("\x1b]52;c;ZXZpbA==\x1b\\")).toBe("\\u001b]52;c;ZXZpbA==\\u001b\\");
    expect(escapeForTerminal("\x9b2J \x7f \x00")).toBe("\\u009b2J \\u007f \\u0000");
    expect(escapeForTerminal("over\rwritten")).toBe("over\\u000dwritten");
  });

  it("shows text-reordering and invisible characters escaped, keeps other Unicode", () => {
    expect(escapeForTerminal("a\u202eb\u2066c\u200bd\u2028e")).toBe("a\\u202eb\\u2066c\\u200bd\\u2028e");
    expect(escapeForTerminal("héllo 日本 🙂\ttab")).toBe("héllo 日本 🙂\ttab");
    expect(escapeForTerminal("lone \ud800 high")).toBe("lone \\ud800 high");
  });

  it("indents a message's later lines so they cannot pass for lines of their own, or escapes them", () => {
    expect(escapeForTerminal("first\n2026-01-01T00:00:00.000Z error - forged")).toBe("first\n    2026-01-01T00:00:00.000Z error - forged");
    expect(escapeForTerminal("a\nb", { newlines: "escape" })).toBe("a\\nb");
  });

  it("keeps JSON the same value while escaping what JSON.stringify leaves raw", () => {
    const value = { message: "\x1b[31m\x9b\u202e\n" };
    const text = jsonForTerminal(value);
    expect(text).not.toMatch(TERMINAL_CONTROLS);
    expect(text).not.toContain("\u202e");
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe("hearth logs", () => {
  let server: Server | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  const hostile: LogEntry = {
    app: "shop", fn: "cart", version: "c".repeat(64), requestId: "r1", deviceId: "d1", level: "info",
    message: "\x1b]0;owned\x07\x1b[2J\x9b31m done\r\nfake line", at: 1_700_000_000_000, seq: 1,
  };

  /** A platform on 127.0.0.1 whose logs route answers with one hostile line; returns the CLI's stdout. */
  async function hearthLogs(...flags: string[]): Promise<string> {
    server = createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ lines: [hostile] }));
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    let printed = "";
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      printed += String(chunk);
      return true;
    });
    const code = await run(["node", "hearth", "logs", "shop", "cart", "--url", url, "--token", "t", ...flags]);
    vi.restoreAllMocks();
    expect(code).toBe(0);
    return printed;
  }

  it("prints a tenant's control characters escaped, never raw", async () => {
    const printed = await hearthLogs();
    expect(printed).not.toMatch(TERMINAL_CONTROLS);
    expect(printed).toContain("\\u001b]0;owned\\u0007\\u001b[2J\\u009b31m done\\u000d\n    fake line");
  });

  it("prints --json lines with nothing a terminal acts on, as the same JSON", async () => {
    const printed = await hearthLogs("--json");
    expect(printed).not.toMatch(TERMINAL_CONTROLS);
    expect(JSON.parse(printed)).toEqual(hostile);
  });
});
