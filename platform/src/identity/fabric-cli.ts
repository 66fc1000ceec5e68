/**
 * The operator's fabric and device commands:
 *
 * - `hearth-platform fabric init --dir <dir> [--resolver-dir <dir>] [--force]`
 *   makes the fabric's keys (fabric-keys.json, 0600) and the nats-server
 *   configuration that trusts them (nats-auth.conf, to `include` in each
 *   server's config). Run once per Hearth; keep the keys file as a secret.
 * - `hearth-platform fabric server-config --resolver-dir <dir>` prints that
 *   configuration again from HEARTH_FABRIC_KEYS_FILE / HEARTH_FABRIC_KEYS.
 * - `hearth-platform devices revoke <id>` revokes a device through the
 *   platform's admin API (operator token).
 *
 * See docs/security.md.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DeviceId, formatZodError, HearthError, RevokeResponse } from "@hearth/protocol";
import { Command } from "commander";
import { admin } from "./developers-cli.ts";
import { FabricAuthority, generateFabricKeys, readFabricKeys, writeFabricKeys } from "./fabric.ts";

const out = (line: string): void => {
  process.stdout.write(line + "\n");
};

export function fabricCommand(): Command {
  const fabric = new Command("fabric").description("the fabric's keys and the nats-server configuration that trusts them (docs/security.md)");
  fabric
    .command("init")
    .description("make the fabric's keys (fabric-keys.json, 0600) and nats-auth.conf for nats-server")
    .requiredOption("--dir <dir>", "where to write fabric-keys.json and nats-auth.conf")
    .option("--resolver-dir <dir>", "where nats-server keeps account JWTs (default <dir>/jwt)")
    .option("--force", "replace existing keys (every joined device must join again)")
    .action(async (flags: { dir: string; resolverDir?: string; force?: boolean }) => {
      const dir = resolve(flags.dir);
      const keysPath = join(dir, "fabric-keys.json");
      if (existsSync(keysPath) && !flags.force) {
        throw new HearthError("ERR_BAD_REQUEST", `${keysPath} exists; new keys would lock out every joined device. Pass --force to replace them anyway`);
      }
      const keys = generateFabricKeys();
      writeFabricKeys(keysPath, keys);
      const confPath = join(dir, "nats-auth.conf");
      writeFileSync(confPath, await new FabricAuthority(keys).serverConfig(resolve(flags.resolverDir ?? join(dir, "jwt"))));
      out(`Fabric keys written to ${keysPath} (0600): set HEARTH_FABRIC_KEYS_FILE=${keysPath} for the platform.`);
      out(`nats-server configuration written to ${confPath}: add "include ${confPath}" to each server's config.`);
    });
  fabric
    .command("server-config")
    .description("print the nats-server configuration for the configured keys (HEARTH_FABRIC_KEYS_FILE)")
    .requiredOption("--resolver-dir <dir>", "where nats-server keeps account JWTs")
    .action(async (flags: { resolverDir: string }) => {
      out(await new FabricAuthority(readFabricKeys()).serverConfig(resolve(flags.resolverDir)));
    });
  return fabric;
}

export function devicesCommand(): Command {
  const devices = new Command("devices")
    .description("the operator's device commands, through the admin API (HEARTH_TOKEN)")
    .option("--url <url>", "the platform's URL (or HEARTH_PLATFORM_URL, HEARTH_PUBLIC_URL)");
  devices
    .command("revoke <device-id>")
    .description("take a device off the fabric for good: its connections close, it cannot connect or renew, its functions move")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const parsed = DeviceId.safeParse(id);
      if (!parsed.success) throw new HearthError("ERR_BAD_REQUEST", formatZodError(parsed.error, "device id"));
      const body = await admin(command).call("POST", `/devices/${encodeURIComponent(parsed.data)}/revoke`, RevokeResponse);
      out(`Device ${body.deviceId} revoked at ${body.revokedAt}: its fabric connections are closed, it cannot connect or renew, and its functions move to other devices.`);
    });
  return devices;
}
