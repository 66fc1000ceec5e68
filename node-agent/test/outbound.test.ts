/**
 * Outbound fetch from functions: off unless allowed, never to private or
 * local addresses (checked after DNS and on every redirect), capped in size
 * and time. A local HTTP server on 127.0.0.1 stands in for the internet; the
 * policy's test-only `allowAddresses` lets exactly that address through.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { networkInterfaces } from "node:os";
import { callSettings } from "../src/agent/index.ts";
import { configFromEnv, parseAgentConfig } from "../src/config/index.ts";
import { addressAllowed, isPublicAddress, outboundFetch, OwnNetworks, type OutboundPolicy } from "../src/sandbox/outbound.ts";
import type { SandboxPool } from "../src/sandbox/supervisor.ts";
import { call, json, jsonFunction, startPool, text, uniqueKey } from "./helpers.ts";

let pool: SandboxPool;
let server: Server;
let origin: string;
let port: number;

beforeAll(async () => {
  pool = await startPool();
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    switch (url.pathname) {
      case "/hello": {
        let body = "";
        req.on("data", (c: Buffer) => (body += c.toString()));
        req.on("end", () => {
          res.writeHead(201, { "content-type": "application/json", "x-seen-ua": req.headers["user-agent"] ?? "" });
          res.end(JSON.stringify({ method: req.method, body, custom: req.headers["x-custom"] ?? null, host: req.headers.host }));
        });
        return;
      }
      case "/redirect":
        res.writeHead(302, { location: url.searchParams.get("to") ?? "/hello" });
        return res.end();
      case "/big":
        res.writeHead(200, { "content-type": "application/octet-stream" });
        return res.end(Buffer.alloc(2 * 1024 * 1024, 1));
      case "/gzip":
        res.writeHead(200, { "content-type": "text/plain", "content-encoding": "gzip" });
        return res.end(gzipSync("unzipped text"));
      case "/hang":
        return; // never answers
      case "/trickle": {
        // headers one byte at a time, each just inside a socket idle timeout: only a total deadline stops it
        const socket = req.socket;
        const head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-slow: " + "a".repeat(200) + "\r\n\r\nbody";
        let i = 0;
        const drip = setInterval(() => {
          if (socket.destroyed || i >= head.length) return clearInterval(drip);
          socket.write(head[i++]!);
        }, 20);
        return;
      }
      default:
        res.writeHead(404);
        res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  origin = `http://127.0.0.1:${port}`;
  // the test server's port is not 80/443: the policies that reach it name it (as function and owner both would)
  Object.assign(LOCAL_TEST, { ports: [port] });
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await pool?.[Symbol.asyncDispose]();
});

const LOCAL_TEST: OutboundPolicy = { allow: true, allowAddresses: ["127.0.0.1"] };

/** Runs `fetch(url, init)` in a function and reports what it saw, or the error it got. */
async function fetchFrom(url: string, outbound: OutboundPolicy | undefined, init = "{}") {
  return json(
    await call(
      pool,
      uniqueKey("out"),
      jsonFunction(`
        try {
          const res = await fetch(${JSON.stringify(url)}, ${init});
          return { status: res.status, url: res.url, redirected: res.redirected, type: res.headers.get("content-type"), ua: res.headers.get("x-seen-ua"), body: await res.text() };
        } catch (e) { return { error: e.name + ": " + e.message }; }
      `),
      { settings: outbound ? { outbound } : undefined, limits: { wallMs: 5_000 } },
    ),
  ) as { status?: number; url?: string; redirected?: boolean; type?: string; ua?: string; body?: string; error?: string };
}

describe("address checks", () => {
  it("refuses loopback, private, link-local, CGNAT, metadata, multicast and mapped forms; allows public ones", () => {
    for (const address of [
      "127.0.0.1", "127.1.2.3", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
      "0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "::1", "fe80::1", "fc00::1", "fd00:ec2::254", "::ffff:127.0.0.1",
      "::ffff:10.0.0.1", "::ffff:7f00:1", "0:0:0:0:0:ffff:a9fe:a9fe", "64:ff9b::a00:1", "2002:a00:1::1", "ff02::1", "not-an-ip",
      // IPv4-compatible (deprecated) and IPv4-translated forms
      "::127.0.0.1", "::7f00:1", "::169.254.169.254", "::10.0.0.1", "::8.8.8.8", "::ffff:0:127.0.0.1", "::ffff:0:7f00:1",
      "0:0:0:0:ffff:0:a9fe:a9fe", "::ffff:0:10.0.0.1",
    ]) {
      expect([address, isPublicAddress(address)]).toEqual([address, false]);
    }
    for (const address of ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8"]) {
      expect([address, isPublicAddress(address)]).toEqual([address, true]);
    }
  });
});

describe("the device's own networks", () => {
  // a home LAN with a global IPv6 prefix and a public IPv4 address on the device: public by range, the owner's all the same
  const home = new OwnNetworks({
    eth0: [
      { address: "2001:470:1f0b:42::5", netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "02:00:00:00:00:01", internal: false, cidr: "2001:470:1f0b:42::5/64", scopeid: 0 },
      { address: "81.2.69.160", netmask: "255.255.255.0", family: "IPv4", mac: "02:00:00:00:00:01", internal: false, cidr: "81.2.69.160/24" },
    ],
  });

  it("refuses the device's own addresses and every address of their on-link prefixes, mapped forms included", () => {
    for (const address of ["2001:470:1f0b:42::5", "2001:470:1f0b:42::1", "2001:470:1f0b:42:ffff:ffff:ffff:ffff", "81.2.69.160", "81.2.69.1", "::ffff:81.2.69.7"]) {
      expect([address, isPublicAddress(address), addressAllowed(address, {}, home)]).toEqual([address, true, false]);
    }
    for (const address of ["2001:470:1f0b:43::1", "2606:4700:4700::1111", "81.2.70.1", "8.8.8.8"]) {
      expect([address, addressAllowed(address, {}, home)]).toEqual([address, true]);
    }
    // the owner's exceptions are exact addresses
    expect(addressAllowed("2001:470:1f0b:42::1", { allowAddresses: ["2001:470:1f0b:42::1"] }, home)).toBe(true);
    expect(addressAllowed("2001:470:1f0b:42::2", { allowAddresses: ["2001:470:1f0b:42::1"] }, home)).toBe(false);
  });

  it("a fetch to an address on them is refused before anything connects", async () => {
    const out = await outboundFetch({ method: "GET", url: "http://[2001:470:1f0b:42::9]:8080/router-admin", headers: [], body: null, redirect: "follow" }, { allow: true, ports: [8080] }, home);
    expect(out).toEqual({ error: expect.stringMatching(/on this device's own networks/) });
  });

  it("a function cannot reach a server on any of this machine's own addresses", async () => {
    const own = Object.values(networkInterfaces()).flatMap((list) => list ?? []).filter((i) => !i.internal && !i.address.startsWith("fe80:"));
    const networks = new OwnNetworks(networkInterfaces());
    for (const info of own) {
      // each own address is refused as one of the device's own, whatever its range (global IPv6 where the machine has one)
      expect([info.address, networks.has(info.address)]).toEqual([info.address, true]);
      const listener = createServer((_, res) => res.end("the owner's service"));
      const bound = await new Promise<boolean>((resolve) => {
        listener.once("error", () => resolve(false));
        listener.listen(0, info.address, () => resolve(true));
      });
      if (!bound) continue;
      try {
        const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
        const out = await fetchFrom(`http://${host}:${(listener.address() as AddressInfo).port}/`, { allow: true, timeoutMs: 2_000, ports: [(listener.address() as AddressInfo).port] });
        expect([info.address, out.error]).toEqual([info.address, expect.stringMatching(/^TypeError: fetch failed: .*(reserved address|own networks)/)]);
      } finally {
        await new Promise((resolve) => listener.close(resolve));
      }
    }
  });
});

describe("ports", () => {
  it("only 80 and 443 unless the policy names the port: a server on another port is refused, redirects included", async () => {
    const owner = { allow: true, allowAddresses: ["127.0.0.1"] };
    expect((await fetchFrom(`${origin}/hello`, owner)).error).toMatch(/TypeError: .*port \d+ is refused: only 80 and 443/);
    expect((await fetchFrom(`${origin}/hello`, { ...owner, ports: [port + 1 > 65_535 ? 1 : port + 1] })).error).toMatch(/port \d+ is refused/);
    expect((await fetchFrom(`${origin}/hello`, { ...owner, ports: [port] })).status).toBe(201);
    // a redirect to another port of an allowed address is checked too
    const bounce = `http://127.0.0.1:${port === 9 ? 10 : 9}/`;
    expect((await fetchFrom(`${origin}/redirect?to=${encodeURIComponent(bounce)}`, { ...owner, ports: [port] })).error).toMatch(/port \d+ is refused/);
  });

  it("the agent passes on only the ports both the function's policy and the owner's outboundAllowPorts allow", () => {
    const settings = callSettings({ outbound: { allow: true, ports: [8080, 9000, 5432] } }, [], [9000, 5432, 22]);
    expect(settings.outbound?.ports).toEqual([9000, 5432]);
    expect(callSettings({ outbound: { allow: true, ports: [8080] } }, [], []).outbound).toEqual({ allow: true });
    expect(callSettings({ outbound: { allow: true } }, [], [8080]).outbound).toEqual({ allow: true });
    expect(callSettings({ compatibilityFlags: ["nodejs_compat"] }, [], [])).toEqual({ nodejsCompat: true });
  });

  it("the owner's outboundAllowPorts is read from the environment, checked", () => {
    expect(parseAgentConfig({ natsUrl: "nats://127.0.0.1:4222", deviceId: "d1", outboundAllowPorts: "8080, 5432" }).outboundAllowPorts).toEqual([8080, 5432]);
    expect(configFromEnv({ HEARTH_OUTBOUND_ALLOW_PORTS: "8080" })).toEqual({ outboundAllowPorts: "8080" });
    expect(() => parseAgentConfig({ natsUrl: "nats://127.0.0.1:4222", deviceId: "d1", outboundAllowPorts: "http" })).toThrow(/outboundAllowPorts/);
  });
});

describe("fetch from a function", () => {
  it("is refused unless the function is allowed it", async () => {
    expect((await fetchFrom(`${origin}/hello`, undefined)).error).toMatch(/TypeError: outbound fetch is not allowed/);
    expect((await fetchFrom(`${origin}/hello`, { allow: false })).error).toMatch(/not allowed/);
  });

  it("goes through the host when allowed: method, headers and body out, status, headers and body back", async () => {
    const out = await fetchFrom(`${origin}/hello`, LOCAL_TEST, `{ method: "POST", body: "ping", headers: { "x-custom": "1", host: "evil.example" } }`);
    expect(out.status).toBe(201);
    expect(out.type).toBe("application/json");
    expect(out.ua).toMatch(/^Hearth/);
    expect(JSON.parse(out.body!)).toEqual({ method: "POST", body: "ping", custom: "1", host: `127.0.0.1:${port}` });
  });

  it("refuses loopback and private addresses, by IP literal and after DNS", async () => {
    for (const url of [`${origin}/hello`, `http://localhost:${port}/hello`, `http://[::1]:${port}/`, "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/"]) {
      const out = await fetchFrom(url, { allow: true, timeoutMs: 2_000, ports: [port] });
      expect([url, out.error]).toEqual([url, expect.stringMatching(/private, loopback, link-local or reserved/)]);
    }
  });

  it("checks every redirect hop: a public-looking start cannot bounce into the private network", async () => {
    for (const to of ["http://169.254.169.254/latest/meta-data/", `http://[::1]:${port}/hello`, "http://192.168.0.1/admin"]) {
      const out = await fetchFrom(`${origin}/redirect?to=${encodeURIComponent(to)}`, LOCAL_TEST);
      expect([to, out.error]).toEqual([to, expect.stringMatching(/private, loopback, link-local or reserved/)]);
    }
    const followed = await fetchFrom(`${origin}/redirect?to=/hello`, LOCAL_TEST);
    expect([followed.status, followed.redirected, followed.url]).toEqual([201, true, `${origin}/hello`]);
    const manual = await fetchFrom(`${origin}/redirect?to=/hello`, LOCAL_TEST, `{ redirect: "manual" }`);
    expect(manual.status).toBe(302);
    const refused = await fetchFrom(`${origin}/redirect?to=/hello`, LOCAL_TEST, `{ redirect: "error" }`);
    expect(refused.error).toMatch(/redirect/);
  });

  it("only reaches the allowed hosts, and only http(s)", async () => {
    expect((await fetchFrom(`${origin}/hello`, { ...LOCAL_TEST, hosts: ["api.example.com"] })).error).toMatch(/not among this function's allowed hosts/);
    expect((await fetchFrom("file:///etc/passwd", LOCAL_TEST)).error).toMatch(/only http and https/);
  });

  it("caps the response size and the time, and decompresses", async () => {
    expect((await fetchFrom(`${origin}/big`, { ...LOCAL_TEST, maxResponseBytes: 1024 * 1024 })).error).toMatch(/over 1048576 bytes/);
    expect((await fetchFrom(`${origin}/hang`, { ...LOCAL_TEST, timeoutMs: 200 })).error).toMatch(/timed out/);
    // a server that trickles its headers a byte at a time still hits the total time cap
    const started = Date.now();
    expect((await fetchFrom(`${origin}/trickle`, { ...LOCAL_TEST, timeoutMs: 300 })).error).toMatch(/timed out/);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await fetchFrom(`${origin}/gzip`, LOCAL_TEST)).body).toBe("unzipped text");
  });

  it("refuses a header HTTP does not allow as the function's error, and leaves nothing armed behind it", async () => {
    // Node's own client would throw on these when the request is made; the host must never be left with a timer
    // that fires later on a request that was never made (that took the whole agent down)
    const result = json(
      await call(
        pool,
        uniqueKey("badheader"),
        jsonFunction(`
          const out = [];
          for (const value of ["\\u0100", "a\\x01b"]) {
            try { await fetch(${JSON.stringify(`${origin}/hello`)}, { headers: { "x-bad": value } }); out.push("sent"); }
            catch (e) { out.push(e.name + ": " + e.message); }
          }
          return out;
        `),
        { settings: { outbound: { ...LOCAL_TEST, timeoutMs: 300 } }, limits: { wallMs: 2_000 } },
      ),
    ) as string[];
    expect(result).toHaveLength(2);
    for (const line of result) expect(line).toMatch(/^TypeError: .*(not allow|Invalid|invalid)/);
    // past the fetch's deadline: a timer left armed would have thrown in this process by now
    await new Promise((r) => setTimeout(r, 700));
    expect(text(await call(pool, uniqueKey("after"), `export default { fetch() { return new Response("still here"); } }`))).toBe("still here");
  });

  it("can be aborted by the function", async () => {
    const out = await fetchFrom(`${origin}/hang`, LOCAL_TEST, `{ signal: AbortSignal.timeout(50) }`);
    expect(out.error).toMatch(/^TimeoutError/);
  });
});
