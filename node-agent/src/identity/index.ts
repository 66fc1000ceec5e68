/**
 * The device's identity after `hearth-agent join`: who it is, where the
 * fabric is, and its device token, in `<dataDir>/identity.json`; and its
 * fabric credential, a standard NATS credentials file (user JWT + the nkey
 * seed made on this device, which never leaves it) in
 * `<dataDir>/fabric.creds`. Both are readable by the owner only (0600; the
 * folder is made 0700 when join makes it).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatZodError, HearthError, JoinResponse } from "@hearth/protocol";
import { fmtCreds, parseCreds } from "@nats-io/jwt";
import { createUser, fromSeed, type KeyPair } from "@nats-io/nkeys";
import { z } from "zod";

export const Identity = JoinResponse.omit({ fabric: true }).extend({
  /** The platform the device joined, for reading its credits. */
  platformUrl: z.url(),
});
export type Identity = z.infer<typeof Identity>;

export function identityPath(dataDir: string): string {
  return join(dataDir, "identity.json");
}

export function credsPath(dataDir: string): string {
  return join(dataDir, "fabric.creds");
}

/** A new nkey for this device: its public key goes to the platform, its seed only into fabric.creds. */
export function newDeviceKey(): KeyPair {
  return createUser();
}

/** A fabric.creds file: the device's key, its JWT, and when that expires (ms since epoch; undefined: never). */
export async function readCreds(path: string): Promise<{ key: KeyPair; jwt: string; expiresAt: number | undefined }> {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new HearthError("ERR_BAD_REQUEST", `no fabric credential at ${path} (${(error as NodeJS.ErrnoException).code ?? "unreadable"}): run hearth-agent join <platform-url> --token <join-token> first`);
  }
  try {
    const { key, jwt, uc } = await parseCreds(bytes);
    return { key: fromSeed(new TextEncoder().encode(key)), jwt, expiresAt: typeof uc.exp === "number" ? uc.exp * 1000 : undefined };
  } catch {
    throw new HearthError("ERR_BAD_REQUEST", `${path} is not a NATS credentials file; run hearth-agent join again`);
  }
}

/** Writes fabric.creds (0600, atomically): the platform's JWT for this device's key, and the key's seed. */
export function writeCreds(path: string, jwt: string, key: KeyPair): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, fmtCreds(jwt, key), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/**
 * Writes the identity (0600). Returns where, and a warning when the data dir
 * already existed and others can read into it: the file itself is safe, but
 * an owner who picked a shared folder should know (it is theirs to change;
 * the agent does not chmod a folder it did not make).
 */
export function writeIdentity(dataDir: string, identity: Identity): { path: string; warning?: string } {
  const created = mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const mode = statSync(dataDir).mode & 0o777;
  const warning =
    created === undefined && (mode & 0o077) !== 0
      ? `${dataDir} is readable by others (mode ${mode.toString(8)}); the identity file is not, but a private folder is safer: chmod 700 ${dataDir}`
      : undefined;
  const path = identityPath(dataDir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(identity, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return warning === undefined ? { path } : { path, warning };
}

/** The stored identity, or undefined when the device never joined. */
export function readIdentity(dataDir: string): Identity | undefined {
  const path = identityPath(dataDir);
  if (!existsSync(path)) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new HearthError("ERR_BAD_REQUEST", `${path} is not JSON (${(error as Error).message}); run hearth-agent join again`);
  }
  const parsed = Identity.safeParse(data);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", `${formatZodError(parsed.error, path)}; run hearth-agent join again`);
  return parsed.data;
}
