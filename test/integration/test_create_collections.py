#!/usr/bin/env python3
"""`[qdrant] create_collections` in `pg2qdrant run` (issue 3, item 5).

    test_create_collections.py --pg2qdrant BIN --qdrant-server BIN --openapi PATH --workdir DIR

1. With create_collections = false, a missing collection stops `run` at start with exit 2 and a
   message naming the collection.
2. With create_collections = true:
   - a table with rows: its collection is created at start from the first row's vector size,
     with the table's `distance`;
   - an empty table (real[] has no declared size): its collection is created when the first
     upsert meets "doesn't exist", from that upsert's vector;
   - named vectors (a dense and a sparse one) make a collection with "vectors" and
     "sparse_vectors";
   and every collection then equals its table (expected.py oracle).
3. A vector size that differs from an existing collection's stops `run` at start (exit 2).
4. `[table] alias = true` (SPEC §10): a missing alias is created as generation 1 `<alias>_g1` (from
   create_params when set, else from the table's vector sizes) and the alias in one POST
   /collections/aliases; the collections equal their tables through the alias; a rerun creates
   nothing; a plain collection under a name with alias = true stops `run` at start (exit 2) with
   the steps to move it behind an alias.
5. With real pgvector (P2Q_PGVECTOR=1 and the extension installed; skipped otherwise): an EMPTY
   table's vector(5), halfvec(4) and sparsevec(100) columns give their sizes by typmod, so the
   collection is created at start, before any row; rows then arrive equal to the table.
Every logged request body is validated against Qdrant's OpenAPI document.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from p2q_common import (DB, Table, TestFailure, check, differences, load_columns, log, oracle,  # noqa: E402
                        validate_requests, wait_until, write_config)
from harness import HarnessError, Postgres, QdrantServer, install_signal_cleanup  # noqa: E402

TABLES = [
    Table(oracle.TableSpec("public.cc_rows", "cc_rows", ["id"], {"": "embedding"}),
          "CREATE TABLE cc_rows (id bigint PRIMARY KEY, embedding real[], note text)",
          {"vectors": {"size": 3, "distance": "Euclid"}},
          ["collection = cc_rows", "vector = embedding", "distance = Euclid"]),
    Table(oracle.TableSpec("public.cc_empty", "cc_empty", ["id"], {"": "embedding"}),
          "CREATE TABLE cc_empty (id int PRIMARY KEY, embedding double precision[], label text)",
          {"vectors": {"size": 2, "distance": "Dot"}},
          ["collection = cc_empty", "vector = embedding", "distance = dot"]),
    Table(oracle.TableSpec("public.cc_named", "cc_named", ["id"], {"text": "t", "bm": "s"}),
          "CREATE TABLE cc_named (id int PRIMARY KEY, t real[], s sparsevec, label text)",
          {"vectors": {"text": {"size": 2, "distance": "Dot"}}, "sparse_vectors": {"bm": {}}},
          ["collection = cc_named", "vector.text = t", "vector.bm = s", "distance = Dot"]),
]


TYPMOD = Table(oracle.TableSpec("public.cc_typmod", "cc_typmod", ["id"], {"v": "v", "h": "h", "s": "s"}),
               "CREATE TABLE cc_typmod (id int PRIMARY KEY, v vector(5), h halfvec(4), s sparsevec(100), label text)",
               {}, ["collection = cc_typmod", "vector.v = v", "vector.h = h", "vector.s = s", "distance = Dot"])


def real_pgvector_typmods(args, pg, q, cfg):
    """Step 4: sizes from pgvector's typmods, an empty table's collection created at start."""
    pg.psql(TYPMOD.ddl, db=DB)
    load_columns(pg, TYPMOD)
    write_config(cfg, pg, q, [TYPMOD], slot="p2q_typmod", publication="p2q_typmod_pub",
                 sync_lines=["snapshot = initial"])
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace("timeout = 10s\n", "timeout = 10s\ncreate_collections = true\n"))
    with open(os.path.join(args.workdir, "typmod.log"), "w") as logf:
        proc = subprocess.Popen([args.pg2qdrant, "run", "-c", cfg], stdout=logf, stderr=subprocess.STDOUT)
    try:
        params = wait_until(lambda: collection_info(q, "cc_typmod"), 30, "cc_typmod created at start (empty table)")
        check(params["vectors"]["v"]["size"] == 5 and params["vectors"]["h"]["size"] == 4
              and "s" in params.get("sparse_vectors", {}), "cc_typmod params from typmods: %s" % params)
        pg.psql("INSERT INTO cc_typmod VALUES (1, '[1,2,3,4,5]', '[0.5,0.25,1,2]', '{1:0.5,100:2}/100', 'one'),"
                " (2, '[0.1,0.2,0.3,0.4,0.5]', '[1.5,2.5,3.5,4.5]', '{3:1}/100', 'two');"
                "UPDATE cc_typmod SET h = '[4,3,2,1]' WHERE id = 2; DELETE FROM cc_typmod WHERE id = 1;"
                "INSERT INTO cc_typmod VALUES (3, '[5,4,3,2,1]', NULL, '{}/100', 'three')", db=DB)
        wait_until(lambda: not differences(pg, q, [TYPMOD]), 30, "cc_typmod equal to its table")
        check(proc.poll() is None, "pg2qdrant exited")
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(30) == 0, "exit code after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


ALIASED = [
    Table(oracle.TableSpec("public.cc_al1", "cc_al1", ["id"], {"": "embedding"}),
          "CREATE TABLE cc_al1 (id bigint PRIMARY KEY, embedding real[], note text)", {},
          ["collection = cc_al1", "vector = embedding", "alias = true",
           'create_params = {"vectors": {"size": 3, "distance": "Dot"}, "hnsw_config": {"m": 20}}']),
    Table(oracle.TableSpec("public.cc_al2", "cc_al2", ["id"], {"": "embedding"}),
          "CREATE TABLE cc_al2 (id bigint PRIMARY KEY, embedding real[], note text)", {},
          ["collection = cc_al2", "vector = embedding", "alias = true", "distance = Euclid"]),
]


def logged_requests(q):
    import json
    with open(q.request_log) as f:
        return [json.loads(line) for line in f if line.strip()]


def creations(q):
    """The logged requests that create a collection or change an alias (None against a real Qdrant:
    no request log; the checks that need it are the test server's)."""
    if not q.request_log:
        return None
    return [(r["method"], r["path"], r["body"]) for r in logged_requests(q)
            if (r["method"] == "PUT" and r["path"].count("/") == 2 and r["path"].startswith("/collections/"))
            or r["path"] == "/collections/aliases"]


def aliases(q):
    status, body = q.request("GET", "/aliases")
    return {a["alias_name"]: a["collection_name"] for a in body["result"]["aliases"]} if status == 200 else {}


def alias_generation_one(args, pg, q, cfg):
    """Step 4: create_collections with alias = true."""
    for t in ALIASED:
        pg.psql(t.ddl, db=DB)
        load_columns(pg, t)
        pg.psql("INSERT INTO %s SELECT g, ARRAY[g, 1, 2]::real[], 'row ' || g FROM generate_series(1, 10) g"
                % t.spec.name.split(".")[1], db=DB)
    write_config(cfg, pg, q, ALIASED, slot="p2q_alias", publication="p2q_alias_pub",
                 sync_lines=["snapshot = initial"])
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace("timeout = 10s\n", "timeout = 10s\ncreate_collections = true\n"))
    before = len(creations(q) or [])
    for run in (1, 2):
        with open(os.path.join(args.workdir, "alias%d.log" % run), "w") as logf:
            proc = subprocess.Popen([args.pg2qdrant, "run", "-c", cfg], stdout=logf, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: aliases(q).get("cc_al1") == "cc_al1_g1" and aliases(q).get("cc_al2") == "cc_al2_g1",
                       30, "aliases cc_al1 -> cc_al1_g1, cc_al2 -> cc_al2_g1")
            p1, p2 = collection_info(q, "cc_al1_g1"), collection_info(q, "cc_al2_g1")
            check(p1["vectors"].get("size") == 3 and p1["vectors"].get("distance") == "Dot",
                  "cc_al1_g1 from create_params: %s" % p1)
            status, body = q.request("GET", "/collections/cc_al1_g1")
            check(body["result"]["config"]["hnsw_config"]["m"] == 20, "cc_al1_g1 hnsw_config.m from create_params: %s"
                  % body["result"]["config"]["hnsw_config"])
            check(p2["vectors"].get("size") == 3 and p2["vectors"].get("distance") == "Euclid",
                  "cc_al2_g1 from the table's sizes and distance: %s" % p2)
            check(collection_info(q, "cc_al1_g2") is None, "no second generation")
            pg.psql("UPDATE cc_al1 SET note = 'run %d' WHERE id = 2; DELETE FROM cc_al2 WHERE id = %d" % (run, run),
                    db=DB)
            wait_until(lambda: not differences(pg, q, ALIASED), 30, "aliased collections equal their tables")
            check(proc.poll() is None, "pg2qdrant exited")
            proc.send_signal(signal.SIGTERM)
            check(proc.wait(30) == 0, "exit code after SIGTERM")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        made = (creations(q) or [])[before:]
        if q.request_log is None:
            pass  # a real Qdrant: the generations and aliases checked above are what can be seen
        elif run == 1:
            check(sorted(m[:2] for m in made) == [("POST", "/collections/aliases"), ("POST", "/collections/aliases"),
                                                  ("PUT", "/collections/cc_al1_g1"), ("PUT", "/collections/cc_al2_g1")],
                  "first run: two generations and two create_alias calls: %s" % made)
            before += len(made)
        else:
            check(made == [], "rerun: nothing created: %s" % made)

    # a plain collection under an alias = true name
    q.request("PUT", "/collections/cc_plain", {"vectors": {"size": 3, "distance": "Cosine"}})
    plain = Table(oracle.TableSpec("public.cc_al1", "cc_plain", ["id"], {"": "embedding"}), "", {},
                  ["collection = cc_plain", "vector = embedding", "alias = true"])
    write_config(cfg, pg, q, [plain], slot="p2q_alias", publication="p2q_alias_pub",
                 sync_lines=["snapshot = never"])
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace("timeout = 10s\n", "timeout = 10s\ncreate_collections = true\n"))
    rc, err = run_until_exit(args.pg2qdrant, cfg)
    check(rc == 2 and "is a plain collection, not an alias" in err and "POST /collections/aliases" in err
          and "cc_plain_alias" in err,
          "plain collection with alias = true: exit %s, want 2 with the steps:\n%s" % (rc, err[-2000:]))
    check("cc_plain" not in aliases(q) and collection_info(q, "cc_plain_g1") is None,
          "plain collection with alias = true: nothing created")


def run_until_exit(binary, cfg, timeout=60):
    p = subprocess.run([binary, "run", "-c", cfg], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stderr


def collection_info(q, name):
    status, body = q.request("GET", "/collections/%s" % name)
    return body["result"]["config"]["params"] if status == 200 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg2qdrant", required=True)
    ap.add_argument("--qdrant-server", required=True)
    ap.add_argument("--openapi", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    install_signal_cleanup()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    proc = None
    try:
        with Postgres(os.path.join(args.workdir, "pg")) as pg, \
                QdrantServer(args.qdrant_server, os.path.join(args.workdir, "q")) as q:
            pg.psql("CREATE DATABASE %s" % DB)
            log("  pgvector: %s" % pg.create_pgvector_types(DB))
            for t in TABLES:
                pg.psql(t.ddl, db=DB)
                load_columns(pg, t)
            pg.psql("INSERT INTO cc_rows SELECT g, ARRAY[g, 1, 2]::real[], 'row ' || g FROM generate_series(1, 20) g",
                    db=DB)
            pg.psql("INSERT INTO cc_named VALUES (1, '{1,2}', '{1:0.5}/10', 'one')", db=DB)
            cfg = os.path.join(args.workdir, "p2q.ini")

            # 1. missing collection, create_collections = false
            write_config(cfg, pg, q, TABLES, sync_lines=["snapshot = initial"])
            rc, err = run_until_exit(args.pg2qdrant, cfg)
            check(rc == 2, "missing collection: exit %s, want 2:\n%s" % (rc, err[-2000:]))
            check('collection \\"cc_rows\\"' in err or 'collection "cc_rows"' in err,
                  "the error does not name the collection:\n%s" % err[-2000:])
            check(collection_info(q, "cc_rows") is None, "a collection was created without create_collections")
            log("  ok   missing collection stops run: exit 2")

            # 2. create_collections = true
            with open(cfg) as f:
                text = f.read()
            text = text.replace("timeout = 10s\n", "timeout = 10s\ncreate_collections = true\n")
            with open(cfg, "w") as f:
                f.write(text)
            logf = open(os.path.join(args.workdir, "run.log"), "w")
            proc = subprocess.Popen([args.pg2qdrant, "run", "-c", cfg], stdout=logf, stderr=subprocess.STDOUT)
            params = wait_until(lambda: collection_info(q, "cc_rows"), 30, "cc_rows created at start")
            check(params["vectors"] == {"size": 3, "distance": "Euclid"} or
                  (params["vectors"].get("size") == 3 and params["vectors"].get("distance") == "Euclid"),
                  "cc_rows vectors: %s" % params["vectors"])
            named = wait_until(lambda: collection_info(q, "cc_named"), 30, "cc_named created at start")
            check(named["vectors"]["text"]["size"] == 2 and "bm" in named.get("sparse_vectors", {}),
                  "cc_named params: %s" % named)
            check(collection_info(q, "cc_empty") is None, "cc_empty created before its size was known")
            pg.psql("INSERT INTO cc_empty VALUES (1, '{0.5,1}', 'first'), (2, '{2,3}', 'second')", db=DB)
            pg.psql("DELETE FROM cc_empty WHERE id = 2", db=DB)
            pg.psql("UPDATE cc_rows SET note = 'changed' WHERE id = 3", db=DB)
            empty = wait_until(lambda: collection_info(q, "cc_empty"), 30, "cc_empty created from its first upsert")
            check(empty["vectors"].get("size") == 2 and empty["vectors"].get("distance") == "Dot",
                  "cc_empty vectors: %s" % empty["vectors"])
            wait_until(lambda: not differences(pg, q, TABLES), 30, "collections equal their tables")
            check(proc.poll() is None, "pg2qdrant exited")
            proc.send_signal(signal.SIGTERM)
            check(proc.wait(30) == 0, "exit code after SIGTERM")
            proc = None
            log("  ok   collections created at start (sizes from rows) and from the first upsert; equal to tables")

            # 3. size mismatch with an existing collection
            q.request("DELETE", "/collections/cc_rows")
            q.request("PUT", "/collections/cc_rows", {"vectors": {"size": 5, "distance": "Euclid"}})
            rc, err = run_until_exit(args.pg2qdrant, cfg)
            check(rc == 2 and "mismatch" in err and "cc_rows" in err,
                  "size mismatch: exit %s, want 2 with a message:\n%s" % (rc, err[-2000:]))
            log("  ok   vector size mismatch stops run: exit 2")

            # 4. alias = true
            alias_generation_one(args, pg, q, cfg)
            log("  ok   alias = true: <alias>_g1 (create_params or the table's sizes) and the alias created at "
                "start; equal to the tables; a rerun creates nothing; a plain collection: exit 2 with the steps")

            if pg.real_pgvector():
                real_pgvector_typmods(args, pg, q, cfg)
                log("  ok   real pgvector: vector(5), halfvec(4), sparsevec(100) of an empty table sized by typmod "
                    "at start; rows equal to the table")
            else:
                log("  skip real pgvector typmods (P2Q_PGVECTOR=1 with pgvector installed runs them)")
            log("  " + validate_requests(q, args.openapi))
    except (TestFailure, HarnessError) as e:
        print("create collections: FAILED: %s" % e, flush=True)
        if proc and proc.poll() is None:
            proc.kill()
        return 1
    log("create collections: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
