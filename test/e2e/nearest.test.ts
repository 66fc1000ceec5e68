/**
 * Calls go to the nearest device, as the gateway measures it: three real
 * agents in one region, one connected to nats-server directly, one through
 * a proxy adding 30 ms each way, one through a proxy adding 90 ms each way
 * (these machines have no netem; see devkit's delay proxy). The gateway
 * pings each device and serves calls from the nearest; when that one goes,
 * from the next nearest; when it comes back, from it again. What the devices
 * say of their own location plays no part.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDelayProxy, startNatsServer, waitFor, type DelayProxy, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type JoinedDevice, type Platform } from "@hearth/platform";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "nearest-token-0123456789";
const PREFIX = "nearest";
const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-nearest-"));
let nats: NatsServer;
let platform: Platform;
let client: HearthClient;
const proxies: DelayProxy[] = [];
const agents = new Map<string, Agent>();
const joined = new Map<string, JoinedDevice>();

/** Starts (or starts again) a device's agent, connecting through `url`. */
async function startAgent(id: string, url: string): Promise<void> {
  let device = joined.get(id);
  if (!device) {
    device = await joinTestDevice(platform.devices, id, { region: "eu", cores: 2 });
    joined.set(id, device);
    writeFileSync(join(dir, `${id}.creds`), device.creds, { mode: 0o600 });
  }
  const agent = await Agent.start(
    parseAgentConfig({ natsUrl: url, deviceId: id, subjectPrefix: PREFIX, cores: 2, memoryMb: 128, drainGraceMs: 500, credsFile: join(dir, `${id}.creds`), dataDir: join(dir, id) }),
    agentLogger(),
  );
  agents.set(id, agent);
}

beforeAll(async () => {
  nats = await startNatsServer({ auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, region: "eu", tickMs: 200, latencyEveryMs: 1_000 });
  const developer = await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("near-dev");
  client = new HearthClient({ url: platform.url, token: developer.token.value });
  // gaps well over what a stall of this loaded process adds to one ping (the smoothed figure takes 0.3 of a ping)
  const mid = await startDelayProxy({ targetPort: nats.port, delayMs: 30 });
  const far = await startDelayProxy({ targetPort: nats.port, delayMs: 90 });
  proxies.push(mid, far);
  await startAgent("near", nats.url);
  await startAgent("mid", mid.url);
  await startAgent("far", far.url);
}, 60_000);

afterAll(async () => {
  for (const agent of agents.values()) await agent.close().catch(() => undefined);
  await platform?.close();
  for (const p of proxies) await p.stop();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Calls made so far: the gateway hedges at most 1 + 5% of a function's calls (docs/routing.md), and a hedge may win. */
let made = 0;
const hedgeBound = () => 1 + Math.ceil(made * 0.05);

async function servedBy(count: number): Promise<Map<string, number>> {
  const by = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const res = await client.invoke("near", "fn");
    made++;
    expect(res.status).toBe(200);
    const device = res.headers.get("x-hearth-device")!;
    by.set(device, (by.get(device) ?? 0) + 1);
  }
  return by;
}

describe("the nearest device", () => {
  it("measures each device's round trip and serves calls from the nearest", async () => {
    await client.deploy({ app: "near", name: "fn", code: "export default { fetch: () => new Response('ok') }", replicas: 3 });
    await waitFor("placed on all three", async () => (await client.get("near", "fn")).devices.length === 3, { timeoutMs: 30_000 });
    // what is measured is the injected delay: each proxy adds twice its delay to the round trip (60 and 180 ms). A ping
    // answered during a stall of this loaded process reads high once; the smoothed figures settle within a few pings
    const rtt = (id: string) => platform.latency.rttOf(id) ?? Number.NaN;
    await waitFor("the round trips measured in the order of the injected delays", () => rtt("far") > rtt("mid") + 60 && rtt("mid") > rtt("near") + 30, { timeoutMs: 45_000, intervalMs: 200 });
    // timers may fire a hair early, and the round trip is smoothed: most of the 180 ms, not all of it
    expect(rtt("far")).toBeGreaterThanOrEqual(150);

    const by = await servedBy(200);
    // a few may be hedged to another device when the nearest is slow for a moment (a loaded machine), and the hedge win
    expect(by.get("near") ?? 0).toBeGreaterThanOrEqual(200 - hedgeBound());
  }, 120_000);

  it("moves to the next nearest when the nearest goes, and back when it returns", async () => {
    await agents.get("near")!.close();
    await waitFor("near out of the live table", () => platform.scheduler.liveDevice("near") === undefined, { timeoutMs: 10_000 });
    const without = await servedBy(100);
    expect(without.get("mid") ?? 0).toBeGreaterThanOrEqual(100 - hedgeBound());

    await startAgent("near", nats.url);
    await waitFor("near placed and live again", async () => platform.scheduler.liveDevice("near") !== undefined && (await client.get("near", "fn")).devices.includes("near"), { timeoutMs: 30_000 });
    await waitFor("near measured again", () => (platform.latency.rttOf("near") ?? Infinity) < (platform.latency.rttOf("mid") ?? 0), { timeoutMs: 15_000 });
    const back = await servedBy(100);
    expect(back.get("near") ?? 0).toBeGreaterThanOrEqual(100 - hedgeBound());
  }, 90_000);
});
