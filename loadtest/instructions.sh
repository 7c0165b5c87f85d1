#!/usr/bin/env bash
# loadtest/instructions.sh (make instructions): the api's instructions per
# request, by endpoint, counted by valgrind's callgrind. Instructions do
# not depend on what else the machine is doing, so two builds compare
# across runs where req/s and CPU time (make bench) move with the noise of
# a shared machine. Starts one api of the release build (LOADTEST_BIN_DIR)
# under callgrind on a sold-out sale and one on a sale with stock, on a
# Redis of the run's own, then for each row: INSTR_SECONDS (15) of wrk
# -t1 -c4 (purchases: -t2 -c64, as make bench) after a warm-up, with callgrind's counters zeroed before and
# dumped after. A row's figure is every instruction the api's threads ran
# in that window (background tasks included) over the answers wrk counted.
# Writes INSTR_REPORT (docs/profile/instructions.md). INSTR_CODE names the
# code measured when LOADTEST_BIN_DIR holds another build. INSTR_DUMPS: a
# directory to keep callgrind's dumps in (for callgrind_annotate).
#
# Under valgrind one thread runs at a time and the api answers ~50x
# slower, so batches of purchases are smaller than under make bench (fewer
# purchases per script call): the purchase row counts more instructions
# per purchase than a full-speed rush would. Callgrind counts glibc's
# memset of actix-http's 3 KB header index (cleared on every decode call)
# once per byte (loadtest/callgrind-memset.sh): each row also shows those
# instructions, and its ratio to GET / without them.
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"
: "${INSTR_SECONDS:=15}"
: "${INSTR_REPORT:=docs/profile/instructions.md}"
: "${INSTR_PORT:=3330}"
: "${INSTR_CODE:=$(stack_code)}"
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
data=$(mktemp -d)
pids=()
cleanup() {
  # No graceful stop: nothing it would finish is measured. (A bare `wait`
  # would also wait for the private Redis, which stack_stop stops.)
  if [ "${#pids[@]}" -gt 0 ]; then
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    for pid in "${pids[@]}"; do rm -f /tmp/vgdb-pipe-*-"$pid"-*; done
  fi
  stack_stop
  if [ -n "${INSTR_DUMPS:-}" ]; then
    mkdir -p "$INSTR_DUMPS" && cp "$data"/* "$INSTR_DUMPS"/ 2>/dev/null || true
  fi
  rm -rf "$data"
  stack_drop_run_keys
}
trap cleanup EXIT

stack_services
stack_private_redis

# An api under callgrind on port $2 with stock $3; its pid in $api_pid.
start_api() { # name port stock
  env $(stack_env) "ORDER_QUEUE=loadtest:$RUN_ID:orders" "SALE_ID=load-instr-$1-$RUN_ID" "PORT=$2" \
    "STOCK_QUANTITY=$3" USER_MAX_ATTEMPTS=0 RUST_LOG=warn \
    valgrind --tool=callgrind --dump-instr=no "--callgrind-out-file=$data/$1.%p" "$BIN/api" \
    >>"$LOGS/api-instr-$1-$RUN_ID.log" 2>&1 &
  api_pid=$!
  pids+=("$api_pid")
  wait_healthy "http://127.0.0.1:$2" 120 "$api_pid" ||
    { echo "[instructions] api $1 did not become healthy (log: $LOGS/api-instr-$1-$RUN_ID.log)" >&2; exit 1; }
}

start_api soldout "$INSTR_PORT" 1
soldout_pid=$api_pid
curl -fsS -o /dev/null -H 'content-type: application/json' -d '{"userId":"the-only-buyer"}' \
  "http://127.0.0.1:$INSTR_PORT/api/purchases" || { echo "[instructions] the one unit was not sold" >&2; exit 1; }
start_api stock "$((INSTR_PORT + 1))" 100000000
stock_pid=$api_pid

# One row: warm up, zero the counters, run wrk, dump; prints
# "<answers> <instructions> <of which in glibc's memset>". Fails when an answer was not the row's (the
# sold-out row: when the api answered anything but sold out) or when
# callgrind wrote no new dump (its control tool says OK regardless).
row() { # name pid url [lua]
  local name=$1 pid=$2 url=$3 script=() load=(-t1 -c4) out answers total memset dump dumps sold0 others0 sold others
  [ -z "${4:-}" ] || script=(-s "$4")
  [ "$name" != purchase ] || load=(-t2 -c64)
  wrk "${load[@]}" -d3s "${script[@]}" "$url" >/dev/null || return 1
  dumps=$(find "$data" -name "*.$pid.*" | wc -l)
  [ "$name" != soldout ] || read -r sold0 others0 <<<"$(stack_purchase_counts "$INSTR_PORT")"
  callgrind_control -z "$pid" >/dev/null 2>&1
  out=$(wrk "${load[@]}" -d"${INSTR_SECONDS}s" "${script[@]}" "$url") || return 1
  callgrind_control -d "$name" "$pid" >/dev/null 2>&1
  if grep -q 'Socket errors' <<<"$out" || { [ "$name" != soldout ] && grep -q 'Non-2xx' <<<"$out"; }; then
    echo "[instructions] $name: answers that are not the row's: $(grep -E 'Non-2xx|Socket errors' <<<"$out")" >&2
    return 1
  fi
  answers=$(awk '/requests in/ {print $1}' <<<"$out")
  if [ "$name" = soldout ]; then
    read -r sold others <<<"$(stack_purchase_counts "$INSTR_PORT")"
    [ -n "$answers" ] && [ $((sold - sold0)) -ge "$answers" ] && [ "$others" = "$others0" ] ||
      { echo "[instructions] soldout: $((sold - sold0)) sold-out and $((others - others0)) other answers for wrk's $answers" >&2; return 1; }
  fi
  [ "$(find "$data" -name "*.$pid.*" | wc -l)" -gt "$dumps" ] ||
    { echo "[instructions] $name: callgrind wrote no dump" >&2; return 1; }
  dump=$(ls -t "$data"/*."$pid".* | head -1)
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  # memset's instructions (a leaf: inclusive is its own; any variant glibc picks).
  memset=$(callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | awk '/:__memset/ {gsub(",", "", $1); m += $1} END {print m + 0}')
  [ -n "$answers" ] && [ -n "$total" ] || { echo "[instructions] $name: no figure" >&2; return 1; }
  # Every request is decoded at least once: none means the symbol moved.
  [ "$memset" -gt 0 ] || { echo "[instructions] $name: no memset in the dump" >&2; return 1; }
  echo "$answers $total $memset"
}

declare -A rows
# `|| exit 1`: a failure inside $(...) does not stop the script by itself.
rows[plain]=$(row plain "$stock_pid" "http://127.0.0.1:$((INSTR_PORT + 1))/") || exit 1
rows[status]=$(row status "$stock_pid" "http://127.0.0.1:$((INSTR_PORT + 1))/api/sale/status") || exit 1
rows[purchase]=$(row purchase "$stock_pid" "http://127.0.0.1:$((INSTR_PORT + 1))" loadtest/purchase.lua) || exit 1
rows[soldout]=$(row soldout "$soldout_pid" "http://127.0.0.1:$INSTR_PORT" loadtest/purchase.lua) || exit 1

mkdir -p "$(dirname "$INSTR_REPORT")"
{
  echo "# \`make instructions\`: the api's instructions per request"
  echo
  echo "Written by \`loadtest/instructions.sh\`; rerun it to refresh this file."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- code: $INSTR_CODE"
  echo "- method: release api under \`valgrind --tool=callgrind\`, ${INSTR_SECONDS} s of wrk -t1 -c4 per row (purchases -t2 -c64) after a 3 s warm-up; instructions of every api thread in that window over the answers; no worker, limits off, \`RUST_LOG=warn\`"
  echo
  echo "| endpoint | answers | instructions per answer | x \`GET /\` | of which \`memset\` | x \`GET /\` without \`memset\` |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  read -r plain_n plain_ir plain_ms <<<"${rows[plain]}"
  for name in plain status purchase soldout; do
    read -r n ir ms <<<"${rows[$name]}"
    case $name in
      plain) label="\`GET /\` (baseline)" ;;
      status) label="\`GET /api/sale/status\`" ;;
      purchase) label="\`POST /api/purchases\`, a new buyer each (64 connections; smaller batches than at full speed)" ;;
      soldout) label="\`POST /api/purchases\`, sold out (every answer a 410)" ;;
    esac
    awk -v l="$label" -v n="$n" -v ir="$ir" -v ms="$ms" -v pn="$plain_n" -v pir="$plain_ir" -v pms="$plain_ms" \
      'BEGIN {printf "| %s | %d | %.1fk | %.2f | %.1fk | %.2f |\n", l, n, ir / n / 1000, (ir / n) / (pir / pn),
              ms / n / 1000, ((ir - ms) / n) / ((pir - pms) / pn)}'
  done
} >"$INSTR_REPORT"
cat "$INSTR_REPORT"
