/*
 * reconcile.h — `pg2qdrant reconcile`: compare each table with its
 * collection (SPEC §1, docs/reconcile.md).
 *
 *   missing   a row whose mapping yields a point, and the collection has no
 *             point with that id;
 *   orphaned  a point whose id no row yields (its row is gone, or the row's
 *             vector is NULL so it must have no point);
 *   stale     both exist but the payload or the vector differs from what
 *             the mapping produces for the row.
 *
 * Per table: the collection is scrolled first and every point kept as
 * id -> (32-bit payload digest, 29-bit vector digest) in a compact
 * open-addressing table (24 bytes a point); then the rows are read from one
 * REPEATABLE READ snapshot, mapped with map_row and looked up.  Digests are
 * computed over a canonical form of the JSON (object keys unordered,
 * numbers by value, vectors as float32, Cosine vectors normalised), so a
 * digest match means equal.  A vector digest mismatch alone is confirmed
 * by retrieving those points and comparing with a tolerance (Qdrant's own
 * normalisation may differ in the last bits).  --fix upserts missing and
 * stale rows and deletes orphaned points through the sink; while a process
 * holds the config's slot (a `run` streams the same tables) it hands the keys
 * of those rows and points to that `run` as keyed backfill requests instead
 * (backfill.h), so no repair races the stream (SPEC §9).
 */
#ifndef P2Q_RECONCILE_H
#define P2Q_RECONCILE_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "status.h"

typedef enum { RECON_TEXT, RECON_JSON } recon_output;

typedef struct recon_options {
    char *const *tables; /* --table names (borrowed); ntables == 0: every configured table */
    int ntables;
    bool fix;
    int64_t timeout_ms; /* --fix with an active slot and [http] listen: how long to wait; 0 = no limit */
    recon_output output;
} recon_options;

/*
 * Runs the comparison (and the repair with opt->fix), writes the report to
 * stdout, logs progress and errors to stderr.  Returns P2Q_OK with *drift_left
 * set when drift was found and not fixed, or P2Q_ERR_CONFIG (any error,
 * logged).  main.c makes the exit code: 0 in sync (or everything fixed, or
 * handed over: done, or written when there is no [http] listen to follow),
 * 1 drift found and not fixed (an orphan whose key cannot be recovered, a
 * handed-over request that failed or timed out), 2 error.
 */
p2q_status recon_command(const p2q_config *cfg, const recon_options *opt, volatile sig_atomic_t *stop,
                         bool *drift_left);

/* ---- canonical digests (exported for the unit tests) ------------------- */

/* Which vectors of a collection use the Cosine distance (normalised by
 * Qdrant on write). */
typedef struct recon_space {
    char **cosine; /* owned: names of Cosine dense vectors ("" = the unnamed one) */
    int ncosine;
} recon_space;

void recon_space_free(recon_space *sp);
bool recon_space_is_cosine(const recon_space *sp, const char *name);

/* Digest of a payload object: keys unordered; integers and integral
 * floats below 2^63 by integer value, other numbers by their double; NULL
 * (absent payload) equals {}. */
uint64_t recon_payload_digest(const json_t *payload);

/* Digest of a point's "vector" value: an array (the unnamed vector) or an
 * object of named dense ({name: [..]}) and sparse ({name: {"indices",
 * "values"}}) vectors; values as float32, Cosine vectors normalised in
 * float32 the way Qdrant does, sparse vectors ordered by index.  NULL
 * equals {}. */
uint64_t recon_vector_digest(const json_t *vector, const recon_space *sp);

/* Comparison of two payloads (expected from the mapping, actual from
 * Qdrant): the same keys and values, numbers equal as integers or within
 * a few ulps as doubles (Qdrant's JSON parser may land an ulp off the
 * nearest double), NULL and {} alike. */
bool recon_payload_equal(const json_t *expected, const json_t *actual);

/* Tolerant comparison of two "vector" values (expected from the mapping,
 * actual from Qdrant): true when equal under docs/reconcile.md's rules. */
bool recon_vectors_equal(const json_t *expected, const json_t *actual, const recon_space *sp);

#endif
