"""Helpers shared by test_snapshot.py and test_reconcile.py (Python 3 stdlib only).

A database with a few tables of different key and vector kinds, their collections in the
Qdrant test server, a config file, and the comparison of every collection with its table
through the independent oracle in expected.py.
"""

import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, HERE)

import expected as oracle  # noqa: E402

DB = "p2q"
API_KEY = "snap-secret-0815-api-key"


class TestFailure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def log(message):
    print(message, flush=True)


class Table:
    def __init__(self, spec, ddl, collection_body, config_lines):
        self.spec = spec
        self.ddl = ddl
        self.collection_body = collection_body
        self.config_lines = config_lines
        self.columns = None


def load_columns(pg, table):
    rows = pg.query_json(
        "SELECT json_agg(c ORDER BY c.attnum) FROM ("
        " SELECT a.attnum, a.attname, t.typname, t.typtype, et.typname AS elem, et.typtype AS elem_typtype"
        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'"
        " WHERE a.attrelid = '%s'::regclass AND a.attnum > 0 AND NOT a.attisdropped) c" % table.spec.name, db=DB)
    table.columns = [oracle.Column(r["attname"], r["typname"], r["typtype"], r["elem"], r["elem_typtype"])
                     for r in rows]


def expected_points(pg, table):
    quoted = ['"%s"' % c.name.replace('"', '""') for c in table.columns]
    cols = ", ".join("CASE WHEN %s IS NULL THEN NULL ELSE format('%%s', %s) END" % (q, q) for q in quoted)
    rows = pg.query_json(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';"
        " SET bytea_output = 'hex'; SET extra_float_digits = 1;"
        " SELECT coalesce(json_agg(json_build_array(%s)), '[]') FROM %s" % (cols, table.spec.name), db=DB)
    return oracle.expected_points(table.spec, table.columns, rows)


def scroll(q, collection):
    points, offset = {}, None
    while True:
        body = {"limit": 1000, "with_payload": True, "with_vector": True}
        if offset is not None:
            body["offset"] = offset
        status, resp = q.request("POST", "/collections/%s/points/scroll" % collection, body)
        if status != 200:
            return None
        for p in resp["result"]["points"]:
            points[oracle.normalize_id(p["id"])] = {"vector": p.get("vector"), "payload": p.get("payload")}
        offset = resp["result"].get("next_page_offset")
        if offset is None:
            return points


def normalized(points, cosine_names):
    """Expected points with the vectors Qdrant normalises (Cosine) normalised."""
    def norm(v):
        n = sum(x * x for x in v) ** 0.5
        return [x / n for x in v] if n > 1.1920929e-07 else v
    out = {}
    for pid, p in points.items():
        v = p["vector"]
        if isinstance(v, list) and "" in cosine_names:
            v = norm(v)
        elif isinstance(v, dict) and "indices" not in v:
            v = {k: (norm(x) if k in cosine_names and isinstance(x, list) else x) for k, x in v.items()}
        out[pid] = {"vector": v, "payload": p["payload"]}
    return out


def cosine_names(table):
    body = table.collection_body.get("vectors", {})
    if "distance" in body:
        return {""} if body["distance"] == "Cosine" else set()
    return {k for k, v in body.items() if v.get("distance") == "Cosine"}


def differences(pg, q, tables):
    out = {}
    for t in tables:
        exp = normalized(expected_points(pg, t), cosine_names(t))
        act = scroll(q, t.spec.collection)
        if act is None:
            out[t.spec.collection] = "scroll failed"
            continue
        missing, extra, differing = oracle.diff_points(exp, act)
        if missing or extra or differing:
            out[t.spec.collection] = {"missing": missing[:5], "extra": extra[:5], "differing": differing[:3],
                                      "counts": [len(missing), len(extra), len(differing)]}
    return out


def assert_equal(pg, q, tables, what):
    diffs = differences(pg, q, tables)
    check(not diffs, "%s: collections differ from their tables:\n%s" % (what, json.dumps(diffs, default=str)[:3000]))


def create_collections(q, tables):
    for t in tables:
        status, resp = q.request("PUT", "/collections/%s" % t.spec.collection, t.collection_body)
        check(status == 200, "creating collection %s: %s %s" % (t.spec.collection, status, resp))


def write_config(path, pg, q, tables, slot="p2q_snap", publication="p2q_snap_pub", sync_lines=(), http_port=None):
    lines = [
        "[source]",
        "dsn = " + pg.dsn(DB),
        "slot = " + slot,
        "publication = " + publication,
        "create_slot = true",
        "create_publication = true",
        "status_interval = 1s",
        "",
        "[qdrant]",
        "url = " + q.url,
        "api_key = " + API_KEY,
        "timeout = 10s",
        "",
        "[sync]",
    ] + list(sync_lines)
    if http_port:
        lines += ["", "[http]", "listen = 127.0.0.1:%d" % http_port]
    for t in tables:
        lines += ["", "[table %s]" % t.spec.name] + t.config_lines
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def run_cmd(binary, args, timeout=600, env=None):
    """Runs pg2qdrant (with env added to the environment); returns (exit code, stdout, stderr)."""
    p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **env) if env else None)
    check("Sanitizer" not in p.stderr and "runtime error" not in p.stderr,
          "sanitizer report from pg2qdrant %s:\n%s" % (" ".join(args), p.stderr[-4000:]))
    check(API_KEY not in p.stdout + p.stderr, "the API key appears in pg2qdrant's output")
    return p.returncode, p.stdout, p.stderr


def validate_requests(q, openapi):
    script = os.path.join(HERE, "openapi_check.py")
    python = sys.executable
    if subprocess.run([python, "-c", "import jsonschema"], capture_output=True).returncode != 0:
        python = "/usr/bin/python3"
    r = subprocess.run([python, script, "--openapi", openapi, q.request_log], capture_output=True, text=True)
    output = (r.stdout + r.stderr).strip()
    check(r.returncode == 0, "requests violate Qdrant's OpenAPI document:\n%s" % output[-4000:])
    found = re.search(r"validated (\d+)", output)
    return output if not found else "validated %s requests" % found.group(1)


def wait_until(cond, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        r = cond()
        if r:
            return r
        check(time.monotonic() < deadline, "timed out after %ss: %s" % (timeout, what))
        time.sleep(interval)
