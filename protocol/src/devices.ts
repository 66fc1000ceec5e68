/**
 * Devices on the wire to the platform's HTTP API: joining with a join token
 * (the device's own nkey goes in, its fabric credential comes back), renewing
 * that credential, and the operator's join tokens and revocations. See
 * docs/security.md for what a credential allows.
 */
import { z } from "zod";
import { AppName, DeviceId } from "./names.ts";

/** A device's nkey public key (user type): the platform signs it, the seed stays on the device. */
export const DevicePublicKey = z.string().regex(/^U[A-Z2-7]{55}$/, "publicKey must be an nkey user public key (U followed by 55 base32 characters)");

/** A single-use invite to an app's network, as `hearth networks invite` prints it. */
export const NetworkInvite = z
  .string()
  .regex(/^hn_[A-Za-z0-9_-]{32}$/, "a network invite is hn_ followed by 32 characters, as `hearth networks invite <app>` printed it");

/** `POST /v1/devices/join`: a device owner's agent registers with a join token. */
export const JoinRequest = z.strictObject({
  token: z.string().min(16).max(256),
  deviceId: DeviceId,
  publicKey: DevicePublicKey,
  /** The machine's cores and memory: the most a heartbeat may later claim to donate. */
  cores: z.number({ error: "cores is required: the machine's core count (the most its heartbeats may claim)" }).positive().max(1024),
  memoryMb: z.number({ error: "memoryMb is required: the machine's memory in MiB (the most its heartbeats may claim)" }).int().positive().max(4 * 1024 * 1024),
  agentVersion: z.string().max(32).optional(),
});
export type JoinRequest = z.infer<typeof JoinRequest>;

/** A device's fabric credential: a user JWT for its own public key, and when it expires. */
export const FabricCredential = z.strictObject({
  jwt: z.string().min(32).max(16_384),
  expiresAt: z.string(),
});
export type FabricCredential = z.infer<typeof FabricCredential>;

/** What a joined device keeps (in its data dir, mode 0600) to start and to read its credits, and its first fabric credential. */
export const JoinResponse = z.strictObject({
  deviceId: DeviceId,
  ownerId: z.string().min(1).max(64),
  region: z.string().min(1).max(64),
  natsUrl: z.string().min(1).max(2048),
  subjectPrefix: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/),
  /** Lets the device (and its owner) read this device's credits and renew its fabric credential. */
  deviceToken: z.string().min(32).max(256),
  joinedAt: z.string(),
  fabric: FabricCredential,
});
export type JoinResponse = z.infer<typeof JoinResponse>;

/** `POST /v1/join-tokens` (operator): a token an owner passes to `hearth-agent join`. */
export const JoinTokenRequest = z.strictObject({
  ownerId: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, "ownerId must be 1-64 characters of A-Z, a-z, 0-9, _ . @ -"),
  region: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "region must be 1-64 characters of A-Z, a-z, 0-9, _ . -").optional(),
  /** How long the token can be used, seconds (default one day). */
  ttlSeconds: z.number().int().min(60).max(30 * 86_400).optional(),
});
export type JoinTokenRequest = z.infer<typeof JoinTokenRequest>;

export const JoinTokenResponse = z.strictObject({ token: z.string(), ownerId: z.string(), expiresAt: z.string() });
export type JoinTokenResponse = z.infer<typeof JoinTokenResponse>;

/** `POST /v1/devices/:id/revoke` (operator). */
export const RevokeResponse = z.strictObject({ deviceId: DeviceId, revokedAt: z.string() });
export type RevokeResponse = z.infer<typeof RevokeResponse>;


/** `POST /v1/apps/:app/network/invites` (the app's developer). */
export const NetworkInviteRequest = z.strictObject({
  /** How long the invite can be used, seconds (default one day). */
  ttlSeconds: z.number().int().min(60, "ttlSeconds must be at least 60").max(30 * 86_400, "ttlSeconds must be at most 30 days").optional(),
});
export type NetworkInviteRequest = z.infer<typeof NetworkInviteRequest>;

export const NetworkInviteResponse = z.strictObject({ invite: NetworkInvite, app: AppName, expiresAt: z.string() });
export type NetworkInviteResponse = z.infer<typeof NetworkInviteResponse>;

/** `GET /v1/apps/:app/network` (the app's developer): whether the app is private, and the devices invited into its network. */
export const AppNetworkView = z.strictObject({
  app: AppName,
  private: z.boolean(),
  members: z.array(z.strictObject({ deviceId: DeviceId, joinedAt: z.string() })),
});
export type AppNetworkView = z.infer<typeof AppNetworkView>;

/** `PUT /v1/apps/:app/network` (the app's developer): a private app is placed only on devices invited into its network. */
export const AppNetworkSettings = z.strictObject({ private: z.boolean() });
export type AppNetworkSettings = z.infer<typeof AppNetworkSettings>;

/** `POST /v1/devices/:id/networks` (the device's own token): redeem an invite. */
export const DeviceNetworkJoinRequest = z.strictObject({ invite: NetworkInvite });
export type DeviceNetworkJoinRequest = z.infer<typeof DeviceNetworkJoinRequest>;

/** Its answer: the app whose network the device joined, and its credential that now names it. */
export const DeviceNetworkJoinResponse = z.strictObject({ app: AppName, fabric: FabricCredential });
export type DeviceNetworkJoinResponse = z.infer<typeof DeviceNetworkJoinResponse>;

/** `GET /v1/devices/:id/networks` (the device's own token): the networks it was invited into, and every network its credential names. */
export const DeviceNetworksView = z.strictObject({
  deviceId: DeviceId,
  invited: z.array(AppName),
  credential: z.array(AppName),
});
export type DeviceNetworksView = z.infer<typeof DeviceNetworksView>;
