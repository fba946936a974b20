#!/bin/sh
# FETCH batch 512 against 1,024, each with and without read-ahead (slabmq-bench
# --fetch-ahead 0|1): drain 16 B and 256 B (fill, then drain acking each) and concurrent
# 256 B, window 1,024 (docs/performance.md, "The batch below the window"). The four
# configurations alternate within each repetition, so machine noise falls on all alike; each
# run is one slabmq-bench --spawn. Prints one line per run (consumer msg/s, broker CPU us per
# message) and then the medians.
#   tools/bench/bench-fetch-ahead.sh [BUILD_DIR] [COUNT] [RUNS]
set -eu
build=${1:-build}
n=${2:-3000000}
runs=${3:-5}
bench="$build/tools/bench/slabmq-bench"
broker="$build/broker/slabmqd"
[ -x "$bench" ] && [ -x "$broker" ] || { echo "build first: scripts/build.sh $build" >&2; exit 2; }
tmp=$(mktemp /tmp/slabmq-fa.XXXXXX)
trap 'rm -f "$tmp"' EXIT

echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
r=1
while [ "$r" -le "$runs" ]; do
    for cfg in 512:0 512:1 1024:0 1024:1; do
        batch=${cfg%:*}
        ahead=${cfg#*:}
        for wl in fill-drain:16 fill-drain:256 concurrent:256; do
            out=$("$bench" --spawn "$broker" --workload "${wl%:*}" -n "$n" --size "${wl#*:}" \
                  --window 1024 --fetch-batch "$batch" --fetch-ahead "$ahead" --ack each \
                  --quiet --json) || out=""
            rate=$(printf '%s' "$out" | sed -n 's/.*"consume":{[^}]*"msg_per_s":\([0-9.]*\).*/\1/p')
            us=$(printf '%s' "$out" |
                 sed -n 's/.*"consume":{[^}]*"broker_cpu_us_per_msg":\([0-9.]*\).*/\1/p')
            echo "${wl%:*} ${wl#*:} $batch $ahead ${rate:-0} ${us:-0}" | tee -a "$tmp"
        done
    done
    r=$((r + 1))
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| workload | batch | ahead | consumer msg/s, median (min-max) | broker us/msg, median |"
echo "|---|---:|---:|---:|---:|"
sort -k1,1 -k2,2n -k3,3n -k4,4n "$tmp" | awk '
function flush() {
    if (cnt == 0) return
    # insertion sort of the cnt rates and us values; medians
    for (i = 2; i <= cnt; i++) for (j = i; j > 1 && r[j-1] > r[j]; j--) { t = r[j]; r[j] = r[j-1]; r[j-1] = t }
    for (i = 2; i <= cnt; i++) for (j = i; j > 1 && u[j-1] > u[j]; j--) { t = u[j]; u[j] = u[j-1]; u[j-1] = t }
    m = cnt % 2 ? r[(cnt + 1) / 2] : (r[cnt / 2] + r[cnt / 2 + 1]) / 2
    mu = cnt % 2 ? u[(cnt + 1) / 2] : (u[cnt / 2] + u[cnt / 2 + 1]) / 2
    printf "| %s %s B | %s | %s | %.2fM (%.2f-%.2fM) | %.3f |\n", w, s, b, a, m / 1e6, r[1] / 1e6, r[cnt] / 1e6, mu
    cnt = 0
}
{ key = $1 " " $2 " " $3 " " $4
  if (key != last) { flush(); last = key; w = $1; s = $2; b = $3; a = $4 }
  cnt++; r[cnt] = $5; u[cnt] = $6 }
END { flush() }'
