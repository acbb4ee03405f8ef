/*
 * test_ack_tracker.c — the confirmed position under batches that span and
 * split transactions, keepalives and reconnects.
 */
#include <setjmp.h>
#include <stdarg.h>
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
    ack_done_ops(t, a, 1);
    assert_int_equal(ack_confirmed(t), 0x2100);
    ack_keepalive(t, 0x3000);
    assert_int_equal(ack_confirmed(t), 0x3000);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
