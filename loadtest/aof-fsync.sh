#!/usr/bin/env bash
# What Redis's appendfsync policy costs the purchase script, on this machine.
#
# Starts a private redis-server per policy (AOF off, everysec, always) on a
# free port with its data under a temporary folder, loads purchase.lua and
# runs redis-benchmark EVALSHA with a fresh random user per call (so every
# call is a confirmed purchase that writes the ledger), unpipelined and
# 16-deep pipelined. Prints a table; nothing shared is touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${REQUESTS:=200000}"
: "${CLIENTS:=50}"
for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install redis-server redis-tools)" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # policy appendonly appendfsync pipeline
  local port dir sha out rps p50
  port=$(free_port); dir="$work/$1-$4"; mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
    --appendonly "$2" --appendfsync "$3" --daemonize yes --pidfile "$dir/pid" --logfile "$dir/log"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  sha=$(redis-cli -p "$port" script load "$(cat "$ROOT/crates/domain/lua/purchase.lua")")
  redis-cli -p "$port" set '{sale:bench}:stock' 1000000000 >/dev/null
  out=$(redis-benchmark -p "$port" -n "$REQUESTS" -c "$CLIENTS" -P "$4" -r 1000000000 -q \
    evalsha "$sha" 3 '{sale:bench}:stock' '{sale:bench}:buyers' '{sale:bench}:attempts:x' \
    'u-__rand_int__' '0191d2a4-6a8e-7c3b-9d3e-3f1f2c4b5a6d' 0 3600 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | tail -1)
  rps=$(sed -E 's/.*: ([0-9.]+) requests per second.*/\1/' <<<"$out")
  p50=$(sed -nE 's/.*p50=([0-9.]+) msec.*/\1/p' <<<"$out")
  local sold; sold=$(redis-cli -p "$port" hlen '{sale:bench}:buyers')
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  printf '| %-16s | %8s | %12s | %8s | %9s |\n' "$1" "$4" "$rps" "${p50:-?}" "$sold"
}

echo "redis-benchmark: $REQUESTS EVALSHA purchase.lua calls, $CLIENTS clients, $(nproc) cores, $(redis-server --version | awk '{print $3}')"
printf '| %-16s | %8s | %12s | %8s | %9s |\n' "AOF policy" pipeline "purchases/s" "p50 ms" "ledger"
printf '|%s|%s|%s|%s|%s|\n' "------------------" "----------" "--------------" "----------" "-----------"
for pipeline in 1 16; do
  run "off" no everysec "$pipeline"
  run "everysec" yes everysec "$pipeline"
  run "always" yes always "$pipeline"
done
