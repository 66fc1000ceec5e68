/**
 * Which IP addresses are public: what a function's outbound fetch (on a
 * device) and the platform's check of an advertised door URL may connect
 * to. Everything private, loopback, link-local, reserved or metadata is
 * refused, so neither can be turned against the network it runs in.
 */
import { BlockList, isIP } from "node:net";

/** Addresses nothing outside may make Hearth connect to: private, loopback, link-local, CGNAT, multicast, documentation, metadata. */
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12],
  ["192.0.0.0", 24], ["192.0.2.0", 24], ["192.88.99.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15],
  ["198.51.100.0", 24], ["203.0.113.0", 24], ["224.0.0.0", 4], ["240.0.0.0", 4],
] as const) BLOCKED.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of [
  // (IPv4-mapped ::ffff:0:0/96 is judged by its IPv4 part below; BlockList would also match plain IPv4 against it)
  // ::/96 holds ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d; ::ffff:0:0:0/96 is IPv4-translated (SIIT, ::ffff:0:a.b.c.d).
  // Neither has a legitimate public use, and some stacks route them to the embedded IPv4 address: refused whole.
  ["::", 96], ["::ffff:0:0:0", 96], ["64:ff9b::", 96], ["64:ff9b:1::", 48], ["100::", 64], ["2001::", 23],
  ["2001:db8::", 32], ["2002::", 16], ["fc00::", 7], ["fe80::", 10], ["fec0::", 10], ["ff00::", 8],
] as const) BLOCKED.addSubnet(net, prefix, "ipv6");

/** True for a public address: one a function's fetch, or the platform checking a door, may connect to. IPv4-mapped IPv6 is judged by its IPv4 part. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  if (family === 6) {
    const plain = unmappedAddress(address);
    if (plain !== address) return isPublicAddress(plain);
    return !BLOCKED.check(address, "ipv6");
  }
  return !BLOCKED.check(address, "ipv4");
}

/** IPv4-mapped IPv6 (`::ffff:a.b.c.d`, `::ffff:7f00:1`) as its IPv4 address; anything else as it is. */
export function unmappedAddress(address: string): string {
  const dotted = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (dotted) return dotted[1]!;
  const hex = /^(?:0{0,4}:){0,5}:?ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (!hex) return address;
  const hi = parseInt(hex[1]!, 16), lo = parseInt(hex[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

