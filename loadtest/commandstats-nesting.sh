#!/usr/bin/env bash
# loadtest/commandstats-nesting.sh: shows how Redis counts the commands a
# script runs in INFO commandstats, which is why make bench's "Redis command
# time per purchase" sums only the script calls. On a private redis-server,
# resets the stats, runs one EVAL of 20,000 HSETs and keeps what INFO
# commandstats then says in NESTING_REPORT (docs/bench/commandstats-nesting.txt):
# the HSETs' time appears under cmdstat_hset and again inside cmdstat_eval.
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"
: "${NESTING_REPORT:=docs/bench/commandstats-nesting.txt}"
trap stack_stop EXIT
unset SKIP_SERVICES
stack_private_redis
cli() { redis-cli -p "$REDIS_PORT" "$@"; }
cli CONFIG RESETSTAT >/dev/null
cli EVAL "for i = 1, 20000 do redis.call('HSET', KEYS[1], tostring(i), 'x') end return 1" 1 nesting >/dev/null
stats=$(cli INFO commandstats | tr -d '\r')
mkdir -p "$(dirname "$NESTING_REPORT")"
{
  echo "# loadtest/commandstats-nesting.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(redis-server --version | awk '{print $3}')"
  echo "# after CONFIG RESETSTAT and one EVAL running 20,000 HSETs:"
  grep -E '^cmdstat_(eval|hset):' <<<"$stats"
} >"$NESTING_REPORT"
cat "$NESTING_REPORT"
