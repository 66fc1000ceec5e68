/**
 * Every isolate runs in UTC, whatever the device's time zone: dates format the
 * same on every device and tell nothing of where the owner lives.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { SandboxPool } from "../src/sandbox/supervisor.ts";
import { call, json, jsonFunction, startPool, uniqueKey } from "./helpers.ts";

let pool: SandboxPool;
const hostZone = process.env["TZ"];

beforeAll(async () => {
  // the agent's own process in New York: its sandbox processes must not inherit that
  process.env["TZ"] = "America/New_York";
  pool = await startPool();
});
afterAll(async () => {
  await pool?.[Symbol.asyncDispose]();
  if (hostZone === undefined) delete process.env["TZ"];
  else process.env["TZ"] = hostZone;
});

it("runs in UTC while the host is in America/New_York", async () => {
  // the host really is elsewhere: 1 January is winter time in New York, five hours behind UTC
  expect(new Date(Date.UTC(2026, 0, 1)).getTimezoneOffset()).toBe(300);
  const out = json(
    await call(
      pool,
      uniqueKey("utc"),
      jsonFunction(`
        const d = new Date(Date.UTC(2026, 0, 1, 12, 30));
        return { offset: d.getTimezoneOffset(), summer: new Date(Date.UTC(2026, 6, 1)).getTimezoneOffset(), zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
                 hours: d.getHours(), string: d.toString(), local: new Date(2026, 0, 1).toISOString(),
                 formatted: new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeStyle: "short" }).format(d),
                 locale: Intl.DateTimeFormat().resolvedOptions().locale, number: (1234.5).toLocaleString(), date: d.toLocaleDateString() };
      `),
    ),
  );
  expect(out).toEqual({
    offset: 0,
    summer: 0,
    zone: "UTC",
    hours: 12,
    string: expect.stringMatching(/^Thu Jan 01 2026 12:30:00 GMT\+0000 \(Coordinated Universal Time\)$/),
    local: "2026-01-01T00:00:00.000Z",
    formatted: expect.stringMatching(/^Jan 1, 2026, 12:30\sPM$/),
    // no LANG reaches the sandbox: ICU's default, en-US, as on workerd
    locale: "en-US",
    number: "1,234.5",
    date: "1/1/2026",
  });
});

it("starts its sandbox processes with TZ=UTC, which wins over the machine's /etc/localtime", () => {
  // (on a machine whose own zone is UTC the test above would pass without it; this is what holds elsewhere)
  for (const pid of pool.pids()) expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")).toContain("TZ=UTC");
});
