/*
 * qop.h — one Qdrant point operation, already serialised.
 *
 * row_to_point turns a decoded change into qops; the sink concatenates their
 * json into {"operations":[...]} for POST /collections/{c}/points/batch.
 * Keeping each operation as its own JSON text makes batching by size,
 * isolating a failing operation and writing a dead-letter line cheap.
 */
#ifndef P2Q_QOP_H
#define P2Q_QOP_H

#include <stddef.h>

#include "config.h"
#include "lsn.h"

typedef enum qop_kind {
    QOP_UPSERT,         /* {"upsert":{"points":[{"id":..,"vector":..,"payload":{..}}]}} */
    QOP_DELETE,         /* {"delete":{"points":[id]}} */
    QOP_SET_PAYLOAD,    /* {"set_payload":{"payload":{..},"points":[id]}}  (partial update) */
    QOP_UPDATE_VECTORS, /* {"update_vectors":{"points":[{"id":..,"vector":..}]}} (partial update) */
    QOP_DELETE_ALL,     /* {"delete":{"filter":{}}}  (truncate) */
    QOP_REFETCH,        /* no JSON: the sink reads the row by key from Postgres and upserts it whole
                         * (a key change whose new row has unchanged TOASTed columns) */
} qop_kind;

typedef struct qop {
    qop_kind kind;
    const table_cfg *table; /* borrowed from the config, which outlives every qop */
    char *json;             /* owned: one UpdateOperation object */
    size_t json_len;
    char *point_id;         /* owned: the id as JSON (42 or "8c1f...-..."); NULL for QOP_DELETE_ALL */
    char *key_text;         /* owned: the key for messages, e.g. article_id=A-1; NULL for QOP_DELETE_ALL */
    lsn_t lsn;              /* LSN of the change */
    char **key_vals;        /* owned: the key columns' text forms (nkeys), for partial updates and
                             * QOP_REFETCH, so the sink can read the row back; else NULL */
    int nkeys;
    char *collection;       /* owned: the target collection when not table->collection (a rebuild's new
                             * generation, docs/rebuild.md); NULL: table->collection */
} qop;

typedef struct qop_list {
    qop *items;
    size_t n;
    size_t cap;
} qop_list;

/* Appends a zeroed qop and returns it (valid until the next push). */
qop *qop_list_push(qop_list *l);
/* Frees the owned fields of one item and zeroes it. */
void qop_free_fields(qop *q);
/* Frees the owned fields of every item; keeps the array. */
void qop_list_clear(qop_list *l);
void qop_list_free(qop_list *l);
const char *qop_kind_name(qop_kind k);
/* The collection op is written to: op->collection, else its table's. */
const char *qop_collection(const qop *op);
/* A deep copy of src into dst (every owned field duplicated), with
 * collection set to a copy of collection (NULL: src's). */
void qop_copy(qop *dst, const qop *src, const char *collection);

#endif
