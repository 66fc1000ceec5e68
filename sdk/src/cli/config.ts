/**
 * The `hearth` CLI's login: the platform URL and API token `hearth login`
 * verified and saved, read by later commands when neither a flag nor
 * HEARTH_TOKEN / HEARTH_PLATFORM_URL gives them. One JSON file, readable by
 * its owner only (0600, in a 0700 folder): HEARTH_CONFIG, else
 * `$XDG_CONFIG_HOME/hearth/config.json`, else `~/.config/hearth/config.json`.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { DeveloperId, DeveloperName, formatZodError, HearthError } from "@hearth/protocol";
import { z } from "zod";

export const CliConfig = z.strictObject({
  url: z.url(),
  token: z.string().min(1).max(512),
  /** Who the token was at login, for `hearth whoami` to compare. */
  developer: z.strictObject({ id: DeveloperId, name: DeveloperName }).optional(),
});
export type CliConfig = z.infer<typeof CliConfig>;

/** Where the login is kept (read each time, so tests can point HEARTH_CONFIG elsewhere). */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env["HEARTH_CONFIG"]) return env["HEARTH_CONFIG"];
  const base = env["XDG_CONFIG_HOME"] || join(homedir(), ".config");
  return join(base, "hearth", "config.json");
}

/** The saved login, or undefined when there is none. A file that is not a login is an error that says how to fix it. */
export function readConfig(path: string): CliConfig | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new HearthError("ERR_BAD_REQUEST", `cannot read the login in ${path}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new HearthError("ERR_BAD_REQUEST", `${path} is not JSON; run \`hearth login\` again, or delete it`);
  }
  const parsed = CliConfig.safeParse(json);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", `${formatZodError(parsed.error, path)}; run \`hearth login\` again, or delete it`);
  return parsed.data;
}

/** Saves the login: written to a temp file made 0600 and renamed over the old one, so it is never readable by others, not even half-written. */
export function writeConfig(path: string, config: CliConfig): void {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(CliConfig.parse(config), null, 2) + "\n", { mode: 0o600 });
  // the mode given at creation is narrowed by the umask, never widened; chmod makes it exactly 0600 either way
  chmodSync(temp, 0o600);
  renameSync(temp, path);
}

/** Forgets the login; false when there was none. */
export function removeConfig(path: string): boolean {
  if (!existsSync(path)) return false;
  rmSync(path);
  return true;
}
