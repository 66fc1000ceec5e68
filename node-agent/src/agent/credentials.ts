/**
 * The device's fabric credential while the agent runs: nats.js reads the
 * creds file on every (re)connect, and a renewal timer asks the platform for
 * a new JWT for the same key at half its remaining life (the device token
 * authenticates; the seed never leaves the device), writes it, and tells the
 * agent so it can reconnect with it before the old one expires. A platform
 * that says the device is revoked stops the renewals for good.
 */
import { readFileSync } from "node:fs";
import { FabricCredential, formatZodError, HearthError } from "@hearth/protocol";
import { credsAuthenticator, type Authenticator } from "@nats-io/transport-node";
import { readCreds, writeCreds } from "../identity/index.ts";
import type { Logger } from "../log/index.ts";

/** Where and how to renew: the platform the device joined and its device token. */
export interface RenewOptions {
  platformUrl: string;
  deviceToken: string;
}

/** Renewal is tried no sooner than this before expiry, and retried this often after a failure (at most). */
const MIN_DELAY_MS = 1_000;
const RETRY_MAX_MS = 60_000;

export class FabricCredentials implements Disposable {
  readonly path: string;
  private readonly deviceId: string;
  private readonly renewal?: RenewOptions;
  private readonly log: Logger;
  private timer?: NodeJS.Timeout;
  private failures = 0;
  private stopped = false;
  /** Told once a new credential is on disk. */
  onRenewed?: () => void;
  /** Told when the platform refuses to renew because the device was revoked. */
  onRevoked?: (message: string) => void;

  constructor(options: { path: string; deviceId: string; renew?: RenewOptions; log: Logger }) {
    this.path = options.path;
    this.deviceId = options.deviceId;
    this.renewal = options.renew;
    this.log = options.log;
  }

  /** For `connect({ authenticator })`: the file as it is at each connect. */
  authenticator(): Authenticator {
    return credsAuthenticator(() => readFileSync(this.path));
  }

  /** Checks the file is there and readable; renews first when it is about to expire (a device back after days offline). */
  async prepare(): Promise<void> {
    const { expiresAt } = await readCreds(this.path);
    if (expiresAt !== undefined && expiresAt - Date.now() < 60_000 && this.renewal) await this.renew();
  }

  /** Starts the renewal timer. */
  async start(): Promise<void> {
    if (!this.renewal) return;
    const { expiresAt } = await readCreds(this.path);
    if (expiresAt !== undefined) this.schedule(Math.max(MIN_DELAY_MS, (expiresAt - Date.now()) / 2));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.renew().then(
        () => {
          this.failures = 0;
          this.onRenewed?.();
          void this.start();
        },
        (error: unknown) => {
          if (error instanceof HearthError && error.code === "ERR_DEVICE_REVOKED") {
            this.log.error({ code: error.code }, error.message);
            this.stopped = true;
            this.onRevoked?.(error.message);
            return;
          }
          this.failures++;
          const retry = Math.min(RETRY_MAX_MS, 1_000 * 2 ** Math.min(this.failures, 6));
          this.log.warn({ err: error, retryMs: retry }, "could not renew the fabric credential; trying again");
          this.schedule(retry);
        },
      );
    }, delayMs);
    this.timer.unref();
  }

  /** Renews now instead of at half-life (the server refused the credential). */
  renewNow(): void {
    if (this.renewal && !this.stopped) this.schedule(0);
  }

  /** Asks the platform for a new JWT for this device's key and writes it. */
  async renew(): Promise<void> {
    if (!this.renewal) throw new HearthError("ERR_BAD_REQUEST", "this device has no platform to renew its credential with; run hearth-agent join again");
    const { key } = await readCreds(this.path);
    const url = `${this.renewal.platformUrl}/v1/devices/${encodeURIComponent(this.deviceId)}/credentials`;
    let res: Response;
    try {
      res = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${this.renewal.deviceToken}` }, signal: AbortSignal.timeout(15_000) });
    } catch (error) {
      throw new HearthError("ERR_PLATFORM_UNREACHABLE", `cannot reach the platform at ${this.renewal.platformUrl}: ${(error as Error).message}`);
    }
    const body: unknown = await res.json().catch(() => undefined);
    if (!res.ok) {
      const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      throw HearthError.fromWire({ code: error?.code, message: error?.message ?? `the platform answered ${res.status}` });
    }
    const parsed = FabricCredential.safeParse(body);
    if (!parsed.success) throw new HearthError("ERR_BAD_MESSAGE", formatZodError(parsed.error, "credential renewal"));
    writeCreds(this.path, parsed.data.jwt, key);
    this.log.info({ expiresAt: parsed.data.expiresAt }, "fabric credential renewed");
  }

  /**
   * Takes a credential the platform handed over on the control subject (the
   * device's networks changed): only a JWT for this device's own key is
   * written; the agent then moves to a connection made with it.
   */
  async accept(jwt: string): Promise<void> {
    const { key } = await readCreds(this.path);
    const claims = jwtClaims(jwt);
    if (claims?.sub !== key.getPublicKey()) throw new HearthError("ERR_BAD_MESSAGE", "the handed-over credential is not for this device's key");
    writeCreds(this.path, jwt, key);
    this.log.info({ networks: networksOf(claims, this.deviceId) }, "fabric credential re-issued for this device's networks");
    // the timer follows the new expiry
    void this.start();
  }

  /** The app networks the credential on disk lets this device hear relays in (from its JWT's subscribe permissions). */
  async networks(): Promise<string[]> {
    const { jwt } = await readCreds(this.path);
    return networksOf(jwtClaims(jwt), this.deviceId);
  }

  [Symbol.dispose](): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

interface UserClaims {
  sub?: string;
  nats?: { sub?: { allow?: string[] } };
}

/** A JWT's claims, unverified (nats-server verifies; the device only reads what it was given). */
function jwtClaims(jwt: string): UserClaims | undefined {
  try {
    return JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8")) as UserClaims;
  } catch {
    return undefined;
  }
}

/** Apps whose relay subject (`<p>.net.<app>.invoke.<id>`) the claims let this device subscribe to. */
function networksOf(claims: UserClaims | undefined, deviceId: string): string[] {
  const out: string[] = [];
  for (const subject of claims?.nats?.sub?.allow ?? []) {
    const m = /\.net\.([a-z0-9-]+)\.invoke\.([A-Za-z0-9_-]+)$/.exec(subject);
    if (m && m[2] === deviceId) out.push(m[1]!);
  }
  return out;
}
