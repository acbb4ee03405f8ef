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
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
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


def http_json(base_url, api_key, method, path, body_obj=None, timeout=30):
    """One request to a Qdrant (test server or real); returns (status, parsed JSON body, or the
    text when it is not JSON)."""
    data = None if body_obj is None else json.dumps(body_obj).encode()
    req = urllib.request.Request(base_url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if api_key:
        req.add_header("api-key", api_key)
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


class _Managed:
    """A server the harness starts: a `with` block (start/stop) and the tail of its log."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def log_tail(self, lines=40):
        try:
            with open(self.log_path(), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, TypeError):
            return "(no log of %r)" % self


class Postgres(_Managed):
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

    def log_path(self):
        return self.logfile

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

    def real_pgvector(self):
        """P2Q_PGVECTOR=1 and pgvector installed into this PostgreSQL (the tests then use its
        real types; nothing of pgvector is in this repository)."""
        if os.environ.get("P2Q_PGVECTOR") != "1":
            return False
        return self.psql("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'").strip() == "1"

    def create_pgvector_types(self, db):
        """With real_pgvector(): CREATE EXTENSION vector.  Otherwise, pgvector not being packaged
        for Debian 12 here, emulate its types vector, halfvec and sparsevec in db's public
        schema, as pgvector's CREATE EXTENSION would place them.

        Each is a real base type whose I/O functions are PostgreSQL's own text functions
        (LANGUAGE internal 'textin'/'textout'/...), so a value is stored and printed exactly
        as written, e.g. '[1,2,3]' or '{1:0.5,7:0.2}/10', and pgoutput sends a Type message
        named public.vector etc., as with the extension.  (A domain over text would not do:
        pgoutput names a domain's Type message after its base type, "text".)  pgvector's
        input validation, typmods and operators are not emulated: insert well-formed values."""
        if self.real_pgvector():
            self.psql("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public", db=db)
            return "pgvector " + self.psql("SELECT extversion FROM pg_extension WHERE extname = 'vector'",
                                           db=db).strip()
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
        return "emulated pgvector types"

    # The name other tests were written against.
    create_pgvector_domains = create_pgvector_types

    def __repr__(self):
        return "Postgres(port=%s, dir=%s)" % (self.port, self.dir)


def QdrantServer(binary, workdir, api_key=None, extra_args=(), request_log=True, test_server_only=False):
    """The Qdrant a test talks to: the project's test server (binary), or a real Qdrant when
    P2Q_QDRANT_URL (a running one) or P2Q_QDRANT_BIN (a `qdrant` executable started here) is
    set in the environment and the caller does not need the test server (test_server_only, or
    extra_args, which only the test server takes).  Both have the same interface; a real one has
    `real = True`, no request log, and fault() raises NeedsTestServer."""
    if not test_server_only and not extra_args and real_qdrant_wanted():
        return RealQdrant(workdir, api_key=api_key)
    return QdrantTestServer(binary, workdir, api_key=api_key, extra_args=extra_args, request_log=request_log)


def real_qdrant_wanted():
    return bool(os.environ.get("P2Q_QDRANT_URL") or os.environ.get("P2Q_QDRANT_BIN"))


class NeedsTestServer(HarnessError):
    """A step asked a real Qdrant for something only the test server does (fault injection)."""


class _Qdrant(_Managed):
    """What the test server and a real Qdrant share: a `with` block, request(), log_tail()."""

    url = None
    api_key = None
    stderr_path = None

    def log_path(self):
        return self.stderr_path

    def request(self, method, path, body_obj=None, timeout=30):
        """Returns (status, parsed JSON body, or the text when it is not JSON)."""
        return http_json(self.url, self.api_key, method, path, body_obj, timeout)


class QdrantTestServer(_Qdrant):
    """The project's Qdrant test server (test/qdrant_server), one process per instance."""

    real = False

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

    def _post_test(self, path, body):
        status, resp = self.request("POST", path, body)
        if status != 200:
            raise HarnessError("POST %s -> %s %s" % (path, status, resp))
        return resp

    def fault(self, **kw):
        """POST /__test/fault, e.g. fault(fail_next=2, status=503, error="x", retry_after=1),
        fault(delay_next=1, delay_ms=500), fault(drop_next=1)."""
        return self._post_test("/__test/fault", kw)

    def slow_writes(self, delay_ms, count=1000000):
        """The next count requests answered delay_ms later (0: back to full speed)."""
        return self.fault(delay_next=count if delay_ms else 0, delay_ms=delay_ms)

    def reset(self):
        """POST /__test/reset: drop every collection and pending fault."""
        return self._post_test("/__test/reset", {})

    def __repr__(self):
        return "QdrantServer(url=%s)" % self.url


class RealQdrant(_Qdrant):
    """A real Qdrant, given by the environment (never built or shipped by this repository):

    P2Q_QDRANT_URL  a running Qdrant (without an API key of its own: the tests send theirs,
                    which such a Qdrant ignores).  Every collection and alias on it is
                    DELETED at start and by reset(): give the tests a throwaway Qdrant.
    P2Q_QDRANT_BIN  a `qdrant` executable, started here on 127.0.0.1 on free ports with
                    telemetry off, the test's API key and a fresh storage directory under the
                    work directory, removed at stop() (P2Q_KEEP_QDRANT=1 keeps it).

    The interface is the test server's (url, request, reset, stop); faults come from outside:
    kill9()/restart() and pause()/resume() (P2Q_QDRANT_BIN only), and `proxy`, a TcpProxy in
    front of it: `url` (what the tests give pg2qdrant) is the proxy's, so slow_writes() and the
    chaos run can delay, refuse, reset or black-hole pg2qdrant's connections; request() and
    `direct_url` go straight to Qdrant (benchmarks give pg2qdrant `direct_url`)."""

    real = True
    request_log = None

    def __init__(self, workdir, api_key=None):
        self.workdir = os.path.abspath(workdir)
        self.api_key = api_key
        self.binary = os.environ.get("P2Q_QDRANT_BIN") or None
        self.given_url = None if self.binary else os.environ.get("P2Q_QDRANT_URL", "").rstrip("/")
        self.proc = None
        self.port = None
        self.grpc_port = None
        self.url = None
        self.direct_url = None
        self.proxy = None
        self.dir = None
        self.stderr_path = None
        self.version = None

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout=60):
        if self.binary:
            os.makedirs(self.workdir, exist_ok=True)
            self.dir = tempfile.mkdtemp(prefix="qdrant-real-", dir=self.workdir)
            self.stderr_path = os.path.join(self.dir, "qdrant.log")
            self.port, self.grpc_port = free_port(), free_port()
            self.direct_url = "http://127.0.0.1:%d" % self.port
            _live.append(self)
            self._spawn()
            self._wait_ready(timeout)
            host = "127.0.0.1"
        else:
            self.direct_url = self.given_url
            m = re.match(r"^http://([^/:]+):(\d+)$", self.direct_url or "")
            if not m:
                raise HarnessError("P2Q_QDRANT_URL=%r is not a base URL such as http://127.0.0.1:6333" %
                                   self.direct_url)
            host, self.port = m.group(1), int(m.group(2))
            _live.append(self)
            self._wait_ready(5)  # a wrong URL fails fast
        self.proxy = TcpProxy(self.port, target_host=host)
        self.url = self.proxy.url
        self.reset()
        return self

    def _spawn(self):
        env = dict(os.environ,
                   QDRANT__SERVICE__HOST="127.0.0.1",
                   QDRANT__SERVICE__HTTP_PORT=str(self.port),
                   QDRANT__SERVICE__GRPC_PORT=str(self.grpc_port),
                   QDRANT__TELEMETRY_DISABLED="true",
                   QDRANT__STORAGE__STORAGE_PATH=os.path.join(self.dir, "storage"),
                   QDRANT__STORAGE__SNAPSHOTS_PATH=os.path.join(self.dir, "snapshots"),
                   QDRANT__LOG_LEVEL=os.environ.get("P2Q_QDRANT_LOG_LEVEL", "WARN"))
        env.pop("QDRANT__SERVICE__API_KEY", None)
        if self.api_key:
            env["QDRANT__SERVICE__API_KEY"] = self.api_key
        with open(self.stderr_path, "a") as err:
            self.proc = subprocess.Popen([self.binary], cwd=self.dir, env=env, stdout=err, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise HarnessError("qdrant (%s) exited with %s:\n%s" % (self.binary, self.proc.returncode,
                                                                         self.log_tail()))
            try:
                status, body = self.request("GET", "/", timeout=2)
                if status == 200 and isinstance(body, dict) and "version" in body:
                    self.version = body["version"]
                    return
                last = "GET / answered %s %r" % (status, str(body)[:200])
                if self.binary is None:
                    break  # something answers, and it is not Qdrant: no point waiting
            except (OSError, urllib.error.URLError) as e:
                last = str(e)
                if self.binary is None:
                    break  # a given URL must answer at once
            time.sleep(0.2)
        where = self.binary and ("%s on %s" % (self.binary, self.direct_url)) or ("P2Q_QDRANT_URL=%s" % self.direct_url)
        raise HarnessError("no Qdrant answers at %s: %s" % (where, last))

    def stop(self, timeout=30):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.resume()
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
            if self.dir and not os.environ.get("P2Q_KEEP_QDRANT"):
                shutil.rmtree(self.dir, ignore_errors=True)
        if self.proxy:
            self.proxy.stop()
            self.proxy = None
        if self in _live:
            _live.remove(self)

    def _own_process(self, what):
        if self.proc is None:
            raise NeedsTestServer("%s needs P2Q_QDRANT_BIN (a Qdrant process the harness owns)" % what)

    def kill9(self):
        """SIGKILL: Qdrant recovers from its own WAL at restart()."""
        self._own_process("kill9")
        self.resume()
        self.proc.kill()
        self.proc.wait()

    def restart(self, timeout=60):
        """Starts the killed (or stopped) process again on the same port and storage."""
        self._own_process("restart")
        if self.proc.poll() is None:
            self.kill9()
        self._spawn()
        self._wait_ready(timeout)

    def pause(self):
        """SIGSTOP: a hung server (connections accepted by the kernel, never answered)."""
        self._own_process("pause")
        self.proc.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self):
        if self.proc is not None and getattr(self, "_paused", False):
            self.proc.send_signal(signal.SIGCONT)
            self._paused = False

    # -- access ------------------------------------------------------------

    def request(self, method, path, body_obj=None, timeout=30):
        """Straight to Qdrant, not through the proxy."""
        return http_json(self.direct_url, self.api_key, method, path, body_obj, timeout)

    def slow_writes(self, delay_ms, count=1000000):
        """Every request of pg2qdrant (through `proxy`) answered about delay_ms later: each chunk
        is held delay_ms / 2 each way (count is not honoured: until slow_writes(0)).  A delay of
        5 s or more (beyond the tests' timeouts) is a hung server instead: SIGSTOP
        (P2Q_QDRANT_BIN only)."""
        if delay_ms >= 5000:
            self.pause()
        elif delay_ms > 0:
            self.proxy.mode("delay", delay_ms=delay_ms // 2)
        else:
            self.proxy.mode("pass")
            self.resume()

    def fault(self, **kw):
        raise NeedsTestServer("fault injection (%s) needs the Qdrant test server" % kw)

    def reset(self):
        """Deletes every alias and collection."""
        status, body = self.request("GET", "/aliases")
        if status == 200:
            actions = [{"delete_alias": {"alias_name": a["alias_name"]}} for a in body["result"]["aliases"]]
            if actions:
                self.request("POST", "/collections/aliases", {"actions": actions})
        status, body = self.request("GET", "/collections")
        if status != 200:
            raise HarnessError("GET /collections on %s: %s %s" % (self.direct_url, status, body))
        for c in body["result"]["collections"]:
            st, resp = self.request("DELETE", "/collections/%s" % urllib.parse.quote(c["name"], safe=""))
            if st != 200:
                raise HarnessError("deleting collection %s: %s %s" % (c["name"], st, resp))
        return {}

    def __repr__(self):
        return "RealQdrant(url=%s, version=%s)" % (self.direct_url, self.version)


class TcpProxy:
    """A TCP proxy on 127.0.0.1 between pg2qdrant and a server, for faults from outside a real
    peer.  mode(): "pass" forwards; "refuse" closes the listening socket (connection refused)
    and resets open connections; "reset" accepts and resets every connection; "delay" forwards
    each chunk after delay_ms; "blackhole" accepts and reads, never forwards or answers (a
    partition: open connections go silent too)."""

    def __init__(self, target_port, target_host="127.0.0.1", tap=None):
        """tap: an object with new_connection() -> state, client(state, data) and
        server(state, data), called with every chunk forwarded (e.g. HttpTap)."""
        import threading
        self.tap = tap
        self._threading = threading
        self.target = (target_host, target_port)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self._mode, self._delay = "pass", 0.0
        self._lock = threading.Lock()
        self._conns = set()
        self._listener = None
        self._stopped = False
        self.connections = 0
        self._listen()

    def _listen(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(128)
        self._listener = ls
        self._threading.Thread(target=self._accept_loop, args=(ls,), daemon=True).start()

    def mode(self, mode, delay_ms=0):
        assert mode in ("pass", "refuse", "reset", "delay", "blackhole"), mode
        with self._lock:
            old, self._mode, self._delay = self._mode, mode, delay_ms / 1000.0
            conns = list(self._conns)
        if mode in ("refuse", "reset"):
            for c in conns:
                self._rst(c)
        if mode == "refuse" and old != "refuse":
            self._close_listener()
        elif old == "refuse" and mode != "refuse":
            self._listen()

    @staticmethod
    def _rst(sock):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
        except OSError:
            pass

    def _accept_loop(self, ls):
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return  # closed
            self.connections += 1
            with self._lock:
                mode = self._mode
            if mode == "reset":
                self._rst(client)
                continue
            self._threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        import select
        upstream = None
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._rst(client)
            return
        for sock in (client, upstream):  # forward each chunk at once (no Nagle delay on a proxy hop)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._conns.update((client, upstream))
        peers = {client: upstream, upstream: client}
        tap_state = self.tap.new_connection() if self.tap else None
        try:
            while not self._stopped:
                try:
                    readable, _, _ = select.select(list(peers), [], [], 0.1)
                except (OSError, ValueError):
                    return
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    with self._lock:
                        mode, delay = self._mode, self._delay
                    if mode == "blackhole":
                        continue  # swallowed
                    if mode in ("refuse", "reset"):
                        return
                    if mode == "delay" and delay:
                        time.sleep(delay)
                    if self.tap and s is upstream:
                        self.tap.server(tap_state, data)  # before forwarding: the answer's arrival
                    peers[s].sendall(data)
                    if self.tap and s is client:
                        self.tap.client(tap_state, data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(client)
                self._conns.discard(upstream)
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass

    def _close_listener(self):
        # shutdown() first: a close() alone leaves the socket listening while accept() blocks in
        # its thread, and the kernel would keep taking connections
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()

    def stop(self):
        self._stopped = True
        self._close_listener()
        for c in list(self._conns):
            self._rst(c)


class HttpTap:
    """A TcpProxy tap for HTTP/1.1 with one request at a time per connection (pg2qdrant's use):
    on_answer(request_line, body, t) is called when the first byte of the answer to a complete
    request arrives, t = time.time() then.  Against a real Qdrant, the answer to a wait=true write
    is sent once the write is applied and visible: t is when its points became visible."""

    def __init__(self, on_answer):
        self.on_answer = on_answer

    def new_connection(self):
        return {"buf": b"", "pending": None}

    def client(self, st, data):
        st["buf"] += data
        while True:
            head_end = st["buf"].find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = st["buf"][:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            end = head_end + 4 + length
            if len(st["buf"]) < end:
                return
            st["pending"] = (head.split("\r\n")[0], st["buf"][head_end + 4:end])
            st["buf"] = st["buf"][end:]

    def server(self, st, data):
        if st["pending"] is not None:
            t = time.time()
            line, body = st["pending"]
            st["pending"] = None
            self.on_answer(line, body, t)
