#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-peers.sh: the slabmq-bench workloads against the peer brokers, so docs/performance.md
# can give slabmq's figures as ratios to peers measured minutes apart on the same machine.
#
# Installs the peers with apt-get if missing (redis-server, redis-tools, beanstalkd,
# nats-server), starts each on a free 127.0.0.1 port with persistence off, runs every
# workload RUNS times with slabmq-peerbench (targets interleaved within a run so machine
# noise falls on all of them alike), stops the brokers by PID and prints a markdown table of
# medians with the peers' versions. Raw JSON lines and the table are kept in OUT_DIR.
#
#   tools/bench/bench-peers.sh                       everything, defaults below
#   RUNS=5 N=1000000 tools/bench/bench-peers.sh      more runs, more messages
#   TARGETS="redis-list redis-stream" tools/bench/bench-peers.sh
#
# Environment: PEERBENCH (binary; default: build it in BUILD_DIR), BUILD_DIR (build),
# RUNS (3), N (500000 messages per throughput run), DEPTH (1024), LAT_RATES ("45000 10000"
# msg/s), LAT_SECONDS (10 per latency run), TARGETS (redis-list redis-list-batch
# redis-stream beanstalkd nats-js), OUT_DIR (a new temp dir), NO_INSTALL (1: never apt-get).
set -u -o pipefail

RUNS=${RUNS:-3}
N=${N:-500000}
DEPTH=${DEPTH:-1024}
LAT_RATES=${LAT_RATES:-"45000 10000"}
LAT_SECONDS=${LAT_SECONDS:-10}
TARGETS=${TARGETS:-"redis-list redis-list-batch redis-stream beanstalkd nats-js"}
BUILD_DIR=${BUILD_DIR:-build}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/bench-peers.XXXXXX)}
RUN_TIMEOUT=600                       # hard bound on one slabmq-peerbench run, seconds
HERE=$(cd "$(dirname "$0")/../.." && pwd)

declare -A PID PORT DIR
RESULTS="$OUT_DIR/results.jsonl"
CLK_TCK=$(getconf CLK_TCK)

die() { echo "bench-peers: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Setup

install_peers() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    command -v beanstalkd >/dev/null || missing+=(beanstalkd)
    command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "${NO_INSTALL:-0}" = 1 ] && die "missing: ${missing[*]} (NO_INSTALL=1)"
    echo "bench-peers: installing ${missing[*]}" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed"
}

find_peerbench() {
    if [ -n "${PEERBENCH:-}" ]; then
        [ -x "$PEERBENCH" ] || die "PEERBENCH=$PEERBENCH is not executable"
        return 0
    fi
    PEERBENCH="$HERE/$BUILD_DIR/tools/bench/slabmq-peerbench"
    if [ ! -x "$PEERBENCH" ]; then
        { cmake -S "$HERE" -B "$HERE/$BUILD_DIR" >/dev/null &&
          cmake --build "$HERE/$BUILD_DIR" --target slabmq_peerbench -j2 >/dev/null; } >&2 ||
            die "cannot build slabmq_peerbench"
    fi
}

# Wait up to 10 s for 127.0.0.1:$1 to accept connections while process $2 lives.
wait_port() {
    local i
    for i in $(seq 1 100); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# start_broker NAME CMD...: run CMD (with @PORT@ and @DIR@ replaced) in the background.
start_broker() {
    local name=$1 port dir args=() a
    shift
    port=$("$PEERBENCH" --free-port) || die "no free port"
    dir=$(mktemp -d "$OUT_DIR/$name.XXXX")
    for a in "$@"; do a=${a//@PORT@/$port}; args+=("${a//@DIR@/$dir}"); done
    "${args[@]}" >"$dir/log" 2>&1 &
    PID[$name]=$!
    PORT[$name]=$port
    DIR[$name]=$dir
    wait_port "$port" "${PID[$name]}" || { cat "$dir/log" >&2; die "$name did not start"; }
}

# SIGTERM, up to 10 s, then SIGKILL; by PID only.
stop_broker() {
    local pid=${PID[$1]:-} i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "PID[$1]"
    # its scratch dir (logs, NATS store) goes; OUT_DIR keeps only results.jsonl and table.md
    [ -n "${DIR[$1]:-}" ] && rm -rf "${DIR[$1]}"
    unset "DIR[$1]"
}

stop_all() {
    local b
    for b in redis beanstalkd nats; do stop_broker "$b"; done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

start_all() {
    case " $TARGETS " in *" redis"*)
        start_broker redis redis-server --port @PORT@ --bind 127.0.0.1 --save "" \
            --appendonly no --dir @DIR@ --daemonize no --protected-mode yes ;;
    esac
    case " $TARGETS " in *" beanstalkd "*)
        start_broker beanstalkd beanstalkd -l 127.0.0.1 -p @PORT@ ;; # no -b: no binlog
    esac
    case " $TARGETS " in *" nats-js "*)
        # JetStream on; the stream peerbench creates uses memory storage
        start_broker nats "$(command -v nats-server || echo /usr/sbin/nats-server)" \
            -a 127.0.0.1 -p @PORT@ -js -sd @DIR@ ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Runs

broker_of() { case $1 in redis*) echo redis ;; nats-js) echo nats ;; *) echo "$1" ;; esac; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# bench TARGET LABEL RUN PEERBENCH-ARGS...: one run, its JSON line (plus label, run and the
# broker's CPU share over the run's wall time) appended to RESULTS.
bench() {
    local peer=$1 target=$1 label=$2 run=$3 b c0 c1 t0 t1 line cpu extra=()
    shift 3
    b=$(broker_of "$target")
    [ "$target" = redis-list-batch ] && extra=(--pop-batch "$DEPTH") && target=redis-list
    c0=$(cpu_ticks "${PID[$b]}")
    t0=$(date +%s%N)
    line=$(timeout -k 5 "$RUN_TIMEOUT" "$PEERBENCH" --target "$target" --port "${PORT[$b]}" \
        --depth "$DEPTH" --json "${extra[@]}" "$@")
    local rc=$?
    t1=$(date +%s%N)
    c1=$(cpu_ticks "${PID[$b]}")
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        echo "bench-peers: $target $label run $run failed (exit $rc)" >&2
        return 0
    fi
    cpu=$(awk -v t="$((c1 - c0))" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" \
        'BEGIN { printf "%.0f", 100 * t / hz / (ns / 1e9) }')
    echo "${line%\}},\"label\":\"$label\",\"run\":$run,\"peer\":\"$peer\",\"server_cpu_pct\":$cpu}" \
        >>"$RESULTS"
}

run_target() {
    local t=$1 r=$2 q="pb-$1-$2" rate
    bench "$t" produce16 "$r" --workload produce --size 16 -n "$N" --queue "$q-16"
    bench "$t" drain16 "$r" --workload drain --size 16 -n "$N" --queue "$q-16"
    bench "$t" produce256 "$r" --workload produce --size 256 -n "$N" --queue "$q-256"
    bench "$t" drain256 "$r" --workload drain --size 256 -n "$N" --queue "$q-256"
    bench "$t" concurrent256 "$r" --workload concurrent --size 256 -n "$N" --queue "$q-c"
    for rate in $LAT_RATES; do
        bench "$t" "latency$rate" "$r" --workload latency --size 256 --rate "$rate" \
            -n $((rate * LAT_SECONDS)) --queue "$q-l$rate"
    done
    # Streams keep acked entries: free Redis's memory between runs (untimed)
    case $t in redis*) redis-cli -p "${PORT[redis]}" FLUSHALL >/dev/null ;; esac
}

# redis-benchmark's own LPUSH figure, one connection, pipelined DEPTH deep (reference only).
redis_benchmark_ref() {
    local r v
    for r in $(seq 1 "$RUNS"); do
        v=$(timeout -k 5 "$RUN_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "${PORT[redis]}" -c 1 \
            -P "$DEPTH" -n "$N" -t lpush -d 16 --csv 2>/dev/null |
            awk -F'","' '/LPUSH/ { print $2 }')
        [ -n "$v" ] && echo "{\"label\":\"redis-benchmark-lpush16\",\"run\":$r,\"peer\":\"redis-benchmark\",\"msgs_per_s\":$v}" >>"$RESULTS"
        redis-cli -p "${PORT[redis]}" FLUSHALL >/dev/null
    done
}

# ---------------------------------------------------------------------------------------------
# Report

field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# med PEER LABEL FIELD: median of FIELD over the runs.
med() { grep "\"label\":\"$2\"" "$RESULTS" | grep "\"peer\":\"$1\"" | field "$3" | median; }

# 1234567.8 -> 1,234,568; empty -> n/a
fmt_rate() {
    if [ -z "$1" ]; then echo "n/a"; return; fi
    awk -v v="$1" 'BEGIN { printf "%.0f\n", v }' | sed -e ':a' -e 's/\B[0-9]\{3\}\>/,&/' -e 'ta'
}

lat_cell() {
    local p=$1 rate=$2 got p50 p99 p999
    got=$(med "$p" "latency$rate" msgs_per_s)
    [ -n "$got" ] || { echo "n/a"; return; }
    p50=$(med "$p" "latency$rate" p50_us); p99=$(med "$p" "latency$rate" p99_us)
    p999=$(med "$p" "latency$rate" p999_us)
    if awk -v g="$got" -v r="$rate" 'BEGIN { exit !(g < 0.98 * r) }'; then
        printf 'saturated at %s msg/s: backlog grows (p50 %.1f s)' "$(fmt_rate "$got")" \
            "$(awk -v v="$p50" 'BEGIN { print v / 1e6 }')"
    else
        printf '%.0f / %.0f / %.0f' "$p50" "$p99" "$p999"
    fi
}

peer_desc() {
    case $1 in
    redis-list) echo "Redis list (LPUSH; RPOP / BRPOP per message, no acks)" ;;
    redis-list-batch) echo "Redis list (LPUSH; RPOP / BLMPOP COUNT $DEPTH, no acks)" ;;
    redis-stream) echo "Redis Stream (XADD; XREADGROUP COUNT $DEPTH + XACK each)" ;;
    beanstalkd) echo "beanstalkd (put; reserve-with-timeout + delete each)" ;;
    nats-js) echo "NATS JetStream (PUB + PubAck; pull $DEPTH + +ACK each)" ;;
    esac
}

report() {
    local p rate hdr sep
    hdr="| peer | produce 16 B | drain 16 B | produce 256 B | drain 256 B | concurrent 256 B |"
    sep="|---|---:|---:|---:|---:|---:|"
    for rate in $LAT_RATES; do
        hdr="$hdr latency @ $(fmt_rate "$rate")/s p50 / p99 / p99.9 µs |"; sep="$sep---:|"
    done
    echo "### Peers: msg/s (median of $RUNS runs), one producer and one consumer connection"
    echo
    echo "$hdr"
    echo "$sep"
    for p in $TARGETS; do
        printf '| %s | %s | %s | %s | %s | %s |' "$(peer_desc "$p")" \
            "$(fmt_rate "$(med "$p" produce16 msgs_per_s)")" \
            "$(fmt_rate "$(med "$p" drain16 msgs_per_s)")" \
            "$(fmt_rate "$(med "$p" produce256 msgs_per_s)")" \
            "$(fmt_rate "$(med "$p" drain256 msgs_per_s)")" \
            "$(fmt_rate "$(med "$p" concurrent256 msgs_per_s)")"
        for rate in $LAT_RATES; do printf ' %s |' "$(lat_cell "$p" "$rate")"; done
        echo
    done
    if grep -q redis-benchmark "$RESULTS" 2>/dev/null; then
        echo
        echo "Reference: \`redis-benchmark -c 1 -P $DEPTH -t lpush -d 16 -n $N\`:" \
            "$(fmt_rate "$(med redis-benchmark redis-benchmark-lpush16 msgs_per_s)") msg/s (median)."
    fi
    echo
    echo "### Broker CPU during each workload (median %, 100 = one core)"
    echo
    echo "| peer | produce 16 B | drain 16 B | produce 256 B | drain 256 B | concurrent 256 B |$(for rate in $LAT_RATES; do printf ' latency @ %s/s |' "$(fmt_rate "$rate")"; done)"
    echo "$sep"
    for p in $TARGETS; do
        printf '| %s |' "$p"
        for l in produce16 drain16 produce256 drain256 concurrent256; do
            printf ' %s |' "$(med "$p" "$l" server_cpu_pct)"
        done
        for rate in $LAT_RATES; do printf ' %s |' "$(med "$p" "latency$rate" server_cpu_pct)"; done
        echo
    done
    echo
    echo "Versions: $(redis-server --version 2>/dev/null | awk '{ print $1, $2, $3 }');" \
        "$(beanstalkd -v 2>/dev/null); $("$(command -v nats-server || echo /usr/sbin/nats-server)" --version 2>/dev/null)."
    echo "Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(uname -sr)," \
        "loopback TCP; $N messages per throughput run, pipelining depth $DEPTH," \
        "latency runs $LAT_SECONDS s each; $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "Raw results: $RESULTS"
}

main() {
    local r t
    mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
    : >"$RESULTS"
    install_peers
    find_peerbench
    start_all
    for r in $(seq 1 "$RUNS"); do
        for t in $TARGETS; do
            echo "bench-peers: run $r/$RUNS $t" >&2
            run_target "$t" "$r"
        done
    done
    case " $TARGETS " in *" redis"*) redis_benchmark_ref ;; esac
    stop_all
    report | tee "$OUT_DIR/table.md"
}

main "$@"
