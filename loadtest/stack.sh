# Sourced by the load-test and benchmark scripts: Redis + PostgreSQL as
# `make run` finds or starts them, then api and worker processes of the
# release build with the settings a scenario needs.
#
#   stack_services                      Redis + PostgreSQL up; exports their addresses
#   stack_private_redis                 then a Redis of the run's own (see below)
#   stack_api NAME PORT [VAR=VALUE...]  an api on PORT selling a fresh sale NAME-<time>;
#                                       sets STACK_SALE (its id) and STACK_API_PID
#   stack_worker [VAR=VALUE...]         an order worker
#   stack_stop_worker                   stops the worker(s)
#   stack_stop                          stops every process started here
#   stack_median                        the median of the rounds on stdin, a line each
#   stack_evalsha_usec STATS WHAT       EVALSHA's usec per call in INFO commandstats
#
# Every sale is new (its own id, its own keys and rows), so a run never
# touches `make run`'s demo sale or another run's. IP limits are off: the
# load comes from one address.
#
# Knobs: LOADTEST_BIN_DIR (the release build) for the api, order-worker and
# loadtest binaries; SKIP_SERVICES=1 to use REDIS_URL / DATABASE_URL as
# given; LOADTEST_RUN_ID (the time) names the run's sales, queue and logs.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"
: "${LOADTEST_BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/release}"
BIN="$LOADTEST_BIN_DIR"
: "${LOADTEST_RUN_ID:=$(date -u +%Y%m%d-%H%M%S)}"
RUN_ID="$LOADTEST_RUN_ID"
LOGS="$ROOT/loadtest/results/logs"
STACK_PIDS=()
WORKER_PIDS=()

stack_say() { printf '[stack] %s\n' "$*" >&2; }

stack_services() {
  if [ -z "${SKIP_SERVICES:-}" ]; then
    (cd "$ROOT" && deploy/local/services.sh up)
    set -a
    # shellcheck disable=SC1091
    . "$ROOT/.run/services.env"
    set +a
  fi
  for bin in api order-worker loadtest; do
    [ -x "$BIN/$bin" ] || { stack_say "missing $BIN/$bin: run 'make build-loadtest'"; return 1; }
  done
  mkdir -p "$LOGS"
}

# A Redis of the run's own on a free port, started from this shell, so it
# shares this session's scheduling group (Linux autogroup) with wrk and the
# apis; exports REDIS_HOST, REDIS_PORT and REDIS_URL, and goes at
# stack_stop. The machine's Redis, started in a session of its own, was
# seen waiting up to 0.7 s for a core while wrk and an api kept both busy
# (`perf sched latency`): its answers then arrived after the api's 1 s
# timeout, and a benchmark measured the scheduler (503s, 1 s tails), not
# the api. Skipped with SKIP_SERVICES=1 (REDIS_URL as given).
stack_private_redis() {
  [ -z "${SKIP_SERVICES:-}" ] || return 0
  command -v redis-server >/dev/null || { stack_say "redis-server is missing: apt-get install redis-server"; return 1; }
  local port
  port=$(free_port)
  mkdir -p "$LOGS"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    >"$LOGS/redis-$RUN_ID.log" 2>&1 &
  STACK_PIDS+=($!)
  export REDIS_HOST=127.0.0.1 REDIS_PORT=$port REDIS_URL="redis://127.0.0.1:$port"
  STACK_PRIVATE_REDIS=1
  for _ in $(seq 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && { stack_say "Redis: a private redis-server on port $port"; return 0; }
    sleep 0.1
  done
  stack_say "the private redis-server did not start (log: $LOGS/redis-$RUN_ID.log)"
  return 1
}

# Common settings: quiet logs (one line per request would be the benchmark),
# no IP limit, a sale open for an hour.
stack_env() {
  echo "RUST_LOG=${LOADTEST_RUST_LOG:-warn}"
  echo "LOG_FORMAT=json"
  echo "IP_RATE_LIMIT_PER_SECOND=0"
  echo "IP_RATE_LIMIT_PER_10_SECONDS=0"
  echo "SALE_START_TIME=$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ)"
  echo "SALE_END_TIME=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"
  echo "METRICS_PORT=0"
}

stack_api() {
  local name=$1 port=$2
  shift 2
  local sale="load-$name-$RUN_ID"
  # The queue is per run too: a backlog left by one run never slows another.
  env $(stack_env) "ORDER_QUEUE=loadtest:$RUN_ID:orders" "SALE_ID=$sale" "PORT=$port" "$@" \
    "$BIN/api" >>"$LOGS/api-$name-$RUN_ID.log" 2>&1 &
  STACK_API_PID=$!
  STACK_PIDS+=($!)
  STACK_SALE=$sale
  wait_healthy "http://127.0.0.1:$port" 10 "$STACK_API_PID" && return 0
  stack_say "api $name did not become healthy on :$port (log: $LOGS/api-$name-$RUN_ID.log)"
  return 1
}

stack_worker() {
  env $(stack_env) "ORDER_QUEUE=loadtest:$RUN_ID:orders" "WORKER_NAME=loadtest-$RUN_ID-${#WORKER_PIDS[@]}" \
    "RECONCILE_SALES=load-*-$RUN_ID" "$@" \
    "$BIN/order-worker" >>"$LOGS/worker-$RUN_ID.log" 2>&1 &
  WORKER_PIDS+=($!)
  STACK_PIDS+=($!)
}

stack_stop_worker() {
  [ "${#WORKER_PIDS[@]}" -gt 0 ] || return 0
  kill -TERM "${WORKER_PIDS[@]}" 2>/dev/null || true
  wait "${WORKER_PIDS[@]}" 2>/dev/null || true
  WORKER_PIDS=()
}

# Drops this run's sales and queue from Redis (jobs no worker drains would
# stay in the shared Redis for good).
# The code a report measures: HEAD's short id, marked when the compiled
# sources (crates/, vendor/, the manifests) have uncommitted changes (the
# binaries may then be newer than HEAD).
stack_code() {
  echo "$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates vendor Cargo.toml Cargo.lock || echo ' (with uncommitted changes)')"
}

# The middle of stdin's non-empty lines, ordered by the number each starts
# with: a row's median round when each line is one round.
stack_median() {
  sed '/^$/d' | sort -g | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'
}

# INFO commandstats text $1's EVALSHA usec_per_call (a script with the
# commands it runs); fails, naming $2, when no EVALSHA was counted.
stack_evalsha_usec() {
  grep -q '^cmdstat_evalsha:' <<<"$1" || { echo "$2: no EVALSHA counted" >&2; return 1; }
  sed -n 's/^cmdstat_evalsha:.*usec_per_call=\([0-9.]*\).*/\1/p' <<<"$1"
}

# The api on port $1's count of purchase answers (its /metrics): "<sold
# out> <any other outcome>".
stack_purchase_counts() {
  curl -fsS "http://127.0.0.1:$1/metrics" |
    awk '/^flash_sale_purchases_total\{/ {if (/outcome="sold_out"/) s += $NF; else o += $NF}
         END {printf "%d %d\n", s, o}'
}

stack_drop_run_keys() {
  # A private Redis goes with the run, keys and all.
  [ -z "${STACK_PRIVATE_REDIS:-}" ] || return 0
  drop_keys "${REDIS_URL:-redis://${REDIS_HOST:-localhost}:${REDIS_PORT:-6379}}" \
    "loadtest:$RUN_ID:*" "{sale:load-*-$RUN_ID}*"
}

stack_stop() {
  [ "${#STACK_PIDS[@]}" -gt 0 ] || return 0
  kill -TERM "${STACK_PIDS[@]}" 2>/dev/null || true
  wait "${STACK_PIDS[@]}" 2>/dev/null || true
  STACK_PIDS=()
  WORKER_PIDS=()
}
