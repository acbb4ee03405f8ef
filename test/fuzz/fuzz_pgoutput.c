/*
 * fuzz_pgoutput.c — libFuzzer target for the pgoutput decoder.
 *
 * The input is one CopyData payload.  It is decoded as a CopyBoth frame;
 * when it is XLogData 'w', its payload is decoded as a pgoutput message
 * under every valid option combination (protocol 1..4, inside/outside a
 * stream block, parallel Stream Abort for v4).  On success every pointer the
 * decoder returned is checked to lie inside the input and every byte it
 * covers is read, so ASan reports any out-of-bounds result.
 *
 * Build: CC=clang cmake -S . -B build-fuzz -DP2Q_FUZZ=ON -DP2Q_SANITIZE=ON
 *        cmake --build build-fuzz --target fuzz_pgoutput
 * Run:   test/fuzz/run_fuzz.sh build-fuzz 300
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pgo_msg g_msg;
static volatile unsigned g_sink;

/* Aborts (a fuzzer crash) unless [p, p+n) lies inside [base, base+len). */
static void check_range(const char *base, size_t len, const char *p, size_t n)
{
    if (!p || p < base || n > len || (size_t)(p - base) > len - n)
        abort();
    for (size_t i = 0; i < n; i++)
        g_sink += (unsigned char)p[i];
}

static void check_string(const char *base, size_t len, const char *s)
{
    check_range(base, len, s, strlen(s) + 1);
}

static void check_tuple(const char *base, size_t len, const pgo_tuple *t)
{
    if (t->ncols > PGO_MAX_ATTS)
        abort();
    for (uint16_t i = 0; i < t->ncols; i++) {
        const pgo_datum *d = &t->cols[i];

        if (d->kind == 't' || d->kind == 'b')
            check_range(base, len, d->data, d->len);
        else if (d->kind != 'n' && d->kind != 'u')
            abort();
    }
}

static void check_msg(const char *base, size_t len, const pgo_msg *m)
{
    g_sink += (unsigned char)pgo_msg_name(m->type)[0];
    switch (m->type) {
    case PGO_ORIGIN:
        check_string(base, len, m->u.origin.name);
        break;
    case PGO_RELATION:
        check_string(base, len, m->u.relation.nspname);
        check_string(base, len, m->u.relation.relname);
        if (m->u.relation.natts > PGO_MAX_ATTS)
            abort();
        for (uint16_t i = 0; i < m->u.relation.natts; i++)
            check_string(base, len, m->u.relation.attrs[i].name);
        break;
    case PGO_TYPE:
        check_string(base, len, m->u.type.nspname);
        check_string(base, len, m->u.type.typname);
        break;
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
        if (m->u.change.old_kind)
            check_tuple(base, len, &m->u.change.oldtup);
        if (m->u.change.has_new)
            check_tuple(base, len, &m->u.change.newtup);
        break;
    case PGO_TRUNCATE:
        check_range(base, len, (const char *)m->u.truncate.relids, (size_t)m->u.truncate.nrelids * 4);
        for (uint32_t i = 0; i < m->u.truncate.nrelids; i++)
            g_sink += pgo_truncate_relid(m, i);
        break;
    case PGO_MESSAGE:
        check_string(base, len, m->u.message.prefix);
        check_range(base, len, m->u.message.content, m->u.message.len);
        break;
    case PGO_BEGIN_PREPARE:
    case PGO_PREPARE:
    case PGO_COMMIT_PREPARED:
    case PGO_ROLLBACK_PREPARED:
    case PGO_STREAM_PREPARE:
        check_string(base, len, m->u.twophase.gid);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    pgo_copydata cd;
    char err[256];

    if (pgo_decode_copydata(in, size, &cd, err, sizeof err) != 0 || cd.type != 'w')
        return 0;
    check_range(in, size, cd.payload, cd.payload_len);
    for (int v = 1; v <= 4; v++) {
        for (int stream = 0; stream <= (v >= 2); stream++) {
            for (int parallel = 0; parallel <= (v == 4); parallel++) {
                pgo_options opt = {.proto_version = v, .in_stream = stream, .parallel_abort = parallel};

                if (pgo_decode(cd.payload, cd.payload_len, &opt, &g_msg, err, sizeof err) == 0)
                    check_msg(cd.payload, cd.payload_len, &g_msg);
                else if (strncmp(err, "pgoutput: ", 10) != 0)
                    abort();
            }
        }
    }
    return 0;
}
