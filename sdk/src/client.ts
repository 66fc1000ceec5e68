/** A typed client for the Hearth platform API. */
import {
  DeviceCredits,
  DeviceList,
  encodeEnvHeader,
  ENV_HEADER,
  FunctionList,
  FunctionView,
  HearthError,
  UsageReport,
  VersionList,
  type DeviceCredits as DeviceCreditsT,
  type DeviceView,
  type UsageReport as UsageReportT,
  type FunctionLimitsInput,
  type FunctionView as FunctionViewT,
  type VersionRecord,
} from "@hearth/protocol";
import type { z } from "zod";
import { bundleFunction } from "./bundle.ts";
import { errorFrom } from "./errors.ts";

export interface HearthClientOptions {
  /** Platform base URL, e.g. http://127.0.0.1:8787 (HEARTH_PLATFORM_URL). */
  url: string;
  /** API token (HEARTH_TOKEN). */
  token: string;
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
  /** The function's `env` argument: vars and secrets (strings). Omitted: the function keeps the env it has. */
  env?: Record<string, string>;
  /** Let the function `fetch` the internet (never private or local addresses). Omitted: unchanged (off at first). */
  allowFetch?: boolean;
  /** Narrow outbound fetch to these hosts (`api.example.com`, `*.example.com`); implies allowFetch. */
  fetchHosts?: string[];
}

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
  private readonly token: string;
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
    const headers: Record<string, string> = { ...init.headers, authorization: `Bearer ${this.token}` };
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
    if (input.allowFetch !== undefined) query["allowFetch"] = String(input.allowFetch);
    if (input.fetchHosts !== undefined) query["fetchHosts"] = input.fetchHosts.join(",");
    // the env (secrets) goes in a header, never in the URL
    const headers = input.env !== undefined ? { [ENV_HEADER]: encodeEnvHeader(input.env) } : undefined;
    const code = typeof input.code === "string" ? new TextEncoder().encode(input.code) : input.code;
    return this.api("PUT", `/apps/${enc(input.app)}/functions/${enc(input.name)}`, FunctionView, { body: code as BodyInit, query, headers });
  }

  /**
   * Bundles `entry` with esbuild and deploys it.
   *
   * @example
   * await hearth.deployFile("examples/hello/src/index.ts", { app: "demo", name: "hello" });
   */
  async deployFile(entry: string, input: Omit<DeployInput, "code">): Promise<FunctionViewT> {
    return this.deploy({ ...input, code: await bundleFunction(entry) });
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
        throw new HearthError("ERR_NO_DEVICE", `no device took ${app}/${name} within ${options.timeoutMs ?? 30_000} ms; check that agents are running (GET /v1/devices)`);
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
   * Live devices and what they offer.
   *
   * @example
   * const devices = await hearth.devices();
   */
  async devices(): Promise<DeviceView[]> {
    return (await this.api("GET", "/devices", DeviceList)).devices;
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
   * A device's credits by day (1 credit = 1 CPU-second served). Needs the API
   * token or the device's own token.
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

function enc(segment: string): string {
  return encodeURIComponent(segment);
}
