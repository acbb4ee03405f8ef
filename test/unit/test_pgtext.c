/*
 * test_pgtext.c — Postgres text forms to JSON: the payload rules and the
 * vector forms of SPEC §3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pgtext.h"
#include "pgtypes.h"

/* The JSON of text under the rule of a column of type typid. */
static void assert_json_udt(uint32_t typid, const char *udt, const char *text, const char *want)
{
    buf b;

    buf_init(&b);
    buf_puts(&b, "prefix:"); /* output is appended */
    pgtext_to_json(&b, pgtext_rule(typid, udt), text, strlen(text));
    assert_string_equal(b.data + 7, want);
    assert_memory_equal(b.data, "prefix:", 7);
    buf_free(&b);
}

static void assert_json(uint32_t typid, const char *text, const char *want)
{
    assert_json_udt(typid, NULL, text, want);
}

static void test_bool(void **state)
{
    (void)state;
    assert_json(BOOLOID, "t", "true");
    assert_json(BOOLOID, "f", "false");
}

static void test_integers(void **state)
{
    (void)state;
    assert_json(INT2OID, "-32768", "-32768");
    assert_json(INT4OID, "0", "0");
    assert_json(INT8OID, "9223372036854775807", "9223372036854775807");
    assert_json(OIDOID, "4294967295", "4294967295");
}

static void test_floats(void **state)
{
    (void)state;
    assert_json(FLOAT8OID, "1.5", "1.5");
    assert_json(FLOAT8OID, "-3e-05", "-3e-05");
    assert_json(FLOAT8OID, "1e+100", "1e+100");
    assert_json(FLOAT4OID, "0.1", "0.1");
    assert_json(FLOAT8OID, "-0", "-0");
    assert_json(FLOAT8OID, "NaN", "\"NaN\"");
    assert_json(FLOAT8OID, "Infinity", "\"Infinity\"");
    assert_json(FLOAT4OID, "-Infinity", "\"-Infinity\"");
}

static void test_numeric(void **state)
{
    char big[401], want[404];

    (void)state;
    assert_json(NUMERICOID, "123.4500", "123.4500");
    assert_json(NUMERICOID, "-0.000001", "-0.000001");
    assert_json(NUMERICOID, "NaN", "\"NaN\"");
    assert_json(NUMERICOID, "Infinity", "\"Infinity\"");
    assert_json(NUMERICOID, "-Infinity", "\"-Infinity\"");
    /* beyond double range (Qdrant could not parse it as a number): string */
    memset(big, '9', 400);
    big[400] = '\0';
    snprintf(want, sizeof(want), "\"%s\"", big);
    assert_json(NUMERICOID, big, want);
    assert_json(NUMERICOID, big + 92, big + 92); /* 308 digits still fit */
}

static void test_json_embedded(void **state)
{
    (void)state;
    assert_json(JSONBOID, "{\"a\": [1, {\"b\": null}], \"c\": \"x\\\"y\"}",
                "{\"a\": [1, {\"b\": null}], \"c\": \"x\\\"y\"}");
    assert_json(JSONOID, "[1,\n 2]", "[1,\n 2]");
    assert_json(JSONBOID, "\"just a string\"", "\"just a string\"");
    assert_json(JSONBOID, "42", "42");
    assert_json(JSONBOID, "null", "null");
    /* numbers Qdrant cannot parse (beyond double range) become strings, as
     * a numeric's do; u64 and wide integers within range stay numbers */
    assert_json(JSONOID, "{\"a\": 1e400, \"b\": [-1E+999, 2], \"c\": \"1e400\"}",
                "{\"a\": \"1e400\", \"b\": [\"-1E+999\", 2], \"c\": \"1e400\"}");
    assert_json(JSONBOID, "{\"u\": 18446744073709551615, \"w\": 100000000000000000000000}",
                "{\"u\": 18446744073709551615, \"w\": 100000000000000000000000}");
    {
        char in[420], want[424];
        memset(in, 0, sizeof in);
        in[0] = '[';
        memset(in + 1, '9', 400);
        in[401] = ']';
        snprintf(want, sizeof want, "[\"%.400s\"]", in + 1);
        assert_json(JSONBOID, in, want);
    }
}

static void test_strings(void **state)
{
    (void)state;
    assert_json(TEXTOID, "plain", "\"plain\"");
    assert_json(TEXTOID, "", "\"\"");
    assert_json(TEXTOID, "say \"hi\"\\\n\t\x01", "\"say \\\"hi\\\"\\\\\\n\\t\\u0001\"");
    assert_json(VARCHAROID, "caf\xc3\xa9", "\"caf\xc3\xa9\"");
    assert_json(UUIDOID, "550e8400-e29b-41d4-a716-446655440000", "\"550e8400-e29b-41d4-a716-446655440000\"");
    assert_json(869 /* inet */, "10.0.0.1/8", "\"10.0.0.1/8\"");
    assert_json(INTERVALOID, "1 day 02:03:04", "\"1 day 02:03:04\"");
    assert_json(TIMEOID, "10:30:00.25", "\"10:30:00.25\"");
    assert_json(790 /* money */, "$1,000.00", "\"$1,000.00\"");
    assert_json_udt(16500, "mood", "happy", "\"happy\"");
    /* pgvector columns that are payload, not vectors, stay strings */
    assert_json_udt(16400, "vector", "[1,2,3]", "\"[1,2,3]\"");
}

static void test_date(void **state)
{
    (void)state;
    assert_json(DATEOID, "2024-01-15", "\"2024-01-15\"");
    assert_json(DATEOID, "0044-03-15 BC", "\"0044-03-15 BC\"");
    assert_json(DATEOID, "infinity", "\"infinity\"");
    assert_json(DATEOID, "-infinity", "\"-infinity\"");
}

static void test_timestamp(void **state)
{
    (void)state;
    assert_json(TIMESTAMPOID, "2024-01-15 10:30:00", "\"2024-01-15T10:30:00\"");
    assert_json(TIMESTAMPOID, "2024-01-15 10:30:00.123456", "\"2024-01-15T10:30:00.123456\"");
    assert_json(TIMESTAMPOID, "2024-01-15 10:30:00.5", "\"2024-01-15T10:30:00.5\"");
    assert_json(TIMESTAMPOID, "12345-06-07 08:09:10", "\"12345-06-07T08:09:10\"");
    assert_json(TIMESTAMPOID, "0044-03-15 12:00:00 BC", "\"0044-03-15 12:00:00 BC\"");
    assert_json(TIMESTAMPOID, "infinity", "\"infinity\"");
    assert_json(TIMESTAMPOID, "-infinity", "\"-infinity\"");
}

static void test_timestamptz(void **state)
{
    (void)state;
    assert_json(TIMESTAMPTZOID, "2024-01-15 10:30:00.5+00", "\"2024-01-15T10:30:00.5Z\"");
    assert_json(TIMESTAMPTZOID, "2024-01-15 10:30:00+00", "\"2024-01-15T10:30:00Z\"");
    assert_json(TIMESTAMPTZOID, "2024-01-15 10:30:00+05:30", "\"2024-01-15T05:00:00Z\"");
    assert_json(TIMESTAMPTZOID, "2024-01-01 01:00:00-03", "\"2024-01-01T04:00:00Z\"");
    /* day, month, leap-year and year rollovers */
    assert_json(TIMESTAMPTZOID, "2024-03-01 02:00:00+03", "\"2024-02-29T23:00:00Z\"");
    assert_json(TIMESTAMPTZOID, "2023-03-01 02:00:00+03", "\"2023-02-28T23:00:00Z\"");
    assert_json(TIMESTAMPTZOID, "2023-12-31 22:00:00.123456-05", "\"2024-01-01T03:00:00.123456Z\"");
    /* local mean time offsets carry seconds */
    assert_json(TIMESTAMPTZOID, "1900-01-01 00:00:00+00:53:28", "\"1899-12-31T23:06:32Z\"");
    assert_json(TIMESTAMPTZOID, "infinity", "\"infinity\"");
    assert_json(TIMESTAMPTZOID, "-infinity", "\"-infinity\"");
    assert_json(TIMESTAMPTZOID, "0044-03-15 12:00:00+00 BC", "\"0044-03-15 12:00:00+00 BC\"");
    /* converting to UTC would cross into BC: keep the text */
    assert_json(TIMESTAMPTZOID, "0001-01-01 00:30:00+01", "\"0001-01-01 00:30:00+01\"");
}

static void test_bytea(void **state)
{
    (void)state;
    assert_json(BYTEAOID, "\\x", "\"\"");
    assert_json(BYTEAOID, "\\x00ff10", "\"AP8Q\"");
    assert_json(BYTEAOID, "\\xDEADBEEF", "\"3q2+7w==\"");
    assert_json(BYTEAOID, "\\xfb", "\"+w==\"");
    assert_json(BYTEAOID, "\\x68656c6c6f", "\"aGVsbG8=\"");
    /* bytea_output = escape is decoded too */
    assert_json(BYTEAOID, "a\\\\b\\001\\377", "\"YVxiAf8=\"");
    /* not a bytea text form: kept as a string */
    assert_json(BYTEAOID, "\\x0", "\"\\\\x0\"");
}

static void test_arrays_scalar_elements(void **state)
{
    (void)state;
    assert_json(INT4ARRAYOID, "{1,2,NULL,-3}", "[1,2,null,-3]");
    assert_json(INT8ARRAYOID, "{}", "[]");
    assert_json(BOOLARRAYOID, "{t,f,NULL}", "[true,false,null]");
    assert_json(FLOAT8ARRAYOID, "{1.5,NaN,-Infinity,1e+100}", "[1.5,\"NaN\",\"-Infinity\",1e+100]");
    assert_json(NUMERICARRAYOID, "{1.50,NaN}", "[1.50,\"NaN\"]");
    assert_json(1028 /* oid[] */, "{1,2}", "[1,2]");
}

static void test_arrays_quoting(void **state)
{
    (void)state;
    assert_json(TEXTARRAYOID, "{\"a b\",\"with \\\"quote\\\"\",\"back\\\\slash\",NULL,\"NULL\",plain,null}",
                "[\"a b\",\"with \\\"quote\\\"\",\"back\\\\slash\",null,\"NULL\",\"plain\",null]");
    assert_json(TEXTARRAYOID, "{\"\",\"{}\",\"a,b\"}", "[\"\",\"{}\",\"a,b\"]");
    /* escapes in unquoted elements, white space around elements */
    assert_json(TEXTARRAYOID, "{a\\,b, x ,\\NULL}", "[\"a,b\",\"x\",\"NULL\"]");
    assert_json(VARCHARARRAYOID, "{caf\xc3\xa9,\"\xe2\x82\xac 5\"}", "[\"caf\xc3\xa9\",\"\xe2\x82\xac 5\"]");
}

static void test_arrays_nested_and_decorated(void **state)
{
    (void)state;
    assert_json(INT4ARRAYOID, "{{1,2},{3,4}}", "[[1,2],[3,4]]");
    assert_json(TEXTARRAYOID, "{{{a}},{{NULL}}}", "[[[\"a\"]],[[null]]]");
    assert_json(INT4ARRAYOID, "[0:1]={5,6}", "[5,6]");
    assert_json(INT4ARRAYOID, "[1:2][-1:0]={{1,2},{3,4}}", "[[1,2],[3,4]]");
    assert_json(INT4ARRAYOID, "{ {1 , 2} , {3,4} }", "[[1,2],[3,4]]");
}

static void test_arrays_typed_elements(void **state)
{
    (void)state;
    assert_json(TIMESTAMPTZARRAYOID, "{\"2024-01-15 10:30:00+00\",\"2024-01-15 12:00:00.5+02\",infinity}",
                "[\"2024-01-15T10:30:00Z\",\"2024-01-15T10:00:00.5Z\",\"infinity\"]");
    assert_json(TIMESTAMPARRAYOID, "{\"2024-01-15 10:30:00\"}", "[\"2024-01-15T10:30:00\"]");
    assert_json(DATEARRAYOID, "{2024-01-15,NULL}", "[\"2024-01-15\",null]");
    assert_json(BYTEAARRAYOID, "{\"\\\\x0001\",NULL,\"\\\\x\"}", "[\"AAE=\",null,\"\"]");
    assert_json(JSONBARRAYOID, "{\"{\\\"a\\\": 1}\",\"[1, 2]\",NULL}", "[{\"a\": 1},[1, 2],null]");
    assert_json(UUIDARRAYOID, "{550e8400-e29b-41d4-a716-446655440000}", "[\"550e8400-e29b-41d4-a716-446655440000\"]");
    /* arrays of user-defined types (Type message name "_mood") */
    assert_json_udt(16501, "_mood", "{happy,\"very sad\"}", "[\"happy\",\"very sad\"]");
}

static void test_arrays_not_parsed(void **state)
{
    (void)state;
    /* box[] uses ';' between elements: kept as the text form */
    assert_json(1020, "{(1,1),(0,0);(2,2),(1,1)}", "\"{(1,1),(0,0);(2,2),(1,1)}\"");
    /* malformed literals fall back to the string, no partial output */
    assert_json(INT4ARRAYOID, "{1,2", "\"{1,2\"");
    assert_json(INT4ARRAYOID, "{1,,2}", "\"{1,,2}\"");
    assert_json(TEXTARRAYOID, "{\"open}", "\"{\\\"open}\"");
    assert_json(INT4ARRAYOID, "{1}x", "\"{1}x\"");
    assert_json(INT4ARRAYOID, "{{{{{{{1}}}}}}}", "\"{{{{{{{1}}}}}}}\"");
}

/* ---- vectors ----------------------------------------------------------- */

typedef int (*vec_fn)(buf *, const char *, size_t, char *, size_t);

static void assert_vec(vec_fn fn, const char *text, const char *want)
{
    char err[128] = "";
    buf b;

    buf_init(&b);
    buf_puts(&b, "p:");
    assert_int_equal(fn(&b, text, strlen(text), err, sizeof(err)), 0);
    assert_string_equal(b.data + 2, want);
    buf_free(&b);
}

static void assert_vec_err(vec_fn fn, const char *text, const char *want_err)
{
    char err[128] = "";
    buf b;

    buf_init(&b);
    buf_puts(&b, "p:");
    assert_int_equal(fn(&b, text, strlen(text), err, sizeof(err)), -1);
    assert_string_equal(b.data, "p:"); /* nothing appended */
    assert_string_equal(err, want_err);
    buf_free(&b);
}

static void test_dense_array(void **state)
{
    (void)state;
    assert_vec(pgtext_dense_array, "{1.5,2,-3e-05}", "[1.5,2,-3e-05]");
    assert_vec(pgtext_dense_array, "{0.10000000149011612}", "[0.10000000149011612]");
    assert_vec(pgtext_dense_array, "[1:3]={1,2,3}", "[1,2,3]");
    assert_vec(pgtext_dense_array, "{1.000,-2.5}", "[1.000,-2.5]");
    assert_vec(pgtext_dense_array, "{1e+38,-2E-45,0}", "[1e+38,-2E-45,0]");
}

static void test_dense_array_rejected(void **state)
{
    (void)state;
    assert_vec_err(pgtext_dense_array, "{}", "empty vector");
    assert_vec_err(pgtext_dense_array, "{1,NULL,3}", "NULL element at position 2");
    assert_vec_err(pgtext_dense_array, "{{1,2},{3,4}}", "nested array at position 1: not one-dimensional");
    assert_vec_err(pgtext_dense_array, "{1,NaN}", "element 2 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{Infinity}", "element 1 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{1,-Infinity}", "element 2 is not a finite number");
    assert_vec_err(pgtext_dense_array, "[1,2]", "not an array literal");
    /* what the one-pass copy must not let through */
    assert_vec_err(pgtext_dense_array, "{1,}", "element 2 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{1 ,2}", "element 1 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{01,2}", "element 1 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{1,2.}", "element 2 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{1,\"2\"}", "element 2 is not a finite number");
    /* the one-pass automaton (is_json_number_list) against the element path */
    assert_vec(pgtext_dense_array, "{-0,0.5e10,1E-5,10,-10.25E+3}", "[-0,0.5e10,1E-5,10,-10.25E+3]");
    assert_vec_err(pgtext_dense_array, "{1e,2}", "element 1 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{.5}", "element 1 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{1,,2}", "element 2 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{--1}", "element 1 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{2,1e+}", "element 2 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{-}", "element 1 is not a finite number");
    assert_vec_err(pgtext_dense_array, "{1,-0.}", "element 2 is not a finite number");
}

static void test_pgvector(void **state)
{
    (void)state;
    assert_vec(pgtext_pgvector, "[1,2.5,-3e-05]", "[1,2.5,-3e-05]");
    assert_vec(pgtext_pgvector, "[0.1]", "[0.1]");
    assert_vec_err(pgtext_pgvector, "[]", "empty vector");
    assert_vec_err(pgtext_pgvector, "[1,x]", "element 2 is not a finite number");
    assert_vec_err(pgtext_pgvector, "[1,,2]", "element 2 is not a finite number");
    assert_vec_err(pgtext_pgvector, "{1,2}", "not a vector literal [...]");
}

static void test_sparsevec(void **state)
{
    (void)state;
    assert_vec(pgtext_sparsevec, "{1:0.5,7:0.2}/10", "{\"indices\":[0,6],\"values\":[0.5,0.2]}");
    assert_vec(pgtext_sparsevec, "{10:-1e-05}/10", "{\"indices\":[9],\"values\":[-1e-05]}");
    assert_vec(pgtext_sparsevec, "{}/10", "{\"indices\":[],\"values\":[]}");
    assert_vec_err(pgtext_sparsevec, "{0:1}/10", "sparsevec index 0 out of range 1..10");
    assert_vec_err(pgtext_sparsevec, "{1:1,11:1}/10", "sparsevec index 11 out of range 1..10");
    assert_vec_err(pgtext_sparsevec, "{1:NaN}/3", "sparsevec element 1 is not index:number");
    assert_vec_err(pgtext_sparsevec, "{1:1,}/3", "sparsevec element 1 is not index:number");
    assert_vec_err(pgtext_sparsevec, "{1:1}", "not a sparsevec literal {i:v,...}/dim");
    assert_vec_err(pgtext_sparsevec, "[1,2]/2", "not a sparsevec literal {i:v,...}/dim");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_json_embedded),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_timestamptz),
        cmocka_unit_test(test_bytea),
        cmocka_unit_test(test_arrays_scalar_elements),
        cmocka_unit_test(test_arrays_quoting),
        cmocka_unit_test(test_arrays_nested_and_decorated),
        cmocka_unit_test(test_arrays_typed_elements),
        cmocka_unit_test(test_arrays_not_parsed),
        cmocka_unit_test(test_dense_array),
        cmocka_unit_test(test_dense_array_rejected),
        cmocka_unit_test(test_pgvector),
        cmocka_unit_test(test_sparsevec),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
