/*
 * backfill.h — the online backfill inside `run` (SPEC §9, docs/backfill.md).
 *
 * Requests arrive as logical decoding messages in the stream (prefix
 * "pg2qdrant", backfill_wm.h).  The engine reads each requested table in
 * key order, one chunk of [sync] backfill_chunk_rows rows per short query
 * on its own plain connection (asynchronously: the loop polls its socket
 * beside the replication connection's, rows in single-row mode, mapped as
 * they arrive), with a low and a high watermark message written into the
 * WAL around each read.  The stream's changes of the table between the two
 * watermarks are remembered (bf_observe); when the high watermark comes
 * back in the stream, the chunk's rows whose point changed meanwhile are
 * dropped (and the whole chunk is read again when a transaction streamed
 * before the low watermark was not yet visible to the read: backfill_wm.h),
 * the rest are counted in the watermark's transaction, so the ack tracker
 * confirms the high watermark only after Qdrant acknowledged the chunk, and
 * fed to the sink a batch at a time (bf_step) so streamed changes do not
 * wait behind a whole chunk; a streamed change of a held point sends the
 * held operations up to it first (bf_observe).
 *
 * A keyed request ("keys", from reconcile --fix) reads only those keys, by
 * WHERE (key) IN (...), in chunks of at most backfill_chunk_rows keys with
 * the same watermarks and window; a key without a row deletes its point.
 *
 * Resume: the newest watermark (or the request, before its first
 * watermark; a keyed request until its end) holds its transaction in the ack tracker (one pseudo-operation)
 * until the next watermark of the backfill arrives, so the slot's confirmed
 * position never passes it: after a restart the stream brings it back and
 * the backfill goes on from the chunk it names.  Needs no privilege beyond
 * calling pg_logical_emit_message (docs/backfill.md).
 *
 * The engine logs what it finds (requests, progress, a table that fails)
 * and tells /status and /metrics.  A table that fails (missing, no unique
 * key to chunk by, dropped or altered meanwhile) ends that table's
 * backfill only: the sync goes on.
 */
#ifndef P2Q_BACKFILL_H
#define P2Q_BACKFILL_H

#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>

#include "ack_tracker.h"
#include "backfill_wm.h"
#include "config.h"
#include "pgoutput.h"
#include "qop.h"
#include "relcache.h"
#include "status.h"

struct p2q_metrics;
struct sink;
typedef struct backfill backfill;

typedef struct bf_env {
    const p2q_config *cfg;         /* borrowed */
    ack_tracker *acks;             /* borrowed: holds on watermark transactions */
    struct p2q_metrics *metrics;   /* borrowed; NULL: none */
    struct sink *sink;             /* borrowed: where chunks go, a batch at a time (bf_step) */
    volatile sig_atomic_t *stop;   /* borrowed */
    /* A request finished (error NULL: done; else its failures), for the
     * rebuild that waits for its backfill (rebuild.h).  NULL: none. */
    void (*on_finish)(void *arg, const char *id, const char *error);
    /* A rebuild request in the stream (decoded; m borrowed for the call),
     * handed over as it came (rebuild.h).  NULL: ignored. */
    p2q_status (*on_rebuild)(void *arg, const bfm *m, lsn_t lsn, bool in_txn, ack_txn txn);
    void *arg;
} bf_env;

/* env is copied.  Never NULL. */
backfill *bf_new(const bf_env *env);
void bf_free(backfill *b);

/*
 * A new replication session streams from the slot's confirmed position:
 * everything not confirmed (requests, watermarks) comes again, so the
 * engine forgets its requests and chunk in flight and takes a new session
 * token.  The history shown in /status stays.
 */
void bf_session_start(backfill *b);

/*
 * A Message of the stream at lsn.  in_txn/txn: the open transaction (a
 * transactional message arrives inside one).  The operations of a chunk
 * whose high watermark this is are counted in txn and held (fed to the
 * sink by bf_step); only without a transaction or a sink are they appended
 * to out, for the caller to push.  Returns P2Q_OK or P2Q_ERR_FATAL (the ack tracker refused
 * a ticket; logged).
 */
p2q_status bf_on_message(backfill *b, const pgo_msg *m, lsn_t lsn, bool in_txn, ack_txn txn, qop_list *out);

/* The stream's Begin of transaction xid (top-level; pgoutput sends a
 * transaction whole, at its commit, so this is commit order): remembered
 * for the visibility check of the chunks (backfill_wm.h). */
void bf_on_begin(backfill *b, uint32_t xid);

/* Operations the stream produced (ops->items[from..n)), before they go to
 * the sink: remembered when a chunk's window is open on their table; a held
 * chunk operation on the same point (all of them for a barrier: truncate,
 * read-back) goes to the sink first. */
void bf_observe(backfill *b, const qop_list *ops, size_t from);

/* A Relation message: a table being backfilled whose columns changed
 * fails (the chunk's rows could not be mapped as the stream's). */
void bf_on_relation(backfill *b, const rel_entry *rel);

/*
 * The loop's turn: feeds held chunk operations to the sink while less than
 * a batch (batch_points) is unsent there, then starts the next chunk when
 * one is due (a table to read, the previous chunk applied, sink_full false
 * and fewer than backfill_chunk_rows operations queued in the sink and
 * held).  The caller kicks the sink afterwards.  Returns P2Q_OK (failures
 * of the backfill are the backfill's, logged; the sync goes on).
 */
p2q_status bf_step(backfill *b, bool sink_full);

/* The descriptor to poll while a query of the backfill is in flight:
 * true and *pfd filled, or false. */
bool bf_pollfd(const backfill *b, struct pollfd *pfd);
/* After the poll: reads what the backfill's connection has. */
p2q_status bf_progress(backfill *b, short revents);
/* Milliseconds until bf_step has something to do by time (a connection
 * retry); -1 when nothing. */
int bf_timeout_ms(const backfill *b);

/*
 * Writes a backfill request for cfg's slot into the WAL on conn (a plain
 * connection of repl_connect): pg_logical_emit_message(true, 'pg2qdrant',
 * {"type":"backfill","slot":...,"tables":[tables],"id":...}); tables
 * empty: every configured table.  keys[0..nkeys) (borrowed; nkeys 0: none):
 * a keyed request, only those keys of those tables (docs/backfill.md).  The
 * new id, distinct for every call of one process, is written to id (idlen
 * >= 48).  Returns 0 (err: the message's LSN), or -1 with a one-line
 * message in err (nothing logged).
 */
int bf_request(const p2q_config *cfg, PGconn *conn, const char *const *tables, int ntables, const bfm_keyset *keys,
               int nkeys, char *id, size_t idlen, char *err, size_t errlen);

/*
 * Queues a backfill of table (qualified name) whose rows go to collection
 * (qop.collection) instead of the table's: a rebuild's new generation.  It
 * holds nothing in the ack tracker (the rebuild request's hold covers it);
 * its watermarks carry the collection, and a restarted run ignores them
 * (the rebuild request comes back and asks again).  id: the request's id
 * (unique per session).  env.on_finish tells when it ends.
 */
void bf_enqueue_for(backfill *b, const char *id, const char *table, const char *collection);

/* Rows read so far by the running request id (0 when it is not running). */
uint64_t bf_rows_done(const backfill *b, const char *id);
/* Whether a backfill is running or queued (for tests and logs). */
bool bf_active(const backfill *b);

#endif
