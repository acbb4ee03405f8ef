/*
 * reconcile.c — compare each table with its collection; --fix repairs
 * (SPEC §1, docs/reconcile.md).
 *
 * Per table, memory bounded by the number of points (24 bytes each) plus
 * one page of each side:
 *   1. GET /collections/{c}: points_count (a hint for the id table's first
 *      size, capped at RECON_TABLE_HINT_MAX; the table grows as needed) and
 *      which vectors are Cosine;
 *   2. scroll every point (limit RECON_PAGE, with payload and vector):
 *      id -> digests in an open-addressing table; each next_page_offset
 *      must be beyond the previous one (ids ascend), else the scroll stops
 *      with a protocol error; a page larger than the client's body cap is
 *      asked again with half the limit (doubled again after each page);
 *   3. one REPEATABLE READ snapshot of the table (taken after the scroll,
 *      so a point seen there has its row committed before the snapshot):
 *      each row -> map_row -> id, digests -> missing / stale / in sync;
 *      a digest mismatch is confirmed by retrieving the points
 *      (RECON_VERIFY at a time) and comparing with a tolerance (vectors:
 *      float32; payload numbers: a few ulps, as Qdrant's JSON parser does
 *      not always round a decimal to the nearest double);
 *   4. ids never met by a row -> orphaned.
 *
 * --fix while a process holds the slot (a `run` streams these tables;
 * checked once at the start): nothing is written to Qdrant here.  The keys
 * of missing and stale rows, and of orphaned points (the id itself when it
 * is the key, else the key columns of the point's payload, checked by
 * recomputing the id), go to that `run` as keyed backfill requests of at
 * most RECON_REQUEST_KEYS keys (bf_request), which it carries out between
 * watermarks like any backfill (docs/backfill.md); with [http] listen this
 * command waits until the run reports them done.
 */
#include "reconcile.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill.h"
#include "backfill_cmd.h"
#include "log.h"
#include "pgtypes.h"
#include "qdrant_client.h"
#include "qop.h"
#include "replication.h"
#include "row_to_point.h"
#include "sink.h"
#include "snapshot.h"
#include "util.h"

#define RECON_PAGE 1000     /* points per scroll request */
#define RECON_VERIFY 256    /* points per retrieve request confirming a difference */
#define RECON_ULPS 4        /* payload numbers this many ulps apart are equal, docs/reconcile.md */
#define RECON_SAMPLE 10     /* ids listed per kind and table */
#define RECON_PROGRESS_MS 5000
#define RECON_TOL 1e-6      /* vector tolerance, docs/reconcile.md */
#define RECON_REQUEST_KEYS 5000 /* keys per backfill request handed to a running sync */
#define RECON_TABLE_HINT_MAX ((size_t)1 << 20) /* points_count trusted this far for the first table size */

/* ---- digests ------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t combine(uint64_t h, uint64_t v)
{
    return mix64(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

/* FNV-1a, finalised. */
static uint64_t hash_bytes(const char *p, size_t n, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return mix64(h);
}

static uint64_t double_bits(double d)
{
    uint64_t u;

    if (d == 0)
        d = 0; /* -0.0 == 0.0 */
    memcpy(&u, &d, sizeof u);
    return u;
}

static uint64_t float_bits(float f)
{
    uint32_t u;

    if (f == 0)
        f = 0;
    memcpy(&u, &f, sizeof u);
    return u;
}

static uint64_t value_digest(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL: return 1;
    case JSON_TRUE: return 2;
    case JSON_FALSE: return 3;
    case JSON_STRING: {
        /* A number jansson cannot hold (an integer in (2^63, 2^64), say),
         * kept as its text by qd_json_loadb on both sides: equal numbers
         * have equal text, as Qdrant prints a u64 canonically and so does
         * PostgreSQL. */
        const char *num;
        size_t len;
        if (qd_json_big_number(v, &num, &len))
            return hash_bytes(num, len, 'n');
        return hash_bytes(json_string_value(v), json_string_length(v), 's');
    }
    case JSON_INTEGER: return combine('i', (uint64_t)json_integer_value(v));
    case JSON_REAL: {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9.2e18)
            return combine('i', (uint64_t)(int64_t)d);
        /* The low mantissa bits left out: a number Qdrant parsed an ulp
         * off (see RECON_ULPS) mostly digests the same; the rest is
         * caught by the verification with recon_payload_equal. */
        return combine('f', double_bits(d) & ~(uint64_t)0xff);
    }
    case JSON_ARRAY: {
        uint64_t h = 'a';
        size_t i;
        json_t *x;
        json_array_foreach (v, i, x)
            h = combine(h, value_digest(x));
        return combine(h, json_array_size(v));
    }
    case JSON_OBJECT: {
        uint64_t sum = 0;
        const char *k;
        json_t *x;
        json_object_foreach ((json_t *)v, k, x)
            sum += combine(hash_bytes(k, strlen(k), 'k'), value_digest(x));
        return combine(combine('o', sum), json_object_size(v));
    }
    }
    return 0;
}

uint64_t recon_payload_digest(const json_t *payload)
{
    static const uint64_t empty = 0;

    if (!payload || json_is_null(payload) || (json_is_object(payload) && json_object_size(payload) == 0))
        return empty;
    return value_digest(payload);
}

void recon_space_free(recon_space *sp)
{
    for (int i = 0; i < sp->ncosine; i++)
        free(sp->cosine[i]);
    free(sp->cosine);
    sp->cosine = NULL;
    sp->ncosine = 0;
}

bool recon_space_is_cosine(const recon_space *sp, const char *name)
{
    for (int i = 0; sp && i < sp->ncosine; i++)
        if (strcmp(sp->cosine[i], name) == 0)
            return true;
    return false;
}

/* A dense vector as float32, normalised as Qdrant stores a Cosine vector
 * (sum of squares in float32, in order).  Returns the count; *out owned. */
static size_t dense_f32(const json_t *arr, bool cosine, float **out)
{
    size_t n = json_array_size(arr);
    float *v = xcalloc(n ? n : 1, sizeof *v);

    for (size_t i = 0; i < n; i++)
        v[i] = (float)json_number_value(json_array_get(arr, i));
    if (cosine && n > 0) {
        float sum = 0.0f, len;
        for (size_t i = 0; i < n; i++)
            sum += v[i] * v[i];
        len = sqrtf(sum);
        if (len >= FLT_EPSILON)
            for (size_t i = 0; i < n; i++)
                v[i] /= len;
    }
    *out = v;
    return n;
}

static uint64_t dense_digest(const json_t *arr, bool cosine)
{
    float *v;
    size_t n = dense_f32(arr, cosine, &v);
    uint64_t h = 'd';

    for (size_t i = 0; i < n; i++)
        h = combine(h, float_bits(v[i]));
    free(v);
    return combine(h, n);
}

static bool is_sparse(const json_t *v)
{
    return json_is_object(v) && json_is_array(json_object_get(v, "indices")) &&
           json_is_array(json_object_get(v, "values"));
}

/* Sparse: order-independent over (index, float32 value). */
static uint64_t sparse_digest(const json_t *v)
{
    const json_t *idx = json_object_get(v, "indices"), *val = json_object_get(v, "values");
    uint64_t sum = 0;
    size_t n = json_array_size(idx);

    for (size_t i = 0; i < n; i++)
        sum += combine((uint64_t)json_integer_value(json_array_get(idx, i)),
                       float_bits((float)json_number_value(json_array_get(val, i))));
    return combine(combine('p', sum), n);
}

uint64_t recon_vector_digest(const json_t *vector, const recon_space *sp)
{
    uint64_t sum = 0;
    const char *k;
    json_t *x;

    if (json_is_array(vector))
        return dense_digest(vector, recon_space_is_cosine(sp, ""));
    if (!json_is_object(vector))
        return 0; /* null or absent: no vectors, as {} */
    json_object_foreach ((json_t *)vector, k, x) {
        uint64_t d = is_sparse(x) ? sparse_digest(x) : dense_digest(x, recon_space_is_cosine(sp, k));
        sum += combine(hash_bytes(k, strlen(k), 'n'), d);
    }
    return sum;
}

/* Two JSON numbers of a payload: equal integers, or doubles at most
 * RECON_ULPS ulps apart. */
static bool payload_num_equal(const json_t *e, const json_t *a)
{
    double x, y;

    if (json_is_integer(e) && json_is_integer(a))
        return json_integer_value(e) == json_integer_value(a);
    x = json_number_value(e);
    y = json_number_value(a);
    if (x == y)
        return true;
    return fabs(x - y) <= RECON_ULPS * DBL_EPSILON * fmax(fabs(x), fabs(y));
}

static bool value_equal(const json_t *e, const json_t *a)
{
    const char *k;
    json_t *x;
    size_t i;

    if (json_is_number(e) && json_is_number(a))
        return payload_num_equal(e, a);
    if (json_typeof(e) != json_typeof(a))
        return false;
    switch (json_typeof(e)) {
    case JSON_ARRAY:
        if (json_array_size(e) != json_array_size(a))
            return false;
        json_array_foreach (e, i, x)
            if (!value_equal(x, json_array_get(a, i)))
                return false;
        return true;
    case JSON_OBJECT:
        if (json_object_size(e) != json_object_size(a))
            return false;
        json_object_foreach ((json_t *)e, k, x) {
            json_t *y = json_object_get(a, k);
            if (!y || !value_equal(x, y))
                return false;
        }
        return true;
    default: return json_equal(e, a) != 0; /* strings (big-number markers included), true, false, null */
    }
}

/* An absent payload (NULL or null) as {}. */
static bool payload_empty(const json_t *p)
{
    return !p || json_is_null(p) || (json_is_object(p) && json_object_size(p) == 0);
}

bool recon_payload_equal(const json_t *e, const json_t *a)
{
    if (payload_empty(e) || payload_empty(a))
        return payload_empty(e) && payload_empty(a);
    return value_equal(e, a);
}

static bool num_close(double e, double a, bool cosine)
{
    double diff = fabs(e - a);

    if (diff == 0)
        return true;
    if (cosine && diff <= RECON_TOL)
        return true;
    return diff <= RECON_TOL * fmax(fabs(e), fabs(a));
}

static bool dense_equal(const json_t *e, const json_t *a, bool cosine)
{
    float *v;
    size_t n;
    bool eq;

    if (!json_is_array(a) || json_array_size(a) != json_array_size(e))
        return false;
    n = dense_f32(e, false, &v);
    if (cosine && n > 0) { /* normalised in double: independent of the summation order */
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += (double)v[i] * v[i];
        if (sqrt(sum) >= FLT_EPSILON)
            for (size_t i = 0; i < n; i++)
                v[i] = (float)(v[i] / sqrt(sum));
    }
    eq = true;
    for (size_t i = 0; i < n && eq; i++)
        eq = num_close(v[i], json_number_value(json_array_get(a, i)), cosine);
    free(v);
    return eq;
}

static bool sparse_equal(const json_t *e, const json_t *a)
{
    const json_t *ei = json_object_get(e, "indices"), *ev = json_object_get(e, "values");
    const json_t *ai, *av;
    size_t n = json_array_size(ei);

    if (!is_sparse(a))
        return false;
    ai = json_object_get(a, "indices");
    av = json_object_get(a, "values");
    if (json_array_size(ai) != n)
        return false;
    for (size_t i = 0; i < n; i++) { /* indices are unique: find each of e in a */
        json_int_t want = json_integer_value(json_array_get(ei, i));
        size_t j = 0;
        while (j < n && json_integer_value(json_array_get(ai, j)) != want)
            j++;
        if (j == n || !num_close((float)json_number_value(json_array_get(ev, i)),
                                 json_number_value(json_array_get(av, j)), false))
            return false;
    }
    return true;
}

bool recon_vectors_equal(const json_t *expected, const json_t *actual, const recon_space *sp)
{
    const char *k;
    json_t *x;

    if (json_is_array(expected))
        return dense_equal(expected, actual, recon_space_is_cosine(sp, ""));
    if (!json_is_object(expected) || json_object_size(expected) == 0)
        return !actual || json_is_null(actual) || (json_is_object(actual) && json_object_size(actual) == 0);
    if (!json_is_object(actual) || json_object_size(actual) != json_object_size(expected))
        return false;
    json_object_foreach ((json_t *)expected, k, x) {
        const json_t *y = json_object_get(actual, k);
        if (!y)
            return false;
        if (is_sparse(x) ? !sparse_equal(x, y) : !dense_equal(x, y, recon_space_is_cosine(sp, k)))
            return false;
    }
    return true;
}

/* ---- point ids and the id table ------------------------------------------- */

typedef struct pt_id {
    uint64_t hi, lo;
    bool uuid;
} pt_id;

/* A UUID in any of the forms Qdrant accepts that have 32 hex digits
 * (hyphens, braces and "urn:uuid:" skipped). */
static int parse_uuid(const char *s, pt_id *out)
{
    int nd = 0;

    if (strncmp(s, "urn:uuid:", 9) == 0)
        s += 9;
    out->hi = out->lo = 0;
    out->uuid = true;
    for (; *s; s++) {
        int v = hex_digit((unsigned char)*s);
        if (v < 0) {
            if (*s == '-' || *s == '{' || *s == '}')
                continue;
            return -1;
        }
        if (nd < 16)
            out->hi = out->hi << 4 | (uint64_t)v;
        else
            out->lo = out->lo << 4 | (uint64_t)v;
        nd++;
    }
    return nd == 32 ? 0 : -1;
}

static int id_from_json(const json_t *j, pt_id *out)
{
    const char *num;
    size_t len;

    if (json_is_integer(j) && json_integer_value(j) >= 0) {
        out->hi = 0;
        out->lo = (uint64_t)json_integer_value(j);
        out->uuid = false;
        return 0;
    }
    if (qd_json_big_number(j, &num, &len)) { /* an id above 2^63 */
        char tmp[24], *end;
        if (len >= sizeof tmp || num[0] == '-')
            return -1;
        memcpy(tmp, num, len);
        tmp[len] = '\0';
        errno = 0;
        out->hi = 0;
        out->lo = strtoull(tmp, &end, 10);
        out->uuid = false;
        return *end == '\0' && errno == 0 ? 0 : -1;
    }
    if (json_is_string(j))
        return parse_uuid(json_string_value(j), out);
    return -1;
}

/* Scroll order (QDRANT.md §3): numeric ids first, ascending, then UUIDs by bytes. */
static int id_cmp(const pt_id *a, const pt_id *b)
{
    if (a->uuid != b->uuid)
        return a->uuid ? 1 : -1;
    if (a->hi != b->hi)
        return a->hi < b->hi ? -1 : 1;
    if (a->lo != b->lo)
        return a->lo < b->lo ? -1 : 1;
    return 0;
}

/* qop.point_id: 42 or "uuid". */
static int id_from_text(const char *s, pt_id *out)
{
    char *end;

    if (*s == '"') {
        char tmp[64];
        size_t n = strlen(s);
        if (n < 2 || n - 2 >= sizeof tmp)
            return -1;
        memcpy(tmp, s + 1, n - 2);
        tmp[n - 2] = '\0';
        return parse_uuid(tmp, out);
    }
    out->hi = 0;
    out->lo = strtoull(s, &end, 10);
    out->uuid = false;
    return *end == '\0' && end != s ? 0 : -1;
}

/* The id as JSON text, as Qdrant takes it: 42 or "uuid" (u64 exact). */
static const char *id_text(const pt_id *id, char out[48])
{
    if (!id->uuid)
        snprintf(out, 48, "%llu", (unsigned long long)id->lo);
    else
        snprintf(out, 48, "\"%08x-%04x-%04x-%04x-%04x%08x\"", (unsigned)(id->hi >> 32),
                 (unsigned)(id->hi >> 16 & 0xffff), (unsigned)(id->hi & 0xffff), (unsigned)(id->lo >> 48),
                 (unsigned)(id->lo >> 32 & 0xffff), (unsigned)(id->lo & 0xffffffffu));
    return out;
}

/* For the report: an integer, a string of digits above 2^63-1, or the UUID. */
static json_t *id_to_json(const pt_id *id)
{
    char s[48];

    if (!id->uuid && id->lo <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)id->lo);
    id_text(id, s);
    if (!id->uuid)
        return json_string(s);
    s[strlen(s) - 1] = '\0';
    return json_string(s + 1);
}

#define SLOT_USED 1u
#define SLOT_SEEN 2u
#define SLOT_UUID 4u
#define SLOT_FLAGS 3
#define VDIG_MASK 0x1fffffffu /* 29 bits of the vector digest beside the flags */

/* 24 bytes a point. */
typedef struct id_slot {
    uint64_t hi, lo;
    uint32_t pdig;
    uint32_t meta; /* vdig << SLOT_FLAGS | flags */
} id_slot;

typedef struct id_table {
    id_slot *slots;
    size_t cap, n;
} id_table;

static size_t id_pos(const id_table *t, const pt_id *id)
{
    uint64_t h = mix64(id->hi ^ mix64(id->lo + (id->uuid ? 0x51ed27ULL : 0)));

    return (size_t)(((unsigned __int128)h * t->cap) >> 64);
}

static bool slot_is(const id_slot *s, const pt_id *id)
{
    return s->hi == id->hi && s->lo == id->lo && ((s->meta & SLOT_UUID) != 0) == id->uuid;
}

static id_slot *id_find(const id_table *t, const pt_id *id)
{
    size_t i = id_pos(t, id);

    while (t->slots[i].meta & SLOT_USED) {
        if (slot_is(&t->slots[i], id))
            return &t->slots[i];
        if (++i == t->cap)
            i = 0;
    }
    return NULL;
}

static void id_table_init(id_table *t, size_t expected)
{
    if (expected > RECON_TABLE_HINT_MAX) /* a hint only: id_insert_slot grows the table */
        expected = RECON_TABLE_HINT_MAX;
    t->cap = expected + expected / 3 + 1024; /* load <= 0.75 */
    t->n = 0;
    t->slots = xcalloc(t->cap, sizeof *t->slots);
}

static void id_insert_slot(id_table *t, const id_slot *src);

static void id_grow(id_table *t)
{
    id_table old = *t;

    t->cap = old.cap + old.cap / 2;
    t->n = 0;
    t->slots = xcalloc(t->cap, sizeof *t->slots);
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].meta & SLOT_USED)
            id_insert_slot(t, &old.slots[i]);
    free(old.slots);
}

static void id_insert_slot(id_table *t, const id_slot *src)
{
    pt_id id = {src->hi, src->lo, (src->meta & SLOT_UUID) != 0};
    size_t i;

    if ((t->n + 1) * 5 > t->cap * 4) /* load > 0.8 */
        id_grow(t);
    i = id_pos(t, &id);
    while (t->slots[i].meta & SLOT_USED) {
        if (slot_is(&t->slots[i], &id)) { /* the same id twice: the later wins */
            t->slots[i] = *src;
            return;
        }
        if (++i == t->cap)
            i = 0;
    }
    t->slots[i] = *src;
    t->n++;
}

static void id_insert(id_table *t, const pt_id *id, uint64_t pdig, uint64_t vdig)
{
    id_slot s = {id->hi, id->lo, (uint32_t)(pdig ^ pdig >> 32),
                 (uint32_t)((vdig ^ vdig >> 32) & VDIG_MASK) << SLOT_FLAGS | SLOT_USED | (id->uuid ? SLOT_UUID : 0)};

    id_insert_slot(t, &s);
}

/* ---- per-table comparison ----------------------------------------------------- */

typedef enum { K_MISSING, K_ORPHANED, K_STALE, K_N } drift_kind;
static const char *const kind_names[K_N] = {"missing", "orphaned", "stale"};

typedef struct pending {
    pt_id id;
    json_t *vector;  /* owned: the vector the mapping produces */
    json_t *payload; /* owned: the payload the mapping produces, when its digest differed; else NULL */
    qop op;          /* owned fields: the upsert that repairs it */
} pending;

typedef struct recon_table {
    const p2q_config *cfg;
    const recon_options *opt;
    volatile sig_atomic_t *stop;
    qd_client *qd; /* reads: scroll, retrieve */
    sink *s;       /* --fix */
    const table_cfg *tcfg;
    char *name;
    recon_space space;
    id_table ids;
    uint64_t rows, points, null_vector_rows, fix_ops;
    uint64_t count[K_N];
    uint64_t stale_payload, stale_vector;
    json_t *sample[K_N]; /* arrays of {"id":..,"key":..} */
    pending *pend;
    size_t npend;
    qop_list fixes; /* operations waiting to be pushed */
    int64_t last_log;
    bool handover;           /* --fix with an active slot: collect keys for the run instead */
    const snap_table *st;    /* the described table (handover: key columns and types) */
    bfm_keyset keys;         /* handover: the keys to hand over */
    size_t keys_cap;
    pt_id *orph;             /* handover: orphaned points whose key is to be recovered */
    size_t norph, orph_cap;
    uint64_t unrecoverable;  /* handover: orphans whose key is neither their id nor in their payload */
    json_t *unrec_sample;
} recon_table;

static void add_sample(recon_table *rt, drift_kind k, const pt_id *id, const char *key)
{
    json_t *o;

    rt->count[k]++;
    if (json_array_size(rt->sample[k]) >= RECON_SAMPLE)
        return;
    o = json_object();
    json_object_set_new(o, "id", id_to_json(id));
    if (key)
        json_object_set_new(o, "key", json_string(key));
    json_array_append_new(rt->sample[k], o);
}

/* handover: one key (its columns' texts, copied) to hand over. */
static void add_key(recon_table *rt, const char *const *texts)
{
    bfm_keyset *k = &rt->keys;

    if (k->n == rt->keys_cap) {
        rt->keys_cap = rt->keys_cap ? rt->keys_cap * 2 : 256;
        k->v = xrealloc(k->v, rt->keys_cap * (size_t)k->arity * sizeof *k->v);
    }
    for (int c = 0; c < k->arity; c++)
        k->v[k->n * (size_t)k->arity + (size_t)c] = xstrdup(texts[c]);
    k->n++;
}

static int push_fix(recon_table *rt, qop *op)
{
    qop *q;

    if (!rt->opt->fix) {
        qop_free_fields(op);
        return 0;
    }
    if (rt->handover) { /* op->key_vals set by recon_row */
        if (op->key_vals && op->nkeys == rt->keys.arity)
            add_key(rt, (const char *const *)op->key_vals);
        rt->fix_ops++;
        qop_free_fields(op);
        return 0;
    }
    q = qop_list_push(&rt->fixes);
    *q = *op;
    memset(op, 0, sizeof *op);
    rt->fix_ops++;
    sink_push(rt->s, &rt->fixes, SINK_NO_TXN);
    return snap_sink_pump(rt->s, rt->cfg, rt->stop, true) == P2Q_OK ? 0 : -1;
}

static void describe_failure(const char *what, const recon_table *rt, const qd_result *res)
{
    char why[600];

    log_error(what, "table", rt->name, "collection", rt->tcfg->collection, "error",
              qd_result_describe(res, why, sizeof why), NULL);
}

/* 1. Collection info: points_count and the Cosine vectors. */
static int read_collection(recon_table *rt, size_t *points_count)
{
    qd_result res = {0};
    const json_t *params, *vectors;
    int rc = -1;

    *points_count = 0;
    if (qd_collection_request(rt->qd, "GET", rt->tcfg->collection, "", NULL, 0, &res) != 0) {
        if (res.outcome == QD_COLLECTION_MISSING)
            log_error("collection does not exist", "table", rt->name, "collection", rt->tcfg->collection, NULL);
        else
            describe_failure("cannot read the collection", rt, &res);
        goto cleanup;
    }
    if (json_is_integer(json_object_get(res.result, "points_count")))
        *points_count = (size_t)json_integer_value(json_object_get(res.result, "points_count"));
    params = json_object_get(json_object_get(res.result, "config"), "params");
    vectors = json_object_get(params, "vectors");
    if (json_is_object(vectors)) {
        const char *k;
        json_t *x;
        if (json_object_get(vectors, "size")) { /* the unnamed vector */
            const json_t *d = json_object_get(vectors, "distance");
            if (json_is_string(d) && strcmp(json_string_value(d), "Cosine") == 0) {
                rt->space.cosine = xcalloc(1, sizeof(char *));
                rt->space.cosine[rt->space.ncosine++] = xstrdup("");
            }
        } else {
            rt->space.cosine = xcalloc(json_object_size(vectors) + 1, sizeof(char *));
            json_object_foreach ((json_t *)vectors, k, x) {
                const json_t *d = json_object_get(x, "distance");
                if (json_is_string(d) && strcmp(json_string_value(d), "Cosine") == 0)
                    rt->space.cosine[rt->space.ncosine++] = xstrdup(k);
            }
        }
    }
    rc = 0;
cleanup:
    qd_result_clear(&res);
    return rc;
}

static void log_count(const char *msg, const recon_table *rt, const char *key, uint64_t n)
{
    char s[24];

    snprintf(s, sizeof s, "%llu", (unsigned long long)n);
    log_info(msg, "table", rt->name, "collection", rt->tcfg->collection, key, s, NULL);
}

/* 2. Every point into the id table. */
static int scroll_points(recon_table *rt)
{
    pt_id offset = {0};
    bool has_offset = false;
    char otext[48], ntext[48];
    int limit = RECON_PAGE;
    qd_result res = {0};
    buf body;
    int rc = -1;

    buf_init(&body);
    rt->last_log = now_ms();
    for (;;) {
        const json_t *points, *p, *next;
        pt_id nid, top = offset; /* the highest id seen in this page (or the offset asked for) */
        bool has_top = has_offset;
        size_t i;
        int r;

        buf_reset(&body);
        buf_printf(&body, "{\"limit\":%d,\"with_payload\":true,\"with_vector\":true", limit);
        if (has_offset)
            buf_printf(&body, ",\"offset\":%s", id_text(&offset, otext));
        buf_putc(&body, '}');
        qd_result_clear(&res);
        r = qd_collection_request(rt->qd, "POST", rt->tcfg->collection, "/points/scroll", body.data, body.len, &res);
        if (r != 0 && res.too_large && limit > 1) { /* big points: the same page in halves */
            char l[16];
            limit /= 2;
            snprintf(l, sizeof l, "%d", limit);
            log_warn("a scroll page is larger than the response cap; asking for fewer points", "table", rt->name,
                     "collection", rt->tcfg->collection, "limit", l, NULL);
            continue;
        }
        if (r != 0) {
            describe_failure("cannot scroll the collection", rt, &res);
            goto cleanup;
        }
        points = json_object_get(res.result, "points");
        json_array_foreach (points, i, p) {
            pt_id id;
            if (id_from_json(json_object_get(p, "id"), &id) != 0) {
                log_error("Qdrant returned a point id that is neither an integer nor a UUID", "table", rt->name,
                          NULL);
                goto cleanup;
            }
            id_insert(&rt->ids, &id, recon_payload_digest(json_object_get(p, "payload")),
                      recon_vector_digest(json_object_get(p, "vector"), NULL));
            rt->points++;
            if (!has_top || id_cmp(&id, &top) > 0) {
                top = id;
                has_top = true;
            }
        }
        next = json_object_get(res.result, "next_page_offset");
        if (!next || json_is_null(next))
            break;
        if (id_from_json(next, &nid) != 0) {
            log_error("Qdrant returned a next_page_offset that is neither an integer nor a UUID", "table", rt->name,
                      "collection", rt->tcfg->collection, NULL);
            goto cleanup;
        }
        /* Ids ascend: the next page starts after every id of this one.  An
         * offset that repeats or goes back would loop forever. */
        if (has_top && id_cmp(&nid, &top) <= 0) {
            log_error("protocol error: the scroll's next_page_offset does not advance", "table", rt->name,
                      "collection", rt->tcfg->collection, "offset", has_offset ? id_text(&offset, otext) : "none", "next_page_offset",
                      id_text(&nid, ntext), NULL);
            goto cleanup;
        }
        offset = nid;
        has_offset = true;
        if (limit < RECON_PAGE) /* back up after a halved page: the big points may be behind us */
            limit = limit * 2 < RECON_PAGE ? limit * 2 : RECON_PAGE;
        if (rt->stop && *rt->stop) {
            log_warn("reconcile interrupted", NULL);
            goto cleanup;
        }
        if (now_ms() - rt->last_log >= RECON_PROGRESS_MS) {
            rt->last_log = now_ms();
            log_count("reconcile: reading points", rt, "points", rt->points);
        }
    }
    rc = 0;
cleanup:
    buf_free(&body);
    qd_result_clear(&res);
    return rc;
}

/* Confirms (with the tolerance) the vector-only digest mismatches pending. */
static int verify_pending(recon_table *rt)
{
    buf body;
    char idt[48];
    qd_result res = {0};
    int rc = -1;

    if (rt->npend == 0)
        return 0;
    buf_init(&body);
    buf_puts(&body, "{\"ids\":[");
    for (size_t i = 0; i < rt->npend; i++) {
        if (i)
            buf_putc(&body, ',');
        buf_puts(&body, id_text(&rt->pend[i].id, idt));
    }
    buf_puts(&body, "],\"with_payload\":true,\"with_vector\":true}");
    if (qd_collection_request(rt->qd, "POST", rt->tcfg->collection, "/points", body.data, body.len, &res) != 0) {
        describe_failure("cannot retrieve points to compare them", rt, &res);
        goto cleanup;
    }
    for (size_t i = 0; i < rt->npend; i++) {
        pending *pd = &rt->pend[i];
        const json_t *rec, *found = NULL;
        size_t j;
        json_array_foreach (res.result, j, rec) {
            pt_id id;
            if (id_from_json(json_object_get(rec, "id"), &id) == 0 && id.hi == pd->id.hi && id.lo == pd->id.lo &&
                id.uuid == pd->id.uuid) {
                found = rec;
                break;
            }
        }
        if (!found) { /* deleted meanwhile */
            add_sample(rt, K_MISSING, &pd->id, pd->op.key_text);
        } else if (pd->payload && !recon_payload_equal(pd->payload, json_object_get(found, "payload"))) {
            add_sample(rt, K_STALE, &pd->id, pd->op.key_text);
            rt->stale_payload++;
        } else if (!recon_vectors_equal(pd->vector, json_object_get(found, "vector"), &rt->space)) {
            add_sample(rt, K_STALE, &pd->id, pd->op.key_text);
            rt->stale_vector++;
        } else {
            qop_free_fields(&pd->op);
        }
        if (pd->op.json && push_fix(rt, &pd->op) != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    for (size_t i = 0; i < rt->npend; i++) {
        json_decref(rt->pend[i].vector);
        json_decref(rt->pend[i].payload);
        qop_free_fields(&rt->pend[i].op);
    }
    rt->npend = 0;
    buf_free(&body);
    qd_result_clear(&res);
    return rc;
}

/* 3. One row. */
static p2q_status recon_row(void *arg, const snap_table *t, const pgo_tuple *tup)
{
    recon_table *rt = arg;
    qop_list ops = {0};
    map_info info;
    json_t *root = NULL;
    const json_t *point;
    char err[600];
    pt_id id;
    id_slot *slot;
    qop *op;
    p2q_status rc = P2Q_ERR_FATAL;

    rt->rows++;
    if (map_row(t->map, tup, LSN_INVALID, &ops, &info, err, sizeof err) != 0) {
        log_error("cannot map a row", "table", rt->name, "error", err, NULL);
        goto cleanup;
    }
    op = &ops.items[0];
    if (ops.n != 1 || id_from_text(op->point_id, &id) != 0) {
        log_error("internal error: unexpected mapping of a whole row", "table", rt->name, NULL);
        goto cleanup;
    }
    if (rt->handover && !op->key_vals) { /* the row's key, for the request */
        op->nkeys = map_nkeys(t->map);
        op->key_vals = xcalloc((size_t)op->nkeys, sizeof *op->key_vals);
        for (int k = 0; k < op->nkeys; k++) {
            const pgo_datum *d = &tup->cols[map_key_col(t->map, k)];
            op->key_vals[k] = xstrndup(d->data ? d->data : "", d->len);
        }
    }
    slot = id_find(&rt->ids, &id);
    if (info.null_vector) {
        rt->null_vector_rows++;
        if (slot && !(slot->meta & SLOT_SEEN)) { /* the row must have no point */
            slot->meta |= SLOT_SEEN;
            add_sample(rt, K_ORPHANED, &id, op->key_text);
            if (push_fix(rt, op) != 0)
                goto cleanup;
        }
        rc = P2Q_OK;
        goto cleanup;
    }
    if (!slot) {
        add_sample(rt, K_MISSING, &id, op->key_text);
        rc = push_fix(rt, op) == 0 ? P2Q_OK : P2Q_ERR_FATAL;
        goto cleanup;
    }
    slot->meta |= SLOT_SEEN;
    root = qd_json_loadb(op->json, op->json_len, NULL); /* numbers as Qdrant's answers are read */
    point = json_array_get(json_object_get(json_object_get(root, "upsert"), "points"), 0);
    if (!point) {
        log_error("internal error: cannot parse the mapped point", "table", rt->name, "key", op->key_text, NULL);
        goto cleanup;
    }
    {
        uint64_t pd = recon_payload_digest(json_object_get(point, "payload"));
        uint64_t vd = recon_vector_digest(json_object_get(point, "vector"), &rt->space);
        bool payload_differs = slot->pdig != (uint32_t)(pd ^ pd >> 32);
        if (payload_differs || (slot->meta >> SLOT_FLAGS) != ((uint32_t)(vd ^ vd >> 32) & VDIG_MASK)) {
            pending *pd2 = &rt->pend[rt->npend++];
            pd2->id = id;
            pd2->vector = json_incref(json_object_get(point, "vector"));
            pd2->payload = payload_differs ? json_incref(json_object_get(point, "payload")) : NULL;
            if (payload_differs && !pd2->payload)
                pd2->payload = json_object(); /* no payload: as {} */
            pd2->op = *op;
            memset(op, 0, sizeof *op);
            if (rt->npend == RECON_VERIFY && verify_pending(rt) != 0)
                goto cleanup;
        }
    }
    rc = P2Q_OK;
cleanup:
    json_decref(root);
    qop_list_free(&ops);
    return rc;
}

/* handover: the key of an orphan whose id is its key text, or whose key
 * columns are in payload (NULL: none), if the id they give is the orphan's. */
static bool recover_key(recon_table *rt, const pt_id *id, const json_t *payload)
{
    const table_map *map = rt->st->map;
    int nkeys = map_nkeys(map);
    uint32_t typids[PGO_MAX_ATTS];
    char *texts[PGO_MAX_ATTS] = {0};
    char idt[48];
    buf got;
    bool ok = false;

    for (int k = 0; k < nkeys; k++)
        typids[k] = rt->st->rel->attrs[map_key_col(map, k)].typid;
    id_text(id, idt);
    if (!payload) {
        /* the id is the key: one int or uuid column, ids not forced to UUIDv5 */
        bool is_int = typids[0] == INT2OID || typids[0] == INT4OID || typids[0] == INT8OID;
        if (nkeys != 1 || rt->tcfg->id_mode_uuid5 || !(is_int ? !id->uuid : typids[0] == UUIDOID && id->uuid))
            return false;
        texts[0] = id->uuid ? xstrndup(idt + 1, strlen(idt) - 2) : xstrdup(idt);
    } else {
        for (int k = 0; k < nkeys; k++) {
            const json_t *v = json_object_get(payload, rt->st->rel->attrs[map_key_col(map, k)].name);
            const char *num;
            size_t len;
            if (json_is_string(v) && qd_json_big_number(v, &num, &len))
                texts[k] = xstrndup(num, len);
            else if (json_is_string(v))
                texts[k] = xstrdup(json_string_value(v));
            else if (json_is_integer(v))
                texts[k] = xasprintf("%lld", (long long)json_integer_value(v));
            else
                goto cleanup; /* absent, null, or a form whose key text is lost */
        }
    }
    buf_init(&got);
    map_point_id(nkeys, typids, (const char *const *)texts, rt->tcfg->id_mode_uuid5, &got);
    ok = strcmp(got.data, idt) == 0;
    buf_free(&got);
    if (ok)
        add_key(rt, (const char *const *)texts);
cleanup:
    for (int k = 0; k < nkeys; k++)
        free(texts[k]);
    return ok;
}

static void unrecoverable(recon_table *rt, const pt_id *id)
{
    rt->unrecoverable++;
    if (json_array_size(rt->unrec_sample) < RECON_SAMPLE)
        json_array_append_new(rt->unrec_sample, id_to_json(id));
}

/* handover: the orphans' keys, from their ids or (retrieved) payloads. */
static int recover_orphans(recon_table *rt)
{
    pt_id *need = xcalloc(rt->norph + 1, sizeof *need);
    size_t nneed = 0;
    qd_result res = {0};
    buf body;
    char idt[48];
    int rc = -1;

    buf_init(&body);
    for (size_t i = 0; i < rt->norph; i++)
        if (!recover_key(rt, &rt->orph[i], NULL))
            need[nneed++] = rt->orph[i];
    for (size_t at = 0; at < nneed; at += RECON_VERIFY) {
        size_t n = nneed - at < RECON_VERIFY ? nneed - at : RECON_VERIFY;
        buf_reset(&body);
        buf_puts(&body, "{\"ids\":[");
        for (size_t i = 0; i < n; i++)
            buf_printf(&body, "%s%s", i ? "," : "", id_text(&need[at + i], idt));
        buf_puts(&body, "],\"with_payload\":true,\"with_vector\":false}");
        qd_result_clear(&res);
        if (qd_collection_request(rt->qd, "POST", rt->tcfg->collection, "/points", body.data, body.len, &res) != 0) {
            describe_failure("cannot retrieve orphaned points to read their keys", rt, &res);
            goto cleanup;
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *rec, *found = NULL;
            size_t j;
            json_array_foreach (res.result, j, rec) {
                pt_id got;
                if (id_from_json(json_object_get(rec, "id"), &got) == 0 && id_cmp(&got, &need[at + i]) == 0) {
                    found = rec;
                    break;
                }
            }
            if (!found) /* deleted meanwhile: nothing left to repair */
                continue;
            if (!recover_key(rt, &need[at + i], json_object_get(found, "payload")))
                unrecoverable(rt, &need[at + i]);
        }
    }
    rc = 0;
cleanup:
    qd_result_clear(&res);
    buf_free(&body);
    free(need);
    return rc;
}

/* 4. Points no row met. */
static int find_orphans(recon_table *rt)
{
    for (size_t i = 0; i < rt->ids.cap; i++) {
        const id_slot *s = &rt->ids.slots[i];
        pt_id id = {s->hi, s->lo, (s->meta & SLOT_UUID) != 0};
        char idt[48];
        qop op = {0};
        buf b;

        if (!(s->meta & SLOT_USED) || (s->meta & SLOT_SEEN))
            continue;
        add_sample(rt, K_ORPHANED, &id, NULL);
        if (!rt->opt->fix)
            continue;
        if (rt->handover) {
            if (rt->norph == rt->orph_cap) {
                rt->orph_cap = rt->orph_cap ? rt->orph_cap * 2 : 64;
                rt->orph = xrealloc(rt->orph, rt->orph_cap * sizeof *rt->orph);
            }
            rt->orph[rt->norph++] = id;
            continue;
        }
        buf_init(&b);
        op.point_id = xstrdup(id_text(&id, idt));
        buf_printf(&b, "{\"delete\":{\"points\":[%s]}}", op.point_id);
        op.kind = QOP_DELETE;
        op.table = rt->tcfg;
        op.json_len = b.len;
        op.json = buf_steal(&b);
        op.key_text = xasprintf("orphaned point %s", op.point_id);
        if (push_fix(rt, &op) != 0)
            return -1;
    }
    return rt->handover ? recover_orphans(rt) : 0;
}

static uint64_t drift(const recon_table *rt)
{
    return rt->count[K_MISSING] + rt->count[K_ORPHANED] + rt->count[K_STALE];
}

static void print_text(const recon_table *rt, const char *fixed)
{
    printf("table %s -> collection %s: %llu rows, %llu points", rt->name, rt->tcfg->collection,
           (unsigned long long)rt->rows, (unsigned long long)rt->points);
    if (rt->null_vector_rows)
        printf(" (%llu rows with a NULL vector have no point)", (unsigned long long)rt->null_vector_rows);
    printf(": %s\n", drift(rt) == 0 ? "in sync" : fixed ? fixed : "drift");
    for (int k = 0; k < K_N; k++) {
        size_t i;
        json_t *o;
        printf("  %-9s %llu", kind_names[k], (unsigned long long)rt->count[k]);
        if (k == K_STALE && rt->count[k])
            printf(" (payload %llu, vector %llu)", (unsigned long long)rt->stale_payload,
                   (unsigned long long)rt->stale_vector);
        json_array_foreach (rt->sample[k], i, o) {
            char *id = json_dumps(json_object_get(o, "id"), JSON_ENCODE_ANY);
            const json_t *key = json_object_get(o, "key");
            printf("%s%s", i ? ", " : "  e.g. ", id);
            if (key)
                printf(" (%s)", json_string_value(key));
            free(id);
        }
        printf("\n");
    }
    if (rt->unrecoverable) {
        size_t i;
        json_t *o;
        printf("  %llu orphaned point%s left: the key is neither the point id nor in the payload",
               (unsigned long long)rt->unrecoverable, rt->unrecoverable == 1 ? "" : "s");
        json_array_foreach (rt->unrec_sample, i, o) {
            char *id = json_dumps(o, JSON_ENCODE_ANY);
            printf("%s%s", i ? ", " : "  e.g. ", id);
            free(id);
        }
        printf("\n  stop the sync and run pg2qdrant reconcile --fix, or delete them\n");
    }
}

static json_t *table_json(const recon_table *rt, bool fixed)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:b,s:b}", "table", rt->name, "collection", rt->tcfg->collection,
                          "rows", (json_int_t)rt->rows, "points", (json_int_t)rt->points, "null_vector_rows",
                          (json_int_t)rt->null_vector_rows, "in_sync", drift(rt) == 0, "fixed", fixed);

    for (int k = 0; k < K_N; k++) {
        json_t *d = json_pack("{s:I,s:O}", "count", (json_int_t)rt->count[k], "sample", rt->sample[k]);
        if (k == K_STALE) {
            json_object_set_new(d, "payload", json_integer((json_int_t)rt->stale_payload));
            json_object_set_new(d, "vector", json_integer((json_int_t)rt->stale_vector));
        }
        json_object_set_new(o, kind_names[k], d);
    }
    if (rt->handover)
        json_object_set_new(o, "unrecoverable_orphans", json_pack("{s:I,s:O}", "count", (json_int_t)rt->unrecoverable,
                                                                   "sample", rt->unrec_sample));
    return o;
}

static void recon_table_free(recon_table *rt)
{
    for (size_t i = 0; i < rt->npend; i++) {
        json_decref(rt->pend[i].vector);
        qop_free_fields(&rt->pend[i].op);
    }
    free(rt->pend);
    for (int k = 0; k < K_N; k++)
        json_decref(rt->sample[k]);
    free(rt->ids.slots);
    recon_space_free(&rt->space);
    qop_list_free(&rt->fixes);
    rt->keys.table = NULL; /* borrowed */
    bfm_keyset_free(&rt->keys);
    free(rt->orph);
    json_decref(rt->unrec_sample);
}

/* One table: P2Q_OK done (drift counted in rt), or P2Q_ERR_CONFIG (logged). */
static p2q_status reconcile_table(recon_table *rt, PGconn *conn)
{
    snap_table st = {0};
    size_t expected;
    uint64_t rows;
    p2q_status rc;

    rt->name = rt->tcfg->qualified;
    rt->pend = xcalloc(RECON_VERIFY, sizeof *rt->pend);
    for (int k = 0; k < K_N; k++)
        rt->sample[k] = json_array();
    /* The mapping first: a config error shows before a long scroll. */
    rt->unrec_sample = json_array();
    if ((rc = snap_describe(conn, rt->cfg, rt->tcfg, rt->cfg->source.publication, &st)) != P2Q_OK)
        return P2Q_ERR_CONFIG;
    rt->st = &st;
    rt->keys.table = (char *)rt->tcfg->qualified; /* borrowed */
    rt->keys.arity = map_nkeys(st.map);
    if (read_collection(rt, &expected) != 0) {
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    id_table_init(&rt->ids, expected);
    if (scroll_points(rt) != 0) {
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    log_count("reconcile: points read", rt, "points", rt->points);
    /* The rows' snapshot is taken after the scroll (docs/reconcile.md). */
    if (snap_begin(conn, NULL) != P2Q_OK) {
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    rc = snap_scan(conn, &st, "reconcile progress", recon_row, rt, rt->stop, &rows);
    snap_end(conn);
    if (rc != P2Q_OK || verify_pending(rt) != 0 || find_orphans(rt) != 0) {
        rc = P2Q_ERR_CONFIG;
        goto cleanup;
    }
    if (rt->opt->fix && rt->fix_ops > 0 && !rt->handover) {
        char n[24];
        snprintf(n, sizeof n, "%llu", (unsigned long long)rt->fix_ops);
        if (sink_drain(rt->s, 0, rt->stop, NULL, NULL) != P2Q_OK) {
            log_error("reconcile --fix: the repair was not completed", "table", rt->name, NULL);
            rc = P2Q_ERR_CONFIG;
            goto cleanup;
        }
        log_info("reconcile --fix: repaired", "table", rt->name, "operations", n, NULL);
    }
    rc = P2Q_OK;
cleanup:
    rt->st = NULL;
    snap_table_free(&st);
    return rc;
}

/* Whether a process holds cfg's slot (a `run` streams): 1 yes, 0 no (or no
 * such slot), -1 error (logged). */
static int slot_active(const p2q_config *cfg, PGconn *conn)
{
    const char *p[1] = {cfg->source.slot};
    PGresult *res = PQexecParams(conn, "SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", 1,
                                 NULL, p, NULL, NULL, 0);
    int rc = -1;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char why[600];
        repl_error_line(res, conn, why, sizeof why);
        log_error("cannot read pg_replication_slots", "slot", cfg->source.slot, "error", why, NULL);
    } else {
        rc = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    }
    PQclear(res);
    return rc;
}

/* handover: rt's keys as requests of at most RECON_REQUEST_KEYS keys; their
 * ids appended to ids.  0, or -1 (logged). */
static int hand_over(const recon_table *rt, PGconn *conn, strlist *ids)
{
    char id[64], err[512];

    for (size_t at = 0; at < rt->keys.n; at += RECON_REQUEST_KEYS) {
        bfm_keyset part = rt->keys;
        const char *table = rt->tcfg->qualified;
        char n[24];
        part.n = rt->keys.n - at < RECON_REQUEST_KEYS ? rt->keys.n - at : RECON_REQUEST_KEYS;
        part.v = rt->keys.v + at * (size_t)rt->keys.arity;
        if (bf_request(rt->cfg, conn, &table, 1, &part, 1, id, sizeof id, err, sizeof err) != 0) {
            log_error("reconcile --fix: cannot write the backfill request into the WAL", "table", rt->name, "error",
                      err, NULL);
            return -1;
        }
        snprintf(n, sizeof n, "%zu", part.n);
        log_info("reconcile --fix: repairs handed to the running sync as a backfill request", "table", rt->name,
                 "id", id, "keys", n, "slot", rt->cfg->source.slot, "lsn", err, NULL);
        strlist_add(ids, "%s", id);
    }
    return 0;
}

p2q_status recon_command(const p2q_config *cfg, const recon_options *opt, volatile sig_atomic_t *stop,
                         bool *drift_left)
{
    int *idx = xcalloc((size_t)(cfg->n_tables > 0 ? cfg->n_tables : 1), sizeof(int));
    qd_client *qd = NULL, *qd_fix = NULL;
    sink *s = NULL;
    PGconn *conn = NULL;
    json_t *report = json_pack("{s:[]}", "tables");
    char err[512];
    int nidx, drifting = 0;
    p2q_status code = P2Q_ERR_CONFIG;
    uint64_t totals[K_N] = {0}, unrecoverable = 0;
    bool handover = false, handed_failed = false;
    strlist ids = {0};
    const char *handed_state = NULL; /* handover: "done", "failed", "requested" */

    *drift_left = false;
    if ((nidx = snap_select_tables(cfg, opt->tables, opt->ntables, idx)) < 0)
        goto cleanup;
    qd = qd_client_new(cfg->qdrant.url, cfg->qdrant.api_key, cfg->qdrant.timeout_ms);
    if (!qd || qd_client_set_ca_file(qd, cfg->qdrant.ca_file) != 0) {
        log_error("cannot initialise the HTTP client", "ca_file", cfg->qdrant.ca_file, NULL);
        goto cleanup;
    }
    if (repl_connect(cfg->source.dsn, false, stop, &conn, err, sizeof err) != 0) {
        log_error("cannot connect to PostgreSQL", "error", err, NULL); /* exit 2, as before */
        goto cleanup;
    }
    if (opt->fix) {
        int a = slot_active(cfg, conn);
        if (a < 0)
            goto cleanup;
        handover = a == 1;
        if (handover)
            log_info("reconcile --fix: the slot is active (a sync is running): the repairs are handed to it as "
                     "backfill requests", "slot", cfg->source.slot, NULL);
    }
    if (opt->fix && !handover) {
        /* The sink's own client: reads go on while repairs are in flight. */
        qd_fix = qd_client_new(cfg->qdrant.url, cfg->qdrant.api_key, cfg->qdrant.timeout_ms);
        if (!qd_fix || qd_client_set_ca_file(qd_fix, cfg->qdrant.ca_file) != 0) {
            log_error("cannot initialise the HTTP client", "ca_file", cfg->qdrant.ca_file, NULL);
            goto cleanup;
        }
        sink_env env = {.cfg = cfg, .qd = qd_fix};
        s = sink_new(&env);
    }
    for (int i = 0; i < nidx; i++) {
        recon_table rt = {.cfg = cfg, .opt = opt, .stop = stop, .qd = qd, .s = s, .tcfg = &cfg->tables[idx[i]],
                          .handover = handover};
        p2q_status rc = reconcile_table(&rt, conn);

        if (rc == P2Q_OK && handover && hand_over(&rt, conn, &ids) != 0)
            rc = P2Q_ERR_CONFIG;
        if (rc == P2Q_OK) {
            unrecoverable += rt.unrecoverable;
            if (drift(&rt))
                drifting++;
            for (int k = 0; k < K_N; k++)
                totals[k] += rt.count[k];
            if (opt->output == RECON_TEXT)
                print_text(&rt, handover ? "drift handed to the running sync" : opt->fix ? "drift fixed" : NULL);
            else
                json_array_append_new(json_object_get(report, "tables"), table_json(&rt, opt->fix && drift(&rt) > 0));
        }
        recon_table_free(&rt);
        if (rc != P2Q_OK)
            goto cleanup;
    }
    if (handover && ids.n > 0) {
        if (opt->output == RECON_TEXT) {
            printf("reconcile: backfill request%s written for the running sync:", ids.n == 1 ? "" : "s");
            for (int i = 0; i < ids.n; i++)
                printf(" %s", ids.items[i]);
            printf("\n");
            fflush(stdout);
        }
        if (cfg->http.listen[0]) {
            p2q_status w = bf_wait_done(cfg, (const char *const *)ids.items, ids.n, opt->timeout_ms, stop);
            handed_failed = w != P2Q_OK;
            handed_state = handed_failed ? "failed" : "done";
        } else {
            handed_state = "requested";
            log_info("reconcile --fix: [http] listen is not set, so not waiting; the run's log and /status "
                     "report the requests", NULL);
        }
    }
    if (opt->output == RECON_TEXT) {
        if (handover && drifting > 0)
            printf("reconcile: drift in %d of %d table%s (missing %llu, orphaned %llu, stale %llu): %s\n", drifting,
                   nidx, nidx == 1 ? "" : "s", (unsigned long long)totals[K_MISSING],
                   (unsigned long long)totals[K_ORPHANED], (unsigned long long)totals[K_STALE],
                   !handed_state                          ? "nothing could be handed over"
                   : strcmp(handed_state, "done") == 0    ? "the running sync repaired it"
                   : strcmp(handed_state, "failed") == 0  ? "the running sync did not report the repair done"
                                                          : "handed to the running sync (not waiting: no [http] "
                                                            "listen)");
        if (unrecoverable > 0)
            printf("reconcile: %llu orphaned point%s left (key not recoverable from id or payload): stop the sync "
                   "and run pg2qdrant reconcile --fix, or delete %s\n",
                   (unsigned long long)unrecoverable, unrecoverable == 1 ? "" : "s",
                   unrecoverable == 1 ? "it" : "them");
        if (handover && drifting > 0) {
            /* said above */
        } else if (drifting == 0)
            printf("reconcile: %d table%s in sync\n", nidx, nidx == 1 ? "" : "s");
        else
            printf("reconcile: drift in %d of %d table%s (missing %llu, orphaned %llu, stale %llu)%s\n", drifting,
                   nidx, nidx == 1 ? "" : "s", (unsigned long long)totals[K_MISSING],
                   (unsigned long long)totals[K_ORPHANED], (unsigned long long)totals[K_STALE],
                   opt->fix ? ": fixed" : "; pg2qdrant reconcile --fix repairs it");
    } else {
        char *text;
        json_object_set_new(report, "in_sync", json_boolean(drifting == 0));
        json_object_set_new(report, "fixed", json_boolean(opt->fix && drifting > 0));
        for (int k = 0; k < K_N; k++)
            json_object_set_new(report, kind_names[k], json_integer((json_int_t)totals[k]));
        if (handover) {
            json_t *a = json_array();
            for (int i = 0; i < ids.n; i++)
                json_array_append_new(a, json_string(ids.items[i]));
            json_object_set_new(report, "handed_over", json_true());
            json_object_set_new(report, "requests", a);
            json_object_set_new(report, "requests_state", handed_state ? json_string(handed_state) : json_null());
            json_object_set_new(report, "unrecoverable_orphans", json_integer((json_int_t)unrecoverable));
        }
        text = json_dumps(report, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
    }
    fflush(stdout);
    *drift_left = (drifting > 0 && !opt->fix) || unrecoverable > 0 || handed_failed;
    code = P2Q_OK;
cleanup:
    strlist_free(&ids);
    if (conn)
        PQfinish(conn);
    sink_free(s);
    qd_client_free(qd);
    qd_client_free(qd_fix);
    json_decref(report);
    free(idx);
    return code;
}
