"""Test harness with real parts: a throwaway PostgreSQL 15 and the Qdrant test server.

Python 3 standard library only.  Postgres is driven through `psql`, never a driver.

    from harness import Postgres, QdrantServer, free_port

    with Postgres(workdir) as pg:          # initdb + start; stop + remove on exit
        pg.psql("CREATE DATABASE shop")
        pg.create_pgvector_domains("shop")
        print(pg.psql("SELECT 1", db="shop"), pg.dsn("shop"))

    with QdrantServer(binary, workdir, api_key="k") as q:
        status, body = q.request("GET", "/collections")
        q.fault(fail_next=2, status=503, error="down")

Both objects clean up on stop(), on leaving a `with` block, and at interpreter exit
(call install_signal_cleanup() once so that SIGTERM/SIGINT also run the cleanup).
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

PG_BIN = os.environ.get("P2Q_PG_BIN", "/usr/lib/postgresql/15/bin")

# Longest unix socket path the kernel takes (sun_path is 108 bytes incl. NUL).
_MAX_SOCKET_PATH = 100

_live = []  # started Postgres / QdrantServer objects, stopped at exit


def cleanup_all():
    """Stops every started Postgres and QdrantServer (also run at interpreter exit)."""
    for obj in list(reversed(_live)):
        try:
            obj.stop()
        except Exception as e:  # keep cleaning the others
            print("harness: cleanup of %r failed: %s" % (obj, e), file=sys.stderr)


atexit.register(cleanup_all)


def install_signal_cleanup():
    """Turn SIGTERM/SIGINT into SystemExit so that atexit cleanup runs (CTest timeouts, ^C)."""

    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HarnessError(RuntimeError):
    pass


class Postgres:
    """A throwaway PostgreSQL 15 cluster, configured for logical replication."""

    def __init__(self, workdir, port=None):
        self.workdir = os.path.abspath(workdir)
        self.port = port
        self.dir = None
        self.datadir = None
        self.logfile = None
        self._as_postgres = os.geteuid() == 0
        self._running = False

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="pg-", dir=self.workdir)
        if len(os.path.join(self.dir, ".s.PGSQL.65535")) > _MAX_SOCKET_PATH:
            shutil.rmtree(self.dir)
            self.dir = tempfile.mkdtemp(prefix="p2q-pg-")
        _live.append(self)
        try:
            self._prepare_dir()
            self.datadir = os.path.join(self.dir, "data")
            self.logfile = os.path.join(self.dir, "postgres.log")
            self._initdb()
            self._start_with_retries()
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare_dir(self):
        os.chmod(self.dir, 0o700)
        if not self._as_postgres:
            return
        shutil.chown(self.dir, "postgres", "postgres")
        probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", self.dir])
        if probe.returncode != 0:
            # A parent directory is not traversable by the postgres user: use /tmp instead.
            shutil.rmtree(self.dir)
            self.dir = tempfile.mkdtemp(prefix="p2q-pg-")
            os.chmod(self.dir, 0o700)
            shutil.chown(self.dir, "postgres", "postgres")

    def _cmd(self, argv):
        if self._as_postgres:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def _run(self, argv, what):
        r = subprocess.run(self._cmd(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise HarnessError("%s failed (exit %d):\n%s%s" % (what, r.returncode, r.stdout, r.stderr))
        return r.stdout

    def _initdb(self):
        base = [os.path.join(PG_BIN, "initdb"), "-D", self.datadir, "--auth=trust", "-U", "postgres", "-E", "UTF8"]
        try:
            self._run(base + ["--locale=C.UTF-8"], "initdb")
        except HarnessError:
            if os.path.isdir(self.datadir):
                shutil.rmtree(self.datadir)
            self._run(base + ["--locale=C"], "initdb")

    def _write_conf(self):
        conf = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "'%s'" % self.dir,
            "wal_level": "logical",
            "max_replication_slots": "10",
            "max_wal_senders": "10",
            "wal_sender_timeout": "60s",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "on",
            "log_min_messages": "warning",
            "log_replication_commands": "on",
        }
        path = os.path.join(self.datadir, "postgresql.auto.conf")
        with open(path, "w") as f:
            f.write("# written by test/harness/harness.py\n")
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))

    def _start_with_retries(self):
        fixed = self.port is not None
        for attempt in range(3):
            if not fixed:
                self.port = free_port()
            self._write_conf()
            try:
                self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60",
                           "start"], "pg_ctl start")
                self._running = True
                return
            except HarnessError as e:
                if fixed or attempt == 2:
                    raise HarnessError("%s\n--- postgres.log ---\n%s" % (e, self.log_tail()))

    def stop(self):
        """Stop the server (fast shutdown) and remove its directory.  Idempotent."""
        if self._running:
            self._running = False
            subprocess.run(self._cmd([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "-m", "fast", "-w", "-t",
                                      "60", "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.dir and os.path.isdir(self.dir) and not os.environ.get("P2Q_KEEP_PG"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _live:
            _live.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def log_tail(self, lines=40):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no postgres log)"

    # -- access ------------------------------------------------------------

    def dsn(self, db="postgres"):
        return "host=127.0.0.1 port=%d dbname=%s user=postgres" % (self.port, db)

    def psql(self, sql, db="postgres", timeout=120):
        """Runs sql (one or more statements) through psql -X -A -t; returns stdout.

        Statements outside BEGIN/COMMIT commit one by one.  The text is UTF-8 whatever the
        database encoding (PGCLIENTENCODING=UTF8 for psql only, not for pg2qdrant).  Raises HarnessError with
        psql's stderr on the first error (ON_ERROR_STOP)."""
        argv = [os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-f", "-"]
        r = subprocess.run(argv, input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout,
                           env=dict(os.environ, PGOPTIONS="", PGCONNECT_TIMEOUT="10", PGCLIENTENCODING="UTF8"))
        if r.returncode != 0:
            raise HarnessError("psql failed (exit %d) on db %s:\n%s\nSQL was:\n%s" %
                               (r.returncode, db, r.stderr.strip(), sql.strip()[:2000]))
        return r.stdout

    def query_json(self, sql, db="postgres"):
        """Runs one SELECT returning a single json value (e.g. json_agg) and parses it.
        An empty result or SQL NULL gives None."""
        out = self.psql(sql, db=db).strip()
        return json.loads(out) if out else None

    def create_pgvector_types(self, db):
        """pgvector is not packaged for Debian 12 here: emulate its types vector, halfvec and
        sparsevec in db's public schema, as pgvector's CREATE EXTENSION would place them.

        Each is a real base type whose I/O functions are PostgreSQL's own text functions
        (LANGUAGE internal 'textin'/'textout'/...), so a value is stored and printed exactly
        as written, e.g. '[1,2,3]' or '{1:0.5,7:0.2}/10', and pgoutput sends a Type message
        named public.vector etc., as with the extension.  (A domain over text would not do:
        pgoutput names a domain's Type message after its base type, "text".)  pgvector's
        input validation, typmods and operators are not emulated: insert well-formed values."""
        sql = []
        for t in ("vector", "halfvec", "sparsevec"):
            sql.append(
                "CREATE TYPE {t};\n"
                "CREATE FUNCTION {t}_in(cstring) RETURNS {t} LANGUAGE internal IMMUTABLE STRICT AS 'textin';\n"
                "CREATE FUNCTION {t}_out({t}) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'textout';\n"
                "CREATE FUNCTION {t}_recv(internal) RETURNS {t} LANGUAGE internal IMMUTABLE STRICT AS 'textrecv';\n"
                "CREATE FUNCTION {t}_send({t}) RETURNS bytea LANGUAGE internal IMMUTABLE STRICT AS 'textsend';\n"
                "CREATE TYPE {t} (INPUT = {t}_in, OUTPUT = {t}_out, RECEIVE = {t}_recv, SEND = {t}_send,\n"
                "                 INTERNALLENGTH = VARIABLE, STORAGE = extended, CATEGORY = 'U');\n".format(t=t))
        self.psql("SET search_path = public;\n" + "".join(sql), db=db)

    # The name other tests were written against.
    create_pgvector_domains = create_pgvector_types

    def __repr__(self):
        return "Postgres(port=%s, dir=%s)" % (self.port, self.dir)


class QdrantServer:
    """The project's Qdrant test server (test/qdrant_server), one process per instance."""

    def __init__(self, binary, workdir, api_key=None, extra_args=(), request_log=True):
        """extra_args: more server options (e.g. ["--discard-writes"]); request_log=False runs
        without --request-log (benchmarks: logging every body costs the server time)."""
        self.binary = binary
        self.workdir = os.path.abspath(workdir)
        self.api_key = api_key
        self.extra_args = list(extra_args)
        self.log_requests = request_log
        self.proc = None
        self.port = None
        self.url = None
        self.dir = None
        self.request_log = None
        self.stderr_path = None

    def start(self, timeout=15):
        os.makedirs(self.workdir, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="qdrant-", dir=self.workdir)
        port_file = os.path.join(self.dir, "port")
        self.request_log = os.path.join(self.dir, "requests.jsonl")
        self.stderr_path = os.path.join(self.dir, "server.log")
        argv = [self.binary, "--port", "0", "--port-file", port_file]
        if self.log_requests:
            argv += ["--request-log", self.request_log]
        else:
            self.request_log = None
        if self.api_key:
            argv += ["--api-key", self.api_key]
        argv += self.extra_args
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(argv, stdout=err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _live.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise HarnessError("qdrant test server exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text.isdigit() and int(text) > 0:
                    self.port = int(text)
                    self.url = "http://127.0.0.1:%d" % self.port
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise HarnessError("qdrant test server wrote no port file within %ss" % timeout)

    def stop(self, timeout=10):
        """SIGTERM, wait, SIGKILL if needed.  The request log is kept for validation."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in _live:
            _live.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def log_tail(self, lines=40):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, TypeError):
            return "(no server log)"

    def request(self, method, path, body_obj=None, timeout=30):
        """Returns (status, parsed JSON body, or the text when it is not JSON)."""
        data = None if body_obj is None else json.dumps(body_obj).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("api-key", self.api_key)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def _post_test(self, path, body):
        status, resp = self.request("POST", path, body)
        if status != 200:
            raise HarnessError("POST %s -> %s %s" % (path, status, resp))
        return resp

    def fault(self, **kw):
        """POST /__test/fault, e.g. fault(fail_next=2, status=503, error="x", retry_after=1),
        fault(delay_next=1, delay_ms=500), fault(drop_next=1)."""
        return self._post_test("/__test/fault", kw)

    def reset(self):
        """POST /__test/reset: drop every collection and pending fault."""
        return self._post_test("/__test/reset", {})

    def __repr__(self):
        return "QdrantServer(url=%s)" % self.url
