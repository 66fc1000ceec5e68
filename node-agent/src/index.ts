/**
 * @hearth/node-agent — the device daemon: fabric client, placements,
 * heartbeats, and the sandbox (isolated-vm in supervised child processes).
 */
export { Agent, AGENT_VERSION } from "./agent/index.ts";
export { AgentConfig, parseAgentConfig, defaultDeviceId } from "./config/index.ts";
export type { AgentConfigInput } from "./config/index.ts";
export type { AgentStatus } from "./agent/index.ts";
export { resolveAgentConfig, defaultDataDir } from "./config/index.ts";
export type { ConfigSources } from "./config/index.ts";
export { startDaemon } from "./daemon/index.ts";
export type { Daemon, DaemonOptions } from "./daemon/index.ts";
export { Availability, inSchedule, parseWindow } from "./owner/index.ts";
export type { PauseReason, ScheduleWindow } from "./owner/index.ts";
export { CoreGate, WarmIsolates } from "./limits/index.ts";
export { readIdentity, writeIdentity } from "./identity/index.ts";
export { BundleCache } from "./bundles/index.ts";
export { SandboxPool } from "./sandbox/supervisor.ts";
export type { CallSettings, OutboundPolicy, SandboxPoolOptions } from "./sandbox/supervisor.ts";
export { isPublicAddress } from "./sandbox/outbound.ts";
export type { SandboxLimits, SandboxRequest, SandboxResult } from "./sandbox/messages.ts";
export { createLogger, silentLogger } from "./log/index.ts";
