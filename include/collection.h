/*
 * collection.h — creating a table's Qdrant collection (`[qdrant]
 * create_collections = true`, SPEC §2; issue 3).
 *
 * The vector parameters come from the table's vector columns: a dense
 * column's size from its type (pgvector typmod), its first non-NULL row
 * (both found by preflight_prepare at start) or, for a table that was
 * empty at start, from the first upsert sent for it; a sparsevec column
 * becomes a sparse vector.  The distance is the table's `distance` key.
 * With `[table] alias = true` the collection is generation 1 behind the
 * alias (SPEC §10).  Also the alias helpers shared by preflight, the
 * rebuild and its command, and the check of `[table] create_params`.
 */
#ifndef P2Q_COLLECTION_H
#define P2Q_COLLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "qdrant_client.h"
#include "qop.h"
#include "util.h"

/* dims[i] describes t->vectors[i]: > 0 a dense size, 0 a sparse vector,
 * < 0 unknown. */

/* The CreateCollection body for t into out (every dims[i] known).  Pure. */
void collection_body(const table_cfg *t, const int64_t *dims, buf *out);

/*
 * Reads the vector sizes from an upsert operation's JSON (one point) into
 * dims (t->n_vectors entries); a vector the point lacks (NULL column)
 * stays as it was.  Returns 0, or -1 with err when op is not an upsert or
 * its JSON is not what row_to_point writes.  Pure.
 */
int collection_dims_from_upsert(const qop *op, int64_t *dims, char *err, size_t errlen);

/*
 * Creates t's collection (PUT /collections/{c}); an existing one (409) is
 * success.  With `[table] alias = true` (SPEC §10) the collection is
 * generation 1, <alias>_g1 (rb_generation_name), made from create_params
 * when set (dims then unused) or else from dims, and the alias is created
 * for it in one POST /collections/aliases; a <alias>_g1 that exists
 * already is taken only when it holds no point (a run killed between the
 * two calls), else it is an error (never an old generation behind the
 * alias).  Returns 0, or -1 with err (no secret in it) and *transient set
 * when Qdrant was unreachable or answered 408/429/5xx.
 */
int collection_create(qd_client *qd, const table_cfg *t, const int64_t *dims, bool *transient, char *err,
                      size_t errlen);

/*
 * GET /aliases: every alias's name is appended to names and the collection
 * it points to to targets (same index; either may be NULL).  Returns 0, or
 * -1 with res describing the failure (the caller clears res either way).
 */
int collection_aliases(qd_client *qd, strlist *names, strlist *targets, qd_result *res);
/* The same lists from GET /aliases's result (an answer already in).  Pure. */
void collection_aliases_parse(const json_t *result, strlist *names, strlist *targets);

/* The collection alias points to, from lists filled by collection_aliases;
 * NULL when alias is not among names.  Pure; the result is borrowed. */
const char *collection_alias_target(const strlist *names, const strlist *targets, const char *alias);

/* The steps of docs/operations.md "Move a plain collection behind an
 * alias" for t's plain collection, one line.  Caller frees.  Pure. */
char *collection_alias_steps(const table_cfg *t);

/*
 * Checks t->create_params (a JSON object text, set) against t's vector
 * mappings: one unnamed `vector = col` needs "vectors": {"size",
 * "distance"}; named ones need "vectors": {name: {"size", "distance"}} for
 * a dense column and "sparse_vectors": {name: {...}} for a sparsevec one.
 * dims[i] for t->vectors[i]: > 0 a dense size (compared with "size"), 0 a
 * sparse vector, -1 dense of unknown size, -2 kind unknown (only the name
 * is looked for).  Appends one message per difference to problems, each
 * naming the table, create_params and the key; returns their count.  Pure.
 */
int collection_check_params(const table_cfg *t, const int64_t *dims, strlist *problems);

#endif
