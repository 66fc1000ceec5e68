/**
 * Developers and their API tokens on the wire: the operator's admin API
 * (`/v1/developers...`), `GET /v1/whoami`, and the shape of a token. A token
 * is `hth_<token id>_<secret>`: the id names it in lists and logs, the
 * secret (256 bits) is shown once and kept by the platform only as a hash.
 * See docs/security.md, "API tokens and app ownership".
 */
import { z } from "zod";
import { AppName, NAME_PATTERN } from "./names.ts";

export const DeveloperId = z.string().regex(/^dev_[0-9a-f]{12}$/, "developer id must be dev_ followed by 12 hex digits");
export type DeveloperId = z.infer<typeof DeveloperId>;

export const DeveloperName = z
  .string()
  .regex(NAME_PATTERN, "developer name must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit");

export const TokenId = z.string().regex(/^[0-9a-f]{16}$/, "token id must be 16 hex digits");
export type TokenId = z.infer<typeof TokenId>;

/** A label for a token (where it is used: `laptop`, `ci`). */
export const TokenName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/, "token name must be 1-64 characters of A-Z, a-z, 0-9, space, '.', '_' and '-', starting with a letter or digit");

export const API_TOKEN_PREFIX = "hth_";
/** A developer's API token: prefix, token id, 32 random bytes in base64url. */
export const API_TOKEN_PATTERN = /^hth_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
export const ApiToken = z.string().regex(API_TOKEN_PATTERN, "not a Hearth API token (hth_...)");

export const Developer = z.strictObject({ id: DeveloperId, name: DeveloperName, createdAt: z.string() });
export type Developer = z.infer<typeof Developer>;

/** A developer as the admin API lists them. */
export const DeveloperView = Developer.extend({ activeTokens: z.number().int().min(0) });
export type DeveloperView = z.infer<typeof DeveloperView>;

/** A token as lists show it: never its secret, nor its hash. */
export const TokenView = z.strictObject({
  id: TokenId,
  name: TokenName,
  createdAt: z.string(),
  /** Last use, to the minute. */
  lastUsedAt: z.string().optional(),
  revokedAt: z.string().optional(),
});
export type TokenView = z.infer<typeof TokenView>;

/** A token just made: the only answer that carries its value. */
export const IssuedToken = z.strictObject({ id: TokenId, name: TokenName, createdAt: z.string(), value: ApiToken });
export type IssuedToken = z.infer<typeof IssuedToken>;

export const CreateDeveloperRequest = z.strictObject({ name: DeveloperName, tokenName: TokenName.optional() });
export type CreateDeveloperRequest = z.infer<typeof CreateDeveloperRequest>;
export const CreateDeveloperResponse = z.strictObject({ developer: DeveloperView, token: IssuedToken });
export type CreateDeveloperResponse = z.infer<typeof CreateDeveloperResponse>;
export const CreateTokenRequest = z.strictObject({ name: TokenName.optional() });
export type CreateTokenRequest = z.infer<typeof CreateTokenRequest>;
export const DeveloperList = z.strictObject({ developers: z.array(DeveloperView) });
export const TokenList = z.strictObject({ tokens: z.array(TokenView) });

/** `PUT /v1/apps/:app/owner`: the operator gives an app to a developer. */
export const AppOwnerRequest = z.strictObject({ developerId: DeveloperId });
export const AppOwner = z.strictObject({ app: AppName, developerId: DeveloperId });
export type AppOwner = z.infer<typeof AppOwner>;

/** `GET /v1/whoami`: who the token in the request is. */
export const WhoAmI = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("operator") }),
  z.strictObject({
    kind: z.literal("developer"),
    developer: z.strictObject({ id: DeveloperId, name: DeveloperName }),
    token: z.strictObject({ id: TokenId, name: TokenName }),
  }),
  /** A device owner signed in with one of their devices' tokens (the console's owner view). */
  z.strictObject({ kind: z.literal("owner"), ownerId: z.string(), deviceId: z.string() }),
]);
export type WhoAmI = z.infer<typeof WhoAmI>;
