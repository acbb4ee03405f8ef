/*
 * pgoutput.c — the pure decoder of the logical replication stream.
 *
 * Shaped like PostgreSQL's proto.c: a bounds-checked cursor (pgo_reader)
 * and one small static reader per message type.  Every read checks the
 * remaining length first; the first failure formats the one-line error and
 * every caller just propagates -1.  Nothing here allocates, logs or does I/O:
 * decoded strings and column data point into the caller's buffer.
 */
#include "pgoutput.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The cursor over one message. what names the message in errors. */
typedef struct pgo_reader {
    const unsigned char *p;
    size_t len;
    size_t off;
    const char *what;
    char *err;
    size_t errlen;
} pgo_reader;

static void pgo_set_err(char *err, size_t errlen, const char *fmt, va_list ap)
{
    int n;

    if (!err || errlen == 0)
        return;
    n = snprintf(err, errlen, "pgoutput: ");
    if (n >= 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

static int pgo_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pgo_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pgo_set_err(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int rd_fail(pgo_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_fail(pgo_reader *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pgo_set_err(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A byte for an error message: 'x' when printable, 0x.. otherwise. */
static const char *fmt_byte(unsigned char c, char out[8])
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(out, 8, "'%c'", c);
    else
        snprintf(out, 8, "0x%02x", c);
    return out;
}

static int rd_need(pgo_reader *r, uint64_t n)
{
    size_t have = r->len - r->off;

    if (n > have)
        return rd_fail(r, "truncated %s message at offset %zu (need %llu bytes, have %zu)", r->what, r->off,
                       (unsigned long long)n, have);
    return 0;
}

static uint64_t rd_be(pgo_reader *r, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = (v << 8) | r->p[r->off + i];
    r->off += n;
    return v;
}

static int get_u8(pgo_reader *r, uint8_t *v)
{
    if (rd_need(r, 1) < 0)
        return -1;
    *v = (uint8_t)rd_be(r, 1);
    return 0;
}

static int get_i16(pgo_reader *r, int16_t *v)
{
    if (rd_need(r, 2) < 0)
        return -1;
    *v = (int16_t)(uint16_t)rd_be(r, 2);
    return 0;
}

static int get_i32(pgo_reader *r, int32_t *v)
{
    if (rd_need(r, 4) < 0)
        return -1;
    *v = (int32_t)(uint32_t)rd_be(r, 4);
    return 0;
}

/* Unsigned Int32 fields (OIDs, xids): same wire form as get_i32. */
static int get_u32(pgo_reader *r, uint32_t *v)
{
    if (rd_need(r, 4) < 0)
        return -1;
    *v = (uint32_t)rd_be(r, 4);
    return 0;
}

static int get_i64(pgo_reader *r, int64_t *v)
{
    if (rd_need(r, 8) < 0)
        return -1;
    *v = (int64_t)rd_be(r, 8);
    return 0;
}

static int get_lsn(pgo_reader *r, lsn_t *v)
{
    if (rd_need(r, 8) < 0)
        return -1;
    *v = rd_be(r, 8);
    return 0;
}

/* A NUL-terminated string; the NUL must lie inside the buffer. */
static int get_string(pgo_reader *r, const char **s)
{
    const unsigned char *start = r->p + r->off;
    const unsigned char *nul = memchr(start, '\0', r->len - r->off);

    if (!nul)
        return rd_fail(r, "unterminated string in %s message at offset %zu", r->what, r->off);
    *s = (const char *)start;
    r->off += (size_t)(nul - start) + 1;
    return 0;
}

static int get_bytes(pgo_reader *r, uint64_t n, const char **p)
{
    if (rd_need(r, n) < 0)
        return -1;
    *p = (const char *)r->p + r->off;
    r->off += (size_t)n;
    return 0;
}

/* The flags byte of Commit / Prepare-family messages: PostgreSQL defines
 * none and its own reader rejects any (proto.c). */
static int get_zero_flags(pgo_reader *r, uint8_t *flags)
{
    size_t at = r->off;

    if (get_u8(r, flags) < 0)
        return -1;
    if (*flags != 0)
        return rd_fail(r, "unrecognized flags 0x%02x in %s message at offset %zu", *flags, r->what, at);
    return 0;
}

/* [xid]: present exactly when the caller says we are inside a stream block. */
static int get_opt_xid(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    if (!opt->in_stream)
        return 0;
    m->has_xid = true;
    return get_u32(r, &m->xid);
}

/* A column count (Relation natts, TupleData ncols): Int16 in 0..PGO_MAX_ATTS. */
static int get_count(pgo_reader *r, const char *field, uint16_t *n)
{
    size_t at = r->off;
    int16_t v;

    if (get_i16(r, &v) < 0)
        return -1;
    if (v < 0 || v > PGO_MAX_ATTS)
        return rd_fail(r, "%s %d out of range 0..%d in %s message at offset %zu", field, v, PGO_MAX_ATTS, r->what, at);
    *n = (uint16_t)v;
    return 0;
}

/* An Int32 byte count that must not be negative. */
static int get_length(pgo_reader *r, const char *field, uint32_t *n)
{
    size_t at = r->off;
    int32_t v;

    if (get_i32(r, &v) < 0)
        return -1;
    if (v < 0)
        return rd_fail(r, "negative %s %d in %s message at offset %zu", field, v, r->what, at);
    *n = (uint32_t)v;
    return 0;
}

/* ---- TupleData -------------------------------------------------------- */

static int read_datum(pgo_reader *r, int colno, pgo_datum *d)
{
    uint8_t kind;
    char kb[8];

    if (get_u8(r, &kind) < 0)
        return -1;
    d->kind = (char)kind;
    d->len = 0;
    d->data = NULL;
    switch (kind) {
    case 'n':
    case 'u':
        return 0;
    case 't':
    case 'b':
        if (get_length(r, "column length", &d->len) < 0)
            return -1;
        return get_bytes(r, d->len, &d->data);
    default:
        return rd_fail(r, "unrecognized tuple data kind %s in column %d of %s", fmt_byte(kind, kb), colno, r->what);
    }
}

static int read_tuple(pgo_reader *r, pgo_tuple *t)
{
    if (get_count(r, "column count", &t->ncols) < 0)
        return -1;
    for (uint16_t i = 0; i < t->ncols; i++)
        if (read_datum(r, i + 1, &t->cols[i]) < 0)
            return -1;
    return 0;
}

/* The Byte1 marker before a TupleData; expected lists the accepted bytes. */
static int read_marker(pgo_reader *r, const char *expected, const char *expected_text, char *marker)
{
    size_t at = r->off;
    uint8_t c;
    char kb[8];

    if (get_u8(r, &c) < 0)
        return -1;
    if (c == 0 || !strchr(expected, c))
        return rd_fail(r, "unexpected byte %s in %s message at offset %zu (expected %s)", fmt_byte(c, kb), r->what, at,
                       expected_text);
    *marker = (char)c;
    return 0;
}

/* ---- one reader per message type --------------------------------------- */

typedef int (*pgo_read_fn)(pgo_reader *r, const pgo_options *opt, pgo_msg *m);

static int read_begin(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    if (get_lsn(r, &m->u.begin.final_lsn) < 0 || get_i64(r, &m->u.begin.commit_ts) < 0)
        return -1;
    return get_u32(r, &m->xid);
}

/* Commit and Stream Commit (which starts with its xid). */
static int read_commit(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    if (m->type == PGO_STREAM_COMMIT && get_u32(r, &m->xid) < 0)
        return -1;
    if (get_zero_flags(r, &m->u.commit.flags) < 0 || get_lsn(r, &m->u.commit.commit_lsn) < 0 ||
        get_lsn(r, &m->u.commit.end_lsn) < 0)
        return -1;
    return get_i64(r, &m->u.commit.commit_ts);
}

static int read_origin(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    if (get_lsn(r, &m->u.origin.lsn) < 0)
        return -1;
    return get_string(r, &m->u.origin.name);
}

static int read_relation(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    size_t at;
    uint8_t ident;
    char kb[8];

    if (get_opt_xid(r, opt, m) < 0 || get_u32(r, &m->u.relation.relid) < 0 ||
        get_string(r, &m->u.relation.nspname) < 0 || get_string(r, &m->u.relation.relname) < 0)
        return -1;
    at = r->off;
    if (get_u8(r, &ident) < 0)
        return -1;
    if (ident == 0 || !strchr("dnfi", ident))
        return rd_fail(r, "unknown replica identity %s in Relation message at offset %zu", fmt_byte(ident, kb), at);
    m->u.relation.replident = (char)ident;
    if (get_count(r, "attribute count", &m->u.relation.natts) < 0)
        return -1;
    for (uint16_t i = 0; i < m->u.relation.natts; i++) {
        pgo_attr *a = &m->u.relation.attrs[i];
        int32_t typmod;

        if (get_u8(r, &a->flags) < 0 || get_string(r, &a->name) < 0 || get_u32(r, &a->typid) < 0 ||
            get_i32(r, &typmod) < 0)
            return -1;
        a->typmod = typmod;
    }
    return 0;
}

static int read_type(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    if (get_opt_xid(r, opt, m) < 0 || get_u32(r, &m->u.type.typid) < 0)
        return -1;
    if (get_string(r, &m->u.type.nspname) < 0)
        return -1;
    return get_string(r, &m->u.type.typname);
}

static void change_init(pgo_msg *m)
{
    m->u.change.old_kind = 0;
    m->u.change.has_new = false;
    m->u.change.oldtup.ncols = 0;
    m->u.change.newtup.ncols = 0;
}

static int read_insert(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    char marker;

    change_init(m);
    if (get_opt_xid(r, opt, m) < 0 || get_u32(r, &m->u.change.relid) < 0 ||
        read_marker(r, "N", "'N'", &marker) < 0)
        return -1;
    m->u.change.has_new = true;
    return read_tuple(r, &m->u.change.newtup);
}

static int read_update(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    char marker;

    change_init(m);
    if (get_opt_xid(r, opt, m) < 0 || get_u32(r, &m->u.change.relid) < 0 ||
        read_marker(r, "KON", "'K', 'O' or 'N'", &marker) < 0)
        return -1;
    if (marker != 'N') {
        m->u.change.old_kind = marker;
        if (read_tuple(r, &m->u.change.oldtup) < 0 || read_marker(r, "N", "'N'", &marker) < 0)
            return -1;
    }
    m->u.change.has_new = true;
    return read_tuple(r, &m->u.change.newtup);
}

static int read_delete(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    change_init(m);
    if (get_opt_xid(r, opt, m) < 0 || get_u32(r, &m->u.change.relid) < 0 ||
        read_marker(r, "KO", "'K' or 'O'", &m->u.change.old_kind) < 0)
        return -1;
    return read_tuple(r, &m->u.change.oldtup);
}

static int read_truncate(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    const char *relids;

    if (get_opt_xid(r, opt, m) < 0 || get_length(r, "relation count", &m->u.truncate.nrelids) < 0 ||
        get_u8(r, &m->u.truncate.flags) < 0)
        return -1;
    if (get_bytes(r, (uint64_t)m->u.truncate.nrelids * 4, &relids) < 0)
        return -1;
    m->u.truncate.relids = (const unsigned char *)relids;
    return 0;
}

static int read_message(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    if (get_opt_xid(r, opt, m) < 0 || get_u8(r, &m->u.message.flags) < 0 || get_lsn(r, &m->u.message.lsn) < 0 ||
        get_string(r, &m->u.message.prefix) < 0 || get_length(r, "content length", &m->u.message.len) < 0)
        return -1;
    return get_bytes(r, m->u.message.len, &m->u.message.content);
}

static int read_stream_start(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    uint8_t first;

    if (get_u32(r, &m->xid) < 0 || get_u8(r, &first) < 0)
        return -1;
    m->u.stream_start.first_segment = first == 1; /* as proto.c reads it */
    return 0;
}

static int read_stream_stop(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    return 0;
}

static int read_stream_abort(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    m->u.stream_abort.has_abort_lsn = opt->parallel_abort;
    m->u.stream_abort.abort_lsn = LSN_INVALID;
    m->u.stream_abort.abort_ts = 0;
    if (get_u32(r, &m->xid) < 0 || get_u32(r, &m->u.stream_abort.subxid) < 0)
        return -1;
    if (!opt->parallel_abort)
        return 0;
    if (get_lsn(r, &m->u.stream_abort.abort_lsn) < 0)
        return -1;
    return get_i64(r, &m->u.stream_abort.abort_ts);
}

static int read_begin_prepare(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    m->u.twophase.flags = 0;
    m->u.twophase.ts2 = 0;
    if (get_lsn(r, &m->u.twophase.lsn1) < 0 || get_lsn(r, &m->u.twophase.lsn2) < 0 ||
        get_i64(r, &m->u.twophase.ts1) < 0 || get_u32(r, &m->xid) < 0)
        return -1;
    return get_string(r, &m->u.twophase.gid);
}

/* Prepare, Stream Prepare and Commit Prepared share one layout. */
static int read_prepare(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    m->u.twophase.ts2 = 0;
    if (get_zero_flags(r, &m->u.twophase.flags) < 0 || get_lsn(r, &m->u.twophase.lsn1) < 0 ||
        get_lsn(r, &m->u.twophase.lsn2) < 0 || get_i64(r, &m->u.twophase.ts1) < 0 || get_u32(r, &m->xid) < 0)
        return -1;
    return get_string(r, &m->u.twophase.gid);
}

static int read_rollback_prepared(pgo_reader *r, const pgo_options *opt, pgo_msg *m)
{
    if (get_zero_flags(r, &m->u.twophase.flags) < 0 || get_lsn(r, &m->u.twophase.lsn1) < 0 ||
        get_lsn(r, &m->u.twophase.lsn2) < 0 || get_i64(r, &m->u.twophase.ts1) < 0 ||
        get_i64(r, &m->u.twophase.ts2) < 0 || get_u32(r, &m->xid) < 0)
        return -1;
    return get_string(r, &m->u.twophase.gid);
}

typedef struct pgo_kind {
    char type;
    int min_version;
    const char *name;
    pgo_read_fn read;
} pgo_kind;

static const pgo_kind pgo_kinds[] = {
    {PGO_BEGIN, 1, "Begin", read_begin},
    {PGO_COMMIT, 1, "Commit", read_commit},
    {PGO_ORIGIN, 1, "Origin", read_origin},
    {PGO_RELATION, 1, "Relation", read_relation},
    {PGO_TYPE, 1, "Type", read_type},
    {PGO_INSERT, 1, "Insert", read_insert},
    {PGO_UPDATE, 1, "Update", read_update},
    {PGO_DELETE, 1, "Delete", read_delete},
    {PGO_TRUNCATE, 1, "Truncate", read_truncate},
    {PGO_MESSAGE, 1, "Message", read_message},
    {PGO_STREAM_START, 2, "Stream Start", read_stream_start},
    {PGO_STREAM_STOP, 2, "Stream Stop", read_stream_stop},
    {PGO_STREAM_COMMIT, 2, "Stream Commit", read_commit},
    {PGO_STREAM_ABORT, 2, "Stream Abort", read_stream_abort},
    {PGO_BEGIN_PREPARE, 3, "Begin Prepare", read_begin_prepare},
    {PGO_PREPARE, 3, "Prepare", read_prepare},
    {PGO_COMMIT_PREPARED, 3, "Commit Prepared", read_prepare},
    {PGO_ROLLBACK_PREPARED, 3, "Rollback Prepared", read_rollback_prepared},
    {PGO_STREAM_PREPARE, 3, "Stream Prepare", read_prepare},
};

static const pgo_kind *pgo_find_kind(char type)
{
    for (size_t i = 0; i < sizeof(pgo_kinds) / sizeof(pgo_kinds[0]); i++)
        if (pgo_kinds[i].type == type)
            return &pgo_kinds[i];
    return NULL;
}

const char *pgo_msg_name(char type)
{
    const pgo_kind *k = pgo_find_kind(type);

    return k ? k->name : "unknown";
}

static int pgo_check_options(const pgo_options *opt, char *err, size_t errlen)
{
    if (opt->proto_version < 1 || opt->proto_version > 4)
        return pgo_fail(err, errlen, "unsupported protocol version %d (must be 1..4)", opt->proto_version);
    if (opt->in_stream && opt->proto_version < 2)
        return pgo_fail(err, errlen, "stream blocks need protocol version 2 (stream uses %d)", opt->proto_version);
    if (opt->parallel_abort && opt->proto_version < 4)
        return pgo_fail(err, errlen, "parallel streaming needs protocol version 4 (stream uses %d)",
                        opt->proto_version);
    return 0;
}

int pgo_decode(const char *buf, size_t len, const pgo_options *opt, pgo_msg *out, char *err, size_t errlen)
{
    const pgo_kind *kind;
    pgo_reader r;

    if (pgo_check_options(opt, err, errlen) < 0)
        return -1;
    if (len == 0)
        return pgo_fail(err, errlen, "empty message");
    kind = pgo_find_kind(buf[0]);
    if (!kind)
        return pgo_fail(err, errlen, "unknown message type 0x%02x", (unsigned char)buf[0]);
    if (opt->proto_version < kind->min_version)
        return pgo_fail(err, errlen, "%s message needs protocol version %d (stream uses %d)", kind->name,
                        kind->min_version, opt->proto_version);

    out->type = kind->type;
    out->has_xid = false;
    out->xid = 0;
    r = (pgo_reader){.p = (const unsigned char *)buf, .len = len, .off = 1, .what = kind->name, .err = err,
                     .errlen = errlen};
    if (kind->read(&r, opt, out) < 0)
        return -1;
    if (r.off != len)
        return pgo_fail(err, errlen, "%zu trailing bytes after %s message at offset %zu", len - r.off, kind->name,
                        r.off);
    return 0;
}

uint32_t pgo_truncate_relid(const pgo_msg *m, uint32_t i)
{
    const unsigned char *p = m->u.truncate.relids + (size_t)i * 4;

    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- CopyBoth framing --------------------------------------------------- */

int pgo_decode_copydata(const char *buf, size_t len, pgo_copydata *out, char *err, size_t errlen)
{
    pgo_reader r = {.p = (const unsigned char *)buf, .len = len, .off = 1, .err = err, .errlen = errlen};
    uint8_t reply;

    if (len == 0)
        return pgo_fail(err, errlen, "empty CopyData message");
    out->type = buf[0];
    out->data_start = LSN_INVALID;
    out->payload = NULL;
    out->payload_len = 0;
    out->reply_requested = false;
    switch (buf[0]) {
    case 'w':
        r.what = "XLogData";
        if (get_lsn(&r, &out->data_start) < 0 || get_lsn(&r, &out->wal_end) < 0 ||
            get_i64(&r, &out->send_time) < 0)
            return -1;
        out->payload = buf + r.off;
        out->payload_len = len - r.off;
        return 0;
    case 'k':
        r.what = "keepalive";
        if (get_lsn(&r, &out->wal_end) < 0 || get_i64(&r, &out->send_time) < 0 || get_u8(&r, &reply) < 0)
            return -1;
        out->reply_requested = reply != 0;
        if (r.off != len)
            return pgo_fail(err, errlen, "%zu trailing bytes after keepalive message at offset %zu", len - r.off,
                            r.off);
        return 0;
    default:
        return pgo_fail(err, errlen, "unknown CopyData message type 0x%02x", (unsigned char)buf[0]);
    }
}

static void put_be64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

void pgo_encode_status(char out[PGO_STATUS_LEN], lsn_t write, lsn_t flush, lsn_t apply, int64_t send_time,
                       bool reply_requested)
{
    out[0] = 'r';
    put_be64(out + 1, write);
    put_be64(out + 9, flush);
    put_be64(out + 17, apply);
    put_be64(out + 25, (uint64_t)send_time);
    out[33] = reply_requested ? 1 : 0;
}
