#!/usr/bin/env python3
"""Self-tests of openapi_check.py: valid request bodies pass, invalid ones are caught.

usage: test_openapi_check.py [--openapi PATH]
PATH defaults to $P2Q_OPENAPI, else ../../../shared/qdrant/openapi.json from
this file.  Prints "SKIP: ..." and exits 0 when the spec is not there.
Exits non-zero when a check fails.
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "openapi_check.py")
sys.path.insert(0, HERE)
import openapi_check  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr)


def entry(method, path, body, query="wait=true", status=200):
    raw = body if isinstance(body, str) else json.dumps(body)
    return {"method": method, "path": path, "query": query, "status": status, "body": raw}


P = "/collections/docs/points"
UUID = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"

VALID = [
    entry("PUT", "/collections/docs", {"vectors": {"size": 4, "distance": "Cosine"}}, query=""),
    entry("PUT", "/collections/named", {"vectors": {"text": {"size": 384, "distance": "Cosine"},
                                                    "img": {"size": 512, "distance": "Dot"}},
                                        "sparse_vectors": {"bm25": {"modifier": "idf"}},
                                        "optimizers_config": {"indexing_threshold": 0}}, query=""),
    entry("PUT", P, {"points": [{"id": 1, "vector": [0.05, 0.61, 0.76, 0.74], "payload": {"city": "Berlin"}},
                                {"id": UUID, "vector": {"text": [0.1, 0.2]}, "payload": None}]}),
    entry("PUT", P, {"points": [{"id": "5C56C79369F34FBF87E6C4BF54C28C26", "vector": [1, 2, 3, 4]},
                                {"id": "urn:uuid:" + UUID, "vector": {"bm25": {"indices": [1, 7],
                                                                              "values": [0.3, 0.9]}}}]}),
    entry("PUT", P, {"batch": {"ids": [1, 2], "vectors": [[1, 2, 3, 4], [5, 6, 7, 8]], "payloads": [{"a": 1}, None]}}),
    entry("POST", P + "/delete", {"points": [1, 2, UUID]}),
    entry("POST", P + "/delete", {"filter": {"must": [{"key": "tenant", "match": {"value": "x"}}]}}),
    entry("POST", P + "/payload", {"payload": {"status": "x"}, "points": [7]}),
    entry("PUT", P + "/payload", {"payload": {"a": 1}, "points": [7]}),
    entry("POST", P + "/payload/delete", {"keys": ["a", "b.c"], "points": [7]}),
    entry("POST", P + "/payload/clear", {"points": [7]}),
    entry("PUT", P + "/vectors", {"points": [{"id": 1, "vector": {"text": [1.0, 2.0]}}]}),
    entry("POST", P + "/vectors/delete", {"points": [1], "vector": ["text"]}),
    entry("POST", P + "/batch", {"operations": [
        {"upsert": {"points": [{"id": 7, "vector": [1, 2, 3, 4], "payload": {}}]}},
        {"upsert": {"batch": {"ids": [8, 9], "vectors": [[1, 2, 3, 4], [1, 2, 3, 4]], "payloads": [{}, {}]}}},
        {"delete": {"points": [8]}},
        {"delete": {"filter": {"must": [{"key": "src_table", "match": {"value": "t"}}]}}},
        {"set_payload": {"payload": {"status": "x"}, "points": [7]}},
        {"overwrite_payload": {"payload": {"a": 1}, "points": [7]}},
        {"delete_payload": {"keys": ["a"], "points": [7]}},
        {"clear_payload": {"points": [7]}},
        {"update_vectors": {"points": [{"id": 7, "vector": [9, 2, 4, 2]}]}},
        {"delete_vectors": {"points": [9], "vector": [""]}}]}),
    entry("POST", P + "/batch", {"operations": []}),
    entry("POST", P + "/scroll", {"limit": 1000, "offset": None, "with_payload": ["_pk"], "with_vector": False,
                                  "filter": {"must": [{"has_id": [1, UUID]}]}}, query=""),
    entry("POST", P + "/scroll", {"limit": 10, "offset": UUID, "with_payload": {"exclude": ["x"]},
                                  "with_vector": ["text"]}, query=""),
    entry("POST", P + "/count", {"filter": {"must": [{"key": "n", "range": {"gte": 1, "lt": 5}}]}, "exact": True},
          query=""),
    entry("POST", P, {"ids": [1, UUID], "with_payload": True, "with_vector": True}, query=""),
]
# skipped: no body / no requestBody
SKIPPED = [
    entry("GET", "/collections/docs", "", query=""),
    entry("GET", P + "/5", "", query=""),
    entry("DELETE", "/collections/docs", "", query=""),
    entry("GET", "/collections/docs/exists", "", query=""),
    entry("GET", "/", "", query=""),
    entry("GET", "/healthz", "", query=""),
]

# (entry, substring expected in the violation line)
INVALID = [
    (entry("PUT", P, {"points": [{"id": -1, "vector": [1, 2, 3, 4]}]}), "points[0].id"),
    (entry("PUT", P, {"points": [{"id": 1.0, "vector": [1, 2, 3, 4]}]}), "points[0].id"),
    (entry("PUT", P, {"points": [{"id": "not-a-uuid", "vector": [1, 2, 3, 4]}]}), "points[0].id"),
    (entry("PUT", P, {"points": [{"id": 1, "vector": "0.1,0.2"}]}), "points[0].vector"),
    (entry("PUT", P, {"points": [{"id": 1}]}), "points[0]"),
    (entry("PUT", P, {"vectors": [[1, 2]]}), "(body)"),
    (entry("POST", P + "/batch", {"operations": [{"upsert_points": {"points": []}}]}), "operations[0]"),
    (entry("POST", P + "/batch", {"operations": [{"delete": {"points": [-3]}}]}), "operations[0]"),
    (entry("POST", P + "/batch", {"ops": []}), "operations"),
    (entry("POST", P + "/payload", {"payload": "x", "points": [1]}), "payload"),
    (entry("POST", P + "/payload/delete", {"points": [1]}), "keys"),
    (entry("POST", P + "/scroll", {"limit": "ten"}, query=""), "limit"),
    (entry("POST", P + "/scroll", {"limit": 0}, query=""), "limit"),
    (entry("PUT", "/collections/docs", {"vectors": {"size": 4, "distance": "L2"}}, query=""), "vectors"),
    (entry("POST", P + "/delete", {"ids": [1]}), "(body)"),
    (entry("POST", "/collections/docs/points/upsert", {"points": []}), "no such operation"),
    (entry("PATCH", P, {"points": []}), "no such operation"),
    (entry("PUT", P, '{"points": ['), "not valid JSON"),
]


def write_log(dirname, name, entries):
    path = os.path.join(dirname, name)
    with open(path, "w") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")
    return path


def run(args):
    r = subprocess.run([sys.executable, CHECKER] + args, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--openapi", default=os.environ.get("P2Q_OPENAPI")
                    or os.path.join(HERE, "..", "..", "..", "shared", "qdrant", "openapi.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as wd:
        valid = write_log(wd, "valid.jsonl", VALID + SKIPPED)
        invalid = write_log(wd, "invalid.jsonl", [e for e, _ in INVALID])

        rc, out = run(["--openapi", os.path.join(wd, "missing.json"), valid])
        check(rc == 0 and out.strip() == "SKIP: %s not found" % os.path.join(wd, "missing.json"),
              "missing spec -> SKIP, exit 0: %r" % out)
        if not os.path.exists(args.openapi):
            print("SKIP: %s not found" % args.openapi)
            return 0

        rc, out = run(["--openapi", args.openapi, valid])
        check(rc == 0, "valid log exits 0:\n" + out)
        check(out.strip().endswith("validated %d request bodies, 0 violations" % len(VALID)),
              "valid summary:\n" + out)
        check("skipped %d requests" % len(SKIPPED) in out, "skipped count:\n" + out)

        rc, out = run(["--openapi", args.openapi, valid, invalid])
        check(rc == 1, "invalid log exits 1")
        n_validated = len(VALID) + sum(1 for _, w in INVALID if w not in ("no such operation", "not valid JSON"))
        check(out.strip().endswith("validated %d request bodies, %d violations" % (n_validated, len(INVALID))),
              "invalid summary:\n" + out)
        lines = out.splitlines()
        for i, (e, where) in enumerate(INVALID, 1):
            prefix = "%s:%d: %s %s: " % (invalid, i, e["method"], e["path"])
            hit = [ln for ln in lines if ln.startswith(prefix)]
            check(len(hit) == 1 and where in hit[0], "violation %d (%s) reported with %r: %r" % (i, e["body"], where,
                                                                                            hit))
        check(not any(ln.startswith(valid + ":") for ln in lines), "no violation reported for the valid log")

        # the translation of nullable, in-process
        t = openapi_check.translate({"anyOf": [{"$ref": "#/x"}, {"nullable": True}],
                                     "properties": {"nullable": {"type": "string"}}})
        check(t == {"anyOf": [{"$ref": "#/x"}, {"type": "null"}], "properties": {"nullable": {"type": "string"}}},
              "nullable alone -> null %r" % t)
        t = openapi_check.translate({"type": "integer", "nullable": True, "minimum": 1})
        check(t == {"type": ["integer", "null"], "minimum": 1}, "typed nullable -> union %r" % t)
        t = openapi_check.translate({"allOf": [{"$ref": "#/x"}], "nullable": True})
        check(t == {"anyOf": [{"allOf": [{"$ref": "#/x"}]}, {"type": "null"}]}, "composite nullable %r" % t)
        check(openapi_check.is_qdrant_uuid("{%s}" % UUID.upper()) and not openapi_check.is_qdrant_uuid("123"),
              "uuid forms")
        spec = openapi_check.Spec(args.openapi)
        check(spec.find("POST", P + "/scroll")[0] == "/collections/{collection_name}/points/scroll",
              "literal path segment wins over a template")
        check(spec.find("GET", P + "/scroll")[0] == "/collections/{collection_name}/points/{id}", "GET point")
        buf = io.StringIO()
        check(openapi_check.check_logs(spec, [valid], out=buf) == 0, "check_logs in-process")
    print("%d failures" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
