#!/usr/bin/env python3
"""Benchmark of `pg2qdrant snapshot` and `pg2qdrant reconcile` (Python 3 stdlib only).

Loads N rows (default 1,000,000: a bigint key, a DIM-dimensional real[] embedding and a few
payload columns) into a throwaway PostgreSQL 15, creates the collection in the Qdrant test
server, then runs and times:

  1. pg2qdrant snapshot            (every row upserted)
  2. pg2qdrant reconcile           (in sync: exit 0)
  3. drift made in PostgreSQL (1 % of the rows updated, 0.1 % deleted, 0.1 % inserted)
     pg2qdrant reconcile --fix     (exit 0)

and reports rows/s and peak RSS (ru_maxrss of the child, i.e. VmHWM) for each.

    bench_snapshot_reconcile.py --pg2qdrant build/pg2qdrant \
        --qdrant-server build/test/qdrant_test_server [--rows 1000000] [--dim 64] [--workdir DIR]

The Qdrant test server keeps every point in memory (about 1.5 GB for 1,000,000 points of 64
dimensions with their payload): it is the bottleneck, not pg2qdrant; figures against a real Qdrant
will differ.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

from harness import Postgres, QdrantServer, install_signal_cleanup  # noqa: E402

DB = "bench"


def timed(argv, log_path):
    """Runs argv; returns (exit code, seconds, peak RSS in MiB)."""
    t0 = time.monotonic()
    with open(log_path, "w") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, time.monotonic() - t0, ru.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg2qdrant", required=True)
    ap.add_argument("--qdrant-server", required=True)
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch-points", type=int, default=256)
    ap.add_argument("--workdir", default="/tmp/p2q-bench")
    args = ap.parse_args()
    install_signal_cleanup()
    if os.path.isdir(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    n, dim = args.rows, args.dim
    results = []
    with Postgres(args.workdir) as pg, QdrantServer(args.qdrant_server, args.workdir) as q:
        pg.psql("CREATE DATABASE %s" % DB)
        t0 = time.monotonic()
        pg.psql("""
CREATE TABLE items (id bigint PRIMARY KEY, embedding real[], name text, price numeric, tags text[],
                    updated timestamptz, in_stock bool);
INSERT INTO items
  SELECT g, ARRAY(SELECT (random() * 2 - 1 + g * 0)::real FROM generate_series(1, %d)),
         'item ' || g, round((g %% 10000) / 100.0, 2), ARRAY['t' || (g %% 7), 't' || (g %% 11)],
         '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second', g %% 3 = 0
  FROM generate_series(1, %d) g;
ANALYZE items;
""" % (dim, n), db=DB, timeout=7200)
        load_s = time.monotonic() - t0
        status, resp = q.request("PUT", "/collections/items", {"vectors": {"size": dim, "distance": "Dot"}})
        assert status == 200, resp
        cfg = os.path.join(args.workdir, "bench.ini")
        with open(cfg, "w") as f:
            f.write("[source]\ndsn = %s\nslot = bench\npublication = bench\n\n[qdrant]\nurl = %s\ntimeout = 60s\n\n"
                    "[sync]\nbatch_points = %d\n\n[table public.items]\nvector = embedding\n"
                    % (pg.dsn(DB), q.url, args.batch_points))

        def step(name, argv, want_rc, rows):
            rc, secs, rss = timed([args.pg2qdrant] + argv + ["-c", cfg],
                                  os.path.join(args.workdir, name.replace(" ", "_") + ".log"))
            if rc != want_rc:
                with open(os.path.join(args.workdir, name.replace(" ", "_") + ".log")) as f:
                    sys.exit("%s exited %d (want %d):\n%s" % (name, rc, want_rc, f.read()[-3000:]))
            results.append({"step": name, "rows": rows, "seconds": round(secs, 2),
                            "rows_per_s": round(rows / secs), "peak_rss_mib": round(rss, 1)})
            print("%-22s %9d rows %8.1f s %9.0f rows/s  peak RSS %7.1f MiB" % (name, rows, secs, rows / secs, rss),
                  flush=True)

        print("loaded %d rows of %d dimensions in %.1f s" % (n, dim, load_s), flush=True)
        step("snapshot", ["snapshot"], 0, n)
        step("reconcile (in sync)", ["reconcile"], 0, n)
        k = max(1, n // 100)
        pg.psql("UPDATE items SET price = price + 1 WHERE id %% 100 = 0;\n"
                "DELETE FROM items WHERE id %% 1000 = 1;\n"
                "INSERT INTO items (id, embedding, name) SELECT %d + g, ARRAY(SELECT 0.5::real + g * 0 FROM "
                "generate_series(1, %d)), 'new' FROM generate_series(1, %d) g;" % (n, dim, max(1, n // 1000)),
                db=DB, timeout=3600)
        step("reconcile (drift)", ["reconcile"], 1, n)
        step("reconcile --fix", ["reconcile", "--fix"], 0, n)
        step("reconcile (fixed)", ["reconcile"], 0, n)
        print("drift made: ~%d updated, ~%d deleted, %d inserted" % (k, n // 1000, max(1, n // 1000)))
    print(json.dumps({"rows": n, "dim": dim, "batch_points": args.batch_points, "results": results}))
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
