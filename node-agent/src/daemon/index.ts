/**
 * The running daemon of `hearth-agent start`: the agent, the owner's
 * availability rules (schedule, idle-only, battery) that pause and resume it,
 * and the control socket that `status`, `pause`, `resume` and `drain` use.
 */
import type { Server } from "node:net";
import { Agent, type AgentStatus, type RenewOptions } from "../agent/index.ts";
import type { AgentConfig } from "../config/index.ts";
import { startControlServer } from "../control/index.ts";
import type { Logger } from "../log/index.ts";
import { startAgentMetrics } from "../metrics/index.ts";
import { Availability, hearthShareOf, type AvailabilityOptions } from "../owner/index.ts";

export interface DaemonOptions {
  /** Listen on the data dir's control socket (default true). */
  control?: boolean;
  /** Where to renew the fabric credential (the platform joined, the device token); without it the credential is used until it expires. */
  renew?: RenewOptions;
  /** Replaceable sources of time, battery state and load (tests). */
  sensors?: Pick<AvailabilityOptions, "now" | "battery" | "load">;
}

export interface Daemon extends AsyncDisposable {
  readonly agent: Agent;
  readonly availability: Availability;
  status(): AgentStatus;
  /** Drains (no new calls; in-flight calls finish within the grace period) and stops. */
  stop(): Promise<void>;
  /** Resolves once stopped. */
  readonly stopped: Promise<void>;
}

export async function startDaemon(config: Readonly<AgentConfig>, log: Logger, options: DaemonOptions = {}): Promise<Daemon> {
  let agent: Agent | undefined;
  const availability = new Availability({
    schedule: config.schedule,
    idleOnly: config.idleOnly,
    idlePauseAbove: config.idlePauseAbove,
    idleResumeBelow: config.idleResumeBelow,
    idleForMs: config.idleForMs,
    pauseOnBattery: config.pauseOnBattery,
    checkMs: config.checkMs,
    hearthShare: () => hearthShareOf(agent?.activeCalls ?? 0),
    ...options.sensors,
  });
  agent = await Agent.start(config, log, { paused: availability.check(), renew: options.renew });
  const started = agent;
  availability.start((reasons) => {
    started.setPaused(reasons).catch((error: unknown) => log.error({ err: error }, "could not pause or resume"));
  });

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let control: (Server & AsyncDisposable) | undefined;
  let metrics: (Server & AsyncDisposable) | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      availability.stop();
      log.info("draining: no new calls; in-flight calls may finish");
      await started.close();
      await control?.[Symbol.asyncDispose]();
      await metrics?.[Symbol.asyncDispose]();
      resolveStopped();
    })());

  // revoked by the operator: this device is off the fabric for good, so the daemon ends
  started.onRevoked = () => void stop();

  if (options.control !== false) {
    try {
      control = await startControlServer(config.dataDir, config.deviceId, {
        status: () => started.status(),
        pause: () => availability.setManual(true),
        resume: () => availability.setManual(false),
        drain: () => void stop(),
      });
    } catch (error) {
      availability.stop();
      await started.close();
      throw error;
    }
  }
  if (config.metricsPort !== undefined) {
    try {
      const server = await startAgentMetrics(started, config.metricsPort);
      metrics = server;
      log.info({ url: `http://127.0.0.1:${server.port}/metrics` }, "serving Prometheus metrics on this machine only");
    } catch (error) {
      availability.stop();
      await started.close();
      await control?.[Symbol.asyncDispose]();
      throw error;
    }
  }
  return { agent: started, availability, status: () => started.status(), stop, stopped, [Symbol.asyncDispose]: stop };
}
