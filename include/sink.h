/*
 * sink.h — the Qdrant side of a sync: batching, retries, isolation of
 * poison operations, partial-update fallbacks (SPEC §2 [sync], §3, §5).
 *
 * Operations are queued in the order they must be applied (commit order)
 * and sent as POST /collections/{c}/points/batch?wait=true requests of
 * consecutive operations on one collection, at most batch_points and
 * batch_bytes each, the body streamed from the queued operations.  Up to
 * [sync] parallel_requests requests are in flight at once (pipelining);
 * two requests touching the same point never are, and a truncate goes
 * alone, so per-point order is commit order.  While requests are in flight
 * the caller keeps decoding and pushing, so the next batch fills (adaptive
 * flushing: an idle sink sends what it has at once, a busy one sends
 * another request beside those in flight only for a full batch).
 *
 *   transient failure (qd_outcome QD_TRANSIENT: no answer, timeouts, 408,
 *       429, 500, 502, 503, 504, 507)  the same operations again after
 *       capped exponential backoff with jitter (Retry-After honoured),
 *       without end, one request at a time until one succeeds; nothing is
 *       acknowledged meanwhile.
 *   deterministic rejection (Qdrant's envelope with another 4xx)  the batch
 *       is bisected, one request at a time, until the failing operation is
 *       alone (Qdrant's batch is not atomic: replaying the applied prefix is
 *       idempotent).  A partial update of a missing point is resolved by
 *       reading the row back (env.refetch); any other poison operation
 *       stops the sync (on_error = stop) or goes to the dead-letter file,
 *       fsynced before it counts as done.
 *   not Qdrant's word (QD_AUTH: 401/403; QD_NOT_QDRANT: 501, 505 and any
 *       other 5xx, 1xx/3xx, a body that is not Qdrant's envelope, an
 *       oversized body)  fatal: the sync stops with the slot before the
 *       transaction; never dead-lettered.
 *
 * Acknowledgements go to env.acks (ack_done_ops per transaction ticket) as
 * requests succeed.  The sink logs what it finds (retries, rejections) once.
 * It is driven by the caller's loop: sink_kick() starts a request when one
 * is due, sink_wait() is the loop's one poll (curl's sockets plus the
 * caller's descriptors), sink_progress() handles completions.
 */
#ifndef P2Q_SINK_H
#define P2Q_SINK_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ack_tracker.h"
#include "config.h"
#include "qdrant_client.h"
#include "qop.h"
#include "status.h"

/* Ticket for operations that belong to no transaction (snapshot, reconcile). */
#define SINK_NO_TXN UINT64_MAX

/*
 * The sink's functions (and the env callbacks) return p2q_status values
 * (status.h); sink.c spells the four it uses with these names.
 */
#define SINK_OK P2Q_OK
#define SINK_FATAL P2Q_ERR_FATAL /* logged: a poison operation with on_error = stop, a dead-letter write failed, ... */
#define SINK_STOPPED P2Q_STOPPED /* *stop was set or the deadline passed before everything was sent */
#define SINK_ABORTED P2Q_RETRY   /* the idle callback asked to give up (the replication connection died): reconnect */

typedef struct sink sink;

struct p2q_metrics;

typedef struct sink_env {
    const p2q_config *cfg;        /* batch limits, on_error, dead_letter_file; borrowed */
    qd_client *qd;                /* borrowed; the sink owns its requests */
    ack_tracker *acks;            /* borrowed; NULL: nothing to acknowledge */
    /*
     * Reads op's row back by key (op->key_vals) and appends the resulting
     * whole-row operation (upsert, or delete when its vector is NULL) to
     * out, or nothing when the row is gone.  Returns SINK_OK, or another
     * SINK_* code (logged by the callee).  NULL: a missing point is a
     * poison operation like any other.
     */
    int (*refetch)(void *arg, const qop *op, qop_list *out);
    void *refetch_arg;
    /*
     * Called after every finished request (NULL: not called): result is
     * "ok", "retry" (transient failure) or "rejected"; seconds its duration;
     * ops its operation count.  For metrics.
     */
    void (*on_request)(void *arg, const char *result, double seconds, size_t ops);
    void *on_request_arg;
    /*
     * create_collections: Qdrant answered that op's collection does not
     * exist.  Creates it from op (an upsert) and returns SINK_OK to send op
     * again, or another SINK_* code (logged by the callee).  NULL: a
     * missing collection is a poison operation.  Deletes on a missing
     * collection are then applied trivially (there is nothing to delete)
     * and partial updates are read back (env.refetch) into upserts.
     */
    int (*create_collection)(void *arg, const qop *op);
    void *create_collection_arg;
} sink_env;

/* env is copied.  Never NULL. */
sink *sink_new(const sink_env *env);
/* Aborts a request in flight; frees everything queued. */
void sink_free(sink *s);

/*
 * Moves every operation of ops into the queue (their owned fields now
 * belong to the sink; ops is left empty), tagged with txn (an ack ticket
 * or SINK_NO_TXN).  Ownership of ops itself stays with the caller.
 */
void sink_push(sink *s, qop_list *ops, ack_txn txn);

/* Operations queued (in flight included) and the bytes of their JSON. */
size_t sink_queued_ops(const sink *s);
/* Operations queued and not sent yet. */
size_t sink_unsent_ops(const sink *s);
/* The key the sink orders an operation by: a hash of (collection, point
 * id), never 0; 0 for an operation that is a barrier (truncate, read-back). */
uint64_t sink_op_key(const qop *op);
size_t sink_queued_bytes(const sink *s);
/* The number of operations pushed so far (a mark), and whether Qdrant
 * acknowledged every operation pushed before mark (gone from the queue or
 * acknowledged in it; a reset forgets the queue: true). */
uint64_t sink_mark(const sink *s);
bool sink_done_upto(const sink *s, uint64_t mark);

/* A request is in flight or waiting for its retry. */
bool sink_busy(const sink *s);

/*
 * The caller should stop pushing (stop reading from PostgreSQL) for now:
 * the queue holds max_inflight bytes, or a request is in flight (or
 * waiting for its retry) and a full next batch is already queued behind
 * it.  Reading ahead further would only cost memory: with Qdrant keeping
 * up, memory stays at about two batches whatever the transaction size.
 */
bool sink_full(const sink *s);

/*
 * Starts the next request when one is due: nothing in flight, no retry
 * pending, and either a full batch is queued, or more_input is false (the
 * caller has nothing more to push right now), or the oldest queued
 * operation has waited flush_interval.  QOP_REFETCH operations at the head
 * are resolved here (env.refetch).  Returns SINK_OK or a SINK_* error.
 */
int sink_kick(sink *s, bool more_input);

/* Milliseconds until the sink needs sink_kick/sink_progress again (retry
 * timer, flush deadline, curl's timer); -1 when it waits for nothing. */
int64_t sink_timeout_ms(const sink *s);

/*
 * The loop's one poll: waits up to timeout_ms for curl's sockets, the
 * caller's descriptors fds[0..nfds) (revents filled) and curl's timers.
 * Returns 0, or -1 when the wait itself failed (logged).
 */
int sink_wait(sink *s, struct pollfd *fds, int nfds, int timeout_ms);

/*
 * Handles a finished request: acknowledges its operations, schedules a
 * retry, or bisects a rejected batch.  Call after sink_wait.  Returns
 * SINK_OK or SINK_FATAL (logged).
 */
int sink_progress(sink *s);

/*
 * Blocking: sends everything queued, waiting out retries, until the queue
 * is empty (SINK_OK), *stop is set or deadline_ms (a now_ms() value, 0 for
 * none) passes (SINK_STOPPED), idle() returns non-zero (SINK_ABORTED; it is
 * called at least every second, e.g. to keep the walsender fed with status
 * updates) or an error (SINK_FATAL).  stop and idle may be NULL.
 */
int sink_drain(sink *s, int64_t deadline_ms, volatile sig_atomic_t *stop, int (*idle)(void *), void *idle_arg);

/*
 * Appends one JSON line {"ts","table","collection","key","point_id","op",
 * "lsn","error","operation"} to dead_letter_file and fsyncs it (the file
 * is opened on first use, appending).  key, point_id (JSON text) and
 * op_json may be NULL (a row change that could not be mapped has no
 * operation).  Counts it in the stats.  SINK_OK, or SINK_FATAL (logged).
 */
int sink_dead_letter(sink *s, const table_cfg *t, const char *key, const char *point_id, const char *kind,
                     lsn_t at, const char *why, const char *op_json, size_t op_len);

/* Forgets the queue and any request in flight (after the replication
 * connection dropped, the server resends from the confirmed position). */
void sink_reset(sink *s);

/* Counters for logs, /status and /metrics. */
typedef struct sink_stats {
    uint64_t requests;     /* requests Qdrant acknowledged */
    uint64_t ops;          /* operations acknowledged */
    uint64_t bytes;        /* request body bytes acknowledged */
    uint64_t retries;      /* transient failures retried */
    uint64_t rejected;     /* requests rejected deterministically (bisection steps included) */
    uint64_t refetched;    /* rows read back for partial updates / key changes */
    uint64_t dead_letters; /* operations written to the dead-letter file */
    size_t keys_capacity;  /* slots of the table of points in flight (it holds only those) */
    bool last_ok;          /* Qdrant's last answer was a success (readiness) */
    char last_error[600];  /* the last failure, described; "" when none */
} sink_stats;

const sink_stats *sink_get_stats(const sink *s);

#endif
