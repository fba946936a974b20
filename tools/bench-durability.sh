#!/bin/sh
# Durable publishing against in-memory publishing, side by side in one run (docs/durability.md):
# 4 producers, 256-byte messages, each mode in a broker of its own, RUNS times each,
# interleaved so that the machine's drift hits every mode alike; the median of each.
#   tools/bench-durability.sh [BUILD_DIR] [RUNS] [COUNT]
set -eu
build=${1:-build}
runs=${2:-3}
n=${3:-1000000}
bench="$build/tools/slabmq-bench"
broker="$build/broker/slabmqd"
tmp=$(mktemp -d /tmp/slabmq-durbench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# one MODE: prints msg/s
one() {
    rm -rf "$tmp/data"
    case "$1" in
    memory) args="" ;;
    *) args="--broker-arg=--durability --broker-arg=sqlite --broker-arg=--data-dir \
             --broker-arg=$tmp/data --confirm $1" ;;
    esac
    # shellcheck disable=SC2086
    "$bench" --spawn "$broker" $args --workload fill -p 4 --queues 4 --size 256 -n "$n" \
        --json --quiet | sed -n 's/.*"produce":{[^}]*"msg_per_s":\([0-9.]*\).*/\1/p'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for mode in memory written synced; do : >"$tmp/$mode"; done
for r in $(seq 1 "$runs"); do
    for mode in memory written synced; do
        one "$mode" >>"$tmp/$mode"
    done
done
mem=$(median <"$tmp/memory")
echo "4 producers, 256-byte messages, $n messages, median of $runs runs:"
for mode in memory written synced; do
    m=$(median <"$tmp/$mode")
    printf '  %-28s %10.0f msg/s  %.2f of in-memory\n' \
        "$( [ $mode = memory ] && echo 'in memory (no durability)' || echo "durable, confirmed $mode")" \
        "$m" "$(echo "$m $mem" | awk '{print $1 / $2}')"
done
