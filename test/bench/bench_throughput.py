#!/usr/bin/env python3
"""Throughput of pg2qdrant against pg_recvlogical on the same backlog (issue 7).

    python3 test/bench/bench_throughput.py --rows 100000 --shape small     # from the repo root

Starts a throwaway PostgreSQL 15 and the Qdrant test server with --discard-writes (the sink is
never the bottleneck), creates the table items (bigint key, text, numeric, text[], 64-dimension
real[] embedding), a publication and TWO identical pgoutput slots, then writes a backlog of
--rows rows:

  --shape small   many small transactions of --txn-rows rows each (default 1: one row per
                  transaction, the worst case for per-transaction costs)
  --shape large   one transaction holding every row

and drains it twice:

  slot bench_s1   pg_recvlogical --start --endpos END -o proto_version=1 ... -f /dev/null,
                  which exits by itself at END (the WAL position after the backlog)
  slot bench_s2   pg2qdrant run (snapshot = never, create_slot = false), until the slot's
                  confirmed_flush_lsn reaches END (polled every --poll-ms), then SIGTERM

Reports both wall times (process start to end), their ratio, pg2qdrant's CPU seconds
(utime+stime from /proc/PID/stat at the moment END was confirmed) per 100,000 changes and its
peak RSS (VmHWM).  pg2qdrant's confirmation reaches the slot with a status update at most
~100 ms after Qdrant's answer, and the poll adds up to --poll-ms: compare runs of similar length.

Against a real Qdrant (P2Q_QDRANT_BIN or P2Q_QDRANT_URL, see docs/testing.md) the writes are
applied, and the run first measures Qdrant's ingest ceiling on this machine: qdrant_loader (next
to the test server) sends the same rows as 256-point wait=true upserts over K = 1, 2, 4, 8
connections into a fresh collection; the best rate is the ceiling, and pg2qdrant's rate is
reported as a fraction of it.  --dim sets the vector size (64, or 1536 for the common embedding).

Not a test: nothing is asserted.  PG2QDRANT_* environment overrides (e.g.
PG2QDRANT_SYNC_BATCH_POINTS=1024) reach pg2qdrant unchanged.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import benchlib
from benchlib import harness, log


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--shape", choices=("small", "large"), default="small")
    ap.add_argument("--dim", type=int, default=benchlib.DIM, help="vector dimensions (default %(default)s)")
    ap.add_argument("--ceiling-conns", default="1,2,4,8", help="real Qdrant: connections of the ceiling runs")
    ap.add_argument("--txn-rows", type=int, default=1, help="rows per transaction for --shape small (default 1)")
    ap.add_argument("--pg2qdrant", default=benchlib.default_binary("build/pg2qdrant"))
    ap.add_argument("--qdrant-server", default=None,
                    help="default: qdrant_test_server next to --pg2qdrant (BUILD/test/qdrant_test_server)")
    ap.add_argument("--workdir", default=None, help="default: a temporary directory, removed afterwards")
    ap.add_argument("--poll-ms", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait for either drain")
    ap.add_argument("--log-level", default="info", help="pg2qdrant --log-level")
    ap.add_argument("--perf", metavar="FILE", help="also run `perf record -g -o FILE -p PID` on pg2qdrant")
    ap.add_argument("--attach", metavar="CMD", help="attach CMD -p PID to pg2qdrant instead, e.g. "
                    "\"strace -c -f -o FILE\"; stopped with SIGINT at the end")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object too")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, config)")
    return ap.parse_args()


def setup(pg, args):
    pg.psql("CREATE DATABASE %s" % benchlib.DB)
    pg.psql(benchlib.TABLE_DDL.format(t="items", extra="") + ";\n"
            "CREATE PUBLICATION %s FOR TABLE items;\n"
            "SELECT pg_create_logical_replication_slot('bench_s1', 'pgoutput');\n"
            "SELECT pg_create_logical_replication_slot('bench_s2', 'pgoutput');\n" % benchlib.PUBLICATION,
            db=benchlib.DB)
    t0 = time.monotonic()
    select = "SELECT %s FROM generate_series(%%s, %%s) i" % benchlib.row_exprs(args.dim)
    if args.shape == "large":
        pg.psql("INSERT INTO items (%s) %s;" % (benchlib.COLUMNS, select % (1, args.rows)), db=benchlib.DB,
                timeout=args.timeout)
    else:
        k = args.txn_rows
        pg.psql("DO $$ BEGIN\n"
                "  FOR b IN 0..%d LOOP\n"
                "    INSERT INTO items (%s) %s;\n"
                "    COMMIT;\n"
                "  END LOOP;\n"
                "END $$;" % ((args.rows + k - 1) // k - 1, benchlib.COLUMNS,
                             select % ("b * %d + 1" % k, "least(b * %d + %d, %d)" % (k, k, args.rows))),
                db=benchlib.DB, timeout=args.timeout)
    end = pg.psql("SELECT pg_current_wal_lsn()").strip()
    txns = 1 if args.shape == "large" else (args.rows + args.txn_rows - 1) // args.txn_rows
    log("backlog: %d rows in %d transaction(s), written in %.1f s, end LSN %s" %
        (args.rows, txns, time.monotonic() - t0, end))
    return end, txns


class WalsenderCpu:
    """CPU seconds of the walsender serving a slot, sampled while it runs (the last sample
    before the walsender exits is what is reported: low by at most one poll interval)."""

    def __init__(self, session, slot):
        self.session, self.slot, self.pid, self.cpu = session, slot, None, None

    def sample(self):
        if self.pid is None:
            pid = self.session.value("SELECT active_pid FROM pg_replication_slots WHERE slot_name = '%s'" %
                                     self.slot)
            self.pid = int(pid) if pid and pid.isdigit() else None
        if self.pid is not None:
            cpu = benchlib.proc_cpu_seconds(self.pid)
            if cpu is not None:
                self.cpu = cpu


def run_recvlogical(pg, end, args, workdir):
    argv = [os.path.join(harness.PG_BIN, "pg_recvlogical"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
            "-d", benchlib.DB, "--slot", "bench_s1", "--start", "--no-loop", "--endpos", end,
            "-o", "proto_version=1", "-o", "publication_names=" + benchlib.PUBLICATION, "-f", "/dev/null"]
    errpath = os.path.join(workdir, "pg_recvlogical.log")
    poll = benchlib.PsqlSession(pg, benchlib.DB)
    walsender = WalsenderCpu(poll, "bench_s1")
    try:
        with open(errpath, "w") as err:
            t0 = time.monotonic()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
            while True:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                walsender.sample()
                time.sleep(args.poll_ms / 1000)
            wall = time.monotonic() - t0
    finally:
        poll.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise harness.HarnessError("pg_recvlogical exited %s:\n%s" % (proc.returncode, benchlib.tail(errpath)))
    # (ru_maxrss is not reported: it counts the forked Python child before exec.)
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "walsender_cpu_s": walsender.cpu}


def run_pg2qdrant(pg, q, end, args, workdir):
    config = benchlib.write_config(os.path.join(workdir, "pg2qdrant.ini"), pg, getattr(q, "direct_url", q.url),
                                   "bench_s2", False)
    logpath = os.path.join(workdir, "pg2qdrant.log")
    poll = benchlib.PsqlSession(pg, benchlib.DB)
    perf = None
    sql = ("SELECT coalesce(confirmed_flush_lsn >= '%s'::pg_lsn, false) FROM pg_replication_slots "
           "WHERE slot_name = 'bench_s2'" % end)
    try:
        t0 = time.monotonic()
        proc = benchlib.start_pg2qdrant(args.pg2qdrant, config, logpath, args.log_level)
        attach = shlex.split(args.attach) if args.attach else ["perf", "record", "-g", "-o", args.perf] if args.perf \
            else None
        if attach:
            with open(os.path.join(workdir, "attach.log"), "w") as alog:
                perf = subprocess.Popen(attach + ["-p", str(proc.pid)], stdout=subprocess.DEVNULL, stderr=alog)
        walsender = WalsenderCpu(poll, "bench_s2")
        server_cpu0 = benchlib.proc_cpu_seconds(q.proc.pid) if q.proc else None
        deadline = t0 + args.timeout
        while True:
            walsender.sample()
            if proc.poll() is not None:
                raise harness.HarnessError("pg2qdrant exited %s before the end:\n%s" %
                                           (proc.returncode, benchlib.tail(logpath)))
            if poll.value(sql) == "t":
                break
            if time.monotonic() > deadline:
                raise harness.HarnessError("pg2qdrant did not confirm %s in %ss:\n%s" %
                                           (end, args.timeout, benchlib.tail(logpath)))
            time.sleep(args.poll_ms / 1000)
        wall = time.monotonic() - t0
        cpu = benchlib.proc_cpu_seconds(proc.pid)
        walsender.sample()
        server_cpu = benchlib.proc_cpu_seconds(q.proc.pid) - server_cpu0 if q.proc else None
        hwm = benchlib.proc_status_kb(proc.pid, "VmHWM")
        if perf:
            perf.send_signal(2)
            perf.wait(60)
        code, ru = benchlib.stop(proc)
        if code != 0:
            log("pg2qdrant exited %s after SIGTERM:\n%s" % (code, benchlib.tail(logpath)))
    finally:
        poll.close()
        if perf and perf.poll() is None:
            perf.kill()
    stats = q.request("GET", "/__test/stats")[1] if not q.real else None
    return {"wall_s": wall, "cpu_s": cpu, "cpu_total_s": (ru.ru_utime + ru.ru_stime) if ru else None,
            "vmhwm_kb": hwm, "exit": code, "walsender_cpu_s": walsender.cpu, "qdrant_server_cpu_s": server_cpu,
            "qdrant_requests": stats.get("writes") if isinstance(stats, dict) else None}


def ceiling(q, args):
    """Qdrant's ingest rate for the same rows from qdrant_loader over K connections: {K: rows/s}."""
    loader = os.path.join(os.path.dirname(args.qdrant_server), "qdrant_loader")
    out = {}
    for k in [int(x) for x in args.ceiling_conns.split(",")]:
        env = dict(os.environ, QDRANT_API_KEY=q.api_key or "")
        r = subprocess.run([loader, q.direct_url, "ceiling", str(args.rows), str(args.dim), str(k)], capture_output=True,
                           text=True, env=env, timeout=args.timeout)
        if r.returncode != 0:
            raise harness.HarnessError("qdrant_loader with %d connections: %s" % (k, r.stderr[-2000:]))
        res = json.loads(r.stdout)
        out[k] = res["rows_per_s"]
        log("ceiling: %d connection(s): %d rows in %.2f s, %.0f rows/s" % (k, args.rows, res["seconds"],
                                                                           res["rows_per_s"]))
    q.request("DELETE", "/collections/ceiling")
    return out


def main():
    args = parse_args()
    benchlib.prepare(args, "bench_throughput")
    workdir = benchlib.make_workdir(args)
    try:
        real = harness.real_qdrant_wanted()
        with harness.Postgres(workdir) as pg, \
                harness.QdrantServer(args.qdrant_server, workdir, extra_args=[] if real else ["--discard-writes"],
                                     request_log=False) as q:
            best = None
            if q.real:
                log("real Qdrant %s at %s" % (q.version, q.url))
                rates = ceiling(q, args)
                best = max(rates.items(), key=lambda kv: kv[1])
            benchlib.create_items_collection(q, args.dim)
            end, txns = setup(pg, args)
            log("draining bench_s1 with pg_recvlogical")
            rl = run_recvlogical(pg, end, args, workdir)
            log("draining bench_s2 with pg2qdrant")
            p2q = run_pg2qdrant(pg, q, end, args, workdir)
    finally:
        benchlib.finish_workdir(args, workdir)

    per100k = 100000 / args.rows
    res = {
        "rows": args.rows, "shape": args.shape, "txn_rows": args.txn_rows if args.shape == "small" else args.rows,
        "transactions": txns, "end_lsn": end,
        "pg_recvlogical": rl, "pg2qdrant": p2q,
        "ratio": p2q["wall_s"] / rl["wall_s"] if rl["wall_s"] > 0 else None,
        "pg2qdrant_cpu_s_per_100k": p2q["cpu_s"] * per100k if p2q["cpu_s"] is not None else None,
        "pg2qdrant_changes_per_s": args.rows / p2q["wall_s"],
        "machine": benchlib.machine(),
        "dim": args.dim,
        "qdrant": ("real %s" % q.version) if q.real else "test server (--discard-writes)",
    }
    if best:
        res["ceiling_rows_per_s"], res["ceiling_connections"] = best[1], best[0]
        res["fraction_of_ceiling"] = res["pg2qdrant_changes_per_s"] / best[1]
        print("ceiling (qdrant_loader, best of %s connections): %.0f rows/s with %d; pg2qdrant %.0f rows/s = %.2fx "
              "the ceiling" % (args.ceiling_conns, best[1], best[0], res["pg2qdrant_changes_per_s"],
                               res["fraction_of_ceiling"]))
    print("throughput %s rows=%d txns=%d: pg_recvlogical %.2f s, pg2qdrant %.2f s (ratio %.2f, %.0f changes/s), "
          "pg2qdrant CPU %.2f s per 100k changes, peak RSS %.1f MiB, %s Qdrant requests; "
          "walsender CPU %.2f s / %.2f s, test server CPU %.2f s" %
          (args.shape, args.rows, txns, rl["wall_s"], p2q["wall_s"], res["ratio"], res["pg2qdrant_changes_per_s"],
           res["pg2qdrant_cpu_s_per_100k"] or -1, (p2q["vmhwm_kb"] or 0) / 1024, p2q["qdrant_requests"],
           rl["walsender_cpu_s"] or -1, p2q["walsender_cpu_s"] or -1, p2q["qdrant_server_cpu_s"] or -1))
    if args.json:
        print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
