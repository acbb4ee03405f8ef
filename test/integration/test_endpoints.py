#!/usr/bin/env python3
"""The endpoint server of `pg2qdrant run` without a database (seconds):

- PostgreSQL unreachable: /livez 200, /readyz 503 "postgres: not connected", /status and
  /metrics answer, 404 and 405 where due, and neither the DSN password nor the Qdrant API
  key appears in the log (at debug level), /status or /metrics;
- SIGTERM while reconnecting: exit 0;
- [http] listen on a port in use: exit 2 with a message naming the address.

    test_endpoints.py PG2QDRANT_BINARY
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
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


def get(port, path, method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
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


def main():
    with tempfile.TemporaryDirectory(prefix="p2q-endpoints-") as workdir:
        test_unreachable_postgres(workdir)
        test_port_in_use(workdir)
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
