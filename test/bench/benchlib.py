"""Shared parts of the benchmarks in test/bench (python3 standard library + test/harness).

Not a test: nothing here asserts timings.  See docs/performance.md.
"""

import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "test", "harness"))

import harness  # noqa: E402

DB = "bench"
PUBLICATION = "bench_pub"
DIM = 64
TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# One row of the benchmark tables as SQL expressions of the bigint i (64-dimension embedding,
# values with full float precision as a real model would give).
# (No "%" in it: callers format SQL around it.)
def row_exprs(dim=DIM):
    return ("i, 'item ' || i || ' ' || md5(i::text), round(mod(i, 100000) / 100.0, 2), "
            "ARRAY['tag' || mod(i, 7), 'tag' || mod(i, 11), 'c' || mod(i, 3)], "
            "ARRAY(SELECT sin(i * {dim} + j)::real FROM generate_series(1, {dim}) j)".format(dim=dim))


ROW_EXPRS = row_exprs(DIM)
COLUMNS = "id, title, price, tags, embedding"
TABLE_DDL = ("CREATE TABLE {t} (id bigint PRIMARY KEY, title text, price numeric(12,2), tags text[], "
             "embedding real[]{extra})")


def default_binary(rel):
    """A path relative to the repository root unless it exists relative to the cwd."""
    return rel if os.path.exists(rel) else os.path.join(REPO, rel)


def log(msg):
    """A progress line on stderr ("bench: MSG"); the figures go to stdout."""
    print("bench: " + msg, file=sys.stderr, flush=True)


def prepare(args, name):
    """The start of a benchmark: installs the harness's signal cleanup, makes --pg2qdrant absolute,
    defaults --qdrant-server to the test server next to it (BUILD/test/qdrant_test_server), and exits
    with a message starting with name when either is not executable."""
    harness.install_signal_cleanup()
    args.pg2qdrant = os.path.abspath(args.pg2qdrant)
    if not args.qdrant_server:
        args.qdrant_server = os.path.join(os.path.dirname(args.pg2qdrant), "test", "qdrant_test_server")
    for b in (args.pg2qdrant, args.qdrant_server):
        if not os.access(b, os.X_OK):
            sys.exit("%s: %s: not found or not executable (build first, or pass --pg2qdrant/"
                     "--qdrant-server)" % (name, b))


def make_workdir(args):
    """--workdir (created if missing), or else a new temporary directory."""
    workdir = args.workdir or tempfile.mkdtemp(prefix="p2q-bench-")
    os.makedirs(workdir, exist_ok=True)
    return workdir


def finish_workdir(args, workdir):
    """At the end: removes a temporary work directory unless --keep; names a kept one."""
    if not args.workdir and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    elif args.keep:
        log("work directory kept: " + workdir)


def create_items_collection(q, dim=DIM):
    """The collection items: dim-dimension Cosine vectors."""
    st, body = q.request("PUT", "/collections/items", {"vectors": {"size": dim, "distance": "Cosine"}})
    if st != 200:
        raise harness.HarnessError("creating the collection: %s %s" % (st, body))


def machine():
    """nproc, CPU model, RAM and load: enough to tell two runs' machines apart."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gib": round(mem_kb / 1048576, 1),
            "kernel": platform.release(), "loadavg": os.getloadavg()[0]}


def proc_cpu_seconds(pid):
    """utime + stime of a live process from /proc/PID/stat (None when gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TCK  # fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return None


def proc_status_kb(pid, key):
    """A "Key:  N kB" line of /proc/PID/status (e.g. VmHWM), in kB; None when gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class PsqlSession:
    """One long-lived psql for cheap repeated one-row queries (polling without a fork each time)."""

    def __init__(self, pg, db):
        argv = [os.path.join(harness.PG_BIN, "psql"), "-X", "-A", "-t", "-q", "-h", "127.0.0.1", "-p",
                str(pg.port), "-U", "postgres", "-d", db]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                     env=dict(os.environ, PGOPTIONS=""))

    def value(self, sql):
        """The single value of a one-row, one-column query."""
        # \echo after the query makes psql flush its stdout, and marks the end of the answer.
        self.proc.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo __end__\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise harness.HarnessError("psql session ended: %r" % lines)
            line = line.rstrip("\n")
            if line == "__end__":
                break
            if line:
                lines.append(line)
        return lines[0] if lines else None

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def write_config(path, pg, qurl, slot, create_slot, table="public.items", collection="items", extra_sync=()):
    lines = [
        "; written by test/bench",
        "[source]",
        "dsn = " + pg.dsn(DB),
        "slot = " + slot,
        "publication = " + PUBLICATION,
        "create_slot = " + ("true" if create_slot else "false"),
        "create_publication = false",
        "",
        "[qdrant]",
        "url = " + qurl,
        "create_collections = false",
        "",
        "[sync]",
        "snapshot = never",
    ] + list(extra_sync) + [
        "",
        "[http]",  # enabled as by default, on a free port (benchmarks may run side by side)
        "listen = 127.0.0.1:%d" % harness.free_port(),
        "",
        "[table %s]" % table,
        "collection = " + collection,
        "id = id",
        "vector = embedding",
        "payload = *",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start_pg2qdrant(binary, config, logpath, log_level="info"):
    log = open(logpath, "w")
    try:
        return subprocess.Popen([binary, "run", "-c", config, "--log-level", log_level], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def stop(proc, timeout=60):
    """SIGTERM, wait; returns (exit status, rusage) via wait4."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            return proc.returncode, None
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru
        if time.monotonic() > deadline:
            proc.kill()
            deadline = time.monotonic() + 10
        time.sleep(0.02)


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(none)"
