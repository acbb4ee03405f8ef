/*
 * pgo_encode.c — TEST-ONLY encoder for pgoutput messages and CopyBoth
 * frames; see pgo_encode.h.  Field order follows proto.c's
 * logicalrep_write_* functions.
 */
#include "pgo_encode.h"

#include <string.h>

void enc_u8(buf *b, uint8_t v)
{
    buf_putc(b, (char)v);
}

static void enc_be(buf *b, uint64_t v, int nbytes)
{
    for (int shift = (nbytes - 1) * 8; shift >= 0; shift -= 8)
        enc_u8(b, (uint8_t)(v >> shift));
}

void enc_i16(buf *b, int16_t v)
{
    enc_be(b, (uint16_t)v, 2);
}

void enc_i32(buf *b, int32_t v)
{
    enc_be(b, (uint32_t)v, 4);
}

void enc_i64(buf *b, int64_t v)
{
    enc_be(b, (uint64_t)v, 8);
}

static void enc_u32(buf *b, uint32_t v)
{
    enc_be(b, v, 4);
}

static void enc_u64(buf *b, uint64_t v)
{
    enc_be(b, v, 8);
}

void enc_str(buf *b, const char *s)
{
    buf_append(b, s, strlen(s) + 1);
}

static void enc_opt_xid(buf *b, int64_t xid)
{
    if (xid != ENC_NO_XID)
        enc_u32(b, (uint32_t)xid);
}

/* ---- TupleData ---- */

enc_col enc_null(void)
{
    return (enc_col){.kind = 'n'};
}

enc_col enc_unchanged(void)
{
    return (enc_col){.kind = 'u'};
}

enc_col enc_text(const char *s)
{
    return (enc_col){.kind = 't', .data = s, .len = (int32_t)strlen(s)};
}

enc_col enc_binary(const void *data, int32_t len)
{
    return (enc_col){.kind = 'b', .data = data, .len = len};
}

void enc_tuple(buf *b, const enc_col *cols, int16_t ncols)
{
    enc_i16(b, ncols);
    for (int16_t i = 0; i < ncols; i++) {
        enc_u8(b, (uint8_t)cols[i].kind);
        if (cols[i].kind == 't' || cols[i].kind == 'b') {
            enc_i32(b, cols[i].len);
            if (cols[i].len > 0)
                buf_append(b, cols[i].data, (size_t)cols[i].len);
        }
    }
}

/* ---- messages ---- */

void enc_begin(buf *b, uint64_t final_lsn, int64_t commit_ts, uint32_t xid)
{
    enc_u8(b, 'B');
    enc_u64(b, final_lsn);
    enc_i64(b, commit_ts);
    enc_u32(b, xid);
}

void enc_commit(buf *b, uint8_t flags, uint64_t commit_lsn, uint64_t end_lsn, int64_t commit_ts)
{
    enc_u8(b, 'C');
    enc_u8(b, flags);
    enc_u64(b, commit_lsn);
    enc_u64(b, end_lsn);
    enc_i64(b, commit_ts);
}

void enc_origin(buf *b, uint64_t lsn, const char *name)
{
    enc_u8(b, 'O');
    enc_u64(b, lsn);
    enc_str(b, name);
}

void enc_relation(buf *b, int64_t xid, uint32_t relid, const char *nspname, const char *relname, char replident,
                  const enc_attr *attrs, int16_t natts)
{
    enc_u8(b, 'R');
    enc_opt_xid(b, xid);
    enc_u32(b, relid);
    enc_str(b, nspname);
    enc_str(b, relname);
    enc_u8(b, (uint8_t)replident);
    enc_i16(b, natts);
    for (int16_t i = 0; i < natts; i++) {
        enc_u8(b, attrs[i].flags);
        enc_str(b, attrs[i].name);
        enc_u32(b, attrs[i].typid);
        enc_i32(b, attrs[i].typmod);
    }
}

void enc_type(buf *b, int64_t xid, uint32_t typid, const char *nspname, const char *typname)
{
    enc_u8(b, 'Y');
    enc_opt_xid(b, xid);
    enc_u32(b, typid);
    enc_str(b, nspname);
    enc_str(b, typname);
}

void enc_insert(buf *b, int64_t xid, uint32_t relid, const enc_col *cols, int16_t ncols)
{
    enc_u8(b, 'I');
    enc_opt_xid(b, xid);
    enc_u32(b, relid);
    enc_u8(b, 'N');
    enc_tuple(b, cols, ncols);
}

void enc_update(buf *b, int64_t xid, uint32_t relid, char old_kind, const enc_col *oldcols, int16_t nold,
                const enc_col *newcols, int16_t nnew)
{
    enc_u8(b, 'U');
    enc_opt_xid(b, xid);
    enc_u32(b, relid);
    if (old_kind) {
        enc_u8(b, (uint8_t)old_kind);
        enc_tuple(b, oldcols, nold);
    }
    enc_u8(b, 'N');
    enc_tuple(b, newcols, nnew);
}

void enc_delete(buf *b, int64_t xid, uint32_t relid, char old_kind, const enc_col *cols, int16_t ncols)
{
    enc_u8(b, 'D');
    enc_opt_xid(b, xid);
    enc_u32(b, relid);
    enc_u8(b, (uint8_t)old_kind);
    enc_tuple(b, cols, ncols);
}

void enc_truncate(buf *b, int64_t xid, uint8_t flags, const uint32_t *relids, int32_t nrelids)
{
    enc_u8(b, 'T');
    enc_opt_xid(b, xid);
    enc_i32(b, nrelids);
    enc_u8(b, flags);
    for (int32_t i = 0; i < nrelids; i++)
        enc_u32(b, relids[i]);
}

void enc_message(buf *b, int64_t xid, uint8_t flags, uint64_t lsn, const char *prefix, const void *content,
                 int32_t len)
{
    enc_u8(b, 'M');
    enc_opt_xid(b, xid);
    enc_u8(b, flags);
    enc_u64(b, lsn);
    enc_str(b, prefix);
    enc_i32(b, len);
    if (len > 0)
        buf_append(b, content, (size_t)len);
}

void enc_stream_start(buf *b, uint32_t xid, bool first_segment)
{
    enc_u8(b, 'S');
    enc_u32(b, xid);
    enc_u8(b, first_segment ? 1 : 0);
}

void enc_stream_stop(buf *b)
{
    enc_u8(b, 'E');
}

void enc_stream_commit(buf *b, uint32_t xid, uint8_t flags, uint64_t commit_lsn, uint64_t end_lsn,
                       int64_t commit_ts)
{
    enc_u8(b, 'c');
    enc_u32(b, xid);
    enc_u8(b, flags);
    enc_u64(b, commit_lsn);
    enc_u64(b, end_lsn);
    enc_i64(b, commit_ts);
}

void enc_stream_abort(buf *b, uint32_t xid, uint32_t subxid, bool with_abort_info, uint64_t abort_lsn,
                      int64_t abort_ts)
{
    enc_u8(b, 'A');
    enc_u32(b, xid);
    enc_u32(b, subxid);
    if (with_abort_info) {
        enc_u64(b, abort_lsn);
        enc_i64(b, abort_ts);
    }
}

void enc_begin_prepare(buf *b, uint64_t prepare_lsn, uint64_t end_lsn, int64_t prepare_ts, uint32_t xid,
                       const char *gid)
{
    enc_u8(b, 'b');
    enc_u64(b, prepare_lsn);
    enc_u64(b, end_lsn);
    enc_i64(b, prepare_ts);
    enc_u32(b, xid);
    enc_str(b, gid);
}

/* Prepare, Stream Prepare and Commit Prepared: one layout, three type bytes. */
static void enc_prepare_like(buf *b, char type, uint8_t flags, uint64_t lsn, uint64_t end_lsn, int64_t ts,
                             uint32_t xid, const char *gid)
{
    enc_u8(b, (uint8_t)type);
    enc_u8(b, flags);
    enc_u64(b, lsn);
    enc_u64(b, end_lsn);
    enc_i64(b, ts);
    enc_u32(b, xid);
    enc_str(b, gid);
}

void enc_prepare(buf *b, uint8_t flags, uint64_t prepare_lsn, uint64_t end_lsn, int64_t prepare_ts, uint32_t xid,
                 const char *gid)
{
    enc_prepare_like(b, 'P', flags, prepare_lsn, end_lsn, prepare_ts, xid, gid);
}

void enc_stream_prepare(buf *b, uint8_t flags, uint64_t prepare_lsn, uint64_t end_lsn, int64_t prepare_ts,
                        uint32_t xid, const char *gid)
{
    enc_prepare_like(b, 'p', flags, prepare_lsn, end_lsn, prepare_ts, xid, gid);
}

void enc_commit_prepared(buf *b, uint8_t flags, uint64_t commit_lsn, uint64_t end_lsn, int64_t commit_ts,
                         uint32_t xid, const char *gid)
{
    enc_prepare_like(b, 'K', flags, commit_lsn, end_lsn, commit_ts, xid, gid);
}

void enc_rollback_prepared(buf *b, uint8_t flags, uint64_t prepare_end_lsn, uint64_t rollback_end_lsn,
                           int64_t prepare_ts, int64_t rollback_ts, uint32_t xid, const char *gid)
{
    enc_u8(b, 'r');
    enc_u8(b, flags);
    enc_u64(b, prepare_end_lsn);
    enc_u64(b, rollback_end_lsn);
    enc_i64(b, prepare_ts);
    enc_i64(b, rollback_ts);
    enc_u32(b, xid);
    enc_str(b, gid);
}

/* ---- CopyBoth frames ---- */

void enc_xlogdata(buf *b, uint64_t data_start, uint64_t wal_end, int64_t send_time, const void *payload,
                  size_t len)
{
    enc_u8(b, 'w');
    enc_u64(b, data_start);
    enc_u64(b, wal_end);
    enc_i64(b, send_time);
    if (len > 0)
        buf_append(b, payload, len);
}

void enc_keepalive(buf *b, uint64_t wal_end, int64_t send_time, bool reply_requested)
{
    enc_u8(b, 'k');
    enc_u64(b, wal_end);
    enc_i64(b, send_time);
    enc_u8(b, reply_requested ? 1 : 0);
}
