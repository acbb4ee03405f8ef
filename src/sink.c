/*
 * sink.c — queued point operations to Qdrant batch requests (sink.h).
 *
 * The queue is a FIFO of items[head..tail): each item is one serialised
 * UpdateOperation with its ack ticket, the time it was queued and its
 * state: unsent, in flight (in one request) or acknowledged.  Items leave
 * from the head once acknowledged, whatever order the requests finished in.
 *
 * Pipelining: up to parallel_requests requests are in flight at once, each
 * on a lane of the client, each covering a run of consecutive unsent items
 * (one collection, <= batch_points, <= batch_bytes).  Per-point order holds
 * because a request never starts while another in flight touches one of
 * its points: every item carries the hash of (collection, point id), and
 * the hashes of everything in flight are counted in a small table (a hash
 * collision only makes the sink more careful).  A truncate (delete by
 * filter) or a read-back is a barrier: it goes alone.  A request is only
 * started from the FIRST unsent item, so an unsent item is never overtaken.
 * Another request beside one in flight is started for a full batch only
 * (or one that waited flush_interval): when Qdrant keeps up, one request is
 * in flight while the next fills, as without pipelining; a backlog goes out
 * on every lane.  Acknowledgements go to the ack tracker as each request
 * finishes; the tracker confirms in commit order.
 *
 * Failures: a transient failure is retried as the same request after its
 * backoff (its points stay held meanwhile); until then no request starts
 * or is retried on any lane (hold_until: a Retry-After is honoured by the
 * whole sink, and a struggling Qdrant is not fed more), while requests
 * already in flight finish.  When the hold ends, one request goes first,
 * alone (probe): the other retries and new requests wait for its answer,
 * so a Retry-After is not answered with a burst of every lane at once.  A
 * rejection met while others are in flight returns the request's items to
 * unsent and the sink falls back to one request at a time ("single" mode,
 * the only mode with parallel_requests = 1) once the others are done.  In
 * single mode the request always covers the first unsent run at the head,
 * and isolation works as it always did: segs is a stack of
 * segment lengths measured from the head; while it is not empty the next
 * request is exactly its top segment.  A rejected segment of n > 1 items is
 * replaced by its two halves; a rejected single item is the poison
 * operation.  Every replay resends operations Qdrant may have applied
 * already: all operations are writes by point id (or a filter), and nothing
 * later on those points was sent meanwhile, so the state ends the same.
 * Single mode ends with the first success once no isolation is pending.
 */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* {"operations":[ ... ]} around the joined operations. */
#define BODY_OVERHEAD 20

enum { ITEM_UNSENT, ITEM_INFLIGHT, ITEM_ACKED };

typedef struct sink_item {
    qop op;
    ack_txn txn;
    int64_t queued_ms;
    uint64_t key; /* hash of (collection, point id); 0: a barrier (truncate, read-back) */
    int state;    /* ITEM_* */
} sink_item;

/* One request slot, on the client lane of the same number. */
typedef struct sink_req {
    bool active;      /* in flight, or (single mode) waiting for its retry */
    bool in_flight;   /* on the wire */
    bool barrier;     /* holds a barrier item: nothing else may be in flight */
    bool single;      /* started in single mode (its success may end single mode) */
    bool retry_pending; /* failed transiently: the same request again at retry_at */
    int64_t retry_at;
    int attempt;      /* transient failures in a row (backoff) */
    size_t first, n;  /* items[first..first+n), absolute indexes (moved by compaction) */
    /* The body, streamed from the items' own JSON ("{\"operations\":[",
     * op, ",", op, ..., "]}"): never one copied buffer. */
    qd_part *parts;
    size_t nparts, capparts;
    size_t body_len;
} sink_req;

struct sink {
    sink_env env;
    sink_item *items;
    size_t head, tail, cap;
    size_t bytes; /* sum of json_len of the queue */

    sink_req reqs[QD_MAX_LANES];
    int nreqs;            /* request slots in use: parallel_requests */
    int active;           /* slots active */
    size_t inflight_ops;  /* items in the active requests */
    size_t inflight_bytes; /* their bodies */
    size_t unsent;        /* items not sent (nor acknowledged) */
    size_t unsent_bytes;
    size_t first_unsent;  /* no unsent item before this index (a hint, moved by compaction) */
    keyset keys;          /* the keys of the items in flight, counted */

    bool single;          /* one request at a time (isolation): see the top */
    int64_t hold_until;   /* after a transient failure: nothing is sent before (backoff, Retry-After) */
    bool after_hold;      /* a transient failure held the sink: the next request goes alone ... */
    int probe;            /* ... on this lane (-1: none); nothing else starts until it is answered */

    /* next_batch's scan of the head batch, resumed where it stopped as
     * items are pushed: the first scan_n items fit in one request of
     * scan_bytes; scan_full tells that the batch cannot grow.  scan_n = 0:
     * not scanned (the head item or its operation changed). */
    size_t scan_start, scan_n, scan_bytes;
    bool scan_full;

    size_t *segs; /* isolation stack (top = last) */
    size_t nsegs, capsegs;

    int dead_fd;
    sink_stats stats;
    uint64_t pushed; /* items pushed ever (sink_mark) */
};

sink *sink_new(const sink_env *env)
{
    sink *s = xcalloc(1, sizeof *s);

    s->env = *env;
    s->dead_fd = -1;
    s->nreqs = env->cfg->sync.parallel_requests;
    if (s->nreqs < 1)
        s->nreqs = 1;
    if (s->nreqs > QD_MAX_LANES)
        s->nreqs = QD_MAX_LANES;
    s->single = s->nreqs == 1;
    s->probe = -1;
    return s;
}

static void free_items(sink *s)
{
    for (size_t i = s->head; i < s->tail; i++)
        qop_free_fields(&s->items[i].op);
    s->head = s->tail = 0;
    s->bytes = 0;
    s->scan_n = 0;
}

void sink_reset(sink *s)
{
    qd_batch_abort(s->env.qd, -1);
    free_items(s);
    for (int i = 0; i < QD_MAX_LANES; i++) {
        sink_req *r = &s->reqs[i];
        r->active = r->in_flight = r->barrier = r->retry_pending = false;
        r->attempt = 0;
    }
    s->active = 0;
    s->hold_until = 0;
    s->after_hold = false;
    s->probe = -1;
    s->inflight_ops = s->inflight_bytes = s->unsent = s->unsent_bytes = s->first_unsent = 0;
    keyset_clear(&s->keys);
    s->single = s->nreqs == 1;
    s->nsegs = 0;
}

void sink_free(sink *s)
{
    if (!s)
        return;
    sink_reset(s);
    free(s->items);
    free(s->segs);
    for (int i = 0; i < QD_MAX_LANES; i++)
        free(s->reqs[i].parts);
    keyset_free(&s->keys);
    if (s->dead_fd >= 0)
        close(s->dead_fd);
    free(s);
}

static size_t queued(const sink *s)
{
    return s->tail - s->head;
}

/* Room for n more items at the tail (compacting before growing). */
static void reserve_tail(sink *s, size_t n)
{
    if (s->tail + n <= s->cap)
        return;
    if (s->head > 0) {
        size_t shift = s->head;
        memmove(s->items, s->items + s->head, queued(s) * sizeof *s->items);
        s->tail -= shift;
        s->head = 0;
        for (int i = 0; i < QD_MAX_LANES; i++)
            if (s->reqs[i].active)
                s->reqs[i].first -= shift;
        s->first_unsent = s->first_unsent > shift ? s->first_unsent - shift : 0;
        s->scan_start = s->scan_start > shift ? s->scan_start - shift : 0;
    }
    if (s->tail + n > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->tail + n)
            cap *= 2;
        s->items = xrealloc(s->items, cap * sizeof *s->items);
        s->cap = cap;
    }
}

/* FNV-1a of the table's collection name and the point id's JSON; 0 (a
 * barrier) for an operation without a point id (truncate) or a read-back.
 * A copy written to another collection (qop.collection: a rebuild's new
 * generation) has the key of its table's, on purpose: a point's operations
 * on the alias and on the generation behind it are never in flight at once,
 * so per-point order holds across the alias switch (docs/rebuild.md). */
uint64_t sink_op_key(const qop *op)
{
    uint64_t h = 1469598103934665603ULL;

    if (!op->point_id || op->kind == QOP_REFETCH || op->kind == QOP_DELETE_ALL)
        return 0;
    for (const char *p = op->table->collection; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *p = op->point_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h ? h : 1;
}

void sink_push(sink *s, qop_list *ops, ack_txn txn)
{
    int64_t now = now_ms();

    reserve_tail(s, ops->n);
    s->pushed += ops->n;
    for (size_t i = 0; i < ops->n; i++) {
        sink_item *it = &s->items[s->tail++];
        it->op = ops->items[i];
        it->txn = txn;
        it->queued_ms = now;
        it->key = sink_op_key(&it->op);
        it->state = ITEM_UNSENT;
        s->bytes += it->op.json_len;
        s->unsent++;
        s->unsent_bytes += it->op.json_len;
        memset(&ops->items[i], 0, sizeof ops->items[i]);
    }
    ops->n = 0;
}

size_t sink_unsent_ops(const sink *s)
{
    return s->unsent;
}

size_t sink_queued_ops(const sink *s)
{
    return queued(s);
}

size_t sink_queued_bytes(const sink *s)
{
    return s->bytes;
}

bool sink_busy(const sink *s)
{
    return s->active > 0;
}

/* Requests that may be active now. */
static int allowed(const sink *s)
{
    return s->single ? 1 : s->nreqs;
}

/* Bytes of bodies that may be in flight together: batch_bytes (a request
 * starts beside others only if they all fit).  Small operations use every
 * lane; a batch that fills batch_bytes (1,000 points of 1,536 dimensions)
 * goes alone, so memory stays near one batch in flight and one filling
 * whatever batch_points is. */
static size_t inflight_budget(const sink *s)
{
    return (size_t)s->env.cfg->sync.batch_bytes;
}

bool sink_full(const sink *s)
{
    if ((int64_t)s->bytes >= s->env.cfg->sync.max_inflight)
        return true;
    if (s->active == 0 || (s->active < allowed(s) && s->inflight_bytes + s->unsent_bytes <= inflight_budget(s)))
        return false; /* sink_kick can send what is queued */
    return s->unsent >= (size_t)s->env.cfg->sync.batch_points ||
           (int64_t)s->unsent_bytes >= s->env.cfg->sync.batch_bytes;
}

const sink_stats *sink_get_stats(const sink *s)
{
    return &s->stats;
}

/* ---- the keys in flight ----------------------------------------------------------------- */

static bool key_in_flight(const sink *s, uint64_t key)
{
    return keyset_has(&s->keys, key);
}

/* Counts in (+1) or out (-1) the keys of items[first..first+n). */
static void keys_count(sink *s, size_t first, size_t n, int delta)
{
    for (size_t i = first; i < first + n; i++) {
        uint64_t key = s->items[i].key;
        if (key == 0)
            continue;
        if (delta > 0)
            keyset_add(&s->keys, key);
        else
            keyset_del(&s->keys, key);
    }
    s->stats.keys_capacity = s->keys.cap;
}

/* ---- acknowledgement and removal ---------------------------------------------- */

/* Hands items[first..first+n) to the ack tracker, transaction by
 * transaction.  SINK_OK, or SINK_FATAL (logged) when the tracker refuses a
 * ticket: a bug, and confirming past it could skip a change. */
static int ack_items(sink *s, size_t first, size_t n)
{
    size_t i = first, end = first + n;
    int rc = SINK_OK;

    while (i < end) {
        ack_txn txn = s->items[i].txn;
        size_t j = i;
        while (j < end && s->items[j].txn == txn)
            j++;
        if (s->env.acks && txn != SINK_NO_TXN && ack_done_ops(s->env.acks, txn, j - i) != 0 && rc == SINK_OK) {
            char t[24], k[24];
            snprintf(t, sizeof t, "%llu", (unsigned long long)txn);
            snprintf(k, sizeof k, "%zu", j - i);
            log_error("internal error: the acknowledgement tracker refused an acknowledgement", "ticket", t,
                      "operations", k, NULL);
            rc = SINK_FATAL;
        }
        i = j;
    }
    for (i = first; i < end; i++) {
        s->items[i].state = ITEM_ACKED;
        s->stats.ops++;
    }
    return rc;
}

/* Removes the acknowledged items at the head. */
static void pop_acked(sink *s)
{
    while (s->head < s->tail && s->items[s->head].state == ITEM_ACKED) {
        sink_item *it = &s->items[s->head++];
        s->bytes -= it->op.json_len;
        qop_free_fields(&it->op);
    }
    if (s->head == s->tail) {
        s->head = s->tail = 0;
        s->first_unsent = 0;
        s->scan_n = 0;
    }
    if (s->first_unsent < s->head)
        s->first_unsent = s->head;
}

/* Marks items[first..first+n) unsent, or acknowledged, or in flight. */
static void set_state(sink *s, size_t first, size_t n, int state)
{
    for (size_t i = first; i < first + n; i++) {
        sink_item *it = &s->items[i];
        if (it->state == ITEM_UNSENT) {
            s->unsent--;
            s->unsent_bytes -= it->op.json_len;
        }
        it->state = state;
        if (state == ITEM_UNSENT) {
            s->unsent++;
            s->unsent_bytes += it->op.json_len;
        }
    }
    if (state == ITEM_UNSENT && first < s->first_unsent)
        s->first_unsent = first;
    s->scan_n = 0;
}

/* Acknowledges and removes the first n items (all unsent or in flight). */
static int pop_done(sink *s, size_t n)
{
    int rc;

    set_state(s, s->head, n, ITEM_INFLIGHT); /* out of the unsent counts */
    rc = ack_items(s, s->head, n);
    pop_acked(s);
    return rc;
}

static void push_seg(sink *s, size_t n)
{
    if (s->nsegs == s->capsegs) {
        s->capsegs = s->capsegs ? s->capsegs * 2 : 16;
        s->segs = xrealloc(s->segs, s->capsegs * sizeof *s->segs);
    }
    s->segs[s->nsegs++] = n;
}

/* ---- messages ------------------------------------------------------------------ */

static char *table_name(const qop *op)
{
    return xasprintf("%s.%s", op->table->schema, op->table->name);
}

static void log_rejected(const qop *op, const char *why)
{
    char lsn[LSN_BUFSZ];
    char *table = table_name(op);

    log_error("Qdrant rejected an operation; stopping with the slot before its transaction", "table", table,
              "collection", qop_collection(op), "key", op->key_text ? op->key_text : "", "op",
              qop_kind_name(op->kind), "lsn", lsn_fmt(op->lsn, lsn), "error", why, NULL);
    free(table);
}

/* ---- dead letters ---------------------------------------------------------------- */

static void json_field(buf *b, const char *key, const char *value)
{
    buf_json_str(b, key, strlen(key));
    buf_putc(b, ':');
    buf_json_str(b, value ? value : "", value ? strlen(value) : 0);
}

static int dead_letter_line(sink *s, const table_cfg *t, const char *collection, const char *key,
                            const char *point_id, const char *kind, lsn_t at, const char *why, const char *op_json,
                            size_t op_len);

/* Appends one JSON line for op to dead_letter_file and fsyncs it. */
static int dead_letter(sink *s, const qop *op, const char *why)
{
    return dead_letter_line(s, op->table, qop_collection(op), op->key_text, op->point_id, qop_kind_name(op->kind),
                            op->lsn, why, op->json, op->json_len);
}

/*
 * Opens the dead-letter file for appending (docs/failure-modes.md): it
 * holds row data, so it is created 0600 and a symbolic link is refused
 * (O_NOFOLLOW).  A last line cut short (a crash mid-write, or a full disk)
 * is ended with '\n' first, so every following line is a JSON line of its
 * own.  Returns the descriptor, or -1 (logged).
 */
static int dead_letter_open(const char *path)
{
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct stat st;
    char last;

    if (fd < 0) {
        log_error(errno == ELOOP ? "the dead-letter file is a symbolic link; refusing to write row data through it"
                                 : "cannot open the dead-letter file",
                  "file", path, "error", strerror(errno), NULL);
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_error("the dead-letter file is not a regular file", "file", path, NULL);
        close(fd);
        return -1;
    }
    if (st.st_size > 0 && (pread(fd, &last, 1, st.st_size - 1) != 1 || last != '\n')) {
        log_warn("the dead-letter file ends with a cut line; ending it before appending", "file", path, NULL);
        if (write(fd, "\n", 1) != 1) {
            log_error("cannot write the dead-letter file", "file", path, "error", strerror(errno), NULL);
            close(fd);
            return -1;
        }
    }
    return fd;
}

int sink_dead_letter(sink *s, const table_cfg *t, const char *key, const char *point_id, const char *kind,
                     lsn_t at, const char *why, const char *op_json, size_t op_len)
{
    return dead_letter_line(s, t, t->collection, key, point_id, kind, at, why, op_json, op_len);
}

static int dead_letter_line(sink *s, const table_cfg *t, const char *collection, const char *key,
                            const char *point_id, const char *kind, lsn_t at, const char *why, const char *op_json,
                            size_t op_len)
{
    const char *path = s->env.cfg->sync.dead_letter_file;
    char lsn[LSN_BUFSZ], ts[40];
    char *table = xasprintf("%s.%s", t->schema, t->name);
    buf line;
    int rc = SINK_FATAL;
    size_t off = 0;

    buf_init(&line);
    if (s->dead_fd < 0 && (s->dead_fd = dead_letter_open(path)) < 0)
        goto cleanup;
    log_timestamp(ts, sizeof ts);
    buf_putc(&line, '{');
    json_field(&line, "ts", ts);
    buf_putc(&line, ',');
    json_field(&line, "table", table);
    buf_putc(&line, ',');
    json_field(&line, "collection", collection);
    buf_putc(&line, ',');
    json_field(&line, "key", key);
    buf_puts(&line, ",\"point_id\":");
    buf_puts(&line, point_id ? point_id : "null");
    buf_putc(&line, ',');
    json_field(&line, "op", kind);
    buf_putc(&line, ',');
    json_field(&line, "lsn", lsn_fmt(at, lsn));
    buf_putc(&line, ',');
    json_field(&line, "error", why);
    buf_puts(&line, ",\"operation\":");
    if (op_json)
        buf_append(&line, op_json, op_len);
    else
        buf_puts(&line, "null");
    buf_puts(&line, "}\n");
    while (off < line.len) {
        ssize_t w = write(s->dead_fd, line.data + off, line.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            log_error("cannot write the dead-letter file", "file", path, "error", strerror(errno), NULL);
            goto cleanup;
        }
        off += (size_t)w;
    }
    if (fsync(s->dead_fd) != 0) {
        log_error("cannot fsync the dead-letter file", "file", path, "error", strerror(errno), NULL);
        goto cleanup;
    }
    s->stats.dead_letters++;
    log_warn(op_json ? "Qdrant rejected an operation; written to the dead-letter file"
                     : "a row change cannot be mapped; written to the dead-letter file",
             "table", table, "key", key ? key : "", "op", kind, "lsn", lsn, "error", why, "file", path, NULL);
    rc = SINK_OK;
cleanup:
    free(table);
    buf_free(&line);
    return rc;
}

/* ---- refetch --------------------------------------------------------------------------- */

/* Replaces the head item by the whole-row operation read back for it (or
 * acknowledges and removes it when the row is gone: *removed). */
static int refetch_head(sink *s, bool *removed)
{
    sink_item *it = &s->items[s->head];
    qop_list out = {0};
    int rc;

    if ((rc = s->env.refetch(s->env.refetch_arg, &it->op, &out)) != SINK_OK)
        goto cleanup;
    s->stats.refetched++;
    *removed = out.n == 0;
    if (out.n == 0) {
        rc = pop_done(s, 1);
    } else {
        char *collection = it->op.collection; /* the row read back goes where the operation went */
        it->op.collection = NULL;
        s->bytes -= it->op.json_len;
        if (it->state == ITEM_UNSENT)
            s->unsent_bytes -= it->op.json_len;
        qop_free_fields(&it->op);
        s->scan_n = 0;
        it->op = out.items[0];
        memset(&out.items[0], 0, sizeof out.items[0]);
        if (collection) {
            free(it->op.collection);
            it->op.collection = collection;
        }
        it->key = sink_op_key(&it->op);
        s->bytes += it->op.json_len;
        if (it->state == ITEM_UNSENT)
            s->unsent_bytes += it->op.json_len;
        for (size_t i = 1; i < out.n; i++) /* map_row makes one operation; more would be a bug */
            qop_free_fields(&out.items[i]);
    }
cleanup:
    qop_list_free(&out);
    return rc;
}

/* Qdrant's answer to a partial update of a point it does not have. */
static bool point_missing(const qop *op, const qd_result *r)
{
    return (op->kind == QOP_SET_PAYLOAD || op->kind == QOP_UPDATE_VECTORS) && op->key_vals &&
           r->outcome == QD_POINT_MISSING;
}

/* Qdrant's answer for a collection that does not exist. */
static bool collection_missing(const qd_result *r)
{
    return r->outcome == QD_COLLECTION_MISSING;
}

/* ---- sending ----------------------------------------------------------------------------- */

/* The first unsent item's index (tail when none). */
static size_t first_unsent(sink *s)
{
    size_t i = s->first_unsent < s->head ? s->head : s->first_unsent;

    while (i < s->tail && s->items[i].state != ITEM_UNSENT)
        i++;
    s->first_unsent = i;
    return i;
}

/* How many items from start (the first unsent one) the next request takes:
 * a run of unsent items of one collection within batch_points and
 * batch_bytes, stopping before a read-back, before a barrier (a barrier
 * only goes alone, first), and before an item whose point is in flight
 * (such a batch is not full: it may grow once that request is answered).
 * 0 when start itself cannot go now.  *full tells whether the batch cannot
 * grow.  In isolation the top segment is the batch.  Items pushed since the
 * last call are scanned; those before are not again. */
static size_t next_batch(sink *s, size_t start, bool *full)
{
    const sink_item *first = &s->items[start];
    size_t limit_points = s->env.cfg->sync.batch_points > 0 ? (size_t)s->env.cfg->sync.batch_points : 1;
    size_t limit_bytes = (size_t)s->env.cfg->sync.batch_bytes;

    if (s->nsegs > 0) {
        *full = true;
        return s->segs[s->nsegs - 1];
    }
    *full = true;
    if (first->key == 0 && s->active > 0)
        return 0; /* a barrier waits until nothing is in flight */
    if (first->key != 0 && key_in_flight(s, first->key))
        return 0;
    if (s->scan_n == 0 || s->scan_start != start) {
        s->scan_start = start;
        s->scan_n = 1;
        s->scan_bytes = BODY_OVERHEAD + first->op.json_len;
        s->scan_full = first->key == 0;
    }
    while (!s->scan_full && start + s->scan_n < s->tail) {
        const sink_item *it = &s->items[start + s->scan_n];
        if (it->state == ITEM_UNSENT && it->key != 0 && key_in_flight(s, it->key))
            break; /* not full: the batch may grow past it once that request is answered */
        if (s->scan_n >= limit_points || it->state != ITEM_UNSENT || it->key == 0 ||
            it->op.table != first->op.table ||
            (it->op.collection != first->op.collection &&
             strcmp(qop_collection(&it->op), qop_collection(&first->op)) != 0) ||
            s->scan_bytes + 1 + it->op.json_len > limit_bytes) {
            s->scan_full = true;
            break;
        }
        s->scan_bytes += 1 + it->op.json_len;
        s->scan_n++;
    }
    if (s->scan_n >= limit_points)
        s->scan_full = true;
    *full = s->scan_full;
    return s->scan_n;
}

static void add_part(sink_req *r, const char *data, size_t len)
{
    if (r->nparts == r->capparts) {
        r->capparts = r->capparts ? 2 * r->capparts : 64;
        r->parts = xrealloc(r->parts, r->capparts * sizeof *r->parts);
    }
    r->parts[r->nparts].data = data;
    r->parts[r->nparts].len = len;
    r->nparts++;
    r->body_len += len;
}

/* An upsert or a delete by id as row_to_point writes them, whose points
 * (between prefix and "]}}") can join those of the next such operation:
 * one operation of N points costs Qdrant far less than N operations. */
static const char UPSERT_PRE[] = "{\"upsert\":{\"points\":[";
static const char DELETE_PRE[] = "{\"delete\":{\"points\":[";
#define OP_SUFFIX_LEN 3 /* "]}}" */

/* The joinable class of op (0: none) and its points' text (*inner, *len). */
static int join_class(const qop *op, const char **inner, size_t *len)
{
    const char *pre = op->kind == QOP_UPSERT ? UPSERT_PRE : op->kind == QOP_DELETE ? DELETE_PRE : NULL;
    size_t n = pre ? strlen(pre) : 0;

    if (!pre || op->json_len < n + OP_SUFFIX_LEN + 1 || memcmp(op->json, pre, n) != 0 ||
        memcmp(op->json + op->json_len - OP_SUFFIX_LEN, "]}}", OP_SUFFIX_LEN) != 0)
        return 0;
    *inner = op->json + n;
    *len = op->json_len - n - OP_SUFFIX_LEN;
    return op->kind == QOP_UPSERT ? 1 : 2;
}

/* Whether key is in the run's key list (a few hundred at most: a linear
 * scan of the keys of the run so far). */
static bool run_has(const sink *s, size_t from, size_t to, uint64_t key)
{
    for (size_t i = from; i < to; i++)
        if (s->items[i].key == key)
            return true;
    return false;
}

/*
 * The body of request r: parts pointing into its items' JSON, which stays
 * queued (and unchanged) until the request is done.  Consecutive upserts
 * (or deletes by id) become one operation of their points, unless a point
 * repeats (a run ends there: one operation never names a point twice).
 * Order is kept: operations, and points within one, in queue order.
 */
static void build_body(sink *s, sink_req *r)
{
    int run = 0;          /* class of the open joined operation, 0: none */
    size_t run_from = 0;  /* its first item */

    r->nparts = 0;
    r->body_len = 0;
    add_part(r, "{\"operations\":[", 15);
    for (size_t i = r->first; i < r->first + r->n; i++) {
        const qop *op = &s->items[i].op;
        const char *inner = NULL;
        size_t len = 0;
        int c = join_class(op, &inner, &len);

        if (c != 0 && c == run && !run_has(s, run_from, i, s->items[i].key)) {
            add_part(r, ",", 1);
            add_part(r, inner, len);
            continue;
        }
        if (run != 0)
            add_part(r, "]}}", OP_SUFFIX_LEN);
        if (i > r->first)
            add_part(r, ",", 1);
        run = c;
        run_from = i;
        if (c != 0) {
            const char *pre = c == 1 ? UPSERT_PRE : DELETE_PRE;
            add_part(r, pre, strlen(pre));
            add_part(r, inner, len);
        } else {
            add_part(r, op->json, op->json_len);
        }
    }
    if (run != 0)
        add_part(r, "]}}", OP_SUFFIX_LEN);
    add_part(r, "]}", 2);
}

/* Puts request slot k on the wire (its items and body set). */
static int send_request(sink *s, int k)
{
    sink_req *r = &s->reqs[k];
    qd_result res;
    char why[600];

    if (qd_batch_start(s->env.qd, k, qop_collection(&s->items[r->first].op), r->parts, r->nparts, &res) != 0) {
        log_error("cannot start a Qdrant request", "error", qd_result_describe(&res, why, sizeof why), NULL);
        qd_result_clear(&res);
        return SINK_FATAL;
    }
    r->in_flight = true;
    return SINK_OK;
}

/* Starts a request on slot k for items[first..first+n). */
static int start_request(sink *s, int k, size_t first, size_t n)
{
    sink_req *r = &s->reqs[k];

    r->first = first;
    r->n = n;
    r->barrier = s->items[first].key == 0;
    r->single = s->single;
    r->retry_pending = false;
    build_body(s, r);
    set_state(s, first, n, ITEM_INFLIGHT);
    keys_count(s, first, n, +1);
    r->active = true;
    s->active++;
    s->inflight_ops += n;
    s->inflight_bytes += r->body_len;
    return send_request(s, k);
}

/* The request of slot k is over (acknowledged, or its items returned). */
static void end_request(sink *s, int k)
{
    sink_req *r = &s->reqs[k];

    keys_count(s, r->first, r->n, -1);
    s->scan_n = 0; /* a scan stopped at a point in flight may go further now */
    r->active = r->in_flight = r->barrier = r->retry_pending = false;
    s->active--;
    s->inflight_ops -= r->n;
    s->inflight_bytes -= r->body_len;
}

static int free_slot(const sink *s)
{
    for (int k = 0; k < s->nreqs; k++)
        if (!s->reqs[k].active)
            return k;
    return -1;
}

/* A barrier in flight: nothing else may start. */
static bool barrier_active(const sink *s)
{
    for (int k = 0; k < s->nreqs; k++)
        if (s->reqs[k].active && s->reqs[k].barrier)
            return true;
    return false;
}

/* Sends again the requests whose retry is due. */
static int kick_retries(sink *s)
{
    int64_t now = now_ms();
    int rc;

    for (int k = 0; k < s->nreqs; k++) {
        sink_req *r = &s->reqs[k];
        if (r->retry_pending && now >= r->retry_at && now >= s->hold_until) {
            r->retry_pending = false;
            if ((rc = send_request(s, k)) != SINK_OK)
                return rc;
            if (s->after_hold) { /* the first after a hold: alone, until it is answered */
                s->after_hold = false;
                s->probe = k;
                return SINK_OK;
            }
        }
    }
    return SINK_OK;
}

/* Single mode: one request, the first unsent run at the head. */
static int kick_single(sink *s, bool more_input)
{
    bool full;
    size_t n;
    int rc;

    if (s->active > 0)
        return SINK_OK; /* in flight or waiting for its retry, or pipelined ones still are */
    pop_acked(s);
    while (queued(s) > 0 && s->items[s->head].op.kind == QOP_REFETCH) {
        if (!s->env.refetch) {
            log_error("internal error: a row must be read back but the sink has no reader", NULL);
            return SINK_FATAL;
        }
        bool removed;
        if ((rc = refetch_head(s, &removed)) != SINK_OK)
            return rc;
    }
    if (queued(s) == 0)
        return SINK_OK;
    n = next_batch(s, s->head, &full);
    if (!full && more_input && now_ms() - s->items[s->head].queued_ms < s->env.cfg->sync.flush_interval_ms)
        return SINK_OK;
    s->after_hold = false; /* one request at a time here anyway */
    return start_request(s, 0, s->head, n);
}

int sink_kick(sink *s, bool more_input)
{
    int rc;

    if (s->probe >= 0)
        return SINK_OK; /* the first request after a hold is out: the others wait for its answer */
    if ((rc = kick_retries(s)) != SINK_OK)
        return rc;
    if (s->probe >= 0 || now_ms() < s->hold_until)
        return SINK_OK; /* Qdrant failed transiently: its backoff (or Retry-After) holds every lane */
    if (s->single)
        return kick_single(s, more_input);
    pop_acked(s);
    while (s->active < s->nreqs && !barrier_active(s)) {
        size_t start = first_unsent(s), n;
        bool full;
        int k;

        if (start == s->tail)
            break;
        if (s->items[start].op.kind == QOP_REFETCH) {
            bool removed;
            if (start != s->head || s->active > 0)
                break; /* read back when it is at the head and nothing is in flight */
            if (!s->env.refetch) {
                log_error("internal error: a row must be read back but the sink has no reader", NULL);
                return SINK_FATAL;
            }
            if ((rc = refetch_head(s, &removed)) != SINK_OK)
                return rc;
            continue;
        }
        if ((n = next_batch(s, start, &full)) == 0)
            break;
        if (s->active > 0 && s->inflight_bytes + s->scan_bytes > inflight_budget(s))
            break; /* beside those in flight only while the bodies together stay within batch_bytes */
        /* Idle: send at once.  Busy: another request for a full batch only, or one that waited flush_interval. */
        if (!full && (s->active > 0 || more_input) &&
            now_ms() - s->items[start].queued_ms < s->env.cfg->sync.flush_interval_ms)
            break;
        k = free_slot(s);
        if ((rc = start_request(s, k, start, n)) != SINK_OK)
            return rc;
        s->scan_n = 0;
        if (s->after_hold) {
            s->after_hold = false;
            s->probe = k;
            break;
        }
    }
    return SINK_OK;
}

int64_t sink_timeout_ms(const sink *s)
{
    int64_t now = now_ms(), t;
    size_t i = s->first_unsent < s->head ? s->head : s->first_unsent;

    int64_t retry = -1;

    for (int k = 0; k < s->nreqs; k++)
        if (s->reqs[k].retry_pending && (retry < 0 || s->reqs[k].retry_at - now < retry))
            retry = s->reqs[k].retry_at > now ? s->reqs[k].retry_at - now : 0;
    if (s->hold_until > now) /* nothing goes before the hold ends (every retry_at is at or before it) */
        return s->hold_until - now;
    if (s->active >= allowed(s) || (s->single && s->active > 0))
        return retry; /* else curl's own timer, in sink_wait */
    while (i < s->tail && s->items[i].state != ITEM_UNSENT)
        i++;
    if (i == s->tail)
        return retry;
    t = s->items[i].queued_ms + s->env.cfg->sync.flush_interval_ms - now;
    if (t < 0)
        t = 0;
    return retry >= 0 && retry < t ? retry : t;
}

int sink_wait(sink *s, struct pollfd *fds, int nfds, int timeout_ms)
{
    if (qd_wait(s->env.qd, fds, nfds, timeout_ms) != 0) {
        log_error("waiting for sockets failed", "error", strerror(errno), NULL);
        return -1;
    }
    return 0;
}

static void report(sink *s, const char *result, const qd_result *res, size_t ops)
{
    if (s->env.on_request)
        s->env.on_request(s->env.on_request_arg, result, res->elapsed, ops);
}

/* A deterministic answer (not QD_OK, not QD_TRANSIENT) to the request in
 * flight.  Only QD_REJECTED, QD_POINT_MISSING and QD_COLLECTION_MISSING are
 * Qdrant's word about the operations; the others stop the sink with the
 * slot where it is. */
static int rejected(sink *s, const qd_result *res, const char *why, size_t n)
{
    qop *op = &s->items[s->head].op;

    s->stats.rejected++;
    /* Not about an operation: no bisection, no dead letters. */
    switch (res->outcome) {
    case QD_AUTH:
        log_error("Qdrant refused the credentials; check [qdrant] api_key", "collection", qop_collection(op),
                  "error", why, NULL);
        return SINK_FATAL;
    case QD_NOT_QDRANT:
        log_error("the answer is not Qdrant's (a proxy, a redirect or another server at [qdrant] url?); stopping "
                  "with the slot before the transaction",
                  "url", qd_client_url(s->env.qd), "collection", qop_collection(op), "error", why, NULL);
        return SINK_FATAL;
    case QD_OK:
    case QD_TRANSIENT: /* not here: sink_progress handles them */
        log_error("internal error: a success or transient answer taken for a rejection", "error", why, NULL);
        return SINK_FATAL;
    case QD_COLLECTION_MISSING:
    case QD_POINT_MISSING:
    case QD_REJECTED: break;
    }
    if ((!s->env.create_collection || op->collection) && collection_missing(res)) {
        log_error("the collection does not exist; create it or set [qdrant] create_collections = true",
                  "collection", qop_collection(op), "error", why, NULL);
        return SINK_FATAL;
    }
    if (n > 1) {
        if (s->nsegs > 0)
            s->nsegs--;
        push_seg(s, n - n / 2);
        push_seg(s, n / 2);
        return SINK_OK;
    }
    if (s->env.create_collection && collection_missing(res)) {
        bool removed = false;
        int rc = SINK_OK;
        switch (op->kind) {
        case QOP_DELETE:
        case QOP_DELETE_ALL: /* nothing to delete */
            rc = pop_done(s, 1);
            removed = true;
            break;
        case QOP_UPSERT: rc = s->env.create_collection(s->env.create_collection_arg, op); break;
        default:
            if (!s->env.refetch || !op->key_vals) {
                log_rejected(op, "collection does not exist");
                return SINK_FATAL;
            }
            rc = refetch_head(s, &removed);
            break;
        }
        if (rc == SINK_OK && removed && s->nsegs > 0)
            s->nsegs--;
        return rc;
    }
    if (s->env.refetch && point_missing(op, res)) {
        bool removed = false;
        int rc = refetch_head(s, &removed);
        if (rc == SINK_OK && removed && s->nsegs > 0)
            s->nsegs--;
        return rc;
    }
    if (s->env.cfg->sync.on_error != ON_ERROR_DEAD_LETTER) {
        log_rejected(op, why);
        return SINK_FATAL;
    }
    if (dead_letter(s, op, why) != SINK_OK || pop_done(s, 1) != SINK_OK)
        return SINK_FATAL;
    if (s->nsegs > 0)
        s->nsegs--;
    return SINK_OK;
}

/* Answers that are not about the operations: fatal in every mode. */
static bool fatal_outcome(const qd_result *res)
{
    return res->outcome == QD_AUTH || res->outcome == QD_NOT_QDRANT;
}

/* Handles the end of the request on slot k: r is qd_batch_check's 1 or -1. */
static int finish(sink *s, int k, int r, const qd_result *res)
{
    sink_req *q = &s->reqs[k];
    char why[600], ms[32];
    int rc;

    q->in_flight = false;
    if (k == s->probe)
        s->probe = -1; /* answered: on success the others go on; on a transient failure the sink holds again */
    if (r == 1) {
        bool single_done = q->single && s->single;
        report(s, "ok", res, q->n);
        s->stats.requests++;
        s->stats.bytes += q->body_len;
        s->stats.last_ok = true;
        q->attempt = 0;
        rc = ack_items(s, q->first, q->n);
        end_request(s, k);
        if (single_done && s->nsegs > 0)
            s->nsegs--;
        if (single_done && s->nsegs == 0 && s->nreqs > 1)
            s->single = false; /* isolation and retries are over: pipelining again */
        pop_acked(s);
        return rc;
    }
    qd_result_describe(res, why, sizeof why);
    s->stats.last_ok = false;
    snprintf_utf8(s->stats.last_error, sizeof s->stats.last_error, "%s", why);
    if (res->outcome == QD_TRANSIENT) {
        int64_t wait = backoff_jitter_ms(q->attempt++);
        if (res->retry_after >= 0 && res->retry_after * 1000 > (double)wait)
            wait = (int64_t)(res->retry_after * 1000);
        report(s, "retry", res, q->n);
        s->stats.retries++;
        snprintf_utf8(ms, sizeof ms, "%lld", (long long)wait);
        log_warn("Qdrant request failed, retrying", "collection", qop_collection(&s->items[q->first].op), "error",
                 why, "retry_in_ms", ms, NULL);
        /* The same request again after the backoff; its points stay held, so nothing
         * touching them starts meanwhile, while other requests go on. */
        q->retry_pending = true;
        q->retry_at = now_ms() + wait;
        if (q->retry_at > s->hold_until)
            s->hold_until = q->retry_at;
        s->after_hold = true;
        return SINK_OK;
    }
    report(s, "rejected", res, q->n);
    if (!(q->single && s->single) && !fatal_outcome(res)) {
        /* pipelined: isolate it in single mode once the others are done */
        s->stats.rejected++;
        set_state(s, q->first, q->n, ITEM_UNSENT);
        end_request(s, k);
        s->single = true;
        return SINK_OK;
    }
    {
        size_t n = q->n;
        set_state(s, q->first, q->n, ITEM_UNSENT);
        end_request(s, k);
        return rejected(s, res, why, n);
    }
}

int sink_progress(sink *s)
{
    for (;;) {
        qd_result res;
        int lane = -1, r, rc;

        if (s->active == 0)
            return SINK_OK;
        r = qd_batch_check(s->env.qd, &lane, &res);
        if (r == 0)
            return SINK_OK;
        if (lane < 0 || lane >= s->nreqs || !s->reqs[lane].in_flight) {
            log_error("internal error: an answer on a lane without a request", NULL);
            qd_result_clear(&res);
            return SINK_FATAL;
        }
        rc = finish(s, lane, r, &res);
        qd_result_clear(&res);
        if (rc != SINK_OK)
            return rc;
    }
}

int sink_drain(sink *s, int64_t deadline_ms, volatile sig_atomic_t *stop, int (*idle)(void *), void *idle_arg)
{
    int64_t last_idle = now_ms();
    int rc;

    for (;;) {
        int64_t now = now_ms(), t;

        if (queued(s) == 0 && s->active == 0)
            return SINK_OK;
        if ((stop && *stop) || (deadline_ms > 0 && now >= deadline_ms))
            return SINK_STOPPED;
        if (idle && now - last_idle >= 1000) {
            if (idle(idle_arg) != 0)
                return SINK_ABORTED;
            last_idle = now;
        }
        if ((rc = sink_kick(s, false)) != SINK_OK)
            return rc;
        t = sink_timeout_ms(s);
        if (t < 0 || t > 1000)
            t = 1000;
        if (deadline_ms > 0 && deadline_ms - now < t)
            t = deadline_ms - now;
        if (sink_wait(s, NULL, 0, (int)t) != 0)
            return SINK_FATAL;
        if ((rc = sink_progress(s)) != SINK_OK)
            return rc;
    }
}

uint64_t sink_mark(const sink *s)
{
    return s->pushed;
}

bool sink_done_upto(const sink *s, uint64_t mark)
{
    uint64_t first = s->pushed - queued(s); /* the sequence number of items[head] */

    for (size_t i = s->head; first < mark && i < s->tail; i++, first++)
        if (s->items[i].state != ITEM_ACKED)
            return false;
    return true;
}
