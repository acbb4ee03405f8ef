/*
 * test_util.c — the buffer's JSON string escaping and LSN text forms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>

#include "lsn.h"
#include "util.h"

static void test_json_str_escapes(void **state)
{
    buf b;
    const char in[] = "a\"b\\c\nd\te\x01\x1f\x7f\xc3\xa9";

    buf_init(&b);
    buf_json_str(&b, in, sizeof in - 1);
    /* Like Python's json.dumps(ensure_ascii=False): DEL and UTF-8 pass through. */
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\te\\u0001\\u001f\x7f\xc3\xa9\"");
    buf_free(&b);
}

static void test_json_str_embedded_nul_and_empty(void **state)
{
    buf b;

    buf_init(&b);
    buf_json_str(&b, "x\0y", 3);
    assert_string_equal(b.data, "\"x\\u0000y\"");
    buf_reset(&b);
    buf_json_str(&b, "", 0);
    assert_string_equal(b.data, "\"\"");
    buf_free(&b);
}

static void test_buf_growth_and_steal(void **state)
{
    buf b;
    char *s;

    buf_init(&b);
    for (int i = 0; i < 10000; i++)
        buf_printf(&b, "%d,", i % 10);
    assert_int_equal(b.len, 20000);
    assert_int_equal(strlen(b.data), 20000);
    s = buf_steal(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_memory_equal(s, "0,1,2,", 6);
    free(s);
    s = buf_steal(&b); /* empty buffer: an empty string, never NULL */
    assert_string_equal(s, "");
    free(s);
}

/* The one secret masker of connection errors (replication.c's repl_open). */
static void test_mask_secret(void **state)
{
    static const struct {
        const char *msg, *secret, *want;
    } cases[] = {
        {"password authentication failed: s3cret", "s3cret", "password authentication failed: ********"},
        {"s3cret and s3cret again", "s3cret", "******** and ******** again"},
        {"nothing to hide", "s3cret", "nothing to hide"},
        {"no secret given", NULL, "no secret given"},
        {"empty secret", "", "empty secret"},
        {"", "x", ""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = str_mask_secret(xstrdup(cases[i].msg), cases[i].secret);
        assert_string_equal(r, cases[i].want);
        free(r);
    }
}

static void test_lsn_roundtrip(void **state)
{
    char out[LSN_BUFSZ];
    lsn_t l;

    assert_string_equal(lsn_fmt(0x16B3748ULL, out), "0/16B3748");
    assert_string_equal(lsn_fmt(0xFFFFFFFF00000001ULL, out), "FFFFFFFF/1");
    assert_int_equal(lsn_parse("0/16B3748", &l), 0);
    assert_int_equal(l, 0x16B3748ULL);
    assert_int_equal(lsn_parse("1A/0000FF00", &l), 0); /* zero-padded low half (PG 19 style) */
    assert_int_equal(l, (0x1AULL << 32) | 0xFF00);
    assert_int_equal(lsn_parse("16B3748", &l), -1);
    assert_int_equal(lsn_parse("0/16B3748x", &l), -1);
    assert_int_equal(lsn_parse("", &l), -1);
}

/* A cut never leaves half a UTF-8 character behind. */
static void test_utf8_cut(void **state)
{
    static const char s[] = "a\xc3\xa9" "b\xe2\x82\xac" "c\xf0\x9f\x98\x80"; /* a é b € c 😀 */
    char out[8];

    (void)state;
    assert_int_equal(utf8_cut(s, 0), 0);
    assert_int_equal(utf8_cut(s, 1), 1);
    assert_int_equal(utf8_cut(s, 2), 1); /* inside é */
    assert_int_equal(utf8_cut(s, 3), 3);
    assert_int_equal(utf8_cut(s, 5), 4); /* inside € */
    assert_int_equal(utf8_cut(s, 6), 4);
    assert_int_equal(utf8_cut(s, 7), 7);
    assert_int_equal(utf8_cut(s, 9), 8);  /* inside 😀 */
    assert_int_equal(utf8_cut(s, 11), 8);
    assert_int_equal(utf8_cut(s, 12), 12);
    assert_int_equal(utf8_cut("\x80\x80", 2), 2); /* stray continuation bytes stand alone */
    assert_int_equal(utf8_cut("ab\xff", 3), 3);
    /* snprintf_utf8: "xxxxé€" into 8 bytes: 7 fit, € is cut whole */
    assert_int_equal(snprintf_utf8(out, sizeof out, "%s", "xxxx\xc3\xa9\xe2\x82\xac"), 9);
    assert_string_equal(out, "xxxx\xc3\xa9");
    assert_int_equal(snprintf_utf8(out, sizeof out, "%s", "xxxxx\xc3\xa9"), 7);
    assert_string_equal(out, "xxxxx\xc3\xa9");
    snprintf_utf8(out, sizeof out, "%s", "xxxxxx\xc3\xa9");
    assert_string_equal(out, "xxxxxx");
}

static void test_json_number_class(void **state)
{
    (void)state;
    assert_int_equal(json_number_class("42", 2), JSON_NUM_FIT);
    assert_int_equal(json_number_class("9223372036854775807", 19), JSON_NUM_FIT);
    assert_int_equal(json_number_class("-9223372036854775808", 20), JSON_NUM_FIT);
    assert_int_equal(json_number_class("9223372036854775808", 19), JSON_NUM_U64);
    assert_int_equal(json_number_class("18446744073709551615", 20), JSON_NUM_U64);
    assert_int_equal(json_number_class("18446744073709551616", 20), JSON_NUM_BIG_INT);
    assert_int_equal(json_number_class("-9223372036854775809", 20), JSON_NUM_BIG_INT);
    assert_int_equal(json_number_class("1.5e300", 7), JSON_NUM_FIT);
    assert_int_equal(json_number_class("1e400", 5), JSON_NUM_OVERFLOW);
    assert_int_equal(json_number_class("-1e400", 6), JSON_NUM_OVERFLOW);
    assert_int_equal(json_number_class("1e-400", 6), JSON_NUM_FIT); /* underflow reads as 0 */
    {
        char big[402];
        memset(big, '9', 400);
        assert_int_equal(json_number_class(big, 400), JSON_NUM_OVERFLOW);
        assert_int_equal(json_number_class(big, 300), JSON_NUM_BIG_INT);
    }
}

static void quote_rewrite(const char *tok, size_t len, json_num_class cls, buf *out)
{
    (void)cls;
    buf_json_str(out, tok, len);
}

static void test_json_rewrite_numbers(void **state)
{
    static const char in[] = "{\"a\":1,\"b\":\"1e400 \\\" 18446744073709551615\",\"c\":[1e400,18446744073709551615,-2]}";
    buf out;

    (void)state;
    buf_init(&out);
    assert_false(json_rewrite_numbers("{\"a\":[1,2.5,-3e10]}", 19, &out, quote_rewrite));
    assert_int_equal(out.len, 0);
    assert_true(json_rewrite_numbers(in, strlen(in), &out, quote_rewrite));
    assert_string_equal(out.data, "{\"a\":1,\"b\":\"1e400 \\\" 18446744073709551615\","
                                  "\"c\":[\"1e400\",\"18446744073709551615\",-2]}");
    buf_free(&out);
}

/* The helpers that replaced six copies (issue 12). */
static void test_first_and_one_line(void **state)
{
    char out[16];
    char *s;

    (void)state;
    assert_string_equal(str_first_line("ERROR:  boom\nDETAIL:  more\n", out, sizeof out), "ERROR:  boom");
    assert_string_equal(str_first_line("0123456789abcdefghij", out, sizeof out), "0123456789abcde");
    assert_string_equal(str_first_line(NULL, out, sizeof out), "");
    s = str_one_line("could not connect\n\tIs the server running\r\n  on that host?\n\n");
    assert_string_equal(s, "could not connect Is the server running   on that host?"); /* spaces kept */
    free(s);
    s = str_one_line(NULL);
    assert_string_equal(s, "");
    free(s);
}

static void test_quote_ident_and_hex(void **state)
{
    char *q = quote_ident("we\"ird");
    buf b;

    (void)state;
    assert_string_equal(q, "\"we\"\"ird\"");
    free(q);
    buf_init(&b);
    buf_quote_ident(&b, "public");
    buf_putc(&b, '.');
    buf_quote_ident(&b, "");
    assert_string_equal(b.data, "\"public\".\"\"");
    buf_free(&b);
    assert_int_equal(hex_digit('0'), 0);
    assert_int_equal(hex_digit('9'), 9);
    assert_int_equal(hex_digit('a'), 10);
    assert_int_equal(hex_digit('F'), 15);
    assert_int_equal(hex_digit('g'), -1);
    assert_int_equal(hex_digit(0xC3), -1);
}

/* The keyset against a model (an array of counts) over random adds and
 * deletes of keys that collide on purpose (many share a home slot), so
 * that deletions shift chains that wrap around the table's end. */
static void test_keyset_model(void **state)
{
    enum { NKEYS = 3000, STEPS = 200000 };
    static uint64_t keys[NKEYS];
    static int counts[NKEYS];
    keyset k = {0};
    uint64_t rng = 88172645463325252ULL;

    (void)state;
    for (int i = 0; i < NKEYS; i++) /* homes in a few slots near the table's end and start */
        keys[i] = ((uint64_t)(i + 1) << 32) ^ (uint64_t)((1020 + (i % 9)) ^ (i + 1));
    for (int step = 0; step < STEPS; step++) {
        int i;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        i = (int)(rng % NKEYS);
        if ((rng >> 32) % 3 != 0 || counts[i] == 0) {
            keyset_add(&k, keys[i]);
            counts[i]++;
        } else {
            keyset_del(&k, keys[i]);
            counts[i]--;
        }
        if (step % 997 == 0 || step == STEPS - 1) {
            size_t live = 0;
            for (int j = 0; j < NKEYS; j++) {
                assert_int_equal(keyset_has(&k, keys[j]), counts[j] > 0);
                live += counts[j] > 0;
            }
            assert_int_equal(k.n, live);
        }
    }
    for (int j = 0; j < NKEYS; j++) /* everything out: the set is empty */
        while (counts[j]-- > 0)
            keyset_del(&k, keys[j]);
    assert_int_equal(k.n, 0);
    for (size_t s2 = 0; s2 < k.cap; s2++)
        assert_int_equal(k.slots[2 * s2], 0);
    keyset_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyset_model),
        cmocka_unit_test(test_json_str_escapes),
        cmocka_unit_test(test_json_str_embedded_nul_and_empty),
        cmocka_unit_test(test_buf_growth_and_steal),
        cmocka_unit_test(test_lsn_roundtrip),
        cmocka_unit_test(test_utf8_cut),
        cmocka_unit_test(test_json_number_class),
        cmocka_unit_test(test_json_rewrite_numbers),
        cmocka_unit_test(test_mask_secret),
        cmocka_unit_test(test_first_and_one_line),
        cmocka_unit_test(test_quote_ident_and_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
