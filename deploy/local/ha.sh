#!/usr/bin/env bash
# `make run-ha`: the sale on a Redis with automatic failover, on loopback.
# A primary and two replicas (HA_PORT, default 6390, and the next two),
# three sentinels (HA_SENTINEL_PORT, default 26390, and the next two) and
# the order queue on a Redis of its own (HA_QUEUE_PORT, 6393), under
# .run/ha; then `make run-cluster`'s replicas and workers (N, M, LB_PORT)
# on them with REDIS_MIN_REPLICA_ACKS=1 (PostgreSQL as `make run` finds or
# starts it). Try a failover: `redis-cli -p 26390 SENTINEL FAILOVER flash`,
# or kill the primary; purchases through :8080 go on after a few seconds.
# Ctrl-C (or SIGTERM) stops everything it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
: "${HA_PORT:=6390}" "${HA_SENTINEL_PORT:=26390}" "${HA_QUEUE_PORT:=6393}"
: "${HA_DIR:=$ROOT/.run/ha}"
command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install redis-server" >&2; exit 1; }
primary=$HA_PORT
replicas=("$((HA_PORT + 1))" "$((HA_PORT + 2))")
sentinels=("$HA_SENTINEL_PORT" "$((HA_SENTINEL_PORT + 1))" "$((HA_SENTINEL_PORT + 2))")
all=("$primary" "${replicas[@]}" "$HA_QUEUE_PORT" "${sentinels[@]}")

cluster=""
stop() {
  trap - INT TERM EXIT
  # A trap runs only between commands, so the replicas and workers run in
  # the background and this script waits for them (see the end).
  if [ -n "$cluster" ]; then
    kill -TERM "$cluster" 2>/dev/null || true
    wait "$cluster" 2>/dev/null || true
  fi
  for port in "${all[@]}"; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

rm -rf "$HA_DIR"
mkdir -p "$HA_DIR"
say() { printf '[ha] %s\n' "$*" >&2; }
# The settings a primary that fails over should run with: it stops taking
# writes when no replica is in reach (a failover would drop them), and its
# AOF is fsynced every second.
for port in "$primary" "${replicas[@]}" "$HA_QUEUE_PORT"; do
  mkdir -p "$HA_DIR/$port"
  extra=()
  [ "$port" = "$primary" ] || [ "$port" = "$HA_QUEUE_PORT" ] || extra=(--replicaof 127.0.0.1 "$primary")
  [ "$port" = "$HA_QUEUE_PORT" ] || extra+=(--min-replicas-to-write 1 --min-replicas-max-lag 10)
  redis-server --port "$port" --bind 127.0.0.1 --dir "$HA_DIR/$port" --daemonize yes \
    --logfile "$HA_DIR/$port/log" --save '' --appendonly yes --appendfsync everysec \
    --maxmemory 1gb --maxmemory-policy noeviction "${extra[@]}"
done
for port in "${sentinels[@]}"; do
  mkdir -p "$HA_DIR/$port"
  cat >"$HA_DIR/$port/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
dir $HA_DIR/$port
sentinel monitor flash 127.0.0.1 $primary 2
sentinel down-after-milliseconds flash 2000
sentinel failover-timeout flash 10000
sentinel parallel-syncs flash 1
CONF
  redis-server "$HA_DIR/$port/sentinel.conf" --sentinel --daemonize yes --logfile "$HA_DIR/$port/log"
done
for _ in $(seq 100); do
  redis-cli -p "${replicas[1]}" info replication 2>/dev/null | grep -q master_link_status:up &&
    redis-cli -p "${sentinels[2]}" sentinel get-master-addr-by-name flash 2>/dev/null | grep -q 127.0.0.1 && break
  sleep 0.1
done
say "primary :$primary, replicas :${replicas[0]} :${replicas[1]}, sentinels :${sentinels[*]}, queue :$HA_QUEUE_PORT"

deploy/local/services.sh up
# shellcheck disable=SC1091
. .run/services.env
nodes="node=127.0.0.1:${sentinels[1]}&node=127.0.0.1:${sentinels[2]}"
export REDIS_URL="redis-sentinel://127.0.0.1:${sentinels[0]}/0?sentinelServiceName=flash&$nodes"
export REDIS_QUEUE_URL="redis://127.0.0.1:$HA_QUEUE_PORT"
export REDIS_MIN_REPLICA_ACKS="${REDIS_MIN_REPLICA_ACKS:-1}"
export DATABASE_URL
SKIP_SERVICES=1 deploy/local/cluster.sh &
cluster=$!
wait "$cluster"
