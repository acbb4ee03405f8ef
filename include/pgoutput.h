/*
 * pgoutput.h — a pure decoder for the logical replication stream.
 *
 * Two layers, both bytes in / caller-owned structs out, no I/O, no
 * allocation:
 *
 *   pgo_decode_copydata()  one CopyData payload of the CopyBoth stream:
 *                          XLogData 'w' or primary keepalive 'k'
 *                          (PROTOCOL.md §1.2);
 *   pgo_decode()           one pgoutput message, the payload of a 'w'
 *                          (PROTOCOL.md §1.3), protocol versions 1 to 4.
 *
 * Every pointer in a decoded struct (strings, column data, the truncate
 * relid array) points INTO the input buffer: the struct is only valid while
 * that buffer lives.  Strings are NUL-terminated on the wire, so they are
 * valid C strings; column data (pgo_datum.data) is NOT NUL-terminated — use
 * its len.
 *
 * Errors: every function returns 0 on success and -1 on a protocol error,
 * with a one-line message naming the message type and the offset in err
 * (truncated input, unknown message type, unknown tuple kind, a count out
 * of range, trailing bytes).  The decoder never logs.
 */
#ifndef P2Q_PGOUTPUT_H
#define P2Q_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

/* MaxTupleAttributeNumber: no tuple or relation has more columns. */
#define PGO_MAX_ATTS 1664

/* ---- CopyBoth framing ---------------------------------------------- */

typedef struct pgo_copydata {
    char type; /* 'w' or 'k' */
    /* 'w' */
    lsn_t data_start;
    lsn_t wal_end;       /* also set for 'k' */
    int64_t send_time;   /* both; µs since 2000-01-01 */
    const char *payload; /* 'w': the pgoutput message */
    size_t payload_len;
    /* 'k' */
    bool reply_requested;
} pgo_copydata;

int pgo_decode_copydata(const char *buf, size_t len, pgo_copydata *out, char *err, size_t errlen);

/* Writes a 34-byte standby status update 'r' into out. */
#define PGO_STATUS_LEN 34
void pgo_encode_status(char out[PGO_STATUS_LEN], lsn_t write, lsn_t flush, lsn_t apply, int64_t send_time,
                       bool reply_requested);

/* ---- pgoutput messages ---------------------------------------------- */

typedef enum pgo_msg_type {
    PGO_BEGIN = 'B',
    PGO_COMMIT = 'C',
    PGO_ORIGIN = 'O',
    PGO_RELATION = 'R',
    PGO_TYPE = 'Y',
    PGO_INSERT = 'I',
    PGO_UPDATE = 'U',
    PGO_DELETE = 'D',
    PGO_TRUNCATE = 'T',
    PGO_MESSAGE = 'M',
    PGO_STREAM_START = 'S',
    PGO_STREAM_STOP = 'E',
    PGO_STREAM_COMMIT = 'c',
    PGO_STREAM_ABORT = 'A',
    PGO_BEGIN_PREPARE = 'b',
    PGO_PREPARE = 'P',
    PGO_COMMIT_PREPARED = 'K',
    PGO_ROLLBACK_PREPARED = 'r',
    PGO_STREAM_PREPARE = 'p',
} pgo_msg_type;

/* One column of a TupleData. kind: 'n' NULL, 'u' unchanged TOAST, 't' text,
 * 'b' binary.  data/len only for 't' and 'b'. */
typedef struct pgo_datum {
    char kind;
    uint32_t len;
    const char *data;
} pgo_datum;

typedef struct pgo_tuple {
    uint16_t ncols;
    pgo_datum cols[PGO_MAX_ATTS];
} pgo_tuple;

typedef struct pgo_attr {
    uint8_t flags; /* 1 = part of the replica identity key */
    const char *name;
    uint32_t typid;
    int32_t typmod;
} pgo_attr;

typedef struct pgo_msg {
    char type;       /* a pgo_msg_type */
    bool has_xid;    /* the [xid] field was present (inside a stream block) */
    uint32_t xid;    /* [xid], or the xid field of Begin/Stream*/

    union {
        struct { lsn_t final_lsn; int64_t commit_ts; } begin; /* xid in msg.xid */
        struct { uint8_t flags; lsn_t commit_lsn; lsn_t end_lsn; int64_t commit_ts; } commit; /* 'C', 'c' (xid in msg.xid) */
        struct { lsn_t lsn; const char *name; } origin;
        struct {
            uint32_t relid;
            const char *nspname; /* "" means pg_catalog */
            const char *relname;
            char replident;      /* 'd' 'n' 'f' 'i' */
            uint16_t natts;
            pgo_attr attrs[PGO_MAX_ATTS];
        } relation;
        struct { uint32_t typid; const char *nspname; const char *typname; } type;
        /* Insert, Update, Delete.  old_kind: 0 (no old tuple), 'K' or 'O'.
         * Insert: newtup.  Update: optional oldtup, newtup.  Delete: oldtup. */
        struct {
            uint32_t relid;
            char old_kind;
            bool has_new;
            pgo_tuple oldtup;
            pgo_tuple newtup;
        } change;
        struct {
            uint32_t nrelids;
            uint8_t flags;              /* 1 CASCADE, 2 RESTART IDENTITY */
            const unsigned char *relids; /* nrelids big-endian Int32: use pgo_truncate_relid */
        } truncate;
        struct { uint8_t flags; lsn_t lsn; const char *prefix; uint32_t len; const char *content; } message;
        struct { bool first_segment; } stream_start; /* xid in msg.xid */
        struct { uint32_t subxid; bool has_abort_lsn; lsn_t abort_lsn; int64_t abort_ts; } stream_abort; /* xid in msg.xid */
        /* 'b' 'P' 'p' 'K' 'r'.  For 'r': lsn1 = prepare_end_lsn, lsn2 = rollback_end_lsn,
         * ts1 = prepare_ts, ts2 = rollback_ts.  For the others: lsn1 = prepare/commit lsn,
         * lsn2 = end_lsn, ts1 = prepare/commit ts. xid in msg.xid. */
        struct { uint8_t flags; lsn_t lsn1; lsn_t lsn2; int64_t ts1; int64_t ts2; const char *gid; } twophase;
    } u;
} pgo_msg;

typedef struct pgo_options {
    int proto_version;  /* 1..4: the version asked for in START_REPLICATION */
    bool in_stream;     /* between Stream Start and Stream Stop: [xid] present */
    bool parallel_abort; /* streaming = parallel: Stream Abort carries lsn + ts */
} pgo_options;

/*
 * Decodes one pgoutput message into *out (caller-owned; large, allocate it
 * once and reuse).  Messages newer than opt->proto_version are protocol
 * errors.  The caller tracks stream blocks (S/E) and sets opt->in_stream.
 */
int pgo_decode(const char *buf, size_t len, const pgo_options *opt, pgo_msg *out, char *err, size_t errlen);

/* i-th relid of a decoded Truncate (i < nrelids). */
uint32_t pgo_truncate_relid(const pgo_msg *m, uint32_t i);

/* A short English name of a message type ("Insert", "Stream Commit", ...). */
const char *pgo_msg_name(char type);

#endif
