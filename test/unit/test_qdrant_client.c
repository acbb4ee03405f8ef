/*
 * test_qdrant_client.c — the REST client against the project's Qdrant test
 * server (QDRANT_TEST_SERVER), started per group on a free port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "qdrant_client.h"
#include "util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#include "qdrant_fixture.h"

static qd_client *client_for(const server *s, const char *key, int64_t timeout_ms)
{
    qd_client *c = qd_client_new(s->url, key, timeout_ms);
    assert_non_null(c);
    return c;
}

static const char BATCH4[] = "{\"operations\":["
                             "{\"upsert\":{\"points\":[{\"id\":1,\"vector\":[1,2,3,4],\"payload\":{\"a\":1}}]}},"
                             "{\"upsert\":{\"points\":[{\"id\":2,\"vector\":[5,6,7,8],\"payload\":null}]}},"
                             "{\"delete\":{\"points\":[2]}}]}";
static const char BATCH3D[] = "{\"operations\":[{\"upsert\":{\"points\":[{\"id\":1,\"vector\":[1,2,3]}]}}]}";

static void test_create_collection(void **state)
{
    server *s = *state;
    qd_client *c = client_for(s, NULL, 5000);
    const char *body = "{\"vectors\":{\"size\":4,\"distance\":\"Cosine\"}}";
    qd_result r;

    create_collection(c, "created", body);
    /* Creating it again is a deterministic 409 with Qdrant's message. */
    assert_int_equal(qd_request(c, "PUT", "/collections/created", body, strlen(body), &r), -1);
    assert_int_equal(r.http_status, 409);
    assert_int_equal(r.curl_code, 0);
    assert_non_null(strstr(r.error, "already exists"));
    assert_null(r.result);
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_batch_success(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_result r;

    create_collection(c, "batch_ok", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    assert_int_equal(qd_post_batch(c, "batch_ok", BATCH4, strlen(BATCH4), &r), 0);
    assert_int_equal(r.http_status, 200);
    assert_true(json_is_array(r.result));
    assert_int_equal(json_array_size(r.result), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.result, 0), "status")), "completed");
    assert_true(r.retry_after < 0);
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_wrong_dimension_error_text(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_result r;
    char desc[600];

    create_collection(c, "dim4", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    assert_int_equal(qd_post_batch(c, "dim4", BATCH3D, strlen(BATCH3D), &r), -1);
    assert_int_equal(r.http_status, 400);
    assert_non_null(strstr(r.error, "Vector dimension error"));
    qd_result_describe(&r, desc, sizeof desc);
    assert_true(strncmp(desc, "HTTP 400: Wrong input: ", 23) == 0);
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_missing_collection_error_text(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_result r;

    assert_int_equal(qd_post_batch(c, "nosuch", BATCH4, strlen(BATCH4), &r), -1);
    assert_int_equal(r.http_status, 404);
    assert_string_equal(r.error, "Not found: Collection `nosuch` doesn't exist!");
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_unknown_route_empty_404(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_result r;

    assert_int_equal(qd_request(c, "GET", "/no/such/route", NULL, 0, &r), -1);
    assert_int_equal(r.http_status, 404);
    assert_string_equal(r.error, "HTTP 404 with empty body");
    qd_result_clear(&r);
    qd_client_free(c);
}

/* Looks up a vector by name in info; fails the test when absent. */
static const qd_vector_param *find_vector(const qd_collection_info *info, const char *name)
{
    for (int i = 0; i < info->n_vectors; i++)
        if (strcmp(info->vectors[i].name, name) == 0)
            return &info->vectors[i];
    fail_msg("vector '%s' not reported", name);
    return NULL;
}

static void test_get_collection_unnamed(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_collection_info info;
    qd_result r;

    create_collection(c, "plain", "{\"vectors\":{\"size\":384,\"distance\":\"Cosine\"}}");
    assert_int_equal(qd_get_collection(c, "plain", &info, &r), 0);
    assert_true(info.exists);
    assert_int_equal(info.n_vectors, 1);
    assert_string_equal(info.vectors[0].name, "");
    assert_int_equal(info.vectors[0].size, 384);
    assert_false(info.vectors[0].sparse);
    qd_collection_info_free(&info);
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_get_collection_named_and_sparse(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_collection_info info;
    qd_result r;
    const qd_vector_param *v;

    create_collection(c, "multi",
                      "{\"vectors\":{\"text\":{\"size\":8,\"distance\":\"Cosine\"},"
                      "\"image\":{\"size\":16,\"distance\":\"Euclid\"}},"
                      "\"sparse_vectors\":{\"kw\":{}}}");
    assert_int_equal(qd_get_collection(c, "multi", &info, &r), 0);
    assert_true(info.exists);
    assert_int_equal(info.n_vectors, 3);
    v = find_vector(&info, "text");
    assert_int_equal(v->size, 8);
    assert_false(v->sparse);
    v = find_vector(&info, "image");
    assert_int_equal(v->size, 16);
    assert_false(v->sparse);
    v = find_vector(&info, "kw");
    assert_true(v->sparse);
    qd_collection_info_free(&info);
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_get_collection_missing(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_collection_info info;
    qd_result r;

    assert_int_equal(qd_get_collection(c, "absent", &info, &r), 0);
    assert_false(info.exists);
    assert_int_equal(info.n_vectors, 0);
    qd_collection_info_free(&info);
    qd_result_clear(&r);
    qd_client_free(c);
}

/* A name that needs URL-encoding reaches the server as the same name. */
static void test_collection_name_is_url_encoded(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_collection_info info;
    qd_result r;

    create_collection(c, "with%20space%3Fq", "{\"vectors\":{\"size\":2,\"distance\":\"Dot\"}}");
    assert_int_equal(qd_get_collection(c, "with space?q", &info, &r), 0);
    assert_true(info.exists);
    qd_collection_info_free(&info);
    qd_result_clear(&r);
    assert_int_equal(qd_post_batch(c, "with space?q", "{\"operations\":[]}", 17, &r), 0);
    qd_result_clear(&r);
    qd_client_free(c);
}

/* A base URL that reaches no Qdrant route is not "collection missing". */
static void test_get_collection_wrong_base_url(void **state)
{
    server *s = *state;
    char url[128];
    qd_client *c;
    qd_collection_info info;
    qd_result r;

    snprintf(url, sizeof url, "%s/not-qdrant/", s->url);
    c = qd_client_new(url, NULL, 5000);
    assert_non_null(c);
    assert_int_equal(qd_get_collection(c, "x", &info, &r), -1);
    assert_int_equal(r.http_status, 404);
    assert_false(info.exists);
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_retry_after_from_429(void **state)
{
    server *s = *state;
    qd_client *c = client_for(s, NULL, 5000);
    qd_result r;

    create_collection(c, "limited", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    control(s, "/__test/fault",
            "{\"fail_next\":1,\"status\":429,\"error\":\"Rate limiting exceeded: slow down\",\"retry_after\":2}");
    assert_int_equal(qd_post_batch(c, "limited", BATCH4, strlen(BATCH4), &r), -1);
    assert_int_equal(r.http_status, 429);
    assert_true(r.retry_after == 2.0);
    assert_string_equal(r.error, "Rate limiting exceeded: slow down");
    qd_result_clear(&r);
    /* The fault is spent; the next answer carries no Retry-After. */
    assert_int_equal(qd_post_batch(c, "limited", BATCH4, strlen(BATCH4), &r), 0);
    assert_true(r.retry_after < 0);
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_dropped_connection_is_transport_error(void **state)
{
    server *s = *state;
    qd_client *setup = client_for(s, NULL, 5000);
    qd_client *c = client_for(s, NULL, 5000);
    qd_result r;
    char desc[600];

    create_collection(setup, "dropped", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    qd_client_free(setup);
    /* The first request of a client runs on a fresh connection. */
    control(s, "/__test/fault", "{\"drop_next\":1}");
    assert_int_equal(qd_post_batch(c, "dropped", BATCH4, strlen(BATCH4), &r), -1);
    assert_int_equal(r.http_status, 0);
    assert_int_not_equal(r.curl_code, 0);
    assert_true(r.error[0] != '\0');
    assert_null(r.result);
    qd_result_describe(&r, desc, sizeof desc);
    assert_non_null(strstr(desc, "(curl "));
    qd_result_clear(&r);
    /* The same client recovers on a new connection. */
    if (qd_post_batch(c, "dropped", BATCH4, strlen(BATCH4), &r) != 0)
        fail_msg("after a drop: %s", qd_result_describe(&r, desc, sizeof desc));
    qd_result_clear(&r);
    qd_client_free(c);
}

/* A kept-alive connection closed before any answer (Qdrant's 5 s idle
 * timeout racing a request) is retried once on a new connection by curl;
 * a second drop in a row is reported. */
static void test_dropped_kept_alive_connection_retried_once(void **state)
{
    server *s = *state;
    qd_client *c = client_for(s, NULL, 5000);
    qd_result r;

    create_collection(c, "redial", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    control(s, "/__test/fault", "{\"drop_next\":1}");
    assert_int_equal(qd_post_batch(c, "redial", BATCH4, strlen(BATCH4), &r), 0);
    qd_result_clear(&r);
    assert_int_equal(qd_client_connections(c), 2);
    control(s, "/__test/fault", "{\"drop_next\":2}");
    assert_int_equal(qd_post_batch(c, "redial", BATCH4, strlen(BATCH4), &r), -1);
    assert_int_equal(r.http_status, 0);
    assert_int_not_equal(r.curl_code, 0);
    qd_result_clear(&r);
    qd_client_free(c);
}

/* A port nothing listens on: bind one, note it, close it. */
static int closed_port(void)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    assert_true(fd >= 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void test_connection_refused(void **state)
{
    char url[64];
    qd_client *c;
    qd_result r;
    char desc[600];

    snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
    c = qd_client_new(url, NULL, 5000);
    assert_non_null(c);
    assert_int_equal(qd_request(c, "GET", "/collections", NULL, 0, &r), -1);
    assert_int_equal(r.http_status, 0);
    assert_int_equal(r.curl_code, CURLE_COULDNT_CONNECT);
    qd_result_describe(&r, desc, sizeof desc);
    assert_non_null(strstr(desc, "(curl 7)"));
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_keep_alive_reuses_connection(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_collection_info info;
    qd_result r;

    create_collection(c, "kept", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qd_post_batch(c, "kept", BATCH4, strlen(BATCH4), &r), 0);
        qd_result_clear(&r);
    }
    assert_int_equal(qd_get_collection(c, "kept", &info, &r), 0);
    qd_collection_info_free(&info);
    qd_result_clear(&r);
    /* Five requests over one connection. */
    assert_int_equal(qd_client_connections(c), 1);
    qd_client_free(c);
}

static void test_timeout(void **state)
{
    server *s = *state;
    qd_client *c = client_for(s, NULL, 300);
    qd_result r;

    control(s, "/__test/fault", "{\"delay_next\":1,\"delay_ms\":2000}");
    assert_int_equal(qd_request(c, "GET", "/collections/whatever", NULL, 0, &r), -1);
    assert_int_equal(r.http_status, 0);
    assert_int_equal(r.curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_true(r.elapsed < 1.5);
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_api_key_accepted(void **state)
{
    qd_client *c = client_for(*state, API_KEY, 5000);
    qd_result r;

    create_collection(c, "secured", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    assert_int_equal(qd_post_batch(c, "secured", BATCH4, strlen(BATCH4), &r), 0);
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_api_key_missing_is_401_plain_text(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_result r;

    assert_int_equal(qd_post_batch(c, "secured", BATCH4, strlen(BATCH4), &r), -1);
    assert_int_equal(r.http_status, 401);
    assert_string_equal(r.error, "Must provide an API key or an Authorization bearer token");
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_api_key_wrong_never_echoed(void **state)
{
    qd_client *c = client_for(*state, "wrong-" API_KEY, 5000);
    qd_result r;
    char desc[600];

    assert_int_equal(qd_post_batch(c, "secured", BATCH4, strlen(BATCH4), &r), -1);
    assert_int_equal(r.http_status, 401);
    qd_result_describe(&r, desc, sizeof desc);
    assert_null(strstr(desc, API_KEY));
    qd_result_clear(&r);
    qd_client_free(c);
}

/* Posts a batch to an existing collection while the server answers the
 * next request raw (fault raw_next) with fault_json's settings. */
static void raw_answer(void **state, const char *fault_json, qd_result *r)
{
    server *s = *state;
    qd_client *c = client_for(s, NULL, 5000);

    create_collection(c, "raw", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    control(s, "/__test/fault", fault_json);
    assert_int_equal(qd_post_batch(c, "raw", BATCH4, strlen(BATCH4), r), -1);
    qd_client_free(c);
}

/* Answers that are not Qdrant's are never a rejection of the operations. */
static void test_hostile_answers_not_qdrant(void **state)
{
    static const struct {
        const char *fault;
        long status;
        qd_outcome outcome;
        const char *text;
    } cases[] = {
        {"{\"raw_next\":1,\"raw_status\":302,\"raw_location\":\"http://login.example/sso\"}", 302, QD_NOT_QDRANT,
         "Location: http://login.example/sso"},
        {"{\"raw_next\":1,\"raw_status\":200,\"raw_body\":\"<html><body>Welcome</body></html>\"}", 200,
         QD_NOT_QDRANT, "<html><body>Welcome"},
        {"{\"raw_next\":1,\"raw_status\":200,\"raw_type\":\"application/json\",\"raw_body\":\"{\\\"ok\\\":true}\"}",
         200, QD_NOT_QDRANT, "{\"ok\":true}"},
        {"{\"raw_next\":1,\"raw_status\":404,\"raw_body\":\"<html>404 Not Found nginx</html>\"}", 404,
         QD_NOT_QDRANT, "404 Not Found nginx"},
        {"{\"raw_next\":1,\"raw_status\":404,\"raw_type\":\"application/json\","
         "\"raw_body\":\"{\\\"status\\\":{\\\"error\\\":\\\"Not found: No point with id 1 found\\\"}}\"}",
         404, QD_NOT_QDRANT, "No point"}, /* no "time": not Qdrant's envelope */
        {"{\"raw_next\":1,\"raw_status\":404,\"raw_type\":\"\"}", 404, QD_NOT_QDRANT, "HTTP 404 with empty body"},
        {"{\"raw_next\":1,\"raw_status\":501,\"raw_type\":\"application/json\","
         "\"raw_body\":\"{\\\"status\\\":{\\\"error\\\":\\\"x\\\"},\\\"time\\\":0.1}\"}", 501, QD_NOT_QDRANT, "x"},
        {"{\"raw_next\":1,\"raw_status\":505,\"raw_body\":\"HTTP version\"}", 505, QD_NOT_QDRANT, "HTTP version"},
        {"{\"raw_next\":1,\"raw_status\":413,\"raw_body\":\"<html>413 Request Entity Too Large</html>\"}", 413,
         QD_NOT_QDRANT, "413"},
        {"{\"raw_next\":1,\"raw_status\":503,\"raw_body\":\"<html>bad gateway</html>\"}", 503, QD_TRANSIENT,
         "bad gateway"},
        {"{\"raw_next\":1,\"raw_status\":502,\"raw_type\":\"\"}", 502, QD_TRANSIENT, "empty body"},
        {"{\"raw_next\":1,\"raw_status\":403,\"raw_type\":\"text/plain\",\"raw_body\":\"denied\"}", 403, QD_AUTH,
         "denied"},
    };
    char desc[700];

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        qd_result r;
        raw_answer(state, cases[i].fault, &r);
        assert_int_equal(r.http_status, cases[i].status);
        if (r.outcome != cases[i].outcome)
            fail_msg("case %zu: outcome %s, expected %s (%s)", i, qd_outcome_name(r.outcome),
                     qd_outcome_name(cases[i].outcome), r.error);
        if (!strstr(r.error, cases[i].text))
            fail_msg("case %zu: error '%s' lacks '%s'", i, r.error, cases[i].text);
        assert_null(r.result);
        qd_result_describe(&r, desc, sizeof desc);
        if (cases[i].outcome == QD_NOT_QDRANT)
            assert_non_null(strstr(desc, "not a Qdrant answer: HTTP"));
        qd_result_clear(&r);
        reset_server(state);
    }
}

/* Qdrant's own answers keep their meaning. */
static void test_qdrant_outcomes(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    qd_result r;
    static const char SETP[] = "{\"operations\":[{\"set_payload\":{\"payload\":{\"a\":1},\"points\":[77]}}]}";

    assert_int_equal(qd_post_batch(c, "nosuch", BATCH4, strlen(BATCH4), &r), -1);
    assert_int_equal(r.outcome, QD_COLLECTION_MISSING);
    create_collection(c, "outc", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    assert_int_equal(qd_post_batch(c, "outc", BATCH3D, strlen(BATCH3D), &r), -1);
    assert_int_equal(r.outcome, QD_REJECTED);
    assert_int_equal(qd_post_batch(c, "outc", SETP, strlen(SETP), &r), -1);
    assert_int_equal(r.outcome, QD_POINT_MISSING);
    assert_int_equal(qd_post_batch(c, "outc", BATCH4, strlen(BATCH4), &r), 0);
    assert_int_equal(r.outcome, QD_OK);
    qd_result_clear(&r);
    control(*state, "/__test/fault", "{\"fail_next\":1,\"status\":429}");
    assert_int_equal(qd_post_batch(c, "outc", BATCH4, strlen(BATCH4), &r), -1);
    assert_int_equal(r.outcome, QD_TRANSIENT);
    assert_true(qd_result_transient(&r));
    qd_client_free(c);
}

/* A long error text is cut at a character boundary, not inside one. */
static void test_long_error_cut_at_utf8_boundary(void **state)
{
    server *s = *state;
    qd_client *c = client_for(s, NULL, 5000);
    char fault[1024];
    size_t n = 0, len;
    qd_result r;
    char desc[300];

    n += (size_t)snprintf(fault + n, sizeof fault - n, "{\"fail_next\":1,\"status\":400,\"error\":\"");
    for (int i = 0; i < 300; i++) /* 600 bytes of "é" */
        n += (size_t)snprintf(fault + n, sizeof fault - n, "\xc3\xa9");
    snprintf(fault + n, sizeof fault - n, "\"}");
    create_collection(c, "cut", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    control(s, "/__test/fault", fault);
    assert_int_equal(qd_post_batch(c, "cut", BATCH4, strlen(BATCH4), &r), -1);
    len = strlen(r.error);
    assert_true(len >= sizeof r.error - 2);
    assert_int_equal(len % 2, 0);
    assert_int_equal((unsigned char)r.error[len - 1], 0xa9);
    qd_result_describe(&r, desc, sizeof desc); /* "HTTP 400: " is 10 bytes: an odd cut */
    len = strlen(desc);
    assert_int_equal((unsigned char)desc[len - 1], 0xa9);
    qd_result_clear(&r);
    qd_client_free(c);
}

/* An answer above the body cap is abandoned as it streams in. */
static void test_oversized_answer(void **state)
{
    server *s = *state;
    qd_client *c = client_for(s, NULL, 20000);
    qd_result r;

    qd_client_set_max_body(c, (size_t)1 << 20);
    control(s, "/__test/fault",
            "{\"raw_next\":1,\"raw_status\":200,\"raw_type\":\"application/json\",\"raw_body\":\"[1,\","
            "\"raw_bytes\":67108864}");
    assert_int_equal(qd_request(c, "POST", "/collections/x/points/scroll", "{}", 2, &r), -1);
    assert_int_equal(r.outcome, QD_NOT_QDRANT);
    assert_true(r.too_large);
    assert_non_null(strstr(r.error, "larger than 1048576 bytes"));
    /* The client still works afterwards. */
    assert_int_equal(qd_request(c, "GET", "/collections", NULL, 0, &r), 0);
    qd_result_clear(&r);
    qd_client_free(c);
}

/* http_proxy / https_proxy / all_proxy in the environment are ignored. */
static void test_proxy_environment_ignored(void **state)
{
    qd_client *c;
    qd_result r;

    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTPS_PROXY", "http://127.0.0.1:9", 1);
    setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
    c = client_for(*state, NULL, 5000);
    assert_int_equal(qd_request(c, "GET", "/collections", NULL, 0, &r), 0);
    qd_result_clear(&r);
    qd_client_free(c);
    unsetenv("http_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
}

/* Integers between 2^63 and 2^64 survive, in ids and payloads. */
static void test_u64_numbers(void **state)
{
    qd_client *c = client_for(*state, NULL, 5000);
    static const char UP[] = "{\"operations\":[{\"upsert\":{\"points\":[{\"id\":18446744073709551615,"
                             "\"vector\":[1,2,3,4],\"payload\":{\"n\":18446744073709551615,\"m\":9223372036854775808,"
                             "\"big\":100000000000000000000000}}]}}]}";
    static const char SCROLL[] = "{\"limit\":10,\"with_payload\":true}";
    const json_t *p, *payload;
    const char *t;
    size_t n;
    qd_result r;

    create_collection(c, "u64", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}}");
    assert_int_equal(qd_post_batch(c, "u64", UP, strlen(UP), &r), 0);
    qd_result_clear(&r);
    assert_int_equal(qd_collection_request(c, "POST", "u64", "/points/scroll", SCROLL, strlen(SCROLL), &r), 0);
    p = json_array_get(json_object_get(r.result, "points"), 0);
    assert_true(qd_json_big_number(json_object_get(p, "id"), &t, &n));
    assert_int_equal(n, 20);
    assert_memory_equal(t, "18446744073709551615", 20);
    payload = json_object_get(p, "payload");
    assert_true(qd_json_big_number(json_object_get(payload, "n"), &t, &n));
    assert_memory_equal(t, "18446744073709551615", 20);
    assert_true(qd_json_big_number(json_object_get(payload, "m"), &t, &n));
    assert_memory_equal(t, "9223372036854775808", 19);
    assert_true(json_is_real(json_object_get(payload, "big")));
    assert_true(json_real_value(json_object_get(payload, "big")) == 1e23);
    qd_result_clear(&r);
    qd_client_free(c);
}

static void test_json_loadb_markers(void **state)
{
    json_t *j;
    const char *t;
    size_t n;
    static const char T[] = "{\"a\":\"18446744073709551615\",\"b\":-9223372036854775808,\"c\":1e400,"
                            "\"d\":\"x\\\"1e400\"}";

    (void)state;
    j = qd_json_loadb(T, strlen(T), NULL);
    assert_non_null(j);
    assert_false(qd_json_big_number(json_object_get(j, "a"), &t, &n)); /* a string stays a string */
    assert_true(json_is_integer(json_object_get(j, "b")));
    assert_true(qd_json_big_number(json_object_get(j, "c"), &t, &n));
    assert_int_equal(n, 5);
    assert_string_equal(json_string_value(json_object_get(j, "d")), "x\"1e400");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest open_tests[] = {
        cmocka_unit_test_setup(test_create_collection, reset_server),
        cmocka_unit_test_setup(test_batch_success, reset_server),
        cmocka_unit_test_setup(test_wrong_dimension_error_text, reset_server),
        cmocka_unit_test_setup(test_missing_collection_error_text, reset_server),
        cmocka_unit_test_setup(test_unknown_route_empty_404, reset_server),
        cmocka_unit_test_setup(test_get_collection_unnamed, reset_server),
        cmocka_unit_test_setup(test_get_collection_named_and_sparse, reset_server),
        cmocka_unit_test_setup(test_get_collection_missing, reset_server),
        cmocka_unit_test_setup(test_collection_name_is_url_encoded, reset_server),
        cmocka_unit_test_setup(test_get_collection_wrong_base_url, reset_server),
        cmocka_unit_test_setup(test_retry_after_from_429, reset_server),
        cmocka_unit_test_setup(test_dropped_connection_is_transport_error, reset_server),
        cmocka_unit_test_setup(test_dropped_kept_alive_connection_retried_once, reset_server),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test_setup(test_keep_alive_reuses_connection, reset_server),
        cmocka_unit_test_setup(test_timeout, reset_server),
        cmocka_unit_test_setup(test_hostile_answers_not_qdrant, reset_server),
        cmocka_unit_test_setup(test_qdrant_outcomes, reset_server),
        cmocka_unit_test_setup(test_oversized_answer, reset_server),
        cmocka_unit_test_setup(test_long_error_cut_at_utf8_boundary, reset_server),
        cmocka_unit_test_setup(test_proxy_environment_ignored, reset_server),
        cmocka_unit_test_setup(test_u64_numbers, reset_server),
        cmocka_unit_test(test_json_loadb_markers),
    };
    const struct CMUnitTest auth_tests[] = {
        cmocka_unit_test(test_api_key_accepted),
        cmocka_unit_test(test_api_key_missing_is_401_plain_text),
        cmocka_unit_test(test_api_key_wrong_never_echoed),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("qdrant_client", open_tests, open_group_setup, server_stop);
    failed += cmocka_run_group_tests_name("qdrant_client_api_key", auth_tests, auth_group_setup, server_stop);
    return failed;
}
