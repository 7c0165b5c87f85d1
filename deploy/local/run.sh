#!/usr/bin/env bash
# `make run`: Redis + PostgreSQL (reused or started), then the order worker
# and the api with a demo sale that is active now. Ctrl-C stops what it started.
# `make run AUTH=jwt` puts the sale behind sign-in: it also starts the
# development identity provider (dev-idp, :4000) and points the api at it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
. deploy/local/lib.sh
if [ -f .env ]; then set -a; . ./.env; set +a; fi

deploy/local/services.sh up
. .run/services.env

. deploy/local/demo-sale.sh
: "${PORT:=3000}"
export PORT

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
AUTH="${AUTH:-none}"
# AUTH decides, whatever .env says: jwt uses dev-idp's keys only, none is
# the open contract.
unset JWT_SECRET JWT_PUBLIC_KEY_FILE JWT_JWKS_URL
export BUYER_AUTH="$AUTH"
case "$AUTH" in
  none) bins="api order-worker" ;;
  jwt) bins="api order-worker dev-idp" ;;
  *) echo "AUTH must be none or jwt, not '$AUTH'" >&2; exit 2 ;;
esac
for bin in $bins; do
  [ -x "$BIN/$bin" ] || { echo "missing $BIN/$bin: run 'make build' first" >&2; exit 1; }
done

pids=()
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill -TERM "$1" 2>/dev/null || true
}
stop() {
  trap - INT TERM EXIT
  echo
  echo "[run] stopping api and worker"
  # Whole trees: npx runs vite's node two levels down and leaves it
  # running when only npx is told to stop.
  for pid in "${pids[@]}"; do kill_tree "$pid"; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

"$BIN/order-worker" & pids+=($!)
if [ "$AUTH" = jwt ]; then
  : "${DEV_IDP_PORT:=4000}"
  idp="http://localhost:$DEV_IDP_PORT"
  DEV_IDP_PORT="$DEV_IDP_PORT" DEV_IDP_ISSUER="$idp" "$BIN/dev-idp" & pids+=($!)
  export BUYER_AUTH=jwt JWT_JWKS_URL="$idp/.well-known/jwks.json" JWT_ISSUER="$idp" \
    JWT_AUDIENCE=flash-sale BUYER_SIGN_IN_URL="$idp"
  idp_up=
  for _ in $(seq 100); do
    curl -fs "$idp/.well-known/jwks.json" >/dev/null 2>&1 && { idp_up=1; break; }
    sleep 0.1
  done
  [ -n "$idp_up" ] || { echo "[run] dev-idp did not answer on $idp (port taken? its log is above)" >&2; exit 1; }
fi
"$BIN/api" & pids+=($!)

# The storefront on :5173, proxying /api to the api (needs Node.js).
storefront="(not started: install Node.js 20+ and npm)"
if command -v npm >/dev/null; then
  (cd frontend && { [ -d node_modules ] || npm ci --no-audit --no-fund >/dev/null; } && npm run build >/dev/null)
  (cd frontend && API_URL="http://localhost:$PORT" exec npx vite preview --port 5173 --strictPort >/dev/null) & pids+=($!)
  storefront="http://localhost:5173"
fi

wait_healthy "http://localhost:$PORT" 10 || echo "[run] the api is not healthy yet; its log is above" >&2

cat <<MSG

  Flash sale "$SALE_ID" is live: $STOCK_QUANTITY items, $SALE_START_TIME .. $SALE_END_TIME

  Shop     $storefront
  API      http://localhost:$PORT          (GET /api/sale/status, POST /api/purchases; docs at /api/docs/)
  Health   http://localhost:$PORT/api/health

$(if [ "$AUTH" = jwt ]; then cat <<JWT
  Sign-in  $idp  (development identity provider: any name signs in)
  Try:  TOKEN=\$(curl -s -X POST $idp/sign-in -H 'Content-Type: application/json' -d '{"name":"alice"}' | jq -r .token)
        curl -X POST http://localhost:$PORT/api/purchases -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{}'
JWT
else cat <<OPEN
  Try:  curl -X POST http://localhost:$PORT/api/purchases -H 'Content-Type: application/json' -d '{"userId":"user-42"}'
OPEN
fi)

  Ctrl-C stops the api and the worker (Redis and PostgreSQL keep running; 'make services-down' stops private ones).

MSG

# Whichever exits first (or Ctrl-C) ends the run.
wait -n "${pids[@]}"
