#!/bin/bash
# System calls and context switches per message in the latency workload (one producer paced
# at RATE, one consumer), for the broker and each client thread, counted by perf's syscall
# tracepoints: on 2 shared vCPUs every syscall and wake-up is time the other threads wait
# for, so this is the deterministic side of the latency row (docs/performance.md). Targets:
# slabmq (long-poll FETCH), slabmq-push (SUBSCRIBE, credit 1000) and redis-list (LPUSH /
# BLMPOP COUNT 512 through slabmq-peerbench).
#   tools/bench/bench-syscalls.sh [BUILD_DIR]
# Environment: RATE (45000), RUN_SECONDS (4), TARGETS ("slabmq slabmq-push redis-list").
# Needs perf (Debian: linux-perf) and, for redis-list, redis-server.
set -u -o pipefail

build=${1:-build}
RATE=${RATE:-45000}
RUN_SECONDS=${RUN_SECONDS:-4}
TARGETS=${TARGETS:-"slabmq slabmq-push redis-list"}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$HERE/$build/tools/bench/slabmq-bench"
BROKER="$HERE/$build/broker/slabmqd"
PEERBENCH="$HERE/$build/tools/bench/slabmq-peerbench"
TMP=$(mktemp -d /tmp/bench-syscalls.XXXXXX)
SERVER_PID=""
EV=syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev
EV=$EV,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_wait
EV=$EV,syscalls:sys_enter_poll,syscalls:sys_enter_clock_nanosleep,context-switches

die() { echo "bench-syscalls: $*" >&2; exit 1; }
command -v perf >/dev/null || die "perf missing (apt-get install linux-perf)"
for x in "$BENCH" "$BROKER" "$PEERBENCH"; do [ -x "$x" ] || die "$x missing: build first"; done

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}
trap 'stop_server; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# wait_port PORT: up to 10 s for 127.0.0.1:PORT to accept while the server lives
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# per_msg FILE LABEL N: "LABEL  event/msg ..." from a perf stat output
per_msg() {
    awk -v label="$2" -v n="$3" '
        $2 ~ /^syscalls:sys_enter_/ || $2 == "context-switches" {
            name = $2; sub(/^syscalls:sys_enter_/, "", name); gsub(",", "", $1)
            if ($1 + 0 > 0) { out = out sprintf(" %s %.2f", name, $1 / n); tot += ($2 == "context-switches" ? 0 : $1) }
        }
        END { printf "  %-22s syscalls/msg %.2f:%s\n", label, tot / n, out }' "$1"
}

for t in $TARGETS; do
    n=$(awk -v r="$RATE" -v s="$RUN_SECONDS" 'BEGIN { printf "%d", r * s }')
    port=$("$PEERBENCH" --free-port) || die "no free port"
    case $t in
    slabmq | slabmq-push)
        server=("$BROKER" --port "$port")
        extra=()
        [ "$t" = slabmq-push ] && extra=(--subscribe 1000)
        client=("$BENCH" -s "127.0.0.1:$port" --quiet --json --workload concurrent --size 256
                --rate "$RATE" -n "$n" "${extra[@]}") ;;
    redis-list)
        command -v redis-server >/dev/null || die "redis-server missing"
        server=(redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no
                --dir "$TMP" --daemonize no)
        client=("$PEERBENCH" --target redis-list --port "$port" --depth 1024 --json
                --workload latency --size 256 --rate "$RATE" -n "$n") ;;
    *) die "unknown target $t" ;;
    esac
    # each side counted whole, all its threads, by a perf stat that runs it: the server is
    # stopped with SIGTERM by its own PID (perf's child), and perf then writes its counts
    perf stat -e "$EV" -o "$TMP/server.txt" -- "${server[@]}" >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$port" || die "$t did not start"
    perf stat -e "$EV" -o "$TMP/client.txt" -- "${client[@]}" >"$TMP/out.json" ||
        echo "bench-syscalls: $t: the load generator failed" >&2
    kill -TERM "$(pgrep -P "$SERVER_PID")" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
    echo "$t at $RATE msg/s, $n messages:"
    per_msg "$TMP/server.txt" "server" "$n"
    per_msg "$TMP/client.txt" "load generator (all)" "$n"
done
echo "($(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg))"
