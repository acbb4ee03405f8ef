#!/usr/bin/env python3
"""Snapshot (SPEC §4): `pg2qdrant snapshot [--table T]`, `run` with snapshot = initial while
inserts, updates and deletes run concurrently, and snapshot = always across restarts.

    test_snapshot.py --pg2qdrant BIN --qdrant-server BIN --openapi PATH --workdir DIR

After each step every collection must equal its table exactly under the oracle in
expected.py (Cosine vectors normalised as Qdrant stores them), and the slot's
confirmed_flush_lsn must pass the last commit.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from p2q_common import (API_KEY, DB, Table, TestFailure, argument_parser, check, create_collections,  # noqa: E402
                        differences, load_columns, log, oracle, run_cmd, run_main, scroll, validate_requests,
                        wait_until, write_config)
from harness import Postgres, QdrantServer, free_port  # noqa: E402

SLOT = "p2q_snap"
N_BIG = 12000
CONVERGE_TIMEOUT = 90

TABLES = [
    Table(oracle.TableSpec("public.s_big", "s_big", ["id"], {"": "embedding"}),
          "CREATE TABLE s_big (id bigint PRIMARY KEY, embedding real[], note text, n int, at timestamptz)",
          {"vectors": {"size": 4, "distance": "Dot"}},
          ["collection = s_big", "vector = embedding"]),
    Table(oracle.TableSpec("public.s_docs", "s_docs", ["region", "n"], {"": "embedding"}),
          "CREATE TABLE s_docs (region text, n int, embedding vector, title text, PRIMARY KEY (region, n))",
          {"vectors": {"size": 3, "distance": "Cosine"}},
          ["collection = s_docs", "vector = embedding"]),
    Table(oracle.TableSpec("public.s_other", "s_other", ["id"], {"": "v"}),
          "CREATE TABLE s_other (id int PRIMARY KEY, v double precision[], label text)",
          {"vectors": {"size": 2, "distance": "Dot"}},
          ["collection = s_other", "vector = v"]),
]


class Sync:
    def __init__(self, binary, cfg, workdir):
        self.binary, self.cfg, self.workdir = binary, cfg, workdir
        self.proc, self.runs, self.log_path = None, 0, None

    def start(self):
        self.runs += 1
        self.log_path = os.path.join(self.workdir, "run-%d.log" % self.runs)
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen([self.binary, "run", "-c", self.cfg], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def require_alive(self):
        check(self.alive(), "pg2qdrant exited with %s:\n%s" % (self.proc.returncode if self.proc else None,
                                                               self.log_text()[-3000:]))

    def stop(self):
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def commit_lsn(pg, body):
    out = pg.psql("BEGIN;\n%s;\nSELECT pg_current_wal_insert_lsn();\nCOMMIT;\n" % body.strip().rstrip(";"), db=DB)
    return [line for line in out.splitlines() if line.strip()][-1].strip()


def converge(pg, q, sync, lsn, what):
    def equal():
        sync.require_alive()
        return not differences(pg, q, TABLES)
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while not equal():
        if time.monotonic() > deadline:
            raise TestFailure("%s: collections did not converge within %ss:\n%s\nlog tail:\n%s"
                              % (what, CONVERGE_TIMEOUT, json.dumps(differences(pg, q, TABLES), default=str)[:3000],
                                 sync.log_text()[-3000:]))
        time.sleep(0.2)

    def passed():
        out = pg.psql("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '%s') > 0 FROM pg_replication_slots "
                      "WHERE slot_name = '%s'" % (lsn, SLOT), db=DB).strip()
        return out == "t"
    wait_until(passed, CONVERGE_TIMEOUT, "%s: the slot's confirmed_flush_lsn did not pass %s" % (what, lsn))
    check(not differences(pg, q, TABLES), "%s: collections changed after the commit was confirmed" % what)


def counts(q):
    return {t.spec.collection: len(scroll(q, t.spec.collection) or {}) for t in TABLES}


def setup(pg):
    pg.psql("CREATE DATABASE %s" % DB)
    pg.create_pgvector_types(DB)
    pg.psql(";\n".join(t.ddl for t in TABLES) + ";\n", db=DB)
    pg.psql("""
INSERT INTO s_big SELECT g, ARRAY[g, g %% 7, -1, 0.5]::real[], 'row ' || g, g, '2024-01-01 00:00:00+00'
  FROM generate_series(1, %d) g;
INSERT INTO s_big (id, embedding, note) VALUES (0, NULL, 'no vector');
INSERT INTO s_docs SELECT r, g, ('[' || g || ',1,' || (g %% 3) || ']')::vector, r || g
  FROM unnest(ARRAY['eu', 'us', 'süd']) r, generate_series(1, 50) g;
INSERT INTO s_other SELECT g, ARRAY[g, -g]::float8[], 'other ' || g FROM generate_series(1, 40) g;
""" % N_BIG, db=DB)
    for t in TABLES:
        load_columns(pg, t)


def writer(pg, sync, stats, stop):
    """Concurrent changes while the initial snapshot runs: one transaction per turn."""
    i = 0
    while not stop.is_set():
        i += 1
        lo, hi = i * 7 % 1000 + 1, N_BIG - i * 11 % 1000
        body = """
INSERT INTO s_big (id, embedding, note, n) VALUES (%(new)d, '{1,2,3,4}', 'inserted during snapshot', %(i)d);
UPDATE s_big SET note = 'updated ' || %(i)d, n = -n WHERE id IN (%(lo)d, %(hi)d);
UPDATE s_big SET embedding = ARRAY[%(i)d, 0, 0, 1]::real[] WHERE id = %(hi2)d;
DELETE FROM s_big WHERE id IN (%(d1)d, %(d2)d);
UPDATE s_big SET embedding = NULL WHERE id = %(nv)d;
UPDATE s_big SET id = %(moved)d WHERE id = %(mv)d;
UPDATE s_docs SET title = 'turn %(i)d', embedding = '[%(i)d,2,3]' WHERE region = 'eu' AND n = %(dn)d;
DELETE FROM s_docs WHERE region = 'us' AND n = %(dn)d;
INSERT INTO s_docs VALUES ('new', %(i)d, '[1,1,1]', 'new')
""" % {"new": N_BIG + 1000 + i, "i": i, "lo": lo, "hi": hi, "hi2": hi - 1, "d1": lo + 2000, "d2": hi - 2000,
       "nv": lo + 3000, "moved": 10 * N_BIG + i, "mv": lo + 4000, "dn": i % 50 + 1}
        stats["lsn"] = commit_lsn(pg, body)
        text = sync.log_text()
        if "snapshot done" not in text:
            stats["during"] += 1
        stats["turns"] = i
        if "snapshot done" in text and i >= stats["during"] + 3:
            return
        time.sleep(0.02)


def http_status(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % port, timeout=5) as r:
        return json.loads(r.read().decode())


def run(args):
    if os.path.isdir(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    t0 = time.monotonic()
    with Postgres(args.workdir) as pg, QdrantServer(args.qdrant_server, args.workdir, api_key=API_KEY) as q:
        setup(pg)
        create_collections(q, TABLES)
        http_port = free_port()
        cfg_path = os.path.join(args.workdir, "pg2qdrant.ini")

        def config(mode):
            return write_config(cfg_path, pg, q, TABLES, slot=SLOT,
                                sync_lines=["snapshot = " + mode, "batch_points = 64", "flush_interval = 20ms",
                                            "batch_bytes = 256kB", "max_inflight = 1MB"],
                                http_port=http_port)

        config("initial")
        # 1. the snapshot command, one table
        rc, out, err = run_cmd(args.pg2qdrant, ["snapshot", "-c", cfg_path, "--table", "nope"])
        check(rc == 2 and "nope" in err, "snapshot --table nope: exit %s %s" % (rc, err[-500:]))
        rc, out, err = run_cmd(args.pg2qdrant, ["snapshot", "-c", cfg_path, "--table", "public.s_other"])
        check(rc == 0, "snapshot --table public.s_other exited %s:\n%s" % (rc, err[-3000:]))
        check(counts(q) == {"s_big": 0, "s_docs": 0, "s_other": 40}, "after snapshot --table: %s" % counts(q))
        check("snapshot done" in err and "rows=40" in err, "no progress/summary in the log:\n%s" % err[-1500:])
        diffs = differences(pg, q, [TABLES[2]])
        check(not diffs, "s_other differs after snapshot --table: %s" % diffs)
        check(pg.psql("SELECT count(*) FROM pg_replication_slots", db=DB).strip() == "0",
              "the snapshot command created a slot")
        log(("  %5.1fs ok   " % (time.monotonic() - t0)) + "snapshot --table fills only that table; unknown --table exits 2")

        # 1b. the snapshot command and a missing collection: a config error naming it, or created
        #     from the rows' vector size (and the default distance) with create_collections = true
        status, _ = q.request("DELETE", "/collections/s_other")
        check(status == 200, "deleting collection s_other: %s" % status)
        rc, out, err = run_cmd(args.pg2qdrant, ["snapshot", "-c", cfg_path, "--table", "public.s_other"])
        check(rc == 2 and 'collection \\"s_other\\" (table public.s_other) does not exist' in err,
              "snapshot into a missing collection: exit %s, want 2 naming it:\n%s" % (rc, err[-1500:]))
        check(q.request("GET", "/collections/s_other")[0] == 404, "a collection was created without create_collections")
        rc, out, err = run_cmd(args.pg2qdrant, ["snapshot", "-c", cfg_path, "--table", "public.s_other"],
                               env={"PG2QDRANT_QDRANT_CREATE_COLLECTIONS": "true"})
        check(rc == 0, "snapshot with create_collections = true exited %s:\n%s" % (rc, err[-3000:]))
        status, info = q.request("GET", "/collections/s_other")
        params = info["result"]["config"]["params"]["vectors"] if status == 200 else None
        check(params == {"size": 2, "distance": "Cosine"} or
              (params and params.get("size") == 2 and params.get("distance") == "Cosine"),
              "collection s_other created as %s, want size 2, Cosine" % params)
        created = Table(TABLES[2].spec, TABLES[2].ddl, {"vectors": {"size": 2, "distance": "Cosine"}},
                        TABLES[2].config_lines)
        created.columns = TABLES[2].columns
        diffs = differences(pg, q, [created])
        check(not diffs, "s_other differs after a snapshot into a created collection: %s" % diffs)
        # back to the Dot collection the later steps compare against
        q.request("DELETE", "/collections/s_other")
        create_collections(q, [TABLES[2]])
        rc, out, err = run_cmd(args.pg2qdrant, ["snapshot", "-c", cfg_path, "--table", "public.s_other"])
        check(rc == 0 and counts(q)["s_other"] == 40, "snapshot --table public.s_other again: exit %s" % rc)
        log(("  %5.1fs ok   " % (time.monotonic() - t0)) + "snapshot into a missing collection: exit 2 naming it; "
            "created (size 2, Cosine) with create_collections = true")

        # 2. run with snapshot = initial, changes running concurrently
        sync = Sync(args.pg2qdrant, cfg_path, args.workdir)
        stats = {"during": 0, "turns": 0, "lsn": None}
        stop = threading.Event()
        q.slow_writes(10, count=300)  # a slower Qdrant: the snapshot overlaps more transactions
        sync.start()
        wait_until(lambda: "initial snapshot" in sync.log_text() or not sync.alive(), 30, "the snapshot to start")
        sync.require_alive()
        th = threading.Thread(target=writer, args=(pg, sync, stats, stop))
        th.start()
        th.join(300)
        stop.set()
        check(not th.is_alive(), "the writer did not finish")
        q.slow_writes(0)
        sync.require_alive()
        check(stats["during"] >= 3, "only %d transactions overlapped the snapshot: make it slower (N_BIG)"
              % stats["during"])
        converge(pg, q, sync, stats["lsn"], "initial snapshot with concurrent changes")
        st = http_status(http_port)
        check(st["snapshot"]["state"] == "done" and st["snapshot"]["rows_done"] >= N_BIG,
              "/status snapshot: %s" % st.get("snapshot"))
        text = sync.log_text()
        check("snapshot progress" in text, "no progress line in the log")
        log(("  %5.1fs ok   " % (time.monotonic() - t0)) + "snapshot = initial: %d rows + %d concurrent transactions (%d during the snapshot) converge "
            "exactly; /status snapshot done" % (N_BIG, stats["turns"], stats["during"]))

        # 3. snapshot = always: every start backfills (repairing drift), idempotent
        rc = sync.stop()
        check(rc == 0, "SIGTERM: exit %s" % rc)
        config("always")
        status, _ = q.request("POST", "/collections/s_big/points/delete?wait=true", {"points": [1]})
        check(status == 200, "delete point 1")
        status, _ = q.request("POST", "/collections/s_big/points/payload?wait=true",
                              {"payload": {"note": "tampered"}, "points": [5]})
        check(status == 200, "tamper point 5")
        pg.psql("UPDATE s_big SET note = 'changed while stopped' WHERE id = 9", db=DB)
        before = counts(q)
        sync.start()
        lsn = commit_lsn(pg, "INSERT INTO s_other VALUES (100, '{1,1}', 'after restart')")
        converge(pg, q, sync, lsn, "snapshot = always, first restart")
        check("snapshot at start" in sync.log_text(), "snapshot = always did not snapshot at start")
        check(counts(q)["s_big"] == before["s_big"] + 1, "point count %s, want %s + 1 (the deleted one)"
              % (counts(q), before))
        rc = sync.stop()
        check(rc == 0, "SIGTERM: exit %s" % rc)
        after_first = counts(q)
        sync.start()
        lsn = commit_lsn(pg, "UPDATE s_other SET label = 'second restart' WHERE id = 100")
        converge(pg, q, sync, lsn, "snapshot = always, second restart")
        check(counts(q) == after_first, "a second snapshot changed the point counts: %s vs %s"
              % (counts(q), after_first))
        rc = sync.stop()
        check(rc == 0, "SIGTERM: exit %s" % rc)
        log(("  %5.1fs ok   " % (time.monotonic() - t0)) + "snapshot = always: repairs drift at every start, idempotent across restarts")

        # 4. an interrupted initial snapshot drops its new slot: the next start snapshots again
        pg.psql("SELECT pg_drop_replication_slot('%s')" % SLOT, db=DB)
        config("initial")
        for t in TABLES:
            q.request("POST", "/collections/%s/points/delete?wait=true" % t.spec.collection, {"filter": {}})
        q.slow_writes(50, count=1000)
        sync.start()
        wait_until(lambda: "snapshot of table started" in sync.log_text(), 30, "the snapshot to start again")
        time.sleep(0.5)
        rc = sync.stop()
        check(rc == 0, "SIGTERM during the snapshot: exit %s\n%s" % (rc, sync.log_text()[-2000:]))
        q.slow_writes(0)
        check(pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s'" % SLOT, db=DB).strip()
              == "0", "the slot of an interrupted initial snapshot was kept:\n%s" % sync.log_text()[-2000:])
        sync.start()
        lsn = commit_lsn(pg, "UPDATE s_other SET label = 'after the interrupted snapshot' WHERE id = 1")
        converge(pg, q, sync, lsn, "initial snapshot after an interrupted one")
        rc = sync.stop()
        check(rc == 0, "SIGTERM: exit %s" % rc)
        log(("  %5.1fs ok   " % (time.monotonic() - t0)) + "an interrupted initial snapshot drops the new slot; the next start snapshots again")

        q.stop()
        log("  " + validate_requests(q, args.openapi))
    log("snapshot: PASSED in %.1fs" % (time.monotonic() - t0))
    shutil.rmtree(args.workdir, ignore_errors=True)


def main():
    return run_main("snapshot", argument_parser(), run)


if __name__ == "__main__":
    sys.exit(main())
