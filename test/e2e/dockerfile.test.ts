/**
 * The Dockerfile, checked without a Docker engine (these machines have none):
 * `npm ci` in the build stage sees every workspace the lockfile names, every
 * variable the image sets is one the platform or the agent reads, the agent's
 * data dir is the folder the image prepares for it, and the entrypoint runs
 * files that exist.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
/** Instructions, with continuation lines joined and comments dropped. */
const lines = dockerfile
  .replace(/\\\n/g, " ")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l !== "" && !l.startsWith("#"));
const npmCi = lines.findIndex((l) => /^RUN npm ci\b/.test(l));
const finalStage = lines.findLastIndex((l) => l.startsWith("FROM "));

/** Workspace folders as the lockfile records them ("protocol", "examples/hello", ...). */
function lockfileWorkspaces(): string[] {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { link?: boolean }> };
  return Object.keys(lock.packages).filter((k) => k !== "" && !k.includes("node_modules/"));
}

/** Workspace folders as package.json's globs find them on disk. */
function diskWorkspaces(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { workspaces: string[] };
  return pkg.workspaces.flatMap((w) => {
    if (!w.endsWith("/*")) return [w];
    const dir = w.slice(0, -2);
    return readdirSync(join(ROOT, dir), { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(ROOT, dir, d.name, "package.json")))
      .map((d) => `${dir}/${d.name}`);
  });
}

/** Values of ENV instructions in the final stage (`ENV A=1 B=2`). */
function finalEnv(): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of lines.slice(finalStage)) {
    if (!line.startsWith("ENV ")) continue;
    for (const m of line.slice(4).matchAll(/([A-Z_][A-Z0-9_]*)=(\S+)/g)) env.set(m[1]!, m[2]!);
  }
  return env;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => /\.(ts|js)$/.test(f) && !f.includes("node_modules"))
    .map((f) => join(ROOT, dir, f));
}

describe("Dockerfile", () => {
  it("copies every workspace's package.json before npm ci, so npm ci matches the lockfile", () => {
    expect(npmCi).toBeGreaterThan(0);
    const workspaces = lockfileWorkspaces();
    // the lockfile is current with the folders on disk (else npm ci fails anywhere, not only in Docker)
    expect(workspaces.sort()).toEqual(diskWorkspaces().sort());
    const copied = new Set(
      lines.slice(0, npmCi).flatMap((l) => {
        const m = /^COPY (\S+)\/package\.json (\S+?)\/?$/.exec(l);
        return m && m[1] === m[2] ? [m[1]] : [];
      }),
    );
    for (const ws of workspaces) expect(copied, `Dockerfile does not copy ${ws}/package.json before npm ci`).toContain(ws);
    expect(lines.slice(0, npmCi)).toContain("COPY package.json package-lock.json ./");
  });

  it("sets only variables the platform or the agent reads", () => {
    const env = finalEnv();
    expect(env.size).toBeGreaterThan(0);
    const sources = [...sourceFiles("platform/src"), ...sourceFiles("node-agent/src")].map((f) => readFileSync(f, "utf8")).join("\n");
    for (const name of env.keys()) {
      if (name === "NODE_ENV") continue;
      expect(sources, `${name} is set by the Dockerfile but read by nothing`).toMatch(new RegExp(`["'\`]${name}["'\`]|\\b${name}\\s*:`));
    }
  });

  it("points the agent's data dir at the folder it prepares for the runtime user", () => {
    const dir = finalEnv().get("HEARTH_AGENT_DIR");
    expect(dir).toBe("/var/lib/hearth");
    const prepare = lines.slice(finalStage).find((l) => l.startsWith("RUN ") && l.includes(`mkdir -p ${dir}`));
    expect(prepare).toMatch(new RegExp(`chown node:node ${dir}`));
    const user = lines.slice(finalStage).findIndex((l) => l === "USER node");
    expect(user).toBeGreaterThan(lines.slice(finalStage).indexOf(prepare!));
  });

  it("has an entrypoint whose roles run files that exist", () => {
    const entrypoint = readFileSync(join(ROOT, "docker/entrypoint.sh"), "utf8");
    const bins = [...entrypoint.matchAll(/exec node \/app\/(\S+)/g)].map((m) => m[1]!);
    expect(bins).toEqual(["platform/bin/hearth-platform.js", "node-agent/bin/hearth-agent.js"]);
    for (const bin of bins) expect(existsSync(join(ROOT, bin))).toBe(true);
  });
});
