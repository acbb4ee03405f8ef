/*
 * point_id.c — Qdrant point ids from key columns (SPEC §3): SHA-1, UUIDv5
 * and the id rule.
 */
#include <ctype.h>
#include <string.h>

#include "pgtypes.h"
#include "row_to_point.h"

/* ---- SHA-1, FIPS 180-4 ------------------------------------------------- */

typedef struct sha1_ctx {
    uint32_t h[5];
    uint64_t total; /* bytes hashed */
    unsigned char block[64];
    size_t used; /* bytes in block */
} sha1_ctx;

static uint32_t rol32(uint32_t x, int n)
{
    return x << n | x >> (32 - n);
}

static void sha1_block(sha1_ctx *c, const unsigned char *p)
{
    uint32_t w[80], a, b, d, e, f, k, t, cc;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = c->h[0];
    b = c->h[1];
    cc = c->h[2];
    d = c->h[3];
    e = c->h[4];
    for (i = 0; i < 80; i++) {
        if (i < 20) {
            f = (b & cc) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ cc ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & cc) | (b & d) | (cc & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ cc ^ d;
            k = 0xca62c1d6;
        }
        t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = cc;
        cc = rol32(b, 30);
        b = a;
        a = t;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
}

static void sha1_init(sha1_ctx *c)
{
    static const uint32_t h0[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};

    memcpy(c->h, h0, sizeof(h0));
    c->total = 0;
    c->used = 0;
}

static void sha1_update(sha1_ctx *c, const void *data, size_t len)
{
    const unsigned char *p = data;

    c->total += len;
    while (len > 0) {
        size_t take = 64 - c->used < len ? 64 - c->used : len;

        memcpy(c->block + c->used, p, take);
        c->used += take;
        p += take;
        len -= take;
        if (c->used == 64) {
            sha1_block(c, c->block);
            c->used = 0;
        }
    }
}

static void sha1_final(sha1_ctx *c, unsigned char out[20])
{
    uint64_t bits = c->total * 8;
    unsigned char pad[72] = {0x80};
    size_t padlen = (c->used < 56 ? 56 : 120) - c->used;

    for (int i = 0; i < 8; i++)
        pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha1_update(c, pad, padlen + 8);
    for (int i = 0; i < 20; i++)
        out[i] = (unsigned char)(c->h[i / 4] >> (24 - 8 * (i % 4)));
}

void sha1(const void *data, size_t len, unsigned char out[20])
{
    sha1_ctx c;

    sha1_init(&c);
    sha1_update(&c, data, len);
    sha1_final(&c, out);
}

/* ---- UUIDv5, RFC 4122 §4.3 ---------------------------------------------- */

void uuid5(const unsigned char ns[16], const char *name, size_t len, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[20];
    sha1_ctx c;
    int o = 0;

    sha1_init(&c);
    sha1_update(&c, ns, 16);
    sha1_update(&c, name, len);
    sha1_final(&c, d);
    d[6] = (unsigned char)((d[6] & 0x0f) | 0x50); /* version 5 */
    d[8] = (unsigned char)((d[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[d[i] >> 4];
        out[o++] = hex[d[i] & 15];
    }
    out[o] = '\0';
}

/* ---- the id rule ----------------------------------------------------------- */

/* 6ba7b811-9dad-11d1-80b4-00c04fd430c8, uuid.NAMESPACE_URL */
static const unsigned char ns_url[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                         0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};

/* A canonical non-negative integer: digits only, no leading zero, and at
 * most 19 digits (an int8 never has more). */
static bool is_unsigned_int(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 19 || (s[0] == '0' && n > 1))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static bool is_int_type(uint32_t typid)
{
    return typid == INT2OID || typid == INT4OID || typid == INT8OID;
}

void map_point_id(int nkeys, const uint32_t *key_typids, const char *const *key_texts, bool force_uuid5, buf *out)
{
    char u[37];
    buf name;

    if (nkeys == 1 && !force_uuid5 && is_int_type(key_typids[0]) && is_unsigned_int(key_texts[0])) {
        buf_puts(out, key_texts[0]);
        return;
    }
    if (nkeys == 1 && !force_uuid5 && key_typids[0] == UUIDOID) {
        buf_putc(out, '"');
        for (const char *p = key_texts[0]; *p; p++)
            buf_putc(out, (char)tolower((unsigned char)*p));
        buf_putc(out, '"');
        return;
    }
    buf_init(&name);
    if (nkeys == 1) {
        buf_puts(&name, key_texts[0]);
    } else {
        /* ["eu","42"]: Python's json.dumps(separators=(',',':'), ensure_ascii=False) */
        buf_putc(&name, '[');
        for (int i = 0; i < nkeys; i++) {
            if (i > 0)
                buf_putc(&name, ',');
            buf_json_str(&name, key_texts[i], strlen(key_texts[i]));
        }
        buf_putc(&name, ']');
    }
    uuid5(ns_url, name.data, name.len, u);
    buf_free(&name);
    buf_putc(out, '"');
    buf_append(out, u, 36);
    buf_putc(out, '"');
}
