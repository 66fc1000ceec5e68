/**
 * @hearth/sdk — deploy and call Hearth functions from code: `HearthClient`
 * for the platform API, `bundleFunction` (esbuild), and the function types.
 * The `hearth` CLI is built on the same client.
 */
export { HearthClient } from "./client.ts";
export type { DeployInput, HearthClientOptions, InvokeInit, LogsOptions, TailLogsOptions } from "./client.ts";
export { bundleFunction } from "./bundle.ts";
export type { Context, Env, Fetcher, HearthFunction } from "./types.ts";
export { HearthError, ERROR_CODES } from "@hearth/protocol";
export type {
  AppOwner,
  CreateDeveloperResponse,
  DeveloperView,
  DeviceView,
  DoorView,
  ErrorCode,
  FunctionLimitsInput,
  FunctionView,
  IssuedToken,
  LogEntry,
  LogLevel,
  TokenView,
  VersionRecord,
  WhoAmI,
} from "@hearth/protocol";
