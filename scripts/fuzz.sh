#!/bin/sh
# Run the libFuzzer targets of tests/fuzz: scripts/fuzz.sh TARGET|all SECONDS
#
# Targets: frame, broker, client, cluster (docs/testing.md says what each covers). Installs clang-14
# and libFuzzer from Debian's packages if missing, builds build-fuzz with clang and
# -DSLABMQ_FUZZ=ON (ASan + UBSan + coverage), then runs each target in turn, one process on one
# core, for SECONDS, starting from the checked-in corpus. A single allocation of 64 MiB or more
# is a finding (-malloc_limit_mb), as is an input that runs over 10 s.
#
# New corpus entries go to a scratch directory, never into the repository:
#   ${FUZZ_OUT:-/tmp/slabmq-fuzz}/TARGET/corpus      inputs that found new coverage
#   ${FUZZ_OUT:-/tmp/slabmq-fuzz}/TARGET/crash-*     the input of a finding, if any
# To keep a finding as a regression, minimise it (fuzz_TARGET -minimize_crash=1 -runs=10000
# FILE), fix the bug, and add the file to tests/fuzz/corpus/TARGET/ under a telling name.
# Exits non-zero on the first finding.
set -eu
cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/fuzz.sh frame|broker|client|cluster|all SECONDS" >&2
    exit 2
}
[ $# -eq 2 ] || usage
case "$1" in
frame | broker | client | cluster) targets=$1 ;;
all) targets="frame broker client cluster" ;;
*) usage ;;
esac
case "$2" in
'' | *[!0-9]*) usage ;;
esac
seconds=$2
out=${FUZZ_OUT:-/tmp/slabmq-fuzz}

scripts/deps.sh
# clang-14 only recommends the sanitizer and libFuzzer runtimes (libclang-rt-14-dev);
# libfuzzer-14-dev is libFuzzer as a library of its own.
missing=""
for p in clang-14 libclang-rt-14-dev libfuzzer-14-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        SUDO=sudo
    fi
    echo "fuzz: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

CC=clang-14 cmake -S . -B build-fuzz -DSLABMQ_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS_DEBUG="-g -O1" >/dev/null
for t in $targets; do
    cmake --build build-fuzz --target "fuzz_$t" -j"$(nproc)" >/dev/null
done

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in $targets; do
    mkdir -p "$out/$t/corpus"
    echo "== fuzz $t for ${seconds}s (scratch: $out/$t) =="
    # The first corpus directory receives the new inputs: the scratch one.
    if ! build-fuzz/tests/fuzz/fuzz_"$t" -max_total_time="$seconds" -malloc_limit_mb=64 \
        -rss_limit_mb=2048 -timeout=10 -max_len=200000 -print_final_stats=1 \
        -dict=tests/fuzz/slabmq.dict -artifact_prefix="$out/$t/" \
        "$out/$t/corpus" "tests/fuzz/corpus/$t" 2>"$out/$t/log"; then
        tail -n 60 "$out/$t/log" >&2
        echo "fuzz: $t found a problem; input and log in $out/$t/" >&2
        exit 1
    fi
    grep -E '^(stat::|#[0-9]+ +DONE)' "$out/$t/log" || true
done
echo "== fuzz: no finding =="
