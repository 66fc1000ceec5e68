/**
 * Never a lost call: real agents on a real authenticated fabric, one killed
 * with SIGKILL while calls are in flight on it. nats-server's DISCONNECT
 * advisory tells the platform at once; the scheduler asks the device, finds
 * no one, and the gateway moves the calls that were waiting on it. An
 * idempotent call (GET, or any call with an Idempotency-Key) is answered by
 * another device; any other call gets 502 ERR_DEVICE_LOST at once instead of
 * waiting out the function's wall limit. Every call is billed exactly once.
 */
import { startLocalHearth, waitFor, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** Says it started, waits `?ms=` milliseconds, then answers which call it was. */
const SLOW_CODE = `export default { async fetch(req) {
  const url = new URL(req.url);
  const ms = Number(url.searchParams.get("ms") ?? "0");
  if (ms > 1000) console.log("started " + url.searchParams.get("n"));
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  return new Response("done " + url.searchParams.get("n"));
} }`;

let hearth: LocalHearth;
let client: HearthClient;

beforeAll(async () => {
  hearth = await startLocalHearth({
    logLevel: "warn",
    devices: [
      { deviceId: "lost-a", ownerId: "ann", cores: 2 },
      { deviceId: "lost-b", ownerId: "bob", cores: 2 },
      { deviceId: "lost-c", ownerId: "cat", cores: 2 },
    ],
  });
  client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
}, 90_000);

afterAll(async () => {
  await hearth?.stop();
});

const kill = (deviceId: string) => hearth.devices.get(deviceId)!.server.process.kill("SIGKILL");

async function callsBilled(app: string): Promise<number> {
  const report = await client.usage({ app });
  return report.apps[0]?.totals.calls ?? 0;
}

describe("a device killed with calls in flight", () => {
  it("loses no idempotent call: each is answered by another device and billed once, and the function is re-placed within 10 s", async () => {
    await client.deploy({ app: "lost", name: "get", code: SLOW_CODE, replicas: 2, limits: { wallMs: 20_000 } });
    await waitFor("lost/get on two devices", async () => (await client.get("lost", "get")).devices.length === 2, { timeoutMs: 30_000 });
    const [victim] = (await client.get("lost", "get")).devices as [string];

    const results: { status: number; device: string | null; body: string }[] = [];
    let n = 0;
    let stop = false;
    const worker = async () => {
      // bounded: at most 400 calls per worker and until stopped
      for (let i = 0; i < 400 && !stop; i++) {
        const res = await client.invoke("lost", "get", `/?ms=150&n=${n++}`);
        results.push({ status: res.status, device: res.headers.get("x-hearth-device"), body: await res.text() });
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await waitFor("calls served by the victim", () => results.some((r) => r.device === victim), { timeoutMs: 15_000 });
    kill(victim);
    const killedAt = Date.now();
    await waitFor("lost/get re-placed off the killed device", async () => {
      const view = await client.get("lost", "get");
      return !view.devices.includes(victim) && view.devices.length === 2;
    }, { timeoutMs: 10_000, intervalMs: 200 });
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    // calls keep flowing a little past the re-placement
    const after = results.length;
    await waitFor("more calls after the re-placement", () => results.length >= after + 40, { timeoutMs: 15_000 });
    stop = true;
    await Promise.all(workers);

    const failed = results.filter((r) => r.status !== 200);
    expect(failed, JSON.stringify(failed.slice(0, 3))).toEqual([]);
    expect(results.every((r) => r.body.startsWith("done "))).toBe(true);
    // billed exactly once each: the usage of the app reaches the count of calls made, and stays there
    await waitFor("every call billed", async () => (await callsBilled("lost")) >= results.length, { timeoutMs: 15_000 });
    expect(await callsBilled("lost")).toBe(results.length);
  }, 120_000);

  it("ends a non-idempotent call at once with 502 ERR_DEVICE_LOST, and moves one sent with an Idempotency-Key", async () => {
    // a device more, so that one is left whichever two the calls land on
    await hearth.startDevice({ deviceId: "lost-d", ownerId: "dan", cores: 2 });
    await client.deploy({ app: "lostpost", name: "post", code: SLOW_CODE, replicas: 1, limits: { wallMs: 30_000 } });
    await client.deploy({ app: "lostpost", name: "keyed", code: SLOW_CODE, replicas: 1, limits: { wallMs: 30_000 } });
    await waitFor("lostpost placed", async () => (await client.get("lostpost", "post")).devices.length === 1 && (await client.get("lostpost", "keyed")).devices.length === 1, { timeoutMs: 30_000 });
    const postOn = (await client.get("lostpost", "post")).devices[0]!;
    const keyedOn = (await client.get("lostpost", "keyed")).devices[0]!;

    const post = client.invoke("lostpost", "post", "/?ms=8000&n=post", { method: "POST", body: "x" });
    const keyed = client.invoke("lostpost", "keyed", "/?ms=3000&n=keyed", { method: "POST", body: "x", headers: { "idempotency-key": "k-1" } });
    const started = async (fn: string) => (await client.logs("lostpost", fn, { since: "5m" })).some((l) => l.message.startsWith("started "));
    await waitFor("both calls running on their devices", async () => (await started("post")) && (await started("keyed")), { timeoutMs: 15_000, intervalMs: 100 });
    const killedAt = Date.now();
    kill(postOn);
    if (keyedOn !== postOn) kill(keyedOn);

    const res = await post;
    const body = (await res.json()) as { error: { code: string } };
    expect(res.status).toBe(502);
    expect(body.error.code).toBe("ERR_DEVICE_LOST");
    // told when the device left, not after the call's 8 s or its 30 s wall limit
    expect(Date.now() - killedAt).toBeLessThan(7_000);

    const again = await keyed;
    expect(again.status).toBe(200);
    expect(await again.text()).toBe("done keyed");
    expect(again.headers.get("x-hearth-device")).not.toBe(keyedOn);
  }, 90_000);
});
