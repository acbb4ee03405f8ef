/*
 * rebuild.c — a table's collection rebuilt behind its alias (SPEC §10,
 * rebuild.h, docs/rebuild.md).
 */
#include "rebuild.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collection.h"
#include "log.h"
#include "metrics.h"
#include "sink.h"
#include "util.h"

#define RB_HISTORY 8
#define RB_META_KEY "pg2qdrant_rebuild"

typedef enum { RB_IDLE = 0, RB_CREATE = 1, RB_BACKFILL = 2, RB_SWITCH = 3, RB_DROP = 4 } rb_phase;

static const char *const phase_names[] = {"idle", "create", "backfill", "switch", "drop"};

typedef struct rb_req {
    char *id;
    strlist tables;       /* qualified names, the current one at cur */
    int cur;
    ack_txn hold;         /* the request's transaction, held until the end */
    rb_phase phase;
    const table_cfg *t;   /* the current table */
    char *old_coll;       /* the alias's target at the start */
    char *new_coll;       /* the new generation */
    int64_t gen;
    char *bf_id;          /* the backfill into new_coll */
    bool bf_done;
    char *bf_error;
    uint64_t mark;        /* RB_SWITCH: the sink's mark when the backfill was done (the copies pushed before it) */
    int attempt;
    int64_t retry_at;
    uint64_t rows_done;
    char *errors;         /* "; "-joined, or NULL */
    struct rb_req *next;
} rb_req;

typedef struct rb_done {
    char *id, *error;
} rb_done;

/* One answered request of the current step (see call()). */
typedef struct rb_call {
    char *key; /* method, collection, path and body */
    qd_result res;
    bool ok;
} rb_call;

struct rebuild {
    rb_env env;
    qd_client *qd;        /* the rebuild's own: one asynchronous request at a time, lane 0 */
    rb_call *calls;       /* the current step's answered requests, in order */
    int ncalls, capcalls;
    char *pending_key;    /* the request in flight, or NULL */
    char *pending_body;
    rb_req *cur, *queue;
    strlist seen;
    rb_done history[RB_HISTORY];
    int nhistory;
    int64_t published_ms;
};

/* ---- pure ------------------------------------------------------------------------------ */

int64_t rb_generation_of(const char *alias, const char *name)
{
    size_t n = strlen(alias);
    const char *p;
    int64_t g = 0;

    if (strncmp(name, alias, n) != 0 || name[n] != '_' || name[n + 1] != 'g')
        return 0;
    p = name + n + 2;
    if (*p < '1' || *p > '9')
        return 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || g > (INT64_MAX - 9) / 10)
            return 0;
        g = g * 10 + (*p - '0');
    }
    return g;
}

int64_t rb_next_generation(const char *alias, const char *const *names, int n, const char *const *taken, int ntaken)
{
    int64_t max = 0;
    bool clash;

    for (int i = 0; i < n; i++) {
        int64_t g = rb_generation_of(alias, names[i]);
        if (g > max)
            max = g;
    }
    do {
        max++;
        clash = false;
        for (int i = 0; i < ntaken && !clash; i++)
            clash = rb_generation_of(alias, taken[i]) == max;
    } while (clash);
    return max;
}

static void copy_key(json_t *dst, const json_t *src, const char *key)
{
    json_t *v = json_object_get(src, key);

    if (v && !json_is_null(v))
        json_object_set(dst, key, v);
}

int rb_create_body(const char *create_params, const json_t *info, const char *id, buf *out, char *err,
                   size_t errlen)
{
    json_t *body = NULL, *meta;
    char *s = NULL;
    int rc = -1;

    if (create_params) {
        json_error_t je;
        body = json_loads(create_params, 0, &je);
        if (!json_is_object(body)) {
            snprintf(err, errlen, "create_params is not a JSON object");
            goto cleanup;
        }
    } else {
        const json_t *config = json_object_get(info, "config");
        const json_t *params = json_object_get(config, "params");
        static const char *const pkeys[] = {"vectors", "sparse_vectors", "shard_number", "replication_factor",
                                            "write_consistency_factor", "on_disk_payload"};
        if (!json_is_object(params)) {
            snprintf(err, errlen, "the collection's info has no config.params");
            goto cleanup;
        }
        body = json_object();
        for (size_t i = 0; i < sizeof pkeys / sizeof pkeys[0]; i++)
            copy_key(body, params, pkeys[i]);
        copy_key(body, config, "hnsw_config");
        copy_key(body, config, "quantization_config");
    }
    meta = json_object_get(body, "metadata");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(body, "metadata", meta);
    }
    json_object_set_new(meta, RB_META_KEY, json_string(id));
    s = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    buf_puts(out, s);
    rc = 0;
cleanup:
    free(s);
    json_decref(body);
    return rc;
}

char *rb_generation_name(const char *alias, int64_t gen)
{
    return xasprintf("%s_g%lld", alias, (long long)gen);
}

void rb_create_alias_body(const char *alias, const char *collection, buf *out)
{
    json_t *o = json_pack("{s:[{s:{s:s,s:s}}]}", "actions", "create_alias", "collection_name", collection,
                          "alias_name", alias);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

    buf_puts(out, s);
    free(s);
    json_decref(o);
}

void rb_switch_body(const char *alias, const char *collection, buf *out)
{
    json_t *o = json_pack("{s:[{s:{s:s}},{s:{s:s,s:s}}]}", "actions", "delete_alias", "alias_name", alias,
                          "create_alias", "collection_name", collection, "alias_name", alias);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

    buf_puts(out, s);
    free(s);
    json_decref(o);
}

/* ---- state -------------------------------------------------------------------------- */

static void publish(rebuild *r);

rebuild *rb_new(const rb_env *env)
{
    rebuild *r = xcalloc(1, sizeof *r);

    r->env = *env;
    r->qd = qd_client_new(env->cfg->qdrant.url, env->cfg->qdrant.api_key, env->cfg->qdrant.timeout_ms);
    if (r->qd && qd_client_set_ca_file(r->qd, env->cfg->qdrant.ca_file) != 0) {
        qd_client_free(r->qd);
        r->qd = NULL;
    }
    if (!r->qd) /* the sync's own client was made the same way: cannot happen; its failures are logged there */
        log_warn("rebuild: cannot set up its Qdrant client; rebuild requests will fail", NULL);
    publish(r);
    return r;
}

/* ---- Qdrant requests, asynchronous ----------------------------------------------------
 *
 * A step runs from its top on every turn until it moves on.  Each request
 * it makes goes through call(): the first time, the request starts (on the
 * rebuild's own client) and call() says "pending": the step returns, and
 * the loop polls.  Once the answer is in, the same call in the step's next
 * run returns it from the step's record.  A step makes its requests in the
 * same order on every run (what it asks depends only on earlier answers),
 * so nothing is sent twice.  The record is cleared when the step ends: a
 * new phase, a failure, a retry after a transient failure (rb_step). */

static void calls_clear(rebuild *r)
{
    for (int i = 0; i < r->ncalls; i++) {
        free(r->calls[i].key);
        qd_result_clear(&r->calls[i].res);
    }
    r->ncalls = 0;
    if (r->pending_key && r->qd)
        qd_batch_abort(r->qd, -1);
    free(r->pending_key);
    free(r->pending_body);
    r->pending_key = r->pending_body = NULL;
}

static void record(rebuild *r, char *key, qd_result *res, bool ok)
{
    if (r->ncalls == r->capcalls) {
        r->capcalls = r->capcalls ? 2 * r->capcalls : 8;
        r->calls = xrealloc(r->calls, (size_t)r->capcalls * sizeof *r->calls);
    }
    r->calls[r->ncalls++] = (rb_call){.key = key, .res = *res, .ok = ok};
    memset(res, 0, sizeof *res);
}

/* method on collection's path (collection NULL: path is the whole path).
 * true with *res (owned by the record) and *ok when answered; false while
 * the request is in flight (the step returns and runs again). */
static bool call(rebuild *r, const char *method, const char *collection, const char *path, const char *body,
                 size_t body_len, const qd_result **res, bool *ok)
{
    char *key = xasprintf("%s %s %s\n%.*s", method, collection ? collection : "", path, (int)body_len,
                          body ? body : "");
    qd_result start = {0};

    for (int i = 0; i < r->ncalls; i++)
        if (strcmp(r->calls[i].key, key) == 0) {
            free(key);
            *res = &r->calls[i].res;
            *ok = r->calls[i].ok;
            return true;
        }
    if (r->pending_key) { /* this one, in flight */
        free(key);
        return false;
    }
    if (!r->qd) {
        snprintf(start.error, sizeof start.error, "no Qdrant client");
        start.curl_code = CURLE_FAILED_INIT;
    } else {
        r->pending_body = body ? xstrndup(body, body_len) : NULL;
        if (qd_async_start(r->qd, 0, method, collection, path, r->pending_body, body_len, &start) == 0) {
            r->pending_key = key;
            return false;
        }
        free(r->pending_body);
        r->pending_body = NULL;
    }
    record(r, key, &start, false); /* could not even start: answered, failed */
    *res = &r->calls[r->ncalls - 1].res;
    *ok = false;
    return true;
}

/* The answer of the request in flight, when it has come. */
static void poll_call(rebuild *r)
{
    qd_result res = {0};
    int lane, rc;

    if (!r->pending_key || !r->qd)
        return;
    if ((rc = qd_batch_check(r->qd, &lane, &res)) == 0)
        return;
    record(r, r->pending_key, &res, rc == 1);
    r->pending_key = NULL;
    free(r->pending_body);
    r->pending_body = NULL;
}

static void req_free(rb_req *q)
{
    if (!q)
        return;
    free(q->id);
    strlist_free(&q->tables);
    free(q->old_coll);
    free(q->new_coll);
    free(q->bf_id);
    free(q->bf_error);
    free(q->errors);
    free(q);
}

void rb_session_start(rebuild *r)
{
    rb_req *q;

    calls_clear(r);
    req_free(r->cur);
    r->cur = NULL;
    while ((q = r->queue)) {
        r->queue = q->next;
        req_free(q);
    }
    strlist_free(&r->seen);
    publish(r);
}

void rb_free(rebuild *r)
{
    if (!r)
        return;
    rb_session_start(r);
    calls_clear(r);
    free(r->calls);
    qd_client_free(r->qd);
    for (int i = 0; i < r->nhistory; i++) {
        free(r->history[i].id);
        free(r->history[i].error);
    }
    free(r);
}

static void publish(rebuild *r)
{
    json_t *o = json_object(), *f = json_array();
    const rb_req *q = r->cur;
    const rb_done *last = r->nhistory ? &r->history[r->nhistory - 1] : NULL;
    char *s;

    json_object_set_new(o, "state", json_string(q ? "running" : last ? (last->error ? "failed" : "done") : "idle"));
    json_object_set_new(o, "id", q ? json_string(q->id) : last ? json_string(last->id) : json_null());
    json_object_set_new(o, "phase", q && q->phase ? json_string(phase_names[q->phase]) : json_null());
    json_object_set_new(o, "table", q && q->t ? json_string(q->t->qualified) : json_null());
    json_object_set_new(o, "alias", q && q->t ? json_string(q->t->collection) : json_null());
    json_object_set_new(o, "generation", q && q->gen ? json_integer((json_int_t)q->gen) : json_null());
    json_object_set_new(o, "old_collection", q && q->old_coll ? json_string(q->old_coll) : json_null());
    json_object_set_new(o, "new_collection", q && q->new_coll ? json_string(q->new_coll) : json_null());
    json_object_set_new(o, "rows_done", json_integer(q ? (json_int_t)q->rows_done : 0));
    json_object_set_new(o, "error", q ? (q->errors ? json_string(q->errors) : json_null())
                                      : last && last->error ? json_string(last->error) : json_null());
    for (int i = 0; i < r->nhistory; i++)
        json_array_append_new(f, json_pack("{s:s,s:s,s:o}", "id", r->history[i].id, "state",
                                           r->history[i].error ? "failed" : "done", "error",
                                           r->history[i].error ? json_string(r->history[i].error) : json_null()));
    json_object_set_new(o, "finished", f);
    s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    metrics_set_rebuild(r->env.metrics, s, q ? (int)q->phase : 0);
    r->published_ms = now_ms();
    free(s);
    json_decref(o);
}


p2q_status rb_on_request(rebuild *r, const bfm *m, lsn_t lsn, bool in_txn, ack_txn txn)
{
    rb_req *q, **p;
    char l[LSN_BUFSZ];
    buf names;

    if (strlist_has(&r->seen, m->id))
        return P2Q_OK;
    strlist_add(&r->seen, "%s", m->id);
    q = xcalloc(1, sizeof *q);
    q->id = xstrdup(m->id);
    buf_init(&names);
    for (int i = 0; i < m->tables.n; i++) {
        const table_cfg *t = config_find_qualified(r->env.cfg, m->tables.v[i]);
        if (!t) {
            log_warn("rebuild request names a table that has no [table] section; skipped", "id", m->id, "table",
                     m->tables.v[i], NULL);
            continue;
        }
        strlist_add(&q->tables, "%s", t->qualified);
        buf_printf(&names, "%s%s", names.len ? "," : "", t->qualified);
    }
    if (q->tables.n == 0) {
        log_warn("rebuild request names no configured table; nothing to do", "id", m->id, NULL);
        req_free(q);
        buf_free(&names);
        return P2Q_OK;
    }
    if (in_txn) {
        if (ack_add_ops(r->env.acks, txn, 1) != 0) {
            log_error("internal error: the acknowledgement tracker refused a rebuild hold", NULL);
            req_free(q);
            buf_free(&names);
            return P2Q_ERR_FATAL;
        }
        q->hold = txn;
    }
    log_info(r->cur || r->queue ? "rebuild requested; queued behind the one running" : "rebuild requested", "id",
             q->id, "tables", names.data, "lsn", lsn_fmt(lsn, l), NULL);
    buf_free(&names);
    for (p = &r->queue; *p; p = &(*p)->next)
        ;
    *p = q;
    publish(r);
    return P2Q_OK;
}

void rb_on_backfill_finish(rebuild *r, const char *id, const char *error)
{
    rb_req *q = r->cur;

    if (!q || !q->bf_id || strcmp(q->bf_id, id) != 0)
        return;
    q->bf_done = true;
    free(q->bf_error);
    q->bf_error = error ? xstrdup(error) : NULL;
}

void rb_dual(const rebuild *r, const qop_list *ops, size_t from, qop_list *out)
{
    const rb_req *q = r->cur;

    if (!q || (q->phase != RB_BACKFILL && q->phase != RB_SWITCH) || !q->new_coll)
        return;
    for (size_t i = from; i < ops->n; i++) {
        if (ops->items[i].table != q->t || ops->items[i].collection)
            continue;
        qop_copy(qop_list_push(out), &ops->items[i], q->new_coll);
    }
}

/* ---- steps ------------------------------------------------------------------------ */

static void history_add(rebuild *r, const char *id, const char *error)
{
    if (r->nhistory == RB_HISTORY) {
        free(r->history[0].id);
        free(r->history[0].error);
        memmove(&r->history[0], &r->history[1], (RB_HISTORY - 1) * sizeof r->history[0]);
        r->nhistory--;
    }
    r->history[r->nhistory].id = xstrdup(id);
    r->history[r->nhistory].error = error ? xstrdup(error) : NULL;
    r->nhistory++;
}

static void finish(rebuild *r)
{
    rb_req *q = r->cur;

    if (q->hold != ACK_NO_TXN && ack_done_ops(r->env.acks, q->hold, 1) != 0)
        log_warn("internal error: the acknowledgement tracker refused to release a rebuild hold", NULL);
    if (q->errors)
        log_warn("rebuild finished with failures", "id", q->id, "errors", q->errors, NULL);
    else
        log_info("rebuild done", "id", q->id, NULL);
    history_add(r, q->id, q->errors);
    metrics_count_rebuild(r->env.metrics, q->errors != NULL);
    req_free(q);
    r->cur = NULL;
    publish(r);
}

/* The current table is done (or failed): the next one. */
static void next_table(rebuild *r)
{
    rb_req *q = r->cur;

    free(q->old_coll);
    free(q->new_coll);
    free(q->bf_id);
    free(q->bf_error);
    q->old_coll = q->new_coll = q->bf_id = q->bf_error = NULL;
    q->gen = 0;
    q->bf_done = false;
    q->attempt = 0;
    q->retry_at = 0;
    q->t = NULL;
    q->phase = RB_IDLE;
    if (++q->cur >= q->tables.n)
        finish(r);
    else
        publish(r);
}

static void fail_table(rebuild *r, const char *why)
{
    rb_req *q = r->cur;
    char *e = xasprintf("%s: %s", q->tables.items[q->cur], why);

    log_error("rebuild of a table failed; the old collection keeps serving", "id", q->id, "table",
              q->tables.items[q->cur], "alias", q->t ? q->t->collection : "", "new_collection",
              q->new_coll ? q->new_coll : "", "error", why, NULL);
    if (q->errors) {
        char *j = xasprintf("%s; %s", q->errors, e);
        free(q->errors);
        q->errors = j;
    } else {
        q->errors = xstrdup(e);
    }
    free(e);
    next_table(r);
}

/* A failed Qdrant call: transient → retried later (true), else the table fails. */
static bool qd_failed(rebuild *r, const char *what, const qd_result *res)
{
    char d[700], ms[24];
    char *why;

    qd_result_describe(res, d, sizeof d);
    if (qd_result_transient(res)) {
        int64_t wait = backoff_jitter_ms(r->cur->attempt++);
        snprintf(ms, sizeof ms, "%lld", (long long)wait);
        log_warn("rebuild: Qdrant request failed, retrying", "step", what, "error", d, "retry_in_ms", ms, NULL);
        r->cur->retry_at = now_ms() + wait;
        return true;
    }
    why = xasprintf("%s: %s", what, d);
    fail_table(r, why);
    free(why);
    return false;
}

/* What the helpers below return: the answer is in, the step failed
 * (handled: qd_failed), or the request is in flight (the step returns). */
enum { RB_OK = 0, RB_FAILED = -1, RB_WAIT = 1 };

/* The aliases: all names into names (if not NULL) and alias's target into *target (NULL: none). */
static int get_aliases(rebuild *r, const char *alias, char **target, strlist *names)
{
    const qd_result *res;
    strlist an = {0}, cn = {0};
    const char *t;
    bool ok;

    *target = NULL;
    if (!call(r, "GET", NULL, "/aliases", NULL, 0, &res, &ok))
        return RB_WAIT;
    if (!ok) {
        qd_failed(r, "listing the aliases", res);
        return RB_FAILED;
    }
    collection_aliases_parse(res->result, &an, &cn);
    if ((t = collection_alias_target(&an, &cn, alias)))
        *target = xstrdup(t);
    for (int i = 0; names && i < an.n; i++)
        strlist_add(names, "%s", an.items[i]);
    strlist_free(&an);
    strlist_free(&cn);
    return RB_OK;
}

/* GET /collections/{c}'s result into *info (owned), or NULL with *missing;
 * RB_OK, RB_FAILED or RB_WAIT. */
static int get_info(rebuild *r, const char *c, json_t **info, bool *missing)
{
    const qd_result *res;
    bool ok;

    *info = NULL;
    *missing = false;
    if (!call(r, "GET", c, "", NULL, 0, &res, &ok))
        return RB_WAIT;
    if (ok) {
        *info = json_incref(res->result);
    } else if (res->outcome == QD_COLLECTION_MISSING) {
        *missing = true;
    } else {
        char *what = xasprintf("reading collection %s", c);
        qd_failed(r, what, res);
        free(what);
        return RB_FAILED;
    }
    return RB_OK;
}

static int delete_collection(rebuild *r, const char *c)
{
    const qd_result *res;
    bool ok;

    if (!call(r, "DELETE", c, "", NULL, 0, &res, &ok))
        return RB_WAIT;
    if (!ok) {
        char *what = xasprintf("deleting collection %s", c);
        qd_failed(r, what, res);
        free(what);
        return RB_FAILED;
    }
    return RB_OK;
}

static const char *meta_id(const json_t *info)
{
    return json_string_value(json_object_get(json_object_get(json_object_get(info, "config"), "metadata"),
                                             RB_META_KEY));
}

static void start_backfill(rebuild *r)
{
    rb_req *q = r->cur;

    free(q->bf_id);
    q->bf_id = xasprintf("%s-rebuild-%s-%lld", q->id, q->t->qualified, (long long)now_ms());
    q->phase = RB_BACKFILL;
    q->attempt = 0;
    bf_enqueue_for(r->env.bf, q->bf_id, q->t->qualified, q->new_coll);
}

/* The create phase: the alias's target, leftovers, the new generation. */
static void step_create(rebuild *r)
{
    rb_req *q = r->cur;
    const char *alias;
    char *target = NULL, gen[24];
    strlist aliases = {0}, colls = {0};
    const qd_result *res;
    json_t *info = NULL, *e;
    size_t i;
    bool missing, ok;
    buf body;

    buf_init(&body);
    if (!q->t) {
        q->t = config_find_qualified(r->env.cfg, q->tables.items[q->cur]);
        if (!q->t) { /* cannot happen: checked at the request */
            fail_table(r, "no [table] section");
            goto cleanup;
        }
        publish(r);
    }
    alias = q->t->collection;
    if (get_aliases(r, alias, &target, &aliases) != RB_OK)
        goto cleanup;
    if (!target) {
        if (get_info(r, alias, &info, &missing) != RB_OK)
            goto cleanup;
        if (info || missing) {
            char *why = xasprintf(info ? "collection %s is a plain collection, not an alias: move it behind an alias "
                                         "first (docs/operations.md)"
                                       : "alias %s does not exist",
                                  alias);
            fail_table(r, why);
            free(why);
        }
        goto cleanup;
    }
    free(q->old_coll);
    q->old_coll = target;
    target = NULL;
    /* every collection: generations of this alias (ours from before a restart, leftovers) */
    if (!call(r, "GET", NULL, "/collections", NULL, 0, &res, &ok))
        goto cleanup;
    if (!ok) {
        qd_failed(r, "listing the collections", res);
        goto cleanup;
    }
    json_array_foreach (json_object_get(res->result, "collections"), i, e) {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n)
            strlist_add(&colls, "%s", n);
    }
    {
        json_t *tinfo;
        int64_t tgen = rb_generation_of(alias, q->old_coll);
        if (get_info(r, q->old_coll, &tinfo, &missing) != RB_OK)
            goto cleanup;
        if (tinfo && meta_id(tinfo) && strcmp(meta_id(tinfo), q->id) == 0) {
            /* ours, behind the alias already: the switch happened before a restart */
            log_info("rebuild resumed after its switch", "id", q->id, "alias", alias, "collection", q->old_coll,
                     NULL);
            free(q->new_coll);
            q->new_coll = q->old_coll;
            q->old_coll = NULL;
            q->gen = tgen;
            for (int c = 0; c < colls.n; c++) { /* the previous generation: the newest older one */
                int64_t g = rb_generation_of(alias, colls.items[c]);
                if (g > 0 && g < tgen && (!q->old_coll || g > rb_generation_of(alias, q->old_coll))) {
                    free(q->old_coll);
                    q->old_coll = xstrdup(colls.items[c]);
                }
            }
            json_decref(tinfo);
            q->phase = RB_DROP;
            publish(r);
            goto cleanup;
        }
        if (!info)
            info = tinfo;
        else
            json_decref(tinfo);
        for (int c = 0; c < colls.n; c++) {
            int64_t g = rb_generation_of(alias, colls.items[c]);
            json_t *ci;
            if (g <= tgen || strcmp(colls.items[c], q->old_coll) == 0)
                continue;
            if (get_info(r, colls.items[c], &ci, &missing) != RB_OK)
                goto cleanup;
            if (!ci)
                continue; /* missing */
            if (meta_id(ci) && strcmp(meta_id(ci), q->id) == 0 && !q->new_coll) {
                log_info("rebuild resumed: filling its new generation again", "id", q->id, "alias", alias,
                         "collection", colls.items[c], NULL);
                q->new_coll = xstrdup(colls.items[c]);
                q->gen = g;
            } else {
                log_warn("deleting a generation left behind by an interrupted rebuild", "alias", alias, "collection",
                         colls.items[c], "rebuild", meta_id(ci) ? meta_id(ci) : "", NULL);
                if (delete_collection(r, colls.items[c]) != RB_OK) {
                    json_decref(ci);
                    goto cleanup;
                }
            }
            json_decref(ci);
        }
    }
    if (q->new_coll) {
        start_backfill(r);
        publish(r);
        goto cleanup;
    }
    if (!info && !q->t->create_params) {
        fail_table(r, "the alias's collection is gone and [table] create_params is not set");
        goto cleanup;
    }
    {
        char err[300];
        if (rb_create_body(q->t->create_params, info, q->id, &body, err, sizeof err) != 0) {
            fail_table(r, err);
            goto cleanup;
        }
    }
    q->gen = rb_next_generation(alias, (const char *const *)colls.items, colls.n,
                                (const char *const *)aliases.items, aliases.n);
    free(q->new_coll);
    q->new_coll = rb_generation_name(alias, q->gen);
    if (!call(r, "PUT", q->new_coll, "", body.data, body.len, &res, &ok)) {
        free(q->new_coll); /* computed again, the same, when the answer is in */
        q->new_coll = NULL;
        q->gen = 0;
        goto cleanup;
    }
    if (!ok) {
        char *what = xasprintf("creating collection %s", q->new_coll);
        if (res->http_status == 409) { /* the name was taken meanwhile: never overwritten, the next one */
            log_warn("rebuild: generation name taken meanwhile; taking the next", "collection", q->new_coll, NULL);
            q->retry_at = now_ms() + 100;
        } else {
            qd_failed(r, what, res);
        }
        free(what);
        if (r->cur == q) {
            free(q->new_coll);
            q->new_coll = NULL;
            q->gen = 0;
        }
        goto cleanup;
    }
    snprintf(gen, sizeof gen, "%lld", (long long)q->gen);
    log_info("rebuild: new generation created; writing to both collections", "id", q->id, "table",
             q->t->qualified, "alias", alias, "old_collection", q->old_coll, "new_collection", q->new_coll,
             "generation", gen, "params", q->t->create_params ? "create_params" : "copied", NULL);
    start_backfill(r);
    publish(r);
cleanup:
    free(target);
    json_decref(info);
    strlist_free(&aliases);
    strlist_free(&colls);
    buf_free(&body);
}

static void step_switch(rebuild *r)
{
    rb_req *q = r->cur;
    char *target = NULL;
    const qd_result *res;
    bool ok;
    buf body;

    if (!sink_done_upto(r->env.sink, q->mark))
        return; /* the copies pushed before are not all acknowledged yet */
    buf_init(&body);
    if (get_aliases(r, q->t->collection, &target, NULL) != RB_OK)
        goto cleanup;
    if (!target || strcmp(target, q->new_coll) != 0) {
        rb_switch_body(q->t->collection, q->new_coll, &body);
        if (!call(r, "POST", NULL, "/collections/aliases", body.data, body.len, &res, &ok))
            goto cleanup;
        if (!ok) {
            qd_failed(r, "switching the alias", res);
            goto cleanup;
        }
    }
    log_info("rebuild: alias switched", "id", q->id, "alias", q->t->collection, "from", target ? target : "",
             "to", q->new_coll, NULL);
    q->phase = RB_DROP;
    q->attempt = 0;
    publish(r);
cleanup:
    free(target);
    buf_free(&body);
}

static void step_drop(rebuild *r)
{
    rb_req *q = r->cur;

    if (q->old_coll && strcmp(q->old_coll, q->new_coll) != 0) {
        if (q->t->keep_old_collections) {
            log_info("rebuild: previous generation kept (keep_old_collections)", "id", q->id, "collection",
                     q->old_coll, NULL);
        } else {
            if (delete_collection(r, q->old_coll) != RB_OK)
                return;
            log_info("rebuild: previous generation deleted", "id", q->id, "collection", q->old_coll, NULL);
        }
    }
    log_info("rebuild of table done", "id", q->id, "table", q->t->qualified, "alias", q->t->collection,
             "collection", q->new_coll, NULL);
    next_table(r);
}

p2q_status rb_step(rebuild *r)
{
    rb_req *q;
    rb_phase phase;
    int64_t retry_at;
    const table_cfg *t;

    poll_call(r);
    if (!r->cur && r->queue) {
        r->cur = r->queue;
        r->queue = r->cur->next;
        r->cur->next = NULL;
        r->cur->phase = RB_CREATE;
        publish(r);
    }
    if (!(q = r->cur) || now_ms() < q->retry_at)
        return P2Q_OK;
    phase = q->phase;
    retry_at = q->retry_at;
    t = q->t;
    switch (q->phase) {
    case RB_IDLE:
        q->phase = RB_CREATE;
        /* fall through */
    case RB_CREATE:
        step_create(r);
        break;
    case RB_BACKFILL:
        if (!q->bf_done) {
            uint64_t rows = bf_rows_done(r->env.bf, q->bf_id);
            if (rows != q->rows_done && now_ms() - r->published_ms >= 1000) {
                q->rows_done = rows;
                publish(r);
            }
            break;
        }
        if (q->bf_error) {
            char *why = xasprintf("the backfill into %s failed: %s", q->new_coll, q->bf_error);
            fail_table(r, why);
            free(why);
            break;
        }
        /* the backfill's own operations are acknowledged (done means so);
         * the copies of streamed changes pushed until now must be too */
        q->mark = sink_mark(r->env.sink);
        q->phase = RB_SWITCH;
        publish(r);
        break;
    case RB_SWITCH:
        step_switch(r);
        break;
    case RB_DROP:
        step_drop(r);
        break;
    }
    /* the step ended (moved on, failed, or waits to retry): its record goes */
    if (r->cur != q || q->phase != phase || q->retry_at != retry_at || (t && q->t != t))
        calls_clear(r);
    return P2Q_OK;
}

int rb_timeout_ms(const rebuild *r)
{
    int64_t left;

    if (!r->cur && !r->queue)
        return -1;
    if (r->queue && !r->cur)
        return 0;
    if (r->pending_key)
        return 5; /* a request in flight on the rebuild's client (not in the loop's poll): look again soon */
    if (r->cur->phase == RB_SWITCH)
        return 50; /* waiting for acknowledgements */
    if (r->cur->phase == RB_BACKFILL)
        return -1;
    left = r->cur->retry_at - now_ms();
    return left < 0 ? 0 : left > 1000 ? 1000 : (int)left;
}
