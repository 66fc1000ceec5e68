/**
 * Cloudflare's workerd as a same-run baseline: the `workerd` npm package,
 * installed on first use into .hearth/bench-tools (npm, as this machine
 * configures it; not a dependency of the project, so `npm ci` never fetches
 * its ~100 MB binary), serving the same function bundled the way wrangler
 * bundles it (esbuild, one ES module).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, waitFor } from "@hearth/devkit";
import { build } from "esbuild";
import type { BenchContext } from "./bench.ts";

/** The workerd release the baseline runs (a pinned version: figures compare across runs). */
export const WORKERD_VERSION = "1.20261117.1";

export interface Workerd {
  url: string;
  pid: number;
  version: string;
  stop(): Promise<void>;
}

function workerdBinary(dir: string): string {
  const arch = process.arch === "arm64" ? "arm64" : "64";
  return join(dir, "node_modules", "@cloudflare", `workerd-linux-${arch}`, "bin", "workerd");
}

/** The workerd binary, installed when missing; undefined (and why) when it cannot be. */
export function ensureWorkerd(ctx: BenchContext): { binary?: string; reason?: string } {
  if (process.platform !== "linux") return { reason: "workerd's baseline runs on Linux only here" };
  const dir = join(ctx.root, ".hearth", "bench-tools");
  const binary = workerdBinary(dir);
  if (existsSync(binary)) return { binary };
  ctx.log(`installing workerd ${WORKERD_VERSION} into .hearth/bench-tools (once)`);
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, "package.json"))) writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "hearth-bench-tools", private: true }) + "\n");
  const npm = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--save-exact", `workerd@${WORKERD_VERSION}`], { cwd: dir, encoding: "utf8", timeout: 300_000 });
  if (npm.status !== 0 || !existsSync(binary)) return { reason: `npm install workerd@${WORKERD_VERSION} failed: ${(npm.stderr || npm.error?.message || "").trim().split("\n").slice(-3).join(" ")}` };
  return { binary };
}

/** Starts workerd serving `entry` (bundled with esbuild) on a free loopback port. */
export async function startWorkerd(ctx: BenchContext, binary: string, entry: string): Promise<Workerd> {
  const dir = join(ctx.root, ".hearth", "bench-tools", "hello");
  mkdirSync(dir, { recursive: true });
  await build({ entryPoints: [entry], bundle: true, format: "esm", platform: "neutral", target: "es2022", outfile: join(dir, "worker.js"), logLevel: "error" });
  const port = await freePort();
  writeFileSync(
    join(dir, "config.capnp"),
    [
      'using Workerd = import "/workerd/workerd.capnp";',
      "const config :Workerd.Config = (",
      '  services = [ (name = "main", worker = .hello) ],',
      `  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],`,
      ");",
      "const hello :Workerd.Worker = (",
      '  modules = [ (name = "worker.js", esModule = embed "worker.js") ],',
      '  compatibilityDate = "2024-09-23",',
      ");",
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn(binary, ["serve", join(dir, "config.capnp")], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4_000)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  };
  ctx.cleanup.add("workerd", child, () => stop());
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    "workerd listening",
    async () => {
      if (child.exitCode !== null) throw new Error(`workerd exited (${child.exitCode}): ${stderr.trim()}`);
      return fetch(url).then((r) => (r.body?.cancel(), true), () => false);
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
  return { url, pid: child.pid!, version: WORKERD_VERSION, stop };
}
