/*
 * test_row_to_point.c — map_compile, map_change and map_truncate: decoded
 * row changes to Qdrant UpdateOperations, compared as whole JSON strings.
 * Expected UUIDs come from Python: uuid.uuid5(uuid.NAMESPACE_URL, key).
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

#define VECTOR_OID 16400
#define HALFVEC_OID 16410
#define SPARSEVEC_OID 16420
#define MOOD_OID 16500

/* Tuple values: a string is a text datum, NULL is 'n', U is 'u'. */
static const char U[] = "<unchanged toast>";

/* ---- fixture: one config table, one relation ------------------------------ */

typedef struct fixture {
    p2q_config cfg;
    table_cfg table;
    char *id_columns[4];
    vector_cfg vectors[4];
    char *payload_columns[8];
    relcache *rc;
    rel_entry *rel;
    table_map *map;
    pgo_msg *msg;
    qop_list ops;
    map_info info;
    char err[512];
} fixture;

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof(*f));
    pgo_msg t;

    f->table.schema = "public";
    f->table.name = "products";
    f->table.collection = "products";
    f->table.id_columns = f->id_columns;
    f->table.vectors = f->vectors;
    f->table.payload_all = true;
    f->table.payload_columns = f->payload_columns;
    f->cfg.tables = &f->table;
    f->cfg.n_tables = 1;
    f->rc = relcache_new(map_free);
    f->msg = xcalloc(1, sizeof(*f->msg));
    memset(&t, 0, sizeof(t));
    t.type = PGO_TYPE;
    t.u.type.nspname = "public";
    t.u.type.typid = VECTOR_OID;
    t.u.type.typname = "vector";
    relcache_put_type(f->rc, &t);
    t.u.type.typid = HALFVEC_OID;
    t.u.type.typname = "halfvec";
    relcache_put_type(f->rc, &t);
    t.u.type.typid = SPARSEVEC_OID;
    t.u.type.typname = "sparsevec";
    relcache_put_type(f->rc, &t);
    t.u.type.typid = MOOD_OID;
    t.u.type.typname = "mood";
    relcache_put_type(f->rc, &t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    qop_list_free(&f->ops);
    relcache_free(f->rc); /* frees the map through map_free */
    free(f->msg);
    free(f);
    return 0;
}

static void set_ids(fixture *f, const char *a, const char *b)
{
    f->id_columns[0] = (char *)a;
    f->id_columns[1] = (char *)b;
    f->table.n_id_columns = a ? (b ? 2 : 1) : 0;
}

static void add_vector(fixture *f, const char *name, const char *column)
{
    f->vectors[f->table.n_vectors].name = (char *)name;
    f->vectors[f->table.n_vectors].column = (char *)column;
    f->table.n_vectors++;
}

/* Column spec "name:typid" or "*name:typid" for a key column. */
static void set_relation(fixture *f, char replident, const char *const *spec)
{
    static char names[16][32];
    pgo_msg *m = f->msg;

    memset(m, 0, sizeof(*m));
    m->type = PGO_RELATION;
    m->u.relation.relid = 16385;
    m->u.relation.nspname = "public";
    m->u.relation.relname = "products";
    m->u.relation.replident = replident;
    for (int i = 0; spec[i]; i++) {
        const char *s = spec[i];
        pgo_attr *a = &m->u.relation.attrs[i];
        const char *colon = strchr(s, ':');

        a->flags = s[0] == '*';
        s += a->flags;
        snprintf(names[i], sizeof(names[i]), "%.*s", (int)(colon - s), s);
        a->name = names[i];
        a->typid = (uint32_t)atoi(colon + 1);
        a->typmod = -1;
        m->u.relation.natts++;
    }
    f->rel = relcache_put(f->rc, m, NULL);
}

static int compile(fixture *f)
{
    int rc;

    map_free(f->rel->map);
    f->rel->map = NULL;
    rc = map_compile(&f->cfg, f->rel, f->rc, &f->map, f->err, sizeof(f->err));

    f->rel->map = f->map;
    f->rel->map_compiled = true;
    return rc;
}

static void compile_ok(fixture *f)
{
    assert_int_equal(compile(f), 0);
    assert_non_null(f->map);
    assert_ptr_equal(map_table(f->map), &f->table);
}

static void compile_err(fixture *f, const char *want)
{
    assert_int_equal(compile(f), -1);
    assert_null(f->map);
    assert_string_equal(f->err, want);
}

static void set_tuple(pgo_tuple *t, int n, const char *const *vals)
{
    t->ncols = (uint16_t)n;
    for (int i = 0; i < n; i++) {
        if (vals[i] == NULL) {
            t->cols[i].kind = 'n';
        } else if (vals[i] == U) {
            t->cols[i].kind = 'u';
        } else {
            t->cols[i].kind = 't';
            t->cols[i].data = vals[i];
            t->cols[i].len = (uint32_t)strlen(vals[i]);
        }
    }
}

/* Builds the change message: old_kind 0, 'K' or 'O'. */
static const pgo_msg *change(fixture *f, char type, char old_kind, const char *const *oldv, const char *const *newv)
{
    pgo_msg *m = f->msg;
    int n = f->rel->natts;

    memset(m, 0, sizeof(*m));
    m->type = type;
    m->u.change.relid = f->rel->relid;
    m->u.change.old_kind = old_kind;
    if (oldv)
        set_tuple(&m->u.change.oldtup, n, oldv);
    if (newv) {
        m->u.change.has_new = true;
        set_tuple(&m->u.change.newtup, n, newv);
    }
    return m;
}

static int run(fixture *f, char type, char old_kind, const char *const *oldv, const char *const *newv)
{
    const pgo_msg *m = change(f, type, old_kind, oldv, newv);

    return map_change(f->map, m, 0x16B3748, &f->ops, &f->info, f->err, sizeof(f->err));
}

static void assert_op(const fixture *f, size_t i, qop_kind kind, const char *point_id, const char *key_text,
                      const char *json)
{
    const qop *q;

    assert_true(i < f->ops.n);
    q = &f->ops.items[i];
    assert_string_equal(qop_kind_name(q->kind), qop_kind_name(kind));
    assert_ptr_equal(q->table, &f->table);
    assert_string_equal(q->json, json);
    assert_int_equal(q->json_len, strlen(json));
    assert_string_equal(q->point_id, point_id);
    assert_string_equal(q->key_text, key_text);
    assert_int_equal(q->lsn, 0x16B3748);
}

/* The default table: id int4 key, name, price numeric, embedding real[],
 * tags text[]; vector = embedding, payload = *. */
static const char *const products[] = {"*id:23", "name:25", "price:1700", "embedding:1021", "tags:1009", NULL};

static void products_table(fixture *f)
{
    add_vector(f, "", "embedding");
    set_relation(f, 'd', products);
    compile_ok(f);
}

/* ---- Insert ---------------------------------------------------------------- */

static void test_insert_upsert(void **state)
{
    fixture *f = *state;
    const char *row[] = {"7", "Lamp \"XL\"", "9.50", "{1.5,2,-3e-05}", "{a,\"b c\",NULL}"};

    products_table(f);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, row), 0);
    assert_int_equal(f->ops.n, 1);
    assert_op(f, 0, QOP_UPSERT, "7", "id=7",
              "{\"upsert\":{\"points\":[{\"id\":7,\"vector\":[1.5,2,-3e-05],"
              "\"payload\":{\"id\":7,\"name\":\"Lamp \\\"XL\\\"\",\"price\":9.50,\"tags\":[\"a\",\"b c\",null]}}]}}");
    assert_false(f->info.null_vector);
    assert_false(f->info.partial);
}

static void test_insert_null_vector_deletes(void **state)
{
    fixture *f = *state;
    const char *row[] = {"7", "Lamp", NULL, NULL, NULL};

    products_table(f);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, row), 0);
    assert_int_equal(f->ops.n, 1);
    assert_op(f, 0, QOP_DELETE, "7", "id=7", "{\"delete\":{\"points\":[7]}}");
    assert_true(f->info.null_vector);
}

static void test_insert_bad_vector_appends_nothing(void **state)
{
    fixture *f = *state;
    const char *good[] = {"1", "a", "1", "{1,2}", "{}"};
    const char *null_elem[] = {"7", "Lamp", "1", "{1,NULL}", "{}"};
    const char *nan[] = {"8", "Lamp", "1", "{NaN,1}", "{}"};
    const char *multi[] = {"9", "Lamp", "1", "{{1,2},{3,4}}", "{}"};
    const char *empty[] = {"10", "Lamp", "1", "{}", "{}"};

    products_table(f);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, good), 0);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, null_elem), -1);
    assert_string_equal(f->err, "table public.products, key id=7: vector column \"embedding\": NULL element at position 2");
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, nan), -1);
    assert_string_equal(f->err,
                        "table public.products, key id=8: vector column \"embedding\": element 1 is not a finite number");
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, multi), -1);
    assert_string_equal(
        f->err, "table public.products, key id=9: vector column \"embedding\": nested array at position 1: not "
                "one-dimensional");
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, empty), -1);
    assert_string_equal(f->err, "table public.products, key id=10: vector column \"embedding\": empty vector");
    assert_int_equal(f->ops.n, 1);
    assert_string_equal(f->ops.items[0].point_id, "1");
}

static void test_insert_null_key_is_error(void **state)
{
    fixture *f = *state;
    const char *row[] = {NULL, "Lamp", "1", "{1,2}", "{}"};

    products_table(f);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, row), -1);
    assert_string_equal(f->err, "table public.products: key column \"id\" is NULL");
    assert_int_equal(f->ops.n, 0);
}

/* ---- Update ---------------------------------------------------------------- */

static void test_update_full_upsert(void **state)
{
    fixture *f = *state;
    const char *row[] = {"7", "Lamp", "10", "{1,2}", "{}"};

    products_table(f);
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, row), 0);
    assert_int_equal(f->ops.n, 1);
    assert_op(f, 0, QOP_UPSERT, "7", "id=7",
              "{\"upsert\":{\"points\":[{\"id\":7,\"vector\":[1,2],"
              "\"payload\":{\"id\":7,\"name\":\"Lamp\",\"price\":10,\"tags\":[]}}]}}");
    assert_false(f->info.partial);
}

static void test_update_key_change_with_K(void **state)
{
    fixture *f = *state;
    const char *oldk[] = {"7", NULL, NULL, NULL, NULL};
    const char *row[] = {"8", "Lamp", "10", "{1,2}", NULL};

    products_table(f);
    assert_int_equal(run(f, PGO_UPDATE, 'K', oldk, row), 0);
    assert_int_equal(f->ops.n, 2);
    assert_op(f, 0, QOP_DELETE, "7", "id=7", "{\"delete\":{\"points\":[7]}}");
    assert_op(f, 1, QOP_UPSERT, "8", "id=8",
              "{\"upsert\":{\"points\":[{\"id\":8,\"vector\":[1,2],"
              "\"payload\":{\"id\":8,\"name\":\"Lamp\",\"price\":10,\"tags\":null}}]}}");
}

static void test_update_with_O_full_identity(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*id:23", "*name:25", "*price:1700", "*embedding:1021", "*tags:1009", NULL};
    const char *old1[] = {"7", "Lamp", "10", "{1,2}", "{}"};
    const char *new1[] = {"7", "Lamp", "12", "{1,2}", "{}"};
    const char *new2[] = {"9", "Lamp", "12", "{1,2}", "{}"};

    set_ids(f, "id", NULL);
    add_vector(f, "", "embedding");
    set_relation(f, 'f', cols);
    compile_ok(f);
    /* same key: no delete */
    assert_int_equal(run(f, PGO_UPDATE, 'O', old1, new1), 0);
    assert_int_equal(f->ops.n, 1);
    assert_op(f, 0, QOP_UPSERT, "7", "id=7",
              "{\"upsert\":{\"points\":[{\"id\":7,\"vector\":[1,2],"
              "\"payload\":{\"id\":7,\"name\":\"Lamp\",\"price\":12,\"tags\":[]}}]}}");
    /* changed key */
    assert_int_equal(run(f, PGO_UPDATE, 'O', new1, new2), 0);
    assert_int_equal(f->ops.n, 3);
    assert_op(f, 1, QOP_DELETE, "7", "id=7", "{\"delete\":{\"points\":[7]}}");
    assert_op(f, 2, QOP_UPSERT, "9", "id=9",
              "{\"upsert\":{\"points\":[{\"id\":9,\"vector\":[1,2],"
              "\"payload\":{\"id\":9,\"name\":\"Lamp\",\"price\":12,\"tags\":[]}}]}}");
}

static void test_update_null_vector_deletes(void **state)
{
    fixture *f = *state;
    const char *oldk[] = {"7", NULL, NULL, NULL, NULL};
    const char *row[] = {"8", "Lamp", "10", NULL, "{}"};

    products_table(f);
    assert_int_equal(run(f, PGO_UPDATE, 'K', oldk, row), 0);
    assert_int_equal(f->ops.n, 2);
    assert_op(f, 0, QOP_DELETE, "7", "id=7", "{\"delete\":{\"points\":[7]}}");
    assert_op(f, 1, QOP_DELETE, "8", "id=8", "{\"delete\":{\"points\":[8]}}");
    assert_true(f->info.null_vector);
    assert_false(f->info.partial);
}

static void test_update_partial_unchanged_vector(void **state)
{
    fixture *f = *state;
    const char *row[] = {"7", "New name", "10", U, NULL};

    products_table(f);
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, row), 0);
    assert_int_equal(f->ops.n, 1);
    assert_op(f, 0, QOP_SET_PAYLOAD, "7", "id=7",
              "{\"set_payload\":{\"payload\":{\"id\":7,\"name\":\"New name\",\"price\":10,\"tags\":null},"
              "\"points\":[7]}}");
    assert_true(f->info.partial);
    assert_false(f->info.null_vector);
}

static void test_update_partial_unchanged_payload_column(void **state)
{
    fixture *f = *state;
    const char *row[] = {"7", U, "10", "{3,4}", U};

    products_table(f);
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, row), 0);
    assert_int_equal(f->ops.n, 2);
    assert_op(f, 0, QOP_UPDATE_VECTORS, "7", "id=7",
              "{\"update_vectors\":{\"points\":[{\"id\":7,\"vector\":[3,4]}]}}");
    assert_op(f, 1, QOP_SET_PAYLOAD, "7", "id=7",
              "{\"set_payload\":{\"payload\":{\"id\":7,\"price\":10},\"points\":[7]}}");
    assert_true(f->info.partial);
}

static void test_update_partial_null_vector_deletes(void **state)
{
    fixture *f = *state;
    const char *row[] = {"7", U, "10", NULL, "{}"};

    products_table(f);
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, row), 0);
    assert_int_equal(f->ops.n, 1);
    assert_op(f, 0, QOP_DELETE, "7", "id=7", "{\"delete\":{\"points\":[7]}}");
    assert_true(f->info.partial);
    assert_true(f->info.null_vector);
}

static void test_update_partial_with_key_change(void **state)
{
    fixture *f = *state;
    const char *oldk[] = {"7", NULL, NULL, NULL, NULL};
    const char *row[] = {"8", "Lamp", "10", U, "{}"};

    products_table(f);
    assert_int_equal(run(f, PGO_UPDATE, 'K', oldk, row), 0);
    assert_int_equal(f->ops.n, 2);
    assert_op(f, 0, QOP_DELETE, "7", "id=7", "{\"delete\":{\"points\":[7]}}");
    assert_null(f->ops.items[0].key_vals);
    /* The new id has no point and the vector was not sent: the sink must
     * read the row back by its new key. */
    assert_int_equal(f->ops.items[1].kind, QOP_REFETCH);
    assert_string_equal(f->ops.items[1].point_id, "8");
    assert_string_equal(f->ops.items[1].key_text, "id=8");
    assert_int_equal(f->ops.items[1].nkeys, 1);
    assert_string_equal(f->ops.items[1].key_vals[0], "8");
    assert_true(f->info.partial);
}

static void test_partial_ops_carry_key_values(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*region:25", "*id:20", "note:25", "embedding:1021", NULL};
    const char *row[] = {"eu", "42", "edited", U};

    add_vector(f, "", "embedding");
    set_relation(f, 'd', cols);
    compile_ok(f);
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, row), 0);
    assert_int_equal(f->ops.n, 1);
    assert_int_equal(f->ops.items[0].kind, QOP_SET_PAYLOAD);
    assert_int_equal(f->ops.items[0].nkeys, 2);
    assert_string_equal(f->ops.items[0].key_vals[0], "eu");
    assert_string_equal(f->ops.items[0].key_vals[1], "42");
}

static void test_map_row_and_select_sql(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*id:23", "we\"ird:25", "embedding:1021", NULL};
    const char *row[] = {"5", "x", "{0.5,1}"};
    const char *nullvec[] = {"6", "y", NULL};
    const char *unchanged[] = {"7", "z", U};
    pgo_tuple *t = xcalloc(1, sizeof *t);
    buf sql;

    add_vector(f, "", "embedding");
    set_relation(f, 'd', cols);
    compile_ok(f);
    buf_init(&sql);
    map_select_sql(f->map, &sql);
    assert_string_equal(sql.data, "SELECT \"id\", \"we\"\"ird\", \"embedding\" FROM \"public\".\"products\" "
                                  "WHERE \"id\" = $1");
    assert_int_equal(map_natts(f->map), 3);
    buf_free(&sql);

    set_tuple(t, 3, row);
    assert_int_equal(map_row(f->map, t, 0x16B3748, &f->ops, &f->info, f->err, sizeof f->err), 0);
    assert_op(f, 0, QOP_UPSERT, "5", "id=5",
              "{\"upsert\":{\"points\":[{\"id\":5,\"vector\":[0.5,1],\"payload\":{\"id\":5,\"we\\\"ird\":\"x\"}}]}}");
    set_tuple(t, 3, nullvec);
    assert_int_equal(map_row(f->map, t, 0x16B3748, &f->ops, &f->info, f->err, sizeof f->err), 0);
    assert_op(f, 1, QOP_DELETE, "6", "id=6", "{\"delete\":{\"points\":[6]}}");
    assert_true(f->info.null_vector);
    set_tuple(t, 3, unchanged);
    assert_int_equal(map_row(f->map, t, 0x16B3748, &f->ops, &f->info, f->err, sizeof f->err), -1);
    assert_string_equal(f->err, "table public.products, key id=7: a whole row cannot hold unchanged TOASTed values");
    assert_int_equal(f->ops.n, 2);
    free(t);
}

static void test_update_partial_nothing_sent(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*id:23", "body:25", "embedding:1021", NULL};
    const char *row[] = {"7", U, U};

    add_vector(f, "", "embedding");
    f->table.payload_all = false;
    f->payload_columns[0] = "body";
    f->table.n_payload_columns = 1;
    set_relation(f, 'd', cols);
    compile_ok(f);
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, row), 0);
    assert_int_equal(f->ops.n, 0);
    assert_true(f->info.partial);
}

static void test_update_unchanged_unmapped_column_is_full(void **state)
{
    fixture *f = *state;
    const char *row[] = {"7", "Lamp", "10", "{1,2}", U};

    /* tags is not in the payload: its 'u' does not make the update partial */
    f->table.payload_all = false;
    f->payload_columns[0] = "name";
    f->table.n_payload_columns = 1;
    add_vector(f, "", "embedding");
    set_relation(f, 'd', products);
    compile_ok(f);
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, row), 0);
    assert_int_equal(f->ops.n, 1);
    assert_op(f, 0, QOP_UPSERT, "7", "id=7",
              "{\"upsert\":{\"points\":[{\"id\":7,\"vector\":[1,2],\"payload\":{\"name\":\"Lamp\"}}]}}");
    assert_false(f->info.partial);
}

static void test_update_unchanged_key_taken_from_old(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*sku:25", "name:25", NULL};
    const char *oldk[] = {"A-1", NULL};
    const char *row[] = {U, "Lamp"};
    const char *row_no_old[] = {U, "Lamp"};

    set_relation(f, 'd', cols);
    compile_ok(f);
    assert_int_equal(run(f, PGO_UPDATE, 'K', oldk, row), 0);
    assert_int_equal(f->ops.n, 1);
    assert_op(f, 0, QOP_SET_PAYLOAD, "\"d459136f-fb9b-5aa6-b63d-2dc2a2a1d543\"", "sku=A-1",
              "{\"set_payload\":{\"payload\":{\"name\":\"Lamp\"},"
              "\"points\":[\"d459136f-fb9b-5aa6-b63d-2dc2a2a1d543\"]}}");
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, row_no_old), -1);
    assert_string_equal(f->err, "table public.products: key column \"sku\" is an unchanged TOASTed value");
    assert_int_equal(f->ops.n, 1);
}

/* ---- Delete, Truncate ------------------------------------------------------ */

static void test_delete_K_and_O(void **state)
{
    fixture *f = *state;
    const char *oldk[] = {"7", NULL, NULL, NULL, NULL};
    const char *oldo[] = {"8", "Lamp", "1", "{1,2}", "{}"};

    products_table(f);
    assert_int_equal(run(f, PGO_DELETE, 'K', oldk, NULL), 0);
    assert_int_equal(run(f, PGO_DELETE, 'O', oldo, NULL), 0);
    assert_int_equal(f->ops.n, 2);
    assert_op(f, 0, QOP_DELETE, "7", "id=7", "{\"delete\":{\"points\":[7]}}");
    assert_op(f, 1, QOP_DELETE, "8", "id=8", "{\"delete\":{\"points\":[8]}}");
    assert_int_equal(run(f, PGO_DELETE, 0, NULL, NULL), -1);
    assert_string_equal(f->err, "table public.products: delete without an old key");
}

static void test_truncate(void **state)
{
    fixture *f = *state;

    products_table(f);
    map_truncate(f->map, 0x16B3748, &f->ops);
    assert_int_equal(f->ops.n, 1);
    assert_int_equal(f->ops.items[0].kind, QOP_DELETE_ALL);
    assert_ptr_equal(f->ops.items[0].table, &f->table);
    assert_string_equal(f->ops.items[0].json, "{\"delete\":{\"filter\":{}}}");
    assert_int_equal(f->ops.items[0].json_len, strlen("{\"delete\":{\"filter\":{}}}"));
    assert_null(f->ops.items[0].point_id);
    assert_null(f->ops.items[0].key_text);
    assert_int_equal(f->ops.items[0].lsn, 0x16B3748);
}

/* ---- ids ---------------------------------------------------------------------- */

static void test_composite_key(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*region:25", "*id:23", "note:25", NULL};
    const char *row[] = {"eu", "42", "hi"};

    set_relation(f, 'd', cols);
    compile_ok(f);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, row), 0);
    assert_op(f, 0, QOP_UPSERT, "\"9b6e14f4-8e4c-5fc3-8e85-0fe8a420b46b\"", "region=eu,id=42",
              "{\"upsert\":{\"points\":[{\"id\":\"9b6e14f4-8e4c-5fc3-8e85-0fe8a420b46b\",\"vector\":{},"
              "\"payload\":{\"region\":\"eu\",\"id\":42,\"note\":\"hi\"}}]}}");
}

static void test_explicit_id_order(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*id:23", "*region:25", "note:25", NULL};
    const char *oldk[] = {"42", "eu", NULL};

    /* id = region, id: the key follows the configured order */
    set_ids(f, "region", "id");
    set_relation(f, 'd', cols);
    compile_ok(f);
    assert_int_equal(run(f, PGO_DELETE, 'K', oldk, NULL), 0);
    assert_op(f, 0, QOP_DELETE, "\"9b6e14f4-8e4c-5fc3-8e85-0fe8a420b46b\"", "region=eu,id=42",
              "{\"delete\":{\"points\":[\"9b6e14f4-8e4c-5fc3-8e85-0fe8a420b46b\"]}}");
}

static void test_uuid_key(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*id:2950", NULL};
    const char *row[] = {"550E8400-E29B-41D4-A716-446655440000"};

    set_relation(f, 'd', cols);
    compile_ok(f);
    assert_int_equal(run(f, PGO_DELETE, 'K', row, NULL), 0);
    assert_op(f, 0, QOP_DELETE, "\"550e8400-e29b-41d4-a716-446655440000\"", "id=550E8400-E29B-41D4-A716-446655440000",
              "{\"delete\":{\"points\":[\"550e8400-e29b-41d4-a716-446655440000\"]}}");
}

static void test_negative_int_key(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*id:20", NULL};
    const char *row[] = {"-5"};

    set_relation(f, 'd', cols);
    compile_ok(f);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, row), 0);
    assert_op(f, 0, QOP_UPSERT, "\"e7319565-1f2d-579e-8101-003ec481176d\"", "id=-5",
              "{\"upsert\":{\"points\":[{\"id\":\"e7319565-1f2d-579e-8101-003ec481176d\",\"vector\":{},"
              "\"payload\":{\"id\":-5}}]}}");
}

static void test_id_mode_uuid5(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*id:23", NULL};
    const char *row[] = {"42"};

    f->table.id_mode_uuid5 = true;
    set_relation(f, 'd', cols);
    compile_ok(f);
    assert_int_equal(run(f, PGO_DELETE, 'K', row, NULL), 0);
    assert_op(f, 0, QOP_DELETE, "\"5c2b23de-4bad-58ee-a4b3-f22f3b9cfd7d\"", "id=42",
              "{\"delete\":{\"points\":[\"5c2b23de-4bad-58ee-a4b3-f22f3b9cfd7d\"]}}");
}

/* ---- vectors ----------------------------------------------------------------- */

static void named_table(fixture *f)
{
    const char *const cols[] = {"*id:23", "title:25", "emb:16400", "sparse:16420", NULL};

    add_vector(f, "text", "emb");
    add_vector(f, "bm25", "sparse");
    set_relation(f, 'd', cols);
    compile_ok(f);
}

static void test_named_vectors(void **state)
{
    fixture *f = *state;
    const char *both[] = {"1", "t", "[1,2]", "{3:0.5}/5"};
    const char *one_null[] = {"2", "t", NULL, "{3:0.5}/5"};
    const char *all_null[] = {"3", "t", NULL, NULL};

    named_table(f);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, both), 0);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, one_null), 0);
    assert_false(f->info.null_vector);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, all_null), 0);
    assert_true(f->info.null_vector);
    assert_int_equal(f->ops.n, 3);
    assert_op(f, 0, QOP_UPSERT, "1", "id=1",
              "{\"upsert\":{\"points\":[{\"id\":1,\"vector\":{\"text\":[1,2],"
              "\"bm25\":{\"indices\":[2],\"values\":[0.5]}},\"payload\":{\"id\":1,\"title\":\"t\"}}]}}");
    assert_op(f, 1, QOP_UPSERT, "2", "id=2",
              "{\"upsert\":{\"points\":[{\"id\":2,\"vector\":{\"bm25\":{\"indices\":[2],\"values\":[0.5]}},"
              "\"payload\":{\"id\":2,\"title\":\"t\"}}]}}");
    assert_op(f, 2, QOP_DELETE, "3", "id=3", "{\"delete\":{\"points\":[3]}}");
}

static void test_named_vectors_partial(void **state)
{
    fixture *f = *state;
    const char *one_sent[] = {"1", U, "[1,2]", U};
    const char *null_and_unchanged[] = {"2", "t", NULL, U};
    const char *all_null[] = {"3", U, NULL, NULL};

    named_table(f);
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, one_sent), 0);
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, null_and_unchanged), 0);
    assert_int_equal(run(f, PGO_UPDATE, 0, NULL, all_null), 0);
    assert_true(f->info.null_vector);
    assert_int_equal(f->ops.n, 5);
    assert_op(f, 0, QOP_UPDATE_VECTORS, "1", "id=1",
              "{\"update_vectors\":{\"points\":[{\"id\":1,\"vector\":{\"text\":[1,2]}}]}}");
    assert_op(f, 1, QOP_SET_PAYLOAD, "1", "id=1", "{\"set_payload\":{\"payload\":{\"id\":1},\"points\":[1]}}");
    /* the NULL vector goes, the unchanged one stays */
    assert_op(f, 2, QOP_UPDATE_VECTORS, "2", "id=2", "{\"delete_vectors\":{\"points\":[2],\"vector\":[\"text\"]}}");
    assert_op(f, 3, QOP_SET_PAYLOAD, "2", "id=2",
              "{\"set_payload\":{\"payload\":{\"id\":2,\"title\":\"t\"},\"points\":[2]}}");
    assert_op(f, 4, QOP_DELETE, "3", "id=3", "{\"delete\":{\"points\":[3]}}");
}

static void test_pgvector_halfvec_and_integer_array(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*id:23", "v:16400", "h:16410", "i:1007", "d:1022", NULL};
    const char *row[] = {"1", "[0.5,-1]", "[1,2.5]", "{1,2,3}", "{1e-05,2}"};
    const char *bad[] = {"2", "[]", "[1]", "{1}", "{1}"};

    add_vector(f, "v", "v");
    add_vector(f, "h", "h");
    add_vector(f, "i", "i");
    add_vector(f, "d", "d");
    set_relation(f, 'd', cols);
    compile_ok(f);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, row), 0);
    assert_op(f, 0, QOP_UPSERT, "1", "id=1",
              "{\"upsert\":{\"points\":[{\"id\":1,\"vector\":{\"v\":[0.5,-1],\"h\":[1,2.5],\"i\":[1,2,3],"
              "\"d\":[1e-05,2]},\"payload\":{\"id\":1}}]}}");
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, bad), -1);
    assert_string_equal(f->err, "table public.products, key id=2: vector column \"v\": empty vector");
}

static void test_no_vector_and_payload_list(void **state)
{
    fixture *f = *state;
    const char *row[] = {"7", "Lamp", "1.5", "{1,2}", "{x}"};

    f->table.payload_all = false;
    f->payload_columns[0] = "tags";
    f->payload_columns[1] = "name";
    f->table.n_payload_columns = 2;
    set_relation(f, 'd', products);
    compile_ok(f);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, row), 0);
    /* payload keys follow the table's column order */
    assert_op(f, 0, QOP_UPSERT, "7", "id=7",
              "{\"upsert\":{\"points\":[{\"id\":7,\"vector\":{},\"payload\":{\"name\":\"Lamp\",\"tags\":[\"x\"]}}]}}");
}

static void test_payload_types(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*id:23",    "ok:16",   "meta:3802", "at:1184",   "day:1082", "raw:17",
                                "mood:16500", "f:700",  "moods:16501", NULL};
    const char *row[] = {"1", "t", "{\"a\": [1, 2]}", "2024-01-15 12:30:00.5+02", "2024-01-15", "\\x00ff10",
                         "happy", "NaN", "{happy,sad}"};
    pgo_msg t;

    memset(&t, 0, sizeof(t));
    t.type = PGO_TYPE;
    t.u.type.nspname = "public";
    t.u.type.typid = 16501;
    t.u.type.typname = "_mood";
    relcache_put_type(f->rc, &t);
    set_relation(f, 'd', cols);
    compile_ok(f);
    assert_int_equal(run(f, PGO_INSERT, 0, NULL, row), 0);
    assert_op(f, 0, QOP_UPSERT, "1", "id=1",
              "{\"upsert\":{\"points\":[{\"id\":1,\"vector\":{},\"payload\":{\"id\":1,\"ok\":true,"
              "\"meta\":{\"a\": [1, 2]},\"at\":\"2024-01-15T10:30:00.5Z\",\"day\":\"2024-01-15\","
              "\"raw\":\"AP8Q\",\"mood\":\"happy\",\"f\":\"NaN\",\"moods\":[\"happy\",\"sad\"]}}]}}");
}

/* ---- map_compile --------------------------------------------------------------- */

static void test_compile_table_not_configured(void **state)
{
    fixture *f = *state;

    f->table.name = "other";
    set_relation(f, 'd', products);
    assert_int_equal(compile(f), 0);
    assert_null(f->map);
}

static void test_compile_errors_identity(void **state)
{
    fixture *f = *state;
    const char *const nokey[] = {"id:23", "name:25", NULL};

    set_relation(f, 'n', products);
    compile_err(f, "table public.products: REPLICA IDENTITY NOTHING: deletes cannot be replicated (use ALTER "
                   "TABLE ... REPLICA IDENTITY DEFAULT or USING INDEX)");
    set_relation(f, 'f', products);
    compile_err(f, "table public.products: REPLICA IDENTITY FULL marks every column as key: set id = <key "
                   "columns> in its [table] section");
    set_relation(f, 'd', nokey);
    compile_err(f, "table public.products: no key columns (no primary key or replica identity index): add one or "
                   "set id = in its [table] section");
}

static void test_compile_errors_id_columns(void **state)
{
    fixture *f = *state;

    set_ids(f, "sku", NULL);
    set_relation(f, 'd', products);
    compile_err(f, "table public.products: id column \"sku\" not found (columns: id, name, price, embedding, tags)");
    set_ids(f, "name", NULL);
    compile_err(f, "table public.products: id column \"name\" is not part of the replica identity, so deletes "
                   "would not carry it (use REPLICA IDENTITY FULL or an index covering it)");
    /* under FULL every column is in the old tuple */
    set_relation(f, 'f', products);
    compile_ok(f);
}

static void test_compile_errors_vectors(void **state)
{
    fixture *f = *state;
    const char *const cols[] = {"*id:23", "body:25", "sp:16420", "mood:16500", NULL};

    set_relation(f, 'd', cols);
    add_vector(f, "", "emb");
    compile_err(f, "table public.products: vector column \"emb\" not found (columns: id, body, sp, mood)");
    f->vectors[0].column = "body";
    compile_err(f, "table public.products: vector column \"body\" has unsupported type built-in (OID 25): use "
                   "real[], double precision[], numeric[], integer[], vector, halfvec or sparsevec");
    f->vectors[0].column = "mood";
    compile_err(f, "table public.products: vector column \"mood\" has unsupported type mood (OID 16500): use "
                   "real[], double precision[], numeric[], integer[], vector, halfvec or sparsevec");
    f->vectors[0].column = "sp";
    compile_err(f, "table public.products: sparse vector column \"sp\" must be a named vector (vector.<name> = sp)");
    add_vector(f, "x", "sp");
    compile_err(f, "table public.products: the unnamed vector (column \"sp\") cannot be combined with named "
                   "vectors");
}

static void test_compile_errors_payload(void **state)
{
    fixture *f = *state;

    f->table.payload_all = false;
    f->payload_columns[0] = "name";
    f->payload_columns[1] = "colour";
    f->table.n_payload_columns = 2;
    set_relation(f, 'd', products);
    compile_err(f, "table public.products: payload column \"colour\" not found (columns: id, name, price, "
                   "embedding, tags)");
}

static void test_schema_change_recompiles(void **state)
{
    fixture *f = *state;
    const char *const fewer[] = {"*id:23", "name:25", NULL};

    products_table(f);
    /* a new Relation message without the vector column: the sync must stop */
    set_relation(f, 'd', fewer);
    compile_err(f, "table public.products: vector column \"embedding\" not found (columns: id, name)");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_insert_upsert),
        T(test_insert_null_vector_deletes),
        T(test_insert_bad_vector_appends_nothing),
        T(test_insert_null_key_is_error),
        T(test_update_full_upsert),
        T(test_update_key_change_with_K),
        T(test_update_with_O_full_identity),
        T(test_update_null_vector_deletes),
        T(test_update_partial_unchanged_vector),
        T(test_update_partial_unchanged_payload_column),
        T(test_update_partial_null_vector_deletes),
        T(test_update_partial_with_key_change),
        T(test_partial_ops_carry_key_values),
        T(test_map_row_and_select_sql),
        T(test_update_partial_nothing_sent),
        T(test_update_unchanged_unmapped_column_is_full),
        T(test_update_unchanged_key_taken_from_old),
        T(test_delete_K_and_O),
        T(test_truncate),
        T(test_composite_key),
        T(test_explicit_id_order),
        T(test_uuid_key),
        T(test_negative_int_key),
        T(test_id_mode_uuid5),
        T(test_named_vectors),
        T(test_named_vectors_partial),
        T(test_pgvector_halfvec_and_integer_array),
        T(test_no_vector_and_payload_list),
        T(test_payload_types),
        T(test_compile_table_not_configured),
        T(test_compile_errors_identity),
        T(test_compile_errors_id_columns),
        T(test_compile_errors_vectors),
        T(test_compile_errors_payload),
        T(test_schema_change_recompiles),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
