#!/usr/bin/env python3
"""`pg2qdrant check-config` against a throwaway PostgreSQL and the Qdrant test server.

    test_check_config.py --pg2qdrant BIN --qdrant-server BIN --workdir DIR

Scenarios: a good setup (exit 0), a setup with many problems at once (exit 2, every
problem listed and nothing else), a missing publication and slot, and both sides
unreachable (exit 2, no password or API key in the output, also with a percent-encoded
password key in a URI); publications that would not carry a table or an operation (a
partitioned table without publish_via_partition_root, publish = 'insert, update', an
UNLOGGED table under FOR ALL TABLES): check-config lists each and `run` exits 2 with the
same words; aliases (each collection reported as an alias or a plain collection, alias = true on a
plain collection) and `[table] create_params` checked against the vector columns (run exits 2 too).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))

from harness import Postgres, QdrantServer, free_port, install_signal_cleanup  # noqa: E402
from p2q_common import Checklist, clean_env  # noqa: E402

import subprocess  # noqa: E402

API_KEY = "qd-key-7f3a9c"
PG_PASSWORD = "pg-secret-5b1e"

_checks = Checklist()
check = _checks.check
failures = _checks.failures


def write_config(workdir, name, dsn, qdrant_url, body, slot="p2q_slot", publication="p2q_pub",
                 create_slot="true", create_publication="false", api_key=API_KEY):
    path = os.path.join(workdir, name + ".ini")
    with open(path, "w") as f:
        f.write("[source]\ndsn = %s\nslot = %s\npublication = %s\ncreate_slot = %s\ncreate_publication = %s\n\n"
                % (dsn, slot, publication, create_slot, create_publication))
        f.write("[qdrant]\nurl = %s\napi_key = %s\ntimeout = 5s\n\n" % (qdrant_url, api_key))
        f.write("[http]\nlisten =\n\n")
        f.write(body)
    return path


def run_check(binary, config):
    r = subprocess.run([binary, "check-config", "-c", config], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120, env=clean_env())
    return r.returncode, r.stdout, r.stderr


def problems_of(stderr):
    return [line[len("problem: "):] for line in stderr.splitlines() if line.startswith("problem: ")]


def create_collection(q, name, body):
    status, resp = q.request("PUT", "/collections/" + name, body)
    if status != 200:
        raise RuntimeError("creating collection %s: %s %s" % (name, status, resp))


def scenario_good(args, pg, q):
    pg.psql("CREATE DATABASE good")
    pg.create_pgvector_domains("good")
    pg.psql("""
        CREATE TABLE items (id int PRIMARY KEY, title text, embedding real[]);
        INSERT INTO items VALUES (1, 'a', '{1,2,3,4}'), (2, 'b', NULL);
        CREATE TABLE docs (id bigint PRIMARY KEY, body text, emb vector, kw sparsevec);
        INSERT INTO docs VALUES (1, 'x', '[0.5,0.25,1]', '{1:0.5,7:0.2}/10');
        CREATE TABLE tagged (region text, num int, note text, v float8[], PRIMARY KEY (region, num));
        CREATE TABLE fullid (code text NOT NULL, v numeric[]);
        ALTER TABLE fullid REPLICA IDENTITY FULL;
        CREATE PUBLICATION p2q_pub FOR TABLE items, docs, tagged, fullid;
    """, db="good")
    create_collection(q, "items", {"vectors": {"size": 4, "distance": "Cosine"}})
    create_collection(q, "docs", {"vectors": {"dense": {"size": 3, "distance": "Dot"}},
                                  "sparse_vectors": {"kw": {}}})
    create_collection(q, "tagged", {"vectors": {"size": 2, "distance": "Dot"}})
    create_collection(q, "fullid", {"vectors": {"size": 8, "distance": "Dot"}})
    cfg = write_config(args.workdir, "good", pg.dsn("good"), q.url, """
[table public.items]
vector = embedding
payload = title

[table docs]
vector.dense = emb
vector.kw = kw

[table public.tagged]
id = region, num
vector = v

[table public.fullid]
id = code
vector = v
""")
    rc, out, err = run_check(args.pg2qdrant, cfg)
    check(rc == 0, "good setup: exit 0", "exit %d\nstdout: %s\nstderr: %s" % (rc, out, err))
    check("configuration OK" in out, "good setup: prints 'configuration OK'", out)
    check(problems_of(err) == [], "good setup: no problem lines", err)


BAD_SETUP = """
    CREATE TABLE covered (id int PRIMARY KEY, title text, emb real[]);
    INSERT INTO covered VALUES (1, 't', '{1,2,3,4}');
    CREATE TABLE unpublished (id int PRIMARY KEY, emb real[]);
    CREATE TABLE nothing_t (id int PRIMARY KEY, emb real[]);
    ALTER TABLE nothing_t REPLICA IDENTITY NOTHING;
    CREATE TABLE keyless (k int, emb real[]);
    CREATE TABLE full_t (id int, emb real[]);
    ALTER TABLE full_t REPLICA IDENTITY FULL;
    CREATE TABLE wrongkey (id int PRIMARY KEY, other int, emb real[]);
    CREATE TABLE missingkey (id int PRIMARY KEY, emb real[]);
    CREATE TABLE badvec (id int PRIMARY KEY, emb text);
    CREATE TABLE novec (id int PRIMARY KEY, emb real[]);
    CREATE TABLE sized (id int PRIMARY KEY, emb real[]);
    INSERT INTO sized VALUES (1, NULL), (2, '{1,2,3}');
    CREATE TABLE sized_text (id int PRIMARY KEY, emb vector);
    INSERT INTO sized_text VALUES (1, '[1,2,3,4,5]');
    CREATE TABLE named_t (id int PRIMARY KEY, emb real[]);
    CREATE TABLE unnamed_t (id int PRIMARY KEY, emb real[]);
    CREATE TABLE sparse_t (id int PRIMARY KEY, s sparsevec);
    CREATE TABLE nocoll (id int PRIMARY KEY, emb real[]);
    CREATE TABLE nopayload (id int PRIMARY KEY, title text, emb real[]);
    CREATE PUBLICATION p2q_pub FOR TABLE covered, nothing_t, keyless, full_t, wrongkey, missingkey, badvec,
        novec, sized, sized_text, named_t, unnamed_t, sparse_t, nocoll, nopayload;
    SELECT 'slot' FROM pg_create_logical_replication_slot('wrong_plugin', 'test_decoding');
"""

BAD_TABLES = """
[table public.covered]
vector = emb
[table public.unpublished]
vector = emb
[table public.nothing_t]
vector = emb
[table public.keyless]
vector = emb
[table public.full_t]
vector = emb
[table public.wrongkey]
id = other
vector = emb
[table public.missingkey]
id = nosuch_id
vector = emb
[table public.badvec]
vector = emb
[table public.novec]
vector = nosuch_vec
[table public.sized]
vector = emb
[table public.sized_text]
vector = emb
[table public.named_t]
vector = emb
[table public.unnamed_t]
vector.img = emb
[table public.sparse_t]
vector.kw = s
[table public.nocoll]
vector = emb
[table public.nopayload]
vector = emb
payload = title, nosuch_payload
[table public.ghost]
vector = emb
"""

BAD_EXPECTED = [
    'slot "wrong_plugin" uses plugin test_decoding, pg2qdrant needs pgoutput',
    'publication "p2q_pub" does not include table public.unpublished',
    "table public.nothing_t has REPLICA IDENTITY NOTHING",
    "table public.keyless has REPLICA IDENTITY DEFAULT but no primary key",
    "table public.full_t has REPLICA IDENTITY FULL and no id configured",
    "table public.wrongkey: id column other is not part of the replica identity (the primary key)",
    "table public.missingkey: id column nosuch_id does not exist",
    "table public.badvec: vector column emb has type text; supported are",
    "table public.novec: vector column nosuch_vec does not exist",
    "vector size mismatch: column public.sized.emb has 3 dimensions (from its first non-NULL row), "
    'collection "sized" vector (unnamed) has size 4',
    "vector size mismatch: column public.sized_text.emb has 5 dimensions (from its first non-NULL row), "
    'collection "sized_text" vector (unnamed) has size 4',
    'collection "named_t" has no unnamed vector (its vectors: ',
    'collection "unnamed_t" has one unnamed vector, but table public.unnamed_t maps column emb as vector "img"',
    'collection "sparse_t": vector kw is dense, but column public.sparse_t.s is a sparsevec',
    'collection "nocoll" (table public.nocoll) does not exist in Qdrant',
    "table public.nopayload: payload column nosuch_payload does not exist",
    "table public.ghost does not exist",
    'collection "ghost" (table public.ghost) does not exist in Qdrant',
]


def scenario_bad(args, pg, q):
    pg.psql("CREATE DATABASE bad")
    pg.create_pgvector_domains("bad")
    pg.psql(BAD_SETUP, db="bad")
    four = {"vectors": {"size": 4, "distance": "Dot"}}
    for name in ("covered", "unpublished", "nothing_t", "keyless", "full_t", "wrongkey", "missingkey", "badvec",
                 "novec", "sized", "sized_text", "unnamed_t", "nopayload"):
        create_collection(q, name, four)
    create_collection(q, "named_t", {"vectors": {"a": {"size": 4, "distance": "Dot"},
                                                 "b": {"size": 4, "distance": "Dot"}}})
    create_collection(q, "sparse_t", {"vectors": {"kw": {"size": 4, "distance": "Dot"}}})
    cfg = write_config(args.workdir, "bad", pg.dsn("bad"), q.url, BAD_TABLES, slot="wrong_plugin")
    rc, out, err = run_check(args.pg2qdrant, cfg)
    got = problems_of(err)
    check(rc == 2, "bad setup: exit 2", "exit %d\nstderr: %s" % (rc, err))
    check("configuration OK" not in out, "bad setup: no 'configuration OK'", out)
    for want in BAD_EXPECTED:
        check(any(want in p for p in got), "bad setup lists: %s" % want, "\n".join(got))
    unexpected = [p for p in got if not any(want in p for want in BAD_EXPECTED)]
    check(unexpected == [], "bad setup: no unexpected problems", "\n".join(unexpected))
    check(len(got) == len(BAD_EXPECTED), "bad setup: one line per problem (%d)" % len(BAD_EXPECTED),
          "\n".join(got))


def scenario_missing_publication_and_slot(args, pg, q):
    cfg = write_config(args.workdir, "nopub", pg.dsn("good"), q.url, """
[table public.items]
vector = embedding
""", slot="absent_slot", publication="absent_pub", create_slot="false")
    rc, _, err = run_check(args.pg2qdrant, cfg)
    got = problems_of(err)
    check(rc == 2, "missing publication/slot: exit 2", err)
    check(any('publication "absent_pub" does not exist' in p for p in got), "lists the missing publication", err)
    check(any('slot "absent_slot" does not exist and create_slot = false' in p for p in got),
          "lists the missing slot", err)
    check(len(got) == 2, "missing publication/slot: exactly two problems", err)

    cfg = write_config(args.workdir, "createpub", pg.dsn("good"), q.url, """
[table public.items]
vector = embedding
""", slot="absent_slot", publication="absent_pub", create_publication="true")
    rc, _, err = run_check(args.pg2qdrant, cfg)
    check(rc == 0, "create_publication/create_slot = true: a missing publication and slot are fine", err)


def scenario_unreachable(args):
    dsn = "host=127.0.0.1 port=%d dbname=x user=postgres password=%s connect_timeout=5" % (free_port(), PG_PASSWORD)
    url = "http://127.0.0.1:%d" % free_port()
    cfg = write_config(args.workdir, "unreachable", dsn, url, """
[table public.items]
vector = embedding
""")
    rc, out, err = run_check(args.pg2qdrant, cfg)
    got = problems_of(err)
    check(rc == 2, "unreachable: exit 2", err)
    check(any(p.startswith("PostgreSQL: cannot connect (") for p in got), "unreachable: PostgreSQL reported", err)
    check(any(p.startswith("Qdrant at %s: cannot read collection \"items\"" % url) and "(curl 7)" in p
              for p in got), "unreachable: Qdrant reported", err)
    check(len(got) == 2, "unreachable: exactly two problems", err)
    check(PG_PASSWORD not in out + err, "unreachable: the password is not printed", err)
    check(API_KEY not in out + err, "unreachable: the API key is not printed", err)


def scenario_wrong_api_key(args, pg, q):
    cfg = write_config(args.workdir, "wrongkey", pg.dsn("good"), q.url, """
[table public.items]
vector = embedding
""", api_key="wrong-" + API_KEY)
    rc, out, err = run_check(args.pg2qdrant, cfg)
    got = problems_of(err)
    check(rc == 2, "wrong API key: exit 2", err)
    check(len(got) == 1 and "HTTP 401" in got[0], "wrong API key: one HTTP 401 problem", err)
    check(API_KEY not in out + err, "wrong API key: the key is not printed", err)


MISCONFIGURED = [
    # (name, setup SQL, publication, table, words check-config and run must both print)
    ("parted", """
        CREATE TABLE parted (id int, emb real[], PRIMARY KEY (id)) PARTITION BY RANGE (id);
        CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
        CREATE PUBLICATION pub_parted FOR TABLE parted;
     """, "pub_parted", "parted",
     ['publication "pub_parted" does not set publish_via_partition_root, so the changes of partitioned table '
      'public.parted arrive under its partitions\' names and are skipped (ALTER PUBLICATION "pub_parted" SET '
      '(publish_via_partition_root = true))']),
    ("ops", """
        CREATE TABLE ops_t (id int PRIMARY KEY, emb real[]);
        CREATE PUBLICATION pub_ops FOR TABLE ops_t WITH (publish = 'insert, update');
     """, "pub_ops", "ops_t",
     ['publication "pub_ops" does not publish delete operations, so those changes never reach Qdrant',
      'publication "pub_ops" does not publish truncate operations, so those changes never reach Qdrant']),
    ("unlogged", """
        CREATE UNLOGGED TABLE unlog (id int PRIMARY KEY, emb real[]);
        CREATE PUBLICATION pub_all FOR ALL TABLES;
     """, "pub_all", "unlog",
     ["table public.unlog is UNLOGGED: its changes are not written to WAL, so none reach Qdrant "
      "(ALTER TABLE public.unlog SET LOGGED)"]),
]


def scenario_misconfigured_publications(args, pg, q):
    """Each publication that would silently not carry a table or an operation: check-config lists
    it, and run refuses to start (exit 2) with the same words (issue 11, item 2)."""
    pg.psql("CREATE DATABASE pubs")
    for name, sql, pub, table, words in MISCONFIGURED:
        pg.psql(sql, db="pubs")
        create_collection(q, table, {"vectors": {"size": 4, "distance": "Dot"}})
        cfg = write_config(args.workdir, "pub-" + name, pg.dsn("pubs"), q.url,
                           "[table public.%s]\nvector = emb\n" % table, slot="slot_" + name, publication=pub)
        with open(cfg, "a") as f:
            f.write("\n[sync]\nsnapshot = never\n")
        rc, out, err = run_check(args.pg2qdrant, cfg)
        got = problems_of(err)
        check(rc == 2, "%s: check-config exits 2" % name, "exit %d\n%s" % (rc, err))
        check(len(got) == len(words) and all(any(w in p for p in got) for w in words),
              "%s: check-config lists exactly %s" % (name, words), "\n".join(got))
        try:
            r = subprocess.run([args.pg2qdrant, "run", "-c", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=60, env=clean_env())
            rc, log = r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            rc, log = None, "run did not exit within 60 s (it started streaming):\n%s" % (e.stderr or "")
        check(rc == 2, "%s: run refuses to start (exit 2)" % name, "exit %s\n%s" % (rc, log[-3000:]))
        for w in words:
            check(w.replace('"', '\\"') in log, "%s: run says: %s" % (name, w), log[-3000:])
        check("streaming started" not in log, "%s: run did not stream" % name, log[-3000:])


def notes_of(stdout):
    return [line[len("note: "):] for line in stdout.splitlines() if line.startswith("note: ")]


def scenario_alias(args, pg, q):
    """Each table's collection reported as an alias (with its target) or a plain collection;
    [table] create_params checked against the vector columns; alias = true on a plain
    collection is a problem with the steps (issue 14).  run exits 2 on a create_params
    mismatch too."""
    create_collection(q, "al_g1", {"vectors": {"size": 4, "distance": "Cosine"}})
    status, resp = q.request("POST", "/collections/aliases",
                             {"actions": [{"create_alias": {"collection_name": "al_g1", "alias_name": "al"}}]})
    if status != 200:
        raise RuntimeError("creating alias al: %s %s" % (status, resp))
    tables = """
[table public.items]
collection = al
vector = embedding
alias = true
create_params = {"vectors": {"size": %d, "distance": "Dot"}, "hnsw_config": {"m": 32}}

[table docs]
vector.dense = emb
vector.kw = kw
alias = true
create_params = {"vectors": {"dense": {"size": 3, "distance": "Dot"}}}

[table public.tagged]
id = region, num
vector = v
"""
    cfg = write_config(args.workdir, "alias-bad", pg.dsn("good"), q.url, tables % 5)
    rc, out, err = run_check(args.pg2qdrant, cfg)
    got, notes = problems_of(err), notes_of(out)
    check(rc == 2, "alias: check-config exits 2 on create_params mismatches", "exit %d\n%s" % (rc, err))
    want = ["table public.items: [table] create_params: vectors.size is 5, but vector column embedding has 4 "
            "dimensions",
            "table public.docs: [table] create_params: no sparse_vectors.kw for the sparsevec column kw "
            "(vector.kw = kw)",
            'table public.docs: alias = true, but "docs" is a plain collection, not an alias; to move it behind an '
            'alias: 1) stop pg2qdrant run; 2) POST /collections/aliases']
    for w in want:
        check(any(w in p for p in got), "alias: lists: %s" % w, "\n".join(got))
    check(len(got) == len(want), "alias: exactly %d problems" % len(want), "\n".join(got))
    for w in ['Qdrant: table public.items: "al" is an alias of collection "al_g1"',
              'Qdrant: table public.docs: "docs" is a plain collection, not an alias',
              'Qdrant: table public.tagged: "tagged" is a plain collection, not an alias']:
        check(w in notes, "alias: notes: %s" % w, out)

    cfg = write_config(args.workdir, "alias-good", pg.dsn("good"), q.url,
                       tables.replace("alias = true\ncreate_params = {\"vectors\": {\"dense\"",
                                      "create_params = {\"sparse_vectors\": {\"kw\": {}}, \"vectors\": "
                                      "{\"dense\"") % 4)
    rc, out, err = run_check(args.pg2qdrant, cfg)
    check(rc == 0 and problems_of(err) == [], "alias: matching create_params: exit 0", "exit %d\n%s" % (rc, err))
    check('Qdrant: table public.items: "al" is an alias of collection "al_g1"' in notes_of(out),
          "alias: matching create_params: the alias is reported", out)

    # run: a create_params mismatch stops it at start, with the same words
    cfg = write_config(args.workdir, "alias-run", pg.dsn("good"), q.url, """
[table public.items]
collection = al
vector = embedding
alias = true
create_params = {"vectors": {"size": 5, "distance": "Dot"}}
""", slot="slot_alias")
    with open(cfg, "a") as f:
        f.write("\n[sync]\nsnapshot = never\n")
    try:
        r = subprocess.run([args.pg2qdrant, "run", "-c", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60, env=clean_env())
        rc, log = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        rc, log = None, "run did not exit within 60 s (it started streaming):\n%s" % (e.stderr or "")
    check(rc == 2 and "create_params: vectors.size is 5, but vector column embedding has 4 dimensions" in log,
          "alias: run refuses a create_params mismatch (exit 2)", "exit %s\n%s" % (rc, log[-3000:]))


def scenario_percent_encoded_password(args):
    """libpq decodes percent-encoded URI keys: pass%77ord is the password and must be masked in
    check-config's connection error (issue 11, hardening)."""
    for key in ("pass%77ord", "%70assword"):
        dsn = "postgresql://postgres@127.0.0.1:%d/x?connect_timeout=5&%s=%s" % (free_port(), key, PG_PASSWORD)
        cfg = write_config(args.workdir, "pctpw", dsn, "http://127.0.0.1:%d" % free_port(),
                           "[table public.items]\nvector = embedding\n")
        rc, out, err = run_check(args.pg2qdrant, cfg)
        check(rc == 2, "percent-encoded %s: exit 2" % key, err)
        check(any(p.startswith("PostgreSQL: cannot connect (") for p in problems_of(err)),
              "percent-encoded %s: the connection error is reported" % key, err)
        check(PG_PASSWORD not in out + err, "percent-encoded %s: the password is not printed" % key, err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg2qdrant", required=True)
    ap.add_argument("--qdrant-server", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    args.workdir = os.path.abspath(args.workdir)
    os.makedirs(args.workdir, exist_ok=True)
    install_signal_cleanup()

    pg = Postgres(args.workdir)
    q = QdrantServer(args.qdrant_server, args.workdir, api_key=API_KEY)
    try:
        pg.start()
        q.start()
        scenario_good(args, pg, q)
        scenario_bad(args, pg, q)
        scenario_missing_publication_and_slot(args, pg, q)
        scenario_wrong_api_key(args, pg, q)
        scenario_unreachable(args)
        scenario_percent_encoded_password(args)
        scenario_misconfigured_publications(args, pg, q)
        scenario_alias(args, pg, q)
    finally:
        q.stop()
        pg.stop()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all check-config checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
