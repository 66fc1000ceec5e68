/**
 * The web console in a real headless browser: playwright-core driving
 * Debian's Chromium (scripts/bootstrap.mjs --with-browser installs it)
 * against a local Hearth of real processes (nats-server with JetStream, the
 * platform, an agent running examples/hello). A bad token gets the 401
 * page; the developer signs in, sees the demo function with a chart that is
 * not empty after calls, follows its logs and sees a new line appear after
 * a call (a control character in it shown escaped), filters them by request
 * id, and rolls back a version; the operator sees the fleet; a device owner
 * signs in with the device's token. No page logs an error or a CSP
 * violation. A screenshot of each page goes to test/artifacts/console/.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLocalHearth, type LocalHearth } from "@hearth/devkit";
import { bundleFunction, HearthClient } from "@hearth/sdk";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ARTIFACTS = join(ROOT, "test/artifacts/console");
const CHROMIUM = process.env["HEARTH_CHROMIUM"] ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const APP = "demo";
const FN = "hello";

let hearth: LocalHearth;
let client: HearthClient;
let browser: Browser;
let page: Page;
let v1 = "";
let v2 = "";
/** Errors the pages wrote to their console (a CSP or Trusted Types violation lands here too). */
const pageErrors: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function signIn(token: string): Promise<void> {
  await page.goto(`${hearth.url}/console/#/signin`);
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

const call = (name: string, init?: RequestInit) => fetch(`${hearth.url}/fn/${APP}/${FN}/greet?name=${encodeURIComponent(name)}`, init);

// its browser waits (Playwright's own 30 s, polls of 15-20 s) add up to more than vitest's default per test
describe.skipIf(!CHROMIUM)("the console in Chromium", { timeout: 120_000 }, () => {
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    hearth = await startLocalHearth({ devices: [{ deviceId: "berlin-nuc", ownerId: "ada", region: "eu", location: "berlin:52.52,13.40" }] });
    client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
    const code = await bundleFunction(join(ROOT, "examples/hello/src/index.ts"));
    v1 = (await client.deploy({ app: APP, name: FN, code })).version;
    v2 = (await client.deploy({ app: APP, name: FN, code: `${code}\n// version two\n` })).version;
    await client.waitUntilReady(APP, FN, { timeoutMs: 60_000 });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(m.text());
    });
    page.on("pageerror", (e) => pageErrors.push(e.message));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await hearth?.stop();
  });

  it("answers a bad token with the 401 page", async () => {
    await signIn("hth_0123456789abcdef_not-a-real-secret");
    const card = page.locator("[data-page='401']");
    await card.waitFor();
    expect(await card.textContent()).toContain("ERR_TOKEN_UNKNOWN");
    expect(await page.title()).toContain("401");
    await shot("401");
    // the browser reports the refused request itself; not an error of the console's
    for (let i = pageErrors.length - 1; i >= 0; i--) if (/status of 401/.test(pageErrors[i]!)) pageErrors.splice(i, 1);
  });

  it("shows the developer the demo function with a chart that is not empty after calls", async () => {
    for (let i = 0; i < 5; i++) expect((await call(`Ada${i}`)).status).toBe(200);
    await signIn(hearth.developerToken);
    const link = page.getByRole("link", { name: FN, exact: true });
    await link.waitFor();
    const row = page.locator("tr", { has: link });
    await expect.poll(async () => row.locator(".badge").textContent(), { timeout: 20_000 }).toBe("ready");
    expect(await row.textContent()).toContain("berlin-nuc (eu)");
    await shot("functions");

    await link.click();
    await page.locator("#fn-title").waitFor();
    // the charts poll every 5 s; the ledger folds the calls within moments
    await page.waitForFunction(() => Number(document.querySelector<SVGElement>("figure.chart-box svg")?.dataset["total"] ?? 0) >= 5, undefined, { timeout: 30_000 });
    expect(await page.locator("figure.chart-box svg rect").count()).toBeGreaterThan(0);
    expect(await page.locator("figure.chart-box").nth(1).locator("circle").count()).toBeGreaterThan(0);
    // the usage table says which door the calls came in by (all at the gateway here)
    await expect.poll(async () => page.locator("table tr", { hasText: /\d{4}-\d{2}-\d{2}/ }).filter({ hasText: "gateway" }).count(), { timeout: 20_000 }).toBeGreaterThan(0);
  });

  it("follows the logs: a call's line appears, its control characters shown escaped", async () => {
    await page.locator("[data-follow-state='following']").waitFor({ timeout: 15_000 });
    expect((await call("\u001b[31mZed")).status).toBe(200);
    const line = page.locator("ol.log li", { hasText: "Zed" });
    await line.waitFor({ timeout: 15_000 });
    const text = (await line.textContent())!;
    expect(text).toContain("greeting \\u001b[31mZed");
    expect(text).not.toContain("\u001b");
    await shot("function");
  });

  it("filters the logs by request id", async () => {
    const res = await call("Filtered", { headers: { "x-request-id": "console-browser-filter-1" } });
    expect(res.status).toBe(200);
    await page.getByLabel("Request id").fill("console-browser-filter-1");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator("ol.log li", { hasText: "greeting Filtered" }).waitFor({ timeout: 15_000 });
    const ids = await page.locator("ol.log li .rid").allTextContents();
    expect(ids.length).toBeGreaterThan(0);
    expect(new Set(ids)).toEqual(new Set(["console-browser-filter-1"]));
  });

  it("rolls back to the older version", async () => {
    expect(await page.locator("[data-version]").getAttribute("data-version")).toBe(v2);
    await page.locator(`[data-rollback='${v1}']`).click();
    await page.locator(".notice", { hasText: "Rolled back" }).waitFor();
    await expect.poll(async () => page.locator("[data-version]").getAttribute("data-version"), { timeout: 15_000 }).toBe(v1);
    expect((await client.get(APP, FN)).version).toBe(v1);
    await page.locator(`[data-rollback='${v2}']`).waitFor();
    await shot("function-rolled-back");
  });

  it("reads on a phone-sized screen", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await page.locator("#fn-title").waitFor();
    // nothing wider than the screen but the tables and log, which scroll in their own boxes
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(1);
    await shot("function-phone");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("shows the operator the fleet and the ledger", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(hearth.token);
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    const row = page.locator("tr", { hasText: "berlin-nuc" });
    await row.waitFor();
    expect(await row.textContent()).toContain("serving");
    await page.getByRole("button", { name: "Reconcile now" }).click();
    await page.locator("[data-reconcile='exact']").waitFor({ timeout: 30_000 });
    await shot("operator");
  });

  it("signs a device owner in with the device's token", async () => {
    const identity = JSON.parse(readFileSync(join(hearth.dataDirOf("berlin-nuc"), "identity.json"), "utf8")) as { deviceToken: string };
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(identity.deviceToken);
    await page.getByRole("heading", { name: "Devices of owner ada" }).waitFor();
    expect(await page.locator("tr", { hasText: "berlin-nuc" }).textContent()).toContain("serving");
    await page.waitForFunction(() => Number(document.querySelector<SVGElement>("figure.chart-box svg")?.dataset["total"] ?? 0) > 0, undefined, { timeout: 15_000 });
    await shot("owner");
  });

  it("shows the 401 page once the signed-in token is revoked", async () => {
    const operator = { authorization: `Bearer ${hearth.token}`, "content-type": "application/json" };
    const made = await fetch(`${hearth.url}/v1/developers/${hearth.developerId}/tokens`, { method: "POST", headers: operator, body: JSON.stringify({ name: "browser" }) });
    expect(made.status).toBe(201);
    const token = (await made.json()) as { id: string; value: string };
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(token.value);
    await page.getByRole("link", { name: FN, exact: true }).waitFor();
    expect((await fetch(`${hearth.url}/v1/developers/${hearth.developerId}/tokens/${token.id}`, { method: "DELETE", headers: operator })).status).toBe(204);
    // the page refreshes every 5 s; the next refresh is refused
    const card = page.locator("[data-page='401']");
    await card.waitFor({ timeout: 20_000 });
    expect(await card.textContent()).toContain("ERR_TOKEN_REVOKED");
    // the browser reports the refused request itself; not an error of the console's
    for (let i = pageErrors.length - 1; i >= 0; i--) if (/status of 401/.test(pageErrors[i]!)) pageErrors.splice(i, 1);
  });

  it("wrote no error and no CSP violation to any page's console", () => {
    expect(pageErrors).toEqual([]);
  });
});
