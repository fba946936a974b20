#!/bin/sh
# Install dependencies, run cppcheck, then clang-tidy on the normal build's compile commands
# (scripts/tidy.sh), and run the whole test suite twice: a normal build with
# warnings as errors (which also runs a subset of integration cases with the broker under
# valgrind), then an AddressSanitizer + UndefinedBehaviorSanitizer build; and the
# durability tests a third time under ThreadSanitizer.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh test

echo "== cppcheck (warnings, portability, performance; suppressions are inline, with why) =="
cppcheck --quiet --enable=warning,portability,performance --inline-suppr --std=c11 \
    -I protocol -I protocol/public -I broker -I client/include --error-exitcode=1 broker protocol client tools

echo "== release build (-Werror) =="
scripts/build.sh build -DSLABMQ_WERROR=ON

echo "== clang-tidy (checks in .clang-tidy; suppressions are inline, with why) =="
scripts/tidy.sh build

echo "== release build's tests =="
ctest --test-dir build --output-on-failure -j2 -LE bench

echo "== ASan + UBSan build =="
scripts/build.sh build-asan -DSLABMQ_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j2 -LE "bench|install"

echo "== ThreadSanitizer build: the tests with the broker's other threads (label durability: the"
echo "   SQLite writer; label threads: the password-check thread) =="
scripts/build.sh build-tsan -DSLABMQ_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -j2 -L "durability|threads"

echo "== all tests passed =="
