#!/usr/bin/env bash
# loadtest/profile.sh (make profile): where an api spends its CPU on purchases. Starts an api of
# the release build (LOADTEST_BIN_DIR, as every load script) on a fresh
# sale, sends PROFILE_SECONDS (10) of wrk purchases (fresh buyers, -t2
# -c64) while `perf record` samples it, and writes the hottest symbols to
# PROFILE_REPORT (docs/profile/purchase.txt): perf's own report, kept as it
# printed. No worker runs (as in make bench's no-worker row). PROFILE_CODE
# names the code profiled when LOADTEST_BIN_DIR holds another build.
# PROFILE_STOCK (100000000) is the sale's stock: PROFILE_STOCK=1 profiles
# a sold-out sale's refusals (make bench's sold-out row) instead.
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"
: "${PROFILE_SECONDS:=10}"
: "${PROFILE_REPORT:=docs/profile/purchase.txt}"
: "${PROFILE_PORT:=3320}"
: "${PROFILE_STOCK:=100000000}"
: "${PROFILE_CODE:=$(stack_code)}"
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
data=$(mktemp -d)
# The run's sale and queue go when it ends (jobs no worker drains would
# stay in the shared Redis for good).
cleanup() {
  stack_stop
  rm -rf "$data"
  stack_drop_run_keys
}
trap cleanup EXIT

stack_services
stack_private_redis
# No per-user limit, as in make bench (each buyer buys once anyway).
stack_api profile "$PROFILE_PORT" "STOCK_QUANTITY=$PROFILE_STOCK" "USER_MAX_ATTEMPTS=0"
# Warm up (connections, scripts), then sample only the measured run.
wrk -t2 -c64 -d2s -s loadtest/purchase.lua "http://127.0.0.1:$PROFILE_PORT" >/dev/null
perf record -q -F 999 -p "$STACK_API_PID" -o "$data/perf.data" -- sleep "$PROFILE_SECONDS" 2>/dev/null &
perf_pid=$!
sleep 0.5
run=$(wrk -t2 -c64 -d"$((PROFILE_SECONDS - 1))s" -s loadtest/purchase.lua "http://127.0.0.1:$PROFILE_PORT")
wait "$perf_pid"
mkdir -p "$(dirname "$PROFILE_REPORT")"
# perf's table, without its padding and notes: percent(s), then the name.
report() {
  perf report -i "$data/perf.data" --stdio -g none "$@" 2>/dev/null |
    grep -vE '^#|^$' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//' | cut -c1-150
}
{
  echo "# loadtest/profile.sh: code $PROFILE_CODE, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# api: $BIN/api; stock $PROFILE_STOCK; wrk -t2 -c64, fresh buyers, no worker; perf record -F 999 for ${PROFILE_SECONDS} s"
  echo "# wrk: $(grep -E 'Requests/sec' <<<"$run" | tr -s ' ')"
  echo "# (The release build has no frame pointers: self time only, no call graphs.)"
  echo "#"
  echo "# Self time by where the code lives (kernel, libc, the api binary):"
  report --no-children --sort dso --percent-limit 1
  echo "#"
  echo "# Self time by symbol, over 0.7%:"
  report --no-children --sort symbol --percent-limit 0.7
  echo "#"
  echo "# Self time in the api binary's own symbols (Rust code: ours and the crates'), over 0.3% of all samples:"
  report --no-children --sort symbol --dsos api --percent-limit 0.3 | head -40
} >"$PROFILE_REPORT"
cat "$PROFILE_REPORT"
