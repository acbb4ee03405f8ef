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
 * Every answer is classified once, here, into a qd_outcome (see below);
 * callers switch on it and never match statuses or texts.
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

/*
 * What an exchange means (docs/failure-modes.md, "Answers that are not
 * Qdrant's").  Only an answer that carries Qdrant's JSON envelope
 * ({"status":{"error":...},"time":...}) can be about the operation:
 *   QD_OK                  2xx with {"result":...,"status":"ok","time":...}
 *   QD_TRANSIENT           no answer (connection error, timeout), or HTTP
 *                          408, 429, 500, 502, 503, 504, 507 whatever the body
 *   QD_AUTH                401 or 403 (the auth layer answers plain text)
 *   QD_COLLECTION_MISSING  enveloped 404 "Not found: Collection `c` doesn't exist!"
 *   QD_POINT_MISSING       enveloped 404 "Not found: No point with id ..."
 *   QD_REJECTED            any other enveloped 4xx: Qdrant refused this request
 *   QD_NOT_QDRANT          anything else: 1xx/3xx, a 2xx or 4xx whose body is
 *                          not the envelope (an HTML page, an ingress 404,
 *                          an empty body), other 5xx (501, 505, ...), an
 *                          answer larger than the body cap
 */
typedef enum qd_outcome {
    QD_OK,
    QD_TRANSIENT,
    QD_AUTH,
    QD_COLLECTION_MISSING,
    QD_POINT_MISSING,
    QD_REJECTED,
    QD_NOT_QDRANT,
} qd_outcome;

/* "ok", "transient", "auth", "collection missing", ... */
const char *qd_outcome_name(qd_outcome o);

/* Default cap of a response body (qd_client_set_max_body): above any
 * answer the code asks for (a scroll page of 1000 points, docs/reconcile.md). */
#define QD_MAX_BODY_DEFAULT ((size_t)64 << 20)

typedef struct qd_result {
    qd_outcome outcome;
    long http_status;   /* 0 when no HTTP answer arrived (transport error) */
    int curl_code;      /* CURLcode; 0 on a completed exchange */
    char error[512];    /* Qdrant's status.error, the plain-text body, or curl's error
                           (cut at a UTF-8 character boundary) */
    bool too_large;     /* the answer exceeded the body cap (QD_NOT_QDRANT) */
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

/* Caps the response body at max bytes (0: QD_MAX_BODY_DEFAULT); a larger
 * answer is abandoned as it arrives and is QD_NOT_QDRANT with too_large. */
void qd_client_set_max_body(qd_client *c, size_t max);

/* The base URL without credentials (user:password@ removed), for messages.
 * Owned by the client. */
const char *qd_client_url(const qd_client *c);

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

/* One piece of a request body sent from the caller's memory (no copy). */
typedef struct qd_part {
    const char *data;
    size_t len;
} qd_part;

/* Batches that may be in flight at once, one on each lane (connection). */
#define QD_MAX_LANES 8

/*
 * The same request, asynchronous, driven by the caller's loop: up to
 * QD_MAX_LANES at once, each on a lane 0..QD_MAX_LANES-1 with its own curl
 * handle and kept-alive connection.  The synchronous calls above have a
 * handle of their own and work meanwhile.
 *   qd_batch_start   0 when started on the (idle) lane, -1 with res filled.
 *                    The body is the concatenation of parts[0..nparts),
 *                    streamed to curl from the caller's memory (a batch is
 *                    never copied into one buffer): parts and the memory
 *                    they point to must stay valid until the request
 *                    completes or is aborted.
 *   qd_batch_in_flight  a request is in flight on the lane (-1: any lane).
 *   qd_batch_count   requests in flight.
 *   qd_wait          one poll over curl's sockets, its timer and the
 *                    caller's fds (revents filled), at most timeout_ms.
 *                    -1 when the wait failed.
 *   qd_batch_check   drives the transfers: 0 none completed (or none in
 *                    flight); 1 one completed with success, -1 one completed
 *                    with a failure, *lane telling which, res filled in both
 *                    cases (qd_result_clear).  Call again until it returns
 *                    0: one completion is returned a call.
 *   qd_batch_abort   drops the request in flight on the lane (-1: every
 *                    lane); its connection is closed.
 */
int qd_batch_start(qd_client *c, int lane, const char *collection, const qd_part *parts, size_t nparts,
                   qd_result *res);
bool qd_batch_in_flight(const qd_client *c, int lane);
/*
 * Any request, asynchronous on an idle lane like qd_batch_start, completed
 * by qd_batch_check: method on path (the path and query) when collection is
 * NULL, else on /collections/{collection}{path} (collection URL-encoded).
 * body (may be NULL) must stay valid until the request completes or is
 * aborted.  0 when started, -1 with res filled.
 */
int qd_async_start(qd_client *c, int lane, const char *method, const char *collection, const char *path,
                   const char *body, size_t body_len, qd_result *res);
size_t qd_batch_count(const qd_client *c);
int qd_wait(qd_client *c, struct pollfd *fds, int nfds, int timeout_ms);
int qd_batch_check(qd_client *c, int *lane, qd_result *res);
void qd_batch_abort(qd_client *c, int lane);

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
 * [qdrant]): outcome QD_TRANSIENT. */
bool qd_result_transient(const qd_result *r);

/*
 * Parses a JSON text from Qdrant (or built for it) so that every number
 * survives (docs/reconcile.md): jansson holds int64 and double only, so
 * before parsing an integer in (INT64_MAX, UINT64_MAX] and any number
 * beyond double range becomes a string "\u0000" + its text (a marker no
 * PostgreSQL text can produce, NUL being impossible there); an integer
 * beyond 64 bits within double range becomes a real (as Qdrant stores it).
 * Returns a new reference, or NULL with err filled (err may be NULL).
 */
json_t *qd_json_loadb(const char *data, size_t len, json_error_t *err);

/* Whether v is such a marker; *text and *len then give the number's text. */
bool qd_json_big_number(const json_t *v, const char **text, size_t *len);

/* A short description of a failed result for logs and errors:
 * "HTTP 400: Wrong input: ..." or "connection refused (curl 7)"; an answer
 * that is not Qdrant's: "not a Qdrant answer: HTTP 302 (Location: ...): <body excerpt>".
 * The text is cut at a UTF-8 character boundary. */
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
