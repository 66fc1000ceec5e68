// The console's one way to the API: the signed-in token (sessionStorage, this
// tab only, gone when it closes) as a bearer header on same-origin requests.
// No cookie holds it, so no other site can make the browser use it (no CSRF).

const KEY = "hearth.console.token";

export function token() {
  return sessionStorage.getItem(KEY);
}
export function signIn(value) {
  sessionStorage.setItem(KEY, value);
}
export function signOut() {
  sessionStorage.removeItem(KEY);
}

/** An API error: the platform's envelope `{ error: { code, message, requestId } }`. */
export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

async function failure(res) {
  const body = await res.json().catch(() => null);
  const e = body && body.error;
  return new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? res.statusText, e?.requestId ?? res.headers.get("x-request-id") ?? "");
}

/** @param {string} method @param {string} path under /v1 @param {unknown} [body] */
export async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token() ?? ""}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit", cache: "no-store" });
  if (!res.ok) throw await failure(res);
  return res.status === 204 ? null : res.json();
}

export const enc = encodeURIComponent;

/**
 * Follows a function's logs (the API's Server-Sent Events) until `signal`
 * aborts: `onLine` gets each line; a stream lost after it opened is asked
 * again from the last line seen (`after`), so none is repeated.
 */
export async function followLogs(app, fn, { requestId, signal, onLine, onState }) {
  let after;
  for (let attempt = 0; !signal.aborted; attempt++) {
    const query = new URLSearchParams({ follow: "1", limit: "50" });
    if (requestId) query.set("requestId", requestId);
    if (after !== undefined) query.set("after", String(after));
    try {
      const res = await fetch(`/v1/apps/${enc(app)}/functions/${enc(fn)}/logs?${query}`, {
        headers: { authorization: `Bearer ${token() ?? ""}`, accept: "text/event-stream" }, signal, credentials: "omit", cache: "no-store",
      });
      if (!res.ok) throw await failure(res);
      onState("following");
      attempt = 0;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = { event: "message", data: "", id: undefined };
          for (const field of block.split("\n")) {
            if (field.startsWith(":")) continue;
            const colon = field.indexOf(":");
            const name = colon < 0 ? field : field.slice(0, colon);
            const v = colon < 0 ? "" : field.slice(colon + 1).replace(/^ /, "");
            if (name === "event") event.event = v;
            else if (name === "data") event.data += (event.data ? "\n" : "") + v;
            else if (name === "id") event.id = v;
          }
          if (event.event === "line") {
            const line = JSON.parse(event.data);
            after = line.seq;
            onLine(line);
          } else if (event.event === "error") {
            const e = JSON.parse(event.data).error;
            throw new ApiError(0, e.code, e.message, e.requestId);
          }
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      // a refused token or a missing function ends the follow; a lost stream is picked up again
      if (error instanceof ApiError && error.status !== 502 && error.status !== 503 && error.status !== 504) throw error;
    }
    if (signal.aborted) return;
    onState("reconnecting");
    await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** attempt)));
  }
}

/**
 * Runs `task` every `ms` until `signal` aborts. A refresh that fails for a
 * passing reason waits for the next; one the platform refuses with 401 (the
 * token was revoked meanwhile) tells the page, which shows the 401 page.
 */
export function every(signal, ms, task) {
  const timer = setInterval(() => {
    task().catch((error) => {
      if (error instanceof ApiError && error.status === 401 && !signal.aborted) window.dispatchEvent(new CustomEvent("hearth:unauthorized", { detail: error }));
    });
  }, ms);
  signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}
