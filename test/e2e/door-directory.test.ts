/**
 * Finding a door (issue 14): real agents with doors on loopback ports that
 * advertise their URLs, a real nats-server with auth, the platform
 * in-process (its gateway in Frankfurt, a trusted proxy's location header).
 *
 * Devices: B (Berlin), L (Lisbon), U (no declared location) in eu, N (New
 * York) in us — all members of app `near`; H, a member too, advertises B's
 * door URL as its own; X advertises its own door but is no member of `near`
 * (it donates 64 MiB, too little for near's functions, so it is never
 * placed for them).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const HEARTH_CLI = fileURLToPath(new URL("../../sdk/bin/hearth.js", import.meta.url));
const TOKEN = "doordir-token-0123456789abcdef";
const PREFIX = "doordir";
const LOCATION_HEADER = "x-client-location";
const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-doordir-"));
const PLACES = {
  berlin: { label: "berlin", lat: 52.52, lon: 13.4 },
  lisbon: { label: "lisbon", lat: 38.72, lon: -9.14 },
  newyork: { label: "new-york", lat: 40.71, lon: -74.0 },
};
let nats: NatsServer;
let platform: Platform;
let developer: HearthClient;
/** An app's caller: no token at all. */
let caller: HearthClient;
const agents = new Map<string, Agent>();
const urls = new Map<string, string>();

async function startAgent(id: string, options: { region: string; memoryMb?: number; location?: (typeof PLACES)[keyof typeof PLACES]; advertise?: string }): Promise<Agent> {
  const device = await joinTestDevice(platform.devices, id, { region: options.region, cores: 1 });
  writeFileSync(join(dir, `${id}.creds`), device.creds, { mode: 0o600 });
  const port = await freePort();
  const own = `http://127.0.0.1:${port}`;
  urls.set(id, own);
  const agent = await Agent.start(
    parseAgentConfig({
      natsUrl: nats.url, deviceId: id, subjectPrefix: PREFIX, cores: 1, memoryMb: options.memoryMb ?? 192, drainGraceMs: 200, heartbeatMs: 200,
      credsFile: join(dir, `${id}.creds`), dataDir: join(dir, id), listen: `127.0.0.1:${port}`, advertise: options.advertise ?? own,
      ...(options.location ? { location: options.location } : {}),
    }),
    agentLogger(),
  );
  agents.set(id, agent);
  return agent;
}

const listed = async (near?: string) => (await caller.doors("near", near === undefined ? {} : { near })).map((d) => d.deviceId);
const doorsAt = (near: string) => fetch(`${platform.url}/v1/apps/near/doors?near=${encodeURIComponent(near)}`);

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({
    fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, region: "eu", tickMs: 200,
    clientLocationHeader: LOCATION_HEADER, location: { lat: 50.11, lon: 8.68 }, doorsAllowPrivate: true, doorSweepMs: 200,
  });
  const made = await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("doordir-dev");
  developer = new HearthClient({ url: platform.url, token: made.token.value });
  caller = new HearthClient({ url: platform.url });
  await startAgent("B", { region: "eu", location: PLACES.berlin });
  await startAgent("L", { region: "eu", location: PLACES.lisbon });
  await startAgent("U", { region: "eu" });
  await startAgent("N", { region: "us", location: PLACES.newyork });
  await startAgent("H", { region: "eu", location: PLACES.berlin, advertise: urls.get("B")! });
  await startAgent("X", { region: "eu", location: PLACES.berlin, memoryMb: 64 });
  await developer.deploy({ app: "near", name: "hello", code: "export default { fetch: () => new Response('hello') }", replicas: 5, limits: { memoryMb: 128 } });
  await waitFor("near/hello placed on B, L, U, N and H", async () => {
    const devices = (await developer.get("near", "hello")).devices;
    return ["B", "L", "U", "N", "H"].every((id) => devices.includes(id));
  }, { timeoutMs: 60_000 });
  await waitFor("the four honest doors listed", async () => (await listed()).length === 4, { timeoutMs: 30_000, intervalMs: 200 });
}, 120_000);

afterAll(async () => {
  for (const agent of agents.values()) await agent.close().catch(() => undefined);
  await platform?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("finding a door", () => {
  it("lists an app's doors nearest first, to a caller with no token", async () => {
    const doors = await caller.doors("near", { near: { lat: 52.5, lon: 13.4 } });
    expect(doors.map((d) => d.deviceId)).toEqual(["B", "L", "N", "U"]);
    expect(doors[0]!.url).toBe(urls.get("B"));
    expect(doors[0]!.distanceKm).toBeLessThan(10);
    expect(doors[0]!.functions).toEqual(["hello"]);
    expect(doors[3]!.location).toBeUndefined();
    expect((await listed("38.7,-9.1"))[0]).toBe("L");
    // a region: its doors first (the others by measured round trip)
    expect((await listed("us"))[0]).toBe("N");
    // no near: the platform's own region (eu) first
    expect((await listed()).at(-1)).toBe("N");
    // what is listed is a door: the call works there
    const res = await fetch(`${doors[0]!.url}/fn/near/hello`);
    expect(await res.text()).toBe("hello");
    expect(res.headers.get("x-hearth-door")).toBe("B");
  });

  it("never lists a non-member's door, nor a device that advertises another device's door", async () => {
    await waitFor("X's and H's URLs checked", () => platform.doorDirectory.checkOf("X") !== undefined && platform.doorDirectory.checkOf("H") !== undefined, { timeoutMs: 15_000 });
    // X's door is real and reached, but X is no member of the app's network
    expect(platform.doorDirectory.checkOf("X")).toEqual({ url: urls.get("X"), ok: true });
    // H advertised B's URL: B's door answers as B
    expect(platform.doorDirectory.checkOf("H")).toEqual({ url: urls.get("B"), ok: false });
    const ids = await listed();
    expect(ids).not.toContain("X");
    expect(ids).not.toContain("H");
    expect((await developer.get("near", "hello")).devices).toContain("H");
  });

  it("lists them with `hearth doors`, with no login, and refuses a bad --near before asking", async () => {
    const cli = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        // no token anywhere: HOME is a folder with no saved login
        const env = { PATH: process.env["PATH"] ?? "", HOME: dir, HEARTH_PLATFORM_URL: platform.url };
        execFile(process.env["HEARTH_HOST_NODE"] ?? process.execPath, [HEARTH_CLI, ...args], { env, timeout: 20_000 }, (error, stdout, stderr) =>
          resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      });
    const listedJson = await cli(["doors", "near", "--near", "38.7,-9.1", "--json"]);
    expect(listedJson.code).toBe(0);
    expect((JSON.parse(listedJson.stdout) as { deviceId: string }[]).map((d) => d.deviceId)).toEqual(["L", "B", "N", "U"]);
    const text = await cli(["doors", "near", "--near", "us"]);
    expect(text.stdout.split("\n")[0]).toMatch(new RegExp(`^${urls.get("N")}\tN\tus, new-york`));
    const bad = await cli(["doors", "near", "--near", "91,0"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--near.*lat -90 to 90/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });

  it("refuses a bad near with a clear 400, an unknown app with 404", async () => {
    for (const near of ["91,0", "52.5;13.4", "52.5,13.4,1", "52.5,east", "eu west", "x".repeat(80)]) {
      const res = await doorsAt(near);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("ERR_BAD_REQUEST");
      expect(body.error.message).toMatch(/near/);
    }
    const extra = await fetch(`${platform.url}/v1/apps/near/doors?nearest=1`);
    expect(extra.status).toBe(400);
    const unknown = await fetch(`${platform.url}/v1/apps/no-such-app/doors`);
    expect(unknown.status).toBe(404);
  });

  it("points a caller to a door nearer than the gateway, and only then", async () => {
    const call = (where?: string) => fetch(`${platform.url}/fn/near/hello/a?b=1`, where ? { headers: { [LOCATION_HEADER]: where } } : {});
    const berlin = await call("52.5,13.4");
    expect(await berlin.text()).toBe("hello");
    expect(berlin.headers.get("link")).toBe(`<${urls.get("B")}/fn/near/hello/a?b=1>; rel="alternate"`);
    const lisbon = await call("38.7,-9.1");
    expect(lisbon.headers.get("link")).toBe(`<${urls.get("L")}/fn/near/hello/a?b=1>; rel="alternate"`);
    // next to the gateway (Frankfurt): no door is nearer
    expect((await call("50.1,8.7")).headers.get("link")).toBeNull();
    // caller's location unknown: no hint
    expect((await call()).headers.get("link")).toBeNull();
  });

  it("drops a paused device's door at once and lists it again when it serves, and never a gone one", async () => {
    await agents.get("L")!.setPaused(["owner"]);
    await waitFor("L out of the list", async () => !(await listed()).includes("L"), { timeoutMs: 10_000, intervalMs: 200 });
    await agents.get("L")!.setPaused([]);
    await waitFor("L listed again", async () => (await listed()).includes("L"), { timeoutMs: 10_000, intervalMs: 200 });
    await agents.get("U")!.close();
    agents.delete("U");
    await waitFor("U out of the list", async () => !(await listed()).includes("U"), { timeoutMs: 10_000, intervalMs: 200 });
    expect(await listed()).toEqual(expect.arrayContaining(["B", "L", "N"]));
  });
});
