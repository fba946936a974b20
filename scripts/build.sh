#!/bin/sh
# Configure and build one tree: scripts/build.sh BUILD_DIR [cmake options...]
set -eu
dir=${1:-build}
shift || true
cmake -S "$(dirname "$0")/.." -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
