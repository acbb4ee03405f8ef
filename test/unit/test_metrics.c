/*
 * test_metrics.c — the metrics store and its renderings: /status JSON keys
 * and LSN forms, Prometheus text (names, HELP/TYPE, label escaping,
 * cumulative histogram), readiness reasons, liveness, lag definitions,
 * and concurrent writers/readers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"


static json_t *status_json(p2q_metrics *m, int64_t mono_ms, int64_t pg_us)
{
    metrics_snap s;
    buf b;
    json_error_t e;
    json_t *doc;

    buf_init(&b);
    metrics_snapshot_at(m, mono_ms, pg_us, &s);
    metrics_render_status(&s, &b);
    doc = json_loads(b.data, 0, &e);
    if (!doc)
        fail_msg("/status is not JSON (%s): %s", e.text, b.data);
    metrics_snap_free(&s);
    buf_free(&b);
    return doc;
}

static char *prometheus(p2q_metrics *m)
{
    metrics_snap s;
    buf b;

    buf_init(&b);
    metrics_snapshot(m, &s);
    metrics_render_prometheus(&s, &b);
    metrics_snap_free(&s);
    return buf_steal(&b);
}

/* SPEC §9: the backfill object, idle until backfill.c publishes one; rows per table in /metrics. */
static void test_backfill_status(void **state)
{
    p2q_metrics *m = metrics_new("s");
    json_t *doc = status_json(m, now_ms(), 0), *bf = json_object_get(doc, "backfill");
    char *text;

    assert_string_equal(json_string_value(json_object_get(bf, "state")), "idle");
    assert_int_equal(json_integer_value(json_object_get(bf, "rows_done")), 0);
    assert_true(json_is_array(json_object_get(bf, "finished")));
    json_decref(doc);
    metrics_set_backfill(m, "{\"state\":\"running\",\"id\":\"r1\",\"table\":\"public.t\",\"rows_done\":30}");
    metrics_count_backfill_rows(m, "public", "t", 30);
    metrics_count_backfill_rows(m, "public", "t", 12);
    doc = status_json(m, now_ms(), 0);
    bf = json_object_get(doc, "backfill");
    assert_string_equal(json_string_value(json_object_get(bf, "state")), "running");
    assert_int_equal(json_integer_value(json_object_get(bf, "rows_done")), 30);
    json_decref(doc);
    text = prometheus(m);
    assert_non_null(strstr(text, "pg2qdrant_backfill_rows_total{table=\"public.t\"} 42\n"));
    free(text);
    metrics_free(m);
}

static void test_status_keys_of_spec(void **state)
{
    static const char *keys[] = {"slot",           "state",          "received_lsn", "confirmed_lsn", "server_wal_end",
                                 "lag_bytes",      "lag_seconds",    "inflight_bytes", "inflight_txns", "snapshot",
                                 "changes",        "batches",        "retries",      "dead_letters",  "last_error",
                                 "uptime_seconds", "backfill", "rebuild"};
    p2q_metrics *m = metrics_new("my_slot");
    json_t *doc = status_json(m, now_ms(), 0), *snap;
    const char *k;
    json_t *v;

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_non_null(json_object_get(doc, keys[i]));
    json_object_foreach(doc, k, v)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            known |= strcmp(k, keys[i]) == 0;
        if (!known)
            fail_msg("unexpected /status key %s", k);
    }
    assert_string_equal(json_string_value(json_object_get(doc, "slot")), "my_slot");
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "starting");
    assert_string_equal(json_string_value(json_object_get(doc, "received_lsn")), "0/0");
    assert_true(json_is_null(json_object_get(doc, "last_error")));
    snap = json_object_get(doc, "snapshot");
    assert_string_equal(json_string_value(json_object_get(snap, "state")), "none");
    assert_int_equal(json_integer_value(json_object_get(snap, "rows_done")), 0);
    assert_int_equal(json_integer_value(json_object_get(snap, "rows_total_estimate")), 0);
    json_decref(doc);
    metrics_free(m);
}

static void test_status_values(void **state)
{
    p2q_metrics *m = metrics_new("s");
    json_t *doc, *t, *b;

    metrics_set_state(m, "streaming");
    metrics_set_received(m, 0x16B3748);
    metrics_set_received(m, 0x100); /* never backwards */
    metrics_set_confirmed(m, 0x1000000);
    metrics_set_server_wal_end(m, 0x2000000);
    metrics_set_inflight(m, 100, 1);
    metrics_add_inflight_bytes(m, 23);
    metrics_count_change(m, "public", "products", METRICS_INSERT, 3);
    metrics_count_change(m, "public", "products", METRICS_UPDATE, 1);
    metrics_count_change(m, "shop", "a\"b", METRICS_TRUNCATE, 1);
    metrics_count_batch(m, METRICS_BATCH_OK, 0.01);
    metrics_count_batch(m, METRICS_BATCH_RETRY, 0.5);
    metrics_count_retry(m);
    metrics_count_dead_letter(m);
    metrics_set_last_error(m, "qdrant: HTTP 503: \"down\"\n");
    metrics_set_snapshot(m, "running", 10, 1000);

    doc = status_json(m, now_ms() + 5000, 0);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "streaming");
    assert_string_equal(json_string_value(json_object_get(doc, "received_lsn")), "0/16B3748");
    assert_string_equal(json_string_value(json_object_get(doc, "confirmed_lsn")), "0/1000000");
    assert_string_equal(json_string_value(json_object_get(doc, "server_wal_end")), "0/2000000");
    assert_int_equal(json_integer_value(json_object_get(doc, "lag_bytes")), 0x1000000);
    assert_int_equal(json_integer_value(json_object_get(doc, "inflight_bytes")), 123);
    assert_int_equal(json_integer_value(json_object_get(doc, "inflight_txns")), 1);
    t = json_object_get(json_object_get(doc, "changes"), "tables");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "changes"), "total")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "public.products"), "insert")), 3);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "public.products"), "update")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "public.products"), "delete")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "shop.a\"b"), "truncate")), 1);
    b = json_object_get(doc, "batches");
    assert_int_equal(json_integer_value(json_object_get(b, "ok")), 1);
    assert_int_equal(json_integer_value(json_object_get(b, "retry")), 1);
    assert_int_equal(json_integer_value(json_object_get(b, "rejected")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "retries")), 1);
    assert_int_equal(json_integer_value(json_object_get(doc, "dead_letters")), 1);
    assert_string_equal(json_string_value(json_object_get(doc, "last_error")), "qdrant: HTTP 503: \"down\"\n");
    assert_true(json_integer_value(json_object_get(doc, "uptime_seconds")) >= 4);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "snapshot"), "state")), "running");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "snapshot"), "rows_done")), 10);
    json_decref(doc);
    metrics_free(m);
}

static void test_lsn_high_bits_and_lag_bytes_floor(void **state)
{
    p2q_metrics *m = metrics_new("s");
    json_t *doc;

    metrics_set_received(m, ((lsn_t)0xAB << 32) | 0xCDEF);
    metrics_set_confirmed(m, ((lsn_t)0xAB << 32) | 0xCDEF);
    metrics_set_server_wal_end(m, 0x10); /* stale keepalive behind confirmed */
    doc = status_json(m, now_ms(), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "received_lsn")), "AB/CDEF");
    assert_int_equal(json_integer_value(json_object_get(doc, "lag_bytes")), 0);
    json_decref(doc);
    metrics_free(m);
}

static double lag_at(p2q_metrics *m, int64_t pg_us)
{
    metrics_snap s;
    double lag;

    metrics_snapshot_at(m, now_ms(), pg_us, &s);
    lag = s.lag_seconds;
    metrics_snap_free(&s);
    return lag;
}

static void test_lag_seconds_oldest_pending(void **state)
{
    p2q_metrics *m = metrics_new("s");
    int64_t now = INT64_C(800000000000000);
    double lag;

    metrics_set_confirmed(m, 0x100);
    assert_true(lag_at(m, now) == 0); /* idle */

    metrics_txn_begin(m, 0x200, now - 2500000);
    metrics_txn_begin(m, 0x300, now - 1000000);
    lag = lag_at(m, now);
    assert_true(lag > 2.49 && lag < 2.51); /* the oldest pending one */

    metrics_set_confirmed(m, 0x280); /* the first one's commit end: it is done */
    lag = lag_at(m, now);
    assert_true(lag > 0.99 && lag < 1.01);

    metrics_txn_begin(m, 0x300, now - 1000000); /* resent after a reconnect: not added twice */
    metrics_txn_begin(m, 0x200, now - 9000000); /* confirmed already: ignored */
    metrics_set_confirmed(m, 0x380);
    assert_true(lag_at(m, now) == 0); /* caught up */

    metrics_txn_begin(m, 0x400, now + 5000000); /* the server's clock ahead of ours: never negative */
    assert_true(lag_at(m, now) == 0);
    metrics_set_confirmed(m, 0x480);

    /* many pending transactions: the FIFO grows and compacts */
    for (int i = 0; i < 1000; i++)
        metrics_txn_begin(m, 0x1000 + (lsn_t)i * 0x10, now - 1000000 * (int64_t)(1000 - i));
    lag = lag_at(m, now);
    assert_true(lag > 999.9 && lag < 1000.1);
    metrics_set_confirmed(m, 0x1000 + 500 * 0x10 - 8); /* passes i < 500 */
    lag = lag_at(m, now);
    assert_true(lag > 499.9 && lag < 500.1);
    for (int i = 1000; i < 1100; i++)
        metrics_txn_begin(m, 0x1000 + (lsn_t)i * 0x10, now);
    lag = lag_at(m, now);
    assert_true(lag > 499.9 && lag < 500.1);
    metrics_set_confirmed(m, 0x100000);
    assert_true(lag_at(m, now) == 0);
    metrics_free(m);
}

static void test_state_swap(void **state)
{
    p2q_metrics *m = metrics_new("s");
    metrics_snap s;

    metrics_swap_state(m, "streaming", "retrying"); /* starting: unchanged */
    metrics_snapshot(m, &s);
    assert_string_equal(s.state, "starting");
    metrics_snap_free(&s);
    metrics_set_state(m, "streaming");
    metrics_swap_state(m, "streaming", "retrying");
    metrics_snapshot(m, &s);
    assert_string_equal(s.state, "retrying");
    metrics_snap_free(&s);
    metrics_set_dead_letters(m, 7);
    metrics_snapshot(m, &s);
    assert_int_equal(s.dead_letters, 7);
    metrics_snap_free(&s);
    metrics_free(m);
}

static void test_prometheus_names_and_types(void **state)
{
    static const char *families[][2] = {
        {"pg2qdrant_changes_total", "counter"},
        {"pg2qdrant_batches_total", "counter"},
        {"pg2qdrant_batch_duration_seconds", "histogram"},
        {"pg2qdrant_confirmed_lsn", "gauge"},
        {"pg2qdrant_lag_bytes", "gauge"},
        {"pg2qdrant_replication_lag_seconds", "gauge"},
        {"pg2qdrant_inflight_bytes", "gauge"},
        {"pg2qdrant_qdrant_retries_total", "counter"},
        {"pg2qdrant_dead_letters_total", "counter"},
        {"pg2qdrant_up", "gauge"},
        {"pg2qdrant_backfill_rows_total", "counter"},
        {"pg2qdrant_rebuild_phase", "gauge"},
        {"pg2qdrant_rebuilds_total", "counter"},
    };
    p2q_metrics *m = metrics_new("s");
    char *text, *line, *save = NULL;
    int n_types = 0;

    metrics_count_change(m, "public", "t", METRICS_DELETE, 2);
    metrics_set_confirmed(m, ((lsn_t)1 << 32) | 5);
    text = prometheus(m);
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char want[200];
        snprintf(want, sizeof want, "# TYPE %s %s\n", families[i][0], families[i][1]);
        if (!strstr(text, want))
            fail_msg("missing '%s' in:\n%s", want, text);
        snprintf(want, sizeof want, "# HELP %s ", families[i][0]);
        assert_non_null(strstr(text, want));
    }
    assert_non_null(strstr(text, "pg2qdrant_changes_total{table=\"public.t\",op=\"delete\"} 2\n"));
    assert_non_null(strstr(text, "pg2qdrant_changes_total{table=\"public.t\",op=\"insert\"} 0\n"));
    assert_non_null(strstr(text, "pg2qdrant_batches_total{result=\"rejected\"} 0\n"));
    assert_non_null(strstr(text, "\npg2qdrant_confirmed_lsn 4294967301\n"));
    assert_non_null(strstr(text, "\npg2qdrant_up 0\n")); /* not connected */
    assert_non_null(strstr(text, "pg2qdrant_backfill_rows_total{table=\"public.t\"} 0\n"));
    /* Every sample line belongs to a family announced by TYPE; no other names. */
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        bool ok = false;
        if (strncmp(line, "# TYPE ", 7) == 0)
            n_types++;
        if (line[0] == '#')
            continue;
        for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
            ok |= strncmp(line, families[i][0], strlen(families[i][0])) == 0;
        if (!ok)
            fail_msg("sample of an unknown family: %s", line);
        assert_non_null(strchr(line, ' '));
    }
    assert_int_equal(n_types, 13);
    free(text);
    metrics_free(m);
}

static void test_prometheus_label_escaping(void **state)
{
    p2q_metrics *m = metrics_new("s");
    char *text;

    metrics_count_change(m, "we\"ird", "ta\\b\nle", METRICS_INSERT, 1);
    text = prometheus(m);
    assert_non_null(strstr(text, "pg2qdrant_changes_total{table=\"we\\\"ird.ta\\\\b\\nle\",op=\"insert\"} 1\n"));
    free(text);
    metrics_free(m);
}

static void test_prometheus_histogram_cumulative(void **state)
{
    p2q_metrics *m = metrics_new("s");
    char *text;

    metrics_count_batch(m, METRICS_BATCH_OK, 0.0005);  /* le 0.001 */
    metrics_count_batch(m, METRICS_BATCH_OK, 0.001);   /* le 0.001: bounds are inclusive */
    metrics_count_batch(m, METRICS_BATCH_OK, 0.3);     /* le 0.5 */
    metrics_count_batch(m, METRICS_BATCH_RETRY, 42.0); /* only +Inf */
    text = prometheus(m);
    assert_non_null(strstr(text, "pg2qdrant_batch_duration_seconds_bucket{le=\"0.001\"} 2\n"));
    assert_non_null(strstr(text, "pg2qdrant_batch_duration_seconds_bucket{le=\"0.25\"} 2\n"));
    assert_non_null(strstr(text, "pg2qdrant_batch_duration_seconds_bucket{le=\"0.5\"} 3\n"));
    assert_non_null(strstr(text, "pg2qdrant_batch_duration_seconds_bucket{le=\"10\"} 3\n"));
    assert_non_null(strstr(text, "pg2qdrant_batch_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "pg2qdrant_batch_duration_seconds_count 4\n"));
    assert_non_null(strstr(text, "pg2qdrant_batch_duration_seconds_sum 42.3015"));
    assert_non_null(strstr(text, "pg2qdrant_batches_total{result=\"ok\"} 3\n"));
    assert_non_null(strstr(text, "pg2qdrant_batches_total{result=\"retry\"} 1\n"));
    /* bucket lines come in increasing le order, +Inf last, before _sum and _count */
    assert_true(strstr(text, "le=\"0.001\"") < strstr(text, "le=\"0.0025\""));
    assert_true(strstr(text, "le=\"10\"") < strstr(text, "le=\"+Inf\""));
    assert_true(strstr(text, "le=\"+Inf\"") < strstr(text, "_seconds_sum"));
    free(text);
    metrics_free(m);
}

static char *readiness(p2q_metrics *m, bool *ready)
{
    metrics_snap s;
    buf b;

    buf_init(&b);
    metrics_snapshot(m, &s);
    *ready = metrics_ready(&s, &b);
    metrics_snap_free(&s);
    return buf_steal(&b);
}

static void test_readiness_reasons(void **state)
{
    p2q_metrics *m = metrics_new("s");
    bool ready;
    char *why;

    why = readiness(m, &ready);
    assert_false(ready);
    assert_string_equal(why, "postgres: not connected");
    free(why);

    metrics_set_state(m, "streaming");
    metrics_set_pg_connected(m, true);
    why = readiness(m, &ready); /* no Qdrant answer yet: nothing failed */
    assert_true(ready);
    assert_string_equal(why, "");
    free(why);

    metrics_qdrant_failed(m, "HTTP 503: Service internal error: injected");
    why = readiness(m, &ready);
    assert_false(ready);
    assert_string_equal(why, "qdrant: HTTP 503: Service internal error: injected");
    free(why);

    metrics_qdrant_ok(m);
    why = readiness(m, &ready);
    assert_true(ready);
    free(why);

    metrics_set_pg_connected(m, false);
    metrics_set_state(m, "standby");
    why = readiness(m, &ready);
    assert_false(ready);
    assert_string_equal(why, "standby");
    free(why);

    metrics_set_state(m, "streaming");
    metrics_set_snapshot(m, "running", 5, 10);
    why = readiness(m, &ready);
    assert_false(ready);
    assert_string_equal(why, "snapshot in progress");
    free(why);
    metrics_set_snapshot(m, "done", 10, 10);

    metrics_set_pg_connected(m, true);
    metrics_set_state(m, "stopping");
    why = readiness(m, &ready);
    assert_false(ready);
    assert_string_equal(why, "stopping");
    free(why);
    metrics_free(m);
}

static void test_up_follows_readiness(void **state)
{
    p2q_metrics *m = metrics_new("s");
    char *text;

    metrics_set_state(m, "streaming");
    metrics_set_pg_connected(m, true);
    text = prometheus(m);
    assert_non_null(strstr(text, "\npg2qdrant_up 1\n"));
    free(text);
    metrics_qdrant_failed(m, "no response (curl 7)");
    text = prometheus(m);
    assert_non_null(strstr(text, "\npg2qdrant_up 0\n"));
    free(text);
    metrics_free(m);
}

static void test_liveness_bound(void **state)
{
    p2q_metrics *m = metrics_new("s");
    metrics_snap s;
    int64_t t;

    metrics_heartbeat(m);
    t = now_ms();
    metrics_snapshot_at(m, t + 100, 0, &s);
    assert_true(metrics_live(&s, 30000));
    metrics_snap_free(&s);
    metrics_snapshot_at(m, t + 30001 + 10, 0, &s);
    assert_false(metrics_live(&s, 30000));
    assert_true(s.heartbeat_age_ms > 30000);
    metrics_snap_free(&s);
    metrics_free(m);
}

static void test_null_store_is_a_no_op(void **state)
{
    metrics_heartbeat(NULL);
    metrics_set_state(NULL, "streaming");
    metrics_set_pg_connected(NULL, true);
    metrics_qdrant_ok(NULL);
    metrics_qdrant_failed(NULL, "x");
    metrics_set_last_error(NULL, "x");
    metrics_set_received(NULL, 1);
    metrics_set_confirmed(NULL, 1);
    metrics_set_server_wal_end(NULL, 1);
    metrics_txn_begin(NULL, 1, 1);
    metrics_swap_state(NULL, "a", "b");
    metrics_set_dead_letters(NULL, 1);
    metrics_set_inflight(NULL, 1, 1);
    metrics_add_inflight_bytes(NULL, 1);
    metrics_count_change(NULL, "a", "b", METRICS_INSERT, 1);
    metrics_count_batch(NULL, METRICS_BATCH_OK, 1);
    metrics_count_retry(NULL);
    metrics_count_dead_letter(NULL);
    metrics_set_snapshot(NULL, "x", 1, 1);
    metrics_free(NULL);
}

static void test_long_texts_truncated(void **state)
{
    p2q_metrics *m = metrics_new("s");
    char big[2000];
    metrics_snap s;

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    metrics_set_state(m, big);
    metrics_qdrant_failed(m, big);
    metrics_set_last_error(m, big);
    metrics_snapshot(m, &s);
    assert_int_equal(strlen(s.state), METRICS_STATE_LEN - 1);
    assert_int_equal(strlen(s.qdrant_reason), METRICS_TEXT_LEN - 1);
    assert_int_equal(strlen(s.last_error), METRICS_TEXT_LEN - 1);
    metrics_snap_free(&s);
    metrics_free(m);
}

#define WRITES 20000

static void *writer(void *arg)
{
    p2q_metrics *m = arg;
    char name[16];

    for (int i = 0; i < WRITES; i++) {
        snprintf(name, sizeof name, "t%d", i % 20);
        metrics_count_change(m, "public", name, METRICS_INSERT, 1);
        metrics_count_batch(m, METRICS_BATCH_OK, 0.002);
        metrics_set_received(m, (lsn_t)i);
        metrics_heartbeat(m);
    }
    return NULL;
}

/* One writer (the sync thread) against a reader rendering everything. */
static void test_concurrent_writer_and_reader(void **state)
{
    p2q_metrics *m = metrics_new("s");
    pthread_t th;
    metrics_snap s;
    buf b;
    char want[64];

    buf_init(&b);
    assert_int_equal(pthread_create(&th, NULL, writer, m), 0);
    for (int i = 0; i < 200; i++) {
        metrics_snapshot(m, &s);
        buf_reset(&b);
        metrics_render_status(&s, &b);
        metrics_render_prometheus(&s, &b);
        assert_true(s.changes_total <= WRITES);
        metrics_snap_free(&s);
    }
    pthread_join(th, NULL);
    metrics_snapshot(m, &s);
    assert_int_equal(s.changes_total, WRITES);
    assert_int_equal(s.n_tables, 20);
    assert_int_equal(s.duration_count, WRITES);
    buf_reset(&b);
    metrics_render_prometheus(&s, &b);
    snprintf(want, sizeof want, "pg2qdrant_batches_total{result=\"ok\"} %d\n", WRITES);
    assert_non_null(strstr(b.data, want));
    metrics_snap_free(&s);
    buf_free(&b);
    metrics_free(m);
}

static void test_names(void **state)
{
    assert_string_equal(metrics_op_name(METRICS_TRUNCATE), "truncate");
    assert_string_equal(metrics_result_name(METRICS_BATCH_REJECTED), "rejected");
    assert_string_equal(metrics_op_name((metrics_op)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_keys_of_spec),
        cmocka_unit_test(test_status_values),
        cmocka_unit_test(test_backfill_status),
        cmocka_unit_test(test_lsn_high_bits_and_lag_bytes_floor),
        cmocka_unit_test(test_lag_seconds_oldest_pending),
        cmocka_unit_test(test_state_swap),
        cmocka_unit_test(test_prometheus_names_and_types),
        cmocka_unit_test(test_prometheus_label_escaping),
        cmocka_unit_test(test_prometheus_histogram_cumulative),
        cmocka_unit_test(test_readiness_reasons),
        cmocka_unit_test(test_up_follows_readiness),
        cmocka_unit_test(test_liveness_bound),
        cmocka_unit_test(test_null_store_is_a_no_op),
        cmocka_unit_test(test_long_texts_truncated),
        cmocka_unit_test(test_concurrent_writer_and_reader),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
