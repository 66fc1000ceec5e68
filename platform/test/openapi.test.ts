/**
 * The OpenAPI document against the platform itself, in-process against a
 * real nats-server with JetStream and a joined fake device: every route the
 * platform serves is in it (and nothing else), and real answers — successes
 * and error envelopes — validate against the schemas it gives for their
 * route and status (ajv, JSON Schema 2020-12 as OpenAPI 3.1 has it).
 */
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { INVOKE_HEADERS } from "@hearth/protocol";
import { headers } from "@nats-io/transport-node";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FabricAuthority, FakeDevice, natsAuth, silentLogger, startPlatform, type Platform } from "../src/index.ts";
import { openApiPath } from "../src/openapi/index.ts";
import { createDeveloper, type TestDeveloper } from "./helpers.ts";

const TOKEN = "openapi-operator-token-0123456789";
const operator = { authorization: `Bearer ${TOKEN}` };
const json = { "content-type": "application/json" };
const PREFIX = "openapitest";
const authority = FabricAuthority.generate();

type Operation = { security: unknown[]; responses: Record<string, { content?: Record<string, { schema: Record<string, unknown> }> }> };
type Document = { openapi: string; paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown> } };

let nats: NatsServer;
let platform: Platform;
let device: FakeDevice;
let dev: TestDeveloper;
let doc: Document;
const ajv = new Ajv2020({ strict: false, allErrors: true });
/** Every (method, path, status) whose real answer a test validated. */
const validated = new Set<string>();

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: TOKEN, log: silentLogger(), subjectPrefix: PREFIX, redisPrefix: "openapitest:", ledger: "required", tickMs: 200 });
  dev = await createDeveloper(platform.app, TOKEN, "ada");
  device = await FakeDevice.start({
    url: nats.url, prefix: PREFIX, devices: platform.devices, deviceId: "oa-dev", ownerId: "grace",
    onInvoke: (msg) => {
      const h = headers();
      h.set(INVOKE_HEADERS.status, "200");
      h.set(INVOKE_HEADERS.device, "oa-dev");
      msg.respond(new TextEncoder().encode("ok"), { headers: h });
    },
  });
  const res = await platform.app.request("/openapi.json");
  expect(res.status).toBe(200);
  doc = (await res.json()) as Document;
});

afterAll(async () => {
  await device?.die();
  await platform?.close();
  await nats?.stop();
});

/** Validates a real answer against the document's schema for its route and status. */
async function conforms(method: string, template: string, res: Response): Promise<unknown> {
  const op = doc.paths[template]?.[method];
  expect(op, `${method} ${template} in the document`).toBeDefined();
  const answer = op!.responses[String(res.status)];
  expect(answer, `${method} ${template} documents status ${res.status}`).toBeDefined();
  validated.add(`${method} ${template} ${res.status}`);
  if (res.status === 204) return undefined;
  const type = res.headers.get("content-type") ?? "";
  const media = Object.entries(answer!.content ?? {}).find(([t]) => type.startsWith(t.split(";")[0]!) || t === "*/*");
  expect(media, `${method} ${template} ${res.status} documents ${type}`).toBeDefined();
  if (!type.startsWith("application/json")) return res.text();
  let schema = media![1].schema;
  const ref = schema["$ref"];
  if (typeof ref === "string") schema = doc.components.schemas[ref.split("/").pop()!] as Record<string, unknown>;
  const body = await res.json();
  const validate = ajv.compile(schema);
  expect(validate(body), `${method} ${template} ${res.status}: ${JSON.stringify(validate.errors)}\n${JSON.stringify(body)}`).toBe(true);
  return body;
}

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.1 with every route the platform serves, and no other", () => {
    expect(doc.openapi).toBe("3.1.0");
    const served = new Set<string>();
    for (const r of platform.app.routes) {
      if (r.path.startsWith("/console")) continue; // the console's pages (docs/console.md), not the API
      if (r.method === "ALL") {
        // the gateway's path form answers every method; other ALL entries are middleware
        if (r.path === "/fn/:app/:fn/*") for (const m of ["get", "post", "put", "patch", "delete", "head", "options"]) served.add(`${m} /fn/{app}/{fn}/{path}`);
        continue;
      }
      served.add(`${r.method.toLowerCase()} ${openApiPath(r.path)}`);
    }
    const documented = new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)));
    expect([...served].filter((r) => !documented.has(r))).toEqual([]);
    expect([...documented].filter((r) => !served.has(r))).toEqual([]);
  });

  it("says who may call each route, and that every error is the one envelope", () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        // health is anyone's; a join authenticates with the join token in its body; an app's doors are for its callers
        const open = path === "/v1/health" || path === "/v1/devices/join" || path === "/v1/apps/{app}/doors";
        if (path.startsWith("/v1/")) expect(op.security.length > 0, `${method} ${path}`).toBe(!open);
        const errors = Object.entries(op.responses).filter(([status]) => Number(status) >= 400);
        expect(errors.length).toBeGreaterThan(0);
        for (const [, e] of errors) expect(e.content?.["application/json"]?.schema).toEqual({ $ref: "#/components/schemas/ErrorEnvelope" });
      }
    }
  });

  it("describes what the developer routes really answer", async () => {
    const put = await platform.app.request("/v1/apps/shop/functions/cart?memoryMb=64", { method: "PUT", headers: dev.auth, body: "export default {}" });
    await conforms("put", "/v1/apps/{app}/functions/{fn}", put);
    await waitFor("shop/cart ready", async () => ((await (await platform.app.request("/v1/apps/shop/functions/cart", { headers: dev.auth })).json()) as { status: string }).status === "ready");
    const again = await platform.app.request("/v1/apps/shop/functions/cart", { method: "PUT", headers: dev.auth, body: "export default { v: 2 }" });
    await conforms("put", "/v1/apps/{app}/functions/{fn}", again);
    await conforms("get", "/v1/apps/{app}/functions/{fn}", await platform.app.request("/v1/apps/shop/functions/cart", { headers: dev.auth }));
    await conforms("get", "/v1/functions", await platform.app.request("/v1/functions", { headers: dev.auth }));
    await conforms("get", "/v1/apps/{app}/functions", await platform.app.request("/v1/apps/shop/functions", { headers: dev.auth }));
    await conforms("get", "/v1/apps/{app}/doors", await platform.app.request("/v1/apps/shop/doors?near=52.52,13.40"));
    await conforms("get", "/v1/apps/{app}/doors", await platform.app.request("/v1/apps/shop/doors?near=91,0"));
    const versions = (await conforms("get", "/v1/apps/{app}/functions/{fn}/versions", await platform.app.request("/v1/apps/shop/functions/cart/versions", { headers: dev.auth }))) as { versions: { version: string }[] };
    const rollback = await platform.app.request("/v1/apps/shop/functions/cart/rollback", { method: "POST", headers: { ...dev.auth, ...json }, body: JSON.stringify({ version: versions.versions[1]!.version }) });
    await conforms("post", "/v1/apps/{app}/functions/{fn}/rollback", rollback);
    await waitFor("shop/cart ready again", async () => ((await (await platform.app.request("/v1/apps/shop/functions/cart", { headers: dev.auth })).json()) as { status: string }).status === "ready");
    await conforms("get", "/fn/{app}/{fn}/{path}", await platform.app.request("/fn/shop/cart/x"));
    await waitFor("the call in the stats", async () => {
      const stats = (await (await platform.app.request("/v1/apps/shop/functions/cart/stats", { headers: dev.auth })).json()) as { totals: { calls: number } };
      return stats.totals.calls === 1;
    });
    await conforms("get", "/v1/apps/{app}/functions/{fn}/stats", await platform.app.request("/v1/apps/shop/functions/cart/stats?range=day", { headers: dev.auth }));
    await conforms("get", "/v1/usage", await platform.app.request("/v1/usage", { headers: dev.auth }));
    await conforms("get", "/v1/apps/{app}/functions/{fn}/logs", await platform.app.request("/v1/apps/shop/functions/cart/logs?since=1h", { headers: dev.auth }));
    await conforms("get", "/v1/whoami", await platform.app.request("/v1/whoami", { headers: dev.auth }));
    await conforms("get", "/v1/health", await platform.app.request("/v1/health"));
  });

  it("describes what the operator and device routes really answer", async () => {
    await conforms("get", "/v1/whoami", await platform.app.request("/v1/whoami", { headers: operator }));
    await conforms("get", "/v1/devices", await platform.app.request("/v1/devices", { headers: operator }));
    await conforms("get", "/v1/developers", await platform.app.request("/v1/developers", { headers: operator }));
    const made = await platform.app.request("/v1/developers", { method: "POST", headers: { ...operator, ...json }, body: JSON.stringify({ name: "bob" }) });
    const bob = (await conforms("post", "/v1/developers", made)) as { developer: { id: string } };
    const token = (await conforms("post", "/v1/developers/{id}/tokens", await platform.app.request(`/v1/developers/${bob.developer.id}/tokens`, { method: "POST", headers: { ...operator, ...json }, body: "{}" }))) as { id: string };
    await conforms("get", "/v1/developers/{id}/tokens", await platform.app.request(`/v1/developers/${bob.developer.id}/tokens`, { headers: operator }));
    await conforms("delete", "/v1/developers/{id}/tokens/{tokenId}", await platform.app.request(`/v1/developers/${bob.developer.id}/tokens/${token.id}`, { method: "DELETE", headers: operator }));
    await conforms("put", "/v1/apps/{app}/owner", await platform.app.request("/v1/apps/spare/owner", { method: "PUT", headers: { ...operator, ...json }, body: JSON.stringify({ developerId: bob.developer.id }) }));
    const joinToken = await platform.app.request("/v1/join-tokens", { method: "POST", headers: { ...operator, ...json }, body: JSON.stringify({ ownerId: "grace" }) });
    await conforms("post", "/v1/join-tokens", joinToken);
    await waitFor("the ledger caught up", async () => (await platform.ledger.consumer!.lag()) === 0);
    await conforms("post", "/v1/ledger/reconcile", await platform.app.request("/v1/ledger/reconcile", { method: "POST", headers: operator }));
    await conforms("post", "/v1/ledger/reconcile", await platform.app.request("/v1/ledger/reconcile?repair=1", { method: "POST", headers: operator }));
    await conforms("get", "/v1/console/operator", await platform.app.request("/v1/console/operator", { headers: operator }));
    const deviceAuth = { authorization: `Bearer ${device.joined.deviceToken}` };
    await conforms("get", "/v1/whoami", await platform.app.request("/v1/whoami", { headers: deviceAuth }));
    await conforms("get", "/v1/console/owner", await platform.app.request("/v1/console/owner", { headers: deviceAuth }));
    await conforms("get", "/v1/devices/{id}/credits", await platform.app.request("/v1/devices/oa-dev/credits", { headers: deviceAuth }));
    await conforms("post", "/v1/devices/{id}/credentials", await platform.app.request("/v1/devices/oa-dev/credentials", { method: "POST", headers: deviceAuth }));
    await conforms("get", "/metrics", await platform.app.request("/metrics", { headers: operator }));
  });

  it("describes the error envelopes real failures answer", async () => {
    await conforms("get", "/v1/functions", await platform.app.request("/v1/functions"));
    await conforms("get", "/v1/functions", await platform.app.request("/v1/functions", { headers: operator }));
    await conforms("get", "/v1/apps/{app}/functions/{fn}", await platform.app.request("/v1/apps/shop/functions/nope", { headers: dev.auth }));
    await conforms("get", "/v1/apps/{app}/functions/{fn}/stats", await platform.app.request("/v1/apps/shop/functions/cart/stats?range=year", { headers: dev.auth }));
    await conforms("post", "/v1/devices/join", await platform.app.request("/v1/devices/join", { method: "POST", headers: json, body: "{}" }));
    await conforms("post", "/v1/devices/join", await platform.app.request("/v1/devices/join", { method: "POST", headers: json, body: JSON.stringify({ token: "hj_nope", deviceId: "x", publicKey: `U${"A".repeat(55)}` }) }));
    await conforms("get", "/fn/{app}/{fn}/{path}", await platform.app.request("/fn/shop/missing/x"));
    await conforms("get", "/metrics", await platform.app.request("/metrics", { headers: dev.auth }));
    // about three dozen route-and-status pairs checked against real answers
    expect(validated.size).toBeGreaterThanOrEqual(30);
  });
});
