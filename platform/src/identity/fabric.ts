/**
 * The fabric's authority: the NATS operator, account and signing keys the
 * platform holds, and what it makes from them — the nats-server
 * configuration that trusts them (decentralized JWT auth, a `full` NATS
 * resolver), the platform's own credentials, and each device's user JWT
 * with exactly the permissions of `devicePermissions` (protocol/).
 *
 * Seeds are kept in one file (0600) or one environment variable, never in
 * Redis or a log line; public keys and JWTs are not secret. See
 * docs/security.md.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { DEVICE_CREDENTIAL_LIMITS, devicePermissions, HearthError, type Subjects } from "@hearth/protocol";
import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  fromPublic,
  fromSeed,
  type Account,
  type KeyPair,
} from "@nats-io/jwt";
import { z } from "zod";

const Seed = (prefix: string) => z.string().regex(new RegExp(`^S${prefix}[A-Z2-7]{56}$`), `must be an nkey seed starting with S${prefix}`);

/** The seeds the platform holds. `account` holds the platform and every device; `system` is nats-server's own. */
export const FabricKeys = z.strictObject({
  v: z.literal(1),
  operator: Seed("O"),
  system: Seed("A"),
  account: Seed("A"),
  /** Signs user JWTs (platform and devices), so the account's identity key signs only account updates. */
  signer: Seed("A"),
});
export type FabricKeys = z.infer<typeof FabricKeys>;

/** The environment variables that carry the keys (docs/configuration.md). */
export const FABRIC_KEYS_FILE_ENV = "HEARTH_FABRIC_KEYS_FILE";
export const FABRIC_KEYS_ENV = "HEARTH_FABRIC_KEYS";

const text = new TextDecoder();
const seedOf = (kp: KeyPair) => text.decode(kp.getSeed());

export function generateFabricKeys(): FabricKeys {
  return { v: 1, operator: seedOf(createOperator()), system: seedOf(createAccount()), account: seedOf(createAccount()), signer: seedOf(createAccount()) };
}

/** Writes the keys file (0600, atomically). */
export function writeFabricKeys(path: string, keys: FabricKeys): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(keys, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Parses keys from a file's or a variable's text; the error names where they came from, never a seed. */
export function parseFabricKeys(raw: string, where: string): FabricKeys {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    throw new HearthError("ERR_BAD_REQUEST", `${where} is not JSON; make it with hearth-platform fabric init`);
  }
  const parsed = FabricKeys.safeParse(data);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => i.path.join(".") || "(root)"))].join(", ");
    throw new HearthError("ERR_BAD_REQUEST", `${where} holds no valid fabric keys (bad or missing: ${fields}); make it with hearth-platform fabric init`);
  }
  return parsed.data;
}

/** Reads the keys from HEARTH_FABRIC_KEYS (the JSON itself) or HEARTH_FABRIC_KEYS_FILE (its path). */
export function readFabricKeys(env: NodeJS.ProcessEnv = process.env): FabricKeys {
  const inline = env[FABRIC_KEYS_ENV];
  if (inline) return parseFabricKeys(inline, FABRIC_KEYS_ENV);
  const file = env[FABRIC_KEYS_FILE_ENV];
  if (!file) {
    throw new HearthError(
      "ERR_BAD_REQUEST",
      `the fabric keys are not configured: set ${FABRIC_KEYS_FILE_ENV} to the file hearth-platform fabric init wrote (or ${FABRIC_KEYS_ENV} to its contents)`,
    );
  }
  let raw: string;
  try {
    raw = readFileSync(file, "utf8");
  } catch (error) {
    throw new HearthError("ERR_BAD_REQUEST", `cannot read ${FABRIC_KEYS_FILE_ENV}=${file}: ${(error as NodeJS.ErrnoException).code ?? "unreadable"}`);
  }
  return parseFabricKeys(raw, file);
}

/** Limits of an account: none but what the server enforces (-1 = unlimited). */
const OPEN_LIMITS = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
/** The Hearth account keeps the usage and logs streams: JetStream on. */
const JETSTREAM_LIMITS = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };

/** Public keys are the names nats-server knows the parties by. */
export interface FabricPublicKeys {
  operator: string;
  system: string;
  account: string;
  signer: string;
}

/** A device user JWT's facts as the platform chose them. */
export interface DeviceCredentialOptions {
  deviceId: string;
  /** The device's own nkey (a `U...` public key); its seed never leaves the device. */
  publicKey: string;
  subjects: Subjects;
  /** Lifetime in seconds. */
  ttlSeconds: number;
  /** How long a device may take to answer a request it received (ms). */
  replyTtlMs: number;
  /** The app networks it is a member of: it may relay in them, and be relayed to (devicePermissions). */
  networks?: readonly string[];
}

export class FabricAuthority {
  readonly keys: FabricKeys;
  readonly publicKeys: FabricPublicKeys;
  private readonly operator: KeyPair;
  private readonly system: KeyPair;
  private readonly account: KeyPair;
  private readonly signer: KeyPair;
  private lastIssuedAt = 0;

  constructor(keys: FabricKeys) {
    this.keys = FabricKeys.parse(keys);
    const kp = (seed: string) => fromSeed(new TextEncoder().encode(seed));
    this.operator = kp(keys.operator);
    this.system = kp(keys.system);
    this.account = kp(keys.account);
    this.signer = kp(keys.signer);
    this.publicKeys = {
      operator: this.operator.getPublicKey(),
      system: this.system.getPublicKey(),
      account: this.account.getPublicKey(),
      signer: this.signer.getPublicKey(),
    };
  }

  static generate(): FabricAuthority {
    return new FabricAuthority(generateFabricKeys());
  }

  operatorJwt(): Promise<string> {
    return encodeOperator("hearth", this.operator, { system_account: this.publicKeys.system });
  }

  systemAccountJwt(): Promise<string> {
    return encodeAccount("SYS", this.system, { limits: OPEN_LIMITS }, { signer: this.operator });
  }

  /**
   * The Hearth account's JWT with its revocations (user public key → unix
   * seconds: every JWT of that user issued at or before then is refused and
   * its connections closed). nats-server keeps an update only when it is
   * newer than the one it has, so no two are issued within the same second.
   */
  async accountJwt(revocations: Record<string, number> = {}): Promise<string> {
    const wait = this.lastIssuedAt + 1 - Date.now() / 1000;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait * 1000)));
    this.lastIssuedAt = Math.floor(Date.now() / 1000);
    const account: Partial<Account> = {
      limits: { ...OPEN_LIMITS, ...JETSTREAM_LIMITS },
      signing_keys: [this.publicKeys.signer],
      ...(Object.keys(revocations).length > 0 ? { revocations } : {}),
    };
    return encodeAccount("HEARTH", this.account, account, { signer: this.operator });
  }

  /**
   * The nats-server configuration lines that make it trust this authority
   * and nothing else (no anonymous clients): the operator, the system
   * account, and a `full` resolver in `resolverDir` preloaded with both
   * accounts; the platform pushes later account updates (revocations).
   */
  async serverConfig(resolverDir: string): Promise<string> {
    const [operator, system, account] = await Promise.all([this.operatorJwt(), this.systemAccountJwt(), this.accountJwt()]);
    return [
      "# Fabric authentication (hearth-platform fabric init): decentralized JWT, see docs/security.md",
      `operator: ${operator}`,
      `system_account: ${this.publicKeys.system}`,
      `resolver: { type: full, dir: ${JSON.stringify(resolverDir)}, allow_delete: false, interval: "2m", timeout: "5s" }`,
      "resolver_preload: {",
      `  ${this.publicKeys.system}: ${system}`,
      `  ${this.publicKeys.account}: ${account}`,
      "}",
      "",
    ].join("\n");
  }

  /** Credentials (a `.creds` file's bytes) for a platform process: a fresh user key each time, the whole account. */
  async platformCreds(name = "hearth-platform"): Promise<Uint8Array> {
    const user = createUser();
    const jwt = await encodeUser(name, user, this.account, { tags: ["hearth:platform"] }, { signer: this.signer });
    return fmtCreds(jwt, user);
  }

  /** Credentials in nats-server's own system account, for pushing account updates. */
  async systemCreds(name = "hearth-platform-system"): Promise<Uint8Array> {
    const user = createUser();
    const jwt = await encodeUser(name, user, this.system, {}, { signer: this.system });
    return fmtCreds(jwt, user);
  }

  /** A device's user JWT: its own public key, its permissions, an expiry. */
  async deviceJwt(options: DeviceCredentialOptions): Promise<string> {
    const user = fromPublic(options.publicKey);
    const permissions = devicePermissions(options.subjects, options.deviceId, options.replyTtlMs, options.networks ?? []);
    return encodeUser(
      options.deviceId,
      user,
      this.account,
      {
        pub: { allow: permissions.pub.allow },
        sub: { allow: permissions.sub.allow },
        // nats-server reads the reply window in nanoseconds
        resp: { max: permissions.resp.max, ttl: permissions.resp.ttlMs * 1_000_000 },
        // nats-server refuses a bigger message or one more subscription
        payload: DEVICE_CREDENTIAL_LIMITS.payloadBytes,
        subs: DEVICE_CREDENTIAL_LIMITS.subscriptions,
        tags: [`hearth:device:${options.deviceId}`],
        // a device connects as a client; a home leaf node has a credential of its own
        allowed_connection_types: ["STANDARD", "WEBSOCKET"],
      },
      { signer: this.signer, exp: Math.floor(Date.now() / 1000) + options.ttlSeconds },
    );
  }
}



