#!/usr/bin/env bash
# make failover: the failover tests on real servers on loopback (a primary,
# two replicas and three sentinels; a cluster of three primaries with a
# replica each; the sale's primary SIGKILLed mid-sale), run
# with their output shown; each prints one `failover:` line (answers,
# 201s, rows, lost, oversold, downtime), kept in docs/failover/latest.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
: "${FAILOVER_REPORT:=docs/failover/latest.md}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
deploy/local/services.sh up
set -a
# shellcheck disable=SC1091
. .run/services.env
set +a
cargo build --workspace --bins -q
cargo nextest run -p api --no-capture --no-fail-fast -E 'test(/^failover::/)' 2>&1 | tee "$out" | grep -E '^failover:|PASS|FAIL' || true
[ "$(grep -c '^failover:' "$out")" -ge 2 ] || { echo "a failover line is missing: a test did not run to its end" >&2; exit 1; }
grep -qE '^\s+FAIL' "$out" && { echo "a failover test failed" >&2; exit 1; }
mkdir -p "$(dirname "$FAILOVER_REPORT")"
{
  echo "# \`make failover\`: the latest run"
  echo
  echo "Written by \`make failover\` (\`loadtest/failover.sh\`); rerun it to refresh this file."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); code: $(git rev-parse --short HEAD)"
  echo "- test: \`crates/api/tests/api/failover.rs\` (2,000 buyers, stock 500, 32 at a time, a 503 retried every 50 ms; \`REDIS_MIN_REPLICA_ACKS=1\`)"
  echo
  echo '```text'
  grep '^failover:' "$out"
  echo '```'
} >"$FAILOVER_REPORT"
cat "$FAILOVER_REPORT"
