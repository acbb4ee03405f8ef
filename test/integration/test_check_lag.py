#!/usr/bin/env python3
"""`pg2qdrant check-lag` and `pg2qdrant slot create|drop|status` against a throwaway PostgreSQL 15.

    test_check_lag.py --pg2qdrant BIN --workdir DIR

check-lag: every status (OK, WARNING, CRITICAL for the backlog, a missing slot, another plugin,
a physical slot, wal_status lost, UNKNOWN for an unreachable server, a failed login, a bad
config and a bad command line), every output format parsed (Nagios line of SPEC §7, JSON,
Prometheus text), the exit code equal to the status every time, --dsn/--slot without a config,
libpq's PG* variables alone, the inactive thresholds on PostgreSQL 15 (no inactive_since), and
no password anywhere in the output.  slot: create, create again, status, drop refused while
pg_recvlogical holds the slot (naming its PID), drop, drop of a missing slot, other plugins.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))

from harness import PG_BIN, Postgres, free_port, install_signal_cleanup  # noqa: E402
from p2q_common import Checklist, clean_env, stop_process  # noqa: E402

SLOT = "p2q_slot"
SECRET = "Sekr3t-pw-4c1d"
STATUS_CODE = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
NAGIOS_RE = re.compile(r"^PG2QDRANT SLOT (OK|WARNING|CRITICAL|UNKNOWN) - (.+?) \| "
                       r"lag_bytes=(\d+B|U);(\d+);(\d+) retained_bytes=(\d+B|U)( \S+)*$")
PROM_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\} '
                            r'(-?[0-9.eE+]+)$')

_checks = Checklist()
check = _checks.check
failures = _checks.failures
ARGS = None


def run(args, env=None):
    r = subprocess.run([ARGS.pg2qdrant] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60, env=clean_env(env))
    return r.returncode, r.stdout, r.stderr


def detail(rc, out, err):
    return "  exit %s\n  stdout: %r\n  stderr: %r" % (rc, out, err)


def lag(what, args, want, env=None, text_has=()):
    """Runs check-lag with the nagios output; checks the line, the status and the exit code."""
    rc, out, err = run(["check-lag"] + args, env)
    lines = out.splitlines()
    m = NAGIOS_RE.match(lines[0]) if len(lines) == 1 else None
    ok = m is not None and m.group(1) == want and rc == STATUS_CODE[want]
    ok = ok and all(t in out for t in text_has) and SECRET not in out + err
    ok = ok and "Sanitizer" not in err and "runtime error" not in err
    check(ok, "check-lag %s: %s, exit %d" % (what, want, STATUS_CODE[want]), detail(rc, out, err))
    return rc, out, err, m


def lag_json(what, args, want, env=None):
    rc, out, err = run(["check-lag", "--output", "json"] + args, env)
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    ok = isinstance(doc, dict) and doc.get("status") == want and rc == STATUS_CODE[want] and out.count("\n") == 1
    check(ok, "check-lag --output json %s: one object, status %s, exit %d" % (what, want, STATUS_CODE[want]),
          detail(rc, out, err))
    return doc or {}, rc, out, err


def parse_prometheus(text):
    """{(name, frozenset(labels)): value}; raises ValueError on a malformed line."""
    samples, helps, types = {}, set(), set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            parts = line.split()
            if parts[3] not in ("gauge", "counter", "untyped", "histogram", "summary"):
                raise ValueError("bad TYPE line %r" % line)
            types.add(parts[2])
        elif line.startswith("#"):
            continue
        else:
            m = PROM_SAMPLE_RE.match(line)
            if not m:
                raise ValueError("bad sample line %r" % line)
            labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2)))
            if m.group(1) not in helps or m.group(1) not in types:
                raise ValueError("sample without HELP/TYPE: %r" % line)
            samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def lag_prom(what, args, want, env=None):
    rc, out, err = run(["check-lag", "--output", "prometheus"] + args, env)
    try:
        samples = parse_prometheus(out)
    except (ValueError, IndexError) as e:
        samples = None
        err += "\nparse: %s" % e
    values = {name: v for (name, _labels), v in (samples or {}).items()}
    ok = samples is not None and values.get("pg2qdrant_slot_status") == STATUS_CODE[want] and rc == STATUS_CODE[want]
    check(ok, "check-lag --output prometheus %s: parses, status gauge %d, exit %d" %
          (what, STATUS_CODE[want], STATUS_CODE[want]), detail(rc, out, err))
    return values, out


def slot_row(pg, name, db="postgres"):
    return pg.query_json("SELECT row_to_json(s) FROM pg_replication_slots s WHERE slot_name = '%s'" % name, db=db)


def write_wal(pg, rows=3000):
    pg.psql("INSERT INTO t (v) SELECT repeat('x', 200) FROM generate_series(1, %d)" % rows, db="shop")


def config(workdir, name, dsn, slot=SLOT, extra=""):
    path = os.path.join(workdir, name + ".ini")
    with open(path, "w") as f:
        f.write("[source]\ndsn = %s\nslot = %s\n%s" % (dsn, slot, extra))
    return path


# ---------------------------------------------------------------------------

def test_slot_commands_create(pg, cfg):
    rc, out, err = run(["slot", "status", "-c", cfg])
    check(rc == 1 and SLOT in err and "does not exist" in err, "slot status of a missing slot: exit 1",
          detail(rc, out, err))
    rc, out, err = run(["slot", "create", "-c", cfg])
    row = slot_row(pg, SLOT)
    check(rc == 0 and "created" in out and row and row["plugin"] == "pgoutput" and row["database"] == "shop",
          "slot create: exit 0, a pgoutput slot in database shop", detail(rc, out, err))
    rc, out, err = run(["slot", "create", "-c", cfg])
    check(rc == 0 and "already exists" in out, "slot create again: exit 0, 'already exists'", detail(rc, out, err))
    rc, out, err = run(["slot", "status", "-c", cfg])
    fields = dict(re.findall(r"^(\w+):\s+(.*)$", out, re.M))
    check(rc == 0 and fields.get("plugin") == "pgoutput" and fields.get("active") == "no"
          and fields.get("confirmed_flush_lsn") == row["confirmed_flush_lsn"]
          and fields.get("restart_lsn") == row["restart_lsn"] and fields.get("wal_status") == "reserved"
          and "safe_wal_size" in fields and fields.get("backlog", "").endswith(")")
          and fields.get("retained", "").endswith(")"),
          "slot status: plugin, active, LSNs, wal_status, safe_wal_size, backlog, retained", detail(rc, out, err))


def test_check_lag_levels(pg, cfg, dsn):
    rc, out, err, m = lag("fresh slot", ["-c", cfg], "OK", text_has=['slot "%s"' % SLOT, "wal_status reserved"])
    if m:
        check(m.group(4) == str(1 << 30) and m.group(5) == str(4 << 30),
              "nagios perfdata carries the default thresholds 1GB;4GB", out)
    write_wal(pg)
    rc, out, err, m = lag("backlog over --warn 1kB", ["-c", cfg, "--warn", "1kB", "--critical", "1GB"], "WARNING",
                          text_has=["exceeds warning 1024 bytes"])
    if m:
        lag_b = int(m.group(3)[:-1])
        ret_b = int(m.group(6)[:-1])
        check(lag_b > 1024 and ret_b >= lag_b and m.group(4) == "1024" and m.group(5) == str(1 << 30),
              "nagios perfdata: lag_bytes > 1kB, retained_bytes >= lag_bytes, w;c in bytes", out)
    lag("backlog over --critical 2kB", ["-c", cfg, "--warn", "1kB", "--critical", "2kB"], "CRITICAL",
        text_has=["exceeds critical 2048 bytes"])
    lag("--warn=1kB --critical=1GB (= forms)", ["-c", cfg, "--warn=1kB", "--critical=1GB"], "WARNING")
    lag("--critical 1kB alone (the default warn follows it)", ["-c", cfg, "--critical", "1kB"], "CRITICAL")
    lag("backlog under the defaults", ["-c", cfg], "OK")

    doc, rc, out, err = lag_json("WARNING", ["-c", cfg, "--warn", "1kB"], "WARNING")
    want_keys = {"status", "slot", "lag_bytes", "retained_bytes", "wal_status", "safe_wal_size", "restart_lsn",
                 "confirmed_flush_lsn", "active", "active_pid", "plugin", "slot_type", "current_lsn",
                 "warn_bytes", "critical_bytes", "inactive_seconds", "text"}
    row = slot_row(pg, SLOT)
    check(want_keys <= set(doc) and doc.get("lag_bytes", 0) > 1024 and doc["retained_bytes"] >= doc["lag_bytes"]
          and doc["plugin"] == "pgoutput" and doc["slot"] == SLOT and doc["warn_bytes"] == 1024
          and doc["confirmed_flush_lsn"] == row["confirmed_flush_lsn"] and doc["restart_lsn"] == row["restart_lsn"]
          and doc["active"] is False and doc["wal_status"] == "reserved",
          "json has every figure", json.dumps(doc))
    lag_json("OK", ["-c", cfg], "OK")
    lag_json("CRITICAL", ["-c", cfg, "--warn", "1kB", "--critical", "2kB"], "CRITICAL")

    values, out = lag_prom("WARNING", ["-c", cfg, "--warn", "1kB"], "WARNING")
    check(values.get("pg2qdrant_slot_lag_bytes", 0) > 1024 and "pg2qdrant_slot_retained_bytes" in values
          and values.get("pg2qdrant_slot_exists") == 1 and values.get("pg2qdrant_slot_up") == 1
          and values.get("pg2qdrant_slot_active") == 0 and 'pg2qdrant_slot_lag_bytes{slot="%s"}' % SLOT in out
          and 'plugin="pgoutput"' in out,
          "prometheus: lag, retained, exists, up, active, info", out)
    lag_prom("OK", ["-c", cfg], "OK")

    # --dsn/--slot without any config file; an explicit --slot wins over the config's.
    lag("--dsn and --slot, no config", ["--dsn", dsn, "--slot", SLOT], "OK")
    lag("--dsn URI form", ["--dsn", "postgresql://postgres@127.0.0.1:%d/shop" % pg.port, "--slot", SLOT], "OK")
    lag("-c with --slot override to a missing slot", ["-c", cfg, "--slot", "other_slot"], "CRITICAL",
        text_has=['slot "other_slot" does not exist'])
    # libpq's PG* variables alone (no config file exists at the default path in the test machine).
    pgenv = {"PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGUSER": "postgres", "PGDATABASE": "shop"}
    lag("PG* variables only, --slot", ["--slot", SLOT], "OK", env=pgenv)
    if not os.path.exists("/etc/pg2qdrant/pg2qdrant.ini"):
        lag("PG* variables only, default slot name pg2qdrant (missing)", [], "CRITICAL", env=pgenv,
            text_has=['slot "pg2qdrant" does not exist'])
    lag("$PG2QDRANT_CONFIG", [], "OK", env={"PG2QDRANT_CONFIG": cfg})


def test_check_lag_problems(pg, cfg, dsn):
    lag("missing slot", ["--dsn", dsn, "--slot", "no_such_slot"], "CRITICAL", text_has=["does not exist"])
    doc, *_ = lag_json("missing slot", ["--dsn", dsn, "--slot", "no_such_slot"], "CRITICAL")
    check(doc.get("exists") is False and doc.get("lag_bytes") is None, "json of a missing slot: exists false",
          json.dumps(doc))
    values, _ = lag_prom("missing slot", ["--dsn", dsn, "--slot", "no_such_slot"], "CRITICAL")
    check(values.get("pg2qdrant_slot_exists") == 0, "prometheus of a missing slot: exists 0", repr(values))

    pg.psql("SELECT pg_create_logical_replication_slot('td_slot', 'test_decoding')", db="shop")
    lag("test_decoding slot", ["--dsn", dsn, "--slot", "td_slot"], "CRITICAL",
        text_has=["uses plugin test_decoding, pg2qdrant needs pgoutput"])
    pg.psql("SELECT pg_create_physical_replication_slot('phys_slot', true)")
    lag("physical slot", ["--dsn", dsn, "--slot", "phys_slot"], "CRITICAL", text_has=["physical slot"])

    # UNKNOWN: nothing listens; every format; the password of the DSN and PGPASSWORD never shown.
    dead = "host=127.0.0.1 port=%d dbname=shop user=postgres password=%s connect_timeout=5" % (free_port(), SECRET)
    lag("unreachable server", ["--dsn", dead, "--slot", SLOT], "UNKNOWN", text_has=["cannot connect"])
    lag_json("unreachable server", ["--dsn", dead, "--slot", SLOT], "UNKNOWN")
    values, _ = lag_prom("unreachable server", ["--dsn", dead, "--slot", SLOT], "UNKNOWN")
    check(values.get("pg2qdrant_slot_up") == 0, "prometheus of an unreachable server: up 0", repr(values))
    lag("unreachable via PG* + PGPASSWORD", ["--slot", SLOT], "UNKNOWN",
        env={"PGHOST": "127.0.0.1", "PGPORT": str(free_port()), "PGPASSWORD": SECRET})
    lag("malformed DSN holding the password", ["--dsn", "host=127.0.0.1 password %s" % SECRET], "UNKNOWN",
        text_has=["invalid connection string"])
    lag("a password in --dsn that works (trust)", ["--dsn", dsn + " password=" + SECRET, "--slot", SLOT], "OK")
    # A failed login: a role with a password, scram in pg_hba.conf.
    pg.psql("CREATE ROLE pwuser LOGIN PASSWORD 'right-%s'" % SECRET)
    hba = os.path.join(pg.datadir, "pg_hba.conf")
    with open(hba) as f:
        old = f.read()
    with open(hba, "w") as f:
        f.write("host all pwuser 127.0.0.1/32 scram-sha-256\n" + old)
    pg.psql("SELECT pg_reload_conf()")
    time.sleep(0.5)
    lag("wrong password", ["--dsn", "host=127.0.0.1 port=%d dbname=shop user=pwuser password=%s" % (pg.port, SECRET),
                           "--slot", SLOT], "UNKNOWN", text_has=["password authentication failed"])
    lag("wrong password in a URI", ["--dsn", "postgresql://pwuser:%s@127.0.0.1:%d/shop" % (SECRET, pg.port)],
        "UNKNOWN", text_has=["password authentication failed"])
    # A role that cannot read: still an answer (pg_replication_slots is readable by everyone).

    # Configuration errors and bad command lines: UNKNOWN, exit 3.
    bad = config(ARGS.workdir, "bad", dsn, extra="bach_points = 1\n")
    lag("config with an unknown key", ["-c", bad], "UNKNOWN", text_has=["configuration"])
    lag("missing config file", ["-c", "/nonexistent/p.ini"], "UNKNOWN")
    for args, what in ((["--output", "xml"], "--output xml"), (["--warn", "lots"], "--warn lots"),
                       (["--inactive-warn", "30"], "--inactive-warn without a unit"),
                       (["--warn", "2GB", "--critical", "1GB"], "--warn above --critical"),
                       (["--frob"], "unknown option"), (["--warn"], "--warn without a value"),
                       (["extra"], "extra argument"), (["--log-level", "loud"], "bad --log-level")):
        rc, out, err = run(["check-lag", "--dsn", dsn] + args)
        check(rc == 3 and err.strip() != "", "check-lag usage error (%s): exit 3 (UNKNOWN)" % what,
              detail(rc, out, err))
    rc, out, err = run(["--log-level", "loud", "check-lag"])
    check(rc == 3, "usage error before the command word: exit 3", detail(rc, out, err))
    rc, out, err = run(["check-lag", "--help"])
    check(rc == 0 and "Usage: pg2qdrant check-lag" in out and "--inactive-warn" in out, "check-lag --help",
          detail(rc, out, err))
    rc, out, err = run(["run", "--warn", "1GB", "-c", cfg])
    check(rc == 2 and "only for check-lag" in err, "run --warn: exit 2", detail(rc, out, err))


def start_recvlogical(pg):
    argv = [os.path.join(PG_BIN, "pg_recvlogical"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
            "-d", "shop", "--slot", SLOT, "--start", "-o", "proto_version=1", "-o", "publication_names=p2q_pub",
            "-f", os.devnull, "-s", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=clean_env())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = slot_row(pg, SLOT)
        if row and row["active"]:
            return proc, row["active_pid"]
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("pg_recvlogical did not take the slot: %s" % proc.stderr.read())


def test_active_slot(pg, cfg, dsn):
    proc, pid = start_recvlogical(pg)
    try:
        rc, out, err, m = lag("active slot", ["-c", cfg], "OK", text_has=["active (pid %d)" % pid])
        lag("active slot with inactive thresholds", ["-c", cfg, "--inactive-warn", "1s", "--inactive-critical",
                                                     "2s"], "OK")
        doc, *_ = lag_json("active slot", ["-c", cfg], "OK")
        check(doc.get("active") is True and doc.get("active_pid") == pid, "json: active, active_pid", json.dumps(doc))
        rc, out, err = run(["slot", "status", "-c", cfg])
        check(rc == 0 and re.search(r"^active:\s+yes \(pid %d\)$" % pid, out, re.M), "slot status: active (pid)",
              detail(rc, out, err))
        rc, out, err = run(["slot", "drop", "-c", cfg])
        check(rc == 1 and "active" in err and str(pid) in err and slot_row(pg, SLOT),
              "slot drop of an active slot: refused, exit 1, names the PID, slot kept", detail(rc, out, err))
    finally:
        stop_process(proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (slot_row(pg, SLOT) or {}).get("active"):
        time.sleep(0.2)

    # PostgreSQL 15 has no inactive_since: an inactive slot with inactive thresholds is a WARNING
    # (duration unknown), never CRITICAL on that ground alone.
    lag("inactive slot, --inactive-warn, PG15", ["-c", cfg, "--inactive-warn", "1min"], "WARNING",
        text_has=["unknown time"])
    lag("inactive slot, --inactive-critical only, PG15", ["-c", cfg, "--inactive-critical", "1s"], "WARNING",
        text_has=["unknown time"])
    lag("inactive slot, no inactive thresholds", ["-c", cfg], "OK", text_has=["inactive"])
    doc, *_ = lag_json("inactive slot", ["-c", cfg, "--inactive-warn", "1min"], "WARNING")
    check(doc.get("inactive_seconds") is None and doc.get("inactive_warn_seconds") == 60,
          "json: inactive_seconds null on PG15, inactive_warn_seconds 60", json.dumps(doc))


def test_slot_drop(pg, cfg, dsn):
    rc, out, err = run(["slot", "drop", "-c", cfg])
    check(rc == 0 and "dropped" in out and not slot_row(pg, SLOT), "slot drop: exit 0, slot gone",
          detail(rc, out, err))
    rc, out, err = run(["slot", "drop", "-c", cfg])
    check(rc == 1 and "does not exist" in err, "slot drop of a missing slot: exit 1", detail(rc, out, err))
    td = config(ARGS.workdir, "td", dsn, slot="td_slot")
    rc, out, err = run(["slot", "drop", "-c", td])
    check(rc == 1 and "test_decoding" in err and slot_row(pg, "td_slot"),
          "slot drop of a test_decoding slot: refused, exit 1", detail(rc, out, err))
    rc, out, err = run(["slot", "create", "-c", td])
    check(rc == 1 and "test_decoding" in err, "slot create over a test_decoding slot: exit 1", detail(rc, out, err))
    rc, out, err = run(["slot", "create", "--dsn", dsn, "--slot", "phys_slot"])
    check(rc == 1 and "physical" in err, "slot create over a physical slot: exit 1", detail(rc, out, err))
    # A pgoutput slot of that name in another database.
    run(["slot", "create", "-c", cfg])
    other = config(ARGS.workdir, "other", pg.dsn("postgres"))
    rc, out, err = run(["slot", "create", "-c", other])
    check(rc == 1 and "another database" in err, "slot create when the slot belongs to another database: exit 1",
          detail(rc, out, err))
    rc, out, err = run(["slot", "status", "-c", "/nonexistent/p.ini"])
    check(rc == 2, "slot status with a missing config file: exit 2", detail(rc, out, err))
    rc, out, err = run(["slot", "-c", cfg])
    check(rc == 2 and "create, drop or status" in err, "slot without an action: exit 2", detail(rc, out, err))
    rc, out, err = run(["slot", "rename", "-c", cfg])
    check(rc == 2, "slot with an unknown action: exit 2", detail(rc, out, err))
    rc, out, err = run(["slot", "status", "-c", cfg, "--warn", "1GB"])
    check(rc == 2 and "only for check-lag" in err, "slot status --warn: exit 2", detail(rc, out, err))
    dead = config(ARGS.workdir, "dead", "host=127.0.0.1 port=%d password=%s" % (free_port(), SECRET))
    rc, out, err = run(["slot", "status", "-c", dead])
    check(rc == 1 and "cannot connect" in err and SECRET not in out + err,
          "slot status, unreachable server: exit 1, no password", detail(rc, out, err))


def test_lost_slot(pg, dsn):
    """wal_status lost: keep at most 1MB of WAL for slots, then write and checkpoint past it."""
    pg.psql("SELECT pg_create_logical_replication_slot('lost_slot', 'pgoutput')", db="shop")
    pg.psql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'; SELECT pg_reload_conf();")
    time.sleep(0.5)
    for _ in range(4):
        write_wal(pg, 2000)
        pg.psql("SELECT pg_switch_wal(); CHECKPOINT;")
    row = slot_row(pg, "lost_slot")
    if not row or row["wal_status"] not in ("lost", "unreserved"):
        check(False, "could make a slot lose its WAL", json.dumps(row))
        return
    lag("wal_status %s" % row["wal_status"], ["--dsn", dsn, "--slot", "lost_slot"], "CRITICAL",
        text_has=["wal_status %s" % row["wal_status"]])
    doc, *_ = lag_json("wal_status %s" % row["wal_status"], ["--dsn", dsn, "--slot", "lost_slot"], "CRITICAL")
    check(doc.get("wal_status") == row["wal_status"], "json wal_status", json.dumps(doc))
    rc, out, err = run(["slot", "status", "--dsn", dsn, "--slot", "lost_slot"])
    check(rc == 0 and "wal_status:" in out and row["wal_status"] in out, "slot status of a lost slot",
          detail(rc, out, err))
    pg.psql("ALTER SYSTEM RESET max_slot_wal_keep_size; SELECT pg_reload_conf();")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg2qdrant", required=True)
    ap.add_argument("--workdir", required=True)
    ARGS = ap.parse_args()
    ARGS.pg2qdrant = os.path.abspath(ARGS.pg2qdrant)
    os.makedirs(ARGS.workdir, exist_ok=True)
    install_signal_cleanup()
    with Postgres(ARGS.workdir) as pg:
        pg.psql("CREATE DATABASE shop")
        # The publication predates the slot: pgoutput looks it up as of each change's time.
        pg.psql("CREATE TABLE t (id serial PRIMARY KEY, v text); CREATE PUBLICATION p2q_pub FOR TABLE t", db="shop")
        dsn = pg.dsn("shop")
        cfg = config(ARGS.workdir, "main", dsn, extra="[sync]\nsnapshot = never\n")
        test_slot_commands_create(pg, cfg)
        test_check_lag_levels(pg, cfg, dsn)
        test_check_lag_problems(pg, cfg, dsn)
        test_active_slot(pg, cfg, dsn)
        test_slot_drop(pg, cfg, dsn)
        test_lost_slot(pg, dsn)
    print("%d failure(s)" % len(failures))
    for f in failures:
        print("  failed: %s" % f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
