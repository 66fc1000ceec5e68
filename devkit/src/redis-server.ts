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
  /** Stops and starts the same server on the same port and data dir. */
  restart(): Promise<void>;
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
export async function startRedisServer(): Promise<RedisServer> {
  const binary = redisServerBinary();
  if (!binary) throw new Error("redis-server is not installed (set HEARTH_REDIS_SERVER or install it)");
  const dir = await mkdtemp(join(tmpdir(), "hearth-redis-"));
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--protected-mode", "yes"];
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
    async restart() {
      await server.stop();
      server = await launch();
    },
    async [Symbol.asyncDispose]() {
      await handle.stop();
    },
  };
  return handle;
}
