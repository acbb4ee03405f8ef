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
 * while a transaction was open or in flight is confirmed once everything is
 * acknowledged (we report it as written, so the walsender does not send it
 * again).  Pure.
 *
 * Invariant: the confirmed position is the end of a transaction, or a
 * keepalive's walEnd, only once every operation of every transaction
 * received before it was acknowledged.
 *
 * Memory: one entry per transaction that handed operations to the sink and
 * is not yet confirmed; nothing for the others.  The open transaction gets
 * its entry at its first operation (ack_add_ops).  One that commits without
 * operations (only tables without a [table] section changed) is confirmed at
 * once when nothing is in flight; otherwise its end is kept on the newest
 * entry (one LSN, the newest such end) and confirmed when that entry pops:
 * all before it acknowledged is exactly the invariant.  So a stream of
 * transactions that are empty for us costs no memory, even while Qdrant is
 * down (docs/guarantees.md).
 *
 * Tickets: Begin reserves the ticket the entry will have; a transaction
 * that committed without operations gives its ticket to the next one.  A
 * ticket that names no open transaction or no entry (a caller's bug) is
 * refused with -1 in every build; the caller stops with a message.
 */
#ifndef P2Q_ACK_TRACKER_H
#define P2Q_ACK_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef struct ack_tracker ack_tracker;
typedef uint64_t ack_txn; /* a transaction's ticket, increasing */
#define ACK_NO_TXN ((ack_txn)0) /* never a ticket */

ack_tracker *ack_new(void);
void ack_free(ack_tracker *t);

/* Starting point (e.g. the slot's confirmed_flush_lsn); only raises. */
void ack_seed(ack_tracker *t, lsn_t confirmed);

/* Begin: opens a transaction at the tail and returns its ticket
 * (ACK_NO_TXN when one is open already). */
ack_txn ack_begin(ack_tracker *t);
/* n more operations of txn were handed to the sink (the first creates its
 * entry).  -1 when txn is not the open transaction. */
int ack_add_ops(ack_tracker *t, ack_txn txn, size_t n);
/* Commit seen: txn (the open one) ends at end_lsn.  -1 when txn is not the
 * open transaction. */
int ack_commit(ack_tracker *t, ack_txn txn, lsn_t end_lsn);
/* Qdrant acknowledged n operations of txn.  -1 when txn has no entry or
 * fewer than n operations pending. */
int ack_done_ops(ack_tracker *t, ack_txn txn, size_t n);
/* A keepalive announced wal_end: confirmed when nothing is open or pending,
 * else as soon as everything open or in flight at that moment is
 * committed and acknowledged. */
void ack_keepalive(ack_tracker *t, lsn_t wal_end);
/* Forget every transaction not yet confirmed (after a reconnect the server
 * resends them from the confirmed position). */
void ack_reset_inflight(ack_tracker *t);

lsn_t ack_confirmed(const ack_tracker *t);
/* Transactions with operations not yet confirmed (the entries). */
size_t ack_inflight_txns(const ack_tracker *t);

#endif
