#!/usr/bin/env bash
# make bench-acks: what REDIS_MIN_REPLICA_ACKS=1 costs purchases. Starts a
# private redis-server primary and a replica of it on free ports (AOF off,
# like the shared one), and two apis on that primary, one answering on the
# primary's word and one waiting for the replica (WAIT after each batch,
# REDIS_REPLICA_ACK_TIMEOUT_MS 100); then ACKS_ROUNDS (5) interleaved rounds
# of ACKS_SECONDS (5) of wrk purchases (-c64, a new buyer per request, no
# worker) against each. Writes ACKS_REPORT (docs/bench/acks.md): each api's
# median round.
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"
: "${ACKS_ROUNDS:=5}"
: "${ACKS_SECONDS:=5}"
: "${ACKS_REPORT:=docs/bench/acks.md}"
: "${ACKS_PORT:=3340}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
work=$(mktemp -d)
primary=$(free_port)
replica=$(free_port)
cleanup() {
  stack_stop
  redis-cli -p "$replica" shutdown nosave >/dev/null 2>&1 || true
  redis-cli -p "$primary" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

stack_services
for port in "$primary" "$replica"; do
  mkdir -p "$work/$port"
  extra=()
  [ "$port" = "$replica" ] && extra=(--replicaof 127.0.0.1 "$primary")
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/$port" \
    --daemonize yes --logfile "$work/$port/log" "${extra[@]}"
done
for _ in $(seq 100); do
  redis-cli -p "$replica" info replication 2>/dev/null | grep -q master_link_status:up && break
  sleep 0.1
done
redis-cli -p "$replica" info replication | grep -q master_link_status:up || { echo "the replica did not link up" >&2; exit 1; }

url="REDIS_URL=redis://127.0.0.1:$primary"
stack_api acks-0 "$ACKS_PORT" "$url" STOCK_QUANTITY=100000000 USER_MAX_ATTEMPTS=0 REDIS_MIN_REPLICA_ACKS=0
stack_api acks-1 "$((ACKS_PORT + 1))" "$url" STOCK_QUANTITY=100000000 USER_MAX_ATTEMPTS=0 \
  REDIS_MIN_REPLICA_ACKS=1 REDIS_REPLICA_ACK_TIMEOUT_MS=100

# One wrk run: "<req/s> <p50 ms> <p99 ms> <non-2xx>"; fails when wrk did
# not run or nothing was answered (answers not 2xx are reported, not
# failed: a replica slow to acknowledge is a 503 by design).
measure() { # port
  local out
  out=$(wrk -t2 -c64 -d"${ACKS_SECONDS}s" --latency -s loadtest/purchase.lua "http://127.0.0.1:$1") ||
    { echo "[acks] wrk failed against :$1" >&2; return 1; }
  awk 'function ms(v) { if (v ~ /us$/) { sub(/us/, "", v); return v / 1000 } if (v ~ /ms$/) { sub(/ms/, "", v); return v } sub(/s/, "", v); return v * 1000 }
      /Requests\/sec/ {rps=$2} /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /Non-2xx/ {bad=$NF}
      END {if (rps == 0) exit 1; printf "%.0f %.3f %.3f %d\n", rps, p50, p99, bad}' <<<"$out"
}
declare -A runs
for round in $(seq "$ACKS_ROUNDS"); do
  for acks in 0 1; do
    run=$(measure "$((ACKS_PORT + acks))") || { echo "[acks] no figure for acks=$acks" >&2; exit 1; }
    runs[$acks]+="$run"$'\n'
  done
  echo "[acks] round $round done" >&2
done
median() { stack_median <<<"${runs[$1]}"; }
mkdir -p "$(dirname "$ACKS_REPORT")"
{
  echo "# \`make bench-acks\`: what waiting for a replica costs"
  echo
  echo "Written by \`loadtest/acks.sh\`; rerun it to refresh this file."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); code: $(stack_code)"
  echo "- method: a private primary and one replica on loopback (same machine, AOF off); $ACKS_ROUNDS interleaved rounds of $ACKS_SECONDS s per api, wrk -t2 -c64 with loadtest/purchase.lua (a new buyer per request), no worker; each row is its median round"
  echo
  echo "| \`REDIS_MIN_REPLICA_ACKS\` | purchases/s | p50 ms | p99 ms | answers not 2xx |"
  echo "| ---: | ---: | ---: | ---: | ---: |"
  for acks in 0 1; do
    read -r rps p50 p99 bad <<<"$(median "$acks")"
    echo "| $acks | $rps | $p50 | $p99 | $bad |"
  done
  read -r r0 _ <<<"$(median 0)"
  read -r r1 _ <<<"$(median 1)"
  awk -v a="$r0" -v b="$r1" 'BEGIN {printf "\nWith a replica acknowledgement: %.2fx the purchases per second.\n", b / a}'
} >"$ACKS_REPORT"
cat "$ACKS_REPORT"
