/*
 * test_check_lag.c — the status rules and the output formats of check-lag
 * (lag_evaluate, lag_format, lag_size_pretty), including the PostgreSQL 17
 * columns (inactive_since, invalidation_reason) and PostgreSQL 16's
 * conflicting that the PostgreSQL 15 integration test cannot reach.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check_lag.h"

static const lag_limits DEFAULTS = {LAG_DEFAULT_WARN_BYTES, LAG_DEFAULT_CRITICAL_BYTES, -1, -1};

static lag_slot healthy(void)
{
    lag_slot s;

    memset(&s, 0, sizeof s);
    s.exists = true;
    strcpy(s.slot_type, "logical");
    strcpy(s.plugin, "pgoutput");
    strcpy(s.database, "shop");
    strcpy(s.wal_status, "reserved");
    s.active = true;
    s.active_pid = 4242;
    s.have_current = s.have_restart = s.have_confirmed = true;
    s.current_lsn = 0x3000000;
    s.restart_lsn = 0x1000000;
    s.confirmed_flush_lsn = 0x2000000;
    s.have_lag = s.have_retained = true;
    s.lag_bytes = 0x1000000;
    s.retained_bytes = 0x2000000;
    return s;
}

/* Evaluates s; returns the status and leaves the text in *text (caller frees). */
static lag_status eval(const lag_slot *s, const lag_limits *lim, char **text)
{
    buf b;
    lag_status st;

    buf_init(&b);
    st = lag_evaluate("p2q", s, lim, &b);
    *text = buf_steal(&b);
    return st;
}

static void expect(const lag_slot *s, const lag_limits *lim, lag_status want, const char *needle)
{
    char *text;
    lag_status st = eval(s, lim, &text);

    if (st != want || (needle && !strstr(text, needle)))
        fail_msg("status %s, want %s; text: %s (want '%s')", lag_status_name(st), lag_status_name(want), text,
                 needle ? needle : "");
    free(text);
}

static void test_backlog_thresholds(void **state)
{
    lag_slot s = healthy();
    lag_limits lim = DEFAULTS;

    expect(&s, &lim, LAG_OK, "backlog 16 MB, WAL retained 32 MB, active (pid 4242), wal_status reserved");
    lim.warn_bytes = 0x1000000; /* equal: not above */
    expect(&s, &lim, LAG_OK, NULL);
    lim.warn_bytes = 0x1000000 - 1;
    expect(&s, &lim, LAG_WARNING, "exceeds warning");
    lim.critical_bytes = 1024;
    expect(&s, &lim, LAG_CRITICAL, "backlog 16 MB exceeds critical 1024 bytes");
}

static void test_slot_problems(void **state)
{
    lag_slot s = healthy();

    s.exists = false;
    expect(&s, &DEFAULTS, LAG_CRITICAL, "slot \"p2q\" does not exist");
    s = healthy();
    strcpy(s.plugin, "wal2json");
    expect(&s, &DEFAULTS, LAG_CRITICAL, "uses plugin wal2json, pg2qdrant needs pgoutput");
    s = healthy();
    strcpy(s.slot_type, "physical");
    s.plugin[0] = '\0';
    expect(&s, &DEFAULTS, LAG_CRITICAL, "is a physical slot");
    s = healthy();
    strcpy(s.wal_status, "extended");
    expect(&s, &DEFAULTS, LAG_OK, "wal_status extended");
    strcpy(s.wal_status, "unreserved");
    expect(&s, &DEFAULTS, LAG_CRITICAL, "wal_status unreserved");
    strcpy(s.wal_status, "lost");
    expect(&s, &DEFAULTS, LAG_CRITICAL, "wal_status lost");
    s = healthy();
    strcpy(s.invalidation_reason, "rows_removed"); /* PG17 */
    expect(&s, &DEFAULTS, LAG_CRITICAL, "slot invalidated (rows_removed)");
    s = healthy();
    s.conflicting = true; /* PG16 */
    expect(&s, &DEFAULTS, LAG_CRITICAL, "conflicting with recovery");
}

static void test_inactive(void **state)
{
    lag_slot s = healthy();
    lag_limits lim = DEFAULTS;

    s.active = false;
    s.active_pid = 0;
    /* PG15/16: no inactive_since column. */
    expect(&s, &lim, LAG_OK, ", inactive, wal_status");
    lim.inactive_critical_ms = 1000;
    expect(&s, &lim, LAG_WARNING, "unknown time (PostgreSQL before 17 has no inactive_since)");
    /* PG17: the duration is known. */
    s.has_inactive_since_col = true;
    s.have_inactive_ms = true;
    s.inactive_ms = 90 * 60 * 1000;
    strcpy(s.inactive_since, "2026-11-30T10:00:00+00:00");
    lim.inactive_warn_ms = 30 * 60 * 1000;
    lim.inactive_critical_ms = 2 * 3600 * 1000;
    expect(&s, &lim, LAG_WARNING, "no process holds the slot for 1 h 30 min (warning 30 min)");
    lim.inactive_critical_ms = 3600 * 1000;
    expect(&s, &lim, LAG_CRITICAL, "(critical 1 h 0 min)");
    lim.inactive_warn_ms = lim.inactive_critical_ms = -1;
    expect(&s, &lim, LAG_OK, "inactive for 1 h 30 min");
    /* Thresholds never apply to an active slot. */
    s = healthy();
    lim.inactive_warn_ms = lim.inactive_critical_ms = 0;
    expect(&s, &lim, LAG_OK, NULL);
}

static void test_nagios_line(void **state)
{
    lag_slot s = healthy();
    lag_limits lim = DEFAULTS;
    buf out;

    buf_init(&out);
    s.have_safe_wal_size = true;
    s.safe_wal_size = 1048576;
    lag_format(LAG_OUT_NAGIOS, "p2q", LAG_OK, &s, &lim, "all | fine\nreally", &out);
    assert_string_equal(out.data, "PG2QDRANT SLOT OK - all / fine really | lag_bytes=16777216B;1073741824;4294967296 "
                                  "retained_bytes=33554432B safe_wal_size=1048576B active=1\n");
    buf_reset(&out);
    lag_format(LAG_OUT_NAGIOS, "p2q", LAG_UNKNOWN, NULL, &lim, "cannot connect", &out);
    assert_string_equal(out.data, "PG2QDRANT SLOT UNKNOWN - cannot connect | lag_bytes=U;1073741824;4294967296 "
                                  "retained_bytes=U\n");
    buf_reset(&out);
    s.active = false;
    s.have_inactive_ms = true;
    s.inactive_ms = 125000;
    lim.inactive_critical_ms = 600000;
    lag_format(LAG_OUT_NAGIOS, "p2q", LAG_OK, &s, &lim, "x", &out);
    assert_non_null(strstr(out.data, " active=0 inactive_seconds=125s;;600\n"));
    buf_free(&out);
}

static void test_json_and_prometheus(void **state)
{
    lag_slot s = healthy();
    buf out;
    json_t *doc;
    json_error_t jerr;

    buf_init(&out);
    strcpy(s.slot_type, "logical");
    lag_format(LAG_OUT_JSON, "p\"2q", LAG_WARNING, &s, &DEFAULTS, "t", &out);
    doc = json_loads(out.data, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "WARNING");
    assert_string_equal(json_string_value(json_object_get(doc, "slot")), "p\"2q");
    assert_int_equal(json_integer_value(json_object_get(doc, "lag_bytes")), 0x1000000);
    assert_int_equal(json_integer_value(json_object_get(doc, "active_pid")), 4242);
    assert_string_equal(json_string_value(json_object_get(doc, "restart_lsn")), "0/1000000");
    assert_true(json_is_null(json_object_get(doc, "safe_wal_size")));
    assert_true(json_is_null(json_object_get(doc, "inactive_warn_seconds")));
    json_decref(doc);

    buf_reset(&out);
    lag_format(LAG_OUT_PROMETHEUS, "p\"2q\\x", LAG_CRITICAL, &s, &DEFAULTS, "t", &out);
    assert_non_null(strstr(out.data, "# TYPE pg2qdrant_slot_status gauge\npg2qdrant_slot_status{slot=\"p\\\"2q\\\\x\"} 2\n"));
    assert_non_null(strstr(out.data, "pg2qdrant_slot_lag_bytes{slot=\"p\\\"2q\\\\x\"} 16777216\n"));
    assert_non_null(strstr(out.data, "pg2qdrant_slot_active{slot=\"p\\\"2q\\\\x\"} 1\n"));
    buf_free(&out);
}

static void test_size_pretty(void **state)
{
    char b[32];

    lag_size_pretty(0, b);
    assert_string_equal(b, "0 bytes");
    lag_size_pretty(10239, b);
    assert_string_equal(b, "10239 bytes");
    lag_size_pretty(10240, b);
    assert_string_equal(b, "10 kB");
    lag_size_pretty(INT64_C(1) << 30, b);
    assert_string_equal(b, "1024 MB");
    lag_size_pretty(INT64_C(40) << 30, b);
    assert_string_equal(b, "40 GB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backlog_thresholds), cmocka_unit_test(test_slot_problems),
        cmocka_unit_test(test_inactive),           cmocka_unit_test(test_nagios_line),
        cmocka_unit_test(test_json_and_prometheus), cmocka_unit_test(test_size_pretty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
