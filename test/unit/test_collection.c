/*
 * test_collection.c — CreateCollection bodies for create_collections and
 * vector sizes read from an upsert (collection.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "collection.h"

#include <string.h>

static void test_body_unnamed(void **state)
{
    vector_cfg v = {.name = "", .column = "embedding"};
    table_cfg t = {.schema = "public", .name = "items", .collection = "items", .vectors = &v, .n_vectors = 1};
    int64_t dims[1] = {384};
    buf b;

    (void)state;
    buf_init(&b);
    collection_body(&t, dims, &b);
    assert_string_equal(b.data, "{\"vectors\":{\"size\":384,\"distance\":\"Cosine\"}}");
    t.distance = "Euclid";
    collection_body(&t, dims, &b);
    assert_string_equal(b.data, "{\"vectors\":{\"size\":384,\"distance\":\"Euclid\"}}");
    buf_free(&b);
}

static void test_body_named_and_sparse(void **state)
{
    vector_cfg v[3] = {{"text", "t"}, {"img", "i"}, {"bm25", "s"}};
    table_cfg t = {.schema = "public", .name = "docs", .collection = "docs", .distance = "Dot", .vectors = v,
                   .n_vectors = 3};
    int64_t dims[3] = {4, 2, 0};
    buf b;

    (void)state;
    buf_init(&b);
    collection_body(&t, dims, &b);
    assert_string_equal(b.data, "{\"vectors\":{\"text\":{\"size\":4,\"distance\":\"Dot\"},"
                                "\"img\":{\"size\":2,\"distance\":\"Dot\"}},\"sparse_vectors\":{\"bm25\":{}}}");
    buf_free(&b);
}

static qop upsert(const table_cfg *t, const char *json)
{
    qop q = {.kind = QOP_UPSERT, .table = t, .json = (char *)json, .json_len = strlen(json)};
    return q;
}

static void test_dims_from_upsert(void **state)
{
    vector_cfg one = {"", "e"};
    table_cfg t1 = {.collection = "a", .vectors = &one, .n_vectors = 1};
    vector_cfg v[3] = {{"text", "t"}, {"img", "i"}, {"bm25", "s"}};
    table_cfg t3 = {.collection = "b", .vectors = v, .n_vectors = 3};
    int64_t d1[1] = {-1}, d3[3] = {-1, -1, -1};
    qop q;
    char err[128];

    (void)state;
    q = upsert(&t1, "{\"upsert\":{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"payload\":{}}]}}");
    assert_int_equal(collection_dims_from_upsert(&q, d1, err, sizeof err), 0);
    assert_int_equal(d1[0], 3);
    /* img was NULL in this row: its size stays unknown */
    q = upsert(&t3, "{\"upsert\":{\"points\":[{\"id\":1,\"vector\":{\"text\":[1,2],"
                    "\"bm25\":{\"indices\":[0],\"values\":[0.5]}},\"payload\":{}}]}}");
    assert_int_equal(collection_dims_from_upsert(&q, d3, err, sizeof err), 0);
    assert_int_equal(d3[0], 2);
    assert_int_equal(d3[1], -1);
    assert_int_equal(d3[2], 0);
    q = upsert(&t1, "{\"delete\":{\"points\":[1]}}");
    q.kind = QOP_DELETE;
    assert_int_equal(collection_dims_from_upsert(&q, d1, err, sizeof err), -1);
    assert_string_equal(err, "not an upsert");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_unnamed),
        cmocka_unit_test(test_body_named_and_sparse),
        cmocka_unit_test(test_dims_from_upsert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
