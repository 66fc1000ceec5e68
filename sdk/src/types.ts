/** Types a function author writes against: the Workers-style module shape. */

/** A service binding (`hearth deploy --bind NAME=fn`): `env.NAME.fetch(request)` calls function `fn` of the same app. */
export interface Fetcher {
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

/**
 * Variables and secrets configured for the function, its service bindings,
 * and `call`: `env.call("fn", request)` calls function `fn` of the same app
 * (on this device when it is placed here, else on a peer of the app's
 * network). A relative URL is resolved against `https://<fn>.internal/`.
 * The answer is the callee's response, or Hearth's error envelope with its
 * status (404 no such function, 403 another app's, 508 a chain deeper than 4).
 * See docs/function-calls.md.
 */
export type Env = Record<string, unknown> & {
  call(fn: string, input?: RequestInfo | URL, init?: RequestInit): Promise<Response>;
};

/** Per-call context. */
export interface Context {
  /** Keeps work going after the response is sent, within the call's limits. */
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
}

/**
 * The shape of a Hearth function module.
 *
 * @example
 * export default {
 *   async fetch(request) {
 *     return new Response("hello");
 *   },
 * } satisfies HearthFunction;
 */
export interface HearthFunction<E = Env> {
  fetch(request: Request, env: E, ctx: Context): Response | Promise<Response>;
}
