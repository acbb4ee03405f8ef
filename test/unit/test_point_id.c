/*
 * test_point_id.c — SHA-1, UUIDv5 and the point id rule of SPEC §3.
 * Expected UUIDs come from Python: uuid.uuid5(uuid.NAMESPACE_URL, name).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgtypes.h"
#include "row_to_point.h"

static const unsigned char NS_URL[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                         0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};

static void assert_sha1(const void *data, size_t len, const char *hex)
{
    unsigned char d[20];
    char got[41];

    sha1(data, len, d);
    for (int i = 0; i < 20; i++)
        snprintf(got + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(got, hex);
}

static void test_sha1_fips_vectors(void **state)
{
    (void)state;
    assert_sha1("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_sha1("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
                "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

static void test_sha1_million_a(void **state)
{
    char *a = malloc(1000000);

    (void)state;
    memset(a, 'a', 1000000);
    assert_sha1(a, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(a);
}

/* Padding edge cases around the 64-byte block (hashlib.sha1(b'x'*n)). */
static void test_sha1_block_boundaries(void **state)
{
    static const struct {
        size_t n;
        const char *hex;
    } cases[] = {
        {55, "cef734ba81a024479e09eb5a75b6ddae62e6abf1"},  {56, "901305367c259952f4e7af8323f480d59f81335b"},
        {63, "0ddc4e0cccd9a12850deb5abb0853a4425559fec"},  {64, "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163"},
        {65, "78c741ddc482e4cdf8c474a0876347a0905b6233"},  {119, "4300320394f7ee239bcdce7d3b8bcee173a0cd5c"},
        {120, "ceb2821639c4b6dcb10bce0e522ca2e608ce056d"},
    };
    char x[128];

    (void)state;
    memset(x, 'x', sizeof(x));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_sha1(x, cases[i].n, cases[i].hex);
}

static void test_uuid5_matches_python(void **state)
{
    char u[37];

    (void)state;
    uuid5(NS_URL, "A-1", 3, u);
    assert_string_equal(u, "d459136f-fb9b-5aa6-b63d-2dc2a2a1d543");
    uuid5(NS_URL, "", 0, u);
    assert_string_equal(u, "1b4db7eb-4057-5ddf-91e0-36dec72071f5");
    uuid5(NS_URL, "h\xc3\xa9llo", 6, u);
    assert_string_equal(u, "102d6fae-a0b0-5a7a-b980-5e8cfb1690db");
}

/* map_point_id for one key column of type typid with text form text. */
static void assert_id1(uint32_t typid, const char *text, bool force, const char *want)
{
    const char *texts[1] = {text};
    buf b;

    buf_init(&b);
    map_point_id(1, &typid, texts, force, &b);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_id_non_negative_integers(void **state)
{
    (void)state;
    assert_id1(INT4OID, "42", false, "42");
    assert_id1(INT2OID, "0", false, "0");
    assert_id1(INT8OID, "9223372036854775807", false, "9223372036854775807");
}

static void test_id_negative_integer_is_uuid5(void **state)
{
    (void)state;
    assert_id1(INT4OID, "-5", false, "\"e7319565-1f2d-579e-8101-003ec481176d\"");
}

static void test_id_uuid_lowercased(void **state)
{
    (void)state;
    assert_id1(UUIDOID, "550E8400-E29B-41D4-A716-446655440000", false, "\"550e8400-e29b-41d4-a716-446655440000\"");
}

static void test_id_text_and_numeric_are_uuid5(void **state)
{
    (void)state;
    assert_id1(TEXTOID, "A-1", false, "\"d459136f-fb9b-5aa6-b63d-2dc2a2a1d543\"");
    assert_id1(NUMERICOID, "1.5", false, "\"ae6ff9ff-d547-5a98-892b-6f17eef534e2\"");
    /* a text key that looks like an integer is still hashed */
    assert_id1(TEXTOID, "42", false, "\"5c2b23de-4bad-58ee-a4b3-f22f3b9cfd7d\"");
}

static void test_id_force_uuid5(void **state)
{
    (void)state;
    assert_id1(INT4OID, "42", true, "\"5c2b23de-4bad-58ee-a4b3-f22f3b9cfd7d\"");
    assert_id1(UUIDOID, "550e8400-e29b-41d4-a716-446655440000", true, "\"e45bd718-6e21-5092-9d94-3cfcba5bf752\"");
}

static void assert_idn(int n, const char *const *texts, const char *want)
{
    uint32_t typids[4] = {TEXTOID, INT4OID, INT4OID, INT4OID};
    buf b;

    buf_init(&b);
    map_point_id(n, typids, texts, false, &b);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_id_composite(void **state)
{
    const char *eu42[] = {"eu", "42"};
    const char *three[] = {"1", "2", "3"};
    const char *escapes[] = {"a\"b", "c\\d"};
    const char *control[] = {"x\ny\x01", "\xc3\xa9"};

    (void)state;
    assert_idn(2, eu42, "\"9b6e14f4-8e4c-5fc3-8e85-0fe8a420b46b\"");
    assert_idn(3, three, "\"a930d02e-f6e2-5dd9-a3da-f49f0156b82b\"");
    /* escaping exactly as json.dumps(separators=(',',':'), ensure_ascii=False) */
    assert_idn(2, escapes, "\"e9f711e1-8846-57f8-86cc-7be549b9c57d\"");
    assert_idn(2, control, "\"54c3c688-cb45-5b83-9ea8-6ed38418ef16\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha1_fips_vectors),
        cmocka_unit_test(test_sha1_million_a),
        cmocka_unit_test(test_sha1_block_boundaries),
        cmocka_unit_test(test_uuid5_matches_python),
        cmocka_unit_test(test_id_non_negative_integers),
        cmocka_unit_test(test_id_negative_integer_is_uuid5),
        cmocka_unit_test(test_id_uuid_lowercased),
        cmocka_unit_test(test_id_text_and_numeric_are_uuid5),
        cmocka_unit_test(test_id_force_uuid5),
        cmocka_unit_test(test_id_composite),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
