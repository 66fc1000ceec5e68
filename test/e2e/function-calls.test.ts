/**
 * Function-to-function calls (issue 14, docs/function-calls.md): real
 * agents, a real nats-server with auth and JetStream, the platform
 * in-process. A watcher with the platform's credential hears every
 * invocation subject, so "ran on the same device" and "the other app's
 * device never heard of it" are what the fabric carried.
 *
 * Devices: A and B serve app `chain`; C serves app `other`. Placement is
 * steered as in the door test: C donates too little memory for chain's
 * functions, and devices are paused while a function is deployed elsewhere.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { HearthClient } from "@hearth/sdk";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "calls-token-0123456789abcdef";
const PREFIX = "calls";
const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-calls-"));
let nats: NatsServer;
let platform: Platform;
let client: HearthClient;
let watcher: NatsConnection;
const agents = new Map<string, Agent>();
const deviceTokens = new Map<string, string>();
const seen: string[] = [];
const CHAIN = { memoryMb: 128 };

async function startAgent(id: string, memoryMb: number): Promise<void> {
  // all of one owner: a relay between them is one owner's word (docs/ledger.md)
  const device = await joinTestDevice(platform.devices, id, { region: "eu", cores: 2 });
  deviceTokens.set(id, device.deviceToken);
  writeFileSync(join(dir, `${id}.creds`), device.creds, { mode: 0o600 });
  agents.set(
    id,
    await Agent.start(
      parseAgentConfig({ natsUrl: nats.url, deviceId: id, subjectPrefix: PREFIX, cores: 2, memoryMb, drainGraceMs: 500, heartbeatMs: 200, credsFile: join(dir, `${id}.creds`), dataDir: join(dir, id) }),
      agentLogger(),
    ),
  );
}

/** Deploys with only `on` serving (`pause` paused meanwhile), and waits until it is placed there. */
async function deployOn(on: string[], pause: string[], input: Parameters<HearthClient["deploy"]>[0]): Promise<void> {
  for (const id of pause) await agents.get(id)!.setPaused(["owner"]);
  await waitFor("paused devices away", () => pause.every((id) => platform.scheduler.liveDevice(id)?.heartbeat.away !== undefined || platform.scheduler.liveDevice(id) === undefined), { timeoutMs: 10_000 });
  await client.deploy({ ...input, replicas: on.length });
  await waitFor(`${input.app}/${input.name} placed on ${on.join(", ")}`, async () => on.every((id) => agents.get(id)!.status().functions.some((f) => f.app === input.app && f.fn === input.name)), { timeoutMs: 30_000 });
  for (const id of pause) await agents.get(id)!.setPaused([]);
}

const CALLER = `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const target = url.searchParams.get("to");
    const r = url.searchParams.has("bound")
      ? await env.HERE.fetch("/via-binding", { headers: { "x-from": "caller" } })
      : await env.call(target, "/sub?x=1", { method: "POST", body: "hello " + target, headers: { "x-from": "caller" } });
    return Response.json({ status: r.status, body: await r.text(), device: r.headers.get("x-hearth-device"), id: r.headers.get("x-request-id") });
  },
};`;
const ECHO = (name: string) => `export default {
  async fetch(request) {
    console.log("${name} answering", request.method, new URL(request.url).pathname);
    const body = request.method === "GET" ? "" : await request.text();
    return new Response("${name}: " + request.method + " " + new URL(request.url).pathname + " " + body + " from=" + request.headers.get("x-from"));
  },
};`;
const LOOP = `export default {
  async fetch(request, env) {
    const r = await env.call("loop");
    return new Response(r.ok ? ">" + (await r.text()) : "!" + r.status + " " + (await r.json()).error.code);
  },
};`;

const SPRAY = `export default {
  async fetch(request, env) {
    for (let i = 0; i < 20; i++) env.call("here", "/spray/" + i).catch(() => {});
    return new Response("sprayed");
  },
};`;

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, region: "eu", tickMs: 200 });
  const developer = await new HearthClient({ url: platform.url, token: TOKEN }).createDeveloper("calls-dev");
  client = new HearthClient({ url: platform.url, token: developer.token.value });
  watcher = await connect({ servers: nats.url, authenticator: credsAuthenticator(await authority.platformCreds("calls-watcher")) });
  watcher.subscribe(`${PREFIX}.device.*.invoke`, { callback: (_, m) => void seen.push(m.subject) });
  watcher.subscribe(`${PREFIX}.net.>`, { callback: (_, m) => void seen.push(m.subject) });
  await startAgent("A", 448);
  await startAgent("B", 1024);
  await startAgent("C", 64);
  // only B has room for these (A donates 448 MiB)
  const BIG = { memoryMb: 512 };
  await deployOn(["B"], [], { app: "chain", name: "there", code: ECHO("there"), limits: BIG });
  await deployOn(["B"], [], { app: "chain", name: "slow", code: "export default { fetch: () => new Promise(() => {}) }", limits: { ...BIG, wallMs: 300 } });
  // and these on A alone (B paused meanwhile; there and slow find no room elsewhere and return to B)
  await deployOn(["C"], ["A", "B"], { app: "other", name: "secret", code: ECHO("secret"), limits: { memoryMb: 32 } });
  await deployOn(["A"], ["B"], { app: "chain", name: "caller", code: CALLER, limits: CHAIN, bindings: { HERE: "here" } });
  await deployOn(["A"], ["B"], { app: "chain", name: "here", code: ECHO("here"), limits: CHAIN });
  await deployOn(["A"], ["B"], { app: "chain", name: "loop", code: LOOP, limits: CHAIN });
  await deployOn(["A"], ["B"], { app: "chain", name: "spray", code: SPRAY, limits: { ...CHAIN, memoryMb: 64 } });
  await waitFor("there and slow back on B", () => ["there", "slow"].every((fn) => agents.get("B")!.status().functions.some((f) => f.app === "chain" && f.fn === fn)), { timeoutMs: 30_000 });
  for (const fn of ["caller", "here", "loop", "spray"]) expect((await client.get("chain", fn)).devices).toEqual(["A"]);
}, 120_000);

afterAll(async () => {
  for (const agent of agents.values()) await agent.close().catch(() => undefined);
  await watcher?.close();
  await platform?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function creditsOf(id: string): Promise<{ calls: number; claimed: { calls: number } }> {
  const res = await fetch(`${platform.url}/v1/devices/${id}/credits`, { headers: { authorization: `Bearer ${deviceTokens.get(id)!}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { total: { calls: number; claimed: { calls: number } } }).total;
}

async function callsOf(app: string, fn: string): Promise<number> {
  const report = await client.usage({ app });
  return report.apps[0]?.days.flatMap((d) => d.functions).filter((f) => f.fn === fn).reduce((a, f) => a + f.calls, 0) ?? 0;
}

async function viaGateway(path: string, requestId: string): Promise<{ status: number; body: string; device: string | null; id: string | null }> {
  const res = await fetch(`${platform.url}/fn/chain/caller${path}`, { headers: { "x-request-id": requestId } });
  expect(res.status).toBe(200);
  expect(res.headers.get("x-hearth-device")).toBe("A");
  return (await res.json()) as { status: number; body: string; device: string | null; id: string | null };
}

describe("function-to-function calls", () => {
  it("calls a function placed on the same device there, with no fabric hop, the request id chained and metered once", async () => {
    const before = await callsOf("chain", "here");
    const callerBefore = await callsOf("chain", "caller");
    await watcher.flush();
    const mark = seen.length;
    const out = await viaGateway("?to=here", "chain-local-1");
    expect(out).toEqual({ status: 200, body: "here: POST /sub hello here from=caller", device: "A", id: "chain-local-1_c1" });
    await watcher.flush();
    // the one invocation on the fabric is the gateway's call of caller
    expect(seen.slice(mark)).toEqual(["calls.device.A.invoke"]);
    // the chain is billed as the calls it made, once each
    await waitFor("the sub-call metered", async () => (await callsOf("chain", "here")) === before + 1 && (await callsOf("chain", "caller")) === callerBefore + 1, { timeoutMs: 15_000 });
    // the developer's usage tells the caller's call (at the gateway) from the one it made (a function's call)
    const usage = (await client.usage({ app: "chain" })).apps[0]!.totals.doors;
    expect(usage.call).toBeGreaterThanOrEqual(1);
    expect(usage.gateway).toBeGreaterThanOrEqual(1);
    // the callee's log line is under the chained request id
    await waitFor("the callee's line in its logs", async () => (await client.logs("chain", "here", { requestId: "chain-local-1_c1" })).some((l) => l.message.includes("here answering POST /sub")), { timeoutMs: 15_000 });
  });

  it("reaches a function through a service binding declared at deploy", async () => {
    const out = await viaGateway("?bound", "chain-bound-1");
    expect(out).toEqual({ status: 200, body: "here: GET /via-binding  from=caller", device: "A", id: "chain-bound-1_c1" });
    const view = await client.get("chain", "caller");
    expect(view.bindings).toEqual({ HERE: "here" });
  });

  it("relays a call of a function placed only on a peer of the network, attested by the peer", async () => {
    const before = await callsOf("chain", "there");
    const creditsBefore = await creditsOf("B");
    await watcher.flush();
    const mark = seen.length;
    const out = await viaGateway("?to=there", "chain-relay-1");
    expect(out).toEqual({ status: 200, body: "there: POST /sub hello there from=caller", device: "B", id: "chain-relay-1_c1" });
    await watcher.flush();
    expect(seen.slice(mark)).toEqual(["calls.device.A.invoke", "calls.net.chain.invoke.B"]);
    await waitFor("the relayed sub-call metered", async () => (await callsOf("chain", "there")) === before + 1, { timeoutMs: 15_000 });
    expect((await client.usage({ app: "chain" })).apps[0]!.days.flatMap((d) => d.functions).find((f) => f.fn === "there")!.doors["call-relay"]).toBe(1);
    // the caller's device and the peer have one owner: their agreeing is one word, so B holds it as claimed, not credited
    await waitFor("B's claim of the relayed call", async () => (await creditsOf("B")).claimed.calls === creditsBefore.claimed.calls + 1, { timeoutMs: 15_000 });
    expect((await creditsOf("B")).calls).toBe(creditsBefore.calls);
    expect(platform.doors.unattested).toBe(0);
  });

  it("refuses a function of another app with 403, and that app's device never hears of it", async () => {
    const before = agents.get("C")!.status().today.calls;
    await watcher.flush();
    const mark = seen.length;
    const out = await viaGateway("?to=other/secret", "chain-other-1");
    expect(out.status).toBe(403);
    expect(JSON.parse(out.body).error).toMatchObject({ code: "ERR_CALL_OTHER_APP", requestId: "chain-other-1_c1" });
    await watcher.flush();
    expect(seen.slice(mark)).toEqual(["calls.device.A.invoke"]);
    expect(agents.get("C")!.status().today.calls).toBe(before);
  });

  it("answers 404 for a function the app does not have", async () => {
    const out = await viaGateway("?to=nope", "chain-nope-1");
    expect(out.status).toBe(404);
    expect(JSON.parse(out.body).error.code).toBe("ERR_FUNCTION_NOT_FOUND");
  });

  it("refuses a chain deeper than the limit with 508 ERR_CALL_DEPTH", async () => {
    const res = await fetch(`${platform.url}/fn/chain/loop`, { headers: { "x-request-id": "chain-loop-1" } });
    expect(res.status).toBe(200);
    // depths 0..3 call on; the call at depth 4 is refused
    expect(await res.text()).toBe(">>>>!508 ERR_CALL_DEPTH");
  });

  it("applies the callee's limits: a callee over its wall limit answers the caller 504", async () => {
    const out = await viaGateway("?to=slow", "chain-slow-1");
    expect(out.status).toBe(504);
    expect(JSON.parse(out.body).error.code).toBe("ERR_WALL_TIME_LIMIT");
  });

  it("refuses bindings that are malformed, named call, or clash with an env var, and changes nothing", async () => {
    const deploy = (bindings: Record<string, string>, env?: Record<string, string>) =>
      client.deploy({ app: "chain", name: "caller", code: CALLER, limits: CHAIN, bindings, ...(env ? { env } : {}) });
    await expect(deploy({ call: "here" })).rejects.toMatchObject({ code: "ERR_BAD_REQUEST" });
    await expect(deploy({ HERE: "Not A Name" })).rejects.toMatchObject({ code: "ERR_BAD_REQUEST" });
    await expect(deploy({ HERE: "here" }, { HERE: "a var" })).rejects.toMatchObject({ code: "ERR_BAD_REQUEST", message: expect.stringContaining("both an env var and a binding") });
    expect((await client.get("chain", "caller")).bindings).toEqual({ HERE: "here" });
  });

  it("ends a function's calls when it answers: calls it did not await are not left running on the device", async () => {
    const before = await callsOf("chain", "here");
    const res = await fetch(`${platform.url}/fn/chain/spray`);
    expect(await res.text()).toBe("sprayed");
    // the answer left the device only once the sub-calls under way had ended, the caller's core held meanwhile
    const ranOnA = agents.get("A")!.status().today.calls;
    await waitFor("spray metered", async () => (await callsOf("chain", "spray")) >= 1 && (await callsOf("chain", "here")) > before, { timeoutMs: 15_000 });
    // the rest were refused, never made: nothing ran on A after the answer, and fewer than the 20 were billed
    expect(agents.get("A")!.status().today.calls).toBe(ranOnA);
    expect(await callsOf("chain", "here")).toBeLessThan(before + 20);
    expect(agents.get("A")!.status().coresInUse).toBe(0);
  });
});
