#!/usr/bin/env bash
# make bench: Redis and PostgreSQL as `make run` finds or starts them, then
# `loadtest bench` (loadtest/src/bench/) starts its own apis and workers of
# the release build, measures every row beside GET / in one run, and writes
# docs/bench/latest.md (the README's figures) and loadtest/results/bench-*.json.
#
# Knobs: BENCH_SECONDS (5) per round, BENCH_ROUNDS (3), BENCH_CONNECTIONS
# (64), BENCH_PORT (3310, and the next two), BENCH_REPORT (docs/bench/latest.md).
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

stack_services
"$BIN/loadtest" bench --bin-dir "$BIN" \
  --redis-url "${REDIS_URL:-redis://$REDIS_HOST:$REDIS_PORT}" --database-url "$DATABASE_URL"
