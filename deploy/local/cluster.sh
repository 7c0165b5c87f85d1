#!/usr/bin/env bash
# `make run-cluster N=3 M=2`: N api replicas and M order workers on loopback
# behind haproxy (Debian's package), plus Redis and PostgreSQL as `make run`
# brings them. Ctrl-C (or SIGTERM) stops everything it started.
#
# Why Ctrl-C needs care here: bash starts background jobs with SIGINT
# ignored when job control is off (any script), and a shell that was itself
# started with SIGINT ignored (a background job of another script, many tool
# runners) can neither trap nor reset it. The api and the worker catch SIGINT
# anyway; haproxy does not, so it outlived a Ctrl-C while this script, deaf
# to SIGINT, never reached its stop trap. So every process starts with SIGINT
# at its default (a Ctrl-C to the process group reaches each of them), and
# whatever ends the balancer ends the script, whose EXIT trap stops the rest.
#
# Knobs (environment): N, M, LB_PORT (8080), API_PORTS (default 3001..),
# BIN_DIR (target/release), CLUSTER_DIR (.run/cluster), SKIP_SERVICES=1 to
# use REDIS_URL / DATABASE_URL as given, SUPERVISE=1 to restart a replica or
# worker a second after it dies (make chaos kills them), and every
# api/worker variable.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
. deploy/local/lib.sh
# .env fills in; what the caller exported wins (make run-ha passes its
# Redis this way).
if [ -f .env ]; then
  exported=$(export -p)
  set -a; . ./.env; set +a
  eval "$exported"
fi
: "${N:=3}" "${M:=2}" "${LB_PORT:=8080}"
: "${BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/release}"
: "${CLUSTER_DIR:=$ROOT/.run/cluster}"
command -v haproxy >/dev/null || { echo "haproxy is missing: apt-get install haproxy" >&2; exit 1; }
for bin in api order-worker; do
  [ -x "$BIN_DIR/$bin" ] || { echo "missing $BIN_DIR/$bin: run 'make build' first" >&2; exit 1; }
done

if [ -z "${SKIP_SERVICES:-}" ]; then
  deploy/local/services.sh up
  . .run/services.env
fi

. deploy/local/demo-sale.sh
# Only the balancer may say who the client is.
: "${TRUSTED_PROXIES:=127.0.0.1}"
export TRUSTED_PROXIES
if [ -z "${API_PORTS:-}" ]; then API_PORTS=$(seq -s ' ' 3001 $((3000 + N))); fi

mkdir -p "$CLUSTER_DIR"
# SIGINT back at its default in what we start (see above), where env can.
sigint=()
if env --default-signal=INT true 2>/dev/null; then sigint=(env --default-signal=INT); fi
pids=()
stop() {
  trap - INT TERM EXIT
  echo "[cluster] stopping"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

# launch PIDFILE COMMAND...: starts COMMAND in the background and records its
# pid. With SUPERVISE=1 a small loop restarts it a second after it dies and
# keeps PIDFILE current; SIGTERM to the loop stops it and its command.
launch() {
  local pidfile=$1
  shift
  if [ -z "${SUPERVISE:-}" ]; then
    "${sigint[@]}" "$@" &
    pids+=($!)
    echo $! >"$pidfile"
    return
  fi
  (
    child=
    trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait; exit 0' TERM
    while :; do
      "${sigint[@]}" "$@" &
      child=$!
      echo "$child" >"$pidfile"
      wait "$child" || true
      sleep 1
    done
  ) &
  pids+=($!)
}

for i in $(seq 1 "$M"); do
  METRICS_PORT="${METRICS_PORT:-$((9090 + i))}" launch "$CLUSTER_DIR/worker-$i.pid" "$BIN_DIR/order-worker"
done

servers=""
i=0
for port in $API_PORTS; do
  i=$((i + 1))
  # Each replica serves /metrics on its own port (a METRICS_PORT from .env
  # is the workers').
  HOST=127.0.0.1 PORT=$port METRICS_PORT=0 launch "$CLUSTER_DIR/api-$i.pid" "$BIN_DIR/api"
  servers+="  server api$i 127.0.0.1:$port check"$'\n'
done

# A replica that dies while it holds a request leaves haproxy nothing to
# answer but 502/504; the client gets what the api itself says when it
# cannot decide: 503 in the seed's shape, retry.
for status in 502 504; do
  printf '%s\r\n' "HTTP/1.1 503 Service Unavailable" "Content-Type: application/json" \
    "Retry-After: 1" "Cache-Control: no-cache" "Connection: close" "" \
    '{"statusCode":503,"message":"Service temporarily unavailable. Please try again shortly.","error":"Service Unavailable"}' \
    >"$CLUSTER_DIR/$status.http"
done

cat > "$CLUSTER_DIR/haproxy.cfg" <<CFG
global
  # Each connection costs two descriptors; stay under common ulimits.
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  # Server-sent events stay open for long.
  timeout tunnel 1h
  # A health check may take up to a second (Redis frozen); slower is down.
  timeout check 2s
  # A request that never reached a replica (refused: it died) goes to
  # another; one a replica already took is never replayed.
  retries 3
  retry-on conn-failure
  option redispatch
  errorfile 502 $CLUSTER_DIR/502.http
  errorfile 504 $CLUSTER_DIR/504.http
frontend shop
  bind 127.0.0.1:$LB_PORT
  option forwardfor
  default_backend api
backend api
  balance roundrobin
  option httpchk GET /api/health
  http-check expect status 200
  default-server inter 500ms fall 2 rise 2
$servers
CFG
"${sigint[@]}" haproxy -f "$CLUSTER_DIR/haproxy.cfg" -db & pids+=($!)
lb=$!
echo $lb > "$CLUSTER_DIR/haproxy.pid"

wait_healthy "http://127.0.0.1:$LB_PORT" 20 "$lb" || { echo "[cluster] the balancer did not come up" >&2; exit 1; }
echo "[cluster] sale $SALE_ID: $N api replicas ($API_PORTS) and $M workers behind http://127.0.0.1:$LB_PORT"
touch "$CLUSTER_DIR/ready"
# A replica or worker dying does not end the cluster (the balancer routes
# around it); the balancer exiting, or Ctrl-C, does (the EXIT trap stops
# the rest).
wait "$lb" || true
