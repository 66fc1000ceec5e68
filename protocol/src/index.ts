/**
 * @hearth/protocol — the wire: zod schemas and types of every message between
 * the platform, the devices and the SDK, the fabric's subjects, and the error
 * registry. Depends on nothing of ours.
 */
export { DEVICE_ERROR_CODES, ERROR_CODES, HearthError, isDeviceErrorCode, isErrorCode } from "./errors.ts";
export type { DeviceErrorCode, ErrorCode, ErrorEnvelope, WireError } from "./errors.ts";
export { AppName, DeviceId, devicePermissions, FunctionName, MAX_DEVICE_NETWORKS, NAME_PATTERN, Sha256Hex, Subjects } from "./names.ts";
export type { DevicePermissions } from "./names.ts";
export {
  DEFAULT_LIMITS,
  DEVICE_CREDENTIAL_LIMITS,
  DEVICE_MESSAGE_BYTES,
  FunctionLimits,
  FunctionLimitsInput,
  LIMIT_CAPS,
  MAX_BUNDLE_BYTES,
  MAX_PLACED_FUNCTIONS,
  resolveLimits,
} from "./limits.ts";
export {
  BundleRequest,
  ControlMessage,
  ControlReply,
  DoorCall,
  DOOR_IDENTITY_PATH,
  DoorIdentity,
  DoorPeersReply,
  DoorPeersRequest,
  DoorUsageReport,
  DoorUrl,
  Heartbeat,
  HTTP_HEADER_NAME,
  HTTP_HEADER_PREFIX,
  MAX_CALL_DEPTH,
  HttpMethod,
  INVOKE_HEADERS,
  INVOKE_REPLY_HEADERS,
  InvokeMeta,
  Location,
  MAX_RESPONSE_HEADER_BYTES,
  MAX_RESPONSE_HEADERS,
  PlacedFunction,
  RelayServed,
  RequestId,
} from "./messages.ts";
export {
  DeployOptions,
  DeviceList,
  DeviceView,
  DoorList,
  DoorsQuery,
  DoorView,
  FunctionList,
  FunctionRecord,
  FunctionStatus,
  Scaling,
  FunctionView,
  Near,
  RollbackRequest,
  VersionList,
  VersionRecord,
} from "./api.ts";
export {
  AppUsage,
  DayUsage,
  DeviceCreditDay,
  DeviceCredits,
  FunctionUsage,
  ReconcileReport,
  RepairReport,
  USAGE_DOORS,
  UsageDay,
  UsageDoor,
  UsageId,
  UsageOutcome,
  UsageRecord,
  UsageReport,
  UsageTotals,
  usageDay,
} from "./usage.ts";
export {
  AppNetworkSettings,
  AppNetworkView,
  DeviceNetworkJoinRequest,
  DeviceNetworkJoinResponse,
  DeviceNetworksView,
  DevicePublicKey,
  FabricCredential,
  JoinRequest,
  JoinResponse,
  JoinTokenRequest,
  JoinTokenResponse,
  NetworkInvite,
  NetworkInviteRequest,
  NetworkInviteResponse,
  RevokeResponse,
} from "./devices.ts";
export {
  API_TOKEN_PATTERN,
  API_TOKEN_PREFIX,
  ApiToken,
  AppOwner,
  AppOwnerRequest,
  CreateDeveloperRequest,
  CreateDeveloperResponse,
  CreateTokenRequest,
  Developer,
  DeveloperId,
  DeveloperList,
  DeveloperName,
  DeveloperView,
  IssuedToken,
  TokenId,
  TokenList,
  TokenName,
  TokenView,
  WhoAmI,
} from "./developers.ts";
export { formatZodError } from "./zod-format.ts";
export {
  CompatibilityFlag,
  CompatibilityFlags,
  decodeEnvHeader,
  encodeEnvHeader,
  ENV_HEADER,
  ENV_NAME_PATTERN,
  FunctionBindings,
  FunctionEnv,
  HostPattern,
  MAX_BINDINGS,
  MAX_ENV_BYTES,
  MAX_ENV_VARS,
  OutboundSettings,
  parseBindingList,
} from "./settings.ts";
export {
  DEFAULT_LOG_LIMIT,
  LogEntry,
  LogLevel,
  LogLine,
  LogList,
  LogSince,
  LogsQuery,
  logSubject,
  logSubjectFilter,
  MAX_LOG_LIMIT,
  MAX_LOG_BATCH_LINES,
  MAX_LOG_MESSAGE_CHARS,
} from "./logs.ts";
export { FunctionStatsReport, RecentError, StatsDay, StatsPoint, StatsQuery, StatsRange } from "./stats.ts";
export { ConsoleDevice, DeviceState, HealthResponse, LastReconcile, OperatorView, OwnerView } from "./console.ts";
export { childSpan, formatTraceparent, parseTraceparent, TraceId, Traceparent } from "./trace.ts";
export type { TraceContext } from "./trace.ts";
