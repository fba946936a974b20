#!/bin/bash
# The latency row of docs/performance.md, measured so that a noisy 2-core machine can still
# answer "which is lower": ROUNDS rounds, each running one paced latency run of every target
# back to back (so all see the same minutes of the machine), then the median and the range
# of p50, p99 and p99.9 per target. Targets:
#   floor         slabmq-floorbench: a relay that only moves bytes, the machine's floor
#   slabmq        slabmq-bench, one consumer with a long-poll FETCH, acking each message
#   slabmq-push   slabmq-bench, one consumer subscribed (SUBSCRIBE, credit 1000), acking each
#   redis-list    slabmq-peerbench: LPUSH each / BLMPOP COUNT 512 (no acknowledgement)
#   redis-stream  slabmq-peerbench: XADD / XREADGROUP BLOCK + XACK
#
#   tools/bench/bench-latency.sh [BUILD_DIR]
# Environment: ROUNDS (5), RATE (45000 msg/s), RUN_SECONDS (6 per run), SIZE (256),
# TARGETS ("floor slabmq slabmq-push redis-list redis-stream"), OUT_DIR (a new temp dir; the
# raw JSON lines are kept there). Redis is installed with apt-get if missing (NO_INSTALL=1:
# fail instead), started on a free loopback port, and stopped by its PID.
set -u -o pipefail

build=${1:-build}
ROUNDS=${ROUNDS:-5}
RATE=${RATE:-45000}
SECONDS_PER_RUN=${RUN_SECONDS:-6}
SIZE=${SIZE:-256}
TARGETS=${TARGETS:-"floor slabmq slabmq-push redis-list redis-stream"}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/bench-latency.XXXXXX)}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$HERE/$build/tools/bench/slabmq-bench"
BROKER="$HERE/$build/broker/slabmqd"
PEERBENCH="$HERE/$build/tools/bench/slabmq-peerbench"
FLOOR="$HERE/$build/tools/bench/slabmq-floorbench"
RESULTS="$OUT_DIR/latency.jsonl"
REDIS_PID=""

die() { echo "bench-latency: $*" >&2; exit 1; }

need="$BENCH $BROKER"
case " $TARGETS " in *" floor "*) need="$need $FLOOR" ;; esac
case " $TARGETS " in *" redis-"*) need="$need $PEERBENCH" ;; esac
for x in $need; do
    [ -x "$x" ] || die "$x missing: build first (scripts/build.sh $build)"
done

case " $TARGETS " in *" redis-"*)
    if ! command -v redis-server >/dev/null; then
        [ "${NO_INSTALL:-0}" = 1 ] && die "redis-server missing (NO_INSTALL=1)"
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends redis-server >&2 ||
            die "apt-get install redis-server failed"
    fi
    REDIS_PORT=$("$PEERBENCH" --free-port) || die "no free port"
    mkdir -p "$OUT_DIR/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$OUT_DIR/redis" --daemonize no >"$OUT_DIR/redis/log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
        kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server did not start"
        sleep 0.1
    done
    ;;
esac

stop_redis() {
    [ -n "$REDIS_PID" ] || return 0
    kill -TERM "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID" 2>/dev/null
    REDIS_PID=""
    rm -rf "$OUT_DIR/redis"
}
trap stop_redis EXIT
trap 'exit 130' INT TERM

# run TARGET ROUND: one latency run; its p50, p99 and p99.9 (µs) appended to RESULTS
run() {
    local t=$1 r=$2 line p50 p99 p999
    case $t in
    floor)
        line=$(timeout 120 "$FLOOR" --json --rate "$RATE" --duration "$SECONDS_PER_RUN" \
            --size "$SIZE") ;;
    slabmq)
        line=$(timeout 120 "$BENCH" --spawn "$BROKER" --quiet --json --workload concurrent \
            --size "$SIZE" --rate "$RATE" -d "$SECONDS_PER_RUN") ;;
    slabmq-push)
        line=$(timeout 120 "$BENCH" --spawn "$BROKER" --quiet --json --workload concurrent \
            --size "$SIZE" --rate "$RATE" -d "$SECONDS_PER_RUN" --subscribe 1000) ;;
    redis-list | redis-stream)
        line=$(timeout 120 "$PEERBENCH" --target "$t" --port "$REDIS_PORT" --depth 1024 \
            --json --workload latency --size "$SIZE" --rate "$RATE" \
            -n "$(awk -v r="$RATE" -v s="$SECONDS_PER_RUN" 'BEGIN { printf "%d", r * s }')" \
            --queue "lat-$t-$r") ;;
    *) die "unknown target $t" ;;
    esac || { echo "bench-latency: $t round $r failed" >&2; return 0; }
    # slabmq-bench and the floor: "latency_us":{...,"p50":x,...}; peerbench: "p50_us":x
    p50=$(printf '%s' "$line" | sed -n 's/.*"p50"*[_us"]*:\([0-9.]*\).*/\1/p')
    p99=$(printf '%s' "$line" | sed -n 's/.*"p99"*[_us"]*:\([0-9.]*\).*/\1/p')
    p999=$(printf '%s' "$line" | sed -n 's/.*"p99\(_9\|9\)"*[_us"]*:\([0-9.]*\).*/\2/p')
    [ -n "$p50" ] && [ -n "$p99" ] && [ -n "$p999" ] ||
        { echo "bench-latency: $t round $r: no percentiles in: $line" >&2; return 0; }
    echo "{\"target\":\"$t\",\"round\":$r,\"p50\":$p50,\"p99\":$p99,\"p99_9\":$p999}" >>"$RESULTS"
}

echo "bench-latency: $ROUNDS rounds of $TARGETS at $RATE msg/s, $SIZE B, $SECONDS_PER_RUN s" \
     "each; raw results in $RESULTS" >&2
for r in $(seq 1 "$ROUNDS"); do
    for t in $TARGETS; do run "$t" "$r"; done
    echo "bench-latency: round $r of $ROUNDS done" >&2
done

# median [min-max] of field F for target T
stat() {
    grep "\"target\":\"$1\"" "$RESULTS" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "%.0f [%.0f-%.0f]", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

echo "| target | runs | p50 µs | p99 µs | p99.9 µs |"
echo "|---|---:|---:|---:|---:|"
for t in $TARGETS; do
    n=$(grep -c "\"target\":\"$t\"" "$RESULTS" 2>/dev/null || echo 0)
    echo "| $t | $n | $(stat "$t" p50) | $(stat "$t" p99) | $(stat "$t" p99_9) |"
done
echo "($RATE msg/s, $SIZE B, $SECONDS_PER_RUN s per run, medians [min-max] of $ROUNDS rounds;" \
     "$(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg))"
