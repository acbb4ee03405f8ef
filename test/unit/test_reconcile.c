/*
 * test_reconcile.c — the canonical digests and the tolerant vector
 * comparison of reconcile (docs/reconcile.md): what differs and what not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "reconcile.h"
#include "util.h"

static json_t *js(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);

    assert_non_null(j);
    return j;
}

static uint64_t pdig(const char *text)
{
    json_t *j = js(text);
    uint64_t d = recon_payload_digest(j);

    json_decref(j);
    return d;
}

static uint64_t vdig(const char *text, const recon_space *sp)
{
    json_t *j = js(text);
    uint64_t d = recon_vector_digest(j, sp);

    json_decref(j);
    return d;
}

static bool veq(const char *expected, const char *actual, const recon_space *sp)
{
    json_t *e = js(expected), *a = js(actual);
    bool eq = recon_vectors_equal(e, a, sp);

    json_decref(e);
    json_decref(a);
    return eq;
}

static void test_payload_key_order_and_number_forms(void **state)
{
    assert_true(pdig("{\"a\":1,\"b\":[1,\"x\",null],\"c\":{\"d\":true}}") ==
                pdig("{\"c\":{\"d\":true},\"b\":[1,\"x\",null],\"a\":1.0}"));
    assert_true(pdig("{\"p\":9.50}") == pdig("{\"p\":9.5}"));
    assert_true(pdig("{\"f\":0.100000001}") == pdig("{\"f\":1.00000001e-1}"));
    assert_true(pdig("{\"z\":-0.0}") == pdig("{\"z\":0}"));
    assert_true(pdig("{}") == recon_payload_digest(NULL));
    assert_true(pdig("{}") == pdig("null"));
}

static void test_payload_differences(void **state)
{
    assert_true(pdig("{\"a\":1}") != pdig("{\"a\":2}"));
    assert_true(pdig("{\"a\":1}") != pdig("{\"a\":\"1\"}"));
    assert_true(pdig("{\"a\":1}") != pdig("{\"a\":true}"));
    assert_true(pdig("{\"a\":null}") != pdig("{}"));
    assert_true(pdig("{\"a\":1}") != pdig("{\"a\":1,\"b\":1}"));
    assert_true(pdig("{\"a\":[1,2]}") != pdig("{\"a\":[2,1]}"));
    assert_true(pdig("{\"a\":{\"b\":1}}") != pdig("{\"b\":{\"a\":1}}"));
    assert_true(pdig("{\"a\":0.1}") != pdig("{\"a\":0.100000001}"));
    assert_true(pdig("{\"a\":[[1],[]]}") != pdig("{\"a\":[[],[1]]}"));
}

static bool peq(const char *expected, const char *actual)
{
    json_t *e = js(expected), *a = js(actual);
    bool eq = recon_payload_equal(e, a);

    json_decref(e);
    json_decref(a);
    return eq;
}

/* Qdrant 1.18's JSON parser stores 90.28571428571429 as 90.28571428571428
 * (an ulp off the nearest double): equal; a real difference is not. */
static void test_payload_equal_within_ulps(void **state)
{
    (void)state;
    assert_true(peq("{\"f8\":90.28571428571429}", "{\"f8\":90.28571428571428}"));
    assert_true(peq("{\"a\":[1,{\"b\":2.5}],\"c\":null}", "{\"c\":null,\"a\":[1.0,{\"b\":2.5}]}"));
    assert_true(peq("{}", "null"));
    assert_false(peq("{\"f8\":90.28571428571429}", "{\"f8\":90.2857142857}"));
    assert_false(peq("{\"a\":null}", "{}"));
    assert_false(peq("{\"a\":null}", "{\"a\":0}"));
    assert_false(peq("{\"a\":1}", "{\"a\":\"1\"}"));
    assert_false(peq("{\"a\":[1,2]}", "{\"a\":[1,2,3]}"));
    assert_false(peq("{\"a\":1}", "{\"a\":1,\"b\":2}"));
    assert_false(peq("{\"n\":9007199254740993}", "{\"n\":9007199254740992}"));
}

static void test_vector_float32_and_cosine(void **state)
{
    char *names[] = {(char *)"", (char *)"txt"};
    recon_space cos = {names, 2}, none = {NULL, 0};

    /* float32 rounding: two decimal forms of the same float are one vector */
    assert_true(vdig("[0.1,2]", &none) == vdig("[0.100000001490116,2]", NULL));
    assert_true(vdig("[0.1,2]", &none) != vdig("[0.2,2]", NULL));
    /* Cosine: the mapping's vector normalised equals what Qdrant stores */
    assert_true(vdig("[3,4]", &cos) == vdig("[0.6,0.8]", NULL));
    assert_true(vdig("[3,4]", &none) != vdig("[0.6,0.8]", NULL));
    /* named: order of names does not matter, names do */
    assert_true(vdig("{\"txt\":[6,8],\"img\":[1,2]}", &cos) == vdig("{\"img\":[1,2],\"txt\":[0.6,0.8]}", NULL));
    assert_true(vdig("{\"a\":[1,2]}", &none) != vdig("{\"b\":[1,2]}", NULL));
    /* sparse: by index */
    assert_true(vdig("{\"s\":{\"indices\":[0,6],\"values\":[0.5,0.2]}}", &none) ==
                vdig("{\"s\":{\"indices\":[6,0],\"values\":[0.2,0.5]}}", NULL));
    assert_true(vdig("{\"s\":{\"indices\":[0,6],\"values\":[0.5,0.2]}}", &none) !=
                vdig("{\"s\":{\"indices\":[0,5],\"values\":[0.5,0.2]}}", NULL));
    assert_true(vdig("{}", &none) == recon_vector_digest(NULL, NULL));
}

static void test_vectors_equal_tolerance(void **state)
{
    char *names[] = {(char *)""};
    recon_space cos = {names, 1}, none = {NULL, 0};

    assert_true(veq("[1,2,3]", "[1,2,3]", &none));
    assert_true(veq("[1,2,3]", "[1.0000001,2,3]", &none));
    assert_false(veq("[1,2,3]", "[1.001,2,3]", &none));
    assert_false(veq("[1,2,3]", "[1,2]", &none));
    assert_false(veq("[1,2]", "{\"a\":[1,2]}", &none));
    /* Cosine: direction only, last-bit differences of the normalisation tolerated */
    assert_true(veq("[3,4]", "[0.6,0.8]", &cos));
    assert_true(veq("[30,40]", "[0.6000001,0.79999995]", &cos));
    assert_false(veq("[3,4]", "[0.8,0.6]", &cos));
    assert_false(veq("[3,4]", "[3,4]", &cos));
    /* named and sparse */
    assert_true(veq("{\"a\":[1,2],\"s\":{\"indices\":[1,3],\"values\":[0.5,0.25]}}",
                    "{\"s\":{\"indices\":[3,1],\"values\":[0.25,0.5]},\"a\":[1,2]}", &none));
    assert_false(veq("{\"a\":[1,2],\"s\":{\"indices\":[1],\"values\":[0.5]}}", "{\"a\":[1,2]}", &none));
    assert_false(veq("{\"s\":{\"indices\":[1],\"values\":[0.5]}}", "{\"s\":{\"indices\":[2],\"values\":[0.5]}}",
                     &none));
    assert_true(veq("{}", "null", &none));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload_key_order_and_number_forms),
        cmocka_unit_test(test_payload_differences),
        cmocka_unit_test(test_payload_equal_within_ulps),
        cmocka_unit_test(test_vector_float32_and_cosine),
        cmocka_unit_test(test_vectors_equal_tolerance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
