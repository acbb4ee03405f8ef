/*
 * row_to_point.c — decoded row changes to Qdrant UpdateOperations (SPEC §3,
 * docs/mapping.md).
 *
 * map_compile() does every lookup by name once per Relation message; the
 * per-row path (map_change) walks precomputed column indexes and writes the
 * JSON straight into a buf.
 */
#include "row_to_point.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgtext.h"
#include "pgtypes.h"

typedef enum vec_kind {
    VEC_ARRAY,    /* real[], double precision[], numeric[], int2/4/8[] */
    VEC_PGVECTOR, /* pgvector vector, halfvec: [1,2,3] */
    VEC_SPARSE,   /* pgvector sparsevec: {1:0.5}/10 */
} vec_kind;

typedef struct map_vec {
    char *name;     /* "" for the unnamed vector */
    char *json_key; /* "name": (JSON-escaped), for named vectors */
    int col;
    vec_kind kind;
} map_vec;

typedef struct map_col {
    char *name;
    char *json_key; /* "name": (JSON-escaped) */
    pgt_rule rule;
    bool payload;
    int key_index; /* position in the key, -1 when not a key column */
    int vec_index; /* index in vecs, -1 when not a vector column */
} map_col;

struct table_map {
    const table_cfg *cfg;
    char *table; /* schema.name, for messages */
    int natts;
    map_col *cols;
    int nkeys;
    int *key_cols; /* column index of each key column, in key order */
    uint32_t *key_typids;
    int nvecs;
    map_vec *vecs;
    bool named; /* vectors are named: "vector":{"name":...} */
};

/* The id and key text of one row. */
typedef struct row_key {
    buf id;      /* 42 or "uuid" */
    buf text;    /* region=eu,id=42 */
    char **vals; /* the key columns' text forms (nvals), owned */
    int nvals;
} row_key;

static void fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- map_compile --------------------------------------------------------- */

void map_free(table_map *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->natts; i++) {
        free(m->cols[i].name);
        free(m->cols[i].json_key);
    }
    for (int i = 0; i < m->nvecs; i++) {
        free(m->vecs[i].name);
        free(m->vecs[i].json_key);
    }
    free(m->cols);
    free(m->key_cols);
    free(m->key_typids);
    free(m->vecs);
    free(m->table);
    free(m);
}

const table_cfg *map_table(const table_map *m)
{
    return m->cfg;
}

static int find_col(const rel_entry *rel, const char *name)
{
    for (int i = 0; i < rel->natts; i++)
        if (strcmp(rel->attrs[i].name, name) == 0)
            return i;
    return -1;
}

/* "id, name, embedding" for error messages. */
static void column_list(const rel_entry *rel, buf *b)
{
    for (int i = 0; i < rel->natts; i++)
        buf_printf(b, "%s%s", i ? ", " : "", rel->attrs[i].name);
}

static int missing_col(const table_map *m, const rel_entry *rel, const char *what, const char *name, char *err,
                       size_t errlen)
{
    buf cols;

    buf_init(&cols);
    column_list(rel, &cols);
    fail(err, errlen, "table %s: %s column \"%s\" not found (columns: %s)", m->table, what, name,
         cols.data ? cols.data : "");
    buf_free(&cols);
    return -1;
}

static char *json_key(const char *name)
{
    buf b;

    buf_init(&b);
    buf_json_str(&b, name, strlen(name));
    buf_putc(&b, ':');
    return buf_steal(&b);
}

static int compile_keys(table_map *m, const rel_entry *rel, const table_cfg *t, char *err, size_t errlen)
{
    if (rel->replident == 'n') {
        fail(err, errlen,
             "table %s: REPLICA IDENTITY NOTHING: deletes cannot be replicated "
             "(use ALTER TABLE ... REPLICA IDENTITY DEFAULT or USING INDEX)",
             m->table);
        return -1;
    }
    if (t->n_id_columns == 0 && rel->replident == 'f') {
        fail(err, errlen,
             "table %s: REPLICA IDENTITY FULL marks every column as key: set id = <key columns> in its "
             "[table] section",
             m->table);
        return -1;
    }
    m->key_cols = xcalloc((size_t)rel->natts + (size_t)t->n_id_columns, sizeof(int));
    if (t->n_id_columns > 0) {
        for (int i = 0; i < t->n_id_columns; i++) {
            int c = find_col(rel, t->id_columns[i]);

            if (c < 0)
                return missing_col(m, rel, "id", t->id_columns[i], err, errlen);
            if (rel->replident != 'f' && !rel->attrs[c].is_key) {
                fail(err, errlen,
                     "table %s: id column \"%s\" is not part of the replica identity, so deletes would not "
                     "carry it (use REPLICA IDENTITY FULL or an index covering it)",
                     m->table, t->id_columns[i]);
                return -1;
            }
            m->key_cols[m->nkeys++] = c;
        }
    } else {
        for (int c = 0; c < rel->natts; c++)
            if (rel->attrs[c].is_key)
                m->key_cols[m->nkeys++] = c;
        if (m->nkeys == 0) {
            fail(err, errlen,
                 "table %s: no key columns (no primary key or replica identity index): add one or set id = "
                 "in its [table] section",
                 m->table);
            return -1;
        }
    }
    m->key_typids = xcalloc((size_t)m->nkeys, sizeof(uint32_t));
    for (int i = 0; i < m->nkeys; i++) {
        m->key_typids[i] = rel->attrs[m->key_cols[i]].typid;
        m->cols[m->key_cols[i]].key_index = i;
    }
    return 0;
}

static bool vector_kind(uint32_t typid, const char *udt, vec_kind *kind)
{
    switch (typid) {
    case FLOAT4ARRAYOID:
    case FLOAT8ARRAYOID:
    case NUMERICARRAYOID:
    case INT2ARRAYOID:
    case INT4ARRAYOID:
    case INT8ARRAYOID: *kind = VEC_ARRAY; return true;
    }
    if (udt && (strcmp(udt, "vector") == 0 || strcmp(udt, "halfvec") == 0)) {
        *kind = VEC_PGVECTOR;
        return true;
    }
    if (udt && strcmp(udt, "sparsevec") == 0) {
        *kind = VEC_SPARSE;
        return true;
    }
    return false;
}

static int compile_vectors(table_map *m, const rel_entry *rel, const table_cfg *t, const relcache *types, char *err,
                           size_t errlen)
{
    m->vecs = xcalloc((size_t)t->n_vectors, sizeof(map_vec));
    for (int i = 0; i < t->n_vectors; i++) {
        const vector_cfg *v = &t->vectors[i];
        int c = find_col(rel, v->column);
        const char *udt;
        map_vec *mv;

        if (c < 0)
            return missing_col(m, rel, "vector", v->column, err, errlen);
        if (v->name[0] == '\0' && t->n_vectors > 1) {
            fail(err, errlen, "table %s: the unnamed vector (column \"%s\") cannot be combined with named vectors",
                 m->table, v->column);
            return -1;
        }
        mv = &m->vecs[m->nvecs++];
        mv->name = xstrdup(v->name);
        mv->json_key = json_key(v->name);
        mv->col = c;
        udt = relcache_type_name(types, rel->attrs[c].typid);
        if (!vector_kind(rel->attrs[c].typid, udt, &mv->kind)) {
            fail(err, errlen,
                 "table %s: vector column \"%s\" has unsupported type %s%s (OID %u): use real[], double "
                 "precision[], numeric[], integer[], vector, halfvec or sparsevec",
                 m->table, v->column, udt ? udt : "", udt ? "" : "built-in", rel->attrs[c].typid);
            return -1;
        }
        if (mv->kind == VEC_SPARSE && v->name[0] == '\0') {
            fail(err, errlen,
                 "table %s: sparse vector column \"%s\" must be a named vector (vector.<name> = %s)", m->table,
                 v->column, v->column);
            return -1;
        }
        m->cols[c].vec_index = i;
    }
    m->named = m->nvecs > 0 && m->vecs[0].name[0] != '\0';
    return 0;
}

static int compile_payload(table_map *m, const rel_entry *rel, const table_cfg *t, char *err, size_t errlen)
{
    if (t->payload_all) {
        for (int c = 0; c < rel->natts; c++)
            m->cols[c].payload = m->cols[c].vec_index < 0;
        return 0;
    }
    for (int i = 0; i < t->n_payload_columns; i++) {
        int c = find_col(rel, t->payload_columns[i]);

        if (c < 0)
            return missing_col(m, rel, "payload", t->payload_columns[i], err, errlen);
        m->cols[c].payload = true;
    }
    return 0;
}

int map_compile(const p2q_config *cfg, const rel_entry *rel, const relcache *types, table_map **out, char *err,
                size_t errlen)
{
    const table_cfg *t = config_find_table(cfg, rel->nspname, rel->relname);
    table_map *m = NULL;
    int rc = -1;

    *out = NULL;
    if (!t)
        return 0;
    m = xcalloc(1, sizeof(*m));
    m->cfg = t;
    m->table = xasprintf("%s.%s", rel->nspname, rel->relname);
    m->natts = rel->natts;
    m->cols = xcalloc(rel->natts, sizeof(map_col));
    for (int c = 0; c < rel->natts; c++) {
        map_col *mc = &m->cols[c];

        mc->name = xstrdup(rel->attrs[c].name);
        mc->json_key = json_key(mc->name);
        mc->rule = pgtext_rule(rel->attrs[c].typid, relcache_type_name(types, rel->attrs[c].typid));
        mc->key_index = -1;
        mc->vec_index = -1;
    }
    if (compile_keys(m, rel, t, err, errlen) < 0 || compile_vectors(m, rel, t, types, err, errlen) < 0 ||
        compile_payload(m, rel, t, err, errlen) < 0)
        goto cleanup;
    *out = m;
    m = NULL;
    rc = 0;
cleanup:
    map_free(m);
    return rc;
}

/* ---- map_change helpers ---------------------------------------------------- */

static const char *datum_kind_name(char kind)
{
    switch (kind) {
    case 'n': return "NULL";
    case 'u': return "an unchanged TOASTed value";
    case 'b': return "binary data";
    default: return "of unknown kind";
    }
}

/* The id and key text of tup.  A key column that is an unchanged TOASTed
 * value ('u') in tup is taken from fallback (the old tuple), if any. */
static int row_key_of(const table_map *m, const pgo_tuple *tup, const pgo_tuple *fallback, row_key *k, char *err,
                      size_t errlen)
{
    char **texts = xcalloc((size_t)m->nkeys, sizeof(char *));
    int rc = -1;

    for (int i = 0; i < m->nkeys; i++) {
        int c = m->key_cols[i];
        const pgo_datum *d = &tup->cols[c];

        if (d->kind == 'u' && fallback)
            d = &fallback->cols[c];
        if (d->kind != 't') {
            fail(err, errlen, "table %s: key column \"%s\" is %s", m->table, m->cols[c].name, datum_kind_name(d->kind));
            goto cleanup;
        }
        texts[i] = xstrndup(d->data, d->len);
        if (i) /* name=value[,name=value]: per row, so no printf */
            buf_putc(&k->text, ',');
        buf_puts(&k->text, m->cols[c].name);
        buf_putc(&k->text, '=');
        buf_append(&k->text, d->data, d->len);
    }
    map_point_id(m->nkeys, m->key_typids, (const char *const *)texts, m->cfg->id_mode_uuid5, &k->id);
    k->vals = texts;
    k->nvals = m->nkeys;
    texts = NULL;
    rc = 0;
cleanup:
    if (texts) {
        for (int i = 0; i < m->nkeys; i++)
            free(texts[i]);
        free(texts);
    }
    return rc;
}

static void row_key_init(row_key *k)
{
    buf_init(&k->id);
    buf_init(&k->text);
    k->vals = NULL;
    k->nvals = 0;
}

static void row_key_free(row_key *k)
{
    buf_free(&k->id);
    buf_free(&k->text);
    for (int i = 0; i < k->nvals; i++)
        free(k->vals[i]);
    free(k->vals);
}

static void push_op(qop_list *out, const table_map *m, qop_kind kind, buf *json, const row_key *k, lsn_t lsn)
{
    qop *q = qop_list_push(out);

    q->kind = kind;
    q->table = m->cfg;
    q->json_len = json->len;
    q->json = buf_steal(json);
    q->point_id = xstrndup(k->id.data, k->id.len);
    q->key_text = xstrndup(k->text.data, k->text.len);
    q->lsn = lsn;
    if (kind == QOP_SET_PAYLOAD || kind == QOP_UPDATE_VECTORS || kind == QOP_REFETCH) {
        q->nkeys = k->nvals;
        q->key_vals = xcalloc((size_t)k->nvals, sizeof(char *));
        for (int i = 0; i < k->nvals; i++)
            q->key_vals[i] = xstrdup(k->vals[i]);
    }
}

/* Frees the qops appended since n (an error undoes a partial result). */
static void qops_truncate(qop_list *l, size_t n)
{
    for (size_t i = n; i < l->n; i++)
        qop_free_fields(&l->items[i]);
    l->n = n;
}

static void push_delete(qop_list *out, const table_map *m, const row_key *k, lsn_t lsn)
{
    buf json;

    buf_init(&json);
    buf_puts(&json, "{\"delete\":{\"points\":[");
    buf_append(&json, k->id.data, k->id.len);
    buf_puts(&json, "]}}");
    push_op(out, m, QOP_DELETE, &json, k, lsn);
}

static int vector_to_json(const table_map *m, const map_vec *v, const pgo_datum *d, const row_key *k, buf *out,
                          char *err, size_t errlen)
{
    char why[160];
    int rc;

    if (d->kind != 't') {
        fail(err, errlen, "table %s, key %s: vector column \"%s\" is %s", m->table, k->text.data,
             m->cols[v->col].name, datum_kind_name(d->kind));
        return -1;
    }
    switch (v->kind) {
    case VEC_ARRAY: rc = pgtext_dense_array(out, d->data, d->len, why, sizeof(why)); break;
    case VEC_PGVECTOR: rc = pgtext_pgvector(out, d->data, d->len, why, sizeof(why)); break;
    default: rc = pgtext_sparsevec(out, d->data, d->len, why, sizeof(why)); break;
    }
    if (rc < 0)
        fail(err, errlen, "table %s, key %s: vector column \"%s\": %s", m->table, k->text.data, m->cols[v->col].name,
             why);
    return rc;
}

/* "vector": value of the vectors of tup whose datum is text ('n' and 'u'
 * are left out): [..] for the unnamed one, {"name":..} for named ones. */
static int vectors_to_json(const table_map *m, const pgo_tuple *tup, const row_key *k, buf *out, char *err,
                           size_t errlen)
{
    bool first = true;

    if (!m->named && m->nvecs == 1)
        return vector_to_json(m, &m->vecs[0], &tup->cols[m->vecs[0].col], k, out, err, errlen);
    buf_putc(out, '{');
    for (int i = 0; i < m->nvecs; i++) {
        const pgo_datum *d = &tup->cols[m->vecs[i].col];

        if (d->kind != 't')
            continue;
        if (!first)
            buf_putc(out, ',');
        first = false;
        buf_puts(out, m->vecs[i].json_key);
        if (vector_to_json(m, &m->vecs[i], d, k, out, err, errlen) < 0)
            return -1;
    }
    buf_putc(out, '}');
    return 0;
}

/* {"col":value,...} of the payload columns of tup that are not 'u'. */
static int payload_to_json(const table_map *m, const pgo_tuple *tup, const row_key *k, buf *out, char *err,
                           size_t errlen)
{
    bool first = true;

    buf_putc(out, '{');
    for (int c = 0; c < m->natts; c++) {
        const pgo_datum *d = &tup->cols[c];

        if (!m->cols[c].payload || d->kind == 'u')
            continue;
        if (d->kind != 't' && d->kind != 'n') {
            fail(err, errlen, "table %s, key %s: column \"%s\" is %s", m->table, k->text.data, m->cols[c].name,
                 datum_kind_name(d->kind));
            return -1;
        }
        if (!first)
            buf_putc(out, ',');
        first = false;
        buf_puts(out, m->cols[c].json_key);
        if (d->kind == 'n')
            buf_puts(out, "null");
        else
            pgtext_to_json(out, m->cols[c].rule, d->data, d->len);
    }
    buf_putc(out, '}');
    return 0;
}

typedef struct vec_counts {
    int text, null, unchanged;
} vec_counts;

static vec_counts count_vectors(const table_map *m, const pgo_tuple *tup)
{
    vec_counts n = {0, 0, 0};

    for (int i = 0; i < m->nvecs; i++) {
        char kind = tup->cols[m->vecs[i].col].kind;

        if (kind == 'n')
            n.null++;
        else if (kind == 'u')
            n.unchanged++;
        else
            n.text++;
    }
    return n;
}

/* The whole row: upsert, or delete when every vector column is NULL. */
static int emit_full(const table_map *m, const pgo_tuple *tup, const row_key *k, lsn_t lsn, qop_list *out,
                     map_info *info, char *err, size_t errlen)
{
    buf json;
    int rc = -1;

    if (m->nvecs > 0 && count_vectors(m, tup).null == m->nvecs) {
        info->null_vector = true;
        push_delete(out, m, k, lsn);
        return 0;
    }
    buf_init(&json);
    buf_puts(&json, "{\"upsert\":{\"points\":[{\"id\":");
    buf_append(&json, k->id.data, k->id.len);
    buf_puts(&json, ",\"vector\":");
    if (vectors_to_json(m, tup, k, &json, err, errlen) < 0)
        goto cleanup;
    buf_puts(&json, ",\"payload\":");
    if (payload_to_json(m, tup, k, &json, err, errlen) < 0)
        goto cleanup;
    buf_puts(&json, "}]}}");
    push_op(out, m, QOP_UPSERT, &json, k, lsn);
    rc = 0;
cleanup:
    buf_free(&json);
    return rc;
}

/* An update with unchanged TOASTed columns: update_vectors for the vectors
 * sent, delete_vectors for named vectors set to NULL (kind
 * QOP_UPDATE_VECTORS too), set_payload for the payload columns sent. */
static int emit_partial(const table_map *m, const pgo_tuple *tup, const row_key *k, lsn_t lsn, qop_list *out,
                        map_info *info, char *err, size_t errlen)
{
    vec_counts n = count_vectors(m, tup);
    buf json;
    bool any_payload = false;
    int rc = -1;

    info->partial = true;
    if (m->nvecs > 0 && n.null == m->nvecs) {
        info->null_vector = true;
        push_delete(out, m, k, lsn);
        return 0;
    }
    buf_init(&json);
    if (n.text > 0) {
        buf_puts(&json, "{\"update_vectors\":{\"points\":[{\"id\":");
        buf_append(&json, k->id.data, k->id.len);
        buf_puts(&json, ",\"vector\":");
        if (vectors_to_json(m, tup, k, &json, err, errlen) < 0)
            goto cleanup;
        buf_puts(&json, "}]}}");
        push_op(out, m, QOP_UPDATE_VECTORS, &json, k, lsn);
    }
    if (n.null > 0) {
        /* only named vectors get here: the unnamed one alone is all-NULL */
        buf_puts(&json, "{\"delete_vectors\":{\"points\":[");
        buf_append(&json, k->id.data, k->id.len);
        buf_puts(&json, "],\"vector\":[");
        for (int i = 0, first = 1; i < m->nvecs; i++) {
            if (tup->cols[m->vecs[i].col].kind != 'n')
                continue;
            if (!first)
                buf_putc(&json, ',');
            first = 0;
            buf_json_str(&json, m->vecs[i].name, strlen(m->vecs[i].name));
        }
        buf_puts(&json, "]}}");
        push_op(out, m, QOP_UPDATE_VECTORS, &json, k, lsn);
    }
    for (int c = 0; c < m->natts && !any_payload; c++)
        any_payload = m->cols[c].payload && tup->cols[c].kind != 'u';
    if (any_payload) {
        buf_puts(&json, "{\"set_payload\":{\"payload\":");
        if (payload_to_json(m, tup, k, &json, err, errlen) < 0)
            goto cleanup;
        buf_puts(&json, ",\"points\":[");
        buf_append(&json, k->id.data, k->id.len);
        buf_puts(&json, "]}}");
        push_op(out, m, QOP_SET_PAYLOAD, &json, k, lsn);
    }
    rc = 0;
cleanup:
    buf_free(&json);
    return rc;
}

/* Whether a mapped (payload or vector) column is an unchanged TOASTed
 * value: then the row cannot be upserted whole.  A 'u' in a column the
 * mapping does not use changes nothing. */
static bool has_unchanged(const table_map *m, const pgo_tuple *tup)
{
    for (int c = 0; c < m->natts; c++)
        if (tup->cols[c].kind == 'u' && (m->cols[c].payload || m->cols[c].vec_index >= 0))
            return true;
    return false;
}

static int check_ncols(const table_map *m, const pgo_tuple *tup, char *err, size_t errlen)
{
    if (tup->ncols == m->natts)
        return 0;
    fail(err, errlen, "table %s: tuple has %d columns, the relation %d", m->table, tup->ncols, m->natts);
    return -1;
}

static int change_update(const table_map *m, const pgo_msg *msg, lsn_t lsn, qop_list *out, map_info *info,
                         char *err, size_t errlen)
{
    const pgo_tuple *newtup = &msg->u.change.newtup;
    const pgo_tuple *oldtup = msg->u.change.old_kind ? &msg->u.change.oldtup : NULL;
    row_key nk, ok;
    int rc = -1;

    row_key_init(&nk);
    row_key_init(&ok);
    if (check_ncols(m, newtup, err, errlen) < 0 || (oldtup && check_ncols(m, oldtup, err, errlen) < 0) ||
        row_key_of(m, newtup, oldtup, &nk, err, errlen) < 0)
        goto cleanup;
    if (oldtup) {
        if (row_key_of(m, oldtup, NULL, &ok, err, errlen) < 0)
            goto cleanup;
        if (strcmp(ok.id.data, nk.id.data) != 0) {
            push_delete(out, m, &ok, lsn);
            if (has_unchanged(m, newtup)) {
                /* The new id has no point yet and the row's TOASTed values were
                 * not sent: only Postgres has the whole row. */
                buf none;
                buf_init(&none);
                push_op(out, m, QOP_REFETCH, &none, &nk, lsn);
                buf_free(&none);
                info->partial = true;
                rc = 0;
                goto cleanup;
            }
        }
    }
    if (has_unchanged(m, newtup))
        rc = emit_partial(m, newtup, &nk, lsn, out, info, err, errlen);
    else
        rc = emit_full(m, newtup, &nk, lsn, out, info, err, errlen);
cleanup:
    row_key_free(&nk);
    row_key_free(&ok);
    return rc;
}

/* map_change's and map_row's start and end: info and k reset; on failure
 * (rc < 0) the operations appended since start are taken back. */
static void map_begin(map_info *info, row_key *k)
{
    info->null_vector = false;
    info->partial = false;
    row_key_init(k);
}

static int map_end(qop_list *out, size_t start, map_info *info, row_key *k, int rc)
{
    row_key_free(k);
    if (rc < 0) {
        qops_truncate(out, start);
        info->null_vector = false;
        info->partial = false;
    }
    return rc;
}

int map_change(const table_map *map, const pgo_msg *m, lsn_t lsn, qop_list *out, map_info *info, char *err,
               size_t errlen)
{
    size_t start = out->n;
    row_key k;
    int rc = -1;

    map_begin(info, &k);
    switch (m->type) {
    case PGO_INSERT:
        if (check_ncols(map, &m->u.change.newtup, err, errlen) < 0 ||
            row_key_of(map, &m->u.change.newtup, NULL, &k, err, errlen) < 0)
            break;
        rc = emit_full(map, &m->u.change.newtup, &k, lsn, out, info, err, errlen);
        break;
    case PGO_UPDATE: rc = change_update(map, m, lsn, out, info, err, errlen); break;
    case PGO_DELETE:
        if (!m->u.change.old_kind) {
            fail(err, errlen, "table %s: delete without an old key", map->table);
            break;
        }
        if (check_ncols(map, &m->u.change.oldtup, err, errlen) < 0 ||
            row_key_of(map, &m->u.change.oldtup, NULL, &k, err, errlen) < 0)
            break;
        push_delete(out, map, &k, lsn);
        rc = 0;
        break;
    default: fail(err, errlen, "table %s: message type '%c' is not a row change", map->table, m->type); break;
    }
    return map_end(out, start, info, &k, rc);
}

int map_row(const table_map *map, const pgo_tuple *tup, lsn_t lsn, qop_list *out, map_info *info, char *err,
            size_t errlen)
{
    size_t start = out->n;
    row_key k;
    int rc = -1;

    map_begin(info, &k);
    if (check_ncols(map, tup, err, errlen) == 0 && row_key_of(map, tup, NULL, &k, err, errlen) == 0) {
        if (has_unchanged(map, tup))
            fail(err, errlen, "table %s, key %s: a whole row cannot hold unchanged TOASTed values", map->table,
                 k.text.data);
        else
            rc = emit_full(map, tup, &k, lsn, out, info, err, errlen);
    }
    return map_end(out, start, info, &k, rc);
}

void map_select_sql(const table_map *map, buf *out)
{
    buf_reset(out);
    buf_puts(out, "SELECT ");
    for (int c = 0; c < map->natts; c++) {
        if (c)
            buf_puts(out, ", ");
        buf_quote_ident(out, map->cols[c].name);
    }
    buf_puts(out, " FROM ");
    buf_quote_ident(out, map->cfg->schema);
    buf_putc(out, '.');
    buf_quote_ident(out, map->cfg->name);
    buf_puts(out, " WHERE ");
    for (int i = 0; i < map->nkeys; i++) {
        if (i)
            buf_puts(out, " AND ");
        buf_quote_ident(out, map->cols[map->key_cols[i]].name);
        buf_printf(out, " = $%d", i + 1);
    }
}

int map_natts(const table_map *map)
{
    return map->natts;
}

int map_nkeys(const table_map *map)
{
    return map->nkeys;
}

int map_key_col(const table_map *map, int i)
{
    return map->key_cols[i];
}

void map_truncate(const table_map *map, lsn_t lsn, qop_list *out)
{
    qop *q = qop_list_push(out);

    q->kind = QOP_DELETE_ALL;
    q->table = map->cfg;
    q->json = xstrdup("{\"delete\":{\"filter\":{}}}");
    q->json_len = strlen(q->json);
    q->lsn = lsn;
}
