#!/usr/bin/env bash
# make bench: PostgreSQL as `make run` finds or starts it and a Redis of the
# run's own (`stack_private_redis` in stack.sh says why), then
# `loadtest bench` (loadtest/src/bench/) starts its own apis and workers of
# the release build, measures every row beside GET / in one run, and writes
# docs/bench/latest.md (the README's figures) and loadtest/results/bench-*.json.
#
# Knobs: BENCH_SECONDS (5) per round, BENCH_ROUNDS (3), BENCH_CONNECTIONS
# (64), BENCH_PORT (3310, and the next nine), BENCH_REPORT (docs/bench/latest.md),
# BENCH_WATCHERS (10000) open storefronts while BENCH_WATCH_PURCHASES (20)
# purchases a second go on for BENCH_WATCH_SECONDS (20); BENCH_CODE names the
# code measured when LOADTEST_BIN_DIR holds another build.
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

stack_services
# Each open storefront is a socket on both ends: raise the descriptor limit
# as far as this shell may (the apis inherit it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The run's sales and queues (jobs no worker drains, a ledger per row) are
# dropped when it ends: they would slow every SCAN of the shared Redis (the
# tests' workers scan it) and hold memory for nothing; the figures are kept.
# (A private Redis, the default, goes with the run.)
trap 'stack_stop; [ -n "${STACK_PRIVATE_REDIS:-}" ] || drop_keys "${REDIS_URL:-redis://$REDIS_HOST:$REDIS_PORT}" "bench:*" "{sale:bench-*"' EXIT
stack_private_redis
"$BIN/loadtest" bench --bin-dir "$BIN" \
  --redis-url "${REDIS_URL:-redis://$REDIS_HOST:$REDIS_PORT}" --database-url "$DATABASE_URL"
