#!/usr/bin/env python3
"""Chaos run: a write workload under random faults, then every collection must equal its table.

A throwaway PostgreSQL 15 + the Qdrant test server + `pg2qdrant run`.  For --duration seconds
a writer thread runs random transactions against three published tables (inserts, updates,
updates of TOASTed rows that leave the 640-dim STORAGE EXTERNAL vector unchanged, deletes,
truncates, key changes, also of TOASTed rows) while a fault thread injects, at random
moments:

  kill9        SIGKILL of pg2qdrant, restarted after 0-2 s
  sigterm      SIGTERM (must exit 0 within shutdown_timeout), restarted
  qdrant_503   a burst of 1-30 writes answered 503
  qdrant_delay 1-20 requests delayed 100-1500 ms
  qdrant_drop  1-3 writes whose connection is dropped
  pg_fast      PostgreSQL restarted with pg_ctl stop -m fast
  pg_immediate PostgreSQL restarted with pg_ctl stop -m immediate (crash recovery)

Against a real Qdrant (P2Q_QDRANT_BIN; see docs/testing.md) the Qdrant faults come from outside
it, and pg2qdrant talks to it through the harness's TcpProxy:

  qdrant_kill      Qdrant SIGKILLed, restarted after 0-3 s (it recovers from its own WAL)
  qdrant_hang      Qdrant SIGSTOPped for 1-8 s (longer than the 5 s timeout), then SIGCONT
  proxy_refuse     connections refused for 1-5 s
  proxy_reset      connections reset for 1-5 s
  proxy_delay      every chunk delayed 100-1500 ms for 2-10 s
  proxy_blackhole  bytes swallowed, nothing answered, for 2-8 s (a partition)

Then the faults stop, the workload stops, and pg2qdrant must catch up: the slot confirms the
last commit and every collection equals its table under SPEC §3 (the oracle of expected.py).
pg2qdrant must never exit by itself (only our SIGKILL/SIGTERM), and every SIGTERM must end
with exit 0.  A summary is printed; the exit status is 1 on any mismatch or failure.

    chaos.py --pg2qdrant BIN --qdrant-server BIN --openapi PATH --workdir DIR --duration SECONDS
             [--seed N] [--keep] [--catchup-timeout SECONDS]

Python 3 standard library only (the OpenAPI check of the request log needs python3-jsonschema).
"""

import collections
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

import expected as oracle  # noqa: E402
import guarantees_lib as g  # noqa: E402
import p2q_common as common  # noqa: E402
from harness import PG_BIN, HarnessError, Postgres, QdrantServer  # noqa: E402

DB = common.DB
SLOT = "p2q_chaos"
PUBLICATION = "p2q_chaos_pub"
SHUTDOWN_TIMEOUT = 10
TOAST_DIM = 640

check = common.check
log = common.log


def dense(size):
    return {"size": size, "distance": "Dot"}


TABLES = [
    common.Table(oracle.TableSpec("public.items", "items", ["id"], {"": "v"}),
                 "CREATE TABLE items (id bigint PRIMARY KEY, v real[], val int, note text, tags text[])",
                 {"vectors": dense(8)},
                 ["id = id", "vector = v", "payload = *"]),
    common.Table(oracle.TableSpec("public.docs", "docs", ["id"], {"": "embedding"}),
                 """CREATE TABLE docs (id int PRIMARY KEY, embedding real[], note text, n int);
                    ALTER TABLE docs ALTER COLUMN embedding SET STORAGE EXTERNAL""",
                 {"vectors": dense(TOAST_DIM)},
                 ["id = id", "vector = embedding", "payload = *"]),
    common.Table(oracle.TableSpec("public.skus", "skus", ["sku"], {"": "v"}),
                 "CREATE TABLE skus (sku text PRIMARY KEY, v double precision[], price numeric, seen timestamptz)",
                 {"vectors": dense(3)},
                 ["vector = v", "payload = *"]),
]


def vec(n):
    return "ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, %d))" % n


# --- the workload -----------------------------------------------------------------------

class Workload:
    """Random transactions, one psql per transaction (PostgreSQL restarts make some fail)."""

    def __init__(self, pg, rng):
        self.pg = pg
        self.rng = rng
        self.stop = threading.Event()
        self.committed = 0
        self.failed = 0
        self.rolled_back = 0
        self.errors = collections.Counter()  # why transactions failed (PostgreSQL restarts)
        self.changes = collections.Counter()  # kind -> rows changed (committed transactions)
        self.thread = threading.Thread(target=self.loop, name="workload", daemon=True)

    def statement(self):
        r = self.rng.random()
        k = self.rng.randint(1, 8)
        if r < 0.22:
            return "insert", ("INSERT INTO items SELECT nextval('ids'), %s, (random()*1000)::int, 'n' || g, "
                              "ARRAY['a' || g, 'b'] FROM generate_series(1, %d) g" % (vec(8), k))
        if r < 0.34:
            return "update", ("UPDATE items SET val = val + 1, note = 'u' || txid_current() WHERE id IN "
                              "(SELECT id FROM items ORDER BY random() LIMIT %d)" % k)
        if r < 0.40:
            return "update_vector", ("UPDATE items SET v = %s WHERE id IN (SELECT id FROM items ORDER BY random() "
                                     "LIMIT %d)" % (vec(8), k))
        if r < 0.47:
            return "delete", "DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT %d)" % k
        if r < 0.52:
            return "key_change", ("UPDATE items SET id = nextval('ids') WHERE id IN (SELECT id FROM items ORDER BY "
                                  "random() LIMIT %d)" % self.rng.randint(1, 3))
        if r < 0.58:
            return "insert", ("INSERT INTO docs SELECT nextval('ids'), %s, 'doc', 0 FROM generate_series(1, %d)"
                              % (vec(TOAST_DIM), self.rng.randint(1, 3)))
        if r < 0.68:
            return "toast_update", ("UPDATE docs SET note = 'touched ' || txid_current(), n = n + 1 WHERE id IN "
                                    "(SELECT id FROM docs ORDER BY random() LIMIT %d)" % self.rng.randint(1, 4))
        if r < 0.71:
            return "toast_vector", ("UPDATE docs SET embedding = %s WHERE id IN (SELECT id FROM docs ORDER BY "
                                    "random() LIMIT 1)" % vec(TOAST_DIM))
        if r < 0.74:
            return "toast_key_change", ("UPDATE docs SET id = nextval('ids') WHERE id IN (SELECT id FROM docs "
                                        "ORDER BY random() LIMIT 1)")
        if r < 0.78:
            return "delete", "DELETE FROM docs WHERE id IN (SELECT id FROM docs ORDER BY random() LIMIT 2)"
        if r < 0.88:
            return "upsert", ("INSERT INTO skus SELECT s, ARRAY[random(), random(), random()], "
                              "(random()*100)::numeric(8,2), now() FROM (SELECT DISTINCT 'sku-' || "
                              "(random()*400)::int AS s FROM generate_series(1, %d)) x "
                              "ON CONFLICT (sku) DO UPDATE SET price = excluded.price, v = excluded.v, "
                              "seen = excluded.seen" % k)
        if r < 0.93:
            return "delete", "DELETE FROM skus WHERE sku IN (SELECT sku FROM skus ORDER BY random() LIMIT %d)" % k
        if r < 0.935:
            return "truncate", "TRUNCATE items"
        if r < 0.94:
            return "truncate", "TRUNCATE skus, docs"
        return "insert", ("INSERT INTO items SELECT nextval('ids'), %s, g, NULL, NULL FROM generate_series(1, %d) g"
                          % (vec(8), 20 * k))

    def transaction(self):
        n = self.rng.choice([1, 1, 1, 2, 3, 5, 8])
        stmts = [self.statement() for _ in range(n)]
        rollback = self.rng.random() < 0.03
        sql = "BEGIN;\n" + ";\n".join(s for _, s in stmts) + ";\n" + ("ROLLBACK" if rollback else "COMMIT") + ";\n"
        argv = [os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", str(self.pg.port), "-U", "postgres", "-d", DB, "-f", "-"]
        try:
            r = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, PGCONNECT_TIMEOUT="5"))
        except subprocess.TimeoutExpired:
            self.failed += 1
            return
        if r.returncode != 0:
            self.failed += 1
            err = (r.stderr.strip().splitlines() or ["?"])[0]
            self.errors[err.split(":", 2)[-1].strip()[:60]] += 1
            return
        if rollback:
            self.rolled_back += 1
            return
        # the command tags: INSERT 0 n / UPDATE n / DELETE n / TRUNCATE TABLE
        tags = [line for line in r.stdout.splitlines() if line.split(" ")[0] in ("INSERT", "UPDATE", "DELETE",
                                                                                  "TRUNCATE")]
        self.committed += 1
        for (kind, _), tag in zip(stmts, tags):
            parts = tag.split()
            self.changes[kind] += 1 if parts[0] == "TRUNCATE" else int(parts[-1])

    def loop(self):
        while not self.stop.is_set():
            self.transaction()
            time.sleep(self.rng.random() * 0.02)

    def total_changes(self):
        return sum(self.changes.values())


# --- faults ---------------------------------------------------------------------------------

class Chaos:
    def __init__(self, args, pg, q, sync, rng, proxy=None):
        self.args = args
        self.pg = pg
        self.q = q
        self.proxy = proxy  # a real Qdrant: pg2qdrant talks to it through this
        self.sync = sync
        self.rng = rng
        self.faults = collections.Counter()
        self.problems = []          # failures found on the way (unexpected exits, bad SIGTERM exits)
        self.unexpected_exits = 0
        self.sigterm_max = 0.0

    def check_process(self):
        """pg2qdrant may only stop because we stopped it; restart it after an unexpected exit."""
        if self.sync.alive() or self.sync.expected_exit:
            return
        rc = self.sync.returncode()
        self.unexpected_exits += 1
        self.problems.append("pg2qdrant exited by itself with %s (run %d); log tail:\n%s"
                             % (rc, self.sync.runs, self.sync.log_tail(15)))
        log("  !! pg2qdrant exited by itself with %s (run %d)" % (rc, self.sync.runs))
        self.sync.start()

    def inject(self):
        if self.q.real:
            kind = self.rng.choices(["kill9", "sigterm", "qdrant_kill", "qdrant_hang", "proxy_refuse", "proxy_reset",
                                     "proxy_delay", "proxy_blackhole", "pg_fast", "pg_immediate"],
                                    weights=[30, 8, 8, 6, 6, 6, 8, 6, 10, 9])[0]
        else:
            kind = self.rng.choices(["kill9", "sigterm", "qdrant_503", "qdrant_delay", "qdrant_drop", "pg_fast",
                                     "pg_immediate"], weights=[30, 8, 20, 15, 8, 10, 9])[0]
        if kind == "kill9":
            self.sync.kill9()
            time.sleep(self.rng.random() * 2)
            self.sync.start()
        elif kind == "sigterm":
            rc, took = self.sync.terminate(SHUTDOWN_TIMEOUT + 10)
            self.sigterm_max = max(self.sigterm_max, took)
            if rc != 0 or took > SHUTDOWN_TIMEOUT + 2:
                self.problems.append("SIGTERM: exit %s after %.1fs (shutdown_timeout %ss); log tail:\n%s"
                                     % (rc, took, SHUTDOWN_TIMEOUT, self.sync.log_tail(15)))
            if rc is None:
                self.sync.kill9()
            self.sync.start()
        elif kind == "qdrant_503":
            # bursts stay short: with a backoff capped at 30 s, 30 failures in a row take minutes
            self.q.fault(fail_next=self.rng.randint(1, 8), status=self.rng.choice([500, 502, 503, 503, 429]))
        elif kind == "qdrant_delay":
            self.q.fault(delay_next=self.rng.randint(1, 20), delay_ms=self.rng.randint(100, 1500))
        elif kind == "qdrant_drop":
            self.q.fault(drop_next=self.rng.randint(1, 3))
        elif kind in ("pg_fast", "pg_immediate"):
            self.restart_pg("fast" if kind == "pg_fast" else "immediate")
        elif kind == "qdrant_kill":
            self.q.kill9()
            time.sleep(self.rng.random() * 3)
            self.q.restart()
        elif kind == "qdrant_hang":
            self.q.pause()
            time.sleep(self.rng.uniform(1, 8))
            self.q.resume()
        elif kind.startswith("proxy_"):
            mode = kind[len("proxy_"):]
            span = {"refuse": (1, 5), "reset": (1, 5), "delay": (2, 10), "blackhole": (2, 8)}[mode]
            self.proxy.mode(mode, delay_ms=self.rng.randint(100, 1500))
            time.sleep(self.rng.uniform(*span))
            self.proxy.mode("pass")
        self.faults[kind] += 1

    def clear(self):
        """Every fault off."""
        if self.q.real:
            self.q.resume()
            self.proxy.mode("pass")
            return
        self.q.fault(fail_next=0)
        self.q.fault(delay_next=0, delay_ms=0)
        self.q.fault(drop_next=0)

    def restart_pg(self, mode):
        """pg_ctl stop -m MODE, a pause, start.  A fast shutdown waits until every logical walsender's
        client has confirmed all WAL sent to it; while Qdrant fails, pg2qdrant cannot confirm, so the
        stop may time out: then it is finished with -m immediate (counted as pg_fast_timeout)."""
        try:
            g.pg_ctl(self.pg, "-m", mode, "-w", "-t", "30", "stop")
        except HarnessError:
            self.faults["pg_fast_timeout" if mode == "fast" else "pg_stop_failed"] += 1
            log("  .. pg_ctl stop -m %s did not finish within 30 s; stopping with -m immediate" % mode)
            g.pg_ctl(self.pg, "-m", "immediate", "-w", "-t", "60", "stop", check_rc=False)
        time.sleep(self.rng.random() * 2)
        for attempt in range(5):
            try:
                g.pg_start(self.pg)
                return
            except HarnessError as e:
                if attempt == 4:
                    raise
                log("  .. pg_ctl start failed, retrying: %s" % str(e)[:200])
                time.sleep(2)

    def run(self, until):
        while time.monotonic() < until:
            time.sleep(self.rng.uniform(1.0, 6.0))
            self.check_process()
            try:
                self.inject()
            except HarnessError as e:
                self.problems.append("injecting a fault failed: %s" % e)
                log("  !! %s" % e)
            self.check_process()


def setup(pg, q, workdir, http_port=None):
    pg.psql("CREATE DATABASE %s" % DB)
    pg.psql("CREATE SEQUENCE ids; " + ";\n".join(t.ddl for t in TABLES) + ";\n"
            "CREATE PUBLICATION %s FOR TABLE %s" % (PUBLICATION, ", ".join(t.spec.name for t in TABLES)), db=DB)
    for t in TABLES:
        common.load_columns(pg, t)
    common.create_collections(q, TABLES)
    lines = [
        "[source]", "dsn = " + pg.dsn(DB), "slot = " + SLOT, "publication = " + PUBLICATION,
        "create_slot = true", "create_publication = false", "status_interval = 1s",
        "", "[qdrant]", "url = " + q.url, "api_key = " + common.API_KEY, "timeout = 5s",
        "create_collections = false",
        "", "[sync]", "snapshot = never", "batch_points = 64", "batch_bytes = 1MB", "flush_interval = 50ms",
        "max_inflight = 4MB", "on_error = stop", "shutdown_timeout = %ds" % SHUTDOWN_TIMEOUT,
        "", "[http]", "listen = " + ("127.0.0.1:%d" % http_port if http_port else ""),
    ]
    return common.write_config_file(os.path.join(workdir, "pg2qdrant.ini"), lines, TABLES)


def validate_requests(q, openapi, limit_mb=400):
    if q.request_log is None:
        return common.validate_requests(q, openapi)
    size = os.path.getsize(q.request_log) / 1e6
    if size > limit_mb:
        return "SKIPPED: request log is %.0f MB (over %d MB)" % (size, limit_mb)
    return common.validate_requests(q, openapi)


def run(args):
    if os.path.isdir(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    seed = args.seed if args.seed is not None else random.SystemRandom().randint(1, 2 ** 31)
    rng = random.Random(seed)
    log("chaos: seed %d, duration %ss, work directory %s" % (seed, args.duration, args.workdir))
    t_start = time.monotonic()
    summary = {}
    with Postgres(args.workdir) as pg, QdrantServer(args.qdrant_server, args.workdir, api_key=common.API_KEY) as q:
        proxy = q.proxy if q.real else None
        if q.real:
            log("chaos: real Qdrant %s at %s, pg2qdrant through the proxy %s" % (q.version, q.direct_url, proxy.url))
        config = setup(pg, q, args.workdir)
        sync = common.Sync(args.pg2qdrant, config, args.workdir, args.log_level)
        sync.start()
        g.wait_slot_active(pg, DB, SLOT, sync)
        work = Workload(pg, random.Random(rng.random()))
        chaos = Chaos(args, pg, q, sync, random.Random(rng.random()), proxy)
        work.thread.start()
        try:
            last_report = time.monotonic()
            until = time.monotonic() + args.duration
            fault_thread = threading.Thread(target=chaos.run, args=(until,), name="chaos", daemon=True)
            fault_thread.start()
            while fault_thread.is_alive():
                fault_thread.join(5)
                if time.monotonic() - last_report > 60:
                    last_report = time.monotonic()
                    log("  %4.0fs: %d transactions, %d changes, faults %s, pg2qdrant runs %d"
                        % (time.monotonic() - t_start, work.committed, work.total_changes(),
                           dict(chaos.faults), sync.runs))
            # stop the faults, then the workload; let pg2qdrant catch up
            chaos.clear()
            work.stop.set()
            work.thread.join(120)
            chaos.check_process()
            log("  faults stopped after %.0fs; catching up" % (time.monotonic() - t_start))
            try:
                took = g.converge(pg, q, TABLES, DB, SLOT, sync, args.catchup_timeout, "catch-up", poll=1.0)
                diffs = {}
            except common.TestFailure as e:
                took = None
                diffs = g.compare(pg, q, TABLES)
                chaos.problems.append(str(e)[:3000])
            chaos.check_process()
            rows = {t.spec.collection: int(pg.psql("SELECT count(*) FROM %s" % t.spec.name, db=DB)) for t in TABLES}
            rc, t_stop = sync.terminate(SHUTDOWN_TIMEOUT + 10)
            if rc != 0:
                chaos.problems.append("final SIGTERM: exit %s after %.1fs" % (rc, t_stop))
        finally:
            work.stop.set()
            sync.stop()
        q.stop()
        openapi = validate_requests(q, args.openapi)
        mismatches = g.mismatch_count(diffs)
        summary = {
            "seed": seed,
            "duration_s": args.duration,
            "wall_s": round(time.monotonic() - t_start, 1),
            "catch_up_s": None if took is None else round(took, 1),
            "faults": dict(sorted(chaos.faults.items())),
            "faults_total": sum(chaos.faults.values()),
            "pg2qdrant_starts": sync.runs,
            "transactions_committed": work.committed,
            "transactions_failed": work.failed,
            "transactions_rolled_back": work.rolled_back,
            "failure_reasons": dict(work.errors.most_common(6)),
            "changes": dict(sorted(work.changes.items())),
            "changes_total": work.total_changes(),
            "rows_at_end": rows,
            "mismatches": mismatches,
            "unexpected_exits": chaos.unexpected_exits,
            "sigterm_max_s": round(chaos.sigterm_max, 2),
            "openapi": openapi,
        }
        log("chaos summary:\n" + json.dumps(summary, indent=2))
        if diffs:
            log(g.format_diffs(diffs))
        for p in chaos.problems:
            log("problem: " + p)
        check(not chaos.problems and mismatches == 0,
              "%d mismatches, %d problems" % (mismatches, len(chaos.problems)))
    log("chaos: PASSED (%d faults, %d changes, 0 mismatches, %.0fs)"
        % (summary["faults_total"], summary["changes_total"], summary["wall_s"]))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


def main():
    p = common.argument_parser(__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=110)
    p.add_argument("--catchup-timeout", type=float, default=300)
    p.add_argument("--seed", type=int)
    p.add_argument("--log-level", default="info")
    p.add_argument("--keep", action="store_true")
    return common.run_main("chaos", p, run)


if __name__ == "__main__":
    sys.exit(main())
