/*
 * test_sink.c — the sink against the project's Qdrant test server:
 * batching limits, acknowledgements, retries, bisection of a rejected batch
 * down to the poison operation (on_error stop and dead_letter), the
 * missing-point and missing-collection fallbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "qdrant_fixture.h"
#include "sink.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    server *srv;
    p2q_config cfg;
    table_cfg table;
    vector_cfg vec;
    qd_client *qd;
    ack_tracker *acks;
    sink *s;
    qop_list ops;
    char dead[128];
    int refetches;
    int creates;
} fixture;

static int group_setup(void **state)
{
    return server_start(state, NULL);
}

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof *f);

    f->srv = *state;
    control(f->srv, "/__test/reset", NULL);
    f->table.schema = "public";
    f->table.name = "items";
    f->table.collection = "items";
    f->table.distance = "Dot";
    f->vec.name = "";
    f->vec.column = "embedding";
    f->table.vectors = &f->vec;
    f->table.n_vectors = 1;
    f->cfg.tables = &f->table;
    f->cfg.n_tables = 1;
    f->cfg.sync.batch_points = 256;
    f->cfg.sync.batch_bytes = 8 << 20;
    f->cfg.sync.flush_interval_ms = 100;
    f->cfg.sync.on_error = ON_ERROR_STOP;
    snprintf(f->dead, sizeof f->dead, "%s/dead.jsonl", f->srv->dir);
    unlink(f->dead);
    f->cfg.sync.dead_letter_file = f->dead;
    f->qd = qd_client_new(f->srv->url, NULL, 2000);
    f->acks = ack_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    server *srv = f->srv;

    sink_free(f->s);
    qop_list_free(&f->ops);
    ack_free(f->acks);
    qd_client_free(f->qd);
    unlink(f->dead);
    free(f);
    *state = srv;
    return 0;
}

static int refetch_cb(void *arg, const qop *op, qop_list *out);
static int create_cb(void *arg, const qop *op);

static void start_sink(fixture *f, bool with_callbacks)
{
    sink_env env = {.cfg = &f->cfg, .qd = f->qd, .acks = f->acks};

    if (with_callbacks) {
        env.refetch = refetch_cb;
        env.refetch_arg = f;
        env.create_collection = create_cb;
        env.create_collection_arg = f;
    }
    f->s = sink_new(&env);
}

static void make_collection(fixture *f)
{
    create_collection(f->qd, "items", "{\"vectors\":{\"size\":2,\"distance\":\"Dot\"}}");
}

/* Appends an operation on point id with the given JSON. */
static void add_op(fixture *f, qop_kind kind, int id, const char *json)
{
    qop *q = qop_list_push(&f->ops);

    q->kind = kind;
    q->table = &f->table;
    q->json = xstrdup(json);
    q->json_len = strlen(json);
    q->point_id = xasprintf("%d", id);
    q->key_text = xasprintf("id=%d", id);
    q->lsn = 0x1000 + (lsn_t)id;
    if (kind == QOP_SET_PAYLOAD || kind == QOP_UPDATE_VECTORS || kind == QOP_REFETCH) {
        q->nkeys = 1;
        q->key_vals = xcalloc(1, sizeof(char *));
        q->key_vals[0] = xasprintf("%d", id);
    }
}

static void add_upsert(fixture *f, int id, int dims)
{
    char json[256];

    snprintf(json, sizeof json, "{\"upsert\":{\"points\":[{\"id\":%d,\"vector\":%s,\"payload\":{\"n\":%d}}]}}", id,
             dims == 2 ? "[1,2]" : "[1,2,3]", id);
    add_op(f, QOP_UPSERT, id, json);
}

/* One transaction of the queued ops, committed at end_lsn, pushed. */
static void push_txn(fixture *f, lsn_t end_lsn)
{
    ack_txn t = ack_begin(f->acks);

    ack_add_ops(f->acks, t, f->ops.n);
    sink_push(f->s, &f->ops, t);
    ack_commit(f->acks, t, end_lsn);
}

static bool point_exists(fixture *f, int id)
{
    char path[64];
    qd_result r;
    bool ok;

    snprintf(path, sizeof path, "/collections/items/points/%d", id);
    ok = qd_request(f->qd, "GET", path, NULL, 0, &r) == 0;
    qd_result_clear(&r);
    return ok;
}

static int refetch_cb(void *arg, const qop *op, qop_list *out)
{
    fixture *f = arg;
    char json[160];
    qop *q;

    f->refetches++;
    if (strcmp(op->key_vals[0], "404") == 0)
        return SINK_OK; /* the row is gone */
    snprintf(json, sizeof json, "{\"upsert\":{\"points\":[{\"id\":%s,\"vector\":[7,7],\"payload\":{\"whole\":true}}]}}",
             op->key_vals[0]);
    q = qop_list_push(out);
    q->kind = QOP_UPSERT;
    q->table = op->table;
    q->json = xstrdup(json);
    q->json_len = strlen(json);
    q->point_id = xstrdup(op->point_id);
    q->key_text = xstrdup(op->key_text);
    q->lsn = op->lsn;
    return SINK_OK;
}

static int create_cb(void *arg, const qop *op)
{
    fixture *f = arg;

    f->creates++;
    assert_int_equal(op->kind, QOP_UPSERT);
    make_collection(f);
    return SINK_OK;
}

static void test_one_request_per_full_batch(void **state)
{
    fixture *f = *state;

    f->cfg.sync.batch_points = 3;
    start_sink(f, false);
    make_collection(f);
    for (int i = 1; i <= 10; i++)
        add_upsert(f, i, 2);
    push_txn(f, 0x5000);
    assert_int_equal(sink_queued_ops(f->s), 10);
    assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_OK);
    assert_int_equal(sink_get_stats(f->s)->requests, 4); /* 3 + 3 + 3 + 1 */
    assert_int_equal(sink_get_stats(f->s)->ops, 10);
    assert_int_equal(sink_queued_ops(f->s), 0);
    assert_int_equal(sink_queued_bytes(f->s), 0);
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
    for (int i = 1; i <= 10; i++)
        assert_true(point_exists(f, i));
}

/* Waits until the request in flight has been answered and handled. */
static void wait_answered(fixture *f)
{
    for (int i = 0; i < 500 && sink_busy(f->s); i++) {
        assert_int_equal(sink_wait(f->s, NULL, 0, 10), 0);
        assert_int_equal(sink_progress(f->s), SINK_OK);
    }
    assert_false(sink_busy(f->s));
}

/* The batch being filled grows across kicks (next_batch resumes its scan
 * where it stopped): no request while it is partial and more input is
 * coming, one request of exactly batch_points once it is full, and a
 * change of collection queued later still ends a batch. */
static void test_batch_fills_across_kicks(void **state)
{
    fixture *f = *state;
    table_cfg other = f->table;

    other.name = "other";
    other.collection = "other";
    f->cfg.sync.batch_points = 4;
    f->cfg.sync.flush_interval_ms = 60000;
    start_sink(f, false);
    make_collection(f);
    create_collection(f->qd, "other", "{\"vectors\":{\"size\":2,\"distance\":\"Dot\"}}");
    for (int i = 1; i <= 3; i++) {
        add_upsert(f, i, 2);
        push_txn(f, 0x5000 + (lsn_t)i);
        assert_int_equal(sink_kick(f->s, true), SINK_OK);
        assert_false(sink_busy(f->s)); /* partial, and more input is coming */
    }
    add_upsert(f, 4, 2);
    add_upsert(f, 5, 2);
    push_txn(f, 0x5005);
    assert_int_equal(sink_kick(f->s, true), SINK_OK);
    assert_true(sink_busy(f->s)); /* 1..4: full */
    wait_answered(f);
    assert_int_equal(sink_get_stats(f->s)->requests, 1);
    assert_int_equal(sink_get_stats(f->s)->ops, 4);
    assert_int_equal(ack_confirmed(f->acks), 0x5003); /* 5 of the last transaction is still queued */

    add_upsert(f, 6, 2);
    f->ops.items[0].table = &other;
    add_upsert(f, 7, 2);
    push_txn(f, 0x5007);
    for (int n = 2; n <= 3; n++) { /* [5], then [6 in "other"]: each ends at the collection change */
        assert_int_equal(sink_kick(f->s, true), SINK_OK);
        assert_true(sink_busy(f->s));
        wait_answered(f);
        assert_int_equal(sink_get_stats(f->s)->requests, n);
        assert_int_equal(sink_get_stats(f->s)->ops, 3 + (uint64_t)n);
    }
    assert_int_equal(sink_kick(f->s, true), SINK_OK);
    assert_false(sink_busy(f->s)); /* [7] is partial */
    assert_int_equal(sink_kick(f->s, false), SINK_OK);
    wait_answered(f);
    assert_int_equal(sink_get_stats(f->s)->requests, 4);
    assert_int_equal(sink_queued_ops(f->s), 0);
    assert_int_equal(ack_confirmed(f->acks), 0x5007);
    for (int i = 1; i <= 7; i++)
        assert_true(i == 6 || point_exists(f, i));
}

static void test_batch_bytes_bound(void **state)
{
    fixture *f = *state;
    size_t one;

    start_sink(f, false);
    make_collection(f);
    add_upsert(f, 1, 2);
    one = f->ops.items[0].json_len;
    /* room for two operations and the envelope, not three */
    f->cfg.sync.batch_bytes = (int64_t)(3 * one);
    for (int i = 2; i <= 6; i++)
        add_upsert(f, i, 2);
    push_txn(f, 0x5000);
    assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_OK);
    assert_int_equal(sink_get_stats(f->s)->requests, 3);
    assert_true(sink_get_stats(f->s)->bytes <= 3 * (uint64_t)f->cfg.sync.batch_bytes);
}

static void test_transient_failures_are_retried(void **state)
{
    fixture *f = *state;

    start_sink(f, false);
    make_collection(f);
    control(f->srv, "/__test/fault", "{\"fail_next\":2,\"status\":503,\"error\":\"Service Unavailable\"}");
    for (int i = 1; i <= 4; i++)
        add_upsert(f, i, 2);
    push_txn(f, 0x5000);
    assert_int_equal(sink_drain(f->s, now_ms() + 20000, NULL, NULL, NULL), SINK_OK);
    assert_int_equal(sink_get_stats(f->s)->retries, 2);
    assert_int_equal(sink_get_stats(f->s)->requests, 1);
    assert_true(sink_get_stats(f->s)->last_ok);
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
}

static void test_nothing_confirmed_while_qdrant_fails(void **state)
{
    fixture *f = *state;

    start_sink(f, false);
    make_collection(f);
    control(f->srv, "/__test/fault", "{\"fail_next\":1000,\"status\":503,\"error\":\"down\"}");
    add_upsert(f, 1, 2);
    push_txn(f, 0x5000);
    assert_int_equal(sink_drain(f->s, now_ms() + 1500, NULL, NULL, NULL), SINK_STOPPED);
    assert_false(sink_get_stats(f->s)->last_ok);
    assert_non_null(strstr(sink_get_stats(f->s)->last_error, "HTTP 503"));
    assert_int_equal(ack_confirmed(f->acks), 0);
    assert_int_equal(sink_queued_ops(f->s), 1);
}

/* Ten upserts, the sixth with a wrong dimension. */
static void poison_batch(fixture *f)
{
    make_collection(f);
    for (int i = 1; i <= 10; i++)
        add_upsert(f, i, i == 6 ? 3 : 2);
    push_txn(f, 0x5000);
}

static void test_poison_stops(void **state)
{
    fixture *f = *state;

    start_sink(f, false);
    poison_batch(f);
    assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_FATAL);
    /* everything before the poison operation is applied, nothing confirmed */
    for (int i = 1; i <= 5; i++)
        assert_true(point_exists(f, i));
    assert_false(point_exists(f, 6));
    assert_int_equal(ack_confirmed(f->acks), 0);
    assert_int_equal(access(f->dead, F_OK), -1);
}

static void test_poison_dead_letter(void **state)
{
    fixture *f = *state;
    char line[2048];
    FILE *fp;
    int lines = 0;

    f->cfg.sync.on_error = ON_ERROR_DEAD_LETTER;
    start_sink(f, false);
    poison_batch(f);
    assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_OK);
    for (int i = 1; i <= 10; i++)
        assert_true(point_exists(f, i) == (i != 6));
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
    assert_int_equal(sink_get_stats(f->s)->dead_letters, 1);
    /* bisection: 10 -> 5 -> 2|3 ... far fewer requests than one per op */
    assert_true(sink_get_stats(f->s)->rejected <= 5);
    fp = fopen(f->dead, "r");
    assert_non_null(fp);
    while (fgets(line, sizeof line, fp)) {
        lines++;
        assert_non_null(strstr(line, "\"table\":\"public.items\""));
        assert_non_null(strstr(line, "\"key\":\"id=6\""));
        assert_non_null(strstr(line, "\"point_id\":6"));
        assert_non_null(strstr(line, "\"lsn\":\"0/1006\""));
        assert_non_null(strstr(line, "Wrong input: Vector dimension error: expected dim: 2, got 3"));
        assert_non_null(strstr(line, "\"operation\":{\"upsert\":"));
    }
    fclose(fp);
    assert_int_equal(lines, 1);
}

/* An answer that is not Qdrant's stops the sink: no bisection, no dead
 * letter, nothing confirmed, whatever on_error says. */
static void test_not_qdrant_never_dead_lettered(void **state)
{
    static const char *const faults[] = {
        "{\"raw_next\":100,\"raw_status\":302,\"raw_location\":\"http://elsewhere/\"}",
        "{\"raw_next\":100,\"raw_status\":200,\"raw_body\":\"<html>portal</html>\"}",
        "{\"raw_next\":100,\"raw_status\":404,\"raw_body\":\"<html>404 Not Found</html>\"}",
        "{\"raw_next\":100,\"raw_status\":501,\"raw_type\":\"\"}",
    };
    fixture *f = *state;

    f->cfg.sync.on_error = ON_ERROR_DEAD_LETTER;
    start_sink(f, true);
    make_collection(f);
    for (size_t k = 0; k < sizeof faults / sizeof *faults; k++) {
        for (int i = 1; i <= 10; i++)
            add_upsert(f, i, 2);
        push_txn(f, 0x5000);
        control(f->srv, "/__test/fault", faults[k]);
        assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_FATAL);
        assert_int_equal(sink_get_stats(f->s)->dead_letters, 0);
        assert_int_equal(sink_get_stats(f->s)->rejected, (uint64_t)k + 1); /* one request each: no bisection */
        assert_int_equal(ack_confirmed(f->acks), 0);
        assert_int_equal(access(f->dead, F_OK), -1);
        assert_int_equal(f->refetches + f->creates, 0);
        control(f->srv, "/__test/fault", "{\"raw_next\":0}");
        assert_false(point_exists(f, 1));
        sink_reset(f->s);
    }
}

/* The dead-letter file: created 0600, never through a symbolic link, and a
 * cut last line is ended before the next line. */
static void test_dead_letter_file_safety(void **state)
{
    fixture *f = *state;
    char target[160], text[4096];
    struct stat st;
    FILE *fp;
    size_t n;

    f->cfg.sync.on_error = ON_ERROR_DEAD_LETTER;
    start_sink(f, false);
    /* a symbolic link is refused */
    snprintf(target, sizeof target, "%s/elsewhere.jsonl", f->srv->dir);
    unlink(target);
    assert_int_equal(symlink(target, f->dead), 0);
    assert_int_equal(sink_dead_letter(f->s, &f->table, "id=1", "1", "upsert", 0x10, "why", NULL, 0), SINK_FATAL);
    assert_int_equal(access(target, F_OK), -1);
    unlink(f->dead);
    /* a torn last line */
    fp = fopen(f->dead, "w");
    assert_non_null(fp);
    fputs("{\"ts\":\"x\"}\n{\"ts\":\"cut", fp);
    fclose(fp);
    assert_int_equal(sink_dead_letter(f->s, &f->table, "id=1", "1", "upsert", 0x10, "why", NULL, 0), SINK_OK);
    fp = fopen(f->dead, "r");
    n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    assert_non_null(strstr(text, "{\"ts\":\"cut\n{\"ts\":"));
    unlink(f->dead);
    sink_free(f->s);
    /* a new file is private */
    start_sink(f, false);
    assert_int_equal(sink_dead_letter(f->s, &f->table, "id=1", "1", "upsert", 0x10, "why", NULL, 0), SINK_OK);
    assert_int_equal(stat(f->dead, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_missing_point_is_read_back(void **state)
{
    fixture *f = *state;

    start_sink(f, true);
    make_collection(f);
    add_upsert(f, 1, 2);
    add_op(f, QOP_SET_PAYLOAD, 2, "{\"set_payload\":{\"payload\":{\"n\":2},\"points\":[2]}}");
    add_op(f, QOP_SET_PAYLOAD, 404, "{\"set_payload\":{\"payload\":{\"n\":3},\"points\":[404]}}");
    add_upsert(f, 3, 2);
    push_txn(f, 0x5000);
    assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_OK);
    assert_int_equal(f->refetches, 2);
    assert_true(point_exists(f, 2));  /* upserted whole from the row */
    assert_false(point_exists(f, 404)); /* the row was gone */
    assert_true(point_exists(f, 3));
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
}

static void test_refetch_op_resolved_in_order(void **state)
{
    fixture *f = *state;

    start_sink(f, true);
    make_collection(f);
    add_op(f, QOP_DELETE, 8, "{\"delete\":{\"points\":[8]}}");
    add_op(f, QOP_REFETCH, 9, "");
    push_txn(f, 0x5000);
    assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_OK);
    assert_int_equal(f->refetches, 1);
    assert_true(point_exists(f, 9));
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
}

static void test_missing_collection_created(void **state)
{
    fixture *f = *state;

    start_sink(f, true);
    add_op(f, QOP_DELETE, 1, "{\"delete\":{\"points\":[1]}}");
    add_upsert(f, 2, 2);
    push_txn(f, 0x5000);
    assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_OK);
    assert_int_equal(f->creates, 1);
    assert_true(point_exists(f, 2));
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
}

/* Rejections that are not about one operation stop the sync even with
 * dead letters: nothing would ever be applied otherwise. */
static void test_missing_collection_or_credentials_stop(void **state)
{
    fixture *f = *state;

    f->cfg.sync.on_error = ON_ERROR_DEAD_LETTER;
    start_sink(f, false);
    add_upsert(f, 1, 2);
    add_upsert(f, 2, 2);
    push_txn(f, 0x5000);
    assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_FATAL);
    assert_int_equal(sink_get_stats(f->s)->dead_letters, 0);
    assert_int_equal(sink_get_stats(f->s)->rejected, 1); /* no bisection */

    sink_reset(f->s);
    make_collection(f);
    control(f->srv, "/__test/fault", "{\"fail_next\":1,\"status\":403,\"error\":\"Forbidden\"}");
    add_upsert(f, 3, 2);
    add_upsert(f, 4, 2);
    push_txn(f, 0x6000);
    assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_FATAL);
    assert_int_equal(sink_get_stats(f->s)->dead_letters, 0);
    assert_int_equal(access(f->dead, F_OK), -1);
}

static void test_reset_forgets_queue(void **state)
{
    fixture *f = *state;

    start_sink(f, false);
    make_collection(f);
    add_upsert(f, 1, 2);
    push_txn(f, 0x5000);
    assert_int_equal(sink_kick(f->s, false), SINK_OK);
    assert_true(sink_busy(f->s));
    sink_reset(f->s);
    assert_false(sink_busy(f->s));
    assert_int_equal(sink_queued_ops(f->s), 0);
    assert_int_equal(sink_queued_bytes(f->s), 0);
}

/* ---- pipelining (parallel_requests > 1) ----------------------------------------------- */

/* An upsert of point id whose payload n says which version it is. */
static void add_version(fixture *f, int id, int version)
{
    char json[256];

    snprintf(json, sizeof json, "{\"upsert\":{\"points\":[{\"id\":%d,\"vector\":[1,2],\"payload\":{\"n\":%d}}]}}",
             id, version);
    add_op(f, QOP_UPSERT, id, json);
}

/* Payload n of point id, -1 when the point is missing. */
static long point_version(fixture *f, int id)
{
    char path[64];
    qd_result r;
    long n = -1;

    snprintf(path, sizeof path, "/collections/items/points/%d", id);
    if (qd_request(f->qd, "GET", path, NULL, 0, &r) == 0)
        n = (long)json_integer_value(json_object_get(json_object_get(r.result, "payload"), "n"));
    qd_result_clear(&r);
    return n;
}

/* A sink of 4 lanes and batches of batch_points, and its collection. */
static void pipelined_sink(fixture *f, int64_t batch_points)
{
    f->cfg.sync.batch_points = batch_points;
    f->cfg.sync.parallel_requests = 4;
    start_sink(f, false);
    make_collection(f);
}

/* Sends everything (within 10 s). */
static void drain_all(fixture *f)
{
    assert_int_equal(sink_drain(f->s, now_ms() + 10000, NULL, NULL, NULL), SINK_OK);
}

/* Kicks, then waits (without handling answers) until count requests are in flight. */
static void expect_in_flight(fixture *f, size_t count)
{
    assert_int_equal(sink_kick(f->s, false), SINK_OK);
    assert_int_equal(qd_batch_count(f->qd), count);
}

/* A backlog of distinct points goes out on several lanes at once. */
static void test_pipelined_backlog_on_every_lane(void **state)
{
    fixture *f = *state;

    pipelined_sink(f, 3);
    for (int i = 1; i <= 15; i++)
        add_version(f, i, 1);
    push_txn(f, 0x5000);
    control(f->srv, "/__test/fault", "{\"delay_next\":4,\"delay_ms\":300}");
    expect_in_flight(f, 4); /* 4 of the 5 batches */
    assert_true(sink_full(f->s) == false || sink_queued_ops(f->s) == 15);
    drain_all(f);
    assert_int_equal(sink_get_stats(f->s)->requests, 5);
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
    for (int i = 1; i <= 15; i++)
        assert_int_equal(point_version(f, i), 1);
}

/* Two batches touching the same point are never in flight together, so
 * the later version wins even when the earlier request is slow. */
static void test_pipelined_same_point_never_together(void **state)
{
    fixture *f = *state;

    pipelined_sink(f, 2);
    add_version(f, 1, 1); /* batch [1 v1, 2 v1] */
    add_version(f, 2, 1);
    add_version(f, 3, 1); /* batch [3 v1, 1 v2]: point 1 is in flight */
    add_version(f, 1, 2);
    push_txn(f, 0x5000);
    control(f->srv, "/__test/fault", "{\"delay_next\":1,\"delay_ms\":400}");
    expect_in_flight(f, 1);
    drain_all(f);
    assert_int_equal(point_version(f, 1), 2);
    assert_int_equal(point_version(f, 3), 1);
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
}

/* A truncate goes alone: nothing before it is still in flight when it is
 * sent, nothing after it is sent before it is answered. */
static void test_pipelined_truncate_is_a_barrier(void **state)
{
    fixture *f = *state;

    pipelined_sink(f, 2);
    for (int i = 1; i <= 4; i++)
        add_version(f, i, 1);
    add_op(f, QOP_DELETE_ALL, 0, "{\"delete\":{\"filter\":{}}}");
    free(f->ops.items[f->ops.n - 1].point_id);
    f->ops.items[f->ops.n - 1].point_id = NULL;
    for (int i = 5; i <= 8; i++)
        add_version(f, i, 1);
    push_txn(f, 0x5000);
    control(f->srv, "/__test/fault", "{\"delay_next\":2,\"delay_ms\":300}");
    expect_in_flight(f, 2); /* [1,2] [3,4]; the truncate waits */
    drain_all(f);
    for (int i = 1; i <= 8; i++)
        assert_int_equal(point_version(f, i), i <= 4 ? -1 : 1);
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
}

/* Requests finish out of order: a later transaction acknowledged first is
 * not confirmed before the earlier one. */
static void test_pipelined_confirms_in_commit_order(void **state)
{
    fixture *f = *state;

    pipelined_sink(f, 2);
    control(f->srv, "/__test/fault", "{\"delay_next\":1,\"delay_ms\":800}"); /* the first request only */
    for (int t = 0; t < 3; t++) {
        add_version(f, 2 * t + 1, 1);
        add_version(f, 2 * t + 2, 1);
        push_txn(f, 0x5000 + (lsn_t)t);
        expect_in_flight(f, (size_t)t + 1);
        for (int i = 0; t == 0 && i < 10; i++) { /* the first request reaches the server (and its delay) */
            assert_int_equal(sink_wait(f->s, NULL, 0, 10), 0);
            assert_int_equal(sink_progress(f->s), SINK_OK);
        }
    }
    for (int i = 0; i < 50 && qd_batch_count(f->qd) > 1; i++) {
        assert_int_equal(sink_wait(f->s, NULL, 0, 20), 0);
        assert_int_equal(sink_progress(f->s), SINK_OK);
    }
    assert_int_equal(qd_batch_count(f->qd), 1); /* the two later ones are answered */
    assert_int_equal(ack_confirmed(f->acks), 0); /* ... but the first transaction is not */
    drain_all(f);
    assert_int_equal(ack_confirmed(f->acks), 0x5002);
}

/* A transient failure while pipelining: the same request again after its
 * backoff; nothing lost, nothing confirmed early; pipelining goes on. */
static void test_pipelined_transient_failure_retried(void **state)
{
    fixture *f = *state;

    pipelined_sink(f, 3);
    for (int i = 1; i <= 12; i++)
        add_version(f, i, 1);
    push_txn(f, 0x5000);
    control(f->srv, "/__test/fault", "{\"fail_next\":1,\"status\":503,\"error\":\"busy\"}");
    assert_int_equal(sink_drain(f->s, now_ms() + 20000, NULL, NULL, NULL), SINK_OK);
    assert_int_equal(sink_get_stats(f->s)->retries, 1);
    assert_int_equal(sink_get_stats(f->s)->requests, 4);
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
    for (int i = 1; i <= 12; i++)
        assert_int_equal(point_version(f, i), 1);
    /* pipelining again */
    for (int i = 13; i <= 18; i++)
        add_version(f, i, 1);
    push_txn(f, 0x6000);
    control(f->srv, "/__test/fault", "{\"delay_next\":2,\"delay_ms\":300}");
    expect_in_flight(f, 2);
    drain_all(f);
    assert_int_equal(ack_confirmed(f->acks), 0x6000);
}

/* The table of points in flight holds only those: 20,000 distinct points
 * through 4 lanes of 256 leave it at its first size (it once kept every
 * point ever sent, 32 MB for a million). */
static void test_pipelined_keys_table_stays_small(void **state)
{
    fixture *f = *state;

    pipelined_sink(f, 256);
    for (int round = 0; round < 10; round++) {
        for (int i = 1; i <= 2000; i++)
            add_version(f, round * 2000 + i, 1);
        push_txn(f, 0x5000 + (lsn_t)round);
        drain_all(f);
    }
    assert_int_equal(ack_confirmed(f->acks), 0x5009);
    assert_true(sink_get_stats(f->s)->keys_capacity > 0);
    assert_true(sink_get_stats(f->s)->keys_capacity <= 4096);
    assert_int_equal(point_version(f, 20000), 1);
}

/* Three lanes; the first request (point 1, at 0x5000) is answered 429 with
 * Retry-After: 1, and its retry is pending. */
static void first_request_gets_429(fixture *f)
{
    pipelined_sink(f, 3);
    control(f->srv, "/__test/fault", "{\"fail_next\":1,\"status\":429,\"retry_after\":1}");
    add_version(f, 1, 1);
    push_txn(f, 0x5000);
    expect_in_flight(f, 1);
    for (int i = 0; i < 100 && qd_batch_count(f->qd) > 0; i++) { /* the 429 arrives */
        assert_int_equal(sink_wait(f->s, NULL, 0, 10), 0);
        assert_int_equal(sink_progress(f->s), SINK_OK);
    }
    assert_int_equal(sink_get_stats(f->s)->retries, 1);
}

/* A 429 with Retry-After holds every lane, not only the request that got
 * it: nothing new starts (and nothing is retried) before it passes. */
static void test_pipelined_retry_after_holds_every_lane(void **state)
{
    fixture *f = *state;
    int64_t t0;

    t0 = now_ms();
    first_request_gets_429(f);
    for (int i = 2; i <= 7; i++) /* two full batches of other points */
        add_version(f, i, 1);
    push_txn(f, 0x5001);
    expect_in_flight(f, 0); /* held: no lane starts */
    drain_all(f);
    assert_true(now_ms() - t0 >= 1000);
    assert_int_equal(ack_confirmed(f->acks), 0x5001);
    for (int i = 1; i <= 7; i++)
        assert_int_equal(point_version(f, i), 1);
}

/* When the hold ends, the held retry goes alone: the other lanes wait for its answer (no burst of
 * every lane at once, which a rate-limited Qdrant would answer with more 429s). */
static void test_after_a_hold_one_request_goes_first(void **state)
{
    fixture *f = *state;
    int64_t t429;

    first_request_gets_429(f);
    t429 = now_ms();
    for (int i = 2; i <= 7; i++) /* two full batches of other points, waiting */
        add_version(f, i, 1);
    push_txn(f, 0x5001);
    expect_in_flight(f, 0);
    while (now_ms() - t429 < 1100) /* the hold ends */
        usleep(10000);
    expect_in_flight(f, 1); /* the retry, alone */
    expect_in_flight(f, 1); /* still alone while it is unanswered */
    drain_all(f);
    assert_int_equal(ack_confirmed(f->acks), 0x5001);
    for (int i = 1; i <= 7; i++)
        assert_int_equal(point_version(f, i), 1);
}

/* A poison operation met while pipelining is isolated as without it. */
static void test_pipelined_poison_dead_letter(void **state)
{
    fixture *f = *state;

    f->cfg.sync.batch_points = 3;
    f->cfg.sync.parallel_requests = 4;
    f->cfg.sync.on_error = ON_ERROR_DEAD_LETTER;
    start_sink(f, false);
    poison_batch(f);
    assert_int_equal(sink_drain(f->s, 0, NULL, NULL, NULL), SINK_OK);
    for (int i = 1; i <= 10; i++)
        assert_true(point_exists(f, i) == (i != 6));
    assert_int_equal(sink_get_stats(f->s)->dead_letters, 1);
    assert_int_equal(ack_confirmed(f->acks), 0x5000);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_one_request_per_full_batch),
        T(test_batch_fills_across_kicks),
        T(test_batch_bytes_bound),
        T(test_transient_failures_are_retried),
        T(test_nothing_confirmed_while_qdrant_fails),
        T(test_poison_stops),
        T(test_poison_dead_letter),
        T(test_not_qdrant_never_dead_lettered),
        T(test_dead_letter_file_safety),
        T(test_missing_point_is_read_back),
        T(test_refetch_op_resolved_in_order),
        T(test_missing_collection_created),
        T(test_missing_collection_or_credentials_stop),
        T(test_reset_forgets_queue),
        T(test_pipelined_backlog_on_every_lane),
        T(test_pipelined_same_point_never_together),
        T(test_pipelined_truncate_is_a_barrier),
        T(test_pipelined_confirms_in_commit_order),
        T(test_pipelined_transient_failure_retried),
        T(test_pipelined_poison_dead_letter),
        T(test_pipelined_keys_table_stays_small),
        T(test_pipelined_retry_after_holds_every_lane),
        T(test_after_a_hold_one_request_goes_first),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, server_stop);
}
