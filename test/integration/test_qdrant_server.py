#!/usr/bin/env python3
"""Smoke test of test/qdrant_server/qdrant_test_server (python3 stdlib only).

Starts the server on a free port and exercises every endpoint, the Qdrant
error texts it reproduces, the fault-injection control API and the request
log.  Exits non-zero when any check fails.

usage: test_qdrant_server.py [--server PATH] [--wrap "valgrind --error-exitcode=1 ..."]
       test_qdrant_server.py --real
The server path defaults to $QDRANT_TEST_SERVER.  With --wrap the server
runs under that command (e.g. valgrind) and its exit status must be 0.

With --real the same checks of Qdrant's behaviour run against a real Qdrant
(P2Q_QDRANT_BIN or P2Q_QDRANT_URL, see docs/testing.md) instead: what the
test server reproduces must hold for Qdrant itself, so a check that fails
there is a divergence (docs/qdrant-test-server.md).  The test server's own
extras (fault injection, request log, --discard-writes, --apply-log) are
skipped; the version check accepts any version.
"""
import argparse
import http.client
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

FAILS = []
CHECKS = [0]


def check(cond, what):
    CHECKS[0] += 1
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr)
    return cond


class RealServer:
    """A real Qdrant with Server's interface (req, api_key, stop)."""

    def __init__(self, workdir, api_key=None):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
        import harness
        self.q = harness.RealQdrant(workdir, api_key=api_key).start()
        self.api_key = api_key
        self.host, self.port = self.q.direct_url.split("//")[1].split(":")
        self.port = int(self.port)
        self.real = True

    def reset(self):
        self.q.reset()

    def req(self, *a, **kw):
        return Server.req(self, *a, **kw)

    def stop(self):
        self.q.stop()


class Server:
    real = False
    host = "127.0.0.1"

    def __init__(self, binary, workdir, wrap=None, api_key=None, extra=()):
        self.workdir = workdir
        self.port_file = os.path.join(workdir, "port")
        self.log = os.path.join(workdir, "requests.jsonl")
        for f in (self.port_file, self.log):
            if os.path.exists(f):
                os.unlink(f)
        cmd = (shlex.split(wrap) if wrap else []) + [binary, "--port", "0", "--port-file", self.port_file,
                                                       "--request-log", self.log]
        if api_key:
            cmd += ["--api-key", api_key]
        cmd += list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.api_key = api_key
        deadline = time.time() + 60
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("server did not start: " + self.proc.stderr.read())
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        line = self.proc.stdout.readline().strip()
        check(line == "qdrant_test_server listening on 127.0.0.1:%d" % self.port, "stdout line: %r" % line)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = -1
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        check(rc == 0, "server exit status 0 after SIGTERM (got %s): %s" % (rc, err[-2000:]))

    def req(self, method, path, body=None, headers=None, raw=None, timeout=30, parse=True):
        """Returns (status, parsed JSON or text, headers); (None, exc, {}) if no answer.
        parse=False: the body's text as received."""
        h = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if raw is not None:
            data = raw
        if self.api_key:
            h["api-key"] = self.api_key
        h.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            text = r.read().decode()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        except (http.client.HTTPException, OSError) as e:
            return None, e, {}
        finally:
            conn.close()
        if not parse:
            return r.status, text, hdrs
        try:
            parsed = json.loads(text) if text else ""
        except ValueError:
            parsed = text
        return r.status, parsed, hdrs


def ok(res, what):
    status, body, _ = res
    good = status == 200 and isinstance(body, dict) and body.get("status") == "ok" and "result" in body \
        and isinstance(body.get("time"), float)
    check(good, "%s: expected 200 ok envelope, got %s %r" % (what, status, body))
    return body.get("result") if good else None


def err(res, status, msg, what):
    """msg: exact text, or a compiled regex."""
    st, body, _ = res
    text = body.get("status", {}).get("error") if isinstance(body, dict) and isinstance(body.get("status"), dict) \
        else None
    good = st == status and text is not None and "result" not in body and isinstance(body.get("time"), float)
    if good:
        good = bool(msg.fullmatch(text)) if hasattr(msg, "fullmatch") else text == msg
    check(good, "%s: expected %s %r, got %s %r" % (what, status, msg, st, body))


def approx(a, b):
    return len(a) == len(b) and all(abs(x - y) < 1e-6 for x, y in zip(a, b))


W = "?wait=true"


def t_basic_routes(s):
    st, body, _ = s.req("GET", "/")
    check(st == 200 and (body.get("version") == "1.19.0" or s.real and "version" in body) and "title" in body,
          "GET / %r" % (body,))
    for p, text in (("/healthz", "healthz check passed"), ("/livez", "healthz check passed"),
                    ("/readyz", "all shards are ready")):
        st, body, _ = s.req("GET", p)
        check(st == 200 and body == text, "GET %s -> %s %r" % (p, st, body))
    st, body, _ = s.req("GET", "/no/such/route")
    check(st == 404 and body == "", "unknown route -> 404 empty body (%s %r)" % (st, body))


def t_collections(s):
    check(ok(s.req("PUT", "/collections/c", {"vectors": {"size": 4, "distance": "Cosine"}}), "create") is True,
          "create returns true")
    err(s.req("PUT", "/collections/c", {"vectors": {"size": 4, "distance": "Cosine"}}), 409,
        "Wrong input: Collection `c` already exists!", "create twice")
    check(ok(s.req("GET", "/collections/c/exists"), "exists") == {"exists": True}, "exists true")
    check(ok(s.req("GET", "/collections/zz/exists"), "exists") == {"exists": False}, "exists false")
    ok(s.req("PUT", "/collections/named", {"vectors": {"text": {"size": 2, "distance": "Dot"}},
                                            "sparse_vectors": {"bm25": {"modifier": "idf"}},
                                            "optimizers_config": {"indexing_threshold": 0}}), "create named")
    names = sorted(c["name"] for c in ok(s.req("GET", "/collections"), "list")["collections"])
    check(names == ["c", "named"], "list collections %r" % names)
    info = ok(s.req("GET", "/collections/named"), "info")
    check(info["status"] == "green" and info["points_count"] == 0, "info status/points_count")
    check(info["config"]["params"]["vectors"] == {"text": {"size": 2, "distance": "Dot"}}, "info vectors")
    check(info["config"]["params"]["sparse_vectors"] == {"bm25": {"modifier": "idf"}}, "info sparse_vectors")
    info = ok(s.req("GET", "/collections/c"), "info")
    check(info["config"]["params"]["vectors"] == {"size": 4, "distance": "Cosine"}, "info unnamed vectors")
    check(ok(s.req("PATCH", "/collections/c", {"optimizers_config": {"indexing_threshold": 100}}), "patch") is True,
          "patch accepted")
    r = ok(s.req("PUT", "/collections/c/index" + W, {"field_name": "_pk", "field_schema": "keyword"}), "index")
    check(r and r["status"] == "completed", "create index")
    check(ok(s.req("GET", "/collections/c"), "info")["payload_schema"].get("_pk", {}).get("data_type") == "keyword",
          "payload_schema lists the index")
    check(ok(s.req("DELETE", "/collections/named"), "delete") is True, "delete true")
    err(s.req("GET", "/collections/named"), 404, "Not found: Collection `named` doesn't exist!", "get deleted")
    # VectorsConfig is an untagged enum: serde's generic error, after the "vectors" value
    err(s.req("PUT", "/collections/bad", {"vectors": {"size": 0, "distance": "Cosine"}}), 400,
        "Format error in JSON body: data did not match any variant of untagged enum VectorsConfig at line 1 column 46",
        "size 0")
    err(s.req("PUT", "/collections/bad", {"vectors": {"size": 65537, "distance": "Cosine"}}), 422,
        "Validation error in JSON body: [vectors.size: value 65537 invalid, must be from 1 to 65536]", "size 65537")
    err(s.req("PUT", "/collections/bad", {"vectors": {"size": 4, "distance": "L2"}}), 400,
        "Format error in JSON body: data did not match any variant of untagged enum VectorsConfig at line 1 column 42",
        "bad distance")
    err(s.req("PUT", "/collections/bad", {"vectors": {"text": {"size": 0, "distance": "Dot"}}}), 400,
        "Format error in JSON body: data did not match any variant of untagged enum VectorsConfig at line 1 column 53",
        "named size 0")
    for path in ("/collections/none/points" + W,):
        err(s.req("PUT", path, {"points": []}), 404, "Not found: Collection `none` doesn't exist!", "upsert no coll")
    err(s.req("POST", "/collections/none/points/scroll", {}), 404, "Not found: Collection `none` doesn't exist!",
        "scroll no coll")
    err(s.req("POST", "/collections/none/points/batch" + W, {"operations": [{"delete": {"points": [1]}}]}), 404,
        "Not found: Collection `none` doesn't exist!", "batch no coll")
    # an empty batch looks nothing up
    check(ok(s.req("POST", "/collections/none/points/batch" + W, {"operations": []}), "empty batch no coll") == [],
          "empty batch on a missing collection -> []")


def scroll(s, coll, **kw):
    return ok(s.req("POST", "/collections/%s/points/scroll" % coll, kw), "scroll")


def t_upsert_and_vectors(s):
    ok(s.req("PUT", "/collections/cos", {"vectors": {"size": 4, "distance": "Cosine"}}), "create")
    ok(s.req("PUT", "/collections/dot", {"vectors": {"size": 3, "distance": "Dot"}}), "create")
    r = ok(s.req("PUT", "/collections/cos/points" + W,
                 {"points": [{"id": 1, "vector": [3, 0, 4, 0], "payload": {"city": "Berlin"}}]}), "upsert")
    check(r == {"operation_id": r and r.get("operation_id"), "status": "completed"}
          and isinstance(r.get("operation_id"), int), "UpdateResult %r" % r)
    r2 = ok(s.req("PUT", "/collections/cos/points", {"points": [{"id": 2, "vector": [0, 0, 0, 0]}]}), "upsert nowait")
    check(r2 and r2["status"] == "acknowledged" and r2["operation_id"] > r["operation_id"],
          "acknowledged and increasing operation_id %r %r" % (r, r2))
    pts = scroll(s, "cos", with_vector=True)["points"]
    check(approx(pts[0]["vector"], [0.6, 0, 0.8, 0]), "cosine normalised %r" % pts[0]["vector"])
    check(approx(pts[1]["vector"], [0, 0, 0, 0]), "zero vector kept")
    ok(s.req("PUT", "/collections/dot/points" + W, {"points": [{"id": 1, "vector": [0.1, 2, -3.5]}]}), "upsert dot")
    pts = scroll(s, "dot", with_vector=True)["points"]
    check(pts[0]["vector"] == [0.1, 2.0, -3.5], "dot stored as given (f32) %r" % pts[0]["vector"])
    # upsert replaces the whole point
    ok(s.req("PUT", "/collections/cos/points" + W, {"points": [{"id": 1, "vector": [1, 0, 0, 0]}]}), "re-upsert")
    p = ok(s.req("GET", "/collections/cos/points/1"), "get")
    check(p == {"id": 1, "payload": {}, "vector": [1.0, 0.0, 0.0, 0.0]}, "payload cleared by upsert %r" % p)
    # batch (columnar) form, "vectors" alias
    ok(s.req("PUT", "/collections/dot/points" + W,
             {"batch": {"ids": [10, 11], "vectors": [[1, 2, 3], [4, 5, 6]], "payloads": [{"a": 1}, None]}}),
       "batch upsert")
    ok(s.req("PUT", "/collections/dot/points" + W, {"points": [{"id": 12, "vectors": [1, 1, 1]}]}), "vectors alias")
    got = ok(s.req("POST", "/collections/dot/points", {"ids": [10, 11, 12, 99], "with_vector": True,
                                                        "with_payload": True}), "retrieve")
    check([g["id"] for g in got] == [10, 11, 12] and got[0]["payload"] == {"a": 1} and got[1]["payload"] == {}
          and got[1]["vector"] == [4.0, 5.0, 6.0], "batch form stored %r" % got)
    err(s.req("PUT", "/collections/cos/points" + W, {"points": [{"id": 1, "vector": [1, 2, 3]}]}), 400,
        "Wrong input: Vector dimension error: expected dim: 4, got 3", "dimension")
    err(s.req("PUT", "/collections/cos/points", {"points": [{"id": 1, "vector": [1, 2, 3]}]}), 400,
        "Wrong input: Vector dimension error: expected dim: 4, got 3", "dimension wait=false")
    err(s.req("PUT", "/collections/cos/points" + W, {"points": [{"id": 1, "vector": {"text": [1, 2, 3, 4]}}]}), 400,
        "Wrong input: Not existing vector name error: text", "unknown name")
    err(s.req("PUT", "/collections/cos/points" + W, {"points": [{"id": 1, "vector": []}]}), 422,
        "Validation error in JSON body: [points[0].vector.vector: dense vector must not be empty]", "empty vector")
    err(s.req("PUT", "/collections/cos/points", {"points": [{"id": 1, "vector": []}]}), 422,
        re.compile(r"Validation error in JSON body: \[.*\]"), "empty vector wait=false")
    err(s.req("PUT", "/collections/cos/points" + W, {"vectors": []}), 400,
        re.compile(r"Format error in JSON body: Invalid PointInsertOperations format.*"), "neither points nor batch")
    err(s.req("PUT", "/collections/cos/points" + W, {"points": [{"id": 1, "vector": "abc"}]}), 400,
        "Format error in JSON body: data did not match any variant of untagged enum VectorStruct",
        "vector is a string")

    ok(s.req("PUT", "/collections/nm", {"vectors": {"text": {"size": 2, "distance": "Euclid"},
                                                     "img": {"size": 3, "distance": "Manhattan"}},
                                         "sparse_vectors": {"bm25": {}}}), "create named")
    err(s.req("PUT", "/collections/nm/points" + W, {"points": [{"id": 1, "vector": [1, 2]}]}), 400,
        "Wrong input: Not existing vector name error: ", "unnamed vector to named collection")
    ok(s.req("PUT", "/collections/nm/points" + W,
             {"points": [{"id": 1, "vector": {"text": [1, 2], "img": [1, 2, 3],
                                              "bm25": {"indices": [7, 1], "values": [0.7, 0.1]}}}]}), "named upsert")
    p = ok(s.req("GET", "/collections/nm/points/1"), "get named")
    check(p["vector"] == {"text": [1.0, 2.0], "img": [1.0, 2.0, 3.0], "bm25": {"indices": [1, 7], "values": [0.1, 0.7]}},
          "named + sparse readback (indices sorted) %r" % p["vector"])
    err(s.req("PUT", "/collections/nm/points" + W,
              {"points": [{"id": 2, "vector": {"bm25": {"indices": [1, 2], "values": [0.5]}}}]}), 422,
        "Validation error in JSON body: [points[0].vector.?.values: Validation error: must be the same length as "
        "indices [{}]]", "sparse length mismatch")
    err(s.req("PUT", "/collections/nm/points" + W,
              {"points": [{"id": 2, "vector": {"bm25": {"indices": [3, 3], "values": [0.5, 0.6]}}}]}), 422,
        "Validation error in JSON body: [points[0].vector.?.indices: Validation error: must be unique [{}]]",
        "sparse duplicate indices")
    err(s.req("PUT", "/collections/nm/points" + W, {"points": [{"id": 2, "vector": {"text": [1, 2, 3]}}]}), 400,
        "Wrong input: Vector dimension error: expected dim: 2, got 3 for vector 'text'", "named dimension")
    # named batch form
    ok(s.req("PUT", "/collections/nm/points" + W,
             {"batch": {"ids": [5, 6], "vectors": {"text": [[1, 1], [2, 2]]}}}), "named batch")
    p = ok(s.req("POST", "/collections/nm/points", {"ids": [6], "with_vector": ["text"], "with_payload": False}), "rt")
    check(p == [{"id": 6, "vector": {"text": [2.0, 2.0]}}], "named batch readback %r" % p)
    # update_vectors replaces only the given vectors; delete_vectors
    ok(s.req("PUT", "/collections/nm/points/vectors" + W, {"points": [{"id": 1, "vector": {"text": [9, 9]}}]}),
       "update_vectors")
    p = ok(s.req("GET", "/collections/nm/points/1"), "get")["vector"]
    check(p["text"] == [9.0, 9.0] and p["img"] == [1.0, 2.0, 3.0], "update_vectors keeps others %r" % p)
    ok(s.req("POST", "/collections/nm/points/vectors/delete" + W, {"points": [1], "vector": ["img"]}), "delete_vectors")
    p = ok(s.req("GET", "/collections/nm/points/1"), "get")["vector"]
    check("img" not in p and "text" in p, "delete_vectors %r" % p)
    err(s.req("PUT", "/collections/nm/points/vectors" + W, {"points": [{"id": 77, "vector": {"text": [1, 1]}}]}), 404,
        "Not found: No point with id 77 found", "update_vectors missing point")
    r = ok(s.req("PUT", "/collections/nm/points/vectors", {"points": [{"id": 77, "vector": {"text": [1, 1]}}]}),
           "update_vectors missing nowait")
    check(r and r["status"] == "acknowledged", "update_vectors missing wait=false acknowledged")
    err(s.req("POST", "/collections/nm/points/vectors/delete" + W, {"points": [1], "vector": ["nope"]}), 400,
        "Wrong input: Not existing vector name error: nope", "delete_vectors unknown name")
    err(s.req("PUT", "/collections/nm/points" + W, {"points": [{"id": 3, "vector": {"text": {"indices": [1],
                                                                                              "values": [1]}}}]}),
        400, "Wrong input: Conversion between sparse and regular vectors failed", "sparse to dense")
    # multivectors: per-row Cosine normalisation, row dimension checked
    ok(s.req("PUT", "/collections/mv", {"vectors": {"colbert": {"size": 2, "distance": "Cosine",
                                                                "multivector_config": {"comparator": "max_sim"}}}}),
       "create multivector")
    # (Three rows: Qdrant 1.18.2 answers 400 "Conversion between sparse and regular vectors failed"
    # to a multivector of exactly two rows of two, e.g. [[3,4],[0,2]], which its untagged parser
    # takes for something else; pg2qdrant sends no multivectors.)
    ok(s.req("PUT", "/collections/mv/points" + W,
             {"points": [{"id": 1, "vector": {"colbert": [[3, 4], [0, 2], [1, 0]]}}]}), "multivector upsert")
    p = (ok(s.req("GET", "/collections/mv/points/1"), "get") or {}).get("vector", {}).get("colbert")
    check(p is not None and len(p) == 3 and approx(p[0], [0.6, 0.8]) and approx(p[1], [0, 1]),
          "multivector rows normalised %r" % p)
    err(s.req("PUT", "/collections/mv/points" + W, {"points": [{"id": 1, "vector": {"colbert": [[1, 2, 3]]}}]}), 400,
        "Wrong input: Vector dimension error: expected dim: 2, got 3 for vector 'colbert'", "multivector row dimension")
    if s.real:
        # Not reproduced (pg2qdrant sends no multivectors; docs/qdrant-test-server.md): Qdrant 1.18.2
        # reads a two-row multivector as a sparse [indices, values] pair ([[1,2],[1]] -> "?.values:
        # must be the same length as indices") and stores a dense [1,2] sent to a multivector as
        # one row (200).
        return
    err(s.req("PUT", "/collections/mv/points" + W, {"points": [{"id": 1, "vector": {"colbert": [[1, 2], [1]]}}]}),
        422, re.compile(r"Validation error in JSON body: \[points\[0\]\.vector\.colbert: .*\]"), "ragged multivector")
    err(s.req("PUT", "/collections/mv/points" + W, {"points": [{"id": 1, "vector": {"colbert": [1, 2]}}]}), 400,
        "Wrong input: Conversion between multi and regular vectors failed", "dense to multivector")


def t_ids(s):
    ok(s.req("PUT", "/collections/ids", {"vectors": {"size": 1, "distance": "Dot"}}), "create")
    u = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"
    for form in ("5C56C793-69F3-4FBF-87E6-C4BF54C28C26", "5c56c79369f34fbf87e6c4bf54c28c26",
                 "urn:uuid:5c56c793-69f3-4fbf-87e6-c4bf54c28c26", "{5c56c793-69f3-4fbf-87e6-c4bf54c28c26}"):
        ok(s.req("PUT", "/collections/ids/points" + W, {"points": [{"id": form, "vector": [1], "payload": {"f": form}}]}),
           "uuid form " + form)
    ok(s.req("PUT", "/collections/ids/points" + W,
             {"points": [{"id": 5, "vector": [1]}, {"id": "00000000-0000-0000-0000-000000000005", "vector": [1]},
                         {"id": 0, "vector": [1]}, {"id": 9223372036854775807, "vector": [1]}]}), "ids")
    got = [p["id"] for p in scroll(s, "ids", limit=100)["points"]]
    check(got == [0, 5, 9223372036854775807, "00000000-0000-0000-0000-000000000005", u],
          "ids normalised, numeric before uuid, 5 != uuid 5: %r" % got)
    p = ok(s.req("GET", "/collections/ids/points/" + u.upper()), "get uuid")
    check(p and p["id"] == u and p["payload"]["f"].startswith("{"), "last uuid form wins %r" % p)
    ok(s.req("GET", "/collections/ids/points/5"), "get numeric path id")
    # PUT /points: no position, floats printed by Rust's Display (1.0 -> 1), null as serde's "Unit"
    for bad, shown in ((-1, "-1"), (1.5, "1.5"), (1.0, "1"), (1e20, "100000000000000000000"), ("abc", "abc"),
                       ("123", "123"), (True, "true"), (None, "Unit"), (18446744073709551616, "18446744073709552000")):
        err(s.req("PUT", "/collections/ids/points" + W, {"points": [{"id": bad, "vector": [1]}]}), 400,
            "Format error in JSON body: value %s is not a valid point ID, valid values are either an unsigned integer "
            "or a UUID" % shown, "bad id %r" % (bad,))
    err(s.req("PUT", "/collections/ids/points" + W, {"batch": {"ids": ["nope"], "vectors": [[1]]}}), 400,
        "Format error in JSON body: value nope is not a valid point ID, valid values are either an unsigned integer "
        "or a UUID", "bad id in the batch form")
    for path in ("/points/delete", "/points/payload/clear"):
        err(s.req("POST", "/collections/ids" + path + W, {"points": ["nope"]}), 400,
            "Format error in JSON body: data did not match any variant of untagged enum PointsSelector",
            "bad id in " + path)
    for path, body in (("/points/payload", {"payload": {}, "points": ["nope"]}), ("/points", {"ids": ["nope"]})):
        err(s.req("POST", "/collections/ids" + path + W, body), 400,
            re.compile(r"Format error in JSON body: value nope is not a valid point ID, valid values are either an "
                       r"unsigned integer or a UUID at line 1 column \d+"), "bad id in " + path)
    err(s.req("GET", "/collections/ids/points/x-y"), 400, 'Wrong input: Can not recognize "x-y" as point id',
        "bad path id")
    err(s.req("GET", "/collections/ids/points/18446744073709551616"), 400,
        'Wrong input: Can not recognize "18446744073709551616" as point id', "path id above u64")
    # (sic) unlike the write endpoints' "No point with id N found"
    err(s.req("GET", "/collections/ids/points/424242"), 404, "Not found: Point with id 424242 does not exists!",
        "no point")


def t_payload_ops(s):
    ok(s.req("PUT", "/collections/p", {"vectors": {"size": 1, "distance": "Dot"}}), "create")
    ok(s.req("PUT", "/collections/p/points" + W, {"points": [
        {"id": 1, "vector": [1], "payload": {"a": 1, "b": {"c": 2, "d": 3}, "my key": 4, "tenant": "x"}},
        {"id": 2, "vector": [1], "payload": {"tenant": "y", "n": 5}}]}), "upsert")
    ok(s.req("POST", "/collections/p/points/payload" + W, {"payload": {"a": 10, "z": [1, 2]}, "points": [1]}), "set")
    pl = ok(s.req("GET", "/collections/p/points/1"), "get")["payload"]
    check(pl == {"a": 10, "b": {"c": 2, "d": 3}, "my key": 4, "tenant": "x", "z": [1, 2]}, "set merges %r" % pl)
    ok(s.req("POST", "/collections/p/points/payload" + W, {"payload": {"e": 1}, "points": [1], "key": "b"}), "set key")
    pl = ok(s.req("GET", "/collections/p/points/1"), "get")["payload"]
    check(pl["b"] == {"c": 2, "d": 3, "e": 1}, "set with key merges nested %r" % pl)
    ok(s.req("POST", "/collections/p/points/payload/delete" + W, {"keys": ["a", "b.c", "\"my key\""], "points": [1]}),
       "delete_payload")
    pl = ok(s.req("GET", "/collections/p/points/1"), "get")["payload"]
    check(pl == {"b": {"d": 3, "e": 1}, "tenant": "x", "z": [1, 2]}, "delete_payload paths %r" % pl)
    err(s.req("POST", "/collections/p/points/payload/delete" + W, {"keys": ["x y"], "points": [1]}), 400,
        re.compile(r"Format error in JSON body: Invalid json path: 'x y'.*"), "invalid json path")
    ok(s.req("PUT", "/collections/p/points/payload" + W, {"payload": {"only": True}, "points": [1]}), "overwrite")
    pl = ok(s.req("GET", "/collections/p/points/1"), "get")["payload"]
    check(pl == {"only": True}, "overwrite replaces %r" % pl)
    ok(s.req("POST", "/collections/p/points/payload/clear" + W, {"points": [1]}), "clear")
    check(ok(s.req("GET", "/collections/p/points/1"), "get")["payload"] == {}, "clear empties payload")
    ok(s.req("POST", "/collections/p/points/payload" + W,
             {"payload": {"hit": 1}, "filter": {"must": [{"key": "tenant", "match": {"value": "y"}}]}}), "set filter")
    check(ok(s.req("GET", "/collections/p/points/2"), "get")["payload"].get("hit") == 1, "set by filter")
    for path, body in (("/points/payload", {"payload": {"a": 1}, "points": [42]}),
                       ("/points/payload", {"payload": {"a": 1}, "points": [42], "_method": "PUT"}),
                       ("/points/payload/delete", {"keys": ["a"], "points": [42]}),
                       ("/points/payload/clear", {"points": [42]})):
        method = "PUT" if body.pop("_method", None) else "POST"
        err(s.req(method, "/collections/p" + path + W, body), 404, "Not found: No point with id 42 found",
            "%s %s missing point" % (method, path))
        r = ok(s.req(method, "/collections/p" + path, body), "%s %s missing nowait" % (method, path))
        check(r and r["status"] == "acknowledged", "missing point with wait=false acknowledged")
    err(s.req("POST", "/collections/p/points/payload" + W, {"payload": {"a": 1}}), 400,
        re.compile(r"Format error in JSON body: Either list of point ids or filter must be provided.*"),
        "set_payload without target")
    ok(s.req("POST", "/collections/p/points/delete" + W, {"points": [42, 43]}), "delete missing ids is fine")
    ok(s.req("POST", "/collections/p/points/delete" + W,
             {"filter": {"must": [{"key": "tenant", "match": {"value": "y"}}]}}), "delete by filter")
    check([p["id"] for p in scroll(s, "p")["points"]] == [1], "delete by filter removed point 2")
    ok(s.req("POST", "/collections/p/points/delete" + W, {"points": [1]}), "delete ids")
    check(scroll(s, "p")["points"] == [], "delete by ids")


def t_batch(s):
    ok(s.req("PUT", "/collections/b", {"vectors": {"size": 4, "distance": "Dot"}}), "create")
    body = {"operations": [
        {"upsert": {"points": [{"id": 7, "vector": [1, 2, 3, 4], "payload": {}}]}},
        {"upsert": {"batch": {"ids": [8, 9], "vectors": [[1, 1, 1, 1], [2, 2, 2, 2]], "payloads": [{}, {}]}}},
        {"delete": {"points": [8]}},
        {"set_payload": {"payload": {"status": "x", "src_table": "t"}, "points": [7]}},
        {"overwrite_payload": {"payload": {"a": 1, "src_table": "t"}, "points": [7]}},
        {"delete_payload": {"keys": ["a"], "points": [7]}},
        {"update_vectors": {"points": [{"id": 7, "vector": [9, 2, 4, 2]}]}},
        {"delete_vectors": {"points": [9], "vector": [""]}},
        {"clear_payload": {"points": [9]}},
    ]}
    r = ok(s.req("POST", "/collections/b/points/batch" + W, body), "batch")
    ids = [x["operation_id"] for x in r or []]
    check(len(ids) == 9 and ids == sorted(ids) and len(set(ids)) == 9
          and all(x["status"] == "completed" for x in r), "batch results %r" % r)
    got = ok(s.req("POST", "/collections/b/points", {"ids": [7, 8, 9], "with_vector": True, "with_payload": True}),
             "retrieve")
    check(got == [{"id": 7, "payload": {"src_table": "t"}, "vector": [9.0, 2.0, 4.0, 2.0]},
                  {"id": 9, "payload": {}, "vector": {}}], "batch end state %r" % got)
    check(ok(s.req("POST", "/collections/b/points/batch" + W, {"operations": []}), "empty batch") == [], "empty -> []")
    # stops at the first failing op; earlier ones stay applied
    body = {"operations": [
        {"upsert": {"points": [{"id": 20, "vector": [1, 1, 1, 1]}]}},
        {"set_payload": {"payload": {"a": 1}, "points": [404]}},
        {"upsert": {"points": [{"id": 21, "vector": [1, 1, 1, 1]}]}}]}
    err(s.req("POST", "/collections/b/points/batch" + W, body), 404, "Not found: No point with id 404 found",
        "batch missing point")
    got = [p["id"] for p in ok(s.req("POST", "/collections/b/points", {"ids": [20, 21]}), "rt")]
    check(got == [20], "ops before the failure applied, after it not: %r" % got)
    body["operations"][1] = {"upsert": {"points": [{"id": 22, "vector": [1, 1]}]}}
    err(s.req("POST", "/collections/b/points/batch" + W, body), 400,
        "Wrong input: Vector dimension error: expected dim: 4, got 2", "batch dimension")
    err(s.req("POST", "/collections/b/points/batch" + W, {"operations": [{"upsert_points": {"points": []}}]}), 400,
        re.compile(r"Format error in JSON body: data did not match any variant of untagged enum UpdateOperation.*"),
        "unknown op key")
    err(s.req("POST", "/collections/b/points/batch" + W, {"operations": [{"delete": {"points": [-5]}}]}), 400,
        re.compile(r"Format error in JSON body: .*"), "bad id inside batch")
    err(s.req("POST", "/collections/b/points/batch" + W, {"ops": []}), 400,
        re.compile(r"Format error in JSON body: missing field `operations`.*"), "missing operations")
    r = ok(s.req("POST", "/collections/b/points/batch?wait=false",
                 {"operations": [{"set_payload": {"payload": {"a": 1}, "points": [404]}}]}), "batch nowait")
    check(r and r[0]["status"] == "acknowledged", "batch wait=false missing point acknowledged")


def t_scroll_filters(s):
    ok(s.req("PUT", "/collections/s", {"vectors": {"size": 1, "distance": "Dot"}}), "create")
    pts = [{"id": i, "vector": [i], "payload": {"n": i, "tenant": "even" if i % 2 == 0 else "odd", "k": "v"}}
           for i in range(25, 0, -1)]
    pts.append({"id": "00000000-0000-0000-0000-0000000000ff", "vector": [0], "payload": {"n": 100}})
    ok(s.req("PUT", "/collections/s/points" + W, {"points": pts}), "upsert")
    r = scroll(s, "s")
    check([p["id"] for p in r["points"]] == list(range(1, 11)) and r["next_page_offset"] == 11,
          "default limit 10 + next_page_offset %r" % r.get("next_page_offset"))
    check(all("vector" not in p and "payload" in p for p in r["points"]), "default with_payload true, no vector")
    seen, off = [], None
    while True:
        r = scroll(s, "s", limit=7, offset=off, with_payload=False)
        seen += [p["id"] for p in r["points"]]
        check(all(set(p) == {"id"} for p in r["points"]), "with_payload false omits payload")
        off = r["next_page_offset"]
        if off is None:
            break
    check(seen == list(range(1, 26)) + ["00000000-0000-0000-0000-0000000000ff"], "pagination %r" % seen)
    r = scroll(s, "s", limit=2, offset=24, with_payload=["n"], with_vector=True)
    check(r["points"] == [{"id": 24, "payload": {"n": 24}, "vector": [24.0]},
                          {"id": 25, "payload": {"n": 25}, "vector": [25.0]}], "offset/with_payload list %r" % r)
    r = scroll(s, "s", limit=1, with_payload={"exclude": ["k", "tenant"]})
    check(r["points"][0]["payload"] == {"n": 1}, "with_payload exclude %r" % r)
    err(s.req("POST", "/collections/s/points/scroll", {"limit": 0}), 422,
        "Validation error in JSON body: [scroll_request.limit: value 0 invalid, must be 1 or larger]", "limit 0")
    err(s.req("POST", "/collections/s/points/scroll", {"limit": -1}), 400,
        re.compile(r"Format error in JSON body: invalid value: integer `-1`, expected usize at line 1 column \d+"),
        "limit -1")
    r = scroll(s, "s", limit=100, filter={"must": [{"key": "tenant", "match": {"value": "even"}},
                                                   {"has_id": [2, 4, 5, 6]}]})
    check([p["id"] for p in r["points"]] == [2, 4, 6], "must match+has_id %r" % r)
    r = scroll(s, "s", limit=100, filter={"must": [{"key": "n", "range": {"gte": 20, "lt": 23}}],
                                          "must_not": [{"has_id": [21]}]})
    check([p["id"] for p in r["points"]] == [20, 22], "range + must_not %r" % r)
    r = scroll(s, "s", limit=100, filter={"should": [{"key": "n", "match": {"any": [3, 100]}}]})
    check([p["id"] for p in r["points"]] == [3, "00000000-0000-0000-0000-0000000000ff"], "should/any %r" % r)
    check(len(scroll(s, "s", limit=100, filter={})["points"]) == 26, "empty filter matches all")
    c = ok(s.req("POST", "/collections/s/points/count", {"filter": {"must": [{"key": "tenant",
                                                                                "match": {"value": "odd"}}]}}), "count")
    check(c == {"count": 13}, "count with filter %r" % c)
    check(ok(s.req("POST", "/collections/s/points/count", {"exact": True}), "count") == {"count": 26}, "count all")
    # The test server deliberately implements only the filters pg2qdrant sends (a documented
    # limitation); real Qdrant evaluates these (or rejects geo_radius {} while parsing).
    for f in ({"must": [{"key": "n", "geo_radius": {}}]}, {"min_should": {"conditions": [], "min_count": 1}},
              {"must": [{"key": "n", "match": {"text": "x"}}]}):
        if not s.real:
            err(s.req("POST", "/collections/s/points/scroll", {"filter": f}), 400,
                "Bad request: unsupported filter in test server", "unsupported filter %r" % f)
    # conditional upsert / update_mode
    ok(s.req("PUT", "/collections/s/points" + W, {"points": [{"id": 1, "vector": [0], "payload": {"n": -1}},
                                                            {"id": 500, "vector": [0], "payload": {"n": 500}}],
                                                 "update_filter": {"must": [{"key": "n", "range": {"gt": 5}}]}}),
       "update_filter")
    got = ok(s.req("POST", "/collections/s/points", {"ids": [1, 500], "with_payload": True}), "rt")
    check([p["payload"]["n"] for p in got] == [1, 500], "update_filter guards existing, inserts new %r" % got)
    ok(s.req("PUT", "/collections/s/points" + W, {"points": [{"id": 2, "vector": [0], "payload": {}},
                                                            {"id": 501, "vector": [0]}],
                                                 "update_mode": "insert_only"}), "insert_only")
    got = ok(s.req("POST", "/collections/s/points", {"ids": [2, 501], "with_payload": True}), "rt")
    check([p["payload"] for p in got] == [{"n": 2, "tenant": "even", "k": "v"}, {}], "insert_only %r" % got)


def t_request_errors(s):
    ok(s.req("PUT", "/collections/e", {"vectors": {"size": 1, "distance": "Dot"}}), "create")
    p = "/collections/e/points"
    pt = {"points": [{"id": 1, "vector": [1]}]}
    err(s.req("PUT", p + "?wait=maybe", pt), 400,
        "Deserialize error in query parameters: provided string was not `true` or `false`", "wait=maybe")
    err(s.req("PUT", p + "?ordering=fast", pt), 400,
        "Deserialize error in query parameters: unknown variant `fast`, expected one of `weak`, `medium`, `strong`",
        "ordering")
    err(s.req("PUT", p + "?timeout=abc", pt), 400, "Deserialize error in query parameters: invalid digit found in string",
        "timeout abc")
    r = ok(s.req("PUT", p + "?timeout=0", pt), "timeout 0 accepted on point writes")
    check(r and r.get("status") == "acknowledged", "timeout=0 without wait %r" % r)
    r = ok(s.req("PUT", p + "?wait=true&ordering=strong&timeout=5", pt), "all params")
    check(r and r.get("status") == "completed", "all params %r" % r)
    err(s.req("PUT", p, raw=b'{"points": [', headers={"Content-Type": "application/json"}), 400,
        "Format error in JSON body: EOF while parsing a list at line 1 column 12", "invalid JSON")
    for ctype in ("text/plain", None):  # the Content-Type is not looked at
        r = ok(s.req("PUT", p + W, raw=json.dumps(pt).encode(), headers={"Content-Type": ctype} if ctype else {}),
               "content type %s" % ctype)
        check(r and r.get("status") == "completed", "body parsed whatever the content type (%s) %r" % (ctype, r))
    for ctype in ("application/json", "text/plain"):
        err(s.req("PUT", p, raw=b"", headers={"Content-Type": ctype}), 400,
            "Format error in JSON body: EOF while parsing a value at line 1 column 0", "empty body " + ctype)
    # an operation on no point at all: after the collection lookup, a nonzero time
    for path, method, body in (("", "PUT", {"points": []}), ("", "PUT", {"batch": {"ids": [], "vectors": []}}),
                               ("/delete", "POST", {"points": []}),
                               ("/payload", "POST", {"payload": {"a": 1}, "points": []}),
                               ("/payload", "PUT", {"payload": {"a": 1}, "points": []}),
                               ("/payload/delete", "POST", {"keys": ["a"], "points": []}),
                               ("/payload/clear", "POST", {"points": []}),
                               ("/vectors/delete", "POST", {"points": [], "vector": [""]}),
                               ("/batch", "POST", {"operations": [{"delete": {"points": []}}]})):
        st, body, _ = s.req(method, p + path + W, body)
        err((st, body, _), 400, "Bad request: Empty update request", "empty %s %s" % (method, path))
        check(isinstance(body, dict) and body.get("time", 0) > 0, "empty update: nonzero time %r" % (body,))
    err(s.req("PUT", p + "/vectors" + W, {"points": []}), 422,
        "Validation error in JSON body: [points: must specify points to update]", "update_vectors no points")
    err(s.req("PUT", "/collections/none/points" + W, {"points": []}), 404, "Not found: Collection `none` doesn't exist!",
          "collection looked up before the empty check")
    # a batch stops at the empty operation, earlier ones stay applied
    err(s.req("POST", p + "/batch" + W, {"operations": [{"upsert": {"points": [{"id": 33, "vector": [1]}]}},
                                                       {"delete": {"points": []}}]}), 400,
        "Bad request: Empty update request", "empty op in a batch")
    check([x["id"] for x in ok(s.req("POST", p, {"ids": [33]}), "rt")] == [33], "ops before the empty one applied")
    st, body, _ = s.req("PUT", p + W, {"points": [{"id": 1, "vector": [1]}]})
    check(st == 200, "upsert")
    st, body, _ = s.req("PUT", p, {"points": [{"id": -1, "vector": [1]}]})
    check(st == 400 and body.get("time") == 0.0, "format errors report time 0.0 (%r)" % body)


def big_request(s, method, path, body):
    """Sends a body too large to be read whole: the server may answer (and close) before the
    end, so send errors are ignored and whatever answer arrived is read.  (status, text)."""
    import socket
    conn = socket.create_connection((s.host, s.port), timeout=120)
    head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" \
           "Connection: close\r\n" % (method, path, s.host, s.port, len(body))
    if s.api_key:
        head += "api-key: %s\r\n" % s.api_key
    data = b""
    try:
        try:
            conn.sendall((head + "\r\n").encode())
            view = memoryview(body)
            for i in range(0, len(body), 1 << 20):
                conn.sendall(view[i:i + (1 << 20)])
        except OSError:
            pass
        while True:
            d = conn.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    finally:
        conn.close()
    m = re.match(rb"HTTP/1\.1 (\d+)", data)
    return (int(m.group(1)) if m else None), data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")


def t_request_size(s):
    """service.max_request_size_mb = 32 (the default): a larger body is refused by its length."""
    ok(s.req("PUT", "/collections/big", {"vectors": {"size": 1, "distance": "Dot"}}), "create")
    body = json.dumps({"points": [{"id": 1, "vector": [1], "payload": {"s": "x" * (33 << 20)}}]}).encode()
    st, text = big_request(s, "PUT", "/collections/big/points" + W, body)
    check(st == 400 and json.loads(text or "{}") == {
        "status": {"error": "JSON payload (%d bytes) is larger than allowed (limit: 33554432 bytes)." % len(body)},
        "time": 0.0}, "33 MB body: %s %r" % (st, text[:300]))
    body = json.dumps({"points": [{"id": 1, "vector": [1], "payload": {"s": "x" * ((32 << 20) - 100)}}]}).encode()
    check(len(body) <= 32 << 20, "just under the limit")
    st, text = big_request(s, "PUT", "/collections/big/points" + W, body)
    check(st == 200 and '"status":"completed"' in text, "a body of %d bytes is accepted: %s %r" % (len(body), st,
                                                                                                 text[:300]))


def t_ids_and_order(s):
    """Integer ids up to u64::MAX, UUIDs; scroll order (numbers, then UUIDs by bytes) and
    next_page_offset across both kinds; Cosine normalisation on the way in."""
    ok(s.req("PUT", "/collections/o", {"vectors": {"size": 2, "distance": "Cosine"}}), "create")
    u0, u1 = "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"
    r = ok(s.req("PUT", "/collections/o/points" + W, {"points": [
        {"id": 18446744073709551615, "vector": [1, 1]}, {"id": 9223372036854775808, "vector": [3, 4]},
        {"id": u1.upper(), "vector": [0, 5]}, {"id": u0, "vector": [2, 0]}, {"id": 3, "vector": [0, -0.5]}]}), "upsert")
    check(isinstance(r, dict) and set(r) == {"operation_id", "status"} and r["status"] == "completed",
          "wait=true body %r" % r)
    pages, off = [], None
    while True:
        body = {"limit": 2, "with_vector": True}
        if off is not None:
            body["offset"] = off
        res = scroll(s, "o", **body)
        pages.append(([p["id"] for p in res["points"]], res["next_page_offset"]))
        off = res["next_page_offset"]
        if off is None or len(pages) > 5:
            break
    check(pages == [([3, 9223372036854775808], 18446744073709551615), ([18446744073709551615, u0], u1), ([u1], None)],
          "pages and offsets %r" % pages)
    got = {p["id"]: p["vector"] for p in scroll(s, "o", limit=10, with_vector=True)["points"]}
    check(approx(got[9223372036854775808], [0.6, 0.8]) and approx(got[18446744073709551615], [0.70710677] * 2)
          and approx(got[u1], [0, 1]) and approx(got[u0], [1, 0]) and approx(got[3], [0, -1]),
          "Cosine vectors normalised %r" % got)
    res = scroll(s, "o", limit=1, offset=18446744073709551614)
    check([p["id"] for p in res["points"]] == [18446744073709551615] and res["next_page_offset"] == u0,
          "offset between ids %r" % res)
    st, text, _ = s.req("GET", "/collections/o/points/18446744073709551615", parse=False)
    check(st == 200 and '"id":18446744073709551615' in text, "u64::MAX id written exactly: %s" % text[:200])
    got = ok(s.req("POST", "/collections/o/points", {"ids": [18446744073709551615, u1.upper(), 9223372036854775808]}),
             "retrieve")
    check(got == [{"id": 18446744073709551615}, {"id": u1}, {"id": 9223372036854775808}],
          "retrieve: ids only by default, in the order asked %r" % got)


def t_payload_roundtrip(s):
    """Payload values come back as Qdrant (serde_json, f64 numbers) keeps them."""
    ok(s.req("PUT", "/collections/pl", {"vectors": {"size": 1, "distance": "Dot"}}), "create")
    raw = (b'{"points":[{"id":1,"vector":[1],"payload":{"ts":"2024-01-02T03:04:05.123456+00:00","d":"2024-01-02",'
           b'"num":12345678901234567890.123456789,"e308":1e308,"nested":{"a":[1,{"b":null},true,"x"],"e":{}},'
           b'"u64":18446744073709551615,"i63":9223372036854775808,"negz":-0.0,"negzi":-0,'
           b'"big":123456789012345678901234567890,"imin":-9223372036854775808,"f":0.1,"i":42,'
           b'"s":"\\u00e9\\ud83d\\ude00"}}]}')
    ok(s.req("PUT", "/collections/pl/points" + W, raw=raw, headers={"Content-Type": "application/json"}), "upsert")
    st, text, _ = s.req("GET", "/collections/pl/points/1", parse=False)
    pl = json.loads(text)["result"]["payload"] if st == 200 else {}
    check(pl.get("ts") == "2024-01-02T03:04:05.123456+00:00" and pl.get("d") == "2024-01-02", "dates as strings")
    check(pl.get("nested") == {"a": [1, {"b": None}, True, "x"], "e": {}}, "nested JSON %r" % pl.get("nested"))
    check(pl.get("num") == 12345678901234567890.123456789 and isinstance(pl.get("num"), float), "many digits -> f64")
    check(pl.get("big") == 1.2345678901234568e+29, "integer beyond u64 -> f64 %r" % pl.get("big"))
    check(pl.get("u64") == 18446744073709551615 and pl.get("i63") == 9223372036854775808
          and pl.get("imin") == -9223372036854775808 and pl.get("i") == 42, "big integers exact")
    check(isinstance(pl.get("negz"), float) and math.copysign(1, pl["negz"]) == -1, "-0.0 kept %r" % pl.get("negz"))
    check(isinstance(pl.get("negzi"), float) and math.copysign(1, pl["negzi"]) == -1, "-0 becomes -0.0")
    check(pl.get("f") == 0.1 and pl.get("e308") == 1e308 and pl.get("s") == "\u00e9\U0001F600", "f64 and strings")
    for frag in ('"u64":18446744073709551615', '"i63":9223372036854775808', '"num":1.2345678901234567e+19',
                 '"e308":1e+308', '"negz":-0.0', '"negzi":-0.0', '"big":1.2345678901234568e+29', '"f":0.1'):
        check(frag in text, "payload text has %s: %s" % (frag, text[:600]))
    err(s.req("PUT", "/collections/pl/points" + W, raw=b'{"points":[{"id":2,"vector":[1],"payload":{"x":1e309}}]}',
              headers={"Content-Type": "application/json"}), 400,
        "Format error in JSON body: number out of range at line 1 column 52", "1e309")


def t_collection_info_and_truncate(s):
    ok(s.req("PUT", "/collections/ci", {"vectors": {"size": 2, "distance": "Euclid"}}), "create")
    ok(s.req("PUT", "/collections/ci/points" + W, {"points": [{"id": i, "vector": [i, 1]} for i in range(5)]}),
       "upsert")
    info = ok(s.req("GET", "/collections/ci"), "info")
    check(info and info["status"] == "green" and info["points_count"] == 5, "info status/points_count %r" % info)
    check(info and info["config"]["params"]["vectors"] == {"size": 2, "distance": "Euclid"}, "info params")
    r = ok(s.req("POST", "/collections/ci/points/delete" + W, {"filter": {}}), "truncate")
    check(r and r["status"] == "completed", "delete by filter {} %r" % r)
    check(ok(s.req("POST", "/collections/ci/points/count", {"exact": True}), "count") == {"count": 0},
          "delete by filter {} removes every point")
    check(ok(s.req("GET", "/collections/ci"), "info")["points_count"] == 0, "points_count after truncate")
    r = ok(s.req("POST", "/collections/ci/points/delete", {"filter": {}}), "truncate nowait")
    check(r and r["status"] == "acknowledged", "wait=false body %r" % r)
    r = ok(s.req("POST", "/collections/ci/points/batch" + W, {"operations": [
        {"upsert": {"points": [{"id": 1, "vector": [1, 1]}]}}, {"delete": {"filter": {}}}]}), "batch")
    check(isinstance(r, list) and [x["status"] for x in r] == ["completed"] * 2
          and r[0]["operation_id"] < r[1]["operation_id"], "batch wait=true body %r" % r)


def t_aliases(s):
    A = "/collections/aliases"
    for c in ("a1", "a2"):
        ok(s.req("PUT", "/collections/" + c, {"vectors": {"size": 1, "distance": "Dot"}}), "create")
    aliases = lambda path="/aliases": sorted(  # noqa: E731
        (a["alias_name"], a["collection_name"]) for a in ok(s.req("GET", path), "aliases")["aliases"])
    check(aliases() == [], "no aliases")
    check(ok(s.req("POST", A, {"actions": [{"create_alias": {"collection_name": "a1", "alias_name": "al"}}]}),
             "create_alias") is True, "create_alias -> true")
    ok(s.req("POST", A + W, {"actions": [{"create_alias": {"collection_name": "a1", "alias_name": "al2"}}]}), "wait")
    # create_alias of an existing alias re-points it
    ok(s.req("POST", A, {"actions": [{"create_alias": {"collection_name": "a2", "alias_name": "al"}}]}), "re-point")
    check(aliases() == [("al", "a2"), ("al2", "a1")], "GET /aliases %r" % aliases())
    check(aliases("/collections/a1/aliases") == [("al2", "a1")], "GET /collections/a1/aliases")
    check(aliases("/collections/none/aliases") == [], "aliases of a missing collection: empty, no 404")
    # an alias works wherever a collection name does (but DELETE)
    ok(s.req("PUT", "/collections/al/points" + W, {"points": [{"id": 1, "vector": [2], "payload": {"x": 1}}]}),
       "upsert via alias")
    check(ok(s.req("GET", "/collections/al"), "info via alias")["points_count"] == 1, "info via alias")
    check(ok(s.req("GET", "/collections/a2"), "info")["points_count"] == 1, "the write reached a2")
    check(ok(s.req("GET", "/collections/al/exists"), "exists") == {"exists": True}, "exists via alias")
    check(ok(s.req("GET", "/collections/al/points/1"), "get")["payload"] == {"x": 1}, "get via alias")
    check(ok(s.req("POST", "/collections/al/points/count", {}), "count") == {"count": 1}, "count via alias")
    check([p["id"] for p in scroll(s, "al")["points"]] == [1], "scroll via alias")
    ok(s.req("POST", "/collections/al/points/batch" + W,
             {"operations": [{"set_payload": {"payload": {"y": 2}, "points": [1]}}]}), "batch via alias")
    check(ok(s.req("POST", "/collections/al/points", {"ids": [1], "with_payload": True}), "rt")[0]["payload"]
          == {"x": 1, "y": 2}, "retrieve via alias")
    ok(s.req("PUT", "/collections/al/index" + W, {"field_name": "x", "field_schema": "integer"}), "index via alias")
    names = sorted(c["name"] for c in ok(s.req("GET", "/collections"), "list")["collections"])
    check(names == ["a1", "a2"], "aliases are not listed as collections %r" % names)
    # errors
    err(s.req("POST", A, {"actions": [{"create_alias": {"collection_name": "none", "alias_name": "al3"}}]}), 404,
        "Not found: Collection `none` doesn't exist!", "alias of a missing collection")
    err(s.req("POST", A, {"actions": [{"create_alias": {"collection_name": "a1", "alias_name": "a2"}}]}), 409,
        "Wrong input: Collection `a2` already exists!", "alias named like a collection")
    err(s.req("PUT", "/collections/al", {"vectors": {"size": 1, "distance": "Dot"}}), 400,
        "Wrong input: Can't create collection with name al. Alias with the same name already exists",
        "collection named like an alias")
    err(s.req("POST", A, {"actions": [{"rename_alias": {"old_alias_name": "nope", "new_alias_name": "x"}}]}), 404,
        "Not found: Alias nope does not exists!", "rename a missing alias")
    err(s.req("POST", A, {}), 400, "Format error in JSON body: missing field `actions` at line 1 column 2",
        "no actions")
    err(s.req("POST", A, {"actions": [{"bogus": {}}]}), 400,
        re.compile(r"Format error in JSON body: data did not match any variant of untagged enum AliasOperations "
                   r"at line 1 column \d+"), "unknown action")
    err(s.req("POST", A + "?timeout=0", {"actions": []}), 422,
        "Validation error in query parameters: [timeout: value 0 invalid, must be 1 or larger]", "timeout=0 here")
    check(ok(s.req("POST", A, {"actions": []}), "no action") is True, "empty actions -> true")
    # rename (onto an existing alias: replaces it), delete (of a missing one: fine)
    ok(s.req("POST", A, {"actions": [{"rename_alias": {"old_alias_name": "al", "new_alias_name": "al2"}}]}), "rename")
    check(aliases() == [("al2", "a2")], "rename replaces the target alias %r" % aliases())
    ok(s.req("POST", A, {"actions": [{"delete_alias": {"alias_name": "gone"}}]}), "delete a missing alias")
    # not atomic: the actions before the failing one stay applied
    err(s.req("POST", A, {"actions": [{"create_alias": {"collection_name": "a1", "alias_name": "sw"}},
                                      {"create_alias": {"collection_name": "none", "alias_name": "sw2"}}]}), 404,
        "Not found: Collection `none` doesn't exist!", "failing second action")
    check(aliases() == [("al2", "a2"), ("sw", "a1")], "first action applied %r" % aliases())
    # the switch of a rebuild: delete + create in one request
    ok(s.req("POST", A, {"actions": [{"delete_alias": {"alias_name": "al2"}},
                                     {"create_alias": {"collection_name": "a1", "alias_name": "al2"}}]}), "switch")
    check(aliases() == [("al2", "a1"), ("sw", "a1")], "switched %r" % aliases())
    # DELETE /collections/{alias} deletes nothing; deleting the collection drops its aliases
    check(ok(s.req("DELETE", "/collections/al2"), "delete alias name") is False, "DELETE of an alias name -> false")
    check(ok(s.req("DELETE", "/collections/a1"), "delete") is True and aliases() == [],
          "aliases go with their collection %r" % aliases())
    err(s.req("GET", "/collections/al2"), 404, "Not found: Collection `al2` doesn't exist!", "alias gone")


def t_faults(s):
    ok(s.req("PUT", "/collections/f", {"vectors": {"size": 1, "distance": "Dot"}}), "create")
    up = lambda i: s.req("PUT", "/collections/f/points" + W, {"points": [{"id": i, "vector": [1]}]})  # noqa: E731
    count = lambda: ok(s.req("POST", "/collections/f/points/count", {}), "count")["count"]  # noqa: E731
    ok(s.req("POST", "/__test/fault", {"fail_next": 2, "status": 503, "error": "Service unavailable: try later",
                                       "retry_after": 2}), "fault")
    for i in (1, 2):
        st, body, hdr = up(i)
        err((st, body, hdr), 503, "Service unavailable: try later", "injected failure %d" % i)
        check(hdr.get("retry-after") == "2", "Retry-After header %r" % hdr.get("retry-after"))
    check(count() == 0, "failed writes not applied")
    check(ok(s.req("GET", "/collections/f"), "reads are not failed") is not None, "reads pass through")
    ok(up(3), "third write succeeds")
    ok(s.req("POST", "/__test/fault", {"fail_next": 1, "status": 500}), "fault")
    st, body, hdr = s.req("POST", "/collections/f/points/batch" + W, {"operations": []})
    err((st, body, hdr), 500, "Service internal error: injected fault", "batch fails with default text")
    check("retry-after" not in hdr, "no Retry-After without retry_after")
    # drop
    ok(s.req("POST", "/__test/fault", {"drop_next": 1}), "fault")
    st, e, _ = up(4)
    check(st is None, "dropped connection gives no answer (%s %r)" % (st, e))
    check(count() == 1, "dropped write not applied")
    ok(up(4), "after drop")
    # delay
    ok(s.req("POST", "/__test/fault", {"delay_next": 2, "delay_ms": 300}), "fault")
    for what in ("read", "write"):
        t = time.time()
        ok(s.req("GET", "/collections/f") if what == "read" else up(5), "delayed " + what)
        check(time.time() - t >= 0.28, "delay applied to %s (%.3fs)" % (what, time.time() - t))
    t = time.time()
    ok(s.req("GET", "/collections/f"), "not delayed")
    check(time.time() - t < 0.25, "delay only for the next N")
    # half-applied batch
    ok(s.req("POST", "/__test/fault", {"fail_after_ops": 2, "fail_next": 1, "status": 500}), "fault")
    body = {"operations": [{"upsert": {"points": [{"id": i, "vector": [1]}]}} for i in (10, 11, 12)]}
    err(s.req("POST", "/collections/f/points/batch" + W, body), 500, "Service internal error: injected fault",
        "fail_after_ops")
    got = [p["id"] for p in ok(s.req("POST", "/collections/f/points", {"ids": [10, 11, 12]}), "rt")]
    check(got == [10, 11], "first K ops applied %r" % got)
    err(s.req("POST", "/__test/fault", {"fail_nxt": 1}), 400, "unknown fault key `fail_nxt`", "bad fault key")
    # stats and reset
    st, stats, _ = s.req("GET", "/__test/stats")
    check(st == 200 and stats["requests"] > 0 and stats["writes"] == 8, "stats %r" % stats)
    ok(s.req("POST", "/__test/fault", {"fail_next": 5}), "fault")
    ok(s.req("POST", "/__test/reset"), "reset")
    err(s.req("GET", "/collections/f"), 404, "Not found: Collection `f` doesn't exist!", "reset drops collections")
    ok(s.req("PUT", "/collections/f", {"vectors": {"size": 1, "distance": "Dot"}}), "create")
    ok(up(1), "reset clears faults")
    st, stats, _ = s.req("GET", "/__test/stats")
    check(stats == {"requests": 3, "writes": 1}, "stats after reset %r" % stats)


def t_request_log(s):
    s.req("POST", "/__test/reset")
    with open(s.log) as f:
        before = len(f.readlines())
    s.req("PUT", "/collections/l", {"vectors": {"size": 1, "distance": "Dot"}})
    s.req("PUT", "/collections/l/points?wait=true", {"points": [{"id": "a\u00e9", "vector": [1]}]})
    s.req("POST", "/__test/fault", {"drop_next": 1})
    s.req("POST", "/collections/l/points/delete?wait=true&ordering=weak", {"points": [1]})
    s.req("GET", "/__test/stats")
    with open(s.log) as f:
        lines = [json.loads(x) for x in f.readlines()[before:]]
    check(len(lines) == 3, "3 logged requests, /__test not logged: %r" % lines)
    if len(lines) == 3:
        times = {k: lines[0].pop(k, None) for k in ("t_in", "t_out")}
        check(lines[0] == {"method": "PUT", "path": "/collections/l", "query": "", "status": 200,
                           "body": json.dumps({"vectors": {"size": 1, "distance": "Dot"}})}, "log line %r" % lines[0])
        check(all(isinstance(t, float) for t in times.values()) and times["t_in"] <= times["t_out"] and
              lines[1]["t_in"] >= times["t_in"], "log line times (arrival <= answer, in order) %r" % times)
        check(lines[1]["status"] == 400 and json.loads(lines[1]["body"])["points"][0]["id"] == "a\u00e9",
              "log line with a 400 and UTF-8 body %r" % lines[1])
        check(lines[2]["query"] == "wait=true&ordering=weak" and lines[2]["status"] == 0,
              "dropped request logged with status 0 %r" % lines[2])


def t_auth(binary, workdir, wrap):
    s = Server(binary, workdir, wrap, api_key="sekret") if binary else RealServer(workdir, api_key="sekret")
    try:
        for path in ("/", "/healthz", "/livez", "/readyz"):
            st, _, _ = s.req("GET", path, headers={"api-key": ""})
            check(st == 200, "whitelisted %s without key (%s)" % (path, st))
        s.api_key = None
        st, body, hdr = s.req("GET", "/collections")
        check(st == 401 and body == "Must provide an API key or an Authorization bearer token", "missing key %r" % body)
        st, body, _ = s.req("GET", "/collections", headers={"api-key": "wrong"})
        check(st == 401 and body == "Invalid API key or JWT", "wrong key %r" % body)
        st, body, _ = s.req("GET", "/collections", headers={"Authorization": "Bearer sekret"})
        check(st == 200, "bearer token accepted")
        st, body, _ = s.req("GET", "/collections", headers={"api-key": "sekret"})
        check(st == 200, "api-key accepted")
        if not s.real:
            st, body, _ = s.req("GET", "/__test/stats")
            check(st == 200, "control API needs no key")
    finally:
        s.stop()


def t_discard_writes(binary, workdir, wrap):
    """--discard-writes: writes answer like successful ones (one result per operation) but store nothing."""
    s = Server(binary, workdir, wrap, extra=["--discard-writes"])
    try:
        ok(s.req("PUT", "/collections/d", {"vectors": {"size": 2, "distance": "Dot"}}), "create (discard mode)")
        body = {"operations": [
            {"upsert": {"points": [{"id": 1, "vector": [1, 2], "payload": {"s": "a,]}[\"{"}}]}},
            {"delete": {"points": [5]}},
            {"upsert": {"points": [{"id": 2, "vector": [1, 2, 3]}]}}]}  # wrong dim: not checked
        r = ok(s.req("POST", "/collections/d/points/batch" + W, body), "discarded batch")
        ids = [x["operation_id"] for x in r or []]
        check(len(ids) == 3 and ids == sorted(ids) and len(set(ids)) == 3
              and all(x["status"] == "completed" for x in r), "discarded batch results %r" % r)
        check(ok(s.req("POST", "/collections/d/points/batch" + W, {"operations": []}), "empty") == [], "empty -> []")
        r = ok(s.req("POST", "/collections/d/points/batch?wait=false", {"operations": [{"delete": {"points": [1]}}]}),
               "nowait")
        check(r and len(r) == 1 and r[0]["status"] == "acknowledged", "discarded wait=false %r" % r)
        r = ok(s.req("PUT", "/collections/d/points" + W, {"points": [{"id": 3, "vector": [1, 1]}]}), "single upsert")
        check(isinstance(r, dict) and r.get("status") == "completed", "single write result %r" % r)
        check(ok(s.req("POST", "/collections/d/points/count", {}), "count") == {"count": 0}, "nothing stored")
        err(s.req("POST", "/collections/nope/points/batch" + W, {"operations": [{"delete": {"points": [1]}}]}), 404,
            "Not found: Collection `nope` doesn't exist!", "discard: missing collection")
        check(ok(s.req("POST", "/collections/nope/points/batch" + W, {"operations": []}), "discard: empty") == [],
              "discard: empty batch on a missing collection -> []")
        err(s.req("POST", "/collections/d/points/batch" + W, {"ops": []}), 400,
            re.compile(r"Format error in JSON body: .*"), "discard: no operations array")
        err(s.req("POST", "/collections/d/points/batch" + W, raw=b'{"operations":[{}', headers={
            "Content-Type": "application/json"}), 400, re.compile(r"Format error in JSON body: .*"), "discard: cut")
        check(ok(s.req("POST", "/collections/d/points/batch" + W, raw=b'{"operations":[]}', headers={
            "Content-Type": "text/plain"}), "discard: ctype") == [], "discard: any content type")
        err(s.req("POST", "/collections/d/points/batch?wait=yes", {"operations": []}), 400,
            re.compile(r"Deserialize error in query parameters: .*"), "discard: bad wait")
        ok(s.req("POST", "/__test/fault", {"fail_next": 1, "status": 503}), "fault")
        err(s.req("POST", "/collections/d/points/batch" + W, body), 503,
            "Shard temporarily unavailable: injected fault", "discard: faults still apply")
        st, stats, _ = s.req("GET", "/__test/stats")
        check(st == 200 and stats.get("writes") == 11, "discard: writes counted %r" % (stats,))
    finally:
        s.stop()


def t_apply_log(binary, workdir, wrap):
    """--apply-log FILE: "collection id unix_us" per point of each applied upsert."""
    path = os.path.join(workdir, "apply.log")
    s = Server(binary, workdir, wrap, extra=["--apply-log", path])
    try:
        ok(s.req("PUT", "/collections/a", {"vectors": {"size": 1, "distance": "Dot"}}), "create (apply log)")
        t0 = int(time.time() * 1e6)
        u = "00000000-0000-0000-0000-0000000000AB"
        ok(s.req("POST", "/collections/a/points/batch" + W, {"operations": [
            {"upsert": {"points": [{"id": 1, "vector": [1]}, {"id": u, "vector": [2]}]}},
            {"delete": {"points": [1]}},
            {"upsert": {"batch": {"ids": [7], "vectors": [[3]]}}}]}), "batch (apply log)")
        ok(s.req("PUT", "/collections/a/points" + W, {"points": [{"id": 8, "vector": [1]}]}), "upsert (apply log)")
        err(s.req("PUT", "/collections/a/points" + W, {"points": [{"id": 9, "vector": [1, 2]}]}), 400,
            re.compile(r"Wrong input: .*"), "rejected upsert is not logged")
        t1 = int(time.time() * 1e6)
        with open(path) as f:
            lines = [x.split() for x in f.read().splitlines()]
        check([x[:2] for x in lines] == [["a", "1"], ["a", u.lower()], ["a", "7"], ["a", "8"]],
              "apply log entries %r" % lines)
        check(all(len(x) == 3 and t0 <= int(x[2]) <= t1 for x in lines), "apply log times within [t0,t1] %r" % lines)
        check(len(lines) >= 3 and lines[0][2] == lines[1][2] == lines[2][2], "one time per batch %r" % lines)
    finally:
        s.stop()
    r = subprocess.run([binary, "--discard-writes", "--apply-log", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    check(r.returncode == 2, "--discard-writes with --apply-log is a usage error (%s)" % r.returncode)


def run_tests(s, tests):
    for t in tests:
        if s.real:
            s.reset()
        else:
            ok(s.req("POST", "/__test/reset"), "reset")
        try:
            t(s)
        except Exception as e:  # a crash in one test must not hide the others
            check(False, "%s raised %r" % (t.__name__, e))


API_TESTS = [t_basic_routes, t_collections, t_upsert_and_vectors, t_ids, t_payload_ops, t_batch, t_scroll_filters,
             t_request_errors, t_ids_and_order, t_payload_roundtrip, t_collection_info_and_truncate, t_aliases,
             t_request_size]


def main_real():
    """--real: the checks of Qdrant's own behaviour against a real Qdrant."""
    with tempfile.TemporaryDirectory() as wd:
        s = RealServer(wd)
        try:
            print("real Qdrant %s at %s" % (s.q.version, s.q.direct_url))
            run_tests(s, API_TESTS)
        finally:
            s.stop()
        if os.environ.get("P2Q_QDRANT_BIN"):
            t_auth(None, wd, None)
    print("%d checks against a real Qdrant, %d failed" % (CHECKS[0], len(FAILS)))
    return 1 if FAILS else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default=os.environ.get("QDRANT_TEST_SERVER"))
    ap.add_argument("--wrap", default=os.environ.get("QDRANT_TEST_SERVER_WRAP"))
    ap.add_argument("--real", action="store_true", help="run the API checks against a real Qdrant")
    args = ap.parse_args()
    if args.real:
        return main_real()
    if not args.server or not os.path.exists(args.server):
        print("usage: test_qdrant_server.py --server PATH (or $QDRANT_TEST_SERVER)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as wd:
        s = Server(args.server, wd, args.wrap)
        try:
            run_tests(s, API_TESTS + [t_faults, t_request_log])
        finally:
            s.stop()
        t_auth(args.server, wd, args.wrap)
        t_discard_writes(args.server, wd, args.wrap)
        t_apply_log(args.server, wd, args.wrap)
    print("%d checks, %d failed" % (CHECKS[0], len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
