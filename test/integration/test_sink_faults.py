#!/usr/bin/env python3
"""Integration tests of the Qdrant sink under faults (issue 3, "a Qdrant sink that loses nothing").

A throwaway PostgreSQL 15 + the Qdrant test server (fault injection, request log) + `pg2qdrant
run`.  Every scenario ends with the collections equal to their tables (the oracle of
expected.py) and the slot past the last commit, and checks that the slot never confirmed a
position past a change Qdrant had not acknowledged:

  * the ack-bound monitor (class AckMonitor) samples pg_replication_slots.confirmed_flush_lsn
    in a thread while a stream of small transactions is written; each transaction's points
    carry its sequence number in the payload, so the test server's request log tells which
    transactions Qdrant had acknowledged (answered 200) when the sample was taken.  Each
    sample must stay at or before the pre-COMMIT WAL position of the first transaction not
    yet fully acknowledged.  A sample is taken before the log is read, so the check has no
    race in pg2qdrant's favour.
  * scenarios with a known outage also check directly: while every write fails, the slot stays
    at or before the WAL position taken before the outage's first transaction.

Scenarios: 503 bursts during a stream and a sustained outage; 429 with Retry-After (timed
from the request log); dropped connections; responses slower than [qdrant] timeout; a
wrong-dimension row inside a batch (on_error = dead_letter, then on_error = stop); partial
updates of TOASTed 1536-dim rows (vectors stay bit-exact; a 404 for a point deleted behind the
sync's back reads the row back); a half-applied batch replayed; and the batching settings,
whose figures (requests and request-body bytes per 10,000 changes) are printed.  At the end
every logged request body is validated against Qdrant's OpenAPI document.

    test_sink_faults.py --pg2qdrant BIN --qdrant-server BIN --openapi PATH --workdir DIR
                        [--keep] [--log-level debug] [--only NAME[,NAME...]]

Python 3 standard library only (openapi_check.py needs python3-jsonschema).
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, HERE)

import expected as oracle  # noqa: E402
import p2q_common as common  # noqa: E402
import run_integration as it  # noqa: E402  (shared: Context, start_sync, format_diffs, OpenAPI validation)
from harness import Postgres, QdrantServer  # noqa: E402

DB = it.DB
SLOT = it.SLOT
PUBLICATION = it.PUBLICATION
API_KEY = it.API_KEY
CONVERGE_TIMEOUT = it.CONVERGE_TIMEOUT
TOAST_DIM = 1536
BATCH_CHANGES = 10000

check = common.check
log = common.log
TestFailure = common.TestFailure
lsn_int = common.lsn_int
lsn_text = common.lsn_text


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


# --- tables --------------------------------------------------------------------------------

def dense(size):
    return {"size": size, "distance": "Dot"}


TABLES = {
    "stream": common.Table(oracle.TableSpec("public.t_stream", "c_stream", ["id"], {"": "embedding"}),
                           "CREATE TABLE t_stream (id int PRIMARY KEY, seq int, embedding real[], note text)",
                           {"vectors": dense(4)},
                           ["collection = c_stream", "id = id", "vector = embedding", "payload = *"]),
    "toast": common.Table(oracle.TableSpec("public.t_toast", "c_toast", ["id"], {"": "embedding"}),
                          """CREATE TABLE t_toast (id int PRIMARY KEY, embedding real[], note text, n int);
                             ALTER TABLE t_toast ALTER COLUMN embedding SET STORAGE EXTERNAL""",
                          {"vectors": dense(TOAST_DIM)},
                          ["collection = c_toast", "id = id", "vector = embedding", "payload = *"]),
    "batch": common.Table(oracle.TableSpec("public.t_batch", "c_batch", ["id"], {"": "embedding"}),
                          "CREATE TABLE t_batch (id int PRIMARY KEY, embedding real[], note text, n int)",
                          {"vectors": dense(8)},
                          ["collection = c_batch", "id = id", "vector = embedding", "payload = *"]),
}


# --- pg2qdrant with JSON logs and per-run environment overrides ------------------------------

class Sync(common.Sync):
    """Started with log_format="json" (see run): the log's lines are JSON events."""

    def events(self):
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


# --- the request log ---------------------------------------------------------------------------

def log_size(ctx):
    return os.path.getsize(ctx.q.request_log)


def read_requests(ctx, mark=0, end=None):
    """[(end offset, record)] of the complete lines of the request log in [mark, end)."""
    out = []
    with open(ctx.q.request_log, "rb") as f:
        f.seek(mark)
        data = f.read() if end is None else f.read(max(0, end - mark))
    pos = mark
    for raw in data.splitlines(True):
        pos += len(raw)
        if not raw.endswith(b"\n"):
            break
        out.append((pos, json.loads(raw)))
    return out


def batch_requests(records, collection):
    """The /points/batch requests to collection among records (dicts): [(record, body or None)]."""
    out = []
    path = "/collections/%s/points/batch" % collection
    for r in records:
        if r["method"] == "POST" and r["path"] == path:
            try:
                body = json.loads(r["body"])
            except ValueError:
                body = None
            out.append((r, body))
    return out


def op_points(op):
    """(kind, [(point id, payload or None)]) of one UpdateOperation."""
    kind, v = next(iter(op.items()))
    if kind == "upsert":
        return kind, [(p["id"], p.get("payload")) for p in v.get("points", [])]
    if kind == "set_payload":
        return kind, [(pid, v.get("payload")) for pid in v.get("points", [])]
    if kind == "update_vectors":
        return kind, [(p["id"], None) for p in v.get("points", [])]
    if kind == "delete":
        return kind, [(pid, None) for pid in v.get("points", [])]
    return kind, []


class LogTailer(threading.Thread):
    """Timestamps request-log lines as they appear (the log has no time of its own); polls every 5 ms."""

    def __init__(self, ctx):
        super().__init__(daemon=True)
        self.ctx = ctx
        self.pos = log_size(ctx)
        self.seen = []  # (monotonic time first seen, record)
        self.halt = threading.Event()

    def run(self):
        buf = b""
        with open(self.ctx.q.request_log, "rb") as f:
            f.seek(self.pos)
            while not self.halt.is_set():
                chunk = f.read()
                now = time.monotonic()
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        self.seen.append((now, json.loads(line)))
                else:
                    time.sleep(0.005)

    def stop(self):
        self.halt.set()
        self.join()


# --- the ack-bound monitor ----------------------------------------------------------------------

class AckMonitor(threading.Thread):
    """Samples the slot's confirmed_flush_lsn, then the request log's size, every ~30 ms.

    Transactions of the stream are recorded with record(seq, point ids, pre-COMMIT LSN).  verify()
    replays the request log: at each sample, the transactions whose points (with payload seq) were
    all in requests answered 200 *before the sample's log size was read* form an acknowledged
    prefix 1..k; the slot must not be past transaction k+1's pre-COMMIT position, which lies before
    k+1's commit record and after the end of k's."""

    def __init__(self, ctx, collection):
        super().__init__(daemon=True)
        self.ctx = ctx
        self.collection = collection
        self.mark = log_size(ctx)
        self.txns = []      # (seq, frozenset of point ids, pre-commit lsn)
        self.samples = []   # (confirmed lsn, log size read after it)
        self.halt = threading.Event()
        self.error = None

    def record(self, seq, ids, lsn):
        self.txns.append((seq, frozenset(ids), lsn_int(lsn)))

    def run(self):
        q = "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '%s'" % SLOT
        try:
            while not self.halt.is_set():
                out = self.ctx.pg.psql(q, db=DB).strip()
                size = log_size(self.ctx)
                if out:
                    self.samples.append((lsn_int(out), size))
                time.sleep(0.03)
        except Exception as e:  # reported by verify()
            self.error = e

    def stop(self):
        self.halt.set()
        self.join()

    def verify(self, what):
        """Returns (samples, samples taken while a transaction was unacknowledged)."""
        self.stop()
        check(self.error is None, "%s: the slot monitor failed: %s" % (what, self.error))
        check(self.samples, "%s: the slot monitor took no sample" % what)
        acked = {}  # seq -> point ids acknowledged with that seq in their payload
        reqs = read_requests(self.ctx, self.mark)
        ri = 0
        by_seq = {seq: (ids, lsn) for seq, ids, lsn in self.txns}
        order = [seq for seq, _, _ in self.txns]
        k = 0  # transactions order[0..k) are acknowledged
        pending = 0
        for confirmed, size in self.samples:
            while ri < len(reqs) and reqs[ri][0] <= size:
                rec = reqs[ri][1]
                ri += 1
                if rec["status"] != 200 or rec["path"] != "/collections/%s/points/batch" % self.collection:
                    continue
                for op in json.loads(rec["body"])["operations"]:
                    _, pts = op_points(op)
                    for pid, payload in pts:
                        if payload and "seq" in payload:
                            acked.setdefault(payload["seq"], set()).add(pid)
            while k < len(order) and by_seq[order[k]][0] <= acked.get(order[k], set()):
                k += 1
            if k < len(order):
                bound = by_seq[order[k]][1]
                pending += 1
                check(confirmed <= bound,
                      "%s: the slot confirmed %s while transaction seq=%d (pre-COMMIT LSN %s) was not yet "
                      "acknowledged by Qdrant" % (what, lsn_text(confirmed), order[k], lsn_text(bound)))
        return len(self.samples), pending


# --- the test context ---------------------------------------------------------------------------------

class FaultContext(it.Context):
    def __init__(self, args, pg, q):
        super().__init__(args, pg, q)
        self.seq = 0
        self.next_id = 0

    def wal_lsn(self):
        return self.sql("SELECT pg_current_wal_insert_lsn()").strip()

    def confirmed(self):
        return lsn_int(self.sql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '%s'"
                                % SLOT).strip())

    # the stream of small transactions ----------------------------------------------------------
    def stream_txn(self, mon=None):
        """One transaction of the stream: a new row (id = seq) and a full update of the previous
        stream row; both points carry payload seq."""
        self.seq += 1
        s = self.seq
        lsn = self.commit("INSERT INTO t_stream VALUES (%d, %d, '{%d,1,0.5,-1}', 'row %d');\n"
                          "UPDATE t_stream SET seq = %d, note = 'touched by %d' WHERE id = %d"
                          % (s, s, s, s, s, s, s - 1))
        if mon:
            mon.record(s, [s, s - 1], lsn)
        return lsn


def write_config(ctx):
    lines = [
        "; written by test/integration/test_sink_faults.py",
        "[source]",
        "dsn = " + ctx.pg.dsn(DB),
        "slot = " + SLOT,
        "publication = " + PUBLICATION,
        "create_slot = true",
        "create_publication = false",
        "status_interval = 200ms",
        "",
        "[qdrant]",
        "url = " + ctx.q.url,
        "api_key = " + API_KEY,
        "timeout = 10s",
        "create_collections = false",
        "",
        "[sync]",
        "snapshot = never",
        "batch_points = 64",
        "flush_interval = 20ms",
        "on_error = stop",
        "dead_letter_file = " + os.path.join(ctx.args.workdir, "dead-letter-default.jsonl"),
        "shutdown_timeout = 10s",
        "",
        "[http]",
        "listen =",
    ]
    return common.write_config_file(os.path.join(ctx.args.workdir, "pg2qdrant.ini"), lines, TABLES.values())


def setup(ctx):
    ctx.pg.psql("CREATE DATABASE %s" % DB)
    ddl = [t.ddl for t in TABLES.values()]
    ddl.append("CREATE PUBLICATION %s FOR TABLE %s" % (PUBLICATION, ", ".join(t.spec.name for t in TABLES.values())))
    ctx.sql(";\n".join(ddl) + ";\n")
    for t in TABLES.values():
        common.load_columns(ctx.pg, t)
        status, resp = ctx.q.request("PUT", "/collections/%s" % t.spec.collection, t.collection_body)
        check(status == 200, "creating collection %s: %s %s" % (t.spec.collection, status, resp))


def restart(ctx, **env):
    """Stops pg2qdrant (SIGTERM, exit 0 required) if it runs, then starts it with the given
    PG2QDRANT_* environment overrides."""
    if ctx.sync.alive():
        rc, _ = ctx.sync.terminate(20)
        if rc is None:
            ctx.sync.kill9()
        check(rc == 0, "pg2qdrant exit code after SIGTERM is %s; log tail:\n%s" % (rc, ctx.sync.log_tail()))
    ctx.sync.env = env
    it.start_sync(ctx)


def wait_until(what, cond, timeout=CONVERGE_TIMEOUT, ctx=None):
    deadline = time.monotonic() + timeout
    while True:
        if ctx is not None:
            ctx.require_alive()
        v = cond()
        if v:
            return v
        check(time.monotonic() < deadline, "%s: not within %ss" % (what, timeout))
        time.sleep(0.05)


def count_status(ctx, mark, collection, status):
    return sum(1 for r, _ in batch_requests([r for _, r in read_requests(ctx, mark)], collection)
               if r["status"] == status)


S = TABLES["stream"]
T = TABLES["toast"]
B = TABLES["batch"]


# --- scenarios ----------------------------------------------------------------------------------

def scenario_seed(ctx):
    lsn = ctx.commit("INSERT INTO t_stream VALUES (0, 0, '{0,1,0.5,-1}', 'row 0')")
    ctx.converge("seed", lsn, [S])
    return "1 row"


def scenario_503_bursts(ctx):
    """503 bursts (fail_next = N) injected while a stream of transactions is written."""
    mark = log_size(ctx)
    mon = AckMonitor(ctx, "c_stream")
    mon.start()
    bursts = {5: 2, 15: 3, 28: 1}
    total = 0
    for i in range(32):
        if i in bursts:
            # the previous burst was met before this one replaces what is left of it
            wait_until("503 burst served", lambda: count_status(ctx, mark, "c_stream", 503) >= total, ctx=ctx)
            ctx.q.fault(fail_next=bursts[i], status=503)
            total += bursts[i]
        lsn = ctx.stream_txn(mon)
        time.sleep(0.02)
    wait_until("503 bursts served", lambda: count_status(ctx, mark, "c_stream", 503) >= total, ctx=ctx)
    n = ctx.converge("503 bursts", lsn, [S])
    samples, pending = mon.verify("503 bursts")
    served = count_status(ctx, mark, "c_stream", 503)
    check(pending > 0, "503 bursts: no sample was taken while a transaction was unacknowledged")
    return "%d points, %d answers 503, %d slot samples (%d with unacknowledged transactions)" % (
        n, served, samples, pending)


def scenario_sustained_outage(ctx):
    """Every write fails (at least 3 attempts, 1.5 s) while transactions commit: the slot stays at or
    before the WAL position taken before the first of them; after recovery it passes the last."""
    mark = log_size(ctx)
    mon = AckMonitor(ctx, "c_stream")
    mon.start()
    before = lsn_int(ctx.wal_lsn())  # everything before is acknowledged (the last step converged)
    ctx.q.fault(fail_next=100000, status=503)
    for _ in range(8):
        lsn = ctx.stream_txn(mon)
    t_end = time.monotonic() + 1.5
    polls = 0
    while time.monotonic() < t_end or count_status(ctx, mark, "c_stream", 503) < 3:
        ctx.require_alive()
        check(time.monotonic() < t_end + CONVERGE_TIMEOUT, "outage: pg2qdrant did not retry 3 times")
        c = ctx.confirmed()
        polls += 1
        check(c <= before, "outage: the slot confirmed %s, past %s (before the first unacknowledged "
              "transaction) while Qdrant failed every write" % (lsn_text(c), lsn_text(before)))
        time.sleep(0.05)
    check(count_status(ctx, mark, "c_stream", 200) == 0, "outage: a write succeeded during the outage")
    ctx.q.fault(fail_next=0)
    n = ctx.converge("outage", lsn, [S])
    samples, pending = mon.verify("outage")
    return "%d points, %d failed attempts, slot <= %s in %d polls, passed the last commit after recovery" % (
        n, count_status(ctx, mark, "c_stream", 503), lsn_text(before), polls)


def scenario_429_retry_after(ctx):
    """Two 429s with Retry-After: 2; the retries wait at least 2 s each (request-log timestamps; the
    backoff alone would retry after 0.25-0.5 s and 0.5-1 s)."""
    tail = LogTailer(ctx)
    tail.start()
    mon = AckMonitor(ctx, "c_stream")
    mon.start()
    ctx.q.fault(fail_next=2, status=429, retry_after=2)
    lsn = ctx.stream_txn(mon)
    n = ctx.converge("429", lsn, [S])
    samples, pending = mon.verify("429")
    tail.stop()
    writes = [(t, r) for t, r in tail.seen if r["path"] == "/collections/c_stream/points/batch"]
    statuses = [r["status"] for _, r in writes]
    check(statuses[:3] == [429, 429, 200], "429: writes answered %s, want 429, 429, 200" % statuses)
    # from the 429 answer to the next request's arrival, by the server's clock (the tailer reads the
    # log late on a loaded machine: it once saw a retry 2 s late and the next line at once)
    gaps = [writes[i + 1][1]["t_in"] - writes[i][1]["t_out"] for i in range(2)]
    # Slack for scheduling on a loaded machine.
    check(all(g >= 1.95 for g in gaps), "429: retried %s s after a Retry-After: 2 answer" %
          ", ".join("%.3f" % g for g in gaps))
    check(writes[0][1]["body"] == writes[1][1]["body"] == writes[2][1]["body"],
          "429: the retried request is not the same request")
    return "%d points, retries after %s s" % (n, ", ".join("%.2f" % g for g in gaps))


def scenario_dropped_connections(ctx):
    """Connections closed without an answer (drop_next) during a stream."""
    mark = log_size(ctx)
    mon = AckMonitor(ctx, "c_stream")
    mon.start()
    ctx.q.fault(drop_next=3)
    for _ in range(15):
        lsn = ctx.stream_txn(mon)
    n = ctx.converge("dropped connections", lsn, [S])
    samples, pending = mon.verify("dropped connections")
    dropped = count_status(ctx, mark, "c_stream", 0)
    check(dropped == 3, "dropped connections: %d requests dropped, want 3" % dropped)
    return "%d points, 3 connections dropped, %d slot samples (%d pending)" % (n, samples, pending)


def scenario_slow_responses(ctx):
    """Responses slower than [qdrant] timeout = 500ms: the request is retried and converges.  The
    delayed request is still applied by the server later (same operations: idempotent); the step
    waits for it so that a stale replay cannot hit later steps."""
    restart(ctx, PG2QDRANT_QDRANT_TIMEOUT="500ms")
    mark = log_size(ctx)

    def stats():
        return ctx.q.request("GET", "/__test/stats")[1]

    before = stats()["requests"]
    ctx.q.fault(delay_next=1, delay_ms=1500)
    mon = AckMonitor(ctx, "c_stream")
    mon.start()
    lsn = ctx.stream_txn(mon)
    # No request of ours may take the delay: wait until pg2qdrant's write did.
    wait_until("delayed request arrived", lambda: stats()["requests"] > before, ctx=ctx)
    n = ctx.converge("slow responses", lsn, [S])
    samples, pending = mon.verify("slow responses")

    # The server logs a request when it has answered it, so the delayed request is logged last,
    # after its retry and after any later request (the transaction's two changes may go out in
    # two requests).  Wait until one body has been logged twice: the delayed request and its retry.
    def bodies():
        counts = {}
        for r, _ in batch_requests([r for _, r in read_requests(ctx, mark)], "c_stream"):
            counts[r["body"]] = counts.get(r["body"], 0) + 1
        return counts

    wait_until("the delayed request was handled", lambda: max(bodies().values(), default=0) >= 2, ctx=ctx)
    counts = bodies()
    twice = [b for b, c in counts.items() if c == 2]
    check(len(twice) == 1 and all(c <= 2 for c in counts.values()),
          "slow responses: want one request sent twice (the delayed one and its retry), got %s"
          % sorted(counts.values()))
    timeouts = [e for e in ctx.sync.events() if "retrying" in e.get("msg", "")]
    check(timeouts, "slow responses: pg2qdrant logged no retry")
    n = ctx.converge("slow responses (after the late write)", lsn, [S])
    restart(ctx)
    return "%d points; retry logged: %s" % (n, timeouts[0].get("error", "")[:80])


BAD_VEC = "'{1,2,3}'"  # c_stream has 4 dimensions


def poison_txn(ctx, base_id, n_good):
    """One transaction: n_good rows, a wrong-dimension row in the middle, n_good rows.  Returns
    (bad id, WAL position before the transaction, [LSN before, after] the bad INSERT, pre-COMMIT LSN)."""
    half = n_good // 2
    bad = base_id + half
    pre = lsn_int(ctx.wal_lsn())
    out = ctx.sql(
        "BEGIN;\n"
        "INSERT INTO t_stream SELECT g, -1, ARRAY[g, 0, 1, 2]::real[], 'good' FROM generate_series(%d, %d) g;\n"
        "SELECT pg_current_wal_insert_lsn();\n"
        "INSERT INTO t_stream VALUES (%d, -1, %s, 'wrong dimension');\n"
        "SELECT pg_current_wal_insert_lsn();\n"
        "INSERT INTO t_stream SELECT g, -1, ARRAY[g, 0, 1, 2]::real[], 'good' FROM generate_series(%d, %d) g;\n"
        "SELECT pg_current_wal_insert_lsn();\n"
        "COMMIT;\n" % (base_id, bad - 1, bad, BAD_VEC, bad + 1, base_id + n_good))
    l1, l2, commit = [lsn_int(x) for x in out.split()]
    ctx.last_commit_lsn = lsn_text(commit)
    return bad, pre, (l1, l2), commit


def check_bad_lsn(what, text, window):
    v = lsn_int(text)
    check(window[0] <= v < window[1], "%s: LSN %s is not the bad row's (between %s and %s)"
          % (what, text, lsn_text(window[0]), lsn_text(window[1])))


def read_dead_letters(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check_dead_letter(what, path, bad, window):
    lines = read_dead_letters(path)
    check(len(lines) == 1, "%s: %s has %d lines, want exactly 1:\n%s" % (what, path, len(lines), lines))
    d = lines[0]
    for k in ("table", "key", "lsn", "error", "operation"):
        check(k in d, "%s: the dead letter has no %r: %s" % (what, k, d))
    check(d["table"] == "public.t_stream", "%s: dead letter table %r" % (what, d["table"]))
    check(str(bad) in d["key"], "%s: dead letter key %r does not name %d" % (what, d["key"], bad))
    check_bad_lsn(what, d["lsn"], window)
    check("Vector dimension error" in d["error"] and "expected dim: 4, got 3" in d["error"],
          "%s: dead letter error is not Qdrant's message: %r" % (what, d["error"]))
    op = d["operation"]
    check(isinstance(op, dict) and "upsert" in op and op["upsert"]["points"][0]["id"] == bad
          and op["upsert"]["points"][0]["vector"] == [1, 2, 3],
          "%s: dead letter operation is not the bad row's upsert: %s" % (what, json.dumps(op)[:300]))
    return d


def fix_bad_row(ctx, bad):
    return ctx.commit("UPDATE t_stream SET embedding = '{9,9,9,9}', note = 'fixed' WHERE id = %d" % bad)


def scenario_poison_dead_letter(ctx):
    """on_error = dead_letter: a wrong-dimension row among 100 good ones in one transaction."""
    path = os.path.join(ctx.args.workdir, "dead-letter-run.jsonl")
    restart(ctx, PG2QDRANT_SYNC_ON_ERROR="dead_letter", PG2QDRANT_SYNC_DEAD_LETTER_FILE=path)
    mark = log_size(ctx)
    bad, pre, window, commit = poison_txn(ctx, 100000, 100)
    # The position passes the transaction only once its dead letter is on disk: sample the slot
    # first, then the file (a confirmation seen in the sample followed the fsync).
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while True:
        ctx.require_alive()
        passed = ctx.confirmed() > commit
        written = os.path.exists(path) and os.path.getsize(path) > 0
        check(written or not passed, "dead letter: the slot passed the transaction before its dead letter was written")
        if passed:
            break
        check(time.monotonic() < deadline, "dead letter: the slot did not pass the transaction")
        time.sleep(0.02)
    # Everything but the bad row converges and the position moves past the transaction.
    n = ctx.converge("dead letter", lsn_text(commit), [S], exclude={"c_stream": {bad}})
    status, _ = ctx.q.request("GET", "/collections/c_stream/points/%d" % bad)
    check(status == 404, "dead letter: the bad row's point exists (GET answered %s)" % status)
    d = check_dead_letter("dead letter", path, bad, window)
    rejected = count_status(ctx, mark, "c_stream", 400)
    # Usually the bad row arrives inside a batch and is isolated by bisection (several 400s); on a
    # loaded machine the idle sink may send it in a batch of its own (one 400).  Bisection itself
    # is asserted deterministically by unit_sink.
    check(rejected >= 1, "dead letter: Qdrant never rejected the bad row (%d rejected requests)" % rejected)
    ctx.require_alive()
    warn = [e for e in ctx.sync.events() if "dead-letter" in e.get("msg", "")]
    check(warn, "dead letter: pg2qdrant did not log the dead letter")
    # The stream goes on after it, and a later fix of the row converges fully.
    ctx.stream_txn()
    n = ctx.converge("dead letter fixed", fix_bad_row(ctx, bad), [S])
    return "%d points; 1 dead letter (key %s, lsn %s), %d rejected requests while isolating it" % (
        n, d["key"], d["lsn"], rejected)


def scenario_poison_stop(ctx):
    """on_error = stop: exit 1 naming table, key, LSN and Qdrant's message; the slot stays before the
    transaction.  Then the operator fixes the row and restarts with on_error = dead_letter."""
    restart(ctx)
    mark = log_size(ctx)
    bad, pre, window, commit = poison_txn(ctx, 200000, 100)
    try:
        rc = ctx.sync.proc.wait(CONVERGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 1, "stop: pg2qdrant exit code %s, want 1; log tail:\n%s" % (rc, ctx.sync.log_tail()))
    errs = [e for e in ctx.sync.events() if e.get("level") == "error" and "rejected" in e.get("msg", "")]
    check(len(errs) == 1, "stop: want one 'rejected' error event, got %d:\n%s" % (len(errs), ctx.sync.log_tail()))
    e = errs[0]
    check(e.get("table") == "public.t_stream", "stop: the error names table %r" % e.get("table"))
    check(str(bad) in e.get("key", ""), "stop: the error's key %r does not name %d" % (e.get("key"), bad))
    check_bad_lsn("stop", e.get("lsn", "0/0"), window)
    check("Vector dimension error: expected dim: 4, got 3" in e.get("error", ""),
          "stop: the error does not carry Qdrant's message: %r" % e.get("error"))
    # The rows before the bad one in its batch were applied; none after the bad row's batch was sent.
    status, resp = ctx.q.request("POST", "/collections/c_stream/points",
                                 {"ids": list(range(200000, bad)), "with_payload": False})
    check(status == 200 and len(resp["result"]) == bad - 200000,
          "stop: %s of the %d rows before the bad one are in Qdrant" %
          (len(resp["result"]) if status == 200 else status, bad - 200000))
    # Rows after the bad one reach Qdrant only in requests that were launched before pg2qdrant
    # learnt of the first rejection (pipelining: parallel_requests); none is launched after it.
    # After a rejection the sink isolates the bad row one request at a time, from the head of its
    # queue, once every request in flight has been answered: so the first isolation request (the
    # first after the rejection that carries the bad row again) arrives after every request
    # launched before it, and nothing carrying rows after the bad one may arrive from then on.
    # (The server's arrival times alone cannot tell: under valgrind a request pg2qdrant launched
    # beside the rejected one reached the server after the rejection had been answered.)
    status, resp = ctx.q.request("POST", "/collections/c_stream/points",
                                 {"ids": list(range(bad, 200101)), "with_payload": False})
    after = sorted(p["id"] for p in resp.get("result", [])) if status == 200 else None
    check(after is not None and bad not in after, "stop: the bad row reached Qdrant (or GET failed: %s)" % status)
    reqs = [r for _, r in read_requests(ctx, mark) if r["path"] == "/collections/c_stream/points/batch"]
    first_400 = min((r["t_out"] for r in reqs if r["status"] == 400), default=None)
    check(first_400 is not None, "stop: Qdrant never rejected a request")

    isolation = [r["t_in"] for r in reqs if r["t_in"] >= first_400 and '"id":%d,' % bad in r["body"]]
    check(isolation, "stop: no request isolated the bad row after the first rejection")
    late = [r for r in reqs if r["t_in"] >= min(isolation) and
            any('"id":%d,' % i in r["body"] for i in after or [])]
    check(not late, "stop: rows after the bad one were sent after pg2qdrant began isolating the bad row: %s"
          % [r["body"][:120] for r in late])
    # The slot stays before the transaction (and never got past it).
    deadline = time.monotonic() + 10
    while ctx.slot()["active"]:
        check(time.monotonic() < deadline, "stop: slot still active 10 s after exit")
        time.sleep(0.05)
    # The slot must not pass the failed transaction's commit record: a restart then receives the
    # whole transaction again.  (A keepalive may confirm a position *inside* the transaction,
    # read by the walsender before the commit: PostgreSQL resends every transaction whose commit
    # lies after confirmed_flush_lsn, so that is safe and may happen.)
    c = ctx.confirmed()
    check(c <= commit, "stop: the slot confirmed %s, past the failed transaction's commit (%s)"
          % (lsn_text(c), lsn_text(commit)))
    rejected = count_status(ctx, mark, "c_stream", 400)
    # Recovery: fix the row, restart with dead_letter: the replayed bad INSERT is dead-lettered,
    # the fix applies, everything converges.
    fixed = fix_bad_row(ctx, bad)
    path = os.path.join(ctx.args.workdir, "dead-letter-replay.jsonl")
    ctx.sync.env = {"PG2QDRANT_SYNC_ON_ERROR": "dead_letter", "PG2QDRANT_SYNC_DEAD_LETTER_FILE": path}
    it.start_sync(ctx)
    n = ctx.converge("stop, fixed, restarted", fixed, [S])
    check_dead_letter("stop replay", path, bad, window)
    restart(ctx)
    return "exit 1, slot %s <= commit %s, %d rejected requests; after the fix %d points" % (
        lsn_text(c), lsn_text(commit), rejected, n)


HOSTILE = [
    # (label, fault, HTTP status, text the error must carry)
    ("302 redirect", {"raw_status": 302, "raw_location": "http://login.example/sso"}, 302, "login.example"),
    ("200 HTML page", {"raw_status": 200, "raw_body": "<html><body>Captive portal</body></html>"}, 200,
     "Captive portal"),
    ("404 from an ingress", {"raw_status": 404, "raw_body": "<html><center>404 Not Found</center></html>"}, 404,
     "404 Not Found"),
    ("501", {"raw_status": 501, "raw_type": "text/plain", "raw_body": "Not Implemented"}, 501, "Not Implemented"),
]


def scenario_not_qdrant(ctx):
    """Answers that are not Qdrant's (issue 11 item 1): with on_error = dead_letter, a redirect, an
    HTML page, an ingress 404 or a 501 in place of Qdrant's answer dead-letters nothing; pg2qdrant
    exits 1 naming the URL and what came back, the slot stays before the transaction, and after the
    fault is removed a restart delivers every row."""
    out = []
    for k, (label, fault, status, text) in enumerate(HOSTILE):
        path = os.path.join(ctx.args.workdir, "dead-letter-hostile-%d.jsonl" % k)
        restart(ctx, PG2QDRANT_SYNC_ON_ERROR="dead_letter", PG2QDRANT_SYNC_DEAD_LETTER_FILE=path)
        f = dict(fault, raw_next=100000, raw_path="/points/batch")
        ctx.q.fault(**f)
        base = 400000 + k * 1000
        out_sql = ctx.sql(
            "BEGIN;\n"
            "INSERT INTO t_stream SELECT g, -2, ARRAY[g, 1, 2, 3]::real[], 'hostile' "
            "FROM generate_series(%d, %d) g;\n"
            "SELECT pg_current_wal_insert_lsn();\n"
            "COMMIT;\n" % (base, base + 79))
        commit = lsn_int(out_sql.split()[0])
        ctx.last_commit_lsn = lsn_text(commit)
        try:
            rc = ctx.sync.proc.wait(CONVERGE_TIMEOUT)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 1, "%s: pg2qdrant exit code %s, want 1; log tail:\n%s" % (label, rc, ctx.sync.log_tail()))
        errs = [e for e in ctx.sync.events() if e.get("level") == "error" and "not Qdrant" in e.get("msg", "")]
        check(len(errs) == 1, "%s: want one 'not Qdrant' error, got %d:\n%s" % (label, len(errs), ctx.sync.log_tail()))
        e = errs[0]
        check(e.get("url") == ctx.q.url, "%s: the error names url %r, want %r" % (label, e.get("url"), ctx.q.url))
        check(("HTTP %d" % status) in e.get("error", "") and text in e.get("error", ""),
              "%s: the error does not say what came back: %r" % (label, e.get("error")))
        if os.path.exists(path) and os.path.getsize(path) > 0:
            raise TestFailure("%s: operations were dead-lettered (%d lines):\n%s"
                              % (label, len(read_dead_letters(path)), open(path).read()[:500]))
        deadline = time.monotonic() + 10
        while ctx.slot()["active"]:
            check(time.monotonic() < deadline, "%s: slot still active 10 s after exit" % label)
            time.sleep(0.05)
        c = ctx.confirmed()
        check(c <= commit, "%s: the slot confirmed %s, past the transaction's commit %s"
              % (label, lsn_text(c), lsn_text(commit)))
        status_, resp = ctx.q.request("POST", "/collections/c_stream/points",
                                      {"ids": list(range(base, base + 80)), "with_payload": False})
        check(status_ == 200 and resp["result"] == [], "%s: rows reached Qdrant through the fault" % label)
        # The fault removed, a restart delivers all 80 rows.
        ctx.q.fault(raw_next=0)
        it.start_sync(ctx)
        n = ctx.converge("%s, fault removed" % label, lsn_text(commit), [S])
        status_, resp = ctx.q.request("POST", "/collections/c_stream/points",
                                      {"ids": list(range(base, base + 80)), "with_payload": False})
        check(status_ == 200 and len(resp["result"]) == 80, "%s: after the restart %s of 80 rows in Qdrant"
              % (label, len(resp["result"]) if status_ == 200 else status_))
        out.append("%s: exit 1, 0 dead letters" % label)
    restart(ctx)
    return "; ".join(out) + "; then %d points" % n


TOAST_VEC = "ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, %d))" % TOAST_DIM


def exact_vectors(ctx, what):
    """Every point of c_toast has the table's vector, float32 by float32 (after converge())."""
    expected = ctx.last_expected["c_toast"]
    actual = common.scroll(ctx.q, "c_toast", it.SCROLL_PAGE)
    check(actual is not None, "%s: scroll failed" % what)
    check(set(expected) == set(actual), "%s: ids differ" % what)
    for pid, e in expected.items():
        ev = [f32(x) for x in e["vector"]]
        av = [f32(x) for x in actual[pid]["vector"]]
        check(len(ev) == TOAST_DIM and ev == av, "%s: point %s: the vector is not bit-exact" % (what, pid))
    return len(expected)


def toast_ops(ctx, mark):
    kinds = {}
    for r, body in batch_requests([r for _, r in read_requests(ctx, mark)], "c_toast"):
        if r["status"] == 200:
            for op in body["operations"]:
                kinds[next(iter(op))] = kinds.get(next(iter(op)), 0) + 1
    return kinds


def scenario_toast(ctx):
    """120 rows with TOASTed 1536-dim vectors; updates of other columns only leave every vector
    bit-exact (the updates arrive as partial updates: set_payload)."""
    for i in range(3):
        lsn = ctx.commit("INSERT INTO t_toast SELECT g, %s, 'n' || g, g FROM generate_series(%d, %d) g"
                         % (TOAST_VEC, 1 + 40 * i, 40 * (i + 1)))
    toast_rel = ctx.sql("SELECT reltoastrelid::regclass FROM pg_class WHERE oid = 't_toast'::regclass").strip()
    toasted = int(ctx.sql("SELECT count(DISTINCT chunk_id) FROM %s" % toast_rel).strip())
    check(toasted >= 120, "toast: only %d TOASTed values: the vectors are not TOASTed" % toasted)
    wait_until("toast inserts confirmed", lambda: ctx.lsn_passed(lsn)[0], ctx=ctx)
    mark = log_size(ctx)
    ctx.sql("UPDATE t_toast SET note = 'edited ' || id WHERE id % 3 = 0")
    ctx.sql("UPDATE t_toast SET n = n + 1000 WHERE id <= 60")
    lsn = ctx.commit("UPDATE t_toast SET note = note || '!', n = -n")
    ctx.converge("toast updates", lsn, [T])
    n = exact_vectors(ctx, "toast updates")
    kinds = toast_ops(ctx, mark)
    check(kinds.get("set_payload", 0) == 40 + 60 + 120 and not kinds.get("upsert") and not kinds.get("update_vectors"),
          "toast: want partial updates (set_payload) only, got %s" % kinds)
    return "%d points bit-exact, %d TOASTed vectors, operations %s" % (n, toasted, kinds)


def scenario_toast_404(ctx):
    """Points deleted in Qdrant behind the sync's back, then only non-vector columns updated: Qdrant
    answers 404 to the partial update and pg2qdrant reads the row back and upserts it whole.  A row
    updated and deleted in the same transaction: read back as gone, nothing upserted."""
    mark = log_size(ctx)
    gone = [7, 8, 9, 120]
    status, resp = ctx.q.request("POST", "/collections/c_toast/points/delete?wait=true", {"points": gone})
    check(status == 200, "toast 404: deleting points directly: %s %s" % (status, resp))
    lsn = ctx.commit("UPDATE t_toast SET note = 'after the point vanished' WHERE id IN (5, 6, 7, 8, 10, 120);\n"
                     "UPDATE t_toast SET n = 99 WHERE id = 9;\n"
                     "DELETE FROM t_toast WHERE id = 9")
    n = ctx.converge("toast 404", lsn, [T])
    exact_vectors(ctx, "toast 404")
    recs = batch_requests([r for _, r in read_requests(ctx, mark)], "c_toast")
    not_found = [r for r, _ in recs if r["status"] == 404]
    check(not_found, "toast 404: Qdrant never answered 404")
    upserted = set()
    for r, body in recs:
        if r["status"] == 200:
            for op in body["operations"]:
                if "upsert" in op:
                    for p in op["upsert"]["points"]:
                        check(len(p["vector"]) == TOAST_DIM, "toast 404: upsert without the whole vector")
                        upserted.add(p["id"])
    check(upserted == {7, 8, 120}, "toast 404: rows read back and upserted: %s, want 7, 8, 120" % sorted(upserted))
    return "%d points, %d answers 404, rows read back and upserted whole: %s" % (n, len(not_found), sorted(upserted))


def scenario_half_applied_batch(ctx):
    """fail_after_ops: Qdrant applies the first K operations of a batch, then answers 500; the whole
    batch is replayed (inserts, updates, deletes and re-inserts of the same rows).  The size of the
    first batch of a transaction depends on how fast it arrives (an idle sink sends at once), so
    the step repeats until the fault met a batch of more than K operations.  Consecutive upserts
    (and deletes by id) travel as one operation of their points, and a point repeated ends such
    a run, so this transaction's batch is about five operations: K = 1, the first of them (a
    joined upsert of many points) applied before the 500."""
    k = 1
    for attempt in range(1, 6):
        mark = log_size(ctx)
        base = 300000 + 1000 * attempt
        ctx.q.fault(fail_next=1, fail_after_ops=k, status=500)
        lsn = ctx.commit("""
INSERT INTO t_stream SELECT g, -2, ARRAY[g, 1, 1, 1]::real[], 'half' FROM generate_series({b}, {b} + 39) g;
UPDATE t_stream SET note = 'half, updated', seq = -3 WHERE id BETWEEN {b} AND {b} + 19;
DELETE FROM t_stream WHERE id BETWEEN {b} + 5 AND {b} + 14;
INSERT INTO t_stream SELECT g, -4, ARRAY[-g, 2, 2, 2]::real[], 'half, again' FROM generate_series({b} + 5, {b} + 9) g;
UPDATE t_stream SET embedding = '{{5,5,5,5}}' WHERE id = {b}""".format(b=base))
        n = ctx.converge("half-applied batch", lsn, [S])
        recs = batch_requests([r for _, r in read_requests(ctx, mark)], "c_stream")
        failed = [(r, b) for r, b in recs if r["status"] == 500]
        check(len(failed) == 1, "half-applied batch: %d answers 500, want 1" % len(failed))
        replay = [r for r, b in recs if r["status"] == 200 and r["body"] == failed[0][0]["body"]]
        check(replay, "half-applied batch: the failed batch was not replayed as it was")
        size = len(failed[0][1]["operations"])
        first = failed[0][1]["operations"][0]
        joined = len((first.get("upsert") or first.get("delete") or {}).get("points", []))
        if size > k:
            check(joined > 1, "half-applied batch: the first operation holds %d point(s): upserts were not joined"
                  % joined)
            return ("%d points; a batch of %d operations (the first an upsert of %d points) failed after %d and "
                    "was replayed (attempt %d)" % (n, size, joined, k, attempt))
        log("      the fault met a batch of only %d operations; again" % size)
    raise TestFailure("half-applied batch: the fault never met a batch of more than %d operations" % k)


def probe_stale_replay(ctx):
    """Not run by default (--only stale_replay): a write that timed out on the client is applied by
    the server later, after its retry and after a newer write of the same point.  Qdrant (like the
    test server) may still apply a request whose client gave up; the point is then left stale."""
    restart(ctx, PG2QDRANT_QDRANT_TIMEOUT="500ms")
    mark = log_size(ctx)
    before = ctx.q.request("GET", "/__test/stats")[1]["requests"]
    ctx.q.fault(delay_next=1, delay_ms=2500)
    ctx.commit("UPDATE t_stream SET note = 'A (old)' WHERE id = 0")
    wait_until("delayed request arrived", lambda: ctx.q.request("GET", "/__test/stats")[1]["requests"] > before)
    wait_until("retry acknowledged", lambda: count_status(ctx, mark, "c_stream", 200) >= 1, ctx=ctx)
    lsn = ctx.commit("UPDATE t_stream SET note = 'B (new)' WHERE id = 0")
    wait_until("B confirmed", lambda: ctx.lsn_passed(lsn)[0], ctx=ctx)
    wait_until("the delayed request was handled", lambda: count_status(ctx, mark, "c_stream", 200) >= 3, ctx=ctx)
    note = ctx.q.request("GET", "/collections/c_stream/points/0")[1]["result"]["payload"]["note"]
    restart(ctx)
    check(note == "B (new)", "stale replay: the table says 'B (new)', Qdrant says %r after the timed-out "
          "request was applied late" % note)
    return "point 0 is current"


PROBES = [("stale replay after a client timeout", probe_stale_replay)]


BATCH_SETTINGS = [(1, "8MB"), (64, "8MB"), (256, "8MB"), (256, "16kB")]


def parse_size(text):
    for suffix, mult in (("kB", 1024), ("MB", 1024 ** 2), ("GB", 1024 ** 3), ("B", 1)):
        if text.endswith(suffix):
            return int(text[:-len(suffix)]) * mult
    return int(text)


def batch_workload(ctx):
    """10,000 changes: 5,000 inserts, then 5,000 updates, in 20 transactions of 500.  Returns the
    pre-COMMIT LSN of the last."""
    for i in range(10):
        ctx.commit("INSERT INTO t_batch SELECT g, ARRAY[g, 1, 2, 3, 4, 5, 6, -g]::real[], 'row ' || g, g "
                   "FROM generate_series(%d, %d) g" % (500 * i, 500 * i + 499))
    for i in range(10):
        lsn = ctx.commit("UPDATE t_batch SET note = note || ' updated', n = n + 1 WHERE id BETWEEN %d AND %d"
                         % (500 * i, 500 * i + 499))
    return lsn


def changes_in(op):
    """The row changes one batch operation carries: the points of a (joined) upsert or delete by
    id, else one."""
    body = op.get("upsert") or op.get("delete") or {}
    points = body.get("points")
    return len(points) if isinstance(points, list) else 1


def scenario_batching(ctx):
    """10,000 changes per setting, twice: written while pg2qdrant streams ("live": an idle sink sends
    at once, so batches follow the arrival rate) and written while it is stopped ("backlog": it
    catches up from the slot).  Requests and request-body bytes per 10,000 changes are printed;
    asserted are convergence and that every request carries at most batch_points changes (upserts
    and deletes by id are joined into operations of many points) and a body of at most
    batch_bytes bytes (never timings)."""
    figures = []
    for points, size in BATCH_SETTINGS:
        env = {"PG2QDRANT_SYNC_BATCH_POINTS": str(points), "PG2QDRANT_SYNC_BATCH_BYTES": size}
        for mode in ("live", "backlog"):
            restart(ctx, **env)
            ctx.converge("batching reset", ctx.commit("TRUNCATE t_batch"), [B])
            if mode == "backlog":
                rc, _ = ctx.sync.terminate(20)
                check(rc == 0, "batching: pg2qdrant exit code %s on SIGTERM" % rc)
            mark = log_size(ctx)
            lsn = batch_workload(ctx)
            if mode == "backlog":
                it.start_sync(ctx)
            n = ctx.converge("batching %d/%s %s" % (points, size, mode), lsn, [B])
            recs = batch_requests([r for _, r in read_requests(ctx, mark)], "c_batch")
            check(all(r["status"] == 200 for r, _ in recs), "batching: a request failed")
            nops = [sum(changes_in(op) for op in b["operations"]) for _, b in recs]
            nbytes = [len(r["body"].encode()) for r, _ in recs]
            check(sum(nops) == BATCH_CHANGES, "batching: %d changes sent for %d changes"
                  % (sum(nops), BATCH_CHANGES))
            check(max(nops) <= points, "batching: a request had %d changes, batch_points = %d"
                  % (max(nops), points))
            check(max(nbytes) <= parse_size(size), "batching: a request body had %d bytes, batch_bytes = %s"
                  % (max(nbytes), size))
            figures.append((points, size, mode, len(recs), sum(nbytes)))
            log("      batch_points=%-3d batch_bytes=%-4s %-7s %5d requests %9d body bytes per %d changes "
                "(largest request: %d changes, %d bytes)" % (points, size, mode, len(recs), sum(nbytes),
                                                               BATCH_CHANGES, max(nops), max(nbytes)))
    restart(ctx)
    return "%d settings x live/backlog, %d points each" % (len(BATCH_SETTINGS), n)


STEPS = [
    ("seed", scenario_seed),
    ("503 bursts during a stream", scenario_503_bursts),
    ("sustained outage", scenario_sustained_outage),
    ("429 + Retry-After", scenario_429_retry_after),
    ("dropped connections", scenario_dropped_connections),
    ("responses slower than timeout", scenario_slow_responses),
    ("poison row, dead_letter", scenario_poison_dead_letter),
    ("poison row, stop", scenario_poison_stop),
    ("answers that are not Qdrant's", scenario_not_qdrant),
    ("TOAST partial updates", scenario_toast),
    ("TOAST 404 read-back", scenario_toast_404),
    ("half-applied batch replayed", scenario_half_applied_batch),
    ("batching settings", scenario_batching),
]


def run(args):
    if os.path.isdir(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    t_start = time.monotonic()
    only = set(args.only.split(",")) if args.only else None
    log("sink faults: starting PostgreSQL 15 and the Qdrant test server in %s" % args.workdir)
    passed = 0
    with Postgres(args.workdir) as pg, \
            QdrantServer(args.qdrant_server, args.workdir, api_key=API_KEY, test_server_only=True) as q:
        ctx = FaultContext(args, pg, q)
        setup(ctx)
        ctx.sync = Sync(args.pg2qdrant, write_config(ctx), args.workdir, args.log_level, log_format="json",
                        tail_lines=30)
        steps = [s for s in STEPS if only is None or s[0] == "seed" or s[1].__name__[9:] in only]
        steps += [s for s in PROBES if only and s[1].__name__[6:] in only]
        try:
            it.start_sync(ctx)
            for i, (name, fn) in enumerate(steps, 1):
                t0 = time.monotonic()
                detail = fn(ctx)
                passed += 1
                log("  [%2d/%d] ok   %-30s %s  %.2fs" % (i, len(steps), name, detail, time.monotonic() - t0))
            rc, _ = ctx.sync.terminate(20)
            check(rc == 0, "pg2qdrant exited with %s on SIGTERM; log tail:\n%s" % (rc, ctx.sync.log_tail()))
        finally:
            if ctx.sync.alive():
                ctx.sync.terminate(20)
                ctx.sync.kill9()
        q.stop()  # flushes the request log
        validated = it.validate_requests(ctx)
    log("sink faults: PASSED %d/%d steps, %d points compared, %d requests validated, %.1fs"
        % (passed, len(steps), ctx.points_compared, validated, time.monotonic() - t_start))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


def main():
    p = common.argument_parser(__doc__.splitlines()[0])
    p.add_argument("--log-level", default="info", help="pg2qdrant's --log-level")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, config, request log)")
    p.add_argument("--only", help="comma-separated scenario function names without 'scenario_' or 'probe_' "
                   "(seed always runs; probes run only when named)")
    return common.run_main("sink faults", p, run)


if __name__ == "__main__":
    sys.exit(main())
