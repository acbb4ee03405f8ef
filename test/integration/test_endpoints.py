#!/usr/bin/env python3
"""The endpoint server of `pg2qdrant run` without a database (seconds):

- PostgreSQL unreachable: /livez 200, /readyz 503 "postgres: not connected", /status and
  /metrics answer, 404 and 405 where due, and neither the DSN password nor the Qdrant API
  key appears in the log (at debug level), /status or /metrics;
- no core dumps: the running process's core file size limit is 0 (soft and hard), and it is
  not dumpable (its /proc entries belong to root, not to the user it runs as);
- SIGTERM while reconnecting: exit 0;
- [http] listen on a port in use: exit 2 with a message naming the address;
- a slow-client flood (80 connections from four other addresses, dribbling a header byte every
  1.5 s or sending nothing, reconnecting when dropped): /livez polled every 200 ms for 20 s
  answers 200 every time within 2 s (docs/endpoints.md, "Slow clients").

    test_endpoints.py PG2QDRANT_BINARY
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from harness import free_port  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/pg2qdrant"
PASSWORD = "dsn-pw-s3cr3t-2718"
API_KEY = "api-key-s3cr3t-3141"
failures = 0


def check(cond, message):
    global failures
    if cond:
        print("ok   " + message)
    else:
        failures += 1
        print("FAIL " + message)


def config(workdir, http_port):
    closed = free_port()  # nothing listens there
    path = os.path.join(workdir, "p.ini")
    with open(path, "w") as f:
        f.write("[source]\n"
                "dsn = host=127.0.0.1 port=%d dbname=x user=u password=%s connect_timeout=2\n"
                "status_interval = 1s\n"
                "[qdrant]\nurl = http://127.0.0.1:%d\napi_key = %s\n"
                "[sync]\nsnapshot = never\n"
                "[http]\nlisten = 127.0.0.1:%d\n"
                "[table public.t]\nvector = v\n" % (closed, PASSWORD, closed, API_KEY, http_port))
    return path


def get(port, path, method="GET", timeout=5):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers
    except OSError as e:
        return None, str(e), {}


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("PG2QDRANT_") and not k.startswith("PG")}
    return e


def test_unreachable_postgres(workdir):
    port = free_port()
    log_path = os.path.join(workdir, "run.log")
    with open(log_path, "w") as out:
        proc = subprocess.Popen([BIN, "run", "-c", config(workdir, port), "--log-level", "debug"], stdout=out,
                                stderr=subprocess.STDOUT, env=env())
    try:
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            status, body, _ = get(port, "/livez")
            if status == 200:
                break
            time.sleep(0.1)
        check(status == 200, "/livez answers 200 while the loop reconnects")
        # wait until the first connection attempt failed, so last_error is set
        doc = {}
        while time.monotonic() < deadline:
            status, body, headers = get(port, "/status")
            doc = json.loads(body) if status == 200 else {}
            if doc.get("last_error"):
                break
            time.sleep(0.1)
        check(status == 200 and headers.get("Content-Type") == "application/json", "/status answers JSON")
        check(doc.get("state") in ("connecting", "reconnecting"), "/status state while PostgreSQL is away: %r"
              % doc.get("state"))
        check(bool(doc.get("last_error")), "/status last_error names the failure: %r" % doc.get("last_error"))
        status, ready_body, _ = get(port, "/readyz")
        check(status == 503 and ready_body.strip() == "postgres: not connected",
              "/readyz 503 with the reason (%s %r)" % (status, ready_body))
        status, metrics, headers = get(port, "/metrics")
        check(status == 200 and "version=0.0.4" in headers.get("Content-Type", ""), "/metrics answers text 0.0.4")
        check("\npg2qdrant_up 0\n" in metrics, "pg2qdrant_up is 0 while not ready")
        check(get(port, "/nope")[0] == 404, "unknown path: 404")
        s, _, h = get(port, "/status", "POST")
        check(s == 405 and "GET" in h.get("Allow", ""), "POST /status: 405 with Allow")
        for where, text in (("/status", body), ("/metrics", metrics), ("/readyz", ready_body)):
            check(PASSWORD not in text and API_KEY not in text, "no secret in %s" % where)
        with open("/proc/%d/limits" % proc.pid) as f:
            core = [line.split()[4:6] for line in f if line.startswith("Max core file size")]
        check(core == [["0", "0"]], "core dumps off: Max core file size %s, want 0 0" % core)
        if os.getuid() != 0:  # as root, /proc/PID belongs to root either way
            check(os.stat("/proc/%d" % proc.pid).st_uid == 0, "the process is not dumpable (/proc/PID owned by root)")
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "SIGTERM while reconnecting: exit %s, want 0" % rc)
        with open(log_path, errors="replace") as f:
            log = f.read()
        check("endpoint server listening" in log, "the log announces the endpoint server")
        check(PASSWORD not in log, "the DSN password stays out of the debug log")
        check(API_KEY not in log, "the Qdrant API key stays out of the debug log")
        check("Sanitizer" not in log and "runtime error" not in log, "no sanitizer report")
        if failures:
            print("--- log ---\n" + log[-3000:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_in_use(workdir):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        p = subprocess.run([BIN, "run", "-c", config(workdir, port)], capture_output=True, text=True, env=env(),
                           timeout=30)
    addr = "127.0.0.1:%d" % port
    check(p.returncode == 2, "listen address in use: exit %d, want 2" % p.returncode)
    check(addr in p.stderr and "in use" in p.stderr, "the error names %s and the reason: %r" % (addr, p.stderr))
    check(PASSWORD not in p.stderr + p.stdout, "no secret in the bind error")


class Flood:
    """Slow clients in one select loop on a thread: per source address, `dribblers` connections
    sending one byte of an endless header every 1.5 s and `silent` ones sending nothing; a
    connection the server drops is opened again at once."""

    def __init__(self, port, sources, dribblers, silent):
        self.port = port
        self.slots = [(src, i < dribblers) for src in sources for i in range(dribblers + silent)]
        self.socks = [None] * len(self.slots)
        self.next_send = [0.0] * len(self.slots)
        self.next_open = [0.0] * len(self.slots)
        self.stopped = threading.Event()
        self.connects = 0
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def open(self, i):
        src, dribble = self.slots[i]
        if time.monotonic() < self.next_open[i]:
            return
        self.next_open[i] = time.monotonic() + 0.2
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((src, 0))
            s.settimeout(0.5)
            s.connect(("127.0.0.1", self.port))
            s.setblocking(False)
            if dribble:
                s.send(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            self.socks[i] = s
            self.next_send[i] = time.monotonic() + 1.5
            self.connects += 1
        except OSError:
            s.close()

    def drop(self, i):
        self.socks[i].close()
        self.socks[i] = None

    def loop(self):
        while not self.stopped.is_set():
            for i in range(len(self.slots)):
                if self.socks[i] is None:
                    self.open(i)
            live = [s for s in self.socks if s is not None]
            readable = select.select(live, [], [], 0.1)[0] if live else []
            now = time.monotonic()
            for i, s in enumerate(self.socks):
                if s is None:
                    continue
                try:
                    if s in readable and not s.recv(4096):
                        self.drop(i)
                    elif self.slots[i][1] and now >= self.next_send[i]:
                        s.send(b"a")
                        self.next_send[i] = now + 1.5
                except OSError:
                    self.drop(i)
        for i, s in enumerate(self.socks):
            if s is not None:
                self.drop(i)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()


def test_slow_client_flood(workdir):
    port = free_port()
    log_path = os.path.join(workdir, "flood.log")
    with open(log_path, "w") as out:
        proc = subprocess.Popen([BIN, "run", "-c", config(workdir, port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env())
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and get(port, "/livez")[0] != 200:
            time.sleep(0.1)
        sources = ["127.0.0.%d" % i for i in range(2, 6)]
        polls, bad = 0, []
        with Flood(port, sources, dribblers=15, silent=5) as flood:
            time.sleep(2)  # let the flood take its connections
            end = time.monotonic() + 20
            while time.monotonic() < end:
                t0 = time.monotonic()
                status, body, _ = get(port, "/livez", timeout=2)
                polls += 1
                if status != 200:
                    bad.append("%.1fs: %s %r" % (t0 - end + 20, status, body[:80]))
                time.sleep(max(0.0, 0.2 - (time.monotonic() - t0)))
            held = sum(1 for s in flood.socks if s is not None)
        print("     flood: %d connections opened, %d held at the end; %d /livez polls" % (flood.connects, held, polls))
        check(held >= 40, "the flood held its connections (%d of 80)" % held)
        check(not bad, "/livez answered 200 within 2 s to every poll during the flood (%d of %d failed%s)"
              % (len(bad), polls, ": " + "; ".join(bad[:5]) if bad else ""))
        check(proc.poll() is None, "pg2qdrant still runs after the flood")
        with open(log_path, errors="replace") as f:
            complaints = f.read().count("endpoint server")
        check(complaints <= 3, "refused connections do not flood the log (%d lines)" % complaints)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main():
    with tempfile.TemporaryDirectory(prefix="p2q-endpoints-") as workdir:
        test_unreachable_postgres(workdir)
        test_port_in_use(workdir)
        test_slow_client_flood(workdir)
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
