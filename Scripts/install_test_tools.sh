#!/usr/bin/env bash
# Installs the programs some tests drive, when missing: each argument is COMMAND:DEBIAN_PACKAGE
# (e.g. chromium:chromium parallel:parallel). Exits non-zero with one line saying what to
# install by hand when apt-get cannot do it; the tests then skip with that line.
set -uo pipefail
need=()
for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || { echo "cannot install ${need[*]} (not root, no sudo): sudo apt-get install ${need[*]}"; exit 1; }
    sudo="sudo -n"
fi
log=/tmp/anomap-test-tools-apt.log
if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"; } >"$log" 2>&1; then
    echo "apt-get install ${need[*]} failed (see $log); install by hand: sudo apt-get install ${need[*]}"
    exit 1
fi
for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || { echo "${pair##*:} installed but ${pair%%:*} is not on PATH"; exit 1; }
done
