/*
 * backfill_wm.c — the online backfill's messages and watermark window,
 * pure (backfill_wm.h, docs/backfill.md).
 */
#include "backfill_wm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bfm_list_free(bfm_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

void bfm_list_copy(bfm_list *dst, const char *const *v, int n, bool has)
{
    memset(dst, 0, sizeof *dst);
    dst->has = has;
    if (n <= 0)
        return;
    dst->v = xcalloc((size_t)n, sizeof *dst->v);
    for (int i = 0; i < n; i++)
        dst->v[i] = xstrdup(v[i]);
    dst->n = n;
}

void bfm_keyset_free(bfm_keyset *k)
{
    if (k->v)
        for (size_t i = 0; i < k->n * (size_t)k->arity; i++)
            free(k->v[i]);
    free(k->v);
    free(k->table);
    memset(k, 0, sizeof *k);
}

bfm_keyset *bfm_keysets_take(bfm_keyset *ks, int n)
{
    bfm_keyset *out = xcalloc((size_t)(n > 0 ? n : 1), sizeof *out);

    for (int i = 0; i < n; i++) {
        out[i] = ks[i];
        memset(&ks[i], 0, sizeof ks[i]);
    }
    return out;
}

void bfm_free(bfm *m)
{
    for (int i = 0; i < m->nkeys; i++)
        bfm_keyset_free(&m->keys[i]);
    free(m->keys);
    free(m->slot);
    free(m->id);
    free(m->run);
    free(m->table);
    free(m->collection);
    bfm_list_free(&m->tables);
    bfm_list_free(&m->from);
    bfm_list_free(&m->to);
    memset(m, 0, sizeof *m);
}

static int get_str(json_t *o, const char *key, bool required, char **out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);

    if (!v && !required)
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "\"%s\" %s", key, v ? "is not a string" : "is missing");
        return -1;
    }
    *out = xstrdup(json_string_value(v));
    return 0;
}

/* An array of strings, or null / missing (has = false). */
static int get_list(json_t *o, const char *key, bfm_list *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    size_t i;
    json_t *e;

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        snprintf(err, errlen, "\"%s\" is not an array", key);
        return -1;
    }
    out->has = true;
    out->v = xcalloc(json_array_size(v) + 1, sizeof *out->v);
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e)) {
            snprintf(err, errlen, "\"%s\" holds something other than strings", key);
            return -1;
        }
        out->v[out->n++] = xstrdup(json_string_value(e));
    }
    return 0;
}

/* "keys": {"table": [[text, ...], ...], ...}, or missing. */
static int get_keys(json_t *o, bfm *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, "keys"), *arr;
    const char *table;

    if (!v)
        return 0;
    if (!json_is_object(v)) {
        snprintf(err, errlen, "\"keys\" is not an object");
        return -1;
    }
    out->keyed = true;
    out->keys = xcalloc(json_object_size(v) + 1, sizeof *out->keys);
    json_object_foreach (v, table, arr) {
        bfm_keyset *k = &out->keys[out->nkeys++];
        size_t i, j;
        json_t *key, *t;

        k->table = xstrdup(table);
        if (!json_is_array(arr)) {
            snprintf(err, errlen, "\"keys\" of %.100s is not an array", table);
            return -1;
        }
        k->v = xcalloc(1, sizeof *k->v);
        json_array_foreach (arr, i, key) {
            if (!json_is_array(key) || json_array_size(key) == 0) {
                snprintf(err, errlen, "a key of %.100s in \"keys\" is not a non-empty array", table);
                return -1;
            }
            if (i == 0) {
                k->arity = (int)json_array_size(key);
                free(k->v);
                k->v = xcalloc(json_array_size(arr) * json_array_size(key), sizeof *k->v);
            } else if (json_array_size(key) != (size_t)k->arity) {
                snprintf(err, errlen, "the keys of %.100s in \"keys\" differ in their number of columns", table);
                return -1;
            }
            json_array_foreach (key, j, t) {
                if (!json_is_string(t)) {
                    snprintf(err, errlen, "a key of %.100s in \"keys\" holds something other than strings", table);
                    return -1;
                }
            }
            json_array_foreach (key, j, t)
                k->v[k->n * (size_t)k->arity + j] = xstrdup(json_string_value(t));
            k->n++;
        }
    }
    return 0;
}

static int get_u64(json_t *o, const char *key, bool required, uint64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);

    if (!v && !required)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        snprintf(err, errlen, "\"%s\" %s", key, v ? "is not a non-negative integer" : "is missing");
        return -1;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int bfm_parse(const char *content, size_t len, bfm *out, char *err, size_t errlen)
{
    json_error_t je;
    json_t *o = json_loadb(content, len, JSON_REJECT_DUPLICATES, &je);
    const char *type;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (!o || !json_is_object(o)) {
        snprintf(err, errlen, "not a JSON object%s%s", o ? "" : ": ", o ? "" : je.text);
        goto cleanup;
    }
    type = json_string_value(json_object_get(o, "type"));
    if (!type) {
        snprintf(err, errlen, "\"type\" is missing or not a string");
        goto cleanup;
    }
    if (get_str(o, "slot", true, &out->slot, err, errlen) != 0 || get_str(o, "id", true, &out->id, err, errlen) != 0 ||
        get_list(o, "tables", &out->tables, err, errlen) != 0)
        goto cleanup;
    if (!out->id[0]) {
        snprintf(err, errlen, "\"id\" is empty");
        goto cleanup;
    }
    if (strcmp(type, "backfill") == 0) {
        out->kind = BFM_REQUEST;
        if (get_keys(o, out, err, errlen) != 0)
            goto cleanup;
    } else if (strcmp(type, "wm") == 0) {
        char *phase = NULL;
        if (get_str(o, "phase", true, &phase, err, errlen) != 0)
            goto cleanup;
        out->kind = strcmp(phase, "low") == 0 ? BFM_LOW : BFM_HIGH;
        if (strcmp(phase, "low") != 0 && strcmp(phase, "high") != 0) {
            snprintf(err, errlen, "unknown watermark phase");
            free(phase);
            goto cleanup;
        }
        free(phase);
        if (get_str(o, "run", true, &out->run, err, errlen) != 0 ||
            get_u64(o, "chunk", true, &out->chunk, err, errlen) != 0 ||
            get_str(o, "table", true, &out->table, err, errlen) != 0 ||
            get_list(o, "from", &out->from, err, errlen) != 0 || get_list(o, "to", &out->to, err, errlen) != 0 ||
            get_u64(o, "rows", false, &out->rows, err, errlen) != 0)
            goto cleanup;
        out->keyed = json_is_true(json_object_get(o, "keyed"));
        if (get_str(o, "collection", false, &out->collection, err, errlen) != 0)
            goto cleanup;
    } else if (strcmp(type, "rebuild") == 0) {
        out->kind = BFM_REBUILD;
        if (out->tables.n == 0) {
            snprintf(err, errlen, "\"tables\" of a rebuild request is missing or empty");
            goto cleanup;
        }
    } else {
        snprintf(err, errlen, "unknown \"type\"");
        goto cleanup;
    }
    rc = 0;
cleanup:
    json_decref(o);
    return rc;
}

static json_t *list_json(const bfm_list *l)
{
    json_t *a;

    if (!l->has)
        return json_null();
    a = json_array();
    for (int i = 0; i < l->n; i++)
        json_array_append_new(a, json_string(l->v[i]));
    return a;
}

static void dump(buf *out, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

    if (s)
        buf_puts(out, s);
    free(s);
    json_decref(o);
}

void bfm_format_request(buf *out, const char *slot, const char *id, const char *const *tables, int ntables,
                        const bfm_keyset *keys, int nkeys)
{
    json_t *o = json_object(), *a = json_array();

    for (int i = 0; i < ntables; i++)
        json_array_append_new(a, json_string(tables[i]));
    json_object_set_new(o, "type", json_string("backfill"));
    json_object_set_new(o, "slot", json_string(slot));
    json_object_set_new(o, "tables", a);
    if (nkeys > 0) {
        json_t *ko = json_object();
        for (int t = 0; t < nkeys; t++) {
            json_t *ka = json_array();
            for (size_t i = 0; i < keys[t].n; i++) {
                json_t *key = json_array();
                for (int c = 0; c < keys[t].arity; c++)
                    json_array_append_new(key, json_string(keys[t].v[i * (size_t)keys[t].arity + (size_t)c]));
                json_array_append_new(ka, key);
            }
            json_object_set_new(ko, keys[t].table, ka);
        }
        json_object_set_new(o, "keys", ko);
    }
    json_object_set_new(o, "id", json_string(id));
    dump(out, o);
}

void bfm_format_wm(buf *out, const bfm *m)
{
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string("wm"));
    json_object_set_new(o, "phase", json_string(m->kind == BFM_LOW ? "low" : "high"));
    json_object_set_new(o, "slot", json_string(m->slot));
    json_object_set_new(o, "id", json_string(m->id));
    json_object_set_new(o, "run", json_string(m->run));
    json_object_set_new(o, "chunk", json_integer((json_int_t)m->chunk));
    json_object_set_new(o, "table", json_string(m->table));
    json_object_set_new(o, "tables", list_json(&m->tables));
    json_object_set_new(o, "from", list_json(&m->from));
    if (m->kind == BFM_HIGH) {
        json_object_set_new(o, "to", list_json(&m->to));
        json_object_set_new(o, "rows", json_integer((json_int_t)m->rows));
    }
    if (m->keyed)
        json_object_set_new(o, "keyed", json_true());
    if (m->collection)
        json_object_set_new(o, "collection", json_string(m->collection));
    dump(out, o);
}

void bfm_format_rebuild(buf *out, const char *slot, const char *id, const char *const *tables, int ntables)
{
    json_t *o = json_object(), *a = json_array();

    for (int i = 0; i < ntables; i++)
        json_array_append_new(a, json_string(tables[i]));
    json_object_set_new(o, "type", json_string("rebuild"));
    json_object_set_new(o, "slot", json_string(slot));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "tables", a);
    dump(out, o);
}

/* ---- the window ------------------------------------------------------------ */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static size_t find_slot(char **slots, size_t cap, const char *s)
{
    size_t i = (size_t)hash_str(s) & (cap - 1);

    while (slots[i] && strcmp(slots[i], s) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

static void set_add(bf_window *w, const char *s)
{
    size_t i;

    if ((w->n + 1) * 2 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        char **slots = xcalloc(cap, sizeof *slots);
        for (size_t j = 0; j < w->cap; j++)
            if (w->slots[j])
                slots[find_slot(slots, cap, w->slots[j])] = w->slots[j];
        free(w->slots);
        w->slots = slots;
        w->cap = cap;
    }
    i = find_slot(w->slots, w->cap, s);
    if (!w->slots[i]) {
        w->slots[i] = xstrdup(s);
        w->n++;
    }
}

void bfw_open(bf_window *w, const table_cfg *table)
{
    bfw_close(w);
    w->table = table;
}

void bfw_observe(bf_window *w, const qop *op)
{
    if (!w->table || op->table != w->table)
        return;
    if (op->kind == QOP_DELETE_ALL || !op->point_id)
        w->truncated = true;
    else
        set_add(w, op->point_id);
}

bool bfw_changed(const bf_window *w, const char *point_id)
{
    if (w->truncated)
        return true;
    if (w->cap == 0 || !point_id)
        return false;
    return w->slots[find_slot(w->slots, w->cap, point_id)] != NULL;
}

size_t bfw_filter(bf_window *w, qop_list *chunk)
{
    size_t kept = 0, dropped = 0;

    for (size_t i = 0; i < chunk->n; i++) {
        if (bfw_changed(w, chunk->items[i].point_id)) {
            qop_free_fields(&chunk->items[i]);
            dropped++;
        } else {
            chunk->items[kept++] = chunk->items[i];
        }
    }
    chunk->n = kept;
    bfw_close(w);
    return dropped;
}

void bfw_close(bf_window *w)
{
    for (size_t i = 0; i < w->cap; i++)
        free(w->slots[i]);
    if (w->cap > 1024) { /* a busy window: give the memory back */
        free(w->slots);
        w->slots = NULL;
        w->cap = 0;
    } else if (w->cap) {
        memset(w->slots, 0, w->cap * sizeof *w->slots);
    }
    w->n = 0;
    w->table = NULL;
    w->truncated = false;
}

void bfw_free(bf_window *w)
{
    bfw_close(w);
    free(w->slots);
    memset(w, 0, sizeof *w);
}

/* ---- commit visibility ------------------------------------------------------ */

/* xid a precedes b, modulo 2^32 (TransactionIdPrecedes for normal xids) */
static bool xid_precedes(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static bool parse_xid(const char **p, uint32_t *out)
{
    char *end;
    unsigned long long v;

    if (**p < '0' || **p > '9')
        return false;
    v = strtoull(*p, &end, 10);
    *out = (uint32_t)v; /* the low 32 bits of an xid8 */
    *p = end;
    return true;
}

void bfs_free(bf_snapshot *s)
{
    free(s->xip);
    memset(s, 0, sizeof *s);
}

int bfs_parse(bf_snapshot *s, const char *text)
{
    const char *p = text;
    size_t cap = 0;

    bfs_free(s);
    if (!p || !parse_xid(&p, &s->xmin) || *p++ != ':' || !parse_xid(&p, &s->xmax) || *p++ != ':')
        goto bad;
    while (*p) {
        uint32_t x;
        if (!parse_xid(&p, &x))
            goto bad;
        if ((size_t)s->nxip == cap) {
            cap = cap ? cap * 2 : 16;
            s->xip = xrealloc(s->xip, cap * sizeof *s->xip);
        }
        s->xip[s->nxip++] = x;
        if (*p == ',')
            p++;
        else if (*p)
            goto bad;
    }
    s->valid = true;
    return 0;
bad:
    bfs_free(s);
    return -1;
}

bool bfs_visible(const bf_snapshot *s, uint32_t xid)
{
    if (xid < 3) /* bootstrap/frozen xids */
        return true;
    if (xid_precedes(xid, s->xmin))
        return true;
    if (!xid_precedes(xid, s->xmax))
        return false;
    for (int i = 0; i < s->nxip; i++)
        if (s->xip[i] == xid)
            return false;
    return true;
}

void bfr_add(bf_ring *r, uint32_t xid)
{
    if (!r->xids)
        r->xids = xcalloc(BF_RING_XIDS, sizeof *r->xids);
    r->xids[r->n % BF_RING_XIDS] = xid;
    r->n++;
}

bool bfr_invisible_before(const bf_ring *r, uint64_t upto, const bf_snapshot *s, uint32_t *xid)
{
    uint64_t first = r->n > BF_RING_XIDS ? r->n - BF_RING_XIDS : 0;

    if (upto > r->n)
        upto = r->n;
    for (uint64_t i = first; i < upto; i++) {
        uint32_t x = r->xids[i % BF_RING_XIDS];
        if (!bfs_visible(s, x)) {
            *xid = x;
            return true;
        }
    }
    return false;
}

void bfr_free(bf_ring *r)
{
    free(r->xids);
    memset(r, 0, sizeof *r);
}
