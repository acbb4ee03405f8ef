/*
 * sink.c — queued point operations to Qdrant batch requests (sink.h).
 *
 * The queue is a FIFO of items[head..tail): each item is one serialised
 * UpdateOperation with its ack ticket and the time it was queued.  The
 * request in flight always covers the first inflight_n items, so an
 * acknowledgement pops from the head and per-point order is commit order.
 *
 * Isolation: segs is a stack of segment lengths measured from the head.
 * While it is not empty the next request is exactly its top segment.  A
 * rejected segment of n > 1 items is replaced by its two halves; a
 * rejected single item is the poison operation.  Every replay resends a
 * prefix Qdrant may have applied already: all operations are writes by
 * point id (or a filter), so applying a prefix twice, in order, ends in the
 * same state.
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

typedef struct sink_item {
    qop op;
    ack_txn txn;
    int64_t queued_ms;
} sink_item;

struct sink {
    sink_env env;
    sink_item *items;
    size_t head, tail, cap;
    size_t bytes; /* sum of json_len of the queue */

    bool inflight;      /* a request covering items[head..head+inflight_n) is in flight */
    size_t inflight_n;
    bool retry_pending; /* that request failed transiently: resend at retry_at */
    int64_t retry_at;
    int attempt;
    /* The body of the request in flight, streamed from the items' own JSON
     * ("{\"operations\":[", op, ",", op, ..., "]}"): never one copied buffer. */
    qd_part *parts;
    size_t nparts, capparts;
    size_t body_len; /* bytes of that body */

    /* next_batch's scan of the head batch, resumed where it stopped as
     * items are pushed: the first scan_n items fit in one request of
     * scan_bytes; scan_full tells that the batch cannot grow.  scan_n = 0:
     * not scanned (the head item or its operation changed). */
    size_t scan_n, scan_bytes;
    bool scan_full;

    size_t *segs; /* isolation stack (top = last) */
    size_t nsegs, capsegs;

    int dead_fd;
    sink_stats stats;
};

sink *sink_new(const sink_env *env)
{
    sink *s = xcalloc(1, sizeof *s);

    s->env = *env;
    s->dead_fd = -1;
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
    qd_batch_abort(s->env.qd);
    free_items(s);
    s->inflight = false;
    s->inflight_n = 0;
    s->retry_pending = false;
    s->attempt = 0;
    s->nsegs = 0;
}

void sink_free(sink *s)
{
    if (!s)
        return;
    sink_reset(s);
    free(s->items);
    free(s->segs);
    free(s->parts);
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
        memmove(s->items, s->items + s->head, queued(s) * sizeof *s->items);
        s->tail -= s->head;
        s->head = 0;
    }
    if (s->tail + n > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->tail + n)
            cap *= 2;
        s->items = xrealloc(s->items, cap * sizeof *s->items);
        s->cap = cap;
    }
}

void sink_push(sink *s, qop_list *ops, ack_txn txn)
{
    int64_t now = now_ms();

    reserve_tail(s, ops->n);
    for (size_t i = 0; i < ops->n; i++) {
        sink_item *it = &s->items[s->tail++];
        it->op = ops->items[i];
        it->txn = txn;
        it->queued_ms = now;
        s->bytes += it->op.json_len;
        memset(&ops->items[i], 0, sizeof ops->items[i]);
    }
    ops->n = 0;
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
    return s->inflight || s->retry_pending;
}

bool sink_full(const sink *s)
{
    size_t beyond_ops, beyond_bytes;

    if ((int64_t)s->bytes >= s->env.cfg->sync.max_inflight)
        return true;
    if (!sink_busy(s))
        return false; /* sink_kick sends what is queued */
    beyond_ops = queued(s) - s->inflight_n;
    beyond_bytes = s->bytes > s->body_len ? s->bytes - s->body_len : 0;
    return beyond_ops >= (size_t)s->env.cfg->sync.batch_points ||
           (int64_t)beyond_bytes >= s->env.cfg->sync.batch_bytes;
}

const sink_stats *sink_get_stats(const sink *s)
{
    return &s->stats;
}

/* ---- acknowledgement and removal ---------------------------------------------- */

/* Acknowledges and removes the first n items.  SINK_OK, or SINK_FATAL
 * (logged) when the ack tracker refuses an item's ticket: a bug, and
 * confirming past it could skip a change. */
static int pop_done(sink *s, size_t n)
{
    size_t i = 0;
    int rc = SINK_OK;

    while (i < n) {
        ack_txn txn = s->items[s->head + i].txn;
        size_t j = i;
        while (j < n && s->items[s->head + j].txn == txn)
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
    for (i = 0; i < n; i++) {
        sink_item *it = &s->items[s->head + i];
        s->bytes -= it->op.json_len;
        s->stats.ops++;
        qop_free_fields(&it->op);
    }
    s->head += n;
    if (s->head == s->tail)
        s->head = s->tail = 0;
    s->scan_n = 0;
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
              "collection", op->table->collection, "key", op->key_text ? op->key_text : "", "op",
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

/* Appends one JSON line for op to dead_letter_file and fsyncs it. */
static int dead_letter(sink *s, const qop *op, const char *why)
{
    return sink_dead_letter(s, op->table, op->key_text, op->point_id, qop_kind_name(op->kind), op->lsn, why,
                            op->json, op->json_len);
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
    json_field(&line, "collection", t->collection);
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
        s->bytes -= it->op.json_len;
        qop_free_fields(&it->op);
        s->scan_n = 0;
        it->op = out.items[0];
        memset(&out.items[0], 0, sizeof out.items[0]);
        s->bytes += it->op.json_len;
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

/* How many head items the next request takes (at least 1; the queue is
 * not empty).  *full tells whether the batch cannot grow (limits, or a
 * refetch or a different collection next).  Items pushed since the last
 * call are scanned; those before are not again. */
static size_t next_batch(sink *s, bool *full)
{
    const sink_item *first = &s->items[s->head];
    size_t limit_points = s->env.cfg->sync.batch_points > 0 ? (size_t)s->env.cfg->sync.batch_points : 1;
    size_t limit_bytes = (size_t)s->env.cfg->sync.batch_bytes;

    if (s->nsegs > 0) {
        *full = true;
        return s->segs[s->nsegs - 1];
    }
    if (s->scan_n == 0) {
        s->scan_n = 1;
        s->scan_bytes = BODY_OVERHEAD + first->op.json_len;
        s->scan_full = false;
    }
    while (!s->scan_full && s->head + s->scan_n < s->tail) {
        const sink_item *it = &s->items[s->head + s->scan_n];
        if (s->scan_n >= limit_points || it->op.kind == QOP_REFETCH || it->op.table != first->op.table ||
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

static void add_part(sink *s, const char *data, size_t len)
{
    if (s->nparts == s->capparts) {
        s->capparts = s->capparts ? 2 * s->capparts : 64;
        s->parts = xrealloc(s->parts, s->capparts * sizeof *s->parts);
    }
    s->parts[s->nparts].data = data;
    s->parts[s->nparts].len = len;
    s->nparts++;
    s->body_len += len;
}

/* The body of a request for the first n items: parts pointing into their
 * JSON, which stays queued (and unchanged) until the request is done. */
static void build_body(sink *s, size_t n)
{
    s->nparts = 0;
    s->body_len = 0;
    add_part(s, "{\"operations\":[", 15);
    for (size_t i = 0; i < n; i++) {
        const qop *op = &s->items[s->head + i].op;
        if (i)
            add_part(s, ",", 1);
        add_part(s, op->json, op->json_len);
    }
    add_part(s, "]}", 2);
}

/* Starts the request for the first inflight_n items (body built). */
static int start_request(sink *s)
{
    qd_result res;
    char why[600];

    if (qd_batch_start(s->env.qd, s->items[s->head].op.table->collection, s->parts, s->nparts, &res) != 0) {
        log_error("cannot start a Qdrant request", "error", qd_result_describe(&res, why, sizeof why), NULL);
        qd_result_clear(&res);
        return SINK_FATAL;
    }
    s->inflight = true;
    return SINK_OK;
}

int sink_kick(sink *s, bool more_input)
{
    bool full;
    size_t n;
    int rc;

    if (s->inflight)
        return SINK_OK;
    if (s->retry_pending) {
        if (now_ms() < s->retry_at)
            return SINK_OK;
        s->retry_pending = false;
        return start_request(s);
    }
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
    n = next_batch(s, &full);
    if (!full && more_input && now_ms() - s->items[s->head].queued_ms < s->env.cfg->sync.flush_interval_ms)
        return SINK_OK;
    s->inflight_n = n;
    build_body(s, n);
    return start_request(s);
}

int64_t sink_timeout_ms(const sink *s)
{
    int64_t now = now_ms(), t;

    if (s->inflight)
        return -1; /* curl's own timer, in sink_wait */
    if (s->retry_pending)
        return s->retry_at > now ? s->retry_at - now : 0;
    if (queued(s) == 0)
        return -1;
    t = s->items[s->head].queued_ms + s->env.cfg->sync.flush_interval_ms - now;
    return t > 0 ? t : 0;
}

int sink_wait(sink *s, struct pollfd *fds, int nfds, int timeout_ms)
{
    if (qd_wait(s->env.qd, fds, nfds, timeout_ms) != 0) {
        log_error("waiting for sockets failed", "error", strerror(errno), NULL);
        return -1;
    }
    return 0;
}

static void report(sink *s, const char *result, const qd_result *res)
{
    if (s->env.on_request)
        s->env.on_request(s->env.on_request_arg, result, res->elapsed, s->inflight_n);
}

/* A deterministic answer (not QD_OK, not QD_TRANSIENT) to the request in
 * flight.  Only QD_REJECTED, QD_POINT_MISSING and QD_COLLECTION_MISSING are
 * Qdrant's word about the operations; the others stop the sink with the
 * slot where it is. */
static int rejected(sink *s, const qd_result *res, const char *why)
{
    size_t n = s->inflight_n;
    qop *op = &s->items[s->head].op;

    s->stats.rejected++;
    /* Not about an operation: no bisection, no dead letters. */
    switch (res->outcome) {
    case QD_AUTH:
        log_error("Qdrant refused the credentials; check [qdrant] api_key", "collection", op->table->collection,
                  "error", why, NULL);
        return SINK_FATAL;
    case QD_NOT_QDRANT:
        log_error("the answer is not Qdrant's (a proxy, a redirect or another server at [qdrant] url?); stopping "
                  "with the slot before the transaction",
                  "url", qd_client_url(s->env.qd), "collection", op->table->collection, "error", why, NULL);
        return SINK_FATAL;
    case QD_OK:
    case QD_TRANSIENT: /* not here: sink_progress handles them */
        log_error("internal error: a success or transient answer taken for a rejection", "error", why, NULL);
        return SINK_FATAL;
    case QD_COLLECTION_MISSING:
    case QD_POINT_MISSING:
    case QD_REJECTED: break;
    }
    if (!s->env.create_collection && collection_missing(res)) {
        log_error("the collection does not exist; create it or set [qdrant] create_collections = true",
                  "collection", op->table->collection, "error", why, NULL);
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

int sink_progress(sink *s)
{
    qd_result res;
    char why[600], ms[32];
    int r;

    if (!s->inflight)
        return SINK_OK;
    r = qd_batch_check(s->env.qd, &res);
    if (r == 0)
        return SINK_OK;
    s->inflight = false;
    if (r == 1) {
        report(s, "ok", &res);
        s->stats.requests++;
        s->stats.bytes += s->body_len;
        s->stats.last_ok = true;
        s->attempt = 0;
        r = pop_done(s, s->inflight_n);
        if (s->nsegs > 0)
            s->nsegs--;
        s->inflight_n = 0;
        qd_result_clear(&res);
        return r;
    }
    qd_result_describe(&res, why, sizeof why);
    s->stats.last_ok = false;
    snprintf_utf8(s->stats.last_error, sizeof s->stats.last_error, "%s", why);
    if (res.outcome == QD_TRANSIENT) {
        int64_t wait = backoff_jitter_ms(s->attempt++);
        if (res.retry_after >= 0 && res.retry_after * 1000 > (double)wait)
            wait = (int64_t)(res.retry_after * 1000);
        report(s, "retry", &res);
        s->stats.retries++;
        s->retry_pending = true;
        s->retry_at = now_ms() + wait;
        snprintf_utf8(ms, sizeof ms, "%lld", (long long)wait);
        log_warn("Qdrant request failed, retrying", "collection", s->items[s->head].op.table->collection, "error",
                 why, "retry_in_ms", ms, NULL);
        qd_result_clear(&res);
        return SINK_OK;
    }
    report(s, "rejected", &res);
    r = rejected(s, &res, why);
    s->inflight_n = 0;
    qd_result_clear(&res);
    return r;
}

int sink_drain(sink *s, int64_t deadline_ms, volatile sig_atomic_t *stop, int (*idle)(void *), void *idle_arg)
{
    int64_t last_idle = now_ms();
    int rc;

    for (;;) {
        int64_t now = now_ms(), t;

        if (queued(s) == 0 && !s->inflight)
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
