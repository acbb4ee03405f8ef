/*
 * gen_corpus.c — writes the seed corpus of fuzz_pgoutput (test-only).
 *
 * One file per message shape, each a CopyData payload as the walsender
 * sends it ('w' header + pgoutput message, or a keepalive 'k'), built with
 * the test encoder.  Run through gen_corpus.sh; the output is committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgo_encode.h"
#include "util.h"

int main(int argc, char **argv);

static const char *g_dir;

/* Writes b to <dir>/<name>. */
static int write_file(const char *name, const buf *b)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    if (fwrite(b->data, 1, b->len, f) != b->len) {
        perror(path);
        fclose(f);
        return -1;
    }
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/* Frames msg as XLogData and writes it to <dir>/<name>; resets msg. */
static int emit(const char *name, buf *msg)
{
    buf frame;
    int rc;

    buf_init(&frame);
    enc_xlogdata(&frame, 0x16B3748, 0x16B3748, 815000000000000, msg->data, msg->len);
    rc = write_file(name, &frame);
    buf_free(&frame);
    buf_reset(msg);
    return rc;
}

int main(int argc, char **argv)
{
    static const enc_attr attrs[] = {{1, "id", 23, -1}, {0, "title", 1043, 104}, {0, "v", 16500, -1}};
    static const uint32_t relids[] = {16384, 16390};
    static const unsigned char bin[] = {0, 1, 2, 0xff};
    enc_col row[] = {enc_text("42"), enc_null(), enc_unchanged(), enc_text(""), enc_binary(bin, sizeof bin)};
    enc_col key[] = {enc_text("42"), enc_null(), enc_null()};
    enc_col full[] = {enc_text("42"), enc_text("old title"), enc_text("[1,2,3]")};
    enc_col upd[] = {enc_text("42"), enc_text("new title"), enc_unchanged()};
    buf m;
    int rc = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
        return 2;
    }
    g_dir = argv[1];
    buf_init(&m);

    enc_begin(&m, 0x16B3748, 815000000000000, 731);
    rc |= emit("begin", &m);
    enc_commit(&m, 0, 0x16B3748, 0x16B3778, 815000000000000);
    rc |= emit("commit", &m);
    enc_origin(&m, 0x16B0000, "pg_16385");
    rc |= emit("origin", &m);
    enc_relation(&m, ENC_NO_XID, 16384, "public", "items", 'd', attrs, 3);
    rc |= emit("relation", &m);
    enc_type(&m, ENC_NO_XID, 16500, "public", "vector");
    rc |= emit("type", &m);
    enc_insert(&m, ENC_NO_XID, 16384, row, 5);
    rc |= emit("insert", &m);
    enc_update(&m, ENC_NO_XID, 16384, 0, NULL, 0, upd, 3);
    rc |= emit("update", &m);
    enc_update(&m, ENC_NO_XID, 16384, 'K', key, 3, upd, 3);
    rc |= emit("update_key", &m);
    enc_update(&m, ENC_NO_XID, 16384, 'O', full, 3, upd, 3);
    rc |= emit("update_old", &m);
    enc_delete(&m, ENC_NO_XID, 16384, 'K', key, 3);
    rc |= emit("delete_key", &m);
    enc_truncate(&m, ENC_NO_XID, 1, relids, 2);
    rc |= emit("truncate", &m);
    enc_message(&m, ENC_NO_XID, 1, 0x16B3748, "p2q", "hello", 5);
    rc |= emit("message", &m);
    {
        static const char wm[] = "{\"type\":\"wm\",\"phase\":\"high\",\"slot\":\"pg2qdrant\",\"id\":\"r1\","
                                 "\"run\":\"7f3a\",\"chunk\":3,\"table\":\"public.t\",\"tables\":[],"
                                 "\"from\":[\"eu\",\"41\"],\"to\":[\"eu\",\"99\"],\"rows\":10000}";
        enc_message(&m, ENC_NO_XID, 1, 0x16B3748, "pg2qdrant", wm, sizeof wm - 1);
        rc |= emit("message_watermark", &m);
    }
    enc_stream_start(&m, 732, true);
    rc |= emit("stream_start", &m);
    enc_insert(&m, 732, 16384, key, 3);
    rc |= emit("stream_insert", &m);
    enc_stream_stop(&m);
    rc |= emit("stream_stop", &m);
    enc_stream_commit(&m, 732, 0, 0x16B4000, 0x16B4030, 815000000000000);
    rc |= emit("stream_commit", &m);
    enc_stream_abort(&m, 732, 733, true, 0x16B4000, 815000000000000);
    rc |= emit("stream_abort_parallel", &m);
    enc_begin_prepare(&m, 0x16B5000, 0x16B5030, 815000000000000, 734, "gid");
    rc |= emit("begin_prepare", &m);
    enc_prepare(&m, 0, 0x16B5000, 0x16B5030, 815000000000000, 734, "gid");
    rc |= emit("prepare", &m);
    enc_rollback_prepared(&m, 0, 0x16B5030, 0x16B6000, 815000000000000, 815000000000001, 734, "gid");
    rc |= emit("rollback_prepared", &m);
    enc_commit_prepared(&m, 0, 0x16B6000, 0x16B6030, 815000000000000, 735, "gid2");
    rc |= emit("commit_prepared", &m);
    enc_keepalive(&m, 0x16B6030, 815000000000000, true);
    rc |= write_file("keepalive", &m);
    buf_free(&m);
    return rc ? 1 : 0;
}
