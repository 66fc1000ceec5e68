/**
 * `hearth-platform fabric init --dir <dir> [--resolver-dir <dir>] [--force]`:
 * makes the fabric's keys (fabric-keys.json, 0600) and the nats-server
 * configuration that trusts them (nats-auth.conf, to `include` in each
 * server's config). Run once per Hearth; keep the keys file as a secret
 * (docs/security.md).
 */
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { HearthError } from "@hearth/protocol";
import { z } from "zod";
import { FabricAuthority, generateFabricKeys, readFabricKeys, writeFabricKeys } from "./fabric.ts";

const InitFlags = z.strictObject({
  dir: z.string().min(1, "--dir must name a folder"),
  "resolver-dir": z.string().min(1).optional(),
  force: z.boolean().optional(),
});

/** Runs `fabric <verb>`; returns the exit code. */
export async function runFabricCommand(args: string[], out: (line: string) => void): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === "init") {
    const { values } = parseArgs({ args: rest, options: { dir: { type: "string" }, "resolver-dir": { type: "string" }, force: { type: "boolean" } }, strict: true });
    const flags = InitFlags.safeParse(values);
    if (!flags.success) throw new HearthError("ERR_BAD_REQUEST", `hearth-platform fabric init: ${flags.error.issues.map((i) => i.message).join("; ")} (usage: fabric init --dir <dir> [--resolver-dir <dir>] [--force])`);
    const dir = resolve(flags.data.dir);
    const keysPath = join(dir, "fabric-keys.json");
    if (existsSync(keysPath) && !flags.data.force) {
      throw new HearthError("ERR_BAD_REQUEST", `${keysPath} exists; new keys would lock out every joined device. Pass --force to replace them anyway`);
    }
    const keys = generateFabricKeys();
    writeFabricKeys(keysPath, keys);
    const confPath = join(dir, "nats-auth.conf");
    writeFileSync(confPath, await new FabricAuthority(keys).serverConfig(resolve(flags.data["resolver-dir"] ?? join(dir, "jwt"))));
    out(`Fabric keys written to ${keysPath} (0600): set HEARTH_FABRIC_KEYS_FILE=${keysPath} for the platform.`);
    out(`nats-server configuration written to ${confPath}: add "include ${confPath}" to each server's config.`);
    return 0;
  }
  if (verb === "server-config") {
    const { values } = parseArgs({ args: rest, options: { "resolver-dir": { type: "string" } }, strict: true });
    const dir = values["resolver-dir"];
    if (!dir) throw new HearthError("ERR_BAD_REQUEST", "hearth-platform fabric server-config: pass --resolver-dir <dir> (where nats-server keeps account JWTs)");
    out(await new FabricAuthority(readFabricKeys()).serverConfig(resolve(dir)));
    return 0;
  }
  throw new HearthError("ERR_BAD_REQUEST", "usage: hearth-platform fabric init --dir <dir> [--resolver-dir <dir>] [--force] | fabric server-config --resolver-dir <dir>");
}

const RevokeFlags = z.strictObject({ url: z.url("--url must be the platform's URL, e.g. https://hearth.example.org").optional() });

/**
 * `hearth-platform devices revoke <id> [--url <platform-url>]`: the operator
 * revokes a device through the platform's API (HEARTH_TOKEN; the URL from
 * --url, HEARTH_PUBLIC_URL, or HEARTH_HOST:HEARTH_PORT).
 */
export async function runDevicesCommand(args: string[], env: NodeJS.ProcessEnv, out: (line: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { url: { type: "string" } }, strict: true, allowPositionals: true });
  const [verb, id] = positionals;
  const flags = RevokeFlags.safeParse(values);
  if (verb !== "revoke" || !id || positionals.length !== 2 || !flags.success) {
    throw new HearthError("ERR_BAD_REQUEST", "usage: hearth-platform devices revoke <device-id> [--url <platform-url>]");
  }
  const token = env["HEARTH_TOKEN"];
  if (!token) throw new HearthError("ERR_UNAUTHORIZED", "set HEARTH_TOKEN to the operator token");
  const base = (flags.data.url ?? env["HEARTH_PUBLIC_URL"] ?? `http://${env["HEARTH_HOST"] ?? "127.0.0.1"}:${env["HEARTH_PORT"] ?? "8787"}`).replace(/\/+$/, "");
  let res: Response;
  try {
    res = await fetch(`${base}/v1/devices/${encodeURIComponent(id)}/revoke`, { method: "POST", headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    throw new HearthError("ERR_PLATFORM_UNREACHABLE", `cannot reach the platform at ${base}: ${(error as Error).message}`);
  }
  const body = (await res.json().catch(() => undefined)) as { revokedAt?: string; error?: { code?: string; message?: string } } | undefined;
  if (!res.ok) throw HearthError.fromWire({ code: body?.error?.code, message: body?.error?.message ?? `the platform answered ${res.status}` });
  out(`Device ${id} revoked at ${body?.revokedAt}: its fabric connections are closed, it cannot connect or renew, and its functions move to other devices.`);
  return 0;
}
