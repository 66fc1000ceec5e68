/**
 * A call waiting on a device for a free core can be cancelled (the gateway
 * does so when a hedge's other device answered first); a call that found a
 * core at once runs to its answer. One real agent donating one core, on a
 * real nats-server with auth. The waiting call and the cancel are sent as
 * the gateway sends them (its invocation on the device's subject, the cancel
 * on its control subject), so the device's own reply is what the test sees:
 * the gateway, which has its answer from the other device by then, would
 * not pass it on.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { invocationHeaders } from "@hearth/edge";
import { INVOKE_HEADERS, Subjects } from "@hearth/protocol";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "core-wait-token-0123456789";
const PREFIX = "corewait";
const DEVICE = "cw-dev";
const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-core-wait-"));
let nats: NatsServer;
let platform: Platform;
let agent: Agent;
let client: HearthClient;

const SLOW = `export default { async fetch(req) {
  const ms = Number(new URL(req.url).searchParams.get("ms") ?? "0");
  await new Promise((r) => setTimeout(r, ms));
  return new Response("done");
} }`;

beforeAll(async () => {
  nats = await startNatsServer({ auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, tickMs: 200 });
  const developer = await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("cw-dev-owner");
  client = new HearthClient({ url: platform.url, token: developer.token.value });
  const device = await joinTestDevice(platform.devices, DEVICE, { cores: 1 });
  writeFileSync(join(dir, "device.creds"), device.creds, { mode: 0o600 });
  agent = await Agent.start(
    parseAgentConfig({ natsUrl: nats.url, deviceId: DEVICE, subjectPrefix: PREFIX, cores: 1, memoryMb: 128, drainGraceMs: 500, credsFile: join(dir, "device.creds"), dataDir: join(dir, "data") }),
    agentLogger(),
  );
  await client.deploy({ app: "cw", name: "slow", code: SLOW, replicas: 1, limits: { wallMs: 20_000 } });
  await waitFor("cw/slow placed", async () => (await client.get("cw", "slow")).devices.length === 1, { timeoutMs: 30_000 });
}, 60_000);

afterAll(async () => {
  await agent?.close();
  await platform?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const call = (requestId: string, ms: number) =>
  fetch(`${platform.url}/fn/cw/slow?ms=${ms}`, { headers: { "x-request-id": requestId }, signal: AbortSignal.timeout(30_000) });

describe("a call waiting for a core", () => {
  it("is dropped by a cancel while it waits; the call holding the core is not", async () => {
    const holding = call("cw-holding-1", 3_000);
    await waitFor("the first call on the device's one core", () => agent.status().coresInUse === 1, { timeoutMs: 15_000, intervalMs: 20 });
    const subjects = new Subjects(PREFIX);
    const { version } = await client.get("cw", "slow");
    const h = invocationHeaders({ requestId: "cw-waiting-1", app: "cw", fn: "slow", version, method: "GET", url: "http://cw.example/?ms=0", wallMs: 20_000, headers: new Headers() });
    const started = Date.now();
    const waiting = platform.nc.request(subjects.invoke(DEVICE), new Uint8Array(0), { headers: h, timeout: 20_000 });
    await waitFor("the second call waiting for the core", () => agent.status().queued === 1, { timeoutMs: 15_000, intervalMs: 20 });

    const control = subjects.control(DEVICE);
    // a cancel of the running call changes nothing (it is not waiting); the waiting one's ends its wait
    for (const requestId of ["cw-holding-1", "cw-waiting-1"]) {
      const reply = await platform.nc.request(control, JSON.stringify({ type: "cancel", requestId }), { timeout: 5_000 });
      expect(reply.json()).toEqual({ ok: true });
    }
    const cancelled = await waiting;
    // turned away: it ran nothing, long before the holder's 3 s were up
    expect(cancelled.headers?.get(INVOKE_HEADERS.errorCode)).toBe("ERR_NO_DEVICE");
    expect(cancelled.headers?.get(INVOKE_HEADERS.errorMessage)).toMatch(/cancelled while it waited for a core/);
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(agent.status().queued).toBe(0);

    const held = await holding;
    expect(held.status).toBe(200);
    expect(await held.text()).toBe("done");
  }, 60_000);
});
