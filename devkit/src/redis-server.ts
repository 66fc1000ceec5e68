import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.ts";
import { spawnServer, type SpawnedServer } from "./spawn-server.ts";

export interface RedisServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly server: SpawnedServer;
  stop(): Promise<void>;
  /**
   * Stops and starts the same server on the same port and data dir. With
   * `signal: "SIGKILL"` it dies as in a crash (no shutdown, no final fsync):
   * what survives is what its appendfsync setting had written.
   */
  restart(options?: { signal?: "SIGTERM" | "SIGKILL"; downMs?: number }): Promise<void>;
}

export interface RedisServerOptions {
  /**
   * How often the append-only file is fsynced: Redis' default `everysec` may
   * lose the last second of writes to a crash; `always` loses nothing that
   * was acknowledged (docs/ledger.md).
   */
  appendfsync?: "always" | "everysec" | "no";
}

/** Path of a redis-server binary, or undefined when none is installed. */
export function redisServerBinary(): string | undefined {
  const candidate = process.env["HEARTH_REDIS_SERVER"] || "redis-server";
  try {
    execFileSync(candidate, ["--version"], { stdio: "ignore" });
    return candidate;
  } catch {
    return undefined;
  }
}

/** Starts a real redis-server on a free loopback port with a temp data dir. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = redisServerBinary();
  if (!binary) throw new Error("redis-server is not installed (set HEARTH_REDIS_SERVER or install it)");
  const dir = await mkdtemp(join(tmpdir(), "hearth-redis-"));
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--protected-mode", "yes"];
  if (options.appendfsync) args.push("--appendfsync", options.appendfsync);
  const launch = () => spawnServer({ name: "redis-server", command: binary, args, readyWhen: /Ready to accept connections/ });
  let server = await launch().catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  const handle: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    get server() {
      return server;
    },
    async stop() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
    async restart(how = {}) {
      if (how.signal === "SIGKILL" && server.process.exitCode === null && server.process.signalCode === null) {
        const exited = new Promise((resolve) => server.process.once("exit", resolve));
        server.process.kill("SIGKILL");
        await exited;
      }
      await server.stop();
      if (how.downMs) await new Promise((r) => setTimeout(r, how.downMs));
      server = await launch();
    },
    async [Symbol.asyncDispose]() {
      await handle.stop();
    },
  };
  return handle;
}
