#!/usr/bin/env bash
# The README's figures come from files that commands write and the repo
# keeps (docs/bench/latest.md from `make bench`, docs/bench/aof.md from
# `make bench-aof`, docs/loadtest/latest.md from `make loadtest`,
# docs/chaos/latest.md from `make chaos`). Each sits in README.md between
#
#   <!-- figures: docs/bench/latest.md -->
#   ...the file, without its title line...
#   <!-- /figures -->
#
#   readme-figures.sh          rewrites those blocks from the files
#   readme-figures.sh --check  exits 1 if any block differs from its file
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

splice() {
  awk '
    /^<!-- figures: .* -->$/ {
      print
      file = $3
      while ((getline line < file) > 0) {
        if (!seen_title && line ~ /^# /) { seen_title = 1; continue }
        if (!started && line == "") continue
        started = 1
        print line
      }
      close(file)
      seen_title = 0; started = 0; skipping = 1
      next
    }
    /^<!-- \/figures -->$/ { skipping = 0 }
    !skipping { print }
  ' README.md
}

for file in $(grep -oE '^<!-- figures: [^ ]+ -->$' README.md | awk '{print $3}'); do
  [ -f "$file" ] || { echo "README.md includes $file, which does not exist: run the command that writes it" >&2; exit 1; }
done
if [ "${1:-}" = "--check" ]; then
  if ! diff -u README.md <(splice) >/dev/null; then
    diff -u README.md <(splice) | head -40 >&2
    echo "README.md's figures differ from the files that hold them: run deploy/local/readme-figures.sh" >&2
    exit 1
  fi
  echo "README figures match docs/"
else
  splice >README.md.new && mv README.md.new README.md
fi
