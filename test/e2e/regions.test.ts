/**
 * Two regions on loopback, as deploy/nats describes them: two nats-server
 * clusters joined by gateways (a super-cluster), the platform in `eu`, one
 * device in each region. Replicas spread over regions; a call stays in the
 * caller's region while it has a device there, and crosses over when not.
 */
import { freePort, startNatsServer, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { INVOKE_HEADERS } from "@hearth/protocol";
import { HearthClient } from "@hearth/sdk";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "regions-token-0123456789";
let eu: NatsServer;
let us: NatsServer;
let platform: Platform;
let euDevice: Agent;
let usDevice: Agent;
let caller: NatsConnection;
let developerToken: string;

async function region(name: string, gatewayPort: number, other: { name: string; port: number }) {
  return startNatsServer({
    config: [
      `cluster { name: ${name}, listen: "127.0.0.1:${await freePort()}" }`,
      `gateway { name: ${name}, listen: "127.0.0.1:${gatewayPort}", gateways: [ { name: ${other.name}, url: "nats://127.0.0.1:${other.port}" } ] }`,
    ].join("\n"),
  });
}

beforeAll(async () => {
  const [euGw, usGw] = [await freePort(), await freePort()];
  eu = await region("eu", euGw, { name: "us", port: usGw });
  us = await region("us", usGw, { name: "eu", port: euGw });
  platform = await startPlatform({ natsUrl: eu.url, token: TOKEN, log: silentLogger(), subjectPrefix: "regions" });
  // a developer deploys (the operator's TOKEN reaches operator routes only)
  developerToken = (await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("geo-dev")).token.value;
  const device = (id: string, url: string, regionName: string) =>
    Agent.start(
      parseAgentConfig({ natsUrl: url, deviceId: id, region: regionName, subjectPrefix: "regions", cores: 1, memoryMb: 128, drainGraceMs: 1_000 }),
      agentLogger(),
    );
  euDevice = await device("eu-device", eu.url, "eu");
  usDevice = await device("us-device", us.url, "us");
  caller = await connect({ servers: eu.url });
}, 60_000);

afterAll(async () => {
  await caller?.close();
  await euDevice?.close();
  await usDevice?.close();
  await platform?.close();
  await us?.stop();
  await eu?.stop();
});

/** Which device answers a call published in `eu` (read from the reply's Hearth-Device header). */
async function answeredBy(version: string): Promise<string | undefined> {
  const h = headers();
  h.set(INVOKE_HEADERS.requestId, `r${Date.now()}`);
  h.set(INVOKE_HEADERS.app, "geo");
  h.set(INVOKE_HEADERS.fn, "where");
  h.set(INVOKE_HEADERS.version, version);
  h.set(INVOKE_HEADERS.method, "GET");
  h.set(INVOKE_HEADERS.url, "https://x.test/");
  h.set(INVOKE_HEADERS.deadline, String(Date.now() + 5_000));
  const reply = await caller.request("regions.invoke.geo.where", new Uint8Array(0), { headers: h, timeout: 5_000 });
  return reply.headers?.get(INVOKE_HEADERS.device);
}

describe("regions", () => {
  it("spreads replicas over regions and keeps calls in the caller's region", async () => {
    const client = new HearthClient({ url: platform.url, token: developerToken });
    await client.deploy({ app: "geo", name: "where", code: "export default { fetch: () => new Response('here') }", replicas: 2 });
    let fn = await client.waitUntilReady("geo", "where", { timeoutMs: 20_000 });
    const deadline = Date.now() + 20_000;
    while (fn.devices.length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      fn = await client.get("geo", "where");
    }
    expect(fn.devices.sort()).toEqual(["eu-device", "us-device"]);

    // NATS prefers the queue member in the requester's own cluster
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) seen.add(await answeredBy(fn.version));
    expect([...seen]).toEqual(["eu-device"]);

    // through the gateway (connected to eu), over HTTP
    const res = await client.invoke("geo", "where");
    expect(await res.text()).toBe("here");
  });

  it("crosses to the other region when the caller's region has no device", async () => {
    const client = new HearthClient({ url: platform.url, token: developerToken });
    const fn = await client.get("geo", "where");
    await euDevice.close();
    expect(await answeredBy(fn.version)).toBe("us-device");
    const res = await client.invoke("geo", "where");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("here");
  });
});
