/*
 * rebuild.h — rebuilding a table's collection behind a Qdrant alias inside
 * `run` (SPEC §10, docs/rebuild.md).
 *
 * A request {"type":"rebuild",...} (backfill_wm.h) arrives in the stream;
 * its transaction is held in the ack tracker until the rebuild ends, so a
 * restarted run gets it back and resumes.  Per table, one at a time:
 *
 *   create    the alias's target is looked up (GET /aliases); the next
 *             generation <alias>_g<N> is created (PUT /collections) with
 *             [table] create_params or the target's parameters, tagged
 *             with the request id in its metadata
 *   backfill  every streamed operation of the table is also written to
 *             the new generation (rb_dual: a copy with qop.collection), and
 *             an online backfill reads the table into it (bf_enqueue_for)
 *   switch    once that backfill is done and Qdrant acknowledged every
 *             operation pushed until then: one POST /collections/aliases
 *             (delete_alias + create_alias); the copies stop
 *   drop      DELETE of the previous generation unless keep_old_collections
 *
 * Resume: the create phase finds a generation tagged with the request's
 * id: behind the alias already (the switch happened) → drop; beside it →
 * filled again (copies and backfill are idempotent).  Generations newer
 * than the alias's target left by other interrupted rebuilds are deleted
 * (logged).  The rebuild calls Qdrant synchronously (one short request per
 * phase); transient failures are retried with backoff from rb_step.
 */
#ifndef P2Q_REBUILD_H
#define P2Q_REBUILD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "ack_tracker.h"
#include "backfill.h"
#include "backfill_wm.h"
#include "config.h"
#include "qdrant_client.h"
#include "qop.h"
#include "status.h"

struct p2q_metrics;
struct sink;
typedef struct rebuild rebuild;

typedef struct rb_env {
    const p2q_config *cfg;       /* borrowed */
    qd_client *qd;               /* borrowed: its URL, key and CA file for the rebuild's own client (its requests
                                  * run asynchronously on a client of its own, never blocking the loop) */
    const struct sink *sink;     /* borrowed: marks (everything pushed before the switch acknowledged) */
    backfill *bf;                /* borrowed: the backfill into the new generation */
    ack_tracker *acks;           /* borrowed: the request's hold */
    struct p2q_metrics *metrics; /* borrowed; NULL: none */
} rb_env;

/* env is copied.  Never NULL. */
rebuild *rb_new(const rb_env *env);
void rb_free(rebuild *r);

/* A new replication session: requests (and their holds) are forgotten;
 * the stream brings them again.  History stays. */
void rb_session_start(rebuild *r);

/* A rebuild request of the stream (m of kind BFM_REBUILD, for this slot).
 * Returns P2Q_OK or P2Q_ERR_FATAL (the ack tracker refused the hold). */
p2q_status rb_on_request(rebuild *r, const bfm *m, lsn_t lsn, bool in_txn, ack_txn txn);

/* A backfill ended (backfill.h env.on_finish). */
void rb_on_backfill_finish(rebuild *r, const char *id, const char *error);

/* Copies of ops->items[from..n) that must also go to a new generation
 * (the table in its backfill or switch phase, no collection of their own)
 * are appended to out.  The caller pushes them after the transaction's own
 * operations (at its commit): interleaved one by one they would make every
 * batch one operation long. */
void rb_dual(const rebuild *r, const qop_list *ops, size_t from, qop_list *out);

/* The loop's turn: the next step when due.  Returns P2Q_OK (failures are
 * the rebuild's, logged). */
p2q_status rb_step(rebuild *r);

/* Milliseconds until rb_step has something to do by time; -1 none. */
int rb_timeout_ms(const rebuild *r);

/* ---- pure ---------------------------------------------------------------------------- */

/* The generation number of name for alias ("<alias>_g<N>", N >= 1), or 0. */
int64_t rb_generation_of(const char *alias, const char *name);

/* The next generation's number: 1 + the highest among names[0..n) (0 when
 * none), skipping numbers whose name is in taken[0..ntaken) (aliases). */
int64_t rb_next_generation(const char *alias, const char *const *names, int n, const char *const *taken, int ntaken);

/*
 * The PUT /collections body of a new generation into out: create_params
 * (a JSON object text) when not NULL, else the parameters of info (the
 * "result" of GET /collections/{c}: vectors, sparse vectors, shard and
 * replication settings, on_disk_payload, HNSW, quantization); metadata
 * {"pg2qdrant_rebuild": id} added.  Returns 0, or -1 with err.
 */
int rb_create_body(const char *create_params, const json_t *info, const char *id, buf *out, char *err,
                   size_t errlen);

/* The name of alias's generation gen: "<alias>_g<gen>" (what rb_generation_of
 * reads back).  Caller frees. */
char *rb_generation_name(const char *alias, int64_t gen);

/* The POST /collections/aliases body switching alias to collection. */
void rb_switch_body(const char *alias, const char *collection, buf *out);

/* The POST /collections/aliases body creating alias for collection (one
 * create_alias action: the alias does not exist yet). */
void rb_create_alias_body(const char *alias, const char *collection, buf *out);

#endif
