/*
 * test_backfill.c — the pure half of the online backfill (backfill_wm.h):
 * the request and watermark messages, and a model check of the watermark
 * window: random interleavings of stream changes and chunk reads against
 * a reference model (every point ends at the newest version of its row),
 * with a deliberately broken window (changed rows not dropped) that the
 * checker must catch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backfill_wm.h"
#include "rebuild.h"
#include <jansson.h>

/* ---- messages ---- */

static void test_request_round_trip(void **state)
{
    const char *tables[] = {"public.t", "shop.\"odd\" name"};
    buf b;
    bfm m;
    char err[200];

    buf_init(&b);
    bfm_format_request(&b, "slot1", "r-1", tables, 2, NULL, 0);
    assert_int_equal(bfm_parse(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.kind, BFM_REQUEST);
    assert_string_equal(m.slot, "slot1");
    assert_string_equal(m.id, "r-1");
    assert_int_equal(m.tables.n, 2);
    assert_string_equal(m.tables.v[1], "shop.\"odd\" name");
    bfm_free(&m);
    /* no tables: every configured one */
    buf_reset(&b);
    bfm_format_request(&b, "s", "r-2", NULL, 0, NULL, 0);
    assert_string_equal(b.data, "{\"type\":\"backfill\",\"slot\":\"s\",\"tables\":[],\"id\":\"r-2\"}");
    assert_int_equal(bfm_parse(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.tables.n, 0);
    assert_false(m.keyed);
    assert_int_equal(m.nkeys, 0);
    bfm_free(&m);
    buf_free(&b);
}

/* A keyed request (reconcile --fix handing over): keys per table, in the
 * mapping's key column order, round trip; its watermarks say "keyed". */
static void test_keyed_request_round_trip(void **state)
{
    char *k1[] = {"eu", "42", "us", "7\"x"}, *k2[] = {"5"};
    const char *tables[] = {"public.t", "public.u"};
    bfm_keyset ks[2] = {{.table = "public.t", .arity = 2, .n = 2, .v = k1},
                        {.table = "public.u", .arity = 1, .n = 1, .v = k2}};
    bfm w = {.kind = BFM_LOW, .slot = "s", .id = "r", .run = "abc", .chunk = 1, .table = "public.t", .keyed = true};
    buf b;
    bfm m;
    char err[200];

    buf_init(&b);
    bfm_format_request(&b, "s", "r-3", tables, 2, ks, 2);
    assert_non_null(strstr(b.data, "\"keys\":{\"public.t\":[[\"eu\",\"42\"],[\"us\",\"7\\\"x\"]],\"public.u\":[[\"5\"]]}"));
    assert_int_equal(bfm_parse(b.data, b.len, &m, err, sizeof err), 0);
    assert_true(m.keyed);
    assert_int_equal(m.nkeys, 2);
    assert_string_equal(m.keys[0].table, "public.t");
    assert_int_equal(m.keys[0].arity, 2);
    assert_int_equal(m.keys[0].n, 2);
    assert_string_equal(m.keys[0].v[2], "us");
    assert_string_equal(m.keys[0].v[3], "7\"x");
    assert_string_equal(m.keys[1].table, "public.u");
    assert_int_equal(m.keys[1].arity, 1);
    assert_string_equal(m.keys[1].v[0], "5");
    {
        bfm_keyset *t = bfm_keysets_take(m.keys, m.nkeys);
        assert_null(m.keys[0].table);
        assert_string_equal(t[1].v[0], "5");
        for (int i = 0; i < 2; i++)
            bfm_keyset_free(&t[i]);
        free(t);
    }
    bfm_free(&m);
    /* an empty key list is a keyed request with nothing to read */
    {
        const char *j = "{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"keys\":{\"public.t\":[]}}";
        assert_int_equal(bfm_parse(j, strlen(j), &m, err, sizeof err), 0);
        assert_true(m.keyed);
        assert_int_equal(m.nkeys, 1);
        assert_int_equal(m.keys[0].n, 0);
        bfm_free(&m);
    }
    /* watermarks of a keyed request carry the marker; others do not */
    buf_reset(&b);
    bfm_format_wm(&b, &w);
    assert_non_null(strstr(b.data, "\"keyed\":true"));
    assert_int_equal(bfm_parse(b.data, b.len, &m, err, sizeof err), 0);
    assert_true(m.keyed);
    bfm_free(&m);
    w.keyed = false;
    buf_reset(&b);
    bfm_format_wm(&b, &w);
    assert_null(strstr(b.data, "keyed"));
    assert_int_equal(bfm_parse(b.data, b.len, &m, err, sizeof err), 0);
    assert_false(m.keyed);
    bfm_free(&m);
    buf_free(&b);
}

static void test_watermark_round_trip(void **state)
{
    char *from[] = {"eu", "41"}, *to[] = {"eu", "99"}, *rest[] = {"public.u"};
    bfm w = {.kind = BFM_HIGH, .slot = "s", .id = "r", .run = "abc", .chunk = 7, .table = "public.t", .rows = 10};
    bfm m;
    buf b;
    char err[200];

    w.from = (bfm_list){.v = from, .n = 2, .has = true};
    w.to = (bfm_list){.v = to, .n = 2, .has = true};
    w.tables = (bfm_list){.v = rest, .n = 1, .has = true};
    buf_init(&b);
    bfm_format_wm(&b, &w);
    assert_int_equal(bfm_parse(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.kind, BFM_HIGH);
    assert_string_equal(m.run, "abc");
    assert_true(m.chunk == 7 && m.rows == 10);
    assert_true(m.from.has && m.from.n == 2);
    assert_string_equal(m.from.v[0], "eu");
    assert_string_equal(m.to.v[1], "99");
    assert_string_equal(m.tables.v[0], "public.u");
    bfm_free(&m);
    /* the first chunk of a table: from is null */
    w.kind = BFM_LOW;
    w.from.has = false;
    w.from.n = 0;
    buf_reset(&b);
    bfm_format_wm(&b, &w);
    assert_non_null(strstr(b.data, "\"from\":null"));
    assert_null(strstr(b.data, "\"to\""));
    assert_int_equal(bfm_parse(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.kind, BFM_LOW);
    assert_false(m.from.has);
    bfm_free(&m);
    buf_free(&b);
}

static void test_malformed_messages(void **state)
{
    static const struct {
        const char *json;
        const char *err;
    } bad[] = {
        {"not json", "not a JSON object"},
        {"[1,2]", "not a JSON object"},
        {"{\"slot\":\"s\",\"id\":\"x\"}", "\"type\" is missing"},
        {"{\"type\":\"nope\",\"slot\":\"s\",\"id\":\"x\"}", "unknown \"type\""},
        {"{\"type\":\"backfill\",\"id\":\"x\"}", "\"slot\" is missing"},
        {"{\"type\":\"backfill\",\"slot\":\"s\"}", "\"id\" is missing"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"\"}", "\"id\" is empty"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"tables\":\"t\"}", "\"tables\" is not an array"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"tables\":[1]}", "holds something other"},
        {"{\"type\":\"wm\",\"phase\":\"mid\",\"slot\":\"s\",\"id\":\"x\"}", "unknown watermark phase"},
        {"{\"type\":\"wm\",\"phase\":\"low\",\"slot\":\"s\",\"id\":\"x\",\"run\":\"r\",\"chunk\":-1,\"table\":\"t\"}",
         "\"chunk\" is not a non-negative integer"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"slot\":\"t\",\"id\":\"x\"}", "not a JSON object"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"keys\":[]}", "\"keys\" is not an object"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"keys\":{\"t\":\"1\"}}", "\"keys\" of t is not an array"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"keys\":{\"t\":[\"1\"]}}", "not a non-empty array"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"keys\":{\"t\":[[]]}}", "not a non-empty array"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"keys\":{\"t\":[[\"a\",\"1\"],[\"b\"]]}}",
         "differ in their number of columns"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"keys\":{\"t\":[[\"a\",1]]}}", "holds something other than strings"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"keys\":{\"t\":[[null]]}}", "holds something other than strings"},
    };
    char err[200];
    bfm m;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(bfm_parse(bad[i].json, strlen(bad[i].json), &m, err, sizeof err), -1);
        if (!strstr(err, bad[i].err))
            fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].json, err, bad[i].err);
        bfm_free(&m);
    }
}

/* ---- the window ---- */

static table_cfg T1 = {.schema = "public", .name = "t"}, T2 = {.schema = "public", .name = "u"};

static void push_op(qop_list *l, const table_cfg *t, qop_kind kind, const char *id, const char *json)
{
    qop *q = qop_list_push(l);

    q->kind = kind;
    q->table = t;
    q->point_id = id ? xstrdup(id) : NULL;
    q->json = json ? xstrdup(json) : NULL;
    q->json_len = json ? strlen(json) : 0;
}

static void test_window_basics(void **state)
{
    bf_window w = {0};
    qop_list stream = {0}, chunk = {0};
    char id[16];

    /* closed: nothing remembered */
    push_op(&stream, &T1, QOP_UPSERT, "1", "a");
    bfw_observe(&w, &stream.items[0]);
    assert_false(bfw_changed(&w, "1"));
    bfw_open(&w, &T1);
    bfw_observe(&w, &stream.items[0]);
    push_op(&stream, &T2, QOP_DELETE, "2", NULL); /* another table: ignored */
    bfw_observe(&w, &stream.items[1]);
    for (int i = 100; i < 400; i++) { /* grows past its first size */
        snprintf(id, sizeof id, "%d", i);
        push_op(&stream, &T1, QOP_DELETE, id, NULL);
        bfw_observe(&w, &stream.items[stream.n - 1]);
    }
    assert_true(bfw_changed(&w, "1"));
    assert_false(bfw_changed(&w, "2"));
    assert_true(bfw_changed(&w, "399"));
    push_op(&chunk, &T1, QOP_UPSERT, "1", "old");
    push_op(&chunk, &T1, QOP_UPSERT, "2", "keep");
    push_op(&chunk, &T1, QOP_UPSERT, "150", "old");
    push_op(&chunk, &T1, QOP_DELETE, "3", NULL);
    assert_int_equal(bfw_filter(&w, &chunk), 2);
    assert_int_equal(chunk.n, 2);
    assert_string_equal(chunk.items[0].point_id, "2");
    assert_string_equal(chunk.items[1].point_id, "3");
    assert_null(w.table); /* closed */
    assert_false(bfw_changed(&w, "1"));
    /* a truncate in the window drops the whole chunk */
    bfw_open(&w, &T1);
    push_op(&stream, &T1, QOP_DELETE_ALL, NULL, NULL);
    bfw_observe(&w, &stream.items[stream.n - 1]);
    assert_int_equal(bfw_filter(&w, &chunk), 2);
    assert_int_equal(chunk.n, 0);
    qop_list_free(&stream);
    qop_list_free(&chunk);
    bfw_free(&w);
}

/*
 * The model check.  One table of NKEYS keys; a row is absent (-1) or has a
 * version.  The WAL is a sequence of commits: row changes (insert/update/
 * delete of a random key, each a new version) and, per chunk, a low and a
 * high watermark; the chunk is read at a random point between its two
 * watermarks (the DB state then, rows with key > from, in key order, at
 * most CHUNK).  The stream applies the WAL in order to a model of Qdrant:
 * row changes directly, and at a high watermark the chunk's rows filtered
 * by the window (filter_fn).  Chunks continue until a chunk comes back
 * short.  At the end, Qdrant must equal the table for every key.
 */
#define NKEYS 60
#define CHUNK 7

typedef size_t (*filter_fn)(bf_window *w, qop_list *chunk);

static size_t broken_filter(bf_window *w, qop_list *chunk)
{
    (void)chunk; /* the deliberate breakage: rows the stream changed are kept */
    bfw_close(w);
    return 0;
}

typedef struct model {
    int db[NKEYS];     /* the table: version or -1 */
    int qd[NKEYS];     /* Qdrant: version or -1 */
    int next_version;
    unsigned seed;
} model;

static unsigned rnd(model *m, unsigned n)
{
    m->seed = m->seed * 1103515245u + 12345u;
    return (m->seed >> 8) % n;
}

/* A row change committed: the DB changes now; the stream applies it (in WAL order) at once too,
 * after observing it in the window: stream processing of a commit happens after the commit. */
static void change(model *m, bf_window *w)
{
    int k = (int)rnd(m, NKEYS);
    char id[16], v[16];
    qop_list ops = {0};

    if (m->db[k] >= 0 && rnd(m, 4) == 0)
        m->db[k] = -1;
    else
        m->db[k] = m->next_version++;
    snprintf(id, sizeof id, "%d", k);
    snprintf(v, sizeof v, "%d", m->db[k]);
    push_op(&ops, &T1, m->db[k] < 0 ? QOP_DELETE : QOP_UPSERT, id, m->db[k] < 0 ? NULL : v);
    bfw_observe(w, &ops.items[0]);
    m->qd[k] = m->db[k];
    qop_list_free(&ops);
}

/* Runs one random history; returns whether Qdrant ended equal to the table. */
static bool run_model(unsigned seed, filter_fn filter, int *windows_with_changes)
{
    model m = {.seed = seed};
    bf_window w = {0};
    int from = -1;
    bool ok = true;

    for (int k = 0; k < NKEYS; k++) {
        m.db[k] = rnd(&m, 3) ? m.next_version++ : -1;
        m.qd[k] = -1; /* nothing in Qdrant yet: the backfill fills it */
    }
    for (;;) {
        qop_list chunk = {0};
        int nrows = 0, last = from, before = (int)rnd(&m, 4), between1 = (int)rnd(&m, 5), between2 = (int)rnd(&m, 5);
        size_t changed_before;

        for (int i = 0; i < before; i++)
            change(&m, &w);
        /* low watermark committed and (in WAL order) reached by the stream: the window opens */
        bfw_open(&w, &T1);
        for (int i = 0; i < between1; i++)
            change(&m, &w);
        changed_before = w.n;
        /* the chunk read: the table as it is now */
        for (int k = from + 1; k < NKEYS && nrows < CHUNK; k++) {
            char id[16], v[16];
            if (m.db[k] < 0)
                continue;
            snprintf(id, sizeof id, "%d", k);
            snprintf(v, sizeof v, "%d", m.db[k]);
            push_op(&chunk, &T1, QOP_UPSERT, id, v);
            nrows++;
            last = k;
        }
        for (int i = 0; i < between2; i++)
            change(&m, &w);
        if (w.n > 0 || changed_before > 0)
            (*windows_with_changes)++;
        /* the high watermark reached by the stream: the chunk, filtered, is applied */
        filter(&w, &chunk);
        for (size_t i = 0; i < chunk.n; i++)
            m.qd[atoi(chunk.items[i].point_id)] = atoi(chunk.items[i].json);
        qop_list_free(&chunk);
        from = last;
        if (nrows < CHUNK)
            break;
    }
    for (int i = 0; i < (int)rnd(&m, 5); i++) /* the stream goes on after the backfill */
        change(&m, &w);
    for (int k = 0; k < NKEYS; k++)
        if (m.db[k] != m.qd[k])
            ok = false;
    bfw_free(&w);
    return ok;
}

static void test_model_check(void **state)
{
    int windows = 0;

    for (unsigned seed = 1; seed <= 3000; seed++)
        if (!run_model(seed, bfw_filter, &windows))
            fail_msg("seed %u: Qdrant differs from the table after the backfill", seed);
    assert_true(windows > 1000); /* the histories did change rows inside windows */
}

/* The checker is not vacuous: without dropping the changed rows, some history ends stale. */
static void test_model_check_catches_broken_window(void **state)
{
    int windows = 0, failures = 0;

    for (unsigned seed = 1; seed <= 3000; seed++)
        if (!run_model(seed, broken_filter, &windows))
            failures++;
    assert_true(failures > 0);
}

/* ---- commit visibility ------------------------------------------------------ */

static void test_snapshot_parse_and_visibility(void **state)
{
    bf_snapshot s = {0};

    (void)state;
    assert_int_equal(bfs_parse(&s, "100:105:100,103"), 0);
    assert_true(s.valid);
    assert_int_equal(s.xmin, 100);
    assert_int_equal(s.xmax, 105);
    assert_int_equal(s.nxip, 2);
    assert_true(bfs_visible(&s, 99));
    assert_false(bfs_visible(&s, 100)); /* in progress */
    assert_true(bfs_visible(&s, 101));
    assert_false(bfs_visible(&s, 103));
    assert_true(bfs_visible(&s, 104));
    assert_false(bfs_visible(&s, 105)); /* at or after xmax */
    assert_false(bfs_visible(&s, 2000000000u));
    assert_int_equal(bfs_parse(&s, "7:7:"), 0);
    assert_int_equal(s.nxip, 0);
    assert_true(bfs_visible(&s, 6));
    assert_false(bfs_visible(&s, 7));
    /* xid8 beyond 2^32: the low 32 bits, compared modulo 2^32 (wraparound) */
    assert_int_equal(bfs_parse(&s, "8589934590:8589934598:8589934595"), 0);
    assert_int_equal(s.xmin, 4294967294u);
    assert_int_equal(s.xmax, 6);
    assert_true(bfs_visible(&s, 4294967290u));
    assert_true(bfs_visible(&s, 4294967295u));
    assert_false(bfs_visible(&s, 3)); /* 8589934595 in progress */
    assert_true(bfs_visible(&s, 4));
    assert_false(bfs_visible(&s, 6));
    {
        const char *bad[] = {"", "1:2", "a:2:", "1:2:3;4", "1:2:x", "1::", "-1:2:", NULL};
        for (int i = 0; bad[i]; i++) {
            assert_int_equal(bfs_parse(&s, bad[i]), -1);
            assert_false(s.valid);
        }
    }
    bfs_free(&s);
}

static void test_ring(void **state)
{
    bf_ring r = {0};
    bf_snapshot s = {0};
    uint32_t x = 0;

    (void)state;
    assert_int_equal(bfs_parse(&s, "1000:1010:1003"), 0);
    for (uint32_t i = 0; i < 10; i++)
        bfr_add(&r, 990 + i); /* all below xmin */
    assert_false(bfr_invisible_before(&r, r.n, &s, &x));
    bfr_add(&r, 1003); /* streamed, but in progress for the snapshot */
    bfr_add(&r, 1004);
    assert_false(bfr_invisible_before(&r, 10, &s, &x)); /* only what precedes position 10 counts */
    assert_true(bfr_invisible_before(&r, 11, &s, &x));
    assert_int_equal(x, 1003);
    /* the ring keeps the last BF_RING_XIDS: an old late xid falls out */
    for (uint32_t i = 0; i < BF_RING_XIDS; i++)
        bfr_add(&r, 500);
    assert_false(bfr_invisible_before(&r, r.n, &s, &x));
    bfr_add(&r, 1012);
    assert_true(bfr_invisible_before(&r, r.n, &s, &x));
    assert_int_equal(x, 1012);
    bfr_free(&r);
    bfs_free(&s);
}

/*
 * The visibility model check.  As run_model, but with PostgreSQL's
 * visibility: a transaction (one row change) gets its xid when it starts,
 * may stay open across chunk reads (its row locked), and may become visible
 * only some steps after its commit reached the WAL and the stream ("late":
 * committed, still in the proc array).  A chunk read sees the visible
 * versions and returns the snapshot (xmin, xmax, the open and late xids).
 * The engine's steps are apply_chunk's: at the high watermark, a
 * transaction streamed before the low watermark that the snapshot does
 * not see -> the chunk is read again; else the window's rows are dropped
 * and the rest applied.
 */
#define VTXN 8

typedef struct vmodel {
    int vis[NKEYS];     /* the version a new snapshot sees (-1: no row) */
    int qd[NKEYS];      /* Qdrant */
    bool locked[NKEYS]; /* an open or late transaction holds the row */
    struct { bool used, committed; int key, version; uint32_t xid; } txn[VTXN];
    uint32_t next_xid;
    int next_version;
    unsigned seed;
    bf_ring ring;
    int late_reads, rereads;
} vmodel;

static unsigned vrnd(vmodel *m, unsigned n)
{
    m->seed = m->seed * 1103515245u + 12345u;
    return (m->seed >> 8) % n;
}

/* A transaction that commits now and is visible at once (a watermark). */
static void v_instant(vmodel *m)
{
    bfr_add(&m->ring, m->next_xid++);
}

static void v_advance(vmodel *m, bf_window *w, int i, bool may_start);

/* One random step of the writers. */
static void v_step(vmodel *m, bf_window *w)
{
    v_advance(m, w, (int)vrnd(m, VTXN), true);
}

/* Transaction i's next step, without starting a new one. */
static void v_finish(vmodel *m, bf_window *w, int i)
{
    v_advance(m, w, i, false);
}

static void v_advance(vmodel *m, bf_window *w, int i, bool may_start)
{
    if (!m->txn[i].used) { /* start a transaction on a free row */
        int k = (int)vrnd(m, NKEYS);
        if (!may_start || m->locked[k])
            return;
        m->locked[k] = true;
        m->txn[i].used = true;
        m->txn[i].committed = false;
        m->txn[i].key = k;
        m->txn[i].version = m->vis[k] >= 0 && vrnd(m, 4) == 0 ? -1 : m->next_version++;
        m->txn[i].xid = m->next_xid++;
    } else if (!m->txn[i].committed) { /* its commit record: the stream delivers it */
        char id[16], v[16];
        qop_list ops = {0};
        snprintf(id, sizeof id, "%d", m->txn[i].key);
        snprintf(v, sizeof v, "%d", m->txn[i].version);
        bfr_add(&m->ring, m->txn[i].xid);
        push_op(&ops, &T1, m->txn[i].version < 0 ? QOP_DELETE : QOP_UPSERT, id, m->txn[i].version < 0 ? NULL : v);
        bfw_observe(w, &ops.items[0]);
        m->qd[m->txn[i].key] = m->txn[i].version;
        qop_list_free(&ops);
        m->txn[i].committed = true;
        if (vrnd(m, 3) != 0)
            goto visible; /* most commits become visible at once */
    } else {
    visible: /* it leaves the proc array */
        m->vis[m->txn[i].key] = m->txn[i].version;
        m->locked[m->txn[i].key] = false;
        m->txn[i].used = false;
    }
}

static void v_snapshot(const vmodel *m, bf_snapshot *s)
{
    char text[256];
    int n = snprintf(text, sizeof text, "%u:%u:", m->next_xid, m->next_xid);
    uint32_t xmin = m->next_xid;

    for (int i = 0; i < VTXN; i++)
        if (m->txn[i].used && m->txn[i].xid < xmin)
            xmin = m->txn[i].xid;
    n = snprintf(text, sizeof text, "%u:%u:", xmin, m->next_xid);
    for (int i = 0, first = 1; i < VTXN; i++)
        if (m->txn[i].used) {
            n += snprintf(text + n, sizeof text - (size_t)n, "%s%u", first ? "" : ",", m->txn[i].xid);
            first = 0;
        }
    assert_int_equal(bfs_parse(s, text), 0);
}

/* Returns whether Qdrant ended equal to the table; check_late false: the
 * deliberate breakage (the window alone, as DBLog). */
static bool run_vmodel(unsigned seed, bool check_late, vmodel *m)
{
    bf_window w = {0};
    bf_snapshot s = {0};
    int from = -1;
    bool ok = true;

    memset(m, 0, sizeof *m);
    m->seed = seed;
    m->next_xid = 100;
    for (int k = 0; k < NKEYS; k++) {
        m->vis[k] = vrnd(m, 3) ? m->next_version++ : -1;
        m->qd[k] = -1;
    }
    for (int guard = 0; guard < 1000; guard++) {
        qop_list chunk = {0};
        int nrows = 0, last = from, steps;
        uint64_t lw_at;
        uint32_t late;

        for (steps = (int)vrnd(m, 6); steps > 0; steps--)
            v_step(m, &w);
        v_instant(m); /* the low watermark, reached by the stream: the window opens */
        bfw_open(&w, &T1);
        lw_at = m->ring.n;
        for (steps = (int)vrnd(m, 4); steps > 0; steps--)
            v_step(m, &w);
        v_snapshot(m, &s); /* the chunk read */
        for (int k = from + 1; k < NKEYS && nrows < CHUNK; k++) {
            char id[16], v[16];
            if (m->vis[k] < 0)
                continue;
            snprintf(id, sizeof id, "%d", k);
            snprintf(v, sizeof v, "%d", m->vis[k]);
            push_op(&chunk, &T1, QOP_UPSERT, id, v);
            nrows++;
            last = k;
        }
        if (bfr_invisible_before(&m->ring, lw_at, &s, &late))
            m->late_reads++;
        for (steps = (int)vrnd(m, 4); steps > 0; steps--)
            v_step(m, &w);
        v_instant(m); /* the high watermark */
        if (check_late && bfr_invisible_before(&m->ring, lw_at, &s, &late)) {
            bfw_close(&w);
            qop_list_free(&chunk);
            m->rereads++;
            continue; /* read again from the same key */
        }
        bfw_filter(&w, &chunk);
        for (size_t i = 0; i < chunk.n; i++)
            m->qd[atoi(chunk.items[i].point_id)] = atoi(chunk.items[i].json);
        qop_list_free(&chunk);
        from = last;
        if (nrows < CHUNK)
            break;
    }
    /* the writers finish; the stream goes on */
    for (int i = 0; i < VTXN; i++)
        while (m->txn[i].used)
            v_finish(m, &w, i);
    for (int k = 0; k < NKEYS; k++)
        if (m->vis[k] != m->qd[k])
            ok = false;
    bfw_free(&w);
    bfs_free(&s);
    bfr_free(&m->ring);
    return ok;
}

static void test_visibility_model_check(void **state)
{
    vmodel m;
    int late = 0, rereads = 0;

    (void)state;
    for (unsigned seed = 1; seed <= 3000; seed++) {
        if (!run_vmodel(seed, true, &m))
            fail_msg("seed %u: Qdrant differs from the table after the backfill", seed);
        late += m.late_reads;
        rereads += m.rereads;
    }
    assert_true(late > 100);   /* the histories did have late transactions before a low watermark */
    assert_true(rereads > 100);
}

/* Without the check (the window alone, DBLog's assumption), some history ends stale. */
static void test_visibility_model_catches_window_alone(void **state)
{
    vmodel m;
    int failures = 0;

    (void)state;
    for (unsigned seed = 1; seed <= 3000; seed++)
        if (!run_vmodel(seed, false, &m))
            failures++;
    assert_true(failures > 0);
}

/* ---- rebuild (SPEC §10): the request, generation names, the bodies ---------------------------- */

static void test_rebuild_request(void **state)
{
    const char *tables[] = {"public.items", "s.t"};
    char err[200];
    buf b;
    bfm m;

    (void)state;
    buf_init(&b);
    bfm_format_rebuild(&b, "slot1", "rb-1", tables, 2);
    assert_int_equal(bfm_parse(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.kind, BFM_REBUILD);
    assert_string_equal(m.slot, "slot1");
    assert_string_equal(m.id, "rb-1");
    assert_int_equal(m.tables.n, 2);
    assert_string_equal(m.tables.v[1], "s.t");
    bfm_free(&m);
    buf_free(&b);
    /* a rebuild names its tables */
    assert_int_equal(bfm_parse("{\"type\":\"rebuild\",\"slot\":\"s\",\"id\":\"x\",\"tables\":[]}", 50, &m, err,
                               sizeof err), -1);
    assert_non_null(strstr(err, "tables"));
    bfm_free(&m);
    /* a watermark of a rebuild's backfill carries its collection */
    {
        bfm w = {.kind = BFM_LOW, .slot = "s", .id = "i", .run = "r", .table = "public.t", .collection = "a_g2"};
        buf_init(&b);
        bfm_format_wm(&b, &w);
        assert_int_equal(bfm_parse(b.data, b.len, &m, err, sizeof err), 0);
        assert_string_equal(m.collection, "a_g2");
        bfm_free(&m);
        buf_free(&b);
    }
}

static void test_generation_names(void **state)
{
    const char *names[] = {"items_g1", "items_g12", "items_g3", "items_gx", "items_g", "items_g07", "other_g99",
                           "items", "itemsx_g50"};
    const char *taken[] = {"items_g13", "items_g14"};
    const char *none[] = {"x"};

    (void)state;
    assert_int_equal(rb_generation_of("items", "items_g1"), 1);
    assert_int_equal(rb_generation_of("items", "items_g12"), 12);
    assert_int_equal(rb_generation_of("items", "items_g07"), 0);
    assert_int_equal(rb_generation_of("items", "items_gx"), 0);
    assert_int_equal(rb_generation_of("items", "itemsx_g50"), 0);
    assert_int_equal(rb_generation_of("items", "items_g99999999999999999999"), 0);
    /* highest + 1, a name taken by an alias skipped: never overwritten */
    assert_int_equal(rb_next_generation("items", names, 9, taken, 2), 15);
    assert_int_equal(rb_next_generation("items", names, 9, NULL, 0), 13);
    assert_int_equal(rb_next_generation("items", none, 1, NULL, 0), 1);
    {
        char *g = rb_generation_name("items", 12); /* what rb_generation_of reads back */
        assert_string_equal(g, "items_g12");
        assert_int_equal(rb_generation_of("items", g), 12);
        free(g);
    }
}

static void test_create_and_switch_bodies(void **state)
{
    const char *info = "{\"status\":\"green\",\"config\":{\"params\":{\"vectors\":{\"size\":4,\"distance\":\"Dot\"},"
                       "\"shard_number\":1,\"on_disk_payload\":true,\"sparse_vectors\":{\"s\":{}}},"
                       "\"hnsw_config\":{\"m\":20,\"ef_construct\":100},\"optimizer_config\":{\"x\":1},"
                       "\"quantization_config\":null}}";
    json_t *in = json_loads(info, 0, NULL), *out;
    char err[200];
    buf b;

    (void)state;
    buf_init(&b);
    assert_int_equal(rb_create_body(NULL, in, "rb-9", &b, err, sizeof err), 0);
    out = json_loads(b.data, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "vectors"), "size")), 4);
    assert_non_null(json_object_get(json_object_get(out, "sparse_vectors"), "s"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "hnsw_config"), "m")), 20);
    assert_null(json_object_get(out, "quantization_config")); /* null: left out */
    assert_null(json_object_get(out, "optimizer_config"));    /* not a CreateCollection key */
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "metadata"), "pg2qdrant_rebuild")),
                        "rb-9");
    json_decref(out);
    buf_reset(&b);
    /* create_params win; the metadata is added to the user's */
    assert_int_equal(rb_create_body("{\"vectors\":{\"size\":4,\"distance\":\"Cosine\"},\"metadata\":{\"a\":1}}", in,
                                    "rb-9", &b, err, sizeof err), 0);
    out = json_loads(b.data, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "vectors"), "distance")), "Cosine");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "metadata"), "a")), 1);
    assert_non_null(json_object_get(json_object_get(out, "metadata"), "pg2qdrant_rebuild"));
    json_decref(out);
    buf_reset(&b);
    assert_int_equal(rb_create_body("[1]", in, "rb-9", &b, err, sizeof err), -1);
    buf_reset(&b);
    rb_switch_body("items", "items_g2", &b);
    assert_string_equal(b.data, "{\"actions\":[{\"delete_alias\":{\"alias_name\":\"items\"}},{\"create_alias\":"
                                "{\"collection_name\":\"items_g2\",\"alias_name\":\"items\"}}]}");
    buf_reset(&b);
    rb_create_alias_body("items", "items_g1", &b);
    assert_string_equal(b.data, "{\"actions\":[{\"create_alias\":{\"collection_name\":\"items_g1\",\"alias_name\":"
                                "\"items\"}}]}");
    buf_free(&b);
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_rebuild_request),
        cmocka_unit_test(test_generation_names),
        cmocka_unit_test(test_create_and_switch_bodies),
        cmocka_unit_test(test_watermark_round_trip),
        cmocka_unit_test(test_keyed_request_round_trip),
        cmocka_unit_test(test_malformed_messages),
        cmocka_unit_test(test_window_basics),
        cmocka_unit_test(test_model_check),
        cmocka_unit_test(test_model_check_catches_broken_window),
        cmocka_unit_test(test_snapshot_parse_and_visibility),
        cmocka_unit_test(test_ring),
        cmocka_unit_test(test_visibility_model_check),
        cmocka_unit_test(test_visibility_model_catches_window_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
