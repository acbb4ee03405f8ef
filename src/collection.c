/*
 * collection.c — CreateCollection bodies and the create call (collection.h).
 */
#include "collection.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

void collection_body(const table_cfg *t, const int64_t *dims, buf *out)
{
    const char *distance = t->distance ? t->distance : "Cosine";
    bool named = t->n_vectors > 1 || (t->n_vectors == 1 && t->vectors[0].name[0] != '\0');
    int ndense = 0, nsparse = 0;

    buf_reset(out);
    buf_putc(out, '{');
    if (!named && t->n_vectors == 1) {
        buf_printf(out, "\"vectors\":{\"size\":%lld,\"distance\":\"%s\"}", (long long)dims[0], distance);
    } else {
        buf_puts(out, "\"vectors\":{");
        for (int i = 0; i < t->n_vectors; i++) {
            if (dims[i] <= 0)
                continue;
            if (ndense++)
                buf_putc(out, ',');
            buf_json_str(out, t->vectors[i].name, strlen(t->vectors[i].name));
            buf_printf(out, ":{\"size\":%lld,\"distance\":\"%s\"}", (long long)dims[i], distance);
        }
        buf_puts(out, "},\"sparse_vectors\":{");
        for (int i = 0; i < t->n_vectors; i++) {
            if (dims[i] != 0)
                continue;
            if (nsparse++)
                buf_putc(out, ',');
            buf_json_str(out, t->vectors[i].name, strlen(t->vectors[i].name));
            buf_puts(out, ":{}");
        }
        buf_putc(out, '}');
    }
    buf_putc(out, '}');
}

/* Size of one vector value: a dense array's length, 0 for a sparse one. */
static int vector_dims(const json_t *v, int64_t *out)
{
    if (json_is_array(v) && json_array_size(v) > 0) {
        *out = (int64_t)json_array_size(v);
        return 0;
    }
    if (json_is_object(v) && json_is_array(json_object_get(v, "indices"))) {
        *out = 0;
        return 0;
    }
    return -1;
}

int collection_dims_from_upsert(const qop *op, int64_t *dims, char *err, size_t errlen)
{
    const table_cfg *t = op->table;
    json_t *root = NULL, *vec;
    int rc = -1;

    if (op->kind != QOP_UPSERT || !op->json) {
        snprintf(err, errlen, "not an upsert");
        return -1;
    }
    root = qd_json_loadb(op->json, op->json_len, NULL);
    vec = json_object_get(json_array_get(json_object_get(json_object_get(root, "upsert"), "points"), 0), "vector");
    if (!vec) {
        snprintf(err, errlen, "upsert without a vector");
        goto cleanup;
    }
    if (t->n_vectors == 1 && t->vectors[0].name[0] == '\0') {
        if (vector_dims(vec, &dims[0]) != 0) {
            snprintf(err, errlen, "unexpected vector JSON");
            goto cleanup;
        }
    } else {
        for (int i = 0; i < t->n_vectors; i++) {
            json_t *v = json_object_get(vec, t->vectors[i].name);
            if (v && vector_dims(v, &dims[i]) != 0) {
                snprintf(err, errlen, "unexpected JSON for vector \"%s\"", t->vectors[i].name);
                goto cleanup;
            }
        }
    }
    rc = 0;
cleanup:
    json_decref(root);
    return rc;
}

int collection_create(qd_client *qd, const table_cfg *t, const int64_t *dims, bool *transient, char *err,
                      size_t errlen)
{
    buf body;
    qd_result res;
    char why[600];
    int rc = 0;

    *transient = false;
    for (int i = 0; i < t->n_vectors; i++) {
        if (dims[i] < 0) {
            snprintf(err, errlen,
                     "cannot create collection \"%s\": the size of vector column %s.%s.%s is not known yet "
                     "(no dimension in its type and no row with a value); create the collection yourself",
                     t->collection, t->schema, t->name, t->vectors[i].column);
            return -1;
        }
    }
    buf_init(&body);
    collection_body(t, dims, &body);
    if (qd_create_collection(qd, t->collection, body.data, body.len, &res) != 0 &&
        !(res.outcome == QD_REJECTED && res.http_status == 409)) { /* 409: it exists already */
        *transient = qd_result_transient(&res);
        snprintf(err, errlen, "cannot create collection \"%s\" for table %s.%s: %s", t->collection, t->schema,
                 t->name, qd_result_describe(&res, why, sizeof why));
        rc = -1;
    }
    qd_result_clear(&res);
    buf_free(&body);
    return rc;
}
