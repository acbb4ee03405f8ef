/*
 * slot_cmd.c — `pg2qdrant slot create|drop|status`.
 *
 * Everything goes through SQL on a plain connection (lag_connect), so the
 * commands need the same privileges as pg_recvlogical (REPLICATION or
 * superuser) but no replication entry in pg_hba.conf.  The slot is read
 * first with lag_read_slot, the same reading check-lag uses, so that the
 * checks (type, plugin, database, active PID) come with clear messages;
 * the server's own refusal (SQLSTATE 42710 exists, 42704 missing, 55006
 * active) covers the race with another process in between.
 */
#include "slot_cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_lag.h"
#include "exit_codes.h"
#include "log.h"
#include "replication.h"
#include "util.h"

static bool sqlstate_is(const PGresult *res, const char *code)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    return s && strcmp(s, code) == 0;
}

static void log_active(const char *slot, int pid)
{
    char pidtxt[16], hint[160];

    snprintf(pidtxt, sizeof pidtxt, "%d", pid);
    snprintf(hint, sizeof hint,
             "stop the process that holds it (pg2qdrant run, pg_recvlogical, ...) or SELECT "
             "pg_terminate_backend(%d), then drop again",
             pid);
    log_error("refusing to drop the slot: it is active", "slot", slot, "pid", pidtxt, "hint", hint, NULL);
}

/* 0 when s is a logical pgoutput slot; else logs why (for what = "create"/"drop") and returns -1. */
static int check_ours(const char *slot, const lag_slot *s, const char *what)
{
    char msg[200];

    if (strcmp(s->slot_type, "logical") != 0)
        snprintf(msg, sizeof msg, "slot is a %s slot, not a logical pgoutput slot: cannot %s it", s->slot_type, what);
    else if (strcmp(s->plugin, "pgoutput") != 0)
        snprintf(msg, sizeof msg, "slot uses plugin %s, not pgoutput: cannot %s it", s->plugin, what);
    else
        return 0;
    log_error(msg, "slot", slot, "hint",
              strcmp(what, "drop") == 0
                  ? "pg2qdrant drops only logical pgoutput slots; if nothing uses it, "
                    "SELECT pg_drop_replication_slot('...') by hand"
                  : "choose another [source] slot name, or drop that slot if nothing uses it",
              NULL);
    return -1;
}

static int current_db(PGconn *conn, char *out, size_t outlen, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, "SELECT pg_catalog.current_database()");
    char msg[300];
    int rc = -1;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        repl_error_line(res, conn, msg, sizeof msg);
        snprintf(err, errlen, "cannot read current_database(): %s", msg);
        goto cleanup;
    }
    snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    rc = 0;

cleanup:
    PQclear(res);
    return rc;
}

/* The slot exists already: fine when it is ours in this database. */
static int create_existing(const char *slot, const lag_slot *s, const char *db)
{
    char lsn[LSN_BUFSZ];

    if (check_ours(slot, s, "use") != 0)
        return EXIT_FATAL;
    if (strcmp(s->database, db) != 0) {
        log_error("slot exists in another database", "slot", slot, "slot_database", s->database, "dsn_database",
                  db, "hint", "a logical slot belongs to one database: point [source] dsn at it, or choose another "
                  "slot name", NULL);
        return EXIT_FATAL;
    }
    printf("slot \"%s\" already exists (plugin pgoutput, database %s, confirmed_flush_lsn %s); nothing to do\n",
           slot, s->database, s->have_confirmed ? lsn_fmt(s->confirmed_flush_lsn, lsn) : "unknown");
    return EXIT_OK;
}

static int slot_create(PGconn *conn, const lag_source *src, const lag_slot *s)
{
    const char *params[1] = {src->slot};
    PGresult *res = NULL;
    lag_slot again;
    char db[128], err[600], msg[400];
    int rc = EXIT_FATAL;

    if (current_db(conn, db, sizeof db, err, sizeof err) != 0) {
        log_error("cannot create the slot", "slot", src->slot, "error", err, NULL);
        goto cleanup;
    }
    if (s->exists) {
        rc = create_existing(src->slot, s, db);
        goto cleanup;
    }
    res = PQexecParams(conn, "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')", 1,
                       NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        if (sqlstate_is(res, "42710")) { /* created meanwhile by someone else */
            if (lag_read_slot(conn, src->slot, &again, err, sizeof err) == 0 && again.exists) {
                rc = create_existing(src->slot, &again, db);
                goto cleanup;
            }
        }
        repl_error_line(res, conn, msg, sizeof msg);
        log_error("cannot create the slot", "slot", src->slot, "error", msg, NULL);
        goto cleanup;
    }
    printf("slot \"%s\" created (plugin pgoutput, database %s, consistent point %s)\n", src->slot, db,
           PQgetvalue(res, 0, 0));
    if (src->have_config && src->cfg.sync.snapshot != SNAPSHOT_NEVER)
        printf("note: the slot was created without a snapshot; rows that exist now reach Qdrant only through "
               "`pg2qdrant snapshot` (run it once before or after starting `pg2qdrant run`)\n");
    rc = EXIT_OK;

cleanup:
    PQclear(res);
    return rc;
}

static int slot_drop(PGconn *conn, const lag_source *src, const lag_slot *s)
{
    const char *params[1] = {src->slot};
    PGresult *res = NULL;
    lag_slot again;
    char err[600], msg[400];
    int rc = EXIT_FATAL;

    if (!s->exists) {
        log_error("slot does not exist", "slot", src->slot, NULL);
        goto cleanup;
    }
    if (check_ours(src->slot, s, "drop") != 0)
        goto cleanup;
    if (s->active) {
        log_active(src->slot, s->active_pid);
        goto cleanup;
    }
    res = PQexecParams(conn, "SELECT pg_catalog.pg_drop_replication_slot($1)", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (sqlstate_is(res, "55006") && lag_read_slot(conn, src->slot, &again, err, sizeof err) == 0 &&
            again.active) {
            log_active(src->slot, again.active_pid);
            goto cleanup;
        }
        if (sqlstate_is(res, "42704")) {
            log_error("slot does not exist", "slot", src->slot, NULL);
            goto cleanup;
        }
        repl_error_line(res, conn, msg, sizeof msg);
        log_error("cannot drop the slot", "slot", src->slot, "error", msg, NULL);
        goto cleanup;
    }
    printf("slot \"%s\" dropped\n", src->slot);
    printf("note: changes made until a new slot exists never reach Qdrant; %s, then resync with `pg2qdrant "
           "snapshot` (or `pg2qdrant reconcile --fix`)\n",
           src->have_config && !src->cfg.source.create_slot ? "create it with `pg2qdrant slot create`"
                                                             : "`pg2qdrant run` creates a new slot (create_slot = true)");
    rc = EXIT_OK;

cleanup:
    PQclear(res);
    return rc;
}

static void print_lsn(const char *label, bool have, lsn_t v)
{
    char b[LSN_BUFSZ];

    printf("%-21s%s\n", label, have ? lsn_fmt(v, b) : "(none)");
}

static void print_bytes(const char *label, bool have, int64_t v)
{
    char pretty[32];

    if (!have) {
        printf("%-21s(unknown)\n", label);
        return;
    }
    lag_size_pretty(v, pretty);
    printf("%-21s%" PRId64 " bytes (%s)\n", label, v, pretty);
}

static int slot_status(const lag_source *src, const lag_slot *s)
{
    char pretty[32];

    if (!s->exists) {
        log_error("slot does not exist", "slot", src->slot, "hint", "pg2qdrant slot create", NULL);
        return EXIT_FATAL;
    }
    printf("%-21s%s\n", "slot:", src->slot);
    printf("%-21s%s\n", "slot_type:", s->slot_type);
    printf("%-21s%s\n", "plugin:", s->plugin[0] ? s->plugin : "(none)");
    printf("%-21s%s\n", "database:", s->database[0] ? s->database : "(none)");
    if (s->active)
        printf("%-21syes (pid %d)\n", "active:", s->active_pid);
    else if (s->inactive_since[0])
        printf("%-21sno (since %s)\n", "active:", s->inactive_since);
    else
        printf("%-21sno\n", "active:");
    print_lsn("confirmed_flush_lsn:", s->have_confirmed, s->confirmed_flush_lsn);
    print_lsn("restart_lsn:", s->have_restart, s->restart_lsn);
    print_lsn(s->standby ? "current_lsn:" : "current_wal_lsn:", s->have_current, s->current_lsn);
    printf("%-21s%s\n", "wal_status:", s->wal_status[0] ? s->wal_status : "(none)");
    if (s->have_safe_wal_size) {
        lag_size_pretty(s->safe_wal_size, pretty);
        printf("%-21s%" PRId64 " bytes (%s)\n", "safe_wal_size:", s->safe_wal_size, pretty);
    } else {
        printf("%-21s%s\n", "safe_wal_size:",
               strcmp(s->wal_status, "lost") == 0 ? "(none: the slot is lost)"
                                                   : "unlimited (max_slot_wal_keep_size = -1)");
    }
    print_bytes("backlog:", s->have_lag, s->lag_bytes);
    print_bytes("retained:", s->have_retained, s->retained_bytes);
    if (s->invalidation_reason[0])
        printf("%-21s%s\n", "invalidation_reason:", s->invalidation_reason);
    if (s->conflicting)
        printf("%-21s%s\n", "conflicting:", "yes");
    if (s->standby)
        printf("%-21s%s\n", "server:", "standby (current = last received or replayed WAL)");
    return EXIT_OK;
}

int slotcmd_main(const slotcmd_args *a)
{
    lag_source src = {0};
    lag_slot s;
    PGconn *conn = NULL;
    char err[600];
    int rc = EXIT_FATAL;

    if (!a->action || (strcmp(a->action, "create") != 0 && strcmp(a->action, "drop") != 0 &&
                       strcmp(a->action, "status") != 0)) {
        fprintf(stderr, "pg2qdrant slot: %s%s%s\nTry 'pg2qdrant slot --help'.\n",
                a->action ? "unknown action '" : "missing action: create, drop or status",
                a->action ? a->action : "", a->action ? "' (create, drop or status)" : "");
        return EXIT_CONFIG;
    }
    if (lag_source_resolve(a->config_path, a->dsn, a->slot, true, &src) != 0) {
        rc = EXIT_CONFIG;
        goto cleanup;
    }
    if (lag_connect(src.dsn, "pg2qdrant slot", &conn, err, sizeof err) != 0 ||
        lag_read_slot(conn, src.slot, &s, err, sizeof err) != 0) {
        log_error("cannot read the slot", "slot", src.slot, "error", err, NULL);
        goto cleanup;
    }
    if (strcmp(a->action, "create") == 0)
        rc = slot_create(conn, &src, &s);
    else if (strcmp(a->action, "drop") == 0)
        rc = slot_drop(conn, &src, &s);
    else
        rc = slot_status(&src, &s);

cleanup:
    fflush(stdout);
    if (conn)
        PQfinish(conn);
    lag_source_free(&src);
    return rc;
}
