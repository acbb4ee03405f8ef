"""Helpers shared by the integration tests in test/integration (with guarantees_lib.py) and
the chaos run in test/chaos (Python 3 stdlib only).

A database with a few tables of different key and vector kinds, their collections in the
Qdrant test server, a config file, and the comparison of every collection with its table
through the independent oracle in expected.py; also `pg2qdrant run` as a child process
(Sync), LSNs as numbers, the tests' checks and their common command line.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, HERE)

import expected as oracle  # noqa: E402
from harness import HarnessError, install_signal_cleanup  # noqa: E402

DB = "p2q"
API_KEY = "snap-secret-0815-api-key"


class TestFailure(Exception):
    pass


def check(cond, message):
    """The assertion helper: fail the test with a readable message."""
    if not cond:
        raise TestFailure(message)


def log(message):
    print(message, flush=True)


class Checklist:
    """Checks that do not stop a test (test_check_config.py, test_check_lag.py): each prints
    "ok   - WHAT" or "FAIL - WHAT" with its detail; the failed ones are kept in failures."""

    def __init__(self):
        self.failures = []

    def check(self, cond, what, detail=""):
        if cond:
            print("ok   - %s" % what)
        else:
            print("FAIL - %s%s" % (what, ("\n" + detail) if detail else ""))
            self.failures.append(what)


def clean_env(extra=None):
    """os.environ without libpq's PG* variables and pg2qdrant's PG2QDRANT_* overrides, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG2QDRANT_") and not k.startswith("PG")}
    env.update(extra or {})
    return env


def lsn_int(text):
    """A pg_lsn as text ("16/B374D848") as an integer."""
    hi, lo = text.strip().split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_text(value):
    return "%X/%X" % (value >> 32, value & 0xFFFFFFFF)


class Table:
    def __init__(self, spec, ddl, collection_body, config_lines):
        self.spec = spec
        self.ddl = ddl
        self.collection_body = collection_body
        self.config_lines = config_lines
        self.columns = None  # [oracle.Column], read from the catalog by load_columns


def load_columns(pg, table):
    """Reads the table's columns from the catalog into table.columns."""
    rows = pg.query_json(
        "SELECT json_agg(c ORDER BY c.attnum) FROM ("
        " SELECT a.attnum, a.attname, t.typname, t.typtype, et.typname AS elem, et.typtype AS elem_typtype"
        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'"
        " WHERE a.attrelid = '%s'::regclass AND a.attnum > 0 AND NOT a.attisdropped) c" % table.spec.name, db=DB)
    table.columns = [oracle.Column(r["attname"], r["typname"], r["typtype"], r["elem"], r["elem_typtype"])
                     for r in rows]


def expected_points(pg, table):
    """The points the oracle expects for the table's rows now."""
    # format('%s', v) gives the type's output function form, as pgoutput sends it; a cast
    # to text is not always that (bool::text is 'true', inet::text always has a netmask).
    quoted = ['"%s"' % c.name.replace('"', '""') for c in table.columns]
    cols = ", ".join("CASE WHEN %s IS NULL THEN NULL ELSE format('%%s', %s) END" % (q, q) for q in quoted)
    rows = pg.query_json(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';"
        " SET bytea_output = 'hex'; SET extra_float_digits = 1;"
        " SELECT coalesce(json_agg(json_build_array(%s)), '[]') FROM %s" % (cols, table.spec.name), db=DB)
    return oracle.expected_points(table.spec, table.columns, rows)


def scroll(q, collection, limit=1000):
    """Every point of a collection, read `limit` points a page, or None when the server did not
    answer 200."""
    points, offset = {}, None
    while True:
        body = {"limit": limit, "with_payload": True, "with_vector": True}
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
    return write_config_file(path, lines, tables)


def write_config_file(path, lines, tables):
    """Writes a config file: lines (the [source], [qdrant], [sync] ... sections), then a
    [table NAME] section of each table's config_lines.  Returns path."""
    for t in tables:
        lines = lines + ["", "[table %s]" % t.spec.name] + t.config_lines
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
    if q.request_log is None:
        return "no request log to validate against a real Qdrant %s (it validates every body itself)" % q.version
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


def stop_process(proc, timeout=10):
    """SIGTERM to a child process (pg_recvlogical, ...) if it still runs; SIGKILL when it has not
    exited within timeout seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- pg2qdrant as a child process ----------------------------------------------------

class Sync:
    """`pg2qdrant run` in the background; one log file per start (NAME-N.log in workdir).
    log_format: pg2qdrant's --log-format (None: its default); tail_lines: log_tail's default."""

    def __init__(self, binary, config_path, workdir, log_level="info", name="pg2qdrant", log_format=None,
                 tail_lines=25):
        self.binary = binary
        self.config_path = config_path
        self.workdir = workdir
        self.log_level = log_level
        self.name = name
        self.log_format = log_format
        self.tail_lines = tail_lines
        self.proc = None
        self.runs = 0
        self.log_path = None
        self.expected_exit = False  # set before a kill/SIGTERM of ours
        self.env = {}               # PG2QDRANT_* overrides for the next starts

    def start(self):
        self.runs += 1
        self.expected_exit = False
        self.log_path = os.path.join(self.workdir, "%s-%d.log" % (self.name, self.runs))
        argv = [self.binary, "run", "-c", self.config_path, "--log-level", self.log_level]
        if self.log_format:
            argv += ["--log-format", self.log_format]
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=dict(os.environ, **self.env))
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def returncode(self):
        return None if self.proc is None else self.proc.poll()

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def log_tail(self, lines=None):
        """The last lines of the current log (tail_lines of them by default)."""
        lines = self.tail_lines if lines is None else lines
        return "".join(self.log_text().splitlines(True)[-lines:])

    def kill9(self):
        """SIGKILL; waits for the process."""
        if self.alive():
            self.expected_exit = True
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self, timeout):
        """SIGTERM; returns (exit code or None on timeout, seconds taken)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None, 0.0
        self.expected_exit = True
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.monotonic() - t0

    def stop(self, timeout=15):
        if self.alive():
            rc, _ = self.terminate(timeout)
            if rc is None:
                self.kill9()

    def status_kb(self, key):
        """A "Key:  N kB" line of /proc/PID/status (VmHWM, VmRSS) in kB, or None when the process is gone."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except (OSError, AttributeError):
            return None
        return None

    def vm_hwm_kb(self):
        """Peak resident set size (VmHWM) in kB, or None when the process is gone."""
        return self.status_kb("VmHWM")

    def vm_rss_kb(self):
        return self.status_kb("VmRSS")


# --- the command line of a test -------------------------------------------------------

def argument_parser(description=None):
    """An argument parser with the options every test of pg2qdrant against the Qdrant test server
    takes, all required: --pg2qdrant BIN --qdrant-server BIN --openapi PATH --workdir DIR.  The
    caller adds its own options."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--pg2qdrant", required=True)
    p.add_argument("--qdrant-server", required=True)
    p.add_argument("--openapi", required=True)
    p.add_argument("--workdir", required=True)
    return p


def run_main(name, parser, run):
    """The main() of a test: parses the command line (--workdir made absolute), installs the
    harness's signal cleanup and calls run(args).  Returns the exit status: 0, or 1 after printing
    "NAME: FAILED: ..." and the kept work directory when run raised TestFailure or HarnessError."""
    args = parser.parse_args()
    args.workdir = os.path.abspath(args.workdir)
    install_signal_cleanup()
    try:
        run(args)
    except (TestFailure, HarnessError) as e:
        log("%s: FAILED: %s" % (name, e))
        log("(work directory kept: %s)" % args.workdir)
        return 1
    return 0
