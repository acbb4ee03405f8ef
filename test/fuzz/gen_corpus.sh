#!/usr/bin/env bash
# Regenerates test/fuzz/corpus/ (the committed seed corpus of fuzz_pgoutput)
# from the test encoder.  Usage: test/fuzz/gen_corpus.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror -I"$root/include" -I"$root/test/unit" \
    "$root/test/fuzz/gen_corpus.c" "$root/test/unit/pgo_encode.c" "$root/src/util.c" -o "$tmp/gen_corpus"
rm -rf "$root/test/fuzz/corpus"
mkdir -p "$root/test/fuzz/corpus"
"$tmp/gen_corpus" "$root/test/fuzz/corpus"
echo "wrote $(ls "$root/test/fuzz/corpus" | wc -l) seeds to test/fuzz/corpus"
