/**
/**
 * Who may do what, in one home: developers and their API tokens (hashed at
 * rest, revocable), which developer owns which app, the API's
 * authentication and its operator/developer guards; the fabric's authority
 * (NATS operator, account and signing keys; device credentials), joined
 * devices and their revocation. See docs/security.md.
 */
export { apiAuth, bearerToken, developerOf, deviceOwnerOf, operatorOnly } from "./api-auth.ts";
export type { Caller, DeveloperCaller, OperatorCaller, OwnerCaller } from "./api-auth.ts";
export { AppOwners } from "./app-owners.ts";
export { createDeveloperRoutes } from "./developer-routes.ts";
export { BUNDLE_REQUEST_BUDGET, deviceBudget, LOG_BYTES_BUDGET } from "./device-budget.ts";
export type { DeviceBudget } from "./device-budget.ts";
export { DEFAULT_TOKEN_NAME, Developers, sameSecret, sha256Hex } from "./developers.ts";
export type { Authenticated } from "./developers.ts";
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
export { AppNetworks, DEFAULT_INVITE_TTL_SECONDS, mayServe } from "./networks.ts";
export type { AppNetworksOptions, NetworkEligibility } from "./networks.ts";
export { createDeviceAdminRoutes, createDeviceRoutes } from "./routes.ts";
export type { DeviceRouteOptions } from "./routes.ts";
