/**
 * @hearth/devkit — launchers for the real servers a local Hearth needs:
 * nats-server and redis-server on free loopback ports, with temp dirs,
 * readiness raced against early exit, and cleanup on dispose.
 */
export { startDelayProxy } from "./delay-proxy.ts";
export type { DelayProxy } from "./delay-proxy.ts";
export { freePort } from "./free-port.ts";
export { run } from "./run.ts";
export { waitFor } from "./wait-for.ts";
export { spawnServer } from "./spawn-server.ts";
export type { SpawnedServer, SpawnServerOptions } from "./spawn-server.ts";
export { NATS_MAX_PAYLOAD, natsServerBinary, startNatsServer } from "./nats-server.ts";
export type { NatsServer, NatsServerOptions } from "./nats-server.ts";
export { redisServerBinary, startRedisServer } from "./redis-server.ts";
export type { RedisServer, RedisServerOptions } from "./redis-server.ts";
export { startLocalHearth } from "./local-hearth.ts";
export type { DeviceSpec, LocalHearth, LocalHearthOptions, RunningDevice } from "./local-hearth.ts";
