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

/** Subjects of the fabric. A prefix lets several Hearths (or tests) share one nats-server. */
export class Subjects {
  readonly prefix: string;
  constructor(prefix = "hearth") {
    this.prefix = prefix;
  }
  /** Invocation subject of one function; its devices subscribe in one queue group. */
  invoke(app: string, fn: string): string {
    return `${this.prefix}.invoke.${app}.${fn}`;
  }
  /** Control subject of one device: placements arrive here. */
  control(deviceId: string): string {
    return `${this.prefix}.device.${deviceId}.control`;
  }
  get heartbeat(): string {
    return `${this.prefix}.heartbeat`;
  }
  get bundleGet(): string {
    return `${this.prefix}.bundle.get`;
  }
}

/** Queue group of every function's devices. */
export const INVOKE_QUEUE = "devices";
