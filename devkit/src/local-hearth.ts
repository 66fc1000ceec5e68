/**
 * A whole Hearth on this machine, made of real processes: a nats-server, one
 * platform process and N device agents, each started the way an operator or
 * a device owner would start them. Used by `npm run demo`, the end-to-end
 * tests and the benchmarks.
 *
 * The fabric runs with the same security as production: `hearth-platform
 * fabric init` makes its keys, nats-server trusts only them, and each agent
 * joins the way an owner's would (`hearth-agent join` with a join token the
 * operator made), getting its own credential.
 *
 * It creates one developer (`developerName`, default "demo") through the
 * admin API as soon as the platform is up: `developerToken` is what deploys
 * and reads, `token` (the operator's) reaches operator routes only.
 *
 * Its agents keep identity, credential and control socket in a temp data dir
 * each (never the developer's ~/.hearth-agent), removed on stop, and serve on
 * battery: a laptop running the demo unplugged still serves.
 */
import { randomBytes } from "node:crypto";
import { existsSync, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, type WriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./free-port.ts";
import { startNatsServer, type NatsServer } from "./nats-server.ts";
import { run } from "./run.ts";
import { spawnServer, type SpawnedServer } from "./spawn-server.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PLATFORM_BIN = join(ROOT, "platform/bin/hearth-platform.js");
const AGENT_BIN = join(ROOT, "node-agent/bin/hearth-agent.js");

export interface DeviceSpec {
  deviceId: string;
  ownerId?: string;
  region?: string;
  /** label:lat,lon */
  location?: string;
  cores?: number;
  memoryMb?: number;
  /** Open the device's door on this `host:port` (`--listen`). */
  listen?: string;
  /** More environment for the agent (e.g. HEARTH_OUTBOUND_ALLOW_ADDRESSES). */
  env?: Record<string, string>;
}

export interface LocalHearthOptions {
  devices: DeviceSpec[];
  /** Platform HTTP port; a free one when omitted. */
  port?: number;
  redisUrl?: string;
  /** Folder for each process's log file; logs are discarded when omitted. */
  logDir?: string;
  logLevel?: string;
  token?: string;
  jetstream?: boolean;
  /** Lifetime of device fabric credentials, seconds (HEARTH_CREDENTIAL_TTL_SECONDS; tests of renewal shorten it). */
  credentialTtlSeconds?: number;
  /** The developer made at start (default "demo"). */
  developerName?: string;
}

export interface RunningDevice {
  readonly spec: DeviceSpec;
  readonly server: SpawnedServer;
}

export interface LocalHearth extends AsyncDisposable {
  readonly url: string;
  /** The operator token (HEARTH_TOKEN): operator routes only. */
  readonly token: string;
  /** The token of the developer made at start: deploys, lists, logs, usage. */
  readonly developerToken: string;
  readonly developerId: string;
  /** The current nats-server (replaced by restartNats). */
  readonly nats: NatsServer;
  /** The folder of the agents' data dirs (one per device: identity, credential, control socket), a temp dir removed on stop. */
  readonly dataDir: string;
  /** One device's data dir. */
  dataDirOf(deviceId: string): string;
  /** The fabric's keys file (HEARTH_FABRIC_KEYS_FILE for platform processes and tools). */
  readonly fabricKeysFile: string;
  /** The first platform process (replaced by restartPlatform). */
  readonly platform: SpawnedServer;
  readonly devices: Map<string, RunningDevice>;
  startDevice(spec: DeviceSpec): Promise<RunningDevice>;
  /** Starts one more platform process on the same fabric and state; returns its URL. */
  startPlatform(): Promise<{ url: string; server: SpawnedServer }>;
  /** Kills the first platform process (SIGKILL) and starts it again on the same port. */
  restartPlatform(): Promise<void>;
  /**
   * Stops the nats-server (clients see their connection drop), waits `downMs`,
   * and starts a new one on the same port and the same JetStream store, as an
   * operator restarting it would. Nothing else is touched: clients must find it again on their own.
   */
  restartNats(options?: { downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

export async function startLocalHearth(options: LocalHearthOptions): Promise<LocalHearth> {
  const token = options.token ?? randomBytes(24).toString("base64url");
  const logLevel = options.logLevel ?? "info";
  const logs: WriteStream[] = [];
  const logTo = (name: string) => {
    if (!options.logDir) return undefined;
    mkdirSync(options.logDir, { recursive: true });
    const stream = createWriteStream(join(options.logDir, `${name}.log`));
    logs.push(stream);
    return (chunk: Buffer) => stream.write(chunk);
  };

  const jetstream = options.jetstream ?? true;
  // the fabric's store outlives a restart of its server; both temp dirs go on stop
  const natsDir = mkdtempSync(join(tmpdir(), "hearth-local-nats-"));
  const dataDir = mkdtempSync(join(tmpdir(), "hearth-local-agents-"));
  const removeDirs = () => {
    rmSync(natsDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  };
  const fabricDir = join(natsDir, "fabric");
  const fabricKeysFile = join(fabricDir, "fabric-keys.json");
  // nats-server trusts the keys made here and nothing else; its resolver keeps account updates (revocations) in natsDir
  const auth = () => readFileSync(join(fabricDir, "nats-auth.conf"), "utf8");
  let nats: NatsServer;
  try {
    const init = await run(process.execPath, [PLATFORM_BIN, "fabric", "init", "--dir", fabricDir, "--resolver-dir", join(natsDir, "jwt")]);
    if (init.code !== 0) throw new Error(`hearth-platform fabric init failed: ${init.stderr || init.stdout}`);
    nats = await startNatsServer({ jetstream, dir: natsDir, auth });
  } catch (error) {
    removeDirs();
    throw error;
  }
  const started: SpawnedServer[] = [];
  const devices = new Map<string, RunningDevice>();
  const stop = async () => {
    await Promise.all([...devices.values()].map((d) => d.server.stop()));
    await Promise.all(started.map((s) => s.stop()));
    await nats.stop();
    for (const stream of logs) stream.end();
    removeDirs();
  };

  try {
    const port = options.port ?? (await freePort());
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HEARTH_PORT: String(port),
      HEARTH_HOST: "127.0.0.1",
      HEARTH_NATS_URL: nats.url,
      HEARTH_TOKEN: token,
      HEARTH_LOG_LEVEL: logLevel,
      HEARTH_FABRIC_KEYS_FILE: fabricKeysFile,
    };
    if (options.credentialTtlSeconds) env["HEARTH_CREDENTIAL_TTL_SECONDS"] = String(options.credentialTtlSeconds);
    if (options.redisUrl) env["REDIS_URL"] = options.redisUrl;
    else delete env["REDIS_URL"];
    let platforms = 0;
    const launchPlatform = async (listenPort: number) => {
      const server = await spawnServer({
        name: "hearth-platform",
        command: process.execPath,
        args: [PLATFORM_BIN],
        env: { ...env, HEARTH_PORT: String(listenPort) },
        readyWhen: /HEARTH_PLATFORM_READY/,
        onOutput: logTo(platforms++ === 0 ? "platform" : `platform-${platforms}`),
      });
      started.push(server);
      return { server, url: /HEARTH_PLATFORM_READY (\S+)/.exec(server.output())![1]! };
    };
    let { server: platform, url } = await launchPlatform(port);
    const developer = await createDeveloper(url, token, options.developerName ?? "demo");

    const dataDirOf = (deviceId: string) => join(dataDir, deviceId);
    /** Joins a device as its owner would: a join token from the operator API, then `hearth-agent join`. */
    const join_ = async (spec: DeviceSpec) => {
      const dir = dataDirOf(spec.deviceId);
      if (existsSync(join(dir, "fabric.creds"))) return;
      const res = await fetch(`${url}/v1/join-tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ ownerId: spec.ownerId ?? "local", region: spec.region ?? "local" }),
      });
      if (res.status !== 201) throw new Error(`could not make a join token for ${spec.deviceId}: ${res.status} ${await res.text()}`);
      const { token: joinToken } = (await res.json()) as { token: string };
      const joined = await run(process.execPath, [AGENT_BIN, "join", url, "--token", joinToken, "--device-id", spec.deviceId, "--data-dir", dir]);
      if (joined.code !== 0) throw new Error(`hearth-agent join failed for ${spec.deviceId}: ${joined.stderr || joined.stdout}`);
    };
    const startDevice = async (spec: DeviceSpec): Promise<RunningDevice> => {
      await join_(spec);
      const args = [AGENT_BIN, "start", "--device-id", spec.deviceId, "--log-level", logLevel];
      args.push("--data-dir", dataDirOf(spec.deviceId), "--no-pause-on-battery");
      if (spec.location) args.push("--location", spec.location);
      if (spec.listen) args.push("--listen", spec.listen);
      args.push("--cores", String(spec.cores ?? 1), "--memory-mb", String(spec.memoryMb ?? 256));
      const server = await spawnServer({
        name: `hearth-agent ${spec.deviceId}`,
        command: process.execPath,
        args,
        env: { ...process.env, ...spec.env, HEARTH_LOG_LEVEL: logLevel },
        readyWhen: /HEARTH_AGENT_READY/,
        onOutput: logTo(`agent-${spec.deviceId}`),
      });
      const device = { spec, server };
      devices.set(spec.deviceId, device);
      return device;
    };
    await Promise.all(options.devices.map(startDevice));
    const restartPlatform = async () => {
      platform.process.kill("SIGKILL");
      await platform.stop();
      ({ server: platform, url } = await launchPlatform(port));
    };
    const restartNats = async ({ downMs = 0 }: { downMs?: number } = {}) => {
      const port = nats.port;
      await nats.stop();
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      nats = await startNatsServer({ jetstream, dir: natsDir, port, auth });
    };
    return {
      url,
      token,
      developerToken: developer.token,
      developerId: developer.id,
      get nats() {
        return nats;
      },
      dataDir,
      dataDirOf,
      fabricKeysFile,
      get platform() {
        return platform;
      },
      devices,
      startDevice,
      startPlatform: async () => launchPlatform(await freePort()),
      restartPlatform,
      restartNats,
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A developer and their first token, through the platform's admin API (with the operator token). */
async function createDeveloper(url: string, operatorToken: string, name: string): Promise<{ id: string; token: string }> {
  const res = await fetch(`${url}/v1/developers`, {
    method: "POST",
    headers: { authorization: `Bearer ${operatorToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });
  const body = (await res.json().catch(() => undefined)) as { developer?: { id?: string }; token?: { value?: string } } | undefined;
  if (res.status !== 201 || !body?.developer?.id || !body.token?.value) {
    throw new Error(`the local platform did not create developer ${name} (${res.status}): ${JSON.stringify(body)}`);
  }
  return { id: body.developer.id, token: body.token.value };
}
