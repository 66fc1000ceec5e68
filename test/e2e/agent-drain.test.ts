/**
 * The owner's caps and pauses, end to end: a real nats-server, a platform and
 * an agent daemon (in this process, so the test can move the agent's clock),
 * functions called over HTTP through the gateway. Then real agent processes:
 * SIGTERM and `hearth-agent drain` with calls in flight, and `status`.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort, startLocalHearth, startNatsServer, waitFor, type LocalHearth, type NatsServer } from "@hearth/devkit";
import { resolveAgentConfig, silentLogger as agentLog, startDaemon, type Daemon } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const AGENT_BIN = join(ROOT, "node-agent/bin/hearth-agent.js");
const run = promisify(execFile);
const TOKEN = "drain-token-0123456789abcdef";

/** Sleeps `ms` inside the call, then says when it started and ended. */
const SLOW = (ms: number) => `export default { async fetch() {
  const start = Date.now();
  await new Promise((r) => setTimeout(r, ${ms}));
  return Response.json({ start, end: Date.now() });
} }`;

const until = (what: string, check: () => Promise<boolean> | boolean, timeoutMs?: number) => waitFor(what, check, { timeoutMs });

describe("caps and pauses of one in-process agent", () => {
  let nats: NatsServer;
  let platform: Platform;
  let client: HearthClient;
  let daemon: Daemon;
  let dataDir: string;
  /** The agent's clock: the test moves it across the schedule's edge. */
  let now = new Date(2026, 10, 23, 12, 0);
  let metricsPort = 0;

  beforeAll(async () => {
    const authority = FabricAuthority.generate();
    nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
    platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: "draine2e", deadAfterMs: 1_500, tickMs: 200 });
    // a developer deploys (the operator's TOKEN reaches operator routes only)
    const { token } = await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("drainer");
    client = new HearthClient({ url: platform.url, token: token.value });
    dataDir = mkdtempSync(join(tmpdir(), "hearth-agent-"));
    writeFileSync(join(dataDir, "fabric.creds"), (await joinTestDevice(platform.devices, "one-core")).creds, { mode: 0o600 });
    const config = resolveAgentConfig({
      flags: {
        natsUrl: nats.url,
        subjectPrefix: "draine2e",
        deviceId: "one-core",
        dataDir,
        cores: 1,
        memoryMb: 256,
        schedule: ["daily 08:00-20:00"],
        pauseOnBattery: false,
        heartbeatMs: 200,
        checkMs: 60_000, // the test ticks the schedule itself
        drainGraceMs: 10_000,
        metricsPort: (metricsPort = await freePort()),
      },
    });
    daemon = await startDaemon(config, agentLog(), { sensors: { now: () => now } });
  });

  afterAll(async () => {
    await daemon?.stop();
    await platform?.close();
    await nats?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("a device donating 1 core never runs two calls at once", async () => {
    await client.deploy({ app: "caps", name: "slow", code: SLOW(150), replicas: 1 });
    await client.waitUntilReady("caps", "slow", { timeoutMs: 20_000 });
    const answers = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const res = await client.invoke("caps", "slow");
        expect(res.status).toBe(200);
        return (await res.json()) as { start: number; end: number };
      }),
    );
    answers.sort((a, b) => a.start - b.start);
    for (let i = 1; i < answers.length; i++) expect(answers[i]!.start).toBeGreaterThanOrEqual(answers[i - 1]!.end);
    expect(daemon.agent.gate.peak).toBe(1);
    // each sandbox process is held to the donated memory (256 MiB) plus room for itself
    expect(daemon.agent.pool.processMemoryMb).toBe(256 + 128);
  });

  it("serves its opt-in Prometheus metrics on 127.0.0.1: calls, CPU-seconds, queue, cores, warm isolates, restarts", async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const sample = (series: string) => Number(text.split("\n").find((l) => l.startsWith(`${series} `))?.slice(series.length + 1));
    expect(sample('hearth_agent_calls_total{outcome="ok"}')).toBeGreaterThanOrEqual(5);
    expect(sample("hearth_agent_cpu_seconds_total")).toBeGreaterThan(0);
    expect(sample("hearth_agent_queue_depth")).toBe(0);
    expect(sample("hearth_agent_cores_donated")).toBe(1);
    expect(sample("hearth_agent_warm_isolates")).toBe(1);
    expect(sample("hearth_agent_warm_isolate_memory_bytes")).toBeGreaterThan(0);
    expect(sample("hearth_agent_sandbox_restarts_total")).toBe(0);
    expect(sample('hearth_agent_state{state="serving"}')).toBe(1);
    expect(sample("hearth_agent_fabric_connected")).toBe(1);
    // no label names an app or a function
    expect(text).not.toMatch(/caps|slow/);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/`)).status).toBe(404);
  });

  it("a schedule window closing drains the device without failing in-flight calls, and it serves again when the window opens", async () => {
    await client.deploy({ app: "caps", name: "night", code: SLOW(1_000), replicas: 1 });
    await client.waitUntilReady("caps", "night", { timeoutMs: 20_000 });
    const inFlight = Array.from({ length: 2 }, () => client.invoke("caps", "night"));
    await until("both calls on the device", () => daemon.agent.activeCalls === 2);

    now = new Date(2026, 10, 23, 20, 30); // the window closes
    daemon.availability.tick();
    for (const res of await Promise.all(inFlight)) expect(res.status).toBe(200);
    await until("paused", () => daemon.status().state === "paused");
    expect(daemon.status().pausedFor).toEqual(["schedule"]);
    // its heartbeats go on saying so: the operator's console shows it paused, and why
    const consoleState = async () => {
      const res = await fetch(`${platform.url}/v1/console/operator`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const body = (await res.json()) as { devices: { deviceId: string; state: string; pausedFor: string[] }[] };
      return body.devices.find((d) => d.deviceId === "one-core");
    };
    await until("the console shows it paused for its schedule", async () => {
      const d = await consoleState();
      return d?.state === "paused" && d.pausedFor.join() === "schedule";
    });

    const refused = await client.invoke("caps", "night");
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("ERR_NO_DEVICE");

    now = new Date(2026, 10, 24, 8, 0); // next morning
    daemon.availability.tick();
    await until("serving again", async () => (await client.invoke("caps", "night")).status === 200, 20_000);
    expect(daemon.status().state).toBe("serving");
    expect((await consoleState())?.state).toBe("serving");
  });
});

describe("real agent processes", () => {
  let hearth: LocalHearth;
  let client: HearthClient;

  beforeAll(async () => {
    // the agents devkit starts keep their control sockets in the local Hearth's own temp data dir
    hearth = await startLocalHearth({
      logLevel: "warn",
      devices: [
        { deviceId: "drain-a", cores: 2 },
        { deviceId: "drain-b", cores: 2 },
        { deviceId: "drain-c", cores: 2 },
      ],
    });
    client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
  }, 60_000);

  afterAll(async () => {
    await hearth?.stop();
  });

  /** `hearth-agent <args>` for one device, by its data dir. */
  const agent = (device: string, ...args: string[]) => run(process.execPath, [AGENT_BIN, ...args, "--data-dir", hearth.dataDirOf(device)], { env: { ...process.env } });
  /** The same command finding the agent by HEARTH_AGENT_DIR, as an owner who set it in their shell would. */
  const agentByEnv = (device: string, ...args: string[]) => {
    const env: NodeJS.ProcessEnv = { ...process.env, HEARTH_AGENT_DIR: hearth.dataDirOf(device) };
    return run(process.execPath, [AGENT_BIN, ...args], { env });
  };

  it("status prints cores in use vs donated and what it served today, as plain lines off a terminal", async () => {
    await client.deploy({ app: "drain", name: "quick", code: SLOW(1), replicas: 3 });
    await client.waitUntilReady("drain", "quick", { timeoutMs: 20_000 });
    // ready = one device serves it; the status below is drain-a's, so wait until drain-a has it too
    await until("placed on drain-a", async () => (await client.get("drain", "quick")).devices.includes("drain-a"));
    for (let i = 0; i < 6; i++) expect((await client.invoke("drain", "quick")).status).toBe(200);
    const { stdout } = await agent("drain-a", "status", "--device-id", "drain-a");
    expect(stdout).toMatch(/^device {4}drain-a \(owner local\) {2}serving/m);
    expect(stdout).toMatch(/^cores {5}\d+ in use of 2 donated/m);
    expect(stdout).toMatch(/^today {5}\d+ calls \(0 failed\), [\d.]+ CPU-seconds/m);
    // joined (as local Hearth's devices are), it shows what the platform credited it
    expect(stdout).toMatch(/^credits {3}[\d.]+ today, [\d.]+ in all/m);
    const json = JSON.parse((await agentByEnv("drain-a", "status", "--device-id", "drain-a", "--json")).stdout) as { deviceId: string; cores: number; functions: unknown[] };
    expect(json.deviceId).toBe("drain-a");
    expect(json.cores).toBe(2);
    expect(json.functions).toHaveLength(1);
  });

  it("SIGTERM and hearth-agent drain let in-flight calls finish: none is lost", async () => {
    await client.deploy({ app: "drain", name: "slow", code: SLOW(1_500), replicas: 3 });
    await client.waitUntilReady("drain", "slow", { timeoutMs: 20_000 });
    const ready = await client.get("drain", "slow");
    await until("placed on all three", async () => (await client.get("drain", "slow")).devices.length === 3);
    expect(ready.devices.length).toBeGreaterThanOrEqual(1);

    const calls = Array.from({ length: 9 }, () => client.invoke("drain", "slow"));
    // give the calls time to reach the devices (the gateway spreads them over the placed devices)
    await new Promise((r) => setTimeout(r, 300));
    const a = hearth.devices.get("drain-a")!.server.process;
    const aExit = new Promise<number | null>((r) => a.once("exit", (code) => r(code)));
    a.kill("SIGTERM");
    const { stdout } = await agent("drain-b", "drain", "--device-id", "drain-b");
    expect(stdout).toMatch(/draining/);
    const b = hearth.devices.get("drain-b")!.server.process;
    const bExit = new Promise<number | null>((r) => (b.exitCode !== null ? r(b.exitCode) : b.once("exit", (code) => r(code))));

    const statuses = await Promise.all(calls.map(async (p) => (await p).status));
    expect(statuses).toEqual(Array(9).fill(200));
    expect(await aExit).toBe(0);
    expect(await bExit).toBe(0);
    // the third device still serves
    expect((await client.invoke("drain", "slow")).status).toBe(200);
  });
});
