#!/usr/bin/env python3
"""Bad command lines and bad config files: exit 2, a message naming the
file and line, never a crash (no signal, no sanitizer report)."""
import os
import subprocess
import sys
import tempfile

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/pg2qdrant"
failures = 0


def run(args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG2QDRANT_")}
    env.update(env_extra or {})
    p = subprocess.run([BIN] + args, capture_output=True, text=True, env=env, timeout=30)
    return p.returncode, p.stdout, p.stderr


def check(name, args, code, want=(), env=None, stdout_want=()):
    global failures
    rc, out, err = run(args, env)
    problems = []
    if rc != code:
        problems.append(f"exit {rc}, want {code}")
    for w in want:
        if w not in err:
            problems.append(f"stderr lacks {w!r}")
    for w in stdout_want:
        if w not in out:
            problems.append(f"stdout lacks {w!r}")
    if "Sanitizer" in err or "runtime error" in err:
        problems.append("sanitizer report")
    if problems:
        failures += 1
        print(f"FAIL {name}: {'; '.join(problems)}\n  stdout: {out!r}\n  stderr: {err!r}")
    else:
        print(f"ok   {name}")


def ini(text):
    f = tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False)
    f.write(text)
    f.close()
    return f.name


good = """[source]
dsn = host=127.0.0.1 port=1 dbname=x
[table public.t]
vector = v
"""

check("--version", ["--version"], 0, stdout_want=["pg2qdrant "])
check("--help", ["--help"], 0, stdout_want=["Usage: pg2qdrant COMMAND"])
check("run --help", ["run", "--help"], 0, stdout_want=["Usage: pg2qdrant run"])
check("no command", [], 2, ["Usage: pg2qdrant COMMAND"])
check("unknown command", ["frobnicate"], 2, ["unknown command 'frobnicate'"])
check("unknown option", ["run", "--frob"], 2, ["unknown option '--frob'"])
check("-c without a file", ["run", "-c"], 2, ["needs a file name"])
check("bad --log-level", ["run", "--log-level", "loud"], 2, ["--log-level takes"])
check("extra argument", ["run", "extra"], 2, ["unexpected argument 'extra'"])
# check-lag: a bad command line is UNKNOWN (3), as for Nagios plugins; slot: usage errors exit 2.
check("check-lag --help", ["check-lag", "--help"], 0, stdout_want=["Usage: pg2qdrant check-lag", "--inactive-warn"])
check("slot --help", ["slot", "--help"], 0, stdout_want=["Usage: pg2qdrant slot create|drop|status"])
check("check-lag unknown option", ["check-lag", "--frob"], 3, ["unknown option '--frob'"])
check("check-lag bad --output", ["check-lag", "--output", "xml"], 3, ["--output takes nagios, json or prometheus"])
check("check-lag bad --warn", ["check-lag", "--warn", "lots"], 3, ["--warn takes a size"])
check("check-lag unreachable", ["check-lag", "--dsn", "host=127.0.0.1 port=1 connect_timeout=5"], 3,
      stdout_want=["PG2QDRANT SLOT UNKNOWN - "])
check("--warn outside check-lag", ["run", "--warn", "1GB"], 2, ["only for check-lag"])
check("backfill --help", ["backfill", "--help"], 0, stdout_want=["Usage: pg2qdrant backfill", "--wait"])
check("--wait outside backfill", ["snapshot", "--wait"], 2, ["only for backfill"])
check("backfill --timeout without --wait", ["backfill", "--timeout", "5s"], 2, ["--timeout needs --wait"])
check("backfill bad --timeout", ["backfill", "--wait", "--timeout", "soon"], 2, ["--timeout takes a duration"])
p = ini(good)
check("backfill --table not configured", ["backfill", "-c", p, "--table", "public.nope"], 2, ["public.nope"])
check("slot without action", ["slot"], 2, ["create, drop or status"])
check("slot unknown action", ["slot", "rename"], 2, ["unknown action 'rename'"])
check("slot extra argument", ["slot", "status", "extra"], 2, ["unexpected argument 'extra'"])
check("missing config file", ["run", "-c", "/nonexistent/p.ini"], 2, ["/nonexistent/p.ini"])
check("$PG2QDRANT_CONFIG missing file", ["check-config"], 2, ["/nonexistent/env.ini"],
      env={"PG2QDRANT_CONFIG": "/nonexistent/env.ini"})
p = ini(good + "\n[sync]\nbach_points = 10\n")
check("unknown key names file:line", ["run", "-c", p], 2, [f"{p}:7", "bach_points"])
p = ini(good + "[sync]\nbatch_points = ten\n")
check("bad value names file:line", ["run", "-c", p], 2, [f"{p}:6", "batch_points"])
p = ini(good + "[sauce]\nx = 1\n")
check("unknown section names file:line", ["check-config", "-c", p], 2, [f"{p}:5", "sauce"])
p = ini(good + "[sync]\nbatch_points = ten\nflush_interval = soon\n")
check("every error is reported", ["run", "-c", p], 2, [f"{p}:6", f"{p}:7"])
p = ini(good)
check("bad env override", ["run", "-c", p], 2, ["PG2QDRANT_SYNC_BATCH_BYTES"],
      env={"PG2QDRANT_SYNC_BATCH_BYTES": "lots"})
p = ini("[source]\ndsn = host=127.0.0.1 password=hunter2 port=1\n[sync]\nbatch_points = x\n")
rc, out, err = run(["run", "-c", p])
if "hunter2" in out + err or rc != 2:
    failures += 1
    print(f"FAIL secret stays out of errors: exit {rc} {err!r}")
else:
    print("ok   secret stays out of errors")

print(f"{failures} failure(s)")
sys.exit(1 if failures else 0)
