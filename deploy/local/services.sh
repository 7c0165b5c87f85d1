#!/usr/bin/env bash
# Makes Redis and PostgreSQL reachable for `make run` and `make test`.
#
#   services.sh up      reuse the ones at the configured addresses; else start
#                       private ones from installed binaries under .run/;
#                       else `docker compose up -d`; else say what to install.
#   services.sh down    stop the private ones this script started.
#   services.sh clean-test-data   drop leftovers of earlier test runs.
#
# Reads REDIS_HOST, REDIS_PORT, DATABASE_URL (the seed's defaults) and writes
# what it settled on to .run/services.env for the caller to source.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/.run"
: "${REDIS_HOST:=localhost}"
: "${REDIS_PORT:=6379}"
: "${DATABASE_URL:=postgresql://flash_sale_user:flash_sale_password@localhost:5432/flash_sale_db}"

say() { printf '[services] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- parsing DATABASE_URL: postgres[ql]://user[:password]@host[:port]/db -----
db_user() { sed -E 's#^[a-z]+://([^:@/]+).*#\1#' <<<"$DATABASE_URL"; }
db_password() { sed -nE 's#^[a-z]+://[^:@/]+:([^@/]*)@.*#\1#p' <<<"$DATABASE_URL"; }
db_host() { sed -E 's#^[a-z]+://([^@/]*@)?([^:/?]+).*#\2#' <<<"$DATABASE_URL"; }
db_port() { local p; p=$(sed -nE 's#^[a-z]+://([^@/]*@)?[^:/?]+:([0-9]+).*#\2#p' <<<"$DATABASE_URL"); echo "${p:-5432}"; }
db_name() { sed -E 's#^[^/]*//[^/]*/([^?]*).*#\1#' <<<"$DATABASE_URL"; }

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
    [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
  done
  command -v "$1" 2>/dev/null
}

redis_up() {
  # A PING over bash's /dev/tcp: needs no client binary.
  local reply
  # (A bare `exec ... 2>/dev/null` would silence this whole script's stderr.)
  { exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 2 reply <&3 || true
  exec 3>&- 3<&-
  [[ "$reply" == +PONG* ]]
}

database_ok() { psql "$DATABASE_URL" -tAc 'SELECT 1' >/dev/null 2>&1; }
server_up() { "$(pg_bin pg_isready)" -q -h "$(db_host)" -p "$(db_port)" >/dev/null 2>&1; }

compose() {
  if have docker && docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    say "starting $1 with docker compose"
    (cd "$ROOT" && docker compose up -d --wait "$1")
    return 0
  fi
  return 1
}

# --- Redis -----------------------------------------------------------------
ensure_redis() {
  if redis_up; then
    say "Redis: using $REDIS_HOST:$REDIS_PORT"
    return
  fi
  if have redis-server; then
    mkdir -p "$RUN_DIR/redis"
    say "Redis: starting a private redis-server on port $REDIS_PORT (data in .run/redis, AOF on)"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
      --dir "$RUN_DIR/redis" --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
      --pidfile "$RUN_DIR/redis/redis.pid" --logfile "$RUN_DIR/redis/redis.log"
    for _ in $(seq 50); do redis_up && return; sleep 0.1; done
    die "Redis did not answer; see .run/redis/redis.log"
  fi
  compose redis && return
  die "No Redis at $REDIS_HOST:$REDIS_PORT and none to start: install redis-server (apt-get install redis-server) or Docker."
}

# --- PostgreSQL --------------------------------------------------------------
as_postgres() {
  # initdb and postgres refuse to run as root.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

create_role_and_database() {
  # $1: a superuser connection string on the same server.
  local user password name
  user=$(db_user); password=$(db_password); name=$(db_name)
  say "PostgreSQL: creating role $user (CREATEDB, for the tests' databases) and database $name"
  psql "$1" -v ON_ERROR_STOP=1 -q >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN
    CREATE ROLE "$user" LOGIN CREATEDB PASSWORD '$password';
  END IF;
END \$\$;
SQL
  if [ -z "$(psql "$1" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]; then
    psql "$1" -q -c "CREATE DATABASE \"$name\" OWNER \"$user\"" >/dev/null
  fi
}

start_private_postgres() {
  local initdb pg_ctl data="$RUN_DIR/postgres" port
  initdb=$(pg_bin initdb) && pg_ctl=$(pg_bin pg_ctl) || return 1
  port=$(db_port)
  mkdir -p "$data"
  if [ "$(id -u)" = 0 ]; then chown postgres "$RUN_DIR" "$data" 2>/dev/null || true; fi
  if [ ! -s "$data/PG_VERSION" ]; then
    say "PostgreSQL: initialising a private cluster in .run/postgres"
    as_postgres "$initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  say "PostgreSQL: starting the private cluster on port $port"
  as_postgres "$pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null
}

ensure_postgres() {
  have psql || die "psql is needed (apt-get install postgresql-client)."
  if database_ok; then
    say "PostgreSQL: using $(db_host):$(db_port)/$(db_name)"
    return
  fi
  if ! server_up; then
    start_private_postgres || compose postgres ||
      die "No PostgreSQL at $(db_host):$(db_port) and none to start: install postgresql (apt-get install postgresql) or Docker."
  fi
  database_ok && return
  local super="postgresql://postgres@$(db_host):$(db_port)/postgres"
  psql "$super" -tAc 'SELECT 1' >/dev/null 2>&1 ||
    die "PostgreSQL at $(db_host):$(db_port) refuses $DATABASE_URL and a superuser login; create the role and database, or set DATABASE_URL."
  create_role_and_database "$super"
  database_ok || die "Still cannot connect with $DATABASE_URL."
}

write_env() {
  mkdir -p "$RUN_DIR"
  cat >"$RUN_DIR/services.env" <<ENV
export REDIS_HOST='$REDIS_HOST'
export REDIS_PORT='$REDIS_PORT'
export DATABASE_URL='$DATABASE_URL'
ENV
}

down() {
  if [ -f "$RUN_DIR/redis/redis.pid" ]; then
    kill "$(cat "$RUN_DIR/redis/redis.pid")" 2>/dev/null && say "stopped the private Redis" || true
  fi
  if [ -s "$RUN_DIR/postgres/PG_VERSION" ]; then
    as_postgres "$(pg_bin pg_ctl)" -D "$RUN_DIR/postgres" -m fast stop >/dev/null 2>&1 &&
      say "stopped the private PostgreSQL" || true
  fi
}

clean_test_data() {
  # Databases and keys that integration tests create, named so they can be found.
  local db
  for db in $(psql "$DATABASE_URL" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'fs\_test\_%'" 2>/dev/null); do
    psql "$DATABASE_URL" -q -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
  done
  if have redis-cli; then
    local pattern
    for pattern in '{sale:test-*' 'test:*' '{sale:e2e-*' 'e2e:*'; do
      redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "$pattern" |
        xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" unlink >/dev/null
    done
  fi
}

case "${1:-up}" in
  up) ensure_redis; ensure_postgres; write_env ;;
  down) down ;;
  clean-test-data) clean_test_data ;;
  *) die "usage: services.sh [up|down|clean-test-data]" ;;
esac
