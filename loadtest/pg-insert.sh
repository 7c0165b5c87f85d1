#!/usr/bin/env bash
# loadtest/pg-insert.sh: PostgreSQL's CPU per order for the two ways the
# worker can insert a batch of new orders into the migrations' orders table:
# a plain INSERT (orders::insert_new_orders: the worker's batches of new
# orders) and INSERT ... ON CONFLICT DO NOTHING (orders::insert_orders: every
# batch before, now one that holds a row already there or follows one that
# did). In a scratch database on
# DATABASE_URL's server (the local one by default), each round inserts
# PG_INSERT_BATCHES batches of 500 new orders (time-ordered ids, random user
# ids, one sale) per way, interleaved, the way that goes first alternating
# from round to round; each way's ids are time-ordered in a range of their
# own that starts past every id inserted before it, so both ways append to
# the primary key's index as orders do. The backend's CPU (utime + stime of
# /proc/<pid>/stat, so the server must be on this machine) over the rows;
# median of PG_INSERT_ROUNDS rounds. The statements carry literal values,
# not the worker's bound parameters: parsing them costs both ways alike.
# Writes PG_INSERT_REPORT (docs/profile/postgres-insert.md).
set -euo pipefail
# shellcheck source=loadtest/stack.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ROOT"
: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
: "${PG_INSERT_BATCHES:=100}"
: "${PG_INSERT_ROUNDS:=5}"
: "${PG_INSERT_REPORT:=docs/profile/postgres-insert.md}"
db="pg_insert_$$"
scratch_url="${DATABASE_URL%/*}/$db"
work=$(mktemp -d)
cleanup() {
  psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql -q "$DATABASE_URL" -c "CREATE DATABASE $db" >/dev/null
for migration in migrations/*/up.sql; do
  psql -q "$scratch_url" -v ON_ERROR_STOP=1 -f "$migration" >/dev/null
done
ticks=$(getconf CLK_TCK)

# The SQL of one round of one way: PG_INSERT_BATCHES INSERTs of 500 rows,
# ids from $3 (a round's step) on.
statements() {
  local way=$1 step=$2
  awk -v batches="$PG_INSERT_BATCHES" -v way="$way" -v step="$step" -v seed="$RANDOM" '
    function hex(n,   s) { s = ""; while (length(s) < n) s = s sprintf("%04x", int(rand() * 65536)); return substr(s, 1, n) }
    BEGIN {
      srand(seed)
      millis = 1700000000000 + step * 1000000
      for (b = 1; b <= batches; b++) {
        printf "INSERT INTO orders (id, sale_id, user_id, created_at) VALUES "
        for (r = 1; r <= 500; r++) {
          millis++
          id = sprintf("%012x", millis)
          printf "%s(%c%s-%s-7%s-8%s-%s%c, %cpg-insert%c, %cuser-%s%c, now())", (r > 1 ? ", " : ""), 39, substr(id, 1, 8), substr(id, 9, 4), hex(3), hex(3), hex(12), 39, 39, 39, 39, hex(16), 39
        }
        print (way == "on-conflict" ? " ON CONFLICT DO NOTHING;" : ";")
      }
    }'
}

# CPU microseconds per order of one way in one step of a round.
round() {
  local way=$1 step=$2 sql="$work/$1-$2.sql" pid before after
  statements "$way" "$step" >"$sql"
  coproc PSQL { psql -qAt "$scratch_url" 2>&1; }
  echo "SELECT pg_backend_pid();" >&"${PSQL[1]}"
  read -r pid <&"${PSQL[0]}"
  [[ $pid =~ ^[0-9]+$ ]] || { echo "pg-insert: psql answered '$pid', not a backend pid" >&2; exit 1; }
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  { cat "$sql"; echo "SELECT 'done';"; } >&"${PSQL[1]}"
  # Anything but the closing 'done' is an error (-q prints nothing else):
  # the round measured a failed insert, so no figure is written.
  local line failed=0
  while read -r line <&"${PSQL[0]}"; do
    [ "$line" = done ] && break
    echo "psql: $line" >&2
    failed=1
  done
  [ "$failed" = 0 ] || { echo "pg-insert: round $step of $way failed" >&2; exit 1; }
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  exec {PSQL[1]}>&-
  wait "$PSQL_PID" 2>/dev/null || true
  awk -v t=$((after - before)) -v hz="$ticks" -v rows=$((PG_INSERT_BATCHES * 500)) \
    'BEGIN {printf "%.1f", t / hz * 1e6 / rows}'
}

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A results
step=0
for r in $(seq 1 "$PG_INSERT_ROUNDS"); do
  ways=(plain on-conflict)
  [ $((r % 2)) = 1 ] || ways=(on-conflict plain)
  for way in "${ways[@]}"; do
    step=$((step + 1))
    results[$way]+="$(round "$way" "$step") "
  done
done
median() { tr ' ' '\n' | stack_median; }
plain=$(median <<<"${results[plain]}")
conflict=$(median <<<"${results[on-conflict]}")
rows=$(psql -qAt "$scratch_url" -c "SELECT count(*) FROM orders")
[ "$rows" = $((PG_INSERT_ROUNDS * 2 * PG_INSERT_BATCHES * 500)) ] ||
  { echo "pg-insert: $rows rows, not every round's" >&2; exit 1; }
mkdir -p "$(dirname "$PG_INSERT_REPORT")"
{
  echo "# PostgreSQL's CPU per inserted order: plain INSERT against ON CONFLICT DO NOTHING"
  echo
  echo "Written by \`loadtest/pg-insert.sh\`; rerun it to refresh this file."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(psql -qAt "$DATABASE_URL" -c 'SHOW server_version' | awk '{print $1}'), the machine's server, a scratch database with the migrations' orders table"
  echo "- load average at the start: $load_at_start (2 cores shared with whatever else runs)"
  echo "- method: $PG_INSERT_ROUNDS interleaved rounds per way (plain first in odd rounds, on conflict first in even ones),"
  echo "  each $PG_INSERT_BATCHES INSERTs of 500 new orders (one sale, random user ids, time-ordered ids past every"
  echo "  earlier round's, so both ways append to the primary key), literal values, on one connection; the backend's"
  echo "  CPU (utime + stime) per order, median round; $rows rows in the table at the end"
  echo
  echo "| way | CPU us per order, each round | median |"
  echo "| --- | --- | ---: |"
  echo "| \`INSERT\` (the worker's first try) | ${results[plain]% } | $plain |"
  echo "| \`INSERT ... ON CONFLICT DO NOTHING\` | ${results[on-conflict]% } | $conflict |"
  echo
  echo "plain / on conflict: $(awk -v a="$plain" -v b="$conflict" 'BEGIN {printf "%.2f", a / b}')x"
} >"$PG_INSERT_REPORT"
cat "$PG_INSERT_REPORT"
