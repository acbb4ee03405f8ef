#!/usr/bin/env python3
"""`pg2qdrant reconcile`: every kind of drift made behind the sync's back is found, counted
and listed; --fix repairs it; --output json parses; exit codes of SPEC §1.

    test_reconcile.py --pg2qdrant BIN --qdrant-server BIN --openapi PATH --workdir DIR

The collections are filled with `pg2qdrant snapshot`, then drift is made both in the Qdrant
test server (through its REST API: a deleted point, a changed payload, changed vectors, an
extra point) and in PostgreSQL without a sync running (a new row, a deleted row, an updated
row, a row whose vector became NULL).  After --fix every collection must equal its table
under the oracle in expected.py.
"""

import json
import os
import shutil
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from p2q_common import (API_KEY, DB, Table, TestFailure, argument_parser, assert_equal, check,  # noqa: E402
                        create_collections, load_columns, log, oracle, run_cmd, run_main, validate_requests,
                        write_config)
from harness import Postgres, QdrantServer  # noqa: E402

TABLES = [
    Table(oracle.TableSpec("public.r_items", "r_items", ["id"], {"": "embedding"}),
          """CREATE TABLE r_items (id bigint PRIMARY KEY, embedding real[], name text, price numeric,
               tags text[], meta jsonb, seen timestamptz, f4 float4, f8 float8)""",
          {"vectors": {"size": 4, "distance": "Dot"}},
          ["collection = r_items", "vector = embedding"]),
    Table(oracle.TableSpec("public.r_docs", "r_docs", ["sku"], {"": "embedding"}),
          "CREATE TABLE r_docs (sku text PRIMARY KEY, embedding vector, title text)",
          {"vectors": {"size": 3, "distance": "Cosine"}},
          ["collection = r_docs", "vector = embedding"]),
    Table(oracle.TableSpec("public.r_named", "r_named", ["id"], {"a": "a", "s": "s"}, payload=["title"]),
          "CREATE TABLE r_named (id int PRIMARY KEY, title text, a real[], s sparsevec, secret text)",
          {"vectors": {"a": {"size": 2, "distance": "Euclid"}}, "sparse_vectors": {"s": {}}},
          ["collection = r_named", "vector.a = a", "vector.s = s", "payload = title"]),
]

N_ITEMS = 3000  # more than one scroll page and one cursor page


def docs_id(sku):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, sku))


def setup(pg):
    pg.psql("CREATE DATABASE %s" % DB)
    pg.create_pgvector_types(DB)
    pg.psql(";\n".join(t.ddl for t in TABLES) + ";\n", db=DB)
    pg.psql("""
INSERT INTO r_items SELECT g, ARRAY[g, g / 7.0, -g, 0.1]::real[], 'item ' || g, g * 1.25, ARRAY['a', g::text],
  jsonb_build_object('g', g, 'half', g / 2.0, 'list', jsonb_build_array(1, 'x', null)),
  '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute', g / 3.0, g / 7.0
  FROM generate_series(1, %d) g;
INSERT INTO r_items (id, embedding, name) VALUES (0, NULL, 'no vector');
INSERT INTO r_docs SELECT 'sku-' || g, ('[' || g || ',' || (g %% 5) || ',0.5]')::vector, 'doc ' || g FROM generate_series(1, 60) g;
INSERT INTO r_named SELECT g, 'named ' || g, ARRAY[g, 1]::real[], ('{' || (g %% 9 + 1) || ':0.5}/10')::sparsevec, 's'
  FROM generate_series(1, 30) g;
INSERT INTO r_named VALUES (31, 'only sparse', NULL, '{2:1.5}/10', 's');
""" % N_ITEMS, db=DB)
    for t in TABLES:
        load_columns(pg, t)


def reconcile(args, cfg, *extra):
    return run_cmd(args.pg2qdrant, ["reconcile", "-c", cfg] + list(extra))


def reconcile_json(args, cfg, *extra):
    rc, out, err = reconcile(args, cfg, "--output", "json", *extra)
    try:
        doc = json.loads(out)
    except ValueError:
        raise TestFailure("reconcile --output json printed no JSON (exit %s):\n%s\n%s" % (rc, out, err[-2000:]))
    return rc, doc, err


def table_report(doc, name):
    for t in doc["tables"]:
        if t["table"] == name:
            return t
    raise TestFailure("reconcile report has no table %s: %s" % (name, json.dumps(doc)[:500]))


def sample_ids(report, kind):
    return [oracle.normalize_id(s["id"]) for s in report[kind]["sample"]]


def make_drift(pg, q):
    """Drift behind the sync's back; returns the expected counts per table."""
    def req(method, path, body):
        status, resp = q.request(method, path + "?wait=true", body)
        check(status == 200, "%s %s: %s %s" % (method, path, status, resp))

    # Qdrant side
    req("POST", "/collections/r_items/points/delete", {"points": [5]})                           # missing
    req("POST", "/collections/r_items/points/payload", {"payload": {"name": "tampered"}, "points": [6]})  # stale
    req("PUT", "/collections/r_items/points/vectors", {"points": [{"id": 7, "vector": [9, 9, 9, 9]}]})  # stale
    req("PUT", "/collections/r_items/points",                                                    # orphaned
        {"points": [{"id": 999999, "vector": [1, 2, 3, 4], "payload": {"id": 999999}}]})
    req("PUT", "/collections/r_items/points",                                                    # orphaned: NULL vector row
        {"points": [{"id": 0, "vector": [1, 1, 1, 1], "payload": {"id": 0}}]})
    # a payload with the same values in another key order and 8 -> 8.0 is NOT drift
    status, resp = q.request("POST", "/collections/r_items/points", {"ids": [8], "with_payload": True,
                                                                     "with_vector": True})
    p8 = resp["result"][0]
    reordered = dict(reversed(list(p8["payload"].items())))
    reordered["id"] = 8.0
    req("PUT", "/collections/r_items/points", {"points": [{"id": 8, "vector": p8["vector"], "payload": reordered}]})
    # Cosine: a tiny change below the tolerance is not drift, a real one is
    req("PUT", "/collections/r_docs/points/vectors", {"points": [{"id": docs_id("sku-3"), "vector": [1, 0, 0]}]})
    req("POST", "/collections/r_docs/points/payload", {"payload": {"extra": True}, "points": [docs_id("sku-4")]})
    # named: the sparse vector changed, a named vector removed
    req("PUT", "/collections/r_named/points/vectors",
        {"points": [{"id": 2, "vector": {"s": {"indices": [0], "values": [0.25]}}}]})
    req("POST", "/collections/r_named/points/vectors/delete", {"points": [3], "vector": ["a"]})

    # PostgreSQL side (no sync running)
    pg.psql("""
INSERT INTO r_items (id, embedding, name) VALUES (5000, '{1,2,3,4}', 'new row');     -- missing
DELETE FROM r_items WHERE id = 10;                                                   -- orphaned
UPDATE r_items SET price = 1.5 WHERE id = 11;                                        -- stale (payload)
UPDATE r_items SET embedding = NULL WHERE id = 12;                                   -- orphaned (NULL vector)
UPDATE r_docs SET embedding = '[2,4,1]' WHERE sku = 'sku-5';                         -- stale (vector)
UPDATE r_docs SET embedding = '[12,2,1]' WHERE sku = 'sku-6';                         -- same direction: in sync
UPDATE r_named SET title = 'renamed' WHERE id = 4;                                   -- stale
UPDATE r_named SET secret = 'not mapped' WHERE id = 5;                               -- not drift
""", db=DB)
    return {
        "public.r_items": {"missing": [5, 5000], "orphaned": [999999, 0, 10, 12], "stale": [6, 7, 11]},
        "public.r_docs": {"missing": [], "orphaned": [], "stale": [docs_id("sku-3"), docs_id("sku-4"),
                                                                   docs_id("sku-5")]},
        "public.r_named": {"missing": [], "orphaned": [], "stale": [2, 3, 4]},
    }


BIG = Table(oracle.TableSpec("public.r_big", "r_big", ["id"], {"": "embedding"}),
            "CREATE TABLE r_big (id int PRIMARY KEY, embedding real[], n numeric(20), j jsonb, f numeric)",
            {"vectors": {"size": 2, "distance": "Dot"}},
            ["collection = r_big", "vector = embedding"])


def big_numbers(args, pg, q):
    """Payload integers in (2^63, 2^64) — a numeric(20) and jsonb values, which Qdrant keeps as u64 —
    read back exactly (issue 11 item 8): in sync, and a difference of 1 in the last digit is found."""
    pg.psql(BIG.ddl + ";\n" + """
INSERT INTO r_big VALUES
  (1, '{1,2}', 18446744073709551615, '{"u": 18446744073709551615, "m": 9223372036854775808, "l": [18446744073709551614]}', 1e24),
  (2, '{3,4}', 9223372036854775808, '{"neg": -9223372036854775808, "big": 100000000000000000000000}', 12345678901234567890123),
  (3, '{5,6}', 1, '{}', NULL);
""", db=DB)
    load_columns(pg, BIG)
    create_collections(q, [BIG])
    cfg = write_config(os.path.join(args.workdir, "pg2qdrant-big.ini"), pg, q, [BIG])
    rc, out, err = run_cmd(args.pg2qdrant, ["snapshot", "-c", cfg])
    check(rc == 0, "snapshot of r_big exited %s:\n%s" % (rc, err[-3000:]))
    status, resp = q.request("POST", "/collections/r_big/points", {"ids": [1], "with_payload": True})
    check(status == 200 and resp["result"][0]["payload"]["n"] == 18446744073709551615
          and resp["result"][0]["payload"]["j"]["u"] == 18446744073709551615,
          "r_big: the u64 values did not reach Qdrant exactly: %s" % (resp,))
    rc, doc, err = reconcile_json(args, cfg)
    check(rc == 0 and doc["in_sync"] is True,
          "u64 payload values: reconcile exit %s (want 0, in sync): %s\n%s" % (rc, json.dumps(doc)[:800], err[-1500:]))
    # One off in the last digit, in Qdrant: stale.
    status, _ = q.request("POST", "/collections/r_big/points/payload?wait=true",
                          {"payload": {"n": 18446744073709551614}, "points": [1]})
    check(status == 200, "cannot change r_big's payload")
    rc, doc, err = reconcile_json(args, cfg)
    rep = table_report(doc, "public.r_big")
    check(rc == 1 and rep["stale"]["count"] == 1 and sample_ids(rep, "stale") == [1],
          "u64 differing by one: exit %s report %s" % (rc, json.dumps(rep)[:800]))
    rc, out, err = reconcile(args, cfg, "--fix")
    check(rc == 0, "u64 --fix exited %s:\n%s" % (rc, err[-1500:]))
    rc, doc, err = reconcile_json(args, cfg)
    check(rc == 0 and doc["in_sync"] is True, "u64 after --fix: exit %s %s" % (rc, json.dumps(doc)[:500]))
    log("  ok   payload integers in (2^63, 2^64): in sync, a difference of one found and fixed")


def hostile_scrolls(args, cfg, q):
    """Test-server faults: a stuck scroll offset and an oversized page."""
    # A scroll whose next_page_offset does not advance is a protocol error, not an endless loop.
    q.fault(scroll_stuck_next=3)
    rc, out, err = reconcile(args, cfg, "--table", "public.r_items")
    check(rc == 2 and "does not advance" in err and "r_items" in err,
          "non-advancing scroll offset: exit %s %s" % (rc, err[-1500:]))
    q.fault(scroll_stuck_next=0)
    log("  ok   a scroll offset that does not advance: exit 2 naming the collection")

    # An answer above the client's 64 MiB cap (streamed by the test server) is abandoned as it
    # arrives; reconcile asks for the page again with half the limit.
    q.fault(raw_next=1, raw_path="/points/scroll", raw_status=200, raw_type="application/json",
            raw_body="[1,", raw_bytes=80 << 20)
    rc, out, err = reconcile(args, cfg, "--table", "public.r_items")
    check(rc == 0 and "larger than the response cap" in err,
          "oversized scroll page: exit %s (want 0 after halving) %s" % (rc, err[-1500:]))
    log("  ok   a scroll answer above the response cap: page asked again in halves, in sync")


def run(args):
    if os.path.isdir(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    t0 = time.monotonic()
    with Postgres(args.workdir) as pg, QdrantServer(args.qdrant_server, args.workdir, api_key=API_KEY) as q:
        setup(pg)
        create_collections(q, TABLES)
        cfg = write_config(os.path.join(args.workdir, "pg2qdrant.ini"), pg, q, TABLES,
                           sync_lines=["batch_points = 100"])

        rc, out, err = run_cmd(args.pg2qdrant, ["snapshot", "-c", cfg])
        check(rc == 0, "snapshot exited %s:\n%s" % (rc, err[-3000:]))
        assert_equal(pg, q, TABLES, "after the snapshot")
        log("  ok   snapshot fills every collection")

        rc, out, err = reconcile(args, cfg)
        check(rc == 0, "reconcile right after the snapshot exited %s (want 0):\n%s\n%s" % (rc, out, err[-2000:]))
        check(out.count("in sync") >= len(TABLES), "text report does not say in sync:\n%s" % out)
        rc, doc, err = reconcile_json(args, cfg)
        check(rc == 0 and doc["in_sync"] is True, "json report: exit %s %s" % (rc, json.dumps(doc)[:500]))
        check(table_report(doc, "public.r_items")["points"] == N_ITEMS,
              "r_items points %s, want %d" % (table_report(doc, "public.r_items")["points"], N_ITEMS))
        log("  ok   in sync after the snapshot: exit 0, text and json")

        want = make_drift(pg, q)
        rc, out, err = reconcile(args, cfg)
        check(rc == 1, "reconcile with drift exited %s (want 1):\n%s\n%s" % (rc, out, err[-2000:]))
        check("--fix" in out, "text report does not point at --fix:\n%s" % out)
        rc, doc, err = reconcile_json(args, cfg)
        check(rc == 1 and doc["in_sync"] is False, "json with drift: exit %s in_sync %s" % (rc, doc.get("in_sync")))
        for name, kinds in want.items():
            rep = table_report(doc, name)
            for kind, ids in kinds.items():
                check(rep[kind]["count"] == len(ids), "%s %s: count %s, want %d (%s); report %s"
                      % (name, kind, rep[kind]["count"], len(ids), ids, json.dumps(rep)[:1500]))
                got = sample_ids(rep, kind)
                check(sorted(map(str, got)) == sorted(map(str, ids)), "%s %s: sample %s, want %s"
                      % (name, kind, got, ids))
        check(doc["missing"] == 2 and doc["orphaned"] == 4 and doc["stale"] == 9,
              "json totals %s/%s/%s, want 2/4/9" % (doc["missing"], doc["orphaned"], doc["stale"]))
        items = table_report(doc, "public.r_items")
        check(items["stale"]["payload"] == 2 and items["stale"]["vector"] == 1,
              "r_items stale payload/vector %s/%s, want 2/1" % (items["stale"]["payload"], items["stale"]["vector"]))
        check(any(s.get("key") == "id=5000" for s in items["missing"]["sample"]), "missing sample lacks key id=5000")
        for line in ("missing   2", "orphaned  4", "stale     3"):
            check(line in out, "text report lacks %r:\n%s" % (line, out))
        log("  ok   drift found: exit 1, counts and samples per kind and table (text, json)")

        rc, doc, err = reconcile_json(args, cfg, "--table", "public.r_docs")
        check(rc == 1 and [t["table"] for t in doc["tables"]] == ["public.r_docs"],
              "--table public.r_docs: exit %s tables %s" % (rc, [t["table"] for t in doc["tables"]]))
        rc, doc, err = reconcile_json(args, cfg, "--table", "r_named", "--table", "public.r_named")
        check(rc == 1 and len(doc["tables"]) == 1, "--table given twice: %s" % json.dumps(doc)[:300])
        log("  ok   --table selects tables")

        rc, out, err = reconcile(args, cfg, "--table", "public.nope")
        check(rc == 2 and "public.nope" in err, "unknown --table: exit %s %s" % (rc, err[-500:]))
        rc, out, err = run_cmd(args.pg2qdrant, ["reconcile", "-c", cfg, "--output", "yaml"])
        check(rc == 2, "--output yaml: exit %s" % rc)
        rc, out, err = run_cmd(args.pg2qdrant, ["run", "-c", cfg, "--fix"])
        check(rc == 2, "run --fix: exit %s" % rc)
        log("  ok   usage errors exit 2")

        rc, out, err = reconcile(args, cfg, "--fix")
        check(rc == 0, "reconcile --fix exited %s (want 0):\n%s\n%s" % (rc, out, err[-3000:]))
        check("fixed" in out, "--fix report does not say fixed:\n%s" % out)
        assert_equal(pg, q, TABLES, "after reconcile --fix")
        rc, out, err = reconcile(args, cfg)
        check(rc == 0, "reconcile after --fix exited %s (want 0):\n%s" % (rc, out))
        log("  ok   --fix repairs everything; a second reconcile exits 0")

        if q.real:
            log("  skip hostile scroll answers (a stuck offset, an oversized page): test server faults")
        else:
            hostile_scrolls(args, cfg, q)

        big_numbers(args, pg, q)

        status, _ = q.request("DELETE", "/collections/r_named")
        check(status == 200, "cannot drop r_named")
        rc, out, err = reconcile(args, cfg)
        check(rc == 2 and "r_named" in err, "missing collection: exit %s %s" % (rc, err[-500:]))
        log("  ok   a missing collection is an error: exit 2")

        q.stop()
        log("  " + validate_requests(q, args.openapi))
    log("reconcile: PASSED in %.1fs" % (time.monotonic() - t0))
    shutil.rmtree(args.workdir, ignore_errors=True)


def main():
    return run_main("reconcile", argument_parser(), run)


if __name__ == "__main__":
    sys.exit(main())
