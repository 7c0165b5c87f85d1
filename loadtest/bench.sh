#!/usr/bin/env bash
# make bench: the api's throughput against its own plaintext baseline, in
# one run on this machine (wrk on the same box, BENCH_CONNECTIONS
# connections over 2 threads, BENCH_SECONDS per measurement).
#
#   plaintext   GET /                (the same actix app, middleware and all)
#   status      GET /api/sale/status
#   purchase    POST /api/purchases, a new user each time, stock 10 million
#   sold out    POST /api/purchases on a sold-out sale
#   persisted   the purchase run's orders drained by one worker started after it
#
# Also: Redis CPU per purchase (INFO commandstats, INFO cpu), api RSS.
# Results: a table here and loadtest/results/bench-<time>.json.
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"

: "${BENCH_SECONDS:=10}"
: "${BENCH_CONNECTIONS:=64}"
: "${BENCH_PORT:=3310}"
SOLD_PORT=$((BENCH_PORT + 1))
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "redis-cli is missing: apt-get install redis-tools" >&2; exit 1; }

stack_services
trap stack_stop EXIT
rcli() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }
OUT=$(mktemp -d)

# wrk NAME URL [script]: prints requests/s; keeps wrk's output in $OUT/NAME.
measure() {
  local name=$1 url=$2 script=${3:-}
  wrk -t2 -c"$BENCH_CONNECTIONS" -d"${BENCH_SECONDS}s" --latency ${script:+-s "$script"} "$url" >"$OUT/$name"
  awk '/^Requests\/sec/ {print $2}' "$OUT/$name"
}
# wrk's latency percentile P of NAME, in ms.
pct() {
  awk -v p="$2%" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}' "$OUT/$1"
}
non2xx() { awk '/Non-2xx/ {print $5}' "$OUT/$1"; }
# Sum of usec over every command Redis ran, and its CPU seconds (user+sys).
redis_usec() { rcli info commandstats | tr -d '\r' | sed -nE 's/.*usec=([0-9]+),.*/\1/p' | awk '{s+=$1} END {print s+0}'; }
redis_cpu() { rcli info cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ {s+=$2} END {printf "%.3f", s}'; }
rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

echo "[bench] api on :$BENCH_PORT (stock 10,000,000), ${BENCH_SECONDS}s per run, $BENCH_CONNECTIONS connections"
stack_api bench "$BENCH_PORT" STOCK_QUANTITY=10000000 USER_MAX_ATTEMPTS=0
sale=$STACK_SALE api_pid=$STACK_API_PID
base="http://127.0.0.1:$BENCH_PORT"

plain=$(measure plaintext "$base/")
status=$(measure status "$base/api/sale/status")

usec0=$(redis_usec); cpu0=$(redis_cpu)
purchase=$(measure purchase "$base/api/purchases" loadtest/purchase.lua)
usec1=$(redis_usec); cpu1=$(redis_cpu)
bought=$(rcli hlen "{sale:$sale}:buyers")
purchase_non2xx=$(non2xx purchase)
redis_us_cmd=$(awk -v a="$usec0" -v b="$usec1" -v n="$bought" 'BEGIN {printf "%.1f", (b-a)/n}')
redis_us_cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$bought" 'BEGIN {printf "%.1f", (b-a)*1e6/n}')
api_rss=$(rss_mb "$api_pid"); api_hwm=$(hwm_mb "$api_pid")

echo "[bench] $bought orders queued; starting one worker to drain them"
persist_start=$(date +%s.%N)
stack_worker
rows=0
for _ in $(seq 1200); do
  rows=$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM orders WHERE sale_id = '$sale'")
  [ "$rows" -ge "$bought" ] && break
  sleep 0.1
done
persist_end=$(date +%s.%N)
persisted=$(awk -v n="$rows" -v a="$persist_start" -v b="$persist_end" 'BEGIN {printf "%.0f", n/(b-a)}')
stack_stop_worker

echo "[bench] sold-out sale on :$SOLD_PORT"
stack_api soldout "$SOLD_PORT" STOCK_QUANTITY=1 USER_MAX_ATTEMPTS=0
curl -fs -X POST "http://127.0.0.1:$SOLD_PORT/api/purchases" -H 'Content-Type: application/json' \
  -d '{"userId":"bench-first"}' >/dev/null
soldout=$(measure soldout "http://127.0.0.1:$SOLD_PORT/api/purchases" loadtest/purchase.lua)
soldout_non410=$(( $(awk '/requests in/ {print $1}' "$OUT/soldout") - $(non2xx soldout) ))

ratio() { awk -v a="$1" -v b="$plain" 'BEGIN {printf "%.2f", a/b}'; }
printf '\n%-12s %12s %9s %9s %9s\n' "endpoint" "req/s" "ratio" "p50 ms" "p99 ms"
for row in "plaintext:$plain" "status:$status" "purchase:$purchase" "soldout:$soldout"; do
  name=${row%%:*}; rps=${row#*:}
  printf '%-12s %12.0f %8sx %9s %9s\n' "$name" "$rps" "$(ratio "$rps")" "$(pct "$name" 50)" "$(pct "$name" 99)"
done
cat <<EOF2

purchases confirmed        $bought (non-2xx answers: ${purchase_non2xx:-0})
orders persisted/s         $persisted ($rows rows drained by one worker from a backlog)
Redis per purchase         ${redis_us_cmd} us in commands (INFO commandstats), ${redis_us_cpu} us CPU (INFO cpu)
api RSS                    ${api_rss} MB after the purchase run (peak ${api_hwm} MB)
sold-out answers not 410   ${soldout_non410}
machine                    $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)
EOF2

mkdir -p loadtest/results
json="loadtest/results/bench-$RUN_ID.json"
cat >"$json" <<EOF2
{
  "startedAt": "$RUN_ID",
  "secondsPerRun": $BENCH_SECONDS,
  "connections": $BENCH_CONNECTIONS,
  "requestsPerSecond": {"plaintext": $plain, "status": $status, "purchase": $purchase, "soldOut": $soldout},
  "ratioToPlaintext": {"status": $(ratio "$status"), "purchase": $(ratio "$purchase"), "soldOut": $(ratio "$soldout")},
  "latencyMs": {
    "plaintext": {"p50": $(pct plaintext 50), "p99": $(pct plaintext 99)},
    "status": {"p50": $(pct status 50), "p99": $(pct status 99)},
    "purchase": {"p50": $(pct purchase 50), "p99": $(pct purchase 99)},
    "soldOut": {"p50": $(pct soldout 50), "p99": $(pct soldout 99)}
  },
  "purchasesConfirmed": $bought,
  "ordersPersistedPerSecond": $persisted,
  "redisMicrosPerPurchase": {"commands": $redis_us_cmd, "cpu": $redis_us_cpu},
  "apiRssMb": {"afterPurchases": $api_rss, "peak": $api_hwm}
}
EOF2
echo "written: $json"
rm -rf "$OUT"
