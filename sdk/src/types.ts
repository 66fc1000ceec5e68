/** Types a function author writes against: the Workers-style module shape. */

/** Variables and secrets configured for the function. */
export type Env = Record<string, unknown>;

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
