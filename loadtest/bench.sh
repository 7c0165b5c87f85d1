#!/usr/bin/env bash
# make bench: the api's throughput against its own plaintext baseline, in
# one run on this machine (wrk on the same box, BENCH_CONNECTIONS
# connections over 2 threads). BENCH_ROUNDS interleaved rounds of
# BENCH_SECONDS per endpoint; the median round of each is reported, so a
# noisy moment of the shared machine does not decide a ratio.
#
#   plaintext   GET /                (the same actix app, middleware and all)
#   status      GET /api/sale/status
#   purchase    POST /api/purchases, a new user each time, stock 100 million
#   sold out    POST /api/purchases on a sold-out sale
#   persisted   the purchase rounds' orders drained by one worker started after them
#
# Also: the api's CPU time per request (/proc), Redis CPU per purchase
# (INFO commandstats, INFO cpu), api RSS.
# Results: a table here and loadtest/results/bench-<time>.json.
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"

: "${BENCH_SECONDS:=5}"
: "${BENCH_ROUNDS:=3}"
: "${BENCH_CONNECTIONS:=64}"
: "${BENCH_PORT:=3310}"
SOLD_PORT=$((BENCH_PORT + 1))
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "redis-cli is missing: apt-get install redis-tools" >&2; exit 1; }

stack_services
trap stack_stop EXIT
rcli() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }
OUT=$(mktemp -d)

# CPU time (user + system, in clock ticks) a process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU seconds (user + system) of this shell's finished children (wrk), from
# `times` run in this shell itself (a subshell would count only its own).
children_cpu() { awk 'NR == 2 {for (i = 1; i <= 2; i++) {split($i, t, /[ms]/); s += t[1] * 60 + t[2]}} END {printf "%.3f", s}' "$OUT/times"; }
# wrk NAME URL PID [script]: keeps wrk's output in $OUT/NAME, the CPU the
# api process PID spent on it in $OUT/NAME.ticks, wrk's own in $OUT/NAME.wrk.
measure() {
  local name=$1 url=$2 pid=$3 script=${4:-} before wrk_before
  times >"$OUT/times"
  before=$(ticks "$pid") wrk_before=$(children_cpu)
  wrk -t2 -c"$BENCH_CONNECTIONS" -d"${BENCH_SECONDS}s" --latency ${script:+-s "$script"} "$url" >"$OUT/$name"
  echo $(($(ticks "$pid") - before)) >"$OUT/$name.ticks"
  times >"$OUT/times"
  awk -v a="$wrk_before" -v b="$(children_cpu)" 'BEGIN {print b - a}' >"$OUT/$name.wrk"
}
# The api's CPU time per request of NAME, in µs.
cpu_us() {
  awk -v t="$(cat "$OUT/$1.ticks")" -v hz="$(getconf CLK_TCK)" '/requests in/ {printf "%.1f", t * 1e6 / hz / $1}' "$OUT/$1"
}
# wrk's CPU time per request of NAME, in µs.
wrk_us() { awk -v s="$(cat "$OUT/$1.wrk")" '/requests in/ {printf "%.1f", s * 1e6 / $1}' "$OUT/$1"; }
rps() { awk '/^Requests\/sec/ {print $2}' "$OUT/$1"; }
# wrk's latency percentile P of NAME, in ms.
pct() {
  awk -v p="$2%" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}' "$OUT/$1"
}
non2xx() { awk '/Non-2xx/ {n=$5} END {print n+0}' "$OUT/$1"; }
# Sum of usec over every command Redis ran, and its CPU seconds (user+sys).
redis_usec() { rcli info commandstats | tr -d '\r' | sed -nE 's/.*usec=([0-9]+),.*/\1/p' | awk '{s+=$1} END {print s+0}'; }
redis_cpu() { rcli info cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ {s+=$2} END {printf "%.3f", s}'; }
rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

echo "[bench] ${BENCH_ROUNDS} interleaved rounds of ${BENCH_SECONDS}s per endpoint, $BENCH_CONNECTIONS connections; medians reported"
stack_api bench "$BENCH_PORT" STOCK_QUANTITY=100000000 USER_MAX_ATTEMPTS=0
sale=$STACK_SALE api_pid=$STACK_API_PID
base="http://127.0.0.1:$BENCH_PORT"
stack_api soldout "$SOLD_PORT" STOCK_QUANTITY=1 USER_MAX_ATTEMPTS=0
sold_pid=$STACK_API_PID
curl -fs -X POST "http://127.0.0.1:$SOLD_PORT/api/purchases" -H 'Content-Type: application/json' \
  -d '{"userId":"bench-first"}' >/dev/null

# The sold-out storm sends one late shopper's body as it is (no per-request
# Lua in wrk, as for GET /): any user not among the buyers costs the server
# the same set lookup, so the ratio measures the server, not wrk's scripting.
cat >"$OUT/late.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"userId":"late-shopper"}'
wrk.headers["Content-Type"] = "application/json"
LUA

redis_us=0 redis_cpu_s=0
for round in $(seq "$BENCH_ROUNDS"); do
  measure "plaintext-$round" "$base/" "$api_pid"
  measure "status-$round" "$base/api/sale/status" "$api_pid"
  measure "soldout-$round" "http://127.0.0.1:$SOLD_PORT/api/purchases" "$sold_pid" "$OUT/late.lua"
  usec0=$(redis_usec); cpu0=$(redis_cpu)
  measure "purchase-$round" "$base/api/purchases" "$api_pid" loadtest/purchase.lua
  usec1=$(redis_usec); cpu1=$(redis_cpu)
  redis_us=$((redis_us + usec1 - usec0))
  redis_cpu_s=$(awk -v t="$redis_cpu_s" -v a="$cpu0" -v b="$cpu1" 'BEGIN {print t + b - a}')
  echo "[bench] round $round: plaintext $(rps "plaintext-$round"), status $(rps "status-$round"), sold out $(rps "soldout-$round"), purchase $(rps "purchase-$round") req/s"
done
bought=$(rcli hlen "{sale:$sale}:buyers")
redis_us_cmd=$(awk -v t="$redis_us" -v n="$bought" 'BEGIN {printf "%.1f", t/n}')
redis_us_cpu=$(awk -v t="$redis_cpu_s" -v n="$bought" 'BEGIN {printf "%.1f", t*1e6/n}')
api_rss=$(rss_mb "$api_pid"); api_hwm=$(hwm_mb "$api_pid")
purchase_non2xx=0
for round in $(seq "$BENCH_ROUNDS"); do purchase_non2xx=$((purchase_non2xx + $(non2xx "purchase-$round"))); done
soldout_non410=0
for round in $(seq "$BENCH_ROUNDS"); do
  soldout_non410=$((soldout_non410 + $(awk '/requests in/ {print $1}' "$OUT/soldout-$round") - $(non2xx "soldout-$round")))
done

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

# The round whose req/s is the median of NAME's rounds: its rate and latencies.
median_round() {
  for round in $(seq "$BENCH_ROUNDS"); do echo "$(rps "$1-$round") $round"; done | sort -g | awk '{r[NR]=$2} END {print r[int((NR+1)/2)]}'
}
declare -A RPS P50 P99 CPU WRK
for name in plaintext status purchase soldout; do
  m=$(median_round "$name")
  RPS[$name]=$(rps "$name-$m"); P50[$name]=$(pct "$name-$m" 50); P99[$name]=$(pct "$name-$m" 99)
  CPU[$name]=$(cpu_us "$name-$m") WRK[$name]=$(wrk_us "$name-$m")
done
plain=${RPS[plaintext]} status=${RPS[status]} purchase=${RPS[purchase]} soldout=${RPS[soldout]}

ratio() { awk -v a="$1" -v b="$plain" 'BEGIN {printf "%.2f", a/b}'; }
printf '\n%-10s %9s %7s %7s %7s %13s %13s\n' "endpoint" "req/s" "ratio" "p50 ms" "p99 ms" "api CPU us/req" "wrk CPU us/req"
for name in plaintext status purchase soldout; do
  printf '%-10s %9.0f %6sx %7s %7s %14s %14s\n' "$name" "${RPS[$name]}" "$(ratio "${RPS[$name]}")" "${P50[$name]}" "${P99[$name]}" "${CPU[$name]}" "${WRK[$name]}"
done
# Everything shares the same cores: the ratio a purchase could reach even
# with an api that cost nothing is bounded by what Redis and wrk spend on it.
ceiling=$(awk -v ap="${CPU[plaintext]}" -v wp="${WRK[plaintext]}" -v wq="${WRK[purchase]}" -v r="$redis_us_cpu" \
  'BEGIN {printf "%.2f", (ap + wp) / (wq + r)}')
# ... and with an api that spent on a purchase no more than on GET /.
ceiling_plain=$(awk -v ap="${CPU[plaintext]}" -v wp="${WRK[plaintext]}" -v wq="${WRK[purchase]}" -v r="$redis_us_cpu" \
  'BEGIN {printf "%.2f", (ap + wp) / (ap + wq + r)}')
cat <<EOF2

purchases confirmed        $bought (non-2xx answers: ${purchase_non2xx:-0})
orders persisted/s         $persisted ($rows rows drained by one worker from a backlog)
Redis per purchase         ${redis_us_cmd} us in commands (INFO commandstats), ${redis_us_cpu} us CPU (INFO cpu)
purchase ratio ceiling     ${ceiling}x with a free api, ${ceiling_plain}x with one costing what GET / does: GET / costs api + wrk $(awk -v a="${CPU[plaintext]}" -v b="${WRK[plaintext]}" 'BEGIN {print a + b}') us, a purchase wrk + Redis $(awk -v a="${WRK[purchase]}" -v b="$redis_us_cpu" 'BEGIN {print a + b}') us of the same cores
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
  "rounds": $BENCH_ROUNDS,
  "connections": $BENCH_CONNECTIONS,
  "requestsPerSecond": {"plaintext": $plain, "status": $status, "purchase": $purchase, "soldOut": $soldout},
  "ratioToPlaintext": {"status": $(ratio "$status"), "purchase": $(ratio "$purchase"), "soldOut": $(ratio "$soldout")},
  "latencyMs": {
    "plaintext": {"p50": ${P50[plaintext]}, "p99": ${P99[plaintext]}},
    "status": {"p50": ${P50[status]}, "p99": ${P99[status]}},
    "purchase": {"p50": ${P50[purchase]}, "p99": ${P99[purchase]}},
    "soldOut": {"p50": ${P50[soldout]}, "p99": ${P99[soldout]}}
  },
  "apiCpuMicrosPerRequest": {"plaintext": ${CPU[plaintext]}, "status": ${CPU[status]}, "purchase": ${CPU[purchase]}, "soldOut": ${CPU[soldout]}},
  "wrkCpuMicrosPerRequest": {"plaintext": ${WRK[plaintext]}, "status": ${WRK[status]}, "purchase": ${WRK[purchase]}, "soldOut": ${WRK[soldout]}},
  "purchaseRatioCeilingWithFreeApi": $ceiling,
  "purchaseRatioCeilingWithPlaintextApi": $ceiling_plain,
  "purchasesConfirmed": $bought,
  "ordersPersistedPerSecond": $persisted,
  "redisMicrosPerPurchase": {"commands": $redis_us_cmd, "cpu": $redis_us_cpu},
  "apiRssMb": {"afterPurchases": $api_rss, "peak": $api_hwm}
}
EOF2
echo "written: $json"
rm -rf "$OUT"
