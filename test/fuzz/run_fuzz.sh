#!/usr/bin/env bash
# Runs fuzz_pgoutput for <seconds> over a scratch copy of the committed seed
# corpus (test/fuzz/corpus is never modified).  Exits non-zero on a crash,
# leak or sanitizer report; the crashing input is kept in
# <build-dir>/fuzz-artifacts/.
# Usage: test/fuzz/run_fuzz.sh <build-dir> <seconds>
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 <build-dir> <seconds>" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
bin="$build/test/fuzz_pgoutput"
if [ ! -x "$bin" ]; then
    echo "run_fuzz: $bin not found (configure with CC=clang -DP2Q_FUZZ=ON and build target fuzz_pgoutput)" >&2
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$build/fuzz-artifacts"
cp "$here"/corpus/* "$work/corpus/"
"$bin" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-artifacts/" "$work/corpus"
