#!/usr/bin/env bash
# Installs the system packages eventrec's local stack and tests need, when missing:
# Java (runs the Kafka broker), Maven (fetches its jars), redis-server, docker-compose
# (validates docker-compose.yml), prometheus (its promtool checks the observability
# profile's config), chromium and chromium-driver (the dashboard's real-browser test).
# With --bench also wrk (benchmarks/serve.py's load generator). Idempotent: does nothing
# when all are present.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ "${1:-}" = "--bench" ]; then
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "eventrec needs these packages, and cannot install them here (apt-get as root): ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a redis-server on 6379 when it installs one; eventrec runs its own.
# Debian also starts a prometheus on 9090; eventrec only needs its promtool.
for service in redis-server prometheus; do
  if [[ " ${missing[*]} " == *" ${service} "* ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now "${service}" >/dev/null 2>&1 || true
  fi
done
