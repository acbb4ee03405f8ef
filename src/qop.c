/*
 * qop.c — the list of serialised Qdrant point operations.
 */
#include "qop.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

qop *qop_list_push(qop_list *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->items = xrealloc(l->items, l->cap * sizeof(qop));
    }
    memset(&l->items[l->n], 0, sizeof(qop));
    return &l->items[l->n++];
}

void qop_free_fields(qop *q)
{
    free(q->json);
    free(q->point_id);
    free(q->key_text);
    for (int k = 0; k < q->nkeys; k++)
        free(q->key_vals[k]);
    free(q->key_vals);
    free(q->collection);
    memset(q, 0, sizeof *q);
}

void qop_list_clear(qop_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        qop_free_fields(&l->items[i]);
    l->n = 0;
}

void qop_list_free(qop_list *l)
{
    qop_list_clear(l);
    free(l->items);
    l->items = NULL;
    l->cap = 0;
}

const char *qop_kind_name(qop_kind k)
{
    switch (k) {
    case QOP_UPSERT: return "upsert";
    case QOP_DELETE: return "delete";
    case QOP_SET_PAYLOAD: return "set_payload";
    case QOP_UPDATE_VECTORS: return "update_vectors";
    case QOP_DELETE_ALL: return "delete_all";
    case QOP_REFETCH: return "refetch";
    }
    return "unknown";
}

const char *qop_collection(const qop *op)
{
    return op->collection ? op->collection : op->table->collection;
}

void qop_copy(qop *dst, const qop *src, const char *collection)
{
    *dst = *src;
    dst->json = NULL;
    if (src->json) {
        dst->json = xmalloc(src->json_len + 1);
        memcpy(dst->json, src->json, src->json_len);
        dst->json[src->json_len] = '\0';
    }
    dst->point_id = src->point_id ? xstrdup(src->point_id) : NULL;
    dst->key_text = src->key_text ? xstrdup(src->key_text) : NULL;
    dst->key_vals = NULL;
    if (src->key_vals) {
        dst->key_vals = xcalloc((size_t)src->nkeys + 1, sizeof(char *));
        for (int k = 0; k < src->nkeys; k++)
            dst->key_vals[k] = src->key_vals[k] ? xstrdup(src->key_vals[k]) : NULL;
    }
    collection = collection ? collection : src->collection;
    dst->collection = collection ? xstrdup(collection) : NULL;
}
