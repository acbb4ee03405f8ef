/*
 * qdrant_loader — Qdrant's ingest ceiling on this machine, for bench_throughput.py.
 *
 *   qdrant_loader URL COLLECTION ROWS DIM CONNECTIONS [BATCH]
 *
 * Sends the benchmark's rows (the same ids, payload shape and vectors as
 * benchlib.ROW_EXPRS: id i, title "item i <32 hex>", price, three tags and a
 * DIM-dimension vector sin(i * DIM + j), j = 1..DIM) as BATCH-point
 * (default 256) PUT /collections/COLLECTION/points?wait=true upserts over
 * CONNECTIONS parallel connections (curl multi, one request in flight per
 * connection), into a collection it creates fresh (Cosine, size DIM;
 * deleted first when it exists).  Bodies are built while earlier requests
 * are in flight.  The API key, if any, comes from $QDRANT_API_KEY.
 *
 * Prints one JSON object: rows, seconds (first request sent to last answer),
 * rows_per_s, requests, failures.  Exit 1 on any failed request.
 * Not a test: nothing is asserted.
 */
#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONNS 64

typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

typedef struct slot {
    CURL *easy;
    buf body;
    buf answer;
    long first_row;
} slot;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void buf_add(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            fprintf(stderr, "qdrant_loader: out of memory\n");
            exit(1);
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_add(b, tmp, (size_t)n);
}

static size_t on_answer(char *p, size_t size, size_t n, void *arg)
{
    buf_add(arg, p, size * n);
    return size * n;
}

/* 32 hex digits standing in for md5(i::text): the same length of text. */
static void hex32(long i, char out[33])
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)i, g = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
    for (int k = 0; k < 16; k++) {
        h = (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ULL;
        g = (g ^ (g >> 31)) * 0x94D049BB133111EBULL;
    }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h, (unsigned long long)g);
}

static void build_body(buf *b, long first, long count, int dim)
{
    b->len = 0;
    buf_add(b, "{\"points\":[", 11);
    for (long i = first; i < first + count; i++) {
        char hx[33];
        hex32(i, hx);
        buf_printf(b, "%s{\"id\":%ld,\"vector\":[", i == first ? "" : ",", i);
        for (int j = 1; j <= dim; j++)
            buf_printf(b, "%s%.9g", j == 1 ? "" : ",", (double)(float)sin((double)i * dim + j));
        buf_printf(b,
                   "],\"payload\":{\"id\":%ld,\"title\":\"item %ld %s\",\"price\":%.2f,"
                   "\"tags\":[\"tag%ld\",\"tag%ld\",\"c%ld\"]}}",
                   i, i, hx, (double)(i % 100000) / 100.0, i % 7, i % 11, i % 3);
    }
    buf_add(b, "]}", 2);
}

static struct curl_slist *headers(void)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    const char *key = getenv("QDRANT_API_KEY");
    if (key && *key) {
        char line[512];
        snprintf(line, sizeof line, "api-key: %s", key);
        h = curl_slist_append(h, line);
    }
    return h;
}

/* One blocking request; returns the HTTP status (0 on a transport error). */
static long simple(const char *method, const char *url, const char *body, struct curl_slist *h)
{
    CURL *e = curl_easy_init();
    buf answer = {0};
    long status = 0;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 && strcmp(method, "DELETE") != 0)
        fprintf(stderr, "qdrant_loader: %s %s: %ld %s\n", method, url, status, answer.data ? answer.data : "");
    free(answer.data);
    curl_easy_cleanup(e);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: qdrant_loader URL COLLECTION ROWS DIM CONNECTIONS [BATCH]\n");
        return 2;
    }
    const char *url = argv[1], *coll = argv[2];
    long rows = atol(argv[3]);
    int dim = atoi(argv[4]), conns = atoi(argv[5]);
    long batch = argc > 6 ? atol(argv[6]) : 256;
    if (rows <= 0 || dim <= 0 || conns <= 0 || conns > MAX_CONNS || batch <= 0) {
        fprintf(stderr, "qdrant_loader: bad arguments\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct curl_slist *h = headers();
    char coll_url[1024], points_url[1024], create[256];
    snprintf(coll_url, sizeof coll_url, "%s/collections/%s", url, coll);
    snprintf(points_url, sizeof points_url, "%s/collections/%s/points?wait=true", url, coll);
    snprintf(create, sizeof create, "{\"vectors\":{\"size\":%d,\"distance\":\"Cosine\"}}", dim);
    simple("DELETE", coll_url, NULL, h);
    if (simple("PUT", coll_url, create, h) != 200)
        return 1;

    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conns);
    slot slots[MAX_CONNS];
    memset(slots, 0, sizeof slots);
    long next = 1, last = rows, requests = 0, failures = 0, running = 0;
    double t0 = now_s();
    for (int k = 0; k < conns; k++) {
        slots[k].easy = curl_easy_init();
        curl_easy_setopt(slots[k].easy, CURLOPT_URL, points_url);
        curl_easy_setopt(slots[k].easy, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(slots[k].easy, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(slots[k].easy, CURLOPT_WRITEFUNCTION, on_answer);
        curl_easy_setopt(slots[k].easy, CURLOPT_WRITEDATA, &slots[k].answer);
        curl_easy_setopt(slots[k].easy, CURLOPT_PRIVATE, &slots[k]);
        curl_easy_setopt(slots[k].easy, CURLOPT_PROXY, "");
    }
    for (;;) {
        /* every idle slot takes the next batch */
        for (int k = 0; k < conns && next <= last; k++) {
            if (slots[k].first_row)
                continue;
            long n = last - next + 1 < batch ? last - next + 1 : batch;
            build_body(&slots[k].body, next, n, dim);
            slots[k].first_row = next;
            slots[k].answer.len = 0;
            curl_easy_setopt(slots[k].easy, CURLOPT_POSTFIELDS, slots[k].body.data);
            curl_easy_setopt(slots[k].easy, CURLOPT_POSTFIELDSIZE, (long)slots[k].body.len);
            curl_multi_add_handle(multi, slots[k].easy);
            running++;
            next += n;
        }
        if (!running)
            break;
        int still;
        curl_multi_perform(multi, &still);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            slot *s = NULL;
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (m->data.result != CURLE_OK || status != 200) {
                failures++;
                fprintf(stderr, "qdrant_loader: batch at row %ld: curl %d, HTTP %ld %.300s\n", s->first_row,
                        (int)m->data.result, status, s->answer.data ? s->answer.data : "");
            }
            requests++;
            curl_multi_remove_handle(multi, m->easy_handle);
            s->first_row = 0;
            running--;
        }
        if (running)
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    double secs = now_s() - t0;
    printf("{\"rows\":%ld,\"dim\":%d,\"connections\":%d,\"batch\":%ld,\"seconds\":%.3f,\"rows_per_s\":%.0f,"
           "\"requests\":%ld,\"failures\":%ld}\n",
           rows, dim, conns, batch, secs, rows / secs, requests, failures);
    for (int k = 0; k < conns; k++) {
        curl_easy_cleanup(slots[k].easy);
        free(slots[k].body.data);
        free(slots[k].answer.data);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(h);
    curl_global_cleanup();
    return failures ? 1 : 0;
}
