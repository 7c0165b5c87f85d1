#!/usr/bin/env bash
# loadtest/job-push.sh: Redis's time per job push, a job of one sale's
# PUSH_ORDERS orders in the compact form the api pushes against the object
# form it pushed before (`domain::PersistOrders` says what each is), on a
# private redis-server. Each round runs redis-benchmark (4 connections,
# PUSH_CALLS calls) of apalis-redis's own push script (`batch_push.lua` of
# the locked apalis-redis, as `push_task` sends it: a new task id per call,
# due now, no idempotency key), checks every job was stored, and reads
# cmdstat_evalsha's usec_per_call; PUSH_ROUNDS interleaved rounds per form
# (the one that goes first alternating), median per form. The jobs come
# from `loadtest job-json` (the domain's serializer). Writes PUSH_REPORT
# (docs/profile/job-push.md).
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"
: "${PUSH_ORDERS:=20}"
: "${PUSH_CALLS:=20000}"
: "${PUSH_ROUNDS:=5}"
: "${PUSH_REPORT:=docs/profile/job-push.md}"
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is missing: apt-get install redis-tools" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is missing: apt-get install jq" >&2; exit 1; }
# The jobs come from this tree's serializer: build it unless told which
# build to use.
if [ -z "${LOADTEST_BIN_DIR:-}" ]; then
  cargo build --release -q -p loadtest
fi
[ -x "$BIN/loadtest" ] || { echo "no loadtest binary in $BIN" >&2; exit 1; }
apalis=$(cargo metadata --format-version 1 --locked |
  jq -r '.packages[] | select(.name == "apalis-redis") | .manifest_path' | head -1)
script="$(dirname "$apalis")/lua/batch_push.lua"
[ -f "$script" ] || { echo "apalis-redis's push script is missing: $script" >&2; exit 1; }
version=$(basename "$(dirname "$apalis")")
trap stack_stop EXIT
unset SKIP_SERVICES
stack_private_redis
cli() { redis-cli -p "$REDIS_PORT" "$@"; }
sha=$(cli SCRIPT LOAD "$(cat "$script")")
declare -A job bytes
for form in compact objects; do
  job[$form]=$("$BIN/loadtest" job-json "$form" "$PUSH_ORDERS")
  bytes[$form]=${#job[$form]}
done
# One round: usec per call of one form over PUSH_CALLS pushes.
round() {
  local form=$1 round=$2 q="job-push:$1:$2"
  cli CONFIG RESETSTAT >/dev/null
  # KEYS as apalis-redis names them for queue $q; ARGV: no idempotency
  # ttl, no events, then one task: id, data, attempts, max attempts,
  # metadata, due (now, seconds), no idempotency key.
  redis-benchmark -p "$REDIS_PORT" -q -n "$PUSH_CALLS" -c 4 -r 2147483647 \
    EVALSHA "$sha" 6 "$q:data" "$q:active" "$q:signal" "$q:meta" "$q:scheduled" "$q:idempotency" \
    0 0 "T__rand_int____rand_int__" "${job[$form]}" 0 25 '{}' "$(date +%s)" '' >/dev/null 2>&1
  local stats stored
  stats=$(cli INFO commandstats | tr -d '\r')
  stored=$(cli HLEN "$q:data")
  # Task ids are random: a repeat (rare) stores one job less.
  [ "$stored" -ge $((PUSH_CALLS * 99 / 100)) ] || {
    echo "round $round of $form stored $stored jobs of $PUSH_CALLS" >&2
    exit 1
  }
  cli FLUSHALL >/dev/null
  stack_evalsha_usec "$stats" "round $round of $form"
}
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A results
for r in $(seq 1 "$PUSH_ROUNDS"); do
  forms=(objects compact)
  [ $((r % 2)) = 1 ] || forms=(compact objects)
  for form in "${forms[@]}"; do
    results[$form]+="$(round "$form" "$r") "
  done
done
median() { tr ' ' '\n' | stack_median; }
per_order() { awk -v c="$1" -v n="$PUSH_ORDERS" 'BEGIN {printf "%.2f", c / n}'; }
objects=$(median <<<"${results[objects]}")
compact=$(median <<<"${results[compact]}")
mkdir -p "$(dirname "$PUSH_REPORT")"
{
  echo "# Redis's time per job push: the compact job against the object form"
  echo
  echo "Written by \`loadtest/job-push.sh\`; rerun it to refresh this file."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), redis-server $(redis-server --version | awk '{print $3}' | sed 's/^v=//'), a private one; $version's \`batch_push.lua\`"
  echo "- jobs: $PUSH_ORDERS orders of one sale each, from \`loadtest job-json\` of $(stack_code)"
  echo "- load average at the start: $load_at_start (2 cores shared with redis-benchmark)"
  echo "- method: $PUSH_ROUNDS interleaved rounds per form (objects first in odd rounds) of $PUSH_CALLS pushes (redis-benchmark,"
  echo "  4 connections), each a new task id; INFO commandstats' evalsha usec_per_call (the script with the"
  echo "  commands it runs), median round"
  echo
  echo "| job form | bytes a job | us per push, each round | us per push, median | us per order |"
  echo "| --- | ---: | --- | ---: | ---: |"
  echo "| objects (before) | ${bytes[objects]} | ${results[objects]% } | $objects | $(per_order "$objects") |"
  echo "| compact (after) | ${bytes[compact]} | ${results[compact]% } | $compact | $(per_order "$compact") |"
  echo
  echo "compact / objects: $(awk -v a="$compact" -v b="$objects" 'BEGIN {printf "%.2f", a / b}')x the time, $(awk -v a="${bytes[compact]}" -v b="${bytes[objects]}" 'BEGIN {printf "%.2f", a / b}')x the bytes"
} >"$PUSH_REPORT"
cat "$PUSH_REPORT"
