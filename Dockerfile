# One image for both roles; the command picks it:
#   docker run hearth platform                      (env: HEARTH_NATS_URL, HEARTH_TOKEN, REDIS_URL, ...)
#   docker run hearth agent start --nats nats://...  (flags as in docs/agent.md)
# It mirrors what scripts/bootstrap.mjs does on a dev machine: Node 24 (here
# the official image), dependencies installed by Node 24's npm so native
# modules (isolated-vm) match its ABI, and the SDK built. nats-server and
# Redis are separate services, not part of this image.

FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# Every workspace's package.json, so `npm ci` sees the same workspaces as the
# lockfile (it refuses a lockfile that names one it cannot find). COPY cannot
# keep folders from a glob, so each is named; test/e2e/dockerfile.test.ts
# fails when a workspace is added to the lockfile but not here.
COPY package.json package-lock.json ./
COPY protocol/package.json protocol/
COPY edge/package.json edge/
COPY devkit/package.json devkit/
COPY platform/package.json platform/
COPY node-agent/package.json node-agent/
COPY sdk/package.json sdk/
COPY examples/compression/package.json examples/compression/
COPY examples/crypto-streams/package.json examples/crypto-streams/
COPY examples/hello/package.json examples/hello/
COPY examples/hono-app/package.json examples/hono-app/
COPY examples/jose-auth/package.json examples/jose-auth/
COPY examples/node-compat/package.json examples/node-compat/
COPY examples/zod-api/package.json examples/zod-api/
COPY test/package.json test/
COPY sdk/scripts sdk/scripts
COPY sdk/src sdk/src
COPY protocol/src protocol/src
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /app /app
COPY --chown=root:root docker/entrypoint.sh /usr/local/bin/hearth-entrypoint
RUN chmod 755 /usr/local/bin/hearth-entrypoint
# The platform role needs the fabric's keys: mount the file `hearth-platform fabric init` wrote as a secret and
# set HEARTH_FABRIC_KEYS_FILE to it (or pass HEARTH_FABRIC_KEYS); see docs/security.md.
# The agent keeps its identity and fabric credential (0600), control socket and pid file here
# (HEARTH_AGENT_DIR, its data dir); a volume, so a joined device stays joined
# when the container is replaced. The app itself stays read-only for the runtime user.
RUN mkdir -p /var/lib/hearth && chown node:node /var/lib/hearth && chmod 700 /var/lib/hearth
USER node
ENV HEARTH_HOST=0.0.0.0 HEARTH_AGENT_DIR=/var/lib/hearth
VOLUME ["/var/lib/hearth"]
EXPOSE 8787
ENTRYPOINT ["hearth-entrypoint"]
CMD ["platform"]
