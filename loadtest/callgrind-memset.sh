#!/usr/bin/env bash
# loadtest/callgrind-memset.sh: shows how callgrind counts glibc's memset
# of 3 KB (actix-http's request decoder clears a 3 KB header index on every
# call), which is why `make instructions` overstates what those calls cost.
# Compiles a C program that calls memset(3072 bytes) 10,000 times (through
# glibc: -fno-builtin) and keeps callgrind's count in MEMSET_REPORT
# (docs/profile/callgrind-memset.txt): about 3,100 instructions per call,
# one per byte, because glibc clears that size with `rep stosb` and
# valgrind counts each of its iterations; a core does it in a few dozen
# cycles. Needs cc and valgrind.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${MEMSET_REPORT:=$ROOT/docs/profile/callgrind-memset.txt}"
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/memset.c" <<'C'
#include <stdlib.h>
#include <string.h>
int main(void) {
  volatile char *buffer = malloc(3072);
  for (int i = 0; i < 10000; i++) memset((char *)buffer, i, 3072);
  return buffer[5];
}
C
cc -O1 -fno-builtin -o "$work/memset" "$work/memset.c"
valgrind --tool=callgrind --callgrind-out-file="$work/out" "$work/memset" >/dev/null 2>&1 || true
line=$(callgrind_annotate "$work/out" 2>/dev/null | grep -m1 'memset.*:__memset' || true)
ir=$(echo "$line" | awk '{gsub(",", "", $1); print $1}')
# No glibc memset in the profile (valgrind failed, or the call was inlined):
# no figure, rather than a wrong one.
[[ "$ir" =~ ^[0-9]+$ ]] || { echo "callgrind-memset: no memset in callgrind's profile" >&2; exit 1; }
{
  echo "# loadtest/callgrind-memset.sh: 10,000 calls of memset(buffer, i, 3072) through glibc, under callgrind"
  echo "$line"
  echo "instructions per call: $((ir / 10000))"
} >"$MEMSET_REPORT"
cat "$MEMSET_REPORT"
