#!/bin/sh
# Instructions the client library spends per drained message, counted by callgrind: a
# broker (not under callgrind) is filled with COUNT messages of SIZE bytes, then one
# slabmq-bench drain runs under callgrind, acking each; the figure is its total over COUNT
# (connection setup included: under 0.1% at 500,000 messages).
#   tools/bench/callgrind-client.sh [BUILD_DIR] [COUNT] [SIZE] [fetch|subscribe] [BATCH] [AHEAD]
# AHEAD: FETCHes kept ahead (slabmq-bench --fetch-ahead; default its default, 1).
set -eu
build=${1:-build}
n=${2:-500000}
size=${3:-16}
mode=${4:-fetch}
batch=${5:-512}
ahead=${6:-}
bench="$build/tools/bench/slabmq-bench"
broker="$build/broker/slabmqd"
tmp=$(mktemp -d /tmp/slabmq-cgc.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

"$broker" --port 0 --max-memory 2GiB >"$tmp/stdout" 2>"$tmp/stderr" &
pid=$!
port=""
for _ in $(seq 1 100); do
    [ -s "$tmp/stdout" ] && [ -z "$(tail -c 1 "$tmp/stdout")" ] &&
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/stdout")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "slabmqd did not start" >&2; exit 1; }
"$bench" -s "127.0.0.1:$port" --workload fill --size "$size" -n "$n" --quiet \
    --queue-prefix cg >/dev/null
if [ "$mode" = subscribe ]; then
    how="--subscribe $batch"
else
    how="--fetch-batch $batch${ahead:+ --fetch-ahead $ahead}"
fi
# shellcheck disable=SC2086 # $how is two words
valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bench" -s "127.0.0.1:$port" \
    --workload drain --size "$size" -n "$n" $how --ack each --quiet --queue-prefix cg \
    >/dev/null 2>"$tmp/vg"
kill "$pid"
wait "$pid" || true
pid=""
total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$tmp/out")
echo "client instructions per message ($n x $size B, $mode $batch${ahead:+, $ahead ahead}, ack each): $((total / n))"
if [ -n "${CG_KEEP:-}" ]; then
    cp "$tmp/out" "$CG_KEEP"
fi
