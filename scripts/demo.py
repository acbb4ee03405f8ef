#!/usr/bin/env python3
"""pg2qdrant demo: a throwaway PostgreSQL, a `products` table, and its Qdrant collection kept in step.

Started by scripts/demo.sh after the build.  Uses the project's Qdrant test server, or a real
Qdrant when QDRANT_URL is set (with QDRANT_API_KEY when given).  Python 3 stdlib only.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "harness"))

from harness import Postgres, QdrantServer, cleanup_all, free_port, http_json, install_signal_cleanup  # noqa: E402

DB = "shop"
COLLECTION = os.environ.get("DEMO_COLLECTION", "products")


class RealQdrant:
    """The same request() as QdrantServer, for a Qdrant given by QDRANT_URL."""

    def __init__(self, url, api_key):
        self.url = url.rstrip("/")
        self.api_key = api_key

    def request(self, method, path, body_obj=None):
        return http_json(self.url, self.api_key, method, path, body_obj)


def say(msg):
    print("demo: " + msg, flush=True)


def sql_commit(pg, body):
    """Runs body in one transaction; returns the WAL insert position just before COMMIT."""
    out = pg.psql("BEGIN;\n%s;\nSELECT pg_current_wal_insert_lsn();\nCOMMIT;\n" % body, db=DB)
    return out.split()[-1]


def wait_synced(pg, slot, lsn, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("demo: pg2qdrant exited with %s" % proc.returncode)
        out = pg.psql("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '%s') > 0 FROM pg_replication_slots "
                      "WHERE slot_name = '%s'" % (lsn, slot)).strip()
        if out == "t":
            return
        time.sleep(0.1)
    raise SystemExit("demo: pg2qdrant did not confirm %s within %ss" % (lsn, timeout))


def scroll_all(q):
    points, offset = [], None
    while True:
        body = {"limit": 100, "with_payload": True, "with_vector": True}
        if offset is not None:
            body["offset"] = offset
        status, resp = q.request("POST", "/collections/%s/points/scroll" % COLLECTION, body)
        if status != 200:
            raise SystemExit("demo: scroll failed: %s %s" % (status, resp))
        points += resp["result"]["points"]
        offset = resp["result"].get("next_page_offset")
        if offset is None:
            return sorted(points, key=lambda p: (p.get("payload") or {}).get("article_id", ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="the CMake build directory")
    args = ap.parse_args()
    install_signal_cleanup()
    pg2qdrant = os.path.join(args.build, "pg2qdrant")
    workdir = tempfile.mkdtemp(prefix="pg2qdrant-demo-")
    os.chmod(workdir, 0o755)  # the postgres OS user must reach its data directory inside
    proc = None
    try:
        pg = Postgres(workdir).start()
        say("PostgreSQL 15 on port %d" % pg.port)
        if os.environ.get("QDRANT_URL"):
            q = RealQdrant(os.environ["QDRANT_URL"], os.environ.get("QDRANT_API_KEY"))
            say("using the Qdrant at %s" % q.url)
            status, _ = q.request("GET", "/collections/%s" % COLLECTION)
            if status == 200:
                raise SystemExit("demo: collection '%s' already exists at %s; delete it or set DEMO_COLLECTION"
                                 % (COLLECTION, q.url))
        else:
            q = QdrantServer(os.path.join(args.build, "test", "qdrant_test_server"), workdir).start()
            say("Qdrant test server at %s" % q.url)

        pg.psql("CREATE DATABASE %s" % DB)
        pg.psql("""
CREATE TABLE products (
    article_id text PRIMARY KEY,
    embedding  real[],
    name       text NOT NULL,
    price      numeric(10,2),
    in_stock   boolean,
    tags       text[],
    updated_at timestamptz DEFAULT now()
);""", db=DB)
        status, resp = q.request("PUT", "/collections/%s" % COLLECTION,
                                 {"vectors": {"size": 4, "distance": "Dot"}})
        if status != 200:
            raise SystemExit("demo: cannot create collection: %s %s" % (status, resp))
        say("created table products and collection %s (4 dimensions)" % COLLECTION)

        config = os.path.join(workdir, "pg2qdrant.ini")
        with open(config, "w") as f:
            f.write("\n".join([
                "[source]", "dsn = " + pg.dsn(DB), "slot = demo", "publication = demo",
                "create_slot = true", "create_publication = true", "status_interval = 1s", "",
                "[qdrant]", "url = " + q.url, "api_key = " + (getattr(q, "api_key", None) or ""), "",
                "[sync]", "snapshot = never", "", "[http]", "listen = 127.0.0.1:%d" % free_port(), "",
                "[table public.products]", "collection = " + COLLECTION, "id = article_id",
                "vector = embedding", "payload = *", ""]))
        log_path = os.path.join(workdir, "pg2qdrant.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen([pg2qdrant, "run", "-c", config], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while pg.psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'demo'").strip() != "t":
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(log_path) as f:
                    sys.stderr.write(f.read())
                raise SystemExit("demo: pg2qdrant did not start streaming")
            time.sleep(0.1)
        say("pg2qdrant is streaming (log: %s)" % log_path)

        pg.psql("""
INSERT INTO products (article_id, embedding, name, price, in_stock, tags) VALUES
  ('A-100', '{0.9,0.1,0.0,0.2}', 'Espresso machine', 349.00, true,  '{kitchen,coffee}'),
  ('A-101', '{0.8,0.2,0.1,0.1}', 'Milk frother',      39.90, true,  '{kitchen,coffee}'),
  ('B-200', '{0.1,0.9,0.3,0.0}', 'Trail shoes',      129.00, false, '{outdoor}'),
  ('B-201', '{0.2,0.8,0.4,0.1}', 'Rain jacket',       89.50, true,  '{outdoor,clothing}'),
  ('C-300', '{0.0,0.1,0.9,0.7}', 'Desk lamp',         24.99, true,  '{office}');""", db=DB)
        say("inserted 5 products")
        pg.psql("UPDATE products SET price = 299.00, updated_at = now() WHERE article_id = 'A-100';\n"
                "UPDATE products SET in_stock = true, embedding = '{0.1,0.95,0.2,0.0}' "
                "WHERE article_id = 'B-200';", db=DB)
        say("updated 2 products (a price; a stock flag and an embedding)")
        lsn = sql_commit(pg, "DELETE FROM products WHERE article_id = 'C-300'")
        say("deleted 1 product; waiting until pg2qdrant has confirmed it")
        wait_synced(pg, "demo", lsn, proc)

        points = scroll_all(q)
        rows = int(pg.psql("SELECT count(*) FROM products", db=DB))
        say("collection %s holds %d points for %d rows:" % (COLLECTION, len(points), rows))
        for p in points:
            print("  id %s  vector %s" % (json.dumps(p["id"]), json.dumps(p.get("vector"))))
            for key, value in sorted((p.get("payload") or {}).items()):
                print("      %-11s %s" % (key, json.dumps(value, ensure_ascii=False)))

        proc.terminate()
        rc = proc.wait(30)
        say("pg2qdrant stopped on SIGTERM with exit code %d" % rc)
        if os.environ.get("QDRANT_URL"):
            q.request("DELETE", "/collections/%s" % COLLECTION)
        return 0 if rc == 0 and len(points) == rows else 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        cleanup_all()  # stops Postgres and the test server now
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
