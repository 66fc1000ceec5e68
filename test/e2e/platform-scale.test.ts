/**
 * Platform processes are stateless over Redis and the fabric: a second
 * platform process serves the same functions, and a killed platform process
 * comes back without losing anything. Runs against a real redis-server.
 */
import { redisServerBinary, startLocalHearth, startRedisServer } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import { describe, expect, it } from "vitest";

const CODE = "export default { fetch: (req) => new Response('pong ' + new URL(req.url).pathname) }";

describe.skipIf(!redisServerBinary())("platform processes over shared state", () => {
  it("a second platform process serves functions deployed through the first", async () => {
    await using redis = await startRedisServer();
    await using hearth = await startLocalHearth({ logLevel: "warn", redisUrl: redis.url, devices: [{ deviceId: "ps-a" }, { deviceId: "ps-b" }] });
    const second = await hearth.startPlatform();
    const first = new HearthClient({ url: hearth.url, token: hearth.developerToken });
    await first.deploy({ app: "scale", name: "ping", code: CODE });
    await first.waitUntilReady("scale", "ping", { timeoutMs: 20_000 });
    const viaSecond = new HearthClient({ url: second.url, token: hearth.developerToken });
    const res = await viaSecond.invoke("scale", "ping", "/two");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("pong /two");
    expect((await viaSecond.list("scale")).map((f) => f.name)).toEqual(["ping"]);
  });

  it("a killed platform process restarts without losing functions, and calls resume", async () => {
    await using redis = await startRedisServer();
    await using hearth = await startLocalHearth({ logLevel: "warn", redisUrl: redis.url, devices: [{ deviceId: "pr-a" }] });
    const client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
    const deployed = await client.deploy({ app: "restart", name: "ping", code: CODE, replicas: 1 });
    await client.waitUntilReady("restart", "ping", { timeoutMs: 20_000 });
    await hearth.restartPlatform();
    const after = await client.get("restart", "ping");
    expect(after.version).toBe(deployed.version);
    const res = await client.invoke("restart", "ping", "/again");
    expect(await res.text()).toBe("pong /again");
  });
});
