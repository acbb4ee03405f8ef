#!/usr/bin/env python3
"""The delivery guarantees of SPEC §5, proved by breaking things on purpose.

A throwaway PostgreSQL 15 + the Qdrant test server (fault injection, request log) +
`pg2qdrant run` (status_interval = 1s, max_inflight = 8MB, batch_bytes = 1MB).  Scenarios:

  idle slot        a busy UNPUBLISHED table written in a loop, the published ones idle: the
                   slot's confirmed_flush_lsn reaches pg_current_wal_lsn() sampled at the
                   start within two status intervals (keepalive walEnd confirmed).
  crash safety     a backlog of small transactions (inserts, updates, deletes); pg2qdrant is
                   SIGKILLed at random moments while it catches up and restarted.  After
                   every kill: every transaction whose commit record starts before the
                   slot's confirmed_flush_lsn (exact commit positions from pg_walinspect, not
                   the WAL position after COMMIT) is in Qdrant, i.e. each row's point shows
                   the state of its last confirmed write or of a later one (nothing older),
                   and the confirmed position never went back.
  qdrant outage    every write fails (503) for a while: nothing is confirmed past the commit
                   positions Qdrant took, the process stays up, and it converges once the
                   fault is cleared.
  pg restarts      PostgreSQL stopped with -m fast and with -m immediate in mid-stream:
                   pg2qdrant reconnects and converges.
  slot held        pg_recvlogical holds the slot: pg2qdrant stays up, retries with growing
                   backoff, and takes over once the slot is released.
  graceful stop    SIGTERM during a stream: exit 0 within shutdown_timeout; after the
                   restart the first operations sent belong to transactions after the
                   position confirmed at exit (no replay before it), and nothing is lost.
  bounded memory   one transaction of --big-rows rows with 64-dim real[] vectors, Qdrant
                   slowed by delay faults: reading pauses while a full batch waits, so
                   the queue (/status inflight_bytes) stays at about two batches (under
                   2 MB, max_inflight being 8 MB) although the bodies total 40 MB, and
                   the peak RSS (VmHWM) stays under max_inflight + 32 MB.
  empty txns       Qdrant down (503 on every write) with a configured change in flight, then
                   --empty-txns transactions that touch only a published table without a
                   [table] section: they cost no memory (ack tracker and metrics entries only
                   for transactions with operations): /status inflight_txns stays 1 and VmRSS
                   grows by less than 2 MB (regular build); once Qdrant is back the slot
                   passes the last of them and the change is in Qdrant.
  invalidated slot max_slot_wal_keep_size = 1MB, the slot inactive, WAL written and
                   CHECKPOINTs until wal_status = lost: pg2qdrant exits 1 with the remedy.

Every scenario ends with every collection equal to its table (the oracle of expected.py)
and the slot past the last commit; finally every request body in the test server's log is
validated against Qdrant's OpenAPI document.

    test_guarantees.py --pg2qdrant BIN --qdrant-server BIN --openapi PATH --workdir DIR
                       [--keep] [--only NAME[,NAME...]] [--kills N] [--big-rows N] [--seed N]

Python 3 standard library only (openapi_check.py needs python3-jsonschema).
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, HERE)

import expected as oracle  # noqa: E402
import guarantees_lib as g  # noqa: E402
import p2q_common as common  # noqa: E402
from harness import PG_BIN, Postgres, QdrantServer, free_port, real_qdrant_wanted  # noqa: E402

DB = common.DB
SLOT = "p2q_guar"
PUBLICATION = "p2q_guar_pub"
STATUS_INTERVAL = 1.0  # seconds, written into the config
SHUTDOWN_TIMEOUT = 10
BIG_DIM = 64
CONVERGE = 120.0

check = common.check
log = common.log
TestFailure = common.TestFailure


def dense(size):
    return {"size": size, "distance": "Dot"}


ITEMS = common.Table(oracle.TableSpec("public.items", "items", ["id"], {"": "v"}),
                     "CREATE TABLE items (id bigint PRIMARY KEY, v real[], k int, note text)",
                     {"vectors": dense(4)}, ["id = id", "vector = v", "payload = *"])
BIG = common.Table(oracle.TableSpec("public.big", "big", ["id"], {"": "v"}),
                   "CREATE TABLE big (id bigint PRIMARY KEY, v real[])",
                   {"vectors": dense(BIG_DIM)}, ["id = id", "vector = v", "payload = *"])
TABLES = [ITEMS, BIG]


class Ctx:
    def __init__(self, args, pg, q):
        self.args = args
        self.pg = pg
        self.q = q
        self.sync = None
        self.http_port = free_port()
        self.rng = random.Random(args.seed)
        self.next_id = 1
        self.next_txn = 1
        self.figures = {}

    def sql(self, text, timeout=600):
        return self.pg.psql(text, db=DB, timeout=timeout)

    def confirmed(self):
        return g.confirmed_lsn(self.pg, DB, SLOT)

    def converge(self, what, timeout=CONVERGE):
        took = g.converge(self.pg, self.q, TABLES, DB, SLOT, self.sync, timeout, what)
        return took

    def restart(self):
        if self.sync.alive():
            self.sync.stop()
        self.sync.start()
        g.wait_slot_active(self.pg, DB, SLOT, self.sync)

    def status(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/status" % self.http_port, timeout=2) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def log_mark(self):
        return os.path.getsize(self.q.request_log) if self.q.request_log else 0

    def requests_since(self, mark):
        """The requests the test server logged after mark ([] against a real Qdrant: no log)."""
        out = []
        if not self.q.request_log:
            return out
        with open(self.q.request_log, "rb") as f:
            f.seek(mark)
            for raw in f:
                if raw.endswith(b"\n"):
                    out.append(json.loads(raw))
        return out


# --- transactions with known commit positions ------------------------------------------------

def vec4(i):
    return "'{%d,%d,%g,%g}'" % (i % 7, -(i % 5), (i % 11) / 4.0, 1.0 / (1 + i % 3))


class Backlog:
    """Small transactions on items, each tagged with its number (payload k) and xid, so that
    its exact commit record position can be looked up in the WAL (pg_walinspect)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.live = []            # ids with a row now (in the script's order)
        self.writes = {}          # id -> [(txn, state)]: state = k (present) or None (deleted)
        self.txns = {}            # txn -> {"xid":..., "start": commit record start, "end": its end}

    def script(self, n):
        """SQL for n transactions; returns (sql, [txn numbers])."""
        ctx, rng = self.ctx, self.ctx.rng
        parts, numbers = [], []
        for _ in range(n):
            t = ctx.next_txn
            ctx.next_txn += 1
            numbers.append(t)
            stmts = ["SELECT 'T', %d, txid_current()" % t]
            new = []
            for _ in range(rng.randint(1, 3)):
                i = ctx.next_id
                ctx.next_id += 1
                new.append("(%d, %s, %d, 'txn %d')" % (i, vec4(i), t, t))
                self.writes.setdefault(i, []).append((t, t))
                self.live.append(i)
            stmts.append("INSERT INTO items (id, v, k, note) VALUES " + ", ".join(new))
            if len(self.live) > 10 and rng.random() < 0.6:
                ids = rng.sample(self.live[:-3], rng.randint(1, 2))
                stmts.append("UPDATE items SET k = %d, note = 'updated by %d' WHERE id IN (%s)"
                             % (t, t, ",".join(map(str, ids))))
                for i in ids:
                    self.writes[i].append((t, t))
            if len(self.live) > 10 and rng.random() < 0.3:
                i = rng.choice(self.live[:-3])
                self.live.remove(i)
                stmts.append("DELETE FROM items WHERE id = %d" % i)
                self.writes[i].append((t, None))
            parts.append("BEGIN;\n" + ";\n".join(stmts) + ";\nCOMMIT;\n")
        return "".join(parts), numbers

    def write(self, n):
        """Runs n transactions (one psql session) and records their commit positions."""
        start = g.wal_insert_lsn(self.ctx.pg, DB)
        sql, numbers = self.script(n)
        out = self.ctx.sql(sql)
        xids = {}
        for line in out.splitlines():
            f = line.split("|")
            if len(f) == 3 and f[0] == "T":
                xids[int(f[2]) & 0xFFFFFFFF] = int(f[1])
        check(len(xids) == n, "expected %d transaction numbers from psql, got %d" % (n, len(xids)))
        found = commit_records(self.ctx.pg, start)
        for xid, t in xids.items():
            check(xid in found, "no COMMIT record for xid %d (txn %d) in the WAL" % (xid, t))
            s, e = found[xid]
            self.txns[t] = {"xid": xid, "start": s, "end": e}
        return numbers

    def check_confirmed_prefix(self, confirmed, actual, what):
        """actual: {id: point}.  Every transaction whose commit starts before confirmed must be
        visible: each row shows the state of its last such write, or of a later one."""
        bad = []
        checked = 0
        for i, ws in self.writes.items():
            conf = [n for n, (t, _) in enumerate(ws) if t in self.txns and self.txns[t]["start"] < confirmed]
            if not conf:
                continue
            checked += 1
            allowed = ws[conf[-1]:]
            p = actual.get(i)
            state = None if p is None else (p.get("payload") or {}).get("k")
            if not any(state == s for _, s in allowed):
                bad.append((i, state, ws[conf[-1]], allowed[1:4]))
        check(not bad, "%s: %d rows do not reflect a confirmed transaction (slot confirmed %s); "
              "(id, state in Qdrant, last confirmed write (txn, k|None=deleted), later writes): %s"
              % (what, len(bad), common.lsn_text(confirmed), bad[:8]))
        return checked

    def confirmed_txns(self, confirmed):
        return sum(1 for t in self.txns.values() if t["start"] < confirmed)


def commit_records(pg, start):
    """{xid: (start_lsn, end_lsn)} of the COMMIT records from start to the flushed WAL end."""
    rows = pg.query_json(
        "SELECT json_agg(json_build_array(xid::text::bigint, start_lsn::text, end_lsn::text))"
        " FROM pg_get_wal_records_info('%s', pg_current_wal_flush_lsn())"
        " WHERE resource_manager = 'Transaction' AND record_type = 'COMMIT'" % common.lsn_text(start), db=DB) or []
    return {x: (common.lsn_int(s), common.lsn_int(e)) for x, s, e in rows}


# --- scenarios ------------------------------------------------------------------------------

def scenario_idle_slot(ctx):
    """A busy unpublished table, idle published ones: the keepalive position is confirmed."""
    stop = threading.Event()
    writes = [0]

    def busy():
        while not stop.is_set():
            ctx.sql("INSERT INTO busy (x) SELECT repeat('x', 200) FROM generate_series(1, 20)")
            writes[0] += 1

    t = threading.Thread(target=busy, daemon=True)
    t.start()
    try:
        time.sleep(1.0)  # the loop runs
        wal = common.lsn_int(ctx.sql("SELECT pg_current_wal_lsn()").strip())
        t0 = time.monotonic()
        while ctx.confirmed() < wal:
            check(time.monotonic() - t0 < 10 * STATUS_INTERVAL, "confirmed_flush_lsn %s did not reach the WAL end "
                  "%s sampled at the start within 10 status intervals"
                  % (common.lsn_text(ctx.confirmed()), common.lsn_text(wal)))
            time.sleep(0.05)
        took = time.monotonic() - t0
        check(took <= 2 * STATUS_INTERVAL, "confirmed_flush_lsn reached the WAL end %s only after %.2fs, more than "
              "two status intervals (%.0fs)" % (common.lsn_text(wal), took, 2 * STATUS_INTERVAL))
        # it keeps up while the writes go on
        wal2 = common.lsn_int(ctx.sql("SELECT pg_current_wal_lsn()").strip())
        common.wait_until(lambda: ctx.confirmed() >= wal2, 4 * STATUS_INTERVAL,
                          "confirmed_flush_lsn stopped following the busy table's WAL")
    finally:
        stop.set()
        t.join(30)
    ctx.figures["idle slot: seconds to confirm the WAL end"] = round(took, 2)
    log("    WAL end %s confirmed after %.2fs (%d busy transactions)" % (common.lsn_text(wal), took, writes[0]))

    # A keepalive that arrives while a published transaction is still unacknowledged (Qdrant
    # slow), followed by silence: pg2qdrant reports that keepalive's position as written, so
    # the walsender sends no other; it must be confirmed once Qdrant has acknowledged.
    delay_ms = 600
    for attempt in range(3):
        ctx.q.slow_writes(delay_ms, count=1)
        ctx.backlog.write(1)
        ctx.sql("INSERT INTO busy (x) VALUES ('after the published one')")
        wal = common.lsn_int(ctx.sql("SELECT pg_current_wal_lsn()").strip())
        t0 = time.monotonic()
        while ctx.confirmed() < wal and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        took2 = time.monotonic() - t0
        if took2 <= delay_ms / 1000.0 + 2 * STATUS_INTERVAL:
            break
    check(took2 <= delay_ms / 1000.0 + 2 * STATUS_INTERVAL,
          "after a keepalive seen while a transaction was in flight, the WAL end %s was not confirmed within two "
          "status intervals of Qdrant's answer (slot at %s after %.1fs; the walsender sends no new keepalive "
          "until wal_sender_timeout/2)" % (common.lsn_text(wal), common.lsn_text(ctx.confirmed()), took2))
    log("    keepalive seen while a transaction was in flight: WAL end confirmed %.2fs after the commit "
        "(Qdrant delayed %d ms)" % (took2, delay_ms))
    ctx.figures["idle slot: seconds to confirm a keepalive seen while in flight"] = round(took2, 2)
    ctx.converge("idle slot")


def scenario_crash_safety(ctx):
    """SIGKILL at random moments while catching up a backlog; the confirmed prefix is in Qdrant."""
    b = ctx.backlog
    ctx.sync.stop()
    g.wait_slot_inactive(ctx.pg, DB, SLOT)
    numbers = b.write(ctx.args.backlog)
    log("    backlog of %d transactions written (commit positions %s .. %s)"
        % (len(numbers), common.lsn_text(b.txns[numbers[0]]["start"]),
           common.lsn_text(b.txns[numbers[-1]]["end"])))
    # slow enough that the kills land mid-stream with every lane (parallel_requests = 4) busy
    delay_ms = 240
    ctx.sync.env = {"PG2QDRANT_SYNC_BATCH_POINTS": "32"}  # more batch boundaries to kill between
    last = ctx.confirmed()
    mid_stream = checked_total = 0
    for k in range(ctx.args.kills):
        ctx.q.slow_writes(delay_ms)  # slow Qdrant: the kills land mid-stream
        ctx.sync.start()
        time.sleep(ctx.rng.uniform(0.3, 2.0))
        ctx.sync.kill9()
        g.wait_slot_inactive(ctx.pg, DB, SLOT)
        confirmed = ctx.confirmed()
        check(confirmed >= last, "kill %d: confirmed_flush_lsn went back from %s to %s"
              % (k + 1, common.lsn_text(last), common.lsn_text(confirmed)))
        ctx.q.slow_writes(0)
        time.sleep(2 * delay_ms / 1000.0)  # a request of the dead process still in the server lands first
        actual = common.scroll(ctx.q, ITEMS.spec.collection)
        check(actual is not None, "scroll failed")
        checked_total += b.check_confirmed_prefix(confirmed, actual, "kill %d" % (k + 1))
        done = b.confirmed_txns(confirmed)
        mid_stream += 0 < done - b.confirmed_txns(last) or done < len(b.txns)
        log("    kill %2d: slot at %s, %d/%d transactions confirmed, all of them in Qdrant"
            % (k + 1, common.lsn_text(confirmed), done, len(b.txns)))
        last = confirmed
    check(b.confirmed_txns(last) < len(b.txns) or ctx.args.kills < 3,
          "the backlog was caught up before the last kill: the kills did not land mid-stream")
    ctx.sync.env = {}
    ctx.sync.start()
    g.wait_slot_active(ctx.pg, DB, SLOT, ctx.sync)
    ctx.converge("crash safety")
    ctx.figures["crash safety: kills"] = ctx.args.kills
    ctx.figures["crash safety: row checks"] = checked_total


def hold_outage(ctx, first_start, seconds=12):
    """For `seconds` of an outage: pg2qdrant stays up and the slot stays at or before first_start,
    the commit of the first transaction Qdrant never took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        check(ctx.sync.alive(), "pg2qdrant exited during the outage with %s:\n%s"
              % (ctx.sync.returncode(), ctx.sync.log_tail()))
        c = ctx.confirmed()
        check(c <= first_start, "during the outage the slot confirmed %s, past the commit of the first "
              "transaction Qdrant never took (%s)" % (common.lsn_text(c), common.lsn_text(first_start)))
        time.sleep(0.3)


def scenario_qdrant_outage(ctx):
    """Every write fails for a while: nothing confirmed past what Qdrant took; no exit; converges."""
    b = ctx.backlog
    ctx.converge("before the outage")
    before = ctx.confirmed()
    if ctx.q.real:
        return qdrant_outage_real(ctx, before)
    mark = ctx.log_mark()
    ctx.q.fault(fail_next=1000000, status=503, error="Service internal error: injected outage")
    numbers = b.write(30)
    first_start = min(b.txns[t]["start"] for t in numbers)
    common.wait_until(lambda: any(r.get("status") == 503 for r in ctx.requests_since(mark)), 30,
                      "pg2qdrant never met the outage")
    hold_outage(ctx, first_start)
    applied = [r for r in ctx.requests_since(mark) if r.get("status") == 200 and r["path"].endswith("/points/batch")]
    check(not applied, "a write was acknowledged during the outage: %s" % applied[:1])
    failed = sum(1 for r in ctx.requests_since(mark) if r.get("status") == 503)
    log("    12 s outage: %d writes failed, slot stayed at %s (<= %s, the first unacknowledged commit), "
        "process up" % (failed, common.lsn_text(ctx.confirmed()), common.lsn_text(first_start)))
    check(ctx.confirmed() >= before, "the confirmed position went back during the outage")
    ctx.q.fault(fail_next=0)
    took = ctx.converge("after the outage")
    ctx.figures["qdrant outage: seconds to converge after recovery"] = round(took, 1)
    log("    converged %.1fs after the fault was cleared (backoff is capped at 30 s)" % took)


def scenario_pg_restarts(ctx):
    """PostgreSQL stopped -m fast and -m immediate in mid-stream."""
    b = ctx.backlog
    for mode in ("fast", "immediate"):
        ctx.q.slow_writes(30)
        b.write(300)
        time.sleep(ctx.rng.uniform(0.5, 1.5))
        runs = ctx.sync.log_text().count("streaming started")
        g.pg_restart(ctx.pg, mode, down_seconds=1.0)
        b.write(50)  # more changes after the restart
        ctx.q.slow_writes(0)
        took = ctx.converge("PostgreSQL restart -m %s" % mode)
        check(ctx.sync.log_text().count("streaming started") > runs,
              "pg2qdrant did not reconnect after the -m %s restart (no new 'streaming started')" % mode)
        ctx.figures["pg restart -m %s: seconds to converge" % mode] = round(took, 1)
        log("    -m %s: reconnected and converged in %.1fs" % (mode, took))


def scenario_slot_held(ctx):
    """pg_recvlogical holds the slot: pg2qdrant retries with backoff and takes over after."""
    ctx.sync.stop()
    g.wait_slot_inactive(ctx.pg, DB, SLOT)
    argv = [os.path.join(PG_BIN, "pg_recvlogical"), "-d", ctx.pg.dsn(DB), "--slot", SLOT, "--start", "-f",
            "/dev/null", "-o", "proto_version=1", "-o", "publication_names=" + PUBLICATION, "--no-loop"]
    holder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def held():
            if holder.poll() is not None:
                raise TestFailure("pg_recvlogical exited with %s: %s" % (holder.returncode, holder.stderr.read()))
            row = g.slot_row(ctx.pg, DB, SLOT)
            return row and row["active"]
        common.wait_until(held, 30, "pg_recvlogical did not take the slot")
        holder_pid = g.slot_row(ctx.pg, DB, SLOT)["active_pid"]
        ctx.sync.start()
        time.sleep(8)
        check(ctx.sync.alive(), "pg2qdrant exited (%s) while the slot was held by another process:\n%s"
              % (ctx.sync.returncode(), ctx.sync.log_tail()))
        text = ctx.sync.log_text()
        check("active for PID" in text or "is active" in text, "no 'slot is active' error in the log:\n%s"
              % ctx.sync.log_tail())
        waits = [int(m) for m in re.findall(r'msg="reconnecting" in_ms=(\d+)', text)]
        check(len(waits) >= 2, "fewer than two retries within 8 s while the slot was held: %s" % waits)
        check(max(waits[-2:]) > min(waits[:2]) or len(waits) >= 3 and waits[2] > waits[0],
              "the retry delays do not grow (no backoff): %s" % waits)
        check(g.slot_row(ctx.pg, DB, SLOT)["active_pid"] == holder_pid, "the slot changed hands while held")
    finally:
        common.stop_process(holder, 15)
    t0 = time.monotonic()
    ctx.backlog.write(20)
    g.wait_slot_active(ctx.pg, DB, SLOT, ctx.sync, timeout=60)
    took = time.monotonic() - t0
    ctx.converge("slot released")
    ctx.figures["slot held: retries while held"] = len(waits)
    ctx.figures["slot held: seconds to take over after release"] = round(took, 1)
    log("    retries while held: %d (delays %s ms); took the slot over %.1fs after its release"
        % (len(waits), waits, took))


def scenario_graceful_stop(ctx):
    """SIGTERM during a stream: exit 0 within shutdown_timeout; replay starts at the confirmed position.

    Twice: Qdrant slowed a little (the queue drains before the deadline) and a lot (the
    deadline passes with operations unsent; they come again after the restart)."""
    b = ctx.backlog
    # "deadline": every request takes longer than shutdown_timeout (and [qdrant] timeout)
    for what, delay_ms, n, queued in (("drained", 400, 800, 1), ("deadline", 12000, 300, 1)):
        ctx.q.slow_writes(delay_ms)
        b.write(n)
        # SIGTERM once the sink holds work
        common.wait_until(lambda: ((ctx.status() or {}).get("inflight_bytes") or 0) >= queued, 60,
                          "%s: the sink never queued %d bytes" % (what, queued), interval=0.05)
        check(b.confirmed_txns(ctx.confirmed()) < len(b.txns), "%s: the backlog was already caught up before the "
              "SIGTERM" % what)
        rc, took = ctx.sync.terminate(SHUTDOWN_TIMEOUT + 10)
        check(rc == 0, "%s: exit code %s after SIGTERM (want 0); log tail:\n%s" % (what, rc, ctx.sync.log_tail()))
        check(took <= SHUTDOWN_TIMEOUT + 1.5, "%s: SIGTERM took %.1fs, beyond shutdown_timeout (%ss)"
              % (what, took, SHUTDOWN_TIMEOUT))
        g.wait_slot_inactive(ctx.pg, DB, SLOT)
        confirmed = ctx.confirmed()
        ctx.q.slow_writes(0)
        time.sleep(delay_ms / 1000.0 + 1)  # a request still sleeping in the server lands first
        actual = common.scroll(ctx.q, ITEMS.spec.collection)
        b.check_confirmed_prefix(confirmed, actual, "after SIGTERM (%s)" % what)
        unsent = "shutdown_timeout passed" in ctx.sync.log_text()
        mark = ctx.log_mark()
        ctx.sync.start()
        ctx.converge("graceful stop (%s)" % what)
        # the operations sent after the restart: none of a transaction before the confirmed position
        replayed, first_txn = [], None
        for r in ctx.requests_since(mark):
            if r["method"] != "POST" or r["path"] != "/collections/items/points/batch" or r.get("status") != 200:
                continue
            for op in json.loads(r["body"])["operations"]:
                for p in op.get("upsert", {}).get("points", []):
                    t = (p.get("payload") or {}).get("k")
                    if t in b.txns:
                        first_txn = t if first_txn is None else min(first_txn, t)
                        if b.txns[t]["start"] < confirmed:
                            replayed.append(t)
        check(not replayed, "%s: after a clean stop at %s, operations of already confirmed transactions were sent "
              "again: %s" % (what, common.lsn_text(confirmed), sorted(set(replayed))[:10]))
        check(what != "deadline" or unsent, "deadline: shutdown_timeout did not pass; slow Qdrant down more")
        ctx.figures["graceful stop (%s): seconds to exit" % what] = round(took, 2)
        log("    %s: exit 0 after %.2fs, slot at %s (%d/%d confirmed)%s; the restart resent from txn %s on, "
            "none before" % (what, took, common.lsn_text(confirmed), b.confirmed_txns(confirmed), len(b.txns),
                             ", operations left unsent" if unsent else "", first_txn))


def sanitized(binary):
    """Whether binary was built with AddressSanitizer (its runtime is linked in)."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def qdrant_outage_real(ctx, before):
    """The outage against a real Qdrant: killed (kill -9) for 12 s, then restarted from its WAL."""
    if ctx.q.proc is None:
        log("    (skipped: a Qdrant outage needs P2Q_QDRANT_BIN)")
        return
    ctx.q.kill9()
    numbers = ctx.backlog.write(30)
    first_start = min(ctx.backlog.txns[t]["start"] for t in numbers)
    hold_outage(ctx, first_start)
    check(ctx.confirmed() >= before, "the confirmed position went back during the outage")
    ctx.q.restart()
    took = ctx.converge("after the outage")
    ctx.figures["qdrant outage: seconds to converge after recovery"] = round(took, 1)
    log("    12 s outage (Qdrant killed), slot stayed <= %s; converged %.1fs after the restart"
        % (common.lsn_text(first_start), took))


def scenario_bounded_memory(ctx):
    """One big transaction drains with peak RSS under max_inflight + 32 MB."""
    n = ctx.args.big_rows
    max_inflight = ctx.args.max_inflight_mb << 20
    ctx.sync.stop()
    ctx.sync.start()  # a fresh process: VmHWM counts this transaction only
    g.wait_slot_active(ctx.pg, DB, SLOT, ctx.sync)
    base = ctx.sync.vm_hwm_kb()
    ctx.q.slow_writes(ctx.args.big_delay_ms)
    t0 = time.monotonic()
    ctx.sql("INSERT INTO big SELECT g, ARRAY(SELECT ((g * 31 + j * 17) %% 1000)::real / 997 - 0.5"
            " FROM generate_series(1, %d) j) FROM generate_series(1, %d) g" % (BIG_DIM, n))
    target = g.wal_insert_lsn(ctx.pg, DB)
    peak_q = 0
    paused = 0
    while ctx.confirmed() < target:
        check(ctx.sync.alive(), "pg2qdrant exited: %s\n%s" % (ctx.sync.returncode(), ctx.sync.log_tail()))
        check(time.monotonic() - t0 < 600, "the big transaction did not drain within 600 s")
        st = ctx.status()
        if st:
            q = st.get("inflight_bytes") or 0
            peak_q = max(peak_q, q)
            paused += q >= max_inflight
        time.sleep(0.2)
    drained = time.monotonic() - t0
    hwm = ctx.sync.vm_hwm_kb()
    ctx.q.slow_writes(0)
    json_bytes = 0
    with open(ctx.q.request_log or os.devnull, "rb") as f:  # streamed: the log holds every body
        for raw in f:
            if b'"path":"/collections/big/points/batch"' in raw[:200] and raw.endswith(b"\n"):
                r = json.loads(raw)
                json_bytes += len(r["body"]) if r.get("status") == 200 else 0
    limit_kb = (max_inflight >> 10) + 32 * 1024
    log("    %d rows x %d dims: drained in %.1fs; peak RSS %.1f MB (at start %.1f MB), limit %.0f MB; "
        "queue peak %.1f MB (max_inflight %d MB, full in %d samples); %.0f MB of batch bodies sent"
        % (n, BIG_DIM, drained, hwm / 1024, base / 1024, limit_kb / 1024, peak_q / 2 ** 20, ctx.args.max_inflight_mb,
           paused, json_bytes / 1e6))
    if sanitized(ctx.args.pg2qdrant):
        # ASan's shadow memory and quarantine keep freed memory resident: the RSS bound is
        # checked by the regular build; here the queue bound below still holds.
        log("    (AddressSanitizer build: peak RSS reported, not checked)")
    else:
        check(hwm <= limit_kb, "peak RSS %d kB exceeds max_inflight + 32 MB = %d kB" % (hwm, limit_kb))
    check(peak_q <= max_inflight + (1 << 20), "the queue grew to %d bytes, beyond max_inflight + 1 MB" % peak_q)
    # With Qdrant slowed down, reading pauses as soon as a full batch waits behind the requests in
    # flight (sink_full): the queue stays at the batches in flight (parallel_requests, their bodies
    # started while under batch_bytes) plus one (batch_bytes = 1MB, 256 operations of
    # ~0.8 kB here), far below max_inflight, although the transaction's bodies are much larger.
    # (Against a real Qdrant there is no request log to add the bodies up.)
    check(json_bytes > 2 * max_inflight or ctx.args.big_delay_ms == 0 or not ctx.q.request_log,
          "the transaction's bodies (%d bytes) are too small to show the bound" % json_bytes)
    check(peak_q <= 2 * (1 << 20), "the queue grew to %d bytes: reading did not pause while a full batch waited"
          % peak_q)
    ctx.figures["bounded memory: rows"] = n
    ctx.figures["bounded memory: peak RSS MB"] = round(hwm / 1024, 1)
    ctx.figures["bounded memory: queue peak MB"] = round(peak_q / 2 ** 20, 2)
    ctx.figures["bounded memory: MB sent"] = round(json_bytes / 1e6, 1)
    ctx.figures["bounded memory: seconds to drain"] = round(drained, 1)
    if ctx.args.big_verify == "full":
        ctx.converge("bounded memory", timeout=300)
    else:  # the benchmark's million rows: the count and a sample through the oracle
        verify_big_sample(ctx, n)
    ctx.sql("TRUNCATE big")  # later comparisons stay cheap
    ctx.converge("bounded memory: truncate")


def scenario_empty_txns(ctx):
    """Transactions without operations for us cost no memory while one with operations waits."""
    n = ctx.args.empty_txns
    ctx.sql("CREATE TABLE IF NOT EXISTS unconf (id int PRIMARY KEY, x bigint);"
            "INSERT INTO unconf VALUES (1, 0) ON CONFLICT DO NOTHING;"
            "CREATE OR REPLACE PROCEDURE bump(n int) LANGUAGE plpgsql AS $$ BEGIN"
            " FOR i IN 1..n LOOP UPDATE unconf SET x = x + 1 WHERE id = 1; COMMIT; END LOOP; END $$")
    if not ctx.pg.query_json("SELECT json_agg(1) FROM pg_publication_tables WHERE pubname = '%s' AND tablename = "
                             "'unconf'" % PUBLICATION, db=DB):
        ctx.sql("ALTER PUBLICATION %s ADD TABLE unconf" % PUBLICATION)
    ctx.converge("before the empty transactions")
    if ctx.q.real:  # the outage from outside: every connection refused
        ctx.q.proxy.mode("refuse")
        ctx.backlog.write(1)  # a configured change, in flight until Qdrant is back
        common.wait_until(lambda: (ctx.status() or {}).get("state") == "retrying", 30, "pg2qdrant never met the outage")
    else:
        mark = ctx.log_mark()
        ctx.q.fault(fail_next=1000000, status=503, error="Service internal error: injected outage")
        ctx.backlog.write(1)  # a configured change, in flight until Qdrant is back
        common.wait_until(lambda: any(r.get("status") == 503 for r in ctx.requests_since(mark)), 30,
                          "pg2qdrant never met the outage")
    time.sleep(2 * STATUS_INTERVAL)
    rss0 = ctx.sync.vm_rss_kb()
    t0 = time.monotonic()
    ctx.sql("SET synchronous_commit = off; CALL bump(%d)" % n)
    target = g.wal_insert_lsn(ctx.pg, DB)
    made = time.monotonic() - t0

    def received():
        st = ctx.status() or {}
        return common.lsn_int(st.get("received_lsn") or "0/0") >= target
    common.wait_until(received, 300, "pg2qdrant did not receive the %d transactions" % n)
    time.sleep(2 * STATUS_INTERVAL)
    st = ctx.status() or {}
    rss1 = ctx.sync.vm_rss_kb()
    check(ctx.sync.alive(), "pg2qdrant exited: %s\n%s" % (ctx.sync.returncode(), ctx.sync.log_tail()))
    log("    %d empty-for-us transactions in %.1fs with Qdrant down: VmRSS %.1f -> %.1f MB (%+d kB), "
        "inflight_txns %s" % (n, made, rss0 / 1024, rss1 / 1024, rss1 - rss0, st.get("inflight_txns")))
    check(st.get("inflight_txns") == 1, "/status inflight_txns is %s, want 1 (the configured change only)"
          % st.get("inflight_txns"))
    if sanitized(ctx.args.pg2qdrant):
        log("    (AddressSanitizer build: RSS growth reported, not checked)")
    else:
        check(rss1 - rss0 < 2048, "VmRSS grew by %d kB over %d transactions without operations (bound 2 MB)"
              % (rss1 - rss0, n))
    ctx.figures["empty txns: count"] = n
    ctx.figures["empty txns: VmRSS growth kB"] = rss1 - rss0
    if ctx.q.real:
        ctx.q.proxy.mode("pass")
    else:
        ctx.q.fault(fail_next=0)
    ctx.converge("after the empty transactions")
    check(ctx.confirmed() >= target, "the slot (%s) did not pass the last empty transaction (%s)"
          % (common.lsn_text(ctx.confirmed()), common.lsn_text(target)))


def verify_big_sample(ctx, n, k=2000):
    status, resp = ctx.q.request("POST", "/collections/big/points/count", {"exact": True})
    check(status == 200 and resp["result"]["count"] == n, "collection big has %s points, want %d" % (resp, n))
    ids = sorted(ctx.rng.sample(range(1, n + 1), min(k, n)))
    quoted = ['"%s"' % c.name for c in BIG.columns]
    cols = ", ".join("CASE WHEN %s IS NULL THEN NULL ELSE format('%%s', %s) END" % (q, q) for q in quoted)
    rows = ctx.pg.query_json("SELECT json_agg(json_build_array(%s)) FROM big WHERE id IN (%s)"
                             % (cols, ",".join(map(str, ids))), db=DB)
    exp = oracle.expected_points(BIG.spec, BIG.columns, rows)
    status, resp = ctx.q.request("POST", "/collections/big/points",
                                 {"ids": ids, "with_payload": True, "with_vector": True})
    check(status == 200, "retrieve: %s %s" % (status, str(resp)[:300]))
    act = {oracle.normalize_id(p["id"]): {"vector": p.get("vector"), "payload": p.get("payload")}
           for p in resp["result"]}
    missing, extra, differing = oracle.diff_points(exp, act)
    check(not (missing or extra or differing), "big: a sample of %d points differs: %d missing, %d differing %s"
          % (len(ids), len(missing), len(differing), differing[:2]))
    log("    %d points in the collection; a sample of %d equals its rows" % (n, len(ids)))


def scenario_invalidated_slot(ctx):
    """max_slot_wal_keep_size exceeded while stopped: exit 1 with the remedy."""
    ctx.sync.stop()
    g.wait_slot_inactive(ctx.pg, DB, SLOT)
    ctx.sql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'; ALTER SYSTEM SET wal_keep_size = 0;"
            " SELECT pg_reload_conf()")
    try:
        status = None
        for _ in range(6):
            ctx.sql("INSERT INTO busy (x) SELECT repeat('y', 500) FROM generate_series(1, 3000);"
                    " SELECT pg_switch_wal(); CHECKPOINT")
            status = g.slot_row(ctx.pg, DB, SLOT)["wal_status"]
            if status == "lost":
                break
        check(status == "lost", "could not invalidate the slot (wal_status %s)" % status)
        ctx.sync.start()
        try:
            rc = ctx.sync.proc.wait(60)
        except subprocess.TimeoutExpired:
            rc = None
        text = ctx.sync.log_text()
        check(rc == 1, "pg2qdrant with an invalidated slot: exit %s (want 1); log:\n%s" % (rc, ctx.sync.log_tail()))
        check("invalidated" in text and "Remedy" in text and "slot drop" in text,
              "the message lacks the remedy:\n%s" % ctx.sync.log_tail())
        row = g.slot_row(ctx.pg, DB, SLOT)
        check(row is not None and row["wal_status"] == "lost", "the slot was dropped or recreated: %s" % row)
        log("    wal_status = lost -> exit 1: %s" % [line for line in text.splitlines() if "invalidated" in line][0][:300])
    finally:
        ctx.sql("ALTER SYSTEM RESET max_slot_wal_keep_size; ALTER SYSTEM RESET wal_keep_size; SELECT pg_reload_conf()")


SCENARIOS = [
    ("idle slot", scenario_idle_slot),
    ("crash safety", scenario_crash_safety),
    ("qdrant outage", scenario_qdrant_outage),
    ("pg restarts", scenario_pg_restarts),
    ("slot held", scenario_slot_held),
    ("graceful stop", scenario_graceful_stop),
    ("bounded memory", scenario_bounded_memory),
    ("empty txns", scenario_empty_txns),
    ("invalidated slot", scenario_invalidated_slot),
]


# --- setup -------------------------------------------------------------------------------------

def setup(ctx):
    pg, q = ctx.pg, ctx.q
    pg.psql("CREATE DATABASE %s" % DB)
    ctx.sql("CREATE EXTENSION pg_walinspect; CREATE TABLE busy (id serial PRIMARY KEY, x text);"
            + ";\n".join(t.ddl for t in TABLES) + ";\n"
            "CREATE PUBLICATION %s FOR TABLE %s" % (PUBLICATION, ", ".join(t.spec.name for t in TABLES)))
    for t in TABLES:
        common.load_columns(pg, t)
    common.create_collections(q, TABLES)
    lines = [
        "[source]", "dsn = " + pg.dsn(DB), "slot = " + SLOT, "publication = " + PUBLICATION,
        "create_slot = true", "create_publication = false", "status_interval = %ds" % STATUS_INTERVAL,
        "", "[qdrant]", "url = " + q.url, "api_key = " + common.API_KEY, "timeout = 10s",
        "create_collections = false",
        "", "[sync]", "snapshot = never", "batch_points = 256", "batch_bytes = 1MB", "flush_interval = 50ms",
        "max_inflight = %dMB" % ctx.args.max_inflight_mb, "on_error = stop", "shutdown_timeout = %ds" % SHUTDOWN_TIMEOUT,
        "", "[http]", "listen = 127.0.0.1:%d" % ctx.http_port,
    ]
    path = common.write_config_file(os.path.join(ctx.args.workdir, "pg2qdrant.ini"), lines, TABLES)
    ctx.sync = common.Sync(ctx.args.pg2qdrant, path, ctx.args.workdir, ctx.args.log_level)
    ctx.backlog = Backlog(ctx)
    ctx.sync.start()
    g.wait_slot_active(pg, DB, SLOT, ctx.sync)
    ctx.backlog.write(50)
    ctx.converge("setup")


def sample_request_log(q, keep=20):
    """The bounded-memory batches are hundreds of equal-shaped 256-point bodies: keep the first
    `keep` of them for the OpenAPI check (which takes about a second per ten), everything else whole."""
    path, seen = q.request_log, 0
    if path is None:
        return
    with open(path, "rb") as src, open(path + ".sampled", "wb") as dst:
        for raw in src:
            if b'"path":"/collections/big/points/batch"' in raw[:200]:
                seen += 1
                if seen > keep:
                    continue
            dst.write(raw)
    os.replace(path + ".sampled", path)


def run(args):
    if os.path.isdir(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    only = set(args.only.split(",")) if args.only else None
    t_start = time.monotonic()
    log("guarantees: PostgreSQL 15 + %s in %s (seed %s)"
        % ("a real Qdrant" if real_qdrant_wanted() else "Qdrant test server", args.workdir, args.seed))
    with Postgres(args.workdir) as pg, QdrantServer(args.qdrant_server, args.workdir, api_key=common.API_KEY) as q:
        ctx = Ctx(args, pg, q)
        try:
            setup(ctx)
            done = 0
            for i, (name, fn) in enumerate(SCENARIOS, 1):
                if only and name not in only:
                    continue
                t0 = time.monotonic()
                log("  [%d/%d] %s" % (i, len(SCENARIOS), name))
                if not ctx.sync.alive() and name != "invalidated slot":
                    ctx.restart()
                fn(ctx)
                done += 1
                log("  [%d/%d] ok   %s (%.1fs)" % (i, len(SCENARIOS), name, time.monotonic() - t0))
        finally:
            if ctx.sync:
                ctx.sync.stop()
        q.stop()
        t0 = time.monotonic()
        sample_request_log(q)
        validated = common.validate_requests(q, args.openapi)
        log("  OpenAPI: %s (%.1fs)" % (validated, time.monotonic() - t0))
    log("guarantees: figures %s" % json.dumps(ctx.figures))
    log("guarantees: PASSED %d scenarios in %.1fs" % (done, time.monotonic() - t_start))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


def main():
    p = common.argument_parser(__doc__.splitlines()[0])
    p.add_argument("--log-level", default="info")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--only", help="comma-separated scenario names")
    p.add_argument("--kills", type=int, default=10, help="SIGKILLs in the crash-safety scenario")
    p.add_argument("--backlog", type=int, default=3000, help="transactions of the crash-safety backlog")
    p.add_argument("--big-rows", type=int, default=50000, help="rows of the bounded-memory transaction")
    p.add_argument("--big-delay-ms", type=int, default=40, help="delay of every Qdrant request meanwhile")
    p.add_argument("--max-inflight-mb", type=int, default=8, help="[sync] max_inflight")
    p.add_argument("--big-verify", choices=["full", "sample"], default="full",
                   help="compare all of the big transaction's points, or their count and a sample")
    p.add_argument("--empty-txns", type=int, default=200000, help="transactions of the empty-txns scenario")
    p.add_argument("--seed", type=int, default=4)
    return common.run_main("guarantees", p, run)


if __name__ == "__main__":
    sys.exit(main())
