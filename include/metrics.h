/*
 * metrics.h — the sync's status and metrics, for /livez, /readyz, /status
 * and /metrics (SPEC §6).
 *
 * One store, guarded by one pthread mutex.  The writer side (metrics_set_*,
 * metrics_count_*, ...) is called by the sync thread at the points where
 * things happen; every writer takes NULL for the store and then does
 * nothing, so code paths without an endpoint server (tests, other commands)
 * need no branches.  The reader side (the endpoint server's thread) copies
 * the store into a metrics_snap under the mutex (metrics_snapshot) and
 * formats that copy without the lock: the render and readiness functions
 * are pure and unit tested.
 *
 * Definitions (docs/endpoints.md has the operator's version):
 *   received_lsn    newest WAL position received ('w' dataStart or keepalive)
 *   confirmed_lsn   the flush position of the last status update sent to
 *                   PostgreSQL (seeded from the slot's confirmed_flush_lsn)
 *   server_wal_end  walEnd of the newest primary keepalive
 *   lag_bytes       max(server_wal_end, received_lsn) - confirmed_lsn, >= 0
 *   lag_seconds     now - commit time of the oldest transaction received but
 *                   not yet confirmed; 0 when there is none (idle or caught
 *                   up).  WAL the server has not sent yet shows in
 *                   lag_bytes only.
 *   ready           connected to PostgreSQL (streaming, not a standby) and
 *                   Qdrant's last answer was a success (no answer yet counts
 *                   as a success: an idle sync has nothing to ask Qdrant)
 */
#ifndef P2Q_METRICS_H
#define P2Q_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"
#include "util.h"

typedef struct p2q_metrics p2q_metrics;

typedef enum { METRICS_INSERT, METRICS_UPDATE, METRICS_DELETE, METRICS_TRUNCATE, METRICS_N_OPS } metrics_op;
typedef enum { METRICS_BATCH_OK, METRICS_BATCH_RETRY, METRICS_BATCH_REJECTED, METRICS_N_RESULTS } metrics_result;

/* Upper bounds (seconds) of the batch duration histogram, +Inf excluded. */
#define METRICS_N_BUCKETS 13
extern const double metrics_buckets[METRICS_N_BUCKETS];

#define METRICS_STATE_LEN 32
#define METRICS_TEXT_LEN 512

/* "insert" ... "truncate"; "ok" "retry" "rejected". */
const char *metrics_op_name(metrics_op op);
const char *metrics_result_name(metrics_result r);

/* A new store; slot is copied (shown in /status).  State "starting",
 * snapshot state "none", uptime counted from here.  Caller frees with
 * metrics_free.  Never NULL. */
p2q_metrics *metrics_new(const char *slot);
void metrics_free(p2q_metrics *m);

/* ---- writer side (the sync thread); m may be NULL ------------------- */

/* The main loop turned (for /livez). */
void metrics_heartbeat(p2q_metrics *m);
/* "starting", "connecting", "streaming", "standby", "retrying",
 * "reconnecting", "stopping", "stopped", ...; copied (truncated to
 * METRICS_STATE_LEN - 1). */
void metrics_set_state(p2q_metrics *m, const char *state);
/* Sets state to `to` only while it is `from` ("streaming" <-> "retrying"). */
void metrics_swap_state(p2q_metrics *m, const char *from, const char *to);
/* The replication connection streams (true) or is gone (false). */
void metrics_set_pg_connected(p2q_metrics *m, bool connected);
/* Qdrant's latest answer: a success, or a failure described by reason
 * (copied; must not hold secrets, e.g. qd_result_describe()'s text). */
void metrics_qdrant_ok(p2q_metrics *m);
void metrics_qdrant_failed(p2q_metrics *m, const char *reason);
/* The last error worth showing in /status (copied, truncated; no secrets). */
void metrics_set_last_error(p2q_metrics *m, const char *error);

/* Positions; received and server_wal_end only move forward.  confirmed is
 * set, and ends every pending transaction whose commit_lsn is before it. */
void metrics_set_received(p2q_metrics *m, lsn_t lsn);
void metrics_set_confirmed(p2q_metrics *m, lsn_t lsn);
void metrics_set_server_wal_end(p2q_metrics *m, lsn_t lsn);

/* A transaction whose commit record is at commit_lsn, committed at
 * commit_ts (µs since 2000-01-01): Begin's final_lsn and commit_ts, told at
 * its first operation (so transactions without operations cost no entry;
 * those with operations are bounded by the sink's queue).  It is
 * pending (counts for lag_seconds) until a confirmed position passes
 * commit_lsn (metrics_set_confirmed).  A transaction at or before the newest
 * one already pending (resent after a reconnect) is not added again. */
void metrics_txn_begin(p2q_metrics *m, lsn_t commit_lsn, int64_t commit_ts);

/* Decoded, unacknowledged changes: set both, or add to the bytes. */
void metrics_set_inflight(p2q_metrics *m, int64_t bytes, int64_t txns);
void metrics_add_inflight_bytes(p2q_metrics *m, int64_t bytes);

/* n changes of op on schema.name (strings are copied on first sight). */
void metrics_count_change(p2q_metrics *m, const char *schema, const char *name, metrics_op op, uint64_t n);
/* One Qdrant batch request ended with result after seconds. */
void metrics_count_batch(p2q_metrics *m, metrics_result result, double seconds);
void metrics_count_retry(p2q_metrics *m);
void metrics_count_dead_letter(p2q_metrics *m);
/* Totals kept elsewhere (the sink's counters), mirrored. */
void metrics_set_dead_letters(p2q_metrics *m, uint64_t total);
/* Snapshot progress (SPEC §4); state "none" until a snapshot runs. */
void metrics_set_snapshot(p2q_metrics *m, const char *state, uint64_t rows_done, uint64_t rows_total_estimate);

/* The online backfill (SPEC §9): its /status object as JSON text (copied;
 * backfill.c renders it), and n more rows read for schema.name. */
void metrics_set_backfill(p2q_metrics *m, const char *status_json);
void metrics_count_backfill_rows(p2q_metrics *m, const char *schema, const char *name, uint64_t n);

/* The rebuild behind an alias (SPEC §10): its /status object as JSON text
 * (copied; rebuild.c renders it), its phase as a number for /metrics
 * (0 idle, 1 create, 2 backfill, 3 switch, 4 drop), and one more rebuild
 * ended with result "done" or "failed". */
void metrics_set_rebuild(p2q_metrics *m, const char *status_json, int phase);
void metrics_count_rebuild(p2q_metrics *m, bool failed);

/* ---- reader side ---------------------------------------------------- */

typedef struct metrics_table {
    char *table; /* owned: "schema.name" */
    uint64_t n[METRICS_N_OPS];
    uint64_t backfill_rows; /* rows read by online backfills */
} metrics_table;

/* A copy of the store with the derived values computed; caller-owned,
 * release with metrics_snap_free. */
typedef struct metrics_snap {
    char *slot;
    char state[METRICS_STATE_LEN];
    bool pg_connected;
    bool qdrant_failed; /* Qdrant's last answer was a failure ... */
    char qdrant_reason[METRICS_TEXT_LEN]; /* ... described here */
    lsn_t received_lsn, confirmed_lsn, server_wal_end;
    uint64_t lag_bytes;
    double lag_seconds;
    int64_t inflight_bytes, inflight_txns;
    char snapshot_state[METRICS_STATE_LEN];
    uint64_t snapshot_rows_done, snapshot_rows_total_estimate;
    char *backfill_json; /* owned: the /status "backfill" object; NULL: idle, nothing yet */
    char *rebuild_json;  /* owned: the /status "rebuild" object; NULL: idle, nothing yet */
    int rebuild_phase;
    uint64_t rebuilds_done, rebuilds_failed;
    metrics_table *tables; /* owned, in order of first sight */
    size_t n_tables;
    uint64_t changes_total;
    uint64_t batches[METRICS_N_RESULTS];
    uint64_t buckets[METRICS_N_BUCKETS + 1]; /* per bucket, not cumulative; last = above the largest bound */
    double duration_sum;
    uint64_t duration_count;
    uint64_t retries, dead_letters;
    char last_error[METRICS_TEXT_LEN]; /* "" when none */
    int64_t uptime_seconds;
    int64_t heartbeat_age_ms;
} metrics_snap;

/* Copies m under its mutex; derived values at the current clocks. */
void metrics_snapshot(p2q_metrics *m, metrics_snap *out);
/* The same at the given clocks: mono_ms as now_ms(), pg_us as pg_now_us(). */
void metrics_snapshot_at(p2q_metrics *m, int64_t mono_ms, int64_t pg_us, metrics_snap *out);
void metrics_snap_free(metrics_snap *s);

/* /status: one JSON object with the keys of SPEC §6, appended to out. */
void metrics_render_status(const metrics_snap *s, buf *out);
/* /metrics: Prometheus text format 0.0.4, appended to out. */
void metrics_render_prometheus(const metrics_snap *s, buf *out);
/* /readyz: true when ready; otherwise the reason ("standby", "postgres: not
 * connected", "qdrant: HTTP 503: ...") is appended to reason. */
bool metrics_ready(const metrics_snap *s, buf *reason);
/* /livez: the main loop's heartbeat is at most bound_ms old. */
bool metrics_live(const metrics_snap *s, int64_t bound_ms);

#endif
