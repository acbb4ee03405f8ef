/*
 * qdrant_client.c — Qdrant's REST API over one reused libcurl easy handle.
 *
 * Every request goes through client_perform(): it resets the per-request
 * state, lets curl reuse the kept-alive connection, collects the body and
 * the Retry-After header, then envelope_parse() turns the answer into a
 * qd_result.  Nothing here logs; callers describe failures with
 * qd_result_describe().
 *
 * The API key lives only in the header list handed to curl.  Error texts
 * come from Qdrant's body or from curl's error buffer, neither of which
 * echoes request headers, so the key cannot reach qd_result.error.
 *
 * Retry-After: the delta-seconds form ("Retry-After: 2") is used as is; the
 * HTTP-date form is converted with curl_getdate() into seconds from now
 * (0 when already past).  An unparsable value counts as absent (-1).
 *
 * A kept-alive connection that the server closed before answering (its
 * idle timeout racing our request) is re-dialled once by curl itself and
 * the request re-sent; a failure after that is a transport error.
 *
 * Every exchange is classified once, in classify(), into a qd_outcome: only
 * an answer that carries Qdrant's envelope may say something about the
 * operation (rejected, point or collection missing); a redirect, an HTML
 * page, an ingress's 404 or a 501 is QD_NOT_QDRANT, which callers treat as
 * fatal.  The body is read up to max_body bytes; a larger answer is
 * abandoned as it arrives (the write callback refuses it).
 *
 * Proxies: curl would take http_proxy / https_proxy / all_proxy from the
 * environment and send the api-key through them; CURLOPT_PROXY = "" turns
 * that off, so requests always go straight to [qdrant] url
 * (docs/configuration.md).
 */
#include "qdrant_client.h"

#include "util.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Bytes of a non-JSON body copied into qd_result.error. */
#define QD_BODY_EXCERPT 200
/* Bytes of a Location header kept for the message about a redirect. */
#define QD_LOCATION_MAX 200
/* Upper bound of the TCP/TLS connect phase. */
#define QD_MAX_CONNECT_MS 10000

/* One exchange at a time on its own curl easy handle (and connection). */
typedef struct qd_xfer {
    qd_client *c;                /* the client it belongs to */
    CURL *curl;                  /* NULL until first used (a lane) */
    bool in_multi;               /* attached to c->multi: a batch is in flight */
    char *batch_path;            /* path of the batch in flight */
    int64_t start_ms;
    bool body_too_large;         /* the current response exceeded max_body */
    char location[QD_LOCATION_MAX + 1]; /* Location header of the current response */
    const qd_part *parts;        /* body of the batch in flight, streamed (caller's memory) */
    size_t nparts, part_i, part_off; /* the read position in parts */
    buf url;                     /* scratch: base_url + path_query */
    buf body;                    /* response body of the current request */
    double retry_after;          /* from the current response's headers */
    char errbuf[CURL_ERROR_SIZE];
} qd_xfer;

struct qd_client {
    qd_xfer sync;                /* the synchronous requests */
    qd_xfer lanes[QD_MAX_LANES]; /* asynchronous batches, one in flight on each */
    CURLM *multi;                /* drives the lanes */
    int running;                 /* transfers left running by the last curl_multi_perform */
    int64_t timeout_ms;
    char *base_url;              /* without trailing '/' */
    char *safe_url;              /* base_url without user:password@, for messages */
    size_t max_body;             /* response body cap */
    struct curl_slist *headers;  /* Content-Type, Expect, api-key */
    long connects;               /* connections opened so far */
    char *ca_file;               /* NULL: curl's default CA bundle */
};

void qd_result_clear(qd_result *r)
{
    json_decref(r->result);
    r->result = NULL;
}

static void result_init(qd_result *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after = -1;
    r->outcome = QD_TRANSIENT; /* local failures before an exchange, as no answer */
}

const char *qd_outcome_name(qd_outcome o)
{
    switch (o) {
    case QD_OK: return "ok";
    case QD_TRANSIENT: return "transient";
    case QD_AUTH: return "auth";
    case QD_COLLECTION_MISSING: return "collection missing";
    case QD_POINT_MISSING: return "point missing";
    case QD_REJECTED: return "rejected";
    case QD_NOT_QDRANT: return "not Qdrant";
    }
    return "?";
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    qd_xfer *x = userdata;
    size_t n = size * nmemb;

    if (n > x->c->max_body - x->body.len) { /* body.len <= max_body always */
        x->body_too_large = true;
        return 0; /* curl aborts the transfer: CURLE_WRITE_ERROR */
    }
    buf_append(&x->body, data, n);
    return n;
}

/* Value of a Retry-After header in seconds, or -1 when unparsable. */
static double retry_after_parse(const char *v, size_t n)
{
    char tmp[128];
    char *end = NULL;
    long secs;
    time_t when;

    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    while (n > 0 && isspace((unsigned char)*v)) {
        v++;
        n--;
    }
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    if (isdigit((unsigned char)tmp[0])) {
        secs = strtol(tmp, &end, 10);
        return *end == '\0' && secs >= 0 ? (double)secs : -1;
    }
    when = curl_getdate(tmp, NULL);
    if (when == -1)
        return -1;
    return when > time(NULL) ? difftime(when, time(NULL)) : 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    static const char name[] = "retry-after:";
    static const char loc[] = "location:";
    qd_xfer *c = userdata;
    size_t n = size * nmemb;

    /* A new status line starts a new response (after 100 Continue or an
     * auth round trip): only the final response's header counts. */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        c->retry_after = -1;
        c->location[0] = '\0';
    } else if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        c->retry_after = retry_after_parse(data + sizeof name - 1, n - (sizeof name - 1));
    } else if (n > sizeof loc - 1 && strncasecmp(data, loc, sizeof loc - 1) == 0) {
        size_t m = n - (sizeof loc - 1), k = 0;
        const char *v = data + sizeof loc - 1;
        while (m > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            m--;
        }
        while (m > 0 && (v[m - 1] == '\r' || v[m - 1] == '\n' || v[m - 1] == ' '))
            m--;
        if (m > QD_LOCATION_MAX)
            m = utf8_cut(v, QD_LOCATION_MAX);
        for (k = 0; k < m; k++)
            c->location[k] = iscntrl((unsigned char)v[k]) ? ' ' : v[k];
        c->location[m] = '\0';
    }
    return n;
}

/* Copies up to QD_BODY_EXCERPT bytes of a non-envelope body into out,
 * control characters flattened to spaces, surrounding space trimmed. */
static void body_excerpt(const char *body, size_t len, char *out, size_t outlen)
{
    size_t n = len < QD_BODY_EXCERPT ? len : QD_BODY_EXCERPT;
    size_t i;

    if (n >= outlen)
        n = outlen - 1;
    n = utf8_cut(body, n);
    while (n > 0 && isspace((unsigned char)*body)) {
        body++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)body[n - 1]))
        n--;
    for (i = 0; i < n; i++)
        out[i] = iscntrl((unsigned char)body[i]) ? ' ' : body[i];
    out[n] = '\0';
}

/* Qdrant's answer for a collection / a point it does not have (QDRANT.md §2). */
static bool text_collection_missing(const char *e)
{
    return strncmp(e, "Not found: Collection", 21) == 0 && strstr(e, "doesn't exist") != NULL;
}

static bool text_point_missing(const char *e)
{
    return strncmp(e, "Not found: No point with id", 27) == 0;
}

/*
 * Interprets the response in c->body for res->http_status into
 * res->outcome (see qd_outcome), res->result on success and res->error
 * otherwise.  Returns 0 for QD_OK, else -1.
 */
static int classify(qd_xfer *c, qd_result *res)
{
    long st = res->http_status;
    json_t *root = NULL;
    json_t *status;
    json_t *err = NULL;
    bool has_time;

    root = qd_json_loadb(c->body.data ? c->body.data : "", c->body.len, NULL);
    status = json_is_object(root) ? json_object_get(root, "status") : NULL;
    has_time = json_is_number(json_object_get(root, "time"));
    if (json_is_object(status))
        err = json_object_get(status, "error");
    switch (st) {
    case 408: case 429: case 500: case 502: case 503: case 504: case 507:
        res->outcome = QD_TRANSIENT;
        break;
    case 401: case 403:
        res->outcome = QD_AUTH;
        break;
    default:
        if (st >= 200 && st < 300 && has_time && json_is_string(status) &&
            strcmp(json_string_value(status), "ok") == 0 && json_object_get(root, "result")) {
            res->outcome = QD_OK;
            res->result = json_incref(json_object_get(root, "result"));
            json_decref(root);
            return 0;
        }
        if (st >= 400 && st < 500 && has_time && json_is_string(err)) {
            const char *e = json_string_value(err);
            res->outcome = st != 404              ? QD_REJECTED
                           : text_collection_missing(e) ? QD_COLLECTION_MISSING
                           : text_point_missing(e)      ? QD_POINT_MISSING
                                                        : QD_REJECTED;
        } else {
            res->outcome = QD_NOT_QDRANT;
        }
        break;
    }
    if (json_is_string(err) && has_time)
        snprintf_utf8(res->error, sizeof res->error, "%s", json_string_value(err));
    else if (c->body.len == 0)
        snprintf_utf8(res->error, sizeof res->error, "HTTP %ld with empty body", st);
    else
        body_excerpt(c->body.data, c->body.len, res->error, sizeof res->error);
    if (res->outcome == QD_NOT_QDRANT && c->location[0]) {
        char tmp[sizeof res->error];
        snprintf_utf8(tmp, sizeof tmp, "%s", res->error);
        snprintf_utf8(res->error, sizeof res->error, "Location: %s; %s", c->location, tmp);
    }
    json_decref(root);
    return -1;
}

/*
 * TLS settings.  Verification of the peer and host name is always on; the
 * CA bundle is curl's default.  Options for a custom CA file/path and client
 * certificates belong here when the configuration grows them.
 */
/* CURLOPT_READFUNCTION: the next bytes of the streamed body (c->parts). */
static size_t on_read(char *out, size_t size, size_t nitems, void *userdata)
{
    qd_xfer *c = userdata;
    size_t room = size * nitems, done = 0;

    while (done < room && c->part_i < c->nparts) {
        const qd_part *p = &c->parts[c->part_i];
        size_t n = p->len - c->part_off;
        if (n > room - done)
            n = room - done;
        memcpy(out + done, p->data + c->part_off, n);
        done += n;
        c->part_off += n;
        if (c->part_off == p->len) {
            c->part_i++;
            c->part_off = 0;
        }
    }
    return done;
}

/* CURLOPT_SEEKFUNCTION: curl rewinds the body to resend it (a kept-alive
 * connection that was closed under the request); only to the start. */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
    qd_xfer *c = userdata;

    if (offset != 0 || origin != SEEK_SET)
        return CURL_SEEKFUNC_CANTSEEK;
    c->part_i = 0;
    c->part_off = 0;
    return CURL_SEEKFUNC_OK;
}

static int client_setup_tls(qd_xfer *c)
{
    if (curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
        (c->c->ca_file && curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->c->ca_file) != CURLE_OK))
        return -1;
    return 0;
}

/* A transfer of client owner: its easy handle with the options that stay
 * the same for every request.  0, or -1 when curl refuses. */
static int xfer_init(qd_xfer *c, qd_client *owner)
{
    int64_t timeout_ms = owner->timeout_ms;
    long connect_ms = QD_MAX_CONNECT_MS;

    c->c = owner;
    buf_init(&c->url);
    buf_init(&c->body);
    c->retry_after = -1;
    if (!(c->curl = curl_easy_init()))
        return -1;

    if (timeout_ms > 0 && timeout_ms < connect_ms)
        connect_ms = (long)timeout_ms;
    if (curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 0)) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_PROXY, "") != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, owner->headers) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_PRIVATE, c) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, c) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, on_read) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_READDATA, c) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_SEEKFUNCTION, on_seek) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_SEEKDATA, c) != CURLE_OK)
        return -1;
    return client_setup_tls(c);
}

/* "scheme://user:pw@host/..." -> "scheme://host/..."; caller frees. */
static char *url_without_userinfo(const char *url)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    size_t auth_len = strcspn(host, "/?#");
    const char *at = memchr(host, '@', auth_len);
    const char *last = at;

    while (at && (at = memchr(at + 1, '@', auth_len - (size_t)(at + 1 - host))) != NULL)
        last = at;
    if (!last)
        return xstrdup(url);
    return xasprintf("%.*s%s", (int)(host - url), url, last + 1);
}

qd_client *qd_client_new(const char *url, const char *api_key, int64_t timeout_ms)
{
    qd_client *c = xcalloc(1, sizeof *c);
    size_t n = strlen(url);
    struct curl_slist *h;
    char *key_header = NULL;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(c);
        return NULL;
    }
    while (n > 0 && url[n - 1] == '/')
        n--;
    c->base_url = xstrndup(url, n);
    c->safe_url = url_without_userinfo(c->base_url);
    c->max_body = QD_MAX_BODY_DEFAULT;
    c->timeout_ms = timeout_ms;
    c->multi = curl_multi_init();
    if (!c->multi)
        goto fail;
    /* An empty "Expect:" stops curl from waiting for 100-continue on large bodies. */
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    h = c->headers ? curl_slist_append(c->headers, "Expect:") : NULL;
    if (!h)
        goto fail;
    if (api_key && *api_key) {
        key_header = xasprintf("api-key: %s", api_key);
        h = curl_slist_append(c->headers, key_header);
        wipe(key_header, strlen(key_header));
        free(key_header);
        if (!h)
            goto fail;
    }
    if (xfer_init(&c->sync, c) != 0)
        goto fail;
    return c;
fail:
    qd_client_free(c);
    return NULL;
}

static void xfer_free(qd_client *c, qd_xfer *x)
{
    if (x->in_multi)
        curl_multi_remove_handle(c->multi, x->curl);
    if (x->curl)
        curl_easy_cleanup(x->curl);
    free(x->batch_path);
    buf_free(&x->url);
    buf_free(&x->body);
}

void qd_client_free(qd_client *c)
{
    if (!c)
        return;
    xfer_free(c, &c->sync);
    for (int i = 0; i < QD_MAX_LANES; i++)
        xfer_free(c, &c->lanes[i]);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    for (struct curl_slist *h = c->headers; h; h = h->next) /* the api-key header */
        wipe(h->data, strlen(h->data));
    curl_slist_free_all(c->headers);
    free(c->base_url);
    free(c->safe_url);
    free(c->ca_file);
    free(c);
    curl_global_cleanup();
}

int qd_client_set_ca_file(qd_client *c, const char *path)
{
    if (!path || !*path)
        return 0;
    free(c->ca_file);
    c->ca_file = xstrdup(path);
    for (int i = 0; i < QD_MAX_LANES; i++)
        if (c->lanes[i].curl && curl_easy_setopt(c->lanes[i].curl, CURLOPT_CAINFO, path) != CURLE_OK)
            return -1;
    return curl_easy_setopt(c->sync.curl, CURLOPT_CAINFO, path) == CURLE_OK ? 0 : -1;
}

void qd_client_set_max_body(qd_client *c, size_t max)
{
    c->max_body = max > 0 ? max : QD_MAX_BODY_DEFAULT;
}

const char *qd_client_url(const qd_client *c)
{
    return c->safe_url;
}

long qd_client_connections(const qd_client *c)
{
    return c->connects;
}

/* The streamed body (parts) of a batch request; see qd_batch_start. */
static int request_stream(qd_xfer *c, const qd_part *parts, size_t nparts)
{
    curl_off_t total = 0;

    for (size_t i = 0; i < nparts; i++)
        total += (curl_off_t)parts[i].len;
    c->parts = parts;
    c->nparts = nparts;
    c->part_i = 0;
    c->part_off = 0;
    return curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL) == CURLE_OK &&
                   curl_easy_setopt(c->curl, CURLOPT_POST, 1L) == CURLE_OK &&
                   curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, total) == CURLE_OK &&
                   curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, NULL) == CURLE_OK
               ? 0
               : -1;
}

/* Sets the method and body for this request (the handle keeps options). */
static int request_method(qd_xfer *c, const char *method, const char *body, size_t body_len)
{
    bool has_body = body != NULL || strcmp(method, "GET") != 0;

    if (!has_body)
        return curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L) == CURLE_OK &&
                       curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, NULL) == CURLE_OK
                   ? 0
                   : -1;
    /* POSTFIELDS with an explicit size sends Content-Length (0 for no body);
     * CUSTOMREQUEST turns the POST into PUT/DELETE/... */
    if (curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0)) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "") != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") == 0 ? NULL : method) !=
            CURLE_OK)
        return -1;
    return 0;
}

/* Sets up one exchange on c->curl; 0, or -1 with res filled. */
static int request_prepare(qd_xfer *c, const char *method, const char *path_query, const char *body,
                           size_t body_len, qd_result *res)
{
    buf_reset(&c->url);
    buf_puts(&c->url, c->c->base_url);
    buf_puts(&c->url, path_query);
    buf_reset(&c->body);
    c->body_too_large = false;
    c->location[0] = '\0';
    c->errbuf[0] = '\0';
    c->retry_after = -1;
    if (curl_easy_setopt(c->curl, CURLOPT_URL, c->url.data) != CURLE_OK ||
        request_method(c, method, body, body_len) != 0) {
        snprintf_utf8(res->error, sizeof res->error, "cannot set up the request to %s", path_query);
        res->curl_code = CURLE_FAILED_INIT;
        return -1;
    }
    return 0;
}

/* Interprets the finished exchange (code) into res; see qd_request. */
static int request_finish(qd_xfer *c, CURLcode code, int64_t start, qd_result *res)
{
    long connects = 0;

    res->elapsed = (double)(now_ms() - start) / 1000.0;
    if (curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
        c->c->connects += connects;
    if (code == CURLE_WRITE_ERROR && c->body_too_large) {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &res->http_status);
        res->outcome = QD_NOT_QDRANT;
        res->too_large = true;
        snprintf_utf8(res->error, sizeof res->error, "the answer is larger than %zu bytes (the response body cap)",
                      c->c->max_body);
        buf_reset(&c->body);
        return -1;
    }
    if (code != CURLE_OK) {
        res->outcome = QD_TRANSIENT;
        res->curl_code = (int)code;
        snprintf_utf8(res->error, sizeof res->error, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
        return -1;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &res->http_status);
    res->retry_after = c->retry_after;
    return classify(c, res);
}

/* Performs one exchange and parses it; see qd_request. */
static int client_perform(qd_client *c, const char *method, const char *path_query, const char *body,
                          size_t body_len, qd_result *res)
{
    int64_t start = now_ms();

    result_init(res);
    if (request_prepare(&c->sync, method, path_query, body, body_len, res) != 0)
        return -1;
    return request_finish(&c->sync, curl_easy_perform(c->sync.curl), start, res);
}

int qd_request(qd_client *c, const char *method, const char *path_query, const char *body, size_t body_len,
               qd_result *res)
{
    return client_perform(c, method, path_query, body, body_len, res);
}

/* "/collections/<escaped name><suffix>"; caller frees.  NULL if curl
 * cannot escape (out of memory). */
static char *collection_path(qd_client *c, const char *collection, const char *suffix)
{
    char *esc = curl_easy_escape(c->sync.curl, collection, 0);
    char *path;

    if (!esc)
        return NULL;
    path = xasprintf("/collections/%s%s", esc, suffix);
    curl_free(esc);
    return path;
}

int qd_post_batch(qd_client *c, const char *collection, const char *body, size_t body_len, qd_result *res)
{
    return qd_collection_request(c, "POST", collection, "/points/batch?wait=true", body, body_len, res);
}

/* Appends one entry to info->vectors. */
static void info_add(qd_collection_info *info, const char *name, int64_t size, bool sparse)
{
    qd_vector_param *v;

    info->vectors = xrealloc(info->vectors, (size_t)(info->n_vectors + 1) * sizeof *info->vectors);
    v = &info->vectors[info->n_vectors++];
    v->name = xstrdup(name);
    v->size = size;
    v->sparse = sparse;
}

/* Reads config.params.vectors / sparse_vectors of a CollectionInfo. */
static int info_parse(const json_t *result, qd_collection_info *info)
{
    json_t *params = json_object_get(json_object_get(result, "config"), "params");
    json_t *vectors = json_object_get(params, "vectors");
    json_t *sparse = json_object_get(params, "sparse_vectors");
    json_t *size;
    json_t *v;
    const char *name;

    if (!json_is_object(params))
        return -1;
    size = json_object_get(vectors, "size");
    if (json_is_integer(size)) {
        info_add(info, "", json_integer_value(size), false);
    } else if (json_is_object(vectors)) {
        json_object_foreach(vectors, name, v) {
            size = json_object_get(v, "size");
            if (!json_is_integer(size))
                return -1;
            info_add(info, name, json_integer_value(size), false);
        }
    } else if (vectors && !json_is_null(vectors)) {
        return -1;
    }
    if (json_is_object(sparse)) {
        json_object_foreach(sparse, name, v) {
            info_add(info, name, 0, true);
        }
    }
    return 0;
}

int qd_get_collection(qd_client *c, const char *collection, qd_collection_info *info, qd_result *res)
{
    char *path = collection_path(c, collection, "");
    int rc = -1;

    memset(info, 0, sizeof *info);
    if (!path) {
        result_init(res);
        res->curl_code = CURLE_OUT_OF_MEMORY;
        snprintf_utf8(res->error, sizeof res->error, "cannot URL-encode the collection name");
        goto cleanup;
    }
    if (client_perform(c, "GET", path, NULL, 0, res) != 0) {
        /* Only Qdrant's own "Not found" envelope means a missing collection;
         * an empty 404 comes from a wrong base URL (QD_NOT_QDRANT). */
        if (res->outcome == QD_COLLECTION_MISSING)
            rc = 0;
        goto cleanup;
    }
    info->exists = true;
    if (info_parse(res->result, info) != 0) {
        qd_collection_info_free(info);
        snprintf_utf8(res->error, sizeof res->error, "unexpected collection info for '%s': no config.params.vectors",
                 collection);
        goto cleanup;
    }
    rc = 0;
cleanup:
    free(path);
    return rc;
}

void qd_collection_info_free(qd_collection_info *info)
{
    for (int i = 0; i < info->n_vectors; i++)
        free(info->vectors[i].name);
    free(info->vectors);
    memset(info, 0, sizeof *info);
}

bool qd_result_transient(const qd_result *r)
{
    return r->outcome == QD_TRANSIENT;
}

const char *qd_result_describe(const qd_result *r, char *out, size_t outlen)
{
    if (r->http_status == 0 && !r->too_large)
        snprintf_utf8(out, outlen, "%s (curl %d)", r->error[0] ? r->error : "no response", r->curl_code);
    else if (r->outcome == QD_NOT_QDRANT)
        snprintf_utf8(out, outlen, "not a Qdrant answer: HTTP %ld: %s", r->http_status, r->error);
    else
        snprintf_utf8(out, outlen, "HTTP %ld: %s", r->http_status, r->error);
    return out;
}

/* ---- JSON with every number ------------------------------------------------- */

static void big_number_rewrite(const char *tok, size_t len, json_num_class cls, buf *out)
{
    if (cls == JSON_NUM_BIG_INT) { /* beyond 64 bits: Qdrant holds it as f64, so do we */
        buf_append(out, tok, len);
        buf_puts(out, ".0");
        return;
    }
    buf_puts(out, "\"\\u0000"); /* the marker: "\u0000" + the text */
    buf_append(out, tok, len);
    buf_putc(out, '"');
}

json_t *qd_json_loadb(const char *data, size_t len, json_error_t *err)
{
    buf text;
    json_t *j;

    buf_init(&text);
    if (!json_rewrite_numbers(data, len, &text, big_number_rewrite))
        j = json_loadb(data, len, 0, err);
    else
        j = json_loadb(text.data, text.len, JSON_ALLOW_NUL, err);
    buf_free(&text);
    return j;
}

bool qd_json_big_number(const json_t *v, const char **text, size_t *len)
{
    if (!json_is_string(v) || json_string_length(v) < 2 || json_string_value(v)[0] != '\0')
        return false;
    *text = json_string_value(v) + 1;
    *len = json_string_length(v) - 1;
    return true;
}

/* ---- the asynchronous batch request ----------------------------------------- */

/* The lane's transfer, its easy handle made on first use; NULL when the
 * lane number is out of range or curl cannot make one (res filled). */
static qd_xfer *lane_xfer(qd_client *c, int lane, qd_result *res)
{
    qd_xfer *x;

    if (lane < 0 || lane >= QD_MAX_LANES) {
        res->curl_code = CURLE_FAILED_INIT;
        snprintf_utf8(res->error, sizeof res->error, "internal error: no lane %d", lane);
        return NULL;
    }
    x = &c->lanes[lane];
    if (!x->curl && xfer_init(x, c) != 0) {
        res->curl_code = CURLE_FAILED_INIT;
        snprintf_utf8(res->error, sizeof res->error, "cannot set up a connection to Qdrant");
        return NULL;
    }
    return x;
}

/* The lane's transfer when it is idle, else NULL with res filled. */
static qd_xfer *idle_lane(qd_client *c, int lane, qd_result *res)
{
    qd_xfer *x;

    result_init(res);
    if (!(x = lane_xfer(c, lane, res)))
        return NULL;
    if (x->in_multi) {
        snprintf_utf8(res->error, sizeof res->error, "a request is already in flight on lane %d", lane);
        res->curl_code = CURLE_FAILED_INIT;
        return NULL;
    }
    return x;
}

/* Adds the prepared transfer to the multi handle and sends what it can now. */
static int launch(qd_client *c, qd_xfer *x, qd_result *res)
{
    if (curl_multi_add_handle(c->multi, x->curl) != CURLM_OK) {
        res->curl_code = CURLE_FAILED_INIT;
        snprintf_utf8(res->error, sizeof res->error, "cannot start the request");
        return -1;
    }
    x->in_multi = true;
    x->start_ms = now_ms();
    curl_multi_perform(c->multi, &c->running); /* connect/send now, not on the next loop turn */
    return 0;
}

int qd_batch_start(qd_client *c, int lane, const char *collection, const qd_part *parts, size_t nparts,
                   qd_result *res)
{
    qd_xfer *x;

    if (!(x = idle_lane(c, lane, res)))
        return -1;
    free(x->batch_path);
    x->batch_path = collection_path(c, collection, "/points/batch?wait=true");
    if (!x->batch_path) {
        res->curl_code = CURLE_OUT_OF_MEMORY;
        snprintf_utf8(res->error, sizeof res->error, "cannot URL-encode the collection name");
        return -1;
    }
    if (request_prepare(x, "POST", x->batch_path, NULL, 0, res) != 0)
        return -1;
    if (request_stream(x, parts, nparts) != 0) {
        res->curl_code = CURLE_FAILED_INIT;
        snprintf_utf8(res->error, sizeof res->error, "cannot set up the request to %s", x->batch_path);
        return -1;
    }
    return launch(c, x, res);
}

int qd_async_start(qd_client *c, int lane, const char *method, const char *collection, const char *path,
                   const char *body, size_t body_len, qd_result *res)
{
    qd_xfer *x;

    if (!(x = idle_lane(c, lane, res)))
        return -1;
    free(x->batch_path);
    x->batch_path = collection ? collection_path(c, collection, path) : xstrdup(path);
    if (!x->batch_path) {
        res->curl_code = CURLE_OUT_OF_MEMORY;
        snprintf_utf8(res->error, sizeof res->error, "cannot URL-encode the collection name");
        return -1;
    }
    if (request_prepare(x, method, x->batch_path, body, body_len, res) != 0)
        return -1;
    return launch(c, x, res);
}

bool qd_batch_in_flight(const qd_client *c, int lane)
{
    for (int i = 0; i < QD_MAX_LANES; i++)
        if ((lane < 0 || lane == i) && c->lanes[i].in_multi)
            return true;
    return false;
}

int qd_wait(qd_client *c, struct pollfd *fds, int nfds, int timeout_ms)
{
    struct curl_waitfd extra[4];
    int numfds = 0;

    if (nfds > (int)(sizeof extra / sizeof extra[0]))
        return -1;
    for (int i = 0; i < nfds; i++) {
        extra[i].fd = fds[i].fd;
        extra[i].events = fds[i].events;
        extra[i].revents = 0;
    }
    if (qd_batch_in_flight(c, -1)) {
        long curl_ms = -1;
        /* A transfer that already finished (in qd_batch_start's perform: a
         * refused connection, say) has no socket left to wait on. */
        if (c->running < (int)qd_batch_count(c))
            timeout_ms = 0;
        else if (curl_multi_timeout(c->multi, &curl_ms) == CURLM_OK && curl_ms >= 0 && curl_ms < timeout_ms)
            timeout_ms = (int)curl_ms;
    }
    if (curl_multi_wait(c->multi, extra, (unsigned)nfds, timeout_ms, &numfds) != CURLM_OK)
        return -1;
    for (int i = 0; i < nfds; i++)
        fds[i].revents = extra[i].revents;
    return 0;
}

size_t qd_batch_count(const qd_client *c)
{
    size_t n = 0;

    for (int i = 0; i < QD_MAX_LANES; i++)
        n += c->lanes[i].in_multi;
    return n;
}

int qd_batch_check(qd_client *c, int *lane, qd_result *res)
{
    int left = 0;
    CURLMsg *msg;

    if (!qd_batch_in_flight(c, -1))
        return 0;
    curl_multi_perform(c->multi, &c->running);
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        qd_xfer *x = NULL;
        CURLcode code;

        if (msg->msg != CURLMSG_DONE || curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x) !=
                                                CURLE_OK || !x || !x->in_multi)
            continue;
        code = msg->data.result;
        curl_multi_remove_handle(c->multi, x->curl);
        x->in_multi = false;
        *lane = (int)(x - c->lanes);
        result_init(res);
        return request_finish(x, code, x->start_ms, res) == 0 ? 1 : -1;
    }
    return 0;
}

void qd_batch_abort(qd_client *c, int lane)
{
    for (int i = 0; i < QD_MAX_LANES; i++) {
        qd_xfer *x = &c->lanes[i];
        if ((lane < 0 || lane == i) && x->in_multi) {
            curl_multi_remove_handle(c->multi, x->curl);
            x->in_multi = false;
        }
    }
}

int qd_collection_request(qd_client *c, const char *method, const char *collection, const char *suffix,
                          const char *body, size_t body_len, qd_result *res)
{
    char *path = collection_path(c, collection, suffix);
    int rc;

    if (!path) {
        result_init(res);
        res->curl_code = CURLE_OUT_OF_MEMORY;
        snprintf_utf8(res->error, sizeof res->error, "cannot URL-encode the collection name");
        return -1;
    }
    rc = client_perform(c, method, path, body, body_len, res);
    free(path);
    return rc;
}

int qd_create_collection(qd_client *c, const char *collection, const char *body, size_t body_len, qd_result *res)
{
    return qd_collection_request(c, "PUT", collection, "", body, body_len, res);
}
