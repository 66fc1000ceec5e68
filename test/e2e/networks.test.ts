/**
 * Application-network membership (issue 14): invites, private apps, the
 * public pool as the owner's choice, leaving and removal. Real agents, a
 * real nats-server with auth, the platform in-process; what a device may
 * hear is proven with a NATS connection made with the device's own creds.
 *
 * Devices: P (public pool only), M and N (invited into app `priv`), O (its
 * owner opted out of the public pool, invited nowhere).
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type JoinedDevice, type Platform } from "@hearth/platform";
import { Subjects } from "@hearth/protocol";
import { HearthClient } from "@hearth/sdk";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "networks-token-0123456789abcdef";
const PREFIX = "netw";
const subjects = new Subjects(PREFIX);
const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-networks-"));
let nats: NatsServer;
let platform: Platform;
let dev: HearthClient;
let stranger: HearthClient;
const agents = new Map<string, Agent>();
const joined = new Map<string, JoinedDevice>();
const CODE = "export default { fetch: () => new Response('ok') }";

async function startAgent(id: string, publicPool = true): Promise<Agent> {
  const device = await joinTestDevice(platform.devices, id, { region: "eu", cores: 2 });
  joined.set(id, device);
  writeFileSync(join(dir, `${id}.creds`), device.creds, { mode: 0o600 });
  const agent = await Agent.start(
    parseAgentConfig({
      natsUrl: nats.url, deviceId: id, subjectPrefix: PREFIX, cores: 2, memoryMb: 256, drainGraceMs: 500, heartbeatMs: 200,
      credsFile: join(dir, `${id}.creds`), dataDir: join(dir, id), publicPool,
    }),
    agentLogger(),
  );
  agents.set(id, agent);
  return agent;
}

/** One of a device's own routes, with its device token (what hearth-agent networks sends). */
function deviceCall(id: string, path: string, init: { method?: string; body?: unknown } = {}): Promise<Response> {
  return fetch(`${platform.url}/v1/devices/${id}/${path}`, {
    method: init.method ?? "GET",
    headers: { authorization: `Bearer ${joined.get(id)!.deviceToken}`, "content-type": "application/json" },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
}

const serves = (id: string, app: string) => agents.get(id)!.status().functions.some((f) => f.app === app);

/**
 * Whether nats-server lets a connection made with the device's current creds
 * file subscribe to (or publish on) a subject: a refusal is a permissions
 * violation, which nats-server sends before the PONG of the next flush.
 */
async function permitted(id: string, op: "subscribe" | "publish", subject: string): Promise<boolean> {
  const nc = await connect({ servers: nats.url, authenticator: credsAuthenticator(readFileSync(join(dir, `${id}.creds`))), maxReconnectAttempts: 0 });
  try {
    let denied = false;
    void (async () => {
      for await (const status of nc.status()) if (status.type === "error") denied = true;
    })();
    if (op === "subscribe") nc.subscribe(subject, { callback: (err) => void (err ? (denied = true) : undefined) });
    else nc.publish(subject, "relay?");
    await nc.flush();
    await nc.flush();
    return !denied;
  } finally {
    await nc.close().catch(() => undefined);
  }
}
const maySubscribe = (id: string, subject: string) => permitted(id, "subscribe", subject);

/** Whether the platform's placement of app/fn names exactly these devices. */
async function placedOn(app: string, fn: string): Promise<string[]> {
  return Object.keys((await platform.store.getPlacement(app, fn)).devices).sort();
}

/** Lets the scheduler run full passes, so "never placed" is checked after it had its chances. */
async function schedulerPasses(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    platform.scheduler.kick();
    await platform.scheduler.settle();
  }
}

beforeAll(async () => {
  nats = await startNatsServer({ auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, region: "eu", tickMs: 200 });
  const operator = new HearthClient({ url: platform.url, token: TOKEN });
  dev = new HearthClient({ url: platform.url, token: (await operator.createDeveloper("net-dev")).token.value });
  stranger = new HearthClient({ url: platform.url, token: (await operator.createDeveloper("net-stranger")).token.value });
  await Promise.all([startAgent("P"), startAgent("M"), startAgent("N"), startAgent("O", false)]);
  await waitFor("four live devices", () => ["P", "M", "N", "O"].every((id) => platform.scheduler.liveDevice(id) !== undefined), { timeoutMs: 15_000 });
  await dev.deploy({ app: "priv", name: "f", code: CODE, replicas: 3, private: true });
}, 120_000);

afterAll(async () => {
  for (const agent of agents.values()) await agent.close().catch(() => undefined);
  await platform?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("application networks", () => {
  it("places a private app on nobody before an invite, then only on invited devices", async () => {
    await schedulerPasses(3);
    expect(await placedOn("priv", "f")).toEqual([]);
    for (const id of ["M", "N"]) {
      const { invite } = await dev.networkInvite("priv");
      const res = await deviceCall(id, "networks", { method: "POST", body: { invite } });
      expect(res.status).toBe(201);
      expect(((await res.json()) as { app: string }).app).toBe("priv");
    }
    await waitFor("priv/f on M and N", async () => (await placedOn("priv", "f")).join() === "M,N", { timeoutMs: 30_000 });
    await waitFor("M and N serve priv/f", () => serves("M", "priv") && serves("N", "priv"), { timeoutMs: 15_000 });
    // P has spare capacity and the app wants 3 replicas: still never P (public pool only), nor O
    await schedulerPasses(3);
    expect(await placedOn("priv", "f")).toEqual(["M", "N"]);
    expect(serves("P", "priv") || serves("O", "priv")).toBe(false);
    const view = await dev.network("priv");
    expect(view.private).toBe(true);
    expect(view.members.map((m) => m.deviceId)).toEqual(["M", "N"]);
    // the member's credential names the network: it may hear its relay subject
    await waitFor("M's credential names priv", () => maySubscribe("M", subjects.netInvoke("priv", "M")), { timeoutMs: 15_000 });
    expect(await maySubscribe("P", subjects.netInvoke("priv", "P"))).toBe(false);
  });

  it("takes an invite once: a second use is refused with 410", async () => {
    const { invite } = await dev.networkInvite("priv");
    expect((await deviceCall("P", "networks", { method: "POST", body: { invite: invite } })).status).toBe(201);
    const again = await deviceCall("O", "networks", { method: "POST", body: { invite } });
    expect(again.status).toBe(410);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe("ERR_INVITE_INVALID");
    // P leaves again: it is back to the public pool only
    expect((await deviceCall("P", "networks/priv", { method: "DELETE" })).status).toBe(204);
    await schedulerPasses(2);
    expect(await placedOn("priv", "f")).toEqual(["M", "N"]);
  });

  it("refuses an expired invite", async () => {
    const { invite } = await dev.networkInvite("priv", { ttlSeconds: 60 });
    // its time is up: the key expires as it would after 60 s
    const key = `${platform.store.prefix}networks:invite:${createHash("sha256").update(invite).digest("hex")}`;
    await platform.store.redis.pexpire(key, 1);
    await waitFor("the invite expired", async () => (await platform.store.redis.exists(key)) === 0, { timeoutMs: 5_000 });
    const res = await deviceCall("O", "networks", { method: "POST", body: { invite } });
    expect(res.status).toBe(410);
    expect(await deviceCall("O", "networks", { method: "POST", body: { invite: "not-an-invite" } }).then((r) => r.status)).toBe(400);
  });

  it("does not let another developer invite into, list or remove from an app that is not theirs", async () => {
    await expect(stranger.networkInvite("priv")).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    await expect(stranger.network("priv")).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    await expect(stranger.removeNetworkMember("priv", "M")).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    await expect(stranger.setAppPrivate("priv", false)).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    expect((await dev.network("priv")).members.map((m) => m.deviceId)).toEqual(["M", "N"]);
  });

  it("keeps a public app off a device whose owner opted out of the public pool", async () => {
    await dev.deploy({ app: "pub", name: "g", code: CODE, replicas: 4 });
    await waitFor("pub/g on P, M and N", async () => (await placedOn("pub", "g")).join() === "M,N,P", { timeoutMs: 20_000 });
    await schedulerPasses(3);
    expect(await placedOn("pub", "g")).toEqual(["M", "N", "P"]);
    expect(serves("O", "pub")).toBe(false);
  });

  it("unplaces a device that leaves, and its credential no longer lets it hear the network", async () => {
    const res = await deviceCall("N", "networks/priv", { method: "DELETE" });
    expect(res.status).toBe(204);
    await waitFor("priv/f only on M", async () => (await placedOn("priv", "f")).join() === "M", { timeoutMs: 20_000 });
    await waitFor("N stopped serving priv", () => !serves("N", "priv"), { timeoutMs: 15_000 });
    await waitFor("N's re-issued credential is refused priv's relay subject", async () => !(await maySubscribe("N", subjects.netInvoke("priv", "N"))), { timeoutMs: 15_000 });
    const list = (await (await deviceCall("N", "networks")).json()) as { invited: string[]; credential: string[] };
    expect(list.invited).toEqual([]);
    expect(list.credential).not.toContain("priv");
    expect((await deviceCall("N", "networks/priv", { method: "DELETE" })).status).toBe(404);
  });

  it("unplaces a member its developer removes, and nats-server refuses it the network's subjects", async () => {
    await dev.removeNetworkMember("priv", "M");
    await waitFor("priv/f on nobody", async () => (await placedOn("priv", "f")).length === 0, { timeoutMs: 20_000 });
    await waitFor("M stopped serving priv", () => !serves("M", "priv"), { timeoutMs: 15_000 });
    await waitFor("M's re-issued credential is refused priv's relay subject", async () => !(await maySubscribe("M", subjects.netInvoke("priv", "M"))), { timeoutMs: 15_000 });
    // nor may it put a call on a peer's relay subject in that network (P never could)
    expect(await permitted("M", "publish", subjects.netInvoke("priv", "N"))).toBe(false);
    expect(await permitted("P", "publish", subjects.netInvoke("priv", "N"))).toBe(false);
    // its own and its other networks' subjects still hold
    expect(await permitted("M", "publish", subjects.netInvoke("pub", "N"))).toBe(true);
    expect((await dev.network("priv")).members).toEqual([]);
    await expect(dev.removeNetworkMember("priv", "M")).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
  });

  it("moves an app that becomes private off every device it did not invite, and back when it is public again", async () => {
    expect((await dev.setAppPrivate("pub", true)).private).toBe(true);
    await waitFor("pub/g on nobody", async () => (await placedOn("pub", "g")).length === 0, { timeoutMs: 20_000 });
    await waitFor("P stopped serving pub", () => !serves("P", "pub"), { timeoutMs: 15_000 });
    await dev.setAppPrivate("pub", false);
    await waitFor("pub/g on P, M and N again", async () => (await placedOn("pub", "g")).join() === "M,N,P", { timeoutMs: 20_000 });
    expect(serves("O", "pub")).toBe(false);
  });
});
