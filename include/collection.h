/*
 * collection.h — creating a table's Qdrant collection (`[qdrant]
 * create_collections = true`, SPEC §2; issue 3).
 *
 * The vector parameters come from the table's vector columns: a dense
 * column's size from its type (pgvector typmod), its first non-NULL row
 * (both found by preflight_prepare at start) or, for a table that was
 * empty at start, from the first upsert sent for it; a sparsevec column
 * becomes a sparse vector.  The distance is the table's `distance` key.
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
 * success.  Returns 0, or -1 with err (no secret in it) and *transient set
 * when Qdrant was unreachable or answered 408/429/5xx.
 */
int collection_create(qd_client *qd, const table_cfg *t, const int64_t *dims, bool *transient, char *err,
                      size_t errlen);

#endif
