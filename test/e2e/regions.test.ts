/**
 * Two regions on loopback, as deploy/nats describes them: two nats-server
 * clusters joined by gateways (a super-cluster), the platform in `eu`, one
 * device in each region (joined with its region in its join token).
 * Replicas spread over regions; the gateway (in `eu`) sends a call to a
 * device in its own region while it has one, and crosses over when not.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startNatsServer, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "regions-token-0123456789";
let eu: NatsServer;
let us: NatsServer;
let platform: Platform;
let euDevice: Agent;
let usDevice: Agent;
const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-regions-"));
let developerToken: string;

async function region(name: string, gatewayPort: number, other: { name: string; port: number }) {
  return startNatsServer({
    auth: natsAuth(authority),
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
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: eu.url, token: TOKEN, log: silentLogger(), subjectPrefix: "regions", region: "eu" });
  // a developer deploys (the operator's TOKEN reaches operator routes only)
  developerToken = (await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("geo-dev")).token.value;
  const device = async (id: string, url: string, regionName: string) => {
    const joined = await joinTestDevice(platform.devices, id, { region: regionName });
    const credsFile = join(dir, `${id}.creds`);
    writeFileSync(credsFile, joined.creds, { mode: 0o600 });
    return Agent.start(
      parseAgentConfig({ natsUrl: url, deviceId: id, subjectPrefix: "regions", cores: 1, memoryMb: 128, drainGraceMs: 1_000, credsFile, dataDir: dir }),
      agentLogger(),
    );
  };
  euDevice = await device("eu-device", eu.url, "eu");
  usDevice = await device("us-device", us.url, "us");
}, 60_000);

afterAll(async () => {
  await euDevice?.close();
  await usDevice?.close();
  await platform?.close();
  await us?.stop();
  await eu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Which device, in which region, served a call through the gateway (its X-Hearth-Device and X-Hearth-Region headers). */
async function answeredBy(client: HearthClient): Promise<string> {
  const res = await client.invoke("geo", "where");
  expect(await res.text()).toBe("here");
  return `${res.headers.get("x-hearth-region")}/${res.headers.get("x-hearth-device")}`;
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

    // the gateway (in eu) prefers the device in its own region
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(await answeredBy(client));
    expect([...seen]).toEqual(["eu/eu-device"]);
  });

  it("crosses to the other region when the caller's region has no device", async () => {
    const client = new HearthClient({ url: platform.url, token: developerToken });
    await euDevice.close();
    expect(await answeredBy(client)).toBe("us/us-device");
  });
});
