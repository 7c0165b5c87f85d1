#!/usr/bin/env bash
# loadtest/script-cost.sh: Redis's time per buyer in the purchase script,
# the script of SCRIPT_BEFORE_REV (a git revision) against the working
# tree's, on a private redis-server. Each round runs redis-benchmark (4
# connections, SCRIPT_CALLS calls) of batches of SCRIPT_BATCH new buyers
# (random user ids) on a sale of its own with ample stock, checks that
# every buyer was sold to, and reads cmdstat_evalsha's usec_per_call (the
# script with the commands it runs); SCRIPT_ROUNDS interleaved rounds per
# script (the one that goes first alternating), median per script. Writes SCRIPT_REPORT
# (docs/profile/purchase-script.md).
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"
: "${SCRIPT_BEFORE_REV:?set it to the git revision whose purchase script to compare with}"
: "${SCRIPT_BATCH:=20}"
: "${SCRIPT_CALLS:=20000}"
: "${SCRIPT_ROUNDS:=5}"
: "${SCRIPT_REPORT:=docs/profile/purchase-script.md}"
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is missing: apt-get install redis-tools" >&2; exit 1; }
trap stack_stop EXIT
unset SKIP_SERVICES
stack_private_redis
cli() { redis-cli -p "$REDIS_PORT" "$@"; }
lua=crates/domain/lua/purchase.lua
before_rev=$(git rev-parse --short "$SCRIPT_BEFORE_REV")
declare -A sha
sha[before]=$(cli SCRIPT LOAD "$(git show "$before_rev:$lua")")
sha[after]=$(cli SCRIPT LOAD "$(cat "$lua")")
# redis-benchmark puts a new random number (below 2^31) in each
# __rand_int__: two per user id make a repeat unlikely.
buyers=()
for i in $(seq 1 "$SCRIPT_BATCH"); do
  buyers+=("u$i-__rand_int__-__rand_int__" "0190f000-0000-7000-8000-__rand_int__")
done
# One round: usec per call of one script over SCRIPT_CALLS calls.
round() {
  local build=$1 round=$2 sale="{sale:script-cost-$1-$2}"
  cli SET "$sale:stock" 1000000000 >/dev/null
  cli HSET "$sale:meta" total 1000000000 >/dev/null
  cli CONFIG RESETSTAT >/dev/null
  # ARGV: no attempt limit, a 1 s window, open from 0 to year 5138, not replicated.
  redis-benchmark -p "$REDIS_PORT" -q -n "$SCRIPT_CALLS" -c 4 -r 2147483647 \
    EVALSHA "${sha[$build]}" 3 "$sale:stock" "$sale:buyers" "$sale:meta" \
    0 1 0 99999999999999 0 "${buyers[@]}" >/dev/null 2>&1
  local stats sold
  stats=$(cli INFO commandstats | tr -d '\r')
  sold=$(cli HLEN "$sale:buyers")
  [ "$sold" -eq $((SCRIPT_CALLS * SCRIPT_BATCH)) ] || {
    echo "round $round of $build sold $sold, not $((SCRIPT_CALLS * SCRIPT_BATCH))" >&2
    exit 1
  }
  cli DEL "$sale:stock" "$sale:meta" "$sale:buyers" >/dev/null
  stack_evalsha_usec "$stats" "round $round of $build"
}
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A results
for r in $(seq 1 "$SCRIPT_ROUNDS"); do
  builds=(before after)
  [ $((r % 2)) = 1 ] || builds=(after before)
  for build in "${builds[@]}"; do
    results[$build]+="$(round "$build" "$r") "
  done
done
median() { tr ' ' '\n' | stack_median; }
per_buyer() { awk -v c="$1" -v b="$SCRIPT_BATCH" 'BEGIN {printf "%.2f", c / b}'; }
before=$(median <<<"${results[before]}")
after=$(median <<<"${results[after]}")
mkdir -p "$(dirname "$SCRIPT_REPORT")"
{
  echo "# The purchase script's Redis time per buyer"
  echo
  echo "Written by \`SCRIPT_BEFORE_REV=$before_rev loadtest/script-cost.sh\`; rerun it to refresh this file."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), redis-server $(redis-server --version | awk '{print $3}' | sed 's/^v=//'), a private one"
  echo "- before: \`$lua\` at $before_rev; after: the one of $(stack_code)"
  echo "- load average at the start: $load_at_start (2 cores shared with redis-benchmark)"
  echo "- method: $SCRIPT_ROUNDS interleaved rounds per script (before first in odd rounds) of $SCRIPT_CALLS calls (redis-benchmark, 4 connections),"
  echo "  each a batch of $SCRIPT_BATCH new buyers; INFO commandstats' evalsha usec_per_call (the script with"
  echo "  the commands it runs), median round"
  echo
  echo "| script | us per call, each round | us per call, median | us per buyer |"
  echo "| --- | --- | ---: | ---: |"
  echo "| before | ${results[before]% } | $before | $(per_buyer "$before") |"
  echo "| after | ${results[after]% } | $after | $(per_buyer "$after") |"
  echo
  echo "after / before: $(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a / b}')x"
} >"$SCRIPT_REPORT"
cat "$SCRIPT_REPORT"
