/*
 * pgtext.h — PostgreSQL output-function text forms to JSON (SPEC §3).
 *
 * Every function appends JSON directly to a buf: no intermediate trees.
 * Inputs are the text forms pgoutput sends (pgo_datum kind 't'), which are
 * NOT NUL-terminated: always a pointer and a length.  The connection sets
 * DateStyle=ISO, TimeZone=UTC, bytea_output=hex, extra_float_digits=3 and
 * IntervalStyle=postgres, but the conversions do not rely on TimeZone or
 * bytea_output.  Pure: no I/O, no logging.  docs/mapping.md has the rules.
 */
#ifndef P2Q_PGTEXT_H
#define P2Q_PGTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* How one scalar value becomes JSON. */
typedef enum pgt_kind {
    PGT_STRING,      /* the text form as a JSON string (text, enum, uuid, date, ...) */
    PGT_BOOL,        /* t/f -> true/false */
    PGT_INT,         /* int2/int4/int8/oid -> integer */
    PGT_FLOAT,       /* float4/float8 -> number; NaN/Infinity/-Infinity -> string */
    PGT_NUMERIC,     /* numeric -> number when finite and within double range, else string */
    PGT_JSON,        /* json/jsonb -> the value itself */
    PGT_TIMESTAMP,   /* YYYY-MM-DD HH:MM:SS[.f] -> YYYY-MM-DDTHH:MM:SS[.f] */
    PGT_TIMESTAMPTZ, /* ... +HH[:MM[:SS]] -> RFC 3339 in UTC with Z */
    PGT_BYTEA,       /* \x hex (or escape format) -> base64 */
} pgt_kind;

/* The JSON rule of a column type: a scalar kind, or an array of it. */
typedef struct pgt_rule {
    pgt_kind kind; /* of the value, or of each element when array */
    bool array;    /* the text form is an array literal: {..} -> nested JSON arrays */
} pgt_rule;

/*
 * The rule for a column of type typid.  udt_name is the bare type name from
 * a Type message (relcache_type_name), NULL for built-in types: a name
 * starting with '_' is an array of a user-defined type (array of strings).
 * Unknown types map to PGT_STRING.
 */
pgt_rule pgtext_rule(uint32_t typid, const char *udt_name);

/*
 * Appends the JSON value of the text form s[0..n) under rule.  Never fails:
 * a text that does not have the shape the rule expects ('infinity', a BC
 * date, a malformed array literal) is written as a JSON string of the text.
 */
void pgtext_to_json(buf *out, pgt_rule rule, const char *s, size_t n);

/*
 * Vectors.  Each appends a Qdrant vector and returns 0, or returns -1 with
 * the reason in err (e.g. "NULL element at position 3") and out unchanged.
 *
 * pgtext_dense_array: a one-dimensional array literal of real, double
 *   precision, numeric or integer ("{1.5,2,-3e-05}", optionally "[1:3]="
 *   decorated) -> [1.5,2,-3e-05].  Empty, multi-dimensional, NULL or
 *   non-finite elements are errors.
 * pgtext_pgvector: pgvector vector/halfvec text "[1,2,3]" -> [1,2,3].
 * pgtext_sparsevec: pgvector sparsevec text "{1:0.5,7:0.2}/10" ->
 *   {"indices":[0,6],"values":[0.5,0.2]} (1-based to 0-based).
 */
int pgtext_dense_array(buf *out, const char *s, size_t n, char *err, size_t errlen);
int pgtext_pgvector(buf *out, const char *s, size_t n, char *err, size_t errlen);
int pgtext_sparsevec(buf *out, const char *s, size_t n, char *err, size_t errlen);

#endif
