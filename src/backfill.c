/*
 * backfill.c — the online backfill inside `run` (SPEC §9, backfill.h,
 * docs/backfill.md): requests and watermarks from the stream, chunk reads
 * on a plain connection, the watermark window, holds on the ack tracker.
 *
 *   request 'M' ──> queue ──> per table: describe, then per chunk:
 *     LW emit ──> SELECT ... WHERE (key) > (from) ORDER BY key LIMIT n ──> HW emit
 *     stream: LW arrives: window opens; changes of the table: bf_observe;
 *             HW arrives: rows mapped, changed points dropped, rest pushed in HW's txn
 *
 * Every query of the backfill is sent with PQsendQueryParams and read when
 * its socket is readable (bf_pollfd/bf_progress): the main loop never waits
 * for PostgreSQL here, except for the catalog queries that describe a
 * table when its backfill starts.
 */
#include "backfill.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backfill_wm.h"
#include "log.h"
#include "metrics.h"
#include "replication.h"
#include "row_to_point.h"
#include "sink.h"
#include "snapshot.h"
#include "util.h"

#define BF_PROGRESS_MS 5000
#define BF_HISTORY 16
#define BF_LATE_FIRST_MS 5    /* a chunk read again for a late transaction: after 5 ms, doubling ... */
#define BF_LATE_MAX_MS 1000   /* ... up to 1 s */

typedef enum {
    BF_IDLE,      /* no request */
    BF_DESCRIBE,  /* the current table is to be described */
    BF_NEED_CHUNK,/* the next chunk is due (when the sink has room) */
    BF_LW_SENT,   /* the low watermark's emit is in flight */
    BF_READING,   /* the chunk's SELECT is in flight */
    BF_HW_SENT,   /* the high watermark's emit is in flight */
    BF_HW_WAIT,   /* rows read; waiting for the high watermark in the stream */
    BF_DRAIN,     /* every table read: waiting until Qdrant acknowledged the operations */
} bf_phase;

typedef struct bf_req {
    char *id;
    bfm_list tables; /* the tables left, the current one first ("schema.name") */
    bfm_list from;   /* where the current table resumes (has = false: at its start) */
    ack_txn hold;    /* the request's (or adopted watermark's) transaction, held until our first watermark */
    char *errors;    /* the failures so far, "; "-joined, or NULL */
    uint64_t rows_done, chunks_done, rows_estimate;
    bool keyed;       /* a keyed request (reconcile --fix): only keys[], its hold kept to its end */
    bfm_keyset *keys; /* keyed: the keys per table (table: "schema.name" as in tables) */
    int nkeys;
    size_t key_pos;   /* keyed: the current table's keys before this one are done */
    char *collection; /* a rebuild's backfill (bf_enqueue_for): the target collection; else NULL */
    struct bf_req *next;
} bf_req;

typedef struct bf_done {
    char *id;
    bool failed;
    char *error;
    uint64_t rows_done, chunks_done; /* by this process */
} bf_done;

struct backfill {
    bf_env env;
    char run[24];      /* this session's token */
    uint64_t chunk;    /* the current chunk's number (this session) */
    PGconn *conn;
    int64_t retry_at;  /* connection trouble: next attempt (now_ms) */
    int attempt;
    bf_phase phase;
    bf_req *cur, *queue;
    strlist seen;      /* request ids known to this session */
    snap_table table;  /* the current table, described; table.cfg NULL when none */
    bool described;
    char *select_sql;  /* the chunk query of the current table, without/with a key condition */
    char *select_from_sql;
    char *select_keys_sql; /* keyed: WHERE (key) IN (SELECT * FROM ROWS FROM (unnest($1::t1[]), ...)) */
    qop_list chunk_ops; /* the chunk's rows, mapped as they arrived (single-row mode), waiting for its
                         * high watermark; their lsn is set then */
    int chunk_nrows;    /* rows of the table in the chunk */
    bool rows_ready;    /* the chunk's query is complete */
    PGresult *last_row; /* ordered chunk: the newest row (its key is where the next chunk starts) */
    char *row_error;    /* a row that could not be mapped (the chunk fails its table) */
    bfm_list chunk_to; /* its last key */
    bool window_seen;  /* the low watermark of the current chunk came back */
    bf_window win;
    bf_snapshot snap;  /* the chunk read's snapshot (backfill_wm.h: why) */
    bf_ring ring;      /* the xids the stream delivered */
    uint64_t lw_at;    /* ring.n when the chunk's low watermark came back */
    uint64_t rereads;  /* chunks read again because a transaction was late to become visible */
    int late_in_row;   /* ... in a row for the current chunk */
    int64_t next_chunk_at; /* after such a re-read: not before this (now_ms) */
    ack_txn wm_hold;   /* the newest watermark's transaction, held */
    /* Chunks applied at their high watermark and fed to the sink a batch at
     * a time (feed), so a streamed change never waits behind a whole chunk:
     * held.items[held_head..n), each counted in its high watermark's
     * transaction (held_txn, parallel) when it was applied.  A streamed
     * change of a held point first sends the held operations up to it. */
    qop_list held;
    ack_txn *held_txn;
    size_t held_head, held_cap;
    keyset held_keys;
    uint64_t held_overtaken; /* streamed changes that sent held operations first */
    bool drain_marked;       /* BF_DRAIN: every held operation is in the sink, up to drain_mark */
    uint64_t drain_mark;
    int64_t table_start_ms, last_log_ms;
    uint64_t table_rows;
    bool busy;         /* a query is in flight on conn ... */
    bf_phase sent_in;  /* ... sent in this phase (its answer is stale once the phase moved on) */
    pgo_tuple *tup;    /* reused for mapping rows */
    PGresult *pending; /* the answer of the query in flight, before its end */
    int64_t t_start, t_read; /* the chunk's low watermark sent, its rows read (now_ms, for the debug log) */
    bf_done history[BF_HISTORY];
    int nhistory;
    char *last_error;
};

static void publish(backfill *b);

backfill *bf_new(const bf_env *env)
{
    backfill *b = xcalloc(1, sizeof *b);

    b->env = *env;
    bf_session_start(b);
    publish(b);
    return b;
}

static void req_free(bf_req *r)
{
    if (!r)
        return;
    free(r->id);
    bfm_list_free(&r->tables);
    bfm_list_free(&r->from);
    for (int i = 0; i < r->nkeys; i++)
        bfm_keyset_free(&r->keys[i]);
    free(r->keys);
    free(r->errors);
    free(r->collection);
    free(r);
}

static void release(backfill *b, ack_txn *t)
{
    if (*t != ACK_NO_TXN && ack_done_ops(b->env.acks, *t, 1) != 0)
        log_warn("internal error: the acknowledgement tracker refused to release a backfill hold", NULL);
    *t = ACK_NO_TXN;
}

static void drop_chunk(backfill *b)
{
    qop_list_free(&b->chunk_ops);
    b->chunk_nrows = 0;
    b->rows_ready = false;
    PQclear(b->last_row);
    b->last_row = NULL;
    free(b->row_error);
    b->row_error = NULL;
    bfs_free(&b->snap);
    bfm_list_free(&b->chunk_to);
    bfw_close(&b->win);
    b->window_seen = false;
}

static size_t held_left(const backfill *b)
{
    return b->held.n - b->held_head;
}

/* Sends the first n held operations to the sink (in order, each with its
 * transaction's ticket). */
static void feed(backfill *b, size_t n)
{
    qop_list run = {0};

    while (n > 0 && b->held_head < b->held.n) {
        ack_txn txn = b->held_txn[b->held_head];
        while (n > 0 && b->held_head < b->held.n && b->held_txn[b->held_head] == txn) {
            qop *op = &b->held.items[b->held_head++];
            keyset_del(&b->held_keys, sink_op_key(op));
            *qop_list_push(&run) = *op;
            memset(op, 0, sizeof *op);
            n--;
        }
        sink_push(b->env.sink, &run, txn);
    }
    qop_list_free(&run);
    if (b->held_head == b->held.n) {
        qop_list_clear(&b->held);
        b->held_head = 0;
    }
}

/* Holds ops (taking their fields; ops is left empty), counted in txn. */
static void hold_ops(backfill *b, qop_list *ops, ack_txn txn)
{
    if (b->held_head > 0) { /* the sent prefix goes */
        size_t left = held_left(b);
        memmove(b->held.items, b->held.items + b->held_head, left * sizeof *b->held.items);
        memmove(b->held_txn, b->held_txn + b->held_head, left * sizeof *b->held_txn);
        b->held.n = left;
        b->held_head = 0;
    }
    if (b->held.n + ops->n > b->held_cap) {
        b->held_cap = (b->held.n + ops->n) * 2;
        b->held_txn = xrealloc(b->held_txn, b->held_cap * sizeof *b->held_txn);
    }
    for (size_t i = 0; i < ops->n; i++) {
        b->held_txn[b->held.n] = txn;
        keyset_add(&b->held_keys, sink_op_key(&ops->items[i]));
        *qop_list_push(&b->held) = ops->items[i];
        memset(&ops->items[i], 0, sizeof ops->items[i]);
    }
    ops->n = 0;
}

/* Frees the held operations without sending them (their transactions'
 * entries were dropped: a new session). */
static void drop_held(backfill *b)
{
    qop_list_free(&b->held);
    free(b->held_txn);
    b->held_txn = NULL;
    b->held_head = b->held_cap = 0;
    keyset_clear(&b->held_keys);
}

static void drop_table(backfill *b)
{
    drop_chunk(b);
    if (b->described)
        snap_table_free(&b->table);
    b->described = false;
    free(b->select_sql);
    free(b->select_from_sql);
    free(b->select_keys_sql);
    b->select_sql = b->select_from_sql = b->select_keys_sql = NULL;
}

void bf_session_start(backfill *b)
{
    bf_req *r;

    /* Holds died with the ack tracker's in-flight entries (ack_reset_inflight). */
    drop_table(b);
    drop_held(b);
    req_free(b->cur);
    b->cur = NULL;
    while ((r = b->queue)) {
        b->queue = r->next;
        req_free(r);
    }
    strlist_free(&b->seen);
    b->wm_hold = ACK_NO_TXN;
    b->phase = BF_IDLE;
    PQclear(b->pending);
    b->pending = NULL;
    if (b->conn && b->busy) {
        PQfinish(b->conn); /* a query in flight: its answer is of no use */
        b->conn = NULL;
    }
    b->busy = false;
    snprintf(b->run, sizeof b->run, "%llx%04lx", (unsigned long long)now_ms(), (unsigned long)(random() & 0xffff));
    b->chunk = 0;
}

void bf_free(backfill *b)
{
    if (!b)
        return;
    bf_session_start(b);
    bfw_free(&b->win);
    bfr_free(&b->ring);
    keyset_free(&b->held_keys);
    for (int i = 0; i < b->nhistory; i++) {
        free(b->history[i].id);
        free(b->history[i].error);
    }
    free(b->last_error);
    free(b->tup);
    if (b->conn)
        PQfinish(b->conn);
    free(b);
}

/* Room to read the next chunk, with `incoming` operations about to be held:
 * the backfill's operations in memory (held, queued in the sink, and the
 * chunk being read) stay within two chunks, and the backfill at most about
 * two chunks ahead of Qdrant's acknowledgements (what a restart reads
 * again).  With a sink that keeps up, the next read starts at once. */
static bool room_for_chunk(const backfill *b, size_t incoming)
{
    return !b->env.sink || sink_queued_ops(b->env.sink) + held_left(b) + incoming <=
                               (size_t)b->env.cfg->sync.backfill_chunk_rows;
}

uint64_t bf_rows_done(const backfill *b, const char *id)
{
    return b->cur && id && strcmp(b->cur->id, id) == 0 ? b->cur->rows_done : 0;
}

bool bf_active(const backfill *b)
{
    return b->cur || b->queue;
}

int bf_request(const p2q_config *cfg, PGconn *conn, const char *const *tables, int ntables, const bfm_keyset *keys,
               int nkeys, char *id, size_t idlen, char *err, size_t errlen)
{
    static unsigned long seq, seed; /* several requests of one process: distinct ids */
    const char *params[1];
    PGresult *res;
    buf json;
    int rc = 0;

    if (seq == 0)
        seed = (unsigned long)random();
    snprintf(id, idlen, "%llx-%ld-%04lx", (unsigned long long)time(NULL), (long)getpid(), (seed + seq++) & 0xffff);
    buf_init(&json);
    bfm_format_request(&json, cfg->source.slot, id, tables, ntables, keys, nkeys);
    params[0] = json.data;
    res = PQexecParams(conn, "SELECT pg_catalog.pg_logical_emit_message(true, '" BF_PREFIX "', $1)::text", 1, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        repl_error_line(res, conn, err, errlen);
        rc = -1;
    } else {
        snprintf(err, errlen, "%s", PQgetvalue(res, 0, 0)); /* the message's LSN, for the caller's log */
    }
    PQclear(res);
    buf_free(&json);
    return rc;
}

/* ---- /status ---------------------------------------------------------------- */

static void publish(backfill *b)
{
    json_t *o = json_object(), *q = json_array(), *f = json_array();
    const bf_done *last = b->nhistory ? &b->history[b->nhistory - 1] : NULL;
    const char *state = b->cur ? "running" : last ? (last->failed ? "failed" : "done") : "idle";
    char *s;

    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "id", b->cur ? json_string(b->cur->id) : last ? json_string(last->id) : json_null());
    json_object_set_new(o, "table", b->cur && b->cur->tables.n ? json_string(b->cur->tables.v[0]) : json_null());
    json_object_set_new(o, "rows_done", json_integer(b->cur ? (json_int_t)b->cur->rows_done : 0));
    json_object_set_new(o, "rows_total_estimate",
                        json_integer(b->cur ? (json_int_t)(b->cur->rows_estimate > b->cur->rows_done
                                                                ? b->cur->rows_estimate
                                                                : b->cur->rows_done)
                                            : 0));
    json_object_set_new(o, "chunks_done", json_integer(b->cur ? (json_int_t)b->cur->chunks_done : 0));
    json_object_set_new(o, "chunks_read_again", json_integer((json_int_t)b->rereads));
    json_object_set_new(o, "held_sent_early", json_integer((json_int_t)b->held_overtaken));
    json_object_set_new(o, "last_error", b->last_error ? json_string(b->last_error) : json_null());
    for (bf_req *r = b->queue; r; r = r->next)
        json_array_append_new(q, json_string(r->id));
    json_object_set_new(o, "queued", q);
    for (int i = 0; i < b->nhistory; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "id", json_string(b->history[i].id));
        json_object_set_new(e, "state", json_string(b->history[i].failed ? "failed" : "done"));
        json_object_set_new(e, "error", b->history[i].error ? json_string(b->history[i].error) : json_null());
        json_object_set_new(e, "rows_done", json_integer((json_int_t)b->history[i].rows_done));
        json_object_set_new(e, "chunks_done", json_integer((json_int_t)b->history[i].chunks_done));
        json_array_append_new(f, e);
    }
    json_object_set_new(o, "finished", f);
    s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    metrics_set_backfill(b->env.metrics, s);
    free(s);
    json_decref(o);
}

/* ---- requests ------------------------------------------------------------------ */


static void history_add(backfill *b, const char *id, const char *error, uint64_t rows, uint64_t chunks)
{
    if (b->nhistory == BF_HISTORY) {
        free(b->history[0].id);
        free(b->history[0].error);
        memmove(&b->history[0], &b->history[1], (BF_HISTORY - 1) * sizeof b->history[0]);
        b->nhistory--;
    }
    b->history[b->nhistory++] = (bf_done){.id = xstrdup(id), .failed = error != NULL,
                                          .error = error ? xstrdup(error) : NULL, .rows_done = rows,
                                          .chunks_done = chunks};
}

static void set_error(backfill *b, const char *error)
{
    free(b->last_error);
    b->last_error = xstrdup(error);
}

/* Holds txn (the open transaction of a watermark or request) in the ack tracker. */
static p2q_status hold(backfill *b, bool in_txn, ack_txn txn, ack_txn *slot)
{
    *slot = ACK_NO_TXN;
    if (!in_txn)
        return P2Q_OK; /* a non-transactional message: nothing to hold (ours are transactional) */
    if (ack_add_ops(b->env.acks, txn, 1) != 0) {
        log_error("internal error: the acknowledgement tracker refused a backfill hold", NULL);
        return P2Q_ERR_FATAL;
    }
    *slot = txn;
    return P2Q_OK;
}

static void enqueue(backfill *b, bf_req *r)
{
    bf_req **p = &b->queue;

    while (*p)
        p = &(*p)->next;
    *p = r;
}

/* A keyed request: its tables are those of its keys (configured, with keys). */
static void keyed_tables(bf_req *r, bfm *m, const p2q_config *cfg)
{
    r->keyed = true;
    r->keys = bfm_keysets_take(m->keys, m->nkeys);
    for (int i = 0; i < m->nkeys; i++) {
        const table_cfg *t = config_find_qualified(cfg, r->keys[i].table);
        if (!t || r->keys[i].n == 0) {
            if (!t)
                log_warn("backfill request names a table that has no [table] section; skipped", "id", m->id, "table",
                         r->keys[i].table, NULL);
            bfm_keyset_free(&r->keys[i]);
            continue;
        }
        free(r->keys[i].table);
        r->keys[i].table = xstrdup(t->qualified);
        r->keys[r->nkeys++] = r->keys[i];
        if (r->nkeys - 1 != i)
            memset(&r->keys[i], 0, sizeof r->keys[i]);
        r->tables.v[r->tables.n++] = xstrdup(t->qualified);
    }
}

static p2q_status on_request(backfill *b, bfm *m, bool in_txn, ack_txn txn, lsn_t lsn)
{
    const p2q_config *cfg = b->env.cfg;
    bf_req *r;
    char l[LSN_BUFSZ];
    buf names;

    if (strlist_has(&b->seen, m->id)) {
        log_debug("backfill request seen already in this session; ignored", "id", m->id, NULL);
        return P2Q_OK;
    }
    strlist_add(&b->seen, "%s", m->id);
    r = xcalloc(1, sizeof *r);
    r->id = xstrdup(m->id);
    r->tables.v = xcalloc((size_t)(m->tables.n > cfg->n_tables ? m->tables.n : cfg->n_tables) + (size_t)m->nkeys + 1,
                          sizeof(char *));
    r->tables.has = true;
    if (m->keyed)
        keyed_tables(r, m, cfg);
    else if (m->tables.n == 0) {
        for (int i = 0; i < cfg->n_tables; i++)
            r->tables.v[r->tables.n++] = xstrdup(cfg->tables[i].qualified);
    }
    for (int i = 0; i < m->tables.n && !m->keyed; i++) {
        const table_cfg *t = config_find_qualified(cfg, m->tables.v[i]);
        if (!t) {
            log_warn("backfill request names a table that has no [table] section; skipped", "id", m->id, "table",
                     m->tables.v[i], NULL);
            continue;
        }
        r->tables.v[r->tables.n++] = xstrdup(t->qualified);
    }
    buf_init(&names);
    for (int i = 0; i < r->tables.n; i++)
        buf_printf(&names, "%s%s", i ? "," : "", r->tables.v[i]);
    if (r->tables.n == 0) {
        log_warn("backfill request names no configured table; nothing to do", "id", m->id, NULL);
        history_add(b, r->id, "no configured table in the request", 0, 0);
        set_error(b, "no configured table in the request");
        req_free(r);
        buf_free(&names);
        publish(b);
        return P2Q_OK;
    }
    if (hold(b, in_txn, txn, &r->hold) != P2Q_OK) {
        req_free(r);
        buf_free(&names);
        return P2Q_ERR_FATAL;
    }
    {
        char nk[24];
        size_t total = 0;
        for (int i = 0; i < r->nkeys; i++)
            total += r->keys[i].n;
        snprintf(nk, sizeof nk, "%zu", total);
        log_info(b->cur || b->queue ? "backfill requested; queued behind the one running" : "backfill requested",
                 "id", r->id, "tables", names.data, "keys", r->keyed ? nk : NULL, "lsn", lsn_fmt(lsn, l), NULL);
    }
    buf_free(&names);
    enqueue(b, r);
    publish(b);
    return P2Q_OK;
}

void bf_enqueue_for(backfill *b, const char *id, const char *table, const char *collection)
{
    bf_req *r = xcalloc(1, sizeof *r);

    strlist_add(&b->seen, "%s", id);
    r->id = xstrdup(id);
    r->tables.has = true;
    r->tables.v = xcalloc(2, sizeof(char *));
    r->tables.v[r->tables.n++] = xstrdup(table);
    r->collection = xstrdup(collection);
    log_info(b->cur || b->queue ? "backfill into a new collection queued behind the one running"
                                : "backfill into a new collection",
             "id", id, "table", table, "collection", collection, NULL);
    enqueue(b, r);
    publish(b);
}

/* A watermark of an earlier session (a restart, a reconnect): the
 * backfill it belongs to was interrupted; it goes on from this chunk. */
static p2q_status adopt(backfill *b, const bfm *m, bool in_txn, ack_txn txn)
{
    bf_req *r;

    if (m->keyed || m->collection) { /* a keyed request holds its own message, a rebuild's backfill the rebuild
                                       * request: that comes back and is done again */
        log_debug("watermark of a keyed backfill of an earlier session; ignored", "id", m->id, NULL);
        return P2Q_OK;
    }
    if (strlist_has(&b->seen, m->id))
        return P2Q_OK;
    strlist_add(&b->seen, "%s", m->id);
    r = xcalloc(1, sizeof *r);
    r->id = xstrdup(m->id);
    r->tables.has = true;
    r->tables.v = xcalloc((size_t)m->tables.n + 2, sizeof(char *));
    r->tables.v[r->tables.n++] = xstrdup(m->table);
    for (int i = 0; i < m->tables.n; i++)
        r->tables.v[r->tables.n++] = xstrdup(m->tables.v[i]);
    bfm_list_copy(&r->from, (const char *const *)m->from.v, m->from.n, m->from.has);
    if (hold(b, in_txn, txn, &r->hold) != P2Q_OK) {
        req_free(r);
        return P2Q_ERR_FATAL;
    }
    {
        char c[24];
        snprintf(c, sizeof c, "%llu", (unsigned long long)m->chunk);
        log_info("resuming an interrupted backfill from its last unconfirmed chunk", "id", r->id, "table", m->table,
                 "chunk", c, NULL);
    }
    enqueue(b, r);
    publish(b);
    return P2Q_OK;
}

static void finish_request(backfill *b)
{
    bf_req *r = b->cur;

    release(b, &r->hold);
    release(b, &b->wm_hold);
    {
        char rows[24], chunks[24];
        snprintf(rows, sizeof rows, "%llu", (unsigned long long)r->rows_done);
        snprintf(chunks, sizeof chunks, "%llu", (unsigned long long)r->chunks_done);
        if (r->errors)
            log_warn("backfill finished with failures", "id", r->id, "rows", rows, "chunks", chunks, "errors",
                     r->errors, NULL);
        else
            log_info("backfill done", "id", r->id, "rows", rows, "chunks", chunks, NULL);
    }
    history_add(b, r->id, r->errors, r->rows_done, r->chunks_done);
    if (b->env.on_finish)
        b->env.on_finish(b->env.arg, r->id, r->errors);
    drop_table(b);
    req_free(r);
    b->cur = NULL;
    b->phase = BF_IDLE;
    publish(b);
}

/* The current table is done (or failed): on to the next one. */
static void next_table(backfill *b)
{
    bf_req *r = b->cur;

    drop_table(b);
    if (r->tables.n > 0) {
        free(r->tables.v[0]);
        memmove(&r->tables.v[0], &r->tables.v[1], (size_t)(r->tables.n - 1) * sizeof(char *));
        r->tables.n--;
    }
    bfm_list_free(&r->from);
    r->key_pos = 0;
    if (r->tables.n == 0) {
        /* done once Qdrant has acknowledged the operations (bf_step): what
         * `backfill --wait` reports done is in Qdrant */
        b->phase = BF_DRAIN;
        b->drain_marked = false;
    } else {
        b->phase = BF_DESCRIBE;
    }
    publish(b);
}

static void fail_table(backfill *b, const char *reason)
{
    bf_req *r = b->cur;
    const char *table = r->tables.n ? r->tables.v[0] : "";
    char *e = xasprintf("%s: %s", table, reason);

    log_error("backfill of a table failed; the sync goes on", "id", r->id, "table", table, "error", reason, NULL);
    if (r->errors) {
        char *j = xasprintf("%s; %s", r->errors, e);
        free(r->errors);
        r->errors = j;
    } else {
        r->errors = xstrdup(e);
    }
    set_error(b, e);
    free(e);
    next_table(b);
}

/* ---- the connection and its queries ---------------------------------------------- */

static void conn_lost(backfill *b, const char *what)
{
    char ms[24];
    int64_t wait = backoff_jitter_ms(b->attempt++);

    snprintf(ms, sizeof ms, "%lld", (long long)wait);
    log_warn("backfill: connection to PostgreSQL lost; the chunk is read again", "during", what, "error",
             b->conn ? PQerrorMessage(b->conn) : "", "retry_in_ms", ms, NULL);
    if (b->conn)
        PQfinish(b->conn);
    b->conn = NULL;
    b->busy = false;
    PQclear(b->pending);
    b->pending = NULL;
    b->retry_at = now_ms() + wait;
    drop_chunk(b);
    if (b->phase != BF_IDLE && b->phase != BF_DESCRIBE && b->phase != BF_DRAIN)
        b->phase = BF_NEED_CHUNK;
}

static bool ensure_conn(backfill *b)
{
    char err[512];
    p2q_status rc;

    if (b->conn)
        return true;
    if (now_ms() < b->retry_at)
        return false;
    rc = repl_connect(b->env.cfg->source.dsn, false, b->env.stop, &b->conn, err, sizeof err);
    if (rc != P2Q_OK) {
        char ms[24];
        int64_t wait = backoff_jitter_ms(b->attempt++);
        snprintf(ms, sizeof ms, "%lld", (long long)wait);
        log_warn("backfill: cannot connect to PostgreSQL, retrying", "error", err, "retry_in_ms", ms, NULL);
        b->retry_at = now_ms() + wait;
        return false;
    }
    return true;
}

static bool send_query(backfill *b, const char *sql, int nparams, const char *const *params)
{
    if (!PQsendQueryParams(b->conn, sql, nparams, NULL, params, NULL, NULL, 0)) {
        conn_lost(b, "sending a query");
        return false;
    }
    /* A chunk arrives row by row and is mapped as it arrives (on_row): the
     * connection is drained while we map, so PostgreSQL never waits on a
     * full socket, and memory holds the operations, not a whole result. */
    if (b->phase == BF_READING)
        (void)PQsetSingleRowMode(b->conn); /* cannot fail right after the send; on_result checks */
    b->busy = true;
    b->sent_in = b->phase;
    return true;
}

static const char emit_sql[] = "SELECT pg_catalog.pg_logical_emit_message(true, '" BF_PREFIX "', $1)";

static bool send_watermark(backfill *b, bfm_kind kind, uint64_t rows)
{
    bfm m = {.kind = kind, .slot = b->env.cfg->source.slot, .id = b->cur->id, .run = b->run, .chunk = b->chunk,
             .table = b->cur->tables.v[0], .rows = rows, .keyed = b->cur->keyed, .collection = b->cur->collection};
    buf json;
    const char *params[1];
    bool ok;

    m.tables.v = b->cur->tables.v + 1;
    m.tables.n = b->cur->tables.n - 1;
    m.tables.has = true;
    m.from = b->cur->from;
    m.to = b->chunk_to;
    buf_init(&json);
    bfm_format_wm(&json, &m);
    params[0] = json.data;
    ok = send_query(b, emit_sql, 1, params);
    buf_free(&json);
    return ok;
}

/* ---- describing a table ---------------------------------------------------------- */

/* A unique, non-partial index on plain NOT NULL columns, all of them key
 * columns: then the key orders the rows totally and (key) > (last) pages. */
static const char unique_sql[] =
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = pg_catalog.to_regclass($1) "
    "AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = i.indrelid "
    "  AND a.attnum = ANY (i.indkey) AND (NOT a.attnotnull OR NOT a.attname = ANY ($2::text[]))))";

static void array_literal(buf *out, const char *const *v, int n)
{
    buf_putc(out, '{');
    for (int i = 0; i < n; i++) {
        if (i)
            buf_putc(out, ',');
        buf_putc(out, '"');
        for (const char *p = v[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                buf_putc(out, '\\');
            buf_putc(out, *p);
        }
        buf_putc(out, '"');
    }
    buf_putc(out, '}');
}

#define BF_SNAPSHOT_SQL                                                                                               \
    "SELECT c.*, CASE WHEN pg_catalog.row_number() OVER () = 1 THEN pg_catalog.pg_current_snapshot()::text END "    \
    "FROM ("

/* Builds the chunk queries of the described table. */
static p2q_status build_sql(backfill *b, const char **key_names, int nkeys, char *why, size_t whylen)
{
    const snap_table *t = &b->table;
    buf cols, keys, params, sql, arrays;
    p2q_status rc = P2Q_ERR_FATAL;

    buf_init(&arrays);
    buf_init(&cols);
    buf_init(&keys);
    buf_init(&params);
    buf_init(&sql);
    for (int c = 0; c < t->rel->natts; c++) {
        if (c)
            buf_puts(&cols, ", ");
        buf_quote_ident(&cols, t->rel->attrs[c].name);
    }
    for (int k = 0; k < nkeys; k++) {
        PGresult *res;
        char typid[16];
        const char *p[1] = {typid};
        snprintf(typid, sizeof typid, "%u", t->rel->attrs[map_key_col(t->map, k)].typid);
        res = PQexecParams(b->conn, "SELECT pg_catalog.format_type($1::oid, NULL)", 1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            repl_error_line(res, b->conn, why, whylen);
            PQclear(res);
            goto cleanup;
        }
        if (k) {
            buf_puts(&keys, ", ");
            buf_puts(&params, ", ");
        }
        buf_quote_ident(&keys, key_names[k]);
        buf_printf(&params, "$%d::%s", k + 1, PQgetvalue(res, 0, 0));
        buf_printf(&arrays, "%spg_catalog.unnest($%d::%s[])", k ? ", " : "", k + 1, PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    /* The chunk, plus the statement's snapshot in one more column of one
     * row (BF_SNAPSHOT_SQL; backfill_wm.h says why); the planner keeps the
     * inner order (no second sort). */
    buf_printf(&sql, BF_SNAPSHOT_SQL "SELECT %s FROM %s%s%s%s ORDER BY %s LIMIT %lld) c ORDER BY %s", cols.data,
               t->cfg->quoted, t->rowfilter ? " WHERE (" : "", t->rowfilter ? t->rowfilter : "",
               t->rowfilter ? ")" : "", keys.data, (long long)b->env.cfg->sync.backfill_chunk_rows, keys.data);
    b->select_sql = xstrdup(sql.data);
    buf_reset(&sql);
    buf_printf(&sql, BF_SNAPSHOT_SQL "SELECT %s FROM %s WHERE (%s) > (%s)%s%s%s ORDER BY %s LIMIT %lld) c ORDER BY %s",
               cols.data, t->cfg->quoted, keys.data, params.data, t->rowfilter ? " AND (" : "",
               t->rowfilter ? t->rowfilter : "", t->rowfilter ? ")" : "", keys.data,
               (long long)b->env.cfg->sync.backfill_chunk_rows, keys.data);
    b->select_from_sql = xstrdup(sql.data);
    buf_reset(&sql);
    /* keyed: the snapshot in an extra row of its own (FULL JOIN ... ON
     * false), there even when no key has a row — those keys become deletes,
     * which the visibility check must cover too */
    buf_printf(&sql, "SELECT c.*, x.snap FROM (SELECT %s FROM %s WHERE (%s) IN (SELECT * FROM ROWS FROM (%s))%s%s%s) c "
               "FULL JOIN (SELECT pg_catalog.pg_current_snapshot()::text AS snap) x ON false", cols.data,
               t->cfg->quoted, keys.data, arrays.data, t->rowfilter ? " AND (" : "",
               t->rowfilter ? t->rowfilter : "", t->rowfilter ? ")" : "");
    b->select_keys_sql = xstrdup(sql.data);
    rc = P2Q_OK;
cleanup:
    buf_free(&arrays);
    buf_free(&cols);
    buf_free(&keys);
    buf_free(&params);
    buf_free(&sql);
    return rc;
}

/* The row estimate of the tables of the current request (once, at its start). */
static void estimate(backfill *b)
{
    bf_req *r = b->cur;

    r->rows_estimate = 0;
    for (int i = 0; i < r->tables.n; i++) {
        const table_cfg *t = config_find_qualified(b->env.cfg, r->tables.v[i]);
        const char *p[1];
        PGresult *res;
        if (!t)
            continue;
        p[0] = t->quoted;
        res = PQexecParams(b->conn, "SELECT c.reltuples FROM pg_catalog.pg_class c WHERE c.oid = "
                                    "pg_catalog.to_regclass($1)", 1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            r->rows_estimate = snap_estimate_add(r->rows_estimate, strtod(PQgetvalue(res, 0, 0), NULL));
        PQclear(res);
    }
}

/* ---- keyed requests -------------------------------------------------------------- */

/* The keys of the current table of a keyed request. */
static const bfm_keyset *keyed_set(const backfill *b)
{
    for (int i = 0; i < b->cur->nkeys; i++)
        if (strcmp(b->cur->keys[i].table, b->cur->tables.v[0]) == 0)
            return &b->cur->keys[i];
    return NULL;
}

/* The current keyed chunk: keys [key_pos, key_pos + *n) of set. */
static const bfm_keyset *keyed_chunk(const backfill *b, size_t *n)
{
    const bfm_keyset *ks = keyed_set(b);
    size_t left = ks && ks->n > b->cur->key_pos ? ks->n - b->cur->key_pos : 0;
    size_t max = (size_t)b->env.cfg->sync.backfill_chunk_rows;

    *n = left < max ? left : max;
    return ks;
}

/* Whether the keys fit the described table's key (else the table fails). */
static bool keyed_check(backfill *b, int nkeys)
{
    const bfm_keyset *ks = keyed_set(b);

    if (!ks || ks->arity != nkeys) {
        char *why = xasprintf("the request's keys have %d column(s), the table's key has %d", ks ? ks->arity : 0,
                              nkeys);
        fail_table(b, why);
        free(why);
        return false;
    }
    return true;
}

/* At the low watermark's answer: SELECT the rows of the chunk's keys. */
static void send_keyed_query(backfill *b)
{
    size_t n;
    const bfm_keyset *ks = keyed_chunk(b, &n);
    int nkeys = ks->arity;
    const char *params[PGO_MAX_ATTS];
    buf arrays[PGO_MAX_ATTS];
    const char **col = xcalloc(n ? n : 1, sizeof *col);

    for (int k = 0; k < nkeys; k++) {
        for (size_t i = 0; i < n; i++)
            col[i] = ks->v[(b->cur->key_pos + i) * (size_t)nkeys + (size_t)k];
        buf_init(&arrays[k]);
        array_literal(&arrays[k], col, (int)n);
        params[k] = arrays[k].data;
    }
    send_query(b, b->select_keys_sql, nkeys, params);
    for (int k = 0; k < nkeys; k++)
        buf_free(&arrays[k]);
    free(col);
}

/* Whether keys remain after the current chunk. */
static bool keyed_more(const backfill *b)
{
    size_t n;
    const bfm_keyset *ks = keyed_chunk(b, &n);

    return ks && b->cur->key_pos + n < ks->n;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* At the high watermark, after the chunk's rows were mapped into ops: a
 * key of the chunk that no row has becomes a delete of its point (the id
 * the stream gives it), appended to ops (the window filters it like the
 * rows).  Moves key_pos past the chunk. */
static void keyed_deletes(backfill *b, lsn_t lsn, qop_list *ops)
{
    size_t n;
    const bfm_keyset *ks = keyed_chunk(b, &n);
    const table_map *map = b->table.map;
    int nkeys = map_nkeys(map);
    uint32_t typids[PGO_MAX_ATTS];
    const char **found = xcalloc(ops->n + 1, sizeof *found);
    size_t nfound = 0;
    buf id, key, json;

    if (!ks)
        goto cleanup;
    for (size_t i = 0; i < ops->n; i++)
        if (ops->items[i].point_id)
            found[nfound++] = ops->items[i].point_id;
    qsort(found, nfound, sizeof *found, cmp_str);
    for (int k = 0; k < nkeys; k++)
        typids[k] = b->table.rel->attrs[map_key_col(map, k)].typid;
    buf_init(&id);
    buf_init(&key);
    buf_init(&json);
    for (size_t i = 0; i < n; i++) {
        const char *const *texts = (const char *const *)&ks->v[(b->cur->key_pos + i) * (size_t)nkeys];
        const char *want;
        qop *q;
        buf_reset(&id);
        map_point_id(nkeys, typids, texts, b->table.cfg->id_mode_uuid5, &id);
        want = id.data;
        if (bsearch(&want, found, nfound, sizeof *found, cmp_str))
            continue;
        buf_reset(&key);
        for (int k = 0; k < nkeys; k++)
            buf_printf(&key, "%s%s=%s", k ? "," : "", b->table.rel->attrs[map_key_col(map, k)].name, texts[k]);
        buf_reset(&json);
        buf_printf(&json, "{\"delete\":{\"points\":[%s]}}", id.data);
        q = qop_list_push(ops);
        q->kind = QOP_DELETE;
        q->table = b->table.cfg;
        q->json_len = json.len;
        q->json = xstrdup(json.data);
        q->point_id = xstrdup(id.data);
        q->key_text = xstrdup(key.data);
        q->lsn = lsn;
    }
    buf_free(&id);
    buf_free(&key);
    buf_free(&json);
    b->cur->key_pos += n;
cleanup:
    free(found);
}

static void describe(backfill *b)
{
    bf_req *r = b->cur;
    const table_cfg *t = config_find_qualified(b->env.cfg, r->tables.v[0]);
    const char *key_names[PGO_MAX_ATTS];
    char why[600];
    PGresult *res = NULL;
    p2q_status rc;
    int nkeys;

    if (!t) {
        fail_table(b, "no [table] section in the config of this run");
        return;
    }
    if (r->keyed) {
        r->rows_estimate = 0;
        for (int i = 0; i < r->nkeys; i++)
            r->rows_estimate += r->keys[i].n;
    } else if (r->chunks_done == 0 && r->rows_done == 0 && r->rows_estimate == 0) {
        estimate(b);
    }
    rc = snap_describe(b->conn, b->env.cfg, t, b->env.cfg->source.publication, &b->table);
    if (rc != P2Q_OK) {
        if (PQstatus(b->conn) != CONNECTION_OK) {
            conn_lost(b, "describing the table");
            return;
        }
        fail_table(b, rc == P2Q_ERR_CONFIG ? "the table does not exist or its mapping cannot apply (see the log)"
                                           : "cannot describe the table (see the log)");
        return;
    }
    b->described = true;
    nkeys = map_nkeys(b->table.map);
    for (int k = 0; k < nkeys; k++)
        key_names[k] = b->table.rel->attrs[map_key_col(b->table.map, k)].name;
    if (r->keyed) { /* read by key, not in key order: no unique index needed */
        if (keyed_check(b, nkeys))
            goto keyed;
        return;
    }
    {
        buf arr;
        const char *p[2];
        buf_init(&arr);
        array_literal(&arr, key_names, nkeys);
        p[0] = t->quoted;
        p[1] = arr.data;
        res = PQexecParams(b->conn, unique_sql, 2, NULL, p, NULL, NULL, 0);
        buf_free(&arr);
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        if (PQstatus(b->conn) != CONNECTION_OK)
            conn_lost(b, "describing the table");
        else
            fail_table(b, "cannot read the table's indexes");
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        fail_table(b, "cannot be read in chunks by key: no unique index on NOT NULL key columns (e.g. REPLICA "
                      "IDENTITY FULL without a primary key); add a primary key or unique index on the id columns, "
                      "or use pg2qdrant snapshot");
        return;
    }
    PQclear(res);
keyed:
    if (build_sql(b, key_names, nkeys, why, sizeof why) != P2Q_OK) {
        fail_table(b, why);
        return;
    }
    b->table_start_ms = b->last_log_ms = now_ms();
    b->table_rows = 0;
    log_info("backfill of table started", "id", r->id, "table", t->qualified, "collection", t->collection, NULL);
    b->phase = BF_NEED_CHUNK;
}

/* ---- the loop's side ---------------------------------------------------------------- */

static void start_chunk(backfill *b)
{
    b->chunk++;
    drop_chunk(b);
    b->t_start = now_ms();
    b->phase = BF_LW_SENT;
    send_watermark(b, BFM_LOW, 0);
}

p2q_status bf_step(backfill *b, bool sink_full)
{
    /* Held chunk operations go to the sink a batch at a time, when it has
     * less than a batch waiting and fewer batches than lanes queued or in
     * flight: a streamed change queued now waits behind about one batch of
     * the backfill, not a whole chunk, and finds a lane free. */
    if (b->env.sink && held_left(b) > 0) {
        size_t batch = b->env.cfg->sync.batch_points > 0 ? (size_t)b->env.cfg->sync.batch_points : 1;
        int lanes = b->env.cfg->sync.parallel_requests;
        /* at most one batch fewer than the lanes queued or in flight: a lane stays free for the stream */
        size_t cap = batch * (size_t)(lanes > 1 ? lanes - 1 : 1);
        while (held_left(b) > 0 && sink_unsent_ops(b->env.sink) < batch && sink_queued_ops(b->env.sink) < cap)
            feed(b, batch);
    }
    for (int guard = 0; guard < 64; guard++) {
        if (*b->env.stop || b->busy)
            return P2Q_OK;
        if (b->phase == BF_IDLE) {
            if (!b->queue)
                return P2Q_OK;
            b->cur = b->queue;
            b->queue = b->cur->next;
            b->cur->next = NULL;
            b->phase = BF_DESCRIBE;
            publish(b);
            continue;
        }
        if (b->phase == BF_DRAIN) {
            if (b->env.sink) {
                if (held_left(b) > 0)
                    return P2Q_OK;
                if (!b->drain_marked) {
                    b->drain_mark = sink_mark(b->env.sink);
                    b->drain_marked = true;
                }
                if (!sink_done_upto(b->env.sink, b->drain_mark))
                    return P2Q_OK;
            }
            finish_request(b);
            continue;
        }
        if (b->phase == BF_DESCRIBE) {
            if (!ensure_conn(b))
                return P2Q_OK;
            describe(b);
            continue;
        }
        if (b->phase == BF_NEED_CHUNK) {
            if (now_ms() < b->next_chunk_at || sink_full || !room_for_chunk(b, 0) || !ensure_conn(b))
                return P2Q_OK;
            start_chunk(b);
        }
        return P2Q_OK;
    }
    return P2Q_OK;
}

bool bf_pollfd(const backfill *b, struct pollfd *pfd)
{
    if (!b->busy || !b->conn || PQsocket(b->conn) < 0)
        return false;
    pfd->fd = PQsocket(b->conn);
    pfd->events = POLLIN;
    pfd->revents = 0;
    return true;
}

int bf_timeout_ms(const backfill *b)
{
    int64_t left;

    if (b->phase == BF_IDLE && b->queue)
        return 0; /* queued after this turn's bf_step (a rebuild's backfill): start it now */
    if (b->phase == BF_NEED_CHUNK && b->conn && !b->busy && b->next_chunk_at > now_ms()) {
        left = b->next_chunk_at - now_ms();
        return left > 1000 ? 1000 : (int)left;
    }
    if (b->conn || (b->phase != BF_DESCRIBE && b->phase != BF_NEED_CHUNK))
        return -1;
    left = b->retry_at - now_ms();
    return left < 0 ? 0 : left > 1000 ? 1000 : (int)left;
}

/* The key of row (the key columns' text forms). */
static void row_key(const backfill *b, const PGresult *res, int row, bfm_list *out)
{
    int n = map_nkeys(b->table.map);

    memset(out, 0, sizeof *out);
    out->has = true;
    out->v = xcalloc((size_t)n + 1, sizeof *out->v);
    for (int k = 0; k < n; k++)
        out->v[out->n++] = xstrdup(PQgetvalue(res, row, map_key_col(b->table.map, k)));
}

/* One row of the chunk (single-row mode; res is taken).  The statement's
 * snapshot is in the last column of one row: in an ordered chunk a row of
 * the table, in a keyed chunk a row of its own.  Every other row is mapped
 * now; the operations wait for the high watermark in chunk_ops. */
static void on_row(backfill *b, PGresult *res)
{
    int col = PQnfields(res) - 1;
    map_info info;
    char err[600];

    if (b->row_error) { /* the chunk fails: drain it */
        PQclear(res);
        return;
    }
    if (!PQgetisnull(res, 0, col)) {
        if (b->snap.valid || bfs_parse(&b->snap, PQgetvalue(res, 0, col)) != 0) {
            b->row_error = xstrdup("a chunk's answer carries no valid snapshot in its last column");
            PQclear(res);
            return;
        }
        if (b->cur->keyed) {
            PQclear(res);
            return;
        }
    }
    if (!b->tup)
        b->tup = xcalloc(1, sizeof *b->tup);
    snap_result_tuple(res, 0, b->tup);
    b->tup->ncols--; /* the snapshot column */
    if (map_row(b->table.map, b->tup, 0, &b->chunk_ops, &info, err, sizeof err) != 0) {
        b->row_error = xstrdup(err);
        PQclear(res);
        return;
    }
    b->chunk_nrows++;
    if (b->cur->keyed) {
        PQclear(res);
    } else {
        PQclear(b->last_row);
        b->last_row = res;
    }
}

/* One finished query of the backfill. */
static void on_result(backfill *b, PGresult *res)
{
    char why[600];

    if (b->sent_in != b->phase) { /* the chunk was abandoned meanwhile (a table failed) */
        PQclear(res);
        return;
    }
    switch (b->phase) {
    case BF_LW_SENT:
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            goto sql_error;
        PQclear(res);
        b->phase = BF_READING;
        if (b->cur->keyed)
            send_keyed_query(b);
        else if (b->cur->from.has && b->cur->from.n == map_nkeys(b->table.map))
            send_query(b, b->select_from_sql, b->cur->from.n, (const char *const *)b->cur->from.v);
        else
            send_query(b, b->select_sql, 0, NULL);
        return;
    case BF_READING:
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            goto sql_error;
        if (PQntuples(res) > 0 && !b->row_error) /* rows come one by one (send_query) */
            b->row_error = xstrdup("internal error: a chunk's rows did not come in single-row mode");
        PQclear(res);
        if (!b->row_error && !b->snap.valid && (b->chunk_nrows > 0 || b->cur->keyed))
            b->row_error = xstrdup("a chunk's answer carries no snapshot (pg_current_snapshot())");
        if (b->row_error) {
            char *e = b->row_error;
            b->row_error = NULL;
            drop_chunk(b);
            fail_table(b, e);
            free(e);
            return;
        }
        b->rows_ready = true;
        b->t_read = now_ms();
        bfm_list_free(&b->chunk_to);
        if (b->last_row) { /* ordered: the last row's key is where the next chunk starts */
            row_key(b, b->last_row, 0, &b->chunk_to);
            PQclear(b->last_row);
            b->last_row = NULL;
        }
        b->phase = BF_HW_SENT;
        send_watermark(b, BFM_HIGH, (uint64_t)b->chunk_nrows);
        return;
    case BF_HW_SENT:
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            goto sql_error;
        PQclear(res);
        b->attempt = 0;
        b->phase = BF_HW_WAIT;
        return;
    default:
        PQclear(res);
        return;
    }
sql_error:
    repl_error_line(res, b->conn, why, sizeof why);
    PQclear(res);
    if (PQstatus(b->conn) != CONNECTION_OK) {
        conn_lost(b, "a chunk");
        return;
    }
    drop_chunk(b);
    if (b->phase == BF_READING) {
        char *r = xasprintf("reading a chunk failed (dropped or altered meanwhile?): %s", why);
        fail_table(b, r);
        free(r);
        return;
    }
    /* The watermark could not be written (e.g. permission denied for
     * pg_logical_emit_message): the whole request fails. */
    {
        char *r = xasprintf("cannot write a watermark: %s", why);
        bf_req *req = b->cur;
        log_error("backfill failed", "id", req->id, "error", r, NULL);
        set_error(b, r);
        free(req->errors);
        req->errors = r;
        finish_request(b);
    }
}

p2q_status bf_progress(backfill *b, short revents)
{
    PGresult *res;

    if (!b->busy || !b->conn)
        return P2Q_OK;
    if ((revents & (POLLIN | POLLHUP | POLLERR)) && !PQconsumeInput(b->conn)) {
        conn_lost(b, "reading an answer");
        return P2Q_OK;
    }
    while (!PQisBusy(b->conn)) {
        res = PQgetResult(b->conn);
        if (res && PQresultStatus(res) == PGRES_SINGLE_TUPLE) {
            if (b->phase == BF_READING && b->sent_in == BF_READING)
                on_row(b, res);
            else
                PQclear(res); /* an abandoned chunk */
            continue;
        }
        if (res) {
            if (!b->pending)
                b->pending = res;
            else
                PQclear(res);
            continue;
        }
        /* the query is complete */
        b->busy = false;
        res = b->pending;
        b->pending = NULL;
        if (!res) {
            conn_lost(b, "reading an answer (none)");
            return P2Q_OK;
        }
        on_result(b, res);
        return P2Q_OK;
    }
    return P2Q_OK;
}

/* ---- the stream's side --------------------------------------------------------------- */

static void log_progress(backfill *b, bool done)
{
    char rows[24], est[24], rate[24];
    double sec = (double)(now_ms() - b->table_start_ms) / 1000.0;

    snprintf(rows, sizeof rows, "%llu", (unsigned long long)b->table_rows);
    snprintf(est, sizeof est, "%.0f", b->table.reltuples > 0 ? b->table.reltuples : 0.0);
    snprintf(rate, sizeof rate, "%.0f", sec > 0 ? (double)b->table_rows / sec : 0.0);
    log_info(done ? "backfill of table done" : "backfill progress", "id", b->cur->id, "table", b->table.name, "rows",
             rows, "estimate", est, "rows_per_s", rate, NULL);
}

/* Our high watermark came back: the chunk's rows, minus those the window
 * saw change, go to out (pushed by the caller in the watermark's txn). */
static p2q_status apply_chunk(backfill *b, lsn_t lsn, bool in_txn, ack_txn txn, qop_list *out)
{
    bf_req *r = b->cur;
    qop_list ops;
    int n = b->chunk_nrows;
    size_t dropped;
    int64_t t_hw = now_ms(), read_ms = b->t_read - b->t_start;
    bool more = r->keyed ? keyed_more(b) : n >= b->env.cfg->sync.backfill_chunk_rows;
    bool room = room_for_chunk(b, (size_t)n); /* this chunk's operations counted */
    uint32_t late;

    /* A transaction the stream delivered before the low watermark that the
     * read did not see (backfill_wm.h): the chunk may hold rows older than
     * what the stream applied.  Read it again; the transaction is visible
     * by then or is caught again. */
    if (b->window_seen && b->snap.valid && bfr_invisible_before(&b->ring, b->lw_at, &b->snap, &late)) {
        char x[16], c[24], times[16];
        int64_t wait = BF_LATE_FIRST_MS << (b->late_in_row < 7 ? b->late_in_row : 7);
        snprintf(x, sizeof x, "%u", late);
        snprintf(c, sizeof c, "%llu", (unsigned long long)b->chunk);
        snprintf(times, sizeof times, "%d", b->late_in_row + 1);
        /* logged once per chunk; a backend stalled for long makes it come back every second at most */
        log_event(b->late_in_row ? LOG_DEBUG : LOG_INFO, "backfill chunk read again: a transaction committed before "
                  "its low watermark was not yet visible to its read", "table", b->table.name, "chunk", c, "xid", x,
                  "times", times, NULL);
        b->rereads++;
        b->late_in_row++;
        b->next_chunk_at = now_ms() + (wait > BF_LATE_MAX_MS ? BF_LATE_MAX_MS : wait);
        drop_chunk(b);
        b->phase = BF_NEED_CHUNK;
        publish(b);
        return P2Q_OK;
    }
    b->late_in_row = 0;
    ops = b->chunk_ops; /* mapped as the rows arrived (on_row) */
    memset(&b->chunk_ops, 0, sizeof b->chunk_ops);
    b->chunk_nrows = 0;
    b->rows_ready = false;
    bfs_free(&b->snap); /* checked: the next chunk brings its own */
    for (size_t i = 0; i < ops.n; i++)
        ops.items[i].lsn = lsn;
    /* The next chunk's low watermark goes out at once, so PostgreSQL reads
     * it while this chunk is filtered and pushed (its window opens only when
     * that watermark comes back in the stream, after this function), when
     * there is room (room_for_chunk); else bf_step starts it once there is. */
    if (more) {
        bfm_list_free(&r->from);
        r->from = b->chunk_to;
        memset(&b->chunk_to, 0, sizeof b->chunk_to);
        if (!b->busy && b->conn && room) {
            b->chunk++;
            b->t_start = now_ms();
            b->phase = BF_LW_SENT;
            send_watermark(b, BFM_LOW, 0);
        } else {
            b->phase = BF_NEED_CHUNK;
        }
    }
    if (r->keyed)
        keyed_deletes(b, lsn, &ops);
    if (!b->window_seen) /* cannot happen: the low watermark precedes in the WAL; be safe */
        bfw_observe(&b->win, &(qop){.kind = QOP_DELETE_ALL, .table = b->table.cfg});
    dropped = bfw_filter(&b->win, &ops);
    b->window_seen = false;
    if (r->collection) /* a rebuild's backfill: into the new generation */
        for (size_t i = 0; i < ops.n; i++)
            ops.items[i].collection = xstrdup(r->collection);
    if (in_txn && b->env.sink) {
        /* counted in the high watermark's transaction now, sent a batch at a time (bf_step) */
        if (ops.n && ack_add_ops(b->env.acks, txn, ops.n) != 0) {
            log_error("internal error: the acknowledgement tracker refused a backfill chunk", NULL);
            qop_list_free(&ops);
            return P2Q_ERR_FATAL;
        }
        hold_ops(b, &ops, txn);
    } else {
        for (size_t i = 0; i < ops.n; i++)
            *qop_list_push(out) = ops.items[i];
        ops.n = 0;
    }
    qop_list_free(&ops);
    if (log_enabled(LOG_DEBUG)) {
        char c[24], d[24], k[24], ms[3][24];
        snprintf(c, sizeof c, "%llu", (unsigned long long)b->chunk);
        snprintf(k, sizeof k, "%d", n);
        snprintf(d, sizeof d, "%zu", dropped);
        snprintf(ms[0], sizeof ms[0], "%lld", (long long)read_ms);
        snprintf(ms[1], sizeof ms[1], "%lld", (long long)(t_hw - b->t_read));
        snprintf(ms[2], sizeof ms[2], "%lld", (long long)(now_ms() - t_hw));
        log_debug("backfill chunk at its high watermark", "table", b->table.name, "chunk", c, "rows", k,
                  "changed_meanwhile", d, "read_and_map_ms", ms[0], "to_high_ms", ms[1], "apply_ms", ms[2], NULL);
    }
    r->rows_done += (uint64_t)n;
    r->chunks_done++;
    b->table_rows += (uint64_t)n;
    metrics_count_backfill_rows(b->env.metrics, b->table.cfg->schema, b->table.cfg->name, (uint64_t)n);
    if (now_ms() - b->last_log_ms >= BF_PROGRESS_MS) {
        b->last_log_ms = now_ms();
        log_progress(b, false);
    }
    if (!more) {
        log_progress(b, true);
        next_table(b);
    }
    publish(b);
    return P2Q_OK;
}

/* A watermark of this session's current chunk came back at lsn. */
static p2q_status own_watermark(backfill *b, const bfm *m, lsn_t lsn, bool in_txn, ack_txn txn, qop_list *out)
{
    ack_txn prev = b->wm_hold;

    /* The newest watermark is held; the one before and the request are
     * released (FIFO confirmation keeps anything after them unconfirmed
     * while this one is held). */
    if (hold(b, in_txn, txn, &b->wm_hold) != P2Q_OK)
        return P2Q_ERR_FATAL;
    release(b, &prev);
    if (!b->cur->keyed) /* a keyed request is done again whole after a restart: its message stays held */
        release(b, &b->cur->hold);
    if (m->kind == BFM_LOW) {
        bfw_open(&b->win, b->table.cfg);
        b->window_seen = true;
        b->lw_at = b->ring.n; /* the transactions streamed so far precede the low watermark */
        return P2Q_OK;
    }
    /* The high watermark may come back before its emit's answer was read
     * (BF_HW_SENT): the rows are here either way; that answer is dropped. */
    if ((b->phase != BF_HW_WAIT && b->phase != BF_HW_SENT) || !b->rows_ready) {
        log_info("a backfill high watermark came back without its chunk's rows (the connection was lost "
                 "meanwhile); the chunk is read again", "id", m->id, "table", m->table, NULL);
        drop_chunk(b);
        b->phase = BF_NEED_CHUNK;
        return P2Q_OK;
    }
    return apply_chunk(b, lsn, in_txn, txn, out);
}

p2q_status bf_on_message(backfill *b, const pgo_msg *m, lsn_t lsn, bool in_txn, ack_txn txn, qop_list *out)
{
    bfm msg;
    char err[300], l[LSN_BUFSZ];
    p2q_status rc = P2Q_OK;

    if (strcmp(m->u.message.prefix, BF_PREFIX) != 0)
        return P2Q_OK; /* another application's message */
    if (bfm_parse(m->u.message.content, m->u.message.len, &msg, err, sizeof err) != 0) {
        log_warn("skipping a logical decoding message with prefix pg2qdrant that is not a backfill request or "
                 "watermark", "error", err, "lsn", lsn_fmt(lsn, l), NULL);
        goto cleanup;
    }
    if (strcmp(msg.slot, b->env.cfg->source.slot) != 0) {
        log_debug("backfill message for another slot; ignored", "slot", msg.slot, "id", msg.id, NULL);
        goto cleanup;
    }
    if (msg.kind == BFM_REBUILD) {
        if (b->env.on_rebuild)
            rc = b->env.on_rebuild(b->env.arg, &msg, lsn, in_txn, txn);
    } else if (msg.kind == BFM_REQUEST) {
        rc = on_request(b, &msg, in_txn, txn, lsn);
    } else if (strcmp(msg.run, b->run) != 0) {
        rc = adopt(b, &msg, in_txn, txn);
    } else if (b->cur && strcmp(msg.id, b->cur->id) == 0 && msg.chunk == b->chunk && b->described &&
               strcmp(msg.table, b->table.name) == 0) {
        rc = own_watermark(b, &msg, lsn, in_txn, txn, out);
    } else {
        log_debug("stale backfill watermark (a chunk read again); ignored", "id", msg.id, NULL);
    }
cleanup:
    bfm_free(&msg);
    return rc;
}

void bf_on_begin(backfill *b, uint32_t xid)
{
    bfr_add(&b->ring, xid);
}

void bf_observe(backfill *b, const qop_list *ops, size_t from)
{
    for (size_t i = from; i < ops->n; i++) {
        const qop *op = &ops->items[i];
        if (b->win.table)
            bfw_observe(&b->win, op);
        if (held_left(b) > 0) {
            /* a held operation on the same point goes first (a barrier: all of them) */
            uint64_t key = sink_op_key(op);
            size_t before = held_left(b);
            if (key == 0)
                feed(b, held_left(b));
            while (key != 0 && keyset_has(&b->held_keys, key))
                feed(b, 1);
            if (held_left(b) != before) {
                b->held_overtaken++;
                if (log_enabled(LOG_DEBUG)) {
                    char n[24];
                    snprintf(n, sizeof n, "%zu", before - held_left(b));
                    log_debug("a streamed change of a held backfill point: the held operations up to it go first",
                              "point", op->point_id ? op->point_id : "(all)", "sent", n, NULL);
                }
            }
        }
    }
}

void bf_on_relation(backfill *b, const rel_entry *rel)
{
    const rel_entry *mine = b->described ? b->table.rel : NULL;
    bool same;

    if (!mine || !b->cur || strcmp(rel->nspname, mine->nspname) != 0 || strcmp(rel->relname, mine->relname) != 0)
        return;
    same = rel->natts == mine->natts;
    for (int i = 0; same && i < rel->natts; i++)
        same = strcmp(rel->attrs[i].name, mine->attrs[i].name) == 0 && rel->attrs[i].typid == mine->attrs[i].typid;
    if (same)
        return;
    /* an answer in flight belongs to the abandoned chunk: on_result drops it */
    fail_table(b, "the table was altered while its backfill ran (its columns changed); request the backfill again");
}
