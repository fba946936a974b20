#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench-peers.sh: the slabmq-bench workloads against the peer brokers, so docs/performance.md
# can give slabmq's figures as ratios to peers measured minutes apart on the same machine.
#
# Installs the peers with apt-get if missing (redis-server, redis-tools, beanstalkd,
# nats-server, libhiredis-dev), starts each on a free 127.0.0.1 port with persistence off,
# runs every workload RUNS times with slabmq-peerbench (targets interleaved within a run so
# machine noise falls on all of them alike), stops the brokers by PID and prints markdown
# tables of medians (min-max) with the idiom each target is driven with, the peers' versions
# and the load average. Raw JSON lines and the tables are kept in OUT_DIR.
#
# Every target uses the same window (DEPTH messages unconfirmed, or asked for and not yet
# received) and consumer batch (BATCH) and the fastest idiom its users would pick; the
# one-per-message idioms are there only as labelled references (redis-list-1). slabmq's
# own targets (slabmq, slabmq-push, slabmq-batch; slabmq-fetch1 for reference) run slabmq-bench against a slabmqd from
# BUILD_DIR in the same repetitions, so every ratio comes from alternated runs.
#
#   tools/bench/bench-peers.sh [MODE...]      MODE: table (default), check, natscheck,
#                                             spread, pairs
#     table   produce / drain at 16 and 256 B, concurrent 256 B, latency, every target
#     check   peerbench's Redis client against slabmq-redischeck (hiredis) and redis-benchmark
#             on the same Redis, produce and drain at 16 and 256 B, alternated
#     natscheck peerbench's nats-js against slabmq-natscheck (nats.c, with SendAsap and with
#             its flusher) on the same nats-server, produce and drain at 16 and 256 B
#     spread  redis-list: one producer round-robin over SPREADS lists, then drain them
#     pairs   PAIRS producer/consumer pairs at once, each on its own queue, 256 B,
#             against PAIR_TARGETS: total msg/s and broker CPU us per message
#   RUNS=5 N=1000000 tools/bench/bench-peers.sh table check
#   TARGETS="redis-list redis-stream" tools/bench/bench-peers.sh
#
# Environment: PEERBENCH (binary; default: build it in BUILD_DIR), REDISCHECK, NATSCHECK
# (likewise),
# BUILD_DIR (build), RUNS (3), N (1000000 messages per throughput run), DEPTH (1024),
# BATCH (512), LAT_RATES ("45000 10000" msg/s), LAT_SECONDS (10 per latency run), TARGETS
# (slabmq slabmq-push slabmq-batch redis-list redis-list-lpush1 redis-stream beanstalkd
# nats-js; also redis-list-1, and slabmq-fetch1: slabmq's FETCH without read-ahead), BENCH and SLABMQD (slabmq-bench and slabmqd; default: BUILD_DIR's),
# SPREADS ("1 1000 100000"), PAIRS ("1 2 4 8"), PAIR_TARGETS (redis-list nats-js),
# OUT_DIR (a new temp dir), NO_INSTALL (1: never apt-get), FETCH_AHEAD (slabmq FETCH
# consumers' --fetch-ahead; default slabmq-bench's: 1, with --spread 15; 0: one FETCH at a
# time).
set -u -o pipefail

RUNS=${RUNS:-3}
N=${N:-1000000}
DEPTH=${DEPTH:-1024}
BATCH=${BATCH:-512}
LAT_RATES=${LAT_RATES:-"45000 10000"}
LAT_SECONDS=${LAT_SECONDS:-10}
TARGETS=${TARGETS:-"slabmq slabmq-push slabmq-batch redis-list redis-list-lpush1 redis-stream beanstalkd nats-js"}
SPREADS=${SPREADS:-"1 1000 100000"}
PAIRS=${PAIRS:-"1 2 4 8"}
PAIR_TARGETS=${PAIR_TARGETS:-"slabmq redis-list nats-js"}
FETCH_AHEAD=${FETCH_AHEAD:-}
MODES=${*:-table}
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
    pkg-config --exists hiredis 2>/dev/null || missing+=(libhiredis-dev)
    pkg-config --exists libnats 2>/dev/null || missing+=(libnats-dev)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "${NO_INSTALL:-0}" = 1 ] && die "missing: ${missing[*]} (NO_INSTALL=1)"
    echo "bench-peers: installing ${missing[*]}" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed"
}

# find_tool VAR TARGET NAME: the binary in $VAR, or TARGET built in BUILD_DIR (always
# rebuilt, so a stale binary never measures old code).
find_tool() {
    local var=$1 target=$2 name=$3 path=${4:-$3}
    if [ -n "${!var:-}" ]; then
        [ -x "${!var}" ] || die "$var=${!var} is not executable"
        return 0
    fi
    printf -v "$var" '%s' "$HERE/$BUILD_DIR/tools/bench/$path"
    { cmake -S "$HERE" -B "$HERE/$BUILD_DIR" >/dev/null &&
      cmake --build "$HERE/$BUILD_DIR" --target "$target" -j2 >/dev/null; } >&2 ||
        die "cannot build $target"
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
    for b in slabmq redis beanstalkd nats; do stop_broker "$b"; done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }
wants_mode() { has "$MODES" "$1"; }

# The brokers the chosen modes run against.
start_all() {
    local need=""
    wants_mode table && need="$need $TARGETS"
    wants_mode pairs && need="$need $PAIR_TARGETS"
    wants_mode natscheck && need="$need nats-js"
    { wants_mode check || wants_mode spread; } && need="$need redis-list"
    wants_mode spread && need="$need slabmq"
    case " $need " in *" slabmq"*)
        # in memory, as the peers; 4 GiB holds every fill of the table (16 M x 256 B at most)
        start_broker slabmq "$SLABMQD" --port @PORT@ --max-memory 4GiB ;;
    esac
    case " $need " in *" redis"*)
        start_broker redis redis-server --port @PORT@ --bind 127.0.0.1 --save "" \
            --appendonly no --dir @DIR@ --daemonize no --protected-mode yes ;;
    esac
    has "$need" beanstalkd && start_broker beanstalkd beanstalkd -l 127.0.0.1 -p @PORT@ # no -b: no binlog
    # JetStream on; the stream peerbench creates uses memory storage
    has "$need" nats-js && start_broker nats \
        "$(command -v nats-server || echo /usr/sbin/nats-server)" -a 127.0.0.1 -p @PORT@ -js -sd @DIR@
    return 0
}

# ---------------------------------------------------------------------------------------------
# Runs

broker_of() { case $1 in slabmq*) echo slabmq ;; redis*) echo redis ;; nats-js) echo nats ;; *) echo "$1" ;; esac; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
flush_redis() { redis-cli -p "${PORT[redis]}" FLUSHALL >/dev/null; }

# The peerbench options of a target: the peer and the idiom it is driven with.
target_args() {
    case $1 in
    redis-list) echo "--target redis-list --batch $BATCH" ;;          # LPUSH of BATCH values
    redis-list-lpush1) echo "--target redis-list --batch $BATCH --push-values 1" ;;
    redis-list-1) echo "--target redis-list --batch 1 --push-values 1" ;;
    *) echo "--target $1 --batch $BATCH" ;;
    esac
}

# One line per target: the idiom it is driven with (docs/performance.md states it).
idiom() {
    local inflight=$((DEPTH / BATCH))
    case $1 in
    slabmq) echo "slabmq: one PUBLISH per message, pipelined ($DEPTH unconfirmed, each confirmed with its id); FETCH of $BATCH (long-poll when concurrent) with ${FETCH_AHEAD:-1} more kept ahead (slabmq_client_set_fetch_ahead), one slabmq_ack_async() per message (acks leave with the next FETCH)" ;;
    slabmq-push) echo "slabmq pushed: SUBSCRIBE with credit $DEPTH (the window: as many in flight as the others ask for), slabmq_receive(), one slabmq_ack_async() per message; produces as slabmq" ;;
    slabmq-fetch1) echo "slabmq, one FETCH at a time (reference only): FETCH of $BATCH without read-ahead (--fetch-ahead 0), acks as slabmq; its produce rows are slabmq's" ;;
    slabmq-batch) echo "slabmq: PUBLISH_BATCH of $BATCH messages a frame, pipelined ($DEPTH unconfirmed); pops as slabmq" ;;
    redis-list) echo "Redis list: LPUSH of $BATCH values a command, pipelined ($DEPTH messages unconfirmed; the latency producer: one LPUSH per message); drain: RPOP key COUNT $BATCH, concurrent and latency: BLMPOP 1 ... COUNT $BATCH, $inflight requests in flight; no acks (the pop settles)" ;;
    redis-list-lpush1) echo "Redis list: one LPUSH per message, pipelined ($DEPTH unconfirmed); pops as redis-list" ;;
    redis-list-1) echo "Redis list, one per message (reference only): LPUSH each, pipelined; RPOP (drain) / BRPOP (concurrent) each, $DEPTH in flight" ;;
    redis-stream) echo "Redis Stream: XADD pipelined ($DEPTH unconfirmed); XREADGROUP GROUP COUNT $BATCH (BLOCK 1000 when concurrent), $inflight in flight; one XACK naming every entry of each reply" ;;
    beanstalkd) echo "beanstalkd: put pipelined ($DEPTH unconfirmed); reserve-with-timeout pipelined $DEPTH deep, delete each job (the protocol has no batch)" ;;
    nats-js) echo "NATS JetStream: PUB with a reply subject, async ($DEPTH PubAcks pending), written at once (no flusher delay, nats.c's SendAsap); durable pull consumer, pulls of $BATCH ($inflight in flight, MaxAckPending 1000000), +ACK each message (AckExplicit)" ;;
    esac
}

# record LINE PEER LABEL RUN BROKER C0 C1 T0 T1: LINE (a JSON object) with label, run and the
# broker's CPU over the run (share of a core, and us per message), appended to RESULTS.
record() {
    local line=$1 peer=$2 label=$3 run=$4 b=$5 c0=$6 c1=$7 t0=$8 t1=$9 n cpu us
    n=$(printf '%s' "$line" | field n)
    cpu=$(awk -v t="$((c1 - c0))" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" \
        'BEGIN { printf "%.0f", 100 * t / hz / (ns / 1e9) }')
    us=$(awk -v t="$((c1 - c0))" -v hz="$CLK_TCK" -v n="${n:-0}" \
        'BEGIN { if (n > 0) printf "%.3f", 1e6 * t / hz / n; else print 0 }')
    echo "${line%\}},\"label\":\"$label\",\"run\":$run,\"peer\":\"$peer\",\"broker\":\"$b\",\"server_cpu_pct\":$cpu,\"server_us_per_msg\":$us}" \
        >>"$RESULTS"
}

# measure PEER LABEL RUN BROKER CMD...: run CMD (prints one JSON line) and record it; with
# SIDE set, CMD is slabmq-bench and SIDE (produce, consume) is the figure taken.
measure() {
    local peer=$1 label=$2 run=$3 b=$4 c0 c1 t0 t1 line rc
    shift 4
    c0=$(cpu_ticks "${PID[$b]}")
    t0=$(date +%s%N)
    line=$(timeout -k 5 "$RUN_TIMEOUT" "$@")
    rc=$?
    t1=$(date +%s%N)
    c1=$(cpu_ticks "${PID[$b]}")
    [ -n "${SIDE:-}" ] && line=$(sbench_json "$SIDE" "$line")
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        echo "bench-peers: $peer $label run $run failed (exit $rc)" >&2
        return 0
    fi
    record "$line" "$peer" "$label" "$run" "$b" "$c0" "$c1" "$t0" "$t1"
}

# bench TARGET LABEL RUN PEERBENCH-ARGS...: one slabmq-peerbench run.
bench() {
    local t=$1 label=$2 run=$3 b
    shift 3
    b=$(broker_of "$t")
    # shellcheck disable=SC2046
    measure "$t" "$label" "$run" "$b" "$PEERBENCH" $(target_args "$t") --port "${PORT[$b]}" \
        --depth "$DEPTH" --json "$@"
}

# sbench TARGET LABEL RUN SIDE SLABMQ-BENCH-ARGS...: one slabmq-bench run, its SIDE (produce
# or consume) recorded with peerbench's field names.
sbench() {
    local t=$1 label=$2 run=$3 side=$4
    shift 4
    # shellcheck disable=SC2046
    SIDE=$side measure "$t" "$label" "$run" slabmq "$BENCH" \
        -s "127.0.0.1:${PORT[slabmq]}" --window "$DEPTH" --quiet --json \
        $(case $t in slabmq-push) echo "--subscribe $DEPTH" ;; *) echo "--fetch-batch $BATCH" ;; esac) \
        $(case $t in slabmq-push) ;; slabmq-fetch1) echo "--fetch-ahead 0" ;;
                     *) [ -n "$FETCH_AHEAD" ] && echo "--fetch-ahead $FETCH_AHEAD" ;; esac) \
        $(case $t in slabmq-batch) echo "--batch-publish $BATCH" ;; esac) "$@"
}

# sbench_json SIDE JSON: slabmq-bench's JSON as one peerbench-style line (n, msgs_per_s,
# p50_us, p99_us, p999_us); nothing if the run did not end "ok":true.
sbench_json() {
    local side=$1 out=$2 n rate p50 p99 p999
    case $out in *'"ok":true'*) ;; *) return 0 ;; esac
    n=$(printf '%s' "$out" | sed -n "s/.*\"$side\":{\"messages\":\([0-9]*\).*/\1/p")
    rate=$(printf '%s' "$out" | sed -n "s/.*\"$side\":{[^}]*\"msg_per_s\":\([0-9.]*\).*/\1/p")
    p50=$(printf '%s' "$out" | sed -n 's/.*"latency_us":{[^}]*"p50":\([0-9.]*\).*/\1/p')
    p99=$(printf '%s' "$out" | sed -n 's/.*"latency_us":{[^}]*"p99":\([0-9.]*\).*/\1/p')
    p999=$(printf '%s' "$out" | sed -n 's/.*"latency_us":{[^}]*"p99_9":\([0-9.]*\).*/\1/p')
    echo "{\"n\":${n:-0},\"msgs_per_s\":${rate:-0},\"p50_us\":${p50:-0},\"p99_us\":${p99:-0},\"p999_us\":${p999:-0}}"
}

# slabmq's rows: slabmq-batch only produces (its pops are slabmq's), slabmq-push and
# slabmq-fetch1 only consume (their publishes are slabmq's; slabmq-fetch1 has no latency
# rows).
run_slabmq() {
    local t=$1 r=$2 q="sb-$1-$2" rate
    if [ "$t" != slabmq-push ] && [ "$t" != slabmq-fetch1 ]; then
        sbench "$t" produce16 "$r" produce --workload fill --size 16 -n "$N" --queue-prefix "$q-16"
    else
        "$BENCH" -s "127.0.0.1:${PORT[slabmq]}" --window "$DEPTH" --quiet --workload fill \
            --size 16 -n "$N" --queue-prefix "$q-16" >/dev/null  # untimed: what the drain reads
    fi
    [ "$t" != slabmq-batch ] &&
        sbench "$t" drain16 "$r" consume --workload drain --size 16 -n "$N" --queue-prefix "$q-16"
    if [ "$t" != slabmq-push ] && [ "$t" != slabmq-fetch1 ]; then
        sbench "$t" produce256 "$r" produce --workload fill --size 256 -n "$N" --queue-prefix "$q-256"
    else
        "$BENCH" -s "127.0.0.1:${PORT[slabmq]}" --window "$DEPTH" --quiet --workload fill \
            --size 256 -n "$N" --queue-prefix "$q-256" >/dev/null
    fi
    [ "$t" != slabmq-batch ] &&
        sbench "$t" drain256 "$r" consume --workload drain --size 256 -n "$N" --queue-prefix "$q-256"
    sbench "$t" concurrent256 "$r" consume --workload concurrent --size 256 -n "$N" \
        --queue-prefix "$q-c"
    if [ "$t" != slabmq-batch ] && [ "$t" != slabmq-fetch1 ]; then
        for rate in $LAT_RATES; do
            sbench "$t" "latency$rate" "$r" consume --workload concurrent --size 256 \
                --rate "$rate" -n $((rate * LAT_SECONDS)) --queue-prefix "$q-l$rate"
        done
    fi
    # a queue a failed run left behind would hold memory for the next: the drain empties them
    return 0
}

run_target() {
    local t=$1 r=$2 q="pb-$1-$2" rate
    case $t in slabmq*) run_slabmq "$t" "$r"; return ;; esac
    bench "$t" produce16 "$r" --workload produce --size 16 -n "$N" --queue "$q-16"
    if [ "$t" != redis-list-lpush1 ]; then # its pops are redis-list's
        bench "$t" drain16 "$r" --workload drain --size 16 -n "$N" --queue "$q-16"
    fi
    bench "$t" produce256 "$r" --workload produce --size 256 -n "$N" --queue "$q-256"
    if [ "$t" != redis-list-lpush1 ]; then
        bench "$t" drain256 "$r" --workload drain --size 256 -n "$N" --queue "$q-256"
    fi
    bench "$t" concurrent256 "$r" --workload concurrent --size 256 -n "$N" --queue "$q-c"
    if [ "$t" != redis-list-lpush1 ]; then # the latency producer sends one LPUSH each anyway
        for rate in $LAT_RATES; do
            bench "$t" "latency$rate" "$r" --workload latency --size 256 --rate "$rate" \
                -n $((rate * LAT_SECONDS)) --queue "$q-l$rate"
        done
    fi
    # Streams keep acked entries and a failed drain leaves a list: free Redis's memory (untimed)
    case $t in redis*) flush_redis ;; esac
}

# rbench PEER LABEL RUN MSGS_PER_REQUEST REDIS-BENCHMARK-ARGS...: one redis-benchmark run,
# one connection; its requests/s times MSGS_PER_REQUEST recorded as msgs_per_s.
rbench() {
    local peer=$1 label=$2 run=$3 per=$4 c0 c1 t0 t1 rps n
    shift 4
    c0=$(cpu_ticks "${PID[redis]}")
    t0=$(date +%s%N)
    rps=$(timeout -k 5 "$RUN_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "${PORT[redis]}" -c 1 \
        --csv "$@" 2>/dev/null | awk -F'","' 'NR == 2 { print $2 }')
    t1=$(date +%s%N)
    c1=$(cpu_ticks "${PID[redis]}")
    if [ -z "$rps" ]; then
        echo "bench-peers: redis-benchmark $label run $run failed" >&2
        return 0
    fi
    n=$(printf '%s\n' "$@" | awk 'prev == "-n" { print $1 * m } { prev = $1 }' m="$per")
    record "{\"target\":\"redis-benchmark\",\"n\":$n,\"msgs_per_s\":$(awk -v r="$rps" -v m="$per" 'BEGIN { printf "%.1f", r * m }')}" \
        "$peer" "$label" "$run" redis "$c0" "$c1" "$t0" "$t1"
}

# check_pops SIZE RUN: Redis's own count of the pops peerbench's drain just sent must be
# about N / BATCH; the old --pop-batch sent one RPOP per message and nothing showed it.
check_pops() {
    local calls
    calls=$(redis-cli -p "${PORT[redis]}" INFO commandstats |
        sed -n 's/^cmdstat_rpop:calls=\([0-9]*\),.*/\1/p')
    if [ -z "$calls" ] || [ "$calls" -gt $((2 * N / BATCH + 2)) ]; then
        echo "bench-peers: peerbench drained $N messages of $1 B with ${calls:-no} RPOPs" \
            "(run $2), not about $((N / BATCH)): it is not popping in batches" >&2
        NOTES="$NOTES peerbench's drain of $1 B sent ${calls:-no} RPOPs in run $2 (expected about $((N / BATCH)))."
    fi
}
NOTES=""

# check: peerbench's Redis client, a plain hiredis client (slabmq-redischeck) and
# redis-benchmark on the same Redis, alternated within each run; each produce leaves its
# list for the drain that follows it. The batch idiom (LPUSH of BATCH values, pops of
# COUNT BATCH, DEPTH/BATCH commands in flight) and the one-per-message idiom (LPUSH and
# RPOP each, DEPTH in flight; what redis-benchmark -t lpush,rpop measures).
run_check() {
    local r=$1 size val vals=() reqs=$((N / BATCH)) p=${PORT[redis]}
    for size in 16 256; do
        val=$(head -c "$size" /dev/zero | tr '\0' x)
        vals=()
        for _ in $(seq 1 "$BATCH"); do vals+=("$val"); done
        bench redis-list "produce$size" "$r" --workload produce --size "$size" -n "$N" --queue ck
        redis-cli -p "$p" CONFIG RESETSTAT >/dev/null
        bench redis-list "drain$size" "$r" --workload drain --size "$size" -n "$N" --queue ck
        check_pops "$size" "$r"
        measure hiredis "produce$size" "$r" redis "$REDISCHECK" --port "$p" --workload produce \
            --size "$size" -n "$N" --depth "$DEPTH" --push-values "$BATCH" --queue ckh
        measure hiredis "drain$size" "$r" redis "$REDISCHECK" --port "$p" --workload drain \
            --size "$size" -n "$N" --depth "$DEPTH" --batch "$BATCH" --queue ckh
        rbench redis-benchmark "produce$size" "$r" "$BATCH" -P $((DEPTH / BATCH)) -n "$reqs" \
            LPUSH ckb "${vals[@]}"
        rbench redis-benchmark "drain$size" "$r" "$BATCH" -P $((DEPTH / BATCH)) -n "$reqs" \
            RPOP ckb "$BATCH"
        bench redis-list-1 "produce$size" "$r" --workload produce --size "$size" -n "$N" --queue ck1
        bench redis-list-1 "drain$size" "$r" --workload drain --size "$size" -n "$N" --queue ck1
        measure hiredis-1 "produce$size" "$r" redis "$REDISCHECK" --port "$p" --workload produce \
            --size "$size" -n "$N" --depth "$DEPTH" --push-values 1 --queue ckh1
        measure hiredis-1 "drain$size" "$r" redis "$REDISCHECK" --port "$p" --workload drain \
            --size "$size" -n "$N" --depth "$DEPTH" --batch 1 --rpop --queue ckh1
        rbench redis-benchmark-1 "produce$size" "$r" 1 -P "$DEPTH" -n "$N" -d "$size" -t lpush
        rbench redis-benchmark-1 "drain$size" "$r" 1 -P "$DEPTH" -n "$N" -d "$size" -t rpop
        flush_redis
    done
}

# natscheck: peerbench's JetStream driver and nats.c's idiom (js_PublishAsync with MaxPending
# DEPTH, Fetch of BATCH, natsMsg_Ack each), with SendAsap and with the flusher, alternated.
run_natscheck() {
    local r=$1 size p=${PORT[nats]}
    for size in 16 256; do
        bench nats-js "produce$size" "$r" --workload produce --size "$size" -n "$N" --queue nck
        bench nats-js "drain$size" "$r" --workload drain --size "$size" -n "$N" --queue nck
        measure natsc-asap "produce$size" "$r" nats "$NATSCHECK" --port "$p" --workload produce \
            --size "$size" -n "$N" --depth "$DEPTH" --queue nck2
        measure natsc-asap "drain$size" "$r" nats "$NATSCHECK" --port "$p" --workload drain \
            --size "$size" -n "$N" --batch "$BATCH" --queue nck2
        measure natsc-flusher "produce$size" "$r" nats "$NATSCHECK" --port "$p" --workload \
            produce --size "$size" -n "$N" --depth "$DEPTH" --queue nck3 --flusher
        measure natsc-flusher "drain$size" "$r" nats "$NATSCHECK" --port "$p" --workload drain \
            --size "$size" -n "$N" --batch "$BATCH" --queue nck3 --flusher
    done
}

# spread: one producer LPUSHes message i to list i % S (one value a command, pipelined),
# then one consumer drains the S lists in turn (RPOP key COUNT, BATCH at most; slabmq: a
# FETCH of the next 16 queues, slabmq_fetch_any, 15 kept ahead unless FETCH_AHEAD says).
run_spread() {
    local r=$1 s
    for s in $SPREADS; do
        sbench slabmq "spread$s-produce" "$r" produce --workload fill --size 16 -n "$N" \
            --spread "$s" --queue-prefix "sp$s-$r"
        sbench slabmq "spread$s-drain" "$r" consume --workload drain --size 16 -n "$N" \
            --spread "$s" --queue-prefix "sp$s-$r"
        bench redis-list "spread$s-produce" "$r" --workload produce --size 16 -n "$N" \
            --spread "$s" --push-values 1 --queue "sp$s"
        bench redis-list "spread$s-drain" "$r" --workload drain --size 16 -n "$N" \
            --spread "$s" --queue "sp$s"
        flush_redis
    done
}

# pairs: P producer/consumer pairs at once, each on its own queue, N messages in all.
run_pairs() {
    local r=$1 p t
    for p in $PAIRS; do
        for t in $PAIR_TARGETS; do
            case $t in
            slabmq*) sbench "$t" "pairs$p" "$r" consume --workload concurrent --size 256 \
                -n "$N" -p "$p" -c "$p" --queues "$p" --queue-prefix "pp$p-$r" ;;
            *) bench "$t" "pairs$p" "$r" --workload concurrent --size 256 -n "$N" --pairs "$p" \
                --queue "pp$p-$r" ;;
            esac
            case $t in redis*) flush_redis ;; esac
        done
    done
}

# ---------------------------------------------------------------------------------------------
# Report

field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# vals PEER LABEL FIELD: FIELD of every run of PEER under LABEL.
vals() { grep "\"label\":\"$2\"" "$RESULTS" | grep "\"peer\":\"$1\"" | field "$3"; }
# med PEER LABEL FIELD: median of FIELD over the runs.
med() { vals "$@" | median; }

# 1234567.8 -> 1,234,568; empty -> n/a
fmt_rate() {
    if [ -z "$1" ]; then echo "n/a"; return; fi
    awk -v v="$1" 'BEGIN { printf "%.0f\n", v }' | sed -e ':a' -e 's/\B[0-9]\{3\}\>/,&/' -e 'ta'
}

# cell PEER LABEL: "median (min-max M)" of msgs_per_s; "-" where PEER does not run LABEL
cell() {
    local m lo hi
    m=$(med "$1" "$2" msgs_per_s)
    [ -n "$m" ] || { echo "-"; return; }
    lo=$(vals "$1" "$2" msgs_per_s | sort -g | head -1)
    hi=$(vals "$1" "$2" msgs_per_s | sort -g | tail -1)
    printf '%s (%.2f-%.2fM)' "$(fmt_rate "$m")" "$(awk -v v="$lo" 'BEGIN { print v / 1e6 }')" \
        "$(awk -v v="$hi" 'BEGIN { print v / 1e6 }')"
}

lat_cell() {
    local p=$1 rate=$2 got p50 p99 p999
    got=$(med "$p" "latency$rate" msgs_per_s)
    [ -n "$got" ] || { echo "-"; return; }
    p50=$(med "$p" "latency$rate" p50_us); p99=$(med "$p" "latency$rate" p99_us)
    p999=$(med "$p" "latency$rate" p999_us)
    if awk -v g="$got" -v r="$rate" 'BEGIN { exit !(g < 0.98 * r) }'; then
        printf 'saturated at %s msg/s: backlog grows (p50 %.1f s)' "$(fmt_rate "$got")" \
            "$(awk -v v="$p50" 'BEGIN { print v / 1e6 }')"
    else
        printf '%.0f / %.0f / %.0f' "$p50" "$p99" "$p999"
    fi
}

report_idioms() {
    local t
    echo "Idioms (window $DEPTH messages, batch $BATCH for every target):"
    echo
    for t in "$@"; do echo "- $t: $(idiom "$t")"; done
    echo
}

report_table() {
    local p rate hdr sep l us pct
    hdr="| peer | produce 16 B | drain 16 B | produce 256 B | drain 256 B | concurrent 256 B |"
    sep="|---|---:|---:|---:|---:|---:|"
    for rate in $LAT_RATES; do
        hdr="$hdr latency @ $(fmt_rate "$rate")/s p50 / p99 / p99.9 µs |"; sep="$sep---:|"
    done
    echo "### Peers: msg/s, median (min-max) of $RUNS runs, one producer and one consumer connection"
    echo
    # shellcheck disable=SC2086 # one argument per target
    report_idioms $TARGETS
    if has "$TARGETS" redis-list-lpush1; then
        echo "redis-list-lpush1 differs from redis-list only in its producer: its pops and" \
            "latency rows are redis-list's (-)."
        echo
    fi
    echo "$hdr"
    echo "$sep"
    for p in $TARGETS; do
        printf '| %s |' "$p"
        for l in produce16 drain16 produce256 drain256 concurrent256; do
            printf ' %s |' "$(cell "$p" "$l")"
        done
        for rate in $LAT_RATES; do printf ' %s |' "$(lat_cell "$p" "$rate")"; done
        echo
    done
    echo
    echo "### Broker CPU during each workload: median us per message (and % of one core)"
    echo
    echo "| peer | produce 16 B | drain 16 B | produce 256 B | drain 256 B | concurrent 256 B |$(for rate in $LAT_RATES; do printf ' latency @ %s/s |' "$(fmt_rate "$rate")"; done)"
    echo "$sep"
    for p in $TARGETS; do
        printf '| %s |' "$p"
        for l in produce16 drain16 produce256 drain256 concurrent256; do
            us=$(med "$p" "$l" server_us_per_msg)
            if [ -n "$us" ]; then printf ' %s (%s%%) |' "$us" "$(med "$p" "$l" server_cpu_pct)"
            else printf ' - |'; fi
        done
        for rate in $LAT_RATES; do
            pct=$(med "$p" "latency$rate" server_cpu_pct)
            if [ -n "$pct" ]; then printf ' %s%% |' "$pct"; else printf ' - |'; fi
        done
        echo
    done
    echo
}

report_check() {
    local p l
    echo "### Redis clients compared on the same Redis: msg/s, median (min-max) of $RUNS runs"
    echo
    echo "peerbench = slabmq-peerbench redis-list; hiredis = slabmq-redischeck (hiredis" \
        "$(pkg-config --modversion hiredis 2>/dev/null)); redis-benchmark -c 1."
    echo "Batch: LPUSH of $BATCH values, pops of COUNT $BATCH (peerbench RPOP key COUNT," \
        "hiredis LMPOP 1 key RIGHT COUNT, redis-benchmark \`RPOP key $BATCH\`), $((DEPTH / BATCH))" \
        "commands in flight. One each (-1): LPUSH and RPOP per message, $DEPTH in flight" \
        "(redis-benchmark \`-P $DEPTH -t lpush,rpop\`)."
    echo
    [ -z "$NOTES" ] || { echo "WARNING:$NOTES"; echo; }
    echo "| client | produce 16 B | drain 16 B | produce 256 B | drain 256 B |"
    echo "|---|---:|---:|---:|---:|"
    for p in redis-list hiredis redis-benchmark redis-list-1 hiredis-1 redis-benchmark-1; do
        printf '| %s |' "$(case $p in redis-list) echo peerbench ;; redis-list-1) echo peerbench-1 ;; *) echo "$p" ;; esac)"
        for l in produce16 drain16 produce256 drain256; do printf ' %s |' "$(cell "$p" "$l")"; done
        echo
    done
    echo
}

report_natscheck() {
    local p l
    echo "### NATS JetStream clients compared on the same server: msg/s, median (min-max) of $RUNS runs"
    echo
    echo "peerbench = slabmq-peerbench nats-js; natsc = slabmq-natscheck (nats.c" \
        "$(pkg-config --modversion libnats 2>/dev/null)): js_PublishAsync, MaxPending $DEPTH;" \
        "natsSubscription_Fetch of $BATCH, natsMsg_Ack each; -asap with natsOptions_SetSendAsap," \
        "-flusher without."
    echo
    echo "| client | produce 16 B | drain 16 B | produce 256 B | drain 256 B |"
    echo "|---|---:|---:|---:|---:|"
    for p in nats-js natsc-asap natsc-flusher; do
        printf '| %s |' "$(case $p in nats-js) echo peerbench ;; *) echo "$p" ;; esac)"
        for l in produce16 drain16 produce256 drain256; do printf ' %s |' "$(cell "$p" "$l")"; done
        echo
    done
    echo
}

report_spread() {
    local s
    echo "### One producer round-robin over S queues (slabmq: PUBLISH each; Redis: LPUSH each, both pipelined), then one consumer draining them in turn (slabmq: FETCH of $BATCH naming the next 16 queues, ${FETCH_AHEAD:-15} kept ahead, acks each; Redis: RPOP key COUNT, several in flight), 16 B, median of $RUNS runs alternated"
    echo
    echo "| queues | slabmq produce msg/s | slabmq us/msg | slabmq drain msg/s | slabmq us/msg | Redis produce msg/s | Redis us/msg | Redis drain msg/s | Redis us/msg |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for s in $SPREADS; do
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(fmt_rate "$s")" \
            "$(cell slabmq "spread$s-produce")" "$(med slabmq "spread$s-produce" server_us_per_msg)" \
            "$(cell slabmq "spread$s-drain")" "$(med slabmq "spread$s-drain" server_us_per_msg)" \
            "$(cell redis-list "spread$s-produce")" \
            "$(med redis-list "spread$s-produce" server_us_per_msg)" \
            "$(cell redis-list "spread$s-drain")" "$(med redis-list "spread$s-drain" server_us_per_msg)"
    done
    echo
}

report_pairs() {
    local p t
    echo "### Producer/consumer pairs at once, each on its own queue, 256 B, $N messages in all, median of $RUNS runs"
    echo
    # shellcheck disable=SC2086 # one argument per target
    report_idioms $PAIR_TARGETS
    echo "| peer | pairs | msg/s in all | broker CPU us/msg | broker CPU % of one core |"
    echo "|---|---:|---:|---:|---:|"
    for t in $PAIR_TARGETS; do
        for p in $PAIRS; do
            printf '| %s | %s | %s | %s | %s |\n' "$t" "$p" "$(cell "$t" "pairs$p")" \
                "$(med "$t" "pairs$p" server_us_per_msg)" "$(med "$t" "pairs$p" server_cpu_pct)"
        done
    done
    echo
}

report() {
    wants_mode table && report_table
    wants_mode check && report_check
    wants_mode natscheck && report_natscheck
    wants_mode spread && report_spread
    wants_mode pairs && report_pairs
    echo "Versions: $(redis-server --version 2>/dev/null | awk '{ print $1, $2, $3 }');" \
        "$(beanstalkd -v 2>/dev/null); $("$(command -v nats-server || echo /usr/sbin/nats-server)" --version 2>/dev/null)."
    echo "Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(uname -sr)," \
        "loopback TCP; $N messages per throughput run, window $DEPTH, batch $BATCH," \
        "latency runs $LAT_SECONDS s each; $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "Load average: before $LOAD_BEFORE; after $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Raw results: $RESULTS"
}

main() {
    local r t m
    for m in $MODES; do
        case $m in table | check | natscheck | spread | pairs) ;;
        *) die "unknown mode $m (table, check, natscheck, spread, pairs)" ;; esac
    done
    mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
    : >"$RESULTS"
    install_peers
    find_tool PEERBENCH slabmq_peerbench slabmq-peerbench
    find_tool BENCH slabmq_bench slabmq-bench
    find_tool SLABMQD slabmqd slabmqd ../../broker/slabmqd
    wants_mode check && find_tool REDISCHECK slabmq_redischeck slabmq-redischeck
    wants_mode natscheck && find_tool NATSCHECK slabmq_natscheck slabmq-natscheck
    start_all
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    wants_mode table && for t in $TARGETS; do echo "bench-peers: $t: $(idiom "$t")" >&2; done
    for r in $(seq 1 "$RUNS"); do
        if wants_mode table; then
            for t in $TARGETS; do
                echo "bench-peers: run $r/$RUNS $t" >&2
                run_target "$t" "$r"
            done
        fi
        wants_mode check && { echo "bench-peers: run $r/$RUNS check" >&2; run_check "$r"; }
        wants_mode natscheck && { echo "bench-peers: run $r/$RUNS natscheck" >&2; run_natscheck "$r"; }
        wants_mode spread && { echo "bench-peers: run $r/$RUNS spread" >&2; run_spread "$r"; }
        wants_mode pairs && { echo "bench-peers: run $r/$RUNS pairs" >&2; run_pairs "$r"; }
    done
    stop_all
    report | tee "$OUT_DIR/table.md"
}

main
