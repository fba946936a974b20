#!/bin/sh
# Install libslabmq into a temporary prefix with `cmake --install`, build the examples
# against it both with pkg-config and with find_package(slabmq), then run them against a
# slabmqd started here on a free loopback port and stopped by its PID.
#   check_install.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/slabmq-install.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/slabmq.h"
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n1)

# 1. pkg-config, against the shared library
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc "$src/examples/producer.c" $(pkg-config --cflags --libs slabmq) -Wl,-rpath,"$libdir" \
    -o "$tmp/producer_pc"
# 2. find_package(slabmq)
cmake -S "$src/examples" -B "$tmp/ex" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DCMAKE_BUILD_RPATH="$libdir" >/dev/null
cmake --build "$tmp/ex" >/dev/null

"$build/broker/slabmqd" --port 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
    [ -n "$port" ] && break
    sleep 0.1
done
test -n "$port" || { echo "slabmqd did not start"; cat "$tmp/err"; exit 1; }

"$tmp/producer_pc" 127.0.0.1 "$port" example one two >/dev/null
"$tmp/ex/producer" 127.0.0.1 "$port" example three >/dev/null
out=$(timeout 20 "$tmp/ex/consumer" 127.0.0.1 "$port" example 3)
expected=$(printf 'one\ntwo\nthree')
if [ "$out" != "$expected" ]; then
    echo "consumer printed:"; echo "$out"; exit 1
fi
kill "$pid"
wait "$pid"
pid=""
echo "install check passed"
