#!/usr/bin/env bash
# `make demo`: use the running Redis, or start a private one on a free port; then run the demo
# (cpu + gpu workers and beat as subprocesses, a generated 10 s clip, live progress, outputs).
set -euo pipefail
cd "$(dirname "$0")/.."
private=""
if [ -z "${MEDIARUNNER_BROKER_URL:-}" ]; then
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    export MEDIARUNNER_BROKER_URL="redis://127.0.0.1:6379/0"
  else
    port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p var/redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --dir "$PWD/var/redis" --pidfile "$PWD/var/redis/redis.pid" --logfile "$PWD/var/redis/redis.log"
    private="$PWD/var/redis/redis.pid"
    export MEDIARUNNER_BROKER_URL="redis://127.0.0.1:$port/0"
    echo "started a private redis-server on port $port"
  fi
fi
trap '[ -n "$private" ] && [ -f "$private" ] && kill "$(cat "$private")" 2>/dev/null || true' EXIT
export MEDIARUNNER_DATABASE_URL="${MEDIARUNNER_DATABASE_URL:-sqlite:///var/demo/mediarunner.db}"
# The demo's generated clip lives in var/demo: the only local inputs it reads.
export MEDIARUNNER_INPUT_ROOTS="${MEDIARUNNER_INPUT_ROOTS:-[\"$PWD/var/demo\"]}"
.venv/bin/mediarunner demo "$@"
