#!/usr/bin/env bash
# `make demo`: the local stack on loopback, left running in the background.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTREC=.venv/bin/eventrec

echo "== starting the local Kafka broker and Redis server"
$EVENTREC services up
echo "== creating the topics"
$EVENTREC topics create
echo
echo "The local stack is running:"
$EVENTREC services status
echo
echo "Kafka:  ${EVENTREC_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:19092}   Redis: ${EVENTREC_REDIS_URL:-redis://127.0.0.1:16379/0}"
echo "Stop it with: make demo-down"
