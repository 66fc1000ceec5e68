/**
 * Device credentials over their life, with real processes: an operator
 * revokes a device (its agent is off the fabric within seconds, cannot
 * connect again, stops with a clear message, and its functions are served
 * by another device); a running agent renews its credential before it
 * expires and keeps serving, without a restart and without a failed call.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run, startLocalHearth, waitFor, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import { decode, parseCreds } from "@nats-io/jwt";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";

const PLATFORM_BIN = fileURLToPath(new URL("../../platform/bin/hearth-platform.js", import.meta.url));
const CODE = "export default { fetch: () => new Response('ok') }";

describe("revoking a device", () => {
  let hearth: LocalHearth;
  afterAll(async () => {
    await hearth?.stop();
  });

  it("takes it off the fabric within 10 s for good, and its functions are served by another device", async () => {
    hearth = await startLocalHearth({ logLevel: "info", devices: [{ deviceId: "rv-victim", ownerId: "mallory" }, { deviceId: "rv-other", ownerId: "olive" }] });
    const client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
    await client.deploy({ app: "rv", name: "fn", code: CODE, replicas: 2 });
    await waitFor("placed on both devices", async () => (await client.get("rv", "fn")).devices.length === 2, { timeoutMs: 20_000 });
    const victim = hearth.devices.get("rv-victim")!.server.process;
    const exited = new Promise<number | null>((r) => victim.once("exit", (code) => r(code)));

    const revoked = await run(process.execPath, [PLATFORM_BIN, "devices", "revoke", "rv-victim", "--url", hearth.url], { env: { ...process.env, HEARTH_TOKEN: hearth.token } });
    expect(revoked.stderr).toBe("");
    expect(revoked.stdout).toMatch(/^Device rv-victim revoked at /);
    const at = Date.now();

    // off the fabric: the agent learns it, says so, and stops
    expect(await exited).toBe(3);
    expect(Date.now() - at).toBeLessThan(10_000);
    expect(hearth.devices.get("rv-victim")!.server.output()).toMatch(/revoked/);
    // its functions: placed elsewhere, every call answered by the other device
    await waitFor("rv-victim out of the placement", async () => !(await client.get("rv", "fn")).devices.includes("rv-victim"), { timeoutMs: 10_000 });
    for (let i = 0; i < 10; i++) {
      const res = await client.invoke("rv", "fn");
      expect(res.status).toBe(200);
      expect(res.headers.get("x-hearth-device")).toBe("rv-other");
    }
    // and its credential opens nothing any more
    const creds = readFileSync(join(hearth.dataDirOf("rv-victim"), "fabric.creds"));
    await expect(connect({ servers: hearth.nats.url, authenticator: credsAuthenticator(creds), reconnect: false })).rejects.toThrow(/Authorization|Revoked/i);
    // nor can it get a new one, or join again under the same id
    const identity = JSON.parse(readFileSync(join(hearth.dataDirOf("rv-victim"), "identity.json"), "utf8")) as { deviceToken: string };
    const renew = await fetch(`${hearth.url}/v1/devices/rv-victim/credentials`, { method: "POST", headers: { authorization: `Bearer ${identity.deviceToken}` } });
    expect(renew.status).toBe(403);
    expect(((await renew.json()) as { error: { code: string } }).error.code).toBe("ERR_DEVICE_REVOKED");
    // the device list says so
    const unknown = await run(process.execPath, [PLATFORM_BIN, "devices", "revoke", "rv-nobody", "--url", hearth.url], { env: { ...process.env, HEARTH_TOKEN: hearth.token } });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no device rv-nobody has joined/);
  }, 60_000);
});

describe("renewing a credential", () => {
  let hearth: LocalHearth;
  afterAll(async () => {
    await hearth?.stop();
  });

  it("a running agent renews before expiry and serves on past the first credential's end, with no failed call", async () => {
    hearth = await startLocalHearth({ logLevel: "info", credentialTtlSeconds: 10, devices: [{ deviceId: "rn-dev" }] });
    const client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
    await client.deploy({ app: "rn", name: "fn", code: CODE, replicas: 1 });
    await client.waitUntilReady("rn", "fn", { timeoutMs: 20_000 });
    // a function that says each time it runs: while the agent moves to its renewed connection, both connections
    // hear the device's subjects, and a call must still run once
    await client.deploy({ app: "rn", name: "once", code: `export default { fetch(r) { console.log("ran " + r.headers.get("x-request-id")); return new Response("ok") } }`, replicas: 1 });
    await client.waitUntilReady("rn", "once", { timeoutMs: 20_000 });
    const credsFile = join(hearth.dataDirOf("rn-dev"), "fabric.creds");
    const first = decode((await parseCreds(readFileSync(credsFile))).jwt);
    // exp is set from the clock before the JWT is encoded, iat by the encoder after: a second boundary may fall between
    expect(first.exp! - first.iat).toBeGreaterThanOrEqual(9);
    expect(first.exp! - first.iat).toBeLessThanOrEqual(10);

    // calls all along, until well past the first credential's expiry
    const statuses: number[] = [];
    let n = 0;
    while (Date.now() / 1000 < first.exp! + 4) {
      const res = await client.invoke("rn", "fn");
      statuses.push(res.status);
      await res.arrayBuffer();
      // (at most as many as one read of the logs returns)
      if (n < 900) {
        const once = await client.invoke("rn", "once", "/", { headers: { "x-request-id": `once-${++n}` } });
        statuses.push(once.status);
        await once.arrayBuffer();
      }
    }
    expect(statuses.length).toBeGreaterThan(20);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const ran = async () => (await client.logs("rn", "once", { since: "10m", limit: 1000 })).map((l) => l.message);
    await waitFor("every call's line", async () => (await ran()).length >= n, { timeoutMs: 10_000 });
    const lines = await ran();
    expect(new Set(lines).size).toBe(n);
    expect(lines.length).toBe(n);
    const now = decode((await parseCreds(readFileSync(credsFile))).jwt);
    expect(now.iat).toBeGreaterThan(first.iat);
    expect(now.exp! * 1000).toBeGreaterThan(Date.now());
    const output = hearth.devices.get("rn-dev")!.server.output();
    expect(output).toMatch(/fabric credential renewed/);
    expect(output).toMatch(/moved to a connection with the renewed fabric credential/);
    expect(hearth.devices.get("rn-dev")!.server.process.exitCode).toBeNull();
  }, 60_000);
});
