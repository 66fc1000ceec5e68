/**
 * Test helpers that go through the real trust path: a nats-server config
 * from a FabricAuthority, and devices that join a running platform (join
 * token, own nkey, the platform's JWT) and connect with exactly a device's
 * permissions. A fake device answers control messages and invocations the
 * way an agent does, with whatever the test wants it to say.
 */
import { join } from "node:path";
import { ControlMessage, Subjects, type Heartbeat, type PlacedFunction } from "@hearth/protocol";
import { createUser, fmtCreds } from "@nats-io/jwt";
import { connect, credsAuthenticator, type Msg, type NatsConnection } from "@nats-io/transport-node";
import type { DeviceRegistry } from "./devices.ts";
import type { FabricAuthority } from "./fabric.ts";

/** For devkit's `startNatsServer({ auth })`: the server trusts this authority, its resolver in the server's dir. */
export function natsAuth(authority: FabricAuthority): (dir: string) => Promise<string> {
  return (dir) => authority.serverConfig(join(dir, "jwt"));
}

/** A connection with the platform's own credential (the whole account), for tests that play the platform's part. */
export async function connectAsPlatform(url: string, authority: FabricAuthority, name = "test-platform"): Promise<NatsConnection> {
  return connect({ servers: url, name, authenticator: credsAuthenticator(await authority.platformCreds(name)) });
}

export interface JoinedDevice {
  deviceId: string;
  deviceToken: string;
  /** The device's .creds file contents. */
  creds: Uint8Array;
  publicKey: string;
}

/** Joins a device as `hearth-agent join` would: a join token for the owner, a fresh key, the platform's credential. */
export async function joinTestDevice(devices: DeviceRegistry, deviceId: string, options: { ownerId?: string; region?: string; cores?: number } = {}): Promise<JoinedDevice> {
  const { token } = await devices.createJoinToken(options.ownerId ?? "owner", options.region ?? "local");
  const key = createUser();
  const { response } = await devices.join({ token, deviceId, publicKey: key.getPublicKey(), cores: options.cores ?? 64, memoryMb: 1024 * 1024 });
  return { deviceId, deviceToken: response.deviceToken, creds: fmtCreds(response.fabric.jwt, key), publicKey: key.getPublicKey() };
}

/** A device credential straight from the authority (no platform running): a fresh key and its JWT, as a .creds file. */
export async function deviceCreds(authority: FabricAuthority, deviceId: string, prefix: string, ttlSeconds = 3600): Promise<Uint8Array> {
  const key = createUser();
  const jwt = await authority.deviceJwt({ deviceId, publicKey: key.getPublicKey(), subjects: new Subjects(prefix), ttlSeconds, replyTtlMs: 120_000 });
  return fmtCreds(jwt, key);
}

/** Connects with a joined device's credential and inbox prefix. */
export async function connectAsDevice(url: string, device: JoinedDevice, prefix: string, options: { reconnect?: boolean } = {}): Promise<NatsConnection> {
  return connect({
    servers: url,
    name: `test-device:${device.deviceId}`,
    authenticator: credsAuthenticator(device.creds),
    inboxPrefix: new Subjects(prefix).inbox(device.deviceId),
    ...(options.reconnect === false ? { reconnect: false } : {}),
  });
}

/** What a fake device answers an invocation with: status and headers on `msg.respond`, or "silent". */
export type InvokeHandler = (msg: Msg, fn: string) => "silent" | void;

export interface FakeDeviceOptions {
  url: string;
  prefix: string;
  devices: DeviceRegistry;
  deviceId: string;
  ownerId?: string;
  region?: string;
  /** Accept placements (default true), or only those of the functions this says yes to. */
  accept?: boolean | ((app: string, fn: string) => boolean);
  heartbeatMs?: number;
  onInvoke?: InvokeHandler;
  /** Answer control messages (pings, placements) this late: a device that measures farther from the gateway. */
  controlDelayMs?: number;
}

/** A joined device that heartbeats, takes placements and answers calls as the test says. */
export class FakeDevice implements AsyncDisposable {
  readonly functions = new Map<string, PlacedFunction>();
  readonly received: ControlMessage[] = [];
  readonly invocations: Msg[] = [];
  readonly id: string;
  readonly nc: NatsConnection;
  readonly joined: JoinedDevice;
  accept: boolean | ((app: string, fn: string) => boolean);
  onInvoke?: InvokeHandler;
  private readonly subjects: Subjects;
  private readonly heartbeatMs: number;
  private timer?: NodeJS.Timeout;

  private constructor(options: FakeDeviceOptions, nc: NatsConnection, joined: JoinedDevice) {
    this.id = options.deviceId;
    this.nc = nc;
    this.joined = joined;
    this.accept = options.accept ?? true;
    this.onInvoke = options.onInvoke;
    this.subjects = new Subjects(options.prefix);
    this.heartbeatMs = options.heartbeatMs ?? 200;
  }

  static async start(options: FakeDeviceOptions): Promise<FakeDevice> {
    const joined = await joinTestDevice(options.devices, options.deviceId, { ownerId: options.ownerId, region: options.region });
    const nc = await connectAsDevice(options.url, joined, options.prefix);
    const device = new FakeDevice(options, nc, joined);
    const delay = options.controlDelayMs ?? 0;
    nc.subscribe(device.subjects.control(device.id), {
      callback: (_err, msg) => (delay > 0 ? void setTimeout(() => device.control(msg), delay) : device.control(msg)),
    });
    nc.subscribe(device.subjects.invoke(device.id), {
      callback: (_err, msg) => {
        device.invocations.push(msg);
        const fn = msg.headers?.get("Hearth-Function") ?? "";
        if (device.onInvoke?.(msg, fn) === "silent") return;
      },
    });
    await nc.flush();
    device.resume();
    return device;
  }

  private control(msg: Msg): void {
    const message = ControlMessage.parse(msg.json());
    this.received.push(message);
    if (message.type === "place") {
      if (!(typeof this.accept === "function" ? this.accept(message.app, message.fn) : this.accept)) {
        msg.respond(JSON.stringify({ error: { code: "ERR_BAD_BUNDLE", message: "no" } }));
        return;
      }
      this.functions.set(`${message.app}/${message.fn}`, { app: message.app, fn: message.fn, version: message.version });
    }
    if (message.type === "unplace") this.functions.delete(`${message.app}/${message.fn}`);
    msg.respond(JSON.stringify({ ok: true }));
  }

  /** Stops heartbeating but keeps answering (a device whose heartbeats are late). */
  pause(): void {
    clearInterval(this.timer);
  }

  resume(): void {
    this.beat();
    this.timer = setInterval(() => this.beat(), this.heartbeatMs);
  }

  beat(overrides: Partial<Heartbeat> = {}): void {
    const beat: Heartbeat = {
      deviceId: this.id,
      ownerId: "claimed-owner",
      region: "claimed-region",
      location: { label: this.id, lat: 0, lon: 0 },
      cores: 2,
      memoryMb: 512,
      activeCalls: 0,
      freeCores: 2,
      functions: [...this.functions.values()],
      agentVersion: "test",
      sentAt: Date.now(),
      ...overrides,
    };
    if (!this.nc.isClosed()) this.nc.publish(this.subjects.heartbeat(this.id), JSON.stringify(beat));
  }

  /** Goes silent: no heartbeats, no answers (like a device that lost power). */
  async die(): Promise<void> {
    clearInterval(this.timer);
    if (!this.nc.isClosed()) await this.nc.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.die();
  }
}
