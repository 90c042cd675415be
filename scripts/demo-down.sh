#!/usr/bin/env bash
# `make demo-down`: stops what `make demo` started (by the PIDs it recorded), nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO="${DEMO_DIR:-.local/demo}"
for name in serving trainer consumer; do
  pidfile="$DEMO/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "$name stopped (pid $pid)"
  fi
  rm -f "$pidfile"
done
.venv/bin/eventrec services down
