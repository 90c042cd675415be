#!/usr/bin/env bash
# `make demo`: the whole of eventrec on a synthetic event platform, left running.
#
# Local Kafka broker and Redis server, topics, consumer, serving and trainer in the
# background; a synthetic platform published to Kafka; the evaluation table; three users'
# history beside their recommendations; then the API's URL and a curl line to try.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTREC=.venv/bin/eventrec
DEMO="${DEMO_DIR:-.local/demo}"
mkdir -p "$DEMO"
export EVENTREC_HTTP_PORT="${EVENTREC_HTTP_PORT:-8000}"
API="http://127.0.0.1:${EVENTREC_HTTP_PORT}"
USERS="${DEMO_USERS:-30000}"
EVENTS="${DEMO_EVENTS:-3000}"
INTERACTIONS="${DEMO_INTERACTIONS:-1000000}"
started=$(date +%s)

step() { printf '\n== %s\n' "$*"; }

running() { [ -f "$DEMO/$1.pid" ] && kill -0 "$(cat "$DEMO/$1.pid")" 2>/dev/null; }

# A process of the demo: started in the background, its PID and log under $DEMO.
start() {
  local name=$1; shift
  if running "$name"; then
    echo "$name already running (pid $(cat "$DEMO/$name.pid"))"
    return
  fi
  nohup "$@" >"$DEMO/$name.log" 2>&1 &
  echo $! >"$DEMO/$name.pid"
  echo "$name started (pid $!, log $DEMO/$name.log)"
}

if [ ! -s "$DEMO/admin-token" ]; then
  .venv/bin/python -c 'import secrets; print(secrets.token_hex(24))' >"$DEMO/admin-token"
fi
export EVENTREC_ADMIN_TOKEN="$(cat "$DEMO/admin-token")"

step "local Kafka broker and Redis server"
$EVENTREC services up
step "topics"
$EVENTREC topics create

step "consumer and serving"
start consumer $EVENTREC consumer
start serving $EVENTREC serve
for _ in $(seq 1 60); do
  curl -sf "$API/health" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -sf "$API/health" >/dev/null || { echo "serving did not start: see $DEMO/serving.log"; exit 1; }

if [ ! -f "$DEMO/published" ]; then
  step "synthetic platform: $EVENTS events, $USERS users, $INTERACTIONS interactions → Kafka"
  $EVENTREC synth --users "$USERS" --events "$EVENTS" --interactions "$INTERACTIONS" \
    --seed 42 --out "$DEMO/data" --publish
  touch "$DEMO/published"
else
  echo "(the synthetic platform was published by an earlier make demo; not again)"
fi

step "waiting for the consumer to apply every interaction"
$EVENTREC demo-wait ingest --timeout 600

step "trainer (fits now, on the complete matrix, then every hour)"
# A trainer started now fits now: wait for a version newer than any that exists already.
before=0
if ! running trainer; then before=$($EVENTREC demo-wait sequence); fi
start trainer $EVENTREC trainer
$EVENTREC demo-wait model --timeout 600 --newer-than "$before"
ready=$(date +%s)

step "evaluation: eventrec against popularity and the original guide's SVD + cosine"
echo "(random split of the synthetic interactions: 20% of (user, event) pairs are the test)"
$EVENTREC evaluate --interactions "$DEMO/data/interactions.csv" --split random 2>/dev/null
echo
echo "(temporal split: the last 20% of pairs in time are the test, mostly events newer than"
echo " the training data; see docs/benchmarks.md on how eventrec fares there)"
$EVENTREC evaluate --interactions "$DEMO/data/interactions.csv" --split temporal 2>/dev/null

step "what three users see: their recent history beside their top 5"
$EVENTREC demo-report --api "$API"

if [ "${EVENTREC_OPS_PORT:-8001}" = "0" ]; then
  DASHBOARD="off (EVENTREC_OPS_PORT=0)"
else
  DASHBOARD="http://${EVENTREC_OPS_HOST:-127.0.0.1}:${EVENTREC_OPS_PORT:-8001}/dashboard   (metrics: /metrics there)"
fi
cat <<EOT

== eventrec is running (setup to first recommendations: $((ready - started)) s)

  API:          $API          (OpenAPI: $API/docs)
  try:          curl -s '$API/recommendations?user_id=u-000042&limit=5'
  filtered:     curl -s '$API/recommendations?user_id=u-000042&city=Kandy&category=music&max_price=5000'
  trending:     curl -s '$API/popular?city=Galle&limit=5'
  dashboard:    $DASHBOARD
  admin token:  $EVENTREC_ADMIN_TOKEN   (in $DEMO/admin-token)
                curl -s -X POST -H "Authorization: Bearer $EVENTREC_ADMIN_TOKEN" $API/train
  logs:         $DEMO/consumer.log, $DEMO/trainer.log, $DEMO/serving.log
  stop it all:  make demo-down
EOT
