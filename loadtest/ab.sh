#!/usr/bin/env bash
# make bench-ab: two builds of the api side by side in one run, so a change
# is measured against the code before it on the same machine at the same
# moment (separate `make bench` runs on this shared machine differ by more
# than most changes). Starts an api of each build (AB_BEFORE_BIN_DIR and
# LOADTEST_BIN_DIR, the current release build) on a fresh sale of its own,
# then AB_ROUNDS (5) interleaved rounds of AB_SECONDS (5) per row and build:
# purchases with 64 connections, a lone buyer (one connection, one
# request at a time), a sold-out sale (64 connections, every answer a
# 410) and the sale's status (GET /api/sale/status, 64 connections), no
# worker, on a Redis of the run's own (`stack_private_redis`). Writes
# AB_REPORT (docs/bench/ab.md) with each row's median round per build.
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"
: "${AB_BEFORE_BIN_DIR:?set it to the directory of the build to compare with (api, order-worker, loadtest)}"
: "${AB_BEFORE_CODE:=the build in $AB_BEFORE_BIN_DIR}"
: "${AB_ROUNDS:=5}"
: "${AB_SECONDS:=5}"
: "${AB_REPORT:=docs/bench/ab.md}"
: "${AB_PORT:=3330}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cleanup() {
  stack_stop
  stack_drop_run_keys
}
trap cleanup EXIT

stack_services
stack_private_redis
after_bin=$BIN
BIN=$AB_BEFORE_BIN_DIR
stack_api ab-before "$AB_PORT" STOCK_QUANTITY=100000000 USER_MAX_ATTEMPTS=0
BIN=$after_bin
stack_api ab-after "$((AB_PORT + 1))" STOCK_QUANTITY=100000000 USER_MAX_ATTEMPTS=0
# A sale of one unit, bought before the rounds: sold out.
for build in before after; do
  port=$((AB_PORT + 2))
  [ "$build" = after ] && port=$((AB_PORT + 3))
  [ "$build" = before ] && BIN=$AB_BEFORE_BIN_DIR
  stack_api "ab-$build-soldout" "$port" STOCK_QUANTITY=1 USER_MAX_ATTEMPTS=0
  BIN=$after_bin
  curl -fsS -o /dev/null -H 'content-type: application/json' -d '{"userId":"the-only-buyer"}' \
    "http://127.0.0.1:$port/api/purchases" || { echo "[ab] the one unit on :$port was not sold" >&2; exit 1; }
done

# One wrk run: "<req/s> <p50 ms>"; fails (no figure) when wrk did not run
# or any answer was not a 201 (with "soldout": not a 410; with "status":
# reads of the sale's status, not a 200).
measure() { # port connections [soldout|status]
  local threads=2 out counts_before="" request=(-s loadtest/purchase.lua "http://127.0.0.1:$1")
  [ "$2" -ge 2 ] || threads=1
  [ "${3:-}" = status ] && request=("http://127.0.0.1:$1/api/sale/status")
  [ "${3:-}" != soldout ] || counts_before=$(stack_purchase_counts "$1")
  out=$(wrk -t"$threads" -c"$2" -d"${AB_SECONDS}s" --latency "${request[@]}") ||
    { echo "[ab] wrk failed against :$1" >&2; return 1; }
  if grep -q 'Socket errors' <<<"$out" || { [ "${3:-}" != soldout ] && grep -q 'Non-2xx' <<<"$out"; }; then
    echo "[ab] :$1 answered errors; no figure: $(grep -E 'Non-2xx|Socket errors' <<<"$out")" >&2
    return 1
  fi
  if [ "${3:-}" = soldout ]; then
    # Every answer a 410: during the run the api answered nothing but
    # sold-out, at least as many as wrk counted (wrk's non-2xx would count
    # 503s too; the requests in flight when wrk stops are answered but not
    # counted by wrk).
    local total sold others sold0 others0
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    read -r sold0 others0 <<<"$counts_before"
    read -r sold others <<<"$(stack_purchase_counts "$1")"
    [ -n "$total" ] && [ $((sold - sold0)) -ge "$total" ] && [ "$others" = "$others0" ] ||
      { echo "[ab] :$1 sold out, yet $((sold - sold0)) sold-out and $((others - others0)) other answers for wrk's $total" >&2; return 1; }
  fi
  awk '/Requests\/sec/ {rps=$2} /^ +50%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else {sub(/s/,"",v); v*=1000}; p50=v} END {if (rps == 0) exit 1; printf "%.0f %.3f\n", rps, p50}' <<<"$out"
}
declare -A runs
for round in $(seq "$AB_ROUNDS"); do
  # Each round starts with the other build: neither always runs first.
  order="before after"
  [ $((round % 2)) -eq 0 ] && order="after before"
  for row in 64 1 soldout status; do
    for build in $order; do
      if [ "$row" = status ]; then
        port=$AB_PORT
        [ "$build" = after ] && port=$((AB_PORT + 1))
        run=$(measure "$port" 64 status) || exit 1
      elif [ "$row" = soldout ]; then
        port=$((AB_PORT + 2))
        [ "$build" = after ] && port=$((AB_PORT + 3))
        run=$(measure "$port" 64 soldout) || exit 1
      else
        port=$AB_PORT
        [ "$build" = after ] && port=$((AB_PORT + 1))
        run=$(measure "$port" "$row") || exit 1
      fi
      runs[$build-$row]+="$run"$'\n'
    done
  done
  echo "[ab] round $round done" >&2
done

# The median round (by req/s) of a build's row: "<req/s> <p50 ms>".
median() { stack_median <<<"${runs[$1]}"; }
mkdir -p "$(dirname "$AB_REPORT")"
{
  echo "# \`make bench-ab\`: two builds in one run"
  echo
  echo "Written by \`loadtest/ab.sh\`; rerun it to refresh this file."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- before: $AB_BEFORE_CODE; after: $(git rev-parse --short HEAD)"
  echo "- method: $AB_ROUNDS interleaved rounds of $AB_SECONDS s per row and build (the build measured first alternating), wrk with loadtest/purchase.lua (a new buyer per request; the status row plain GETs), no worker, limits off, \`RUST_LOG=warn\`; each cell is the median round"
  echo
  echo "| row | before req/s | after req/s | after / before | before p50 ms | after p50 ms | p50 after - before |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for row in 64 1 soldout status; do
    read -r b_rps b_p50 <<<"$(median "before-$row")"
    read -r a_rps a_p50 <<<"$(median "after-$row")"
    label="purchases, 64 connections"
    [ "$row" = 1 ] && label="a lone buyer (1 connection)"
    [ "$row" = soldout ] && label="sold out (every answer a 410), 64 connections"
    [ "$row" = status ] && label="\`GET /api/sale/status\`, 64 connections"
    awk -v l="$label" -v br="$b_rps" -v ar="$a_rps" -v bp="$b_p50" -v ap="$a_p50" \
      'BEGIN {printf "| %s | %d | %d | %.2fx | %.3f | %.3f | %+.3f ms |\n", l, br, ar, ar/br, bp, ap, ap-bp}'
  done
} >"$AB_REPORT"
cat "$AB_REPORT"
