/**
 * @hearth/edge: where an HTTP client meets Hearth, shared by the platform's
 * gateway and a device's own door (node-agent ingress), so both answer the
 * same request the same way: front-door defences, the error envelope, the
 * invocation codec, and the check of a device's reply.
 */
export { isPublicAddress, unmappedAddress } from "./addresses.ts";
export { scopeSetCookie } from "./cookies.ts";
export { errorEnvelope, errorResponse, onError, REQUEST_ID_HEADER, tooMany, type EdgeLogger } from "./envelope.ts";
export { EXACT_HEADERS_SERVER_OPTIONS, NO_CONTENT_TYPE } from "./exact-headers.ts";
export {
  CallLimits,
  clientKey,
  DEFAULT_CALL_LIMITS,
  FRONT_DOOR,
  frontDoorServerOptions,
  onClientError,
  type CallLimitSettings,
  type Refusal,
} from "./front-door.ts";
export {
  addServerTiming,
  deviceErrorMessage,
  ERROR_CODES_KIND_SYSTEM,
  firstSegment,
  HOP_BY_HOP,
  invocationHeaders,
  isIdempotent,
  parseDeviceReply,
  readBody,
  replyToResponse,
  SERVED_BY_HEADERS,
  serverTiming,
  SHARED_ORIGIN_HEADER,
  toResponse,
  type DeviceReply,
  type InvocationOf,
  type ParsedReply,
  type ReplyAnswer,
} from "./reply.ts";
