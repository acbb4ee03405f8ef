/*
 * ack_tracker.h — which WAL position may be confirmed to PostgreSQL
 * (PROTOCOL.md §2.4).
 *
 * A FIFO of transactions in commit order.  A transaction is popped when its
 * Commit was seen AND every Qdrant operation it produced was acknowledged;
 * the confirmed position is then its Commit.end_lsn.  So the position
 * reported as flushed never passes a change Qdrant has not acknowledged,
 * whatever way batches span or split transactions, and it never moves
 * backwards.  With nothing in flight and no open transaction, a keepalive's
 * walEnd is confirmed too, so an idle slot does not pin WAL; one that came
 * while transactions were in flight is confirmed once they are acknowledged
 * (we report it as written, so the walsender does not send it again).  Pure.
 */
#ifndef P2Q_ACK_TRACKER_H
#define P2Q_ACK_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef struct ack_tracker ack_tracker;
typedef uint64_t ack_txn; /* a transaction's ticket, increasing */

ack_tracker *ack_new(void);
void ack_free(ack_tracker *t);

/* Starting point (e.g. the slot's confirmed_flush_lsn); only raises. */
void ack_seed(ack_tracker *t, lsn_t confirmed);

/* Begin: opens a transaction at the tail and returns its ticket. */
ack_txn ack_begin(ack_tracker *t);
/* n more operations of txn were handed to the sink. */
void ack_add_ops(ack_tracker *t, ack_txn txn, size_t n);
/* Commit seen: txn (the open one) ends at end_lsn. */
void ack_commit(ack_tracker *t, ack_txn txn, lsn_t end_lsn);
/* Qdrant acknowledged n operations of txn. */
void ack_done_ops(ack_tracker *t, ack_txn txn, size_t n);
/* A keepalive announced wal_end: confirmed when nothing is open or pending,
 * else as soon as everything in flight at that moment is acknowledged. */
void ack_keepalive(ack_tracker *t, lsn_t wal_end);
/* Forget every transaction not yet confirmed (after a reconnect the server
 * resends them from the confirmed position). */
void ack_reset_inflight(ack_tracker *t);

lsn_t ack_confirmed(const ack_tracker *t);
size_t ack_inflight_txns(const ack_tracker *t);

#endif
