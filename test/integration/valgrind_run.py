#!/usr/bin/env python3
"""Runs an integration script with every pg2qdrant process under valgrind (memcheck).

    valgrind_run.py --valgrind PATH --pg2qdrant BIN --logs DIR -- SCRIPT [ARGS...]

SCRIPT gets `--pg2qdrant DIR/pg2qdrant`, a wrapper that execs valgrind on BIN with one log file
per process in DIR/logs.  Passes when SCRIPT passes, at least one pg2qdrant process ran, and
every log is empty: no invalid read or write, no use of uninitialised memory, no definitely or
indirectly lost block (still-reachable blocks at exit are libcurl's and libpq's globals).
Python 3 standard library only.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys

VALGRIND_OPTIONS = ["-q", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                    "--error-exitcode=99"]


def write_wrapper(path, valgrind, binary, logs):
    opts = " ".join(VALGRIND_OPTIONS)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n# written by test/integration/valgrind_run.py\n"
                "exec '%s' %s --log-file='%s/pg2qdrant.%%p.log' '%s' \"$@\"\n" % (valgrind, opts, logs, binary))
    os.chmod(path, 0o755)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--valgrind", default="valgrind")
    p.add_argument("--pg2qdrant", required=True)
    p.add_argument("--logs", required=True, help="directory for the wrapper and the logs (emptied first)")
    p.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT [ARGS...]")
    args = p.parse_args()
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    if not script:
        p.error("no script to run")

    shutil.rmtree(args.logs, ignore_errors=True)
    logs = os.path.join(os.path.abspath(args.logs), "logs")
    os.makedirs(logs)
    wrapper = os.path.join(os.path.abspath(args.logs), "pg2qdrant")
    write_wrapper(wrapper, args.valgrind, os.path.abspath(args.pg2qdrant), logs)

    name = os.path.basename(script[0])
    rc = subprocess.run([sys.executable] + script + ["--pg2qdrant", wrapper]).returncode
    files = sorted(glob.glob(os.path.join(logs, "pg2qdrant.*.log")))
    dirty = [f for f in files if os.path.getsize(f) > 0]
    for f in dirty:
        with open(f, errors="replace") as fh:
            print("valgrind: %s:\n%s" % (f, fh.read()[-6000:]), flush=True)
    if rc != 0:
        print("valgrind: FAILED: %s exited %d" % (name, rc))
        return 1
    if not files:
        print("valgrind: FAILED: %s ran no pg2qdrant process through the wrapper" % name)
        return 1
    if dirty:
        print("valgrind: FAILED: %d of %d pg2qdrant processes reported errors or leaks (logs in %s)"
              % (len(dirty), len(files), logs))
        return 1
    print("valgrind: %s passed; %d pg2qdrant processes, no errors, no definite or indirect leaks"
          % (name, len(files)))
    shutil.rmtree(args.logs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
