#!/usr/bin/env bash
# `loadtest/run.sh all` must exit non-zero when a scenario fails, still run
# the other scenarios, and leave no process behind.
#
# Runs the script against stub binaries (no build, no Redis, no PostgreSQL):
# an `api` that answers /api/health, an `order-worker` that sleeps, and a
# `loadtest` that logs its scenario and fails in the middle of `dedup` (its
# first of two runs). RUN_SH picks the script under test (loadtest/run.sh);
# it runs in a temporary copy of the tree, next to this checkout's stack.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${RUN_SH:=$ROOT/loadtest/run.sh}"
command -v python3 >/dev/null || { echo "python3 is missing: apt-get install python3" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing: apt-get install curl" >&2; exit 1; }

tree=$(mktemp -d)
cleanup() {
  # Whatever the script under test left running is the test's to stop.
  for pidfile in "$tree"/pids/*; do
    [ -e "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -rf "$tree"
}
trap cleanup EXIT
mkdir -p "$tree/loadtest" "$tree/bin" "$tree/pids" "$tree/deploy/local"
cp "$RUN_SH" "$tree/loadtest/run.sh"
cp "$ROOT/loadtest/stack.sh" "$tree/loadtest/stack.sh"
cp "$ROOT/deploy/local/lib.sh" "$tree/deploy/local/lib.sh"

cat >"$tree/bin/api" <<'STUB'
#!/usr/bin/env bash
echo $$ >"$STUB_PIDS/api-$$"
exec python3 -c '
import http.server, os
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Health).serve_forever()
'
STUB
cat >"$tree/bin/order-worker" <<'STUB'
#!/usr/bin/env bash
echo $$ >"$STUB_PIDS/worker-$$"
exec sleep 600
STUB
cat >"$tree/bin/loadtest" <<'STUB'
#!/usr/bin/env bash
echo "$*" >>"$STUB_LOG"
case " $* " in *" $STUB_FAIL "*) echo "stub loadtest: failing '$STUB_FAIL'" >&2; exit 1 ;; esac
STUB
chmod +x "$tree/bin/"*

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
status=0
env SKIP_SERVICES=1 LOADTEST_BIN_DIR="$tree/bin" LOADTEST_PORT="$port" \
  DATABASE_URL=postgres://stub REDIS_URL=redis://stub \
  STUB_PIDS="$tree/pids" STUB_LOG="$tree/loadtest.log" STUB_FAIL="--user-limit off" \
  SUSTAINED_SECONDS=1 \
  bash "$tree/loadtest/run.sh" all >"$tree/out" 2>&1 || status=$?

failures=()
check() { # description, command...
  local what=$1
  shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures+=("$what"); fi
}
ran() { grep -q "^$1" "$tree/loadtest.log"; }
none_alive() {
  local pidfile
  for pidfile in "$tree"/pids/*; do
    [ -e "$pidfile" ] || continue
    if kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 1; fi
  done
}
nothing_listens() { ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/api/health"; }
dedup_stopped() { ! ran "dedup --requests 100 --user-limit on"; }
started() { [ "$(find "$tree/pids" -type f | wc -l)" -gt 0 ]; }

echo "run.sh all exited $status; the stub loadtest ran:"
sed 's/ --url.*//; s/^/  /' "$tree/loadtest.log" 2>/dev/null || true
check "all exits non-zero when dedup fails" [ "$status" -ne 0 ]
check "all names dedup, and only dedup, as failed" grep -qx '\[stack\] failed: dedup' "$tree/out"
check "burst ran" ran "burst "
check "sustained ran after the failure" ran "sustained "
check "soldout ran after the failure" ran "soldout "
check "dedup stopped at its failing step (errexit holds in a scenario)" dedup_stopped
check "the stubs were started at all" started
check "every api and worker started was stopped" none_alive
check "nothing listens on LOADTEST_PORT" nothing_listens

if [ "${#failures[@]}" -gt 0 ]; then
  echo "run.sh output:"
  sed 's/^/  | /' "$tree/out"
  echo "loadtest/tests/run-all.sh: ${#failures[@]} check(s) failed against $RUN_SH" >&2
  exit 1
fi
echo "loadtest/tests/run-all.sh: passed against $RUN_SH"
