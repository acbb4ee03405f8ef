/*
 * collection.c — CreateCollection bodies and the create call (collection.h).
 */
#include "collection.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuild.h"

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

/* A generation that exists already: whether it holds points (1), none (0),
 * or it cannot be read (-1, err and *transient set). */
static int generation_has_points(qd_client *qd, const char *name, bool *transient, char *err, size_t errlen)
{
    qd_result res = {0};
    char why[600];
    int rc = -1;

    if (qd_collection_request(qd, "GET", name, "", NULL, 0, &res) != 0) {
        *transient = qd_result_transient(&res);
        snprintf(err, errlen, "cannot read collection \"%s\": %s", name, qd_result_describe(&res, why, sizeof why));
    } else {
        json_t *pc = json_object_get(res.result, "points_count");
        rc = json_is_integer(pc) && json_integer_value(pc) > 0;
    }
    qd_result_clear(&res);
    return rc;
}

int collection_create(qd_client *qd, const table_cfg *t, const int64_t *dims, bool *transient, char *err,
                      size_t errlen)
{
    bool from_params = t->alias && t->create_params;
    bool existed = false;
    buf body;
    qd_result res = {0};
    char why[600];
    char *name = NULL;
    int rc = -1;

    *transient = false;
    for (int i = 0; i < t->n_vectors && !from_params; i++) {
        if (dims[i] < 0) {
            snprintf(err, errlen,
                     "cannot create collection \"%s\": the size of vector column %s.%s.%s is not known yet "
                     "(no dimension in its type and no row with a value); create the collection yourself",
                     t->collection, t->schema, t->name, t->vectors[i].column);
            return -1;
        }
    }
    buf_init(&body);
    name = t->alias ? rb_generation_name(t->collection, 1) : xstrdup(t->collection);
    if (from_params)
        buf_puts(&body, t->create_params);
    else
        collection_body(t, dims, &body);
    if (qd_create_collection(qd, name, body.data, body.len, &res) != 0) {
        if (!(res.outcome == QD_REJECTED && res.http_status == 409)) { /* 409: it exists already */
            *transient = qd_result_transient(&res);
            snprintf(err, errlen, "cannot create collection \"%s\" for table %s.%s: %s", name, t->schema, t->name,
                     qd_result_describe(&res, why, sizeof why));
            goto cleanup;
        }
        existed = true;
    }
    qd_result_clear(&res);
    if (!t->alias) {
        rc = 0;
        goto cleanup;
    }
    if (existed) {
        int has = generation_has_points(qd, name, transient, err, errlen);
        if (has != 0) {
            if (has > 0)
                snprintf(err, errlen,
                         "cannot create alias \"%s\" for table %s.%s: its first generation \"%s\" exists already and "
                         "holds points (left from an earlier alias?); point the alias at the collection to serve "
                         "(POST /collections/aliases) or delete \"%s\"",
                         t->collection, t->schema, t->name, name, name);
            goto cleanup;
        }
    }
    buf_reset(&body);
    rb_create_alias_body(t->collection, name, &body);
    if (qd_request(qd, "POST", "/collections/aliases", body.data, body.len, &res) != 0) {
        *transient = qd_result_transient(&res);
        snprintf(err, errlen, "cannot create alias \"%s\" for collection \"%s\" (table %s.%s): %s", t->collection,
                 name, t->schema, t->name, qd_result_describe(&res, why, sizeof why));
        goto cleanup;
    }
    rc = 0;
cleanup:
    qd_result_clear(&res);
    buf_free(&body);
    free(name);
    return rc;
}

int collection_aliases(qd_client *qd, strlist *names, strlist *targets, qd_result *res)
{
    if (qd_request(qd, "GET", "/aliases", NULL, 0, res) != 0)
        return -1;
    collection_aliases_parse(res->result, names, targets);
    return 0;
}

void collection_aliases_parse(const json_t *result, strlist *names, strlist *targets)
{
    json_t *e;
    size_t i;

    json_array_foreach (json_object_get(result, "aliases"), i, e) {
        const char *an = json_string_value(json_object_get(e, "alias_name"));
        const char *cn = json_string_value(json_object_get(e, "collection_name"));
        if (!an || !cn)
            continue;
        if (names)
            strlist_add(names, "%s", an);
        if (targets)
            strlist_add(targets, "%s", cn);
    }
}

const char *collection_alias_target(const strlist *names, const strlist *targets, const char *alias)
{
    for (int i = 0; i < names->n && i < targets->n; i++)
        if (strcmp(names->items[i], alias) == 0)
            return targets->items[i];
    return NULL;
}

char *collection_alias_steps(const table_cfg *t)
{
    const char *c = t->collection;

    return xasprintf("1) stop pg2qdrant run; 2) POST /collections/aliases "
                     "{\"actions\":[{\"create_alias\":{\"collection_name\":\"%s\",\"alias_name\":\"%s_alias\"}}]} "
                     "and point readers at %s_alias; 3) set [table %s] collection = %s_alias (and alias = true); "
                     "4) start run and rebuild; the first rebuild moves the data into %s_alias_g1 and deletes %s "
                     "(docs/operations.md, \"Move a plain collection behind an alias\")",
                     c, c, c, t->qualified, c, c, c);
}

/* ---- create_params against the vector mappings ---- */

static void params_problem(strlist *problems, int *n, const table_cfg *t, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void params_problem(strlist *problems, int *n, const table_cfg *t, const char *fmt, ...)
{
    va_list ap;
    char *m;

    va_start(ap, fmt);
    m = xvasprintf(fmt, ap);
    va_end(ap);
    strlist_add(problems, "table %s: [table] create_params: %s", t->qualified, m);
    free(m);
    (*n)++;
}

/* "vectors" in the form of one unnamed vector ({"size": N, "distance": D}),
 * not a map of named ones (whose members are all objects). */
static bool single_vector(const json_t *v)
{
    const json_t *size = json_object_get(v, "size");
    const json_t *distance = json_object_get(v, "distance");

    return (size && !json_is_object(size)) || (distance && !json_is_object(distance));
}

/* The size hint of messages: the column's size when known, else N. */
static const char *size_hint(int64_t dims, char *out, size_t outlen)
{
    if (dims > 0)
        snprintf(out, outlen, "%lld", (long long)dims);
    else
        snprintf(out, outlen, "N");
    return out;
}

/* One dense VectorParams (key: "vectors" or "vectors.<name>"). */
static void check_dense_params(strlist *problems, int *n, const table_cfg *t, const vector_cfg *v, const char *key,
                               const json_t *p, int64_t dims)
{
    const json_t *size = json_object_get(p, "size");

    if (!json_is_object(p)) {
        params_problem(problems, n, t, "%s is not an object ({\"size\": N, \"distance\": \"Cosine\"})", key);
        return;
    }
    if (!json_is_integer(size) || json_integer_value(size) <= 0)
        params_problem(problems, n, t, "%s.size is missing or not a positive integer (column %s)", key, v->column);
    else if (dims > 0 && json_integer_value(size) != dims)
        params_problem(problems, n, t, "%s.size is %lld, but vector column %s has %lld dimensions", key,
                       (long long)json_integer_value(size), v->column, (long long)dims);
    if (!json_is_string(json_object_get(p, "distance")))
        params_problem(problems, n, t, "%s.distance is missing (Cosine, Dot, Euclid or Manhattan)", key);
}

int collection_check_params(const table_cfg *t, const int64_t *dims, strlist *problems)
{
    json_t *root = t->create_params ? json_loads(t->create_params, 0, NULL) : NULL;
    const json_t *vecs = json_object_get(root, "vectors");
    const json_t *sparse = json_object_get(root, "sparse_vectors");
    bool vecs_reported = false; /* "vectors" is wrong as a whole: one problem, not one per vector */
    char hint[24];
    int n = 0;

    if (!json_is_object(root))
        goto cleanup; /* config_load refuses anything else */
    if (vecs && !json_is_object(vecs)) {
        params_problem(problems, &n, t, "\"vectors\" is not an object");
        vecs = NULL;
        vecs_reported = true;
    }
    if (sparse && !json_is_object(sparse)) {
        params_problem(problems, &n, t, "\"sparse_vectors\" is not an object");
        sparse = NULL;
    }
    if (t->n_vectors == 1 && t->vectors[0].name[0] == '\0') {
        const vector_cfg *v = &t->vectors[0];
        if (dims[0] == 0 || vecs_reported) /* a sparse column cannot be the unnamed vector: reported elsewhere */
            goto cleanup;
        if (!vecs) {
            params_problem(problems, &n, t,
                           "no \"vectors\" for the unnamed vector (vector = %s): add \"vectors\": {\"size\": %s, "
                           "\"distance\": \"Cosine\"}",
                           v->column, size_hint(dims[0], hint, sizeof hint));
        } else if (!single_vector(vecs)) {
            buf names;
            const char *k;
            json_t *x;
            buf_init(&names);
            json_object_foreach ((json_t *)vecs, k, x)
                buf_printf(&names, "%s%s", names.len ? ", " : "", k);
            params_problem(problems, &n, t,
                           "\"vectors\" holds named vectors (%s), but column %s is mapped as the unnamed vector "
                           "(vector = %s): use \"vectors\": {\"size\": %s, \"distance\": ...}",
                           names.len ? names.data : "none", v->column, v->column,
                           size_hint(dims[0], hint, sizeof hint));
            buf_free(&names);
        } else {
            check_dense_params(problems, &n, t, v, "vectors", vecs, dims[0]);
        }
        goto cleanup;
    }
    if (vecs && single_vector(vecs)) {
        for (int i = 0; i < t->n_vectors; i++) {
            if (dims[i] != 0) {
                params_problem(problems, &n, t,
                               "\"vectors\" is one unnamed vector, but column %s is mapped as vector \"%s\" "
                               "(vector.%s = %s): use \"vectors\": {\"%s\": {\"size\": %s, \"distance\": ...}}",
                               t->vectors[i].column, t->vectors[i].name, t->vectors[i].name, t->vectors[i].column,
                               t->vectors[i].name, size_hint(dims[i], hint, sizeof hint));
                break;
            }
        }
        vecs = NULL;
        vecs_reported = true;
    }
    for (int i = 0; i < t->n_vectors; i++) {
        const vector_cfg *v = &t->vectors[i];
        const json_t *vp = json_object_get(vecs, v->name);
        const json_t *sp = json_object_get(sparse, v->name);
        char *key = xasprintf("vectors.%s", v->name);

        if (dims[i] == 0) {
            if (!sp && vp)
                params_problem(problems, &n, t,
                               "vectors.%s is a dense vector, but column %s is a sparsevec: put it under "
                               "\"sparse_vectors\": {\"%s\": {}}",
                               v->name, v->column, v->name);
            else if (!sp)
                params_problem(problems, &n, t, "no sparse_vectors.%s for the sparsevec column %s (vector.%s = %s)",
                               v->name, v->column, v->name, v->column);
        } else if (dims[i] == -2) {
            if (!vp && !sp && !vecs_reported)
                params_problem(problems, &n, t, "no vectors.%s or sparse_vectors.%s for column %s", v->name, v->name,
                               v->column);
        } else if (vp) {
            check_dense_params(problems, &n, t, v, key, vp, dims[i]);
        } else if (sp) {
            params_problem(problems, &n, t,
                           "sparse_vectors.%s is a sparse vector, but column %s is a dense vector: put it under "
                           "\"vectors\": {\"%s\": {\"size\": %s, \"distance\": ...}}",
                           v->name, v->column, v->name, size_hint(dims[i], hint, sizeof hint));
        } else if (!vecs_reported) {
            params_problem(problems, &n, t,
                           "no vectors.%s for column %s (vector.%s = %s): add \"vectors\": {\"%s\": {\"size\": %s, "
                           "\"distance\": ...}}",
                           v->name, v->column, v->name, v->column, v->name, size_hint(dims[i], hint, sizeof hint));
        }
        free(key);
    }
cleanup:
    json_decref(root);
    return n;
}
