/*
 * qdrant_client.h — Qdrant's REST API over libcurl (QDRANT.md).
 *
 * One client holds one curl easy handle, so one kept-alive connection is
 * reused across requests.  Every request sends Content-Type:
 * application/json and, when configured, the api-key header.  Writes use
 * wait=true.  Responses are parsed as Qdrant's envelope
 *     {"result": ..., "status": "ok", "time": ...}        success
 *     {"status": {"error": "..."}, "time": ...}            error
 * and the error text is surfaced in qd_result.error (plain-text bodies,
 * such as 401 from the auth layer, are surfaced as they are).
 * The client never logs; the API key never appears in any message.
 */
#ifndef P2Q_QDRANT_CLIENT_H
#define P2Q_QDRANT_CLIENT_H

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qd_client qd_client;

typedef struct qd_result {
    long http_status;   /* 0 when no HTTP answer arrived (transport error) */
    int curl_code;      /* CURLcode; 0 on a completed exchange */
    char error[512];    /* Qdrant's status.error, the plain-text body, or curl's error */
    double retry_after; /* seconds from a Retry-After header, else -1 */
    json_t *result;     /* the parsed "result" on success, owned: qd_result_clear */
    double elapsed;     /* seconds */
} qd_result;

void qd_result_clear(qd_result *r);

/* url: base URL such as http://127.0.0.1:6333 (trailing '/' allowed);
 * api_key: NULL or "" for none.  Copies its arguments.  NULL on failure
 * to initialise curl. */
qd_client *qd_client_new(const char *url, const char *api_key, int64_t timeout_ms);
void qd_client_free(qd_client *c);

/* Verifies https peers against the CA bundle in path instead of the
 * system's (NULL or "" keeps the default).  0, or -1 when curl refuses. */
int qd_client_set_ca_file(qd_client *c, const char *path);

/* Number of connections the client has opened so far (1 while the
 * kept-alive connection is reused); for metrics and tests. */
long qd_client_connections(const qd_client *c);

/*
 * One request.  path_query starts with '/' (e.g.
 * "/collections/x/points/batch?wait=true"); body may be NULL.
 * Returns 0 when Qdrant answered 2xx with status "ok", else -1 with
 * res->http_status / curl_code / error describing why.  *res is
 * overwritten (not freed): qd_result_clear a previous result first.
 */
int qd_request(qd_client *c, const char *method, const char *path_query, const char *body, size_t body_len,
               qd_result *res);

/* POST /collections/{collection}/points/batch?wait=true with the body
 * {"operations":[...]} already built by the caller.  The collection name is
 * URL-encoded here. */
int qd_post_batch(qd_client *c, const char *collection, const char *body, size_t body_len, qd_result *res);

/*
 * The same request, asynchronous, driven by the caller's loop (one at a
 * time; the synchronous calls above fail while it is in flight):
 *   qd_batch_start   0 when started, -1 with res filled;  body must stay
 *                    valid until the request completes or is aborted.
 *   qd_wait          one poll over curl's sockets, its timer and the
 *                    caller's fds (revents filled), at most timeout_ms.
 *                    -1 when the wait failed.
 *   qd_batch_check   drives the transfer: 0 still running (or none),
 *                    1 completed with success, -1 completed with a failure;
 *                    res filled in both completed cases (qd_result_clear).
 *   qd_batch_abort   drops the request in flight (connection closed).
 */
int qd_batch_start(qd_client *c, const char *collection, const char *body, size_t body_len, qd_result *res);
bool qd_batch_in_flight(const qd_client *c);
int qd_wait(qd_client *c, struct pollfd *fds, int nfds, int timeout_ms);
int qd_batch_check(qd_client *c, qd_result *res);
void qd_batch_abort(qd_client *c);

/* Vector parameters of a collection (GET /collections/{c}). */
typedef struct qd_vector_param {
    char *name; /* "" for the unnamed vector */
    int64_t size;
    bool sparse;
} qd_vector_param;

typedef struct qd_collection_info {
    bool exists;
    qd_vector_param *vectors;
    int n_vectors;
} qd_collection_info;

/* Fills info.  A 404 "doesn't exist" is success with exists = false.
 * Returns -1 (res filled) for other failures. */
int qd_get_collection(qd_client *c, const char *collection, qd_collection_info *info, qd_result *res);
void qd_collection_info_free(qd_collection_info *info);

/* PUT /collections/{collection} with a CreateCollection body built by the
 * caller.  0 when created; -1 with res filled (409 when it exists). */
int qd_create_collection(qd_client *c, const char *collection, const char *body, size_t body_len, qd_result *res);

/* Whether a failed result is worth the same request again (SPEC §2
 * [qdrant]): no answer (connection error, timeout) or HTTP 408, 429, 500,
 * 502, 503, 504, 507.  Every other status is the server's answer to this
 * request and would be the same next time. */
bool qd_result_transient(const qd_result *r);

/* A short description of a failed result for logs and errors:
 * "HTTP 400: Wrong input: ..." or "connection refused (curl 7)". */
const char *qd_result_describe(const qd_result *r, char *out, size_t outlen);

/*
 * One request on a collection: method on "/collections/{collection}" +
 * suffix (e.g. "" for GET, "/points/scroll" and "/points" (retrieve) for
 * POST reads); the collection name is URL-encoded here.  Returns as
 * qd_request (res->result owned by the caller: qd_result_clear).
 */
int qd_collection_request(qd_client *c, const char *method, const char *collection, const char *suffix,
                          const char *body, size_t body_len, qd_result *res);

#endif
