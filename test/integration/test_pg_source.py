#!/usr/bin/env python3
"""The PostgreSQL side under unusual setups (issue 11): publication row filters, a database
that is not UTF-8, a publication name with a backslash, a PostgreSQL that never answers.

    test_pg_source.py --pg2qdrant BIN --qdrant-server BIN --openapi PATH --workdir DIR

Steps (each names what it pins; docs/mapping.md, docs/snapshot.md, docs/configuration.md):

  row filter      CREATE PUBLICATION ... FOR TABLE t WHERE (status = 'active'): `snapshot` copies
                  only the published rows; while `run` streams, rows leaving the filter lose
                  their point, rows entering it get one, rows outside it stay out; `reconcile`
                  finds no drift on the filtered table, and finds real drift
  latin1          a LATIN1 database with accented text and jsonb: the payloads through
                  `snapshot`, `run` and `reconcile` are the UTF-8 strings
  sql_ascii       a SQL_ASCII database: `run` and `check-config` refuse it (exit 2)
  backslash       publications named pub\\x (created by run) and pub\\y (existing) stream
  black hole      the DSN names a port that accepts and never answers: `run` exits on SIGTERM
"""

import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from p2q_common import (API_KEY, Sync, argument_parser, check, log, run_cmd, run_main, scroll,  # noqa: E402
                        validate_requests, wait_until)
from harness import Postgres, QdrantServer, free_port  # noqa: E402

TIMEOUT = 60


def exit_text(rc):
    """An exit status for a message: "exit N" or the signal that ended the process."""
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit %d" % rc


def config(path, dsn, q, publication, slot, tables, sync_lines=(), create_publication="false"):
    lines = ["[source]", "dsn = " + dsn, "slot = " + slot, "publication = " + publication, "create_slot = true",
             "create_publication = " + create_publication, "status_interval = 1s", "",
             "[qdrant]", "url = " + q.url, "api_key = " + API_KEY, "timeout = 10s", "",
             "[sync]"] + list(sync_lines) + ["", "[http]", "listen ="]
    for name, body in tables:
        lines += ["", "[table %s]" % name] + body
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def collection(q, name, size=2):
    q.request("DELETE", "/collections/" + name)
    status, resp = q.request("PUT", "/collections/" + name, {"vectors": {"size": size, "distance": "Dot"}})
    check(status == 200, "creating collection %s: %s %s" % (name, status, resp))


def payloads(q, name):
    pts = scroll(q, name)
    check(pts is not None, "scroll of %s failed" % name)
    return {k: v["payload"] for k, v in pts.items()}


def wait_payloads(q, name, want, sync, what):
    def same():
        if sync is not None:
            check(sync.alive(), "%s: pg2qdrant exited (%s):\n%s" % (what, sync.returncode(), sync.log_tail(40)))
        return payloads(q, name) == want
    try:
        wait_until(same, TIMEOUT, what)
    except Exception:
        log("%s: got %s, want %s" % (what, payloads(q, name), want))
        raise


# --- row filter -------------------------------------------------------------------------

def filtered_rows(pg, db):
    rows = pg.query_json("SELECT coalesce(json_agg(json_build_array(id, status, title) ORDER BY id), '[]') "
                         "FROM rf WHERE status = 'active'", db=db)
    return {r[0]: {"status": r[1], "title": r[2]} for r in rows}


def step_row_filter(args, pg, q):
    db = "rfdb"
    pg.psql("CREATE DATABASE " + db)
    pg.psql("""
        CREATE TABLE rf (id int PRIMARY KEY, status text NOT NULL, title text, emb real[]);
        ALTER TABLE rf REPLICA IDENTITY FULL;  -- PostgreSQL: row filter columns must be in the identity
        INSERT INTO rf SELECT g, CASE WHEN g % 3 = 0 THEN 'active' ELSE 'inactive' END, 'row ' || g,
                              ARRAY[g, 1]::real[] FROM generate_series(1, 30) g;
        CREATE PUBLICATION rf_pub FOR TABLE rf WHERE (status = 'active');
    """, db=db)
    collection(q, "rf")
    cfg = config(os.path.join(args.workdir, "rf.ini"), pg.dsn(db), q, "rf_pub", "rf_slot",
                 [("public.rf", ["id = id", "vector = emb", "payload = status, title"])], ["snapshot = never"])

    rc, out, err = run_cmd(args.pg2qdrant, ["snapshot", "-c", cfg])
    check(rc == 0, "row filter: snapshot exit %s:\n%s" % (rc, err[-2000:]))
    got, want = payloads(q, "rf"), filtered_rows(pg, db)
    check(len(want) == 10 and got == want, "row filter: the snapshot copies only the 10 published rows, got %d: %s"
          % (len(got), sorted(got)))
    log("row filter: snapshot copied the %d published rows of 30" % len(got))

    sync = Sync(args.pg2qdrant, cfg, args.workdir, name="rf").start()
    try:
        wait_until(lambda: "streaming started" in sync.log_text() or not sync.alive(), TIMEOUT, "rf: streaming")
        check(sync.alive(), "row filter: run exited:\n%s" % sync.log_tail(40))
        pg.psql("""
            UPDATE rf SET status = 'inactive' WHERE id IN (3, 6);      -- leave the filter: pgoutput sends a delete
            UPDATE rf SET status = 'active', title = 'in' WHERE id IN (1, 2);  -- enter it: an insert
            UPDATE rf SET title = 'still out' WHERE id = 4;             -- outside before and after: nothing
            UPDATE rf SET title = 'changed' WHERE id = 9;               -- inside: an update
            INSERT INTO rf VALUES (100, 'inactive', 'new out', '{1,1}'), (101, 'active', 'new in', '{1,1}');
            DELETE FROM rf WHERE id IN (12, 5);                         -- one published, one not
        """, db=db)
        want = filtered_rows(pg, db)
        wait_payloads(q, "rf", want, sync, "row filter: the collection equals the filtered table while streaming")
        check(3 not in payloads(q, "rf") and 1 in payloads(q, "rf"), "row filter: points left and entered")
        log("row filter: rows left (3, 6) and entered (1, 2, 101) the filter while streaming: %d points" % len(want))
    finally:
        sync.stop()

    rc, out, err = run_cmd(args.pg2qdrant, ["reconcile", "-c", cfg])
    check(rc == 0, "row filter: reconcile finds no drift on the filtered table (exit %s):\n%s\n%s"
          % (rc, out, err[-2000:]))
    pg.psql("UPDATE rf SET title = 'behind its back' WHERE id = 15", db=db)  # no slot runs: real drift
    q.request("POST", "/collections/rf/points/delete?wait=true", {"points": [18]})
    rc, out, err = run_cmd(args.pg2qdrant, ["reconcile", "-c", cfg])
    check(rc == 1 and "missing 1" in out and "stale 1" in out and "orphaned 0" in out,
          "row filter: reconcile finds the real drift (missing 1, stale 1, orphaned 0), exit %s:\n%s" % (rc, out))
    rc, out, err = run_cmd(args.pg2qdrant, ["reconcile", "-c", cfg, "--fix"])
    check(rc == 0 and payloads(q, "rf") == filtered_rows(pg, db), "row filter: reconcile --fix restores the "
          "filtered table, exit %s:\n%s" % (rc, out))
    log("row filter: reconcile in sync, then found missing 1 / stale 1 and fixed them")


# --- encodings -----------------------------------------------------------------------------

ACCENTED = {1: {"name": "café", "doc": {"city": "Zürich", "note": "naïve ½"}},
            2: {"name": "Ærøskøbing ÿ", "doc": {"k": "façade"}}}


def step_latin1(args, pg, q):
    db = "l1"
    pg.psql("CREATE DATABASE l1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    pg.psql("""
        CREATE TABLE acc (id int PRIMARY KEY, name text, doc jsonb, emb real[]);
        INSERT INTO acc VALUES (1, 'café', '{"city": "Zürich", "note": "naïve ½"}', '{1,2}'),
                               (2, 'Ærøskøbing ÿ', '{"k": "façade"}', '{1,2}');
        CREATE PUBLICATION l1_pub FOR TABLE acc;
    """, db=db)
    check(pg.psql("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'l1'").strip() == "LATIN1",
          "latin1: the database is LATIN1")
    collection(q, "acc")
    cfg = config(os.path.join(args.workdir, "l1.ini"), pg.dsn(db), q, "l1_pub", "l1_slot",
                 [("public.acc", ["vector = emb", "payload = name, doc"])], ["snapshot = never"])

    rc, out, err = run_cmd(args.pg2qdrant, ["snapshot", "-c", cfg])
    check(rc == 0, "latin1: snapshot exit %s:\n%s" % (rc, err[-2000:]))
    check(payloads(q, "acc") == ACCENTED, "latin1: snapshot payloads are UTF-8: %s" % payloads(q, "acc"))
    log("latin1: snapshot payloads are the UTF-8 strings")

    sync = Sync(args.pg2qdrant, cfg, args.workdir, name="l1").start()
    try:
        wait_until(lambda: "streaming started" in sync.log_text() or not sync.alive(), TIMEOUT, "l1: streaming")
        pg.psql("""INSERT INTO acc VALUES (3, 'señor Øre', '{"a": "déjà vu"}', '{1,2}');
                   UPDATE acc SET name = 'crème brûlée' WHERE id = 1""", db=db)
        want = dict(ACCENTED)
        want[1] = dict(want[1], name="crème brûlée")
        want[3] = {"name": "señor Øre", "doc": {"a": "déjà vu"}}
        wait_payloads(q, "acc", want, sync, "latin1: streamed payloads are UTF-8")
        log("latin1: streamed insert and update arrive as UTF-8")
    finally:
        sync.stop()
    rc, out, err = run_cmd(args.pg2qdrant, ["reconcile", "-c", cfg])
    check(rc == 0, "latin1: reconcile finds no drift (the comparison reads UTF-8 too), exit %s:\n%s\n%s"
          % (rc, out, err[-2000:]))
    log("latin1: reconcile in sync")
    rc, out, err = run_cmd(args.pg2qdrant, ["check-config", "-c", cfg])
    check(rc == 0 and 'database "l1" has encoding LATIN1' in out, "latin1: check-config reports the encoding:\n%s%s"
          % (out, err))
    log("latin1: check-config reports the encoding")


def step_sql_ascii(args, pg, q):
    db = "sa"
    pg.psql("CREATE DATABASE sa ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    pg.psql("CREATE TABLE acc (id int PRIMARY KEY, name text, emb real[]); CREATE PUBLICATION sa_pub FOR TABLE acc",
            db=db)
    collection(q, "acc")
    cfg = config(os.path.join(args.workdir, "sa.ini"), pg.dsn(db), q, "sa_pub", "sa_slot",
                 [("public.acc", ["vector = emb"])], ["snapshot = never"])
    words = 'database "sa" has encoding SQL_ASCII'
    rc, out, err = run_cmd(args.pg2qdrant, ["check-config", "-c", cfg])
    check(rc == 2 and words in err, "sql_ascii: check-config refuses it (exit %s):\n%s" % (rc, err))
    try:
        rc, out, err = run_cmd(args.pg2qdrant, ["run", "-c", cfg], timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        rc, err = None, "run kept running"
    check(rc == 2 and words.replace('"', '\\"') in err, "sql_ascii: run refuses it (exit %s):\n%s" % (rc, err[-2000:]))
    log("sql_ascii: run and check-config exit 2")


# --- a publication named with a backslash --------------------------------------------

def step_backslash(args, pg, q):
    db = "bs"
    pg.psql("CREATE DATABASE bs")
    pg.psql("""CREATE TABLE b1 (id int PRIMARY KEY, emb real[]); CREATE TABLE b2 (id int PRIMARY KEY, emb real[]);
               CREATE PUBLICATION "pub\\y" FOR TABLE b2""", db=db)
    for table, pub, create in (("b1", "pub\\x", "true"), ("b2", "pub\\y", "false")):
        collection(q, table)
        cfg = config(os.path.join(args.workdir, "bs-%s.ini" % table), pg.dsn(db), q, pub, "slot_" + table,
                     [("public." + table, ["vector = emb"])], ["snapshot = never"], create_publication=create)
        sync = Sync(args.pg2qdrant, cfg, args.workdir, name="bs-" + table).start()
        try:
            wait_until(lambda: "streaming started" in sync.log_text() or not sync.alive(), TIMEOUT,
                       "publication %s: streaming" % pub)
            check(sync.alive(), "publication %s (create_publication = %s): run exited (%s):\n%s"
                  % (pub, create, exit_text(sync.returncode()), sync.log_tail(40)))
            pg.psql("INSERT INTO %s VALUES (7, '{1,2}')" % table, db=db)
            wait_until(lambda: 7 in (scroll(q, table) or {}), TIMEOUT, "publication %s: the insert arrives" % pub)
        finally:
            sync.stop()
        log("backslash: publication %s (create_publication = %s) streams" % (pub, create))
    check(pg.psql("SELECT count(*) FROM pg_publication WHERE pubname = 'pub\\x'", db=db).strip() == "1",
          "backslash: run created the publication named pub\\x")


# --- a PostgreSQL that never answers -----------------------------------------------

def step_black_hole(args, q):
    """A listening socket that never accepts: the TCP handshake completes (the backlog), the
    startup packet is never answered.  libpq's own wait would retry after SIGTERM forever."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    port = hole.getsockname()[1]
    try:
        dsn = "host=127.0.0.1 port=%d dbname=x user=postgres connect_timeout=0" % port
        cfg = config(os.path.join(args.workdir, "hole.ini"), dsn, q, "p", "s", [("public.t", ["vector = emb"])])
        sync = Sync(args.pg2qdrant, cfg, args.workdir, name="hole").start()
        time.sleep(2)
        check(sync.alive(), "black hole: run exited before SIGTERM:\n%s" % sync.log_tail(20))
        rc, secs = sync.terminate(30)
        check(rc == 0, "black hole: run exits 0 after SIGTERM while connecting (exit %s after %.1f s):\n%s"
              % (rc, secs, sync.log_tail(20)))
        sync.stop()
        log("black hole: run exited %s, %.1f s after SIGTERM while connecting (connect_timeout = 0)" % (rc, secs))

        # The default connect_timeout (10 s) ends the attempt: run logs it and retries.
        dsn = "host=127.0.0.1 port=%d dbname=x user=postgres" % port
        cfg = config(os.path.join(args.workdir, "hole2.ini"), dsn, q, "p", "s", [("public.t", ["vector = emb"])])
        sync = Sync(args.pg2qdrant, cfg, args.workdir, name="hole2").start()
        try:
            wait_until(lambda: "timeout expired" in sync.log_text(), TIMEOUT,
                       "black hole: the default connect_timeout ends the attempt")
        finally:
            sync.stop()
        log("black hole: the default connect_timeout ended the attempt (logged, retried)")
    finally:
        hole.close()


def run(args):
    os.makedirs(args.workdir, exist_ok=True)
    pg = Postgres(args.workdir)
    q = QdrantServer(args.qdrant_server, args.workdir, api_key=API_KEY)
    try:
        pg.start()
        q.start()
        steps = [("row_filter", lambda: step_row_filter(args, pg, q)), ("latin1", lambda: step_latin1(args, pg, q)),
                 ("sql_ascii", lambda: step_sql_ascii(args, pg, q)), ("backslash", lambda: step_backslash(args, pg, q)),
                 ("black_hole", lambda: step_black_hole(args, q))]
        for name, step in steps:
            if not args.only or name in args.only.split(","):
                step()
        log("openapi: %s" % validate_requests(q, args.openapi))
    finally:
        q.stop()
        pg.stop()
    log("all PostgreSQL-source checks passed")


if __name__ == "__main__":
    parser = argument_parser(__doc__)
    parser.add_argument("--only", help="comma-separated steps: row_filter,latin1,sql_ascii,backslash,black_hole")
    sys.exit(run_main("test_pg_source", parser, run))
