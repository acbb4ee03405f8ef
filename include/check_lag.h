/*
 * check_lag.h — `pg2qdrant check-lag` (SPEC §7): the health of the
 * replication slot for monitoring (Nagios, cron, Prometheus textfile,
 * Kubernetes probes), and the slot reading `pg2qdrant slot` shares.
 *
 * One plain (non-replication) connection, one query over
 * pg_replication_slots (every column the server has, via to_jsonb), the
 * two distances (backlog from confirmed_flush_lsn, retained WAL from
 * restart_lsn), a status from the rules of docs/check-lag.md, one report
 * on stdout.  The exit code is the status: 0 OK, 1 WARNING, 2 CRITICAL,
 * 3 UNKNOWN (also for a bad command line, as Nagios plugins do).
 *
 * Pure parts (lag_evaluate, lag_format, lag_size_pretty) take structs and
 * return text, for the unit tests.  Nothing here prints a password: the
 * DSN's and $PGPASSWORD are cut out of libpq's messages.
 */
#ifndef P2Q_CHECK_LAG_H
#define P2Q_CHECK_LAG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "lsn.h"
#include "util.h"

typedef enum { LAG_OK = 0, LAG_WARNING = 1, LAG_CRITICAL = 2, LAG_UNKNOWN = 3 } lag_status;
typedef enum { LAG_OUT_NAGIOS, LAG_OUT_JSON, LAG_OUT_PROMETHEUS } lag_output;

/* The command line of check-lag as given (NULL = not given).  Borrowed. */
typedef struct lag_args {
    const char *config_path;
    const char *dsn;
    const char *slot;
    const char *warn;
    const char *critical;
    const char *inactive_warn;
    const char *inactive_critical;
    const char *output;
} lag_args;

/* Thresholds.  Backlog limits in bytes; inactive limits in ms, -1 = off. */
typedef struct lag_limits {
    int64_t warn_bytes;
    int64_t critical_bytes;
    int64_t inactive_warn_ms;
    int64_t inactive_critical_ms;
} lag_limits;

#define LAG_DEFAULT_WARN_BYTES (INT64_C(1) << 30)     /* 1GB */
#define LAG_DEFAULT_CRITICAL_BYTES (INT64_C(4) << 30) /* 4GB */

/* One row of pg_replication_slots plus the server's current position. */
typedef struct lag_slot {
    bool exists;
    bool standby;          /* pg_is_in_recovery(): current = last received/replayed WAL */
    char slot_type[16];    /* "logical" / "physical" */
    char plugin[64];       /* "" for a physical slot */
    char database[128];
    char wal_status[32];   /* "" when NULL */
    char invalidation_reason[64]; /* PG17+; "" when none or no such column */
    bool conflicting;      /* PG16+ column, true when set */
    bool active;
    int active_pid;        /* 0 when none */
    bool have_current, have_restart, have_confirmed;
    lsn_t current_lsn, restart_lsn, confirmed_flush_lsn;
    bool have_lag, have_retained, have_safe_wal_size;
    int64_t lag_bytes;      /* current - confirmed_flush_lsn, >= 0 */
    int64_t retained_bytes; /* current - restart_lsn, >= 0 */
    int64_t safe_wal_size;  /* may be negative (unreserved) */
    bool has_inactive_since_col; /* the server has inactive_since (PG17+) */
    bool have_inactive_ms;
    int64_t inactive_ms;   /* now() - inactive_since, when known */
    char inactive_since[64];
} lag_slot;

/* Where check-lag and slot take their connection and slot name from. */
typedef struct lag_source {
    char *dsn;  /* owned; may hold a password: never print it */
    char *slot; /* owned */
    bool have_config;
    p2q_config cfg; /* valid when have_config; freed by lag_source_free */
} lag_source;

/*
 * Resolves the source (docs/check-lag.md "Where the settings come from"):
 * config_path, else $PG2QDRANT_CONFIG, names a file that is loaded; else,
 * when dsn is given, no file is read; else the default file is loaded when
 * it exists or when require_file (slot commands); else the conninfo is
 * empty so that libpq's PG* variables apply.  dsn and slot override the
 * file; the slot defaults to [source] slot's default "pg2qdrant".
 * Returns 0, or -1 after logging every configuration error.  *out is
 * always initialised; free it with lag_source_free.
 */
int lag_source_resolve(const char *config_path, const char *dsn, const char *slot, bool require_file,
                       lag_source *out);
void lag_source_free(lag_source *src);

/*
 * A plain SQL connection from dsn (libpq's PG* variables apply; connect
 * timeout 10 s unless the DSN or $PGCONNECT_TIMEOUT says otherwise;
 * fallback_application_name appname).  *out is the caller's (PQfinish),
 * NULL on failure.  err never holds a password.
 */
int lag_connect(const char *dsn, const char *appname, PGconn **out, char *err, size_t errlen);

/* Reads the slot and the current WAL position.  0, or -1 with err set. */
int lag_read_slot(PGconn *conn, const char *slot, lag_slot *out, char *err, size_t errlen);

/* Applies the rules of SPEC §7 to s; appends the one-line report text to
 * text (problems first, then the figures).  Pure. */
lag_status lag_evaluate(const char *slot, const lag_slot *s, const lag_limits *lim, buf *text);

/* Formats the report.  s is NULL for UNKNOWN (text is then the error).
 * Appends to out, newline-terminated.  Pure. */
void lag_format(lag_output fmt, const char *slot, lag_status st, const lag_slot *s, const lag_limits *lim,
                const char *text, buf *out);

/* "OK", "WARNING", "CRITICAL", "UNKNOWN". */
const char *lag_status_name(lag_status st);

/* Bytes as pg_size_pretty prints them ("812 bytes", "12 kB", "3 GB"). */
void lag_size_pretty(int64_t bytes, char out[32]);

/* check-lag itself: prints the report on stdout, returns the exit code
 * (= the status; 3 for a usage error, printed on stderr). */
int check_lag_main(const lag_args *a);

#endif
