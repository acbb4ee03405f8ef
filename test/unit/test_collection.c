/*
 * test_collection.c — CreateCollection bodies for create_collections and
 * vector sizes read from an upsert (collection.h); create_params checked
 * against the vector columns; the alias helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "collection.h"

#include <stdlib.h>
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

/* The problems of create_params cp for t (dims per vector), joined by "\n".  Caller frees. */
static char *params_problems(table_cfg *t, const char *cp, const int64_t *dims, int *n)
{
    strlist p = {0};
    buf b;

    t->create_params = (char *)cp;
    *n = collection_check_params(t, dims, &p);
    assert_int_equal(*n, p.n);
    buf_init(&b);
    for (int i = 0; i < p.n; i++)
        buf_printf(&b, "%s%s", i ? "\n" : "", p.items[i]);
    strlist_free(&p);
    if (b.len == 0)
        buf_puts(&b, "");
    return buf_steal(&b);
}

static void test_params_unnamed(void **state)
{
    vector_cfg v = {.name = "", .column = "embedding"};
    table_cfg t = {.schema = "public", .name = "items", .qualified = "public.items", .collection = "items",
                   .vectors = &v, .n_vectors = 1};
    int64_t three[1] = {3}, unknown[1] = {-1}, nokind[1] = {-2};
    char *m;
    int n;

    (void)state;
    m = params_problems(&t, "{\"vectors\":{\"size\":3,\"distance\":\"Dot\"},\"hnsw_config\":{\"m\":32}}", three, &n);
    assert_int_equal(n, 0);
    free(m);
    m = params_problems(&t, "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}", three, &n);
    assert_int_equal(n, 1);
    assert_string_equal(m, "table public.items: [table] create_params: vectors.size is 4, but vector column "
                           "embedding has 3 dimensions");
    free(m);
    m = params_problems(&t, "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}", unknown, &n); /* size unknown */
    assert_int_equal(n, 0);
    free(m);
    m = params_problems(&t, "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}", nokind, &n);
    assert_int_equal(n, 0);
    free(m);
    m = params_problems(&t, "{\"vectors\":{\"a\":{\"size\":3,\"distance\":\"Dot\"}}}", three, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(m, "\"vectors\" holds named vectors (a), but column embedding is mapped as the unnamed "
                              "vector (vector = embedding)"));
    free(m);
    m = params_problems(&t, "{\"hnsw_config\":{\"m\":32}}", three, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(m, "no \"vectors\" for the unnamed vector (vector = embedding): add \"vectors\": "
                              "{\"size\": 3,"));
    free(m);
    m = params_problems(&t, "{\"vectors\":{\"size\":\"3\"}}", three, &n);
    assert_int_equal(n, 2);
    assert_non_null(strstr(m, "vectors.size is missing or not a positive integer (column embedding)"));
    assert_non_null(strstr(m, "vectors.distance is missing"));
    free(m);
    m = params_problems(&t, "{\"vectors\":[1]}", three, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(m, "\"vectors\" is not an object"));
    free(m);
}

static void test_params_named(void **state)
{
    vector_cfg v[3] = {{"text", "t"}, {"img", "i"}, {"bm25", "s"}};
    table_cfg t = {.schema = "public", .name = "docs", .qualified = "public.docs", .collection = "docs",
                   .vectors = v, .n_vectors = 3};
    int64_t dims[3] = {4, -1, 0}, nokind[3] = {-2, -2, -2};
    char *m;
    int n;

    (void)state;
    m = params_problems(&t, "{\"vectors\":{\"text\":{\"size\":4,\"distance\":\"Dot\"},\"img\":{\"size\":7,"
                            "\"distance\":\"Cosine\"}},\"sparse_vectors\":{\"bm25\":{}}}", dims, &n);
    assert_int_equal(n, 0);
    free(m);
    m = params_problems(&t, "{\"vectors\":{\"text\":{\"size\":4,\"distance\":\"Dot\"},\"bm25\":{\"size\":7,"
                            "\"distance\":\"Cosine\"}},\"sparse_vectors\":{\"img\":{}}}", dims, &n);
    assert_int_equal(n, 2);
    assert_non_null(strstr(m, "sparse_vectors.img is a sparse vector, but column i is a dense vector"));
    assert_non_null(strstr(m, "vectors.bm25 is a dense vector, but column s is a sparsevec"));
    free(m);
    m = params_problems(&t, "{\"vectors\":{\"text\":{\"size\":5,\"distance\":\"Dot\"}}}", dims, &n);
    assert_int_equal(n, 3);
    assert_non_null(strstr(m, "table public.docs: [table] create_params: vectors.text.size is 5, but vector column "
                              "t has 4 dimensions"));
    assert_non_null(strstr(m, "no vectors.img for column i (vector.img = i)"));
    assert_non_null(strstr(m, "no sparse_vectors.bm25 for the sparsevec column s (vector.bm25 = s)"));
    free(m);
    m = params_problems(&t, "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"},\"sparse_vectors\":{\"bm25\":{}}}", dims,
                        &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(m, "\"vectors\" is one unnamed vector, but column t is mapped as vector \"text\""));
    free(m);
    m = params_problems(&t, "{\"vectors\":{\"text\":{\"size\":9,\"distance\":\"Dot\"}},\"sparse_vectors\":"
                            "{\"bm25\":{}}}", nokind, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(m, "no vectors.img or sparse_vectors.img for column i"));
    free(m);
}

static void test_alias_helpers(void **state)
{
    vector_cfg v = {.name = "", .column = "e"};
    table_cfg t = {.schema = "public", .name = "items", .qualified = "public.items", .collection = "items",
                   .vectors = &v, .n_vectors = 1};
    strlist names = {0}, targets = {0};
    char *s;

    (void)state;
    strlist_add(&names, "a");
    strlist_add(&targets, "a_g2");
    strlist_add(&names, "items");
    strlist_add(&targets, "items_g1");
    assert_string_equal(collection_alias_target(&names, &targets, "items"), "items_g1");
    assert_null(collection_alias_target(&names, &targets, "items_g1"));
    strlist_free(&names);
    strlist_free(&targets);
    s = collection_alias_steps(&t);
    assert_non_null(strstr(s, "{\"actions\":[{\"create_alias\":{\"collection_name\":\"items\",\"alias_name\":"
                              "\"items_alias\"}}]}"));
    assert_non_null(strstr(s, "set [table public.items] collection = items_alias (and alias = true)"));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_unnamed),
        cmocka_unit_test(test_body_named_and_sparse),
        cmocka_unit_test(test_dims_from_upsert),
        cmocka_unit_test(test_params_unnamed),
        cmocka_unit_test(test_params_named),
        cmocka_unit_test(test_alias_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
