import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.ts";
import { spawnServer, type SpawnedServer } from "./spawn-server.ts";

export interface NatsServerOptions {
  /**
   * The server's authentication: config lines given the server's own dir
   * (e.g. `FabricAuthority.serverConfig`, whose resolver keeps account JWTs
   * there). Required: Hearth's fabric accepts no anonymous client, in tests
   * as in production; only `insecureNoAuth` (named for what it is) starts one without.
   */
  auth?: (dir: string) => string | Promise<string>;
  /** Start with no authentication at all (baselines that measure raw NATS only). */
  insecureNoAuth?: boolean;
  /** Turn JetStream on, with its store in the server's temp dir. */
  jetstream?: boolean;
  /** Extra lines of nats-server config. */
  config?: string;
  /** Listen on this port (e.g. to restart a server where its clients expect it); a free one when omitted. */
  port?: number;
  /**
   * Keep config and JetStream store in this folder, and leave it on stop (the
   * caller owns it): a server started again on it finds its streams, as a
   * restarted production server does. A fresh temp folder, removed on stop, when omitted.
   */
  dir?: string;
}

export interface NatsServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly server: SpawnedServer;
  stop(): Promise<void>;
}

/** Largest message the fabric carries; bundles and bodies are capped below it. */
export const NATS_MAX_PAYLOAD = 8 * 1024 * 1024;

/** Path of the nats-server binary: the one the bootstrap chose, else PATH. */
export function natsServerBinary(): string {
  return process.env["HEARTH_NATS_SERVER"] || "nats-server";
}

/**
 * Starts a real nats-server on a free loopback port (or the one given) with a
 * temp config and store dir, waits until it is ready, and removes everything
 * on stop.
 */
export async function startNatsServer(options: NatsServerOptions): Promise<NatsServer> {
  if (!options.auth && !options.insecureNoAuth) {
    throw new Error("startNatsServer: pass auth (the fabric's server config) or, for a raw-NATS baseline only, insecureNoAuth: true");
  }
  const owned = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "hearth-nats-")));
  await mkdir(dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const lines = [
    `listen: "127.0.0.1:${port}"`,
    `max_payload: ${NATS_MAX_PAYLOAD}`,
    `server_name: hearth_${port}`,
  ];
  if (options.jetstream) lines.push(`jetstream { store_dir: "${join(dir, "js")}" }`);
  if (options.auth) lines.push(await options.auth(dir));
  if (options.config) lines.push(options.config);
  const configPath = join(dir, "nats.conf");
  await writeFile(configPath, lines.join("\n") + "\n");
  let server: SpawnedServer;
  try {
    server = await spawnServer({
      name: "nats-server",
      command: natsServerBinary(),
      args: ["-c", configPath],
      readyWhen: /Server is ready/,
    });
  } catch (error) {
    if (owned) await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const stop = async () => {
    await server.stop();
    if (owned) await rm(dir, { recursive: true, force: true });
  };
  return { url: `nats://127.0.0.1:${port}`, port, dir, server, stop, [Symbol.asyncDispose]: stop };
}
