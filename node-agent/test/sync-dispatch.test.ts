/**
 * Synchronous dispatch (worker.ts): an isolate whose calls have been quick
 * takes the synchronous entry, with no thread crossing. Its answers, logs,
 * host callbacks and waitUntil work must be exactly those of the async way,
 * and a function that turns slow or spins must be stopped and sent back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxResult } from "../src/sandbox/messages.ts";
import type { SandboxPool } from "../src/sandbox/supervisor.ts";
import { call, startPool, text, uniqueKey } from "./helpers.ts";

let pool: SandboxPool;
const logs: { key: string; requestId: string; message: string }[] = [];
beforeAll(async () => {
  pool = await startPool({ onLog: (e) => logs.push(e) });
});
afterAll(async () => {
  await pool?.[Symbol.asyncDispose]();
});

const FN = `
let waited = 0;
export default {
  fetch(request, env, ctx) {
    const url = new URL(request.url);
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    console.log("seen " + url.pathname);
    ctx.waitUntil(new Promise((r) => setTimeout(r, 1)).then(() => { waited++; }));
    if (url.pathname === "/spin") for (;;) {}
    if (url.pathname === "/burn") { const end = Date.now() + 8; while (Date.now() < end) {} }
    if (url.pathname === "/later") return new Promise((r) => setTimeout(() => r(new Response("later " + waited)), 5));
    return new Response("hi " + url.pathname + " " + bytes.some((b) => b !== 0), { status: 201, headers: { "x-hearth-test": "yes" } });
  },
};`;

/** Calls until the isolate takes the synchronous entry (bounded), each answer checked. */
async function warm(key: string): Promise<number> {
  for (let i = 0; i < 40; i++) {
    const result = await call(pool, key, FN, { path: `/p${i}`, requestId: `warm-${i}` });
    expect(result).toMatchObject({ ok: true, status: 201 });
    expect(text(result)).toBe(`hi /p${i} true`);
    if (result.sync) return i;
  }
  throw new Error("the isolate never took the synchronous entry");
}

describe("synchronous dispatch", () => {
  it("a quick function's calls take it after a run of quick calls, and answer exactly as before", async () => {
    const key = uniqueKey("sync");
    const firstSync = await warm(key);
    expect(firstSync).toBe(16);
    const result = (await call(pool, key, FN, { path: "/again", requestId: "sync-1" })) as SandboxResult & { ok: true };
    expect(result.sync).toBe(true);
    expect(result.headers).toContainEqual(["x-hearth-test", "yes"]);
    expect(text(result)).toBe("hi /again true");
    // its log line, under its own request id
    expect(logs.some((l) => l.key === key && l.requestId === "sync-1" && l.message === "seen /again")).toBe(true);
    // a call that waits on the host (a timer) is finished the async way, waitUntil work of earlier calls done
    const later = await call(pool, key, FN, { path: "/later" });
    expect(later.sync).toBe(true);
    expect(text(later)).toMatch(/^later \d+$/);
    expect(Number(text(later).split(" ")[1])).toBeGreaterThan(0);
  });

  it("one slower call sends the isolate back to the async entry", async () => {
    const key = uniqueKey("sync-burn");
    await warm(key);
    const burn = await call(pool, key, FN, { path: "/burn" });
    expect(burn.sync).toBe(true);
    expect(text(burn)).toBe("hi /burn true");
    const next = await call(pool, key, FN, { path: "/next" });
    expect(next.sync).toBeUndefined();
    expect(text(next)).toBe("hi /next true");
  });

  it("a quick function that then spins is stopped at its CPU limit, and the process keeps serving", async () => {
    const key = uniqueKey("sync-spin");
    await warm(key);
    const spin = await call(pool, key, FN, { path: "/spin", limits: { cpuMs: 100, wallMs: 5_000 } });
    expect(spin).toMatchObject({ ok: false, code: "ERR_CPU_LIMIT", sync: true });
    // a new isolate, which starts the async way again
    const after = await call(pool, key, FN, { path: "/after" });
    expect(after.sync).toBeUndefined();
    expect(text(after)).toBe("hi /after true");
    expect(text(await call(pool, uniqueKey("bystander"), FN, { path: "/b" }))).toBe("hi /b true");
  });
});
