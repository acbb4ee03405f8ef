#!/usr/bin/env python3
"""Benchmark of the online backfill (SPEC §9, docs/backfill.md), Python 3 stdlib only.

Loads N rows (default 200,000: a bigint key, a DIM-dimensional real[] embedding and a few payload
columns) into a throwaway PostgreSQL 15, starts `pg2qdrant run` (snapshot = never) against the
Qdrant test server with --discard-writes (it answers every write at once: pg2qdrant's side is
measured, not the server's), then in the same run times:

  1. COPY (SELECT <the same columns> FROM items) TO STDOUT, through psql to /dev/null
  2. pg2qdrant backfill --wait    (request written to done in /status)

and reports rows/s of both, their ratio, and the run's peak RSS (VmHWM).

    bench_backfill.py --pg2qdrant build/pg2qdrant --qdrant-server build/test/qdrant_test_server \
        [--rows 200000] [--dim 64] [--chunk-rows 10000] [--workdir DIR]

With P2Q_QDRANT_BIN (or P2Q_QDRANT_URL) set, a real Qdrant takes the writes instead (docs/testing.md):
then Qdrant's ingest is measured with pg2qdrant's, and the ratio to COPY says how much of the
table's read rate that Qdrant keeps up with; the rebuild's time is still compared with the
backfill's of the same run.
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

from harness import (PG_BIN, Postgres, QdrantTestServer, RealQdrant, free_port, install_signal_cleanup,  # noqa: E402
                     real_qdrant_wanted)

DB = "bench"
COLS = "id, embedding, name, price, tags, updated, in_stock"


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def rebuild_phases(log_path):
    """From run's log: seconds from "rebuild requested" to "alias switched", and to "rebuild done"
    after it (the old generation's delete).  {} when a line is missing."""
    ts = {}
    with open(log_path, errors="replace") as f:
        for line in f:
            for key, msg in (("req", 'msg="rebuild requested"'), ("sw", 'msg="rebuild: alias switched"'),
                             ("done", 'msg="rebuild done"')):
                if msg in line and line.startswith("ts="):
                    t = line.split()[0][3:].rstrip("Z")
                    h, m, sec = t.split("T")[1].split(":")
                    ts[key] = int(h) * 3600 + int(m) * 60 + float(sec)
    if len(ts) < 3:
        return {}
    return {"switch_seconds": round(ts["sw"] - ts["req"], 2), "drop_seconds": round(ts["done"] - ts["sw"], 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg2qdrant", required=True)
    ap.add_argument("--qdrant-server", required=True)
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--chunk-rows", type=int, default=10000)
    ap.add_argument("--workdir", default="/tmp/p2q-bench-backfill")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (run.log at debug level)")
    ap.add_argument("--rebuild", action="store_true",
                    help="items is an alias (of items_g1); after the backfill, also time `pg2qdrant rebuild "
                         "--table public.items --wait` (a new generation filled online, the alias switched, the "
                         "old one dropped) and report it against the backfill")
    args = ap.parse_args()
    install_signal_cleanup()
    if os.path.isdir(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    n, dim = args.rows, args.dim
    real = real_qdrant_wanted()
    q = (RealQdrant(args.workdir) if real else
         QdrantTestServer(args.qdrant_server, args.workdir, extra_args=["--discard-writes"], request_log=False))
    with Postgres(args.workdir) as pg, q:
        pg.psql("CREATE DATABASE %s" % DB)
        pg.psql("""
CREATE TABLE items (id bigint PRIMARY KEY, embedding real[], name text, price numeric, tags text[],
                    updated timestamptz, in_stock bool);
INSERT INTO items
  SELECT g, ARRAY(SELECT (random() * 2 - 1 + g * 0)::real FROM generate_series(1, %d)),
         'item ' || g, round((g %% 10000) / 100.0, 2), ARRAY['t' || (g %% 7), 't' || (g %% 11)],
         '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second', g %% 3 = 0
  FROM generate_series(1, %d) g;
VACUUM ANALYZE items;
""" % (dim, n), db=DB, timeout=7200)
        status, resp = q.request("PUT", "/collections/items_g1" if args.rebuild else "/collections/items",
                                 {"vectors": {"size": dim, "distance": "Dot"}})
        assert status == 200, resp
        if args.rebuild:
            status, resp = q.request("POST", "/collections/aliases", {"actions": [
                {"create_alias": {"collection_name": "items_g1", "alias_name": "items"}}]})
            assert status == 200, resp
        port = free_port()
        cfg = os.path.join(args.workdir, "bench.ini")
        with open(cfg, "w") as f:
            f.write("[source]\ndsn = %s\nslot = bench\npublication = bench\ncreate_publication = true\n\n"
                    "[qdrant]\nurl = %s\ntimeout = 60s\n\n[sync]\nsnapshot = never\nbackfill_chunk_rows = %d\n\n"
                    "[http]\nlisten = 127.0.0.1:%d\n\n[table public.items]\nvector = embedding\n"
                    % (pg.dsn(DB), q.direct_url if real else q.url, args.chunk_rows, port))
        # COPY of the same columns, twice (the first warms the cache as the backfill would find it)
        copy_s = None
        for _ in range(2):
            t0 = time.monotonic()
            with open(os.devnull, "w") as null:
                subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port),
                                "-U", "postgres", "-d", DB, "-c",
                                "COPY (SELECT %s FROM items ORDER BY id) TO STDOUT" % COLS],
                               stdout=null, check=True)
            copy_s = time.monotonic() - t0
        log_path = os.path.join(args.workdir, "run.log")
        with open(log_path, "w") as out:
            run = subprocess.Popen([args.pg2qdrant, "run", "-c", cfg] + (["--log-level", "debug"] if args.keep else []),
                                   stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "streaming started" not in open(log_path).read():
            if time.monotonic() > deadline or run.poll() is not None:
                sys.exit("run did not start:\n" + open(log_path).read()[-3000:])
            time.sleep(0.1)
        qpid = q.proc.pid if q.proc else None  # None: a Qdrant given by P2Q_QDRANT_URL
        cpu0, qcpu0 = cpu_seconds(run.pid), cpu_seconds(qpid) if qpid else 0.0
        t0 = time.monotonic()
        r = subprocess.run([args.pg2qdrant, "backfill", "-c", cfg, "--wait", "--timeout", "30min"],
                           capture_output=True, text=True)
        bf_s = time.monotonic() - t0
        if r.returncode != 0:
            sys.exit("backfill --wait exited %d:\n%s" % (r.returncode, r.stderr[-3000:]))
        hwm = vm_hwm_mib(run.pid)
        cpu, qcpu = cpu_seconds(run.pid) - cpu0, (cpu_seconds(qpid) - qcpu0) if qpid else 0.0
        rb_s = green_s = None
        if args.rebuild and real:
            # A rebuild replaces a settled collection: wait until Qdrant has indexed what the
            # backfill wrote (its optimizer would otherwise compete with the rebuild's writes).
            t0 = time.monotonic()
            while True:
                status, resp = q.request("GET", "/collections/items")
                if status == 200 and resp["result"].get("status") == "green":
                    break
                if time.monotonic() - t0 > 1800:
                    sys.exit("items_g1 did not turn green in 30 min: %s" % resp)
                time.sleep(0.2)
            green_s = time.monotonic() - t0
        if args.rebuild:
            t0 = time.monotonic()
            r = subprocess.run([args.pg2qdrant, "rebuild", "-c", cfg, "--table", "public.items", "--wait",
                                "--timeout", "30min"], capture_output=True, text=True)
            rb_s = time.monotonic() - t0
            if r.returncode != 0:
                sys.exit("rebuild --wait exited %d:\n%s" % (r.returncode, r.stderr[-3000:]))
            hwm = vm_hwm_mib(run.pid)
        run.terminate()
        run.wait(60)
        if real:
            status, resp = q.request("POST", "/collections/items/points/count", {"exact": True})
            assert status == 200, resp
            got = resp["result"].get("count")
            if got != n:
                sys.exit("items holds %s points after the %s, want %d" % (got, "rebuild" if rb_s else "backfill", n))
        res = {"qdrant": getattr(q, "version", None) or "test server --discard-writes", "rows": n, "dim": dim, "chunk_rows": args.chunk_rows,
               "copy_seconds": round(copy_s, 2), "copy_rows_per_s": round(n / copy_s),
               "backfill_seconds": round(bf_s, 2), "backfill_rows_per_s": round(n / bf_s),
               "ratio": round(copy_s / bf_s, 2), "run_peak_rss_mib": round(hwm, 1),
               "run_cpu_seconds": round(cpu, 2), "server_cpu_seconds": round(qcpu, 2)}
        phases = rebuild_phases(log_path) if rb_s is not None else {}
        if rb_s is not None:
            res.update({"rebuild_seconds": round(rb_s, 2), "rebuild_vs_backfill": round(rb_s / bf_s, 2)})
            res.update(phases)
        if green_s is not None:
            res["settle_seconds_before_rebuild"] = round(green_s, 2)
        print("COPY (SELECT ...) TO STDOUT %9d rows %7.2f s %9.0f rows/s" % (n, copy_s, n / copy_s))
        print("pg2qdrant backfill --wait   %9d rows %7.2f s %9.0f rows/s  (%.2fx COPY)  run peak RSS %.1f MiB"
              % (n, bf_s, n / bf_s, copy_s / bf_s, hwm))
        print("CPU during the backfill: run %.2f s, %s %.2f s" % (cpu, "Qdrant" if real else "Qdrant test server", qcpu))
        if rb_s is not None:
            print("pg2qdrant rebuild --wait    %9d rows %7.2f s %9.0f rows/s  (%.2fx the backfill's time)  "
                  "run peak RSS %.1f MiB" % (n, rb_s, n / rb_s, rb_s / bf_s, hwm))
            if phases:
                print("  of which: request to alias switched %.2f s (%.2fx the backfill's time), the old "
                      "generation's delete %.2f s" % (phases["switch_seconds"], phases["switch_seconds"] / bf_s,
                                                      phases["drop_seconds"]))
            if green_s is not None:
                print("  (started once Qdrant had indexed items_g1: %.2f s after the backfill)" % green_s)
        print(json.dumps(res))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
