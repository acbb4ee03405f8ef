#!/usr/bin/env python3
"""Online backfill (SPEC §9, docs/backfill.md): `pg2qdrant backfill` while `run` streams.

    test_backfill.py --pg2qdrant BIN --qdrant-server BIN --openapi PATH --workdir DIR

A running sync (snapshot = never: the collections start empty) is asked to backfill three tables
(bigint, composite text+int and uuid keys) while a writer commits ~100 transactions a second of
inserts, updates, deletes and key changes on them; the sync is killed with SIGKILL at about 40 %
and restarted: it resumes from its last unconfirmed chunk (rows read in all well under 1.2x the
tables) and every collection ends equal to its table (the oracle of expected.py).  Meanwhile the
oldest transaction of pg2qdrant's sessions (pg_stat_activity.xact_start) stays under 5 s.  Bad
input: --table not configured (exit 2 naming it), --wait without [http] listen (exit 2), a
malformed message with the prefix (skipped, the stream goes on), another slot's request
(ignored), a REPLICA IDENTITY FULL table without a unique key (the backfill fails saying why,
--wait exits 1), a table dropped while its backfill runs (that table fails, the sync goes on).

reconcile --fix while the sync runs (SPEC §9 "other paths"): drift planted in Qdrant under the same
writer (points deleted, payloads changed, orphans with an int id and with a composite key read from
their payload) is handed to the run as keyed backfill requests, which converge exactly; a second
reconcile finds nothing; an orphan of an id_mode = uuid5 table with an empty payload cannot be keyed:
reported, left, exit 1.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from p2q_common import (DB, Sync, Table, TestFailure, argument_parser, check, create_collections,  # noqa: E402
                        differences, load_columns, log, oracle, run_cmd, run_main, validate_requests, wait_until,
                        write_config)
from harness import PG_BIN, Postgres, QdrantServer, free_port  # noqa: E402

API_KEY = "snap-secret-0815-api-key"
SLOT = "p2q_bf"
N_ITEMS = 20000
N_DOCS = 3000
N_UUID = 2000
CHUNK = 500
CONVERGE_TIMEOUT = 120

TABLES = [
    Table(oracle.TableSpec("public.b_items", "b_items", ["id"], {"": "embedding"}),
          "CREATE TABLE b_items (id bigint PRIMARY KEY, embedding real[], note text, n int)",
          {"vectors": {"size": 4, "distance": "Dot"}},
          ["collection = b_items", "vector = embedding"]),
    Table(oracle.TableSpec("public.b_docs", "b_docs", ["region", "n"], {"": "embedding"}),
          "CREATE TABLE b_docs (region text, n int, embedding vector, title text, PRIMARY KEY (region, n))",
          {"vectors": {"size": 3, "distance": "Cosine"}},
          ["collection = b_docs", "vector = embedding"]),
    Table(oracle.TableSpec("public.b_uuid", "b_uuid", ["id"], {"": "v"}),
          "CREATE TABLE b_uuid (id uuid PRIMARY KEY, v double precision[], label text)",
          {"vectors": {"size": 2, "distance": "Dot"}},
          ["collection = b_uuid", "vector = v"]),
]
FULL = Table(oracle.TableSpec("public.b_full", "b_full", ["k"], {"": "v"}),
             "CREATE TABLE b_full (k int, v real[], note text); ALTER TABLE b_full REPLICA IDENTITY FULL",
             {"vectors": {"size": 2, "distance": "Dot"}},
             ["collection = b_full", "id = k", "vector = v"])
DROPPED = Table(oracle.TableSpec("public.b_gone", "b_gone", ["id"], {"": "v"}),
                "CREATE TABLE b_gone (id int PRIMARY KEY, v real[])",
                {"vectors": {"size": 2, "distance": "Dot"}},
                ["collection = b_gone", "vector = v"])
U5 = Table(oracle.TableSpec("public.b_u5", "b_u5", ["id"], {"": "v"}, id_mode="uuid5"),
           "CREATE TABLE b_u5 (id int PRIMARY KEY, v real[], note text)",
           {"vectors": {"size": 2, "distance": "Dot"}},
           ["collection = b_u5", "vector = v", "id_mode = uuid5"])
ALL = TABLES + [FULL, DROPPED, U5]


def setup(pg):
    pg.psql("CREATE DATABASE %s" % DB)
    pg.create_pgvector_types(DB)
    pg.psql(";\n".join(t.ddl for t in ALL) + ";\n", db=DB)
    pg.psql("""
INSERT INTO b_items SELECT g, ARRAY[g, g %% 7, -1, 0.5]::real[], 'row ' || g, g FROM generate_series(1, %d) g;
UPDATE b_items SET embedding = NULL WHERE id %% 997 = 0;
INSERT INTO b_docs SELECT r, g, ('[' || g || ',1,' || (g %% 3) || ']')::vector, r || g
  FROM unnest(ARRAY['eu', 'us', 'süd']) r, generate_series(1, %d) g;
INSERT INTO b_uuid SELECT md5(g::text)::uuid, ARRAY[g, -g]::float8[], 'u ' || g FROM generate_series(1, %d) g;
INSERT INTO b_full SELECT g, ARRAY[g, 1]::real[], 'f' FROM generate_series(1, 100) g;
INSERT INTO b_gone SELECT g, ARRAY[g, 1]::real[] FROM generate_series(1, 20000) g;
ANALYZE;
""" % (N_ITEMS, N_DOCS // 3, N_UUID), db=DB)
    for t in ALL:
        load_columns(pg, t)


def commit_lsn(pg, body):
    out = pg.psql("BEGIN;\n%s;\nSELECT pg_current_wal_insert_lsn();\nCOMMIT;\n" % body.strip().rstrip(";"), db=DB)
    return [line for line in out.splitlines() if line.strip()][-1].strip()


def writer(pg, stats, stop, base=0):
    """~100 transactions a second on the backfilled tables (one psql per batch of 10); base: where the
    numbering of the new and moved keys starts (a second writer must not meet the first one's keys)."""
    rnd = random.Random(13 + base)
    i = base
    while not stop.is_set():
        t0 = time.monotonic()
        parts = []
        for _ in range(10):
            i += 1
            a, b = rnd.randint(1, N_ITEMS), rnd.randint(1, N_ITEMS)
            parts.append("""BEGIN;
UPDATE b_items SET note = 'upd %(i)d', embedding = ARRAY[%(i)d, 1, 0, 1]::real[] WHERE id = %(a)d;
DELETE FROM b_items WHERE id = %(b)d;
INSERT INTO b_items VALUES (%(new)d, '{1,2,3,4}', 'new %(i)d', %(i)d);
UPDATE b_items SET id = %(moved)d WHERE id = %(c)d;
UPDATE b_docs SET title = 't %(i)d', embedding = '[%(i)d,2,3]' WHERE region = 'eu' AND n = %(dn)d;
DELETE FROM b_docs WHERE region = 'us' AND n = %(dn)d;
UPDATE b_uuid SET label = 'l %(i)d', v = ARRAY[%(i)d, 1] WHERE id = md5('%(un)d')::uuid;
UPDATE b_items SET embedding = NULL WHERE id = %(nv)d;
COMMIT;""" % {"i": i, "a": a, "b": b, "new": 10 * N_ITEMS + i, "moved": 20 * N_ITEMS + i,
              "c": rnd.randint(1, N_ITEMS), "dn": rnd.randint(1, N_DOCS // 3), "un": rnd.randint(1, N_UUID),
              "nv": rnd.randint(1, N_ITEMS)})
        stats["lsn"] = commit_lsn(pg, "\n".join(parts) + "\nBEGIN")
        stats["txns"] = i - base
        left = 0.1 - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)


def http_status(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % port, timeout=5) as r:
        return json.loads(r.read().decode())


def finished(port, rid):
    try:
        for e in http_status(port)["backfill"]["finished"]:
            if e["id"] == rid:
                return e
    except OSError:
        return None
    return None


SESSIONS = {"seen": 0}


def oldest_xact_age(pg):
    """The age of the oldest open transaction of pg2qdrant's plain sessions (the backfill's), in s;
    counts the samples that saw such a session at all (SESSIONS), so the check cannot pass vacuously."""
    out = pg.psql("SELECT count(*), coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0) "
                  "FROM pg_stat_activity WHERE application_name = 'pg2qdrant' AND backend_type = 'client backend'",
                  db=DB).strip()
    n, age = out.split("|")
    if int(n) > 0:
        SESSIONS["seen"] += 1
    return float(age or 0)


def converge(pg, q, sync, lsn, what):
    def equal():
        check(sync.alive(), "pg2qdrant exited:\n%s" % sync.log_tail(40))
        return not differences(pg, q, TABLES)
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while not equal():
        if time.monotonic() > deadline:
            raise TestFailure("%s: collections did not converge within %ss:\n%s\nlog tail:\n%s"
                              % (what, CONVERGE_TIMEOUT, json.dumps(differences(pg, q, TABLES), default=str)[:3000],
                                 sync.log_tail(40)))
        time.sleep(0.3)

    def passed():
        out = pg.psql("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '%s') > 0 FROM pg_replication_slots "
                      "WHERE slot_name = '%s'" % (lsn, SLOT), db=DB).strip()
        return out == "t"
    wait_until(passed, CONVERGE_TIMEOUT, "%s: the slot's confirmed_flush_lsn did not pass %s" % (what, lsn))


class StalledCommit:
    """A session whose next transaction is stopped (gdb) right after its commit record was flushed
    and before it leaves the proc array: committed in the WAL (the stream delivers it), invisible
    to new snapshots.  PostgreSQL allows this state for as long as the backend is descheduled."""

    def __init__(self, pg, workdir):
        self.psql = subprocess.Popen(
            [os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
             "postgres", "-d", DB], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, env=dict(os.environ, PGOPTIONS=""))
        self.psql.stdin.write("SELECT pg_backend_pid();\n")
        self.pid = int(self.psql.stdout.readline().strip())
        self.out = []
        self.gdb = subprocess.Popen(["gdb", "-q", "-nx", "-p", str(self.pid)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        self._send("set pagination off", "set confirm off",
                   "handle SIGUSR1 SIGUSR2 SIGPIPE SIGINT SIGTERM SIGQUIT SIGALRM SIGHUP nostop noprint pass",
                   "break ProcArrayEndTransaction", "continue")
        wait_until(lambda: "Continuing." in self.text() or self.gdb.poll() is not None, 60, "gdb to attach")
        check(self.gdb.poll() is None, "gdb could not attach to the backend %d:\n%s" % (self.pid, self.text()))

    def _read(self):
        for line in self.gdb.stdout:
            self.out.append(line)

    def _send(self, *cmds):
        for c in cmds:
            self.gdb.stdin.write(c + "\n")
        self.gdb.stdin.flush()

    def text(self):
        return "".join(self.out)

    def commit(self, sql):
        """Runs sql (autocommit); returns once the backend stopped after the commit record."""
        self.psql.stdin.write(sql.strip().rstrip(";") + ";\n")
        self.psql.stdin.flush()
        wait_until(lambda: "Breakpoint 1," in self.text() or self.gdb.poll() is not None, 60,
                   "the backend to stop in ProcArrayEndTransaction")
        check(self.gdb.poll() is None, "gdb exited:\n%s" % self.text())

    def release(self):
        self._send("delete", "detach", "quit")
        self.gdb.wait(30)
        self.psql.stdin.write("\\q\n")
        self.psql.stdin.flush()
        self.psql.wait(30)


def scenario_late_visibility(args, pg, q, sync, cfg, http_port, ok):
    """A transaction committed before a chunk's low watermark but not yet visible to its read: without
    the snapshot check the chunk overwrote the streamed version with the row's older one (DBLog's window
    alone assumes commit order is visibility order)."""
    if not shutil.which("gdb"):
        log("  SKIPPED late visibility: gdb is not installed (scripts/install-deps.sh installs it)")
        return
    docs = TABLES[1]
    stalled = StalledCommit(pg, args.workdir)
    released = False
    try:
        stalled.commit("UPDATE b_docs SET title = 'visible late' WHERE region = 'eu' AND n = 5")
        # the stream delivers it (committed in the WAL) while new snapshots do not see it
        check(pg.psql("SELECT title FROM b_docs WHERE region = 'eu' AND n = 5", db=DB).strip() == "eu5",
              "the stalled update is visible already: the scenario tests nothing")
        rc, out, err = run_cmd(args.pg2qdrant, ["backfill", "-c", cfg, "--table", "public.b_docs"])
        check(rc == 0, "backfill: exit %s\n%s" % (rc, err[-1500:]))
        rid = out.strip().splitlines()[-1]
        wait_until(lambda: "was not yet visible to its read" in sync.log_text() or finished(http_port, rid) or not sync.alive(), 60,
                   "the chunk to be read again")
        check(sync.alive(), "run exited:\n%s" % sync.log_tail(30))
        check(not finished(http_port, rid), "the backfill finished while a transaction before its low watermark "
              "was invisible to its reads: %s" % finished(http_port, rid))
        again = http_status(http_port)["backfill"]["chunks_read_again"]
        check(again >= 1, "chunks_read_again is %s in /status" % again)
        stalled.release()
        released = True
        wait_until(lambda: finished(http_port, rid) or not sync.alive(), 60, "the backfill of b_docs to finish")
        check(finished(http_port, rid)["state"] == "done", "backfill: %s" % finished(http_port, rid))
        wait_until(lambda: not differences(pg, q, [docs]) or not sync.alive(), CONVERGE_TIMEOUT,
                   "b_docs to equal its table")
        check(sync.alive(), "run exited:\n%s" % sync.log_tail(30))
        ok("a transaction committed before the low watermark but invisible to the chunk's read (backend stopped "
           "by gdb in ProcArrayEndTransaction): the chunk is read again (%d times) until it is visible; the point "
           "keeps the newer version" % again)
    finally:
        if not released:
            stalled.release()


def scenario_held_points(args, pg, q, sync, http_port, ok):
    """A chunk applied at its high watermark goes to the sink a batch at a time; a streamed change of
    one of its points that arrives meanwhile must not overtake it (the held operations up to that
    point are sent first).  Run with 5000-row chunks and one request at a time against a slowed
    Qdrant, so that most of a chunk waits in the engine."""
    items = TABLES[0]
    cfg = os.path.join(args.workdir, "held.ini")
    write_config(cfg, pg, q, ALL, slot=SLOT, http_port=http_port,
                 sync_lines=["snapshot = never", "batch_points = 256", "flush_interval = 20ms",
                             "backfill_chunk_rows = 5000", "parallel_requests = 1"])
    sync.stop()
    held = Sync(args.pg2qdrant, cfg, args.workdir, name="held")
    held.start()
    wait_until(lambda: "streaming started" in held.log_text() or not held.alive(), 60, "streaming to start")
    q.slow_writes(100, count=60)  # Qdrant slow: the chunks stay held for a while
    try:
        rc, out, err = run_cmd(args.pg2qdrant, ["backfill", "-c", cfg, "--table", "public.b_items"])
        check(rc == 0, "backfill: exit %s\n%s" % (rc, err[-1500:]))
        rid = out.strip().splitlines()[-1]
        wait_until(lambda: http_status(http_port)["backfill"]["chunks_done"] >= 1 or finished(http_port, rid), 60,
                   "two chunks to be applied")
        # one transaction changing 3000 random rows all over the table: some are held right now
        pg.psql("UPDATE b_items SET note = 'held ' || id, n = -id WHERE id %% 7 = 3 AND id <= %d" % N_ITEMS, db=DB)
        wait_until(lambda: finished(http_port, rid) or not held.alive(), 120, "the backfill of b_items to finish")
    finally:
        q.slow_writes(0)
    check(held.alive(), "run exited:\n%s" % held.log_tail(30))
    wait_until(lambda: not differences(pg, q, [items]) or not held.alive(), CONVERGE_TIMEOUT,
               "b_items to equal its table")
    early = http_status(http_port)["backfill"]["held_sent_early"]
    held.stop()
    sync.start()
    wait_until(lambda: "streaming started" in sync.log_text() or not sync.alive(), 60,
               "streaming to start again")
    check(early >= 1, "no streamed change met a held backfill point (held_sent_early %s): the scenario tests "
          "nothing" % early)
    ok("streamed changes of points whose chunk was still held (Qdrant slowed to 100 ms a write): the held "
       "operations went first %d times; b_items equals its table" % early)


def uuid5(text):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, text))


def docs_id(region, n):
    return uuid5(json.dumps([region, str(n)], separators=(",", ":"), ensure_ascii=False))


def plant_drift(pg, q):
    """Drift behind the sync's back, in Qdrant only (the rows are the writer's)."""
    def req(method, path, body):
        status, resp = q.request(method, path + "?wait=true", body)
        check(status == 200, "%s %s: %s %s" % (method, path, status, resp))
    items = [int(x) for x in pg.psql("SELECT id FROM b_items WHERE embedding IS NOT NULL AND id <= %d "
                                     "ORDER BY id LIMIT 1300" % N_ITEMS, db=DB).split()]
    req("POST", "/collections/b_items/points/delete", {"points": items[:1000]})    # missing: 1000 + 260 + 10 keys
    req("POST", "/collections/b_items/points/payload", {"payload": {"note": "tampered"}, "points": items[1000:1260]})
    req("PUT", "/collections/b_items/points", {"points": [                                          # orphaned:
        {"id": 9000000 + i, "vector": [1, 2, 3, 4], "payload": {}} for i in range(10)]})           # the id is the key
    docs = [line.split("|") for line in pg.psql("SELECT region, n FROM b_docs WHERE region = 'süd' ORDER BY n "
                                                "LIMIT 30", db=DB).split()]
    req("POST", "/collections/b_docs/points/delete", {"points": [docs_id(r, n) for r, n in docs[:20]]})
    req("POST", "/collections/b_docs/points/payload", {"payload": {"title": "tampered"},
                                                       "points": [docs_id(r, n) for r, n in docs[20:]]})
    req("PUT", "/collections/b_docs/points", {"points": [                                           # orphaned: the
        {"id": docs_id("xx", i), "vector": [1, 0, 0], "payload": {"region": "xx", "n": i, "title": "orphan"}}
        for i in range(10)]})                                                                       # key in the payload
    return len(items[:1260]) + 10, len(docs) + 10


def reconcile_handover(args, pg, q, sync, cfg, http_port, ok):
    """reconcile --fix while the run streams and writes go on: handed over as keyed requests."""
    stats = {"lsn": None, "txns": 0}
    stop = threading.Event()
    th = threading.Thread(target=writer, args=(pg, stats, stop, 100000))
    th.start()
    try:
        time.sleep(1)
        n_items, n_docs = plant_drift(pg, q)
        rc, out, err = run_cmd(args.pg2qdrant, ["reconcile", "-c", cfg, "--fix", "--timeout", "120s",
                                                "--table", "public.b_items", "--table", "public.b_docs"],
                               timeout=300)
        check(rc == 0, "reconcile --fix with a running sync: exit %s\n%s\n%s" % (rc, out, err[-3000:]))
        check("handed to the running sync" in out and "backfill request" in out,
              "reconcile --fix did not hand its repairs to the run:\n%s" % out)
        ids = out.split("written for the running sync:")[1].split("\n")[0].split()
        check(len(ids) >= 2, "want a request per drifting table, got %s:\n%s" % (ids, out))
        chunks = []
        for rid in ids:
            e = finished(http_port, rid)
            check(e and e["state"] == "done", "request %s: %s" % (rid, e))
            chunks.append(e["chunks_done"])
        # 1270 planted keys, plus what the writer changed that the stream had not applied yet when
        # reconcile compared (more under valgrind): at least 3 chunks of CHUNK keys
        check(chunks[0] >= 3, "b_items' 1270+ keys in chunks of %d: want 3 chunks or more, got %s" % (CHUNK, chunks))
        check(sync.log_text().count("backfill requested") >= 2 and "keys=" in sync.log_text(),
              "the run did not log the keyed requests:\n%s" % sync.log_tail(20))
    finally:
        stop.set()
        th.join(60)
    converge(pg, q, sync, stats["lsn"], "reconcile --fix handed to the run under writes")
    rc, out, err = run_cmd(args.pg2qdrant, ["reconcile", "-c", cfg, "--table", "public.b_items", "--table",
                                            "public.b_docs"], timeout=300)
    check(rc == 0 and "in sync" in out, "a second reconcile: exit %s\n%s" % (rc, out))
    ok("reconcile --fix with the sync running and %d tx meanwhile: drift of b_items (%d points) and b_docs (%d, "
       "orphans keyed from their payload) handed over as %d keyed requests (chunks %s), converges exactly, "
       "a second reconcile is in sync" % (stats["txns"], n_items, n_docs, len(ids), chunks))

    # a keyed request interrupted by SIGKILL: its message stays held, the restarted run does it again
    keys = [int(x) for x in pg.psql("SELECT id FROM b_items WHERE embedding IS NOT NULL ORDER BY id DESC LIMIT 1500",
                                    db=DB).split()]
    status, _ = q.request("POST", "/collections/b_items/points/delete?wait=true", {"points": keys})
    check(status == 200, "deleting b_items points: %s" % status)
    q.slow_writes(200, count=100000)
    msg = json.dumps({"type": "backfill", "slot": SLOT, "id": "keyed-resume",
                      "keys": {"b_items": [[str(k)] for k in keys]}})
    pg.psql("SELECT pg_logical_emit_message(true, 'pg2qdrant', '%s')" % msg, db=DB)

    def one_chunk():
        check(sync.alive(), "run exited:\n%s" % sync.log_tail(30))
        b = http_status(http_port)["backfill"]
        return b["id"] == "keyed-resume" and b["state"] == "running" and b["chunks_done"] >= 1
    wait_until(one_chunk, 60, "the keyed request's first chunk", interval=0.05)
    sync.kill9()
    q.slow_writes(0)
    sync.start()
    wait_until(lambda: finished(http_port, "keyed-resume") or not sync.alive(), 120,
               "the keyed request to be done again after the restart")
    e = finished(http_port, "keyed-resume")
    check(e and e["state"] == "done" and e["rows_done"] == len(keys), "keyed request after SIGKILL: %s" % e)
    check("resuming an interrupted backfill" not in sync.log_text(), "a keyed request's watermark was adopted:\n%s"
          % sync.log_tail(20))
    lsn = commit_lsn(pg, "UPDATE b_uuid SET label = 'after keyed resume' WHERE id = md5('3')::uuid")
    converge(pg, q, sync, lsn, "a keyed request interrupted by SIGKILL")
    ok("a keyed request of %d keys killed after its first chunk: the restarted run gets the request again from "
       "the WAL and does it whole (%d chunks), converges" % (len(keys), e["chunks_done"]))

    # uuid5 ids: an orphan with its key in the payload is deleted; one with an empty payload is left, exit 1
    status, _ = q.request("PUT", "/collections/b_u5/points?wait=true", {"points": [
        {"id": uuid5("7"), "vector": [1, 1], "payload": {"id": 7, "note": "orphan"}},
        {"id": uuid5("8"), "vector": [1, 1], "payload": {}}]})
    check(status == 200, "planting b_u5 orphans: %s" % status)
    rc, out, err = run_cmd(args.pg2qdrant, ["reconcile", "-c", cfg, "--fix", "--table", "public.b_u5",
                                            "--output", "json", "--timeout", "60s"], timeout=120)
    check(rc == 1, "an orphan whose key cannot be recovered: exit %s (want 1)\n%s\n%s" % (rc, out, err[-2000:]))
    doc = json.loads(out.strip().splitlines()[-1])
    check(doc.get("handed_over") is True and len(doc.get("requests", [])) == 1 and doc.get("unrecoverable_orphans") == 1
          and doc.get("requests_state") == "done", "reconcile --output json: %s" % doc)
    t = doc["tables"][0]
    check(t["unrecoverable_orphans"]["sample"] == [uuid5("8")], "unrecoverable sample: %s" % t)
    rc, out, err = run_cmd(args.pg2qdrant, ["reconcile", "-c", cfg, "--fix", "--table", "public.b_u5"], timeout=120)
    check(rc == 1 and "stop the sync and run pg2qdrant reconcile --fix, or delete" in out,
          "the unrecoverable orphan's message: exit %s\n%s" % (rc, out))
    status, resp = q.request("POST", "/collections/b_u5/points", {"ids": [uuid5("7"), uuid5("8")]})
    check(status == 200 and [p["id"] for p in resp["result"]] == [uuid5("8")],
          "b_u5: want the keyed orphan deleted and the other left: %s" % resp)
    q.request("POST", "/collections/b_u5/points/delete?wait=true", {"points": [uuid5("8")]})
    ok("uuid5 table: the orphan keyed by its payload is deleted through the run; one with an empty payload is "
       "reported (json: unrecoverable_orphans 1), left, exit 1")


def run(args):
    if os.path.isdir(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    t0 = time.monotonic()

    def ok(text):
        log(("  %5.1fs ok   " % (time.monotonic() - t0)) + text)

    with Postgres(args.workdir) as pg, QdrantServer(args.qdrant_server, args.workdir, api_key=API_KEY) as q:
        setup(pg)
        create_collections(q, ALL)
        http_port = free_port()
        cfg = os.path.join(args.workdir, "pg2qdrant.ini")
        sync_lines = ["snapshot = never", "batch_points = 256", "flush_interval = 20ms",
                      "backfill_chunk_rows = %d" % CHUNK]
        write_config(cfg, pg, q, ALL, slot=SLOT, sync_lines=sync_lines, http_port=http_port)
        nohttp = os.path.join(args.workdir, "nohttp.ini")
        write_config(nohttp, pg, q, ALL, slot=SLOT, sync_lines=sync_lines + ["", "[http]", "listen ="])

        # bad command lines
        rc, out, err = run_cmd(args.pg2qdrant, ["backfill", "-c", cfg, "--table", "public.nope"])
        check(rc == 2 and "public.nope" in err, "backfill --table public.nope: exit %s\n%s" % (rc, err[-800:]))
        rc, out, err = run_cmd(args.pg2qdrant, ["backfill", "-c", nohttp, "--wait"], timeout=30)
        check(rc == 2 and "[http] listen" in err, "backfill --wait without [http] listen: exit %s\n%s"
              % (rc, err[-800:]))
        rc, out, err = run_cmd(args.pg2qdrant, ["backfill", "-c", cfg, "--timeout", "5s"])
        check(rc == 2, "--timeout without --wait: exit %s" % rc)
        ok("backfill --table not configured: exit 2 naming it; --wait without [http] listen: exit 2")

        sync = Sync(args.pg2qdrant, cfg, args.workdir, name="run")
        sync.start()
        wait_until(lambda: "streaming started" in sync.log_text() or not sync.alive(), 60, "streaming to start")
        check(sync.alive(), "run exited:\n%s" % sync.log_tail(30))

        # junk with our prefix, another slot's request: skipped / ignored, the stream goes on
        pg.psql("SELECT pg_logical_emit_message(true, 'pg2qdrant', 'not json at all');"
                "SELECT pg_logical_emit_message(true, 'pg2qdrant', '{\"type\":\"backfill\",\"slot\":\"other\","
                "\"tables\":[],\"id\":\"someone-elses\"}');"
                "SELECT pg_logical_emit_message(false, 'pg2qdrant', '{\"type\":\"nope\"}');"
                "SELECT pg_logical_emit_message(true, 'another-app', 'hello')", db=DB)
        lsn = commit_lsn(pg, "UPDATE b_uuid SET label = 'after junk' WHERE id = md5('1')::uuid")
        wait_until(lambda: "skipping a logical decoding message" in sync.log_text() or not sync.alive(), 30,
                   "the malformed message to be logged")

        def confirmed_past(lsn):
            return pg.psql("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '%s') > 0 FROM pg_replication_slots "
                           "WHERE slot_name = '%s'" % (lsn, SLOT), db=DB).strip() == "t"
        wait_until(lambda: confirmed_past(lsn), 30, "the stream to go on after junk messages")
        check(sync.alive(), "run exited after junk messages:\n%s" % sync.log_tail(30))
        st = http_status(http_port)["backfill"]
        check(st["state"] == "idle" and not st["finished"], "another slot's request was carried out: %s" % st)
        check(sync.log_text().count("skipping a logical decoding message") == 2,
              "want the two malformed messages logged once each:\n%s" % sync.log_tail(20))
        ok("a malformed pg2qdrant message is logged once and skipped, another slot's request ignored, "
           "another prefix passed over; the stream goes on")

        scenario_late_visibility(args, pg, q, sync, cfg, http_port, ok)
        scenario_held_points(args, pg, q, sync, http_port, ok)

        # the backfill under ~100 tx/s, SIGKILL at ~40 %, resume
        stats = {"lsn": None, "txns": 0}
        stop = threading.Event()
        th = threading.Thread(target=writer, args=(pg, stats, stop))
        th.start()
        total = N_ITEMS + N_DOCS + N_UUID
        try:
            rc, out, err = run_cmd(args.pg2qdrant, ["backfill", "-c", cfg, "--table", "public.b_items", "--table",
                                                    "b_docs", "--table", "public.b_uuid"])
            check(rc == 0, "backfill: exit %s\n%s" % (rc, err[-1500:]))
            rid = out.strip().splitlines()[-1]
            oldest, seen = 0.0, {"rows": 0}

            def progressed():
                nonlocal oldest
                oldest = max(oldest, oldest_xact_age(pg))
                check(sync.alive(), "run exited during the backfill:\n%s" % sync.log_tail(40))
                b = http_status(http_port)["backfill"]
                if b["id"] == rid and b["state"] == "running":
                    seen["rows"] = b["rows_done"]
                return seen["rows"] >= 0.4 * total
            wait_until(progressed, 120, "the backfill to reach 40 %", interval=0.05)
            sync.kill9()
            rows_before = seen["rows"]
            time.sleep(0.5)
            sync.start()
            wait_until(lambda: finished(http_port, rid) or not sync.alive() or
                       (oldest_xact_age(pg) > 5 and False), 180, "the resumed backfill to finish", interval=0.2)
            for _ in range(10):
                oldest = max(oldest, oldest_xact_age(pg))
            check(sync.alive(), "run exited:\n%s" % sync.log_tail(40))
            done = finished(http_port, rid)
            check(done["state"] == "done", "backfill after restart: %s" % done)
            check("resuming an interrupted backfill" in sync.log_text(), "the restart did not resume:\n%s"
                  % sync.log_tail(30))
        finally:
            stop.set()
            th.join(60)
        converge(pg, q, sync, stats["lsn"], "backfill under writes with a SIGKILL at 40 %")
        reread = rows_before + done["rows_done"]
        check(reread < 1.2 * total, "rows read %d (%d before the kill + %d after) for %d rows: not resumed"
              % (reread, rows_before, done["rows_done"], total))
        check(oldest < 5.0, "a transaction of pg2qdrant's was %.1f s old" % oldest)
        check(SESSIONS["seen"] > 0, "no pg2qdrant session seen in pg_stat_activity: the sampling finds nothing")
        ok("backfill of %d rows (bigint, text+int, uuid keys) under %d concurrent transactions, SIGKILL at %d rows: "
           "resumed, %d rows read in all (%.2fx), converges exactly; oldest pg2qdrant transaction %.2f s "
           "(%d samples saw its sessions)" % (total, stats["txns"], rows_before, reread, reread / total, oldest,
                                              SESSIONS["seen"]))

        # --wait: done; a second request while one runs is queued, not lost
        rc1 = []
        t1 = threading.Thread(target=lambda: rc1.append(run_cmd(args.pg2qdrant, [
            "backfill", "-c", cfg, "--table", "public.b_items", "--wait", "--timeout", "120s"])))
        q.slow_writes(20, count=50)  # the first request is still running when the second arrives
        t1.start()
        wait_until(lambda: http_status(http_port)["backfill"]["table"] == "public.b_items" or rc1, 60,
                   "the first request to run")
        rc, out, err = run_cmd(args.pg2qdrant, ["backfill", "-c", cfg, "--table", "public.b_uuid", "--wait",
                                                "--timeout", "120s"])
        t1.join(150)
        q.slow_writes(0)
        check(rc == 0, "backfill --wait (queued): exit %s\n%s" % (rc, err[-1500:]))
        check(rc1 and rc1[0][0] == 0, "backfill --wait: %s" % (rc1[0][:1] if rc1 else "no answer"))
        check("queued behind" in sync.log_text(), "the second request was not queued:\n%s" % sync.log_tail(20))
        ok("backfill --wait exits 0 when done; a request made while one runs is queued and carried out")

        # "done" means acknowledged by Qdrant: b_uuid's collection emptied behind pg2qdrant's back,
        # every write slowed to 400 ms, `backfill --wait`; the moment it returns, every row's point
        # is there (the last chunk's operations were still in flight when "done" was its high watermark)
        t_uuid = [t for t in TABLES if t.spec.name == "public.b_uuid"][0]
        check(q.request("DELETE", "/collections/b_uuid")[0] == 200, "deleting the collection b_uuid")
        check(q.request("PUT", "/collections/b_uuid", t_uuid.collection_body)[0] == 200, "creating b_uuid again")
        rows = int(pg.psql("SELECT count(*) FROM b_uuid", db=DB).strip())
        if rows % CHUNK in (0, 1):  # the last chunk a partial one: no empty chunk read after it
            pg.psql("INSERT INTO b_uuid SELECT md5('late ' || g)::uuid, ARRAY[g, 1]::float8[], 'late' "
                    "FROM generate_series(1, 7) g", db=DB)
        q.slow_writes(400)
        try:
            t_wait = time.monotonic()
            rc, out, err = run_cmd(args.pg2qdrant, ["backfill", "-c", cfg, "--table", "public.b_uuid", "--wait",
                                                    "--timeout", "120s"])
            t_wait = time.monotonic() - t_wait
            q.slow_writes(0)  # the count itself is not delayed (a write still in flight stays so)
            status, resp = q.request("POST", "/collections/b_uuid/points/count", {"exact": True})
        finally:
            q.slow_writes(0)
        check(rc == 0, "backfill --wait (slowed Qdrant): exit %s\n%s" % (rc, err[-1500:]))
        rows = int(pg.psql("SELECT count(*) FROM b_uuid", db=DB).strip())
        check(status == 200 and resp["result"]["count"] == rows,
              "backfill --wait returned (after %.1f s) with %s of b_uuid's %d points in Qdrant"
              % (t_wait, resp["result"]["count"] if status == 200 else status, rows))
        ok("backfill --wait with Qdrant slowed to 400 ms a write: all %d points in Qdrant when it returned "
           "(%.1f s)" % (rows, t_wait))

        reconcile_handover(args, pg, q, sync, cfg, http_port, ok)

        # REPLICA IDENTITY FULL without a unique key: fails saying why, --wait exits 1, the sync goes on
        rc, out, err = run_cmd(args.pg2qdrant, ["backfill", "-c", cfg, "--table", "public.b_full", "--wait",
                                                "--timeout", "60s"])
        check(rc == 1, "backfill of a FULL table without a unique key: exit %s\n%s" % (rc, err[-1000:]))
        check("cannot be read in chunks by key" in sync.log_text(), "no clear reason:\n%s" % sync.log_tail(20))
        ok("REPLICA IDENTITY FULL without a unique index: the table's backfill fails with the reason, --wait exits 1")

        # a table dropped while its backfill runs: that table fails, the sync goes on
        q.slow_writes(30, count=10000)
        rc, out, err = run_cmd(args.pg2qdrant, ["backfill", "-c", cfg, "--table", "public.b_gone"])
        gid = out.strip().splitlines()[-1]
        wait_until(lambda: http_status(http_port)["backfill"]["chunks_done"] >= 1 or finished(http_port, gid), 60,
                   "the backfill of b_gone to start")
        pg.psql("DROP TABLE b_gone", db=DB)
        q.slow_writes(0)
        wait_until(lambda: finished(http_port, gid), 60, "the backfill of b_gone to end")
        e = finished(http_port, gid)
        check(e["state"] == "failed" and "b_gone" in (e["error"] or ""), "dropped table: %s" % e)
        lsn = commit_lsn(pg, "UPDATE b_uuid SET label = 'after the drop' WHERE id = md5('2')::uuid")
        converge(pg, q, sync, lsn, "after a dropped table")
        ok("a table dropped during its backfill: that table fails (%s), the sync goes on" % e["error"][:80])

        sync.stop()
        for name in sorted(os.listdir(args.workdir)):
            if name.startswith("run-") and name.endswith(".log"):
                with open(os.path.join(args.workdir, name), errors="replace") as f:
                    text = f.read()
                check("Sanitizer" not in text and "runtime error" not in text,
                      "sanitizer report in %s:\n%s" % (name, text[-4000:]))
        q.stop()
        log("  " + validate_requests(q, args.openapi))
    log("backfill: PASSED in %.1fs" % (time.monotonic() - t0))
    shutil.rmtree(args.workdir, ignore_errors=True)


def main():
    return run_main("backfill", argument_parser(), run)


if __name__ == "__main__":
    sys.exit(main())
