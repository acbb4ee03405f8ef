/*
 * replication.c — the replication connection to PostgreSQL.
 *
 * Shaped after pg_recvlogical/streamutil: connect with replication=database,
 * IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT, START_REPLICATION, and the
 * CopyBoth messages the client sends.  Replication connections accept only
 * the simple query protocol, so SQL parameters are escaped with
 * PQescapeLiteral / quote_ident.
 */
#include "replication.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"
#include "util.h"

const char *repl_error_line(const PGresult *res, const PGconn *conn, char *out, size_t outlen)
{
    return str_first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), out, outlen);
}

static const char *pq_err(const PGconn *conn, char *out, size_t outlen)
{
    return repl_error_line(NULL, conn, out, outlen);
}

static const char *res_err(const PGresult *res, char *out, size_t outlen)
{
    return repl_error_line(res, NULL, out, outlen);
}

/* libpq's message on one line (line breaks and the indentation after them
 * become one space, trailing space cut), with the DSN's password and
 * PGPASSWORD masked.  Caller frees. */
static char *conn_message(const char *m, const char *password)
{
    char *s = str_one_line(m);

    s = str_mask_secret(s, password);
    return str_mask_secret(s, getenv("PGPASSWORD"));
}

/* The value libpq uses for keyword on conn (PQconninfo), or NULL.  Caller frees. */
static char *conn_option(PGconn *conn, const char *keyword)
{
    PQconninfoOption *opts = PQconninfo(conn);
    char *v = NULL;

    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0 && o->val && *o->val)
            v = xstrdup(o->val);
    PQconninfoFree(opts);
    return v;
}

/* The number of hosts listed (host or hostaddr, from the DSN or PGHOST /
 * PGHOSTADDR): libpq tries them in turn. */
static int host_count(const PQconninfoOption *opts)
{
    const char *host = getenv("PGHOST"), *addr = getenv("PGHOSTADDR");
    int n = 1, m = 1;

    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0 && o->val)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0 && o->val)
            addr = o->val;
    }
    for (const char *p = host; p && *p; p++)
        n += *p == ',';
    for (const char *p = addr; p && *p; p++)
        m += *p == ',';
    return n > m ? n : m;
}

/* connect_timeout in ms as libpq reads it (0: none; under 2 s: 2 s). */
static int64_t connect_timeout_ms(PGconn *conn)
{
    char *t = conn_option(conn, "connect_timeout");
    int64_t secs = t ? strtoll(t, NULL, 10) : 0;

    free(t);
    if (secs > 0 && secs < 2)
        secs = 2;
    return secs > 0 ? secs * 1000 : 0;
}

/* Waits for PQconnectPoll to finish, checking *stop and connect_timeout
 * every 200 ms (libpq's own wait would retry after a signal and never see
 * it; libpq enforces connect_timeout only in its blocking PQconnectdb). */
static p2q_status connect_poll(PGconn *conn, volatile sig_atomic_t *stop, char *why, size_t whylen)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    int64_t budget = connect_timeout_ms(conn);
    int64_t deadline = budget > 0 ? now_ms() + budget : 0;

    for (;;) {
        struct pollfd pfd;
        int64_t wait = 200;
        int r;

        if (st == PGRES_POLLING_OK)
            return P2Q_OK;
        if (st == PGRES_POLLING_FAILED)
            return P2Q_RETRY;
        if (stop && *stop) {
            snprintf(why, whylen, "stopped while connecting");
            return P2Q_STOPPED;
        }
        if (deadline && now_ms() >= deadline) {
            snprintf(why, whylen, "timeout expired (connect_timeout = %lld s)", (long long)budget / 1000);
            return P2Q_RETRY;
        }
        if (deadline && deadline - now_ms() < wait)
            wait = deadline - now_ms();
        pfd.fd = PQsocket(conn);
        pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        pfd.revents = 0;
        if (pfd.fd < 0)
            return P2Q_RETRY;
        r = poll(&pfd, 1, (int)wait);
        if (r < 0 && errno != EINTR) {
            snprintf(why, whylen, "poll: %s", strerror(errno));
            return P2Q_RETRY;
        }
        if (r > 0)
            st = PQconnectPoll(conn);
    }
}

/* Defaults the DSN (or PGCONNECT_TIMEOUT for the timeout) may override. */
static const char *const conn_defaults[][2] = {
    {"connect_timeout", REPL_CONNECT_TIMEOUT_S},
    {"keepalives", "1"},
    {"keepalives_idle", "30"},
    {"keepalives_interval", "10"},
    {"keepalives_count", "3"},
};
#define N_CONN_DEFAULTS (sizeof conn_defaults / sizeof conn_defaults[0])

p2q_status repl_open(const char *dsn, const repl_conn_opts *co, PGconn **out, char *err, size_t errlen)
{
    PQconninfoOption *opts = NULL, *o;
    const char **keys = NULL, **vals = NULL;
    const char *password = NULL;
    char *options = NULL, *perr = NULL, *msg = NULL;
    char why[200] = "";
    const char *enc;
    int n = 0, nopts = 0;
    p2q_status rc = P2Q_RETRY;
    PGconn *conn = NULL;

    *out = NULL;
    opts = PQconninfoParse(dsn ? dsn : "", &perr);
    if (!opts) {
        /* perr quotes the offending part of the string, which may be a password. */
        snprintf_utf8(err, errlen, "%s",
                 perr ? "invalid connection string (not shown: it may hold a password)" : "out of memory");
        rc = perr ? P2Q_ERR_CONFIG : P2Q_RETRY;
        goto cleanup;
    }
    for (o = opts; o->keyword; o++)
        nopts++;
    keys = xcalloc((size_t)nopts + N_CONN_DEFAULTS + 6, sizeof(char *));
    vals = xcalloc((size_t)nopts + N_CONN_DEFAULTS + 6, sizeof(char *));
    for (size_t i = 0; i < N_CONN_DEFAULTS; i++) {
        bool set = false;
        for (o = opts; o->keyword && !set; o++)
            set = strcmp(o->keyword, conn_defaults[i][0]) == 0 && o->val;
        if (set || (i == 0 && getenv("PGCONNECT_TIMEOUT") && *getenv("PGCONNECT_TIMEOUT")))
            continue;
        keys[n] = conn_defaults[i][0];
        vals[n++] = conn_defaults[i][1];
    }
    for (o = opts; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "replication") == 0 || strcmp(o->keyword, "client_encoding") == 0)
            continue;
        if (strcmp(o->keyword, "password") == 0)
            password = o->val;
        if (strcmp(o->keyword, "options") == 0 && co->session_options) {
            options = xasprintf("%s %s", o->val, REPL_SESSION_OPTIONS);
            continue;
        }
        keys[n] = o->keyword;
        vals[n++] = o->val;
    }
    if (co->session_options) {
        keys[n] = "options";
        vals[n++] = options ? options : REPL_SESSION_OPTIONS;
    }
    keys[n] = "fallback_application_name";
    vals[n++] = co->appname ? co->appname : "pg2qdrant";
    keys[n] = "replication";
    vals[n++] = co->replication ? "database" : "false";
    /* Text in UTF-8 whatever the database encoding: the server converts. */
    keys[n] = "client_encoding";
    vals[n++] = "UTF8";
    keys[n] = NULL;
    vals[n] = NULL;

    /* Several hosts: libpq's blocking connect, which moves on to the next
     * host when connect_timeout passes (PQconnectPoll cannot be told to);
     * a stop is then seen after the current host's timeout at most. */
    if (host_count(opts) > 1)
        conn = PQconnectdbParams(keys, vals, 0);
    else
        conn = PQconnectStartParams(keys, vals, 0);
    if (!conn) {
        snprintf_utf8(err, errlen, "out of memory");
        goto cleanup;
    }
    if (PQstatus(conn) == CONNECTION_BAD ||
        (PQstatus(conn) != CONNECTION_OK && (rc = connect_poll(conn, co->stop, why, sizeof why)) != 0)) {
        if (rc == P2Q_STOPPED || why[0]) {
            snprintf_utf8(err, errlen, "%s", why);
        } else {
            msg = conn_message(PQerrorMessage(conn), password);
            snprintf_utf8(err, errlen, "%s", msg);
        }
        rc = rc == P2Q_STOPPED ? rc : P2Q_RETRY;
        goto cleanup;
    }
    enc = PQparameterStatus(conn, "server_encoding");
    if (!co->any_encoding && enc && strcmp(enc, "SQL_ASCII") == 0) {
        snprintf_utf8(err, errlen,
                 "database \"%s\" has encoding SQL_ASCII: its bytes have no known encoding, so they cannot be sent to "
                 "Qdrant as UTF-8 (move the data into a database created with ENCODING 'UTF8')",
                 PQdb(conn));
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    if (PQclientEncoding(conn) != pg_char_to_encoding("UTF8")) {
        snprintf_utf8(err, errlen, "the server did not accept client_encoding UTF8 (it uses %s)",
                 pg_encoding_to_char(PQclientEncoding(conn)));
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    *out = conn;
    conn = NULL;
    rc = P2Q_OK;

cleanup:
    if (conn)
        PQfinish(conn);
    PQconninfoFree(opts);
    PQfreemem(perr);
    free(keys);
    free(vals);
    free(options);
    free(msg);
    return rc;
}

p2q_status repl_connect(const char *dsn, bool replication, volatile sig_atomic_t *stop, PGconn **out, char *err,
                 size_t errlen)
{
    repl_conn_opts co = {.replication = replication, .session_options = true, .appname = "pg2qdrant", .stop = stop};
    char why[400];
    p2q_status rc = repl_open(dsn, &co, out, why, sizeof why);

    if (rc != P2Q_OK)
        snprintf_utf8(err, errlen, "%s%s",
                      rc == P2Q_ERR_CONFIG || rc == P2Q_STOPPED ? "" : "cannot connect to PostgreSQL: ", why);
    return rc;
}

/* Runs a command expected to return tuples (or COMMAND_OK when want_tuples is false). */
static PGresult *exec_ok(PGconn *conn, const char *sql, bool want_tuples, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType want = want_tuples ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
    if (PQresultStatus(res) != want) {
        if (res)
            res_err(res, err, errlen);
        else
            pq_err(conn, err, errlen);
        PQclear(res);
        return NULL;
    }
    return res;
}

int repl_identify_system(PGconn *conn, repl_system *out, char *err, size_t errlen)
{
    PGresult *res = NULL;
    char msg[200];
    int rc = -1;

    memset(out, 0, sizeof *out);
    res = exec_ok(conn, "IDENTIFY_SYSTEM", true, msg, sizeof msg);
    if (!res) {
        snprintf_utf8(err, errlen, "IDENTIFY_SYSTEM failed: %s", msg);
        goto cleanup;
    }
    if (PQntuples(res) != 1 || PQnfields(res) < 4) {
        snprintf_utf8(err, errlen, "IDENTIFY_SYSTEM returned %d rows and %d fields, expected 1 and 4 or more",
                 PQntuples(res), PQnfields(res));
        goto cleanup;
    }
    if (PQgetisnull(res, 0, 3)) {
        snprintf_utf8(err, errlen, "could not establish a database-specific replication connection (set dbname in [source] dsn)");
        goto cleanup;
    }
    snprintf_utf8(out->systemid, sizeof out->systemid, "%s", PQgetvalue(res, 0, 0));
    out->timeline = atoi(PQgetvalue(res, 0, 1));
    if (lsn_parse(PQgetvalue(res, 0, 2), &out->xlogpos) != 0) {
        snprintf_utf8(err, errlen, "IDENTIFY_SYSTEM returned an invalid xlogpos \"%s\"", PQgetvalue(res, 0, 2));
        goto cleanup;
    }
    snprintf_utf8(out->dbname, sizeof out->dbname, "%s", PQgetvalue(res, 0, 3));
    rc = 0;

cleanup:
    PQclear(res);
    return rc;
}

int repl_in_recovery(PGconn *conn, bool *out, char *err, size_t errlen)
{
    char msg[200];
    PGresult *res = exec_ok(conn, "SELECT pg_catalog.pg_is_in_recovery()", true, msg, sizeof msg);

    if (!res) {
        snprintf_utf8(err, errlen, "cannot query pg_is_in_recovery(): %s", msg);
        return -1;
    }
    *out = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

static void copy_json_str(json_t *obj, const char *key, char *out, size_t outlen)
{
    const char *s = json_string_value(json_object_get(obj, key));

    snprintf_utf8(out, outlen, "%s", s ? s : "");
}

int repl_get_slot(PGconn *conn, const char *slot, repl_slot *out, char *err, size_t errlen)
{
    PGresult *res = NULL;
    json_t *row = NULL;
    char *lit = NULL, *sql = NULL;
    char msg[200];
    json_error_t jerr;
    const char *s;
    int rc = -1;

    memset(out, 0, sizeof *out);
    lit = PQescapeLiteral(conn, slot, strlen(slot));
    if (!lit) {
        snprintf_utf8(err, errlen, "cannot escape slot name: %s", pq_err(conn, msg, sizeof msg));
        goto cleanup;
    }
    /* to_jsonb(s): every column the server has, whatever its version. */
    sql = xasprintf("SELECT pg_catalog.to_jsonb(s)::text FROM pg_catalog.pg_replication_slots s WHERE slot_name = %s", lit);
    res = exec_ok(conn, sql, true, msg, sizeof msg);
    if (!res) {
        snprintf_utf8(err, errlen, "cannot read pg_replication_slots: %s", msg);
        goto cleanup;
    }
    if (PQntuples(res) == 0) {
        rc = 0;
        goto cleanup;
    }
    row = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
    if (!json_is_object(row)) {
        snprintf_utf8(err, errlen, "cannot parse pg_replication_slots row: %s", jerr.text);
        goto cleanup;
    }
    out->exists = true;
    copy_json_str(row, "plugin", out->plugin, sizeof out->plugin);
    copy_json_str(row, "slot_type", out->slot_type, sizeof out->slot_type);
    copy_json_str(row, "database", out->database, sizeof out->database);
    copy_json_str(row, "wal_status", out->wal_status, sizeof out->wal_status);
    copy_json_str(row, "invalidation_reason", out->invalidation, sizeof out->invalidation);
    if (!out->invalidation[0] && json_is_true(json_object_get(row, "conflicting")))
        snprintf_utf8(out->invalidation, sizeof out->invalidation, "conflicting");
    out->active = json_is_true(json_object_get(row, "active"));
    out->active_pid = (int)json_integer_value(json_object_get(row, "active_pid"));
    s = json_string_value(json_object_get(row, "confirmed_flush_lsn"));
    if (s && lsn_parse(s, &out->confirmed_flush) != 0) {
        snprintf_utf8(err, errlen, "slot \"%s\" has an unparsable confirmed_flush_lsn \"%s\"", slot, s);
        goto cleanup;
    }
    rc = 0;

cleanup:
    json_decref(row);
    PQclear(res);
    PQfreemem(lit);
    free(sql);
    return rc;
}

int repl_create_slot(PGconn *conn, const char *slot, lsn_t *consistent_point, bool *already_existed, char *err,
                     size_t errlen)
{
    return repl_create_slot_snapshot(conn, slot, false, consistent_point, already_existed, NULL, 0, err, errlen);
}

int repl_create_slot_snapshot(PGconn *conn, const char *slot, bool export_snapshot, lsn_t *consistent_point,
                              bool *already_existed, char *snapshot_name, size_t snapshot_len, char *err,
                              size_t errlen)
{
    PGresult *res = NULL;
    char *ident = quote_ident(slot);
    /* (SNAPSHOT 'export') is the PostgreSQL 15 syntax; older servers take EXPORT_SNAPSHOT. */
    char *sql = export_snapshot
                    ? xasprintf(PQserverVersion(conn) >= 150000
                                    ? "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'export')"
                                    : "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput EXPORT_SNAPSHOT",
                                ident)
                    : xasprintf("CREATE_REPLICATION_SLOT %s LOGICAL pgoutput NOEXPORT_SNAPSHOT", ident);
    const char *state;
    char msg[200];
    int rc = -1;

    *already_existed = false;
    *consistent_point = LSN_INVALID;
    if (snapshot_name && snapshot_len > 0)
        snapshot_name[0] = '\0';
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "42710") == 0) {
            *already_existed = true;
            rc = 0;
            goto cleanup;
        }
        snprintf_utf8(err, errlen, "cannot create replication slot \"%s\": %s", slot,
                 res ? res_err(res, msg, sizeof msg) : pq_err(conn, msg, sizeof msg));
        goto cleanup;
    }
    if (PQntuples(res) != 1 || PQnfields(res) < 2 || lsn_parse(PQgetvalue(res, 0, 1), consistent_point) != 0) {
        snprintf_utf8(err, errlen, "CREATE_REPLICATION_SLOT returned an unexpected result");
        goto cleanup;
    }
    if (export_snapshot) {
        if (PQnfields(res) < 3 || PQgetisnull(res, 0, 2) || !snapshot_name ||
            strlen(PQgetvalue(res, 0, 2)) >= snapshot_len) {
            snprintf_utf8(err, errlen, "CREATE_REPLICATION_SLOT returned no usable snapshot name");
            goto cleanup;
        }
        snprintf_utf8(snapshot_name, snapshot_len, "%s", PQgetvalue(res, 0, 2));
    }
    rc = 0;

cleanup:
    PQclear(res);
    free(ident);
    free(sql);
    return rc;
}

int repl_ensure_publication(PGconn *conn, const p2q_config *cfg, bool create, bool *created, char *err,
                            size_t errlen)
{
    PGresult *res = NULL;
    char *lit = NULL, *sql = NULL;
    char msg[200];
    buf b;
    int rc = -1;

    buf_init(&b);
    *created = false;
    lit = PQescapeLiteral(conn, cfg->source.publication, strlen(cfg->source.publication));
    if (!lit) {
        snprintf_utf8(err, errlen, "cannot escape publication name: %s", pq_err(conn, msg, sizeof msg));
        goto cleanup;
    }
    sql = xasprintf("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s", lit);
    res = exec_ok(conn, sql, true, msg, sizeof msg);
    if (!res) {
        snprintf_utf8(err, errlen, "cannot read pg_publication: %s", msg);
        goto cleanup;
    }
    if (PQntuples(res) == 1) {
        rc = 0;
        goto cleanup;
    }
    if (!create) {
        snprintf_utf8(err, errlen,
                 "publication \"%s\" does not exist: create it (CREATE PUBLICATION ... FOR TABLE ...) or set "
                 "[source] create_publication = true",
                 cfg->source.publication);
        goto cleanup;
    }
    if (cfg->n_tables == 0) {
        snprintf_utf8(err, errlen, "cannot create publication \"%s\": no [table ...] section in the config",
                 cfg->source.publication);
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    {
        char *id = quote_ident(cfg->source.publication);
        buf_printf(&b, "CREATE PUBLICATION %s FOR TABLE ", id);
        free(id);
    }
    for (int i = 0; i < cfg->n_tables; i++) {
        char *s = quote_ident(cfg->tables[i].schema), *t = quote_ident(cfg->tables[i].name);
        buf_printf(&b, "%s%s.%s", i ? ", " : "", s, t);
        free(s);
        free(t);
    }
    /* A partitioned table's changes then arrive under its own name. */
    if (PQserverVersion(conn) >= 130000)
        buf_puts(&b, " WITH (publish_via_partition_root = true)");
    res = exec_ok(conn, b.data, false, msg, sizeof msg);
    if (!res) {
        snprintf_utf8(err, errlen, "cannot create publication \"%s\": %s", cfg->source.publication, msg);
        goto cleanup;
    }
    *created = true;
    rc = 0;

cleanup:
    PQclear(res);
    PQfreemem(lit);
    free(sql);
    buf_free(&b);
    return rc;
}

int repl_start(PGconn *conn, const char *slot, const char *publication, lsn_t start, int proto_version,
               char sqlstate[6], char *err, size_t errlen)
{
    PGresult *res = NULL;
    char *ident = quote_ident(slot), *pub = quote_ident(publication);
    char lsn[LSN_BUFSZ], msg[256];
    const char *state;
    buf sql;
    int rc = -1;

    buf_init(&sql);
    sqlstate[0] = '\0';
    /* publication_names is a string literal holding a quoted identifier list.
     * The walsender's scanner (repl_scanner.l) reads '' as a quote and a
     * backslash as itself, so only quotes are doubled. */
    buf_printf(&sql, "START_REPLICATION SLOT %s LOGICAL %s (proto_version '%d', publication_names '", ident,
               lsn_fmt(start, lsn), proto_version);
    for (const char *p = pub; *p; p++) {
        if (*p == '\'')
            buf_putc(&sql, *p);
        buf_putc(&sql, *p);
    }
    buf_puts(&sql, "'");
    /* Logical decoding messages (pg_logical_emit_message): the online
     * backfill's requests and watermarks (docs/backfill.md).  PostgreSQL 14+. */
    if (PQserverVersion(conn) >= 140000)
        buf_puts(&sql, ", messages 'true'");
    buf_puts(&sql, ")");
    res = PQexec(conn, sql.data);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf_utf8(sqlstate, 6, "%s", state ? state : "");
        snprintf_utf8(err, errlen, "START_REPLICATION on slot \"%s\" failed: %s", slot,
                 res ? res_err(res, msg, sizeof msg) : pq_err(conn, msg, sizeof msg));
        goto cleanup;
    }
    rc = 0;

cleanup:
    PQclear(res);
    free(ident);
    free(pub);
    buf_free(&sql);
    return rc;
}

int repl_send_status(PGconn *conn, lsn_t write, lsn_t flush, lsn_t apply, bool reply_requested, char *err,
                     size_t errlen)
{
    char msg[PGO_STATUS_LEN], e[200];

    pgo_encode_status(msg, write, flush, apply, pg_now_us(), reply_requested);
    if (PQputCopyData(conn, msg, PGO_STATUS_LEN) <= 0 || PQflush(conn) != 0) {
        snprintf_utf8(err, errlen, "cannot send standby status update: %s", pq_err(conn, e, sizeof e));
        return -1;
    }
    return 0;
}

int repl_end_copy(PGconn *conn, int64_t deadline_ms, char *err, size_t errlen)
{
    PGresult *res = NULL;
    char *copybuf = NULL;
    char e[200];
    int r, rc = -1;

    if (PQputCopyEnd(conn, NULL) <= 0 || PQflush(conn) != 0) {
        snprintf_utf8(err, errlen, "cannot send CopyDone: %s", pq_err(conn, e, sizeof e));
        goto cleanup;
    }
    /* Drain what the server sent before it saw our CopyDone, so a
     * last-minute ErrorResponse is not missed. */
    for (;;) {
        r = PQgetCopyData(conn, &copybuf, 1);
        if (copybuf) {
            PQfreemem(copybuf);
            copybuf = NULL;
        }
        if (r > 0)
            continue;
        if (r == -1)
            break;
        if (r == -2) {
            snprintf_utf8(err, errlen, "error while ending replication: %s", pq_err(conn, e, sizeof e));
            goto cleanup;
        }
        {
            int64_t left = deadline_ms - now_ms();
            struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
            if (left <= 0 || pfd.fd < 0) {
                snprintf_utf8(err, errlen, "timed out waiting for the server to end replication");
                goto cleanup;
            }
            if (poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) > 0 && PQconsumeInput(conn) == 0) {
                snprintf_utf8(err, errlen, "error while ending replication: %s", pq_err(conn, e, sizeof e));
                goto cleanup;
            }
        }
    }
    res = PQgetResult(conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf_utf8(err, errlen, "replication ended with an error: %s", res ? res_err(res, e, sizeof e) : pq_err(conn, e, sizeof e));
        goto cleanup;
    }
    rc = 0;

cleanup:
    PQclear(res);
    return rc;
}
