/*
 * test_sync_policy.c — the run loop's decisions: what follows a session's
 * end, which START_REPLICATION failures are retried, when a status update
 * is due and how long the poll may sleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sync_policy.h"

static void test_session_end_exits(void **state)
{
    p2q_status result = P2Q_OK;

    (void)state;
    assert_int_equal(sync_after_session(P2Q_STOPPED, false, &result), SYNC_NEXT_EXIT);
    assert_int_equal(result, P2Q_STOPPED);
    assert_int_equal(sync_after_session(P2Q_ERR_FATAL, false, &result), SYNC_NEXT_EXIT);
    assert_int_equal(result, P2Q_ERR_FATAL);
    assert_int_equal(sync_after_session(P2Q_ERR_CONFIG, false, &result), SYNC_NEXT_EXIT);
    assert_int_equal(result, P2Q_ERR_CONFIG);
}

/* A stop requested while a session failed transiently ends the run cleanly;
 * a fatal or config error keeps its own result even then. */
static void test_session_end_with_stop_requested(void **state)
{
    p2q_status result = P2Q_OK;

    (void)state;
    assert_int_equal(sync_after_session(P2Q_RETRY, true, &result), SYNC_NEXT_EXIT);
    assert_int_equal(result, P2Q_STOPPED);
    assert_int_equal(sync_after_session(P2Q_STANDBY, true, &result), SYNC_NEXT_EXIT);
    assert_int_equal(result, P2Q_STOPPED);
    assert_int_equal(sync_after_session(P2Q_ERR_FATAL, true, &result), SYNC_NEXT_EXIT);
    assert_int_equal(result, P2Q_ERR_FATAL);
    assert_int_equal(sync_after_session(P2Q_ERR_CONFIG, true, &result), SYNC_NEXT_EXIT);
    assert_int_equal(result, P2Q_ERR_CONFIG);
}

static void test_session_end_reconnects(void **state)
{
    p2q_status result = P2Q_OK;

    (void)state;
    assert_int_equal(sync_after_session(P2Q_RETRY, false, &result), SYNC_NEXT_BACKOFF);
    assert_int_equal(sync_after_session(P2Q_STANDBY, false, &result), SYNC_NEXT_STANDBY);
    assert_int_equal(result, P2Q_OK); /* untouched unless the run ends */
}

static void test_start_failure(void **state)
{
    (void)state;
    assert_int_equal(sync_start_failure("55006", true), P2Q_RETRY); /* slot active for another PID */
    assert_int_equal(sync_start_failure("57P03", true), P2Q_RETRY); /* starting up */
    assert_int_equal(sync_start_failure("", false), P2Q_RETRY);     /* connection lost meanwhile */
    assert_int_equal(sync_start_failure("42704", false), P2Q_RETRY);
    assert_int_equal(sync_start_failure("42704", true), P2Q_ERR_FATAL); /* e.g. the publication vanished */
    assert_int_equal(sync_start_failure("", true), P2Q_ERR_FATAL);
}

static void test_status_due(void **state)
{
    (void)state;
    assert_false(sync_status_due(9999, 10000, false));
    assert_true(sync_status_due(10000, 10000, false));
    assert_true(sync_status_due(20000, 10000, false));
    /* The confirmed position moved: told soon, but not more often than the gap. */
    assert_false(sync_status_due(SYNC_ACK_SEND_MIN_GAP_MS - 1, 10000, true));
    assert_true(sync_status_due(SYNC_ACK_SEND_MIN_GAP_MS, 10000, true));
    /* A first update (last = 0, so since is huge) is always due. */
    assert_true(sync_status_due(INT64_MAX / 2, 10000, false));
}

static void test_poll_timeout(void **state)
{
    (void)state;
    /* Bounded so a signal is noticed. */
    assert_int_equal(sync_poll_timeout_ms(10000, false, -1, false), SYNC_POLL_MAX_MS);
    assert_int_equal(sync_poll_timeout_ms(700, false, -1, false), 700);
    /* The confirmed position moved: wake up to tell it. */
    assert_int_equal(sync_poll_timeout_ms(700, true, -1, false), SYNC_ACK_SEND_MIN_GAP_MS);
    assert_int_equal(sync_poll_timeout_ms(SYNC_ACK_SEND_MIN_GAP_MS / 2, true, -1, false), SYNC_ACK_SEND_MIN_GAP_MS / 2);
    /* The sink's timer (retry, flush) when sooner. */
    assert_int_equal(sync_poll_timeout_ms(700, false, 30, false), 30);
    assert_int_equal(sync_poll_timeout_ms(700, true, 0, false), 0);
    assert_int_equal(sync_poll_timeout_ms(20, false, 30, false), 20);
    /* Overdue, or more already read than one burst handles: do not sleep. */
    assert_int_equal(sync_poll_timeout_ms(-5, false, -1, false), 0);
    assert_int_equal(sync_poll_timeout_ms(700, false, -1, true), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_end_exits),
        cmocka_unit_test(test_session_end_with_stop_requested),
        cmocka_unit_test(test_session_end_reconnects),
        cmocka_unit_test(test_start_failure),
        cmocka_unit_test(test_status_due),
        cmocka_unit_test(test_poll_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
