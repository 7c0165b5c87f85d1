# Sourced by the scripts that start services (run.sh, cluster.sh,
# loadtest/stack.sh): what they all need once.

# wait_healthy URL [SECONDS] [PID]: polls URL's /api/health every 100 ms
# until it answers 2xx (status 0) or SECONDS (10) pass, or PID (if given)
# exits (status 1).
wait_healthy() {
  local url=$1 seconds=${2:-10} pid=${3:-}
  local tries=$((seconds * 10))
  for _ in $(seq "$tries"); do
    curl -fs "$url/api/health" >/dev/null 2>&1 && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}

# A TCP port nothing listens on now (for private servers of a run).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# drop_keys REDIS_URL PATTERN...: deletes every key matching the patterns
# (SCAN, then DEL a batch at a time): a run's leftovers in a shared Redis.
drop_keys() {
  local url=$1 pattern
  shift
  for pattern in "$@"; do
    redis-cli -u "$url" --scan --pattern "$pattern" | xargs -r -n 2000 redis-cli -u "$url" del >/dev/null
  done
}
