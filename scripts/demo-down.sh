#!/usr/bin/env bash
# `make demo-down`: stops what `make demo` started, and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eventrec services down
