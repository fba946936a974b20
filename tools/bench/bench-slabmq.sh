#!/bin/sh
# The five workloads of docs/performance.md's peer table, against slabmq: each run RUNS times
# (default 3) on a broker slabmq-bench starts itself, printing the median. Pair it with
# tools/bench/bench-peers.sh in the same session: absolute figures drift on shared machines.
#   tools/bench/bench-slabmq.sh [BUILD_DIR] [RUNS]
set -eu
build=${1:-build}
runs=${2:-3}
bench="$build/tools/bench/slabmq-bench"
broker="$build/broker/slabmqd"
[ -x "$bench" ] && [ -x "$broker" ] || { echo "build first: scripts/build.sh $build" >&2; exit 2; }

# field JSON SECTION KEY: a number from slabmq-bench --json
field() {
    printf '%s\n' "$1" | sed -n "s/.*\"$2\":{[^}]*\"$3\":\([0-9.]*\).*/\1/p"
}

# median of the numbers on stdin
median() {
    sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# measure SECTION KEY ARGS...: median of SECTION.KEY over the runs
measure() {
    section=$1
    key=$2
    shift 2
    i=0
    while [ "$i" -lt "$runs" ]; do
        out=$("$bench" --spawn "$broker" --quiet --json "$@")
        field "$out" "$section" "$key"
        i=$((i + 1))
    done | median
}

echo "slabmq $("$broker" --version | head -n1), $runs runs each, medians"
printf '| produce 16-byte messages, one connection (msg/s) | %.0f |\n' \
    "$(measure produce msg_per_s --workload fill --size 16 -n 2000000)"
printf '| drain those, acking each (msg/s) | %.0f |\n' \
    "$(measure consume msg_per_s --workload fill-drain --size 16 -n 2000000 --ack each)"
printf '| drain those, pushed (SUBSCRIBE, credit 4096), acking each (msg/s) | %.0f |\n' \
    "$(measure consume msg_per_s --workload fill-drain --size 16 -n 2000000 --ack each \
       --subscribe 4096)"
printf '| drain those, one ack per fetched batch (msg/s) | %.0f |\n' \
    "$(measure consume msg_per_s --workload fill-drain --size 16 -n 2000000 --ack batch)"
printf '| produce 256-byte messages (msg/s) | %.0f |\n' \
    "$(measure produce msg_per_s --workload fill --size 256 -n 1000000)"
printf '| one producer + one consumer at once, 256 B (msg/s) | %.0f |\n' \
    "$(measure consume msg_per_s --workload concurrent --size 256 -n 4000000 --ack batch)"
# latency LABEL ARGS...: the median p50 / p99 / p99.9 of RUNS paced runs (one run gives all
# three); tools/bench/bench-latency.sh alternates these with Redis and the machine's floor
latency() {
    label=$1
    shift
    lat=""
    i=0
    while [ "$i" -lt "$runs" ]; do
        lat="$lat$("$bench" --spawn "$broker" --quiet --json --workload concurrent --size 256 \
                  --rate 45000 -d 10 "$@")
"
        i=$((i + 1))
    done
    for p in p50 p99 p99_9; do
        eval "lat_$p=\$(printf '%s' \"\$lat\" | while read -r l; do field \"\$l\" latency_us $p; done | median)"
    done
    printf '| latency at 45,000 msg/s, 256 B, %s: p50 / p99 / p99.9 (us) | %.0f / %.0f / %.0f |\n' \
        "$label" "$lat_p50" "$lat_p99" "$lat_p99_9"
}
latency "long-poll FETCH"
latency "pushed (SUBSCRIBE, credit 1000)" --subscribe 1000
