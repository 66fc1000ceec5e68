#!/bin/sh
# Picks the role of the Hearth image: `platform` or `agent <args>`.
set -eu
role="${1:-platform}"
[ "$#" -gt 0 ] && shift
case "$role" in
  platform) exec node /app/platform/bin/hearth-platform.js "$@" ;;
  agent) exec node /app/node-agent/bin/hearth-agent.js "$@" ;;
  *)
    echo "hearth image: unknown role '$role'; use 'platform' or 'agent <command>'" >&2
    exit 2
    ;;
esac
