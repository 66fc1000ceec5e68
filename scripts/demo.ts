/**
 * `npm run demo`: a local Hearth with real parts — a nats-server, the
 * platform (embedded in-memory state) and three device agents in different
 * places — with examples/hello deployed through the SDK, and the web
 * console's URL to watch it from. Runs until Ctrl-C, then stops everything
 * it started.
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, startLocalHearth, type LocalHearth } from "@hearth/devkit";
import { HearthClient } from "@hearth/sdk";
import { z } from "zod";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The demo's own knobs, validated like every other environment. */
const DemoEnv = z.object({
  /** Platform port; when unset, 8787 if it is free, else any free port. */
  HEARTH_PORT: z.coerce.number().int().min(1, "HEARTH_PORT must be 1-65535").max(65535, "HEARTH_PORT must be 1-65535").optional(),
  /** Where each process's log file goes. */
  HEARTH_DEMO_LOG_DIR: z.string().min(1).optional(),
});
const parsedEnv = DemoEnv.safeParse(process.env);
if (!parsedEnv.success) {
  process.stderr.write(`demo: ${parsedEnv.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}\n`);
  process.exit(2);
}
const LOG_DIR = resolve(parsedEnv.data.HEARTH_DEMO_LOG_DIR ?? join(ROOT, ".hearth", "demo-logs"));
const PREFERRED_PORT = 8787;

async function portFor(): Promise<number> {
  if (parsedEnv.success && parsedEnv.data.HEARTH_PORT !== undefined) return parsedEnv.data.HEARTH_PORT;
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => freePort().then(resolve));
    probe.listen(PREFERRED_PORT, "127.0.0.1", () => probe.close(() => resolve(PREFERRED_PORT)));
  });
}

const say = (line: string) => process.stdout.write(line + "\n");

let hearth: LocalHearth | undefined;
let stopping = false;

async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  say("\nStopping every process the demo started...");
  await hearth?.stop();
  say("Stopped.");
  process.exit(code);
}

async function main(): Promise<void> {
  say("Starting a local Hearth: nats-server, platform, 3 device agents...");
  process.on("SIGINT", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));
  process.on("SIGHUP", () => void shutdown(0));

  // every local client is 127.0.0.1: the production per-IP default (1,000 calls/s) would refuse a load test of the demo
  process.env["HEARTH_RATE_LIMIT_PER_IP"] ??= "1000000";
  process.env["HEARTH_MAX_IN_FLIGHT_PER_IP"] ??= "100000";
  hearth = await startLocalHearth({
    port: await portFor(),
    logDir: LOG_DIR,
    devices: [
      { deviceId: "berlin-nuc", ownerId: "ada", region: "local", location: "berlin:52.52,13.40" },
      { deviceId: "lisbon-laptop", ownerId: "grace", region: "local", location: "lisbon:38.72,-9.14" },
      { deviceId: "osaka-pi", ownerId: "linus", region: "local", location: "osaka:34.69,135.50" },
    ],
  });
  for (const [id, device] of hearth.devices) {
    device.server.process.once("exit", (code, signal) => {
      if (!stopping) say(`Device ${id} stopped (code ${code}, signal ${signal}); its functions move to the other devices.`);
    });
  }
  hearth.platform.process.once("exit", () => {
    if (!stopping) {
      say(`The platform stopped unexpectedly; see ${join(LOG_DIR, "platform.log")}`);
      void shutdown(1);
    }
  });

  const client = new HearthClient({ url: hearth.url, token: hearth.developerToken });
  await client.deployFile(join(ROOT, "examples/hello/src/index.ts"), { app: "demo", name: "hello" });
  const fn = await client.waitUntilReady("demo", "hello", { timeoutMs: 60_000 });
  const url = `${fn.url}/greet?name=Ada`;
  const check = await fetch(url);
  if (!check.ok) throw new Error(`the deployed function answered ${check.status}: ${await check.text()}`);

  // a few calls, so the console's charts and logs have something to show at once
  for (const name of ["Grace", "Linus"]) await fetch(`${fn.url}/greet?name=${name}`).then((r) => r.body?.cancel());

  say("");
  say(`Function ready: ${url}`);
  say("");
  say(`Console: ${hearth.url}/console/`);
  say(`  sign in with the developer token below (HEARTH_TOKEN) to see demo/hello's calls, charts and live logs`);
  say("");
  say("To deploy your own function from another terminal, paste:");
  say(`export HEARTH_PLATFORM_URL=${hearth.url}`);
  say(`export HEARTH_TOKEN=${hearth.developerToken}`);
  say("npx hearth deploy examples/hello/src/index.ts --app demo --name hello2");
  say("");
  say(`Devices: ${[...hearth.devices.keys()].join(", ")} (logs in ${LOG_DIR})`);
  say("Press Ctrl-C to stop.");
}

main().catch(async (error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\nLogs: ${LOG_DIR}\n`);
  await shutdown(1);
});
