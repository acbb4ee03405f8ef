/*
 * test_http_server.c — the endpoint server over a real socket (libcurl as
 * the client): status codes, content types, 404/405, liveness and
 * readiness turning, and a bind failure that names the address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_server.h"
#include "metrics.h"
#include "util.h"

typedef struct answer {
    long status;
    buf body;
    char ctype[128];
    char allow[64];
} answer;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    buf_append(arg, p, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    answer *a = arg;
    size_t len = size * n;

    if (len > 7 && strncasecmp(p, "Allow: ", 7) == 0)
        snprintf(a->allow, sizeof a->allow, "%.*s", (int)(len - 9), p + 7);
    return len;
}

static void get(unsigned port, const char *method, const char *path, answer *a)
{
    CURL *c = curl_easy_init();
    char url[128];
    char *ct = NULL;

    memset(a, 0, sizeof *a);
    buf_init(&a->body);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(a->ctype, sizeof a->ctype, "%s", ct ? ct : "");
    curl_easy_cleanup(c);
}

static void test_endpoints(void **state)
{
    p2q_metrics *m = metrics_new("slot_a");
    http_server *s = NULL;
    char err[256];
    answer a;
    json_t *doc;

    assert_int_equal(http_start("127.0.0.1:0", m, 60000, &s, err, sizeof err), 0);
    assert_true(http_port(s) > 0);

    get(http_port(s), "GET", "/livez", &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body.data, "ok\n");
    buf_free(&a.body);

    get(http_port(s), "GET", "/readyz", &a);
    assert_int_equal(a.status, 503);
    assert_string_equal(a.body.data, "postgres: not connected\n");
    buf_free(&a.body);

    metrics_set_state(m, "streaming");
    metrics_set_pg_connected(m, true);
    get(http_port(s), "GET", "/readyz", &a);
    assert_int_equal(a.status, 200);
    buf_free(&a.body);

    metrics_qdrant_failed(m, "HTTP 503: Shard temporarily unavailable");
    get(http_port(s), "GET", "/readyz", &a);
    assert_int_equal(a.status, 503);
    assert_string_equal(a.body.data, "qdrant: HTTP 503: Shard temporarily unavailable\n");
    buf_free(&a.body);

    metrics_count_change(m, "public", "products", METRICS_INSERT, 2);
    get(http_port(s), "GET", "/status", &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.ctype, "application/json");
    doc = json_loads(a.body.data, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "slot")), "slot_a");
    json_decref(doc);
    buf_free(&a.body);

    get(http_port(s), "GET", "/metrics", &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(a.body.data, "pg2qdrant_changes_total{table=\"public.products\",op=\"insert\"} 2\n"));
    buf_free(&a.body);

    get(http_port(s), "HEAD", "/metrics", &a);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.body.len, 0);
    buf_free(&a.body);

    get(http_port(s), "POST", "/status", &a);
    assert_int_equal(a.status, 405);
    assert_string_equal(a.allow, "GET, HEAD");
    buf_free(&a.body);

    get(http_port(s), "DELETE", "/metrics", &a);
    assert_int_equal(a.status, 405);
    buf_free(&a.body);

    get(http_port(s), "GET", "/nope", &a);
    assert_int_equal(a.status, 404);
    buf_free(&a.body);
    get(http_port(s), "GET", "/status/", &a);
    assert_int_equal(a.status, 404);
    buf_free(&a.body);

    get(http_port(s), "GET", "/status?pretty=1", &a); /* the query string is not part of the path */
    assert_int_equal(a.status, 200);
    buf_free(&a.body);

    http_stop(s);
    metrics_free(m);
}

static void test_livez_turns_503_when_the_loop_stalls(void **state)
{
    p2q_metrics *m = metrics_new("s");
    http_server *s = NULL;
    char err[256];
    answer a;

    assert_int_equal(http_start("127.0.0.1:0", m, 200, &s, err, sizeof err), 0);
    metrics_heartbeat(m);
    get(http_port(s), "GET", "/livez", &a);
    assert_int_equal(a.status, 200);
    buf_free(&a.body);
    poll(NULL, 0, 400);
    get(http_port(s), "GET", "/livez", &a);
    assert_int_equal(a.status, 503);
    assert_non_null(strstr(a.body.data, "main loop stalled"));
    buf_free(&a.body);
    metrics_heartbeat(m);
    get(http_port(s), "GET", "/livez", &a);
    assert_int_equal(a.status, 200);
    buf_free(&a.body);
    http_stop(s);
    metrics_free(m);
}

static void test_bind_failure_names_the_address(void **state)
{
    p2q_metrics *m = metrics_new("s");
    http_server *s = NULL, *s2 = NULL;
    char err[256], addr[64];

    assert_int_equal(http_start("127.0.0.1:0", m, 1000, &s, err, sizeof err), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%u", http_port(s));
    assert_int_equal(http_start(addr, m, 1000, &s2, err, sizeof err), -1);
    assert_null(s2);
    assert_non_null(strstr(err, addr));
    assert_non_null(strstr(err, "in use"));
    assert_int_equal(http_start("127.0.0.1", m, 1000, &s2, err, sizeof err), -1);
    assert_non_null(strstr(err, "'127.0.0.1'"));
    assert_int_equal(http_start("[::1:80", m, 1000, &s2, err, sizeof err), -1);
    http_stop(s);
    http_stop(NULL);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_livez_turns_503_when_the_loop_stalls),
        cmocka_unit_test(test_bind_failure_names_the_address),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
