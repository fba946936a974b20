#!/bin/sh
# Install what building and testing slabmq needs, from Debian 12's packages only.
#   scripts/deps.sh         build and run (scripts/run.sh, scripts/fuzz.sh)
#   scripts/deps.sh test    the same plus what only the test suite needs (scripts/test.sh)
#   scripts/deps.sh bench   the same plus the peer brokers of tools/bench/bench-peers.sh
# Safe to run again: apt-get skips what is already there.
set -eu

BACKPORTS=""
PACKAGES="gcc make cmake pkg-config libc6-dev libevent-dev libmsgpack-dev libsqlite3-dev libssl-dev cppcheck valgrind"
case "${1:-}" in
'') ;;
# Headless Chromium for the dashboard test (tests/integration/test_dashboard.c): about 80 MB
# to download, 300 MB installed, some 15 s of apt-get on a fresh machine. Prometheus's own
# text-format parser (python3-prometheus-client, with python3) for test_http's /metrics.
# clang-tidy for scripts/tidy.sh. g++ (gcc's C++ front end, some 40 MB) for the check that
# slabmq.h compiles as C++ (tests/cxx).
# libraft for cluster mode's pieces and their tests (docs/dependencies.md): 0.22.1, the
# maintained fork, only in bookworm-backports (scripts/backports.sh adds the suite from this
# machine's own mirror); its headers need libuv's, which libraft-dev does not pull in.
test)
    PACKAGES="$PACKAGES clang-tidy chromium python3-prometheus-client g++ libuv1-dev"
    BACKPORTS="libraft-dev"
    ;;
# The peers docs/performance.md compares slabmq with (tools/bench/bench-peers.sh): Redis and
# redis-benchmark, beanstalkd, NATS with JetStream, and hiredis and nats.c for
# slabmq-redischeck and slabmq-natscheck, the official-client idioms that check
# slabmq-peerbench's own clients. About 15 MB.
bench) PACKAGES="$PACKAGES redis-server redis-tools beanstalkd nats-server libhiredis-dev libnats-dev" ;;
*)
    echo "usage: scripts/deps.sh [test|bench]" >&2
    exit 2
    ;;
esac

missing=""
for p in $PACKAGES $BACKPORTS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Debian 12's own libraft-dev (0.15.0) counts as missing: the backports one replaces it
case " $BACKPORTS " in
*" libraft-dev "*)
    pkg-config --atleast-version=0.17 raft 2>/dev/null || case "$missing" in
        *libraft-dev*) ;;
        *) missing="$missing libraft-dev" ;;
        esac
    ;;
esac
if [ -z "$missing" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
if [ -n "$BACKPORTS" ]; then
    "$(dirname "$0")/backports.sh"
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
if [ -n "$BACKPORTS" ]; then
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports $BACKPORTS \
        >/dev/null
fi
