/**
 * Scaling with load and to zero, with real agents on a real authenticated
 * fabric: a function with 1 replica and up to 3 gets more devices while its
 * calls in flight come near its devices' donated cores, goes back to 1 when
 * the load stops, and one that scales to zero leaves every device after its
 * idle time; the next call wakes it (a cold start) and is answered.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "scaling-token-0123456789";
const PREFIX = "scaling";
const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-scaling-"));
let nats: NatsServer;
let platform: Platform;
let client: HearthClient;
const agents: Agent[] = [];

const SLOW_CODE = `export default { async fetch(req) {
  const ms = Number(new URL(req.url).searchParams.get("ms") ?? "0");
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  return new Response("ok");
} }`;

beforeAll(async () => {
  nats = await startNatsServer({ auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, tickMs: 200, scaleInAfterMs: 2_000 });
  const developer = await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("scale-dev");
  client = new HearthClient({ url: platform.url, token: developer.token.value });
  for (const id of ["scale-a", "scale-b", "scale-c"]) {
    const joined = await joinTestDevice(platform.devices, id, { cores: 1 });
    writeFileSync(join(dir, `${id}.creds`), joined.creds, { mode: 0o600 });
    agents.push(
      await Agent.start(
        parseAgentConfig({ natsUrl: nats.url, deviceId: id, subjectPrefix: PREFIX, cores: 1, memoryMb: 128, drainGraceMs: 500, credsFile: join(dir, `${id}.creds`), dataDir: join(dir, id) }),
        agentLogger(),
      ),
    );
  }
}, 60_000);

afterAll(async () => {
  for (const agent of agents) await agent.close().catch(() => undefined);
  await platform?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const devicesOf = async (app: string, fn: string) => (await client.get(app, fn)).devices.length;

describe("scaling", () => {
  it("adds devices while calls come near their cores, and goes back when the load stops", async () => {
    await client.deploy({ app: "scale", name: "load", code: SLOW_CODE, replicas: 1, maxReplicas: 3 });
    await waitFor("placed on one device", async () => (await devicesOf("scale", "load")) === 1, { timeoutMs: 20_000 });
    expect((await client.get("scale", "load")).scaling).toEqual({ maxReplicas: 3, idleSeconds: 0 });

    let stop = false;
    const failures: number[] = [];
    const worker = async () => {
      // bounded: at most 300 calls per worker, until stopped
      for (let i = 0; i < 300 && !stop; i++) {
        const res = await client.invoke("scale", "load", "/?ms=200");
        if (res.status !== 200) failures.push(res.status);
        await res.arrayBuffer();
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await waitFor("scaled out to three devices", async () => (await devicesOf("scale", "load")) === 3, { timeoutMs: 20_000, intervalMs: 200 });
    stop = true;
    await Promise.all(workers);
    expect(failures).toEqual([]);
    await waitFor("scaled back in to one device", async () => (await devicesOf("scale", "load")) === 1, { timeoutMs: 20_000, intervalMs: 200 });
  }, 60_000);

  it("leaves every device after its idle time, says so, and wakes for the next call", async () => {
    await client.deploy({ app: "scale", name: "idle", code: SLOW_CODE, replicas: 1, scaleToZeroAfterSeconds: 10 });
    await waitFor("placed", async () => (await devicesOf("scale", "idle")) === 1, { timeoutMs: 20_000 });
    expect((await client.invoke("scale", "idle")).status).toBe(200);
    await waitFor("scaled to zero", async () => (await client.get("scale", "idle")).status === "idle", { timeoutMs: 25_000, intervalMs: 500 });
    expect(await devicesOf("scale", "idle")).toBe(0);

    const woken = await client.invoke("scale", "idle");
    expect(woken.status).toBe(200);
    expect(await woken.text()).toBe("ok");
    await waitFor("placed again", async () => (await devicesOf("scale", "idle")) === 1, { timeoutMs: 10_000 });
    expect((await client.get("scale", "idle")).status).toBe("ready");
  }, 60_000);

  it("refuses scaling that makes no sense, saying why", async () => {
    await expect(client.deploy({ app: "scale", name: "bad", code: SLOW_CODE, replicas: 3, maxReplicas: 2 })).rejects.toThrow(/maxReplicas \(2\) must be at least replicas \(3\)/);
    await expect(client.deploy({ app: "scale", name: "bad", code: SLOW_CODE, scaleToZeroAfterSeconds: 5 })).rejects.toThrow(/at least 10 seconds/);
  });
});
