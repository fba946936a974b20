#!/bin/sh
# Install dependencies, build, and start slabmqd in the foreground on its in-memory default
# (127.0.0.1:7654). Extra arguments go to slabmqd, e.g. scripts/run.sh --port 0.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build -DSLABMQ_BUILD_TESTS=OFF
exec build/broker/slabmqd "$@"
