#!/usr/bin/env bash
# The storefront's tests: Vitest units, a type-checked build, then Playwright
# in Debian's Chromium against the real api + worker + Redis + PostgreSQL.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

command -v npm >/dev/null || { echo "npm is missing: install Node.js 20 or newer" >&2; exit 1; }
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || deploy/local/ensure-tools.sh chromium:chromium

deploy/local/services.sh up
. .run/services.env
cargo build --bins

cd frontend
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund
npx vitest run
npm run build
CHROMIUM="$CHROMIUM" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}" npx playwright test
