#!/usr/bin/env bash
# Sets up and runs the whole test suite:
#   1. installs the Debian packages (scripts/install-deps.sh),
#   2. a regular build + every CTest test (unit, Qdrant test server, integration
#      against a throwaway PostgreSQL 15, and six integration scripts again with
#      pg2qdrant under valgrind: label `valgrind`), and the unit tests under valgrind,
#   3. an AddressSanitizer + UndefinedBehaviorSanitizer build + every CTest test,
#   4. a short libFuzzer run of the pgoutput decoder (clang).
# Environment: P2Q_SHARED_DIR (folder holding qdrant/openapi.json; default
# ../shared next to the checkout), FUZZ_SECONDS (default 60), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${JOBS:-$(nproc)}

"$root/scripts/install-deps.sh"

shared=${P2Q_SHARED_DIR:-}
if [ -z "$shared" ]; then
  for d in "$root/../shared" /work/shared; do
    if [ -f "$d/qdrant/openapi.json" ]; then shared=$(cd "$d" && pwd); break; fi
  done
fi
[ -n "$shared" ] || { shared="$root/../shared"; echo "note: no qdrant/openapi.json found; request validation will be skipped"; }

step() { printf '\n=== %s ===\n' "$*"; }

step "build (RelWithDebInfo)"
# Debian's python3 carries python3-jsonschema; a pyenv or venv python on PATH may not.
py=/usr/bin/python3
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DP2Q_SHARED_DIR="$shared" -DPython3_EXECUTABLE=$py
cmake --build build -j"$jobs"

step "tests"
(cd build && ctest --output-on-failure -j1)

step "unit tests under valgrind"
for t in build/test/test_*; do
  [ -x "$t" ] || continue
  valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1 "$t" >/dev/null
  echo "valgrind clean: $(basename "$t")"
done

step "build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DP2Q_SANITIZE=ON -DP2Q_SHARED_DIR="$shared" -DPython3_EXECUTABLE=$py
cmake --build build-asan -j"$jobs"

step "tests under ASan + UBSan"
(cd build-asan && ctest --output-on-failure -j1)

step "fuzz the pgoutput decoder (${FUZZ_SECONDS:-60} s)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DP2Q_FUZZ=ON -DP2Q_SANITIZE=ON -DPython3_EXECUTABLE=$py
cmake --build build-fuzz -j"$jobs" --target fuzz_pgoutput
test/fuzz/run_fuzz.sh build-fuzz "${FUZZ_SECONDS:-60}"

step "all tests passed"
