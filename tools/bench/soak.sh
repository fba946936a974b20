#!/bin/sh
# Soak test (not part of the suite: it runs as long as it is told to). Starts a slabmqd on
# 127.0.0.1 (port 0) and runs a mixed load against it for a duration (default 30 minutes):
#   steady  slabmq-bench, 8 producers and 8 consumers on 8 queues at a fixed rate (default
#           20,000 msg/s of 256 bytes), verified, restarted every 5 minutes;
#   cycles  slabmq-bench fill-drain of about 32 MiB, message sizes cycling 100 B, 2 KB,
#           20 KB, 200 KB (slab classes and I/O buffers of every size), verified;
#   churn   the slabmq CLI on short-lived queues: declare with a short visibility timeout,
#           delivery limit and TTL, publish lines, delayed, priority, duplicate and expiring
#           messages, a subscriber killed (SIGKILL) with messages in flight, consume, dead
#           letters browsed and moved back, delete.
# Every INTERVAL seconds it samples the broker's resident set, memory_used (STATS), open
# descriptors (/proc/PID/fd) and connections into soak.csv (with, for reference, the
# messages held and the pools the broker keeps on purpose: idle I/O buffers and the empty
# slab pages it keeps resident, docs/memory.md). At the end it stops the load,
# waits for the broker to be idle, stops the broker (which must exit 0), and reports the
# first, last and largest value of each, and whether each stayed flat: its largest value
# (median, for descriptors and connections) over the last tenth of the run within 10% of the
# same over the first tenth after the warm-up; and whether the broker, idle again, has the
# descriptors it had before the load, no connection and no message.
# Exit status 0 when everything stayed flat and no load step failed, 1 otherwise.
# The figures of two 30-minute runs are in docs/testing.md, section "Soak".
#
#   tools/bench/soak.sh [-b BUILD_DIR] [-d SECONDS] [-i SECONDS] [-w SECONDS] [-r MSG_PER_S] [-o DIR]
#     -b  build directory (default build)         -d  duration (default 1800)
#     -i  sampling interval (default 10)          -w  warm-up (default 120, at most -d / 5)
#     -r  steady rate (default 20000)             -o  output directory (default a new temp dir)
set -eu
build=build
duration=1800
interval=10
warmup=
rate=20000
out=
while getopts b:d:i:w:r:o:h opt; do
    case $opt in
    b) build=$OPTARG ;;
    d) duration=$OPTARG ;;
    i) interval=$OPTARG ;;
    w) warmup=$OPTARG ;;
    r) rate=$OPTARG ;;
    o) out=$OPTARG ;;
    *) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[ -n "$warmup" ] || warmup=$((duration / 5 < 120 ? duration / 5 : 120))
broker="$build/broker/slabmqd"
bench="$build/tools/bench/slabmq-bench"
cli="$build/tools/cli/slabmq"
for f in "$broker" "$bench" "$cli"; do
    [ -x "$f" ] || { echo "soak: $f missing; build first: scripts/build.sh $build" >&2; exit 2; }
done
[ -n "$out" ] || out=$(mktemp -d /tmp/slabmq-soak.XXXXXX)
mkdir -p "$out"
csv="$out/soak.csv"
# created here: a background job opens its redirections only after it has started
for f in failures broker.out broker.err steady.jsonl cycles.jsonl; do : > "$out/$f"; done

# ---- the broker -------------------------------------------------------------------------

"$broker" --bind 127.0.0.1 --port 0 --log-level warn > "$out/broker.out" 2> "$out/broker.err" &
broker_pid=$!
loops=
cleanup() {
    for p in $loops; do kill -TERM "$p" 2>/dev/null || true; done
    kill -TERM "$broker_pid" 2>/dev/null || true
}
trap 'cleanup; exit 1' INT TERM
trap cleanup EXIT
port=
i=0
while [ -z "$port" ] && [ "$i" -lt 100 ]; do
    port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$out/broker.out")
    [ -n "$port" ] || sleep 0.1
    i=$((i + 1))
done
[ -n "$port" ] || { echo "soak: slabmqd did not start:" >&2; cat "$out/broker.err" >&2; exit 1; }
server=127.0.0.1:$port
mq() { "$cli" -s "$server" "$@"; }

# ---- sampling ---------------------------------------------------------------------------

start=$(date +%s)
now() { echo $(($(date +%s) - start)); }

# stat JSON NAME: one number of `slabmq --json stats`
stat() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }

# One CSV line: seconds since the start, RSS KiB, memory_used, fds, connections, messages,
# pools (bytes). The sampler's own STATS connection is not counted in fds and connections.
sample() {
    js=$(mq --json stats) || { echo "soak: STATS failed at $(now) s" >> "$out/failures"; return; }
    rss=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$broker_pid/status")
    fds=$(ls "/proc/$broker_pid/fd" | wc -l)
    owned=$(printf '%s\n' "$js" | grep -o '"slab\.[0-9]*\.pages":[0-9]*' | cut -d: -f2 \
            | awk '{s += $1} END {print s + 0}')
    pools=$(($(stat "$js" reservoir_idle_bytes) \
             + ($(stat "$js" slab_pages_resident) - owned) * $(stat "$js" slab_page_size)))
    conns=$(($(stat "$js" connections) - 1))
    echo "$(now),$rss,$(stat "$js" memory_used),$((fds - 1)),$conns,$(stat "$js" messages),$pools"
}

# ---- the load ---------------------------------------------------------------------------

end=$((start + duration))
left() { echo $((end - $(date +%s))); }
fail() { echo "$*" >> "$out/failures"; }

# Each loop runs its commands as children it can stop by PID when told to (TERM), and stops
# by itself at the end time.
child=
run() { "$@" & child=$!; wait "$child"; }
loop_traps() {
    trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi; exit 0' TERM INT
}

steady() {
    loop_traps
    while [ "$(left)" -gt 10 ]; do
        d=$(left); [ "$d" -le 300 ] || d=300
        run "$bench" -s "$server" --workload concurrent -p 8 -c 8 --queues 8 --size 256 \
            --rate "$rate" -d "$d" --verify --quiet --json --queue-prefix soak.steady \
            >> "$out/steady.jsonl" || fail "steady: slabmq-bench exit $? at $(now) s"
    done
}

cycles() {
    loop_traps
    n=0
    while [ "$(left)" -gt 30 ]; do
        case $((n % 4)) in 0) size=100 ;; 1) size=2000 ;; 2) size=20000 ;; *) size=200000 ;; esac
        count=$((33554432 / size)); [ "$count" -le 100000 ] || count=100000
        run "$bench" -s "$server" --workload fill-drain -p 2 -c 2 --queues 2 -n "$count" \
            --size "$size" --ack batch --verify --quiet --json --queue-prefix soak.fd \
            >> "$out/cycles.jsonl" || fail "cycles: slabmq-bench exit $? at $(now) s (size $size)"
        n=$((n + 1))
        sleep 5
    done
}

# must CMD...: a CLI step that has to succeed
must() { run "$@" > /dev/null || fail "churn: '$*' exit $? at $(now) s"; }
# may CMD...: a CLI step whose outcome depends on timing (empty queue, nothing to move)
may() { run "$@" > /dev/null 2>&1 || true; }

churn() {
    loop_traps
    n=0
    while [ "$(left)" -gt 10 ]; do
        q=soak.churn.$((n % 10))
        must mq declare "$q" --visibility 500 --max-deliveries 2 --ttl 60000
        seq 1 200 | sed 's/^/line /' > "$out/churn.in"
        run "$cli" -s "$server" publish "$q" - < "$out/churn.in" > /dev/null \
            || fail "churn: publish - exit $? at $(now) s"
        must mq publish "$q" later --delay 300
        must mq publish "$q" urgent --priority 9
        must mq publish "$q" once --id "once-$n"
        must mq publish "$q" once --id "once-$n"
        must mq publish "$q" brief --ttl 100
        # a consumer that dies holding messages: they come back, deliveries counted
        may timeout -s KILL 0.3 "$cli" -s "$server" subscribe "$q" --credit 50
        may mq consume "$q" -n 1000 --wait 800
        may mq dlq "$q"
        may mq move "$q.dlq" "$q"
        may mq consume "$q" -n 1000 --wait 200
        must mq delete "$q"
        may mq delete "$q.dlq"
        n=$((n + 1))
        sleep 1
    done
}

sample > /dev/null # the first STATS creates the sampler's reservoir buffers
before=$(sample)
echo "elapsed_s,rss_kb,memory_used,fds,connections,messages,pools" > "$csv"
echo "$before" >> "$csv"
steady & loops="$loops $!"
cycles & loops="$loops $!"
churn & loops="$loops $!"
echo "soak: slabmqd pid $broker_pid on $server, $duration s, sampling every $interval s" \
     "into $csv" >&2
while [ "$(left)" -gt 0 ]; do
    sleep "$interval"
    sample >> "$csv"
done

# ---- the end: load stopped, broker idle, broker stopped ---------------------------------

for p in $loops; do
    i=0
    while kill -0 "$p" 2>/dev/null && [ "$i" -lt 600 ]; do sleep 0.5; i=$((i + 1)); done
    kill -0 "$p" 2>/dev/null && { fail "a load loop did not stop in 300 s"; kill -TERM "$p"; }
    wait "$p" 2>/dev/null || true
done
loops=
i=0
after=$(sample)
while [ "$(echo "$after" | cut -d, -f5)" != 0 ] && [ "$i" -lt 30 ]; do
    sleep 1
    after=$(sample)
    i=$((i + 1))
done
kill -TERM "$broker_pid"
i=0
while kill -0 "$broker_pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$broker_pid" 2>/dev/null; then
    kill -KILL "$broker_pid"
    fail "slabmqd did not stop within 10 s of SIGTERM"
fi
broker_status=0
wait "$broker_pid" || broker_status=$?
[ "$broker_status" = 0 ] || fail "slabmqd exited with status $broker_status"

# ---- the report -------------------------------------------------------------------------

steady_runs=$(grep -c '"ok":true' "$out/steady.jsonl" || true)
cycle_runs=$(grep -c '"ok":true' "$out/cycles.jsonl" || true)
steady_msgs=$(sed -n 's/.*"consume":{"messages":\([0-9]*\).*/\1/p' "$out/steady.jsonl" \
              | awk '{s += $1} END {print s + 0}')
cycle_msgs=$(sed -n 's/.*"consume":{"messages":\([0-9]*\).*/\1/p' "$out/cycles.jsonl" \
             | awk '{s += $1} END {print s + 0}')
echo "soak: $duration s on $server; steady: $steady_runs runs, $steady_msgs messages;" \
     "fill-drain: $cycle_runs runs, $cycle_msgs messages; results in $out"
echo "idle before the load: $before"
echo "idle after the load:  $after"
echo "  (elapsed_s,rss_kb,memory_used,fds,connections,messages,pools)"
# Flat: a series' statistic over the last tenth of the run within 10% (plus one, for the small
# counts) of the same over the first tenth after the warm-up. RSS and memory_used follow the
# biggest fill-drain cycle, so their statistic is the window's largest value; descriptors and
# connections follow which load steps happen to be connected when a sample is taken, so
# theirs is the window's median.
flat=$(awk -F, -v warm="$warmup" -v tol=0.10 '
    function stat_of(a, k, median,   i, j, x) {
        for (i = 2; i <= k; i++) {
            x = a[i]
            for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]
            a[j + 1] = x
        }
        return k == 0 ? 0 : median ? a[int((k + 1) / 2)] : a[k]
    }
    NR == 1 { for (i = 2; i <= NF; i++) name[i] = $i; next }
    { t[NR] = $1; for (i = 2; i <= NF; i++) v[NR, i] = $i; n = NR }
    END {
        last = t[n]; win = (last - warm) / 10
        if (win < 1) win = 1
        printf "%-12s %10s %10s %10s %10s %10s  %s\n", "", "first", "last", "max", \
               "warm-up", "end", "flat"
        bad = 0
        for (i = 2; i <= 5; i++) {
            max = 0; nr = 0; ne = 0
            split("", ref); split("", fin)
            for (r = 2; r <= n; r++) {
                x = v[r, i] + 0
                if (x > max) max = x
                if (t[r] >= warm && t[r] <= warm + win) ref[++nr] = x
                if (t[r] >= last - win) fin[++ne] = x
            }
            a = stat_of(ref, nr, i >= 4); b = stat_of(fin, ne, i >= 4)
            ok = b <= a * (1 + tol) + (i >= 4 ? 1 : 0)
            if (!ok) bad = 1
            printf "%-12s %10d %10d %10d %10d %10d  %s\n", name[i], v[2, i], v[n, i], max, \
                   a, b, ok ? "yes" : "NO"
        }
        print "(warm-up, end: the largest value of the first tenth after the warm-up and of"
        print " the last tenth, for rss_kb and memory_used; the median, for fds and connections)"
        exit bad
    }' "$csv") && flat_ok=1 || flat_ok=0
echo "$flat"
# idle again: the descriptors the broker had before the load, no connection, no message
fds0=$(echo "$before" | cut -d, -f4)
fds1=$(echo "$after" | cut -d, -f4)
if [ "$fds1" = "$fds0" ] && [ "$(echo "$after" | cut -d, -f5,6)" = "0,0" ]; then
    echo "idle again: $fds1 descriptors as before the load, no connection, no message: yes"
else
    echo "idle again: NO ($fds0 descriptors before the load, after: $after)"
    flat_ok=0
fi
fails=$(wc -l < "$out/failures")
if [ "$fails" -gt 0 ]; then
    echo "load failures ($fails):"
    head -20 "$out/failures"
fi
trap - EXIT
if [ "$flat_ok" = 1 ] && [ "$fails" = 0 ]; then
    echo "soak: flat, no failures"
    exit 0
fi
echo "soak: NOT flat or failures"
exit 1
