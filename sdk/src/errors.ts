import { HearthError, isErrorCode } from "@hearth/protocol";

/** Turns a non-2xx API response into a typed HearthError (its `code` says what went wrong). */
export async function errorFrom(response: Response): Promise<HearthError> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; requestId?: unknown } };
    if (body.error && isErrorCode(body.error.code)) {
      const id = typeof body.error.requestId === "string" && body.error.requestId ? ` (request ${body.error.requestId})` : "";
      return new HearthError(body.error.code, `${String(body.error.message)}${id}`);
    }
  } catch {
    // not an envelope: fall through
  }
  // not the platform's own answer: a proxy's 502/503/504 means the platform is out of reach (restarting, say)
  const code =
    response.status === 401 ? "ERR_UNAUTHORIZED"
    : response.status === 404 ? "ERR_NOT_FOUND"
    : response.status >= 502 && response.status <= 504 ? "ERR_PLATFORM_UNREACHABLE"
    : "ERR_INTERNAL";
  return new HearthError(code, `the platform answered ${response.status} ${response.statusText}: ${text.slice(0, 200)}`);
}
