/*
 * backfill_wm.h — the pure half of the online backfill (SPEC §9,
 * docs/backfill.md): the logical decoding messages it writes and reads
 * (prefix "pg2qdrant", JSON content), and the watermark window that drops
 * the chunk rows the stream changed between a chunk's low and high
 * watermark.  No I/O, no logging.
 *
 * Messages (every one names the slot whose `run` carries it out):
 *   request    {"type":"backfill","slot":S,"id":ID,"tables":["public.t",...]}
 *              (tables empty or missing: every configured table)
 *              optional "keys":{"public.t":[["eu","42"],...],...}: a keyed
 *              request (reconcile --fix handing over its repairs): only
 *              these keys of these tables are read (their key texts in the
 *              mapping's key column order); a key without a row becomes a
 *              delete of its point
 *   watermark  {"type":"wm","phase":"low"|"high","slot":S,"id":ID,"run":R,
 *               "chunk":N,"table":"public.t","tables":[tables after it],
 *               "from":[key texts]|null, "to":[key texts]|null, "rows":n}
 *              run: a token of the `run` session that wrote it; from: the
 *              key the chunk starts after (null: the table's start); to and
 *              rows: the chunk's last key and row count (high only).
 *              "keyed":true on the watermarks of a keyed request (a
 *              restarted run gets the request itself again and ignores them).
 *              "collection":C on the watermarks of a rebuild's backfill
 *              (its rows go to the new generation C; a restarted run gets
 *              the rebuild request again and ignores them, docs/rebuild.md).
 *   rebuild    {"type":"rebuild","slot":S,"id":ID,"tables":["public.t",...]}
 *              (SPEC §10: tables required, at least one)
 */
#ifndef P2Q_BACKFILL_WM_H
#define P2Q_BACKFILL_WM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "qop.h"
#include "util.h"

#define BF_PREFIX "pg2qdrant"

typedef enum { BFM_REQUEST, BFM_LOW, BFM_HIGH, BFM_REBUILD } bfm_kind;

/* A list of owned strings; has: the JSON value was an array (not null). */
typedef struct bfm_list {
    char **v;
    int n;
    bool has;
} bfm_list;

/* The keys of one table of a keyed request: n keys of arity texts each,
 * key i's k-th column at v[i * arity + k]; every string owned. */
typedef struct bfm_keyset {
    char *table;
    int arity;
    size_t n;
    char **v;
} bfm_keyset;

/* A decoded message; every string owned (bfm_free). */
typedef struct bfm {
    bfm_kind kind;
    char *slot;
    char *id;
    char *run;      /* watermarks */
    uint64_t chunk; /* watermarks */
    char *table;    /* watermarks */
    bfm_list tables;
    bfm_list from, to;
    uint64_t rows;
    bfm_keyset *keys; /* request: "keys", nkeys tables (NULL/0: not keyed) */
    int nkeys;
    bool keyed;       /* request: "keys" was present; watermark: "keyed":true */
    char *collection; /* watermark of a rebuild's backfill: its target collection; else NULL */
} bfm;

/*
 * Decodes the content of a message with prefix BF_PREFIX.  Returns 0, or -1
 * with a one-line reason in err (not JSON, no or unknown "type", a field
 * missing or of the wrong type, "keys" not an object of arrays of
 * non-empty arrays of strings of one length per table).  *out is zeroed first; free it with
 * bfm_free either way.
 */
int bfm_parse(const char *content, size_t len, bfm *out, char *err, size_t errlen);
void bfm_free(bfm *m);
void bfm_list_free(bfm_list *l);
void bfm_list_copy(bfm_list *dst, const char *const *v, int n, bool has);
void bfm_keyset_free(bfm_keyset *k);

/* Moves the keysets ks[0..n) (their contents) into a new owned array. */
bfm_keyset *bfm_keysets_take(bfm_keyset *ks, int n);

/* The JSON of a request / a watermark, appended to out.  keys[0..nkeys):
 * a keyed request (nkeys 0: not keyed). */
void bfm_format_request(buf *out, const char *slot, const char *id, const char *const *tables, int ntables,
                        const bfm_keyset *keys, int nkeys);
void bfm_format_wm(buf *out, const bfm *m);
/* The JSON of a rebuild request (ntables >= 1), appended to out. */
void bfm_format_rebuild(buf *out, const char *slot, const char *id, const char *const *tables, int ntables);

/*
 * The watermark window of one chunk: the point ids (qop.point_id) of the
 * chunk's table that the stream changed between the low and the high
 * watermark, and whether it truncated the table.  A set of strings,
 * open addressing; memory grows with the changes of one window only.
 */
typedef struct bf_window {
    const table_cfg *table; /* the table of the open window; NULL: closed */
    bool truncated;
    char **slots;
    size_t cap, n;
} bf_window;

/* Opens the window for table (the stream passed the low watermark). */
void bfw_open(bf_window *w, const table_cfg *table);
/* A streamed operation: remembered when the window is open and op is of its table. */
void bfw_observe(bf_window *w, const qop *op);
/* Whether point_id changed in the window (or the table was truncated). */
bool bfw_changed(const bf_window *w, const char *point_id);
/* At the high watermark: removes from chunk the operations whose point
 * the window saw change (all of them after a truncate), freeing them, and
 * closes the window.  Returns how many were dropped. */
size_t bfw_filter(bf_window *w, qop_list *chunk);
void bfw_close(bf_window *w);
void bfw_free(bf_window *w);

/*
 * Why the window is not enough on PostgreSQL.  A transaction's commit
 * record goes into the WAL before the transaction leaves the proc array
 * (becomes visible to new snapshots).  So a transaction T whose commit
 * precedes the low watermark in the WAL can still be invisible to a chunk
 * read that starts after the low watermark's commit returned: T's backend
 * was descheduled between the two steps.  The stream then applies T before
 * the window opens, the chunk carries the row as it was before T, and the
 * chunk would overwrite T's version at the high watermark.  (DBLog assumes
 * commit order is visibility order; PostgreSQL does not promise it.)
 *
 * The remedy: the chunk query returns its own snapshot
 * (pg_current_snapshot(): xmin, xmax, the in-progress xids); the stream
 * side remembers the xids of the transactions it received, in order (a
 * ring of the last BF_RING_XIDS); at the high watermark, a transaction
 * received before the low watermark that the chunk's snapshot does not see
 * means the chunk is read again.  The check is exact: a committed xid
 * below xmin, or below xmax and not in progress, is visible; anything the
 * stream delivered before the low watermark and the snapshot does not see
 * is such a late transaction.  What it cannot see: a transaction that
 * stayed invisible while more than BF_RING_XIDS later ones were streamed.
 */
#define BF_RING_XIDS 65536

/* A snapshot of pg_current_snapshot()'s text "xmin:xmax:xip,xip,...",
 * xids cut to their 32 bits (the stream's Begin carries 32-bit xids). */
typedef struct bf_snapshot {
    bool valid;
    uint32_t xmin, xmax;
    uint32_t *xip; /* owned */
    int nxip;
} bf_snapshot;

/* Parses text into s (freed first).  Returns 0, or -1 (s invalid) when it
 * is not a snapshot's text form. */
int bfs_parse(bf_snapshot *s, const char *text);
/* Whether the committed transaction xid is visible to s. */
bool bfs_visible(const bf_snapshot *s, uint32_t xid);
void bfs_free(bf_snapshot *s);

/* The xids of the transactions the stream delivered, in stream order;
 * n counts every one ever added (the last BF_RING_XIDS are kept). */
typedef struct bf_ring {
    uint32_t *xids; /* owned, BF_RING_XIDS once the first is added */
    uint64_t n;
} bf_ring;

void bfr_add(bf_ring *r, uint32_t xid);
/* The first kept xid among those added before position upto (r->n at the
 * low watermark) that s does not see: true and *xid set, or false. */
bool bfr_invisible_before(const bf_ring *r, uint64_t upto, const bf_snapshot *s, uint32_t *xid);
void bfr_free(bf_ring *r);


#endif
