/**
 * Replicas follow their calls: two regions (NATS clusters joined by a
 * gateway), a platform process in each sharing one redis-server, two real
 * agents in each. A function with two replicas starts spread over both
 * regions; when its calls come through us's gateway only, both replicas end
 * up in us; when they move to eu's, the replicas follow.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, redisServerBinary, startNatsServer, startRedisServer, waitFor, type NatsServer, type RedisServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "demand-token-0123456789";
const PREFIX = "demand";
const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-demand-"));
let redis: RedisServer;
const nats = new Map<string, NatsServer>();
const platforms = new Map<string, Platform>();
const agents: Agent[] = [];
let developerToken: string;

beforeAll(async () => {
  redis = await startRedisServer();
  const gw = { eu: await freePort(), us: await freePort() };
  for (const [region, other] of [["eu", "us"], ["us", "eu"]] as const) {
    nats.set(
      region,
      await startNatsServer({
        auth: natsAuth(authority),
        config: `gateway { name: ${region}, listen: "127.0.0.1:${gw[region]}", gateways: [ { name: ${other}, url: "nats://127.0.0.1:${gw[other]}" } ] }`,
      }),
    );
  }
  for (const region of ["eu", "us"]) {
    platforms.set(
      region,
      await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.get(region)!.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, region, tickMs: 200, redisUrl: redis.url, redisPrefix: "demand:" }),
    );
  }
  const eu = platforms.get("eu")!;
  developerToken = (await new HearthClient({ url: eu.url, token: TOKEN }).createDeveloper("demand-dev")).token.value;
  for (const [id, region] of [["eu-a", "eu"], ["eu-b", "eu"], ["us-a", "us"], ["us-b", "us"]] as const) {
    const joined = await joinTestDevice(eu.devices, id, { region, cores: 2 });
    const creds = join(dir, `${id}.creds`);
    writeFileSync(creds, joined.creds, { mode: 0o600 });
    agents.push(
      await Agent.start(
        parseAgentConfig({ natsUrl: nats.get(region)!.url, deviceId: id, subjectPrefix: PREFIX, cores: 2, memoryMb: 128, drainGraceMs: 500, credsFile: creds, dataDir: join(dir, id) }),
        agentLogger(),
      ),
    );
  }
}, 90_000);

afterAll(async () => {
  for (const agent of agents) await agent.close().catch(() => undefined);
  for (const p of platforms.values()) await p.close();
  for (const n of nats.values()) await n.stop();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const clientIn = (region: string) => new HearthClient({ url: platforms.get(region)!.url, token: developerToken });
const regionsOf = async () => {
  const view = await clientIn("eu").get("demand", "fn");
  return view.devices.map((id) => id.slice(0, 2)).sort();
};

/** Calls through one region's gateway until `done` (bounded in count and time). */
async function callThrough(region: string, done: () => Promise<boolean>): Promise<void> {
  const client = clientIn(region);
  const until = Date.now() + 45_000;
  for (let i = 0; i < 20_000 && Date.now() < until; i++) {
    const res = await client.invoke("demand", "fn");
    // on a failure, say what the caller got: the code, the message and which device answered
    const body = await res.text();
    expect(res.status, `call ${i} through ${region}: ${body} (device ${res.headers.get("x-hearth-device")}, ${res.headers.get("server-timing")})`).toBe(200);
    if (i % 20 === 19 && (await done())) return;
  }
  throw new Error(`replicas did not follow the calls through ${region}: ${(await regionsOf()).join(", ")}`);
}

describe.skipIf(!redisServerBinary())("replicas follow their calls", () => {
  it("moves replicas to the region the calls come from, and back when they move", async () => {
    await clientIn("eu").deploy({ app: "demand", name: "fn", code: "export default { fetch: () => new Response('ok') }", replicas: 2 });
    // no calls yet: spread over the regions
    await waitFor("placed in both regions", async () => (await regionsOf()).join() === "eu,us", { timeoutMs: 30_000 });

    await callThrough("us", async () => (await regionsOf()).join() === "us,us");
    await callThrough("eu", async () => (await regionsOf()).join() === "eu,eu");
  }, 120_000);
});
