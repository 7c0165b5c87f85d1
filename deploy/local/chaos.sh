#!/usr/bin/env bash
# make chaos: steady purchases through `make run-cluster`'s balancer while a
# fault lands every few seconds, then the invariants.
#
#   make chaos [SECONDS=600] [RATE=800] [SEED=1] [EVERY=6]
#
# Runs its own Redis (AOF, appendfsync always: a SIGKILL must not take a
# confirmed purchase with it) and its own PostgreSQL under .run/chaos, so
# the faults never touch the shared ones; then cluster.sh with N=3 replicas
# and M=2 workers, restarted a second after they die (SUPERVISE=1). The
# faults come in a shuffled cycle (SEED): an api replica SIGKILLed or
# SIGTERMed, a worker SIGKILLed, Redis SIGKILLed (restarted after 2 s) or
# SIGSTOPped for 3 s, PostgreSQL stopped for 5 s. `loadtest chaos-load`
# sends purchases by new users at RATE/s for SECONDS; once the faults stop
# and everything is back, `loadtest chaos-check` waits for the rows and
# checks: every 201 has its row and its buyer, rows <= stock, stock + rows =
# total, no 5xx but 503; it reports availability while stock lasted.
# Writes docs/chaos/latest.md; exits non-zero on any violation.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
: "${CHAOS_SECONDS:=600}" "${RATE:=800}" "${SEED:=1}" "${EVERY:=6}"
: "${BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/release}"
: "${CHAOS_DIR:=$ROOT/.run/chaos}"
: "${CHAOS_REPORT:=$ROOT/docs/chaos/latest.md}"
# Stock for four fifths of the run: the invariants bite on a sale that sells
# out while faults land, and availability is judged while stock lasted.
: "${STOCK:=$((RATE * CHAOS_SECONDS * 4 / 5))}"

say() { printf '[chaos] %s\n' "$*" >&2; }
for tool in redis-server redis-cli haproxy curl shuf; do
  command -v "$tool" >/dev/null || { say "$tool is missing"; exit 1; }
done
for bin in api order-worker loadtest; do
  [ -x "$BIN_DIR/$bin" ] || { say "missing $BIN_DIR/$bin: run 'make build-loadtest'"; exit 1; }
done
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
PG_BIN=$(pg_bin)
[ -x "$PG_BIN/initdb" ] || { say "PostgreSQL server binaries are missing (apt-get install postgresql)"; exit 1; }
# shellcheck source=deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

rm -rf "$CHAOS_DIR"
mkdir -p "$CHAOS_DIR/redis" "$CHAOS_DIR/pg"
REDIS_PORT=$(free_port) PG_PORT=$(free_port) LB_PORT=$(free_port)
API_PORTS="$(free_port) $(free_port) $(free_port)"
[ "$(id -u)" = 0 ] && chown -R postgres "$CHAOS_DIR/pg"

redis_start() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$CHAOS_DIR/redis" --save '' \
    --appendonly yes --appendfsync always --maxmemory-policy noeviction \
    --daemonize yes --pidfile "$CHAOS_DIR/redis/pid" --logfile "$CHAOS_DIR/redis/log"
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  say "Redis did not start"; return 1
}
redis_pid() { cat "$CHAOS_DIR/redis/pid"; }
pg_ctl_() { as_postgres "$PG_BIN/pg_ctl" -D "$CHAOS_DIR/pg/data" -l "$CHAOS_DIR/pg/log" "$@" >/dev/null; }
pg_start() { pg_ctl_ -w -o "-p $PG_PORT -k $CHAOS_DIR/pg -c listen_addresses=127.0.0.1" start; }
pg_stop() { pg_ctl_ -m immediate stop || true; }

cluster_pid=""
faults_pid=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$faults_pid" ] && kill "$faults_pid" 2>/dev/null
  kill -CONT "$(redis_pid 2>/dev/null)" 2>/dev/null || true
  [ -n "$cluster_pid" ] && { kill -TERM "$cluster_pid" 2>/dev/null; wait "$cluster_pid" 2>/dev/null || true; }
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  pg_stop
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "Redis :$REDIS_PORT (AOF always), PostgreSQL :$PG_PORT under $CHAOS_DIR"
redis_start
as_postgres "$PG_BIN/initdb" -U postgres --auth=trust -E UTF8 -D "$CHAOS_DIR/pg/data" >/dev/null
pg_start

SALE_ID="chaos-$(date -u +%Y%m%d-%H%M%S)"
export SALE_ID STOCK_QUANTITY=$STOCK
export SALE_START_TIME="$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ)"
export SALE_END_TIME="$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT" DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export IP_RATE_LIMIT_PER_SECOND=0 IP_RATE_LIMIT_PER_10_SECONDS=0 USER_MAX_ATTEMPTS=0
export RUST_LOG="${RUST_LOG:-warn}" LOG_FORMAT=json METRICS_PORT=0
SKIP_SERVICES=1 SUPERVISE=1 N=3 M=2 LB_PORT=$LB_PORT API_PORTS=$API_PORTS BIN_DIR=$BIN_DIR \
  CLUSTER_DIR="$CHAOS_DIR/cluster" deploy/local/cluster.sh >"$CHAOS_DIR/cluster.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 300); do [ -f "$CHAOS_DIR/cluster/ready" ] && break; sleep 0.1; done
[ -f "$CHAOS_DIR/cluster/ready" ] || { say "the cluster did not come up (see $CHAOS_DIR/cluster.log)"; exit 1; }

# One fault of the cycle; replicas and workers come back by themselves.
pick() { find "$CHAOS_DIR/cluster" -name "$1-*.pid" | shuf -n 1 --random-source=<(yes "$SEED$RANDOM") | xargs cat; }
fault() {
  case $1 in
    api-kill) kill -KILL "$(pick api)" ;;
    api-term) kill -TERM "$(pick api)" ;;
    worker-kill) kill -KILL "$(pick worker)" ;;
    redis-kill) kill -KILL "$(redis_pid)"; sleep 2; redis_start ;;
    redis-stop) kill -STOP "$(redis_pid)"; sleep 3; kill -CONT "$(redis_pid)" ;;
    postgres-stop) pg_stop; sleep 5; pg_start ;;
  esac
}
faults() {
  RANDOM=$SEED
  while :; do
    for f in $(printf '%s\n' api-kill api-term worker-kill redis-kill redis-stop postgres-stop |
      shuf --random-source=<(yes "$SEED-$RANDOM")); do
      sleep "$EVERY"
      printf '%s %s\n' "$(date -u +%H:%M:%S)" "$f" >>"$CHAOS_DIR/faults.log"
      fault "$f" || printf '%s %s failed\n' "$(date -u +%H:%M:%S)" "$f" >>"$CHAOS_DIR/faults.log"
    done
  done
}

say "sale $SALE_ID, stock $STOCK: $RATE purchases/s for $CHAOS_SECONDS s through :$LB_PORT, a fault every $EVERY s (seed $SEED)"
faults &
faults_pid=$!
"$BIN_DIR/loadtest" chaos-load --url "http://127.0.0.1:$LB_PORT" --rate "$RATE" \
  --duration "$CHAOS_SECONDS" --answers "$CHAOS_DIR/answers.jsonl"
kill "$faults_pid" 2>/dev/null; wait "$faults_pid" 2>/dev/null || true
faults_pid=""
# Everything back before the check: Redis running, PostgreSQL up.
kill -CONT "$(redis_pid)" 2>/dev/null || true
redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || redis_start
as_postgres "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || pg_start
say "faults stopped ($(wc -l <"$CHAOS_DIR/faults.log") landed); checking"
"$BIN_DIR/loadtest" chaos-check --answers "$CHAOS_DIR/answers.jsonl" --sale "$SALE_ID" \
  --stock "$STOCK" --redis-url "$REDIS_URL" --database-url "$DATABASE_URL" \
  --faults "$CHAOS_DIR/faults.log" --report "$CHAOS_REPORT" \
  --settings "SECONDS=$CHAOS_SECONDS RATE=$RATE SEED=$SEED EVERY=$EVERY"
