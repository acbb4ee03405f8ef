/*
 * row_to_point.h — SPEC §3: a decoded row change becomes Qdrant operations.
 *
 * map_compile() resolves, once per Relation message, the table section of
 * the config against the relation's columns: the key columns, the vector
 * columns and their kinds, the payload columns and the JSON rule of each
 * column's type.  map_change() then turns one Insert/Update/Delete into
 * qops, and map_truncate() a Truncate.  Pure: no I/O, no logging.
 */
#ifndef P2Q_ROW_TO_POINT_H
#define P2Q_ROW_TO_POINT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "pgoutput.h"
#include "qop.h"
#include "relcache.h"
#include "util.h"

typedef struct table_map table_map;

/*
 * Compiles the mapping of rel under cfg.  types resolves user-defined type
 * OIDs (pgvector's vector/halfvec/sparsevec) to names.
 *   returns 0 and *out = NULL    the table has no [table] section: skip it;
 *   returns 0 and *out != NULL   owned by the caller (map_free);
 *   returns -1                   the config cannot apply to this relation
 *                                (key or vector column missing, a key
 *                                column outside the replica identity, a
 *                                vector column of an unsupported type,
 *                                REPLICA IDENTITY NOTHING, FULL without an
 *                                explicit id): message in err names the
 *                                table and column.
 */
int map_compile(const p2q_config *cfg, const rel_entry *rel, const relcache *types, table_map **out, char *err,
                size_t errlen);
void map_free(table_map *m);
const table_cfg *map_table(const table_map *m);

typedef struct map_info {
    bool null_vector; /* the row had a NULL vector, so the change became a delete */
    bool partial;     /* unchanged TOASTed columns: set_payload/update_vectors were used */
} map_info;

/*
 * Turns an Insert, Update or Delete (m->type 'I', 'U', 'D') into qops
 * appended to out, in the order they must be applied:
 *   Insert                -> upsert (or delete when the vector is NULL)
 *   Update, all present   -> [delete old id if the key changed] upsert
 *   Update with 'u' cols  -> [update_vectors] [set_payload]  (nothing when neither changed)
 *   same, key changed     -> delete old id, refetch new key (QOP_REFETCH)
 *   Delete                -> delete by the old key
 * Returns 0, or -1 with a message in err naming the table, key and column
 * (a vector that is not a one-dimensional array of finite numbers, an empty
 * key, ...).  On error nothing is appended.
 */
int map_change(const table_map *map, const pgo_msg *m, lsn_t lsn, qop_list *out, map_info *info, char *err,
               size_t errlen);

/*
 * A whole row read back from Postgres (every datum 't' or 'n', in the
 * relation's column order) -> upsert, or delete when its vector is NULL:
 * how the sink resolves QOP_REFETCH and a partial update whose point is
 * missing.  Returns 0, or -1 with err as map_change.
 */
int map_row(const table_map *map, const pgo_tuple *tup, lsn_t lsn, qop_list *out, map_info *info, char *err,
            size_t errlen);

/*
 * The query that reads one row back by key, into out:
 *   SELECT "c1", "c2", ... FROM "schema"."name" WHERE "k1" = $1 AND ...
 * (the relation's columns in order; $i are the key columns' text forms,
 * qop.key_vals).  Run it with text results on a connection with
 * REPL_SESSION_OPTIONS so the text forms equal pgoutput's.
 */
void map_select_sql(const table_map *map, buf *out);
int map_natts(const table_map *map);
/* The key columns: how many, and the column index (in the relation's
 * order) of the i-th, in key order. */
int map_nkeys(const table_map *map);
int map_key_col(const table_map *map, int i);

/* Truncate -> one QOP_DELETE_ALL. */
void map_truncate(const table_map *map, lsn_t lsn, qop_list *out);

/*
 * The point id of a key, SPEC §3 (exported for tests and for the later
 * snapshot/reconcile commands).  key_typids/key_texts: the key columns'
 * type OIDs and text forms (NUL-terminated).  Writes the id as JSON into
 * out (an integer, or a quoted lowercase hyphenated UUID).
 */
void map_point_id(int nkeys, const uint32_t *key_typids, const char *const *key_texts, bool force_uuid5, buf *out);

/* UUIDv5 (RFC 4122, SHA-1) of name in the namespace ns (16 bytes);
 * writes 36 chars + NUL into out. */
void uuid5(const unsigned char ns[16], const char *name, size_t len, char out[37]);

/* SHA-1 (FIPS 180-4) of data[0..len) into out (used by uuid5). */
void sha1(const void *data, size_t len, unsigned char out[20]);

#endif
