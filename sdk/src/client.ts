/** A typed client for the Hearth platform API. */
import {
  AppNetworkView,
  AppOwner,
  NetworkInviteResponse,
  CreateDeveloperResponse,
  DeveloperList,
  DeviceCredits,
  DeviceList,
  DoorList,
  encodeEnvHeader,
  ENV_HEADER,
  FunctionList,
  FunctionView,
  HearthError,
  IssuedToken,
  LogEntry,
  LogList,
  TokenList,
  UsageReport,
  VersionList,
  WhoAmI,
  type AppNetworkView as AppNetworkViewT,
  type NetworkInviteResponse as NetworkInviteResponseT,
  type AppOwner as AppOwnerT,
  type CreateDeveloperResponse as CreateDeveloperResponseT,
  type DeveloperView,
  type IssuedToken as IssuedTokenT,
  type TokenView,
  type WhoAmI as WhoAmIT,
  type DeviceCredits as DeviceCreditsT,
  type DeviceView,
  type DoorView as DoorViewT,
  type LogEntry as LogEntryT,
  type UsageReport as UsageReportT,
  type FunctionLimitsInput,
  type FunctionView as FunctionViewT,
  type VersionRecord,
  type CompatibilityFlag,
} from "@hearth/protocol";
import type { z } from "zod";
import { bundleFunction } from "./bundle.ts";
import { errorFrom } from "./errors.ts";

export interface HearthClientOptions {
  /** Platform base URL, e.g. http://127.0.0.1:8787 (HEARTH_PLATFORM_URL). */
  url: string;
  /**
   * API token (HEARTH_TOKEN): a developer's token for functions, logs and
   * usage; the operator's token (the platform's own HEARTH_TOKEN) for the
   * admin methods (developers, tokens, devices). Not needed for `doors()`,
   * which an app's own callers may ask without one.
   */
  token?: string;
  /** A fetch implementation; defaults to the global one. */
  fetch?: typeof fetch;
}

export interface DeployInput {
  app: string;
  name: string;
  /** The bundled ES module's source. Use `deployFile` to bundle from a path. */
  code: string | Uint8Array;
  limits?: FunctionLimitsInput;
  replicas?: number;
  /** Scale out to this many devices under load (at least `replicas`). Omitted: unchanged (no scaling out at first). */
  maxReplicas?: number;
  /** Scale to zero after this many seconds without a call (0: never; else at least 10). Omitted: unchanged (never at first). */
  scaleToZeroAfterSeconds?: number;
  /** The function's `env` argument: vars and secrets (strings). Omitted: the function keeps the env it has. */
  env?: Record<string, string>;
  /** Let the function `fetch` the internet (never private or local addresses). Omitted: unchanged (off at first). */
  allowFetch?: boolean;
  /** Narrow outbound fetch to these hosts (`api.example.com`, `*.example.com`); implies allowFetch. */
  fetchHosts?: string[];
  /** Ports besides 80/443 the function may fetch (the device's owner must allow them too). */
  fetchPorts?: number[];
  /** Compatibility flags, as Workers name them: `["nodejs_compat"]` for Node built-ins. `[]` clears them; omitted: unchanged. */
  compatibilityFlags?: CompatibilityFlag[];
  /** True: the app's functions run only on devices invited into its network; false: the public pool too. Omitted: unchanged. */
  private?: boolean;
  /**
   * Service bindings: `{ AUTH: "auth" }` gives the function `env.AUTH.fetch(request)`, a call to function `auth`
   * of the same app (as `env.call("auth", request)`). `{}` clears them; omitted: unchanged.
   */
  bindings?: Record<string, string>;
}

export interface LogsOptions {
  /** Lines stored since then: a Date, an ISO 8601 time, or a duration back from now (`30s`, `10m`, `2h`, `7d`). Default: all kept (7 days). */
  since?: Date | string;
  /** The newest this many lines (0-1000, default 100). */
  limit?: number;
  /** Only the lines of one call (its `X-Request-Id`). */
  requestId?: string;
  /** Only lines after this one (a line's `seq`): to go on from a line already seen. Wins over `since`. */
  after?: number;
}

export interface TailLogsOptions extends LogsOptions {
  /** Stops following; the iterator then ends. Breaking out of `for await` stops it too. */
  signal?: AbortSignal;
  /**
   * Told each time the stream was lost (the platform restarted, the network
   * dropped) and is being picked up again, after the last line received: no
   * line is missed or repeated. Without it, reconnecting is silent.
   */
  onReconnect?: (reason: Error) => void;
}

/** Waits between attempts to pick a lost log stream up again: growing, capped. */
const TAIL_RETRY_MS = [250, 500, 1_000, 2_000, 5_000] as const;

export interface InvokeInit {
  method?: string;
  headers?: HeadersInit;
  body?: BodyInit | null;
}

/**
 * The Hearth platform API.
 *
 * @example
 * const hearth = new HearthClient({ url: process.env.HEARTH_PLATFORM_URL!, token: process.env.HEARTH_TOKEN! });
 * const fn = await hearth.deployFile("src/index.ts", { app: "shop", name: "cart" });
 * await hearth.waitUntilReady("shop", "cart");
 * const res = await hearth.invoke("shop", "cart", "/items?id=1");
 */
export class HearthClient {
  readonly url: string;
  private readonly token: string | undefined;
  private readonly fetchImpl: typeof fetch;

  constructor(options: HearthClientOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new HearthError("ERR_BAD_REQUEST", `platform URL '${options.url}' is not a URL (e.g. http://127.0.0.1:8787)`);
    }
    this.url = base.href.replace(/\/+$/, "");
    this.token = options.token;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  private async api<S extends z.ZodType>(method: string, path: string, schema: S | null, init: { body?: BodyInit; query?: Record<string, string>; json?: unknown; headers?: Record<string, string> } = {}): Promise<z.output<S>> {
    const url = new URL(`${this.url}/v1${path}`);
    for (const [k, v] of Object.entries(init.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = { ...init.headers, ...(this.token !== undefined ? { authorization: `Bearer ${this.token}` } : {}) };
    let body = init.body;
    if (init.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(init.json);
    } else if (body !== undefined) headers["content-type"] = "application/javascript";
    let response: Response;
    try {
      response = await this.fetchImpl(url, { method, headers, body });
    } catch (error) {
      throw new HearthError("ERR_PLATFORM_UNREACHABLE", `cannot reach the platform at ${this.url}: ${(error as Error).message}`, { cause: error });
    }
    if (!response.ok) throw await errorFrom(response);
    if (!schema) return undefined as z.output<S>;
    const parsed = schema.safeParse(await response.json());
    if (!parsed.success) throw new HearthError("ERR_BAD_MESSAGE", `the platform sent an unexpected answer to ${method} ${path}`);
    return parsed.data;
  }

  /**
   * Uploads a bundled function as a new version and points the function at it.
   *
   * @example
   * await hearth.deploy({ app: "shop", name: "cart", code: "export default { fetch: () => new Response('hi') }" });
   */
  async deploy(input: DeployInput): Promise<FunctionViewT> {
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(input.limits ?? {})) if (v !== undefined) query[k] = String(v);
    if (input.replicas !== undefined) query["replicas"] = String(input.replicas);
    if (input.maxReplicas !== undefined) query["maxReplicas"] = String(input.maxReplicas);
    if (input.scaleToZeroAfterSeconds !== undefined) query["scaleToZeroAfter"] = String(input.scaleToZeroAfterSeconds);
    if (input.allowFetch !== undefined) query["allowFetch"] = String(input.allowFetch);
    if (input.fetchHosts !== undefined) query["fetchHosts"] = input.fetchHosts.join(",");
    if (input.fetchPorts !== undefined) query["fetchPorts"] = input.fetchPorts.join(",");
    if (input.compatibilityFlags !== undefined) query["compat"] = input.compatibilityFlags.join(",") || "none";
    if (input.private !== undefined) query["private"] = String(input.private);
    if (input.bindings !== undefined) {
      const pairs = Object.entries(input.bindings).map(([name, fn]) => `${name}=${fn}`);
      query["bind"] = pairs.length > 0 ? pairs.join(",") : "none";
    }
    // the env (secrets) goes in a header, never in the URL
    const headers = input.env !== undefined ? { [ENV_HEADER]: encodeEnvHeader(input.env) } : undefined;
    const code = typeof input.code === "string" ? new TextEncoder().encode(input.code) : input.code;
    return this.api("PUT", `/apps/${enc(input.app)}/functions/${enc(input.name)}`, FunctionView, { body: code as BodyInit, query, headers });
  }

  /**
   * Bundles `entry` with esbuild (for its compatibility flags) and deploys it.
   *
   * @example
   * await hearth.deployFile("examples/hello/src/index.ts", { app: "demo", name: "hello" });
   * await hearth.deployFile("src/index.ts", { app: "demo", name: "node", compatibilityFlags: ["nodejs_compat"] });
   */
  async deployFile(entry: string, input: Omit<DeployInput, "code">): Promise<FunctionViewT> {
    const options = input.compatibilityFlags ? { compatibilityFlags: input.compatibilityFlags } : {};
    return this.deploy({ ...input, code: await bundleFunction(entry, options) });
  }

  /**
   * Waits until a device serves the function's current version.
   *
   * @example
   * const fn = await hearth.waitUntilReady("demo", "hello", { timeoutMs: 30_000 });
   */
  async waitUntilReady(app: string, name: string, options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<FunctionViewT> {
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    for (;;) {
      const fn = await this.get(app, name);
      if (fn.status === "ready") return fn;
      if (Date.now() > deadline) {
        throw new HearthError("ERR_NO_DEVICE", `no device took ${app}/${name} within ${options.timeoutMs ?? 30_000} ms; check that agents are running (the operator lists them: GET /v1/devices)`);
      }
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 200));
    }
  }

  /**
   * Lists functions, of one app or all.
   *
   * @example
   * const fns = await hearth.list("demo");
   */
  async list(app?: string): Promise<FunctionViewT[]> {
    const path = app ? `/apps/${enc(app)}/functions` : "/functions";
    return (await this.api("GET", path, FunctionList)).functions;
  }

  /**
   * One function: its version, limits, status and devices.
   *
   * @example
   * const fn = await hearth.get("demo", "hello");
   */
  async get(app: string, name: string): Promise<FunctionViewT> {
    return this.api("GET", `/apps/${enc(app)}/functions/${enc(name)}`, FunctionView);
  }

  /**
   * Deletes a function; devices stop serving it within seconds.
   *
   * @example
   * await hearth.delete("demo", "hello");
   */
  async delete(app: string, name: string): Promise<void> {
    await this.api("DELETE", `/apps/${enc(app)}/functions/${enc(name)}`, null);
  }

  /**
   * Every version ever deployed, newest first.
   *
   * @example
   * const [latest] = await hearth.versions("demo", "hello");
   */
  async versions(app: string, name: string): Promise<VersionRecord[]> {
    return (await this.api("GET", `/apps/${enc(app)}/functions/${enc(name)}/versions`, VersionList)).versions;
  }

  /**
   * Points the function back at an older version.
   *
   * @example
   * await hearth.rollback("demo", "hello", previous.version);
   */
  async rollback(app: string, name: string, version: string): Promise<FunctionViewT> {
    return this.api("POST", `/apps/${enc(app)}/functions/${enc(name)}/rollback`, FunctionView, { json: { version } });
  }

  /**
   * Who this client's token is: a developer (id, name, and which of their
   * tokens) or the operator.
   *
   * @example
   * const me = await hearth.whoami();
   * if (me.kind === "developer") console.log(`signed in as ${me.developer.name}`);
   */
  async whoami(): Promise<WhoAmIT> {
    return this.api("GET", "/whoami", WhoAmI);
  }

  /**
   * Creates a developer and their first API token (operator token). The
   * token's value is in this answer only: hand it to the developer.
   *
   * @example
   * const operator = new HearthClient({ url, token: process.env.HEARTH_OPERATOR_TOKEN! });
   * const { developer, token } = await operator.createDeveloper("ada");
   * const ada = new HearthClient({ url, token: token.value });
   */
  async createDeveloper(name: string, options: { tokenName?: string } = {}): Promise<CreateDeveloperResponseT> {
    return this.api("POST", "/developers", CreateDeveloperResponse, { json: { name, ...options } });
  }

  /**
   * Every developer, with how many of their tokens work (operator token).
   *
   * @example
   * for (const d of await operator.developers()) console.log(d.id, d.name, d.activeTokens);
   */
  async developers(): Promise<DeveloperView[]> {
    return (await this.api("GET", "/developers", DeveloperList)).developers;
  }

  /**
   * One more API token for a developer (operator token); its value is in this answer only.
   *
   * @example
   * const ci = await operator.createToken(developer.id, { name: "ci" });
   * console.log(ci.value);
   */
  async createToken(developerId: string, options: { name?: string } = {}): Promise<IssuedTokenT> {
    return this.api("POST", `/developers/${enc(developerId)}/tokens`, IssuedToken, { json: options });
  }

  /**
   * A developer's tokens, newest first: id, name, created, last used, revoked; never a value (operator token).
   *
   * @example
   * const unused = (await operator.tokens(developer.id)).filter((t) => !t.lastUsedAt);
   */
  async tokens(developerId: string): Promise<TokenView[]> {
    return (await this.api("GET", `/developers/${enc(developerId)}/tokens`, TokenList)).tokens;
  }

  /**
   * Revokes a developer's token (operator token): the next request with it
   * fails with ERR_TOKEN_REVOKED. Revoking it again changes nothing.
   *
   * @example
   * await operator.revokeToken(developer.id, token.id);
   */
  async revokeToken(developerId: string, tokenId: string): Promise<void> {
    await this.api("DELETE", `/developers/${enc(developerId)}/tokens/${enc(tokenId)}`, null);
  }

  /**
   * Gives an app to a developer (operator token): a transfer, or an app
   * deployed before apps had owners. Only the new owner's tokens reach it.
   *
   * @example
   * await operator.assignApp("shop", developer.id);
   */
  async assignApp(app: string, developerId: string): Promise<AppOwnerT> {
    return this.api("PUT", `/apps/${enc(app)}/owner`, AppOwner, { json: { developerId } });
  }

  /**
   * Live devices and what they offer (operator token).
   *
   * @example
   * const devices = await hearth.devices();
   */
  async devices(): Promise<DeviceView[]> {
    return (await this.api("GET", "/devices", DeviceList)).devices;
  }

  /**
   * The reachable doors of an app's network, nearest first: devices whose
   * owners opened and advertised a door, that the platform reached there,
   * live and members of the app's network. Call `<door.url>/fn/<app>/<fn>/...`
   * on one; a function in `door.functions` runs there, others are relayed.
   * `near`: a region (`"eu"`) or coordinates; without it, the platform's
   * own region (or the caller's location, behind a geolocating proxy).
   * Needs no token (the list is for the app's own callers).
   *
   * @example
   * const doors = await new HearthClient({ url }).doors("shop", { near: { lat: 52.52, lon: 13.4 } });
   * const res = await fetch(`${doors[0]?.url ?? url}/fn/shop/cart/items`);
   */
  async doors(app: string, options: { near?: string | { lat: number; lon: number } } = {}): Promise<DoorViewT[]> {
    const query: Record<string, string> = {};
    if (options.near !== undefined) query["near"] = typeof options.near === "string" ? options.near : `${options.near.lat},${options.near.lon}`;
    return (await this.api("GET", `/apps/${enc(app)}/doors`, DoorList, { query })).doors;
  }

  /**
   * Usage of your apps (calls, CPU-seconds, bytes), by day and function.
   *
   * @example
   * const { apps } = await hearth.usage({ app: "demo" });
   * console.log(apps[0]?.totals.cpuSeconds);
   */
  async usage(filter: { app?: string; day?: string } = {}): Promise<UsageReportT> {
    const query: Record<string, string> = {};
    if (filter.app !== undefined) query["app"] = filter.app;
    if (filter.day !== undefined) query["day"] = filter.day;
    return this.api("GET", "/usage", UsageReport, { query });
  }

  /**
   * A device's credits by day (1 credit = 1 CPU-second served). Needs the
   * operator token or the device's own token.
   *
   * @example
   * const credits = await hearth.deviceCredits("my-laptop");
   */
  async deviceCredits(deviceId: string, filter: { day?: string } = {}): Promise<DeviceCreditsT> {
    const query: Record<string, string> = {};
    if (filter.day !== undefined) query["day"] = filter.day;
    return this.api("GET", `/devices/${enc(deviceId)}/credits`, DeviceCredits, { query });
  }

  /**
   * A function's newest console lines, oldest first: level, request id,
   * device, time (`at`, ms since epoch) and message. Lines show within about
   * a second of the call and are kept for 7 days (at most 20,000 per function).
   *
   * @example
   * const res = await hearth.invoke("demo", "hello", "/greet");
   * const lines = await hearth.logs("demo", "hello", { requestId: res.headers.get("x-request-id")!, since: "10m" });
   * for (const l of lines) console.log(new Date(l.at).toISOString(), l.level, l.message);
   */
  async logs(app: string, name: string, options: LogsOptions = {}): Promise<LogEntryT[]> {
    return (await this.api("GET", `/apps/${enc(app)}/functions/${enc(name)}/logs`, LogList, { query: logsQuery(options) })).lines;
  }

  /**
   * Follows a function's console lines: first its newest lines (as `logs`
   * gives them), then each new line as the function writes it, until
   * `signal` aborts or the loop stops. Runs on Node 20 too (fetch and
   * Server-Sent Events parsed here, no EventSource needed).
   *
   * @example
   * const stop = new AbortController();
   * for await (const line of hearth.tailLogs("demo", "hello", { limit: 10, signal: stop.signal })) {
   *   console.log(line.level, line.requestId, line.message);
   *   if (line.message.includes("done")) break;
   * }
   */
  async *tailLogs(app: string, name: string, options: TailLogsOptions = {}): AsyncGenerator<LogEntryT, void, undefined> {
    const { signal } = options;
    let after: number | undefined = options.after;
    let connected = false;
    for (let attempt = 0; !signal?.aborted; attempt++) {
      let lost: Error;
      try {
        // after a loss, pick up after the last line received (every line since, whatever `limit` said)
        // (at most 1,000 lines: more written while it was away and the oldest of them are skipped)
        const resume: Record<string, string> = connected && after !== undefined ? { after: String(after), limit: "1000" } : {};
        for await (const line of this.followOnce(app, name, { ...logsQuery(options), ...resume, follow: "1" }, signal, () => (connected = true))) {
          after = line.seq;
          attempt = 0;
          yield line;
        }
        if (signal?.aborted) return;
        lost = new HearthError("ERR_PLATFORM_UNREACHABLE", "the platform ended the log stream");
      } catch (error) {
        if (signal?.aborted) return;
        // the first connection's failure (wrong URL, token, function) is the caller's to see; later losses are
        // retried, and so is a platform process that is stopping or full when it is asked again
        const retryable = error instanceof HearthError && (error.code === "ERR_PLATFORM_UNREACHABLE" || error.code === "ERR_LOGS_UNAVAILABLE");
        if (!connected || !retryable) throw error;
        lost = error as HearthError;
      }
      options.onReconnect?.(lost);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, TAIL_RETRY_MS[Math.min(attempt, TAIL_RETRY_MS.length - 1)]);
        signal?.addEventListener("abort", done, { once: true });
      });
    }
  }

  /** One follow connection: its lines until the stream ends. */
  private async *followOnce(app: string, name: string, query: Record<string, string>, signal: AbortSignal | undefined, onOpen: () => void): AsyncGenerator<LogEntryT, void, undefined> {
    const url = new URL(`${this.url}/v1/apps/${enc(app)}/functions/${enc(name)}/logs`);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    let response: Response;
    try {
      response = await this.fetchImpl(url, { headers: { authorization: `Bearer ${this.token}`, accept: "text/event-stream" }, signal });
    } catch (error) {
      if (signal?.aborted) return;
      throw new HearthError("ERR_PLATFORM_UNREACHABLE", `cannot reach the platform at ${this.url}: ${(error as Error).message}`, { cause: error });
    }
    if (!response.ok) throw await errorFrom(response);
    onOpen();
    if (!response.body) throw new HearthError("ERR_BAD_MESSAGE", "the platform sent a follow answer without a body");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (signal?.aborted) return;
          throw new HearthError("ERR_PLATFORM_UNREACHABLE", `lost the log stream from ${this.url}: ${(error as Error).message}`, { cause: error });
        }
        if (chunk.done) return;
        // normalised after joining, so a CRLF split across two chunks still counts as one line end
        buffered = (buffered + decoder.decode(chunk.value, { stream: true })).replace(/\r\n/g, "\n");
        let end: number;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffered.slice(0, end));
          buffered = buffered.slice(end + 2);
          if (event.type === "line") {
            const parsed = LogEntry.safeParse(jsonOrUndefined(event.data));
            if (!parsed.success) throw new HearthError("ERR_BAD_MESSAGE", "the platform sent a log line this SDK does not understand");
            yield parsed.data;
          } else if (event.type === "error") {
            const body = jsonOrUndefined(event.data) as { error?: { code?: unknown; message?: unknown } } | undefined;
            throw HearthError.fromWire(body?.error ?? {});
          }
        }
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  /**
   * A single-use invite into one of your apps' networks, for a device owner
   * to redeem (`hearth-agent networks add <invite>`); it expires after
   * `ttlSeconds` (default one day).
   *
   * @example
   * const { invite } = await hearth.networkInvite("shop", { ttlSeconds: 3600 });
   */
  async networkInvite(app: string, options: { ttlSeconds?: number } = {}): Promise<NetworkInviteResponseT> {
    return this.api("POST", `/apps/${enc(app)}/network/invites`, NetworkInviteResponse, { json: options });
  }

  /**
   * Your app's network: whether it is private, and the devices invited into it.
   *
   * @example
   * const { members } = await hearth.network("shop");
   */
  async network(app: string): Promise<AppNetworkViewT> {
    return this.api("GET", `/apps/${enc(app)}/network`, AppNetworkView);
  }

  /**
   * Makes an app private (placed only on devices invited into its network) or public again.
   *
   * @example
   * await hearth.setAppPrivate("shop", true);
   */
  async setAppPrivate(app: string, value: boolean): Promise<AppNetworkViewT> {
    return this.api("PUT", `/apps/${enc(app)}/network`, AppNetworkView, { json: { private: value } });
  }

  /**
   * Removes a device from your app's network: the app's functions leave it,
   * and its credential is signed again without the network.
   *
   * @example
   * await hearth.removeNetworkMember("shop", "attic-pc");
   */
  async removeNetworkMember(app: string, deviceId: string): Promise<void> {
    await this.api("DELETE", `/apps/${enc(app)}/network/members/${enc(deviceId)}`, null);
  }

  /**
   * Calls a function through the gateway, like any HTTP client would.
   *
   * @example
   * const res = await hearth.invoke("demo", "hello", "/greet?name=Ada");
   * console.log(await res.json());
   */
  async invoke(app: string, name: string, path = "/", init: InvokeInit = {}): Promise<Response> {
    const suffix = path.startsWith("/") ? path : `/${path}`;
    return this.fetchImpl(`${this.url}/fn/${enc(app)}/${enc(name)}${suffix}`, init as RequestInit);
  }

  /** The public URL of a function. */
  functionUrl(app: string, name: string): string {
    return `${this.url}/fn/${enc(app)}/${enc(name)}`;
  }
}

function logsQuery(options: LogsOptions): Record<string, string> {
  const query: Record<string, string> = {};
  if (options.since !== undefined) query["since"] = options.since instanceof Date ? options.since.toISOString() : options.since;
  if (options.limit !== undefined) query["limit"] = String(options.limit);
  if (options.requestId !== undefined) query["requestId"] = options.requestId;
  if (options.after !== undefined) query["after"] = String(options.after);
  return query;
}

/** One Server-Sent Event: its type (`message` when unnamed) and its data lines joined; comments dropped. */
function parseEvent(block: string): { type: string; data: string } {
  let type = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  return { type, data: data.join("\n") };
}

function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}
