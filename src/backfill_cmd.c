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

/* 1 done, -1 failed (why filled), 0 not yet (or /status unreachable). */
static int poll_status(CURL *c, const char *id, char *why, size_t whylen)
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
    bf = json_object_get(o, "backfill");
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

p2q_status bf_wait_done(const p2q_config *cfg, const char *const *ids, int nids, int64_t timeout_ms,
                       volatile sig_atomic_t *stop)
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
        log_info("waiting for the run to carry out the backfill", "id", ids[i], "status", url, NULL);
    for (;;) {
        for (int i = 0; i < nids; i++) {
            int r;
            if (state[i] != 0)
                continue;
            r = poll_status(c, ids[i], why, sizeof why);
            if (r == 1) {
                log_info("backfill done", "id", ids[i], NULL);
            } else if (r == -1) {
                log_error("backfill failed", "id", ids[i], "error", why, NULL);
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
                    log_error("--timeout passed before the backfill was done (it goes on in the run)", "id", ids[i],
                              NULL);
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
