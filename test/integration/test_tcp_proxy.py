#!/usr/bin/env python3
"""The harness's TcpProxy (faults from outside a real Qdrant) against the Qdrant test server:
each mode does to a client what it claims.

    test_tcp_proxy.py --qdrant-server BIN --workdir DIR
"""

import argparse
import os
import socket
import sys
import time
import urllib.error

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, HERE)

from harness import QdrantServer, TcpProxy, http_json, install_signal_cleanup  # noqa: E402
from p2q_common import TestFailure, check, log  # noqa: E402


def outcome(url, timeout=2.0):
    """'ok', 'refused', 'reset', 'timeout' or the error, for GET /collections through url."""
    try:
        status, _ = http_json(url, None, "GET", "/collections", timeout=timeout)
        return "ok" if status == 200 else "status %s" % status
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, ConnectionRefusedError):
            return "refused"
        if isinstance(reason, (ConnectionResetError, BrokenPipeError)):
            return "reset"
        if isinstance(reason, socket.timeout) or "timed out" in str(reason):
            return "timeout"
        return repr(reason)
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except Exception as e:  # http.client.RemoteDisconnected and friends
        return "reset" if "closed" in str(e) or "reset" in str(e).lower() else repr(e)


def run(args):
    with QdrantServer(args.qdrant_server, args.workdir, test_server_only=True) as q:
        proxy = TcpProxy(q.port)
        try:
            check(outcome(proxy.url) == "ok", "pass: a request through the proxy failed")
            proxy.mode("refuse")
            got = outcome(proxy.url)
            check(got == "refused", "refuse: got %s" % got)
            proxy.mode("pass")
            got = outcome(proxy.url)
            check(got == "ok", "pass after refuse: %s" % got)
            proxy.mode("reset")
            got = outcome(proxy.url)
            check(got == "reset", "reset: got %s" % got)
            proxy.mode("blackhole")
            t0 = time.monotonic()
            got = outcome(proxy.url, timeout=1.0)
            check(got == "timeout" and time.monotonic() - t0 >= 0.9, "blackhole: got %s" % got)
            proxy.mode("delay", delay_ms=400)
            t0 = time.monotonic()
            got = outcome(proxy.url)
            took = time.monotonic() - t0
            check(got == "ok" and took >= 0.4, "delay 400 ms: got %s after %.2fs" % (got, took))
            proxy.mode("pass")
            check(outcome(proxy.url) == "ok", "pass at the end")
            log("tcp proxy: pass, refuse, reset, blackhole, delay behave as documented (%d connections)"
                % proxy.connections)
        finally:
            proxy.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--qdrant-server", required=True)
    p.add_argument("--workdir", required=True)
    args = p.parse_args()
    install_signal_cleanup()
    try:
        run(args)
    except TestFailure as e:
        log("tcp proxy: FAILED: %s" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
