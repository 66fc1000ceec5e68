/**
 * `hearth-platform developers ...`: the operator manages developers and
 * their API tokens through the platform's admin API, with the operator
 * token (HEARTH_TOKEN) and the platform's URL (`--url`, HEARTH_PLATFORM_URL,
 * HEARTH_PUBLIC_URL, or HEARTH_HOST:HEARTH_PORT). A developer is named by
 * id (`dev_...`) or by name.
 */
import {
  AppName,
  AppOwner,
  CreateDeveloperResponse,
  DeveloperId,
  DeveloperList,
  formatZodError,
  HearthError,
  IssuedToken,
  isErrorCode,
  TokenId,
  TokenList,
  TokenName,
  DeveloperName,
  type DeveloperView,
} from "@hearth/protocol";
import { Command } from "commander";
import { z } from "zod";
import { readAdminEnv } from "../config/index.ts";

const out = (line = ""): void => {
  process.stdout.write(line + "\n");
};

function parse<T extends z.ZodType>(schema: T, value: unknown, subject: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", formatZodError(parsed.error, subject));
  return parsed.data;
}

/** The admin API over HTTP with the operator token. */
export class AdminApi {
  readonly url: string;
  private readonly token: string;

  constructor(url: string, token: string) {
    this.url = url.replace(/\/+$/, "");
    this.token = token;
  }

  async call<S extends z.ZodType>(method: string, path: string, schema: S | null, json?: unknown): Promise<z.output<S>> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (json !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(`${this.url}/v1${path}`, { method, headers, body: json === undefined ? undefined : JSON.stringify(json), signal: AbortSignal.timeout(30_000) });
    } catch (error) {
      throw new HearthError("ERR_PLATFORM_UNREACHABLE", `cannot reach the platform at ${this.url} (${(error as Error).message}); is it running? Pass --url or set HEARTH_PLATFORM_URL`, { cause: error });
    }
    const text = await response.text();
    if (!response.ok) {
      const envelope = jsonOf(text) as { error?: { code?: unknown; message?: unknown } } | undefined;
      const code = envelope?.error?.code;
      if (isErrorCode(code)) {
        const hint = code === "ERR_TOKEN_UNKNOWN" || code === "ERR_UNAUTHORIZED" ? " (this command needs the operator token: the platform's own HEARTH_TOKEN)" : "";
        throw new HearthError(code, `${String(envelope?.error?.message)}${hint}`);
      }
      throw new HearthError("ERR_INTERNAL", `the platform at ${this.url} answered ${response.status}: ${text.slice(0, 200)}`);
    }
    if (!schema) return undefined as z.output<S>;
    const parsed = schema.safeParse(jsonOf(text));
    if (!parsed.success) throw new HearthError("ERR_BAD_MESSAGE", `the platform at ${this.url} sent an unexpected answer to ${method} ${path}`);
    return parsed.data;
  }

  /** A developer by id, or by name. */
  async developer(idOrName: string): Promise<DeveloperView> {
    const byId = DeveloperId.safeParse(idOrName).success;
    if (!byId) parse(DeveloperName, idOrName, "developer");
    const { developers } = await this.call("GET", "/developers", DeveloperList);
    const found = developers.find((d) => (byId ? d.id === idOrName : d.name === idOrName));
    if (!found) throw new HearthError("ERR_DEVELOPER_NOT_FOUND", `no developer ${idOrName}; see hearth-platform developers list`);
    return found;
  }
}

function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The admin API for a command: the platform's URL from --url or the environment, the operator token from HEARTH_TOKEN. */
export function admin(command: Command): AdminApi {
  const env = readAdminEnv();
  const flag = command.optsWithGlobals<{ url?: string }>().url;
  const url = parse(z.url({ message: "--url must be a URL like http://127.0.0.1:8787" }), flag ?? env.HEARTH_PLATFORM_URL ?? env.HEARTH_PUBLIC_URL ?? localUrl(env.HEARTH_HOST, env.HEARTH_PORT), "--url");
  return new AdminApi(url, env.HEARTH_TOKEN);
}

function localUrl(host: string, port: number): string {
  const reachable = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host;
  return `http://${reachable}:${port}`;
}

function showIssued(api: AdminApi, developer: { name: string }, token: IssuedToken): void {
  out(`API token "${token.name}" (id ${token.id}), shown only this once; hand it to ${developer.name} privately:`);
  out();
  out(`  ${token.value}`);
  out();
  out(`${developer.name} logs in with \`hearth login --url ${api.url}\` and pastes it when asked (or sets HEARTH_TOKEN).`);
}

/** The `developers` command group; `hearth-platform` adds it to its program. */
export function developersCommand(): Command {
  const developers = new Command("developers")
    .description("developers and their API tokens (admin API, with the operator token HEARTH_TOKEN)")
    .option("--url <url>", "the platform's URL (or HEARTH_PLATFORM_URL; default HEARTH_PUBLIC_URL or HEARTH_HOST:HEARTH_PORT)");

  developers
    .command("create <name>")
    .description("create a developer and their first API token (shown once)")
    .option("--token-name <label>", "a label for the first token", "default")
    .option("--json", "print the API's answer as JSON")
    .action(async (nameArg: string, flags: { tokenName: string; json?: boolean }, command: Command) => {
      const name = parse(DeveloperName, nameArg, "name");
      const tokenName = parse(TokenName, flags.tokenName, "--token-name");
      const api = admin(command);
      const created = await api.call("POST", "/developers", CreateDeveloperResponse, { name, tokenName });
      if (flags.json) return out(JSON.stringify(created, null, 2));
      out(`Created developer ${created.developer.name} (${created.developer.id}).`);
      showIssued(api, created.developer, created.token);
    });

  developers
    .command("list")
    .description("list developers")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }, command: Command) => {
      const { developers: all } = await admin(command).call("GET", "/developers", DeveloperList);
      if (flags.json) return out(JSON.stringify(all, null, 2));
      if (all.length === 0) return out("no developers yet: create one with `hearth-platform developers create <name>`");
      for (const d of all) out(`${d.id}\t${d.name}\t${d.activeTokens} active token${d.activeTokens === 1 ? "" : "s"}\tcreated ${d.createdAt}`);
    });

  developers
    .command("tokens <developer>")
    .description("list a developer's API tokens (ids and names; never their values)")
    .option("--json", "print JSON")
    .action(async (who: string, flags: { json?: boolean }, command: Command) => {
      const api = admin(command);
      const developer = await api.developer(who);
      const { tokens } = await api.call("GET", `/developers/${developer.id}/tokens`, TokenList);
      if (flags.json) return out(JSON.stringify(tokens, null, 2));
      if (tokens.length === 0) return out(`${developer.name} has no tokens`);
      for (const t of tokens) {
        const state = t.revokedAt ? `revoked ${t.revokedAt}` : t.lastUsedAt ? `last used ${t.lastUsedAt}` : "never used";
        out(`${t.id}\t${t.name}\tcreated ${t.createdAt}\t${state}`);
      }
    });

  developers
    .command("create-token <developer>")
    .description("give a developer one more API token (shown once)")
    .option("--name <label>", "a label for it (where it is used: laptop, ci)", "default")
    .option("--json", "print the API's answer as JSON")
    .action(async (who: string, flags: { name: string; json?: boolean }, command: Command) => {
      const name = parse(TokenName, flags.name, "--name");
      const api = admin(command);
      const developer = await api.developer(who);
      const token = await api.call("POST", `/developers/${developer.id}/tokens`, IssuedToken, { name });
      if (flags.json) return out(JSON.stringify(token, null, 2));
      showIssued(api, developer, token);
    });

  developers
    .command("revoke-token <developer> <token-id>")
    .description("revoke one of a developer's API tokens; it stops working at once")
    .action(async (who: string, tokenArg: string, _flags: unknown, command: Command) => {
      const tokenId = parse(TokenId, tokenArg, "token id");
      const api = admin(command);
      const developer = await api.developer(who);
      await api.call("DELETE", `/developers/${developer.id}/tokens/${tokenId}`, null);
      out(`Revoked token ${tokenId} of ${developer.name}; it no longer works.`);
    });

  developers
    .command("assign-app <developer> <app>")
    .description("give an app to a developer (a transfer, or an app deployed before apps had owners)")
    .action(async (who: string, appArg: string, _flags: unknown, command: Command) => {
      const app = parse(AppName, appArg, "app");
      const api = admin(command);
      const developer = await api.developer(who);
      await api.call("PUT", `/apps/${app}/owner`, AppOwner, { developerId: developer.id });
      out(`App ${app} now belongs to ${developer.name}; only their tokens reach it.`);
    });

  return developers;
}
