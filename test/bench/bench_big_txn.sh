#!/bin/sh
# One transaction of a million rows with 64-dim real[] vectors through pg2qdrant (SPEC §5: memory
# stays under max_inflight plus a fixed overhead whatever the transaction size).
#
#   test/bench/bench_big_txn.sh [BUILD_DIR] [ROWS] [MAX_INFLIGHT_MB]     # from the repo root
#
# Runs the "bounded memory" scenario of test/integration/test_guarantees.py on a throwaway
# PostgreSQL 15 and the Qdrant test server (no artificial delay: Qdrant is as fast as the test
# server), with max_inflight = MAX_INFLIGHT_MB (default 64, the shipped default), and prints the
# peak RSS (VmHWM), the queue's peak (/status inflight_bytes), the drain time and the bytes sent.
# It fails when the peak RSS passes max_inflight + 32 MB.  The million points are checked by
# their count and a sample of 2000 through the oracle (a full comparison would take longer than
# the run).  Needs ~3 GB of free disk for WAL and the test server's request log.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
ROWS=${2:-1000000}
MB=${3:-64}
WORK=${P2Q_BENCH_WORKDIR:-$(mktemp -d /tmp/p2q-bench-big-XXXXXX)}
exec /usr/bin/python3 test/integration/test_guarantees.py \
    --pg2qdrant "$BUILD/pg2qdrant" --qdrant-server "$BUILD/test/qdrant_test_server" \
    --openapi "${P2Q_OPENAPI:-../shared/qdrant/openapi.json}" --workdir "$WORK" \
    --only "bounded memory" --big-rows "$ROWS" --big-delay-ms 0 --big-verify sample \
    --max-inflight-mb "$MB"
