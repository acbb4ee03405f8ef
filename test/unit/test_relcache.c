/*
 * test_relcache.c — the Relation/Type cache: copies, replacement, maps freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relcache.h"
#include "util.h"

/* The cache treats maps as opaque; the tests use their own. */
struct table_map {
    int tag;
};

static int maps_freed;

static void free_test_map(struct table_map *m)
{
    maps_freed++;
    free(m);
}

static struct table_map *new_map(int tag)
{
    struct table_map *m = xmalloc(sizeof(*m));

    m->tag = tag;
    return m;
}

/* A Relation message; attribute names, types and key flags from arrays. */
static pgo_msg *relation(uint32_t relid, const char *nsp, const char *name, char replident, int natts,
                         const char *const *cols, const uint32_t *types, const uint8_t *flags)
{
    pgo_msg *m = xcalloc(1, sizeof(*m));

    m->type = PGO_RELATION;
    m->u.relation.relid = relid;
    m->u.relation.nspname = nsp;
    m->u.relation.relname = name;
    m->u.relation.replident = replident;
    m->u.relation.natts = (uint16_t)natts;
    for (int i = 0; i < natts; i++) {
        m->u.relation.attrs[i].name = cols[i];
        m->u.relation.attrs[i].typid = types[i];
        m->u.relation.attrs[i].typmod = -1;
        m->u.relation.attrs[i].flags = flags[i];
    }
    return m;
}

static const char *const cols2[] = {"id", "title"};
static const uint32_t types2[] = {23, 25};
static const uint8_t flags2[] = {1, 0};

static void test_put_copies_the_message(void **state)
{
    relcache *rc = relcache_new(NULL);
    char nsp[] = "shop", rel[] = "products", col0[] = "id", col1[] = "title";
    const char *cols[] = {col0, col1};
    pgo_msg *m = relation(16385, nsp, rel, 'd', 2, cols, types2, flags2);
    bool replaced = true;
    rel_entry *e = relcache_put(rc, m, &replaced);

    (void)state;
    assert_false(replaced);
    /* the decoded message points into a buffer that is about to be reused */
    memset(nsp, 'x', 4);
    memset(col0, 'x', 2);
    free(m);
    assert_ptr_equal(relcache_get(rc, 16385), e);
    assert_int_equal(e->relid, 16385);
    assert_string_equal(e->nspname, "shop");
    assert_string_equal(e->relname, "products");
    assert_int_equal(e->replident, 'd');
    assert_int_equal(e->natts, 2);
    assert_string_equal(e->attrs[0].name, "id");
    assert_int_equal(e->attrs[0].typid, 23);
    assert_int_equal(e->attrs[0].typmod, -1);
    assert_true(e->attrs[0].is_key);
    assert_string_equal(e->attrs[1].name, "title");
    assert_false(e->attrs[1].is_key);
    assert_null(e->map);
    assert_false(e->map_compiled);
    relcache_free(rc);
}

static void test_empty_namespace_is_pg_catalog(void **state)
{
    relcache *rc = relcache_new(NULL);
    pgo_msg *m = relation(1259, "", "pg_class", 'n', 2, cols2, types2, flags2);
    rel_entry *e = relcache_put(rc, m, NULL);

    (void)state;
    assert_string_equal(e->nspname, "pg_catalog");
    free(m);
    relcache_free(rc);
}

static void test_replace_frees_old_entry_and_map(void **state)
{
    static const char *const cols3[] = {"id", "title", "embedding"};
    static const uint32_t types3[] = {23, 25, 1021};
    static const uint8_t flags3[] = {1, 0, 0};
    relcache *rc = relcache_new(free_test_map);
    pgo_msg *m1 = relation(16385, "public", "items", 'd', 2, cols2, types2, flags2);
    pgo_msg *m2 = relation(16385, "public", "items", 'f', 3, cols3, types3, flags3);
    bool replaced = false;
    rel_entry *e;

    (void)state;
    maps_freed = 0;
    e = relcache_put(rc, m1, &replaced);
    e->map = new_map(1);
    e->map_compiled = true;
    e = relcache_put(rc, m2, &replaced);
    assert_true(replaced);
    assert_int_equal(maps_freed, 1);
    assert_ptr_equal(relcache_get(rc, 16385), e);
    assert_int_equal(e->natts, 3);
    assert_int_equal(e->replident, 'f');
    assert_string_equal(e->attrs[2].name, "embedding");
    assert_null(e->map);
    assert_false(e->map_compiled);
    e->map = new_map(2);
    relcache_free(rc);
    assert_int_equal(maps_freed, 2);
    free(m1);
    free(m2);
}

static void test_many_relations(void **state)
{
    relcache *rc = relcache_new(free_test_map);
    static const uint32_t relids[] = {500, 20, 90000, 7, 16384, 21, 499, 2, 4000000000u};
    size_t n = sizeof(relids) / sizeof(relids[0]);
    char names[40][16];

    (void)state;
    maps_freed = 0;
    /* more than one growth step of the array, inserted out of order */
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < n; i++) {
            uint32_t relid = relids[i] + (uint32_t)round * 3;
            pgo_msg *m;
            rel_entry *e;

            snprintf(names[round * 9 + (int)i], 16, "t%u", relid);
            m = relation(relid, "public", names[round * 9 + (int)i], 'd', 2, cols2, types2, flags2);
            e = relcache_put(rc, m, NULL);
            e->map = new_map((int)relid);
            free(m);
        }
    }
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < n; i++) {
            uint32_t relid = relids[i] + (uint32_t)round * 3;
            rel_entry *e = relcache_get(rc, relid);
            char want[16];

            snprintf(want, sizeof(want), "t%u", relid);
            assert_non_null(e);
            assert_string_equal(e->relname, want);
            assert_int_equal(e->map->tag, (int)relid);
        }
    }
    assert_null(relcache_get(rc, 3));
    assert_null(relcache_get(rc, 4000000001u));
    assert_int_equal(maps_freed, 0);
    relcache_free(rc);
    assert_int_equal(maps_freed, 36);
}

static void test_types(void **state)
{
    relcache *rc = relcache_new(NULL);
    pgo_msg m;

    (void)state;
    memset(&m, 0, sizeof(m));
    m.type = PGO_TYPE;
    assert_null(relcache_type_name(rc, 16400));
    m.u.type.typid = 16400;
    m.u.type.nspname = "public";
    m.u.type.typname = "vector";
    relcache_put_type(rc, &m);
    m.u.type.typid = 16500;
    m.u.type.nspname = "";
    m.u.type.typname = "_mood";
    relcache_put_type(rc, &m);
    m.u.type.typid = 16300;
    m.u.type.nspname = "ext";
    m.u.type.typname = "sparsevec";
    relcache_put_type(rc, &m);
    assert_string_equal(relcache_type_name(rc, 16400), "vector");
    assert_string_equal(relcache_type_name(rc, 16500), "_mood");
    assert_string_equal(relcache_type_name(rc, 16300), "sparsevec");
    assert_null(relcache_type_name(rc, 23));
    /* a repeated Type message replaces the name (ALTER TYPE ... RENAME) */
    m.u.type.typid = 16400;
    m.u.type.typname = "halfvec";
    relcache_put_type(rc, &m);
    assert_string_equal(relcache_type_name(rc, 16400), "halfvec");
    relcache_free(rc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_copies_the_message),
        cmocka_unit_test(test_empty_namespace_is_pg_catalog),
        cmocka_unit_test(test_replace_frees_old_entry_and_map),
        cmocka_unit_test(test_many_relations),
        cmocka_unit_test(test_types),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
