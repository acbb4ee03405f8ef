/*
 * sync.c — the run loop: replication stream in, Qdrant batches out.
 *
 *   PostgreSQL ──CopyData──> pgo_decode_copydata ──'w'──> pgo_decode
 *        ^                                                   │
 *        │ 'r' status (flush = ack_confirmed)                ├─ Relation/Type -> relcache + map_compile
 *        │                                                   ├─ Insert/Update/Delete/Truncate -> map_* -> sink_push
 *        │                                                   │      (pushed as decoded, tagged with the txn's ticket)
 *        │                                                   ├─ Message 'pg2qdrant' -> backfill.c (requests, watermarks;
 *        │                                                   │      a chunk's rows pushed in its high watermark's txn)
 *        │                                                   └─ Commit -> ack_commit(ticket, end_lsn)
 *        │
 *   ack_tracker <── ack_done_ops ── sink: batches of consecutive operations on one collection,
 *                                   sent as they fill (or at flush_interval / when input pauses),
 *                                   streamed request bodies, one request in flight (sink.h)
 *
 * One poll (sink_wait) serves the PostgreSQL socket, curl's and the online
 * backfill's connection (backfill.h); reading pauses while the sink is full
 * (sink_full).  The backfill holds its newest watermark's transaction in the
 * ack tracker (one pseudo-operation), so a restart resumes from it.  The position confirmed is the
 * end_lsn of the newest transaction whose operations Qdrant acknowledged,
 * with everything before it (ack_tracker.h).
 */
#include "sync.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ack_tracker.h"
#include "backfill.h"
#include "rebuild.h"
#include "collection.h"
#include "log.h"
#include "metrics.h"
#include "pgoutput.h"
#include "preflight.h"
#include "qdrant_client.h"
#include "qop.h"
#include "relcache.h"
#include "replication.h"
#include "row_to_point.h"
#include "sink.h"
#include "snapshot.h"
#include "status.h"
#include "sync_policy.h"
#include "util.h"

#define PROTO_VERSION 1

typedef struct sync_stats {
    uint64_t changes;
    uint64_t skipped;
    uint64_t null_vectors;
    uint64_t txns;
} sync_stats;

typedef struct sync_state {
    const p2q_config *cfg;
    volatile sig_atomic_t *stop;
    PGconn *conn;
    PGconn *sql;       /* a plain connection for reading rows back (opened when first needed) */
    relcache *rels;
    ack_tracker *acks;
    qd_client *qd;
    sink *sink;
    p2q_metrics *metrics; /* borrowed; NULL: no endpoint server */
    backfill *bf;      /* the online backfill (SPEC §9, backfill.h) */
    rebuild *rb;       /* rebuilds behind an alias (SPEC §10, rebuild.h) */
    pgo_msg *msg;      /* decode target, reused (large) */
    pgo_options opts;
    qop_list txn_ops;  /* operations of the open transaction */
    qop_list dual_ops; /* their copies for a rebuild's new generation, pushed at the commit (rebuild.h) */
    bool in_txn;
    ack_txn txn;
    lsn_t txn_final_lsn;  /* the open transaction's Begin: final_lsn, commit_ts ... */
    int64_t txn_commit_ts;
    bool txn_has_ops;     /* ... told to the metrics at its first operation */
    lsn_t recv_lsn;    /* newest position received: 'write' */
    lsn_t sent_flush;  /* flush position of the last status update */
    int64_t last_status_ms;
    sync_stats stats;
    bool checked_tables;
    int64_t last_commit_ts; /* commit time of the newest transaction received (PostgreSQL epoch, µs) */
    bool streamed; /* the last session reached the CopyBoth loop */
    bool snapshotted; /* this process took its snapshot (sync.snapshot, snapshot.h) */
} sync_state;

static void log_lsn(log_level lvl, const char *msg, const char *key, lsn_t lsn)
{
    char s[LSN_BUFSZ];

    log_event(lvl, msg, key, lsn_fmt(lsn, s), NULL);
}

/* Sleeps up to ms, waking early when a stop is requested. */
static void sleep_interruptible(sync_state *st, int64_t ms)
{
    int64_t until = now_ms() + ms;

    while (!*st->stop) {
        int64_t left = until - now_ms();
        if (left <= 0)
            break;
        metrics_heartbeat(st->metrics);
        poll(NULL, 0, (int)(left > 100 ? 100 : left));
    }
}

/* The loop turned: heartbeat and the gauges that have no event of their own. */
static void publish_metrics(sync_state *st)
{
    if (!st->metrics)
        return;
    metrics_heartbeat(st->metrics);
    metrics_set_inflight(st->metrics, (int64_t)sink_queued_bytes(st->sink), (int64_t)ack_inflight_txns(st->acks));
    metrics_set_dead_letters(st->metrics, sink_get_stats(st->sink)->dead_letters);
}

static int send_status(sync_state *st, bool reply_requested)
{
    char err[256];
    lsn_t flush = ack_confirmed(st->acks);

    if (repl_send_status(st->conn, st->recv_lsn > flush ? st->recv_lsn : flush, flush, flush, reply_requested, err,
                         sizeof err) != 0) {
        log_error(err, NULL);
        return -1;
    }
    if (flush != st->sent_flush && log_enabled(LOG_DEBUG))
        log_lsn(LOG_DEBUG, "confirmed position", "flush_lsn", flush);
    st->sent_flush = flush;
    st->last_status_ms = now_ms();
    metrics_set_confirmed(st->metrics, flush);
    publish_metrics(st);
    return 0;
}

/* Sends a status update when time is due, or soon after the confirmed
 * position moved. */
static int maybe_send_status(sync_state *st)
{
    if (sync_status_due(now_ms() - st->last_status_ms, st->cfg->source.status_interval_ms,
                        ack_confirmed(st->acks) != st->sent_flush))
        return send_status(st, false);
    return 0;
}

/* The current mapping of op's table (the newest Relation message's). */
static const table_map *map_of(const sync_state *st, const qop *op)
{
    for (size_t i = 0, n = relcache_count(st->rels); i < n; i++) {
        const rel_entry *rel = relcache_at(st->rels, i);
        if (rel->map && map_table(rel->map) == op->table)
            return rel->map;
    }
    return NULL;
}

/*
 * Reads op's row by key: P2Q_OK with *res holding 0 or 1 rows, P2Q_STOPPED,
 * P2Q_RETRY (the replication connection died meanwhile) or P2Q_ERR_FATAL.  Connection trouble is retried like Qdrant's.  Under a
 * publication row filter only a row the filter publishes is read: a row
 * outside it reads as gone, as it is for the stream (pgoutput sent its
 * point's delete when it left the filter; docs/mapping.md).
 */
static p2q_status read_row(sync_state *st, const qop *op, const table_map *map, PGresult **res)
{
    buf sql;
    char err[512], ms[32];
    char *filter = NULL;
    int attempt = 0;
    p2q_status rc = P2Q_ERR_FATAL;

    buf_init(&sql);
    for (;;) {
        if (!st->sql && repl_connect(st->cfg->source.dsn, false, st->stop, &st->sql, err, sizeof err) != 0) {
            log_warn("cannot read a row back from PostgreSQL, retrying", "table", op->table->name, "key",
                     op->key_text, "error", err, NULL);
        } else if (snap_row_filter(st->sql, st->cfg->source.publication, op->table->schema, op->table->name, &filter,
                                   err, sizeof err) != 0 &&
                   PQstatus(st->sql) == CONNECTION_OK) {
            log_error("cannot read the publication's row filter", "table", op->table->qualified, "error", err, NULL);
            break;
        } else if (PQstatus(st->sql) != CONNECTION_OK) {
            log_warn("connection lost while reading a row back, retrying", "error", PQerrorMessage(st->sql), NULL);
            PQfinish(st->sql);
            st->sql = NULL;
        } else {
            map_select_sql(map, &sql);
            if (filter)
                buf_printf(&sql, " AND (%s)", filter);
            free(filter);
            filter = NULL;
            *res = PQexecParams(st->sql, sql.data, op->nkeys, NULL, (const char *const *)op->key_vals, NULL, NULL, 0);
            if (PQresultStatus(*res) == PGRES_TUPLES_OK) {
                rc = P2Q_OK;
                break;
            }
            if (PQstatus(st->sql) == CONNECTION_OK) {
                log_error("cannot read a row back from PostgreSQL", "table", op->table->qualified, "key", op->key_text,
                          "query", sql.data, "error", PQresultErrorMessage(*res), NULL);
                PQclear(*res);
                *res = NULL;
                break;
            }
            log_warn("connection lost while reading a row back, retrying", "error", PQerrorMessage(st->sql), NULL);
            PQclear(*res);
            *res = NULL;
            PQfinish(st->sql);
            st->sql = NULL;
        }
        {
            int64_t wait = backoff_jitter_ms(attempt++);
            snprintf_utf8(ms, sizeof ms, "%lld", (long long)wait);
            if (st->conn && send_status(st, false) != 0) {
                rc = P2Q_RETRY;
                break;
            }
            sleep_interruptible(st, wait);
            if (*st->stop) {
                rc = P2Q_STOPPED;
                break;
            }
        }
    }
    free(filter);
    buf_free(&sql);
    return rc;
}

/*
 * The sink's refetch callback (SPEC §3): a partial update whose point Qdrant
 * does not have, or a key change with unchanged TOASTed columns
 * (QOP_REFETCH): read the row by key and append its whole-row operation to
 * out, or nothing when the row is gone (a later change in the stream
 * deleted it).  The row read may be newer than op; the stream's later
 * changes to it follow, so the point converges.
 */
static p2q_status refetch(void *arg, const qop *op, qop_list *out)
{
    sync_state *st = arg;
    const table_map *map = map_of(st, op);
    PGresult *res = NULL;
    pgo_tuple *tup = NULL;
    map_info info;
    char err[512], l[LSN_BUFSZ];
    p2q_status rc;

    if (!map) {
        log_error("internal error: no mapping for a table with pending changes", "table", op->table->name, NULL);
        return P2Q_ERR_FATAL;
    }
    if ((rc = read_row(st, op, map, &res)) != P2Q_OK)
        return rc;
    if (PQntuples(res) == 0) {
        log_debug("row to read back is gone (or outside the publication's row filter); a later change deletes its "
                  "point", "table", op->table->name, "key", op->key_text, NULL);
        rc = P2Q_OK;
        goto cleanup;
    }
    tup = xcalloc(1, sizeof *tup);
    snap_result_tuple(res, 0, tup);
    if (map_row(map, tup, op->lsn, out, &info, err, sizeof err) != 0) {
        log_error("cannot map a row read back from PostgreSQL", "error", err, "lsn", lsn_fmt(op->lsn, l), NULL);
        rc = P2Q_ERR_FATAL;
        goto cleanup;
    }
    log_debug("row read back for a missing point or a key change", "table", op->table->name, "key", op->key_text,
              NULL);
    rc = P2Q_OK;
cleanup:
    free(tup);
    PQclear(res);
    return rc;
}

/* Hands the operations of the latest change to the sink (they count for
 * the open transaction until Qdrant acknowledges them).  A transaction
 * costs the ack tracker and the metrics an entry from its first operation
 * on only, so transactions without operations for us cost nothing. */
static p2q_status push_ops(sync_state *st)
{
    char t[24], l[LSN_BUFSZ];

    if (st->txn_ops.n == 0)
        return P2Q_OK;
    if (ack_add_ops(st->acks, st->txn, st->txn_ops.n) != 0) {
        snprintf(t, sizeof t, "%llu", (unsigned long long)st->txn);
        log_error("internal error: the acknowledgement tracker refused the open transaction's ticket", "ticket", t,
                  "commit_lsn", lsn_fmt(st->txn_final_lsn, l), NULL);
        return P2Q_ERR_FATAL;
    }
    if (!st->txn_has_ops) {
        metrics_txn_begin(st->metrics, st->txn_final_lsn, st->txn_commit_ts);
        st->txn_has_ops = true;
    }
    sink_push(st->sink, &st->txn_ops, st->txn);
    return P2Q_OK;
}

/* The sink's on_request callback: batch results, durations, retries and
 * Qdrant's last answer for /metrics and /readyz. */
static void on_sink_request(void *arg, const char *result, double seconds, size_t ops)
{
    sync_state *st = arg;
    char why[700];

    (void)ops;
    if (strcmp(result, "ok") == 0) {
        metrics_count_batch(st->metrics, METRICS_BATCH_OK, seconds);
        metrics_qdrant_ok(st->metrics);
        metrics_swap_state(st->metrics, "retrying", "streaming");
        return;
    }
    metrics_count_batch(st->metrics, strcmp(result, "retry") == 0 ? METRICS_BATCH_RETRY : METRICS_BATCH_REJECTED,
                        seconds);
    metrics_qdrant_failed(st->metrics, sink_get_stats(st->sink)->last_error);
    snprintf_utf8(why, sizeof why, "qdrant: %s", sink_get_stats(st->sink)->last_error);
    metrics_set_last_error(st->metrics, why);
    if (strcmp(result, "retry") == 0) {
        metrics_count_retry(st->metrics);
        metrics_swap_state(st->metrics, "streaming", "retrying");
    }
}

static char *rel_name(const rel_entry *rel)
{
    return xasprintf("%s.%s", rel->nspname, rel->relname);
}

/* Warns when a repeated Relation message changed the column set of a synced table. */
static void warn_schema_change(const rel_entry *old, const pgo_msg *m)
{
    bool same = old->natts == m->u.relation.natts;

    for (int i = 0; same && i < old->natts; i++)
        same = strcmp(old->attrs[i].name, m->u.relation.attrs[i].name) == 0 &&
               old->attrs[i].typid == m->u.relation.attrs[i].typid;
    if (!same) {
        char *t = rel_name(old);
        char *fix = xasprintf("pg2qdrant reconcile --fix --table %s", t);
        log_warn("table schema changed: points of rows the DDL touched keep their old payload", "table", t, "run",
                 fix, NULL);
        free(fix);
        free(t);
    }
}

static p2q_status on_relation(sync_state *st, const pgo_msg *m)
{
    rel_entry *old = relcache_get(st->rels, m->u.relation.relid), *rel;
    table_map *map = NULL;
    bool replaced;
    char err[512];

    if (old && old->map)
        warn_schema_change(old, m);
    rel = relcache_put(st->rels, m, &replaced);
    bf_on_relation(st->bf, rel);
    if (map_compile(st->cfg, rel, st->rels, &map, err, sizeof err) != 0) {
        log_error("cannot sync table", "error", err, NULL);
        return P2Q_ERR_FATAL;
    }
    rel->map = map;
    rel->map_compiled = true;
    return P2Q_OK;
}

static p2q_status on_change(sync_state *st, const pgo_msg *m, lsn_t lsn)
{
    rel_entry *rel = relcache_get(st->rels, m->u.change.relid);
    map_info info = {0};
    char err[512], relid[16];

    if (!rel) {
        snprintf_utf8(relid, sizeof relid, "%u", m->u.change.relid);
        log_error("protocol error: change for a relation never described by a Relation message", "relid", relid,
                  NULL);
        return P2Q_ERR_FATAL;
    }
    if (!st->in_txn) {
        log_error("protocol error: row change outside a transaction", NULL);
        return P2Q_ERR_FATAL;
    }
    if (!rel->map) {
        st->stats.skipped++;
        if (!rel->skip_logged) {
            char *t = rel_name(rel);
            log_info("skipping changes of a table that has no [table] section", "table", t, NULL);
            free(t);
            rel->skip_logged = true;
        }
        return P2Q_OK;
    }
    if (map_change(rel->map, m, lsn, &st->txn_ops, &info, err, sizeof err) != 0) {
        char l[LSN_BUFSZ];
        if (st->cfg->sync.on_error == ON_ERROR_DEAD_LETTER)
            return sink_dead_letter(st->sink, map_table(rel->map), NULL, NULL, pgo_msg_name(m->type), lsn, err,
                                    NULL, 0) == P2Q_OK
                       ? 0
                       : P2Q_ERR_FATAL;
        log_error("cannot map a row change; stopping with the slot before its transaction", "error", err, "lsn",
                  lsn_fmt(lsn, l), NULL);
        return P2Q_ERR_FATAL;
    }
    bf_observe(st->bf, &st->txn_ops, 0);
    rb_dual(st->rb, &st->txn_ops, 0, &st->dual_ops); /* a rebuild's new generation gets a copy */
    if (push_ops(st) != 0)
        return P2Q_ERR_FATAL;
    metrics_count_change(st->metrics, rel->nspname, rel->relname,
                         m->type == PGO_INSERT ? METRICS_INSERT : m->type == PGO_UPDATE ? METRICS_UPDATE : METRICS_DELETE,
                         1);
    st->stats.changes++;
    if (info.null_vector)
        st->stats.null_vectors++;
    return P2Q_OK;
}

static p2q_status on_truncate(sync_state *st, const pgo_msg *m, lsn_t lsn)
{
    for (uint32_t i = 0; i < m->u.truncate.nrelids; i++) {
        rel_entry *rel = relcache_get(st->rels, pgo_truncate_relid(m, i));
        if (!rel || !rel->map) {
            st->stats.skipped++;
            continue;
        }
        map_truncate(rel->map, lsn, &st->txn_ops);
        bf_observe(st->bf, &st->txn_ops, 0);
        rb_dual(st->rb, &st->txn_ops, 0, &st->dual_ops);
        if (push_ops(st) != 0)
            return P2Q_ERR_FATAL;
        metrics_count_change(st->metrics, rel->nspname, rel->relname, METRICS_TRUNCATE, 1);
        st->stats.changes++;
    }
    return P2Q_OK;
}

static p2q_status on_commit(sync_state *st, const pgo_msg *m)
{
    if (!st->in_txn) {
        log_error("protocol error: Commit without Begin", NULL);
        return P2Q_ERR_FATAL;
    }
    if (st->dual_ops.n) { /* the copies for a rebuild's new generation, after the transaction's own */
        qop_list own = st->txn_ops;
        st->txn_ops = st->dual_ops;
        st->dual_ops = own;
        if (push_ops(st) != 0)
            return P2Q_ERR_FATAL;
        own = st->txn_ops;
        st->txn_ops = st->dual_ops;
        st->dual_ops = own;
    }
    if (ack_commit(st->acks, st->txn, m->u.commit.end_lsn) != 0) {
        char t[24], l[LSN_BUFSZ];
        snprintf(t, sizeof t, "%llu", (unsigned long long)st->txn);
        log_error("internal error: the acknowledgement tracker refused the committing transaction's ticket", "ticket",
                  t, "end_lsn", lsn_fmt(m->u.commit.end_lsn, l), NULL);
        return P2Q_ERR_FATAL;
    }
    st->in_txn = false;
    st->stats.txns++;
    return P2Q_OK;
}

/* One pgoutput message (the payload of a 'w'). */
static p2q_status on_message(sync_state *st, const char *data, size_t len, lsn_t lsn)
{
    pgo_msg *m = st->msg;
    char err[256];

    if (pgo_decode(data, len, &st->opts, m, err, sizeof err) != 0) {
        char l[LSN_BUFSZ];
        log_error(err, "lsn", lsn_fmt(lsn, l), NULL);
        return P2Q_ERR_FATAL;
    }
    switch (m->type) {
    case PGO_BEGIN:
        if (st->in_txn) {
            log_error("protocol error: Begin inside a transaction", NULL);
            return P2Q_ERR_FATAL;
        }
        if ((st->txn = ack_begin(st->acks)) == ACK_NO_TXN) {
            log_error("internal error: the acknowledgement tracker has a transaction open already", NULL);
            return P2Q_ERR_FATAL;
        }
        st->in_txn = true;
        bf_on_begin(st->bf, m->xid);
        st->last_commit_ts = m->u.begin.commit_ts;
        st->txn_final_lsn = m->u.begin.final_lsn;
        st->txn_commit_ts = m->u.begin.commit_ts;
        st->txn_has_ops = false;
        return P2Q_OK;
    case PGO_COMMIT:
        return on_commit(st, m);
    case PGO_RELATION:
        return on_relation(st, m);
    case PGO_TYPE:
        relcache_put_type(st->rels, m);
        return P2Q_OK;
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
        return on_change(st, m, lsn);
    case PGO_TRUNCATE:
        return on_truncate(st, m, lsn);
    case PGO_MESSAGE:
        /* backfill requests and watermarks (docs/backfill.md); a chunk's
         * rows come back to be pushed in the watermark's transaction */
        if (bf_on_message(st->bf, m, lsn, st->in_txn, st->txn, &st->txn_ops) != P2Q_OK)
            return P2Q_ERR_FATAL;
        if (st->txn_ops.n && !st->in_txn) {
            log_error("internal error: backfill rows outside a transaction", NULL);
            return P2Q_ERR_FATAL;
        }
        rb_dual(st->rb, &st->txn_ops, 0, &st->dual_ops); /* another backfill's rows of a table being rebuilt */
        return push_ops(st);
    case PGO_ORIGIN:
        return P2Q_OK;
    default:
        log_error("protocol error: unexpected message for proto_version 1 without streaming or two-phase", "type",
                  pgo_msg_name(m->type), NULL);
        return P2Q_ERR_FATAL;
    }
}

static p2q_status on_copydata(sync_state *st, const char *data, size_t len)
{
    pgo_copydata cd;
    char err[256];

    if (pgo_decode_copydata(data, len, &cd, err, sizeof err) != 0) {
        log_error(err, NULL);
        return P2Q_ERR_FATAL;
    }
    if (cd.type == 'k') {
        if (cd.wal_end > st->recv_lsn)
            st->recv_lsn = cd.wal_end;
        ack_keepalive(st->acks, cd.wal_end);
        metrics_set_server_wal_end(st->metrics, cd.wal_end);
        metrics_set_received(st->metrics, st->recv_lsn);
        if (cd.reply_requested && send_status(st, false) != 0)
            return P2Q_RETRY;
        return P2Q_OK;
    }
    /* 'w': Relation/Type messages carry 0/0; never require increase. */
    if (cd.data_start > st->recv_lsn)
        st->recv_lsn = cd.data_start;
    metrics_set_received(st->metrics, st->recv_lsn);
    return on_message(st, cd.payload, cd.payload_len, cd.data_start);
}

/*
 * Whether the newest transaction received committed more than
 * flush_interval ago: the walsender is sending a backlog, so the next
 * message is probably on its way.  (Clocks of the two hosts are compared;
 * a skew only shifts the point where batching for throughput starts.)
 */
static bool catching_up(const sync_state *st)
{
    return st->last_commit_ts != 0 && pg_now_us() - st->last_commit_ts > st->cfg->sync.flush_interval_ms * 1000;
}

/* sink_drain's idle callback: keeps the walsender fed while draining. */
static int drain_idle(void *arg)
{
    return send_status(arg, false);
}

/* SIGTERM/SIGINT: stop reading, drain in-flight batches within
 * shutdown_timeout, final status update, CopyDone. */
static p2q_status stop_stream(sync_state *st)
{
    char err[256];
    int64_t deadline = now_ms() + st->cfg->sync.shutdown_timeout_ms;
    p2q_status rc;

    metrics_set_state(st->metrics, "stopping");
    rc = sink_drain(st->sink, deadline, NULL, drain_idle, st);

    if (rc == P2Q_STOPPED) {
        char n[24];
        snprintf_utf8(n, sizeof n, "%zu", sink_queued_ops(st->sink));
        log_warn("shutdown_timeout passed with operations unsent; they will be received again on restart",
                 "operations", n, NULL);
    } else if (rc != P2Q_OK) {
        return rc == P2Q_RETRY ? P2Q_RETRY : P2Q_ERR_FATAL; /* the idle callback gave up: the connection died */
    }
    if (st->in_txn)
        log_info("stopping inside a transaction; it will be received again on restart", NULL);
    if (send_status(st, false) != 0)
        return P2Q_STOPPED;
    if (repl_end_copy(st->conn, deadline > now_ms() + 1000 ? deadline : now_ms() + 1000, err, sizeof err) != 0)
        log_warn(err, NULL);
    return P2Q_STOPPED;
}

/* Messages handled before the loop looks at the sink again. */
#define READ_BURST 512

/*
 * The CopyBoth loop of one connection: read what the server has sent
 * (unless max_inflight is reached), hand it to the sink, then one poll over
 * the PostgreSQL socket and curl's sockets with a deadline for the next
 * status update, retry or flush.
 */
static p2q_status stream(sync_state *st)
{
    char *copybuf = NULL;

    for (;;) {
        int r = 0, rc, n = 0;
        bool consumed = false;
        bool paused = sink_full(st->sink);

        if (*st->stop)
            return stop_stream(st);
        if (maybe_send_status(st) != 0)
            return P2Q_RETRY;
        publish_metrics(st);

        while (!paused && n < READ_BURST) {
            r = PQgetCopyData(st->conn, &copybuf, 1);
            /* libpq's buffer is empty: read what the socket already holds
             * before calling the input ended (and sending a partial batch). */
            if (r == 0 && !consumed) {
                if (PQconsumeInput(st->conn) == 0) {
                    r = -2;
                    break;
                }
                consumed = true;
                r = PQgetCopyData(st->conn, &copybuf, 1);
            }
            if (r <= 0)
                break;
            consumed = false;
            rc = on_copydata(st, copybuf, (size_t)r);
            PQfreemem(copybuf);
            copybuf = NULL;
            if (rc != 0)
                return rc;
            if ((rc = sink_kick(st->sink, true)) != 0)
                return rc;
            paused = sink_full(st->sink);
            n++;
        }
        if (r == -1) {
            PGresult *res = PQgetResult(st->conn);
            log_error("replication stream ended by the server", "error",
                      res ? PQresultErrorMessage(res) : PQerrorMessage(st->conn), NULL);
            PQclear(res);
            return P2Q_RETRY;
        }
        if (r == -2) {
            log_error("replication connection lost", "error", PQerrorMessage(st->conn), NULL);
            return P2Q_RETRY;
        }
        /* r == 0 (nothing buffered), a full burst, or paused.  With nothing
         * buffered an idle sink sends its partial batch at once (latency),
         * unless we are catching up on a backlog: then more is coming and
         * the batch fills up (or waits flush_interval at most). */
        if ((rc = sink_kick(st->sink, r != 0 || paused || catching_up(st))) != 0)
            return rc;
        metrics_heartbeat(st->metrics); /* /livez: the loop turned */
        /* the online backfill: the next chunk when due (not while the sink is full) */
        if ((rc = bf_step(st->bf, sink_full(st->sink))) != 0)
            return rc;
        if ((rc = rb_step(st->rb)) != 0)
            return rc;
        if ((rc = sink_kick(st->sink, r != 0 || paused || catching_up(st))) != 0) /* what bf_step fed */
            return rc;
        {
            int wait = sync_poll_timeout_ms(st->last_status_ms + st->cfg->source.status_interval_ms - now_ms(),
                                            ack_confirmed(st->acks) != st->sent_flush, sink_timeout_ms(st->sink),
                                            n == READ_BURST);
            int bf_wait = bf_timeout_ms(st->bf), rb_wait = rb_timeout_ms(st->rb);
            struct pollfd pfd[2] = {{.fd = PQsocket(st->conn), .events = paused ? 0 : POLLIN}};
            int nfd = bf_pollfd(st->bf, &pfd[1]) ? 2 : 1;

            if (bf_wait >= 0 && (wait < 0 || bf_wait < wait))
                wait = bf_wait;
            if (rb_wait >= 0 && (wait < 0 || rb_wait < wait))
                wait = rb_wait;
            if (pfd[0].fd < 0) {
                log_error("invalid socket for the replication connection", NULL);
                return P2Q_RETRY;
            }
            if (sink_wait(st->sink, pfd, nfd, wait) != 0)
                return P2Q_RETRY;
            if ((rc = sink_progress(st->sink)) != 0)
                return rc;
            if (nfd == 2 && (rc = bf_progress(st->bf, pfd[1].revents)) != 0)
                return rc;
            if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) && PQconsumeInput(st->conn) == 0) {
                log_error("replication connection lost", "error", PQerrorMessage(st->conn), NULL);
                return P2Q_RETRY;
            }
        }
    }
}

/*
 * Before the first stream: the tables and collections as check-config sees
 * them (a missing table, key column or collection, REPLICA IDENTITY
 * NOTHING, a vector size mismatch are config errors), creating missing
 * collections when create_collections is set.
 */
static p2q_status check_tables(sync_state *st)
{
    strlist problems = {0};
    p2q_status rc = preflight_prepare(st->cfg, st->qd, true, st->stop, &problems);

    for (int i = 0; i < problems.n; i++) {
        if (rc == P2Q_RETRY)
            log_warn("cannot check the tables and collections yet", "error", problems.items[i], NULL);
        else
            log_error("cannot sync", "error", problems.items[i], NULL);
    }
    strlist_free(&problems);
    return rc;
}

/*
 * The sink's create_collection callback: a collection that did not exist
 * at start (its table had no row to tell the vector sizes) is created from
 * the first upsert sent to it.
 */
static p2q_status create_collection(void *arg, const qop *op)
{
    sync_state *st = arg;
    const table_cfg *t = op->table;
    int64_t *dims = xcalloc((size_t)t->n_vectors + 1, sizeof *dims);
    char err[900];
    bool transient = false;
    p2q_status rc = P2Q_ERR_FATAL;

    for (int i = 0; i < t->n_vectors; i++)
        dims[i] = -1;
    if (collection_dims_from_upsert(op, dims, err, sizeof err) != 0 ||
        collection_create(st->qd, t, dims, &transient, err, sizeof err) != 0) {
        log_error("cannot create a collection", "collection", t->collection, "error", err, NULL);
        goto cleanup;
    }
    log_info("collection created", "collection", t->collection, "table", t->name, NULL);
    rc = P2Q_OK;
cleanup:
    free(dims);
    return rc;
}

/* SPEC §4, before START_REPLICATION: snapshot.h's snap_for_run. */
static p2q_status run_snapshot(sync_state *st, const char *snapshot_name, bool created_slot)
{
    p2q_status rc = snap_for_run(st->cfg, st->conn, snapshot_name, created_slot, st->sink, st->metrics, st->stop);

    st->snapshotted = rc == P2Q_OK;
    /* Stopped: not P2Q_OK (the caller must not stream); the loop sees *stop. */
    return rc == P2Q_STOPPED ? P2Q_RETRY : rc;
}

/*
 * snapshot = always with a slot that exists: instead of one long
 * REPEATABLE READ transaction before streaming, an online backfill of
 * every configured table is requested (written into the WAL before
 * START_REPLICATION, so this session's stream carries it out, in chunks,
 * while it streams: docs/backfill.md).  Once per process, as the snapshot
 * was.
 */
static p2q_status request_backfill_at_start(sync_state *st)
{
    PGconn *conn = NULL;
    char err[512], id[64];
    p2q_status rc;

    if (PQserverVersion(st->conn) < 140000) /* no logical decoding messages: the snapshot of old */
        return run_snapshot(st, NULL, false);
    if ((rc = repl_connect(st->cfg->source.dsn, false, st->stop, &conn, err, sizeof err)) != P2Q_OK) {
        log_error("cannot connect to PostgreSQL to request the backfill at start", "error", err, NULL);
        return rc == P2Q_ERR_CONFIG ? P2Q_ERR_CONFIG : P2Q_RETRY;
    }
    if (bf_request(st->cfg, conn, NULL, 0, NULL, 0, id, sizeof id, err, sizeof err) != 0) {
        log_error("cannot write the backfill request of snapshot = always into the WAL", "error", err, NULL);
        rc = PQstatus(conn) == CONNECTION_OK ? P2Q_ERR_FATAL : P2Q_RETRY;
    } else {
        log_info("snapshot at start (snapshot = always): online backfill of every table requested; it runs while "
                 "streaming", "id", id, "lsn", err, NULL);
        st->snapshotted = true;
        rc = P2Q_OK;
    }
    PQfinish(conn);
    return rc;
}

/* Slot checks and creation (SPEC §5). */
static p2q_status prepare_slot(sync_state *st)
{
    const p2q_config *cfg = st->cfg;
    repl_slot slot;
    char err[512], l[LSN_BUFSZ];

    if (repl_get_slot(st->conn, cfg->source.slot, &slot, err, sizeof err) != 0) {
        log_error(err, NULL);
        return P2Q_RETRY;
    }
    if (slot.exists) {
        if (strcmp(slot.slot_type, "logical") != 0 || strcmp(slot.plugin, "pgoutput") != 0) {
            log_error("replication slot is not a logical pgoutput slot; drop it or choose another [source] slot",
                      "slot", cfg->source.slot, "plugin", slot.plugin, NULL);
            return P2Q_ERR_FATAL;
        }
        if (strcmp(slot.wal_status, "lost") == 0 || slot.invalidation[0]) {
            log_error("replication slot is invalidated (WAL it needed was removed); the changes since are lost to "
                      "it. Remedy: pg2qdrant slot drop, then start again with snapshot = initial (or run pg2qdrant "
                      "snapshot) to rebuild the collections",
                      "slot", cfg->source.slot, "wal_status", slot.wal_status, "invalidation_reason",
                      slot.invalidation, NULL);
            return P2Q_ERR_FATAL;
        }
        ack_seed(st->acks, slot.confirmed_flush);
        log_info("using replication slot", "slot", cfg->source.slot, "confirmed_flush_lsn",
                 lsn_fmt(slot.confirmed_flush, l), NULL);
        if (cfg->sync.snapshot == SNAPSHOT_ALWAYS && !st->snapshotted)
            return request_backfill_at_start(st);
        return P2Q_OK;
    }
    if (!cfg->source.create_slot) {
        log_error("replication slot does not exist and [source] create_slot = false", "slot", cfg->source.slot, NULL);
        return P2Q_ERR_FATAL;
    }
    {
        lsn_t at;
        bool existed, want = cfg->sync.snapshot != SNAPSHOT_NEVER && !st->snapshotted;
        char snapname[REPL_SNAPSHOT_NAME_LEN];
        if (repl_create_slot_snapshot(st->conn, cfg->source.slot, want, &at, &existed, snapname, sizeof snapname, err,
                                      sizeof err) != 0) {
            log_error(err, NULL);
            return PQstatus(st->conn) != CONNECTION_OK ? P2Q_RETRY : P2Q_ERR_FATAL;
        }
        if (!existed)
            log_info("replication slot created", "slot", cfg->source.slot, "consistent_point", lsn_fmt(at, l), NULL);
        if (want && !existed)
            return run_snapshot(st, snapname, true);
        if (want && cfg->sync.snapshot == SNAPSHOT_ALWAYS)
            return request_backfill_at_start(st); /* created meanwhile by another process */
    }
    return P2Q_OK;
}

/* One connection: connect, check, start, stream. */
static p2q_status session(sync_state *st)
{
    const p2q_config *cfg = st->cfg;
    repl_system sys;
    char err[512], sqlstate[6], l[LSN_BUFSZ];
    bool standby, created;
    p2q_status rc;

    st->streamed = false;
    metrics_set_state(st->metrics, "connecting");
    if ((rc = repl_connect(cfg->source.dsn, true, st->stop, &st->conn, err, sizeof err)) != 0 ||
        repl_identify_system(st->conn, &sys, err, sizeof err) != 0) {
        if (rc == P2Q_STOPPED)
            return P2Q_STOPPED;
        log_error(err, NULL);
        metrics_set_last_error(st->metrics, err);
        return rc == P2Q_ERR_CONFIG ? P2Q_ERR_CONFIG : P2Q_RETRY;
    }
    if (repl_in_recovery(st->conn, &standby, err, sizeof err) != 0) {
        log_error(err, NULL);
        return P2Q_RETRY;
    }
    if (standby) {
        log_info("connected to a standby; waiting for a promotion", "reason", "standby", NULL);
        metrics_set_state(st->metrics, "standby");
        return P2Q_STANDBY;
    }
    if (!st->checked_tables) {
        if ((rc = check_tables(st)) != 0)
            return rc;
        st->checked_tables = true;
    }
    if (repl_ensure_publication(st->conn, cfg, cfg->source.create_publication, &created, err, sizeof err) != 0) {
        log_error(err, NULL);
        return PQstatus(st->conn) != CONNECTION_OK ? P2Q_RETRY : P2Q_ERR_CONFIG; /* lost: not a config error */
    }
    if (created)
        log_info("publication created", "publication", cfg->source.publication, NULL);
    if ((rc = prepare_slot(st)) != 0)
        return rc;
    if (repl_start(st->conn, cfg->source.slot, cfg->source.publication, LSN_INVALID, PROTO_VERSION, sqlstate, err,
                   sizeof err) != 0) {
        log_error(err, NULL);
        return sync_start_failure(sqlstate, PQstatus(st->conn) == CONNECTION_OK);
    }
    log_info("streaming started", "slot", cfg->source.slot, "publication", cfg->source.publication, "database",
             sys.dbname, "server_wal_end", lsn_fmt(sys.xlogpos, l), NULL);
    st->streamed = true;
    metrics_set_state(st->metrics, "streaming");
    metrics_set_pg_connected(st->metrics, true);
    st->last_status_ms = 0; /* first status update right away */
    st->sent_flush = LSN_INVALID;
    return stream(st);
}

static void end_session(sync_state *st)
{
    if (st->conn)
        PQfinish(st->conn);
    st->conn = NULL;
    st->in_txn = false;
    qop_list_clear(&st->txn_ops);
    qop_list_clear(&st->dual_ops);
    sink_reset(st->sink);
    /* The server resends everything after the confirmed position. */
    ack_reset_inflight(st->acks);
    bf_session_start(st->bf); /* its holds went with the tracker's entries; the stream brings them again */
    rb_session_start(st->rb);
    st->opts.in_stream = false;
    metrics_set_pg_connected(st->metrics, false);
    metrics_set_inflight(st->metrics, 0, 0);
}

/* The backfill's hooks for the rebuild (backfill.h bf_env). */
static void on_backfill_finish(void *arg, const char *id, const char *error)
{
    sync_state *st = arg;

    if (st->rb)
        rb_on_backfill_finish(st->rb, id, error);
}

static p2q_status on_rebuild(void *arg, const bfm *m, lsn_t lsn, bool in_txn, ack_txn txn)
{
    sync_state *st = arg;

    return st->rb ? rb_on_request(st->rb, m, lsn, in_txn, txn) : P2Q_OK;
}

p2q_status sync_run(const p2q_config *cfg, volatile sig_atomic_t *stop, p2q_metrics *metrics)
{
    sync_state st = {0};
    p2q_status code = P2Q_ERR_FATAL;
    int attempt = 0;
    char l[LSN_BUFSZ];

    st.cfg = cfg;
    st.stop = stop;
    st.metrics = metrics;
    st.rels = relcache_new(map_free);
    st.acks = ack_new();
    st.msg = xmalloc(sizeof(pgo_msg));

    st.opts.proto_version = PROTO_VERSION;
    st.qd = qd_client_new(cfg->qdrant.url, cfg->qdrant.api_key, cfg->qdrant.timeout_ms);
    if (!st.qd) {
        log_error("cannot initialise the HTTP client", NULL);
        goto cleanup;
    }
    if (qd_client_set_ca_file(st.qd, cfg->qdrant.ca_file) != 0) {
        log_error("cannot use [qdrant] ca_file", "file", cfg->qdrant.ca_file, NULL);
        code = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    {
        sink_env env = {.cfg = cfg, .qd = st.qd, .acks = st.acks, .refetch = refetch, .refetch_arg = &st,
                        .on_request = on_sink_request, .on_request_arg = &st};
        if (cfg->qdrant.create_collections) {
            env.create_collection = create_collection;
            env.create_collection_arg = &st;
        }
        st.sink = sink_new(&env);
    }
    {
        bf_env be = {.cfg = cfg, .acks = st.acks, .metrics = metrics, .stop = stop, .sink = st.sink,
                     .on_finish = on_backfill_finish, .on_rebuild = on_rebuild, .arg = &st};
        rb_env re = {.cfg = cfg, .qd = st.qd, .sink = st.sink, .acks = st.acks, .metrics = metrics};
        st.bf = bf_new(&be);
        re.bf = st.bf;
        st.rb = rb_new(&re);
    }
    srandom((unsigned)now_ms());

    for (;;) {
        p2q_status rc = session(&st);
        sync_next next;

        end_session(&st);
        if ((next = sync_after_session(rc, *stop != 0, &code)) == SYNC_NEXT_EXIT)
            break;
        if (st.streamed)
            attempt = 0; /* the connection worked for a while: start the backoff over */
        {
            int64_t wait = next == SYNC_NEXT_STANDBY ? SYNC_STANDBY_RECHECK_MS : backoff_jitter_ms(attempt++);
            char ms[32];
            snprintf_utf8(ms, sizeof ms, "%lld", (long long)wait);
            log_info("reconnecting", "in_ms", ms, NULL);
            if (next != SYNC_NEXT_STANDBY)
                metrics_set_state(metrics, "reconnecting");
            sleep_interruptible(&st, wait);
        }
        if (*stop) {
            code = P2Q_STOPPED;
            break;
        }
    }
    {
        char c[4][24];
        snprintf_utf8(c[0], sizeof c[0], "%llu", (unsigned long long)st.stats.changes);
        snprintf_utf8(c[1], sizeof c[1], "%llu", (unsigned long long)st.stats.txns);
        snprintf_utf8(c[2], sizeof c[2], "%llu", (unsigned long long)sink_get_stats(st.sink)->requests);
        snprintf_utf8(c[3], sizeof c[3], "%llu", (unsigned long long)st.stats.skipped);
        metrics_set_state(metrics, "stopped");
        log_info("stopped", "confirmed_lsn", lsn_fmt(ack_confirmed(st.acks), l), "changes", c[0], "transactions",
                 c[1], "batches", c[2], "skipped_changes", c[3], NULL);
    }

cleanup:
    if (st.sql)
        PQfinish(st.sql);
    rb_free(st.rb);
    bf_free(st.bf);
    sink_free(st.sink);
    qd_client_free(st.qd);
    relcache_free(st.rels);
    ack_free(st.acks);
    free(st.msg);
    qop_list_free(&st.txn_ops);
    qop_list_free(&st.dual_ops);
    return code;
}
