/**
 * The gateway's Node HTTP adapter sends exactly the headers a response has.
 * @hono/node-server fills in `content-type: text/plain; charset=UTF-8` for
 * every response that has none (a deliberate default of that adapter, made
 * in `buildOutgoingHttpHeaders` where no hook reaches). workerd sends none, and a
 * 204 preflight, a 304 or a redirect must not gain one. So the gateway marks
 * a function's answer that had no content-type with NO_CONTENT_TYPE, and the
 * server's own ServerResponse class takes both the mark and the adapter's
 * default out at writeHead. A function cannot send the mark itself: the gateway drops
 * every `x-hearth-*` header a function sets.
 */
import { ServerResponse, type IncomingMessage, type OutgoingHttpHeaders, type ServerOptions } from "node:http";

/** Set (on the Response the gateway hands the adapter) when the function's answer had no content-type. */
export const NO_CONTENT_TYPE = "x-hearth-no-content-type";

class ExactHeadersResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  override writeHead(statusCode: number, ...rest: unknown[]): this {
    const headers = rest[rest.length - 1];
    if (headers !== null && typeof headers === "object" && !Array.isArray(headers)) {
      const record = headers as OutgoingHttpHeaders;
      if (NO_CONTENT_TYPE in record) {
        delete record[NO_CONTENT_TYPE];
        for (const name of Object.keys(record)) if (name.toLowerCase() === "content-type") delete record[name];
      }
    }
    return (super.writeHead as (code: number, ...args: unknown[]) => this)(statusCode, ...rest);
  }
}

/** Options for the platform's HTTP server (`serve({ serverOptions })`). */
export const EXACT_HEADERS_SERVER_OPTIONS: ServerOptions = { ServerResponse: ExactHeadersResponse as typeof ServerResponse };
