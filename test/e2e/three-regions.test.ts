/**
 * Three regions on one machine, with real latency between them: eu (three
 * nats-servers), us and ap (two each), each a NATS cluster, joined by NATS
 * gateways. Each region's gateway listener sits behind a delay proxy that is
 * also what the region advertises, so every link into a region is slower by
 * that region's delay (eu 5 ms, us 15 ms, ap 60 ms each way: eu-us 20 ms, eu-ap
 * 65 ms round trip on top of the machine's own). The platform runs in eu;
 * real agents run in every region.
 *
 * - With devices in the caller's region, calls are served there.
 * - With none left there, by the nearest other region (us, not ap), and
 *   back in eu once a device returns.
 * - One of eu's three nats-servers killed under GET load: no call fails
 *   (the device on it reconnects to another; what was in flight on it is
 *   hedged or moved).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startDelayProxy, startNatsServer, waitFor, type DelayProxy, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "three-regions-token-0123456789";
const PREFIX = "tri";
const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-tri-"));
const REGIONS = { eu: { servers: 3, delayMs: 5 }, us: { servers: 2, delayMs: 15 }, ap: { servers: 2, delayMs: 60 } } as const;
type Region = keyof typeof REGIONS;

const servers = new Map<string, NatsServer>();
const ports = new Map<string, { client: number; cluster: number; gateway: number; monitor: number; proxy?: DelayProxy }>();
const proxies: DelayProxy[] = [];
/** Each server's gateway delay proxy, by server name. */
const gatewayProxies = new Map<string, DelayProxy>();
const agents = new Map<string, Agent>();
let platform: Platform;
let client: HearthClient;

beforeAll(async () => {
  // every port first: routes and gateways name each other
  for (const [region, spec] of Object.entries(REGIONS)) {
    for (let i = 1; i <= spec.servers; i++) {
      ports.set(`${region}${i}`, { client: await freePort(), cluster: await freePort(), gateway: await freePort(), monitor: await freePort() });
    }
  }
  for (const [name, p] of ports) {
    const region = name.replace(/\d+$/, "") as Region;
    p.proxy = await startDelayProxy({ targetPort: p.gateway, delayMs: REGIONS[region].delayMs });
    proxies.push(p.proxy);
    gatewayProxies.set(name, p.proxy);
  }
  const gatewayUrls = (region: string) =>
    [...ports].filter(([n]) => n.replace(/\d+$/, "") === region).map(([, p]) => `"nats://127.0.0.1:${p.proxy!.port}"`).join(", ");
  await Promise.all(
    [...ports].map(async ([name, p]) => {
      const region = name.replace(/\d+$/, "");
      const peers = [...ports].filter(([n]) => n !== name && n.replace(/\d+$/, "") === region).map(([, q]) => `"nats-route://127.0.0.1:${q.cluster}"`);
      const others = Object.keys(REGIONS).filter((r) => r !== region);
      const server = await startNatsServer({
        auth: natsAuth(authority),
        port: p.client,
        config: [
          `server_name: ${name}`,
          `http: "127.0.0.1:${p.monitor}"`,
          `cluster { name: ${region}, listen: "127.0.0.1:${p.cluster}", routes: [${peers.join(", ")}] }`,
          // advertised as the delay proxy: whoever connects to this region's gateways comes through it
          `gateway { name: ${region}, listen: "127.0.0.1:${p.gateway}", advertise: "127.0.0.1:${p.proxy!.port}", gateways: [${others.map((o) => `{ name: ${o}, urls: [${gatewayUrls(o)}] }`).join(", ")}] }`,
        ].join("\n"),
      });
      servers.set(name, server);
    }),
  );
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: servers.get("eu1")!.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, region: "eu", tickMs: 200 });
  const developer = await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("tri-dev");
  client = new HearthClient({ url: platform.url, token: developer.token.value });
  await startAgent("eu-a", "eu", ["eu2", "eu1"]);
  await startAgent("eu-b", "eu", ["eu3", "eu1"]);
  await startAgent("us-a", "us", ["us1", "us2"]);
  await startAgent("ap-a", "ap", ["ap1", "ap2"]);
}, 120_000);

afterAll(async () => {
  for (const agent of agents.values()) await agent.close().catch(() => undefined);
  await platform?.close();
  for (const s of servers.values()) await s.stop().catch(() => undefined);
  for (const p of proxies) await p.stop();
  rmSync(dir, { recursive: true, force: true });
});

const joinedCreds = new Set<string>();
/** A real agent in `region`, connected to the first of `via` (the others for reconnects). */
async function startAgent(id: string, region: Region, via: string[]): Promise<void> {
  const creds = join(dir, `${id}.creds`);
  if (!joinedCreds.has(id)) {
    const joined = await joinTestDevice(platform.devices, id, { region, cores: 2 });
    writeFileSync(creds, joined.creds, { mode: 0o600 });
    joinedCreds.add(id);
  }
  const natsUrl = via.map((s) => servers.get(s)!.url).join(",");
  agents.set(
    id,
    await Agent.start(
      parseAgentConfig({ natsUrl, deviceId: id, subjectPrefix: PREFIX, cores: 2, memoryMb: 128, drainGraceMs: 500, credsFile: creds, dataDir: join(dir, id) }),
      agentLogger(),
    ),
  );
}

async function servedBy(count: number): Promise<Map<string, number>> {
  const by = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const res = await client.invoke("tri", "fn");
    expect(res.status).toBe(200);
    const where = `${res.headers.get("x-hearth-region")}/${res.headers.get("x-hearth-device")}`;
    by.set(where, (by.get(where) ?? 0) + 1);
  }
  return by;
}
/**
 * True once every live server has its outbound gateway to each other region,
 * none of them through a stopped server's proxy: until then a message a
 * region sends out may go down a link being re-formed and reach no one.
 */
async function gatewaysHealed(): Promise<boolean> {
  const stopped = new Set([...gatewayProxies].filter(([name]) => !servers.has(name)).map(([, proxy]) => proxy.port));
  for (const [name] of servers) {
    const p = ports.get(name)!;
    const region = name.replace(/\d+$/, "");
    const res = await fetch(`http://127.0.0.1:${p.monitor}/gatewayz`);
    const body = (await res.json()) as { outbound_gateways?: Record<string, { connection?: { port?: number } }> };
    for (const other of Object.keys(REGIONS).filter((r) => r !== region)) {
      const port = body.outbound_gateways?.[other]?.connection?.port;
      if (port === undefined || stopped.has(port)) return false;
    }
  }
  return true;
}
const inRegion = (by: Map<string, number>, region: string) => [...by].filter(([k]) => k.startsWith(`${region}/`)).reduce((n, [, v]) => n + v, 0);

describe("three regions", () => {
  it("serves calls in the caller's region while it has devices", async () => {
    await client.deploy({ app: "tri", name: "fn", code: "export default { fetch: () => new Response('ok') }", replicas: 4 });
    await waitFor("placed in every region", async () => (await client.get("tri", "fn")).devices.length === 4, { timeoutMs: 40_000 });
    // the injected latency is what the gateway measures (its first pings may still cross links being set up)
    const rtt = (id: string) => platform.latency.rttOf(id) ?? Number.NaN;
    // (compared with margins: a loaded machine makes any one device answer a ping late now and then)
    await waitFor("every device measured, in the order of the injected latency", () => rtt("ap-a") > rtt("us-a") + 20 && rtt("us-a") > Math.min(rtt("eu-a"), rtt("eu-b")) + 10, {
      timeoutMs: 40_000,
      intervalMs: 200,
    });
    const by = await servedBy(200);
    expect(inRegion(by, "eu")).toBeGreaterThanOrEqual(198);
  }, 90_000);

  it("loses no GET when one of the region's nats-servers dies under load", async () => {
    let stop = false;
    const failed: string[] = [];
    const servedAfter = new Set<string>();
    let killedAt = Number.POSITIVE_INFINITY;
    let done = 0;
    const worker = async () => {
      // bounded: at most 800 calls per worker, until stopped
      for (let i = 0; i < 800 && !stop; i++) {
        const sent = Date.now();
        const res = await client.invoke("tri", "fn");
        if (res.status !== 200) failed.push(`${res.status} ${await res.text()}`);
        else await res.arrayBuffer();
        if (sent > killedAt) servedAfter.add(res.headers.get("x-hearth-device") ?? "");
        done++;
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await waitFor("calls flowing", () => done >= 40, { timeoutMs: 10_000 });
    // eu-a is connected to eu2
    killedAt = Date.now();
    await servers.get("eu2")!.stop();
    servers.delete("eu2");
    // a dead machine refuses connections: so does its gateway's proxy (else other regions' gateways keep dialling a
    // proxy that accepts and hangs up, and their links into eu take many seconds to settle on the live servers)
    await gatewayProxies.get("eu2")!.stop();
    await waitFor("eu-a heard again through another server, and serving", () => (platform.scheduler.liveDevice("eu-a")?.lastSeen ?? 0) > killedAt + 100 && servedAfter.has("eu-a"), {
      timeoutMs: 30_000,
    });
    stop = true;
    await Promise.all(workers);
    expect(failed, failed.join("\n")).toEqual([]);
    // the other regions' links into eu re-form on the live servers (what the next test crosses)
    await waitFor("every region's gateways re-formed without eu2", gatewaysHealed, { timeoutMs: 30_000, intervalMs: 200 });
  }, 120_000);

  it("crosses to the nearest other region when the caller's has none, and comes back", async () => {
    await agents.get("eu-a")!.close();
    await agents.get("eu-b")!.close();
    await waitFor("eu devices gone", () => platform.scheduler.liveDevice("eu-a") === undefined && platform.scheduler.liveDevice("eu-b") === undefined, { timeoutMs: 15_000 });
    const away = await servedBy(100);
    // us has one device here: a call hedged while it is slow for a moment may be answered from ap (at most 1 in 20)
    expect(inRegion(away, "us")).toBeGreaterThanOrEqual(94);

    await startAgent("eu-b", "eu", ["eu3", "eu1"]);
    await waitFor("eu-b placed and live", async () => platform.scheduler.liveDevice("eu-b") !== undefined && (await client.get("tri", "fn")).devices.includes("eu-b"), { timeoutMs: 30_000 });
    const back = await servedBy(100);
    // (a call hedged while the device just back warms up may be answered elsewhere: at most 1 in 20)
    expect(inRegion(back, "eu")).toBeGreaterThanOrEqual(94);
  }, 90_000);
});
