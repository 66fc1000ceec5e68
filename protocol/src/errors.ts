/**
 * Error codes of every Hearth component, in one registry.
 *
 * An error is a value with a stable `code`; the HTTP status, and whether the
 * caller (a user error) or Hearth (a system error) is at fault, follow from
 * the code. Every code is documented in docs/errors.md (a test checks).
 */

interface ErrorSpec {
  readonly status: number;
  readonly kind: "user" | "system";
}

export const ERROR_CODES = {
  // user errors: the request, the function or its input is at fault
  ERR_APP_HOST_REQUIRED: { status: 308, kind: "user" },
  ERR_BAD_REQUEST: { status: 400, kind: "user" },
  ERR_BAD_BUNDLE: { status: 400, kind: "user" },
  ERR_UNAUTHORIZED: { status: 401, kind: "user" },
  ERR_TOKEN_UNKNOWN: { status: 401, kind: "user" },
  ERR_TOKEN_REVOKED: { status: 401, kind: "user" },
  ERR_JOIN_TOKEN_INVALID: { status: 401, kind: "user" },
  ERR_INVITE_INVALID: { status: 410, kind: "user" },
  ERR_FORBIDDEN: { status: 403, kind: "user" },
  ERR_CALL_OTHER_APP: { status: 403, kind: "user" },
  ERR_DEVICE_REVOKED: { status: 403, kind: "user" },
  ERR_DEVICE_NOT_FOUND: { status: 404, kind: "user" },
  ERR_NOT_FOUND: { status: 404, kind: "user" },
  ERR_FUNCTION_NOT_FOUND: { status: 404, kind: "user" },
  ERR_VERSION_NOT_FOUND: { status: 404, kind: "user" },
  ERR_DEVELOPER_NOT_FOUND: { status: 404, kind: "user" },
  ERR_TOKEN_NOT_FOUND: { status: 404, kind: "user" },
  ERR_METHOD_NOT_ALLOWED: { status: 405, kind: "user" },
  ERR_DEVELOPER_EXISTS: { status: 409, kind: "user" },
  ERR_REQUEST_TIMEOUT: { status: 408, kind: "user" },
  ERR_BODY_TOO_LARGE: { status: 413, kind: "user" },
  ERR_URL_TOO_LONG: { status: 414, kind: "user" },
  ERR_RATE_LIMITED: { status: 429, kind: "user" },
  ERR_HEADERS_TOO_LARGE: { status: 431, kind: "user" },
  ERR_BUNDLE_TOO_LARGE: { status: 413, kind: "user" },
  ERR_FUNCTION_THREW: { status: 500, kind: "user" },
  ERR_BAD_RESPONSE: { status: 500, kind: "user" },
  ERR_RESPONSE_TOO_LARGE: { status: 502, kind: "user" },
  ERR_CPU_LIMIT: { status: 504, kind: "user" },
  ERR_MEMORY_LIMIT: { status: 503, kind: "user" },
  ERR_WALL_TIME_LIMIT: { status: 504, kind: "user" },
  ERR_FUNCTION_QUARANTINED: { status: 503, kind: "user" },
  ERR_CALL_DEPTH: { status: 508, kind: "user" },
  // system errors: Hearth, the fabric or a device is at fault
  ERR_INTERNAL: { status: 500, kind: "system" },
  ERR_BAD_MESSAGE: { status: 502, kind: "system" },
  ERR_SANDBOX_CRASHED: { status: 502, kind: "system" },
  ERR_BUNDLE_INTEGRITY: { status: 502, kind: "system" },
  ERR_NO_DEVICE: { status: 503, kind: "system" },
  ERR_DEVICE_TIMEOUT: { status: 504, kind: "system" },
  ERR_PLATFORM_UNREACHABLE: { status: 503, kind: "system" },
  ERR_DEVICE_BUSY: { status: 503, kind: "system" },
  ERR_LEDGER_UNAVAILABLE: { status: 503, kind: "system" },
  ERR_LOGS_UNAVAILABLE: { status: 503, kind: "system" },
  ERR_BAD_DEVICE_REPLY: { status: 502, kind: "system" },
  ERR_DEVICE_LOST: { status: 502, kind: "system" },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * The codes a device may answer an invocation with: what the function did
 * (threw, broke a limit, answered badly) and what the device or its sandbox
 * could not do. The gateway answers any other code from a device with
 * ERR_BAD_DEVICE_REPLY, so a device cannot make the platform say, for
 * example, 401 ERR_UNAUTHORIZED.
 */
export const DEVICE_ERROR_CODES = [
  "ERR_FUNCTION_THREW",
  "ERR_BAD_RESPONSE",
  "ERR_RESPONSE_TOO_LARGE",
  "ERR_CPU_LIMIT",
  "ERR_MEMORY_LIMIT",
  "ERR_WALL_TIME_LIMIT",
  "ERR_FUNCTION_QUARANTINED",
  "ERR_BAD_BUNDLE",
  "ERR_SANDBOX_CRASHED",
  "ERR_BUNDLE_INTEGRITY",
  "ERR_DEVICE_BUSY",
  "ERR_NO_DEVICE",
  "ERR_PLATFORM_UNREACHABLE",
  "ERR_BAD_MESSAGE",
  "ERR_INTERNAL",
] as const satisfies readonly ErrorCode[];
export type DeviceErrorCode = (typeof DEVICE_ERROR_CODES)[number];

export function isDeviceErrorCode(value: unknown): value is DeviceErrorCode {
  return typeof value === "string" && (DEVICE_ERROR_CODES as readonly string[]).includes(value);
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

/** The one error class of Hearth: a message for people, a code for programs. */
export class HearthError extends Error {
  override readonly name = "HearthError";
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get isUserError(): boolean {
    return ERROR_CODES[this.code].kind === "user";
  }

  /** The `{ code, message }` shape that crosses the fabric. */
  toWire(): WireError {
    return { code: this.code, message: this.message };
  }

  /** Turns a `{ code, message }` received over the wire back into a typed error. */
  static fromWire(wire: { code?: unknown; message?: unknown }): HearthError {
    const message = typeof wire.message === "string" ? wire.message.slice(0, 2000) : "no message";
    if (isErrorCode(wire.code)) return new HearthError(wire.code, message);
    return new HearthError("ERR_BAD_MESSAGE", `unknown error code ${String(wire.code).slice(0, 64)}: ${message}`);
  }
}

export interface WireError {
  code: ErrorCode;
  message: string;
}

/** The HTTP error envelope of every Hearth error response. */
export interface ErrorEnvelope {
  error: { code: ErrorCode; message: string; requestId: string };
}
