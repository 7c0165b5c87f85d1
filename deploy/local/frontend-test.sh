#!/usr/bin/env bash
# The storefront's tests: Vitest units, a type-checked build, then Playwright
# in Debian's Chromium against the real api + worker + Redis + PostgreSQL.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

command -v npm >/dev/null || { echo "npm is missing: install Node.js 20 or newer" >&2; exit 1; }
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[frontend] installing Debian's chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is needed for the browser tests: sudo apt-get install chromium (or set CHROMIUM=/path)" >&2
    exit 1
  fi
fi

deploy/local/services.sh up
. .run/services.env
cargo build --bins

cd frontend
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund
npx vitest run
npm run build
CHROMIUM="$CHROMIUM" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}" npx playwright test
