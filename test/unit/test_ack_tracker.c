/*
 * test_ack_tracker.c — the confirmed position under batches that span and
 * split transactions, keepalives and reconnects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ack_tracker.h"

static void test_single_txn_confirmed_after_commit_and_ack(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t);

    ack_add_ops(t, a, 3);
    ack_done_ops(t, a, 3); /* acked before Commit was seen: not yet */
    assert_int_equal(ack_confirmed(t), 0);
    ack_commit(t, a, 0x100);
    assert_int_equal(ack_confirmed(t), 0x100);
    assert_int_equal(ack_inflight_txns(t), 0);
    ack_free(t);
}

static void test_commit_before_ack(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t);

    ack_add_ops(t, a, 2);
    ack_commit(t, a, 0x100);
    assert_int_equal(ack_confirmed(t), 0);
    ack_done_ops(t, a, 1);
    assert_int_equal(ack_confirmed(t), 0);
    ack_done_ops(t, a, 1);
    assert_int_equal(ack_confirmed(t), 0x100);
    ack_free(t);
}

/* One batch holds the tail of txn A and all of B; a later batch holds C.
 * C acked first must not move the position past A and B. */
static void test_out_of_order_acks_wait_for_prefix(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), b, c;

    ack_add_ops(t, a, 4);
    ack_commit(t, a, 0x100);
    b = ack_begin(t);
    ack_add_ops(t, b, 1);
    ack_commit(t, b, 0x200);
    c = ack_begin(t);
    ack_add_ops(t, c, 2);
    ack_commit(t, c, 0x300);

    ack_done_ops(t, c, 2);
    assert_int_equal(ack_confirmed(t), 0);
    ack_done_ops(t, a, 2); /* first batch: half of A */
    assert_int_equal(ack_confirmed(t), 0);
    ack_done_ops(t, a, 2); /* second batch: rest of A ... */
    assert_int_equal(ack_confirmed(t), 0x100);
    ack_done_ops(t, b, 1); /* ... and B; C was already done */
    assert_int_equal(ack_confirmed(t), 0x300);
    assert_int_equal(ack_inflight_txns(t), 0);
    ack_free(t);
}

static void test_empty_txn_confirms_at_commit(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t);

    ack_commit(t, a, 0x500); /* only skipped tables changed */
    assert_int_equal(ack_confirmed(t), 0x500);
    ack_free(t);
}

static void test_keepalive_only_when_idle(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a;

    ack_keepalive(t, 0x1000);
    assert_int_equal(ack_confirmed(t), 0x1000);
    a = ack_begin(t);
    ack_keepalive(t, 0x2000); /* open transaction: must not confirm */
    assert_int_equal(ack_confirmed(t), 0x1000);
    ack_add_ops(t, a, 1);
    ack_commit(t, a, 0x2100);
    ack_keepalive(t, 0x3000); /* committed but unacknowledged: must not */
    assert_int_equal(ack_confirmed(t), 0x1000);
    ack_done_ops(t, a, 1); /* a acknowledged: so is all that came before that keepalive */
    assert_int_equal(ack_confirmed(t), 0x3000);
    ack_keepalive(t, 0x3800);
    assert_int_equal(ack_confirmed(t), 0x3800);
    ack_free(t);
}

static void test_never_moves_backwards(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a;

    ack_seed(t, 0x5000);
    ack_keepalive(t, 0x4000);
    a = ack_begin(t);
    ack_commit(t, a, 0x4800); /* a replayed transaction below the seed */
    assert_int_equal(ack_confirmed(t), 0x5000);
    ack_seed(t, 0x10);
    assert_int_equal(ack_confirmed(t), 0x5000);
    ack_free(t);
}

static void test_reset_inflight_drops_unconfirmed(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), b;

    ack_add_ops(t, a, 1);
    ack_commit(t, a, 0x100);
    b = ack_begin(t);
    ack_add_ops(t, b, 1);
    ack_reset_inflight(t);
    assert_int_equal(ack_inflight_txns(t), 0);
    assert_int_equal(ack_confirmed(t), 0);
    a = ack_begin(t); /* tickets keep increasing after a reset */
    assert_true(a > b);
    ack_commit(t, a, 0x100);
    assert_int_equal(ack_confirmed(t), 0x100);
    ack_free(t);
}

/* Many transactions (forcing ring growth and wrap-around), acked in
 * reverse order: the position jumps only when the oldest is done. */
static void test_many_txns_ring_growth(void **state)
{
    enum { N = 1000 };
    ack_tracker *t = ack_new();
    ack_txn tk[N];

    for (int round = 0; round < 3; round++) {
        lsn_t base = (lsn_t)(round + 1) << 32;
        for (int i = 0; i < N; i++) {
            tk[i] = ack_begin(t);
            ack_add_ops(t, tk[i], 1);
            ack_commit(t, tk[i], base + (lsn_t)i * 16 + 16);
        }
        for (int i = N - 1; i > 0; i--) {
            ack_done_ops(t, tk[i], 1);
            assert_true(ack_confirmed(t) < base);
        }
        ack_done_ops(t, tk[0], 1);
        assert_int_equal(ack_confirmed(t), base + (lsn_t)N * 16);
        assert_int_equal(ack_inflight_txns(t), 0);
    }
    ack_free(t);
}

/* ---- interleavings of batches and transactions -------------------------------- */

/* One batch carries all of A and all of B (many small transactions per
 * request): the sink acknowledges it as one call per run of a ticket, in
 * queue order; both are confirmed, at B's end. */
static void test_one_batch_acks_two_txns(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), b;

    ack_add_ops(t, a, 2);
    ack_commit(t, a, 0x100);
    b = ack_begin(t);
    ack_add_ops(t, b, 3);
    ack_commit(t, b, 0x200);
    assert_int_equal(ack_confirmed(t), 0);
    ack_done_ops(t, a, 2);
    assert_int_equal(ack_confirmed(t), 0x100);
    ack_done_ops(t, b, 3);
    assert_int_equal(ack_confirmed(t), 0x200);
    assert_int_equal(ack_inflight_txns(t), 0);
    ack_free(t);
}

/* One batch holds the tail of A and the head of B while B is still open:
 * A is confirmed, B is not, not even when all its operations so far are
 * acknowledged, until its Commit is seen. */
static void test_batch_spans_into_open_txn(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), b;

    ack_add_ops(t, a, 3);
    ack_commit(t, a, 0x100);
    b = ack_begin(t);
    ack_add_ops(t, b, 2);
    ack_done_ops(t, a, 3); /* the batch: all of A ... */
    ack_done_ops(t, b, 2); /* ... and what B had so far */
    assert_int_equal(ack_confirmed(t), 0x100);
    assert_int_equal(ack_inflight_txns(t), 1);
    ack_keepalive(t, 0x180); /* B open (0 pending): a keepalive must not confirm */
    assert_int_equal(ack_confirmed(t), 0x100);
    ack_add_ops(t, b, 4);
    ack_done_ops(t, b, 4);
    assert_int_equal(ack_confirmed(t), 0x100);
    ack_commit(t, b, 0x200); /* committed with nothing pending: confirmed at once */
    assert_int_equal(ack_confirmed(t), 0x200);
    assert_int_equal(ack_inflight_txns(t), 0);
    ack_free(t);
}

/* A transaction's operations split across three batches; its Commit
 * arrives between the second and the third batch. */
static void test_txn_split_across_three_batches(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t);

    ack_seed(t, 0x50);
    ack_add_ops(t, a, 300);
    ack_done_ops(t, a, 256); /* batch 1 (batch_points = 256) */
    assert_int_equal(ack_confirmed(t), 0x50);
    ack_add_ops(t, a, 212);  /* 256 pending */
    ack_done_ops(t, a, 200); /* batch 2 (batch_bytes cut it short) */
    assert_int_equal(ack_confirmed(t), 0x50);
    ack_commit(t, a, 0x1000);
    assert_int_equal(ack_confirmed(t), 0x50);
    ack_keepalive(t, 0x2000); /* committed but 56 pending: must not confirm */
    assert_int_equal(ack_confirmed(t), 0x50);
    ack_done_ops(t, a, 55); /* batch 3, acknowledged up to its last operation */
    assert_int_equal(ack_confirmed(t), 0x50);
    ack_done_ops(t, a, 1); /* done: the keepalive that came after its Commit counts now */
    assert_int_equal(ack_confirmed(t), 0x2000);
    ack_free(t);
}

/* Acknowledgements arrive while later transactions are still open: A is
 * confirmed, B (committed, pending) and C (open) hold the position, a
 * keepalive in between confirms nothing, and C's Commit confirms C only
 * after B is done. */
static void test_acks_while_later_txns_open(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), b, c;

    ack_add_ops(t, a, 1);
    ack_commit(t, a, 0x100);
    b = ack_begin(t);
    ack_add_ops(t, b, 2);
    ack_commit(t, b, 0x200);
    c = ack_begin(t);
    ack_add_ops(t, c, 5);
    ack_done_ops(t, a, 1);
    assert_int_equal(ack_confirmed(t), 0x100);
    ack_keepalive(t, 0x180);
    ack_keepalive(t, 0x1000);
    assert_int_equal(ack_confirmed(t), 0x100);
    ack_done_ops(t, b, 1);
    ack_done_ops(t, c, 5); /* c's operations are acknowledged before b's last (not by the sink, but allowed) */
    ack_commit(t, c, 0x300);
    assert_int_equal(ack_confirmed(t), 0x100);
    assert_int_equal(ack_inflight_txns(t), 2);
    ack_done_ops(t, b, 1); /* all done: up to the keepalive seen meanwhile */
    assert_int_equal(ack_confirmed(t), 0x1000);
    ack_keepalive(t, 0x1100); /* now idle: the keepalive position */
    assert_int_equal(ack_confirmed(t), 0x1100);
    ack_keepalive(t, 0x800); /* an older keepalive never moves it back */
    assert_int_equal(ack_confirmed(t), 0x1100);
    ack_free(t);
}

/* A keepalive while anything is pending confirms nothing, in each state a
 * transaction can be in. */
static void test_keepalive_never_confirms_while_pending(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a, b;

    ack_seed(t, 0x10);
    a = ack_begin(t); /* open, no operations */
    ack_keepalive(t, 0x100);
    assert_int_equal(ack_confirmed(t), 0x10);
    ack_add_ops(t, a, 1); /* open, one pending */
    ack_keepalive(t, 0x100);
    assert_int_equal(ack_confirmed(t), 0x10);
    ack_commit(t, a, 0x40); /* committed, one pending */
    b = ack_begin(t);       /* plus an open one behind it */
    ack_keepalive(t, 0x100);
    assert_int_equal(ack_confirmed(t), 0x10);
    ack_done_ops(t, a, 1);
    assert_int_equal(ack_confirmed(t), 0x40);
    ack_keepalive(t, 0x100); /* b still open */
    assert_int_equal(ack_confirmed(t), 0x40);
    ack_commit(t, b, 0x60); /* nothing in flight: the keepalives seen meanwhile count */
    assert_int_equal(ack_confirmed(t), 0x100);
    ack_keepalive(t, 0x180);
    assert_int_equal(ack_confirmed(t), 0x180);
    ack_free(t);
}

/* A reconnect: ack_reset_inflight, then ack_seed with the slot's (older)
 * confirmed_flush_lsn, then the replayed transactions: the position never
 * goes back, and the replay moves it on only past the old position. */
static void test_reset_and_older_seed_never_move_back(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), b, c;

    ack_seed(t, 0x1000);
    ack_add_ops(t, a, 1);
    ack_commit(t, a, 0x2000);
    ack_done_ops(t, a, 1);
    assert_int_equal(ack_confirmed(t), 0x2000);
    b = ack_begin(t);
    ack_add_ops(t, b, 3);
    ack_commit(t, b, 0x3000);
    ack_done_ops(t, b, 2);
    ack_reset_inflight(t);
    ack_seed(t, 0x1000); /* the slot on the server lags behind (status not yet sent) */
    assert_int_equal(ack_confirmed(t), 0x2000);
    ack_seed(t, 0);
    assert_int_equal(ack_confirmed(t), 0x2000);
    /* the server resends a (already confirmed here) and b */
    a = ack_begin(t);
    ack_add_ops(t, a, 1);
    ack_commit(t, a, 0x2000);
    ack_done_ops(t, a, 1);
    assert_int_equal(ack_confirmed(t), 0x2000);
    c = ack_begin(t);
    ack_add_ops(t, c, 3);
    ack_commit(t, c, 0x3000);
    ack_keepalive(t, 0x5000);
    assert_int_equal(ack_confirmed(t), 0x2000);
    ack_done_ops(t, c, 3);
    assert_int_equal(ack_confirmed(t), 0x5000);
    ack_free(t);
}

/* A keepalive that arrives while transactions are in flight is confirmed as
 * soon as they are acknowledged (the walsender believes we have that WAL,
 * as we report it written, and sends no new keepalive while idle), but a
 * reconnect forgets it: the transactions before it come again. */
static void test_keepalive_seen_while_pending(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), b;

    ack_add_ops(t, a, 2);
    ack_commit(t, a, 0x100);
    ack_keepalive(t, 0x180);
    ack_keepalive(t, 0x140); /* older: ignored */
    assert_int_equal(ack_confirmed(t), 0);
    ack_done_ops(t, a, 2);
    assert_int_equal(ack_confirmed(t), 0x180);

    b = ack_begin(t);
    ack_add_ops(t, b, 1);
    ack_commit(t, b, 0x200);
    ack_keepalive(t, 0x280);
    ack_reset_inflight(t); /* connection lost before b was acknowledged */
    b = ack_begin(t);      /* b again */
    ack_add_ops(t, b, 1);
    ack_commit(t, b, 0x200);
    ack_done_ops(t, b, 1);
    assert_int_equal(ack_confirmed(t), 0x200); /* not 0x280: that keepalive belonged to the old stream */
    ack_free(t);
}

/*
 * Model check: random interleavings of Begin, operations (none at all in
 * some transactions), Commit,
 * keepalives and batch acknowledgements the way the sink makes them (a
 * batch is a run of consecutive queued operations, possibly spanning and
 * splitting transactions), and reconnects.  After every step the
 * confirmed position must equal a reference model:
 *   max(seed, keepalives seen while idle or before the in-flight ones were
 *   all acknowledged, end of the newest transaction of the fully acknowledged
 *   committed prefix), and never decrease.
 */
typedef struct model_txn {
    ack_txn ticket;
    size_t ops, acked;
    bool committed;
    lsn_t end;
} model_txn;

static unsigned long long rnd_state = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (unsigned)(rnd_state % n);
}

static void test_model_random_interleavings(void **state)
{
    enum { ROUNDS = 200, STEPS = 400, MAXTX = 512 };

    for (int round = 0; round < ROUNDS; round++) {
        ack_tracker *t = ack_new();
        model_txn tx[MAXTX];
        size_t ntx = 0, first = 0; /* tx[first..ntx): not yet popped in the model */
        size_t q_txn = 0;          /* oldest txn with unacknowledged queued ops */
        lsn_t lsn = 0x1000, model = 0, last = 0, ka = 0;
        bool open = false;

        for (int step = 0; step < STEPS && ntx < MAXTX - 1; step++) {
            unsigned what = rnd(100);

            if (what < 15 && !open) { /* Begin */
                tx[ntx] = (model_txn){.ticket = ack_begin(t)};
                ntx++;
                open = true;
            } else if (what < 40 && open) { /* a change: 0..3 operations */
                size_t n = rnd(4);
                tx[ntx - 1].ops += n;
                if (n)
                    ack_add_ops(t, tx[ntx - 1].ticket, n);
                lsn += 0x10 + rnd(0x40);
            } else if (what < 55 && open) { /* Commit */
                lsn += 0x30;
                tx[ntx - 1].committed = true;
                tx[ntx - 1].end = lsn;
                ack_commit(t, tx[ntx - 1].ticket, lsn);
                open = false;
            } else if (what < 85) { /* a batch: the next k queued operations, in order */
                size_t k = 1 + rnd(12);
                while (k > 0 && q_txn < ntx) {
                    model_txn *m = &tx[q_txn];
                    size_t left = m->ops - m->acked, n = left < k ? left : k;
                    if (n > 0) {
                        ack_done_ops(t, m->ticket, n);
                        m->acked += n;
                        k -= n;
                    }
                    if (m->acked == m->ops && (m->committed || q_txn == ntx - 1)) {
                        if (!m->committed)
                            break; /* the open txn: more ops may come */
                        q_txn++;
                    } else if (n == 0) {
                        break;
                    }
                }
            } else if (what < 95) { /* keepalive */
                lsn_t wal_end = lsn + rnd(0x100);
                bool idle = !open;
                for (size_t i = first; i < ntx && idle; i++)
                    idle = tx[i].committed && tx[i].acked == tx[i].ops;
                ack_keepalive(t, wal_end);
                if (idle && first == ntx && wal_end > model)
                    model = wal_end;
                else if (first < ntx && wal_end > ka)
                    ka = wal_end; /* confirmed once everything before it is */
                if (wal_end > lsn)
                    lsn = wal_end;
            } else { /* reconnect: forget the in-flight ones, seed with an older position */
                ack_reset_inflight(t);
                ack_seed(t, model > 0x100 ? model - 0x100 : 0);
                first = q_txn = ntx;
                open = false;
                ka = 0;
            }
            /* the model: pop the committed, fully acknowledged prefix */
            while (first < ntx && tx[first].committed && tx[first].acked == tx[first].ops) {
                if (tx[first].end > model)
                    model = tx[first].end;
                first++;
            }
            if (first == ntx && ka > model)
                model = ka;
            if (q_txn < first)
                q_txn = first;
            assert_int_equal(ack_confirmed(t), model);
            assert_true(ack_confirmed(t) >= last);
            last = ack_confirmed(t);
            {
                size_t with_ops = 0; /* only transactions with operations have an entry */
                for (size_t i = first; i < ntx; i++)
                    with_ops += tx[i].ops > 0;
                assert_int_equal(ack_inflight_txns(t), with_ops);
            }
        }
        ack_free(t);
    }
}

/* Transactions without operations between ones with operations: no entry
 * of their own, confirmed with the newest transaction before them. */
static void test_empty_txns_between_nonempty(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), e, b;

    assert_int_equal(ack_add_ops(t, a, 2), 0);
    assert_int_equal(ack_commit(t, a, 0x100), 0);
    e = ack_begin(t);
    assert_int_equal(ack_commit(t, e, 0x180), 0);
    e = ack_begin(t);
    assert_int_equal(ack_commit(t, e, 0x1c0), 0);
    b = ack_begin(t);
    assert_int_equal(ack_add_ops(t, b, 1), 0);
    assert_int_equal(ack_commit(t, b, 0x200), 0);
    e = ack_begin(t);
    assert_int_equal(ack_commit(t, e, 0x280), 0);
    assert_int_equal(ack_inflight_txns(t), 2);
    assert_int_equal(ack_confirmed(t), 0);

    assert_int_equal(ack_done_ops(t, b, 1), 0); /* b before a: nothing moves */
    assert_int_equal(ack_confirmed(t), 0);
    assert_int_equal(ack_done_ops(t, a, 1), 0);
    assert_int_equal(ack_confirmed(t), 0);
    assert_int_equal(ack_done_ops(t, a, 1), 0); /* a, the empty ones after it, b and the last empty one */
    assert_int_equal(ack_confirmed(t), 0x280);
    assert_int_equal(ack_inflight_txns(t), 0);
    ack_free(t);
}

/* Empty transactions behind one still in flight stop at it, and cost no
 * entry however many there are (the memory bound while Qdrant is down). */
static void test_empty_txns_while_in_flight(void **state)
{
    enum { N = 100000 };
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), b;
    lsn_t lsn = 0x1000;

    assert_int_equal(ack_add_ops(t, a, 1), 0);
    assert_int_equal(ack_commit(t, a, lsn), 0);
    for (int i = 0; i < N; i++) {
        ack_txn e = ack_begin(t);
        lsn += 0x40;
        assert_int_equal(ack_commit(t, e, lsn), 0);
    }
    assert_int_equal(ack_inflight_txns(t), 1);
    assert_int_equal(ack_confirmed(t), 0);
    b = ack_begin(t); /* an open one with operations, after the empty ones */
    assert_int_equal(ack_add_ops(t, b, 1), 0);
    assert_int_equal(ack_done_ops(t, a, 1), 0);
    assert_int_equal(ack_confirmed(t), lsn); /* the newest empty one, not past the open b */
    assert_int_equal(ack_done_ops(t, b, 1), 0);
    assert_int_equal(ack_confirmed(t), lsn);  /* b not committed */
    assert_int_equal(ack_commit(t, b, lsn + 0x100), 0);
    assert_int_equal(ack_confirmed(t), lsn + 0x100);
    ack_free(t);
}

/* With everything acknowledged, an empty transaction is confirmed at its Commit. */
static void test_empty_txn_after_all_acked(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), e;

    assert_int_equal(ack_add_ops(t, a, 1), 0);
    assert_int_equal(ack_commit(t, a, 0x100), 0);
    assert_int_equal(ack_done_ops(t, a, 1), 0);
    assert_int_equal(ack_confirmed(t), 0x100);
    e = ack_begin(t);
    assert_int_equal(ack_confirmed(t), 0x100);
    assert_int_equal(ack_commit(t, e, 0x140), 0);
    assert_int_equal(ack_confirmed(t), 0x140);
    assert_int_equal(ack_inflight_txns(t), 0);
    ack_free(t);
}

/* Keepalives and empty transactions: an open transaction without
 * operations still holds a keepalive back; one seen behind in-flight
 * transactions and empty ones is confirmed when they are acknowledged. */
static void test_empty_txns_and_keepalives(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn e = ack_begin(t), a;

    ack_keepalive(t, 0x2000); /* open (no operations yet): must not confirm */
    assert_int_equal(ack_confirmed(t), 0);
    assert_int_equal(ack_commit(t, e, 0x1f00), 0); /* committed empty: all before that keepalive is done */
    assert_int_equal(ack_confirmed(t), 0x2000);

    a = ack_begin(t);
    assert_int_equal(ack_add_ops(t, a, 1), 0);
    assert_int_equal(ack_commit(t, a, 0x2100), 0);
    e = ack_begin(t);
    assert_int_equal(ack_commit(t, e, 0x2200), 0);
    ack_keepalive(t, 0x2300);
    e = ack_begin(t);
    assert_int_equal(ack_commit(t, e, 0x2400), 0);
    assert_int_equal(ack_confirmed(t), 0x2000);
    assert_int_equal(ack_done_ops(t, a, 1), 0);
    assert_int_equal(ack_confirmed(t), 0x2400);

    /* a reconnect forgets an empty end kept on an unacknowledged entry */
    a = ack_begin(t);
    assert_int_equal(ack_add_ops(t, a, 1), 0);
    assert_int_equal(ack_commit(t, a, 0x2500), 0);
    e = ack_begin(t);
    assert_int_equal(ack_commit(t, e, 0x2600), 0);
    ack_reset_inflight(t);
    assert_int_equal(ack_confirmed(t), 0x2400);
    ack_free(t);
}

/* A ticket that names no open transaction or no entry is refused in every
 * build (these were assert()s, gone in release builds), and changes nothing. */
static void test_bad_tickets_refused(void **state)
{
    ack_tracker *t = ack_new();
    ack_txn a = ack_begin(t), e, b;

    assert_int_equal(ack_begin(t), ACK_NO_TXN); /* Begin inside a transaction */
    assert_int_equal(ack_done_ops(t, a, 1), -1); /* open without operations: no entry */
    assert_int_equal(ack_add_ops(t, a + 1, 1), -1); /* not the open one */
    assert_int_equal(ack_commit(t, a + 1, 0x100), -1);
    assert_int_equal(ack_add_ops(t, a, 2), 0);
    assert_int_equal(ack_done_ops(t, a, 3), -1); /* more than pending */
    assert_int_equal(ack_done_ops(t, a + 1, 1), -1); /* unknown */
    assert_int_equal(ack_done_ops(t, ACK_NO_TXN, 1), -1);
    assert_int_equal(ack_commit(t, a, 0x100), 0);
    assert_int_equal(ack_commit(t, a, 0x180), -1); /* committed already */
    assert_int_equal(ack_add_ops(t, a, 1), -1);
    e = ack_begin(t);
    assert_int_equal(ack_commit(t, e, 0x200), 0);
    assert_int_equal(ack_inflight_txns(t), 1);
    assert_int_equal(ack_confirmed(t), 0);
    assert_int_equal(ack_done_ops(t, a, 2), 0);
    assert_int_equal(ack_confirmed(t), 0x200);
    assert_int_equal(ack_done_ops(t, a, 1), -1); /* popped */

    b = ack_begin(t); /* a reconnect while b is open without operations */
    ack_reset_inflight(t);
    assert_int_equal(ack_add_ops(t, b, 1), -1);
    assert_int_equal(ack_commit(t, b, 0x300), -1);
    a = ack_begin(t);
    assert_true(a > b); /* tickets keep increasing */
    assert_int_equal(ack_commit(t, a, 0x300), 0);
    assert_int_equal(ack_confirmed(t), 0x300);
    ack_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_txn_confirmed_after_commit_and_ack),
        cmocka_unit_test(test_commit_before_ack),
        cmocka_unit_test(test_out_of_order_acks_wait_for_prefix),
        cmocka_unit_test(test_empty_txn_confirms_at_commit),
        cmocka_unit_test(test_keepalive_only_when_idle),
        cmocka_unit_test(test_never_moves_backwards),
        cmocka_unit_test(test_reset_inflight_drops_unconfirmed),
        cmocka_unit_test(test_many_txns_ring_growth),
        cmocka_unit_test(test_one_batch_acks_two_txns),
        cmocka_unit_test(test_batch_spans_into_open_txn),
        cmocka_unit_test(test_txn_split_across_three_batches),
        cmocka_unit_test(test_acks_while_later_txns_open),
        cmocka_unit_test(test_keepalive_never_confirms_while_pending),
        cmocka_unit_test(test_reset_and_older_seed_never_move_back),
        cmocka_unit_test(test_keepalive_seen_while_pending),
        cmocka_unit_test(test_empty_txns_between_nonempty),
        cmocka_unit_test(test_empty_txns_while_in_flight),
        cmocka_unit_test(test_empty_txn_after_all_acked),
        cmocka_unit_test(test_empty_txns_and_keepalives),
        cmocka_unit_test(test_bad_tickets_refused),
        cmocka_unit_test(test_model_random_interleavings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
