/**
 * The usage ledger under faults, with real processes: a nats-server with
 * JetStream, a redis-server (appendonly, appendfsync always), two platform
 * processes and two device agents. A bounded number of calls goes through
 * the gateway while (a) the platform process holding a ledger consumer is
 * SIGKILLed mid-stream and restarted, (b) an agent is SIGKILLed right after
 * it answered, (c) redis-server is SIGKILLed and restarted. Afterwards each
 * app's usage (calls, bytes) is exactly what the HTTP client observed, and
 * reconcile finds no difference and nothing missing.
 */
import { execFile } from "node:child_process";
import { connect as connectTcp } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DEVICE_ERROR_CODES, type ReconcileReport, type RepairReport, type UsageReport } from "@hearth/protocol";
import { redisServerBinary, startLocalHearth, startRedisServer, type LocalHearth, type RedisServer } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ECHO = "export default { async fetch(req) { return new Response((await req.text()) + '!') } }";
const CALLS = 120;
const PLATFORM_BIN = fileURLToPath(new URL("../../platform/bin/hearth-platform.js", import.meta.url));
const run = promisify(execFile);
const CONCURRENCY = 4;

/** Codes of calls that reached the fabric: billed, like every answered call (see docs/ledger.md). */
const BILLED = new Set<string>([...DEVICE_ERROR_CODES, "ERR_NO_DEVICE", "ERR_DEVICE_TIMEOUT", "ERR_DEVICE_LOST", "ERR_BAD_DEVICE_REPLY"]);

let redis: RedisServer;
let hearth: LocalHearth;
let client: HearthClient;
/** The second platform: the clients' gateway while the first is killed. */
let gatewayUrl: string;

beforeAll(async () => {
  if (!redisServerBinary()) return;
  redis = await startRedisServer({ appendfsync: "always" });
  hearth = await startLocalHearth({ logLevel: "warn", redisUrl: redis.url, devices: [{ deviceId: "lf-a", ownerId: "ada" }, { deviceId: "lf-b", ownerId: "grace" }] });
  gatewayUrl = (await hearth.startPlatform()).url;
  client = new HearthClient({ url: gatewayUrl, token: hearth.developerToken });
}, 60_000);

afterAll(async () => {
  await hearth?.stop();
  await redis?.stop();
});

interface Observed {
  /** Answers for calls that reached a device or the fabric: billed. */
  calls: number;
  requestBytes: number;
  responseBytes: number;
  /** Answers the gateway gave before the fabric (e.g. state unreachable): not billed. */
  unbilled: number;
  /** Calls with no HTTP answer at all: must be none, else exactness cannot be checked. */
  unanswered: number;
  statuses: Record<string, number>;
}

/** Sends `CALLS` calls (a few at once) through the gateway; `during(i)` runs after the i-th answer (to inject a fault). */
async function drive(app: string, during: (answered: number) => Promise<void>): Promise<Observed> {
  const seen: Observed = { calls: 0, requestBytes: 0, responseBytes: 0, unbilled: 0, unanswered: 0, statuses: {} };
  let next = 0;
  let answered = 0;
  const worker = async () => {
    while (next < CALLS) {
      const i = next++;
      const body = "x".repeat(10 + (i % 37));
      let res: Response;
      try {
        res = await fetch(`${gatewayUrl}/fn/${app}/echo`, { method: "POST", body, signal: AbortSignal.timeout(30_000) });
      } catch {
        seen.unanswered++;
        continue;
      }
      const data = new Uint8Array(await res.arrayBuffer());
      let billed = res.status === 200;
      let key = String(res.status);
      if (!billed) {
        const code = (JSON.parse(new TextDecoder().decode(data)) as { error: { code: string } }).error.code;
        billed = BILLED.has(code);
        key = `${res.status} ${code}`;
      }
      seen.statuses[key] = (seen.statuses[key] ?? 0) + 1;
      if (billed) {
        seen.calls++;
        seen.requestBytes += body.length;
        if (res.status === 200) seen.responseBytes += data.byteLength;
      } else seen.unbilled++;
      await during(++answered);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return seen;
}

async function deployEcho(app: string): Promise<void> {
  await client.deploy({ app, name: "echo", code: ECHO, limits: { wallMs: 1_000 }, replicas: 2 });
  await client.waitUntilReady(app, "echo", { timeoutMs: 30_000 });
}

/** `/v1${path}`: reconcile is the operator's (hearth.token), usage the developer's. */
async function api<T>(method: string, path: string): Promise<T> {
  const token = path.startsWith("/ledger/") ? hearth.token : hearth.developerToken;
  const res = await fetch(`${gatewayUrl}/v1${path}`, { method, headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(60_000) });
  expect(res.status, `${method} ${path}`).toBe(200);
  return (await res.json()) as T;
}

/** Waits until the ledger has folded every record in (bounded), then returns reconcile's report. */
async function settled(): Promise<{ report: ReconcileReport; firstPending: number }> {
  let report: ReconcileReport | undefined;
  let firstPending: number | undefined;
  // a killed consumer's unacknowledged records come back after its ack wait (30 s)
  const deadline = Date.now() + 60_000;
  for (let i = 0; i < 240 && Date.now() < deadline; i++) {
    report = await api<ReconcileReport>("POST", "/ledger/reconcile");
    firstPending ??= report.pending;
    if (report.pending === 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return { report: report!, firstPending: firstPending! };
}

/** What each app's callers saw, for the checks after the ledger is rebuilt. */
const observed = new Map<string, Observed>();

async function expectTotals(app: string, seen: Observed): Promise<void> {
  const usage = await api<UsageReport>("GET", `/usage?app=${app}`);
  const totals = usage.apps[0]!.totals;
  expect({ calls: totals.calls, requestBytes: totals.requestBytes, responseBytes: totals.responseBytes }, `${app} ${JSON.stringify(seen.statuses)}`).toEqual({
    calls: seen.calls,
    requestBytes: seen.requestBytes,
    responseBytes: seen.responseBytes,
  });
}

async function expectExact(app: string, seen: Observed): Promise<void> {
  observed.set(app, seen);
  expect(seen.unanswered, JSON.stringify(seen.statuses)).toBe(0);
  expect(seen.calls + seen.unbilled).toBe(CALLS);
  const { report, firstPending } = await settled();
  expect(report).toMatchObject({ pending: 0, missing: 0, differences: [] });
  await expectTotals(app, seen);
  const totals = (await api<UsageReport>("GET", `/usage?app=${app}`)).apps[0]!.totals;
  console.log(`${app}: ${CALLS} calls, answers ${JSON.stringify(seen.statuses)}, billed ${totals.calls}, in flight right after the last answer ${firstPending}, reconcile difference 0`);
}

describe.skipIf(!redisServerBinary())("usage ledger under faults (real processes)", () => {
  it("(a) the platform process holding the ledger consumer is SIGKILLed mid-stream and restarted", async () => {
    await deployEcho("fault-a");
    let killed: Promise<void> | undefined;
    const seen = await drive("fault-a", async (n) => {
      if (n === CALLS / 3) killed = hearth.restartPlatform(); // the first platform runs a ledger consumer too
    });
    await killed;
    await expectExact("fault-a", seen);
  }, 150_000);

  it("(b) an agent is SIGKILLed right after it answers", async () => {
    await deployEcho("fault-b");
    let restarted: Promise<unknown> | undefined;
    const seen = await drive("fault-b", async (n) => {
      if (n !== CALLS / 3) return;
      const victim = hearth.devices.get("lf-a")!;
      const exited = new Promise((resolve) => victim.server.process.once("exit", resolve));
      victim.server.process.kill("SIGKILL");
      restarted = exited.then(() => hearth.startDevice(victim.spec));
    });
    await restarted;
    await expectExact("fault-b", seen);
  }, 150_000);

  it("(c) redis-server is SIGKILLed and restarted (appendfsync always): nothing acknowledged is lost", async () => {
    await deployEcho("fault-c");
    let restarted: Promise<void> | undefined;
    const seen = await drive("fault-c", async (n) => {
      if (n === CALLS / 3) restarted = redis.restart({ signal: "SIGKILL", downMs: 500 });
    });
    await restarted;
    await expectExact("fault-c", seen);
  }, 150_000);

  it("(d) Redis loses the ledger: reconcile reports every record missing; reconcile --repair rebuilds it from the stream, once", async () => {
    await deployEcho("fault-d");
    await expectExact("fault-d", await drive("fault-d", async () => undefined));
    // every ledger key gone (seen marks and accounts), as after a restore from a backup taken before these calls
    expect(await redisCommand(redis.port, "EVAL", "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) n = n + 1 end return n", "0", "hearth:ledger:*")).toMatch(/^:[1-9]/);
    const env = { ...process.env, HEARTH_NATS_URL: hearth.nats.url, REDIS_URL: redis.url, HEARTH_TOKEN: hearth.token, HEARTH_LOG_LEVEL: "warn", HEARTH_FABRIC_KEYS_FILE: hearth.fabricKeysFile };
    const check = await run(process.execPath, [PLATFORM_BIN, "reconcile", "--json"], { env }).catch((error: { code: number; stdout: string }) => error);
    expect("code" in check && check.code).toBe(1);
    const lost = JSON.parse(check.stdout) as ReconcileReport;
    expect(lost.missing).toBe(lost.records);
    expect(lost.missing).toBeGreaterThanOrEqual(CALLS);

    const { stdout } = await run(process.execPath, [PLATFORM_BIN, "reconcile", "--repair", "--json"], { env });
    const repair = JSON.parse(stdout) as RepairReport;
    expect(repair.reapplied).toBe(lost.missing);
    expect(repair.after).toMatchObject({ pending: 0, missing: 0, differences: [] });
    for (const [app, seen] of observed) await expectTotals(app, seen);

    const again = JSON.parse((await run(process.execPath, [PLATFORM_BIN, "reconcile", "--repair", "--json"], { env })).stdout) as RepairReport;
    expect(again).toMatchObject({ reapplied: 0, rewritten: [], after: { missing: 0, differences: [] } });
    for (const [app, seen] of observed) await expectTotals(app, seen);
  }, 150_000);
});

/** Sends one command to a redis-server and returns its raw reply (enough for integer and status replies). */
async function redisCommand(port: number, ...args: string[]): Promise<string> {
  const socket = connectTcp(port, "127.0.0.1");
  const payload = `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("");
  return new Promise((resolve, reject) => {
    let reply = "";
    socket.setTimeout(10_000, () => socket.destroy(new Error("redis-server did not answer")));
    socket.once("error", reject);
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8");
      if (reply.endsWith("\r\n")) {
        socket.end();
        resolve(reply.trim());
      }
    });
    socket.write(payload);
  });
}
