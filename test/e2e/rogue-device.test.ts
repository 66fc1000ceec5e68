/**
 * A rogue device on the authenticated fabric: a real nats-server with
 * decentralized JWT auth, an in-process platform, and a real agent
 * ("honest") serving the victim developer's function victim/b. Then
 * strangers try their luck: clients with no credential or one this fabric
 * never issued, and a device that joined properly ("rogue") but serves
 * nothing of victim/b. Every subscription and publish it tries outside its
 * own subjects is refused by nats-server (asserted as the permission
 * violation nats.js reports), what the server does let it publish on its own
 * subjects the platform checks and drops, and all the while a steady stream
 * of calls to victim/b is answered by the honest device with the honest body.
 *
 * The last block holds what an attacker reading the code found, each with
 * the fix that closed it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import {
  BUNDLE_REQUEST_BUDGET,
  connectAsDevice,
  connectAsPlatform,
  deviceCreds,
  FabricAuthority,
  FakeDevice,
  joinTestDevice,
  natsAuth,
  silentLogger,
  startPlatform,
  type JoinedDevice,
  type Platform,
} from "@hearth/platform";
import { DEVICE_CREDENTIAL_LIMITS, INVOKE_HEADERS, Subjects, usageDay, type Heartbeat, type LogLine, type UsageRecord } from "@hearth/protocol";
import { HearthClient } from "@hearth/sdk";
import { createAccount, encodeUser, fmtCreds, fromSeed, parseCreds } from "@nats-io/jwt";
import {
  connect,
  credsAuthenticator,
  headers as natsHeaders,
  PermissionViolationError,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const PREFIX = "rogue";
const subjects = new Subjects(PREFIX);
const OPERATOR_TOKEN = "rogue-operator-token-0123456789abcdef";
const USAGE_STREAM = "ROGUE_USAGE";
const LOGS_STREAM = "ROGUE_LOGS";
/** What end users of victim/b send with their calls: nothing a rogue may ever see. */
const END_USER_SECRET = "Bearer end-user-session-6f1c0e";
/** victim/b: echoes its path and writes one console line per call. */
const VICTIM_CODE = `export default { async fetch(req) {
  const path = new URL(req.url).pathname;
  console.log("honest line " + path);
  return new Response("victim says " + path);
} }`;
/** mallory/m: mallory's own function, placed on mallory's own device (rogue-placed). */
const MALLORY_CODE = "export default { fetch: () => new Response('mallory') }";

let nats: NatsServer;
let platform: Platform;
let honest: Agent;
let honestJoined: JoinedDevice;
let rogueJoined: JoinedDevice;
let rogue: RogueDevice;
let placed: FakeDevice;
let observer: NatsConnection;
let operator: HearthClient;
let victim: HearthClient;
let mallory: HearthClient;
let victimVersion: string;
let dir: string;
const authority = FabricAuthority.generate();
/** Every HTTP call made to victim/b in this file (the usage the ledger must show, no more). */
let victimCalls = 0;

/** A joined device that serves nothing of victim/b and records everything the fabric lets it hear. */
class RogueDevice {
  readonly nc: NatsConnection;
  /** Everything that arrived on the subscriptions the server accepted (its own subjects). */
  readonly heard: { subject: string; msg: Msg }[] = [];
  /** Every permission violation the server reported to this connection. */
  readonly violations: PermissionViolationError[] = [];
  /** What its heartbeats claim (the test changes it); undefined: no heartbeats. */
  claims: Partial<Heartbeat> | undefined;
  private timer?: NodeJS.Timeout;

  private constructor(nc: NatsConnection) {
    this.nc = nc;
  }

  static async start(url: string, joined: JoinedDevice): Promise<RogueDevice> {
    const device = new RogueDevice(await connectAsDevice(url, joined, PREFIX));
    void (async () => {
      for await (const s of device.nc.status()) {
        if (s.type === "error" && s.error instanceof PermissionViolationError) device.violations.push(s.error);
      }
    })();
    const record = (subject: string) => (_err: Error | null, msg: Msg) => {
      if (_err) return;
      device.heard.push({ subject, msg });
      // it takes no placement: every place is refused (a device may refuse), everything else acknowledged
      if (subject === subjects.control(joined.deviceId) && msg.reply) {
        const isPlace = (msg.json() as { type?: string }).type === "place";
        msg.respond(JSON.stringify(isPlace ? { error: { code: "ERR_BAD_BUNDLE", message: "no" } } : { ok: true }));
      }
    };
    for (const subject of [subjects.control(joined.deviceId), subjects.invoke(joined.deviceId), `${subjects.inbox(joined.deviceId)}.>`]) {
      device.nc.subscribe(subject, { callback: record(subject) });
    }
    await device.nc.flush();
    return device;
  }

  heartbeat(): void {
    if (!this.claims || this.nc.isClosed()) return;
    const beat: Heartbeat = {
      deviceId: rogueJoined.deviceId,
      ownerId: "rogue-owner",
      region: "local",
      location: { label: "rogue", lat: 0, lon: 0 },
      cores: 1,
      memoryMb: 256,
      activeCalls: 0,
      freeCores: 1,
      functions: [],
      agentVersion: "rogue",
      sentAt: Date.now(),
      ...this.claims,
    };
    this.nc.publish(subjects.heartbeat(rogueJoined.deviceId), JSON.stringify(beat));
  }

  startHeartbeats(claims: Partial<Heartbeat>): void {
    this.claims = claims;
    clearInterval(this.timer);
    this.heartbeat();
    this.timer = setInterval(() => this.heartbeat(), 300);
  }

  stopHeartbeats(): void {
    clearInterval(this.timer);
    this.claims = undefined;
  }

  /** Waits for the server's refusal of `operation` on `subject` (nats.js reports it as a status error). */
  refusal(operation: "publish" | "subscription", subject: string): Promise<void> {
    return waitFor(`the server to refuse ${operation} to ${subject}`, () => this.violations.some((v) => v.operation === operation && v.subject === subject), { timeoutMs: 5_000, intervalMs: 10 });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    if (!this.nc.isClosed()) await this.nc.close();
  }
}

/** Steady calls to victim/b over HTTP while a test does its worst; each is checked when it is answered. */
class VictimTraffic {
  readonly problems: string[] = [];
  served = 0;
  private stopping = false;
  private readonly done: Promise<void>;

  constructor(label: string, { maxCalls = 400, maxMs = 60_000 } = {}) {
    const until = Date.now() + maxMs;
    this.done = (async () => {
      for (let i = 0; i < maxCalls && !this.stopping && Date.now() < until; i++) {
        const path = `/${label}-${i}`;
        victimCalls++;
        try {
          const res = await victim.invoke("victim", "b", path, { headers: { authorization: END_USER_SECRET } });
          const body = await res.text();
          const by = res.headers.get("x-hearth-device");
          if (res.status !== 200 || body !== `victim says ${path}` || by !== honestJoined.deviceId) {
            this.problems.push(`${path}: ${res.status} from ${by}: ${body.slice(0, 200)}`);
          } else this.served++;
        } catch (error) {
          this.problems.push(`${path}: ${(error as Error).message}`);
        }
      }
    })();
  }

  /** Waits until at least `n` calls were answered correctly (the stream is flowing). */
  flowing(n = 3): Promise<void> {
    return waitFor(`${n} victim calls answered`, () => this.served >= n || this.problems.length > 0, { timeoutMs: 20_000 });
  }

  /** Stops (after the call in flight) and returns how many were served; every one must have been right. */
  async stop(): Promise<number> {
    this.stopping = true;
    await this.done;
    expect(this.problems).toEqual([]);
    return this.served;
  }
}

/** A JetStream API request with the platform's own credential (the test's observer). */
async function jsApi(subject: string, body: unknown = ""): Promise<{ error?: { code: number; description: string }; [key: string]: unknown }> {
  const reply = await observer.request(subject, typeof body === "string" ? body : JSON.stringify(body), { timeout: 5_000 });
  return reply.json();
}
const streamInfo = (name: string) => jsApi(`$JS.API.STREAM.INFO.${name}`);

/** Victim/b's stored log lines (its developer's view). */
const victimLogs = async () => (await victim.logs("victim", "b", { limit: 1_000 })).map((l) => `${l.deviceId}: ${l.message}`);

/** Calls victim/b once and waits until its console line is in the logs: every line published before it has been handled by then. */
async function logsSettled(label: string): Promise<string[]> {
  const path = `/settle-${label}`;
  victimCalls++;
  const res = await victim.invoke("victim", "b", path);
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  let lines: string[] = [];
  await waitFor(`the honest line of ${path} in victim/b's logs`, async () => (lines = await victimLogs()).includes(`${honestJoined.deviceId}: honest line ${path}`), { timeoutMs: 20_000, intervalMs: 200 });
  return lines;
}

function logLine(overrides: Partial<LogLine>): LogLine {
  return { app: "victim", fn: "b", version: victimVersion, requestId: null, deviceId: rogueJoined.deviceId, level: "info", message: "rogue", at: Date.now(), ...overrides };
}

function forgedUsage(overrides: Partial<UsageRecord> = {}): UsageRecord {
  const now = Date.now();
  return {
    v: 2, id: randomUUID(), requestId: "forged", app: "victim", fn: "b", version: victimVersion, deviceId: rogueJoined.deviceId,
    at: now, day: usageDay(now), wallUs: 3_600_000_000, cpuUs: 3_600_000_000, claimedCpuUs: 3_600_000_000,
    requestBytes: 0, responseBytes: 0, cold: false, status: 200, outcome: "ok", ...overrides,
  };
}

/** A made-up but well-formed bundle hash. */
const SOME_HASH = "a".repeat(64);

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({
    fabricKeys: authority.keys, natsUrl: nats.url, token: OPERATOR_TOKEN, log: silentLogger(), subjectPrefix: PREFIX,
    // generous: a loaded 2-core machine must not declare the honest device dead (its heartbeats come every 200 ms)
    deadAfterMs: 5_000, tickMs: 250,
  });
  operator = new HearthClient({ url: platform.url, token: OPERATOR_TOKEN });
  victim = new HearthClient({ url: platform.url, token: (await operator.createDeveloper("victim")).token.value });
  mallory = new HearthClient({ url: platform.url, token: (await operator.createDeveloper("mallory")).token.value });
  observer = await connectAsPlatform(nats.url, authority, "rogue-test-observer");

  dir = mkdtempSync(join(tmpdir(), "hearth-rogue-"));
  honestJoined = await joinTestDevice(platform.devices, "honest", { ownerId: "olive", cores: 1 });
  const credsFile = join(dir, "honest.creds");
  writeFileSync(credsFile, honestJoined.creds, { mode: 0o600 });
  honest = await Agent.start(
    parseAgentConfig({ natsUrl: nats.url, deviceId: "honest", subjectPrefix: PREFIX, cores: 1, memoryMb: 128, heartbeatMs: 200, drainGraceMs: 1_000, credsFile, dataDir: dir }),
    agentLogger(),
  );
  const deployed = await victim.deploy({ app: "victim", name: "b", code: VICTIM_CODE, replicas: 1, env: { API_KEY: "victim-secret-api-key" } });
  victimVersion = deployed.version;
  await victim.waitUntilReady("victim", "b", { timeoutMs: 20_000 });
  expect((await victim.get("victim", "b")).devices).toEqual(["honest"]);

  // mallory's own device: joined like any other, takes only mallory's functions (and answers them as the test says)
  placed = await FakeDevice.start({ url: nats.url, prefix: PREFIX, devices: platform.devices, deviceId: "rogue-placed", ownerId: "mallory", accept: (app) => app === "mallory" });
  placed.onInvoke = (msg) => {
    const h = natsHeaders();
    h.set(INVOKE_HEADERS.status, "200");
    h.set(INVOKE_HEADERS.device, "rogue-placed");
    msg.respond("mallory", { headers: h });
  };
  // deployed once the scheduler has heard it: a placement made before would go to the only device it knows (honest)
  await waitFor("rogue-placed heard by the scheduler", () => platform.scheduler.liveDevice("rogue-placed") !== undefined, { timeoutMs: 20_000 });
  await mallory.deploy({ app: "mallory", name: "m", code: MALLORY_CODE, replicas: 1, limits: { responseBytes: 1_024, cpuMs: 10 } });
  await waitFor("mallory/m placed on rogue-placed", async () => (await mallory.get("mallory", "m")).devices.includes("rogue-placed"), { timeoutMs: 20_000 });

  rogueJoined = await joinTestDevice(platform.devices, "rogue", { ownerId: "mallory", cores: 1 });
  rogue = await RogueDevice.start(nats.url, rogueJoined);
}, 90_000);

afterAll(async () => {
  await rogue?.close();
  await placed?.die();
  await honest?.close();
  await observer?.close();
  await platform?.close();
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a client that is not a joined device", () => {
  const refused = (creds?: Uint8Array) =>
    connect({ servers: nats.url, reconnect: false, ...(creds ? { authenticator: credsAuthenticator(creds) } : {}) }).then(
      async (nc) => {
        await nc.close();
        return "connected";
      },
      (error: Error) => error.message,
    );

  it("cannot connect with no credential, a self-made JWT, another fabric's, a tampered, a borrowed or an expired one", async () => {
    const { key: rogueSeed, jwt: rogueJwt } = await parseCreds(rogueJoined.creds);
    const rogueKey = fromSeed(new TextEncoder().encode(rogueSeed));
    const attackerAccount = createAccount();

    const [header, payload, signature] = rogueJwt.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as { nats: { pub: { allow: string[] }; sub: { allow: string[] } } };
    claims.nats.pub.allow = [">"];
    claims.nats.sub.allow = [">"];
    const { jwt: honestJwt } = await parseCreds(honestJoined.creds);
    const everything = { pub: { allow: [">"] }, sub: { allow: [">"] } };
    const attempts: [what: string, creds: Uint8Array | undefined][] = [
      ["anonymous", undefined],
      // a JWT naming the Hearth account, signed by a key the attacker made (not the account's signing key)
      ["a forged signer", fmtCreds(await encodeUser("rogue", rogueKey, authority.publicKeys.account, everything, { signer: attackerAccount }), rogueKey)],
      // an account of the attacker's own, that signed its own user
      ["its own account", fmtCreds(await encodeUser("rogue", rogueKey, attackerAccount, everything), rogueKey)],
      // a real device credential, of another fabric (another operator and account)
      ["another fabric's", await deviceCreds(FabricAuthority.generate(), "rogue", PREFIX)],
      // its own credential with its permissions widened in the claims (the signature no longer matches)
      ["tampered claims", fmtCreds(`${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${signature}`, rogueKey)],
      // the honest device's JWT (JWTs are not secret) with the rogue's own seed: it cannot sign the server's nonce as honest
      ["a borrowed JWT", fmtCreds(honestJwt, rogueKey)],
      // a credential the platform really issued for the rogue's key, but expired
      ["expired", fmtCreds(await authority.deviceJwt({ deviceId: "rogue", publicKey: rogueJoined.publicKey, subjects, ttlSeconds: -60, replyTtlMs: 1_000 }), rogueKey)],
    ];
    // at once: nats-server asks its resolver (5 s timeout) about an account it does not know before it refuses
    const outcomes = await Promise.all(attempts.map(async ([what, creds]) => [what, await refused(creds)] as const));
    for (const [what, outcome] of outcomes) expect(outcome, what).toMatch(/Authorization Violation|Authentication Expired/i);
    // and the rogue's own, current credential does connect (the refusals above are not the server refusing everyone)
    expect(await refused(rogueJoined.creds)).toBe("connected");
  });
});

describe("a joined rogue device that serves nothing of victim/b", () => {
  it("is refused every subscription but its own and hears none of victim/b's calls, all served by the honest device meanwhile", async () => {
    rogue.startHeartbeats({
      // lies, all: another owner and region, a bigger machine, and serving victim/b
      ownerId: "olive", region: "elsewhere", cores: 1024, freeCores: 1024, memoryMb: 4 * 1024 * 1024,
      functions: [{ app: "victim", fn: "b", version: victimVersion }],
    });
    const traffic = new VictimTraffic("sub");
    await traffic.flowing();

    const patterns: [subject: string, queue?: string][] = [
      [">"], ["*.>"], ["*"], [`${PREFIX}.>`], [`${PREFIX}.*`], ["hearth.>"],
      [`${PREFIX}.device.*.invoke`], [`${PREFIX}.device.*.control`], [`${PREFIX}.device.>`], [`${PREFIX}.device.*.*`],
      [subjects.invoke("honest")], [subjects.control("honest")], [`${PREFIX}.device.honest.*`], [`${PREFIX}.device.honest.>`],
      [subjects.invoke("honest"), "agents"], [subjects.invoke("rogue-placed")],
      ["_INBOX.>"], ["_INBOX.*"], ["_INBOX.*.*"], [`${PREFIX}.inbox.>`], [`${PREFIX}.inbox.*.>`], [`${subjects.inbox("honest")}.>`], [`${subjects.inbox("rogue-placed")}.>`],
      [`${PREFIX}.logs.>`], [`${PREFIX}.logs.victim.b`], [`${PREFIX}.devlogs.*`], [subjects.deviceLogs("honest")], [subjects.deviceLogs(rogueJoined.deviceId)],
      [`${PREFIX}.usage.>`], [`${PREFIX}.usage.victim.b`],
      [subjects.heartbeats], [subjects.heartbeat("honest")], [subjects.heartbeat(rogueJoined.deviceId)],
      [subjects.bundleGets], [subjects.bundleGets, "platform"], [subjects.bundleGet("honest")], [subjects.revoked],
      ["$JS.>"], ["$JS.API.>"], ["$JS.API.STREAM.>"], ["$JS.EVENT.>"], ["$JS.ACK.>"], [`$JS.ACK.${USAGE_STREAM}.>`], ["$KV.>"], ["$O.>"],
      ["$SYS.>"], ["$SYS.ACCOUNT.>"], ["$SYS.REQ.>"],
    ];
    const subs: [string, Subscription][] = patterns.map(([subject, queue]) => [subject, rogue.nc.subscribe(subject, queue ? { queue } : {})]);
    await rogue.nc.flush();
    for (const [subject, sub] of subs) {
      const closedWith = await Promise.race([sub.closed, new Promise((r) => setTimeout(() => r("still open"), 5_000))]);
      expect(closedWith, `subscription to ${subject}`).toBeInstanceOf(PermissionViolationError);
      expect((closedWith as PermissionViolationError).operation).toBe("subscription");
      expect((closedWith as PermissionViolationError).subject).toBe(subject);
    }
    // the connection survives its refusals (they are per subscription): it is still a live, joined device
    expect(rogue.nc.isClosed()).toBe(false);
    await rogue.nc.flush();

    // its lies changed nothing: owner, region and size come from its join record; victim/b stays where it was placed
    await waitFor("the rogue in the live table", async () => (await operator.devices()).some((d) => d.deviceId === "rogue"));
    const seen = (await operator.devices()).find((d) => d.deviceId === "rogue")!;
    expect(seen).toMatchObject({ ownerId: "mallory", region: "local", cores: 1, freeCores: 1 });
    await waitFor("a few placement passes to go by with the rogue live", async () => rogue.heard.filter((h) => h.subject === subjects.control("rogue")).length >= 3);
    expect((await victim.get("victim", "b")).devices).toEqual(["honest"]);

    const served = await traffic.stop();
    expect(served).toBeGreaterThanOrEqual(3);
    assertHeardNothingOfVictim();
  }, 60_000);

  it("cannot publish in anyone else's name, touch JetStream or $SYS, or answer a request it never got", async () => {
    const traffic = new VictimTraffic("pub");
    await traffic.flowing();
    const before = await streamInfo(USAGE_STREAM);
    const usageMessages = (before["state"] as { messages: number }).messages;

    // a real gateway reply subject: one mallory/m call that rogue-placed legitimately received
    let gatewayReply = "";
    placed.onInvoke = (msg) => {
      gatewayReply = msg.reply ?? "";
      const h = natsHeaders();
      h.set(INVOKE_HEADERS.status, "200");
      h.set(INVOKE_HEADERS.device, "rogue-placed");
      msg.respond("mallory", { headers: h });
      // a second answer to the same request: the server allows one
      msg.respond("mallory again", { headers: h });
    };
    const res = await mallory.invoke("mallory", "m");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("mallory");
    expect(gatewayReply).toMatch(/^_INBOX\./);

    const beat = (deviceId: string): Heartbeat => ({
      deviceId, ownerId: "olive", region: "local", location: { label: deviceId, lat: 0, lon: 0 }, cores: 1, memoryMb: 128,
      activeCalls: 0, freeCores: 1, functions: [], agentVersion: "rogue", sentAt: Date.now() + 60_000,
    });
    const publishes: [subject: string, data: string][] = [
      // heartbeats for another device (saying it serves nothing any more)
      [subjects.heartbeat("honest"), JSON.stringify(beat("honest"))],
      [subjects.heartbeat("rogue-placed"), JSON.stringify(beat("rogue-placed"))],
      // usage records, on the usage stream's subjects (platform/src/usage: <prefix>.usage.<app>.<fn>)
      [`${PREFIX}.usage.victim.b`, JSON.stringify(forgedUsage())],
      [`${PREFIX}.usage.mallory.m`, JSON.stringify(forgedUsage({ app: "mallory", fn: "m" }))],
      // control and calls for other devices, and the platform's revocation notices
      [subjects.control("honest"), JSON.stringify({ type: "unplace", app: "victim", fn: "b" })],
      [subjects.invoke("honest"), "call"],
      [subjects.revoked, JSON.stringify({ deviceId: "honest" })],
      // log lines straight into victim/b's log subject, or on another device's devlogs subject
      [`${PREFIX}.logs.victim.b`, JSON.stringify(logLine({ deviceId: "honest", message: "forged straight into the logs" }))],
      [subjects.deviceLogs("honest"), JSON.stringify(logLine({ deviceId: "honest", message: "forged on honest's subject" }))],
      // bundle requests in another device's name, and other devices' inboxes
      [subjects.bundleGet("honest"), JSON.stringify({ hash: victimVersion })],
      [`${subjects.inbox("honest")}.x`, "hi"],
      // a reply to a request it never received (rogue-placed's, from the gateway), and any other _INBOX
      [gatewayReply, "rogue's answer"],
      [`${gatewayReply.slice(0, gatewayReply.lastIndexOf("."))}.other`, "rogue's answer"],
      ["_INBOX.anything", "rogue's answer"],
      // another Hearth's subjects on the same server
      ["hearth.hb.rogue", "{}"],
    ];
    for (const [subject, data] of publishes) rogue.nc.publish(subject, data);
    await rogue.nc.flush();
    for (const [subject] of publishes) await rogue.refusal("publish", subject);
    // rogue-placed's second answer to the one request it got: refused too
    const violations: PermissionViolationError[] = [];
    void (async () => {
      for await (const s of placed.nc.status()) if (s.type === "error" && s.error instanceof PermissionViolationError) violations.push(s.error);
    })();
    const again = await mallory.invoke("mallory", "m");
    expect(await again.text()).toBe("mallory");
    await placed.nc.flush();
    await waitFor("the server to refuse rogue-placed's second answer", () => violations.some((v) => v.operation === "publish" && v.subject.startsWith("_INBOX.")), { timeoutMs: 5_000 });

    // requests: JetStream's API (list, info, delete, purge, read a message, delete the ledger's consumer) and $SYS
    const requests = [
      "$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", `$JS.API.STREAM.INFO.${USAGE_STREAM}`,
      `$JS.API.STREAM.DELETE.${USAGE_STREAM}`, `$JS.API.STREAM.PURGE.${LOGS_STREAM}`, `$JS.API.STREAM.MSG.GET.${LOGS_STREAM}`,
      `$JS.API.DIRECT.GET.${LOGS_STREAM}`, `$JS.API.CONSUMER.DELETE.${USAGE_STREAM}.ledger`, `$JS.API.CONSUMER.CREATE.${LOGS_STREAM}`,
      "$SYS.REQ.SERVER.PING", "$SYS.REQ.SERVER.PING.CONNZ", `$SYS.REQ.ACCOUNT.${authority.publicKeys.account}.CONNZ`,
      "$SYS.REQ.CLAIMS.UPDATE", "$SYS.REQ.USER.INFO",
    ];
    for (const subject of requests) {
      const error = await rogue.nc.request(subject, subject.includes("MSG.GET") ? JSON.stringify({ seq: 1 }) : "", { timeout: 5_000 }).then(
        () => "answered",
        (e: unknown) => e,
      );
      // nats.js rejects the request with a RequestError whose cause is the server's permission violation
      const violation = error instanceof PermissionViolationError ? error : (error as Error).cause;
      expect(violation, `request to ${subject}`).toBeInstanceOf(PermissionViolationError);
      expect((violation as PermissionViolationError).operation).toBe("publish");
      expect((violation as PermissionViolationError).subject).toBe(subject);
    }

    expect(rogue.nc.isClosed()).toBe(false);
    const served = await traffic.stop();
    expect(served).toBeGreaterThanOrEqual(3);
    // nothing it tried got anywhere: the streams are there, the usage stream grew only by the gateway's own records
    const after = await streamInfo(USAGE_STREAM);
    expect(after.error).toBeUndefined();
    expect((await streamInfo(LOGS_STREAM)).error).toBeUndefined();
    expect((after["state"] as { messages: number }).messages - usageMessages).toBeLessThanOrEqual(served + 2 + 2 * 2);
    expect((await victim.get("victim", "b")).devices).toEqual(["honest"]);
    assertHeardNothingOfVictim();
  }, 60_000);

  it("what the server lets it publish on its own subjects, the platform checks and drops", async () => {
    const traffic = new VictimTraffic("own");
    await traffic.flowing();

    // a heartbeat on its own subject naming another device: dropped (the honest device keeps its placement)
    rogue.nc.publish(subjects.heartbeat(rogueJoined.deviceId), JSON.stringify({ ...beatOf(rogueJoined.deviceId), deviceId: "honest" }));

    // log lines on its own devlogs subject: in the honest device's name, and in its own for a function it does not run
    const forged = ["forged-as-honest", "forged-as-itself", "forged-other-version"];
    rogue.nc.publish(subjects.deviceLogs(rogueJoined.deviceId), JSON.stringify(logLine({ deviceId: "honest", message: forged[0] })));
    rogue.nc.publish(subjects.deviceLogs(rogueJoined.deviceId), JSON.stringify(logLine({ message: forged[1] })));
    rogue.nc.publish(subjects.deviceLogs(rogueJoined.deviceId), JSON.stringify(logLine({ message: forged[2], version: SOME_HASH })));
    rogue.nc.publish(subjects.deviceLogs(rogueJoined.deviceId), "not json");
    await rogue.nc.flush();
    const lines = await logsSettled("own-logs");
    for (const marker of forged) expect(lines.some((l) => l.includes(marker)), marker).toBe(false);
    expect(lines.every((l) => l.startsWith("honest: "))).toBe(true);

    // bundle requests on its own subject: victim/b's bundle (its hash is no secret) is not given, and reads like a bundle that does not exist
    const ask = async (body: string) => {
      const reply = await rogue.nc.request(subjects.bundleGet(rogueJoined.deviceId), body, { timeout: 5_000 });
      return { code: reply.headers?.get(INVOKE_HEADERS.errorCode), sha: reply.headers?.get(INVOKE_HEADERS.sha256) ?? "", bytes: reply.data.byteLength };
    };
    expect(await ask(JSON.stringify({ hash: victimVersion }))).toEqual({ code: "ERR_VERSION_NOT_FOUND", sha: "", bytes: 0 });
    expect(await ask(JSON.stringify({ hash: SOME_HASH }))).toEqual({ code: "ERR_VERSION_NOT_FOUND", sha: "", bytes: 0 });
    expect((await ask("give me everything")).code).toBe("ERR_BAD_MESSAGE");
    // and the bundle of mallory/m, placed on another of mallory's devices: not this one's either
    const malloryVersion = (await mallory.get("mallory", "m")).version;
    expect(await ask(JSON.stringify({ hash: malloryVersion }))).toEqual({ code: "ERR_VERSION_NOT_FOUND", sha: "", bytes: 0 });

    expect(rogue.nc.isClosed()).toBe(false);
    expect(await traffic.stop()).toBeGreaterThanOrEqual(3);
    expect((await victim.get("victim", "b")).devices).toEqual(["honest"]);
    assertHeardNothingOfVictim();

    // billing: the ledger holds exactly the calls made to victim/b, and the rogue earned nothing
    await waitFor("the ledger to count every victim/b call", async () => (await victim.usage({ app: "victim" })).apps[0]?.totals.calls === victimCalls, { timeoutMs: 20_000, intervalMs: 200 });
    expect((await operator.deviceCredits(rogueJoined.deviceId)).total.calls).toBe(0);
  }, 60_000);

  it("a placed device that lies in its answers gets neither an oversized body through nor more CPU billed than the function's limit", async () => {
    // mallory/m: responseBytes 1 KiB, cpuMs 10; its device (rogue-placed) answers as the test says
    const answerWith = (body: Uint8Array, cpuMs: string) => {
      placed.onInvoke = (msg) => {
        const h = natsHeaders();
        h.set(INVOKE_HEADERS.status, "200");
        h.set(INVOKE_HEADERS.device, "rogue-placed");
        h.set(INVOKE_HEADERS.cpuMs, cpuMs);
        // it answers late, so the wall time the gateway sees is no cap below its claim
        setTimeout(() => msg.respond(body, { headers: h }), 300);
      };
    };
    const totals = async () => (await mallory.usage({ app: "mallory" })).apps.find((a) => a.app === "mallory")?.totals ?? { calls: 0, cpuUs: 0, responseBytes: 0 };
    const before = await totals();

    answerWith(new Uint8Array(64 * 1024), "1");
    const big = await mallory.invoke("mallory", "m");
    expect(big.status).toBe(502);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe("ERR_BAD_DEVICE_REPLY");

    answerWith(new TextEncoder().encode("small"), "290");
    const small = await mallory.invoke("mallory", "m");
    expect(small.status).toBe(200);
    expect(await small.text()).toBe("small");

    await waitFor("both calls in mallory's usage", async () => (await totals()).calls >= before.calls + 2, { timeoutMs: 20_000, intervalMs: 200 });
    const after = await totals();
    expect(after.responseBytes - before.responseBytes).toBe("small".length);
    expect(after.cpuUs - before.cpuUs).toBeLessThanOrEqual(10_000);
  }, 40_000);
});

function beatOf(deviceId: string): Heartbeat {
  return {
    deviceId, ownerId: "x", region: "local", location: { label: deviceId, lat: 0, lon: 0 }, cores: 1, memoryMb: 128,
    activeCalls: 0, freeCores: 1, functions: [], agentVersion: "rogue", sentAt: Date.now(),
  };
}

/** Nothing the rogue heard carried a victim/b call, its body, its callers' headers, or a placement (and so its env). */
function assertHeardNothingOfVictim(): void {
  expect(rogue.heard.filter((h) => h.subject === subjects.invoke(rogueJoined.deviceId))).toEqual([]);
  for (const { msg } of rogue.heard) {
    const text = new TextDecoder().decode(msg.data);
    expect(text).not.toContain("victim says");
    expect(text).not.toContain("victim-secret-api-key");
    expect(text).not.toMatch(/"type":"place"/);
    expect(msg.headers?.get(INVOKE_HEADERS.app) ?? "").not.toBe("victim");
    for (const key of msg.headers?.keys() ?? []) for (const v of msg.headers!.values(key)) expect(v).not.toContain(END_USER_SECRET);
  }
}

describe("findings: what a hostile device tried once and no longer can", () => {
  /**
   * The bundle service answers every request on a device's bundle subject
   * with `msg.respond`, to whatever reply subject the device wrote, using the
   * platform's credential (the whole account, JetStream API included).
   * nats-server checks a publisher's subject, never its reply-to: so any
   * joined device makes the platform publish to any subject it names.
   */
  it("a device cannot make the platform publish to a subject of its choosing (here: delete a JetStream stream)", async () => {
    const created = await jsApi("$JS.API.STREAM.CREATE.ROGUE_CANARY", { name: "ROGUE_CANARY", subjects: ["rogue-canary.>"], storage: "memory" });
    expect(created.error).toBeUndefined();
    // any well-formed request: the "no such bundle" answer (empty body) is what goes to the reply subject
    rogue.nc.publish(subjects.bundleGet(rogueJoined.deviceId), JSON.stringify({ hash: SOME_HASH }), { reply: "$JS.API.STREAM.DELETE.ROGUE_CANARY" });
    await rogue.nc.flush();
    const deleted = await waitFor("the canary stream to be deleted", async () => (await streamInfo("ROGUE_CANARY")).error?.code === 404, { timeoutMs: 3_000, intervalMs: 50 }).then(
      () => true,
      () => false,
    );
    expect(deleted).toBe(false);
  });

  /**
   * The same reflection with a body of the attacker's choosing: a developer
   * (mallory) deploys a "bundle" that is any UTF-8 text (the API checks no
   * more), the scheduler grants it to mallory's device when it tries to
   * place it there, and the device asks for it with reply-to set to the
   * usage subject of another developer's function: the platform writes a
   * usage record of mallory's making into the usage stream, and the ledger
   * bills the victim and credits mallory's device for an hour of CPU.
   */
  it("a device and a developer together cannot forge a usage record through the platform", async () => {
    const record = forgedUsage({ deviceId: "rogue-placed" });
    const bundle = await mallory.deploy({ app: "mallory", name: "usage", code: JSON.stringify(record), replicas: 1 });
    await waitFor("mallory/usage placed on rogue-placed", async () => (await mallory.get("mallory", "usage")).devices.includes("rogue-placed"), { timeoutMs: 20_000 });
    const calls = (await victim.usage({ app: "victim" })).apps[0]!.totals.calls;
    placed.nc.publish(subjects.bundleGet("rogue-placed"), JSON.stringify({ hash: bundle.version }), { reply: `${PREFIX}.usage.victim.b` });
    await placed.nc.flush();
    const forged = await waitFor("the forged record in victim's usage", async () => (await victim.usage({ app: "victim" })).apps[0]!.totals.calls > calls, { timeoutMs: 5_000, intervalMs: 200 }).then(
      () => true,
      () => false,
    );
    expect(forged).toBe(false);
  }, 40_000);

  /** The same reflection onto the honest device's devlogs subject: the relay believes the subject, so the line is stored in victim/b's logs as the honest device's. */
  it("a device and a developer together cannot write into victim/b's logs in the honest device's name", async () => {
    const line = logLine({ deviceId: "honest", level: "error", message: "reflected: your account is locked, log in at https://evil.example" });
    const bundle = await mallory.deploy({ app: "mallory", name: "logline", code: JSON.stringify(line), replicas: 1 });
    await waitFor("mallory/logline placed on rogue-placed", async () => (await mallory.get("mallory", "logline")).devices.includes("rogue-placed"), { timeoutMs: 20_000 });
    placed.nc.publish(subjects.bundleGet("rogue-placed"), JSON.stringify({ hash: bundle.version }), { reply: subjects.deviceLogs("honest") });
    await placed.nc.flush();
    const lines = await logsSettled("reflected-log");
    expect(lines.some((l) => l.includes("evil.example"))).toBe(false);
  }, 40_000);

  /**
   * Bundle grants and the log relay's check are per (device, function,
   * version): a device placed on mallory/copy, whose code is byte-for-byte
   * victim/b's (public code, a template), still may not write log lines into
   * victim/b's logs, though the hash is also victim/b's version.
   */
  it("a device placed on another app with the same bundle cannot write into victim/b's logs", async () => {
    await mallory.deploy({ app: "mallory", name: "copy", code: VICTIM_CODE, replicas: 1 });
    await waitFor("mallory/copy placed on rogue-placed", async () => (await mallory.get("mallory", "copy")).devices.includes("rogue-placed"), { timeoutMs: 20_000 });
    placed.nc.publish(subjects.deviceLogs("rogue-placed"), JSON.stringify(logLine({ deviceId: "rogue-placed", message: "same-hash injection" })));
    await placed.nc.flush();
    const lines = await logsSettled("same-hash");
    expect(lines.some((l) => l.includes("same-hash injection"))).toBe(false);
  }, 40_000);

  /**
   * A device's credential caps what one message may carry (the largest reply
   * a function may send, plus headers: far below the server's 8 MiB) and how
   * many subscriptions one connection may hold; nats-server refuses more.
   */
  it("a device's credential limits the size of what it publishes and how many subscriptions it holds", async () => {
    // the size: nats.js refuses it when it has the server's word on the limit, else nats-server does and closes the connection
    const big = await connectAsDevice(nats.url, rogueJoined, PREFIX, { reconnect: false });
    const bigErrors: string[] = [];
    void (async () => {
      for await (const s of big.status()) if (s.type === "error") bigErrors.push(s.error.message);
    })();
    let refusedBy = "";
    try {
      big.publish(subjects.deviceLogs(rogueJoined.deviceId), new Uint8Array(DEVICE_CREDENTIAL_LIMITS.payloadBytes + 1));
      await big.flush().catch((e: Error) => bigErrors.push(e.message));
      await waitFor("nats-server to refuse a message over the credential's payload", () => bigErrors.some((e) => /payload/i.test(e)) || big.isClosed(), { timeoutMs: 5_000 });
      refusedBy = "server";
    } catch (error) {
      if (!/payload/i.test((error as Error).message)) throw error;
      refusedBy = "client";
    }
    expect(refusedBy).not.toBe("");
    if (!big.isClosed()) await big.close();

    // the subscriptions: one more than the credential allows is refused by nats-server
    const second = await connectAsDevice(nats.url, rogueJoined, PREFIX, { reconnect: false });
    const errors: string[] = [];
    void (async () => {
      for await (const s of second.status()) if (s.type === "error") errors.push(s.error.message);
    })();
    const inbox = subjects.inbox(rogueJoined.deviceId);
    for (let i = 0; i <= DEVICE_CREDENTIAL_LIMITS.subscriptions; i++) second.subscribe(`${inbox}.s${i}`);
    await second.flush().catch((e: Error) => errors.push(e.message));
    await waitFor("the server to refuse a subscription past the credential's limit", () => errors.some((e) => /maximum subscriptions/i.test(e)) || second.isClosed(), {
      timeoutMs: 5_000,
    });
    if (!second.isClosed()) await second.close();
  });

  /**
   * Each placement pass used to send an `unplace` control request for every
   * function a live device's heartbeat claims that does not exist (and the
   * heartbeat may claim thousands): now each claim is answered at most once
   * in a few seconds.
   */
  it("a device's heartbeat claims cost the platform a bounded number of control messages", async () => {
    const control = () => rogue.heard.filter((h) => h.subject === subjects.control(rogueJoined.deviceId)).length;
    const start = control();
    rogue.startHeartbeats({ functions: Array.from({ length: 300 }, (_, i) => ({ app: "nothing", fn: `f${i}`, version: SOME_HASH })) });
    const flooded = await waitFor("a flood of control messages", () => control() - start >= 1_500, { timeoutMs: 4_000 }).then(
      () => true,
      () => false,
    );
    rogue.startHeartbeats({});
    rogue.stopHeartbeats();
    expect(flooded).toBe(false);
    // and each claim was answered: an honest device that missed a deletion still hears it
    expect(control() - start).toBeGreaterThanOrEqual(300);
  }, 20_000);

  /**
   * The most damaging form of the reflection, so it runs last: a bundle whose
   * bytes are `{"deviceId":"honest"}`, reflected onto the platform's
   * revocation subject, makes every platform process believe the honest
   * device revoked (for the directory's 30 s memory): it drops out of the
   * live table, victim/b is taken off it, and its calls fail.
   */
  it("a device and a developer together cannot take the honest device off the fabric", async () => {
    const bundle = await mallory.deploy({ app: "mallory", name: "notice", code: JSON.stringify({ deviceId: "honest" }), replicas: 1 });
    await waitFor("mallory/notice placed on rogue-placed", async () => (await mallory.get("mallory", "notice")).devices.includes("rogue-placed"), { timeoutMs: 20_000 });
    const traffic = new VictimTraffic("revoked", { maxCalls: 200, maxMs: 6_000 });
    await traffic.flowing();
    placed.nc.publish(subjects.bundleGet("rogue-placed"), JSON.stringify({ hash: bundle.version }), { reply: subjects.revoked });
    await placed.nc.flush();
    await waitFor("victim/b's calls to fail", () => traffic.problems.length > 0, { timeoutMs: 5_000 }).catch(() => undefined);
    await traffic.stop();
  }, 40_000);

  /**
   * Each answer to a bundle request may be 4 MiB of the platform's
   * bandwidth and costs it Redis reads: asked again and again, the platform
   * answers a device's budget's worth and then says it is busy. (Last: the
   * rogue has no budget left afterwards.)
   */
  it("a device asking for bundles over and over is answered only up to its budget", async () => {
    const body = JSON.stringify({ hash: SOME_HASH });
    const answers = await Promise.all(
      Array.from({ length: BUNDLE_REQUEST_BUDGET.points + 20 }, () =>
        rogue.nc.request(subjects.bundleGet(rogueJoined.deviceId), body, { timeout: 5_000 }).then((m) => m.headers?.get(INVOKE_HEADERS.errorCode) ?? ""),
      ),
    );
    expect(answers.filter((a) => a === "ERR_VERSION_NOT_FOUND").length).toBeLessThanOrEqual(BUNDLE_REQUEST_BUDGET.points);
    expect(answers.filter((a) => a === "ERR_DEVICE_BUSY").length).toBeGreaterThanOrEqual(20);
  });
});
