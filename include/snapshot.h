/*
 * snapshot.h — the initial backfill of SPEC §4: every row of the configured
 * tables, read from one consistent snapshot, upserted through the sink.
 *
 * The reader works on a plain connection opened with repl_connect(dsn,
 * false, ...), so the session settings the text forms depend on
 * (REPL_SESSION_OPTIONS) are those of the walsender.  It runs inside
 *     BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY
 *     [SET TRANSACTION SNAPSHOT '<exported name>']
 * so every table is read as of one instant: the exported snapshot of a slot
 * just created (`run` with snapshot = initial|always), or the transaction's
 * own snapshot (`pg2qdrant snapshot`, `reconcile`).
 *
 * Each table is described from the catalog the way pgoutput's Relation and
 * Type messages would describe it (published columns in attnum order,
 * generated and dropped columns left out, replica identity flags, types
 * >= FirstNormalObjectId named after their base type) and compiled with
 * map_compile(), so a row read here maps exactly like a streamed Insert.
 * Rows are read with a cursor, SNAP_FETCH_ROWS at a time, in text format:
 * memory is bounded whatever the table size.  docs/snapshot.md has the
 * consistency argument.
 */
#ifndef P2Q_SNAPSHOT_H
#define P2Q_SNAPSHOT_H

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "pgoutput.h"
#include "relcache.h"
#include "row_to_point.h"
#include "status.h"

struct sink;
struct p2q_metrics;

#define SNAP_FETCH_ROWS 1000

/* One configured table as the catalog describes it, with its mapping. */
typedef struct snap_table {
    const table_cfg *cfg; /* borrowed from the config */
    const char *name;     /* borrowed: cfg->qualified, "schema.name" for messages */
    relcache *rels;       /* owned: the relation entry, its types and its compiled map */
    const rel_entry *rel; /* owned by rels */
    const table_map *map; /* owned by rels (rel->map) */
    double reltuples;     /* pg_class.reltuples: the row count estimate, < 0 unknown */
    char *rowfilter;      /* owned: the publication's row filter (SQL expression), NULL when none */
} snap_table;

/*
 * The row filter the publication applies to schema.name (PostgreSQL 15+,
 * CREATE PUBLICATION ... FOR TABLE t WHERE (...)), as pgoutput applies it:
 * none when the publication is FOR ALL TABLES or includes the table's
 * schema (FOR TABLES IN SCHEMA), when it does not include the table, or
 * on older servers.  *filter: the expression as pg_publication_tables
 * shows it (caller frees), or NULL.  Returns 0, or -1 with a one-line
 * message in err (the query failed; nothing logged).
 */
int snap_row_filter(PGconn *conn, const char *publication, const char *schema, const char *name, char **filter,
                    char *err, size_t errlen);

/*
 * Describes t (a [table] section of cfg) from the catalog of conn and
 * compiles its mapping.  publication: when non-NULL and it exists with a
 * column list for the table (PostgreSQL 15+), only the published columns
 * are used, as pgoutput does.  *out is owned by the caller
 * (snap_table_free), zeroed on failure.  Returns P2Q_OK, P2Q_ERR_CONFIG
 * (table missing, mapping cannot apply) or P2Q_ERR_FATAL, logged.
 */
p2q_status snap_describe(PGconn *conn, const p2q_config *cfg, const table_cfg *t, const char *publication,
                         snap_table *out);
void snap_table_free(snap_table *t);

/*
 * BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY on conn, then, when
 * snapshot_name is not NULL, SET TRANSACTION SNAPSHOT.  P2Q_OK or P2Q_ERR_FATAL
 * (logged).  End it with snap_end (COMMIT; errors ignored).
 */
p2q_status snap_begin(PGconn *conn, const char *snapshot_name);
void snap_end(PGconn *conn);

/*
 * Called per row by snap_scan: tup holds every column as 't' or 'n' in the
 * relation's order; valid during the call only.  Returns P2Q_OK to go on,
 * anything else to stop the scan with that result.
 */
typedef p2q_status (*snap_row_fn)(void *arg, const snap_table *t, const pgo_tuple *tup);

/* Row row of res as a tuple of text columns ('t', or 'n' for NULL) in the
 * result's column order; the data stays res's (valid while res is). */
void snap_result_tuple(const PGresult *res, int row, pgo_tuple *tup);

/*
 * The progress figures, pure: the row estimate of a never-analysed table
 * from EXPLAIN (FORMAT JSON)'s text (its first "Plan Rows"; -1 when there
 * is none); a total estimate with one table's reltuples added (unknown,
 * i.e. < 0, and 0 add nothing); and the total shown for done rows (never
 * below them: the estimate may be stale).
 */
double snap_plan_rows(const char *explain_json);
uint64_t snap_estimate_add(uint64_t total, double reltuples);
uint64_t snap_progress_total(uint64_t estimate, uint64_t done);

/*
 * Reads every row of t with a cursor inside the transaction of snap_begin
 * and calls fn for each.  Logs progress (rows done, the reltuples estimate,
 * rows/s) every few seconds under msg ("snapshot progress", ...).  *rows
 * gets the number of rows read.  stop may be NULL.  Returns P2Q_OK, fn's
 * result, P2Q_STOPPED or P2Q_ERR_FATAL (logged).
 */
p2q_status snap_scan(PGconn *conn, const snap_table *t, const char *msg, snap_row_fn fn, void *arg,
                     volatile sig_atomic_t *stop, uint64_t *rows);

/*
 * The table sections selected by names[0..n) ("schema.name", or "name" for
 * schema public, as in the config's section headers); every table when
 * n == 0.  Writes the indexes into cfg->tables to idx (n_tables entries
 * allocated by the caller) and returns how many, or -1 when a name is not
 * configured (logged: exit 2).
 */
int snap_select_tables(const p2q_config *cfg, char *const *names, int n, int *idx);

/* Counters of one snapshot run. */
typedef struct snap_stats {
    uint64_t rows;         /* rows read */
    uint64_t upserts;      /* points upserted */
    uint64_t null_vectors; /* rows without a point (NULL vector): deleted */
    int tables;
} snap_stats;

/*
 * The snapshot proper: on conn (a plain connection of repl_connect, idle,
 * outside a transaction), in one REPEATABLE READ transaction (importing
 * snapshot_name when not NULL), every selected table (idx[0..nidx) into
 * cfg->tables) is read and its rows handed to s as upserts (deletes for
 * NULL vectors) with SINK_NO_TXN.  The sink's queue is kept under
 * [sync] max_inflight bytes; returns only after Qdrant acknowledged
 * everything (sink_drain).  metrics may be NULL (progress for /status).
 * Returns P2Q_OK, P2Q_ERR_CONFIG, P2Q_STOPPED or P2Q_ERR_FATAL (logged).
 */
p2q_status snap_run(const p2q_config *cfg, PGconn *conn, const char *snapshot_name, const int *idx, int nidx,
                    struct sink *s, struct p2q_metrics *metrics, volatile sig_atomic_t *stop, snap_stats *stats);

/*
 * `pg2qdrant snapshot [--table T]...`: connects to both sides, runs
 * snap_run on its own snapshot.  Returns P2Q_OK (done), P2Q_ERR_CONFIG
 * (usage/config error), P2Q_STOPPED, P2Q_RETRY (a side could not be
 * reached) or P2Q_ERR_FATAL; main.c makes the exit code (only P2Q_OK is 0).
 */
p2q_status snap_command(const p2q_config *cfg, char *const *tables, int ntables, volatile sig_atomic_t *stop);

/*
 * Lets the sink start what is due without blocking (sink_kick with more
 * input to come, one non-blocking sink_wait/sink_progress); with
 * block_over_limit, then waits until the queue holds at most
 * [sync] max_inflight bytes.  For producers that push with SINK_NO_TXN
 * (snapshot, reconcile --fix).  Returns P2Q_OK, P2Q_STOPPED or P2Q_ERR_FATAL
 * (the sink logged it).
 */
p2q_status snap_sink_pump(struct sink *s, const p2q_config *cfg, volatile sig_atomic_t *stop, bool block_over_limit);

/*
 * `run`'s snapshot (SPEC §4), between slot creation and START_REPLICATION,
 * while the replication connection repl is idle: every configured table is
 * read on a second, plain connection, importing snapshot_name (the slot's
 * exported snapshot) when not NULL, and upserted through s; returns after
 * Qdrant acknowledged everything.  created_slot: the slot was created for
 * this snapshot; if the snapshot does not complete it is dropped again
 * (DROP_REPLICATION_SLOT on repl), so that the next start takes the
 * initial snapshot again instead of streaming from a slot whose backfill
 * never finished.  Returns P2Q_OK, P2Q_ERR_CONFIG, P2Q_STOPPED, P2Q_RETRY
 * or P2Q_ERR_FATAL (logged).
 */
p2q_status snap_for_run(const p2q_config *cfg, PGconn *repl, const char *snapshot_name, bool created_slot,
                        struct sink *s, struct p2q_metrics *metrics, volatile sig_atomic_t *stop);

#endif
