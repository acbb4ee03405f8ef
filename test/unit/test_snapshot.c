/*
 * test_snapshot.c — the snapshot's pure pieces: progress estimates and the
 * result-to-tuple conversion shared with sync's read-back (a PGresult built
 * with libpq's own constructors, no server).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <libpq-fe.h>

#include "snapshot.h"

static void test_plan_rows(void **state)
{
    (void)state;
    assert_true(snap_plan_rows("[{\"Plan\": {\"Node Type\": \"Seq Scan\", \"Plan Rows\": 2550, \"Plan Width\": 0}}]") ==
                2550.0);
    /* The first (outermost) node's figure. */
    assert_true(snap_plan_rows("{\"Plan Rows\": 7, \"Plans\": [{\"Plan Rows\": 9}]}") == 7.0);
    assert_true(snap_plan_rows("[{\"Plan\": {}}]") == -1.0);
    assert_true(snap_plan_rows("") == -1.0);
    assert_true(snap_plan_rows(NULL) == -1.0);
}

static void test_estimates(void **state)
{
    (void)state;
    assert_int_equal(snap_estimate_add(0, 1000.0), 1000);
    assert_int_equal(snap_estimate_add(1000, -1.0), 1000); /* never analysed, planner unknown */
    assert_int_equal(snap_estimate_add(1000, 0.0), 1000);
    assert_int_equal(snap_estimate_add(1000, 2.9), 1002);
    /* The total shown never falls below the rows done (a stale estimate). */
    assert_int_equal(snap_progress_total(5000, 1200), 5000);
    assert_int_equal(snap_progress_total(5000, 7000), 7000);
    assert_int_equal(snap_progress_total(0, 0), 0);
}

static void test_result_tuple(void **state)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[3];
    pgo_tuple tup;

    (void)state;
    memset(attrs, 0, sizeof attrs);
    attrs[0].name = "id";
    attrs[1].name = "body";
    attrs[2].name = "v";
    assert_non_null(res);
    assert_int_equal(PQsetResultAttrs(res, 3, attrs), 1);
    assert_int_equal(PQsetvalue(res, 0, 0, "1", 1), 1);
    assert_int_equal(PQsetvalue(res, 0, 1, NULL, -1), 1); /* NULL */
    assert_int_equal(PQsetvalue(res, 0, 2, "[1,2]", 5), 1);
    assert_int_equal(PQsetvalue(res, 1, 0, "2", 1), 1);
    assert_int_equal(PQsetvalue(res, 1, 1, "", 0), 1); /* empty, not NULL */
    assert_int_equal(PQsetvalue(res, 1, 2, NULL, -1), 1);

    snap_result_tuple(res, 0, &tup);
    assert_int_equal(tup.ncols, 3);
    assert_int_equal(tup.cols[0].kind, 't');
    assert_int_equal(tup.cols[0].len, 1);
    assert_memory_equal(tup.cols[0].data, "1", 1);
    assert_int_equal(tup.cols[1].kind, 'n');
    assert_int_equal(tup.cols[2].kind, 't');
    assert_int_equal(tup.cols[2].len, 5);
    assert_memory_equal(tup.cols[2].data, "[1,2]", 5);

    snap_result_tuple(res, 1, &tup);
    assert_int_equal(tup.cols[0].kind, 't');
    assert_memory_equal(tup.cols[0].data, "2", 1);
    assert_int_equal(tup.cols[1].kind, 't');
    assert_int_equal(tup.cols[1].len, 0);
    assert_int_equal(tup.cols[2].kind, 'n');
    PQclear(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_rows),
        cmocka_unit_test(test_estimates),
        cmocka_unit_test(test_result_tuple),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
