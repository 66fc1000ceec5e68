/** Names of apps and functions, and the fabric subjects built from them. */
import { z } from "zod";

/** App and function names become NATS subject tokens, so they are kept to a safe alphabet. */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

const name = (what: string) =>
  z
    .string()
    .regex(NAME_PATTERN, `${what} must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit`);

export const AppName = name("app name");
export const FunctionName = name("function name");
export const DeviceId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, "device id must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'");
export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "must be a lowercase hex SHA-256");

/**
 * Subjects of the fabric. A prefix lets several Hearths (or tests) share one
 * nats-server. Every subject a device may use names the device, so
 * nats-server can hold each device to its own (see devicePermissions and
 * docs/security.md).
 */
export class Subjects {
  readonly prefix: string;
  constructor(prefix = "hearth") {
    this.prefix = prefix;
  }
  /** Control subject of one device: placements arrive here. */
  control(deviceId: string): string {
    return `${this.prefix}.device.${deviceId}.control`;
  }
  /** Invocation subject of one device: the gateway sends each call to the device it chose. */
  invoke(deviceId: string): string {
    return `${this.prefix}.device.${deviceId}.invoke`;
  }
  /** Where one device publishes its heartbeats. */
  heartbeat(deviceId: string): string {
    return `${this.prefix}.hb.${deviceId}`;
  }
  /** Every device's heartbeats (the platform's subscription; the device id is the last token). */
  get heartbeats(): string {
    return `${this.prefix}.hb.*`;
  }
  /** Where one device asks for bundles. */
  bundleGet(deviceId: string): string {
    return `${this.prefix}.bundle.${deviceId}`;
  }
  get bundleGets(): string {
    return `${this.prefix}.bundle.*`;
  }
  /** Where one device publishes its functions' console lines (the platform checks and stores them). */
  deviceLogs(deviceId: string): string {
    return `${this.prefix}.devlogs.${deviceId}`;
  }
  get deviceLogsAll(): string {
    return `${this.prefix}.devlogs.*`;
  }
  /** A device's inbox prefix: replies to its own requests (bundle fetches) arrive under it. */
  inbox(deviceId: string): string {
    return `${this.prefix}.inbox.${deviceId}`;
  }
  /** Platform processes tell each other of revoked devices here (devices may not publish it). */
  get revoked(): string {
    return `${this.prefix}.platform.revoked`;
  }
  /** Gateways report each function's calls and load here every few seconds (devices may not publish it). */
  get load(): string {
    return `${this.prefix}.platform.load`;
  }
  /** A gateway asks for a function scaled to zero to be placed again (a call is waiting). */
  get wake(): string {
    return `${this.prefix}.platform.wake`;
  }

  /**
   * A device's relay subject in one app's network: a member of that network
   * relays a call it took at its own door to a peer here. Both ends must be
   * members (devicePermissions): only members may publish on
   * `<prefix>.net.<app>.invoke.*`, only the device itself may hear its own.
   */
  netInvoke(app: string, deviceId: string): string {
    return `${this.prefix}.net.${app}.invoke.${deviceId}`;
  }
  /** A device's door asks the platform which peers of its network serve a function (request; the platform checks membership). */
  doorPeers(deviceId: string): string {
    return `${this.prefix}.door.${deviceId}.peers`;
  }
  get doorPeersAll(): string {
    return `${this.prefix}.door.*.peers`;
  }
  /** A device's door reports the calls it took (the platform caps and meters them). */
  doorUsage(deviceId: string): string {
    return `${this.prefix}.door.${deviceId}.usage`;
  }
  get doorUsageAll(): string {
    return `${this.prefix}.door.*.usage`;
  }
  /** The device of a door subject (`<prefix>.door.<deviceId>.<kind>`), or undefined. */
  doorDeviceOf(subject: string): string | undefined {
    const head = `${this.prefix}.door.`;
    if (!subject.startsWith(head)) return undefined;
    const id = subject.slice(head.length).split(".")[0] ?? "";
    return DeviceId.safeParse(id).success ? id : undefined;
  }

  /** The device whose own subject this is (`<prefix>.<kind>.<deviceId>`), or undefined. */
  deviceOf(subject: string, kind: "hb" | "bundle" | "devlogs"): string | undefined {
    const head = `${this.prefix}.${kind}.`;
    if (!subject.startsWith(head)) return undefined;
    const id = subject.slice(head.length);
    return DeviceId.safeParse(id).success ? id : undefined;
  }
}

/** What nats-server lets one device do, as the permissions of its user JWT. */
export interface DevicePermissions {
  pub: { allow: string[] };
  sub: { allow: string[] };
  /** Replies: one per request the device received, within `ttlMs`. */
  resp: { max: number; ttlMs: number };
}

/** The most application networks one credential carries (each costs a publish and a subscribe permission, and one subscription). */
export const MAX_DEVICE_NETWORKS = 64;

/**
 * The least a device needs, enforced by nats-server: hear its own control and
 * invocation subjects and the replies to its own requests; publish its own
 * heartbeats, log lines, bundle requests and door reports; answer each
 * request it received once. For each app network it is a member of
 * (`networks`): hear its own relay subject there, and relay to that
 * network's peers. Nothing else: no other device's subjects, no other
 * network's, no `_INBOX.>`, no JetStream API, no `$SYS`, no usage subjects.
 */
export function devicePermissions(subjects: Subjects, deviceId: string, replyTtlMs: number, networks: readonly string[] = []): DevicePermissions {
  DeviceId.parse(deviceId);
  const apps = [...new Set(networks)].sort();
  if (apps.length > MAX_DEVICE_NETWORKS) throw new Error(`a device is a member of at most ${MAX_DEVICE_NETWORKS} networks`);
  for (const app of apps) AppName.parse(app);
  return {
    pub: {
      allow: [
        subjects.heartbeat(deviceId), subjects.deviceLogs(deviceId), subjects.bundleGet(deviceId), subjects.doorPeers(deviceId), subjects.doorUsage(deviceId),
        ...apps.map((app) => subjects.netInvoke(app, "*")),
      ],
    },
    sub: { allow: [subjects.control(deviceId), subjects.invoke(deviceId), `${subjects.inbox(deviceId)}.>`, ...apps.map((app) => subjects.netInvoke(app, deviceId))] },
    resp: { max: 1, ttlMs: replyTtlMs },
  };
}
