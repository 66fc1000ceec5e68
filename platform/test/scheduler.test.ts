/**
 * The scheduler against a real nats-server, with fake devices that join,
 * publish heartbeats and answer control messages the way agents do.
 */
import { redisServerBinary, startNatsServer, startRedisServer, type NatsServer } from "@hearth/devkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connectAsPlatform, FabricAuthority, FakeDevice, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { createDeveloper } from "./helpers.ts";

const TOKEN = "test-token-0123456789";
/** The developer's who deploys (the operator's token reaches operator routes only). */
let auth: { authorization: string };
const PREFIX = "schedtest";
let nats: NatsServer;
let platform: Platform;
const authority = FabricAuthority.generate();

beforeAll(async () => {
  nats = await startNatsServer({ auth: natsAuth(authority) });
  platform = await startPlatform({
    fabricKeys: authority.keys,
    natsUrl: nats.url,
    token: TOKEN,
    log: silentLogger(),
    subjectPrefix: PREFIX,
    deadAfterMs: 1_000,
    tickMs: 200,
  });
  ({ auth } = await createDeveloper(platform.app, TOKEN, "sched-dev"));
});
afterAll(async () => {
  await platform?.close();
  await nats?.stop();
});

const devices: FakeDevice[] = [];

afterEach(async () => {
  await Promise.all(devices.splice(0).map((d) => d.die()));
  // each test starts with no live device
  await until("no live devices", async () => ((await platform.scheduler.liveDevices()).length === 0 ? true : undefined));
});

async function liveCount(n: number) {
  await until(`${n} live devices`, async () => ((await platform.scheduler.liveDevices()).length === n ? true : undefined));
}

/** A joined device of `p` (default: the shared platform) that heartbeats and answers control messages. */
async function fake(id: string, owner: string, accept = true, prefix = PREFIX, p: Platform = platform): Promise<FakeDevice> {
  const device = await FakeDevice.start({ url: nats.url, prefix, devices: p.devices, deviceId: id, ownerId: owner, accept });
  devices.push(device);
  return device;
}

async function deploy(app: string, fn: string, query = "", suffix = "") {
  const res = await platform.app.request(`/v1/apps/${app}/functions/${fn}${query}`, {
    method: "PUT",
    headers: auth,
    body: `export default { fetch: () => new Response("${app}/${fn}") }${suffix}`,
  });
  expect(res.status).toBeLessThan(300);
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const placedOn = async (app: string, fn: string) => Object.keys((await platform.store.getPlacement(app, fn)).devices).sort();

describe("scheduler", () => {
  it("places replicas on live devices, spread over owners, and re-places when a device goes silent", async () => {
    const a1 = await fake("s1-a1", "alice");
    const a2 = await fake("s1-a2", "alice");
    await fake("s1-b1", "bob");
    await liveCount(3);
    await deploy("s1", "fn", "?replicas=2");
    const placed = await until("two replicas", async () => {
      const ids = await placedOn("s1", "fn");
      return ids.length === 2 ? ids : undefined;
    });
    // one replica per owner before any owner gets two
    expect(placed).toContain("s1-b1");
    const aliceDevice = placed.find((id) => id !== "s1-b1")!;
    const victim = aliceDevice === "s1-a1" ? a1 : a2;
    const survivor = victim === a1 ? a2 : a1;
    await victim.die();
    await until("re-placed on the survivor", async () => {
      const ids = await placedOn("s1", "fn");
      return ids.includes(survivor.id) && !ids.includes(victim.id) && ids.length === 2 ? ids : undefined;
    });
  });

  it("moves replicas to a new version and to new limits, and tells devices to drop deleted functions", async () => {
    const d = await fake("s2-d", "carol");
    await liveCount(1);
    await deploy("s2", "fn", "?replicas=1");
    const v1 = await until("placed", () => d.functions.get("s2/fn")?.version);
    await deploy("s2", "fn", "?replicas=1&cpuMs=77");
    await until("new limits", () =>
      d.received.some((m) => m.type === "place" && m.app === "s2" && m.limits.cpuMs === 77) ? true : undefined,
    );
    await deploy("s2", "fn", "?replicas=1&cpuMs=77", "// v2");
    const v2 = await until("new version", () => {
      const v = d.functions.get("s2/fn")?.version;
      return v && v !== v1 ? v : undefined;
    });
    expect(v2).not.toBe(v1);
    const res = await platform.app.request("/v1/apps/s2/functions/fn", { method: "DELETE", headers: auth });
    expect(res.status).toBe(204);
    await until("unplaced", () => (d.functions.has("s2/fn") ? undefined : true));
  });

  it("tells a device that comes back after it was given up to stop serving what moved away from it", async () => {
    const a = await fake("s5-a", "alice");
    const b = await fake("s5-b", "bob");
    await liveCount(2);
    await deploy("s5", "fn", "?replicas=1");
    const [first] = await until("placed", async () => {
      const p = await placedOn("s5", "fn");
      return p.length === 1 ? p : undefined;
    });
    const [gone, other] = first === a.id ? [a, b] : [b, a];
    // silent past the dead-after time (but still there): the function moves to the other device
    gone.pause();
    await until("moved", async () => ((await placedOn("s5", "fn")).join() === other.id ? true : undefined));
    // back, still serving it: told to stop, and the placement stays where it moved
    gone.resume();
    await until("told to stop", () => (gone.functions.has("s5/fn") ? undefined : true));
    expect(gone.received.some((m) => m.type === "unplace" && m.app === "s5" && m.fn === "fn")).toBe(true);
    expect(await placedOn("s5", "fn")).toEqual([other.id]);
    expect(other.functions.has("s5/fn")).toBe(true);
  });

  it("does not hammer a device that refuses a placement", async () => {
    const refuser = await fake("s3-r", "dave", false);
    await liveCount(1);
    await deploy("s3", "fn", "?replicas=1");
    await until("the first placement", () => (refuser.received.some((m) => m.type === "place" && m.app === "s3") ? true : undefined));
    await new Promise((r) => setTimeout(r, 1_500)); // several ticks of 200 ms after it
    const attempts = refuser.received.filter((m) => m.type === "place" && m.app === "s3").length;
    expect(attempts).toBe(1);
    expect(await placedOn("s3", "fn")).toEqual([]);
  });

  it("believes a heartbeat only from a joined device on its own subject, with owner and region from its join record", async () => {
    const honest = await fake("s4-honest", "erin");
    await liveCount(1);
    const entry = platform.scheduler.liveDevices().find((d) => d.heartbeat.deviceId === "s4-honest")!;
    // the device claimed "claimed-owner" and "claimed-region": the join record says otherwise
    expect(entry.heartbeat).toMatchObject({ ownerId: "erin", region: "local" });

    // junk, a device that never joined (only the platform's own credential can even publish there), and one naming another device
    const nc = await connectAsPlatform(nats.url, platform.authority);
    nc.publish(`${PREFIX}.hb.s4-ghost`, "not json");
    nc.publish(`${PREFIX}.hb.s4-ghost`, JSON.stringify({ ...entry.heartbeat, deviceId: "s4-ghost" }));
    nc.publish(`${PREFIX}.hb.s4-honest`, JSON.stringify({ ...entry.heartbeat, deviceId: "s4-other" }));
    await nc.flush();
    await nc.close();
    // a joined device cannot publish on another device's heartbeat subject at all: nats-server refuses it
    const errors: string[] = [];
    void (async () => {
      for await (const s of honest.nc.status()) if (s.type === "error") errors.push(String(s.error?.message));
    })();
    honest.nc.publish(`${PREFIX}.hb.s4-victim`, JSON.stringify({ ...entry.heartbeat, deviceId: "s4-victim" }));
    await until("the server refused the forged heartbeat", () => (errors.some((e) => /Permissions Violation for Publish/.test(e)) ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    const ids = platform.scheduler.liveDevices().map((d) => d.heartbeat.deviceId);
    expect(ids).toEqual(["s4-honest"]);
  });
});

describe("a platform process that just took over", () => {
  it.skipIf(redisServerBinary() === undefined)(
    "keeps placements on devices it has not heard from yet, and re-places once they stay silent",
    async () => {
      const redis = await startRedisServer();
      const prefix = "warmup";
      const options = { fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: prefix, redisUrl: redis.url, deadAfterMs: 4_000, tickMs: 100 };
      let first: Platform | undefined = await startPlatform(options);
      let second: Platform | undefined;
      try {
        const [d1] = [await fake("w-d1", "ann", true, prefix, first), await fake("w-d2", "bo", true, prefix, first), await fake("w-d3", "cy", true, prefix, first)];
        await until("3 live devices", () => (first!.scheduler.liveDevices().length === 3 ? true : undefined));
        const { auth: own } = await createDeveloper(first.app, TOKEN, "warmup-dev");
        const res = await first.app.request("/v1/apps/w/functions/fn?replicas=3", {
          method: "PUT",
          headers: own,
          body: `export default { fetch: () => new Response("w") }`,
        });
        expect(res.status).toBeLessThan(300);
        const placedOnAll = async (p: Platform) => Object.keys((await p.store.getPlacement("w", "fn")).devices).sort();
        await until("placed on all three", async () => ((await placedOnAll(first!)).length === 3 ? true : undefined));

        // the leader goes away; a new process takes over before it has heard w-d1 (whose heartbeats are late, not stopped for good)
        d1!.pause();
        await first.close();
        first = undefined;
        second = await startPlatform(options);
        const started = Date.now();
        // (w-d1 stays silent for half the new process's warm-up: seconds of room for w-d2's and w-d3's first heartbeats)
        while (Date.now() - started < 2_000) {
          expect(await placedOnAll(second)).toEqual(["w-d1", "w-d2", "w-d3"]);
          await new Promise((r) => setTimeout(r, 50));
        }
        d1!.resume();
        await new Promise((r) => setTimeout(r, 800));
        expect(await placedOnAll(second)).toEqual(["w-d1", "w-d2", "w-d3"]);

        // once it has listened long enough, a device that stays silent is given up and its replica dropped
        await d1!.die();
        await until("w-d1 given up", async () => ((await placedOnAll(second!)).join() === "w-d2,w-d3" ? true : undefined), 15_000);
      } finally {
        await first?.close();
        await second?.close();
        await redis.stop();
      }
    },
    60_000,
  );
});
