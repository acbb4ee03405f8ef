/*
 * backfill_cmd.c — `pg2qdrant backfill` (backfill_cmd.h): one
 * pg_logical_emit_message on a plain connection; --wait polls /status.
 * The work itself is the `run`'s (backfill.c).
 */
#include "backfill_cmd.h"

#include <curl/curl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backfill.h"
#include "backfill_wm.h"
#include "collection.h"
#include "qdrant_client.h"
#include "log.h"
#include "replication.h"
#include "snapshot.h"
#include "util.h"

#define BF_POLL_MS 100

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    buf_append(arg, p, size * n);
    return size * n;
}

/* The /status URL of [http] listen (a wildcard address asks the loopback). */
static char *status_url(const char *listen)
{
    if (strncmp(listen, "0.0.0.0:", 8) == 0)
        return xasprintf("http://127.0.0.1:%s/status", listen + 8);
    if (strncmp(listen, "[::]:", 5) == 0)
        return xasprintf("http://[::1]:%s/status", listen + 5);
    return xasprintf("http://%s/status", listen);
}

/* 1 done, -1 failed (why filled), 0 not yet (or /status unreachable);
 * section: "backfill" or "rebuild" of /status. */
static int poll_status(CURL *c, const char *section, const char *id, char *why, size_t whylen)
{
    buf body;
    json_t *o = NULL, *bf, *fin, *e;
    size_t i;
    int rc = 0;

    buf_init(&body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (curl_easy_perform(c) != CURLE_OK || !body.data)
        goto cleanup;
    o = json_loadb(body.data, body.len, 0, NULL);
    bf = json_object_get(o, section);
    fin = json_object_get(bf, "finished");
    json_array_foreach(fin, i, e)
    {
        const char *eid = json_string_value(json_object_get(e, "id"));
        const char *st = json_string_value(json_object_get(e, "state"));
        if (!eid || strcmp(eid, id) != 0 || !st)
            continue;
        if (strcmp(st, "done") == 0) {
            rc = 1;
        } else {
            const char *err = json_string_value(json_object_get(e, "error"));
            snprintf_utf8(why, whylen, "%s", err ? err : "failed");
            rc = -1;
        }
    }
cleanup:
    json_decref(o);
    buf_free(&body);
    return rc;
}

static p2q_status wait_done(const p2q_config *cfg, const char *section, const char *const *ids, int nids,
                            int64_t timeout_ms, volatile sig_atomic_t *stop)
{
    char *url = status_url(cfg->http.listen);
    CURL *c = curl_easy_init();
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    int *state = xcalloc((size_t)(nids > 0 ? nids : 1), sizeof *state); /* 1 done, -1 failed, 0 not yet */
    int left = nids;
    bool failed = false;
    char why[600];
    p2q_status rc = P2Q_ERR_FATAL;

    if (!c) {
        log_error("cannot initialise the HTTP client", NULL);
        goto cleanup;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    for (int i = 0; i < nids; i++)
        log_info("waiting for the run to carry out the request", "what", section, "id", ids[i], "status", url,
                 NULL);
    for (;;) {
        for (int i = 0; i < nids; i++) {
            int r;
            if (state[i] != 0)
                continue;
            r = poll_status(c, section, ids[i], why, sizeof why);
            if (r == 1) {
                log_info(section[0] == 'b' ? "backfill done" : "rebuild done", "id", ids[i], NULL);
            } else if (r == -1) {
                log_error(section[0] == 'b' ? "backfill failed" : "rebuild failed", "id", ids[i], "error", why, NULL);
                failed = true;
            }
            if (r != 0) {
                state[i] = r;
                left--;
            }
        }
        if (left == 0) {
            rc = failed ? P2Q_ERR_FATAL : P2Q_OK;
            break;
        }
        if (stop && *stop) {
            rc = P2Q_STOPPED;
            break;
        }
        if (deadline && now_ms() >= deadline) {
            for (int i = 0; i < nids; i++)
                if (state[i] == 0)
                    log_error("--timeout passed before the request was done (it goes on in the run)", "what",
                              section, "id", ids[i], NULL);
            break;
        }
        poll(NULL, 0, BF_POLL_MS);
    }
cleanup:
    if (c)
        curl_easy_cleanup(c);
    free(state);
    free(url);
    return rc;
}

p2q_status bf_wait_done(const p2q_config *cfg, const char *const *ids, int nids, int64_t timeout_ms,
                        volatile sig_atomic_t *stop)
{
    return wait_done(cfg, "backfill", ids, nids, timeout_ms, stop);
}

p2q_status bf_command(const p2q_config *cfg, char *const *tables, int ntables, bool wait, int64_t timeout_ms,
                      volatile sig_atomic_t *stop)
{
    int *idx = xcalloc((size_t)(cfg->n_tables > 0 ? cfg->n_tables : 1), sizeof(int));
    const char **names = xcalloc((size_t)(cfg->n_tables > 0 ? cfg->n_tables : 1), sizeof(char *));
    PGconn *conn = NULL;
    char id[64], err[512];
    int n;
    p2q_status rc = P2Q_ERR_CONFIG;

    if ((n = snap_select_tables(cfg, tables, ntables, idx)) < 0)
        goto cleanup;
    if (n == 0) {
        log_error("no [table] section in the config: nothing to backfill", "config", cfg->path, NULL);
        goto cleanup;
    }
    if (wait && !cfg->http.listen[0]) {
        log_error("--wait follows the run's /status: set [http] listen", "config", cfg->path, NULL);
        goto cleanup;
    }
    /* every configured table: an empty list, so the run reads its own config's tables */
    for (int i = 0; i < n && ntables > 0; i++)
        names[i] = cfg->tables[idx[i]].qualified;
    if ((rc = repl_connect(cfg->source.dsn, false, stop, &conn, err, sizeof err)) != P2Q_OK) {
        log_error("cannot connect to PostgreSQL", "error", err, NULL);
        rc = rc == P2Q_ERR_CONFIG ? P2Q_ERR_CONFIG : P2Q_ERR_FATAL;
        goto cleanup;
    }
    if (bf_request(cfg, conn, names, ntables > 0 ? n : 0, NULL, 0, id, sizeof id, err, sizeof err) != 0) {
        log_error("cannot write the backfill request into the WAL", "error", err, NULL);
        rc = P2Q_ERR_FATAL;
        goto cleanup;
    }
    log_info("backfill requested; the run consuming the slot carries it out", "id", id, "slot", cfg->source.slot,
             "lsn", err, NULL);
    printf("%s\n", id);
    fflush(stdout);
    {
        const char *ids[1] = {id};
        rc = wait ? bf_wait_done(cfg, ids, 1, timeout_ms, stop) : P2Q_OK;
    }
cleanup:
    if (conn)
        PQfinish(conn);
    free(names);
    free(idx);
    return rc;
}

/* The steps of docs/operations.md "Move a plain collection behind an alias", for c. */
static void log_alias_steps(const table_cfg *t)
{
    char *steps = collection_alias_steps(t);

    log_error("the table's collection is a plain collection, not an alias: a rebuild needs an alias", "table",
              t->qualified, "collection", t->collection, "steps", steps, NULL);
    free(steps);
}

/* Whether t->collection is an alias: 1 yes, 0 no (steps logged), -1 cannot tell (logged). */
static int check_alias(qd_client *qd, const table_cfg *t)
{
    qd_result res = {0};
    strlist an = {0}, cn = {0};
    int rc = -1;
    char d[700];

    if (collection_aliases(qd, &an, &cn, &res) != 0) {
        log_error("cannot list Qdrant's aliases", "error", qd_result_describe(&res, d, sizeof d), NULL);
        goto cleanup;
    }
    if (collection_alias_target(&an, &cn, t->collection)) {
        rc = 1;
        goto cleanup;
    }
    qd_result_clear(&res);
    if (qd_collection_request(qd, "GET", t->collection, "", NULL, 0, &res) == 0) {
        log_alias_steps(t);
        rc = 0;
    } else if (res.outcome == QD_COLLECTION_MISSING) {
        log_error("the table's alias does not exist in Qdrant (create_collections = true with alias = true makes "
                  "it at run's start)", "table", t->qualified, "alias", t->collection, NULL);
        rc = 0;
    } else {
        log_error("cannot read the table's collection", "collection", t->collection, "error",
                  qd_result_describe(&res, d, sizeof d), NULL);
    }
cleanup:
    qd_result_clear(&res);
    strlist_free(&an);
    strlist_free(&cn);
    return rc;
}

p2q_status rb_command(const p2q_config *cfg, char *const *tables, int ntables, bool wait, int64_t timeout_ms,
                      volatile sig_atomic_t *stop)
{
    int *idx = xcalloc((size_t)(cfg->n_tables > 0 ? cfg->n_tables : 1), sizeof(int));
    const char **names = xcalloc((size_t)(cfg->n_tables > 0 ? cfg->n_tables : 1), sizeof(char *));
    PGconn *conn = NULL;
    qd_client *qd = NULL;
    char id[64], err[512];
    int n;
    p2q_status rc = P2Q_ERR_CONFIG;

    if (ntables == 0) {
        log_error("rebuild needs --table T (one or more)", NULL);
        goto cleanup;
    }
    if ((n = snap_select_tables(cfg, tables, ntables, idx)) < 0)
        goto cleanup;
    if (wait && !cfg->http.listen[0]) {
        log_error("--wait follows the run's /status: set [http] listen", "config", cfg->path, NULL);
        goto cleanup;
    }
    if (!(qd = qd_client_new(cfg->qdrant.url, cfg->qdrant.api_key, cfg->qdrant.timeout_ms)) ||
        qd_client_set_ca_file(qd, cfg->qdrant.ca_file) != 0) {
        log_error("cannot initialise the HTTP client", NULL);
        rc = P2Q_ERR_FATAL;
        goto cleanup;
    }
    for (int i = 0; i < n; i++) {
        int a = check_alias(qd, &cfg->tables[idx[i]]);
        if (a <= 0) {
            rc = a == 0 ? P2Q_ERR_CONFIG : P2Q_ERR_FATAL;
            goto cleanup;
        }
        names[i] = cfg->tables[idx[i]].qualified;
    }
    if ((rc = repl_connect(cfg->source.dsn, false, stop, &conn, err, sizeof err)) != P2Q_OK) {
        log_error("cannot connect to PostgreSQL", "error", err, NULL);
        rc = rc == P2Q_ERR_CONFIG ? P2Q_ERR_CONFIG : P2Q_ERR_FATAL;
        goto cleanup;
    }
    {
        buf json;
        const char *params[1];
        PGresult *res;
        snprintf(id, sizeof id, "rb-%llx-%ld-%04lx", (unsigned long long)time(NULL), (long)getpid(),
                 (unsigned long)(random() & 0xffff));
        buf_init(&json);
        bfm_format_rebuild(&json, cfg->source.slot, id, names, n);
        params[0] = json.data;
        res = PQexecParams(conn, "SELECT pg_catalog.pg_logical_emit_message(true, '" BF_PREFIX "', $1)::text", 1,
                           NULL, params, NULL, NULL, 0);
        buf_free(&json);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            repl_error_line(res, conn, err, sizeof err);
            PQclear(res);
            log_error("cannot write the rebuild request into the WAL", "error", err, NULL);
            rc = P2Q_ERR_FATAL;
            goto cleanup;
        }
        log_info("rebuild requested; the run consuming the slot carries it out", "id", id, "slot",
                 cfg->source.slot, "lsn", PQgetvalue(res, 0, 0), NULL);
        PQclear(res);
    }
    printf("%s\n", id);
    fflush(stdout);
    {
        const char *ids[1] = {id};
        rc = wait ? wait_done(cfg, "rebuild", ids, 1, timeout_ms, stop) : P2Q_OK;
    }
cleanup:
    if (conn)
        PQfinish(conn);
    qd_client_free(qd);
    free(names);
    free(idx);
    return rc;
}
