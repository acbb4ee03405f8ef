/*
 * replication.h — the PostgreSQL side: a replication=database connection,
 * slot and publication management, START_REPLICATION and the CopyBoth
 * messages we send (PROTOCOL.md §1.1–1.2).
 *
 * Every function returns 0 on success or -1 with a one-line message in err
 * (never containing a password); a failure is logged by the caller.
 */
#ifndef P2Q_REPLICATION_H
#define P2Q_REPLICATION_H

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "lsn.h"
#include "status.h"

/* Session settings the text forms of SPEC §3 rely on (sent as options). */
#define REPL_SESSION_OPTIONS                                                                                  \
    "-c datestyle=ISO,MDY -c timezone=UTC -c intervalstyle=postgres -c extra_float_digits=3 "            \
    "-c bytea_output=hex"

#define REPL_CONNECT_TIMEOUT_S "10"


typedef struct repl_conn_opts {
    bool replication;             /* replication=database; else replication=false (a plain SQL connection) */
    bool session_options;         /* REPL_SESSION_OPTIONS appended to the DSN's options */
    const char *appname;          /* fallback_application_name (the DSN's application_name wins) */
    volatile sig_atomic_t *stop;  /* checked every 200 ms while connecting; NULL: not checked */
    bool any_encoding;            /* accept a SQL_ASCII database (check-lag and slot read no row data) */
} repl_conn_opts;

/*
 * Every connection pg2qdrant opens goes through here (docs/configuration.md,
 * "Connections"): dsn (conninfo or URI; libpq's PG* variables apply) with
 * defaults the DSN may override (connect_timeout = 10 unless it or
 * PGCONNECT_TIMEOUT sets one, keepalives = 1, keepalives_idle = 30,
 * keepalives_interval = 10, keepalives_count = 3), client_encoding = UTF8
 * always (the server converts from the database encoding), replication
 * as co says.  Connects with PQconnectStartParams and a poll loop that sees
 * *stop and bounds the attempt by connect_timeout; with several hosts
 * listed, with libpq's blocking connect (it moves on to the next host when
 * connect_timeout passes; *stop is seen after that).  Returns P2Q_OK,
 * P2Q_RETRY (could not connect: retrying may help), P2Q_ERR_CONFIG (the DSN
 * does not parse, or a SQL_ASCII database, refused) or P2Q_STOPPED (*stop
 * was set while connecting).  err: a one-line reason without the
 * password.  *out is owned by the caller (PQfinish), NULL on failure.
 */
p2q_status repl_open(const char *dsn, const repl_conn_opts *co, PGconn **out, char *err, size_t errlen);

/* repl_open for run, snapshot and reconcile: application_name pg2qdrant
 * unless the dsn sets one, REPL_SESSION_OPTIONS, replication=database when
 * replication is true.  err starts with "cannot connect to PostgreSQL: "
 * for P2Q_RETRY.  Returns what repl_open returns. */
p2q_status repl_connect(const char *dsn, bool replication, volatile sig_atomic_t *stop, PGconn **out, char *err,
                 size_t errlen);

typedef struct repl_system {
    char systemid[32];
    int timeline;
    lsn_t xlogpos;
    char dbname[128];
} repl_system;

/* IDENTIFY_SYSTEM; refuses a connection that is not database-specific. */
int repl_identify_system(PGconn *conn, repl_system *out, char *err, size_t errlen);

/* true when the server is a standby (pg_is_in_recovery()). */
int repl_in_recovery(PGconn *conn, bool *out, char *err, size_t errlen);

typedef struct repl_slot {
    bool exists;
    char plugin[64];
    char slot_type[16];
    char database[128];
    lsn_t confirmed_flush;
    bool active;
    int active_pid;
    char wal_status[32];   /* "" when the server has no such column */
    char invalidation[64]; /* invalidation_reason (PG17+) or "conflicting" (PG16), "" when none */
} repl_slot;

/* Reads pg_replication_slots for slot (any server version from 10 on). */
int repl_get_slot(PGconn *conn, const char *slot, repl_slot *out, char *err, size_t errlen);

/* CREATE_REPLICATION_SLOT "slot" LOGICAL pgoutput NOEXPORT_SNAPSHOT.
 * *already_existed is set (and 0 returned) on SQLSTATE 42710. */
int repl_create_slot(PGconn *conn, const char *slot, lsn_t *consistent_point, bool *already_existed, char *err,
                     size_t errlen);

/* The same, and with export_snapshot the slot's snapshot is exported
 * (PostgreSQL 15: (SNAPSHOT 'export')): its name is written to
 * snapshot_name (snapshot_len bytes; REPL_SNAPSHOT_NAME_LEN is enough).  The
 * snapshot stays importable (SET TRANSACTION SNAPSHOT) until the next
 * command on conn.  On 42710 (*already_existed) there is no snapshot. */
#define REPL_SNAPSHOT_NAME_LEN 64
int repl_create_slot_snapshot(PGconn *conn, const char *slot, bool export_snapshot, lsn_t *consistent_point,
                              bool *already_existed, char *snapshot_name, size_t snapshot_len, char *err,
                              size_t errlen);

/* Checks the publication exists; when it does not and create is true,
 * creates it FOR TABLE every configured table WITH (publish_via_partition_root
 * = true) (PostgreSQL 13+).  *created tells which. */
int repl_ensure_publication(PGconn *conn, const p2q_config *cfg, bool create, bool *created, char *err,
                            size_t errlen);

/* START_REPLICATION SLOT "slot" LOGICAL start (proto_version, publication_names,
 * and messages 'true' on PostgreSQL 14+: logical decoding messages).
 * On failure *sqlstate (6 chars + NUL) tells why: "55006" = slot active
 * for another PID (retry), others fatal or retryable per the caller. */
int repl_start(PGconn *conn, const char *slot, const char *publication, lsn_t start, int proto_version,
               char sqlstate[6], char *err, size_t errlen);

/* Sends a standby status update 'r' and flushes. */
int repl_send_status(PGconn *conn, lsn_t write, lsn_t flush, lsn_t apply, bool reply_requested, char *err,
                     size_t errlen);

/* Ends CopyBoth cleanly: PQputCopyEnd, drain CopyData until the server's
 * CopyDone (giving up at deadline_ms, a now_ms() value), then expects
 * CommandComplete. */
int repl_end_copy(PGconn *conn, int64_t deadline_ms, char *err, size_t errlen);

/* The first line of res's error message, or of conn's when res is NULL,
 * into out (at most outlen - 1 bytes).  Returns out. */
const char *repl_error_line(const PGresult *res, const PGconn *conn, char *out, size_t outlen);

#endif
