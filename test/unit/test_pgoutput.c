/*
 * test_pgoutput.c — the pgoutput decoder: every message type round-tripped
 * through the test encoder (pgo_encode.h), real PostgreSQL 15 bytes, version
 * gating, stream [xid] handling, CopyBoth framing, and malformed input
 * (every truncation of every fixture, bad kinds, counts and lengths).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgo_encode.h"
#include "pgoutput.h"
#include "util.h"

/* Values with every byte distinct, so a byte-order slip shows. */
#define LSN1 UINT64_C(0x0102030405060708)
#define LSN2 UINT64_C(0x1112131415161718)
#define LSN3 UINT64_C(0x2122232425262728)
#define TS1 INT64_C(0x0a0b0c0d0e0f1011)
#define TS2 INT64_C(-1234567890123) /* before 2000-01-01 */
#define XID UINT32_C(0xdeadbeef)

static const pgo_options V1 = {.proto_version = 1};
static const pgo_options V2 = {.proto_version = 2};
static const pgo_options V2S = {.proto_version = 2, .in_stream = true};
static const pgo_options V3 = {.proto_version = 3};
static const pgo_options V4P = {.proto_version = 4, .parallel_abort = true};
static const pgo_options V4PS = {.proto_version = 4, .in_stream = true, .parallel_abort = true};

static pgo_msg g_msg; /* large: one static instance, reused like a caller would */
static char g_err[256];

/* Decodes b into g_msg; on failure, g_err holds the message. */
static int decode(const buf *b, const pgo_options *opt)
{
    g_err[0] = '\0';
    return pgo_decode(b->data, b->len, opt, &g_msg, g_err, sizeof g_err);
}

static void assert_decodes(const buf *b, const pgo_options *opt)
{
    if (decode(b, opt) != 0)
        fail_msg("decode failed: %s", g_err);
}

static void assert_fails(const buf *b, const pgo_options *opt, const char *needle)
{
    assert_int_equal(decode(b, opt), -1);
    if (!strstr(g_err, needle))
        fail_msg("error \"%s\" does not contain \"%s\"", g_err, needle);
    assert_int_equal(strncmp(g_err, "pgoutput: ", 10), 0);
    assert_null(strchr(g_err, '\n'));
}

/* Asserts a decoded column: kind, and for 't'/'b' its bytes, which must lie
 * inside the decoded buffer. */
static void assert_col(const buf *b, const pgo_datum *d, char kind, const char *data, size_t len)
{
    assert_int_equal(d->kind, kind);
    if (kind != 't' && kind != 'b') {
        assert_int_equal(d->len, 0);
        return;
    }
    assert_int_equal(d->len, len);
    assert_non_null(d->data);
    assert_true(d->data >= b->data && d->data + d->len <= b->data + b->len);
    assert_memory_equal(d->data, data, len);
}

/* ---- fixtures: one valid message per shape ---- */

static const enc_attr ATTRS[] = {
    {1, "id", 23, -1},
    {0, "title", 1043, 104},
    {0, "embedding", 16500, -1},
};
static const uint32_t RELIDS[] = {16384, 0x7f000001, 3};
static const unsigned char BIN[] = {0x00, 0xff, 0x0a, 0x00};

static void fx_begin(buf *b) { enc_begin(b, LSN1, TS1, XID); }
static void fx_commit(buf *b) { enc_commit(b, 0, LSN1, LSN2, TS2); }
static void fx_origin(buf *b) { enc_origin(b, LSN3, "pg_16385"); }
static void fx_relation(buf *b) { enc_relation(b, ENC_NO_XID, 16384, "", "items", 'f', ATTRS, 3); }
static void fx_type(buf *b) { enc_type(b, ENC_NO_XID, 16500, "public", "vector"); }

static void fx_insert(buf *b)
{
    enc_col cols[] = {enc_text("42"), enc_null(), enc_unchanged(), enc_text(""), enc_binary(BIN, sizeof BIN)};
    enc_insert(b, ENC_NO_XID, 16384, cols, 5);
}

static void fx_update_plain(buf *b)
{
    enc_col newc[] = {enc_text("1"), enc_text("new"), enc_unchanged()};
    enc_update(b, ENC_NO_XID, 16384, 0, NULL, 0, newc, 3);
}

static void fx_update_key(buf *b)
{
    enc_col oldc[] = {enc_text("1"), enc_null(), enc_null()};
    enc_col newc[] = {enc_text("2"), enc_text("t"), enc_null()};
    enc_update(b, ENC_NO_XID, 16384, 'K', oldc, 3, newc, 3);
}

static void fx_update_old(buf *b)
{
    enc_col oldc[] = {enc_text("1"), enc_text("old"), enc_text("[1,2]")};
    enc_col newc[] = {enc_text("1"), enc_text("new"), enc_unchanged()};
    enc_update(b, ENC_NO_XID, 16384, 'O', oldc, 3, newc, 3);
}

static void fx_delete_key(buf *b)
{
    enc_col oldc[] = {enc_text("7"), enc_null(), enc_null()};
    enc_delete(b, ENC_NO_XID, 16384, 'K', oldc, 3);
}

static void fx_delete_old(buf *b)
{
    enc_col oldc[] = {enc_text("7"), enc_text("gone"), enc_null()};
    enc_delete(b, ENC_NO_XID, 16384, 'O', oldc, 3);
}

static void fx_truncate(buf *b) { enc_truncate(b, ENC_NO_XID, 3, RELIDS, 3); }
static void fx_message(buf *b) { enc_message(b, ENC_NO_XID, 1, LSN2, "p2q", "a\0b", 3); }
static void fx_stream_start(buf *b) { enc_stream_start(b, XID, true); }
static void fx_stream_stop(buf *b) { enc_stream_stop(b); }
static void fx_stream_commit(buf *b) { enc_stream_commit(b, XID, 0, LSN1, LSN2, TS1); }
static void fx_stream_abort(buf *b) { enc_stream_abort(b, XID, 1234, false, 0, 0); }
static void fx_stream_abort_parallel(buf *b) { enc_stream_abort(b, XID, 1234, true, LSN3, TS2); }
static void fx_begin_prepare(buf *b) { enc_begin_prepare(b, LSN1, LSN2, TS1, XID, "gid-1"); }
static void fx_prepare(buf *b) { enc_prepare(b, 0, LSN1, LSN2, TS1, XID, "gid-2"); }
static void fx_commit_prepared(buf *b) { enc_commit_prepared(b, 0, LSN2, LSN3, TS2, XID, "gid-3"); }
static void fx_rollback_prepared(buf *b) { enc_rollback_prepared(b, 0, LSN1, LSN3, TS1, TS2, XID, "gid-4"); }
static void fx_stream_prepare(buf *b) { enc_stream_prepare(b, 0, LSN3, LSN1, TS2, XID, "gid-5"); }

static void fx_stream_insert(buf *b)
{
    enc_col cols[] = {enc_text("9"), enc_text("x")};
    enc_insert(b, XID, 16384, cols, 2);
}

static void fx_stream_relation(buf *b) { enc_relation(b, XID, 16384, "public", "items", 'd', ATTRS, 2); }
static void fx_stream_truncate(buf *b) { enc_truncate(b, XID, 0, RELIDS, 1); }
static void fx_stream_message(buf *b) { enc_message(b, XID, 1, LSN1, "pfx", "", 0); }

typedef struct fixture {
    const char *name;
    const pgo_options *opt;
    void (*build)(buf *b);
} fixture;

static const fixture FIXTURES[] = {
    {"Begin", &V1, fx_begin},
    {"Commit", &V1, fx_commit},
    {"Origin", &V1, fx_origin},
    {"Relation", &V1, fx_relation},
    {"Type", &V1, fx_type},
    {"Insert", &V1, fx_insert},
    {"Update", &V1, fx_update_plain},
    {"Update K", &V1, fx_update_key},
    {"Update O", &V1, fx_update_old},
    {"Delete K", &V1, fx_delete_key},
    {"Delete O", &V1, fx_delete_old},
    {"Truncate", &V1, fx_truncate},
    {"Message", &V1, fx_message},
    {"Stream Start", &V2, fx_stream_start},
    {"Stream Stop", &V2S, fx_stream_stop},
    {"Stream Commit", &V2, fx_stream_commit},
    {"Stream Abort", &V2, fx_stream_abort},
    {"Stream Abort parallel", &V4P, fx_stream_abort_parallel},
    {"Begin Prepare", &V3, fx_begin_prepare},
    {"Prepare", &V3, fx_prepare},
    {"Commit Prepared", &V3, fx_commit_prepared},
    {"Rollback Prepared", &V3, fx_rollback_prepared},
    {"Stream Prepare", &V3, fx_stream_prepare},
    {"streamed Insert", &V2S, fx_stream_insert},
    {"streamed Relation", &V4PS, fx_stream_relation},
    {"streamed Truncate", &V2S, fx_stream_truncate},
    {"streamed Message", &V2S, fx_stream_message},
};
#define NFIXTURES (sizeof FIXTURES / sizeof FIXTURES[0])

/* Builds fixture f into b (reset first). */
static void build(buf *b, void (*fx)(buf *))
{
    buf_reset(b);
    fx(b);
}

/* ---- round trips ---- */

static void test_begin(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_begin);
    assert_int_equal(b.len, 21);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.type, PGO_BEGIN);
    assert_true(g_msg.u.begin.final_lsn == LSN1);
    assert_true(g_msg.u.begin.commit_ts == TS1);
    assert_int_equal(g_msg.xid, XID);
    assert_false(g_msg.has_xid);
    buf_free(&b);
}

static void test_commit(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_commit);
    assert_int_equal(b.len, 26);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.type, PGO_COMMIT);
    assert_int_equal(g_msg.u.commit.flags, 0);
    assert_true(g_msg.u.commit.commit_lsn == LSN1);
    assert_true(g_msg.u.commit.end_lsn == LSN2);
    assert_true(g_msg.u.commit.commit_ts == TS2);
    buf_free(&b);
}

static void test_origin(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_origin);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.type, PGO_ORIGIN);
    assert_true(g_msg.u.origin.lsn == LSN3);
    assert_string_equal(g_msg.u.origin.name, "pg_16385");
    buf_free(&b);
}

static void test_relation(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_relation);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.type, PGO_RELATION);
    assert_false(g_msg.has_xid);
    assert_int_equal(g_msg.u.relation.relid, 16384);
    assert_string_equal(g_msg.u.relation.nspname, "");
    assert_string_equal(g_msg.u.relation.relname, "items");
    assert_int_equal(g_msg.u.relation.replident, 'f');
    assert_int_equal(g_msg.u.relation.natts, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g_msg.u.relation.attrs[i].flags, ATTRS[i].flags);
        assert_string_equal(g_msg.u.relation.attrs[i].name, ATTRS[i].name);
        assert_int_equal(g_msg.u.relation.attrs[i].typid, ATTRS[i].typid);
        assert_int_equal(g_msg.u.relation.attrs[i].typmod, ATTRS[i].typmod);
    }
    buf_free(&b);
}

static void test_relation_max_atts(void **state)
{
    static enc_attr many[PGO_MAX_ATTS];
    buf b;

    buf_init(&b);
    for (int i = 0; i < PGO_MAX_ATTS; i++)
        many[i] = (enc_attr){0, "c", 25, -1};
    many[PGO_MAX_ATTS - 1].name = "last";
    enc_relation(&b, ENC_NO_XID, 1, "s", "wide", 'd', many, PGO_MAX_ATTS);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.u.relation.natts, PGO_MAX_ATTS);
    assert_string_equal(g_msg.u.relation.attrs[PGO_MAX_ATTS - 1].name, "last");

    buf_reset(&b);
    enc_relation(&b, ENC_NO_XID, 1, "s", "wide", 'd', many, 0);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.u.relation.natts, 0);
    buf_free(&b);
}

static void test_type(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_type);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.type, PGO_TYPE);
    assert_int_equal(g_msg.u.type.typid, 16500);
    assert_string_equal(g_msg.u.type.nspname, "public");
    assert_string_equal(g_msg.u.type.typname, "vector");
    buf_free(&b);
}

/* Insert carries every TupleData kind: t, n, u, zero-length t, b. */
static void test_insert_tuple_kinds(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_insert);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.type, PGO_INSERT);
    assert_int_equal(g_msg.u.change.relid, 16384);
    assert_int_equal(g_msg.u.change.old_kind, 0);
    assert_true(g_msg.u.change.has_new);
    assert_int_equal(g_msg.u.change.newtup.ncols, 5);
    assert_col(&b, &g_msg.u.change.newtup.cols[0], 't', "42", 2);
    assert_col(&b, &g_msg.u.change.newtup.cols[1], 'n', NULL, 0);
    assert_col(&b, &g_msg.u.change.newtup.cols[2], 'u', NULL, 0);
    assert_col(&b, &g_msg.u.change.newtup.cols[3], 't', "", 0);
    assert_col(&b, &g_msg.u.change.newtup.cols[4], 'b', (const char *)BIN, sizeof BIN);
    buf_free(&b);
}

static void test_update_without_old(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_update_plain);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.type, PGO_UPDATE);
    assert_int_equal(g_msg.u.change.relid, 16384);
    assert_int_equal(g_msg.u.change.old_kind, 0);
    assert_int_equal(g_msg.u.change.oldtup.ncols, 0);
    assert_true(g_msg.u.change.has_new);
    assert_int_equal(g_msg.u.change.newtup.ncols, 3);
    assert_col(&b, &g_msg.u.change.newtup.cols[0], 't', "1", 1);
    assert_col(&b, &g_msg.u.change.newtup.cols[1], 't', "new", 3);
    assert_col(&b, &g_msg.u.change.newtup.cols[2], 'u', NULL, 0);
    buf_free(&b);
}

static void test_update_with_key(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_update_key);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.u.change.old_kind, 'K');
    assert_int_equal(g_msg.u.change.oldtup.ncols, 3);
    assert_col(&b, &g_msg.u.change.oldtup.cols[0], 't', "1", 1);
    assert_col(&b, &g_msg.u.change.oldtup.cols[1], 'n', NULL, 0);
    assert_col(&b, &g_msg.u.change.oldtup.cols[2], 'n', NULL, 0);
    assert_true(g_msg.u.change.has_new);
    assert_int_equal(g_msg.u.change.newtup.ncols, 3);
    assert_col(&b, &g_msg.u.change.newtup.cols[0], 't', "2", 1);
    assert_col(&b, &g_msg.u.change.newtup.cols[1], 't', "t", 1);
    assert_col(&b, &g_msg.u.change.newtup.cols[2], 'n', NULL, 0);
    buf_free(&b);
}

static void test_update_with_old(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_update_old);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.u.change.old_kind, 'O');
    assert_int_equal(g_msg.u.change.oldtup.ncols, 3);
    assert_col(&b, &g_msg.u.change.oldtup.cols[1], 't', "old", 3);
    assert_col(&b, &g_msg.u.change.oldtup.cols[2], 't', "[1,2]", 5);
    assert_int_equal(g_msg.u.change.newtup.ncols, 3);
    assert_col(&b, &g_msg.u.change.newtup.cols[1], 't', "new", 3);
    assert_col(&b, &g_msg.u.change.newtup.cols[2], 'u', NULL, 0);
    buf_free(&b);
}

static void test_delete_key_and_old(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_delete_key);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.type, PGO_DELETE);
    assert_int_equal(g_msg.u.change.relid, 16384);
    assert_int_equal(g_msg.u.change.old_kind, 'K');
    assert_false(g_msg.u.change.has_new);
    assert_int_equal(g_msg.u.change.oldtup.ncols, 3);
    assert_col(&b, &g_msg.u.change.oldtup.cols[0], 't', "7", 1);
    assert_col(&b, &g_msg.u.change.oldtup.cols[1], 'n', NULL, 0);

    build(&b, fx_delete_old);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.u.change.old_kind, 'O');
    assert_false(g_msg.u.change.has_new);
    assert_col(&b, &g_msg.u.change.oldtup.cols[1], 't', "gone", 4);
    assert_col(&b, &g_msg.u.change.oldtup.cols[2], 'n', NULL, 0);
    buf_free(&b);
}

static void test_truncate(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_truncate);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.type, PGO_TRUNCATE);
    assert_int_equal(g_msg.u.truncate.nrelids, 3);
    assert_int_equal(g_msg.u.truncate.flags, 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(pgo_truncate_relid(&g_msg, i), RELIDS[i]);

    buf_reset(&b);
    enc_truncate(&b, ENC_NO_XID, 0, NULL, 0);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.u.truncate.nrelids, 0);
    buf_free(&b);
}

static void test_message(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_message);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.type, PGO_MESSAGE);
    assert_int_equal(g_msg.u.message.flags, 1);
    assert_true(g_msg.u.message.lsn == LSN2);
    assert_string_equal(g_msg.u.message.prefix, "p2q");
    assert_int_equal(g_msg.u.message.len, 3);
    assert_memory_equal(g_msg.u.message.content, "a\0b", 3);

    /* a backfill request as pg2qdrant backfill writes it (docs/backfill.md) */
    {
        static const char req[] = "{\"type\":\"backfill\",\"slot\":\"s\",\"tables\":[\"public.t\"],\"id\":\"r1\"}";
        buf_reset(&b);
        enc_message(&b, ENC_NO_XID, 1, LSN1, "pg2qdrant", req, strlen(req));
        assert_decodes(&b, &V1);
        assert_string_equal(g_msg.u.message.prefix, "pg2qdrant");
        assert_int_equal(g_msg.u.message.len, strlen(req));
        assert_memory_equal(g_msg.u.message.content, req, strlen(req));
    }
    /* a negative content length is refused, not read */
    buf_reset(&b);
    enc_u8(&b, 'M');
    enc_u8(&b, 0);
    enc_i64(&b, (int64_t)LSN1);
    buf_append(&b, "pg2qdrant", 10);
    enc_i32(&b, -1);
    assert_fails(&b, &V1, "negative content length -1 in Message message at offset 20");
    /* a prefix without its NUL */
    buf_reset(&b);
    enc_u8(&b, 'M');
    enc_u8(&b, 1);
    enc_i64(&b, (int64_t)LSN1);
    buf_append(&b, "pg2qdrant", 9);
    assert_fails(&b, &V1, "unterminated string in Message message at offset 10");
    buf_free(&b);
}

static void test_stream_start_stop(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_stream_start);
    assert_decodes(&b, &V2);
    assert_int_equal(g_msg.type, PGO_STREAM_START);
    assert_int_equal(g_msg.xid, XID);
    assert_true(g_msg.u.stream_start.first_segment);

    buf_reset(&b);
    enc_stream_start(&b, 5, false);
    assert_decodes(&b, &V2);
    assert_int_equal(g_msg.xid, 5);
    assert_false(g_msg.u.stream_start.first_segment);

    build(&b, fx_stream_stop);
    assert_int_equal(b.len, 1);
    assert_decodes(&b, &V2S);
    assert_int_equal(g_msg.type, PGO_STREAM_STOP);
    assert_false(g_msg.has_xid);
    buf_free(&b);
}

static void test_stream_commit(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_stream_commit);
    assert_decodes(&b, &V2);
    assert_int_equal(g_msg.type, PGO_STREAM_COMMIT);
    assert_int_equal(g_msg.xid, XID);
    assert_true(g_msg.u.commit.commit_lsn == LSN1);
    assert_true(g_msg.u.commit.end_lsn == LSN2);
    assert_true(g_msg.u.commit.commit_ts == TS1);
    buf_free(&b);
}

static void test_stream_abort(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_stream_abort);
    assert_int_equal(b.len, 9);
    assert_decodes(&b, &V2);
    assert_int_equal(g_msg.type, PGO_STREAM_ABORT);
    assert_int_equal(g_msg.xid, XID);
    assert_int_equal(g_msg.u.stream_abort.subxid, 1234);
    assert_false(g_msg.u.stream_abort.has_abort_lsn);

    /* v4 without streaming = parallel: still the short form */
    assert_decodes(&b, &(pgo_options){.proto_version = 4});
    assert_false(g_msg.u.stream_abort.has_abort_lsn);
    /* ... and the short form is too short for a parallel stream */
    assert_fails(&b, &V4P, "truncated Stream Abort message at offset 9 (need 8 bytes, have 0)");

    build(&b, fx_stream_abort_parallel);
    assert_int_equal(b.len, 25);
    assert_decodes(&b, &V4P);
    assert_int_equal(g_msg.xid, XID);
    assert_int_equal(g_msg.u.stream_abort.subxid, 1234);
    assert_true(g_msg.u.stream_abort.has_abort_lsn);
    assert_true(g_msg.u.stream_abort.abort_lsn == LSN3);
    assert_true(g_msg.u.stream_abort.abort_ts == TS2);
    assert_fails(&b, &V2, "16 trailing bytes after Stream Abort message at offset 9");
    buf_free(&b);
}

static void test_two_phase(void **state)
{
    buf b;

    buf_init(&b);
    build(&b, fx_begin_prepare);
    assert_decodes(&b, &V3);
    assert_int_equal(g_msg.type, PGO_BEGIN_PREPARE);
    assert_true(g_msg.u.twophase.lsn1 == LSN1);
    assert_true(g_msg.u.twophase.lsn2 == LSN2);
    assert_true(g_msg.u.twophase.ts1 == TS1);
    assert_int_equal(g_msg.xid, XID);
    assert_string_equal(g_msg.u.twophase.gid, "gid-1");

    build(&b, fx_prepare);
    assert_decodes(&b, &V3);
    assert_int_equal(g_msg.type, PGO_PREPARE);
    assert_int_equal(g_msg.u.twophase.flags, 0);
    assert_true(g_msg.u.twophase.lsn1 == LSN1);
    assert_true(g_msg.u.twophase.lsn2 == LSN2);
    assert_true(g_msg.u.twophase.ts1 == TS1);
    assert_int_equal(g_msg.xid, XID);
    assert_string_equal(g_msg.u.twophase.gid, "gid-2");

    build(&b, fx_commit_prepared);
    assert_decodes(&b, &V3);
    assert_int_equal(g_msg.type, PGO_COMMIT_PREPARED);
    assert_true(g_msg.u.twophase.lsn1 == LSN2);
    assert_true(g_msg.u.twophase.lsn2 == LSN3);
    assert_true(g_msg.u.twophase.ts1 == TS2);
    assert_int_equal(g_msg.xid, XID);
    assert_string_equal(g_msg.u.twophase.gid, "gid-3");

    build(&b, fx_rollback_prepared);
    assert_decodes(&b, &V3);
    assert_int_equal(g_msg.type, PGO_ROLLBACK_PREPARED);
    assert_true(g_msg.u.twophase.lsn1 == LSN1);
    assert_true(g_msg.u.twophase.lsn2 == LSN3);
    assert_true(g_msg.u.twophase.ts1 == TS1);
    assert_true(g_msg.u.twophase.ts2 == TS2);
    assert_int_equal(g_msg.xid, XID);
    assert_string_equal(g_msg.u.twophase.gid, "gid-4");

    build(&b, fx_stream_prepare);
    assert_decodes(&b, &V3);
    assert_int_equal(g_msg.type, PGO_STREAM_PREPARE);
    assert_true(g_msg.u.twophase.lsn1 == LSN3);
    assert_true(g_msg.u.twophase.lsn2 == LSN1);
    assert_true(g_msg.u.twophase.ts1 == TS2);
    assert_int_equal(g_msg.xid, XID);
    assert_string_equal(g_msg.u.twophase.gid, "gid-5");
    buf_free(&b);
}

/* Inside a stream block R Y I U D T M carry [xid]; the others never do. */
static void test_stream_xid(void **state)
{
    enc_col cols[] = {enc_text("9")};
    buf b;

    buf_init(&b);
    build(&b, fx_stream_insert);
    assert_decodes(&b, &V2S);
    assert_true(g_msg.has_xid);
    assert_int_equal(g_msg.xid, XID);
    assert_int_equal(g_msg.u.change.relid, 16384);
    assert_col(&b, &g_msg.u.change.newtup.cols[1], 't', "x", 1);
    /* the same bytes outside a stream block: xid read as relid, then junk */
    assert_fails(&b, &V2, "unexpected byte");

    build(&b, fx_stream_relation);
    assert_decodes(&b, &V4PS);
    assert_true(g_msg.has_xid);
    assert_int_equal(g_msg.xid, XID);
    assert_string_equal(g_msg.u.relation.relname, "items");
    assert_int_equal(g_msg.u.relation.natts, 2);

    buf_reset(&b);
    enc_type(&b, 77, 16500, "s", "t");
    assert_decodes(&b, &V2S);
    assert_int_equal(g_msg.xid, 77);
    assert_int_equal(g_msg.u.type.typid, 16500);

    buf_reset(&b);
    enc_update(&b, 78, 5, 'O', cols, 1, cols, 1);
    assert_decodes(&b, &V2S);
    assert_int_equal(g_msg.xid, 78);
    assert_int_equal(g_msg.u.change.relid, 5);
    assert_int_equal(g_msg.u.change.old_kind, 'O');

    buf_reset(&b);
    enc_delete(&b, 79, 6, 'K', cols, 1);
    assert_decodes(&b, &V2S);
    assert_int_equal(g_msg.xid, 79);
    assert_int_equal(g_msg.u.change.relid, 6);

    build(&b, fx_stream_truncate);
    assert_decodes(&b, &V2S);
    assert_int_equal(g_msg.xid, XID);
    assert_int_equal(g_msg.u.truncate.nrelids, 1);
    assert_int_equal(pgo_truncate_relid(&g_msg, 0), RELIDS[0]);

    build(&b, fx_stream_message);
    assert_decodes(&b, &V2S);
    assert_int_equal(g_msg.xid, XID);
    assert_string_equal(g_msg.u.message.prefix, "pfx");
    assert_int_equal(g_msg.u.message.len, 0);

    /* Begin/Commit/Stream Start have no [xid] even when in_stream is set */
    build(&b, fx_commit);
    assert_decodes(&b, &V2S);
    assert_false(g_msg.has_xid);
    build(&b, fx_stream_start);
    assert_decodes(&b, &V2S);
    assert_false(g_msg.has_xid);
    assert_int_equal(g_msg.xid, XID);

    /* a non-stream Insert read as streamed loses 4 bytes and fails */
    build(&b, fx_insert);
    assert_int_equal(decode(&b, &V2S), -1);
    buf_free(&b);
}

static void test_version_gating(void **state)
{
    static const struct {
        void (*fx)(buf *);
        int min;
        const char *name;
    } gated[] = {
        {fx_stream_start, 2, "Stream Start"},     {fx_stream_stop, 2, "Stream Stop"},
        {fx_stream_commit, 2, "Stream Commit"},   {fx_stream_abort, 2, "Stream Abort"},
        {fx_begin_prepare, 3, "Begin Prepare"},   {fx_prepare, 3, "Prepare"},
        {fx_commit_prepared, 3, "Commit Prepared"}, {fx_rollback_prepared, 3, "Rollback Prepared"},
        {fx_stream_prepare, 3, "Stream Prepare"},
    };
    char want[128];
    buf b;

    buf_init(&b);
    for (size_t i = 0; i < sizeof gated / sizeof gated[0]; i++) {
        build(&b, gated[i].fx);
        for (int v = 1; v <= 4; v++) {
            pgo_options opt = {.proto_version = v};
            if (v < gated[i].min) {
                snprintf(want, sizeof want, "pgoutput: %s message needs protocol version %d (stream uses %d)",
                         gated[i].name, gated[i].min, v);
                assert_int_equal(decode(&b, &opt), -1);
                assert_string_equal(g_err, want);
            } else {
                assert_decodes(&b, &opt);
            }
        }
    }
    /* version-1 messages decode under every version */
    build(&b, fx_insert);
    for (int v = 1; v <= 4; v++)
        assert_decodes(&b, &(pgo_options){.proto_version = v});
    /* options that no server would produce */
    assert_fails(&b, &(pgo_options){.proto_version = 0}, "unsupported protocol version 0");
    assert_fails(&b, &(pgo_options){.proto_version = 5}, "unsupported protocol version 5");
    assert_fails(&b, &(pgo_options){.proto_version = 1, .in_stream = true}, "need protocol version 2");
    assert_fails(&b, &(pgo_options){.proto_version = 3, .parallel_abort = true}, "needs protocol version 4");
    buf_free(&b);
}

/* ---- real PostgreSQL 15.18 output (pg_recvlogical, proto_version 1) ----
 * CREATE TABLE t(id int primary key, name text); INSERT (1,'hi');
 * UPDATE SET name = NULL; DELETE.  Bytes pin the layout independently of
 * pgo_encode.c. */

#define PG15_TS INT64_C(848653375310560) /* 2026-11-22 09:02:55.31056 UTC */

static void decode_raw(const char *bytes, size_t len, const pgo_options *opt)
{
    if (pgo_decode(bytes, len, opt, &g_msg, g_err, sizeof g_err) != 0)
        fail_msg("decode failed: %s", g_err);
}

static void test_pg15_begin_commit(void **state)
{
    static const char begin[] = "\x42\x00\x00\x00\x00\x01\x52\xfe\x50\x00\x03\x03\xd8\x82\xf9\x0a\xe0\x00\x00\x02\xd7";
    static const char commit[] = "\x43\x00\x00\x00\x00\x00\x01\x52\xfe\x50\x00\x00\x00\x00\x01\x52\xfe\x80\x00\x03"
                                 "\x03\xd8\x82\xf9\x0a\xe0";
    buf b;

    decode_raw(begin, sizeof begin - 1, &V1);
    assert_int_equal(g_msg.type, PGO_BEGIN);
    assert_true(g_msg.u.begin.final_lsn == UINT64_C(0x152FE50));
    assert_true(g_msg.u.begin.commit_ts == PG15_TS);
    assert_int_equal(g_msg.xid, 727);

    decode_raw(commit, sizeof commit - 1, &V1);
    assert_int_equal(g_msg.type, PGO_COMMIT);
    assert_true(g_msg.u.commit.commit_lsn == UINT64_C(0x152FE50));
    assert_true(g_msg.u.commit.end_lsn == UINT64_C(0x152FE80));
    assert_true(g_msg.u.commit.commit_ts == PG15_TS);

    /* the test encoder writes the same bytes */
    buf_init(&b);
    enc_begin(&b, 0x152FE50, PG15_TS, 727);
    assert_int_equal(b.len, sizeof begin - 1);
    assert_memory_equal(b.data, begin, b.len);
    buf_reset(&b);
    enc_commit(&b, 0, 0x152FE50, 0x152FE80, PG15_TS);
    assert_int_equal(b.len, sizeof commit - 1);
    assert_memory_equal(b.data, commit, b.len);
    buf_free(&b);
}

static void test_pg15_relation_insert(void **state)
{
    static const char rel[] = "\x52\x00\x00\x40\x09\x70\x75\x62\x6c\x69\x63\x00\x74\x00\x64\x00\x02\x01\x69\x64\x00"
                              "\x00\x00\x00\x17\xff\xff\xff\xff\x00\x6e\x61\x6d\x65\x00\x00\x00\x00\x19\xff\xff\xff"
                              "\xff";
    static const char ins[] = "\x49\x00\x00\x40\x09\x4e\x00\x02\x74\x00\x00\x00\x01\x31\x74\x00\x00\x00\x02\x68\x69";
    static const enc_attr attrs[] = {{1, "id", 23, -1}, {0, "name", 25, -1}};
    enc_col cols[] = {enc_text("1"), enc_text("hi")};
    buf b;

    decode_raw(rel, sizeof rel - 1, &V1);
    assert_int_equal(g_msg.type, PGO_RELATION);
    assert_int_equal(g_msg.u.relation.relid, 16393);
    assert_string_equal(g_msg.u.relation.nspname, "public");
    assert_string_equal(g_msg.u.relation.relname, "t");
    assert_int_equal(g_msg.u.relation.replident, 'd');
    assert_int_equal(g_msg.u.relation.natts, 2);
    assert_int_equal(g_msg.u.relation.attrs[0].flags, 1);
    assert_string_equal(g_msg.u.relation.attrs[0].name, "id");
    assert_int_equal(g_msg.u.relation.attrs[0].typid, 23);
    assert_int_equal(g_msg.u.relation.attrs[0].typmod, -1);
    assert_int_equal(g_msg.u.relation.attrs[1].flags, 0);
    assert_string_equal(g_msg.u.relation.attrs[1].name, "name");
    assert_int_equal(g_msg.u.relation.attrs[1].typid, 25);

    decode_raw(ins, sizeof ins - 1, &V1);
    assert_int_equal(g_msg.type, PGO_INSERT);
    assert_int_equal(g_msg.u.change.relid, 16393);
    assert_int_equal(g_msg.u.change.newtup.ncols, 2);
    assert_int_equal(g_msg.u.change.newtup.cols[0].kind, 't');
    assert_int_equal(g_msg.u.change.newtup.cols[0].len, 1);
    assert_memory_equal(g_msg.u.change.newtup.cols[0].data, "1", 1);
    assert_int_equal(g_msg.u.change.newtup.cols[1].len, 2);
    assert_memory_equal(g_msg.u.change.newtup.cols[1].data, "hi", 2);

    buf_init(&b);
    enc_relation(&b, ENC_NO_XID, 16393, "public", "t", 'd', attrs, 2);
    assert_int_equal(b.len, sizeof rel - 1);
    assert_memory_equal(b.data, rel, b.len);
    buf_reset(&b);
    enc_insert(&b, ENC_NO_XID, 16393, cols, 2);
    assert_int_equal(b.len, sizeof ins - 1);
    assert_memory_equal(b.data, ins, b.len);
    buf_free(&b);
}

static void test_pg15_update_delete(void **state)
{
    static const char upd[] = "\x55\x00\x00\x40\x09\x4e\x00\x02\x74\x00\x00\x00\x01\x31\x6e";
    static const char del[] = "\x44\x00\x00\x40\x09\x4b\x00\x02\x74\x00\x00\x00\x01\x31\x6e";

    decode_raw(upd, sizeof upd - 1, &V1);
    assert_int_equal(g_msg.type, PGO_UPDATE);
    assert_int_equal(g_msg.u.change.old_kind, 0);
    assert_int_equal(g_msg.u.change.newtup.ncols, 2);
    assert_memory_equal(g_msg.u.change.newtup.cols[0].data, "1", 1);
    assert_int_equal(g_msg.u.change.newtup.cols[1].kind, 'n');

    decode_raw(del, sizeof del - 1, &V1);
    assert_int_equal(g_msg.type, PGO_DELETE);
    assert_int_equal(g_msg.u.change.old_kind, 'K');
    assert_int_equal(g_msg.u.change.oldtup.ncols, 2);
    assert_memory_equal(g_msg.u.change.oldtup.cols[0].data, "1", 1);
    assert_int_equal(g_msg.u.change.oldtup.cols[1].kind, 'n');
}

/* ---- CopyBoth framing ---- */

static void test_copydata_xlogdata(void **state)
{
    pgo_copydata cd;
    buf msg, b;

    buf_init(&msg);
    buf_init(&b);
    build(&msg, fx_insert);
    enc_xlogdata(&b, LSN1, LSN2, TS1, msg.data, msg.len);
    assert_int_equal(b.len, 25 + msg.len);
    assert_int_equal(pgo_decode_copydata(b.data, b.len, &cd, g_err, sizeof g_err), 0);
    assert_int_equal(cd.type, 'w');
    assert_true(cd.data_start == LSN1);
    assert_true(cd.wal_end == LSN2);
    assert_true(cd.send_time == TS1);
    assert_ptr_equal(cd.payload, b.data + 25);
    assert_int_equal(cd.payload_len, msg.len);
    assert_false(cd.reply_requested);
    assert_int_equal(pgo_decode(cd.payload, cd.payload_len, &V1, &g_msg, g_err, sizeof g_err), 0);
    assert_int_equal(g_msg.type, PGO_INSERT);

    /* Relation messages come with 0/0 positions: accepted as they are */
    buf_reset(&b);
    enc_xlogdata(&b, 0, 0, TS1, "E", 1);
    assert_int_equal(pgo_decode_copydata(b.data, b.len, &cd, g_err, sizeof g_err), 0);
    assert_true(cd.data_start == 0 && cd.wal_end == 0);
    assert_int_equal(cd.payload_len, 1);
    buf_free(&msg);
    buf_free(&b);
}

static void test_copydata_keepalive(void **state)
{
    pgo_copydata cd;
    buf b;

    buf_init(&b);
    enc_keepalive(&b, LSN3, TS2, true);
    assert_int_equal(b.len, 18);
    assert_int_equal(pgo_decode_copydata(b.data, b.len, &cd, g_err, sizeof g_err), 0);
    assert_int_equal(cd.type, 'k');
    assert_true(cd.wal_end == LSN3);
    assert_true(cd.send_time == TS2);
    assert_true(cd.reply_requested);
    assert_null(cd.payload);

    buf_reset(&b);
    enc_keepalive(&b, LSN1, TS1, false);
    assert_int_equal(pgo_decode_copydata(b.data, b.len, &cd, g_err, sizeof g_err), 0);
    assert_false(cd.reply_requested);

    buf_putc(&b, 0);
    assert_int_equal(pgo_decode_copydata(b.data, b.len, &cd, g_err, sizeof g_err), -1);
    assert_string_equal(g_err, "pgoutput: 1 trailing bytes after keepalive message at offset 18");
    buf_free(&b);
}

static void test_copydata_malformed(void **state)
{
    pgo_copydata cd;
    buf b;

    buf_init(&b);
    assert_int_equal(pgo_decode_copydata("", 0, &cd, g_err, sizeof g_err), -1);
    assert_string_equal(g_err, "pgoutput: empty CopyData message");
    assert_int_equal(pgo_decode_copydata("s\0\0", 3, &cd, g_err, sizeof g_err), -1);
    assert_string_equal(g_err, "pgoutput: unknown CopyData message type 0x73");

    /* every cut inside the 25-byte 'w' header and the 18-byte 'k' */
    enc_xlogdata(&b, LSN1, LSN2, TS1, NULL, 0);
    for (size_t n = 1; n < 25; n++) {
        char *copy = xmalloc(n);
        memcpy(copy, b.data, n);
        assert_int_equal(pgo_decode_copydata(copy, n, &cd, g_err, sizeof g_err), -1);
        assert_non_null(strstr(g_err, "truncated XLogData message"));
        free(copy);
    }
    assert_int_equal(pgo_decode_copydata(b.data, b.len, &cd, g_err, sizeof g_err), 0);
    assert_int_equal(cd.payload_len, 0);

    buf_reset(&b);
    enc_keepalive(&b, LSN1, TS1, false);
    for (size_t n = 1; n < 18; n++) {
        char *copy = xmalloc(n);
        memcpy(copy, b.data, n);
        assert_int_equal(pgo_decode_copydata(copy, n, &cd, g_err, sizeof g_err), -1);
        assert_non_null(strstr(g_err, "truncated keepalive message"));
        free(copy);
    }
    buf_free(&b);
}

static void test_status_update_layout(void **state)
{
    static const unsigned char want[PGO_STATUS_LEN] = {
        'r',                                            /* type */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* write */
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, /* flush */
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, /* apply */
        0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, /* sendTime */
        0x01,                                           /* replyRequested */
    };
    char out[PGO_STATUS_LEN];

    pgo_encode_status(out, LSN1, LSN2, LSN3, TS1, true);
    assert_memory_equal(out, want, PGO_STATUS_LEN);
    pgo_encode_status(out, 0, 0, 0, -1, false);
    assert_int_equal(out[0], 'r');
    for (int i = 1; i < 25; i++)
        assert_int_equal(out[i], 0);
    for (int i = 25; i < 33; i++)
        assert_int_equal((unsigned char)out[i], 0xff);
    assert_int_equal(out[33], 0);
}

/* ---- malformed pgoutput messages ---- */

/* Every proper prefix of every valid fixture fails cleanly; each prefix is
 * copied into a buffer of exactly its size so ASan/valgrind see any
 * over-read.  The full message decodes from such a buffer too. */
static void test_every_truncation_fails(void **state)
{
    buf b;

    buf_init(&b);
    for (size_t i = 0; i < NFIXTURES; i++) {
        build(&b, FIXTURES[i].build);
        for (size_t n = 0; n <= b.len; n++) {
            char *copy = xmalloc(n);
            int rc;

            memcpy(copy, b.data, n);
            g_err[0] = '\0';
            rc = pgo_decode(copy, n, FIXTURES[i].opt, &g_msg, g_err, sizeof g_err);
            free(copy);
            if (n == b.len && rc != 0)
                fail_msg("%s: full message failed: %s", FIXTURES[i].name, g_err);
            if (n < b.len && rc != -1)
                fail_msg("%s: prefix of %zu/%zu bytes decoded", FIXTURES[i].name, n, b.len);
            if (n < b.len && strncmp(g_err, "pgoutput: ", 10) != 0)
                fail_msg("%s: prefix %zu: bad error \"%s\"", FIXTURES[i].name, n, g_err);
        }
    }
    buf_free(&b);
}

static void test_trailing_garbage(void **state)
{
    char want[128];
    buf b;

    buf_init(&b);
    for (size_t i = 0; i < NFIXTURES; i++) {
        build(&b, FIXTURES[i].build);
        snprintf(want, sizeof want, "pgoutput: 1 trailing bytes after %s message at offset %zu",
                 pgo_msg_name(b.data[0]), b.len);
        buf_putc(&b, 'x');
        assert_int_equal(decode(&b, FIXTURES[i].opt), -1);
        assert_string_equal(g_err, want);
    }
    buf_free(&b);
}

static void test_empty_and_unknown_type(void **state)
{
    buf b;

    buf_init(&b);
    assert_int_equal(pgo_decode("", 0, &V4P, &g_msg, g_err, sizeof g_err), -1);
    assert_string_equal(g_err, "pgoutput: empty message");

    enc_u8(&b, 'Z');
    enc_i32(&b, 1);
    assert_int_equal(decode(&b, &V4P), -1);
    assert_string_equal(g_err, "pgoutput: unknown message type 0x5a");
    /* the CopyData types are not pgoutput messages */
    b.data[0] = 'w';
    assert_fails(&b, &V4P, "unknown message type 0x77");
    b.data[0] = 0;
    assert_fails(&b, &V4P, "unknown message type 0x00");
    /* no err buffer: still fails cleanly */
    assert_int_equal(pgo_decode(b.data, b.len, &V1, &g_msg, NULL, 0), -1);
    buf_free(&b);
}

static void test_unknown_tuple_kind(void **state)
{
    enc_col oldc[] = {enc_text("1")};
    enc_col newc[] = {enc_text("1"), enc_null(), {.kind = 'x'}};
    enc_col bad0[] = {{.kind = 0}};
    buf b;

    buf_init(&b);
    enc_update(&b, ENC_NO_XID, 1, 'O', oldc, 1, newc, 3);
    assert_int_equal(decode(&b, &V1), -1);
    assert_string_equal(g_err, "pgoutput: unrecognized tuple data kind 'x' in column 3 of Update");

    buf_reset(&b);
    enc_insert(&b, ENC_NO_XID, 1, bad0, 1);
    assert_int_equal(decode(&b, &V1), -1);
    assert_string_equal(g_err, "pgoutput: unrecognized tuple data kind 0x00 in column 1 of Insert");
    buf_free(&b);
}

static void test_bad_markers(void **state)
{
    enc_col cols[] = {enc_text("1")};
    buf b;

    buf_init(&b);
    /* Insert with an old-tuple marker */
    enc_delete(&b, ENC_NO_XID, 1, 'K', cols, 1);
    b.data[0] = 'I';
    assert_int_equal(decode(&b, &V1), -1);
    assert_string_equal(g_err, "pgoutput: unexpected byte 'K' in Insert message at offset 5 (expected 'N')");

    /* Update with an unknown marker, and 'K' tuple not followed by 'N' */
    buf_reset(&b);
    enc_update(&b, ENC_NO_XID, 1, 'X', cols, 1, cols, 1);
    assert_fails(&b, &V1, "unexpected byte 'X' in Update message at offset 5 (expected 'K', 'O' or 'N')");
    buf_reset(&b);
    enc_update(&b, ENC_NO_XID, 1, 'K', cols, 1, cols, 1);
    b.data[5 + 1 + 2 + 1 + 4 + 1] = 'O';
    assert_fails(&b, &V1, "unexpected byte 'O' in Update message at offset 14 (expected 'N')");

    /* Delete needs 'K' or 'O' */
    buf_reset(&b);
    enc_delete(&b, ENC_NO_XID, 1, 'N', cols, 1);
    assert_fails(&b, &V1, "unexpected byte 'N' in Delete message at offset 5 (expected 'K' or 'O')");
    buf_reset(&b);
    enc_delete(&b, ENC_NO_XID, 1, 0, cols, 1);
    assert_fails(&b, &V1, "unexpected byte 0x00 in Delete message");
    buf_free(&b);
}

static void test_counts_out_of_range(void **state)
{
    static enc_attr many[PGO_MAX_ATTS + 1];
    enc_col cols[PGO_MAX_ATTS + 1];
    buf b;

    for (int i = 0; i <= PGO_MAX_ATTS; i++) {
        many[i] = (enc_attr){0, "c", 25, -1};
        cols[i] = enc_null();
    }
    buf_init(&b);
    enc_relation(&b, ENC_NO_XID, 1, "s", "t", 'd', many, PGO_MAX_ATTS + 1);
    assert_int_equal(decode(&b, &V1), -1);
    assert_string_equal(g_err, "pgoutput: attribute count 1665 out of range 0..1664 in Relation message at offset 10");
    buf_reset(&b);
    enc_relation(&b, ENC_NO_XID, 1, "s", "t", 'd', many, -1);
    assert_fails(&b, &V1, "attribute count -1 out of range");

    buf_reset(&b);
    enc_insert(&b, ENC_NO_XID, 1, cols, PGO_MAX_ATTS + 1);
    assert_fails(&b, &V1, "column count 1665 out of range 0..1664 in Insert message at offset 6");
    buf_reset(&b);
    enc_insert(&b, ENC_NO_XID, 1, cols, PGO_MAX_ATTS);
    assert_decodes(&b, &V1);
    assert_int_equal(g_msg.u.change.newtup.ncols, PGO_MAX_ATTS);
    buf_reset(&b);
    enc_delete(&b, ENC_NO_XID, 1, 'O', cols, INT16_MIN);
    assert_fails(&b, &V1, "column count -32768 out of range");
    buf_free(&b);
}

static void test_bad_lengths(void **state)
{
    enc_col neg[] = {{.kind = 't', .len = -1}};
    enc_col short4[] = {enc_text("abcd")};
    buf b;

    buf_init(&b);
    enc_insert(&b, ENC_NO_XID, 1, neg, 1);
    assert_int_equal(decode(&b, &V1), -1);
    assert_string_equal(g_err, "pgoutput: negative column length -1 in Insert message at offset 9");

    /* a declared length far beyond the buffer (written by hand: no data) */
    buf_reset(&b);
    enc_u8(&b, 'I');
    enc_i32(&b, 1);
    enc_u8(&b, 'N');
    enc_i16(&b, 1);
    enc_u8(&b, 'b');
    enc_i32(&b, INT32_MAX);
    assert_fails(&b, &V1, "truncated Insert message at offset 13 (need 2147483647 bytes, have 0)");

    /* the brief's example: a 4-byte text column with 2 bytes present */
    buf_reset(&b);
    enc_insert(&b, ENC_NO_XID, 1, short4, 1);
    b.len -= 2;
    assert_int_equal(decode(&b, &V1), -1);
    assert_string_equal(g_err, "pgoutput: truncated Insert message at offset 13 (need 4 bytes, have 2)");

    buf_reset(&b);
    enc_message(&b, ENC_NO_XID, 0, LSN1, "p", NULL, -5);
    assert_fails(&b, &V1, "negative content length -5 in Message message");

    buf_reset(&b);
    enc_truncate(&b, ENC_NO_XID, 0, NULL, -1);
    assert_fails(&b, &V1, "negative relation count -1 in Truncate message at offset 1");
    buf_reset(&b);
    enc_truncate(&b, ENC_NO_XID, 0, RELIDS, 3);
    b.data[4] = 4; /* nrelids 4, three present */
    assert_fails(&b, &V1, "truncated Truncate message at offset 6 (need 16 bytes, have 12)");
    buf_free(&b);
}

static void test_string_without_nul(void **state)
{
    buf b;

    buf_init(&b);
    enc_u8(&b, 'O');
    enc_i64(&b, 1);
    buf_append(&b, "origin", 6);
    assert_int_equal(decode(&b, &V1), -1);
    assert_string_equal(g_err, "pgoutput: unterminated string in Origin message at offset 9");

    buf_reset(&b);
    enc_u8(&b, 'Y');
    enc_i32(&b, 16500);
    enc_str(&b, "public");
    buf_append(&b, "vec", 3);
    assert_fails(&b, &V1, "unterminated string in Type message at offset 12");
    buf_free(&b);
}

static void test_invalid_values(void **state)
{
    buf b;

    buf_init(&b);
    enc_commit(&b, 1, LSN1, LSN2, TS1);
    assert_int_equal(decode(&b, &V1), -1);
    assert_string_equal(g_err, "pgoutput: unrecognized flags 0x01 in Commit message at offset 1");
    buf_reset(&b);
    enc_stream_commit(&b, XID, 2, LSN1, LSN2, TS1);
    assert_fails(&b, &V2, "unrecognized flags 0x02 in Stream Commit message at offset 5");
    buf_reset(&b);
    enc_commit_prepared(&b, 0x80, LSN1, LSN2, TS1, XID, "g");
    assert_fails(&b, &V3, "unrecognized flags 0x80 in Commit Prepared message");
    buf_reset(&b);
    enc_rollback_prepared(&b, 1, LSN1, LSN2, TS1, TS1, XID, "g");
    assert_fails(&b, &V3, "unrecognized flags 0x01 in Rollback Prepared message");

    buf_reset(&b);
    enc_relation(&b, ENC_NO_XID, 1, "s", "t", 'x', ATTRS, 1);
    assert_fails(&b, &V1, "unknown replica identity 'x' in Relation message at offset 9");
    buf_reset(&b);
    enc_relation(&b, ENC_NO_XID, 1, "s", "t", 0, ATTRS, 1);
    assert_fails(&b, &V1, "unknown replica identity 0x00");
    buf_free(&b);
}

static void test_msg_name(void **state)
{
    assert_string_equal(pgo_msg_name(PGO_BEGIN), "Begin");
    assert_string_equal(pgo_msg_name(PGO_INSERT), "Insert");
    assert_string_equal(pgo_msg_name(PGO_STREAM_COMMIT), "Stream Commit");
    assert_string_equal(pgo_msg_name(PGO_COMMIT_PREPARED), "Commit Prepared");
    assert_string_equal(pgo_msg_name(PGO_ROLLBACK_PREPARED), "Rollback Prepared");
    assert_string_equal(pgo_msg_name('Z'), "unknown");
    assert_string_equal(pgo_msg_name('\0'), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_begin),
        cmocka_unit_test(test_commit),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_relation),
        cmocka_unit_test(test_relation_max_atts),
        cmocka_unit_test(test_type),
        cmocka_unit_test(test_insert_tuple_kinds),
        cmocka_unit_test(test_update_without_old),
        cmocka_unit_test(test_update_with_key),
        cmocka_unit_test(test_update_with_old),
        cmocka_unit_test(test_delete_key_and_old),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_stream_start_stop),
        cmocka_unit_test(test_stream_commit),
        cmocka_unit_test(test_stream_abort),
        cmocka_unit_test(test_two_phase),
        cmocka_unit_test(test_stream_xid),
        cmocka_unit_test(test_version_gating),
        cmocka_unit_test(test_pg15_begin_commit),
        cmocka_unit_test(test_pg15_relation_insert),
        cmocka_unit_test(test_pg15_update_delete),
        cmocka_unit_test(test_copydata_xlogdata),
        cmocka_unit_test(test_copydata_keepalive),
        cmocka_unit_test(test_copydata_malformed),
        cmocka_unit_test(test_status_update_layout),
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_empty_and_unknown_type),
        cmocka_unit_test(test_unknown_tuple_kind),
        cmocka_unit_test(test_bad_markers),
        cmocka_unit_test(test_counts_out_of_range),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_string_without_nul),
        cmocka_unit_test(test_invalid_values),
        cmocka_unit_test(test_msg_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
