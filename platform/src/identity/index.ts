/**
 * Who may do what: the fabric's authority (NATS operator, account and
 * signing keys; device credentials), joined devices and their revocation.
 */
export { DEFAULT_CREDENTIAL_TTL_SECONDS, DEVICE_REPLY_TTL_MS, DeviceRecord, DeviceRegistry } from "./devices.ts";
export type { DeviceRegistryOptions } from "./devices.ts";
export {
  FABRIC_KEYS_ENV,
  FABRIC_KEYS_FILE_ENV,
  FabricAuthority,
  FabricKeys,
  generateFabricKeys,
  parseFabricKeys,
  readFabricKeys,
  writeFabricKeys,
} from "./fabric.ts";
export type { DeviceCredentialOptions, FabricPublicKeys } from "./fabric.ts";
export { FabricControl } from "./fabric-control.ts";
export type { DeviceLookup, FabricControlOptions } from "./fabric-control.ts";
export { createDeviceAdminRoutes, createDeviceRoutes } from "./routes.ts";
export type { DeviceRouteOptions } from "./routes.ts";
