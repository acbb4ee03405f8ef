#!/bin/sh
# pg2qdrant in two minutes: installs the build dependencies, builds, then syncs a small
# `products` table from a throwaway PostgreSQL into Qdrant and prints the points.
#
#   scripts/demo.sh                                   # uses the project's Qdrant test server
#   QDRANT_URL=http://localhost:6333 scripts/demo.sh  # uses a real Qdrant (QDRANT_API_KEY if needed)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="${BUILD_DIR:-$ROOT/build}"

"$ROOT/scripts/install-deps.sh"
cmake -S "$ROOT" -B "$BUILD" >/dev/null  # build type: the existing one, else the project default
cmake --build "$BUILD" -j2 --target pg2qdrant qdrant_test_server
exec /usr/bin/python3 "$ROOT/scripts/demo.py" --build "$BUILD"
