#!/bin/sh
# Durable publishing against in-memory publishing, side by side in one run (docs/durability.md):
# 4 producers, 256-byte messages, each mode in a broker of its own, RUNS times each,
# interleaved so that the machine's drift hits every mode alike; the median of each.
# Besides msg/s, the broker's CPU time per message, per thread (the event loop, and the
# store's writer thread), from /proc, and the load generator's (slabmq-bench: its children
# time from the shell's `times`): less at the mercy of other work on the machine than the
# rate, so it shows what a change did to each side. The last column is the in-memory
# mode's CPU per message (broker and bench together) over this mode's: the ratio of the
# rates if both were bound by CPU alone. Neither quite is (each producer waits for its
# window's confirmations, and a confirmation at 'written' waits for a commit), so the
# rates' ratio can come out above or below it.
#   tools/bench/bench-durability.sh [BUILD_DIR] [RUNS] [COUNT]
set -eu
build=${1:-build}
runs=${2:-3}
n=${3:-1000000}
bench="$build/tools/bench/slabmq-bench"
broker="$build/broker/slabmqd"
tmp=$(mktemp -d /tmp/slabmq-durbench.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
tck=$(getconf CLK_TCK)

# CPU seconds of one thread of the broker: utime + stime of /proc/PID/task/TID/stat
cpu_of() {
    sed 's/^.*) //' "$1" | awk -v t="$tck" '{ printf "%.3f", ($12 + $13) / t }'
}

# one MODE: appends "msg/s loop_us writer_us" (per message) to $tmp/MODE
one() {
    rm -rf "$tmp/data"
    : >"$tmp/log"
    case "$1" in
    memory) args="" conf="" ;;
    *) args="--durability sqlite --data-dir $tmp/data" conf="--confirm $1" ;;
    esac
    # shellcheck disable=SC2086
    "$broker" --port 0 --log-level warn $args >"$tmp/log" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 1 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/log" || true)
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "slabmqd did not start:" >&2; cat "$tmp/log" >&2; exit 1; }
    times >"$tmp/t0" # in this shell: in a pipe or $(...) it would count a subshell's children
    # shellcheck disable=SC2086
    rate=$("$bench" -s "127.0.0.1:$port" $conf --workload fill -p 4 --queues 4 --size 256 \
        -n "$n" --json --quiet | sed -n 's/.*"produce":{[^}]*"msg_per_s":\([0-9.]*\).*/\1/p')
    times >"$tmp/t1"
    gen=$(echo "$(child_cpu "$tmp/t1") $(child_cpu "$tmp/t0")" | awk '{print $1 - $2}')
    loop=0 writer=0
    for t in /proc/"$pid"/task/*; do
        if [ "${t##*/}" = "$pid" ]; then loop=$(cpu_of "$t/stat"); else writer=$(cpu_of "$t/stat"); fi
    done
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
    echo "$rate $loop $writer $gen" |
        awk -v n="$n" '{ printf "%s %.3f %.3f %.3f\n", $1, $2 * 1e6 / n, $3 * 1e6 / n, $4 * 1e6 / n }' \
        >>"$tmp/$2"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# CPU seconds (user + system) of the shell's reaped children in FILE, the output of
# `times`: its second line, "1m2.345s 0m0.678s"
child_cpu() {
    tail -n 1 "$1" | tr 'ms' '  ' |
        awk '{ printf "%.3f", $1 * 60 + $2 + $3 * 60 + $4 }'
}

for mode in memory written synced; do : >"$tmp/$mode"; done
for _ in $(seq 1 "$runs"); do
    for mode in memory written synced; do
        one "$mode" "$mode"
    done
done
mem=$(cut -d' ' -f1 "$tmp/memory" | median)
echo "4 producers, 256-byte messages, $n messages, median of $runs runs:"
echo "                                                  CPU us per message: loop, writer, bench; CPU ratio"
# total CPU per message of a run: loop + writer + bench
total() { awk '{ print $2 + $3 + $4 }' "$tmp/$1" | median; }
memcpu=$(total memory)
for mode in memory written synced; do
    m=$(cut -d' ' -f1 "$tmp/$mode" | median)
    w=$(cut -d' ' -f3 "$tmp/$mode" | median | awk '{printf "%.2f", $1}')
    printf '  %-28s %10.0f msg/s  %.2f of in-memory  %.2f  %s  %.2f;  %.2f\n' \
        "$( [ $mode = memory ] && echo 'in memory (no durability)' || echo "durable, confirmed $mode")" \
        "$m" "$(echo "$m $mem" | awk '{print $1 / $2}')" \
        "$(cut -d' ' -f2 "$tmp/$mode" | median)" "$( [ $mode = memory ] && echo ' -  ' || echo "$w")" \
        "$(cut -d' ' -f4 "$tmp/$mode" | median)" "$(echo "$memcpu $(total "$mode")" | awk '{print $1 / $2}')"
done
