"""Helpers for the delivery-guarantee tests (test_guarantees.py) and the chaos run
(test/chaos/chaos.py): PostgreSQL restarts, slot positions, and the comparison of
collections with tables through the independent oracle (expected.py, via p2q_common.py).
pg2qdrant as a child process that can be killed is p2q_common.Sync.

Python 3 standard library only.
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, HERE)

import expected as oracle  # noqa: E402
import p2q_common as common  # noqa: E402
from harness import PG_BIN, HarnessError  # noqa: E402

TestFailure = common.TestFailure
check = common.check


# --- PostgreSQL control -------------------------------------------------------------

def pg_ctl(pg, *args, check_rc=True, timeout=120):
    argv = pg._cmd([os.path.join(PG_BIN, "pg_ctl"), "-D", pg.datadir] + list(args))
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise HarnessError("pg_ctl %s failed (exit %d): %s%s\n--- postgres.log ---\n%s"
                           % (" ".join(args), r.returncode, r.stdout, r.stderr, pg.log_tail()))
    return r


def pg_stop(pg, mode):
    """pg_ctl stop -m fast|immediate (waits)."""
    pg_ctl(pg, "-m", mode, "-w", "-t", "60", "stop")


def pg_start(pg):
    pg_ctl(pg, "-l", pg.logfile, "-w", "-t", "120", "start")


def pg_restart(pg, mode, down_seconds=0.0):
    pg_stop(pg, mode)
    if down_seconds > 0:
        time.sleep(down_seconds)
    pg_start(pg)


def slot_row(pg, db, slot):
    """{active, active_pid, confirmed (text), restart (text), wal_status} or None."""
    rows = pg.query_json(
        "SELECT json_agg(s) FROM (SELECT active, active_pid, confirmed_flush_lsn::text AS confirmed,"
        " restart_lsn::text AS restart, wal_status FROM pg_replication_slots WHERE slot_name = '%s') s" % slot,
        db=db)
    return rows[0] if rows else None


def confirmed_lsn(pg, db, slot):
    row = slot_row(pg, db, slot)
    return common.lsn_int(row["confirmed"]) if row and row["confirmed"] else 0


def wait_slot_inactive(pg, db, slot, timeout=30):
    common.wait_until(lambda: not (slot_row(pg, db, slot) or {}).get("active"), timeout,
                      "slot %s still active" % slot)


def wait_slot_active(pg, db, slot, sync, timeout=60):
    def ok():
        check(sync.alive(), "%s exited with %s while starting:\n%s" % (sync.name, sync.returncode(),
                                                                       sync.log_tail()))
        row = slot_row(pg, db, slot)
        return row and row["active"]
    common.wait_until(ok, timeout, "%s did not start streaming from slot %s" % (sync.name, slot))


def wal_insert_lsn(pg, db):
    return common.lsn_int(pg.psql("SELECT pg_current_wal_insert_lsn()", db=db).strip())


# --- collections against tables -------------------------------------------------------

def compare(pg, q, tables):
    """{collection: (missing, extra, differing)} for every collection that differs from its table."""
    out = {}
    for t in tables:
        exp = common.normalized(common.expected_points(pg, t), common.cosine_names(t))
        act = common.scroll(q, t.spec.collection)
        if act is None:
            out[t.spec.collection] = ([], [], [("*", "scroll failed", None, None)])
            continue
        missing, extra, differing = oracle.diff_points(exp, act)
        if missing or extra or differing:
            out[t.spec.collection] = (missing, extra, differing)
    return out


def mismatch_count(diffs):
    return sum(len(m) + len(e) + len(d) for m, e, d in diffs.values())


def format_diffs(diffs, few=4):
    lines = []
    for coll, (missing, extra, differing) in sorted(diffs.items()):
        lines.append("  %s: %d missing, %d extra, %d differing" % (coll, len(missing), len(extra), len(differing)))
        for pid in missing[:few]:
            lines.append("    missing %s" % (pid,))
        for pid in extra[:few]:
            lines.append("    extra   %s" % (pid,))
        for pid, what, exp, act in differing[:few]:
            lines.append("    differ  %s %s\n      expected %s\n      actual   %s"
                         % (pid, what, json.dumps(exp, default=str)[:200], json.dumps(act, default=str)[:200]))
    return "\n".join(lines)


def converge(pg, q, tables, db, slot, sync, timeout, what, poll=0.5):
    """Waits until every collection equals its table and the slot has confirmed the WAL
    position taken now (so every commit so far); then compares once more.  Returns the
    seconds it took."""
    t0 = time.monotonic()
    target = wal_insert_lsn(pg, db)
    deadline = t0 + timeout
    diffs = None
    while True:
        if sync is not None:
            check(sync.alive(), "%s: pg2qdrant exited with %s:\n%s" % (what, sync.returncode(), sync.log_tail()))
        if confirmed_lsn(pg, db, slot) >= target:
            diffs = compare(pg, q, tables)
            if not diffs:
                break
        if time.monotonic() > deadline:
            diffs = compare(pg, q, tables)
            raise TestFailure("%s: not converged within %ss (slot at %s, target %s)\n%s\n%s"
                              % (what, timeout, common.lsn_text(confirmed_lsn(pg, db, slot)),
                                 common.lsn_text(target), format_diffs(diffs), sync.log_tail() if sync else ""))
        time.sleep(poll)
    return time.monotonic() - t0
