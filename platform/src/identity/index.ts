/**
 * Identity: who may use the platform and what is theirs. Developers and
 * their API tokens (hashed at rest, revocable), which developer owns which
 * app, the API's authentication and its operator/developer guards, and the
 * operator's `hearth-platform developers ...` commands. See docs/security.md.
 */
export { apiAuth, bearerToken, developerOf, operatorOnly } from "./api-auth.ts";
export type { Caller, DeveloperCaller, OperatorCaller } from "./api-auth.ts";
export { AppOwners } from "./app-owners.ts";
export { createDeveloperRoutes } from "./developer-routes.ts";
export { DEFAULT_TOKEN_NAME, Developers, sameSecret, sha256Hex } from "./developers.ts";
export type { Authenticated } from "./developers.ts";
