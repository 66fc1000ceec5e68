/**
 * The device's identity after `hearth-agent join`: who it is, where the
 * fabric is, and its device token. Kept in `<dataDir>/identity.json`,
 * readable by the owner only (0600, in a 0700 directory).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatZodError, HearthError, JoinResponse } from "@hearth/protocol";
import { z } from "zod";

export const Identity = JoinResponse.extend({
  /** The platform the device joined, for reading its credits. */
  platformUrl: z.url(),
});
export type Identity = z.infer<typeof Identity>;

export function identityPath(dataDir: string): string {
  return join(dataDir, "identity.json");
}

export function writeIdentity(dataDir: string, identity: Identity): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // mkdir's mode does not apply to a folder that already exists: the device token must not be readable by others
  chmodSync(dataDir, 0o700);
  const path = identityPath(dataDir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(identity, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return path;
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
