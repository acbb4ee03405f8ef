/*
 * pgo_encode.h — TEST-ONLY encoder for the logical replication wire format.
 *
 * Builds byte-exact pgoutput messages (PROTOCOL.md §1.3) and CopyBoth frames
 * (§1.2) as PostgreSQL's proto.c / walsender.c write them, for fixtures in
 * unit tests and the fuzz seed corpus.  It is written independently of the
 * decoder (src/pgoutput.c): every integer is put big-endian byte by byte
 * here, and it does not include pgoutput.h, so a bug cannot cancel out.
 *
 * Usage: every enc_* function APPENDS to a caller-owned buf (util.h), so a
 * message is built as
 *
 *     buf b; buf_init(&b);
 *     enc_insert(&b, ENC_NO_XID, 16384, cols, 2);
 *     ... b.data / b.len ...
 *     buf_free(&b);
 *
 * To frame a message as the server sends it, build it into one buf and pass
 * that to enc_xlogdata() on another.  The raw writers (enc_u8 ... enc_str)
 * are there to build malformed inputs by hand.
 *
 * [xid]: the functions of the messages that carry the optional stream xid
 * take an int64_t xid; ENC_NO_XID omits the field (outside a stream block),
 * any value 0..UINT32_MAX writes it.  Nothing is validated: counts are
 * written as given, so a test can produce out-of-range values on purpose.
 */
#ifndef P2Q_PGO_ENCODE_H
#define P2Q_PGO_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define ENC_NO_XID ((int64_t)-1)

/* ---- raw big-endian writers ---- */
void enc_u8(buf *b, uint8_t v);
void enc_i16(buf *b, int16_t v);
void enc_i32(buf *b, int32_t v);
void enc_i64(buf *b, int64_t v);
/* s and its NUL terminator. */
void enc_str(buf *b, const char *s);

/* ---- TupleData ---- */

/* One column: kind 'n' NULL, 'u' unchanged TOAST, 't' text, 'b' binary (or
 * any other byte, to test rejection).  data/len are written for 't'/'b'. */
typedef struct enc_col {
    char kind;
    const char *data;
    int32_t len;
} enc_col;

enc_col enc_null(void);
enc_col enc_unchanged(void);
/* 't' column with strlen(s) bytes of s (no NUL on the wire). */
enc_col enc_text(const char *s);
enc_col enc_binary(const void *data, int32_t len);

/* Int16 ncols, then each column. */
void enc_tuple(buf *b, const enc_col *cols, int16_t ncols);

/* ---- pgoutput messages, one builder per type ---- */

typedef struct enc_attr {
    uint8_t flags; /* 1 = replica identity key column */
    const char *name;
    uint32_t typid;
    int32_t typmod;
} enc_attr;

void enc_begin(buf *b, uint64_t final_lsn, int64_t commit_ts, uint32_t xid);
void enc_commit(buf *b, uint8_t flags, uint64_t commit_lsn, uint64_t end_lsn, int64_t commit_ts);
void enc_origin(buf *b, uint64_t lsn, const char *name);
void enc_relation(buf *b, int64_t xid, uint32_t relid, const char *nspname, const char *relname, char replident,
                  const enc_attr *attrs, int16_t natts);
void enc_type(buf *b, int64_t xid, uint32_t typid, const char *nspname, const char *typname);
void enc_insert(buf *b, int64_t xid, uint32_t relid, const enc_col *cols, int16_t ncols);
/* old_kind 0 writes no old tuple; 'K' or 'O' writes it before 'N'. */
void enc_update(buf *b, int64_t xid, uint32_t relid, char old_kind, const enc_col *oldcols, int16_t nold,
                const enc_col *newcols, int16_t nnew);
/* old_kind 'K' or 'O'. */
void enc_delete(buf *b, int64_t xid, uint32_t relid, char old_kind, const enc_col *cols, int16_t ncols);
void enc_truncate(buf *b, int64_t xid, uint8_t flags, const uint32_t *relids, int32_t nrelids);
void enc_message(buf *b, int64_t xid, uint8_t flags, uint64_t lsn, const char *prefix, const void *content,
                 int32_t len);
void enc_stream_start(buf *b, uint32_t xid, bool first_segment);
void enc_stream_stop(buf *b);
void enc_stream_commit(buf *b, uint32_t xid, uint8_t flags, uint64_t commit_lsn, uint64_t end_lsn,
                       int64_t commit_ts);
/* with_abort_info: append abort_lsn and abort_ts (streaming = parallel, v4). */
void enc_stream_abort(buf *b, uint32_t xid, uint32_t subxid, bool with_abort_info, uint64_t abort_lsn,
                      int64_t abort_ts);
void enc_begin_prepare(buf *b, uint64_t prepare_lsn, uint64_t end_lsn, int64_t prepare_ts, uint32_t xid,
                       const char *gid);
void enc_prepare(buf *b, uint8_t flags, uint64_t prepare_lsn, uint64_t end_lsn, int64_t prepare_ts, uint32_t xid,
                 const char *gid);
void enc_stream_prepare(buf *b, uint8_t flags, uint64_t prepare_lsn, uint64_t end_lsn, int64_t prepare_ts,
                        uint32_t xid, const char *gid);
void enc_commit_prepared(buf *b, uint8_t flags, uint64_t commit_lsn, uint64_t end_lsn, int64_t commit_ts,
                         uint32_t xid, const char *gid);
void enc_rollback_prepared(buf *b, uint8_t flags, uint64_t prepare_end_lsn, uint64_t rollback_end_lsn,
                           int64_t prepare_ts, int64_t rollback_ts, uint32_t xid, const char *gid);

/* ---- CopyBoth frames ---- */

/* 'w' header (25 bytes) followed by the payload. */
void enc_xlogdata(buf *b, uint64_t data_start, uint64_t wal_end, int64_t send_time, const void *payload,
                  size_t len);
/* 'k', 18 bytes. */
void enc_keepalive(buf *b, uint64_t wal_end, int64_t send_time, bool reply_requested);

#endif
