#!/usr/bin/env bash
# Makes sure the tools the tests drive are installed: installs them with
# apt-get when run as root, else says exactly what to install.
#   ensure-tools.sh <command>:<debian-package> ...
set -euo pipefail
missing=()
for spec in "$@"; do
  command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[tools] installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "The tests need: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
