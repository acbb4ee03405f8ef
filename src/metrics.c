/*
 * metrics.c — the status and metrics store behind the endpoint server.
 *
 * Writers lock, update a few fields and unlock; nothing here logs or does
 * I/O, so the sync thread never waits on a slow scrape for longer than a
 * struct copy.  Readers copy everything into a metrics_snap under the lock
 * and format the copy afterwards.
 */
#include "metrics.h"
#include "util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double metrics_buckets[METRICS_N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25,  0.5,    1,     2.5,  5,     10};

struct p2q_metrics {
    pthread_mutex_t mu;
    metrics_snap v;        /* the live values; derived fields are filled by snapshots only */
    size_t tables_cap;
    int64_t started_ms;    /* now_ms() at metrics_new */
    int64_t heartbeat_ms;  /* now_ms() of the last heartbeat */
    struct pending {
        lsn_t lsn;         /* Begin's final_lsn: where the commit record starts */
        int64_t ts;        /* its commit_ts */
    } *pend;               /* transactions received, not yet confirmed, in commit order */
    size_t pend_head, pend_n, pend_cap; /* live entries: pend[pend_head .. pend_n) */
};

static const char *op_names[METRICS_N_OPS] = {"insert", "update", "delete", "truncate"};
static const char *result_names[METRICS_N_RESULTS] = {"ok", "retry", "rejected"};

const char *metrics_op_name(metrics_op op)
{
    return (int)op >= 0 && (int)op < METRICS_N_OPS ? op_names[op] : "unknown";
}

const char *metrics_result_name(metrics_result r)
{
    return (int)r >= 0 && (int)r < METRICS_N_RESULTS ? result_names[r] : "unknown";
}

static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf_utf8(dst, cap, "%s", src ? src : "");
}

p2q_metrics *metrics_new(const char *slot)
{
    p2q_metrics *m = xcalloc(1, sizeof *m);

    pthread_mutex_init(&m->mu, NULL);
    m->v.slot = xstrdup(slot ? slot : "");
    copy_text(m->v.state, sizeof m->v.state, "starting");
    copy_text(m->v.snapshot_state, sizeof m->v.snapshot_state, "none");
    m->started_ms = now_ms();
    m->heartbeat_ms = m->started_ms;
    return m;
}

void metrics_free(p2q_metrics *m)
{
    if (!m)
        return;
    metrics_snap_free(&m->v);
    free(m->pend);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

#define LOCKED(m, body)                                                                                                \
    do {                                                                                                               \
        if (!(m))                                                                                                      \
            return;                                                                                                    \
        pthread_mutex_lock(&(m)->mu);                                                                                  \
        body;                                                                                                          \
        pthread_mutex_unlock(&(m)->mu);                                                                                \
    } while (0)

void metrics_heartbeat(p2q_metrics *m)
{
    int64_t t = now_ms();

    LOCKED(m, m->heartbeat_ms = t);
}

void metrics_set_state(p2q_metrics *m, const char *state)
{
    LOCKED(m, copy_text(m->v.state, sizeof m->v.state, state));
}

void metrics_swap_state(p2q_metrics *m, const char *from, const char *to)
{
    LOCKED(m, if (strcmp(m->v.state, from) == 0) copy_text(m->v.state, sizeof m->v.state, to));
}

void metrics_set_pg_connected(p2q_metrics *m, bool connected)
{
    LOCKED(m, m->v.pg_connected = connected);
}

void metrics_qdrant_ok(p2q_metrics *m)
{
    LOCKED(m, {
        m->v.qdrant_failed = false;
        m->v.qdrant_reason[0] = '\0';
    });
}

void metrics_qdrant_failed(p2q_metrics *m, const char *reason)
{
    LOCKED(m, {
        m->v.qdrant_failed = true;
        copy_text(m->v.qdrant_reason, sizeof m->v.qdrant_reason, reason);
    });
}

void metrics_set_last_error(p2q_metrics *m, const char *error)
{
    LOCKED(m, copy_text(m->v.last_error, sizeof m->v.last_error, error));
}

void metrics_set_received(p2q_metrics *m, lsn_t lsn)
{
    LOCKED(m, if (lsn > m->v.received_lsn) m->v.received_lsn = lsn);
}

void metrics_set_confirmed(p2q_metrics *m, lsn_t lsn)
{
    LOCKED(m, {
        m->v.confirmed_lsn = lsn;
        while (m->pend_head < m->pend_n && m->pend[m->pend_head].lsn < lsn)
            m->pend_head++;
        if (m->pend_head == m->pend_n)
            m->pend_head = m->pend_n = 0;
    });
}

void metrics_set_server_wal_end(p2q_metrics *m, lsn_t lsn)
{
    LOCKED(m, if (lsn > m->v.server_wal_end) m->v.server_wal_end = lsn);
}

/* Appends a pending transaction.  Called locked. */
static void pend_push(p2q_metrics *m, lsn_t commit_lsn, int64_t commit_ts)
{
    if (commit_lsn < m->v.confirmed_lsn ||
        (m->pend_n > m->pend_head && commit_lsn <= m->pend[m->pend_n - 1].lsn))
        return; /* confirmed already, or resent after a reconnect */
    if (m->pend_n == m->pend_cap) {
        if (m->pend_head > 0) {
            memmove(m->pend, m->pend + m->pend_head, (m->pend_n - m->pend_head) * sizeof *m->pend);
            m->pend_n -= m->pend_head;
            m->pend_head = 0;
        } else {
            m->pend_cap = m->pend_cap ? m->pend_cap * 2 : 64;
            m->pend = xrealloc(m->pend, m->pend_cap * sizeof *m->pend);
        }
    }
    m->pend[m->pend_n++] = (struct pending){.lsn = commit_lsn, .ts = commit_ts};
}

void metrics_txn_begin(p2q_metrics *m, lsn_t commit_lsn, int64_t commit_ts)
{
    LOCKED(m, pend_push(m, commit_lsn, commit_ts));
}

void metrics_set_inflight(p2q_metrics *m, int64_t bytes, int64_t txns)
{
    LOCKED(m, {
        m->v.inflight_bytes = bytes;
        m->v.inflight_txns = txns;
    });
}

void metrics_add_inflight_bytes(p2q_metrics *m, int64_t bytes)
{
    LOCKED(m, m->v.inflight_bytes += bytes);
}

/* The entry for schema.name, created on first sight.  Called locked. */
static metrics_table *table_entry(p2q_metrics *m, const char *schema, const char *name)
{
    size_t ls = strlen(schema);

    for (size_t i = 0; i < m->v.n_tables; i++) {
        const char *t = m->v.tables[i].table;
        if (strncmp(t, schema, ls) == 0 && t[ls] == '.' && strcmp(t + ls + 1, name) == 0)
            return &m->v.tables[i];
    }
    if (m->v.n_tables == m->tables_cap) {
        m->tables_cap = m->tables_cap ? m->tables_cap * 2 : 8;
        m->v.tables = xrealloc(m->v.tables, m->tables_cap * sizeof *m->v.tables);
    }
    m->v.tables[m->v.n_tables] = (metrics_table){.table = xasprintf("%s.%s", schema, name)};
    return &m->v.tables[m->v.n_tables++];
}

void metrics_count_change(p2q_metrics *m, const char *schema, const char *name, metrics_op op, uint64_t n)
{
    if ((int)op < 0 || (int)op >= METRICS_N_OPS)
        return;
    LOCKED(m, {
        table_entry(m, schema ? schema : "", name ? name : "")->n[op] += n;
        m->v.changes_total += n;
    });
}

void metrics_count_batch(p2q_metrics *m, metrics_result result, double seconds)
{
    size_t b = 0;

    if ((int)result < 0 || (int)result >= METRICS_N_RESULTS)
        return;
    if (!(seconds >= 0)) /* NaN or negative */
        seconds = 0;
    while (b < METRICS_N_BUCKETS && seconds > metrics_buckets[b])
        b++;
    LOCKED(m, {
        m->v.batches[result]++;
        m->v.buckets[b]++;
        m->v.duration_sum += seconds;
        m->v.duration_count++;
    });
}

void metrics_count_retry(p2q_metrics *m)
{
    LOCKED(m, m->v.retries++);
}

void metrics_count_dead_letter(p2q_metrics *m)
{
    LOCKED(m, m->v.dead_letters++);
}

void metrics_set_dead_letters(p2q_metrics *m, uint64_t total)
{
    LOCKED(m, m->v.dead_letters = total);
}

void metrics_set_backfill(p2q_metrics *m, const char *status_json)
{
    LOCKED(m, {
        free(m->v.backfill_json);
        m->v.backfill_json = status_json ? xstrdup(status_json) : NULL;
    });
}

void metrics_set_rebuild(p2q_metrics *m, const char *status_json, int phase)
{
    LOCKED(m, {
        free(m->v.rebuild_json);
        m->v.rebuild_json = status_json ? xstrdup(status_json) : NULL;
        m->v.rebuild_phase = phase;
    });
}

void metrics_count_rebuild(p2q_metrics *m, bool failed)
{
    LOCKED(m, {
        if (failed)
            m->v.rebuilds_failed++;
        else
            m->v.rebuilds_done++;
    });
}

void metrics_count_backfill_rows(p2q_metrics *m, const char *schema, const char *name, uint64_t n)
{
    LOCKED(m, table_entry(m, schema ? schema : "", name ? name : "")->backfill_rows += n);
}

void metrics_set_snapshot(p2q_metrics *m, const char *state, uint64_t rows_done, uint64_t rows_total_estimate)
{
    LOCKED(m, {
        copy_text(m->v.snapshot_state, sizeof m->v.snapshot_state, state);
        m->v.snapshot_rows_done = rows_done;
        m->v.snapshot_rows_total_estimate = rows_total_estimate;
    });
}

/* ---- reader side ------------------------------------------------------------------ */

void metrics_snapshot_at(p2q_metrics *m, int64_t mono_ms, int64_t pg_us, metrics_snap *out)
{
    lsn_t end;

    pthread_mutex_lock(&m->mu);
    *out = m->v;
    out->slot = xstrdup(m->v.slot);
    out->backfill_json = m->v.backfill_json ? xstrdup(m->v.backfill_json) : NULL;
    out->rebuild_json = m->v.rebuild_json ? xstrdup(m->v.rebuild_json) : NULL;
    out->tables = m->v.n_tables ? xmalloc(m->v.n_tables * sizeof *out->tables) : NULL;
    for (size_t i = 0; i < m->v.n_tables; i++) {
        out->tables[i] = m->v.tables[i];
        out->tables[i].table = xstrdup(m->v.tables[i].table);
    }
    out->uptime_seconds = (mono_ms - m->started_ms) / 1000;
    out->heartbeat_age_ms = mono_ms - m->heartbeat_ms;
    out->lag_seconds = 0;
    if (m->pend_head < m->pend_n && pg_us > m->pend[m->pend_head].ts)
        out->lag_seconds = (double)(pg_us - m->pend[m->pend_head].ts) / 1e6;
    pthread_mutex_unlock(&m->mu);

    end = out->server_wal_end > out->received_lsn ? out->server_wal_end : out->received_lsn;
    out->lag_bytes = end > out->confirmed_lsn ? end - out->confirmed_lsn : 0;
}

void metrics_snapshot(p2q_metrics *m, metrics_snap *out)
{
    metrics_snapshot_at(m, now_ms(), pg_now_us(), out);
}

void metrics_snap_free(metrics_snap *s)
{
    for (size_t i = 0; i < s->n_tables; i++)
        free(s->tables[i].table);
    free(s->tables);
    free(s->slot);
    free(s->backfill_json);
    s->backfill_json = NULL;
    free(s->rebuild_json);
    s->rebuild_json = NULL;
    s->tables = NULL;
    s->n_tables = 0;
    s->slot = NULL;
}

static void json_key(buf *b, const char *key)
{
    buf_json_str(b, key, strlen(key));
    buf_putc(b, ':');
}

static void json_text(buf *b, const char *s)
{
    buf_json_str(b, s, strlen(s));
}

static void json_lsn(buf *b, const char *key, lsn_t lsn)
{
    char l[LSN_BUFSZ];

    json_key(b, key);
    json_text(b, lsn_fmt(lsn, l));
    buf_putc(b, ',');
}

static void json_u64(buf *b, const char *key, uint64_t v, bool comma)
{
    json_key(b, key);
    buf_printf(b, "%llu%s", (unsigned long long)v, comma ? "," : "");
}

void metrics_render_status(const metrics_snap *s, buf *out)
{
    buf_putc(out, '{');
    json_key(out, "slot");
    json_text(out, s->slot ? s->slot : "");
    buf_putc(out, ',');
    json_key(out, "state");
    json_text(out, s->state);
    buf_putc(out, ',');
    json_lsn(out, "received_lsn", s->received_lsn);
    json_lsn(out, "confirmed_lsn", s->confirmed_lsn);
    json_lsn(out, "server_wal_end", s->server_wal_end);
    json_u64(out, "lag_bytes", s->lag_bytes, true);
    json_key(out, "lag_seconds");
    buf_printf(out, "%.3f,", s->lag_seconds);
    json_key(out, "inflight_bytes");
    buf_printf(out, "%lld,", (long long)s->inflight_bytes);
    json_key(out, "inflight_txns");
    buf_printf(out, "%lld,", (long long)s->inflight_txns);

    json_key(out, "snapshot");
    buf_putc(out, '{');
    json_key(out, "state");
    json_text(out, s->snapshot_state);
    buf_putc(out, ',');
    json_u64(out, "rows_done", s->snapshot_rows_done, true);
    json_u64(out, "rows_total_estimate", s->snapshot_rows_total_estimate, false);
    buf_puts(out, "},");

    json_key(out, "backfill");
    buf_puts(out, s->backfill_json ? s->backfill_json
                                   : "{\"state\":\"idle\",\"id\":null,\"table\":null,\"rows_done\":0,"
                                     "\"rows_total_estimate\":0,\"chunks_done\":0,\"last_error\":null,"
                                     "\"queued\":[],\"finished\":[]}");
    buf_putc(out, ',');

    json_key(out, "rebuild");
    buf_puts(out, s->rebuild_json ? s->rebuild_json
                                  : "{\"state\":\"idle\",\"id\":null,\"phase\":null,\"table\":null,"
                                    "\"alias\":null,\"generation\":null,\"old_collection\":null,"
                                    "\"new_collection\":null,\"rows_done\":0,\"error\":null,\"finished\":[]}");
    buf_putc(out, ',');

    json_key(out, "changes");
    buf_putc(out, '{');
    json_u64(out, "total", s->changes_total, true);
    json_key(out, "tables");
    buf_putc(out, '{');
    for (size_t i = 0; i < s->n_tables; i++) {
        if (i)
            buf_putc(out, ',');
        json_key(out, s->tables[i].table);
        buf_putc(out, '{');
        for (int op = 0; op < METRICS_N_OPS; op++)
            json_u64(out, op_names[op], s->tables[i].n[op], op + 1 < METRICS_N_OPS);
        buf_putc(out, '}');
    }
    buf_puts(out, "}},");

    json_key(out, "batches");
    buf_putc(out, '{');
    for (int r = 0; r < METRICS_N_RESULTS; r++)
        json_u64(out, result_names[r], s->batches[r], r + 1 < METRICS_N_RESULTS);
    buf_puts(out, "},");

    json_u64(out, "retries", s->retries, true);
    json_u64(out, "dead_letters", s->dead_letters, true);
    json_key(out, "last_error");
    if (s->last_error[0])
        json_text(out, s->last_error);
    else
        buf_puts(out, "null");
    buf_putc(out, ',');
    json_key(out, "uptime_seconds");
    buf_printf(out, "%lld", (long long)s->uptime_seconds);
    buf_puts(out, "}\n");
}

/* A label value: backslash, double quote and line feed escaped (text format 0.0.4). */
static void prom_label(buf *b, const char *v)
{
    buf_putc(b, '"');
    for (; *v; v++) {
        if (*v == '\\')
            buf_puts(b, "\\\\");
        else if (*v == '"')
            buf_puts(b, "\\\"");
        else if (*v == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *v);
    }
    buf_putc(b, '"');
}

static void prom_head(buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A float the way Prometheus reads it (Go's ParseFloat). */
static void prom_double(buf *b, double v)
{
    if (isnan(v))
        buf_puts(b, "NaN");
    else if (isinf(v))
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else {
        char t[32];
        snprintf(t, sizeof t, "%.15g", v); /* the short form when it reads back the same */
        if (strtod(t, NULL) != v)
            snprintf(t, sizeof t, "%.17g", v);
        buf_puts(b, t);
    }
}

static void prom_u64(buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    prom_head(b, name, type, help);
    buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void metrics_render_prometheus(const metrics_snap *s, buf *out)
{
    uint64_t cum = 0;

    prom_head(out, "pg2qdrant_changes_total", "counter",
              "Row changes received from PostgreSQL for synced tables, by table and operation.");
    for (size_t i = 0; i < s->n_tables; i++) {
        for (int op = 0; op < METRICS_N_OPS; op++) {
            buf_puts(out, "pg2qdrant_changes_total{table=");
            prom_label(out, s->tables[i].table);
            buf_printf(out, ",op=\"%s\"} %llu\n", op_names[op], (unsigned long long)s->tables[i].n[op]);
        }
    }

    prom_head(out, "pg2qdrant_backfill_rows_total", "counter",
              "Rows read by online backfills (SPEC 9), by table.");
    for (size_t i = 0; i < s->n_tables; i++) {
        buf_puts(out, "pg2qdrant_backfill_rows_total{table=");
        prom_label(out, s->tables[i].table);
        buf_printf(out, "} %llu\n", (unsigned long long)s->tables[i].backfill_rows);
    }

    prom_head(out, "pg2qdrant_rebuild_phase", "gauge",
              "Phase of the running rebuild behind an alias (SPEC 10): 0 idle, 1 create, 2 backfill, 3 switch, "
              "4 drop.");
    buf_printf(out, "pg2qdrant_rebuild_phase %d\n", s->rebuild_phase);
    prom_head(out, "pg2qdrant_rebuilds_total", "counter", "Rebuilds behind an alias that ended, by result.");
    buf_printf(out, "pg2qdrant_rebuilds_total{result=\"done\"} %llu\n", (unsigned long long)s->rebuilds_done);
    buf_printf(out, "pg2qdrant_rebuilds_total{result=\"failed\"} %llu\n", (unsigned long long)s->rebuilds_failed);

    prom_head(out, "pg2qdrant_batches_total", "counter",
              "Qdrant batch requests by result: ok, retry (transient failure, retried), rejected (deterministic).");
    for (int r = 0; r < METRICS_N_RESULTS; r++)
        buf_printf(out, "pg2qdrant_batches_total{result=\"%s\"} %llu\n", result_names[r],
                   (unsigned long long)s->batches[r]);

    prom_head(out, "pg2qdrant_batch_duration_seconds", "histogram",
              "Duration of Qdrant batch requests (wait=true), every attempt.");
    for (int i = 0; i < METRICS_N_BUCKETS; i++) {
        cum += s->buckets[i];
        buf_printf(out, "pg2qdrant_batch_duration_seconds_bucket{le=\"%g\"} %llu\n", metrics_buckets[i],
                   (unsigned long long)cum);
    }
    cum += s->buckets[METRICS_N_BUCKETS];
    buf_printf(out, "pg2qdrant_batch_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    buf_puts(out, "pg2qdrant_batch_duration_seconds_sum ");
    prom_double(out, s->duration_sum);
    buf_printf(out, "\npg2qdrant_batch_duration_seconds_count %llu\n", (unsigned long long)s->duration_count);

    prom_u64(out, "pg2qdrant_confirmed_lsn", "gauge",
             "WAL position confirmed to PostgreSQL (flush), as a number.", s->confirmed_lsn);
    prom_u64(out, "pg2qdrant_lag_bytes", "gauge",
             "Bytes of WAL between the server's end of WAL and the confirmed position.", s->lag_bytes);
    prom_head(out, "pg2qdrant_replication_lag_seconds", "gauge",
              "Age of the oldest received transaction not yet acknowledged by Qdrant; 0 when none.");
    buf_puts(out, "pg2qdrant_replication_lag_seconds ");
    prom_double(out, s->lag_seconds);
    buf_putc(out, '\n');
    prom_head(out, "pg2qdrant_inflight_bytes", "gauge", "Bytes of decoded changes not yet acknowledged by Qdrant.");
    buf_printf(out, "pg2qdrant_inflight_bytes %lld\n", (long long)s->inflight_bytes);
    prom_u64(out, "pg2qdrant_qdrant_retries_total", "counter", "Qdrant requests retried after a transient failure.",
             s->retries);
    prom_u64(out, "pg2qdrant_dead_letters_total", "counter", "Operations written to the dead-letter file.",
             s->dead_letters);
    prom_u64(out, "pg2qdrant_up", "gauge",
             "1 when connected to PostgreSQL and Qdrant's last answer was a success (as /readyz), else 0.",
             metrics_ready(s, NULL) ? 1 : 0);
}

bool metrics_ready(const metrics_snap *s, buf *reason)
{
    const char *why = NULL;

    if (strcmp(s->state, "stopping") == 0 || strcmp(s->state, "stopped") == 0)
        why = s->state;
    else if (strcmp(s->state, "standby") == 0)
        why = "standby";
    else if (strcmp(s->state, "snapshot") == 0 || strcmp(s->snapshot_state, "running") == 0)
        why = "snapshot in progress";
    else if (!s->pg_connected)
        why = "postgres: not connected";
    if (why) {
        if (reason)
            buf_puts(reason, why);
        return false;
    }
    if (s->qdrant_failed) {
        if (reason)
            buf_printf(reason, "qdrant: %s", s->qdrant_reason);
        return false;
    }
    return true;
}

bool metrics_live(const metrics_snap *s, int64_t bound_ms)
{
    return s->heartbeat_age_ms <= bound_ms;
}
