/**
 * The `hearth` CLI: deploy and manage functions from a terminal. User errors
 * print what happened and how to fix it, without a stack trace; only
 * unexpected errors print a stack. The platform URL and API token come from
 * `--url`/`--token`, else HEARTH_PLATFORM_URL/HEARTH_TOKEN, else the login
 * `hearth login` saved (config.ts).
 */
import { existsSync, readFileSync } from "node:fs";
import {
  AppName,
  DeviceId,
  ENV_NAME_PATTERN,
  formatZodError,
  FunctionBindings,
  FunctionEnv,
  FunctionName,
  HearthError,
  HostPattern,
  LogsQuery,
  Near,
  parseBindingList,
  Sha256Hex,
  UsageDay,
  type FunctionView,
  type LogEntry,
  type UsageReport,
  type WhoAmI,
} from "@hearth/protocol";
import { Command, Option } from "commander";
import { z } from "zod";
import { HearthClient } from "../client.ts";
import { configPath, readConfig, removeConfig, writeConfig } from "./config.ts";
import { escapeForTerminal, jsonForTerminal } from "./escape.ts";

const PlatformUrl = z.url({ message: "platform URL must be a URL like http://127.0.0.1:8787" });

const Limits = z.object({
  memoryMb: z.coerce.number().int().positive().optional(),
  cpuMs: z.coerce.number().int().positive().optional(),
  wallMs: z.coerce.number().int().positive().optional(),
  replicas: z.coerce.number().int().min(1).max(16).optional(),
  maxReplicas: z.coerce.number().int().min(1).max(16).optional(),
  scaleToZeroAfter: z.coerce.number().int().min(0).optional(),
});

function parse<T extends z.ZodType>(schema: T, value: unknown, subject: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", formatZodError(parsed.error, subject));
  return parsed.data;
}

/** The platform and token a command uses, and where the token came from (error messages name it). */
interface Connection {
  url: string;
  token: string;
  tokenFrom: string;
}

/** The connection of the command running now, for `run` to explain a token the platform refused. */
let current: Connection | undefined;

function sameUrl(a: string, b: string): boolean {
  const norm = (u: string) => new URL(u).href.replace(/\/+$/, "");
  return norm(a) === norm(b);
}

/** The platform to talk to: --url, HEARTH_PLATFORM_URL, or the saved login's. */
function platformUrl(program: Command): string {
  const rawUrl = program.opts<{ url?: string }>().url ?? process.env["HEARTH_PLATFORM_URL"] ?? readConfig(configPath())?.url;
  if (!rawUrl) throw new HearthError("ERR_BAD_REQUEST", "no platform URL: run `hearth login --url <platform-url>`, pass --url or set HEARTH_PLATFORM_URL (npm run demo prints it)");
  return parse(PlatformUrl, rawUrl, "platform URL");
}

function connection(program: Command): Connection {
  const opts = program.opts<{ url?: string; token?: string }>();
  const path = configPath();
  const saved = readConfig(path);
  const url = platformUrl(program);
  let token: string | undefined;
  let tokenFrom = "";
  if (opts.token) [token, tokenFrom] = [opts.token, "--token"];
  else if (process.env["HEARTH_TOKEN"]) [token, tokenFrom] = [process.env["HEARTH_TOKEN"], "HEARTH_TOKEN"];
  // the saved token goes only to the platform it was saved for, never to another URL
  else if (saved && sameUrl(saved.url, url)) [token, tokenFrom] = [saved.token, `the login in ${path}`];
  if (!token) {
    throw new HearthError(
      "ERR_UNAUTHORIZED",
      `no API token for ${url}: run \`hearth login --url ${url}\` and paste the token the platform's operator gave you, or set HEARTH_TOKEN`,
    );
  }
  current = { url, token, tokenFrom };
  return current;
}

function client(program: Command): HearthClient {
  const { url, token } = connection(program);
  return new HearthClient({ url, token });
}

/** What to tell a user whose token the platform refused; undefined for every other error. */
function tokenAdvice(error: HearthError, conn: Connection | undefined): string | undefined {
  const from = conn ? ` (from ${conn.tokenFrom})` : "";
  const where = conn ? conn.url : "the platform";
  if (error.code === "ERR_TOKEN_UNKNOWN") {
    return `${where} does not know this API token${from}: check that it was copied whole and that it is for this platform, or ask its operator for a new one; then run \`hearth login\``;
  }
  if (error.code === "ERR_TOKEN_REVOKED") {
    const when = /revoked at (\S+?);/.exec(error.message)?.[1];
    return `this API token${from} was revoked by the platform's operator${when ? ` at ${when}` : ""}: ask them for a new one, then run \`hearth login\``;
  }
  return undefined;
}

/** Reads a token the user types (not echoed) or pipes in (its first line). */
async function readToken(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    let text = "";
    for await (const chunk of stdin) text += String(chunk);
    return (text.split(/\r?\n/)[0] ?? "").trim();
  }
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding("utf8");
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = "";
      const onData = (chunk: string) => {
        for (const ch of chunk) {
          if (ch === "\r" || ch === "\n") {
            stdin.off("data", onData);
            process.stderr.write("\n");
            return resolve(typed.trim());
          }
          if (ch === "\u0003") {
            stdin.off("data", onData);
            process.stderr.write("\n");
            return reject(new HearthError("ERR_BAD_REQUEST", "login cancelled"));
          }
          if (ch === "\u007f" || ch === "\b") typed = typed.slice(0, -1);
          else typed += ch;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
  }
}

function describeCaller(me: WhoAmI): string {
  if (me.kind === "developer") return `${me.developer.name} (${me.developer.id})`;
  return me.kind === "owner" ? `device owner ${me.ownerId} (with device ${me.deviceId}'s token)` : "the operator";
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** One `KEY=VALUE` (the value may hold '=' and be empty). An error names the key at most, never the value: it may be a secret. */
function envPair(text: string, where: string): [string, string] {
  const i = text.indexOf("=");
  const key = i < 0 ? "" : text.slice(0, i);
  if (i < 0) throw new HearthError("ERR_BAD_REQUEST", `${where}: not KEY=VALUE (no '=')`);
  if (!ENV_NAME_PATTERN.test(key)) {
    const shown = key.length > 40 ? `${key.slice(0, 40)}...` : key;
    throw new HearthError("ERR_BAD_REQUEST", `${where}: key '${shown}' is not A-Z, a-z, 0-9 and '_' (not starting with a digit)`);
  }
  return [key, text.slice(i + 1)];
}

/**
 * The env of a deploy from `--env-file` (KEY=VALUE lines; blank lines and
 * `#` comments skipped; a value in matching quotes is unquoted) and `--env
 * KEY=VALUE` flags, which win. Undefined when neither is given: the function
 * keeps the env it has.
 */
/** `--bind NAME=fn` (repeatable, or comma separated; `none` clears), checked as the platform checks them. */
export function bindingsFromFlags(values: string[] | undefined): Record<string, string> | undefined {
  if (values === undefined) return undefined;
  if (values.length === 1 && values[0]!.trim() === "none") return {};
  const list = parseBindingList(values);
  if ("error" in list) throw new HearthError("ERR_BAD_REQUEST", `--bind: ${list.error}`);
  return parse(FunctionBindings, list, "--bind");
}

export function envFromFlags(envFile: string | undefined, pairs: string[] | undefined): Record<string, string> | undefined {
  if (envFile === undefined && (pairs === undefined || pairs.length === 0)) return undefined;
  const env: Record<string, string> = {};
  if (envFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(envFile, "utf8");
    } catch (error) {
      throw new HearthError("ERR_BAD_REQUEST", `cannot read --env-file ${envFile}: ${(error as Error).message}`);
    }
    for (const [n, raw] of text.split(/\r?\n/).entries()) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      const [key, value] = envPair(line.replace(/^export\s+/, ""), `${envFile} line ${n + 1}`);
      const quoted = /^(["'])(.*)\1$/.exec(value);
      env[key] = quoted ? quoted[2]! : value;
    }
  }
  for (const pair of pairs ?? []) {
    const [key, value] = envPair(pair, "--env");
    env[key] = value;
  }
  return parse(FunctionEnv, env, "env");
}

function names(app: unknown, name: unknown) {
  return { app: parse(AppName, app, "app"), name: parse(FunctionName, name, "function name") };
}

function scalingText(fn: FunctionView): string {
  const out = fn.scaling && fn.scaling.maxReplicas > fn.replicas ? `${fn.replicas}-${fn.scaling.maxReplicas} devices with load` : `${fn.replicas} device(s)`;
  return fn.scaling?.idleSeconds ? `${out}, to zero after ${fn.scaling.idleSeconds} s without a call` : out;
}

function show(fn: FunctionView): string {
  return [
    `${fn.app}/${fn.name}  ${fn.status}`,
    `  version   ${fn.version}`,
    `  url       ${fn.url}`,
    `  devices   ${fn.devices.join(", ") || "(none yet)"}`,
    `  limits    ${fn.limits.memoryMb} MiB, ${fn.limits.cpuMs} ms CPU, ${fn.limits.wallMs} ms wall, replicas ${fn.replicas}`,
    `  scaling   ${scalingText(fn)}`,
    `  env       ${fn.envNames && fn.envNames.length > 0 ? fn.envNames.join(", ") + " (values are never shown)" : "(none)"}`,
    `  fetch     ${!fn.outbound?.allow ? "off" : fn.outbound.hosts ? `on, to ${fn.outbound.hosts.join(", ")}` : "on (public addresses only)"}${fn.outbound?.allow && fn.outbound.ports ? `, ports 80, 443, ${fn.outbound.ports.join(", ")}` : ""}`,
    `  compat    ${fn.compatibilityFlags?.join(", ") ?? "(none)"}`,
    `  bindings  ${fn.bindings ? Object.entries(fn.bindings).map(([name, target]) => `env.${name} → ${target}`).join(", ") : "(none)"}`,
  ].join("\n");
}

const out = (line: string): void => {
  process.stdout.write(line + "\n");
};

export function buildProgram(): Command {
  const program = new Command("hearth")
    .description("Deploy and manage Hearth functions")
    .option("--url <url>", "platform URL (or HEARTH_PLATFORM_URL, or the one `hearth login` saved)")
    .option("--token <token>", "API token (or HEARTH_TOKEN, or the one `hearth login` saved)")
    .showHelpAfterError();

  program
    .command("login")
    .description("check an API token with the platform and save it (and the URL) for later commands; the token comes from --token, or is asked for")
    .action(async () => {
      const opts = program.opts<{ url?: string; token?: string }>();
      const path = configPath();
      let previous;
      try {
        previous = readConfig(path);
      } catch {
        previous = undefined; // a broken login file is replaced by this one
      }
      const rawUrl = opts.url ?? process.env["HEARTH_PLATFORM_URL"] ?? previous?.url;
      if (!rawUrl) throw new HearthError("ERR_BAD_REQUEST", "which platform? pass --url <platform-url> (or set HEARTH_PLATFORM_URL)");
      const url = parse(PlatformUrl, rawUrl, "platform URL");
      const token = opts.token ?? (await readToken(`API token for ${url}: `));
      if (!token) throw new HearthError("ERR_UNAUTHORIZED", "no API token given: paste the token the platform's operator gave you (or pass --token)");
      current = { url, token, tokenFrom: opts.token ? "--token" : "what you entered" };
      const me = await new HearthClient({ url, token }).whoami();
      writeConfig(path, { url, token, ...(me.kind === "developer" ? { developer: me.developer } : {}) });
      out(`Logged in to ${url} as ${describeCaller(me)}. Saved to ${path} (readable by you only).`);
      if (me.kind === "operator") out("This is the operator token: it reaches operator routes only (devices, developers); functions need a developer token.");
      if (process.env["HEARTH_TOKEN"]) process.stderr.write("hearth: note: HEARTH_TOKEN is set in this shell and wins over the saved login; unset it to use this one\n");
    });

  program
    .command("whoami")
    .description("who the API token in use is, on which platform, and where the token came from")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }) => {
      const hearth = client(program);
      const me = await hearth.whoami();
      if (flags.json) return out(JSON.stringify({ url: current!.url, tokenFrom: current!.tokenFrom, ...me }, null, 2));
      const token = me.kind === "developer" ? `, token ${me.token.name} (${me.token.id})` : "";
      out(`${describeCaller(me)} at ${current!.url}${token}, from ${current!.tokenFrom}`);
    });

  program
    .command("logout")
    .description("forget the login `hearth login` saved (the token itself works until the operator revokes it)")
    .action(() => {
      const path = configPath();
      if (!removeConfig(path)) return out(`Not logged in (no ${path}).`);
      out(`Logged out: removed ${path}. The token itself still works until the platform's operator revokes it.`);
    });

  program
    .command("deploy <entry>")
    .description("bundle a function with esbuild, upload it, and wait until a device serves it")
    .requiredOption("--app <app>", "app (application network) the function belongs to")
    .requiredOption("--name <fn>", "function name")
    .option("--memory-mb <n>", "memory limit per call, MiB")
    .option("--cpu-ms <n>", "CPU-time limit per call, ms")
    .option("--wall-ms <n>", "wall-time limit per call, ms")
    .option("--replicas <n>", "devices to run it on")
    .option("--max-replicas <n>", "scale out to this many devices while its calls come near their cores (default: --replicas)")
    .option("--scale-to-zero-after <seconds>", "leave every device after this long without a call; the next call wakes it (0: never)")
    .option("--env <KEY=VALUE>", "a var or secret in the function's env (repeatable); any --env or --env-file replaces the function's whole env", collect)
    .option("--env-file <path>", "env vars and secrets from a file of KEY=VALUE lines (keeps secrets out of shell history)")
    .option("--allow-fetch", "let the function fetch public internet addresses (never private or local ones)")
    .option("--fetch-host <host>", "allow fetch to this host only, e.g. api.example.com or *.example.com (repeatable; implies --allow-fetch)", collect)
    .option("--deny-fetch", "turn outbound fetch off again")
    .option("--fetch-port <port>", "let fetch reach this port besides 80/443, where the device's owner allows it too (repeatable)", collect)
    .option("--bind <NAME=fn>", "service binding: env.NAME.fetch(request) calls function fn of the same app (repeatable; none to clear)", collect)
    .option("--compat <flag>", "compatibility flag: nodejs (Workers' nodejs_compat: node:buffer, node:events, ..., see docs/runtime.md), or none to clear", collect)
    .addOption(new Option("--private", "run the app only on devices invited into its network (hearth networks invite)").conflicts("public"))
    .option("--public", "let the app run on the public pool again")
    .addOption(new Option("--no-wait", "return once uploaded, without waiting for a device"))
    .option("--timeout <ms>", "how long to wait for a device", "60000")
    .option("--json", "print the function as JSON")
    .action(async (entry: string, flags: Record<string, unknown>) => {
      const { app, name } = names(flags["app"], flags["name"]);
      if (!existsSync(entry)) throw new HearthError("ERR_BAD_REQUEST", `no file ${entry}: pass the path of the function's entry module`);
      const { replicas, maxReplicas, scaleToZeroAfter, ...limits } = parse(Limits, flags, "flags");
      const timeoutMs = parse(z.coerce.number().int().positive(), flags["timeout"], "--timeout");
      const env = envFromFlags(flags["envFile"] as string | undefined, flags["env"] as string[] | undefined);
      const fetchHosts = flags["fetchHost"] === undefined ? undefined : parse(z.array(HostPattern).min(1).max(64), flags["fetchHost"], "--fetch-host");
      if (flags["denyFetch"] && (flags["allowFetch"] || fetchHosts)) {
        throw new HearthError("ERR_BAD_REQUEST", "--deny-fetch cannot go with --allow-fetch or --fetch-host: pick one");
      }
      const fetchPorts =
        flags["fetchPort"] === undefined ? undefined : parse(z.array(z.coerce.number().int().min(1).max(65_535)).min(1).max(64), flags["fetchPort"], "--fetch-port");
      const allowFetch = flags["denyFetch"] ? false : flags["allowFetch"] || fetchHosts || fetchPorts ? true : undefined;
      const compatibilityFlags =
        flags["compat"] === undefined
          ? undefined
          : parse(
              z.array(z.enum(["nodejs", "nodejs_compat", "none"]).transform((f) => (f === "nodejs" ? "nodejs_compat" : f))).max(8),
              flags["compat"],
              "--compat",
            ).filter((f): f is "nodejs_compat" => f !== "none");
      const bindings = bindingsFromFlags(flags["bind"] as string[] | undefined);
      const hearth = client(program);
      let fn = await hearth.deployFile(entry, {
        app,
        name,
        limits,
        replicas,
        ...(maxReplicas === undefined ? {} : { maxReplicas }),
        ...(scaleToZeroAfter === undefined ? {} : { scaleToZeroAfterSeconds: scaleToZeroAfter }),
        ...(env === undefined ? {} : { env }),
        ...(allowFetch === undefined ? {} : { allowFetch }),
        ...(fetchHosts === undefined ? {} : { fetchHosts }),
        ...(fetchPorts === undefined ? {} : { fetchPorts }),
        ...(compatibilityFlags === undefined ? {} : { compatibilityFlags: [...new Set(compatibilityFlags)] }),
        ...(flags["private"] ? { private: true } : flags["public"] ? { private: false } : {}),
        ...(bindings === undefined ? {} : { bindings }),
      });
      if (!flags["json"]) out(`Deployed ${app}/${name} version ${fn.version.slice(0, 12)}`);
      if (flags["wait"] !== false) {
        if (!flags["json"]) out("Waiting for a device to serve it...");
        fn = await hearth.waitUntilReady(app, name, { timeoutMs });
      }
      out(flags["json"] ? JSON.stringify(fn, null, 2) : `Function ready: ${fn.url}`);
    });

  program
    .command("list")
    .description("list functions")
    .option("--app <app>", "only this app's")
    .option("--json", "print JSON")
    .action(async (flags: { app?: string; json?: boolean }) => {
      const app = flags.app === undefined ? undefined : parse(AppName, flags.app, "app");
      const fns = await client(program).list(app);
      if (flags.json) return out(JSON.stringify(fns, null, 2));
      if (fns.length === 0) return out("no functions yet: deploy one with `hearth deploy <file> --app <app> --name <fn>`");
      for (const fn of fns) out(`${fn.app}/${fn.name}\t${fn.status}\t${fn.version.slice(0, 12)}\t${fn.url}`);
    });

  program
    .command("info <app> <fn>")
    .description("show one function")
    .option("--json", "print JSON")
    .action(async (appArg: string, fnArg: string, flags: { json?: boolean }) => {
      const { app, name } = names(appArg, fnArg);
      const fn = await client(program).get(app, name);
      out(flags.json ? JSON.stringify(fn, null, 2) : show(fn));
    });

  program
    .command("delete <app> <fn>")
    .description("delete a function")
    .action(async (appArg: string, fnArg: string) => {
      const { app, name } = names(appArg, fnArg);
      await client(program).delete(app, name);
      out(`Deleted ${app}/${name}`);
    });

  program
    .command("versions <app> <fn>")
    .description("list a function's versions, newest first")
    .action(async (appArg: string, fnArg: string) => {
      const { app, name } = names(appArg, fnArg);
      for (const v of await client(program).versions(app, name)) out(`${v.version}\t${v.createdAt}\t${v.size} bytes`);
    });

  program
    .command("rollback <app> <fn> <version>")
    .description("point a function back at an older version")
    .action(async (appArg: string, fnArg: string, versionArg: string) => {
      const { app, name } = names(appArg, fnArg);
      const version = parse(Sha256Hex, versionArg, "version");
      const fn = await client(program).rollback(app, name, version);
      out(`${app}/${name} now runs ${fn.version.slice(0, 12)}`);
    });

  const apps = program.command("apps").description("app settings");
  apps
    .command("set <app>")
    .description("change an app's settings: --private (only devices invited into its network) or --public (the public pool too)")
    .addOption(new Option("--private", "run only on devices invited into its network").conflicts("public"))
    .option("--public", "run on the public pool too")
    .action(async (appArg: string, flags: { private?: boolean; public?: boolean }) => {
      const app = parse(AppName, appArg, "app");
      if (!flags.private && !flags.public) throw new HearthError("ERR_BAD_REQUEST", "say what to set: hearth apps set <app> --private, or --public");
      const view = await client(program).setAppPrivate(app, flags.private === true);
      out(`${app} is ${view.private ? "private: placed only on devices invited into its network" : "public: placed on the public pool and invited devices"}`);
    });

  const networks = program.command("networks").description("your apps' networks: invite devices, list and remove members");
  networks
    .command("invite <app>")
    .description("print a single-use invite a device owner redeems with hearth-agent networks add <invite> (or join --network)")
    .option("--ttl <seconds>", "how long the invite can be used (default 86400: one day; 60 to 2592000)")
    .option("--json", "print JSON")
    .action(async (appArg: string, flags: { ttl?: string; json?: boolean }) => {
      const app = parse(AppName, appArg, "app");
      const ttlSeconds = flags.ttl === undefined ? undefined : parse(z.coerce.number().int().min(60).max(30 * 86_400), flags.ttl, "--ttl");
      const invite = await client(program).networkInvite(app, ttlSeconds === undefined ? {} : { ttlSeconds });
      if (flags.json) return out(JSON.stringify(invite, null, 2));
      out(invite.invite);
      process.stderr.write(`single use, until ${invite.expiresAt}: the device's owner runs hearth-agent networks add <invite>\n`);
    });
  networks
    .command("list <app>")
    .description("the devices invited into an app's network, and whether the app is private")
    .option("--json", "print JSON")
    .action(async (appArg: string, flags: { json?: boolean }) => {
      const view = await client(program).network(parse(AppName, appArg, "app"));
      if (flags.json) return out(JSON.stringify(view, null, 2));
      out(`${view.app}: ${view.private ? "private (invited devices only)" : "public (the public pool and invited devices)"}`);
      if (view.members.length === 0) out("no invited devices yet: hearth networks invite " + view.app);
      for (const m of view.members) out(`${m.deviceId}\tsince ${m.joinedAt}`);
    });
  networks
    .command("remove <app> <device>")
    .description("take a device out of an app's network: the app's functions leave it and its credential loses the network")
    .action(async (appArg: string, deviceArg: string) => {
      const app = parse(AppName, appArg, "app");
      const device = parse(DeviceId, deviceArg, "device");
      await client(program).removeNetworkMember(app, device);
      out(`Removed ${device} from ${app}'s network`);
    });

  program
    .command("devices")
    .description("list live devices (needs the operator token)")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }) => {
      const devices = await client(program).devices();
      if (flags.json) return out(JSON.stringify(devices, null, 2));
      for (const d of devices) out(`${d.deviceId}\t${d.region}\t${d.location.label}\t${d.cores} cores\t${d.activeCalls} active\t${d.functions} functions`);
    });

  program
    .command("doors <app>")
    .description("the reachable doors of an app's network (devices your users can call directly), nearest first; needs no token")
    .option("--near <where>", "a region (eu) or <lat>,<lon> in degrees (52.52,13.40); default: the platform's own region")
    .option("--json", "print JSON")
    .action(async (appArg: string, flags: { near?: string; json?: boolean }) => {
      const app = parse(AppName, appArg, "app");
      const near = flags.near === undefined ? undefined : (parse(Near, flags.near, "--near"), flags.near);
      const doors = await new HearthClient({ url: platformUrl(program) }).doors(app, { near });
      if (flags.json) return out(JSON.stringify(doors, null, 2));
      if (doors.length === 0) return out(`No door of ${app}'s network is listed: its calls go through the gateway (${platformUrl(program)}/fn/${app}/<fn>).`);
      for (const d of doors) {
        const where = [d.region, d.location?.label, d.distanceKm !== undefined ? `${d.distanceKm} km` : undefined, d.rttMs !== undefined ? `${d.rttMs} ms` : undefined].filter(Boolean).join(", ");
        const serves = d.functions.length > 0 ? `runs ${d.functions.join(", ")}; relays the rest` : "relays to peers";
        out(`${escapeForTerminal(d.url)}\t${d.deviceId}\t${escapeForTerminal(where)}\t${serves}`);
      }
    });

  program
    .command("usage")
    .description("calls, CPU-seconds and bytes of your apps, by day and function")
    .option("--app <app>", "only this app")
    .option("--day <YYYY-MM-DD>", "only this day (UTC)")
    .option("--json", "print JSON")
    .action(async (flags: { app?: string; day?: string; json?: boolean }) => {
      const app = flags.app === undefined ? undefined : parse(AppName, flags.app, "app");
      const day = flags.day === undefined ? undefined : parse(UsageDay, flags.day, "--day");
      const report = await client(program).usage({ app, day });
      if (flags.json) return out(JSON.stringify(report, null, 2));
      for (const line of usageLines(report)) out(line);
    });

  program
    .command("logs <app> <fn>")
    .description("a function's console lines (time, level, request id, message); --follow keeps printing new ones")
    .option("--since <when>", "lines since a duration back (30s, 10m, 2h, 7d) or an ISO time")
    .option("--limit <n>", "the newest n lines (0-1000, default 100)")
    .option("--request-id <id>", "only the lines of one call (its X-Request-Id)")
    .option("-f, --follow", "keep printing new lines until interrupted")
    .option("--json", "print one JSON object per line")
    .action(async (appArg: string, fnArg: string, flags: { since?: string; limit?: string; requestId?: string; follow?: boolean; json?: boolean }) => {
      const { app, name } = names(appArg, fnArg);
      // checked here with the API's own schema, so a typo is explained before anything is sent
      parse(LogsQuery, dropUndefined({ since: flags.since, limit: flags.limit, requestId: flags.requestId }), "flags");
      const options = dropUndefined({ since: flags.since, limit: flags.limit === undefined ? undefined : Number(flags.limit), requestId: flags.requestId });
      const print = (line: LogEntry) => out(flags.json ? jsonForTerminal(line) : logLine(line));
      const hearth = client(program);
      if (!flags.follow) {
        const lines = await hearth.logs(app, name, options);
        if (lines.length === 0 && !flags.json) process.stderr.write(`no log lines for ${app}/${name}${flags.since ? ` since ${flags.since}` : ""}\n`);
        for (const line of lines) print(line);
        return;
      }
      const stop = new AbortController();
      const interrupt = () => stop.abort();
      process.once("SIGINT", interrupt);
      process.once("SIGTERM", interrupt);
      try {
        const onReconnect = (reason: Error) => process.stderr.write(`hearth: lost the log stream (${reason.message}); picking it up again after the last line\n`);
        for await (const line of hearth.tailLogs(app, name, { ...options, signal: stop.signal, onReconnect })) print(line);
      } finally {
        process.off("SIGINT", interrupt);
        process.off("SIGTERM", interrupt);
      }
    });

  return program;
}

/**
 * One log line for people: `time level requestId message` (`-` for lines
 * outside a call). The message is the tenant's text: control characters are
 * shown escaped, never sent to the terminal, and its later lines are indented.
 */
export function logLine(line: LogEntry): string {
  return `${new Date(line.at).toISOString()} ${line.level.padEnd(5)} ${line.requestId ?? "-"} ${escapeForTerminal(line.message)}`;
}

function dropUndefined<T extends object>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** The usage report as a table for people. */
export function usageLines(report: UsageReport): string[] {
  if (report.apps.every((a) => a.days.length === 0)) return ["no usage yet: calls show up here within seconds of being made"];
  const lines: string[] = [];
  const row = (label: string, t: UsageReport["apps"][number]["totals"]) =>
    `${label.padEnd(28)} ${String(t.calls).padStart(8)} ${String(t.errors).padStart(7)} ${t.cpuSeconds.toFixed(3).padStart(10)} ${(t.wallUs / 1e6).toFixed(3).padStart(10)} ${String(t.requestBytes).padStart(10)} ${String(t.responseBytes).padStart(10)}  ${doorsOf(t.doors)}`;
  for (const app of report.apps) {
    if (app.days.length === 0) continue;
    lines.push(`${app.app}`, `${"day / function".padEnd(28)} ${"calls".padStart(8)} ${"errors".padStart(7)} ${"cpu s".padStart(10)} ${"wall s".padStart(10)} ${"bytes in".padStart(10)} ${"bytes out".padStart(10)}  by door`);
    for (const day of app.days) {
      lines.push(row(day.day, day.totals));
      for (const fn of day.functions) lines.push(row(`  ${fn.fn}`, fn));
    }
    lines.push(row("total", app.totals), "");
  }
  return lines;
}

/** The calls of each door that had any, e.g. `gateway 12, device 3, call 2` (docs/ledger.md says what each door is). */
function doorsOf(doors: UsageReport["apps"][number]["totals"]["doors"]): string {
  return Object.entries(doors).filter(([, n]) => n > 0).map(([door, n]) => `${door} ${n}`).join(", ") || "-";
}

export async function run(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof HearthError) {
      process.stderr.write(`hearth: ${tokenAdvice(error, current) ?? error.message}\n`);
      return error.isUserError || error.code === "ERR_PLATFORM_UNREACHABLE" || error.code === "ERR_NO_DEVICE" ? 2 : 1;
    }
    process.stderr.write(`hearth: unexpected error\n${error instanceof Error ? error.stack : String(error)}\n`);
    return 1;
  }
}
