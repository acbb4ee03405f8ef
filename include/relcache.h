/*
 * relcache.h — the client-side copy of pgoutput's Relation and Type messages.
 *
 * A Relation message for an OID already cached REPLACES the entry (pgoutput
 * re-sends it after every relcache invalidation, and after DDL).  Each entry
 * may carry the compiled table mapping (struct table_map, see row_to_point.h);
 * it is freed with the entry through the free_map callback given to
 * relcache_new.
 */
#ifndef P2Q_RELCACHE_H
#define P2Q_RELCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "pgoutput.h"

struct table_map;

typedef struct rel_attr {
    char *name;
    uint32_t typid;
    int32_t typmod;
    bool is_key; /* flag 1 of the Relation message: replica identity column */
} rel_attr;

typedef struct rel_entry {
    uint32_t relid;
    char *nspname; /* "pg_catalog" when the message said "" */
    char *relname;
    char replident;
    uint16_t natts;
    rel_attr *attrs;
    struct table_map *map; /* owned; NULL until compiled or when the table is not synced */
    bool map_compiled;     /* map was computed (NULL map then means: skip table) */
    bool skip_logged;      /* "not in config" was logged for this table */
} rel_entry;

typedef struct relcache relcache;

/* free_map may be NULL (maps are then never freed, for tests without maps). */
relcache *relcache_new(void (*free_map)(struct table_map *));
void relcache_free(relcache *rc);

/* Copies a decoded Relation message (m->type == 'R') into the cache,
 * replacing (and freeing, map included) any entry with the same relid, so
 * pointers to the old entry become invalid.  *replaced (may be NULL) is set
 * when an entry existed.  Returns the new entry (owned by the cache). */
rel_entry *relcache_put(relcache *rc, const pgo_msg *m, bool *replaced);
/* NULL when unknown. */
rel_entry *relcache_get(const relcache *rc, uint32_t relid);

/* Iteration over the entries, in relid order (i < relcache_count). */
size_t relcache_count(const relcache *rc);
rel_entry *relcache_at(const relcache *rc, size_t i);

/* Type messages: user-defined type OID -> bare type name.  Replaces. */
void relcache_put_type(relcache *rc, const pgo_msg *m);
/* The bare type name ("vector", "halfvec", "sparsevec", "mood", "_mood")
 * for a user-defined type seen in a Type message, else NULL. */
const char *relcache_type_name(const relcache *rc, uint32_t typid);

#endif
