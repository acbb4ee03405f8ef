/*
 * snapshot.c — SPEC §4: read every row of the configured tables from one
 * consistent snapshot and upsert it through the sink (docs/snapshot.md).
 *
 *   catalog ──snap_describe──> rel_entry + Type names ──map_compile──> table_map
 *   DECLARE CURSOR / FETCH 1000 (text) ──> pgo_tuple ──map_row──> qops ──sink_push──> Qdrant
 *
 * The relation is described exactly as pgoutput's Relation message would
 * describe it, so a snapshot row and a streamed Insert of the same row map
 * to the same point.
 */
#include "snapshot.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "pgtypes.h"
#include "preflight.h"
#include "replication.h"
#include "sink.h"
#include "util.h"

#define SNAP_PROGRESS_MS 5000
#define SNAP_PUMP_EVERY 32 /* rows between two non-blocking turns of the sink */
#define SNAP_CURSOR "p2q_snapshot_cursor"
#define SNAP_FETCH_SQL "FETCH 1000 FROM " SNAP_CURSOR /* SNAP_FETCH_ROWS */

static p2q_status exec_cmd(PGconn *conn, const char *sql, const char *what, const char *table)
{
    PGresult *res = PQexec(conn, sql);
    char msg[300];
    p2q_status rc = P2Q_OK;

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_error(what, "table", table, "error", repl_error_line(res, conn, msg, sizeof msg), NULL);
        rc = P2Q_ERR_FATAL;
    }
    PQclear(res);
    return rc;
}

static double planner_rows(PGconn *conn, const table_cfg *t);

void snap_table_free(snap_table *t)
{
    if (!t)
        return;
    relcache_free(t->rels);
    free(t->rowfilter);
    memset(t, 0, sizeof *t);
}

/* pg_class row of schema.name: oid, relreplident, reltuples. */
static const char class_sql[] =
    "SELECT c.oid, c.relreplident, c.reltuples FROM pg_catalog.pg_class c "
    "WHERE c.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text, $2::text))";

/*
 * The columns pgoutput would send, in attnum order: not dropped, not
 * generated, and (PostgreSQL 15+) in the publication's column list when it
 * has one.  is_key as the Relation message's flag: every column for
 * REPLICA IDENTITY FULL, the primary key's columns for DEFAULT, the
 * identity index's for USING INDEX.  type_name: the name pgoutput's Type
 * message gives a user-defined type (a domain is named after its base
 * type).
 */
static const char cols_sql[] =
    "SELECT a.attname, a.atttypid, a.atttypmod, "
    "  CASE c.relreplident WHEN 'f' THEN true WHEN 'n' THEN false ELSE EXISTS ("
    "    SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND a.attnum = ANY (i.indkey) "
    "    AND CASE c.relreplident WHEN 'd' THEN i.indisprimary ELSE i.indisreplident END) END, "
    "  CASE WHEN t.typtype = 'd' THEN bt.typname ELSE t.typname END "
    "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype "
    "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' %s "
    "ORDER BY a.attnum";

/* PostgreSQL 15+: publication column lists. */
static const char pubcols_filter[] =
    "AND (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables pt WHERE pt.pubname = $2 "
    "  AND pt.schemaname = $3 AND pt.tablename = $4) "
    " OR a.attname = ANY (SELECT pg_catalog.unnest(pt.attnames) FROM pg_catalog.pg_publication_tables pt "
    "  WHERE pt.pubname = $2 AND pt.schemaname = $3 AND pt.tablename = $4))";

static const char rowfilter_sql[] =
    "SELECT pt.rowfilter FROM pg_catalog.pg_publication_tables pt "
    "JOIN pg_catalog.pg_publication p ON p.pubname = pt.pubname "
    "WHERE pt.pubname = $1 AND pt.schemaname = $2 AND pt.tablename = $3 AND NOT p.puballtables "
    "AND pt.rowfilter IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace pn "
    "  JOIN pg_catalog.pg_namespace n ON n.oid = pn.pnnspid WHERE pn.pnpubid = p.oid AND n.nspname = $2)";

int snap_row_filter(PGconn *conn, const char *publication, const char *schema, const char *name, char **filter,
                    char *err, size_t errlen)
{
    const char *params[3] = {publication, schema, name};
    PGresult *res = NULL;
    int rc = -1;

    *filter = NULL;
    if (!publication || PQserverVersion(conn) < 150000)
        return 0;
    res = PQexecParams(conn, rowfilter_sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        repl_error_line(res, conn, err, errlen);
        goto cleanup;
    }
    if (PQntuples(res) > 0)
        *filter = xstrdup(PQgetvalue(res, 0, 0));
    rc = 0;
cleanup:
    PQclear(res);
    return rc;
}

p2q_status snap_describe(PGconn *conn, const p2q_config *cfg, const table_cfg *t, const char *publication,
                  snap_table *out)
{
    PGresult *cls = NULL, *cols = NULL;
    pgo_msg *msg = NULL;
    char *sql = NULL;
    char err[600], relid[16];
    table_map *map = NULL;
    rel_entry *rel;
    bool pubfilter = publication && PQserverVersion(conn) >= 150000;
    p2q_status rc = P2Q_ERR_FATAL;
    int n;

    memset(out, 0, sizeof *out);
    out->cfg = t;
    out->name = t->qualified;
    {
        const char *params[2] = {t->schema, t->name};
        cls = PQexecParams(conn, class_sql, 2, NULL, params, NULL, NULL, 0);
    }
    if (PQresultStatus(cls) != PGRES_TUPLES_OK) {
        log_error("cannot read pg_class", "table", out->name, "error", repl_error_line(cls, conn, err, sizeof err), NULL);
        goto cleanup;
    }
    if (PQntuples(cls) != 1) {
        log_error("configured table does not exist", "table", out->name, "section", t->file, NULL);
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    snprintf(relid, sizeof relid, "%s", PQgetvalue(cls, 0, 0));
    out->reltuples = strtod(PQgetvalue(cls, 0, 2), NULL);
    if (out->reltuples < 0)
        out->reltuples = planner_rows(conn, t);
    sql = xasprintf(cols_sql, pubfilter ? pubcols_filter : "");
    {
        const char *params[4] = {relid, publication, t->schema, t->name};
        cols = PQexecParams(conn, sql, pubfilter ? 4 : 1, NULL, params, NULL, NULL, 0);
    }
    if (PQresultStatus(cols) != PGRES_TUPLES_OK) {
        log_error("cannot read the table's columns", "table", out->name, "error",
                  repl_error_line(cols, conn, err, sizeof err), NULL);
        goto cleanup;
    }
    if (snap_row_filter(conn, publication, t->schema, t->name, &out->rowfilter, err, sizeof err) != 0) {
        log_error("cannot read the publication's row filter", "table", out->name, "error", err, NULL);
        goto cleanup;
    }
    if (out->rowfilter)
        log_info("the publication filters the table's rows: only rows it publishes are read", "table", out->name,
                 "publication", publication, "row_filter", out->rowfilter, NULL);
    n = PQntuples(cols);
    if (n > PGO_MAX_ATTS) {
        log_error("table has more columns than a tuple can hold", "table", out->name, NULL);
        goto cleanup;
    }
    out->rels = relcache_new(map_free);
    msg = xcalloc(1, sizeof *msg);
    /* Type messages first, as pgoutput sends them before the Relation. */
    for (int i = 0; i < n; i++) {
        uint32_t typid = (uint32_t)strtoul(PQgetvalue(cols, i, 1), NULL, 10);
        if (typid < FIRST_NORMAL_OBJECT_ID)
            continue;
        msg->type = PGO_TYPE;
        msg->u.type.typid = typid;
        msg->u.type.nspname = "";
        msg->u.type.typname = PQgetvalue(cols, i, 4);
        relcache_put_type(out->rels, msg);
    }
    memset(msg, 0, sizeof *msg);
    msg->type = PGO_RELATION;
    msg->u.relation.relid = (uint32_t)strtoul(relid, NULL, 10);
    msg->u.relation.nspname = t->schema;
    msg->u.relation.relname = t->name;
    msg->u.relation.replident = PQgetvalue(cls, 0, 1)[0];
    msg->u.relation.natts = (uint16_t)n;
    for (int i = 0; i < n; i++) {
        pgo_attr *a = &msg->u.relation.attrs[i];
        a->name = PQgetvalue(cols, i, 0);
        a->typid = (uint32_t)strtoul(PQgetvalue(cols, i, 1), NULL, 10);
        a->typmod = (int32_t)strtol(PQgetvalue(cols, i, 2), NULL, 10);
        a->flags = strcmp(PQgetvalue(cols, i, 3), "t") == 0 ? 1 : 0;
    }
    rel = relcache_put(out->rels, msg, NULL);
    if (map_compile(cfg, rel, out->rels, &map, err, sizeof err) != 0) {
        log_error("cannot sync table", "table", out->name, "error", err, NULL);
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    if (!map) { /* cannot happen: t is a section of cfg */
        log_error("internal error: no mapping for a configured table", "table", out->name, NULL);
        goto cleanup;
    }
    rel->map = map;
    rel->map_compiled = true;
    out->rel = rel;
    out->map = map;
    rc = P2Q_OK;
cleanup:
    if (rc != P2Q_OK)
        snap_table_free(out);
    free(msg);
    free(sql);
    PQclear(cls);
    PQclear(cols);
    return rc;
}

p2q_status snap_begin(PGconn *conn, const char *snapshot_name)
{
    char *lit = NULL, *sql = NULL;
    p2q_status rc = P2Q_ERR_FATAL;

    if (exec_cmd(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", "cannot start the snapshot transaction",
                 NULL) != P2Q_OK)
        goto cleanup;
    if (snapshot_name) {
        lit = PQescapeLiteral(conn, snapshot_name, strlen(snapshot_name));
        if (!lit) {
            log_error("cannot escape the snapshot name", "snapshot", snapshot_name, NULL);
            goto cleanup;
        }
        sql = xasprintf("SET TRANSACTION SNAPSHOT %s", lit);
        if (exec_cmd(conn, sql, "cannot import the slot's exported snapshot", NULL) != P2Q_OK)
            goto cleanup;
    }
    rc = P2Q_OK;
cleanup:
    if (rc != P2Q_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
    PQfreemem(lit);
    free(sql);
    return rc;
}

void snap_end(PGconn *conn)
{
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "COMMIT"));
}

static void log_progress(const char *msg, const snap_table *t, uint64_t rows, int64_t start_ms, bool done)
{
    char r[24], est[24], rate[24], secs[24];
    double s = (double)(now_ms() - start_ms) / 1000.0;

    snprintf(r, sizeof r, "%llu", (unsigned long long)rows);
    if (t->reltuples >= 0)
        snprintf(est, sizeof est, "%.0f", t->reltuples);
    else
        snprintf(est, sizeof est, "unknown");
    snprintf(rate, sizeof rate, "%.0f", s > 0 ? (double)rows / s : 0.0);
    snprintf(secs, sizeof secs, "%.1f", s);
    log_info(msg, "table", t->name, "rows", r, "rows_estimate", est, "rows_per_s", rate, "seconds", secs, "done",
             done ? "true" : "false", NULL);
}

/* The planner's row estimate (EXPLAIN), for a table never analysed
 * (reltuples = -1 since PostgreSQL 14). */
double snap_plan_rows(const char *explain_json)
{
    const char *p = explain_json ? strstr(explain_json, "\"Plan Rows\":") : NULL;

    return p ? strtod(p + strlen("\"Plan Rows\":"), NULL) : -1;
}

uint64_t snap_estimate_add(uint64_t total, double reltuples)
{
    return reltuples > 0 ? total + (uint64_t)reltuples : total;
}

uint64_t snap_progress_total(uint64_t estimate, uint64_t done)
{
    return estimate > done ? estimate : done;
}

static double planner_rows(PGconn *conn, const table_cfg *t)
{
    char *sql = xasprintf("EXPLAIN (FORMAT JSON) SELECT 1 FROM %s", t->quoted);
    PGresult *res = PQexec(conn, sql);
    double rows = -1;

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        rows = snap_plan_rows(PQgetvalue(res, 0, 0));
    PQclear(res);
    free(sql);
    return rows;
}

void snap_result_tuple(const PGresult *res, int row, pgo_tuple *tup)
{
    tup->ncols = (uint16_t)PQnfields(res);
    for (int c = 0; c < tup->ncols; c++) {
        pgo_datum *d = &tup->cols[c];
        d->kind = PQgetisnull(res, row, c) ? 'n' : 't';
        d->data = PQgetvalue(res, row, c);
        d->len = (uint32_t)PQgetlength(res, row, c);
    }
}

p2q_status snap_scan(PGconn *conn, const snap_table *t, const char *msg, snap_row_fn fn, void *arg,
              volatile sig_atomic_t *stop, uint64_t *rows)
{
    PGresult *res = NULL;
    pgo_tuple *tup = NULL;
    buf sql;
    char err[300];
    int64_t start = now_ms(), last_log = start;
    p2q_status rc = P2Q_ERR_FATAL;

    *rows = 0;
    buf_init(&sql);
    buf_puts(&sql, "DECLARE " SNAP_CURSOR " NO SCROLL CURSOR FOR SELECT ");
    for (int c = 0; c < t->rel->natts; c++) {
        if (c)
            buf_puts(&sql, ", ");
        buf_quote_ident(&sql, t->rel->attrs[c].name);
    }
    if (t->rel->natts == 0)
        buf_puts(&sql, "NULL");
    buf_printf(&sql, " FROM %s", t->cfg->quoted);
    /* The collection mirrors what the publication publishes (docs/snapshot.md). */
    if (t->rowfilter)
        buf_printf(&sql, " WHERE (%s)", t->rowfilter);
    if (exec_cmd(conn, sql.data, "cannot read the table", t->name) != P2Q_OK)
        goto cleanup;
    tup = xcalloc(1, sizeof *tup);
    for (;;) {
        int nt;

        PQclear(res);
        res = PQexec(conn, SNAP_FETCH_SQL);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            log_error("cannot read the table", "table", t->name, "error", repl_error_line(res, conn, err, sizeof err),
                      NULL);
            goto cleanup;
        }
        nt = PQntuples(res);
        for (int r = 0; r < nt; r++) {
            p2q_status frc;
            snap_result_tuple(res, r, tup);
            if (t->rel->natts == 0)
                tup->ncols = 0;
            if ((frc = fn(arg, t, tup)) != P2Q_OK) {
                rc = frc;
                goto cleanup;
            }
            (*rows)++;
        }
        if (stop && *stop) {
            rc = P2Q_STOPPED;
            goto cleanup;
        }
        if (msg && now_ms() - last_log >= SNAP_PROGRESS_MS) {
            last_log = now_ms();
            log_progress(msg, t, *rows, start, false);
        }
        if (nt < SNAP_FETCH_ROWS)
            break;
    }
    if (exec_cmd(conn, "CLOSE " SNAP_CURSOR, "cannot close the cursor", t->name) != P2Q_OK)
        goto cleanup;
    if (msg)
        log_progress(msg, t, *rows, start, true);
    rc = P2Q_OK;
cleanup:
    if (rc != P2Q_OK && PQtransactionStatus(conn) == PQTRANS_INERROR)
        PQclear(PQexec(conn, "ROLLBACK"));
    PQclear(res);
    free(tup);
    buf_free(&sql);
    return rc;
}

/* Whether name ("schema.name", or "name" for schema public) names t. */
static bool names_table(const char *name, const table_cfg *t)
{
    const char *dot = strchr(name, '.');

    if (!dot)
        return strcmp(t->schema, "public") == 0 && strcmp(name, t->name) == 0;
    return strlen(t->schema) == (size_t)(dot - name) && strncmp(name, t->schema, (size_t)(dot - name)) == 0 &&
           strcmp(dot + 1, t->name) == 0;
}

int snap_select_tables(const p2q_config *cfg, char *const *names, int n, int *idx)
{
    int count = 0;

    for (int j = 0; j < n; j++) {
        bool found = false;
        for (int i = 0; i < cfg->n_tables && !found; i++)
            found = names_table(names[j], &cfg->tables[i]);
        if (!found) {
            log_error("--table names a table that has no [table] section in the config", "table", names[j],
                      "config", cfg->path, NULL);
            return -1;
        }
    }
    /* In config order, each once. */
    for (int i = 0; i < cfg->n_tables; i++) {
        bool selected = n == 0;
        for (int j = 0; j < n && !selected; j++)
            selected = names_table(names[j], &cfg->tables[i]);
        if (selected)
            idx[count++] = i;
    }
    return count;
}

/* ---- snap_run -------------------------------------------------------------- */

typedef struct snap_ctx {
    const p2q_config *cfg;
    sink *s;
    p2q_metrics *metrics;
    volatile sig_atomic_t *stop;
    qop_list ops;
    snap_stats *stats;
    uint64_t done_before; /* rows of the tables already read */
    uint64_t total_estimate;
    uint64_t since_pump;
} snap_ctx;

/* Lets the sink send what is due without blocking; with block_over_limit,
 * blocks while the sink is full (a full batch queued behind the request in
 * flight, or max_inflight reached: sink_full), so memory stays at about two
 * batches when Qdrant keeps up. */
p2q_status snap_sink_pump(sink *s, const p2q_config *cfg, volatile sig_atomic_t *stop, bool block_over_limit)
{
    for (;;) {
        int rc = sink_kick(s, true);
        int64_t wait;

        if (rc != P2Q_OK)
            return rc;
        if (sink_busy(s)) {
            if (sink_wait(s, NULL, 0, 0) != 0)
                return P2Q_ERR_FATAL;
            if ((rc = sink_progress(s)) != P2Q_OK)
                return rc;
        }
        if (!block_over_limit || !sink_full(s))
            return P2Q_OK;
        if (stop && *stop)
            return P2Q_STOPPED;
        wait = sink_timeout_ms(s);
        if (wait < 0 || wait > 200)
            wait = 200;
        if (sink_wait(s, NULL, 0, (int)wait) != 0)
            return P2Q_ERR_FATAL;
        if ((rc = sink_progress(s)) != P2Q_OK)
            return rc;
    }
}

static p2q_status snap_row(void *arg, const snap_table *t, const pgo_tuple *tup)
{
    snap_ctx *x = arg;
    map_info info;
    char err[600];
    uint64_t done;

    if (map_row(t->map, tup, LSN_INVALID, &x->ops, &info, err, sizeof err) != 0) {
        log_error("cannot map a row of the snapshot", "table", t->name, "error", err, NULL);
        return P2Q_ERR_FATAL;
    }
    if (info.null_vector)
        x->stats->null_vectors++;
    else
        x->stats->upserts++;
    x->stats->rows++;
    sink_push(x->s, &x->ops, SINK_NO_TXN);
    done = x->stats->rows;
    if (done % SNAP_FETCH_ROWS == 0)
        metrics_set_snapshot(x->metrics, "running", done,
                             snap_progress_total(x->total_estimate, done));
    if (++x->since_pump >= SNAP_PUMP_EVERY || sink_full(x->s)) {
        x->since_pump = 0;
        return snap_sink_pump(x->s, x->cfg, x->stop, true);
    }
    return P2Q_OK;
}

p2q_status snap_run(const p2q_config *cfg, PGconn *conn, const char *snapshot_name, const int *idx, int nidx, sink *s,
             p2q_metrics *metrics, volatile sig_atomic_t *stop, snap_stats *stats)
{
    snap_table *tables = xcalloc((size_t)(nidx > 0 ? nidx : 1), sizeof *tables);
    snap_ctx x = {.cfg = cfg, .s = s, .metrics = metrics, .stop = stop, .stats = stats};
    p2q_status rc;
    int described = 0;

    memset(stats, 0, sizeof *stats);
    metrics_set_snapshot(metrics, "running", 0, 0);
    if ((rc = snap_begin(conn, snapshot_name)) != P2Q_OK)
        goto cleanup;
    /* Described inside the snapshot's transaction: the catalog as of the snapshot. */
    for (int i = 0; i < nidx; i++) {
        if ((rc = snap_describe(conn, cfg, &cfg->tables[idx[i]], cfg->source.publication, &tables[i])) != P2Q_OK)
            goto cleanup;
        described++;
        x.total_estimate = snap_estimate_add(x.total_estimate, tables[i].reltuples);
    }
    for (int i = 0; i < nidx; i++) {
        uint64_t rows;
        log_info("snapshot of table started", "table", tables[i].name, "collection", tables[i].cfg->collection,
                 NULL);
        if ((rc = snap_scan(conn, &tables[i], "snapshot progress", snap_row, &x, stop, &rows)) != P2Q_OK)
            goto cleanup;
        stats->tables++;
    }
    snap_end(conn);
    {
        int64_t t0 = now_ms();
        rc = sink_drain(s, 0, stop, NULL, NULL); /* no idle callback: never P2Q_RETRY */
        if (rc == P2Q_OK && now_ms() - t0 > 1000)
            log_info("snapshot: every upsert acknowledged by Qdrant", NULL);
    }
cleanup:
    snap_end(conn);
    metrics_set_snapshot(metrics, rc == P2Q_OK ? "done" : "failed", stats->rows,
                         snap_progress_total(x.total_estimate, stats->rows));
    for (int i = 0; i < described; i++)
        snap_table_free(&tables[i]);
    free(tables);
    qop_list_free(&x.ops);
    return rc;
}

/*
 * What run checks before it streams, for the selected tables only: the
 * tables and their collections (a missing one is created when
 * create_collections is set, as run does).  Returns P2Q_OK, P2Q_ERR_CONFIG
 * (problems logged), or P2Q_RETRY when a side could not be reached.
 */
static p2q_status prepare_tables(const p2q_config *cfg, qd_client *qd, const int *idx, int nidx,
                                 volatile sig_atomic_t *stop)
{
    p2q_config sub = *cfg; /* shallow: the selected table sections, borrowed */
    strlist problems = {0};
    p2q_status rc;

    sub.tables = xcalloc((size_t)nidx, sizeof *sub.tables);
    sub.n_tables = nidx;
    for (int i = 0; i < nidx; i++)
        sub.tables[i] = cfg->tables[idx[i]];
    rc = preflight_prepare(&sub, qd, false, stop, &problems);
    for (int i = 0; i < problems.n; i++)
        log_error("cannot snapshot", "error", problems.items[i], NULL);
    strlist_free(&problems);
    free(sub.tables);
    return rc;
}

p2q_status snap_command(const p2q_config *cfg, char *const *names, int nnames, volatile sig_atomic_t *stop)
{
    int *idx = xcalloc((size_t)(cfg->n_tables > 0 ? cfg->n_tables : 1), sizeof(int));
    qd_client *qd = NULL;
    sink *s = NULL;
    PGconn *conn = NULL;
    snap_stats stats;
    char err[512];
    int nidx;
    p2q_status rc = P2Q_ERR_FATAL;
    int64_t start = now_ms();

    if ((nidx = snap_select_tables(cfg, names, nnames, idx)) < 0) {
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    if (nidx == 0) {
        log_error("no [table] section in the config: nothing to snapshot", "config", cfg->path, NULL);
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    qd = qd_client_new(cfg->qdrant.url, cfg->qdrant.api_key, cfg->qdrant.timeout_ms);
    if (!qd) {
        log_error("cannot initialise the HTTP client", NULL);
        goto cleanup;
    }
    if (qd_client_set_ca_file(qd, cfg->qdrant.ca_file) != 0) {
        log_error("cannot use [qdrant] ca_file", "file", cfg->qdrant.ca_file, NULL);
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    if ((rc = prepare_tables(cfg, qd, idx, nidx, stop)) != P2Q_OK)
        goto cleanup;
    {
        sink_env env = {.cfg = cfg, .qd = qd};
        s = sink_new(&env);
    }
    if ((rc = repl_connect(cfg->source.dsn, false, stop, &conn, err, sizeof err)) != P2Q_OK) {
        log_error("cannot connect to PostgreSQL", "error", err, NULL);
        goto cleanup;
    }
    rc = snap_run(cfg, conn, NULL, idx, nidx, s, NULL, stop, &stats);
    if (rc == P2Q_OK) {
        char r[24], u[24], d[24], secs[24], rate[24];
        double sec = (double)(now_ms() - start) / 1000.0;
        snprintf(r, sizeof r, "%llu", (unsigned long long)stats.rows);
        snprintf(u, sizeof u, "%llu", (unsigned long long)stats.upserts);
        snprintf(d, sizeof d, "%llu", (unsigned long long)stats.null_vectors);
        snprintf(secs, sizeof secs, "%.1f", sec);
        snprintf(rate, sizeof rate, "%.0f", sec > 0 ? (double)stats.rows / sec : 0.0);
        log_info("snapshot done", "rows", r, "upserts", u, "null_vector_deletes", d, "seconds", secs, "rows_per_s",
                 rate, NULL);
    } else if (rc == P2Q_STOPPED) {
        log_warn("snapshot interrupted before it finished; run it again (it is idempotent)", NULL);
    }
cleanup:
    if (conn)
        PQfinish(conn);
    sink_free(s);
    qd_client_free(qd);
    free(idx);
    return rc;
}

/* Drops the slot this start created (its snapshot did not complete). */
static void drop_created_slot(const p2q_config *cfg, PGconn *repl)
{
    char *ident = quote_ident(cfg->source.slot);
    char *sql = xasprintf("DROP_REPLICATION_SLOT %s", ident);
    PGresult *res = PQexec(repl, sql);
    char msg[300];

    if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK)
        log_warn("the initial snapshot did not complete: dropped the replication slot created for it, the next start "
                 "takes the snapshot again",
                 "slot", cfg->source.slot, NULL);
    else
        log_error("the initial snapshot did not complete and the slot created for it cannot be dropped: drop it "
                  "(pg2qdrant slot drop) before the next start, or run pg2qdrant snapshot after it",
                  "slot", cfg->source.slot, "error", repl_error_line(res, repl, msg, sizeof msg), NULL);
    PQclear(res);
    free(sql);
    free(ident);
}

p2q_status snap_for_run(const p2q_config *cfg, PGconn *repl, const char *snapshot_name, bool created_slot, sink *s,
                        p2q_metrics *metrics, volatile sig_atomic_t *stop)
{
    int *idx = xcalloc((size_t)(cfg->n_tables > 0 ? cfg->n_tables : 1), sizeof(int));
    PGconn *conn = NULL;
    snap_stats stats = {0};
    char err[512];
    int64_t start = now_ms();
    int nidx = snap_select_tables(cfg, NULL, 0, idx);
    p2q_status rc;

    log_info(snapshot_name ? "initial snapshot: reading the tables as of the slot's consistent point"
                           : "snapshot at start (snapshot = always): reading the tables",
             "slot", cfg->source.slot, "snapshot", snapshot_name ? snapshot_name : "", NULL);
    metrics_set_state(metrics, "snapshot");
    if ((rc = repl_connect(cfg->source.dsn, false, stop, &conn, err, sizeof err)) != P2Q_OK) {
        log_error("cannot connect to PostgreSQL for the snapshot", "error", err, NULL);
        rc = rc == P2Q_ERR_CONFIG ? P2Q_ERR_CONFIG : P2Q_RETRY; /* stopped while connecting: the loop sees *stop */
    } else {
        rc = snap_run(cfg, conn, snapshot_name, idx, nidx, s, metrics, stop, &stats);
        if (rc == P2Q_ERR_FATAL && PQstatus(conn) != CONNECTION_OK)
            rc = P2Q_RETRY;
    }
    if (rc == P2Q_OK) {
        char r[24], secs[24], rate[24];
        double sec = (double)(now_ms() - start) / 1000.0;
        snprintf(r, sizeof r, "%llu", (unsigned long long)stats.rows);
        snprintf(secs, sizeof secs, "%.1f", sec);
        snprintf(rate, sizeof rate, "%.0f", sec > 0 ? (double)stats.rows / sec : 0.0);
        log_info("snapshot done: every row acknowledged by Qdrant; streaming from the slot", "rows", r, "seconds",
                 secs, "rows_per_s", rate, NULL);
    } else if (created_slot) {
        drop_created_slot(cfg, repl);
    }
    if (conn)
        PQfinish(conn);
    free(idx);
    return rc;
}
