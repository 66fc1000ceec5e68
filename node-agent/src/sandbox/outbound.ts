/**
 * Outbound `fetch` of functions, made by the supervisor (never by a sandbox
 * process) under the function's policy: off unless allowed, http(s) only,
 * optionally a list of hosts, and never to the device's own networks (its
 * addresses and their on-link prefixes, IPv4 and IPv6), loopback, private, link-local,
 * carrier-grade NAT, multicast or metadata addresses. The address check runs
 * on what DNS answered, right where the socket connects (so a name cannot
 * resolve one way for the check and another for the connection), and again
 * on every redirect hop. Bodies and time are capped.
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import http from "node:http";
import https from "node:https";
import { isPublicAddress, unmappedAddress as unmapped } from "@hearth/edge";
import { BlockList, isIP } from "node:net";
import { networkInterfaces, type NetworkInterfaceInfo } from "node:os";
import zlib from "node:zlib";
import type { OutboundRequest, OutboundResponse } from "./messages.ts";

export interface OutboundPolicy {
  /** Outbound fetch is off unless this is true. */
  allow: boolean;
  /** If given, only these hosts (exact, or `*.example.com` for subdomains). */
  hosts?: readonly string[];
  /** Largest response body accepted (after decompression). Default 4 MiB. */
  maxResponseBytes?: number;
  /** Largest request body sent. Default 1 MiB. */
  maxRequestBytes?: number;
  /** Time for the whole fetch, redirects included. Default 10 s. */
  timeoutMs?: number;
  /** Redirects followed at most. Default 5. */
  maxRedirects?: number;
  /** Exact addresses let through the address check: the owner's `outboundAllowAddresses` (e.g. a local JWKS), and tests. */
  allowAddresses?: readonly string[];
  /** Ports besides 80 and 443 it may reach: those the function's policy and the owner's `outboundAllowPorts` both name. */
  ports?: readonly number[];
}

/** The ports every function that may fetch may reach. */
const STANDARD_PORTS = new Set([80, 443]);

const DEFAULTS = { maxResponseBytes: 4 * 1024 * 1024, maxRequestBytes: 1024 * 1024, timeoutMs: 10_000, maxRedirects: 5 };

// public vs private, loopback, link-local, reserved: one list for a function's fetch and the platform's door checks
export { isPublicAddress };

/**
 * The device's own networks: every address of its interfaces and the on-link
 * prefix each sits in, IPv4 and IPv6. A home's IPv6 LAN prefix is global
 * unicast (public by the ranges above), and so may be a device's own IPv4
 * address; neither is for functions to reach.
 */
export class OwnNetworks {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>) {
    let n = 0;
    for (const infos of Object.values(interfaces)) {
      for (const info of infos ?? []) {
        const family = info.family === "IPv6" ? "ipv6" : "ipv4";
        const prefix = Number(info.cidr?.split("/")[1]);
        this.list.addAddress(info.address, family);
        if (Number.isInteger(prefix)) this.list.addSubnet(info.address, prefix, family);
        n++;
      }
    }
    this.size = n;
  }

  has(address: string): boolean {
    const plain = unmapped(address);
    const family = isIP(plain);
    return family !== 0 && this.list.check(plain, family === 6 ? "ipv6" : "ipv4");
  }
}

/** How long the interface list is trusted: addresses come and go (DHCP, SLAAC privacy addresses, VPNs). */
const OWN_NETWORKS_TTL_MS = 5_000;
let ownNetworks: { at: number; networks: OwnNetworks } | undefined;
/** This device's networks, read afresh every few seconds. */
export function deviceNetworks(): OwnNetworks {
  const now = Date.now();
  if (!ownNetworks || now - ownNetworks.at > OWN_NETWORKS_TTL_MS) ownNetworks = { at: now, networks: new OwnNetworks(networkInterfaces()) };
  return ownNetworks.networks;
}

/** Whether a function under this policy may connect to this address: public, not the device's own networks, or let through by the owner. */
export function addressAllowed(address: string, policy: Pick<OutboundPolicy, "allowAddresses">, networks: OwnNetworks): boolean {
  if (policy.allowAddresses?.includes(address)) return true;
  return isPublicAddress(address) && !networks.has(address);
}

const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
  "transfer-encoding", "upgrade", "host", "content-length",
]);

function hostAllowed(hostname: string, hosts: readonly string[] | undefined): boolean {
  if (!hosts) return true;
  const h = hostname.toLowerCase().replace(/\.$/, "");
  return hosts.some((pattern) => {
    const p = pattern.toLowerCase();
    return p.startsWith("*.") ? h.endsWith(p.slice(1)) && h.length > p.length - 1 : h === p;
  });
}

class Refused extends Error {}

/** Performs one outbound fetch for a function; never throws: failures come back as `{ error }` (a TypeError in the isolate). */
export async function outboundFetch(request: OutboundRequest, policy: OutboundPolicy | undefined, networks: OwnNetworks = deviceNetworks()): Promise<OutboundResponse> {
  if (!policy?.allow) {
    return { error: "outbound fetch is not allowed for this function: deploy it with outbound fetch enabled (allowFetch)" };
  }
  const p = { ...DEFAULTS, ...policy };
  const deadline = Date.now() + p.timeoutMs;
  try {
    if (request.body && request.body.byteLength > p.maxRequestBytes) throw new Refused(`the request body is over ${p.maxRequestBytes} bytes`);
    let url = new URL(request.url);
    let method = request.method.toUpperCase();
    let body: Uint8Array | null = request.body;
    const headers = request.headers.filter(([k]) => !HOP_BY_HOP.has(k.toLowerCase()));
    for (let hop = 0; ; hop++) {
      const answer = await once(url, method, headers, body, p, deadline, networks);
      const location = answer.headers.find(([k]) => k === "location")?.[1];
      if (answer.status >= 300 && answer.status < 400 && location !== undefined && request.redirect !== "manual") {
        answer.stream.destroy();
        if (request.redirect === "error") throw new Refused(`redirect to ${location} refused (redirect: "error")`);
        if (hop >= p.maxRedirects) throw new Refused(`more than ${p.maxRedirects} redirects`);
        const next = new URL(location, url);
        if (answer.status === 303 || ((answer.status === 301 || answer.status === 302) && method === "POST")) {
          if (method !== "HEAD") method = "GET";
          body = null;
        }
        // credentials do not follow a redirect to another origin
        if (next.origin !== url.origin) {
          for (let i = headers.length - 1; i >= 0; i--) if (/^(authorization|cookie)$/i.test(headers[i]![0])) headers.splice(i, 1);
        }
        url = next;
        continue;
      }
      const bytes = await readCapped(answer.stream, answer.encoding, p.maxResponseBytes, deadline);
      const status = answer.status < 200 || answer.status > 599 ? 502 : answer.status;
      return {
        status,
        statusText: answer.statusText,
        headers: answer.headers.filter(([k]) => !(answer.encoding && (k === "content-encoding" || k === "content-length"))),
        body: bytes as Uint8Array<ArrayBuffer>,
        url: url.href,
        redirected: hop > 0,
      };
    }
  } catch (error) {
    return { error: `fetch failed: ${error instanceof Error ? error.message : String(error)}`.slice(0, 1000) };
  }
}

interface Answer {
  status: number;
  statusText: string;
  headers: [string, string][];
  stream: http.IncomingMessage;
  encoding: string | undefined;
}

function once(
  url: URL,
  method: string,
  headers: [string, string][],
  body: Uint8Array | null,
  p: OutboundPolicy & typeof DEFAULTS,
  deadline: number,
  networks: OwnNetworks,
): Promise<Answer> {
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Refused(`only http and https URLs can be fetched, not ${url.protocol}`);
  if (url.username || url.password) throw new Refused("URLs with credentials are not fetched");
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  if (!hostAllowed(hostname, p.hosts)) throw new Refused(`${hostname} is not among this function's allowed hosts`);
  const port = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
  if (!STANDARD_PORTS.has(port) && !p.ports?.includes(port)) {
    throw new Refused(`port ${port} is refused: only 80 and 443 unless the function's outbound policy and the device's owner both allow it`);
  }
  const allowedAddress = (address: string) => addressAllowed(address, p, networks);
  if (isIP(hostname) && !allowedAddress(hostname)) throw new Refused(`${hostname} is a private, loopback, link-local or reserved address, or on this device's own networks`);
  const remaining = deadline - Date.now();
  if (remaining <= 0) throw new Refused("timed out");
  // The check happens on what DNS answered, where the socket connects.
  const lookup = (host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    dnsLookup(host, { all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error);
      const bad = addresses.find((a) => !allowedAddress(a.address));
      if (bad || addresses.length === 0) {
        return callback(new Refused(`${host} resolves to ${bad?.address ?? "nothing"}, a private, loopback, link-local or reserved address, or on this device's own networks`));
      }
      if (options.all) callback(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
  const outgoing: Record<string, string[]> = {};
  for (const [k, v] of headers) {
    // what Node's http client would throw on, refused here as the function's own mistake (never a throw later)
    try {
      http.validateHeaderName(k);
      http.validateHeaderValue(k, v);
    } catch {
      throw new Refused(`request header ${JSON.stringify(k.slice(0, 64))} has a name or value HTTP does not allow`);
    }
    (outgoing[k.toLowerCase()] ??= []).push(v);
  }
  outgoing["user-agent"] ??= ["Hearth/0.1"];
  outgoing["accept-encoding"] = ["gzip, deflate, br"];
  if (body) outgoing["content-length"] = [String(body.byteLength)];
  const lib = url.protocol === "https:" ? https : http;
  return new Promise<Answer>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let req: http.ClientRequest;
    try {
      req = lib.request(url, { method, headers: outgoing, lookup: lookup as never, agent: false }, (res) => {
        clearTimeout(timer);
        const out: [string, string][] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) out.push([res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!]);
        const encoding = /^(gzip|x-gzip|deflate|br)$/i.exec(res.headers["content-encoding"] ?? "")?.[1]?.toLowerCase();
        resolve({ status: res.statusCode ?? 502, statusText: res.statusMessage ?? "", headers: out, stream: res, encoding });
      });
    } catch (error) {
      // Node refused the request outright (a method or header it does not allow): nothing was sent
      return reject(new Refused(`the request was refused before sending: ${(error as Error).message}`));
    }
    // One absolute deadline for connect + headers (a socket timeout would restart on every byte a slow server trickles);
    // the body has its own timer to the same deadline in readCapped. Armed only once the request exists.
    timer = setTimeout(() => req.destroy(new Refused("timed out")), remaining);
    req.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(body ?? undefined);
  });
}

function readCapped(stream: http.IncomingMessage, encoding: string | undefined, max: number, deadline: number): Promise<Uint8Array> {
  const source: NodeJS.ReadableStream =
    encoding === "br" ? stream.pipe(zlib.createBrotliDecompress())
    : encoding === "deflate" ? stream.pipe(zlib.createInflate())
    : encoding ? stream.pipe(zlib.createGunzip())
    : stream;
  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const timer = setTimeout(() => fail(new Refused("timed out reading the response")), Math.max(1, deadline - Date.now()));
    const fail = (error: Error) => {
      clearTimeout(timer);
      stream.destroy();
      reject(error);
    };
    source.on("data", (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > max) return fail(new Refused(`the response body is over ${max} bytes`));
      chunks.push(chunk);
    });
    source.on("error", fail);
    source.on("end", () => {
      clearTimeout(timer);
      resolve(new Uint8Array(Buffer.concat(chunks, total)));
    });
  });
}
