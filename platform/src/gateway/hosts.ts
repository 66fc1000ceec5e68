/**
 * Which origin a request is on. With an app domain configured
 * (`HEARTH_APP_DOMAIN`), each app is served on its own host
 * `<app>.<app-domain>`, so browsers keep one app's pages, cookies and storage
 * away from every other app's and from the API's (docs/security.md,
 * "Browsers: one origin per app"). The request's host is validated before
 * anything else looks at it.
 */
import { AppName } from "@hearth/protocol";
import { z } from "zod";
import { AppDomain } from "../config/index.ts";

/** One DNS label as browsers and resolvers take it (RFC 1035, plus `_`, which real names carry). */
const LABEL = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?";

/**
 * A request's host name, as the URL parser left it (lowercased, IPv6 in
 * brackets): DNS labels with an optional trailing dot, or an IP literal.
 * RFC 9112 §3.2 asks for 400 on anything else.
 */
export const RequestHostName = z
  .string()
  .max(254)
  .regex(new RegExp(`^(?:(?:${LABEL}\\.)*${LABEL}\\.?|\\[[0-9a-f:.]{2,45}\\])$`));

/** What a request's host is to the gateway. */
export type HostKind =
  /** An app's own host: everything on it goes to that app. */
  | { kind: "app"; app: string }
  /** On the app domain but no app's host (the domain itself, a deeper name, a label no app can have): nothing answers there but a 404. */
  | { kind: "app-domain"; label: string }
  /** Not on the app domain: the API and the path form. */
  | { kind: "other" };

/** The app domain and the URLs of apps on it. */
export class AppHosts {
  readonly domain: string;
  private readonly suffix: string;
  private readonly publicUrl: () => string;

  /** `publicUrl` gives the scheme and port app URLs use (apps sit behind the same TLS terminator as the API). */
  constructor(domain: string, publicUrl: () => string) {
    this.domain = AppDomain.parse(domain);
    this.suffix = `.${this.domain}`;
    this.publicUrl = publicUrl;
  }

  /** Classifies a validated host name (see RequestHostName). */
  classify(hostname: string): HostKind {
    const name = hostname.endsWith(".") ? hostname.slice(0, -1) : hostname;
    if (name === this.domain) return { kind: "app-domain", label: "" };
    if (!name.endsWith(this.suffix)) return { kind: "other" };
    const label = name.slice(0, -this.suffix.length);
    if (label.includes(".") || !AppName.safeParse(label).success) return { kind: "app-domain", label };
    return { kind: "app", app: label };
  }

  /** The origin an app is served on, e.g. `https://shop.fn.example.org`. */
  origin(app: string): string {
    const base = new URL(this.publicUrl());
    return `${base.protocol}//${app}.${this.domain}${base.port ? `:${base.port}` : ""}`;
  }

  /** A function's URL: `<origin>/<fn>`. */
  functionUrl(app: string, fn: string): string {
    return `${this.origin(app)}/${fn}`;
  }
}

export { firstSegment } from "@hearth/edge";
