/**
 * A call's time budget crosses to the device as a relative number of ms (as
 * gRPC's grpc-timeout does), counted on the device's own clock from when it
 * received the call: a device whose clock runs ten minutes ahead still gives
 * a function its whole wall-time limit, and still stops it at that limit.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLocalHearth, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const FIXTURE = fileURLToPath(new URL("./fixtures/clock-ahead.mjs", import.meta.url));
let hearth: LocalHearth;
let client: HearthClient;

beforeAll(async () => {
  hearth = await startLocalHearth({
    devices: [{ deviceId: "ahead", cores: 1, env: { NODE_OPTIONS: `--import ${join(FIXTURE)}`, HEARTH_TEST_CLOCK_AHEAD_MS: String(10 * 60_000) } }],
  });
  client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
}, 60_000);
afterAll(async () => {
  await hearth?.stop();
});

describe("a device whose clock runs ahead", () => {
  it("gives a call its whole budget, and still ends one that runs past it", async () => {
    await client.deploy({
      app: "skew",
      name: "sleepy",
      // the wall time the function spends is its own clock's difference: the fixture shifts both ends alike
      code: "export default { async fetch(req) { const ms = Number(new URL(req.url).searchParams.get('ms')); await new Promise((r) => setTimeout(r, ms)); return new Response(`slept ${ms}`); } }",
      limits: { wallMs: 1_000 },
    });
    await client.waitUntilReady("skew", "sleepy", { timeoutMs: 30_000 });
    const ok = await client.invoke("skew", "sleepy", "/?ms=200");
    expect(ok.status, await ok.clone().text()).toBe(200);
    expect(await ok.text()).toBe("slept 200");
    const over = await client.invoke("skew", "sleepy", "/?ms=3000");
    expect(over.status).toBe(504);
    expect(((await over.json()) as { error: { code: string } }).error.code).toBe("ERR_WALL_TIME_LIMIT");
  }, 60_000);
});
