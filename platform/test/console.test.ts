/**
 * The console's server side, in-process (`app.request()`) against a real
 * nats-server with JetStream and a joined fake device: the pages and their
 * security headers, never on an app's host; a function's stats after real
 * calls (calls, errors, p50/p99, recent errors with request ids, usage by
 * day) for its developer only; the operator's fleet view; a device owner
 * signed in with a device token, seeing only their own devices.
 */
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { FunctionStatsReport, INVOKE_HEADERS, WhoAmI } from "@hearth/protocol";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_CSP } from "../src/console/index.ts";
import { FabricAuthority, FakeDevice, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { createDeveloper, type TestDeveloper } from "./helpers.ts";

const TOKEN = "console-operator-token-0123456789";
const operator = { authorization: `Bearer ${TOKEN}` };
const PREFIX = "consoletest";
const authority = FabricAuthority.generate();

let nats: NatsServer;
let platform: Platform;
let device: FakeDevice;
let ada: TestDeveloper;
let bob: TestDeveloper;

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, redisPrefix: "consoletest:", ledger: "required", tickMs: 200 });
  ada = await createDeveloper(platform.app, TOKEN, "ada");
  bob = await createDeveloper(platform.app, TOKEN, "bob");
  device = await FakeDevice.start({
    url: nats.url, prefix: PREFIX, devices: platform.devices, deviceId: "ada-nuc", ownerId: "grace", region: "eu",
    onInvoke: (msg) => {
      const h = headers();
      const fail = new URL(msg.headers!.get(INVOKE_HEADERS.url)).pathname === "/fail";
      if (fail) h.set(INVOKE_HEADERS.errorCode, "ERR_FUNCTION_THREW");
      else h.set(INVOKE_HEADERS.status, "200");
      h.set(INVOKE_HEADERS.cpuMs, "0.5");
      h.set(INVOKE_HEADERS.wallMs, "0.7");
      h.set(INVOKE_HEADERS.device, "ada-nuc");
      msg.respond(new TextEncoder().encode("ok"), { headers: h });
    },
  });
  const res = await platform.app.request("/v1/apps/shop/functions/cart", { method: "PUT", headers: ada.auth, body: "export default {}" });
  expect(res.status).toBe(201);
  await waitFor("shop/cart placed on the fake device", () => device.functions.has("shop/cart"));
});

afterAll(async () => {
  await device?.die();
  await platform?.close();
  await nats?.stop();
});

describe("console pages", () => {
  it("serves the console on the API's host with a strict CSP, Trusted Types and no framing", async () => {
    const redirect = await platform.app.request("/console");
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get("location")).toBe("/console/");
    const page = await platform.app.request("/console/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const csp = page.headers.get("content-security-policy")!;
    expect(csp).toBe(CONSOLE_CSP);
    for (const directive of ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "require-trusted-types-for 'script'"]) expect(csp).toContain(directive);
    expect(csp).not.toContain("unsafe");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await page.text();
    expect(html).toContain('<script type="module" src="app.js"></script>');
    // no inline script or style, nothing from another origin
    expect(html).not.toMatch(/<script>|<style|style=|https?:\/\//);
    const script = await platform.app.request("/console/app.js");
    expect(script.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(script.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
  });

  it("answers only its own files", async () => {
    for (const path of ["/console/nope.js", "/console/..%2fapi%2findex.ts", "/console/index.ts"]) {
      const res = await platform.app.request(path);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("ERR_NOT_FOUND");
    }
  });

  it("never renders markup from tenant text: the assets use no HTML sink", async () => {
    for (const file of ["app.js", "api.js", "dom.js", "charts.js", "developer.js", "operator.js", "owner.js"]) {
      const source = await (await platform.app.request(`/console/${file}`)).text();
      expect(source, file).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/);
    }
  });

  it("tells the page when functions share its origin (no app domain)", async () => {
    expect(await (await platform.app.request("/console/config.json")).json()).toEqual({ sharedOrigin: true });
  });

  it("is not served on an app's host: there /console is the app's function named console", async () => {
    const hosted = await startPlatform({
      fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: `${PREFIX}host`, redisPrefix: "consoletest-host:",
      ledger: "off", appDomain: "fn.test", publicUrl: "http://api.test",
    });
    try {
      const onApp = await hosted.app.request("http://shop.fn.test/console/");
      expect(onApp.status).toBe(404);
      expect(((await onApp.json()) as { error: { code: string } }).error.code).toBe("ERR_FUNCTION_NOT_FOUND");
      expect(onApp.headers.get("content-security-policy")).toBeNull();
      // nor are the metrics
      expect((await hosted.app.request("http://shop.fn.test/metrics", { headers: operator })).status).toBe(404);
      const onApi = await hosted.app.request("http://api.test/console/");
      expect(onApi.status).toBe(200);
      expect(await (await hosted.app.request("http://api.test/console/config.json")).json()).toEqual({ sharedOrigin: false });
    } finally {
      await hosted.close();
    }
  });
});

describe("a function's stats", () => {
  it("charts real calls for the function's developer: calls, errors, p50/p99, recent errors with request ids, usage by day", async () => {
    for (let i = 0; i < 5; i++) expect((await platform.app.request("/fn/shop/cart/ok")).status).toBe(200);
    const failed = await platform.app.request("/fn/shop/cart/fail", { headers: { "x-request-id": "console-failed-call-1" } });
    expect(failed.status).toBe(500);
    let report: FunctionStatsReport | undefined;
    await waitFor("6 calls in the function's stats", async () => {
      const res = await platform.app.request("/v1/apps/shop/functions/cart/stats", { headers: ada.auth });
      report = FunctionStatsReport.parse(await res.json());
      return report.totals.calls === 6;
    });
    expect(report!.range).toBe("hour");
    expect(report!.points).toHaveLength(60);
    expect(report!.totals.errors).toBe(1);
    expect(report!.totals.p50Ms).toBeGreaterThan(0);
    expect(report!.totals.p99Ms).toBeGreaterThanOrEqual(report!.totals.p50Ms!);
    expect(report!.points.at(-1)!.calls + report!.points.at(-2)!.calls).toBe(6);
    expect(report!.recentErrors[0]).toMatchObject({ requestId: "console-failed-call-1", code: "ERR_FUNCTION_THREW", status: 500, deviceId: "ada-nuc" });
    await waitFor("the ledger's day", async () => {
      const res = await platform.app.request("/v1/apps/shop/functions/cart/stats?range=day", { headers: ada.auth });
      report = FunctionStatsReport.parse(await res.json());
      return report.days.length === 1 && report.days[0]!.calls === 6;
    });
    expect(report!.points).toHaveLength(96);
    expect(report!.stepSeconds).toBe(900);
    expect(report!.days[0]!.cpuSeconds).toBeGreaterThan(0);
  });

  it("is another developer's missing function, refused to the operator, and validates its query", async () => {
    const other = await platform.app.request("/v1/apps/shop/functions/cart/stats", { headers: bob.auth });
    expect(other.status).toBe(404);
    expect(((await other.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "ERR_FUNCTION_NOT_FOUND", message: "no function shop/cart" });
    expect((await platform.app.request("/v1/apps/shop/functions/cart/stats", { headers: operator })).status).toBe(403);
    const bad = await platform.app.request("/v1/apps/shop/functions/cart/stats?range=week", { headers: ada.auth });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("ERR_BAD_REQUEST");
    expect((await platform.app.request("/v1/apps/shop/functions/cart/stats")).status).toBe(401);
  });

  it("names each serving device's region in the function's view", async () => {
    const view = (await (await platform.app.request("/v1/apps/shop/functions/cart", { headers: ada.auth })).json()) as { regions: Record<string, string> };
    expect(view.regions).toEqual({ "ada-nuc": "eu" });
  });
});

describe("operator and owner views", () => {
  it("shows the operator every device by region and state, functions without a device, and the ledger", async () => {
    await joinTestDevice(platform.devices, "cold-pi", { ownerId: "linus", region: "us" });
    await platform.app.request("/v1/apps/shop/functions/lonely?replicas=1", { method: "PUT", headers: ada.auth, body: "export default {}" });
    const res = await platform.app.request("/v1/console/operator", { headers: operator });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      devices: { deviceId: string; state: string; region: string; ownerId: string }[];
      withoutDevice: { app: string; fn: string }[];
      ledger: { metering: boolean; lag: number | null };
    };
    expect(body.devices).toEqual(expect.arrayContaining([
      expect.objectContaining({ deviceId: "ada-nuc", state: "serving", region: "eu", ownerId: "grace" }),
      expect.objectContaining({ deviceId: "cold-pi", state: "offline", region: "us", ownerId: "linus" }),
    ]));
    expect(body.ledger.metering).toBe(true);
    expect(typeof body.ledger.lag).toBe("number");
    expect((await platform.app.request("/v1/console/operator", { headers: ada.auth })).status).toBe(403);
  });

  it("signs an owner in with a device token and shows only their own devices and credits", async () => {
    const auth = { authorization: `Bearer ${device.joined.deviceToken}` };
    const me = WhoAmI.parse(await (await platform.app.request("/v1/whoami", { headers: auth })).json());
    expect(me).toEqual({ kind: "owner", ownerId: "grace", deviceId: "ada-nuc" });
    const second = await joinTestDevice(platform.devices, "grace-laptop", { ownerId: "grace", region: "eu" });
    const res = await platform.app.request("/v1/console/owner", { headers: { authorization: `Bearer ${second.deviceToken}` } });
    const body = (await res.json()) as { ownerId: string; devices: { deviceId: string; state: string }[]; credits: { deviceId: string; total: { calls: number } }[] };
    expect(body.ownerId).toBe("grace");
    expect(body.devices.map((d) => d.deviceId)).toEqual(["ada-nuc", "grace-laptop"]);
    expect(body.devices.find((d) => d.deviceId === "grace-laptop")!.state).toBe("offline");
    await waitFor("the owner's credits", async () => {
      const again = (await (await platform.app.request("/v1/console/owner", { headers: auth })).json()) as typeof body;
      return again.credits.find((c) => c.deviceId === "ada-nuc")!.total.calls >= 6;
    });
    // a device token reaches nothing else
    expect((await platform.app.request("/v1/functions", { headers: auth })).status).toBe(403);
    expect((await platform.app.request("/v1/console/operator", { headers: auth })).status).toBe(403);
    expect((await platform.app.request("/v1/console/owner", { headers: ada.auth })).status).toBe(403);
  });

  it("refuses a device token no device has, and a revoked device's", async () => {
    const unknown = await platform.app.request("/v1/whoami", { headers: { authorization: "Bearer hd_not-a-real-device-token" } });
    expect(unknown.status).toBe(401);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("ERR_TOKEN_UNKNOWN");
    const doomed = await joinTestDevice(platform.devices, "doomed", { ownerId: "grace" });
    expect((await platform.app.request("/v1/devices/doomed/revoke", { method: "POST", headers: operator })).status).toBe(200);
    const revoked = await platform.app.request("/v1/console/owner", { headers: { authorization: `Bearer ${doomed.deviceToken}` } });
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as { error: { code: string } }).error.code).toBe("ERR_TOKEN_REVOKED");
  });
});

describe("/metrics", () => {
  /** One sample's value from the Prometheus text, by its exact series (name and labels); 0 when absent. */
  const sample = (text: string, series: string) => {
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : 0;
  };
  const scrape = async () => {
    const res = await platform.app.request("/metrics", { headers: operator });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };

  it("is the operator's only: it names apps and functions", async () => {
    expect((await platform.app.request("/metrics")).status).toBe(401);
    const dev = await platform.app.request("/metrics", { headers: ada.auth });
    expect(dev.status).toBe(403);
    expect(((await dev.json()) as { error: { code: string } }).error.code).toBe("ERR_FORBIDDEN");
  });

  it("counts calls by app, function, status class and door, with wall-time and gateway-overhead histograms", async () => {
    const ok = 'hearth_calls_total{app="shop",fn="cart",status_class="2xx",door="path"}';
    const failed = 'hearth_calls_total{app="shop",fn="cart",status_class="5xx",door="path"}';
    const before = await scrape();
    for (let i = 0; i < 3; i++) expect((await platform.app.request("/fn/shop/cart/ok")).status).toBe(200);
    expect((await platform.app.request("/fn/shop/cart/fail")).status).toBe(500);
    const after = await scrape();
    expect(sample(after, ok) - sample(before, ok)).toBe(3);
    expect(sample(after, failed) - sample(before, failed)).toBe(1);
    const wallCount = 'hearth_call_wall_seconds_count{app="shop",fn="cart"}';
    expect(sample(after, wallCount) - sample(before, wallCount)).toBe(4);
    expect(sample(after, 'hearth_call_wall_seconds_bucket{le="+Inf",app="shop",fn="cart"}')).toBe(sample(after, wallCount));
    const overhead = 'hearth_gateway_overhead_seconds_count{door="path"}';
    expect(sample(after, overhead) - sample(before, overhead)).toBe(4);
    expect(sample(after, 'hearth_gateway_overhead_seconds_sum{door="path"}')).toBeGreaterThan(0);
  });

  it("reports devices by region and state, pending placements, usage, ledger lag and the fabric link", async () => {
    await waitFor("every usage record stored", () => platform.ledger.publisher!.backlog === 0);
    const text = await scrape();
    // a scrape's counters are as of that scrape, not the one before
    expect(sample(text, 'hearth_usage_records_total{result="stored"}')).toBe(platform.ledger.publisher!.stats.published);
    expect(sample(text, 'hearth_devices{region="eu",state="serving"}')).toBe(1);
    expect(sample(text, 'hearth_devices{region="us",state="offline"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'hearth_devices{region="local",state="revoked"}')).toBeGreaterThanOrEqual(1);
    // shop/lonely is placed on the one live device or pending; the scrape agrees with the API
    const lonely = (await (await platform.app.request("/v1/apps/shop/functions/lonely", { headers: ada.auth })).json()) as { status: string };
    expect(text).toMatch(/^hearth_placements_pending \d+$/m);
    if (lonely.status === "pending") expect(sample(text, "hearth_placements_pending")).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'hearth_usage_records_total{result="stored"}')).toBeGreaterThanOrEqual(10);
    expect(sample(text, "hearth_usage_backlog_records")).toBe(0);
    expect(text).toMatch(/^hearth_ledger_lag_records \d+$/m);
    expect(sample(text, "hearth_ledger_metering")).toBe(1);
    expect(sample(text, "hearth_fabric_connected")).toBe(1);
    expect(text).toContain("# TYPE hearth_fabric_reconnects_total counter");
    expect(text).toContain("hearth_platform_process_cpu_seconds_total");
  });
});
