#!/bin/sh
# Install what building and testing slabmq needs, from Debian 12's packages only.
# Safe to run again: apt-get skips what is already there.
set -eu

PACKAGES="gcc make cmake pkg-config libc6-dev libevent-dev libmsgpack-dev libsqlite3-dev libssl-dev cppcheck clang-tidy valgrind"
# Headless Chromium for the dashboard test (tests/integration/test_dashboard.c), only on
# request: about 80 MB to download and 300 MB installed; without it that test is skipped.
if [ "${SLABMQ_DEPS_CHROMIUM:-0}" = 1 ]; then
    PACKAGES="$PACKAGES chromium"
fi

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
