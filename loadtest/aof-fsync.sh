#!/usr/bin/env bash
# What Redis's appendfsync policy costs the purchase script, on this machine.
#
# Starts a private redis-server per policy (AOF off, everysec, always) on a
# free port with its data under a temporary folder, arms a whole sale there
# as the api does (meta total/startsAt/endsAt, stock = total, an empty
# ledger, a window around now), loads crates/domain/lua/purchase.lua and runs
# redis-benchmark EVALSHA, unpipelined and 16-deep pipelined.
#
# Every call must be a confirmed purchase: the user id is two independent
# __rand_int__ draws (about 10^18 ids, so none repeats in practice), and after
# each run the ledger must hold exactly one entry per EVALSHA call Redis
# counted (INFO commandstats: with -P, redis-benchmark may send up to one
# pipeline more than -n) and the stock must be total - ledger. If not, the
# run's row is not printed and the script exits non-zero: a figure that
# measured errors or duplicates is worthless.
#
# Knobs: REQUESTS (200000), CLIENTS (50), USER_MAX_ATTEMPTS (3) and
# USER_ATTEMPT_WINDOW_SECONDS (3600) as the api's defaults, so each call also
# counts a first attempt; AOF_REPORT (docs/bench/aof.md), written only when
# every run passed. Nothing shared is touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${REQUESTS:=200000}"
: "${CLIENTS:=50}"
: "${USER_MAX_ATTEMPTS:=3}"
: "${USER_ATTEMPT_WINDOW_SECONDS:=3600}"
: "${AOF_REPORT:=$ROOT/docs/bench/aof.md}"
for tool in redis-server redis-cli redis-benchmark python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install redis-server redis-tools python3)" >&2; exit 1; }
done

say() { printf '[bench-aof] %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }
# shellcheck source=deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"

work=$(mktemp -d)
port=""
cleanup() {
  [ -z "$port" ] || redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

LUA="$ROOT/crates/domain/lua/purchase.lua"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
[ -x "$BIN/loadtest" ] || fail "missing $BIN/loadtest: run 'make build-loadtest'"
# The key layout is domain::SaleKeys', asked of the load generator.
read -r META STOCK BUYERS ATTEMPTS < <("$BIN/loadtest" keys bench 'a-__rand_int__-__rand_int__')
PROBE=$("$BIN/loadtest" keys bench probe | awk '{print $4}')
BUYER='u-__rand_int__-__rand_int__'
ORDER='0191d2a4-6a8e-7c3b-9d3e-3f1f2c4b5a6d'
# Far more stock than calls: the sale never sells out mid-run.
TOTAL=$((REQUESTS * 10))

# Arms the sale on $port (a fresh, empty Redis) and checks one probe purchase
# answers OK, so a wrong call fails here with the script's own answer.
arm() {
  local now start end reply
  now=$(($(date +%s) * 1000))
  start=$((now - 60000)) end=$((now + 3600000))
  redis-cli -p "$port" hset "$META" total "$TOTAL" startsAt "$start" endsAt "$end" >/dev/null
  redis-cli -p "$port" set "$STOCK" "$TOTAL" >/dev/null
  WINDOW=("$start" "$end")
  # A batch of one purchase: keys stock, ledger, meta, the buyer's attempts.
  reply=$(redis-cli -p "$port" evalsha "$sha" 4 "$STOCK" "$BUYERS" "$META" "$PROBE" \
    "$USER_MAX_ATTEMPTS" "$USER_ATTEMPT_WINDOW_SECONDS" "$start" "$end" 0 probe "$ORDER")
  # The batch's own reply (clock, stock, buyers), then the purchase's.
  [ "$(sed -n 2p <<<"$reply")" = OK ] || fail "purchase.lua answered '$reply' to the probe purchase, not OK: check its KEYS/ARGV"
}

# Redis's own count of EVALSHA calls (the probe included): with -P,
# redis-benchmark sends whole pipelines, so it may send a few more than -n.
evalsha_calls() {
  redis-cli -p "$port" info commandstats | tr -d '\r' | sed -nE 's/^cmdstat_evalsha:calls=([0-9]+),.*/\1/p'
}

# Every call must have been a confirmed purchase: one ledger entry per call
# (the probe included), and the stock the rest.
check() {
  local calls sold stock
  calls=$(evalsha_calls)
  sold=$(redis-cli -p "$port" hlen "$BUYERS")
  stock=$(redis-cli -p "$port" get "$STOCK")
  [ "${calls:-0}" -gt "$REQUESTS" ] || fail "$1, pipeline $2: Redis counted ${calls:-no} EVALSHA calls, fewer than $REQUESTS + 1; no figure printed"
  [ "$sold" = "$calls" ] ||
    fail "$1, pipeline $2: the ledger holds $sold entries after $calls calls: some calls were not confirmed purchases; no figure printed"
  [ "$stock" = "$((TOTAL - sold))" ] ||
    fail "$1, pipeline $2: stock is $stock, expected $((TOTAL - sold)); no figure printed"
  CONFIRMED=$((calls - 1))
}

run() { # policy appendonly appendfsync pipeline
  local dir out rps p50
  port=$(free_port); dir="$work/$1-$4"; mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
    --appendonly "$2" --appendfsync "$3" --daemonize yes --pidfile "$dir/pid" --logfile "$dir/log"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$port" ping >/dev/null 2>&1 || fail "redis-server did not start (log: $dir/log)"
  sha=$(redis-cli -p "$port" script load "$(cat "$LUA")")
  arm
  # -e prints the server's error replies: they end the run below, not in a figure.
  if ! out=$(redis-benchmark -p "$port" -n "$REQUESTS" -c "$CLIENTS" -P "$4" -r 1000000000 -q -e \
    evalsha "$sha" 4 "$STOCK" "$BUYERS" "$META" "$ATTEMPTS" \
    "$USER_MAX_ATTEMPTS" "$USER_ATTEMPT_WINDOW_SECONDS" "${WINDOW[@]}" 0 "$BUYER" "$ORDER" 2>&1 | tr '\r' '\n'); then
    fail "redis-benchmark failed ($1, pipeline $4): $(tail -3 <<<"$out")"
  fi
  if grep -m1 'Error from server' <<<"$out" >&2; then
    fail "$1, pipeline $4: purchase.lua answered errors; no figure printed"
  fi
  out=$(grep 'requests per second' <<<"$out" | tail -1) || fail "no result line from redis-benchmark ($1, pipeline $4)"
  rps=$(sed -E 's/.*: ([0-9.]+) requests per second.*/\1/' <<<"$out")
  p50=$(sed -nE 's/.*p50=([0-9.]+) msec.*/\1/p' <<<"$out")
  check "$1" "$4"
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  port=""
  printf '| %-8s | %8s | %11s | %6s | %9s |\n' "$1" "$4" "$rps" "${p50:-?}" "$CONFIRMED" | tee -a "$table"
}

redis_version=$(redis-server --version | sed -nE 's/.*v=([0-9.]+).*/\1/p')
cpu=$(lscpu 2>/dev/null | sed -nE 's/^Model name: *//p' | head -1)
fs=$(df -PT "$work" | awk 'NR == 2 {print $2}')
table="$work/table.md"
{
  echo "# What Redis's appendfsync policy costs the purchase script"
  echo
  echo "Written by \`make bench-aof\` (\`loadtest/aof-fsync.sh\`); rerun it to refresh this file."
  echo
  echo "- command: \`make bench-aof\` with REQUESTS=$REQUESTS CLIENTS=$CLIENTS, i.e. per row"
  echo "  \`redis-benchmark -n $REQUESTS -c $CLIENTS -P <pipeline> -r 1000000000 -q -e EVALSHA <purchase.lua> 4 ...\`"
  echo "  against a private redis-server with \`--appendonly <yes|no> --appendfsync <policy> --save ''\`"
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: $(nproc) cores${cpu:+ ($cpu)}, Linux $(uname -r), Redis $redis_version, AOF on ${fs:-?}"
  echo "  (load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); the cores may be shared)"
  echo "- each call: \`crates/domain/lua/purchase.lua\` on a whole sale, a fresh user, per-user limit"
  echo "  $USER_MAX_ATTEMPTS per ${USER_ATTEMPT_WINDOW_SECONDS} s; checked after each run: ledger entries = EVALSHA calls"
  echo "  Redis counted (1 probe + \`confirmed\`), stock = total - ledger"
  echo
  printf '| %-8s | %8s | %11s | %6s | %9s |\n' "AOF"   pipeline "purchases/s" "p50 ms" "confirmed"
  printf '| %-8s | %8s | %11s | %6s | %9s |\n' "---" "---:" "---:" "---:" "---:"
} >"$table"
cat "$table"
for pipeline in 1 16; do
  for policy in "off no everysec" "everysec yes everysec" "always yes always"; do
    # shellcheck disable=SC2086
    run $policy "$pipeline"
  done
done
mkdir -p "$(dirname "$AOF_REPORT")"
cp "$table" "$AOF_REPORT"
say "every call was a confirmed purchase; table written to ${AOF_REPORT#"$ROOT"/}"
