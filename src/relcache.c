/*
 * relcache.c — Relation and Type messages, kept in arrays sorted by OID.
 *
 * A publication has tens to hundreds of tables and Relation messages are
 * rare, so a sorted array of entry pointers (binary search, memmove on
 * insert) is all that is needed; entries are heap-allocated so the pointers
 * handed out stay valid until that relid is replaced or the cache freed.
 */
#include "relcache.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct type_entry {
    uint32_t typid;
    char *typname; /* bare name, e.g. "vector" */
} type_entry;

struct relcache {
    rel_entry **rels; /* sorted by relid */
    size_t nrels, caprels;
    type_entry *types; /* sorted by typid */
    size_t ntypes, captypes;
    void (*free_map)(struct table_map *);
};

relcache *relcache_new(void (*free_map)(struct table_map *))
{
    relcache *rc = xcalloc(1, sizeof(*rc));

    rc->free_map = free_map;
    return rc;
}

static void rel_entry_free(const relcache *rc, rel_entry *e)
{
    if (e->map && rc->free_map)
        rc->free_map(e->map);
    for (uint16_t i = 0; i < e->natts; i++)
        free(e->attrs[i].name);
    free(e->attrs);
    free(e->nspname);
    free(e->relname);
    free(e);
}

void relcache_free(relcache *rc)
{
    if (!rc)
        return;
    for (size_t i = 0; i < rc->nrels; i++)
        rel_entry_free(rc, rc->rels[i]);
    for (size_t i = 0; i < rc->ntypes; i++)
        free(rc->types[i].typname);
    free(rc->rels);
    free(rc->types);
    free(rc);
}

/* Index of relid, or of where it would be inserted. */
static size_t rel_search(const relcache *rc, uint32_t relid)
{
    size_t lo = 0, hi = rc->nrels;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (rc->rels[mid]->relid < relid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t type_search(const relcache *rc, uint32_t typid)
{
    size_t lo = 0, hi = rc->ntypes;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (rc->types[mid].typid < typid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static rel_entry *rel_entry_from_msg(const pgo_msg *m)
{
    rel_entry *e = xcalloc(1, sizeof(*e));

    e->relid = m->u.relation.relid;
    e->nspname = xstrdup(m->u.relation.nspname[0] ? m->u.relation.nspname : "pg_catalog");
    e->relname = xstrdup(m->u.relation.relname);
    e->replident = m->u.relation.replident;
    e->natts = m->u.relation.natts;
    e->attrs = xcalloc(e->natts, sizeof(rel_attr));
    for (uint16_t i = 0; i < e->natts; i++) {
        const pgo_attr *a = &m->u.relation.attrs[i];

        e->attrs[i].name = xstrdup(a->name);
        e->attrs[i].typid = a->typid;
        e->attrs[i].typmod = a->typmod;
        e->attrs[i].is_key = (a->flags & 1) != 0;
    }
    return e;
}

rel_entry *relcache_put(relcache *rc, const pgo_msg *m, bool *replaced)
{
    rel_entry *e = rel_entry_from_msg(m);
    size_t at = rel_search(rc, e->relid);
    bool found = at < rc->nrels && rc->rels[at]->relid == e->relid;

    if (found) {
        rel_entry_free(rc, rc->rels[at]);
    } else {
        if (rc->nrels == rc->caprels) {
            rc->caprels = rc->caprels ? rc->caprels * 2 : 16;
            rc->rels = xrealloc(rc->rels, rc->caprels * sizeof(rel_entry *));
        }
        memmove(&rc->rels[at + 1], &rc->rels[at], (rc->nrels - at) * sizeof(rel_entry *));
        rc->nrels++;
    }
    rc->rels[at] = e;
    if (replaced)
        *replaced = found;
    return e;
}

rel_entry *relcache_get(const relcache *rc, uint32_t relid)
{
    size_t at = rel_search(rc, relid);

    return at < rc->nrels && rc->rels[at]->relid == relid ? rc->rels[at] : NULL;
}

size_t relcache_count(const relcache *rc)
{
    return rc->nrels;
}

rel_entry *relcache_at(const relcache *rc, size_t i)
{
    return rc->rels[i];
}

void relcache_put_type(relcache *rc, const pgo_msg *m)
{
    uint32_t typid = m->u.type.typid;
    size_t at = type_search(rc, typid);

    if (at < rc->ntypes && rc->types[at].typid == typid) {
        free(rc->types[at].typname);
    } else {
        if (rc->ntypes == rc->captypes) {
            rc->captypes = rc->captypes ? rc->captypes * 2 : 16;
            rc->types = xrealloc(rc->types, rc->captypes * sizeof(type_entry));
        }
        memmove(&rc->types[at + 1], &rc->types[at], (rc->ntypes - at) * sizeof(type_entry));
        rc->ntypes++;
        rc->types[at].typid = typid;
    }
    rc->types[at].typname = xstrdup(m->u.type.typname);
}

const char *relcache_type_name(const relcache *rc, uint32_t typid)
{
    size_t at = type_search(rc, typid);

    return at < rc->ntypes && rc->types[at].typid == typid ? rc->types[at].typname : NULL;
}
