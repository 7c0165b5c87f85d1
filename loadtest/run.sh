#!/usr/bin/env bash
# make loadtest-<scenario>: one load scenario against a fresh sale.
#
#   loadtest/run.sh burst|dedup|sustained|soldout|all
#
# Redis and PostgreSQL are reused or started as `make run` does; each
# scenario then gets its own api + worker (release build) with the sale and
# limits it needs, on LOADTEST_PORT (3300), stopped when it is done.
# Results: loadtest/results/<scenario>-<time>.json (git-ignored), and each
# scenario's summary in docs/loadtest/<scenario>.md, gathered with the others
# into docs/loadtest/latest.md (kept: the README shows it).
# SUSTAINED_RATE / SUSTAINED_SECONDS change the sustained scenario (500/60);
# stack.sh lists the other knobs.
#
# `all` runs each scenario as its own invocation of this script, so errexit
# holds inside it (bash ignores `set -e` in a function called from `||`): a
# scenario stops at its first failing step and stops its processes, the
# others still run, and `all` exits 1 naming the ones that failed.
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"

: "${LOADTEST_PORT:=3300}"
: "${SUSTAINED_RATE:=500}"
: "${SUSTAINED_SECONDS:=60}"
URL="http://127.0.0.1:$LOADTEST_PORT"

SUMMARIES="$ROOT/docs/loadtest"
# loadtest NAME SCENARIO [ARGS...]: the summary goes to docs/loadtest/NAME.md.
loadtest() {
  local name=$1
  shift
  "$BIN/loadtest" "$@" --url "$URL" --database-url "$DATABASE_URL" --results "$ROOT/loadtest/results" \
    --summary "$SUMMARIES/$name.md"
}
# docs/loadtest/latest.md: every scenario's last summary, in order.
gather() {
  mkdir -p "$SUMMARIES"
  {
    echo "# \`make loadtest\`: the latest run of each scenario"
    echo
    echo "Written by \`make loadtest\` (\`loadtest/run.sh\`); each section is its scenario's last run on $(nproc) cores."
    for name in burst dedup-off dedup-on sustained soldout; do
      if [ -f "$SUMMARIES/$name.md" ]; then echo; cat "$SUMMARIES/$name.md"; fi
    done
  } >"$SUMMARIES/latest.md"
}

burst() {
  stack_api burst "$LOADTEST_PORT" STOCK_QUANTITY=100 USER_MAX_ATTEMPTS=0
  stack_worker
  loadtest burst burst --requests 1000 --concurrency 200
  stack_stop
}

dedup() {
  stack_api dedup-off "$LOADTEST_PORT" STOCK_QUANTITY=100 USER_MAX_ATTEMPTS=0
  loadtest dedup-off dedup --requests 100 --user-limit off
  stack_stop
  stack_api dedup-on "$LOADTEST_PORT" STOCK_QUANTITY=100 USER_MAX_ATTEMPTS=3
  loadtest dedup-on dedup --requests 100 --user-limit on
  stack_stop
}

sustained() {
  stack_api sustained "$LOADTEST_PORT" STOCK_QUANTITY=10000000 USER_MAX_ATTEMPTS=0
  stack_worker
  loadtest sustained sustained --rate "$SUSTAINED_RATE" --duration "$SUSTAINED_SECONDS"
  stack_stop
}

soldout() {
  stack_api soldout "$LOADTEST_PORT" STOCK_QUANTITY=100 USER_MAX_ATTEMPTS=0
  stack_worker
  loadtest soldout soldout --requests 20000 --concurrency 64
  stack_stop
}

case "${1:-}" in
  burst | dedup | sustained | soldout) ;;
  all)
    # One run id for every scenario: their sales, queue and logs go together.
    export LOADTEST_RUN_ID="$RUN_ID"
    failed=()
    for scenario in burst dedup sustained soldout; do
      bash "$ROOT/loadtest/run.sh" "$scenario" || failed+=("$scenario")
    done
    if [ "${#failed[@]}" -gt 0 ]; then
      stack_say "failed: ${failed[*]}"
      exit 1
    fi
    stack_say "every scenario passed"
    exit 0
    ;;
  *) echo "usage: $0 burst|dedup|sustained|soldout|all" >&2; exit 2 ;;
esac

stack_services
trap stack_stop EXIT
"$1"
gather
