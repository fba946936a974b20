#!/bin/sh
# Instructions the broker spends per message, counted by callgrind (repeatable whatever else
# the machine does): publish, deliver (with acks in batches), what acking with one
# slabmq_ack_async() call per message adds (libslabmq coalesces those calls into shared ACK
# frames, so this is near 0; before it, an ACK frame per message cost ~435), and the drain acking each message as docs/performance.md recommends it (FETCH batch 512,
# and pushed with credit 512). Each figure is the difference between two runs of slabmqd
# under callgrind driven by slabmq-bench over 200,000 16-byte messages, divided by the count.
#   tools/bench/callgrind-hotpath.sh [BUILD_DIR] [COUNT]
set -eu
build=${1:-build}
n=${2:-200000}
bench="$build/tools/bench/slabmq-bench"
broker="$build/broker/slabmqd"
tmp=$(mktemp -d /tmp/slabmq-cg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# instructions WORKLOAD ACK COUNT [BENCH OPTION...]: total Ir of one broker run
instructions() {
    valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$broker" --port 0 \
        >"$tmp/stdout" 2>"$tmp/stderr" &
    pid=$!
    port=""
    for _ in $(seq 1 100); do
        # only a complete line: the port may be half written
        [ -s "$tmp/stdout" ] && [ -z "$(tail -c 1 "$tmp/stdout")" ] &&
            port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/stdout")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "slabmqd did not start" >&2; kill "$pid"; exit 1; }
    if [ "$3" -gt 0 ]; then
        w=$1 a=$2 c=$3
        shift 3
        "$bench" -s "127.0.0.1:$port" --workload "$w" --ack "$a" --size 16 -n "$c" --quiet \
            "$@" >/dev/null
    fi
    kill "$pid"
    wait "$pid" || true
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$tmp/out"
}

idle=$(instructions fill batch 0)
fill=$(instructions fill batch "$n")
# FETCHes one at a time (--fetch-ahead 0), as before read-ahead, unless the line says
batch=$(instructions fill-drain batch "$n" --fetch-ahead 0)
each=$(instructions fill-drain each "$n" --fetch-ahead 0)
fetch512=$(instructions fill-drain each "$n" --fetch-batch 512 --fetch-ahead 0)
ahead512=$(instructions fill-drain each "$n" --fetch-batch 512 --fetch-ahead 1)
push512=$(instructions fill-drain each "$n" --subscribe 512)
echo "slabmqd instructions per 16-byte message ($n messages, callgrind):"
echo "  publish (one PUBLISH frame each, pipelined):      $(( (fill - idle) / n ))"
echo "  deliver, acks in batches of 1024:                 $(( (batch - fill) / n ))"
echo "  acks one call each (extra over batched acks):    $(( (each - batch) / n ))"
echo "  deliver + ack each, FETCH batch 512:              $(( (fetch512 - fill) / n ))"
echo "  deliver + ack each, FETCH batch 512, 1 ahead:     $(( (ahead512 - fill) / n ))"
echo "  deliver + ack each, pushed, credit 512:           $(( (push512 - fill) / n ))"
