/**
 * The bench on an authenticated fabric: the local Hearth's authority (its
 * keys file), credentials to hand to helper processes as text, and
 * simulated devices registered as joined in the platform's Redis.
 */
import { generateKeyPairSync } from "node:crypto";
import type { LocalHearth } from "@hearth/devkit";
import { connectRedis, DeviceRegistry, FabricAuthority, readFabricKeys } from "@hearth/platform";
import type { Subjects } from "@hearth/protocol";
import { nkeys } from "@nats-io/transport-node";
import type { SimDevice } from "./sim-devices.ts";

/** The authority a local Hearth's nats-server trusts (the keys `hearth-platform fabric init` wrote). */
export function authorityOf(hearth: LocalHearth): FabricAuthority {
  return new FabricAuthority(readFabricKeys({ HEARTH_FABRIC_KEYS_FILE: hearth.fabricKeysFile }));
}

/** A `.creds` file's bytes as text, to pass to a helper over its IPC pipe. */
export function credsText(creds: Uint8Array): string {
  return new TextDecoder().decode(creds);
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/** nkeys' prefix byte of a user public key (20 << 3: encodes as a leading `U`). */
const USER_PREFIX = 20 << 3;

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function base32(bytes: Uint8Array): string {
  let out = "";
  let value = 0;
  let bits = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * A fresh nkey user public key (`U...`), from an ed25519 key pair made by
 * node:crypto. nkeys' own `createUser().getPublicKey()` derives it in
 * tweetnacl (milliseconds each on this machine): too slow for 10,000.
 */
export function userPublicKey(): string {
  const { x } = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  const raw = Buffer.from(x!, "base64url");
  const body = new Uint8Array(1 + raw.length + 2);
  body[0] = USER_PREFIX;
  body.set(raw, 1);
  const crc = crc16(body.subarray(0, 1 + raw.length));
  body[1 + raw.length] = crc & 0xff; // little-endian, as nkeys writes it
  body[2 + raw.length] = crc >> 8;
  return base32(body);
}

/**
 * Signs no device JWT. The simulated devices publish with the platform's
 * credential, so the credential a join returns would never be used; signing
 * one costs tens of ms of CPU (tweetnacl), minutes for 10,000 devices. The
 * join record the registry writes is the real one.
 */
class UnsignedAuthority extends FabricAuthority {
  override async deviceJwt(): Promise<string> {
    return "unused: simulated devices connect with the platform's credential";
  }
}

/**
 * Joins every simulated device the way the platform does (a join token for
 * its owner, redeemed with its own public key) straight into the platform's
 * Redis, `concurrency` at a time over one pipelined connection. The
 * scheduler then believes their heartbeats (a joined, unrevoked device on
 * its own subject). Returns the wall time it took.
 */
export async function joinSimDevices(options: {
  redisUrl: string;
  authority: FabricAuthority;
  subjects: Subjects;
  natsUrl: string;
  devices: SimDevice[];
  cores: number;
  memoryMb: number;
  concurrency?: number;
}): Promise<number> {
  const { redis } = connectRedis(options.redisUrl);
  // one round trip per batch of commands instead of one per command
  const piped = redis.duplicate({ enableAutoPipelining: true });
  const registry = new DeviceRegistry({
    redis: piped,
    // the platform's key prefix: local Hearth hands it this environment
    prefix: process.env["HEARTH_REDIS_PREFIX"] || "hearth:",
    authority: new UnsignedAuthority(options.authority.keys),
    subjects: options.subjects,
    publicNatsUrl: options.natsUrl,
  });
  // the codec above must agree with nkeys: one key through its own parser
  nkeys.fromPublic(userPublicKey());
  const t0 = performance.now();
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: options.concurrency ?? 256 }, async () => {
        while (next < options.devices.length) {
          const device = options.devices[next++]!;
          const { token } = await registry.createJoinToken(device.ownerId, "local");
          await registry.join({ token, deviceId: device.deviceId, publicKey: userPublicKey(), cores: options.cores, memoryMb: options.memoryMb });
        }
      }),
    );
  } finally {
    piped.disconnect();
    redis.disconnect();
  }
  return performance.now() - t0;
}
