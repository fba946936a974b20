#!/bin/sh
# clang-tidy over broker/, protocol/, client/ and tools/ with the checks in .clang-tidy
# (docs/testing.md says why each one that is off is off), two files at a time, using the
# compile commands of an already configured build tree. Any finding fails.
#
#   scripts/tidy.sh [BUILD_DIR]          default: build (scripts/test.sh's release build)
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
db=$dir/compile_commands.json
if [ ! -f "$db" ]; then
    echo "tidy: $db missing; configure first (scripts/build.sh $dir)" >&2
    exit 2
fi
# Each source once (the client library is compiled twice, shared and static), ours only:
# not tests/, not generated files in the build tree.
top=$(pwd)
files=$(sed -n 's/^ *"file": "\(.*\)",\{0,1\}$/\1/p' "$db" | sort -u |
    grep -E "^$top/(broker|protocol|client|tools)/" || true)
if [ -z "$files" ]; then
    echo "tidy: no sources of broker/, protocol/, client/ or tools/ in $db" >&2
    exit 2
fi
# One clang-tidy per file, its output printed in one piece without clang's "N warnings
# generated" lines (nearly all of them in system headers, never shown).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
echo "$files" | tr '\n' '\0' | xargs -0 -n 1 -P 2 sh -c '
    out=$(clang-tidy -p "$0" --quiet "$1" 2>&1); st=$?
    printf "%s\n" "$out" | grep -v -e "^\$" -e "^[0-9]* warnings* \(generated\|treated as errors\)\.\$"
    exit $st' "$dir" >"$log" || rc=$?
cat "$log"
if [ "$rc" != 0 ]; then
    # a finding in a header shows once per source that includes it; list each once
    echo "tidy: failed; the findings, each once:" >&2
    grep -E '^[^ ]+:[0-9]+:[0-9]+: (error|warning):' "$log" | sed "s|^$top/||" | sort -u >&2
    echo "tidy: fix them, or suppress inline: // NOLINT(check-name): why" >&2
    exit 1
fi
echo "tidy: no findings"
