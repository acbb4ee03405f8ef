#!/usr/bin/env python3
"""Commit-to-visible latency of pg2qdrant at a steady transaction rate (issue 7).

    python3 test/bench/bench_latency.py --rate 200,2000 --seconds 20     # from the repo root

Starts a throwaway PostgreSQL 15, the Qdrant test server with --apply-log (it stores the points
and writes "collection id unix_us" when each upsert is applied), and pg2qdrant run (creating its
slot; snapshot = never).  For each rate in --rate, txgen (test/bench/txgen.c, compiled here with
cc and libpq) runs single-row INSERT transactions at that rate for --seconds on one connection in
libpq pipeline mode; every row stores clock_timestamp() taken in its INSERT, just before its
commit.  When all points of the phase are applied:

    latency(row) = apply time of its point (test server, CLOCK_REALTIME) - the row's timestamp

reported as p50 / p99 / max, with the rate txgen really achieved, pg2qdrant's CPU use during the
phase and the number of Qdrant requests.  Everything runs on one machine, so both clocks are the
same.  Not a test: nothing is asserted.

Against a real Qdrant (P2Q_QDRANT_BIN or P2Q_QDRANT_URL, see docs/testing.md) there is no apply
log: pg2qdrant talks to Qdrant through the harness's TcpProxy with an HttpTap, and a point's
apply time is when the answer to the wait=true request that carried it started to arrive (Qdrant
answers once the write is applied and visible).  The proxy's own hop (Python, loopback) is
included in the latency.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import benchlib
from benchlib import harness, log

SLOT = "bench_lat"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", default="200", help="transactions per second; a comma list runs one phase each")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--pg2qdrant", default=benchlib.default_binary("build/pg2qdrant"))
    ap.add_argument("--qdrant-server", default=None,
                    help="default: qdrant_test_server next to --pg2qdrant (BUILD/test/qdrant_test_server)")
    ap.add_argument("--txgen", default=None, help="a built txgen (default: compile test/bench/txgen.c with cc)")
    ap.add_argument("--workdir", default=None, help="default: a temporary directory, removed afterwards")
    ap.add_argument("--settle", type=float, default=60, help="seconds to wait for a phase's last points")
    ap.add_argument("--log-level", default="info", help="pg2qdrant --log-level")
    ap.add_argument("--dump", metavar="FILE", help="append \"rate id commit_us apply_us\" per row to FILE")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too (one object per phase)")
    ap.add_argument("--tap", action="store_true", help="measure through the HTTP tap even with the test server "
                    "(to compare the tap with the apply log)")
    ap.add_argument("--backfill-rows", type=int, default=0,
                    help="also load a table bulk of N rows and keep `pg2qdrant backfill --table public.bulk` "
                         "running through every phase (a new request whenever one is done): the streamed latency "
                         "of items during an online backfill")
    ap.add_argument("--rebuild", action="store_true",
                    help="with --backfill-rows: bulk is an alias (of bulk_g1) and the loop runs `pg2qdrant rebuild "
                         "--table public.bulk --wait` instead (a new generation, dual writes, the alias switched)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, config, apply log)")
    return ap.parse_args()


def build_txgen(workdir):
    out = os.path.join(workdir, "txgen")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libpq"], capture_output=True, text=True)
    flags = flags.stdout.split() if flags.returncode == 0 else ["-I/usr/include/postgresql", "-lpq"]
    src = os.path.join(benchlib.HERE, "txgen.c")
    r = subprocess.run(["cc", "-O2", "-o", out, src] + flags, capture_output=True, text=True)
    if r.returncode != 0:
        raise harness.HarnessError("cannot build txgen:\n" + r.stderr)
    return out


def percentile(sorted_vals, p):
    """Nearest-rank percentile."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def read_apply_log(path, seen):
    """Adds {id: first apply time (µs)} for the new complete lines of the apply log."""
    with open(path) as f:
        f.seek(seen.get("__offset__", 0))
        data = f.read()
    end = data.rfind("\n") + 1
    seen["__offset__"] = seen.get("__offset__", 0) + len(data[:end].encode())
    for line in data[:end].splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "items":
            i = int(parts[1])
            if i not in seen:
                seen[i] = int(parts[2])


class VisibleTimes:
    """HttpTap callback against a real Qdrant: the visible time of every upserted point id."""

    def __init__(self):
        self.applied = {}
        self.writes = 0

    def __call__(self, line, body, t):
        # items only: the bulk table's backfill or rebuild traffic is relayed, never parsed
        if "/collections/items/points/batch" not in line:
            return
        self.writes += 1
        us = int(t * 1e6)
        for op in json.loads(body).get("operations", []):
            for p in op.get("upsert", {}).get("points", []):
                self.applied.setdefault(p["id"], us)


def writes_so_far(q):
    return q.visible.writes if q.visible else q.request("GET", "/__test/stats")[1].get("writes", 0)


class BackfillLoop:
    """Keeps an online backfill of public.bulk running: `pg2qdrant backfill --wait` again and again."""

    def __init__(self, binary, config, command="backfill"):
        import threading
        self.binary, self.config, self.command = binary, config, command
        self.stop = threading.Event()
        self.done = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            r = subprocess.run([self.binary, self.command, "-c", self.config, "--table", "public.bulk", "--wait",
                                "--timeout", "10min"], capture_output=True, text=True)
            if r.returncode != 0:
                log("%s --wait exited %d:\n%s" % (self.command, r.returncode, r.stderr[-2000:]))
                return
            self.done += 1

    def finish(self):
        self.stop.set()
        self.thread.join(600)


def phase(pg, q, proc, txgen, rate, first, args, applied):
    sql = ("INSERT INTO items (%s, committed_at) SELECT %s, clock_timestamp() FROM (SELECT $1::bigint AS i) s" %
           (benchlib.COLUMNS, benchlib.ROW_EXPRS))
    writes0 = writes_so_far(q)
    cpu0 = benchlib.proc_cpu_seconds(proc.pid)
    t0 = time.monotonic()
    r = subprocess.run([txgen, pg.dsn(benchlib.DB), str(rate), str(args.seconds), str(first), sql],
                       capture_output=True, text=True, timeout=args.seconds * 10 + 60)
    if r.returncode != 0:
        raise harness.HarnessError("txgen failed (%s):\n%s" % (r.returncode, r.stderr))
    gen = json.loads(r.stdout)
    n = gen["committed"]
    ids = range(first, first + n)
    deadline = time.monotonic() + args.settle
    while True:
        if q.visible:
            applied.update(q.visible.applied)
        else:
            read_apply_log(q.apply_log, applied)
        missing = sum(1 for i in ids if i not in applied)
        if not missing:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise harness.HarnessError("%d of %d points never applied (pg2qdrant exit %s)" %
                                       (missing, n, proc.poll()))
        time.sleep(0.1)
    wall = time.monotonic() - t0
    cpu = benchlib.proc_cpu_seconds(proc.pid) - cpu0
    writes = writes_so_far(q) - writes0
    out = pg.psql("SELECT id, (extract(epoch FROM committed_at) * 1000000)::bigint FROM items "
                  "WHERE id BETWEEN %d AND %d" % (first, first + n - 1), db=benchlib.DB)
    lat = []
    dump = open(args.dump, "a") if args.dump else None
    for line in out.split():
        i, us = line.split("|")
        lat.append((applied[int(i)] - int(us)) / 1000.0)
        if dump:
            dump.write("%g %s %s %d\n" % (rate, i, us, applied[int(i)]))
    if dump:
        dump.close()
    lat.sort()
    return {"target_rate": rate, "achieved_rate": gen["achieved_rate"], "transactions": n,
            "worst_send_lag_ms": gen["worst_send_lag_ms"],
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": lat[-1], "min_ms": lat[0],
            "qdrant_requests": writes, "points_per_request": n / writes if writes else None,
            "pg2qdrant_cpu_s": cpu, "pg2qdrant_cpu_pct": 100 * cpu / wall if wall > 0 else None}


def main():
    args = parse_args()
    benchlib.prepare(args, "bench_latency")
    rates = [float(x) for x in args.rate.split(",") if x.strip()]
    workdir = benchlib.make_workdir(args)
    results = []
    proc = None
    try:
        txgen = os.path.abspath(args.txgen) if args.txgen else build_txgen(workdir)
        apply_log = os.path.join(workdir, "apply.log")
        real = harness.real_qdrant_wanted()
        with harness.Postgres(workdir) as pg, \
                harness.QdrantServer(args.qdrant_server, workdir,
                                     extra_args=[] if real else ["--apply-log", apply_log], request_log=False) as q:
            q.apply_log = apply_log
            qurl, proxy, q.visible = q.url, None, None
            if q.real or args.tap:
                q.visible = VisibleTimes()
                proxy = harness.TcpProxy(q.port, tap=harness.HttpTap(q.visible))
                qurl = proxy.url
                log("%s, pg2qdrant through the HTTP tap %s" % ("real Qdrant %s" % q.version if q.real else
                                                                "the test server", qurl))
            benchlib.create_items_collection(q)
            pg.psql("CREATE DATABASE %s" % benchlib.DB)
            pg.psql(benchlib.TABLE_DDL.format(t="items", extra=", committed_at timestamptz") + ";\n"
                    "CREATE PUBLICATION %s FOR TABLE items;\n" % benchlib.PUBLICATION, db=benchlib.DB)
            config = benchlib.write_config(os.path.join(workdir, "pg2qdrant.ini"), pg, qurl, SLOT, True)
            backfill = None
            if args.backfill_rows:
                st, body = q.request("PUT", "/collections/bulk_g1" if args.rebuild else "/collections/bulk",
                                     {"vectors": {"size": benchlib.DIM, "distance": "Cosine"}})
                if st != 200:
                    raise harness.HarnessError("creating the collection bulk: %s %s" % (st, body))
                if args.rebuild:
                    st, body = q.request("POST", "/collections/aliases", {"actions": [
                        {"create_alias": {"collection_name": "bulk_g1", "alias_name": "bulk"}}]})
                    if st != 200:
                        raise harness.HarnessError("creating the alias bulk: %s %s" % (st, body))
                pg.psql(benchlib.TABLE_DDL.format(t="bulk", extra="") + ";\n"
                        "ALTER PUBLICATION %s ADD TABLE bulk;\n"
                        "INSERT INTO bulk (%s) SELECT %s FROM (SELECT g AS i FROM generate_series(1, %d) g) s;\n"
                        "ANALYZE bulk;\n" % (benchlib.PUBLICATION, benchlib.COLUMNS,
                                              benchlib.ROW_EXPRS.replace("$1::bigint", "i"), args.backfill_rows),
                        db=benchlib.DB, timeout=1800)
                with open(config, "a") as f:
                    f.write("\n[table public.bulk]\ncollection = bulk\nid = id\nvector = embedding\npayload = *\n")
            logpath = os.path.join(workdir, "pg2qdrant.log")
            proc = benchlib.start_pg2qdrant(args.pg2qdrant, config, logpath, args.log_level)
            deadline = time.monotonic() + 60
            while pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s' AND active" % SLOT,
                          db=benchlib.DB).strip() != "1":
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise harness.HarnessError("pg2qdrant did not start streaming:\n" + benchlib.tail(logpath))
                time.sleep(0.1)
            applied = {}
            first = 1
            if args.backfill_rows:
                backfill = BackfillLoop(args.pg2qdrant, config, "rebuild" if args.rebuild else "backfill")
                time.sleep(2)
            for rate in rates:
                log("phase: %g transactions/s for %g s%s" % (rate, args.seconds, ", during %s of %d rows (repeated)"
                                                              % ("rebuilds" if args.rebuild else "online backfills",
                                                                 args.backfill_rows) if backfill else ""))
                res = phase(pg, q, proc, txgen, rate, first, args, applied)
                if backfill:
                    res["rebuilds_done" if args.rebuild else "backfills_done"] = backfill.done
                    res["backfill_rows"] = args.backfill_rows
                results.append(res)
                first += res["transactions"] + 1000
                time.sleep(1)
            if backfill:
                backfill.finish()
            res_hwm = benchlib.proc_status_kb(proc.pid, "VmHWM")
            code, _ = benchlib.stop(proc)
            if code != 0:
                log("pg2qdrant exited %s after SIGTERM:\n%s" % (code, benchlib.tail(logpath)))
    finally:
        if proc is not None and proc.poll() is None:
            benchlib.stop(proc)
        benchlib.finish_workdir(args, workdir)

    m = benchlib.machine()
    for r in results:
        r["pg2qdrant_vmhwm_kb"] = res_hwm
        r["machine"] = m
        print("latency rate=%g/s (achieved %.0f/s, %d tx): p50 %.1f ms, p99 %.1f ms, max %.1f ms; "
              "%d Qdrant requests (%.1f points each), pg2qdrant CPU %.1f%%" %
              (r["target_rate"], r["achieved_rate"], r["transactions"], r["p50_ms"], r["p99_ms"], r["max_ms"],
               r["qdrant_requests"], r["points_per_request"] or 0, r["pg2qdrant_cpu_pct"] or 0))
        if args.json:
            print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
