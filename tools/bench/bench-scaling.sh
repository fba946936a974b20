#!/bin/sh
# How slabmq's cost grows: connections, queues, queue depth (docs/performance.md, "Scaling").
# Each row is one slabmq-bench run against a broker it starts itself; 100-byte messages,
# pipelined publishes (window 1024), fetch batches of 1024 acked per batch; the rows of one
# producer spreading its publishes over many queues use 16-byte messages.
#   tools/bench/bench-scaling.sh [BUILD_DIR]
set -eu
build=${1:-build}
bench="$build/tools/bench/slabmq-bench"
broker="$build/broker/slabmqd"
[ -x "$bench" ] && [ -x "$broker" ] || { echo "build first: scripts/build.sh $build" >&2; exit 2; }

# run LABEL ARGS...: print "| LABEL | produce msg/s | consume msg/s |" from --json
run() {
    label=$1
    shift
    out=$("$bench" --spawn "$broker" --broker-arg --max-memory --broker-arg 4GiB \
          --size 100 --ack batch --quiet --json "$@")
    prod=$(printf '%s' "$out" | sed -n 's/.*"produce":{[^}]*"msg_per_s":\([0-9.]*\).*/\1/p')
    cons=$(printf '%s' "$out" | sed -n 's/.*"consume":{[^}]*"msg_per_s":\([0-9.]*\).*/\1/p')
    printf '| %s | %.0f | %.0f |\n' "$label" "${prod:-0}" "${cons:-0}"
}

echo "| connections (producers + consumers, one queue per pair), concurrent, 2,000,000 messages | produce msg/s | consume msg/s |"
echo "|---|---|---|"
for n in 1 5 50 500; do
    run "$((2 * n))" --workload concurrent -n 2000000 -p "$n" -c "$n" --queues "$n"
done
echo
echo "| queues held by the broker, fill then drain 1,000,000 messages on one | fill msg/s | drain msg/s |"
echo "|---|---|---|"
run "1" --workload fill-drain -n 1000000
run "100,001" --workload fill-drain -n 1000000 --idle-queues 100000
echo
echo "| queues one producer publishes to, round-robin (--spread; 16 B, 3,000,000 messages, queues declared first) | produce msg/s | broker CPU us/msg |"
echo "|---|---|---|"
for n in 1 1000 10000 100000; do
    out=$("$bench" --spawn "$broker" --broker-arg --max-memory --broker-arg 4GiB --size 16 \
          --workload fill -n 3000000 --spread "$n" --quiet --json)
    prod=$(printf '%s' "$out" | sed -n 's/.*"produce":{[^}]*"msg_per_s":\([0-9.]*\).*/\1/p')
    cpu=$(printf '%s' "$out" | sed -n 's/.*"produce":{[^}]*"broker_cpu_us_per_msg":\([0-9.]*\).*/\1/p')
    printf '| %s | %.0f | %.3f |\n' "$n" "${prod:-0}" "${cpu:-0}"
done
echo
echo "| messages waiting in the queue | produce msg/s | consume msg/s |"
echo "|---|---|---|"
run "about 1,000 (1 producer + 1 consumer at once, 2,000,000 messages)" --workload concurrent -n 2000000
for n in 100000 1000000 10000000; do
    run "$n at the end of the fill (fill, then drain)" --workload fill-drain -n "$n"
done
