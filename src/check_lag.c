/*
 * check_lag.c — `pg2qdrant check-lag` (SPEC §7) and the slot reading that
 * `pg2qdrant slot` shares.
 *
 * The whole picture comes from one query on a plain connection: the
 * server's current position (pg_current_wal_lsn(), or on a standby the
 * newer of the last received and replayed positions), the slot row as
 * to_jsonb (so columns that only newer servers have, inactive_since,
 * invalidation_reason, conflicting, are read when present and absent
 * otherwise), both distances from pg_wal_lsn_diff and, where the server
 * has inactive_since, how long the slot has been inactive by the
 * server's clock.  lag_evaluate turns that into a status and one line of
 * text; lag_format prints it as Nagios, JSON or Prometheus text.
 */
#include "check_lag.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "replication.h"


/* ------------------------------------------------------------------ */
/* Small text helpers                                                  */

const char *lag_status_name(lag_status st)
{
    switch (st) {
    case LAG_OK:
        return "OK";
    case LAG_WARNING:
        return "WARNING";
    case LAG_CRITICAL:
        return "CRITICAL";
    default:
        return "UNKNOWN";
    }
}

void lag_size_pretty(int64_t bytes, char out[32])
{
    static const char *const units[] = {"kB", "MB", "GB", "TB", "PB"};
    double v = (double)bytes;
    int u = 0;

    if (bytes > -10240 && bytes < 10240) {
        snprintf(out, 32, "%" PRId64 " bytes", bytes);
        return;
    }
    v /= 1024.0;
    while ((v >= 10240.0 || v <= -10240.0) && u < 4) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, 32, "%.0f %s", v, units[u]);
}

static void duration_pretty(int64_t ms, char out[32])
{
    int64_t s = ms / 1000;

    if (ms < 1000)
        snprintf(out, 32, "%" PRId64 " ms", ms);
    else if (s < 60)
        snprintf(out, 32, "%" PRId64 " s", s);
    else if (s < 3600)
        snprintf(out, 32, "%" PRId64 " min", s / 60);
    else if (s < 86400)
        snprintf(out, 32, "%" PRId64 " h %" PRId64 " min", s / 3600, (s % 3600) / 60);
    else
        snprintf(out, 32, "%" PRId64 " d %" PRId64 " h", s / 86400, (s % 86400) / 3600);
}

/* ------------------------------------------------------------------ */
/* Source resolution and connection                                    */

void lag_source_free(lag_source *src)
{
    free(src->dsn);
    free(src->slot);
    if (src->have_config)
        config_free(&src->cfg);
    memset(src, 0, sizeof *src);
}

int lag_source_resolve(const char *config_path, const char *dsn, const char *slot, bool require_file,
                       lag_source *out)
{
    const char *env = getenv("PG2QDRANT_CONFIG");
    const char *path = NULL;
    strlist errs = {0};
    struct stat st;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (config_path)
        path = config_path;
    else if (env && *env)
        path = env;
    else if (!dsn && (require_file || stat(CONFIG_DEFAULT_PATH, &st) == 0))
        path = CONFIG_DEFAULT_PATH;

    if (path) {
        out->have_config = true;
        if (config_load(path, &out->cfg, &errs) != 0) {
            for (int i = 0; i < errs.n; i++)
                log_error("configuration error", "error", errs.items[i], NULL);
            goto cleanup;
        }
    }
    out->dsn = xstrdup(dsn ? dsn : out->have_config ? out->cfg.source.dsn : "");
    out->slot = xstrdup(slot ? slot : out->have_config ? out->cfg.source.slot : "pg2qdrant");
    rc = 0;

cleanup:
    if (rc != 0) {
        out->dsn = xstrdup(dsn ? dsn : "");
        out->slot = xstrdup(slot ? slot : out->cfg.source.slot ? out->cfg.source.slot : "pg2qdrant");
    }
    strlist_free(&errs);
    return rc;
}

int lag_connect(const char *dsn, const char *appname, PGconn **out, char *err, size_t errlen)
{
    repl_conn_opts co = {.appname = appname, .any_encoding = true};
    char why[480];
    p2q_status rc = repl_open(dsn, &co, out, why, sizeof why);

    if (rc != P2Q_OK)
        snprintf(err, errlen, "%s%s", rc == P2Q_RETRY ? "cannot connect to PostgreSQL: " : "", why);
    return rc == P2Q_OK ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Reading the slot                                                    */

static const char SLOT_SQL[] =
    "SELECT pg_catalog.pg_is_in_recovery(), w.cur::text, r.j::text,"
    " pg_catalog.pg_wal_lsn_diff(w.cur, (r.j->>'confirmed_flush_lsn')::pg_catalog.pg_lsn)::text,"
    " pg_catalog.pg_wal_lsn_diff(w.cur, (r.j->>'restart_lsn')::pg_catalog.pg_lsn)::text,"
    " (extract(epoch FROM pg_catalog.now() - (r.j->>'inactive_since')::timestamptz) * 1000)::bigint::text"
    " FROM (SELECT CASE WHEN pg_catalog.pg_is_in_recovery()"
    "        THEN GREATEST(pg_catalog.pg_last_wal_receive_lsn(), pg_catalog.pg_last_wal_replay_lsn())"
    "        ELSE pg_catalog.pg_current_wal_lsn() END AS cur) w"
    " LEFT JOIN (SELECT pg_catalog.to_jsonb(s) AS j FROM pg_catalog.pg_replication_slots s"
    "            WHERE s.slot_name = $1::pg_catalog.name) r ON true";

static void json_str(json_t *obj, const char *key, char *out, size_t outlen)
{
    const char *s = json_string_value(json_object_get(obj, key));

    snprintf(out, outlen, "%s", s ? s : "");
}

/* A pg_wal_lsn_diff() text (numeric, may carry a fraction) -> bytes >= 0. */
static bool diff_value(const PGresult *res, int col, int64_t *out)
{
    long long v;

    if (PQgetisnull(res, 0, col))
        return false;
    v = strtoll(PQgetvalue(res, 0, col), NULL, 10);
    *out = v < 0 ? 0 : (int64_t)v;
    return true;
}

static bool lsn_field(json_t *row, const char *key, lsn_t *out)
{
    const char *s = json_string_value(json_object_get(row, key));

    return s && lsn_parse(s, out) == 0;
}

int lag_read_slot(PGconn *conn, const char *slot, lag_slot *out, char *err, size_t errlen)
{
    const char *params[1] = {slot};
    PGresult *res = NULL;
    json_t *row = NULL, *v;
    json_error_t jerr;
    char msg[400];
    int rc = -1;

    memset(out, 0, sizeof *out);
    res = PQexecParams(conn, SLOT_SQL, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        repl_error_line(res, conn, msg, sizeof msg);
        snprintf(err, errlen, "cannot read pg_replication_slots: %s", msg[0] ? msg : "no result");
        goto cleanup;
    }
    out->standby = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    out->have_current = !PQgetisnull(res, 0, 1) && lsn_parse(PQgetvalue(res, 0, 1), &out->current_lsn) == 0;
    if (PQgetisnull(res, 0, 2)) {
        rc = 0;
        goto cleanup;
    }
    row = json_loads(PQgetvalue(res, 0, 2), 0, &jerr);
    if (!json_is_object(row)) {
        snprintf(err, errlen, "cannot parse the pg_replication_slots row of slot \"%s\": %s", slot, jerr.text);
        goto cleanup;
    }
    out->exists = true;
    json_str(row, "slot_type", out->slot_type, sizeof out->slot_type);
    json_str(row, "plugin", out->plugin, sizeof out->plugin);
    json_str(row, "database", out->database, sizeof out->database);
    json_str(row, "wal_status", out->wal_status, sizeof out->wal_status);
    json_str(row, "invalidation_reason", out->invalidation_reason, sizeof out->invalidation_reason);
    json_str(row, "inactive_since", out->inactive_since, sizeof out->inactive_since);
    out->has_inactive_since_col = json_object_get(row, "inactive_since") != NULL;
    out->conflicting = json_is_true(json_object_get(row, "conflicting"));
    out->active = json_is_true(json_object_get(row, "active"));
    out->active_pid = (int)json_integer_value(json_object_get(row, "active_pid"));
    out->have_restart = lsn_field(row, "restart_lsn", &out->restart_lsn);
    out->have_confirmed = lsn_field(row, "confirmed_flush_lsn", &out->confirmed_flush_lsn);
    v = json_object_get(row, "safe_wal_size");
    if (json_is_integer(v)) {
        out->have_safe_wal_size = true;
        out->safe_wal_size = (int64_t)json_integer_value(v);
    }
    out->have_lag = diff_value(res, 3, &out->lag_bytes);
    out->have_retained = diff_value(res, 4, &out->retained_bytes);
    if (!out->active && !PQgetisnull(res, 0, 5)) {
        long long ms = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
        out->have_inactive_ms = true;
        out->inactive_ms = ms < 0 ? 0 : (int64_t)ms;
    }
    rc = 0;

cleanup:
    json_decref(row);
    PQclear(res);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The rules                                                           */

static void add_problem(buf *problems, lag_status *st, lag_status sev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_problem(buf *problems, lag_status *st, lag_status sev, const char *fmt, ...)
{
    va_list ap;

    if (problems->len)
        buf_puts(problems, "; ");
    va_start(ap, fmt);
    buf_vprintf(problems, fmt, ap);
    va_end(ap);
    if (sev > *st)
        *st = sev;
}

lag_status lag_evaluate(const char *slot, const lag_slot *s, const lag_limits *lim, buf *text)
{
    lag_status st = LAG_OK;
    char a[32], b[32], d[32];
    buf p;

    buf_init(&p);
    if (!s->exists) {
        add_problem(&p, &st, LAG_CRITICAL, "slot \"%s\" does not exist", slot);
        buf_puts(text, p.data);
        buf_free(&p);
        return st;
    }
    if (strcmp(s->slot_type, "logical") != 0)
        add_problem(&p, &st, LAG_CRITICAL, "slot \"%s\" is a %s slot, pg2qdrant needs a logical pgoutput slot", slot,
                    s->slot_type[0] ? s->slot_type : "non-logical");
    else if (strcmp(s->plugin, "pgoutput") != 0)
        add_problem(&p, &st, LAG_CRITICAL, "slot \"%s\" uses plugin %s, pg2qdrant needs pgoutput", slot,
                    s->plugin[0] ? s->plugin : "(none)");
    if (strcmp(s->wal_status, "lost") == 0)
        add_problem(&p, &st, LAG_CRITICAL,
                    "wal_status lost: WAL the slot needs was removed, the slot cannot be used any more "
                    "(drop and re-create it, then resync with pg2qdrant snapshot)");
    else if (strcmp(s->wal_status, "unreserved") == 0)
        add_problem(&p, &st, LAG_CRITICAL,
                    "wal_status unreserved: the slot will lose WAL it needs at the next checkpoint "
                    "(max_slot_wal_keep_size exceeded)");
    if (s->invalidation_reason[0])
        add_problem(&p, &st, LAG_CRITICAL, "slot invalidated (%s)", s->invalidation_reason);
    else if (s->conflicting)
        add_problem(&p, &st, LAG_CRITICAL, "slot invalidated (conflicting with recovery)");

    if (s->have_lag) {
        lag_size_pretty(s->lag_bytes, a);
        if (s->lag_bytes > lim->critical_bytes) {
            lag_size_pretty(lim->critical_bytes, b);
            add_problem(&p, &st, LAG_CRITICAL, "backlog %s exceeds critical %s", a, b);
        } else if (s->lag_bytes > lim->warn_bytes) {
            lag_size_pretty(lim->warn_bytes, b);
            add_problem(&p, &st, LAG_WARNING, "backlog %s exceeds warning %s", a, b);
        }
    }

    if (!s->active) {
        bool any = lim->inactive_warn_ms >= 0 || lim->inactive_critical_ms >= 0;
        if (s->have_inactive_ms) {
            duration_pretty(s->inactive_ms, a);
            if (lim->inactive_critical_ms >= 0 && s->inactive_ms > lim->inactive_critical_ms) {
                duration_pretty(lim->inactive_critical_ms, b);
                add_problem(&p, &st, LAG_CRITICAL, "no process holds the slot for %s (critical %s)", a, b);
            } else if (lim->inactive_warn_ms >= 0 && s->inactive_ms > lim->inactive_warn_ms) {
                duration_pretty(lim->inactive_warn_ms, b);
                add_problem(&p, &st, LAG_WARNING, "no process holds the slot for %s (warning %s)", a, b);
            }
        } else if (any) {
            /* PostgreSQL < 17 does not say since when: see docs/check-lag.md. */
            add_problem(&p, &st, LAG_WARNING,
                        "no process holds the slot, for an unknown time (%s)",
                        s->has_inactive_since_col ? "inactive_since is NULL"
                                                  : "PostgreSQL before 17 has no inactive_since");
        }
    }

    if (p.len) {
        buf_puts(text, p.data);
        buf_puts(text, "; ");
    }
    buf_printf(text, "slot \"%s\": backlog ", slot);
    if (s->have_lag) {
        lag_size_pretty(s->lag_bytes, a);
        buf_puts(text, a);
    } else {
        buf_puts(text, "unknown");
    }
    buf_puts(text, ", WAL retained ");
    if (s->have_retained) {
        lag_size_pretty(s->retained_bytes, a);
        buf_puts(text, a);
    } else {
        buf_puts(text, "unknown");
    }
    if (s->active) {
        buf_printf(text, ", active (pid %d)", s->active_pid);
    } else if (s->have_inactive_ms) {
        duration_pretty(s->inactive_ms, d);
        buf_printf(text, ", inactive for %s", d);
    } else {
        buf_puts(text, ", inactive");
    }
    if (s->wal_status[0])
        buf_printf(text, ", wal_status %s", s->wal_status);
    if (s->standby)
        buf_puts(text, ", on a standby");
    buf_free(&p);
    return st;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */

/* The text as one Nagios line: no newline, no '|' (it starts perfdata). */
static void nagios_text(buf *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '|')
            buf_putc(out, '/');
        else if (*p == '\n' || *p == '\r' || *p == '\t')
            buf_putc(out, ' ');
        else
            buf_putc(out, *p);
    }
}

static void format_nagios(buf *out, lag_status st, const lag_slot *s, const lag_limits *lim, const char *text)
{
    buf_printf(out, "PG2QDRANT SLOT %s - ", lag_status_name(st));
    nagios_text(out, text);
    buf_puts(out, " | lag_bytes=");
    if (s && s->have_lag)
        buf_printf(out, "%" PRId64 "B", s->lag_bytes);
    else
        buf_puts(out, "U");
    buf_printf(out, ";%" PRId64 ";%" PRId64 " retained_bytes=", lim->warn_bytes, lim->critical_bytes);
    if (s && s->have_retained)
        buf_printf(out, "%" PRId64 "B", s->retained_bytes);
    else
        buf_puts(out, "U");
    if (s && s->have_safe_wal_size)
        buf_printf(out, " safe_wal_size=%" PRId64 "B", s->safe_wal_size);
    if (s && s->exists)
        buf_printf(out, " active=%d", s->active ? 1 : 0);
    if (s && s->have_inactive_ms) {
        buf_printf(out, " inactive_seconds=%" PRId64 "s;", s->inactive_ms / 1000);
        if (lim->inactive_warn_ms >= 0)
            buf_printf(out, "%" PRId64, lim->inactive_warn_ms / 1000);
        buf_putc(out, ';');
        if (lim->inactive_critical_ms >= 0)
            buf_printf(out, "%" PRId64, lim->inactive_critical_ms / 1000);
    }
    buf_putc(out, '\n');
}

static json_t *json_opt_str(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *json_opt_int(bool have, int64_t v)
{
    return have ? json_integer((json_int_t)v) : json_null();
}

static json_t *json_opt_lsn(bool have, lsn_t v)
{
    char b[LSN_BUFSZ];

    return have ? json_string(lsn_fmt(v, b)) : json_null();
}

static json_t *json_limit_s(int64_t ms)
{
    return ms >= 0 ? json_real((double)ms / 1000.0) : json_null();
}

static void format_json(buf *out, const char *slot, lag_status st, const lag_slot *s, const lag_limits *lim,
                        const char *text)
{
    json_t *o = json_object();
    char *dump;

    json_object_set_new(o, "status", json_string(lag_status_name(st)));
    json_object_set_new(o, "exit_code", json_integer((json_int_t)st));
    json_object_set_new(o, "slot", json_string(slot));
    json_object_set_new(o, "text", json_string(text));
    if (!s) {
        json_object_set_new(o, "error", json_string(text));
    } else {
        json_object_set_new(o, "exists", json_boolean(s->exists));
        json_object_set_new(o, "standby", json_boolean(s->standby));
        json_object_set_new(o, "current_lsn", json_opt_lsn(s->have_current, s->current_lsn));
        json_object_set_new(o, "slot_type", json_opt_str(s->exists ? s->slot_type : NULL));
        json_object_set_new(o, "plugin", json_opt_str(s->exists ? s->plugin : NULL));
        json_object_set_new(o, "database", json_opt_str(s->exists ? s->database : NULL));
        json_object_set_new(o, "active", s->exists ? json_boolean(s->active) : json_null());
        json_object_set_new(o, "active_pid", json_opt_int(s->active && s->active_pid > 0, s->active_pid));
        json_object_set_new(o, "wal_status", json_opt_str(s->exists ? s->wal_status : NULL));
        json_object_set_new(o, "safe_wal_size", json_opt_int(s->have_safe_wal_size, s->safe_wal_size));
        json_object_set_new(o, "restart_lsn", json_opt_lsn(s->have_restart, s->restart_lsn));
        json_object_set_new(o, "confirmed_flush_lsn", json_opt_lsn(s->have_confirmed, s->confirmed_flush_lsn));
        json_object_set_new(o, "lag_bytes", json_opt_int(s->have_lag, s->lag_bytes));
        json_object_set_new(o, "retained_bytes", json_opt_int(s->have_retained, s->retained_bytes));
        json_object_set_new(o, "inactive_since", json_opt_str(s->exists ? s->inactive_since : NULL));
        json_object_set_new(o, "inactive_seconds",
                            s->have_inactive_ms ? json_real((double)s->inactive_ms / 1000.0) : json_null());
        json_object_set_new(o, "invalidation_reason", json_opt_str(s->exists ? s->invalidation_reason : NULL));
        json_object_set_new(o, "conflicting", s->exists ? json_boolean(s->conflicting) : json_null());
    }
    json_object_set_new(o, "warn_bytes", json_integer((json_int_t)lim->warn_bytes));
    json_object_set_new(o, "critical_bytes", json_integer((json_int_t)lim->critical_bytes));
    json_object_set_new(o, "inactive_warn_seconds", json_limit_s(lim->inactive_warn_ms));
    json_object_set_new(o, "inactive_critical_seconds", json_limit_s(lim->inactive_critical_ms));
    dump = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    buf_puts(out, dump ? dump : "{\"status\":\"UNKNOWN\"}");
    buf_putc(out, '\n');
    free(dump);
    json_decref(o);
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void prom_label(buf *out, const char *v)
{
    buf_putc(out, '"');
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"')
            buf_putc(out, '\\');
        if (*p == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *p);
    }
    buf_putc(out, '"');
}

static void prom_metric(buf *out, const char *name, const char *help, const char *slot, const char *value)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s{slot=", name, help, name, name);
    prom_label(out, slot);
    buf_printf(out, "} %s\n", value);
}

static void prom_int(buf *out, const char *name, const char *help, const char *slot, int64_t v)
{
    char num[32];

    snprintf(num, sizeof num, "%" PRId64, v);
    prom_metric(out, name, help, slot, num);
}

static void format_prometheus(buf *out, const char *slot, lag_status st, const lag_slot *s, const lag_limits *lim,
                              const char *text)
{
    char num[32];

    buf_puts(out, "# ");
    nagios_text(out, text);
    buf_putc(out, '\n');
    prom_int(out, "pg2qdrant_slot_status", "Slot health: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", slot, st);
    prom_int(out, "pg2qdrant_slot_up", "1 when PostgreSQL could be queried.", slot, s ? 1 : 0);
    prom_int(out, "pg2qdrant_slot_lag_warning_bytes", "The --warn threshold on the backlog.", slot, lim->warn_bytes);
    prom_int(out, "pg2qdrant_slot_lag_critical_bytes", "The --critical threshold on the backlog.", slot,
             lim->critical_bytes);
    if (!s)
        return;
    prom_int(out, "pg2qdrant_slot_exists", "1 when the slot exists.", slot, s->exists ? 1 : 0);
    if (!s->exists)
        return;
    buf_puts(out, "# HELP pg2qdrant_slot_info The slot's type, plugin, database and wal_status.\n"
                  "# TYPE pg2qdrant_slot_info gauge\npg2qdrant_slot_info{slot=");
    prom_label(out, slot);
    buf_puts(out, ",slot_type=");
    prom_label(out, s->slot_type);
    buf_puts(out, ",plugin=");
    prom_label(out, s->plugin);
    buf_puts(out, ",database=");
    prom_label(out, s->database);
    buf_puts(out, ",wal_status=");
    prom_label(out, s->wal_status);
    buf_puts(out, "} 1\n");
    prom_int(out, "pg2qdrant_slot_active", "1 when a process holds the slot.", slot, s->active ? 1 : 0);
    if (s->have_lag)
        prom_int(out, "pg2qdrant_slot_lag_bytes", "WAL bytes after the slot's confirmed_flush_lsn (the backlog).",
                 slot, s->lag_bytes);
    if (s->have_retained)
        prom_int(out, "pg2qdrant_slot_retained_bytes", "WAL bytes the slot retains (after its restart_lsn).", slot,
                 s->retained_bytes);
    if (s->have_safe_wal_size)
        prom_int(out, "pg2qdrant_slot_safe_wal_size_bytes",
                 "WAL that can still be written before the slot is in danger of being lost.", slot,
                 s->safe_wal_size);
    if (s->have_inactive_ms) {
        snprintf(num, sizeof num, "%.3f", (double)s->inactive_ms / 1000.0);
        prom_metric(out, "pg2qdrant_slot_inactive_seconds", "How long no process has held the slot.", slot, num);
    }
    if (s->have_confirmed)
        prom_int(out, "pg2qdrant_slot_confirmed_flush_lsn", "The slot's confirmed_flush_lsn as a number.", slot,
                 (int64_t)s->confirmed_flush_lsn);
}

void lag_format(lag_output fmt, const char *slot, lag_status st, const lag_slot *s, const lag_limits *lim,
                const char *text, buf *out)
{
    switch (fmt) {
    case LAG_OUT_JSON:
        format_json(out, slot, st, s, lim, text);
        break;
    case LAG_OUT_PROMETHEUS:
        format_prometheus(out, slot, st, s, lim, text);
        break;
    default:
        format_nagios(out, st, s, lim, text);
        break;
    }
}

/* ------------------------------------------------------------------ */
/* The command                                                         */

static int lag_usage(const char *fmt, const char *arg) __attribute__((format(printf, 1, 0)));

static int lag_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "pg2qdrant check-lag: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'pg2qdrant check-lag --help'.\n");
    return LAG_UNKNOWN;
}

/* A duration needs its unit on the command line: "30" alone is ambiguous. */
static bool has_unit(const char *s)
{
    for (; *s; s++)
        if (isalpha((unsigned char)*s))
            return true;
    return false;
}

/* Parses the thresholds and the output format; 0, or the usage exit code. */
static int parse_args(const lag_args *a, lag_limits *lim, lag_output *fmt)
{
    lim->warn_bytes = LAG_DEFAULT_WARN_BYTES;
    lim->critical_bytes = LAG_DEFAULT_CRITICAL_BYTES;
    lim->inactive_warn_ms = -1;
    lim->inactive_critical_ms = -1;
    *fmt = LAG_OUT_NAGIOS;

    if (a->output) {
        if (strcmp(a->output, "nagios") == 0)
            *fmt = LAG_OUT_NAGIOS;
        else if (strcmp(a->output, "json") == 0)
            *fmt = LAG_OUT_JSON;
        else if (strcmp(a->output, "prometheus") == 0)
            *fmt = LAG_OUT_PROMETHEUS;
        else
            return lag_usage("--output takes nagios, json or prometheus (got '%s')", a->output);
    }
    if (a->warn && config_parse_size(a->warn, &lim->warn_bytes) != 0)
        return lag_usage("--warn takes a size such as 512MB or 1GB (units B kB MB GB TB; got '%s')", a->warn);
    if (a->critical && config_parse_size(a->critical, &lim->critical_bytes) != 0)
        return lag_usage("--critical takes a size such as 4GB (units B kB MB GB TB; got '%s')", a->critical);
    if (a->inactive_warn &&
        (!has_unit(a->inactive_warn) || config_parse_duration(a->inactive_warn, &lim->inactive_warn_ms) != 0))
        return lag_usage("--inactive-warn takes a duration with its unit, such as 30min (ms s min h d; got '%s')",
                         a->inactive_warn);
    if (a->inactive_critical &&
        (!has_unit(a->inactive_critical) ||
         config_parse_duration(a->inactive_critical, &lim->inactive_critical_ms) != 0))
        return lag_usage("--inactive-critical takes a duration with its unit, such as 2h (ms s min h d; got '%s')",
                         a->inactive_critical);
    /* Both given and crossed is a mistake; a default that crosses a given one follows it. */
    if (lim->warn_bytes > lim->critical_bytes) {
        if (a->warn && a->critical)
            return lag_usage("--warn must not exceed --critical (--warn %s)", a->warn);
        if (a->critical)
            lim->warn_bytes = lim->critical_bytes;
        else
            lim->critical_bytes = lim->warn_bytes;
    }
    if (lim->inactive_warn_ms >= 0 && lim->inactive_critical_ms >= 0 &&
        lim->inactive_warn_ms > lim->inactive_critical_ms)
        return lag_usage("--inactive-warn must not exceed --inactive-critical (--inactive-warn %s)",
                         a->inactive_warn);
    return 0;
}

int check_lag_main(const lag_args *a)
{
    lag_source src = {0};
    lag_limits lim;
    lag_output fmt;
    lag_slot slot_info;
    lag_status st = LAG_UNKNOWN;
    const lag_slot *shown = NULL;
    PGconn *conn = NULL;
    char err[600];
    buf text, out;
    int rc;

    buf_init(&text);
    buf_init(&out);
    if ((rc = parse_args(a, &lim, &fmt)) != 0) {
        st = (lag_status)rc;
        goto finish;
    }
    if (lag_source_resolve(a->config_path, a->dsn, a->slot, false, &src) != 0) {
        buf_printf(&text, "slot \"%s\": configuration errors in %s (see stderr)", src.slot,
                   src.cfg.path ? src.cfg.path : "the config");
        goto report;
    }
    if (lag_connect(src.dsn, "pg2qdrant check-lag", &conn, err, sizeof err) != 0 ||
        lag_read_slot(conn, src.slot, &slot_info, err, sizeof err) != 0) {
        buf_printf(&text, "slot \"%s\": %s", src.slot, err);
        log_error("check-lag cannot tell the slot's health", "slot", src.slot, "error", err, NULL);
        goto report;
    }
    shown = &slot_info;
    st = lag_evaluate(src.slot, &slot_info, &lim, &text);

report:
    lag_format(fmt, src.slot, st, shown, &lim, text.data ? text.data : "", &out);
    fputs(out.data, stdout);
    fflush(stdout);

finish:
    if (conn)
        PQfinish(conn);
    lag_source_free(&src);
    buf_free(&text);
    buf_free(&out);
    return (int)st;
}
