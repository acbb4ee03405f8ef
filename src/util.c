/*
 * util.c — allocation helpers, the growable buffer, the monotonic clock.
 */
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(size_t n)
{
    fprintf(stderr, "pg2qdrant: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    buf b;

    buf_init(&b);
    buf_vprintf(&b, fmt, ap);
    return buf_steal(&b);
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

const char *str_first_line(const char *m, char *out, size_t outlen)
{
    size_t n;

    m = m ? m : "";
    n = strcspn(m, "\n");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, m, n);
    out[n] = '\0';
    return out;
}

char *str_one_line(const char *m)
{
    char *s = xstrdup(m ? m : "");
    char *out = s;

    for (const char *p = s; *p; p++) {
        if (*p == '\n' || *p == '\t' || *p == '\r') {
            if (out > s && out[-1] != ' ')
                *out++ = ' ';
        } else {
            *out++ = *p;
        }
    }
    while (out > s && out[-1] == ' ')
        out--;
    *out = '\0';
    return s;
}

void buf_quote_ident(buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"')
            buf_putc(b, '"');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

char *quote_ident(const char *s)
{
    buf b;

    buf_init(&b);
    buf_quote_ident(&b, s);
    return buf_steal(&b);
}

int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void buf_init(buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_free(buf *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reset(buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_reserve(buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    size_t cap;

    if (need <= b->cap)
        return;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    b->data[b->len] = '\0';
}

void buf_append(buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_puts(buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_putc(buf *b, char c)
{
    buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void buf_vprintf(buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void buf_json_str(buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    buf_reserve(b, n + 2);
    buf_putc(b, '"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
            esc = u;
        }
        buf_puts(b, esc);
    }
    buf_append(b, s + run, n - run);
    buf_putc(b, '"');
}

char *buf_steal(buf *b)
{
    char *p = b->data ? b->data : xstrdup("");

    /* Stolen strings are kept (queued operations, counted by their length
     * against max_inflight): give back the doubling's slack beyond 1/8. */
    if (b->data && b->cap - b->len - 1 > b->len / 8)
        p = xrealloc(p, b->len + 1);
    buf_init(b);
    return p;
}

char *str_mask_secret(char *msg, const char *secret)
{
    buf b;
    const char *p = msg;
    const char *hit;
    size_t n;

    if (!secret || !*secret || !strstr(msg, secret))
        return msg;
    n = strlen(secret);
    buf_init(&b);
    while ((hit = strstr(p, secret)) != NULL) {
        buf_append(&b, p, (size_t)(hit - p));
        buf_puts(&b, "********");
        p = hit + n;
    }
    buf_puts(&b, p);
    free(msg);
    return buf_steal(&b);
}

int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t backoff_jitter_ms(int attempt)
{
    int64_t ms = 500;

    while (attempt-- > 0 && ms < 30000)
        ms *= 2;
    if (ms > 30000)
        ms = 30000;
    return ms / 2 + random() % (ms / 2 + 1); /* "equal jitter" */
}

size_t utf8_cut(const char *s, size_t n)
{
    size_t i = n, back = 0;
    unsigned char lead;
    size_t need;

    /* Step back over at most 3 continuation bytes to the last lead byte. */
    while (i > 0 && back < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return n;
    lead = (unsigned char)s[i - 1];
    if (lead >= 0xF0 && lead <= 0xF4)
        need = 3;
    else if (lead >= 0xE0)
        need = lead <= 0xEF ? 2 : 0;
    else if (lead >= 0xC2)
        need = 1;
    else
        need = 0; /* ASCII, or not a lead byte: stands alone */
    return need > back ? i - 1 : n;
}

int snprintf_utf8(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
    if (r >= 0 && outlen > 0 && (size_t)r >= outlen)
        out[utf8_cut(out, outlen - 1)] = '\0';
    return r;
}

json_num_class json_number_class(const char *tok, size_t n)
{
    static const char u64max[] = "18446744073709551615";
    static const char i64min[] = "9223372036854775808"; /* magnitude of INT64_MIN */
    bool neg = n > 0 && tok[0] == '-';
    const char *d = tok + (neg ? 1 : 0);
    size_t nd = n - (neg ? 1 : 0);
    bool integer = nd > 0;
    char tmp[64];
    char *copy = NULL;
    double v;

    for (size_t i = 0; i < nd && integer; i++)
        integer = d[i] >= '0' && d[i] <= '9';
    if (integer) {
        while (nd > 1 && *d == '0') { /* JSON has no leading zeros; be lenient */
            d++;
            nd--;
        }
        if (nd < 19)
            return JSON_NUM_FIT;
        if (!neg && (nd < 20 || (nd == 20 && memcmp(d, u64max, 20) <= 0)))
            return nd == 19 && memcmp(d, "9223372036854775807", 19) <= 0 ? JSON_NUM_FIT : JSON_NUM_U64;
        if (neg && nd == 19 && memcmp(d, i64min, 19) <= 0)
            return JSON_NUM_FIT;
        if (nd <= 308)
            return JSON_NUM_BIG_INT;
        /* more digits: fall through to strtod (309 digits may still fit) */
    }
    if (n < sizeof tmp) {
        memcpy(tmp, tok, n);
        tmp[n] = '\0';
    } else {
        copy = xstrndup(tok, n);
    }
    errno = 0;
    v = strtod(copy ? copy : tmp, NULL);
    free(copy);
    if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL))
        return JSON_NUM_OVERFLOW;
    return integer ? JSON_NUM_BIG_INT : JSON_NUM_FIT;
}

bool json_rewrite_numbers(const char *in, size_t n, buf *out,
                          void (*rewrite)(const char *tok, size_t len, json_num_class cls, buf *out))
{
    size_t i = 0, copied = 0;
    bool changed = false;

    while (i < n) {
        char c = in[i];
        if (c == '"') { /* skip the string, escapes included */
            for (i++; i < n && in[i] != '"'; i++)
                if (in[i] == '\\')
                    i++;
            i++;
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = i;
            json_num_class cls;
            while (i < n && (strchr("+-.eE", in[i]) != NULL || (in[i] >= '0' && in[i] <= '9')))
                i++;
            cls = json_number_class(in + start, i - start);
            if (cls != JSON_NUM_FIT) {
                if (!changed)
                    buf_reserve(out, n + 64);
                changed = true;
                buf_append(out, in + copied, start - copied);
                rewrite(in + start, i - start, cls, out);
                copied = i;
            }
            continue;
        }
        i++;
    }
    if (changed)
        buf_append(out, in + copied, n - copied);
    return changed;
}

void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n-- > 0)
        *v++ = 0;
}

/* ---- keyset ------------------------------------------------------------------------- */

static size_t keyset_home(const keyset *k, uint64_t key)
{
    return (size_t)(key ^ (key >> 32)) & (k->cap - 1);
}

/* The slot of key, or the empty slot where it would go. */
static size_t keyset_find(const keyset *k, uint64_t key)
{
    size_t mask = k->cap - 1, i = keyset_home(k, key);

    while (k->slots[2 * i] != 0 && k->slots[2 * i] != key)
        i = (i + 1) & mask;
    return i;
}

static void keyset_grow(keyset *k)
{
    uint64_t *old = k->slots;
    size_t oldcap = k->cap;

    k->cap = oldcap ? 2 * oldcap : 1024;
    k->slots = xcalloc(2 * k->cap, sizeof *k->slots);
    for (size_t i = 0; i < oldcap; i++)
        if (old[2 * i] != 0) {
            size_t j = keyset_find(k, old[2 * i]);
            k->slots[2 * j] = old[2 * i];
            k->slots[2 * j + 1] = old[2 * i + 1];
        }
    free(old);
}

void keyset_add(keyset *k, uint64_t key)
{
    size_t i;

    if ((k->n + 1) * 2 > k->cap)
        keyset_grow(k);
    i = keyset_find(k, key);
    if (k->slots[2 * i] == 0) {
        k->slots[2 * i] = key;
        k->n++;
    }
    k->slots[2 * i + 1]++;
}

void keyset_del(keyset *k, uint64_t key)
{
    size_t mask, i, j;

    if (k->cap == 0)
        return;
    i = keyset_find(k, key);
    if (k->slots[2 * i] != key || --k->slots[2 * i + 1] > 0)
        return;
    /* Backward shift: a key after the hole moves into it unless its home
     * lies cyclically in (hole, its slot], where it must stay. */
    mask = k->cap - 1;
    j = i;
    for (;;) {
        size_t h;
        j = (j + 1) & mask;
        if (k->slots[2 * j] == 0)
            break;
        h = keyset_home(k, k->slots[2 * j]);
        if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
            continue;
        k->slots[2 * i] = k->slots[2 * j];
        k->slots[2 * i + 1] = k->slots[2 * j + 1];
        i = j;
    }
    k->slots[2 * i] = k->slots[2 * i + 1] = 0;
    k->n--;
}

bool keyset_has(const keyset *k, uint64_t key)
{
    return k->cap > 0 && k->slots[2 * keyset_find(k, key)] == key;
}

void keyset_clear(keyset *k)
{
    if (k->slots)
        memset(k->slots, 0, 2 * k->cap * sizeof *k->slots);
    k->n = 0;
}

void keyset_free(keyset *k)
{
    free(k->slots);
    k->slots = NULL;
    k->cap = k->n = 0;
}
