/**
 * @hearth/platform — the control plane and gateway: the API (Hono + zod),
 * the scheduler, the bundle service, and the HTTP gateway that turns calls
 * into NATS requests to devices.
 */
export { startPlatform, createHttpApp } from "./platform.ts";
export type { Platform, PlatformOptions } from "./platform.ts";
export { readPlatformEnv, PlatformEnv } from "./config/index.ts";
export { createLogger, silentLogger } from "./log/index.ts";
export type { Logger } from "./log/index.ts";
export { Scheduler, rankCandidates } from "./scheduler/index.ts";
export { chooseDevices } from "./gateway/index.ts";
export { DeviceLatency } from "./gateway/latency.ts";
export { Store, connectRedis } from "./state/index.ts";
export type { Placement, DeviceEntry } from "./state/index.ts";
export {
  BUNDLE_REQUEST_BUDGET,
  DeviceRegistry,
  FabricAuthority,
  FabricControl,
  FabricKeys,
  generateFabricKeys,
  readFabricKeys,
} from "./identity/index.ts";
export { connectAsDevice, connectAsPlatform, deviceCreds, FakeDevice, joinTestDevice, natsAuth } from "./identity/testing.ts";
export type { FakeDeviceOptions, InvokeHandler, JoinedDevice } from "./identity/testing.ts";
