#!/usr/bin/env python3
"""End-to-end test: a throwaway PostgreSQL 15 + the Qdrant test server + `pg2qdrant run`.

After every step of a workload (inserts, updates, deletes, key changes, NULL vectors,
transactions, rollbacks, truncates, Qdrant faults, restart) every collection must equal
its table under SPEC §3, as computed by the independent oracle in expected.py, and the
slot's confirmed_flush_lsn must have passed the step's last commit.  Finally every request
the test server saw is validated against Qdrant's OpenAPI document.

    run_integration.py --pg2qdrant BIN --qdrant-server BIN --openapi PATH --workdir DIR
                       [--keep] [--log-level debug] [--stop-after STEP]

Python 3 standard library only (openapi_check.py needs python3-jsonschema).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, HERE)

import expected as oracle  # noqa: E402
from harness import Postgres, QdrantServer, free_port  # noqa: E402
from p2q_common import (DB, Sync, Table, argument_parser, check, expected_points, load_columns, log,  # noqa: E402
                        run_main, scroll, write_config_file)

SLOT = "p2q_it"
PUBLICATION = "p2q_it_pub"
API_KEY = "it-secret-4711-api-key"
# The harness's PostgreSQL trusts local connections, so libpq never sends this password; it is
# in the DSN to prove that it stays out of the log, /status and /metrics.
DSN_PASSWORD = "it-secret-0815-dsn-password"
CONVERGE_TIMEOUT = 30.0
POLL_INTERVAL = 0.1
SCROLL_PAGE = 100  # points per scroll request: several pages for the larger collections
SHUTDOWN_TIMEOUT = 10  # seconds, written into the config
REAL_TIMEOUT_S = 10  # [qdrant] timeout, written into the config
UNCONFIGURED = "t_unconfigured"


# --- the tables under test -----------------------------------------------------------

def dense(size):
    return {"size": size, "distance": "Dot"}


TABLES = [
    Table(oracle.TableSpec("public.t_bigint", "c_bigint", ["id"], {"": "embedding"}),
          """CREATE TABLE t_bigint (
               id bigint PRIMARY KEY, embedding real[],
               b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric,
               t text, vc varchar(40), m mood, u uuid, ip inet, iv interval,
               j json, jb jsonb, d date, ts timestamp, tstz timestamptz, by bytea,
               ta text[], ia int[], ia2 int[][])""",
          {"vectors": dense(4)},
          ["collection = c_bigint", "id = id", "vector = embedding", "payload = *"]),
    Table(oracle.TableSpec("public.t_text", "c_text", ["sku"], {"": "embedding"}),
          """CREATE TABLE t_text (sku text PRIMARY KEY, embedding double precision[], name text,
               price numeric, tags text[], updated timestamptz, attrs jsonb)""",
          {"vectors": dense(3)},
          ["collection = c_text", "vector = embedding"]),  # key: the replica identity
    Table(oracle.TableSpec("public.t_uuid", "c_uuid", ["id"], {"": "embedding"}),
          """CREATE TABLE t_uuid (id uuid PRIMARY KEY, embedding vector, label varchar(20),
               score float8, seen date)""",
          {"vectors": dense(3)},
          ["collection = c_uuid", "id = id", "vector = embedding"]),
    Table(oracle.TableSpec("public.t_composite", "c_composite", ["region", "n"], {"": "embedding"}),
          """CREATE TABLE t_composite (region text, n int, embedding numeric[], qty int2, note text,
               PRIMARY KEY (region, n))""",
          {"vectors": dense(2)},
          ["collection = c_composite", "id = region, n", "vector = embedding", "payload = *"]),
    Table(oracle.TableSpec("public.t_uuid5", "c_uuid5", ["id"], {"": "embedding"}, id_mode="uuid5"),
          "CREATE TABLE t_uuid5 (id int PRIMARY KEY, embedding integer[], flag bool)",
          {"vectors": dense(3)},
          ["collection = c_uuid5", "id = id", "id_mode = uuid5", "vector = embedding"]),
    Table(oracle.TableSpec("public.t_named", "c_named", ["id"], {"img": "img", "txt": "txt", "sparse": "sparse"},
                           payload=["title"]),
          """CREATE TABLE t_named (id bigint PRIMARY KEY, title text, img real[], txt real[],
               sparse sparsevec, secret text)""",
          {"vectors": {"img": dense(2), "txt": dense(3)}, "sparse_vectors": {"sparse": {}}},
          ["collection = c_named", "vector.img = img", "vector.txt = txt", "vector.sparse = sparse",
           "payload = title"]),
    Table(oracle.TableSpec("public.t_toast", "t_toast", ["id"], {"": "embedding"}),
          """CREATE TABLE t_toast (id int PRIMARY KEY, embedding real[], note text);
             ALTER TABLE t_toast ALTER COLUMN embedding SET STORAGE EXTERNAL""",
          {"vectors": dense(600)},
          ["vector = embedding"]),  # collection defaults to the table name
]

TOAST_VEC = "ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, 600))"


# --- the test context ---------------------------------------------------------------------

class Context:
    def __init__(self, args, pg, q):
        self.args = args
        self.pg = pg
        self.q = q
        self.sync = None
        self.http_port = free_port()
        self.last_commit_lsn = None
        self.last_expected = None  # {collection: points} of the last converge()
        self.steps_passed = 0
        self.points_compared = 0
        self.skipped = 0  # steps that need the test server, against a real Qdrant

    # SQL ------------------------------------------------------------------------------
    def sql(self, text):
        return self.pg.psql(text, db=DB)

    def commit(self, body):
        """Runs body as one transaction; returns the WAL insert position just before its COMMIT
        (pg_current_wal_insert_lsn(): the commit record starts at or after it)."""
        out = self.sql("BEGIN;\n%s;\nSELECT pg_current_wal_insert_lsn();\nCOMMIT;\n" % body.strip().rstrip(";"))
        lsn = [line for line in out.splitlines() if line.strip()][-1].strip()
        self.last_commit_lsn = lsn
        return lsn

    def rollback(self, body):
        self.sql("BEGIN;\n%s;\nROLLBACK;\n" % body.strip().rstrip(";"))

    def slot(self):
        rows = self.pg.query_json("SELECT json_agg(s) FROM (SELECT active, confirmed_flush_lsn::text AS confirmed "
                                  "FROM pg_replication_slots WHERE slot_name = '%s') s" % SLOT)
        return rows[0] if rows else None

    def lsn_passed(self, lsn):
        """True when the slot's confirmed_flush_lsn is beyond lsn; also returns the slot's LSN."""
        out = self.sql("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '%s') > 0, confirmed_flush_lsn "
                       "FROM pg_replication_slots WHERE slot_name = '%s'" % (lsn, SLOT)).strip()
        if not out:
            return False, None
        passed, confirmed = out.split("|")
        return passed == "t", confirmed

    def require_alive(self):
        check(self.sync.alive(), "pg2qdrant exited with code %s; last log lines:\n%s"
              % (self.sync.proc.returncode, self.sync.log_tail()))

    def differences(self, expected, exclude=None):
        """{collection: "scroll failed" or (missing, extra, differing)} for every collection of
        expected {collection: points} that differs from them; the ids of exclude {collection: ids}
        do not count as extra."""
        exclude = exclude or {}
        out = {}
        for collection, points in expected.items():
            actual = scroll(self.q, collection, SCROLL_PAGE)
            if actual is None:
                out[collection] = "scroll failed"
                continue
            missing, extra, differing = oracle.diff_points(points, actual)
            extra = [x for x in extra if x not in exclude.get(collection, ())]
            if missing or extra or differing:
                out[collection] = (missing, extra, differing)
        return out

    def converge(self, step, lsn, tables=None, exclude=None):
        """Polls until each table's collection (every one of TABLES by default) equals the table
        and the slot passed lsn; then checks that nothing changes.  The points of exclude
        {collection: ids} are left out: the collection may hold them or not.  Returns the number
        of points compared; the expected points stay in last_expected."""
        exclude = exclude or {}
        expected = {}
        for t in (TABLES if tables is None else tables):
            points = expected_points(self.pg, t)
            for pid in exclude.get(t.spec.collection, ()):
                points.pop(pid, None)
            expected[t.spec.collection] = points
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        while True:
            self.require_alive()
            diffs = self.differences(expected, exclude)
            if not diffs:
                break
            check(time.monotonic() < deadline, "step '%s': collections did not converge within %ss\n%s\n"
                  "pg2qdrant log tail:\n%s" % (step, CONVERGE_TIMEOUT, format_diffs(diffs), self.sync.log_tail()))
            time.sleep(POLL_INTERVAL)
        while True:
            passed, confirmed = self.lsn_passed(lsn)
            if passed:
                break
            check(time.monotonic() < deadline, "step '%s': slot confirmed_flush_lsn %s did not pass %s "
                  "(taken before the last COMMIT) within %ss" % (step, confirmed, lsn, CONVERGE_TIMEOUT))
            time.sleep(POLL_INTERVAL)
        diffs = self.differences(expected, exclude)  # nothing may change once the commit is confirmed
        check(not diffs, "step '%s': collections changed after the commit was confirmed\n%s"
              % (step, format_diffs(diffs)))
        n = sum(len(p) for p in expected.values())
        self.points_compared += n
        self.last_expected = expected
        return n


def _short(value, limit=240):
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."


def format_diffs(diffs, few=5):
    lines = []
    for collection, d in sorted(diffs.items()):
        if isinstance(d, str):
            lines.append("  %s: %s" % (collection, d))
            continue
        missing, extra, differing = d
        lines.append("  collection %s: %d missing, %d extra, %d differing"
                     % (collection, len(missing), len(extra), len(differing)))
        for pid in missing[:few]:
            lines.append("    missing  %s" % _short(pid))
        for pid in extra[:few]:
            lines.append("    extra    %s" % _short(pid))
        for pid, what, exp, act in differing[:few]:
            lines.append("    differ   %s %s\n      expected %s\n      actual   %s"
                         % (_short(pid), what, _short(exp), _short(act)))
    return "\n".join(lines)


# --- setup ------------------------------------------------------------------------------------

def setup_database(ctx):
    ctx.pg.psql("CREATE DATABASE %s" % DB)
    ctx.pg.create_pgvector_types(DB)
    ddl = ["CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')"]
    ddl += [t.ddl for t in TABLES]
    ddl.append("CREATE TABLE %s (id int PRIMARY KEY, v real[], note text)" % UNCONFIGURED)
    names = ", ".join([t.spec.name for t in TABLES] + ["public." + UNCONFIGURED])
    ddl.append("CREATE PUBLICATION %s FOR TABLE %s" % (PUBLICATION, names))
    ctx.sql(";\n".join(ddl) + ";\n")
    for t in TABLES:
        load_columns(ctx.pg, t)


def create_collections(ctx):
    for t in TABLES:
        status, resp = ctx.q.request("PUT", "/collections/%s" % t.spec.collection, t.collection_body)
        check(status == 200, "creating collection %s: %s %s" % (t.spec.collection, status, resp))


def write_config(ctx):
    lines = [
        "; written by test/integration/run_integration.py",
        "[source]",
        "dsn = %s password=%s" % (ctx.pg.dsn(DB), DSN_PASSWORD),
        "slot = " + SLOT,
        "publication = " + PUBLICATION,
        "create_slot = true",
        "create_publication = false",
        "status_interval = 1s",
        "",
        "[qdrant]",
        "url = " + ctx.q.url,
        "api_key = " + API_KEY,
        "timeout = %ds" % REAL_TIMEOUT_S,
        "create_collections = false",
        "",
        "[sync]",
        "snapshot = never",
        "batch_points = 64",
        "flush_interval = 50ms",
        "on_error = stop",
        "dead_letter_file = " + os.path.join(ctx.args.workdir, "dead-letter.jsonl"),
        "shutdown_timeout = %ds" % SHUTDOWN_TIMEOUT,
        "",
        "[http]",
        "listen = 127.0.0.1:%d" % ctx.http_port,
    ]
    return write_config_file(os.path.join(ctx.args.workdir, "pg2qdrant.ini"), lines, TABLES)


def start_sync(ctx):
    """Starts pg2qdrant and waits until it streams from the slot."""
    ctx.sync.start()
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while True:
        ctx.require_alive()
        slot = ctx.slot()
        if slot and slot["active"]:
            return
        check(time.monotonic() < deadline, "pg2qdrant did not start streaming from slot %s within %ss:\n%s"
              % (SLOT, CONVERGE_TIMEOUT, ctx.sync.log_tail()))
        time.sleep(POLL_INTERVAL)


# --- the workload, one function per scenario --------------------------------------------------

def scenario_inserts(ctx):
    ctx.sql(r"""
INSERT INTO t_bigint VALUES
 (1, '{0.1,0.2,0.3,0.4}', true, 32767, -2147483648, 9223372036854775807, 1.1, 3.141592653589793,
  12345678901234567890.123456789, E'hello "world"\n\tünïcödé \\ back', 'varchar ✓', 'happy',
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '192.168.0.1/24', '1 day 02:03:04.5',
  '{"a": [1, 2.5, null], "b": "x", "c": {"d": false}}', '{"nested": {"k": true}, "n": 1e3, "s": "ü"}',
  '2024-02-29', '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.5+02', '\xdeadbeef',
  '{a,"b c",NULL,"q\"uote","NULL"}', '{1,2,NULL}', '{{1,2},{3,4}}'),
 (2, '{1,-2,3.5,0}', false, -1, 0, -9223372036854775808, '-Infinity', 'Infinity', 'NaN', '', '', 'sad',
  '00000000-0000-0000-0000-000000000000', '::1', '-3 mons +04:05:06', '"just a string"', 'null',
  'infinity', '-infinity', '1999-12-31 23:59:59.999999-08', '\x', '{}', '{}', '{{NULL,1}}'),
 (3, '{0,0,0,1}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (-7, '{7,7,7,7}', true, 7, 7, -7, 'NaN', '-0', 'Infinity', 'negative key', NULL, 'ok', NULL, '10.0.0.0/8',
  '00:00:00.000001', '[]', '{}', '-infinity', 'infinity', '2000-01-01 00:00:00+00', '\x00ff', '{""}', '{-1}',
  '{{1},{2}}'),
 (9007199254740993, '{1e-7,1e7,-0.5,0.25}', true, 0, 1, 9007199254740993, 1e-30, 1.7976931348623157e308,
  '-0.000000000000000001', 'beyond 2^53', 'x', 'happy', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '2001:db8::1/64', '1 year 2 mons 3 days', '123', '[1, "two", {"3": [4]}]', '0001-01-01',
  '2038-01-19 03:14:08', '1970-01-01 00:00:00.000001+00', '\x0102030405', '{NULL}', '{2147483647}',
  '{{5,6,7}}');
INSERT INTO t_text VALUES
 ('apple', '{0.5,0.25,0.125}', 'Apple', 9.99, '{red,green}', '2024-01-01 12:00:00.25+00', '{"kg": 0.2}'),
 ('süßigkeit', '{1,2,3}', 'Süßigkeit', 'NaN', '{}', '2024-06-30 23:59:59.999-05:30', '[1,2]'),
 ('with space "quoted"', '{3.3,2.2,1.1}', NULL, 100, NULL, NULL, NULL);
INSERT INTO t_uuid VALUES
 ('6f1c2ac0-43c5-4e0e-b3a9-8f0c7e6d5a41', '[1,2,3]', 'first', 0.5, '2020-02-02'),
 ('b2f4a1d6-0c79-4b0b-9d53-1e2f3a4b5c6d', '[-1.5,0,2.25]', 'second', -0.0, 'infinity');
INSERT INTO t_composite VALUES
 ('eu', 1, '{1.5,2.5}', 10, 'first'), ('süd', 42, '{0.125,3}', 20, 'zwei'), ('us', -3, '{9,8}', NULL, NULL);
INSERT INTO t_uuid5 VALUES (0, '{0,1,2}', true), (1, '{1,2,3}', false), (2, '{-4,5,-6}', NULL);
INSERT INTO t_named VALUES
 (1, 'one', '{1,2}', '{1,2,3}', '{1:0.5,7:0.2}/10', 'hidden'),
 (2, 'two', '{0.5,0.5}', '{3,2,1}', '{3:1.5}/5', 'hidden too');
INSERT INTO t_unconfigured VALUES (1, '{1,2}', 'not synced');
""")
    toast = "INSERT INTO t_toast VALUES (1, %s, 'first'), (2, %s, 'second')" % (TOAST_VEC, TOAST_VEC)
    return ctx.commit(toast)


def scenario_updates(ctx):
    ctx.sql(r"""
UPDATE t_bigint SET t = 'changed', b = false, jb = '{"v": 2}', tstz = '2025-05-05 05:05:05.05+05' WHERE id = 1;
UPDATE t_bigint SET embedding = '{4,3,2,1}' WHERE id = 2;
UPDATE t_text SET price = 10.49, tags = '{red}' WHERE sku = 'apple';
UPDATE t_uuid SET label = 'renamed', embedding = '[3,2,1]' WHERE label = 'first';
UPDATE t_composite SET note = 'updated', qty = qty + 1 WHERE region = 'süd';
UPDATE t_uuid5 SET flag = true WHERE id = 2;
UPDATE t_named SET title = 'uno', sparse = '{2:1,10:-1}/10' WHERE id = 1;
UPDATE t_named SET secret = 'only an unmapped column changes' WHERE id = 2;
UPDATE t_unconfigured SET note = 'still not synced';
UPDATE t_toast SET note = 'first, edited' WHERE id = 1;
""")
    # Only the note changes: the TOASTed embedding arrives as 'unchanged' ('u').
    return ctx.commit("UPDATE t_toast SET note = 'second, edited' WHERE id = 2;\n"
                      "UPDATE t_toast SET embedding = %s WHERE id = 1" % TOAST_VEC)


def scenario_deletes(ctx):
    ctx.sql("""
DELETE FROM t_bigint WHERE id = 3;
DELETE FROM t_text WHERE sku = 'apple';
DELETE FROM t_uuid WHERE label = 'second';
DELETE FROM t_composite WHERE region = 'us' AND n = -3;
DELETE FROM t_named WHERE id = 2;
DELETE FROM t_unconfigured WHERE id = 1;
""")
    return ctx.commit("DELETE FROM t_toast WHERE id = 2")


def scenario_key_changes(ctx):
    ctx.sql("""
UPDATE t_bigint SET id = 10 WHERE id = 1;
UPDATE t_bigint SET id = -8 WHERE id = -7;
UPDATE t_bigint SET id = 11 WHERE id = 9007199254740993;
UPDATE t_text SET sku = 'süßigkeit-neu' WHERE sku = 'süßigkeit';
UPDATE t_uuid SET id = '11111111-2222-3333-4444-555555555555' WHERE label = 'renamed';
UPDATE t_composite SET n = 2 WHERE region = 'eu' AND n = 1;
UPDATE t_composite SET region = 'nord', note = 'moved' WHERE region = 'süd';
UPDATE t_uuid5 SET id = 5 WHERE id = 1;
UPDATE t_named SET id = 3 WHERE id = 1;
""")
    # A key change while the TOASTed vector is unchanged: the new point needs the row's vector.
    return ctx.commit("UPDATE t_toast SET id = 3 WHERE id = 1")


def scenario_null_vectors(ctx):
    ctx.sql("""
INSERT INTO t_bigint (id, embedding, t) VALUES (20, NULL, 'born without a vector');
UPDATE t_bigint SET embedding = NULL WHERE id = 2;
INSERT INTO t_text (sku, embedding, name) VALUES ('nullvec', NULL, 'no vector');
UPDATE t_uuid SET embedding = NULL WHERE label = 'renamed';
UPDATE t_uuid5 SET embedding = NULL WHERE id = 0;
INSERT INTO t_named VALUES (9, 'every named vector NULL', NULL, NULL, NULL, NULL);
""")
    # One of three named vectors NULL: the point stays, without that vector.
    return ctx.commit("UPDATE t_named SET sparse = NULL WHERE id = 3")


def scenario_vectors_back_from_null(ctx):
    ctx.sql("""
UPDATE t_bigint SET embedding = '{2,2,2,2}' WHERE id IN (2, 20);
UPDATE t_text SET embedding = '{0,0,1}' WHERE sku = 'nullvec';
UPDATE t_uuid SET embedding = '[0.5,0.5,0.5]' WHERE label = 'renamed';
UPDATE t_uuid5 SET embedding = '{9,9,9}' WHERE id = 0;
UPDATE t_named SET img = '{9,9}' WHERE id = 9;
""")
    return ctx.commit("UPDATE t_named SET sparse = '{5:0.75}/10' WHERE id = 3")


def scenario_many_small_transactions(ctx):
    ctx.sql("".join("UPDATE t_bigint SET i4 = %d WHERE id = 10;\n"
                    "INSERT INTO t_composite VALUES ('small', %d, '{%d,1}', %d, 'autocommit');\n"
                    % (i, i, i, i % 100) for i in range(100)))
    return ctx.commit("UPDATE t_composite SET note = 'last of many' WHERE region = 'small' AND n = 99")


def scenario_multi_row_transaction(ctx):
    return ctx.commit("""
INSERT INTO t_bigint (id, embedding, t, i4)
  SELECT g, ARRAY[g, g + 0.5, -g, 1]::real[], 'bulk ' || g, g FROM generate_series(100, 399) g;
UPDATE t_bigint SET t = t || ' updated', f8 = id / 3.0 WHERE id BETWEEN 100 AND 149;
DELETE FROM t_bigint WHERE id BETWEEN 150 AND 199;
INSERT INTO t_text VALUES ('multi-1', '{1,1,1}', 'once', 1, '{a}', now(), '{}');
UPDATE t_text SET name = 'twice' WHERE sku = 'multi-1';
UPDATE t_text SET name = 'three times', price = 3 WHERE sku = 'multi-1';
INSERT INTO t_composite SELECT 'tx', g, ARRAY[g, -g]::numeric[], g, 'in a transaction' FROM generate_series(1, 20) g;
INSERT INTO t_uuid5 VALUES (100, '{1,0,0}', true);
DELETE FROM t_uuid5 WHERE id = 100;
SAVEPOINT s1;
INSERT INTO t_bigint (id, embedding, t) VALUES (500, '{5,5,5,5}', 'rolled back to savepoint');
UPDATE t_text SET name = 'rolled back to savepoint' WHERE sku = 'multi-1';
ROLLBACK TO SAVEPOINT s1;
INSERT INTO t_unconfigured VALUES (2, '{1,1}', 'in the transaction');
INSERT INTO t_named VALUES (4, 'four', '{4,4}', '{4,4,4}', '{1:1,2:2,3:3}/3', 's')
""")


def scenario_rolled_back_transaction(ctx):
    ctx.rollback("""
INSERT INTO t_bigint (id, embedding, t) VALUES (600, '{6,6,6,6}', 'never committed');
UPDATE t_text SET name = 'never committed';
DELETE FROM t_composite;
UPDATE t_uuid5 SET id = id + 1000;
TRUNCATE t_named
""")
    # A committed change after it, so that the stream demonstrably passed the rollback.
    return ctx.commit("UPDATE t_uuid5 SET flag = NOT coalesce(flag, false) WHERE id = 2")


def scenario_truncate(ctx):
    ctx.sql("TRUNCATE t_bigint;\nTRUNCATE t_text, t_named, t_unconfigured;\n")
    return ctx.commit("TRUNCATE t_toast")


def scenario_inserts_after_truncate(ctx):
    ctx.sql("""
INSERT INTO t_bigint (id, embedding, t, m, ts) VALUES
  (1, '{1,1,1,1}', 'after truncate', 'ok', '2024-01-01 00:00:00'), (2, '{2,2,2,2}', 'again', NULL, NULL);
INSERT INTO t_text (sku, embedding, name) VALUES ('apple', '{1,2,3}', 'back again');
INSERT INTO t_named VALUES (1, 'after truncate', '{1,0}', '{0,1,0}', '{4:4}/4', NULL);
INSERT INTO t_unconfigured VALUES (3, '{3,3}', 'after truncate');
""")
    return ctx.commit("INSERT INTO t_toast VALUES (7, %s, 'after truncate')" % TOAST_VEC)


def http_get(ctx, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (ctx.http_port, path), timeout=5) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except OSError as e:
        return None, str(e)


def skip_step(ctx, why):
    log("         (skipped against a real Qdrant: %s)" % why)
    ctx.skipped += 1
    return None


def request_log_mark(ctx):
    """The current end of the test server's request log."""
    return os.path.getsize(ctx.q.request_log)


def wait_for_fault_served(ctx, mark, status, what):
    """Waits until the server has logged a request answered with status (0: dropped)
    after mark, i.e. pg2qdrant really met the injected fault."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while True:
        ctx.require_alive()
        with open(ctx.q.request_log) as f:
            f.seek(mark)
            served = [json.loads(line) for line in f if line.endswith("\n")]
        if any(r.get("status") == status for r in served):
            return
        check(time.monotonic() < deadline, "%s: the test server never answered a write with %s" % (what, status))
        time.sleep(POLL_INTERVAL)


def scenario_qdrant_5xx(ctx):
    if ctx.q.real:  # the outage from outside: Qdrant killed (kill -9) and restarted from its WAL
        if ctx.q.proc is None:
            return skip_step(ctx, "a Qdrant outage needs P2Q_QDRANT_BIN")
        ctx.q.kill9()
        lsn = ctx.commit("UPDATE t_bigint SET t = 'written through an outage' WHERE id = 1")
        time.sleep(1.5)  # pg2qdrant meets the refused connection and retries
        ctx.require_alive()
        ctx.q.restart()
        return lsn
    mark = request_log_mark(ctx)
    ctx.q.fault(fail_next=2, status=503, error="Service internal error: injected by the test")
    lsn = ctx.commit("UPDATE t_bigint SET t = 'written through 503s' WHERE id = 1")
    wait_for_fault_served(ctx, mark, 503, "503 fault")
    return lsn


def scenario_qdrant_429_retry_after(ctx):
    if ctx.q.real:
        return skip_step(ctx, "a 429 with Retry-After needs the test server's fault injection")
    mark = request_log_mark(ctx)
    ctx.q.fault(fail_next=1, status=429, error="Rate limiting exceeded: injected", retry_after=1)
    t0 = time.monotonic()
    lsn = ctx.commit("UPDATE t_bigint SET t = 'written after a 429' WHERE id = 2")
    wait_for_fault_served(ctx, mark, 429, "429 fault")
    ctx.converge("429 + Retry-After", lsn)
    check(time.monotonic() - t0 >= 0.9, "a 429 with Retry-After: 1 was retried sooner than 1 s")
    return lsn


def scenario_qdrant_dropped_connection(ctx):
    if ctx.q.real:  # a hung server: SIGSTOP longer than pg2qdrant's timeout, then SIGCONT
        if ctx.q.proc is None:
            return skip_step(ctx, "a hung Qdrant needs P2Q_QDRANT_BIN")
        ctx.q.pause()
        lsn = ctx.commit("UPDATE t_bigint SET t = 'written after a hung server' WHERE id = 1")
        time.sleep(REAL_TIMEOUT_S + 1.5)
        ctx.q.resume()
        return lsn
    mark = request_log_mark(ctx)
    ctx.q.fault(drop_next=1)
    lsn = ctx.commit("UPDATE t_bigint SET t = 'written after a dropped connection' WHERE id = 1")
    wait_for_fault_served(ctx, mark, 0, "dropped connection")
    return lsn


def scenario_unconfigured_table_skipped(ctx):
    ctx.require_alive()
    status, _ = ctx.q.request("GET", "/collections/%s" % UNCONFIGURED)
    check(status == 404, "a collection for the unconfigured table exists (GET answered %s)" % status)
    mentions = [line for line in ctx.sync.log_text().splitlines() if UNCONFIGURED in line]
    check(mentions, "the skipped table %s is never named in pg2qdrant's log" % UNCONFIGURED)
    check(len(mentions) <= 2, "the skipped table is logged per change, not once (%d lines):\n%s"
          % (len(mentions), "\n".join(mentions[:5])))
    return None


METRIC_FAMILIES = ["pg2qdrant_changes_total", "pg2qdrant_batches_total", "pg2qdrant_batch_duration_seconds",
                   "pg2qdrant_confirmed_lsn", "pg2qdrant_lag_bytes", "pg2qdrant_replication_lag_seconds",
                   "pg2qdrant_inflight_bytes", "pg2qdrant_qdrant_retries_total", "pg2qdrant_dead_letters_total",
                   "pg2qdrant_up", "pg2qdrant_backfill_rows_total"]
STATUS_KEYS = ["slot", "state", "received_lsn", "confirmed_lsn", "server_wal_end", "lag_bytes", "lag_seconds",
               "inflight_bytes", "inflight_txns", "snapshot", "changes", "batches", "retries", "dead_letters",
               "last_error", "uptime_seconds", "backfill", "rebuild"]


def lsn_number(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def scrape(ctx):
    """GET /metrics: (text, {sample name with labels: value})."""
    status, body = http_get(ctx, "/metrics")
    check(status == 200, "GET /metrics answered %s %s" % (status, body[:200]))
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return body, samples


def wait_http(ctx, path, want, what, contains=""):
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while True:
        ctx.require_alive()
        status, body = http_get(ctx, path)
        if status == want and contains in body:
            return body
        check(time.monotonic() < deadline, "%s: GET %s answered %s %r, want %s with %r"
              % (what, path, status, body[:300], want, contains))
        time.sleep(0.05)


def check_no_secrets(where, text):
    check(API_KEY not in text, "%s shows the Qdrant API key" % where)
    check(DSN_PASSWORD not in text, "%s shows the DSN password" % where)


def scenario_http_endpoints(ctx):
    wait_http(ctx, "/livez", 200, "liveness")
    wait_http(ctx, "/readyz", 200, "readiness while streaming")
    status, body = http_get(ctx, "/status")
    check(status == 200, "GET /status answered %s" % status)
    doc = json.loads(body)
    check(sorted(doc) == sorted(STATUS_KEYS), "/status keys %s, want %s" % (sorted(doc), sorted(STATUS_KEYS)))
    check(doc.get("slot") == SLOT, "/status slot is %r, want %r" % (doc.get("slot"), SLOT))
    check(doc.get("state") == "streaming", "/status state is %r while streaming" % doc.get("state"))
    check(re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", doc["confirmed_lsn"]), "/status confirmed_lsn %r" % doc["confirmed_lsn"])
    check_no_secrets("/status", body)

    # /metrics during the sync: every family of SPEC §6, and the counters move with a change.
    text, before = scrape(ctx)
    for name in METRIC_FAMILIES:
        check("\n# TYPE %s " % name in "\n" + text, "/metrics lacks the family %s" % name)
    inserts = 'pg2qdrant_changes_total{table="public.t_bigint",op="insert"}'
    ok = 'pg2qdrant_batches_total{result="ok"}'
    lsn = ctx.commit("INSERT INTO t_bigint (id, embedding, t) VALUES (43, '{4,3,4,3}', 'counted by /metrics')")
    ctx.converge("http endpoints: insert", lsn)
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while True:
        text, after = scrape(ctx)
        if after["pg2qdrant_confirmed_lsn"] > lsn_number(lsn):
            break
        check(time.monotonic() < deadline, "pg2qdrant_confirmed_lsn %d did not pass %s"
              % (after["pg2qdrant_confirmed_lsn"], lsn))
        time.sleep(0.05)
    check(after.get(inserts, 0) > before.get(inserts, 0), "%s did not grow: %s -> %s"
          % (inserts, before.get(inserts), after.get(inserts)))
    check(after[ok] > before[ok], "%s did not grow" % ok)
    check(after["pg2qdrant_batch_duration_seconds_count"] > before["pg2qdrant_batch_duration_seconds_count"],
          "the batch duration histogram did not count the batch")
    check(after["pg2qdrant_up"] == 1, "pg2qdrant_up is %s while ready" % after["pg2qdrant_up"])

    # A Qdrant outage: not ready with Qdrant's answer as the reason, ready again after it.
    if ctx.q.real:
        return http_outage_real(ctx, after)
    ctx.q.fault(fail_next=1000, status=503, error="Service internal error: injected outage")
    lsn = ctx.commit("UPDATE t_bigint SET t = 'written after an outage' WHERE id = 43")
    reason = wait_http(ctx, "/readyz", 503, "readiness during a Qdrant outage", contains="qdrant: HTTP 503")
    check("injected outage" in reason, "/readyz reason %r lacks Qdrant's message" % reason)
    _, during = scrape(ctx)
    check(during["pg2qdrant_up"] == 0, "pg2qdrant_up is %s during the outage" % during["pg2qdrant_up"])
    check(during["pg2qdrant_qdrant_retries_total"] > after["pg2qdrant_qdrant_retries_total"],
          "pg2qdrant_qdrant_retries_total did not grow during the outage")
    check(during['pg2qdrant_batches_total{result="retry"}'] > after['pg2qdrant_batches_total{result="retry"}'],
          "batches_total{result=retry} did not grow during the outage")
    doc = json.loads(http_get(ctx, "/status")[1])
    check("injected outage" in (doc.get("last_error") or ""), "/status last_error is %r" % doc.get("last_error"))
    check(doc.get("state") == "retrying", "/status state is %r during the outage" % doc.get("state"))
    ctx.q.fault(fail_next=0)
    return ready_again_without_secrets(ctx, lsn)


def ready_again_without_secrets(ctx, lsn):
    """After the outage: ready again, and no secret in /metrics, /status or the log."""
    wait_http(ctx, "/readyz", 200, "readiness after the outage")
    text, _ = scrape(ctx)
    check_no_secrets("/metrics", text)
    check_no_secrets("/status", http_get(ctx, "/status")[1])
    check_no_secrets("pg2qdrant's log", ctx.sync.log_text())
    return lsn


def http_outage_real(ctx, after):
    """The outage half of the endpoint step against a real Qdrant: killed, so the reason is the
    refused connection rather than an injected 503."""
    if ctx.q.proc is None:
        return skip_step(ctx, "a Qdrant outage needs P2Q_QDRANT_BIN")
    ctx.q.kill9()
    lsn = ctx.commit("UPDATE t_bigint SET t = 'written after an outage' WHERE id = 43")
    wait_http(ctx, "/readyz", 503, "readiness during a Qdrant outage", contains="qdrant")
    _, during = scrape(ctx)
    check(during["pg2qdrant_up"] == 0, "pg2qdrant_up is %s during the outage" % during["pg2qdrant_up"])
    check(during["pg2qdrant_qdrant_retries_total"] > after["pg2qdrant_qdrant_retries_total"],
          "pg2qdrant_qdrant_retries_total did not grow during the outage")
    doc = json.loads(http_get(ctx, "/status")[1])
    check(doc.get("state") == "retrying", "/status state is %r during the outage" % doc.get("state"))
    ctx.q.restart()
    return ready_again_without_secrets(ctx, lsn)


def scenario_clean_shutdown(ctx):
    rc, took = ctx.sync.terminate(SHUTDOWN_TIMEOUT + 5)
    if rc is None:
        ctx.sync.kill9()
    check(rc == 0, "pg2qdrant exit code after SIGTERM is %s (want 0); log tail:\n%s" % (rc, ctx.sync.log_tail()))
    check(took <= SHUTDOWN_TIMEOUT + 1, "SIGTERM took %.1fs, beyond shutdown_timeout %ss" % (took, SHUTDOWN_TIMEOUT))
    deadline = time.monotonic() + 10
    while ctx.slot()["active"]:
        check(time.monotonic() < deadline, "slot %s still active 10 s after pg2qdrant exited" % SLOT)
        time.sleep(POLL_INTERVAL)
    passed, confirmed = ctx.lsn_passed(ctx.last_commit_lsn)
    check(passed, "after exit the slot's confirmed_flush_lsn %s has not passed the last commit (%s)"
          % (confirmed, ctx.last_commit_lsn))
    check(API_KEY not in ctx.sync.log_text(), "the Qdrant API key appears in pg2qdrant's log")
    check(DSN_PASSWORD not in ctx.sync.log_text(), "the DSN password appears in pg2qdrant's log")
    log("    exit 0 after %.2fs, confirmed_flush_lsn %s" % (took, confirmed))
    return None


def scenario_resume_after_restart(ctx):
    # A change made while pg2qdrant is down must arrive after the restart.
    ctx.sql("UPDATE t_text SET name = 'changed while stopped' WHERE sku = 'apple'")
    start_sync(ctx)
    return ctx.commit("INSERT INTO t_bigint (id, embedding, t) VALUES (42, '{4,2,4,2}', 'after restart')")


# (name, function, converge afterwards?)
STEPS = [
    ("inserts", scenario_inserts, True),
    ("updates", scenario_updates, True),
    ("deletes", scenario_deletes, True),
    ("key changes", scenario_key_changes, True),
    ("NULL vectors", scenario_null_vectors, True),
    ("vectors back from NULL", scenario_vectors_back_from_null, True),
    ("many small transactions", scenario_many_small_transactions, True),
    ("multi-row transaction", scenario_multi_row_transaction, True),
    ("rolled-back transaction", scenario_rolled_back_transaction, True),
    ("truncate", scenario_truncate, True),
    ("inserts after truncate", scenario_inserts_after_truncate, True),
    ("Qdrant 503s", scenario_qdrant_5xx, True),
    ("Qdrant 429 + Retry-After", scenario_qdrant_429_retry_after, False),
    ("dropped connection", scenario_qdrant_dropped_connection, True),
    ("unconfigured table skipped", scenario_unconfigured_table_skipped, False),
    ("clean shutdown (SIGTERM)", scenario_clean_shutdown, False),
    ("resume after restart", scenario_resume_after_restart, True),
    ("http endpoints", scenario_http_endpoints, True),
]


def validate_requests(ctx):
    """Runs openapi_check.py over the test server's request log; returns the number validated
    (0 against a real Qdrant: it has no request log, and validates every body itself)."""
    if ctx.q.request_log is None:
        log("  OpenAPI validation of the request log: none against a real Qdrant (it validates every body)")
        return 0
    script = os.path.join(HERE, "openapi_check.py")
    check(os.path.exists(script), "missing %s" % script)
    python = sys.executable
    if subprocess.run([python, "-c", "import jsonschema"], capture_output=True).returncode != 0:
        python = "/usr/bin/python3"  # Debian's python3 has python3-jsonschema
    r = subprocess.run([python, script, "--openapi", ctx.args.openapi, ctx.q.request_log],
                       capture_output=True, text=True)
    output = (r.stdout + r.stderr).strip()
    if r.returncode == 0 and "SKIP" in r.stdout:
        log("  OpenAPI validation SKIPPED: %s" % output)
        return 0
    check(r.returncode == 0, "requests violate Qdrant's OpenAPI document:\n%s" % output[-4000:])
    log("  " + output.replace("\n", "\n  "))
    found = re.search(r"validated (\d+)", output)
    return int(found.group(1)) if found else 0


def run(args):
    if os.path.isdir(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    check(oracle.selftest(), "oracle self-test")
    t_start = time.monotonic()
    log("integration: starting PostgreSQL 15 and the Qdrant test server in %s" % args.workdir)
    with Postgres(args.workdir) as pg, QdrantServer(args.qdrant_server, args.workdir, api_key=API_KEY) as q:
        ctx = Context(args, pg, q)
        setup_database(ctx)
        create_collections(ctx)
        ctx.sync = Sync(args.pg2qdrant, write_config(ctx), args.workdir, args.log_level, tail_lines=30)
        try:
            start_sync(ctx)
            log("  pg2qdrant streams from slot %s (postgres port %d, qdrant %s)" % (SLOT, pg.port, q.url))
            for i, (name, fn, converge) in enumerate(STEPS, 1):
                t0 = time.monotonic()
                lsn = fn(ctx)
                detail = ""
                if converge:
                    detail = "%d points equal their rows, " % ctx.converge(name, lsn)
                ctx.steps_passed += 1
                log("  [%2d/%d] ok   %-28s %s%.2fs" % (i, len(STEPS), name, detail, time.monotonic() - t0))
                if args.stop_after and name == args.stop_after:
                    log("  stopping after step '%s' as asked" % name)
                    break
            if ctx.sync.alive():
                rc, took = ctx.sync.terminate(SHUTDOWN_TIMEOUT + 5)
                check(rc == 0, "the restarted pg2qdrant exited with %s on SIGTERM; log tail:\n%s"
                      % (rc, ctx.sync.log_tail()))
        finally:
            if ctx.sync.alive():
                ctx.sync.terminate(SHUTDOWN_TIMEOUT + 5)
                ctx.sync.kill9()
        q.stop()  # flushes the request log
        validated = validate_requests(ctx)
    log("integration: PASSED %d/%d steps (%d skipped), %d points compared, %d requests validated, %.1fs, %s"
        % (ctx.steps_passed, len(STEPS), ctx.skipped, ctx.points_compared, validated, time.monotonic() - t_start,
           "real Qdrant %s" % q.version if q.real else "the Qdrant test server"))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


def main():
    p = argument_parser(__doc__.splitlines()[0])
    p.add_argument("--log-level", default="info", help="pg2qdrant's --log-level")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, config, request log)")
    p.add_argument("--stop-after", metavar="STEP", help="stop after the named step (see STEPS)")
    return run_main("integration", p, run)


if __name__ == "__main__":
    sys.exit(main())
