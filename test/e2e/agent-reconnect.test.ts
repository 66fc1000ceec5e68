/**
 * The fabric going away and coming back, end to end: the nats-server that a
 * real agent process (and the platform) is connected to stops, and a new one
 * starts on the same port, as an operator restarting it would. With no manual
 * step, the agent finds it again (backoff with jitter, forever), heartbeats,
 * and the function serves through the gateway again within seconds.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort, startLocalHearth, startNatsServer, waitFor, type LocalHearth } from "@hearth/devkit";
import { deviceCreds, FabricAuthority, natsAuth } from "@hearth/platform";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CODE = `export default { async fetch(request) {
  return Response.json({ path: new URL(request.url).pathname });
} }`;

let hearth: LocalHearth;
let client: HearthClient;
const logDir = mkdtempSync(join(tmpdir(), "hearth-reconnect-logs-"));

beforeAll(async () => {
  hearth = await startLocalHearth({ logLevel: "info", logDir, devices: [{ deviceId: "rc-device", ownerId: "ada" }] });
  client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
}, 60_000);

afterAll(async () => {
  await hearth?.stop();
  rmSync(logDir, { recursive: true, force: true });
});

/**
 * Calls as a client with a short timeout of its own would, until one answers
 * 200; returns how long that took. (A call sent while the platform itself is
 * still reconnecting may wait out the device timeout; a real client retries.)
 */
async function servesAgainWithin(timeoutMs: number): Promise<number> {
  const { url } = await client.get("rc", "fn");
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const res = await fetch(`${url}/again`, { signal: AbortSignal.timeout(1_500) }).catch(() => undefined);
    if (res?.status === 200) {
      expect(await res.json()).toEqual({ path: "/again" });
      return Date.now() - started;
    }
    await res?.body?.cancel();
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the function did not serve again within ${timeoutMs} ms`);
}

describe("agent reconnect", { timeout: 60_000 }, () => {
  it("a function serves again within seconds after its nats-server restarts on the same port", async () => {
    await client.deploy({ app: "rc", name: "fn", code: CODE, replicas: 1 });
    await client.waitUntilReady("rc", "fn", { timeoutMs: 20_000 });
    expect((await client.invoke("rc", "fn", "/before")).status).toBe(200);
    const port = hearth.nats.port;

    const { url: fnUrl } = await client.get("rc", "fn");
    // down for a few seconds: long enough for several reconnect attempts to fail
    const restarted = hearth.restartNats({ downMs: 5_000 });
    // meanwhile the gateway, which lost the fabric too, says so at once instead of letting the call wait out its wall
    // limit (polled: how soon nats-server is gone and the gateway hears of it depends on the machine's load)
    // (a call already on its way as nats-server went is lost with it and answered only after its wall limit: the poll
    // gives up on a call after 1 s and sends the next, so the 503 it waits for is an answer given at once)
    let during: { status: number; code: string } | undefined;
    await waitFor("the gateway to answer that it lost the fabric", async () => {
      const res = await fetch(`${fnUrl}/during`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
      if (!res) return false;
      const body = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
      during = { status: res.status, code: body.error?.code ?? "" };
      return during.status === 503;
    }, { timeoutMs: 4_500, intervalMs: 100 });
    expect(during).toEqual({ status: 503, code: "ERR_PLATFORM_UNREACHABLE" });
    await restarted;
    expect(hearth.nats.port).toBe(port);
    // the server is back now: the agent's next attempt is at most a few seconds away
    expect(await servesAgainWithin(20_000)).toBeLessThan(20_000);

    const log = readFileSync(join(logDir, "agent-rc-device.log"), "utf8");
    expect(log).toMatch(/lost the fabric/);
    expect(log).toMatch(/back on the fabric/);
    // the device is live for the platform again (its heartbeats flow)
    const devices = await new HearthClient({ url: hearth.url, token: hearth.token }).devices();
    expect(devices.find((d) => d.deviceId === "rc-device")?.lastSeenMs).toBeLessThan(3_000);
  });

  it("and again after a second restart (the backoff starts over once the connection held 10 s)", async () => {
    await new Promise((r) => setTimeout(r, 10_000));
    await hearth.restartNats({ downMs: 500 });
    expect(await servesAgainWithin(20_000)).toBeLessThan(20_000);
  });

  it("a device that was suspended (SIGSTOP, as a sleeping laptop) notices the clock jump on wake, reconnects and serves again", async () => {
    const agent = hearth.devices.get("rc-device")!.server.process;
    agent.kill("SIGSTOP");
    // long enough for the platform to give the device up (3.5 s of silence) and for the watch to call it a jump (5 s late)
    await new Promise((r) => setTimeout(r, 7_000));
    agent.kill("SIGCONT");
    expect(await servesAgainWithin(20_000)).toBeLessThan(20_000);
    const log = readFileSync(join(logDir, "agent-rc-device.log"), "utf8");
    expect(log).toMatch(/the clock jumped/);
  });
});

describe("an agent that starts before its fabric is up", () => {
  it("waits for it, saying so, and serves once it is there", async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), "hearth-early-"));
    const authority = FabricAuthority.generate();
    writeFileSync(join(dataDir, "fabric.creds"), await deviceCreds(authority, "early-bird", "hearth"), { mode: 0o600 });
    const bin = fileURLToPath(new URL("../../node-agent/bin/hearth-agent.js", import.meta.url));
    const child = spawn(process.execPath, [bin, "start", "--nats", `nats://127.0.0.1:${port}`, "--device-id", "early-bird", "--data-dir", dataDir, "--cores", "1", "--memory-mb", "128", "--no-pause-on-battery"], {
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HEARTH_"))),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    let nats: Awaited<ReturnType<typeof startNatsServer>> | undefined;
    try {
      // no fabric for a while: the agent keeps trying instead of giving up
      for (let i = 0; i < 80 && !/does not answer yet/.test(output); i++) await new Promise((r) => setTimeout(r, 100));
      expect(output).toMatch(/the fabric does not answer yet/);
      expect(child.exitCode).toBeNull();
      nats = await startNatsServer({ port, auth: natsAuth(authority) });
      for (let i = 0; i < 200 && !output.includes("HEARTH_AGENT_READY early-bird"); i++) await new Promise((r) => setTimeout(r, 100));
      expect(output).toContain("HEARTH_AGENT_READY early-bird");
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await nats?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
