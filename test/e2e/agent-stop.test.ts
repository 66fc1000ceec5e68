/**
 * An owner stopping the agent while the fabric does not answer: nats-server
 * is frozen (SIGSTOP: the TCP connection stays up, nothing comes back), so
 * no drain is ever confirmed. The agent must still stop, in a few seconds,
 * not hang on the confirmation (the bug behind a stuck `afterAll` in CI: an
 * old connection the server had dropped after a credential move never
 * confirmed its drain).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, waitFor, type NatsServer } from "@hearth/devkit";
import { Agent, parseAgentConfig, silentLogger as agentLogger } from "@hearth/node-agent";
import { FabricAuthority, joinTestDevice, natsAuth, silentLogger, startPlatform, type Platform } from "@hearth/platform";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const authority = FabricAuthority.generate();
const dir = mkdtempSync(join(tmpdir(), "hearth-agent-stop-"));
let nats: NatsServer;
let platform: Platform;

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, auth: natsAuth(authority) });
  platform = await startPlatform({ fabricKeys: authority.keys, natsUrl: nats.url, token: "stop-token-0123456789abcdef", log: silentLogger(), subjectPrefix: "stop", region: "eu", tickMs: 200 });
}, 60_000);

afterAll(async () => {
  nats?.server.process.kill("SIGCONT");
  await platform?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("stopping the agent", () => {
  it("stops within seconds when nats-server never confirms its drain", async () => {
    const device = await joinTestDevice(platform.devices, "frozen-out", { region: "eu", cores: 1 });
    writeFileSync(join(dir, "frozen-out.creds"), device.creds, { mode: 0o600 });
    const agent = await Agent.start(
      parseAgentConfig({ natsUrl: nats.url, deviceId: "frozen-out", subjectPrefix: "stop", cores: 1, memoryMb: 128, drainGraceMs: 500, heartbeatMs: 200, credsFile: join(dir, "frozen-out.creds"), dataDir: join(dir, "frozen-out") }),
      agentLogger(),
    );
    await waitFor("the device live", () => platform.scheduler.liveDevice("frozen-out") !== undefined, { timeoutMs: 15_000 });
    expect(nats.server.process.kill("SIGSTOP")).toBe(true);
    try {
      let stopped = false;
      void agent.close().then(() => (stopped = true));
      // each unconfirmed drain is given DRAIN_WAIT_MS (2 s): the invocations, then the connection
      await waitFor("the agent stopped", () => stopped, { timeoutMs: 30_000, intervalMs: 100 });
    } finally {
      nats.server.process.kill("SIGCONT");
    }
  }, 60_000);
});
