/**
 * The device's identity after `hearth-agent join`: who it is, where the
 * fabric is, and its device token. Kept in `<dataDir>/identity.json`,
 * readable by the owner only (0600; the folder is made 0700 when join makes it).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
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
