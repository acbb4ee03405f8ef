/*
 * qdrant_test_server.c — an in-memory stand-in for Qdrant 1.19's REST API.
 *
 * Reproduces the endpoints pg2qdrant uses (collections, point writes,
 * batch, scroll, retrieve, count) with Qdrant's envelopes, status codes
 * and error texts, plus a control API under /__test/ for fault injection
 * (fail / delay / drop / half-applied batches) and a JSON Lines request
 * log that test/integration/openapi_check.py validates against Qdrant's
 * OpenAPI document.  See docs/qdrant-test-server.md for what is and is
 * not reproduced.
 *
 * Threading: libmicrohttpd runs one thread per connection; all state is
 * behind one global mutex, held for the whole handling of a request
 * except an injected delay.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TS_MAX_BODY (32u * 1024u * 1024u) /* service.max_request_size_mb = 32 */
#define TS_MAX_DIM 65536

/* ------------------------------------------------------------------ */
/* Allocation and a growable string buffer                             */
/* ------------------------------------------------------------------ */

static void ts_oom(void)
{
    fputs("qdrant_test_server: out of memory\n", stderr);
    abort();
}

static void *ts_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        ts_oom();
    return p;
}

static void *ts_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        ts_oom();
    return p;
}

static void *ts_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        ts_oom();
    return q;
}

static char *ts_strndup(const char *s, size_t n)
{
    char *d = ts_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *ts_strdup(const char *s)
{
    return ts_strndup(s, strlen(s));
}

static char *ts_vasprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    char *s = ts_malloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static char *ts_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *ts_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = ts_vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

/* data is NUL-terminated once anything was appended; len excludes it. */
typedef struct sbuf {
    char *data;
    size_t len;
    size_t cap;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t c = b->cap ? b->cap : 256;
    while (c < b->len + extra + 1)
        c *= 2;
    b->data = ts_realloc(b->data, c);
    b->cap = c;
}

static void sb_append(sbuf *b, const void *p, size_t n)
{
    sb_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_append(b, s, strlen(s));
}

static void sb_putc(sbuf *b, char c)
{
    sb_append(b, &c, 1);
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = ts_vasprintf(fmt, ap);
    va_end(ap);
    sb_puts(b, s);
    free(s);
}

static void sb_free(sbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Takes the data out of b (never NULL) and re-inits b. */
static char *sb_steal(sbuf *b)
{
    if (!b->data) {
        sb_reserve(b, 0);
        b->data[0] = '\0';
    }
    char *s = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* JSON output (serde_json-like: shortest round-trip numbers)          */
/* ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return need;
}

/* A JSON string literal; bytes that are not valid UTF-8 become \u00XX. */
static void sb_json_str(sbuf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    sb_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        size_t l;
        switch (c) {
        case '"': sb_puts(b, "\\\""); i++; continue;
        case '\\': sb_puts(b, "\\\\"); i++; continue;
        case '\n': sb_puts(b, "\\n"); i++; continue;
        case '\r': sb_puts(b, "\\r"); i++; continue;
        case '\t': sb_puts(b, "\\t"); i++; continue;
        case '\b': sb_puts(b, "\\b"); i++; continue;
        case '\f': sb_puts(b, "\\f"); i++; continue;
        default: break;
        }
        if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
            i++;
        } else if ((l = utf8_seq_len(u + i, n - i)) == 0) {
            sb_printf(b, "\\u%04x", c);
            i++;
        } else {
            sb_append(b, s + i, l);
            i += l;
        }
    }
    sb_putc(b, '"');
}

/* "1e-07" -> "1e-7", "1e+016" -> "1e+16" (Qdrant 1.18.2 prints "1e+308",
 * "1.2345678901234567e+19"); integral values get ".0". */
static void number_finish(sbuf *b, const char *tmp)
{
    const char *e = strchr(tmp, 'e');
    if (!e) {
        sb_puts(b, tmp);
        if (!strpbrk(tmp, ".ni"))
            sb_puts(b, ".0");
        return;
    }
    sb_append(b, tmp, (size_t)(e - tmp) + 1);
    const char *p = e + 1;
    if (*p == '+' || *p == '-')
        sb_putc(b, *p++);
    while (*p == '0' && p[1])
        p++;
    sb_puts(b, p);
}

static void sb_double(sbuf *b, double d)
{
    char tmp[48];
    for (int p = 15; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    number_finish(b, tmp);
}

/* An f64 as Rust's Display prints it: shortest round-trip digits, never an
 * exponent, no ".0" on integral values (1.0 -> "1", 1e20 ->
 * "100000000000000000000").  Qdrant's invalid point id error uses it. */
static void sb_rust_display(sbuf *b, double d)
{
    char tmp[64], digits[32];
    int p, exp10, nd = 0;
    if (!isfinite(d)) {
        sb_puts(b, isnan(d) ? "NaN" : d < 0 ? "-inf" : "inf");
        return;
    }
    for (p = 0; p < 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    const char *t = tmp;
    if (*t == '-') {
        sb_putc(b, '-');
        t++;
    }
    for (; *t && *t != 'e'; t++)
        if (*t != '.')
            digits[nd++] = *t;
    exp10 = atoi(t + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (nd == 1 && digits[0] == '0') {
        sb_putc(b, '0');
        return;
    }
    if (exp10 < 0) {
        sb_puts(b, "0.");
        for (int i = -1; i > exp10; i--)
            sb_putc(b, '0');
        sb_append(b, digits, (size_t)nd);
        return;
    }
    for (int i = 0; i <= exp10 || i < nd; i++) {
        if (i == exp10 + 1)
            sb_putc(b, '.');
        sb_putc(b, i < nd ? digits[i] : '0');
    }
}

/* Stored vector values are f32, printed like serde prints an f32. */
static void sb_float(sbuf *b, float f)
{
    char tmp[48];
    for (int p = 6; p <= 9; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, (double)f);
        if (strtof(tmp, NULL) == f)
            break;
    }
    number_finish(b, tmp);
}

static void sb_json(sbuf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        bool first = true;
        sb_putc(b, '{');
        json_object_foreach ((json_t *)v, k, x) {
            if (!first)
                sb_putc(b, ',');
            first = false;
            sb_json_str(b, k, strlen(k));
            sb_putc(b, ':');
            sb_json(b, x);
        }
        sb_putc(b, '}');
        break;
    }
    case JSON_ARRAY:
        sb_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                sb_putc(b, ',');
            sb_json(b, json_array_get(v, i));
        }
        sb_putc(b, ']');
        break;
    case JSON_STRING:
        if (json_string_length(v) > 1 && json_string_value(v)[0] == '\0') /* a u64, see u64_mark */
            sb_append(b, json_string_value(v) + 1, json_string_length(v) - 1);
        else
            sb_json_str(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        sb_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        sb_double(b, json_real_value(v));
        break;
    case JSON_TRUE:
        sb_puts(b, "true");
        break;
    case JSON_FALSE:
        sb_puts(b, "false");
        break;
    case JSON_NULL:
        sb_puts(b, "null");
        break;
    }
}

/* serde's description of an unexpected value: `string "x"`, `integer `5``... */
static char *json_describe(const json_t *v)
{
    sbuf b = {0};
    switch (json_typeof(v)) {
    case JSON_OBJECT: return ts_strdup("map");
    case JSON_ARRAY: return ts_strdup("sequence");
    case JSON_NULL: return ts_strdup("null");
    case JSON_TRUE: return ts_strdup("boolean `true`");
    case JSON_FALSE: return ts_strdup("boolean `false`");
    case JSON_STRING:
        sb_puts(&b, "string ");
        sb_json(&b, v);
        return sb_steal(&b);
    case JSON_INTEGER:
        sb_puts(&b, "integer `");
        sb_json(&b, v);
        sb_putc(&b, '`');
        return sb_steal(&b);
    case JSON_REAL:
        sb_puts(&b, "floating point `");
        sb_json(&b, v);
        sb_putc(&b, '`');
        return sb_steal(&b);
    }
    return ts_strdup("value");
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* An HTTP error answer: status and Qdrant's status.error text (owned). */
typedef struct terr {
    int status;
    char *msg;
    bool zero_time; /* request-extraction errors report "time": 0.0 */
} terr;

static int terr_set(terr *e, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int terr_set(terr *e, int status, const char *fmt, ...)
{
    va_list ap;
    if (e->msg)
        return -1; /* the first error found is the one reported */
    va_start(ap, fmt);
    e->msg = ts_vasprintf(fmt, ap);
    va_end(ap);
    e->status = status;
    return -1;
}

static void terr_clear(terr *e)
{
    free(e->msg);
    memset(e, 0, sizeof *e);
}

/*
 * Body parsing context.  Format errors (400, serde's deserialization
 * failures) stop the parse; validation errors (422) are collected and
 * reported only when the whole body deserialized, like Qdrant's
 * extract-then-validate order.
 */
typedef struct pctx {
    const char *raw;
    size_t rawlen;
    terr *e;
    sbuf val; /* "path: msg, path: msg" */
    /* How an invalid point id is reported.  ID_PLAIN: "value X is not a
     * valid point ID ... at line L column C".  ID_INSERT (PUT /points, an
     * untagged enum buffered by serde): the same text without the position,
     * X printed from serde's buffer (floats by Rust's Display, null as
     * "Unit").  ID_SELECTOR (delete, clear_payload: the untagged
     * PointsSelector): serde's generic text, no position. */
    enum { ID_PLAIN, ID_INSERT, ID_SELECTOR } id_style;
} pctx;

static size_t find_bytes(const char *hay, size_t hn, const char *needle, size_t nn)
{
    if (nn == 0 || nn > hn)
        return (size_t)-1;
    for (size_t i = 0; i + nn <= hn; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nn) == 0)
            return i;
    return (size_t)-1;
}

/* serde's "at line L column C": the end of the offending value's text in
 * the raw body when it can be found there (approximate otherwise). */
static void locate(const pctx *c, const json_t *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    if (!at || !c->raw)
        return;
    sbuf b = {0};
    sb_json(&b, at);
    size_t pos = find_bytes(c->raw, c->rawlen, b.data, b.len);
    if (pos != (size_t)-1) {
        size_t end = pos + b.len;
        for (size_t i = 0; i < end; i++) {
            if (c->raw[i] == '\n') {
                (*line)++;
                *col = 0;
            } else
                (*col)++;
        }
        (*col)--;
    }
    sb_free(&b);
}

static int fmt_err(pctx *c, const json_t *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fmt_err(pctx *c, const json_t *at, const char *fmt, ...)
{
    va_list ap;
    int line, col;
    va_start(ap, fmt);
    char *m = ts_vasprintf(fmt, ap);
    va_end(ap);
    locate(c, at, &line, &col);
    terr_set(c->e, 400, "Format error in JSON body: %s at line %d column %d", m, line, col);
    c->e->zero_time = true;
    free(m);
    return -1;
}

static int type_err(pctx *c, const json_t *at, const char *expected)
{
    char *d = json_describe(at);
    bool unsigned_int = expected[0] == 'u' && strchr("0123456789s", expected[1]) != NULL; /* u64, usize... */
    /* serde: a negative integer for an unsigned type is a wrong value, not a wrong type */
    fmt_err(c, at, "invalid %s: %s, expected %s", unsigned_int && json_is_integer(at) ? "value" : "type", d,
            expected);
    free(d);
    return -1;
}

/* Records a validation failure and lets the parse go on (returns 0). */
static int val_err(pctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int val_err(pctx *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = ts_vasprintf(fmt, ap);
    va_end(ap);
    if (c->val.len)
        sb_puts(&c->val, ", ");
    sb_printf(&c->val, "%s: %s", path, m);
    free(m);
    return 0;
}

/* After a successful deserialization: 422 if any validation failed. */
static int pctx_finish(pctx *c)
{
    if (c->e->msg)
        return -1;
    if (c->val.len) {
        terr_set(c->e, 422, "Validation error in JSON body: [%s]", c->val.data);
        c->e->zero_time = true;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Point ids                                                           */
/* ------------------------------------------------------------------ */

typedef struct pid {
    bool is_uuid;
    uint64_t num;
    unsigned char uuid[16];
} pid;

/* Numeric ids sort before UUIDs; numbers ascending; UUIDs by bytes. */
static int pid_cmp(const pid *a, const pid *b)
{
    if (a->is_uuid != b->is_uuid)
        return a->is_uuid ? 1 : -1;
    if (!a->is_uuid)
        return a->num < b->num ? -1 : a->num > b->num;
    return memcmp(a->uuid, b->uuid, 16);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The uuid crate's forms: hyphenated, simple, urn:uuid:<hyphenated>,
 * {<hyphenated>}; any case; version and variant not checked. */
static bool uuid_parse(const char *s, size_t n, unsigned char out[16])
{
    bool wrapped = false;
    if (n == 45 && strncasecmp(s, "urn:uuid:", 9) == 0) {
        s += 9;
        n -= 9;
        wrapped = true;
    } else if (n == 38 && s[0] == '{' && s[37] == '}') {
        s += 1;
        n -= 2;
        wrapped = true;
    }
    bool hyph = n == 36;
    if (!hyph && (n != 32 || wrapped))
        return false;
    int k = 0;
    for (size_t i = 0; i < n;) {
        if (hyph && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-')
                return false;
            i++;
            continue;
        }
        int h = hexval((unsigned char)s[i]), l = hexval((unsigned char)s[i + 1]);
        if (h < 0 || l < 0)
            return false;
        out[k++] = (unsigned char)(h << 4 | l);
        i += 2;
    }
    return k == 16;
}

/* "123" or the canonical lowercase hyphenated UUID. */
static void pid_format(const pid *p, char out[48])
{
    if (!p->is_uuid) {
        snprintf(out, 48, "%" PRIu64, p->num);
        return;
    }
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        o += sprintf(o, "%02x", p->uuid[i]);
    }
}

static void sb_pid(sbuf *b, const pid *p)
{
    char tmp[48];
    pid_format(p, tmp);
    if (p->is_uuid)
        sb_printf(b, "\"%s\"", tmp);
    else
        sb_puts(b, tmp);
}

/* A JSON id without error reporting (for values already validated). */
static bool pid_from_json(const json_t *v, pid *out)
{
    memset(out, 0, sizeof *out);
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        out->num = (uint64_t)json_integer_value(v);
        return true;
    }
    if (json_is_string(v) && json_string_length(v) > 1 && json_string_value(v)[0] == '\0') { /* u64_mark */
        out->num = strtoull(json_string_value(v) + 1, NULL, 10);
        return true;
    }
    if (json_is_string(v) && uuid_parse(json_string_value(v), json_string_length(v), out->uuid)) {
        out->is_uuid = true;
        return true;
    }
    return false;
}

static int parse_pid(pctx *c, const json_t *v, pid *out)
{
    if (pid_from_json(v, out))
        return 0;
    if (c->id_style == ID_SELECTOR) {
        terr_set(c->e, 400, "Format error in JSON body: data did not match any variant of untagged enum PointsSelector");
        c->e->zero_time = true;
        return -1;
    }
    sbuf b = {0};
    if (json_is_string(v))
        sb_append(&b, json_string_value(v), json_string_length(v));
    else if (c->id_style == ID_INSERT && json_is_real(v))
        sb_rust_display(&b, json_real_value(v));
    else if (c->id_style == ID_INSERT && json_is_null(v))
        sb_puts(&b, "Unit");
    else
        sb_json(&b, v);
    if (c->id_style == ID_INSERT) {
        terr_set(c->e, 400,
                 "Format error in JSON body: value %s is not a valid point ID, valid values are either an unsigned "
                 "integer or a UUID",
                 b.data);
        c->e->zero_time = true;
    } else
        fmt_err(c, v, "value %s is not a valid point ID, valid values are either an unsigned integer or a UUID",
                b.data);
    sb_free(&b);
    return -1;
}

/* Path form of GET /points/{id}: u64 first, then a UUID. */
static bool pid_from_path(const char *s, pid *out)
{
    memset(out, 0, sizeof *out);
    if (*s && strspn(s, "0123456789") == strlen(s)) {
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno == ERANGE)
            return false;
        out->num = v;
        return true;
    }
    out->is_uuid = uuid_parse(s, strlen(s), out->uuid);
    return out->is_uuid;
}

/* A JSON array of ids into a new array (*out owned by the caller). */
static int parse_pid_list(pctx *c, const json_t *arr, pid **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(arr))
        return type_err(c, arr, "a sequence");
    pid *ids = ts_calloc(json_array_size(arr), sizeof *ids);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (parse_pid(c, json_array_get(arr, i), &ids[i]) < 0) {
            free(ids);
            return -1;
        }
    }
    *out = ids;
    *n = json_array_size(arr);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Payload JSON paths ("a.b", "\"my key\"", no array selectors)        */
/* ------------------------------------------------------------------ */

typedef struct jpath {
    char **segs;
    size_t n;
} jpath;

static void jpath_free(jpath *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->segs[i]);
    free(p->segs);
    p->segs = NULL;
    p->n = 0;
}

static bool jpath_plain_char(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-';
}

/* 0 ok, -1 not a valid JSON path, -2 uses array selectors (unsupported). */
static int jpath_parse(const char *s, jpath *out)
{
    size_t i = 0, len = strlen(s);
    out->segs = NULL;
    out->n = 0;
    for (;;) {
        size_t start, end;
        if (i < len && s[i] == '"') {
            start = ++i;
            while (i < len && s[i] != '"')
                i++;
            if (i == len)
                goto invalid;
            end = i++;
        } else {
            start = i;
            while (i < len && jpath_plain_char((unsigned char)s[i]))
                i++;
            end = i;
            if (end == start)
                goto invalid;
        }
        out->segs = ts_realloc(out->segs, (out->n + 1) * sizeof *out->segs);
        out->segs[out->n++] = ts_strndup(s + start, end - start);
        if (i == len)
            return 0;
        if (s[i] == '[') {
            jpath_free(out);
            return -2;
        }
        if (s[i] != '.' || i + 1 == len)
            goto invalid;
        i++;
    }
invalid:
    jpath_free(out);
    return -1;
}

/* Parses a payload key, reporting errors the way Qdrant does. */
static int parse_jpath(pctx *c, const json_t *v, jpath *out)
{
    if (!json_is_string(v))
        return type_err(c, v, "a string");
    int rc = jpath_parse(json_string_value(v), out);
    if (rc == -1)
        return fmt_err(c, v, "Invalid json path: '%s'", json_string_value(v));
    if (rc == -2) {
        terr_set(c->e, 400, "Bad request: array selectors in JSON paths are not supported by the test server (%s)",
                 json_string_value(v));
        return -1;
    }
    return 0;
}

/* Values found at path in v; arrays on the way and at the end are
 * flattened like Qdrant's payload index does. */
static void jpath_collect(const json_t *v, char *const *segs, size_t n, const json_t ***out, size_t *cnt)
{
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *x = json_array_get(v, i);
            if (n == 0) {
                *out = ts_realloc(*out, (*cnt + 1) * sizeof **out);
                (*out)[(*cnt)++] = x;
            } else
                jpath_collect(x, segs, n, out, cnt);
        }
        return;
    }
    if (n == 0) {
        *out = ts_realloc(*out, (*cnt + 1) * sizeof **out);
        (*out)[(*cnt)++] = v;
        return;
    }
    if (json_is_object(v)) {
        const json_t *x = json_object_get(v, segs[0]);
        if (x)
            jpath_collect(x, segs + 1, n - 1, out, cnt);
    }
}

/* ------------------------------------------------------------------ */
/* Vectors                                                             */
/* ------------------------------------------------------------------ */

typedef enum vkind { VK_DENSE, VK_MULTI, VK_SPARSE } vkind;

/* One named vector.  dense: n == dim values; multi: n values, rows of
 * dim; sparse: n (idx, v) pairs sorted by index. */
typedef struct vec {
    char *name; /* "" for the unnamed vector */
    vkind kind;
    size_t n;
    size_t dim;
    float *v;
    uint32_t *idx;
} vec;

typedef struct vecset {
    vec *items;
    size_t n;
} vecset;

static void vec_free(vec *v)
{
    free(v->name);
    free(v->v);
    free(v->idx);
    memset(v, 0, sizeof *v);
}

static void vecset_free(vecset *s)
{
    for (size_t i = 0; i < s->n; i++)
        vec_free(&s->items[i]);
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

static void vec_copy(vec *dst, const vec *src)
{
    *dst = *src;
    dst->name = ts_strdup(src->name);
    dst->v = ts_malloc(src->n * sizeof *src->v);
    memcpy(dst->v, src->v, src->n * sizeof *src->v);
    dst->idx = NULL;
    if (src->idx) {
        dst->idx = ts_malloc(src->n * sizeof *src->idx);
        memcpy(dst->idx, src->idx, src->n * sizeof *src->idx);
    }
}

static vec *vecset_find(const vecset *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->items[i].name, name) == 0)
            return &s->items[i];
    return NULL;
}

/* Takes ownership of *v's fields; replaces a vector of the same name. */
static void vecset_put(vecset *s, vec *v)
{
    vec *old = vecset_find(s, v->name);
    if (old) {
        vec_free(old);
        *old = *v;
    } else {
        s->items = ts_realloc(s->items, (s->n + 1) * sizeof *s->items);
        s->items[s->n++] = *v;
    }
    memset(v, 0, sizeof *v);
}

static void vecset_remove(vecset *s, const char *name)
{
    vec *v = vecset_find(s, name);
    if (!v)
        return;
    vec_free(v);
    size_t i = (size_t)(v - s->items);
    memmove(&s->items[i], &s->items[i + 1], (s->n - i - 1) * sizeof *s->items);
    s->n--;
}

/* Fills v->v from a JSON array of numbers (appending). */
static int parse_floats(pctx *c, const json_t *arr, vec *v)
{
    size_t n = json_array_size(arr);
    v->v = ts_realloc(v->v, (v->n + n) * sizeof *v->v);
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(arr, i);
        if (!json_is_number(x))
            return type_err(c, x, "f32");
        v->v[v->n++] = (float)json_number_value(x);
    }
    return 0;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Qdrant 1.18.2 names a vector's parts in validation errors as
 * "<points[i].vector>.vector" (the unnamed one) or "<...>.?.<part>" (a named
 * one, whatever its name): path is "<points[i].vector>" or that plus
 * ".<name>".  Returns the path to report for part (caller frees). */
static char *vector_part_path(const char *path, const char *name, const char *part)
{
    size_t n = strlen(path), k = strlen(name);

    if (k && n > k && path[n - k - 1] == '.' && strcmp(path + n - k, name) == 0)
        return ts_asprintf("%.*s.?.%s", (int)(n - k - 1), path, part);
    return ts_asprintf("%s.%s", path, part);
}

/* A format error as serde reports an untagged enum mismatch: no position. */
static int enum_err(pctx *c, const char *text)
{
    terr_set(c->e, 400, "Format error in JSON body: %s", text);
    c->e->zero_time = true;
    return -1;
}

static int parse_sparse(pctx *c, const json_t *obj, const char *path, vec *v)
{
    const json_t *ji = json_object_get(obj, "indices"), *jv = json_object_get(obj, "values");
    if (!ji)
        return fmt_err(c, obj, "missing field `indices`");
    if (!jv)
        return fmt_err(c, obj, "missing field `values`");
    if (!json_is_array(ji))
        return type_err(c, ji, "a sequence");
    if (!json_is_array(jv))
        return type_err(c, jv, "a sequence");
    v->kind = VK_SPARSE;
    size_t n = json_array_size(ji);
    v->idx = ts_calloc(n, sizeof *v->idx);
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(ji, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (json_int_t)UINT32_MAX)
            return type_err(c, x, "u32");
        v->idx[i] = (uint32_t)json_integer_value(x);
    }
    if (parse_floats(c, jv, v) < 0)
        return -1;
    if (v->n != n) {
        char *p = vector_part_path(path, v->name, "values");
        val_err(c, p, "Validation error: must be the same length as indices [{}]");
        free(p);
        v->n = n < v->n ? n : v->n;
        return 0;
    }
    /* sort (index, value) pairs by index, as Qdrant stores them */
    uint64_t *pairs = ts_calloc(n, sizeof *pairs);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v->v[i], sizeof bits);
        pairs[i] = (uint64_t)v->idx[i] << 32 | bits;
    }
    qsort(pairs, n, sizeof *pairs, u64_cmp);
    bool dup = false;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)pairs[i];
        v->idx[i] = (uint32_t)(pairs[i] >> 32);
        memcpy(&v->v[i], &bits, sizeof bits);
        if (i && v->idx[i] == v->idx[i - 1])
            dup = true;
    }
    free(pairs);
    if (dup) {
        char *p = vector_part_path(path, v->name, "indices");
        val_err(c, p, "Validation error: must be unique [{}]");
        free(p);
    }
    return 0;
}

/* One vector value: [f32...] dense, [[f32...]...] multi, {indices, values}
 * sparse.  out->name is set to name. */
static int parse_vector_value(pctx *c, const json_t *x, const char *name, const char *path, vec *out)
{
    memset(out, 0, sizeof *out);
    out->name = ts_strdup(name);
    if (json_is_object(x) && (json_object_get(x, "indices") || json_object_get(x, "values")))
        return parse_sparse(c, x, path, out);
    if (!json_is_array(x))
        return enum_err(c, "data did not match any variant of untagged enum VectorStruct");
    if (json_array_size(x) == 0) {
        char *p = vector_part_path(path, name, "vector");
        out->kind = VK_DENSE;
        val_err(c, p, "dense vector must not be empty");
        free(p);
        return 0;
    }
    if (!json_is_array(json_array_get(x, 0))) {
        out->kind = VK_DENSE;
        if (parse_floats(c, x, out) < 0)
            return -1;
        out->dim = out->n;
        return 0;
    }
    out->kind = VK_MULTI;
    out->dim = json_array_size(json_array_get(x, 0));
    bool same = true;
    for (size_t i = 0; i < json_array_size(x); i++) {
        const json_t *row = json_array_get(x, i);
        if (!json_is_array(row))
            return type_err(c, row, "a sequence");
        if (json_array_size(row) != out->dim)
            same = false;
        if (parse_floats(c, row, out) < 0)
            return -1;
    }
    if (out->dim == 0)
        return val_err(c, path, "must not be empty");
    if (!same)
        return val_err(c, path, "all vectors must have the same dimension");
    return 0;
}

/* VectorStruct: an unnamed vector or a map of named ones. */
static int parse_vector_struct(pctx *c, const json_t *x, const char *path, vecset *out)
{
    memset(out, 0, sizeof *out);
    if (json_is_array(x)) {
        vec v;
        int rc = parse_vector_value(c, x, "", path, &v);
        vecset_put(out, &v);
        return rc;
    }
    if (!json_is_object(x))
        return enum_err(c, "data did not match any variant of untagged enum VectorStruct");
    const char *k;
    json_t *val;
    json_object_foreach ((json_t *)x, k, val) {
        vec v;
        char *p = ts_asprintf("%s.%s", path, k);
        int rc = parse_vector_value(c, val, k, p, &v);
        free(p);
        vecset_put(out, &v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Collections and points                                              */
/* ------------------------------------------------------------------ */

typedef enum distance { DIST_COSINE, DIST_EUCLID, DIST_DOT, DIST_MANHATTAN } distance;

/* A configured vector: dense (size, distance, multi) or sparse. */
typedef struct vcfg {
    char *name; /* "" for the unnamed dense vector */
    bool sparse;
    bool multi;
    long size;
    distance dist;
} vcfg;

typedef struct point {
    pid id;
    json_t *payload; /* object, owned */
    vecset vs;
} point;

typedef struct coll {
    char *name;
    json_t *vectors_json;   /* "vectors" as created, owned; NULL if none */
    json_t *sparse_json;    /* "sparse_vectors" as created, owned; NULL if none */
    json_t *hnsw_json;      /* "hnsw_config" as created (merged over the defaults in GET), owned; NULL if none */
    json_t *metadata;       /* "metadata" as created, owned; NULL if none */
    json_t *payload_schema; /* field name -> {"data_type":...}, owned */
    vcfg *cfg;
    size_t ncfg;
    bool unnamed; /* created with the unnamed vector form */
    point *pts;   /* sorted by id */
    size_t npts, cap;
} coll;

static void point_free(point *p)
{
    json_decref(p->payload);
    vecset_free(&p->vs);
}

static void coll_free(coll *c)
{
    if (!c)
        return;
    free(c->name);
    json_decref(c->vectors_json);
    json_decref(c->sparse_json);
    json_decref(c->hnsw_json);
    json_decref(c->metadata);
    json_decref(c->payload_schema);
    for (size_t i = 0; i < c->ncfg; i++)
        free(c->cfg[i].name);
    free(c->cfg);
    for (size_t i = 0; i < c->npts; i++)
        point_free(&c->pts[i]);
    free(c->pts);
    free(c);
}

static const vcfg *coll_vcfg(const coll *c, const char *name)
{
    for (size_t i = 0; i < c->ncfg; i++)
        if (strcmp(c->cfg[i].name, name) == 0)
            return &c->cfg[i];
    return NULL;
}

/* Binary search: true if found; *at = its index or the insertion point. */
static bool coll_find(const coll *c, const pid *id, size_t *at)
{
    size_t lo = 0, hi = c->npts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = pid_cmp(&c->pts[mid].id, id);
        if (r == 0) {
            *at = mid;
            return true;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return false;
}

static point *coll_get(coll *c, const pid *id)
{
    size_t at;
    return coll_find(c, id, &at) ? &c->pts[at] : NULL;
}

/* Inserts an empty point (payload {}) at its place; returns it. */
static point *coll_insert(coll *c, const pid *id, size_t at)
{
    if (c->npts == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->pts = ts_realloc(c->pts, c->cap * sizeof *c->pts);
    }
    memmove(&c->pts[at + 1], &c->pts[at], (c->npts - at) * sizeof *c->pts);
    c->npts++;
    point *p = &c->pts[at];
    memset(p, 0, sizeof *p);
    p->id = *id;
    p->payload = json_object();
    return p;
}

static void coll_remove_at(coll *c, size_t at)
{
    point_free(&c->pts[at]);
    memmove(&c->pts[at], &c->pts[at + 1], (c->npts - at - 1) * sizeof *c->pts);
    c->npts--;
}

static int parse_distance(pctx *c, const json_t *d, distance *out)
{
    static const char *const names[] = {"Cosine", "Euclid", "Dot", "Manhattan"};
    if (!d)
        return fmt_err(c, NULL, "missing field `distance`");
    if (!json_is_string(d))
        return type_err(c, d, "a string");
    for (int i = 0; i < 4; i++)
        if (strcmp(json_string_value(d), names[i]) == 0) {
            *out = (distance)i;
            return 0;
        }
    return fmt_err(c, d, "unknown variant `%s`, expected one of `Cosine`, `Euclid`, `Dot`, `Manhattan`",
                   json_string_value(d));
}

static int parse_vector_params(pctx *c, const json_t *p, const char *name, const char *path, vcfg *out)
{
    memset(out, 0, sizeof *out);
    out->name = ts_strdup(name);
    if (!json_is_object(p))
        return type_err(c, p, "struct VectorParams");
    const json_t *size = json_object_get(p, "size");
    if (!size)
        return fmt_err(c, p, "missing field `size`");
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return type_err(c, size, "u64");
    out->size = (long)json_integer_value(size);
    if (parse_distance(c, json_object_get(p, "distance"), &out->dist) < 0)
        return -1;
    const json_t *mv = json_object_get(p, "multivector_config");
    out->multi = mv && !json_is_null(mv);
    if (out->size == 0)
        return fmt_err(c, size, "size 0 (NonZeroU64)"); /* replaced by the VectorsConfig error */
    if (out->size > TS_MAX_DIM) {
        char *sp = ts_asprintf("%s.size", path);
        val_err(c, sp, "value %ld invalid, must be from 1 to %d", out->size, TS_MAX_DIM);
        free(sp);
    }
    return 0;
}

static void coll_add_cfg(coll *c, vcfg *v)
{
    c->cfg = ts_realloc(c->cfg, (c->ncfg + 1) * sizeof *c->cfg);
    c->cfg[c->ncfg++] = *v;
    memset(v, 0, sizeof *v);
}

/* The "vectors" object of CreateCollection into col (v: scratch). */
static int parse_vectors_config(pctx *c, const json_t *vectors, coll *col, vcfg *v)
{
    const char *k;
    json_t *x;
    col->vectors_json = json_deep_copy(vectors);
    if (json_object_get(vectors, "size") || json_object_get(vectors, "distance")) {
        col->unnamed = true;
        if (parse_vector_params(c, vectors, "", "vectors", v) < 0)
            return -1;
        coll_add_cfg(col, v);
        return 0;
    }
    json_object_foreach ((json_t *)vectors, k, x) {
        char *path = ts_asprintf("vectors.%s", k);
        int prc = parse_vector_params(c, x, k, path, v);
        free(path);
        if (prc < 0)
            return -1;
        coll_add_cfg(col, v);
    }
    return 0;
}

static bool json_ws(char ch);

/*
 * Where serde reports an error of the untagged enum that the top-level
 * member `key` deserializes into: after the buffered value, at the next
 * '}' or ']' if that follows (else at the value's last character).
 * Approximate: the first occurrence of "key" in the raw body is taken.
 */
static void locate_member_end(const pctx *c, const char *key, int *line, int *col)
{
    char *needle = ts_asprintf("\"%s\"", key);
    size_t pos = find_bytes(c->raw, c->rawlen, needle, strlen(needle)), i, end = 0;
    int depth = 0;
    *line = 1;
    *col = 1;
    if (pos == (size_t)-1)
        goto cleanup;
    for (i = pos + strlen(needle); i < c->rawlen && (json_ws(c->raw[i]) || c->raw[i] == ':'); i++)
        ;
    for (; i < c->rawlen; i++) {
        char ch = c->raw[i];
        if (ch == '"') {
            for (i++; i < c->rawlen && c->raw[i] != '"'; i++)
                if (c->raw[i] == '\\')
                    i++;
        } else if (ch == '{' || ch == '[')
            depth++;
        else if (ch == '}' || ch == ']') {
            if (depth == 0)
                break; /* the end of a scalar's enclosing object */
            depth--;
        } else if (ch == ',' && depth == 0)
            break;
        end = i;
        if (depth == 0 && (ch == '}' || ch == ']' || ch == '"'))
            break;
    }
    for (i = end + 1; i < c->rawlen && json_ws(c->raw[i]); i++)
        ;
    if (i < c->rawlen && (c->raw[i] == '}' || c->raw[i] == ']'))
        end = i;
    *col = 0;
    for (i = 0; i <= end && i < c->rawlen; i++) {
        if (c->raw[i] == '\n') {
            (*line)++;
            *col = 0;
        } else
            (*col)++;
    }
cleanup:
    free(needle);
}

/* CreateCollection body -> a new collection (owned by the caller). */
static int parse_create_collection(pctx *c, const json_t *body, const char *name, coll **out)
{
    coll *col = ts_calloc(1, sizeof *col);
    const json_t *vectors = json_object_get(body, "vectors");
    const json_t *sparse = json_object_get(body, "sparse_vectors");
    const char *k;
    json_t *x;
    vcfg v = {0};
    int rc = -1;

    *out = NULL;
    col->name = ts_strdup(name);
    col->payload_schema = json_object();
    if (!json_is_object(body)) {
        type_err(c, body, "struct CreateCollection");
        goto cleanup;
    }
    if (vectors && !json_is_null(vectors)) {
        /* VectorsConfig is an untagged enum: any error inside it (a size of
         * 0 too: NonZeroU64) is serde's generic one, at the value's end */
        if (!json_is_object(vectors) || parse_vectors_config(c, vectors, col, &v) < 0) {
            int line, column;
            terr_clear(c->e);
            locate_member_end(c, "vectors", &line, &column);
            terr_set(c->e, 400,
                     "Format error in JSON body: data did not match any variant of untagged enum VectorsConfig at "
                     "line %d column %d",
                     line, column);
            c->e->zero_time = true;
            goto cleanup;
        }
    }
    {
        /* HnswConfigDiff: its integers are usize (a negative one is serde's
         * "invalid value"); kept and shown by GET /collections/{c} */
        const json_t *hnsw = json_object_get(body, "hnsw_config");
        if (hnsw && !json_is_null(hnsw)) {
            if (!json_is_object(hnsw)) {
                type_err(c, hnsw, "struct HnswConfigDiff");
                goto cleanup;
            }
            json_object_foreach ((json_t *)hnsw, k, x) {
                if (strcmp(k, "on_disk") == 0 || strcmp(k, "inline_storage") == 0) {
                    if (!json_is_boolean(x) && !json_is_null(x)) {
                        type_err(c, x, "a boolean");
                        goto cleanup;
                    }
                } else if (!json_is_null(x) && (!json_is_integer(x) || json_integer_value(x) < 0)) {
                    type_err(c, x, "usize");
                    goto cleanup;
                }
            }
            col->hnsw_json = json_deep_copy(hnsw);
        }
    }
    {
        const json_t *meta = json_object_get(body, "metadata");
        if (meta && !json_is_null(meta)) {
            if (!json_is_object(meta)) {
                type_err(c, meta, "a map");
                goto cleanup;
            }
            col->metadata = json_deep_copy(meta);
        }
    }
    if (sparse && !json_is_null(sparse)) {
        if (!json_is_object(sparse)) {
            type_err(c, sparse, "a map");
            goto cleanup;
        }
        col->sparse_json = json_deep_copy(sparse);
        json_object_foreach ((json_t *)sparse, k, x) {
            v.name = ts_strdup(k);
            v.sparse = true;
            coll_add_cfg(col, &v);
        }
    }
    *out = col;
    col = NULL;
    rc = 0;
cleanup:
    free(v.name);
    coll_free(col);
    return rc;
}

/* Checks a point's vectors against the collection (400 Wrong input). */
static int check_vectors(const coll *c, const vecset *vs, terr *e)
{
    for (size_t i = 0; i < vs->n; i++) {
        const vec *v = &vs->items[i];
        const vcfg *cfg = coll_vcfg(c, v->name);
        if (!cfg)
            return terr_set(e, 400, "Wrong input: Not existing vector name error: %s", v->name);
        if (cfg->sparse != (v->kind == VK_SPARSE))
            return terr_set(e, 400, "Wrong input: Conversion between sparse and regular vectors failed");
        if (cfg->sparse)
            continue;
        if (cfg->multi != (v->kind == VK_MULTI))
            return terr_set(e, 400, "Wrong input: Conversion between multi and regular vectors failed");
        if ((long)v->dim != cfg->size) /* Qdrant 1.18.2 names a named vector */
            return terr_set(e, 400, "Wrong input: Vector dimension error: expected dim: %ld, got %zu%s%s%s", cfg->size,
                            v->dim, v->name[0] ? " for vector '" : "", v->name, v->name[0] ? "'" : "");
    }
    return 0;
}

/* A stored copy of v: f32 values, Cosine vectors normalised (per row). */
static void store_vector(const coll *c, const vec *v, vec *out)
{
    vec_copy(out, v);
    const vcfg *cfg = coll_vcfg(c, v->name);
    if (!cfg || cfg->sparse || cfg->dist != DIST_COSINE || v->dim == 0)
        return;
    for (size_t r = 0; r + v->dim <= v->n; r += v->dim) {
        float sum = 0.0f;
        for (size_t i = 0; i < v->dim; i++)
            sum += out->v[r + i] * out->v[r + i];
        float len = sqrtf(sum);
        if (len < 1.1920929e-07f) /* f32::EPSILON: left as is */
            continue;
        for (size_t i = 0; i < v->dim; i++)
            out->v[r + i] /= len;
    }
}

/* ------------------------------------------------------------------ */
/* Filters: must / should / must_not over has_id, match (value, any),  */
/* range, is_empty, is_null and nested filters                         */
/* ------------------------------------------------------------------ */

static int filter_check(pctx *c, const json_t *f);

static int unsupported_filter(pctx *c)
{
    return terr_set(c->e, 400, "Bad request: unsupported filter in test server");
}

static bool is_filter_object(const json_t *o)
{
    return json_object_get(o, "must") || json_object_get(o, "should") || json_object_get(o, "must_not");
}

static int check_key(pctx *c, const json_t *key)
{
    jpath p;
    if (!json_is_string(key))
        return type_err(c, key, "a string");
    int rc = jpath_parse(json_string_value(key), &p);
    if (rc == -1)
        return fmt_err(c, key, "Invalid json path: '%s'", json_string_value(key));
    jpath_free(&p);
    return rc == 0 ? 0 : unsupported_filter(c);
}

static int cond_check(pctx *c, const json_t *cond)
{
    if (!json_is_object(cond))
        return type_err(c, cond, "untagged enum Condition");
    if (is_filter_object(cond))
        return filter_check(c, cond);
    const json_t *has_id = json_object_get(cond, "has_id");
    if (has_id) {
        pid *ids;
        size_t n;
        if (json_object_size(cond) != 1 || parse_pid_list(c, has_id, &ids, &n) < 0)
            return c->e->msg ? -1 : unsupported_filter(c);
        free(ids);
        return 0;
    }
    const json_t *ie = json_object_get(cond, "is_empty"), *in = json_object_get(cond, "is_null");
    if (ie || in) {
        const json_t *o = ie ? ie : in;
        if (json_object_size(cond) != 1 || !json_is_object(o) || !json_object_get(o, "key"))
            return unsupported_filter(c);
        return check_key(c, json_object_get(o, "key"));
    }
    const json_t *key = json_object_get(cond, "key"), *match = json_object_get(cond, "match"),
                 *range = json_object_get(cond, "range");
    if (!key || json_object_size(cond) != 2 || (!match && !range))
        return unsupported_filter(c);
    if (check_key(c, key) < 0)
        return -1;
    if (match) {
        const json_t *val = json_object_get(match, "value"), *any = json_object_get(match, "any");
        if (json_object_size(match) != 1)
            return unsupported_filter(c);
        if (val && (json_is_string(val) || json_is_integer(val) || json_is_boolean(val)))
            return 0;
        if (any && json_is_array(any))
            return 0;
        return unsupported_filter(c);
    }
    if (!json_is_object(range))
        return unsupported_filter(c);
    const char *k;
    json_t *x;
    json_object_foreach ((json_t *)range, k, x) {
        if (strcmp(k, "lt") && strcmp(k, "lte") && strcmp(k, "gt") && strcmp(k, "gte"))
            return unsupported_filter(c);
        if (!json_is_number(x) && !json_is_null(x))
            return unsupported_filter(c);
    }
    return 0;
}

/* A clause value: null, one condition or an array of them. */
static int clause_check(pctx *c, const json_t *cl)
{
    if (!cl || json_is_null(cl))
        return 0;
    if (!json_is_array(cl))
        return cond_check(c, cl);
    for (size_t i = 0; i < json_array_size(cl); i++)
        if (cond_check(c, json_array_get(cl, i)) < 0)
            return -1;
    return 0;
}

/* 0 if f is a filter this server evaluates; NULL and null are "match all". */
static int filter_check(pctx *c, const json_t *f)
{
    const char *k;
    json_t *x;
    if (!f || json_is_null(f))
        return 0;
    if (!json_is_object(f))
        return type_err(c, f, "struct Filter");
    json_object_foreach ((json_t *)f, k, x) {
        if (strcmp(k, "min_should") == 0 && json_is_null(x))
            continue;
        if (strcmp(k, "must") && strcmp(k, "should") && strcmp(k, "must_not"))
            return unsupported_filter(c);
        if (clause_check(c, x) < 0)
            return -1;
    }
    return 0;
}

static bool filter_match(const json_t *f, const point *p);

static bool value_matches(const json_t *v, const json_t *match)
{
    const json_t *val = json_object_get(match, "value"), *any = json_object_get(match, "any");
    if (val)
        return json_equal((json_t *)v, (json_t *)val);
    for (size_t i = 0; i < json_array_size(any); i++)
        if (json_equal((json_t *)v, json_array_get(any, i)))
            return true;
    return false;
}

static bool value_in_range(const json_t *v, const json_t *range)
{
    if (!json_is_number(v))
        return false;
    double d = json_number_value(v);
    const json_t *lt = json_object_get(range, "lt"), *lte = json_object_get(range, "lte"),
                 *gt = json_object_get(range, "gt"), *gte = json_object_get(range, "gte");
    if (json_is_number(lt) && !(d < json_number_value(lt)))
        return false;
    if (json_is_number(lte) && !(d <= json_number_value(lte)))
        return false;
    if (json_is_number(gt) && !(d > json_number_value(gt)))
        return false;
    if (json_is_number(gte) && !(d >= json_number_value(gte)))
        return false;
    return true;
}

static bool cond_match(const json_t *cond, const point *p)
{
    if (is_filter_object(cond))
        return filter_match(cond, p);
    const json_t *has_id = json_object_get(cond, "has_id");
    if (has_id) {
        for (size_t i = 0; i < json_array_size(has_id); i++) {
            pid id;
            if (pid_from_json(json_array_get(has_id, i), &id) && pid_cmp(&id, &p->id) == 0)
                return true;
        }
        return false;
    }
    const json_t *ie = json_object_get(cond, "is_empty"), *in = json_object_get(cond, "is_null");
    const json_t *key = ie ? json_object_get(ie, "key") : in ? json_object_get(in, "key") : json_object_get(cond, "key");
    const json_t *match = json_object_get(cond, "match"), *range = json_object_get(cond, "range");
    const json_t **vals = NULL;
    size_t n = 0;
    jpath path;
    bool hit = false;

    jpath_parse(json_string_value(key), &path);
    if (in) {
        /* is_null: the value itself is null (arrays are not flattened) */
        const json_t *v = p->payload;
        for (size_t i = 0; v && i < path.n; i++)
            v = json_is_object(v) ? json_object_get(v, path.segs[i]) : NULL;
        hit = v && json_is_null(v);
        jpath_free(&path);
        return hit;
    }
    jpath_collect(p->payload, path.segs, path.n, &vals, &n);
    if (ie) {
        hit = true;
        for (size_t i = 0; i < n; i++)
            if (!json_is_null(vals[i]))
                hit = false;
    } else {
        for (size_t i = 0; i < n && !hit; i++)
            hit = match ? value_matches(vals[i], match) : value_in_range(vals[i], range);
    }
    free(vals);
    jpath_free(&path);
    return hit;
}

static size_t clause_size(const json_t *cl)
{
    if (!cl || json_is_null(cl))
        return 0;
    return json_is_array(cl) ? json_array_size(cl) : 1;
}

static const json_t *clause_get(const json_t *cl, size_t i)
{
    return json_is_array(cl) ? json_array_get(cl, i) : cl;
}

static bool filter_match(const json_t *f, const point *p)
{
    if (!f || json_is_null(f))
        return true;
    const json_t *must = json_object_get(f, "must"), *should = json_object_get(f, "should"),
                 *must_not = json_object_get(f, "must_not");
    for (size_t i = 0; i < clause_size(must); i++)
        if (!cond_match(clause_get(must, i), p))
            return false;
    for (size_t i = 0; i < clause_size(must_not); i++)
        if (cond_match(clause_get(must_not, i), p))
            return false;
    if (clause_size(should) == 0)
        return true;
    for (size_t i = 0; i < clause_size(should); i++)
        if (cond_match(clause_get(should, i), p))
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* Read selectors (with_payload / with_vector) and Record output       */
/* ------------------------------------------------------------------ */

typedef enum selmode { SEL_NONE, SEL_ALL, SEL_INCLUDE, SEL_EXCLUDE } selmode;

typedef struct sel {
    selmode mode;
    const json_t *keys; /* array of strings (borrowed) for INCLUDE/EXCLUDE */
} sel;

static bool strings_array(const json_t *a)
{
    if (!json_is_array(a))
        return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_is_string(json_array_get(a, i)))
            return false;
    return true;
}

/* with_payload: bool | [keys] | {"include": [...]} | {"exclude": [...]} */
static int parse_with_payload(pctx *c, const json_t *v, selmode dflt, sel *out)
{
    out->keys = NULL;
    out->mode = dflt;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        out->mode = json_is_true(v) ? SEL_ALL : SEL_NONE;
        return 0;
    }
    if (strings_array(v)) {
        out->mode = SEL_INCLUDE;
        out->keys = v;
        return 0;
    }
    const json_t *inc = json_object_get(v, "include"), *exc = json_object_get(v, "exclude");
    if (json_is_object(v) && json_object_size(v) == 1 && (strings_array(inc) || strings_array(exc))) {
        out->mode = inc ? SEL_INCLUDE : SEL_EXCLUDE;
        out->keys = inc ? inc : exc;
        return 0;
    }
    return fmt_err(c, v, "data did not match any variant of untagged enum WithPayloadInterface");
}

/* with_vector: bool | [names] */
static int parse_with_vector(pctx *c, const json_t *v, selmode dflt, sel *out)
{
    out->keys = NULL;
    out->mode = dflt;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        out->mode = json_is_true(v) ? SEL_ALL : SEL_NONE;
        return 0;
    }
    if (strings_array(v)) {
        out->mode = SEL_INCLUDE;
        out->keys = v;
        return 0;
    }
    return fmt_err(c, v, "data did not match any variant of untagged enum WithVector");
}

static bool sel_has(const sel *s, const char *name)
{
    if (s->mode == SEL_ALL)
        return true;
    if (s->mode == SEL_NONE)
        return false;
    bool listed = false;
    for (size_t i = 0; i < json_array_size(s->keys); i++)
        if (strcmp(json_string_value(json_array_get(s->keys, i)), name) == 0)
            listed = true;
    return s->mode == SEL_INCLUDE ? listed : !listed;
}

static void sb_vector_value(sbuf *b, const vec *v)
{
    if (v->kind == VK_SPARSE) {
        sb_puts(b, "{\"indices\":[");
        for (size_t i = 0; i < v->n; i++)
            sb_printf(b, "%s%" PRIu32, i ? "," : "", v->idx[i]);
        sb_puts(b, "],\"values\":[");
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                sb_putc(b, ',');
            sb_float(b, v->v[i]);
        }
        sb_puts(b, "]}");
        return;
    }
    if (v->kind == VK_MULTI)
        sb_putc(b, '[');
    for (size_t i = 0; i < v->n; i++) {
        if (i % v->dim == 0)
            sb_puts(b, i == 0 ? "[" : "],[");
        else
            sb_putc(b, ',');
        sb_float(b, v->v[i]);
    }
    sb_puts(b, v->n ? "]" : "[]");
    if (v->kind == VK_MULTI)
        sb_putc(b, ']');
}

/* Record: {"id":..,"payload":{..},"vector":..}; keys omitted when not requested. */
static void sb_record(sbuf *b, const coll *c, const point *p, const sel *wp, const sel *wv)
{
    sb_puts(b, "{\"id\":");
    sb_pid(b, &p->id);
    if (wp->mode != SEL_NONE) {
        const char *k;
        json_t *x;
        bool first = true;
        sb_puts(b, ",\"payload\":{");
        json_object_foreach (p->payload, k, x) {
            if (!sel_has(wp, k))
                continue;
            if (!first)
                sb_putc(b, ',');
            first = false;
            sb_json_str(b, k, strlen(k));
            sb_putc(b, ':');
            sb_json(b, x);
        }
        sb_putc(b, '}');
    }
    if (wv->mode != SEL_NONE) {
        const vec *unnamed = vecset_find(&p->vs, "");
        sb_puts(b, ",\"vector\":");
        if (c->unnamed && unnamed && sel_has(wv, "")) {
            sb_vector_value(b, unnamed);
        } else {
            bool first = true;
            sb_putc(b, '{');
            for (size_t i = 0; i < p->vs.n; i++) {
                if (!sel_has(wv, p->vs.items[i].name))
                    continue;
                if (!first)
                    sb_putc(b, ',');
                first = false;
                sb_json_str(b, p->vs.items[i].name, strlen(p->vs.items[i].name));
                sb_putc(b, ':');
                sb_vector_value(b, &p->vs.items[i]);
            }
            sb_putc(b, '}');
        }
    }
    sb_putc(b, '}');
}

/* ------------------------------------------------------------------ */
/* Point write operations                                              */
/* ------------------------------------------------------------------ */

typedef enum opkind {
    OP_UPSERT,
    OP_DELETE,
    OP_SET_PAYLOAD,
    OP_OVERWRITE_PAYLOAD,
    OP_DELETE_PAYLOAD,
    OP_CLEAR_PAYLOAD,
    OP_UPDATE_VECTORS,
    OP_DELETE_VECTORS,
    OP_COUNT
} opkind;

/* The batch variants, in the order of Qdrant's untagged UpdateOperation. */
static const char *const op_names[OP_COUNT] = {"upsert",         "delete",        "set_payload",
                                               "overwrite_payload", "delete_payload", "clear_payload",
                                               "update_vectors", "delete_vectors"};

typedef enum update_mode { UM_UPSERT, UM_INSERT_ONLY, UM_UPDATE_ONLY } update_mode;

typedef struct inpoint {
    pid id;
    vecset vs;
    const json_t *payload; /* object or NULL (borrowed from the body) */
} inpoint;

/* Everything borrowed points into the request body, which outlives the op. */
typedef struct op {
    opkind kind;
    inpoint *pts; /* upsert, update_vectors */
    size_t npts;
    pid *ids; /* selector by ids (has_ids) */
    size_t nids;
    bool has_ids;
    const json_t *filter;  /* selector by filter, NULL if none */
    const json_t *payload; /* set / overwrite */
    jpath key;             /* set_payload "key" (n == 0: top level) */
    jpath *paths;          /* delete_payload keys */
    size_t npaths;
    char **vnames; /* delete_vectors */
    size_t nvnames;
    const json_t *update_filter;
    update_mode mode;
} op;

static void op_free(op *o)
{
    for (size_t i = 0; i < o->npts; i++)
        vecset_free(&o->pts[i].vs);
    free(o->pts);
    free(o->ids);
    jpath_free(&o->key);
    for (size_t i = 0; i < o->npaths; i++)
        jpath_free(&o->paths[i]);
    free(o->paths);
    for (size_t i = 0; i < o->nvnames; i++)
        free(o->vnames[i]);
    free(o->vnames);
    memset(o, 0, sizeof *o);
}

static int parse_payload_value(pctx *c, const json_t *v, const json_t **out)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return type_err(c, v, "a map");
    *out = v;
    return 0;
}

/* One PointStruct of the list form. */
static int parse_point_struct(pctx *c, const json_t *p, const char *path, inpoint *out)
{
    if (!json_is_object(p))
        return type_err(c, p, "struct PointStruct");
    const json_t *id = json_object_get(p, "id"), *v = json_object_get(p, "vector");
    if (!v)
        v = json_object_get(p, "vectors");
    if (!id)
        return fmt_err(c, p, "missing field `id`");
    if (parse_pid(c, id, &out->id) < 0)
        return -1;
    if (!v)
        return fmt_err(c, p, "missing field `vector`");
    char *vp = ts_asprintf("%s.vector", path);
    int rc = parse_vector_struct(c, v, vp, &out->vs);
    free(vp);
    if (rc < 0)
        return -1;
    return parse_payload_value(c, json_object_get(p, "payload"), &out->payload);
}

static int parse_points_list(pctx *c, const json_t *arr, const char *path, op *o)
{
    if (!json_is_array(arr))
        return type_err(c, arr, "a sequence");
    o->pts = ts_calloc(json_array_size(arr), sizeof *o->pts);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char *pp = ts_asprintf("%s[%zu]", path, i);
        o->npts++;
        int rc = parse_point_struct(c, json_array_get(arr, i), pp, &o->pts[i]);
        free(pp);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The columnar form {"batch": {"ids", "vectors", "payloads"}}. */
static int parse_points_batch(pctx *c, const json_t *b, const char *path, op *o)
{
    if (!json_is_object(b))
        return type_err(c, b, "struct Batch");
    const json_t *ids = json_object_get(b, "ids"), *vectors = json_object_get(b, "vectors"),
                 *payloads = json_object_get(b, "payloads");
    pid *pids = NULL;
    size_t n = 0;
    if (!ids)
        return fmt_err(c, b, "missing field `ids`");
    if (!vectors)
        return fmt_err(c, b, "missing field `vectors`");
    if (parse_pid_list(c, ids, &pids, &n) < 0)
        return -1;
    o->pts = ts_calloc(n, sizeof *o->pts);
    o->npts = n;
    for (size_t i = 0; i < n; i++)
        o->pts[i].id = pids[i];
    free(pids);
    if (payloads && !json_is_null(payloads)) {
        if (!json_is_array(payloads))
            return type_err(c, payloads, "a sequence");
        if (json_array_size(payloads) != n) {
            char *p = ts_asprintf("%s.payloads", path);
            val_err(c, p, "must have the same length as ids");
            free(p);
        }
        for (size_t i = 0; i < n && i < json_array_size(payloads); i++)
            if (parse_payload_value(c, json_array_get(payloads, i), &o->pts[i].payload) < 0)
                return -1;
    }
    if (json_is_array(vectors)) {
        if (json_array_size(vectors) != n) {
            char *p = ts_asprintf("%s.vectors", path);
            val_err(c, p, "must have the same length as ids");
            free(p);
        }
        for (size_t i = 0; i < n && i < json_array_size(vectors); i++) {
            vec v;
            char *p = ts_asprintf("%s.vectors[%zu]", path, i);
            int rc = parse_vector_value(c, json_array_get(vectors, i), "", p, &v);
            free(p);
            vecset_put(&o->pts[i].vs, &v);
            if (rc < 0)
                return -1;
        }
        return 0;
    }
    if (!json_is_object(vectors))
        return fmt_err(c, vectors, "data did not match any variant of untagged enum BatchVectorStruct");
    const char *k;
    json_t *arr;
    json_object_foreach ((json_t *)vectors, k, arr) {
        if (!json_is_array(arr))
            return type_err(c, arr, "a sequence");
        if (json_array_size(arr) != n) {
            char *p = ts_asprintf("%s.vectors.%s", path, k);
            val_err(c, p, "must have the same length as ids");
            free(p);
        }
        for (size_t i = 0; i < n && i < json_array_size(arr); i++) {
            vec v;
            char *p = ts_asprintf("%s.vectors.%s[%zu]", path, k, i);
            int rc = parse_vector_value(c, json_array_get(arr, i), k, p, &v);
            free(p);
            vecset_put(&o->pts[i].vs, &v);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

static int parse_update_filter(pctx *c, const json_t *body, op *o)
{
    const json_t *uf = json_object_get(body, "update_filter");
    if (!uf || json_is_null(uf))
        return 0;
    if (filter_check(c, uf) < 0)
        return -1;
    o->update_filter = uf;
    return 0;
}

/* PointInsertOperations: {"points": [...]} or {"batch": {...}}. */
static int parse_upsert(pctx *c, const json_t *body, const char *prefix, op *o)
{
    char *path = NULL;
    int rc = -1;
    o->kind = OP_UPSERT;
    if (!json_is_object(body))
        return type_err(c, body, "struct PointInsertOperations");
    c->id_style = ID_INSERT;
    if (json_object_get(body, "batch")) {
        path = ts_asprintf("%sbatch", prefix);
        if (parse_points_batch(c, json_object_get(body, "batch"), path, o) < 0)
            goto cleanup;
    } else if (json_object_get(body, "points")) {
        path = ts_asprintf("%spoints", prefix);
        if (parse_points_list(c, json_object_get(body, "points"), path, o) < 0)
            goto cleanup;
    } else {
        fmt_err(c, body, "Invalid PointInsertOperations format");
        goto cleanup;
    }
    if (parse_update_filter(c, body, o) < 0)
        goto cleanup;
    const json_t *mode = json_object_get(body, "update_mode");
    if (mode && !json_is_null(mode)) {
        const char *m = json_string_value(mode);
        if (m && strcmp(m, "upsert") == 0)
            o->mode = UM_UPSERT;
        else if (m && strcmp(m, "insert_only") == 0)
            o->mode = UM_INSERT_ONLY;
        else if (m && strcmp(m, "update_only") == 0)
            o->mode = UM_UPDATE_ONLY;
        else {
            fmt_err(c, mode, "unknown variant `%s`, expected one of `upsert`, `insert_only`, `update_only`",
                    m ? m : "?");
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    c->id_style = ID_PLAIN;
    free(path);
    return rc;
}

/* points and/or filter, at least one of them; missing: the error if neither. */
static int parse_target(pctx *c, const json_t *body, const char *missing, op *o)
{
    const json_t *pts = json_object_get(body, "points"), *f = json_object_get(body, "filter");
    if (pts && !json_is_null(pts)) {
        if (parse_pid_list(c, pts, &o->ids, &o->nids) < 0)
            return -1;
        o->has_ids = true;
    }
    if (f && !json_is_null(f)) {
        if (filter_check(c, f) < 0)
            return -1;
        o->filter = f;
    }
    if (!o->has_ids && !o->filter)
        return fmt_err(c, body, "%s", missing);
    return 0;
}

#define NO_TARGET "Either list of point ids or filter must be provided"

/* PointsSelector (delete, clear_payload): ids take precedence over a filter. */
static int parse_selector(pctx *c, const json_t *body, opkind kind, op *o)
{
    o->kind = kind;
    if (!json_is_object(body))
        return type_err(c, body, "untagged enum PointsSelector");
    c->id_style = ID_SELECTOR;
    int rc = parse_target(c, body, "data did not match any variant of untagged enum PointsSelector", o);
    c->id_style = ID_PLAIN;
    if (rc < 0)
        return -1;
    if (o->has_ids)
        o->filter = NULL;
    return 0;
}

static int parse_set_payload(pctx *c, const json_t *body, opkind kind, op *o)
{
    o->kind = kind;
    if (!json_is_object(body))
        return type_err(c, body, "struct SetPayload");
    const json_t *payload = json_object_get(body, "payload"), *key = json_object_get(body, "key");
    if (!payload)
        return fmt_err(c, body, "missing field `payload`");
    if (!json_is_object(payload))
        return type_err(c, payload, "a map");
    o->payload = payload;
    if (kind == OP_SET_PAYLOAD && key && !json_is_null(key) && parse_jpath(c, key, &o->key) < 0)
        return -1;
    return parse_target(c, body, NO_TARGET, o);
}

static int parse_delete_payload(pctx *c, const json_t *body, op *o)
{
    o->kind = OP_DELETE_PAYLOAD;
    if (!json_is_object(body))
        return type_err(c, body, "struct DeletePayload");
    const json_t *keys = json_object_get(body, "keys");
    if (!keys)
        return fmt_err(c, body, "missing field `keys`");
    if (!json_is_array(keys))
        return type_err(c, keys, "a sequence");
    o->paths = ts_calloc(json_array_size(keys), sizeof *o->paths);
    for (size_t i = 0; i < json_array_size(keys); i++) {
        if (parse_jpath(c, json_array_get(keys, i), &o->paths[i]) < 0)
            return -1;
        o->npaths++;
    }
    return parse_target(c, body, NO_TARGET, o);
}

static int parse_update_vectors(pctx *c, const json_t *body, const char *prefix, op *o)
{
    o->kind = OP_UPDATE_VECTORS;
    if (!json_is_object(body))
        return type_err(c, body, "struct UpdateVectors");
    const json_t *pts = json_object_get(body, "points");
    if (!pts)
        return fmt_err(c, body, "missing field `points`");
    if (!json_is_array(pts))
        return type_err(c, pts, "a sequence");
    char *path = ts_asprintf("%spoints", prefix);
    if (json_array_size(pts) == 0)
        val_err(c, "points", "must specify points to update");
    o->pts = ts_calloc(json_array_size(pts), sizeof *o->pts);
    for (size_t i = 0; i < json_array_size(pts); i++) {
        const json_t *p = json_array_get(pts, i);
        const json_t *id = json_object_get(p, "id"), *v = json_object_get(p, "vector");
        char *pp = ts_asprintf("%s[%zu].vector", path, i);
        int rc = -1;
        o->npts++;
        if (!json_is_object(p))
            type_err(c, p, "struct PointVectors");
        else if (!id)
            fmt_err(c, p, "missing field `id`");
        else if (!v)
            fmt_err(c, p, "missing field `vector`");
        else if (parse_pid(c, id, &o->pts[i].id) == 0)
            rc = parse_vector_struct(c, v, pp, &o->pts[i].vs);
        free(pp);
        if (rc < 0) {
            free(path);
            return -1;
        }
    }
    free(path);
    return parse_update_filter(c, body, o);
}

static int parse_delete_vectors(pctx *c, const json_t *body, op *o)
{
    o->kind = OP_DELETE_VECTORS;
    if (!json_is_object(body))
        return type_err(c, body, "struct DeleteVectors");
    const json_t *names = json_object_get(body, "vector");
    if (!names)
        return fmt_err(c, body, "missing field `vector`");
    if (!strings_array(names))
        return type_err(c, names, "a sequence of strings");
    o->vnames = ts_calloc(json_array_size(names), sizeof *o->vnames);
    for (size_t i = 0; i < json_array_size(names); i++)
        o->vnames[o->nvnames++] = ts_strdup(json_string_value(json_array_get(names, i)));
    return parse_target(c, body, NO_TARGET, o);
}

/* The body of one write endpoint (or one batch operation's value). */
static int parse_op(pctx *c, opkind kind, const json_t *body, const char *prefix, op *o)
{
    switch (kind) {
    case OP_UPSERT: return parse_upsert(c, body, prefix, o);
    case OP_DELETE: return parse_selector(c, body, OP_DELETE, o);
    case OP_SET_PAYLOAD: return parse_set_payload(c, body, OP_SET_PAYLOAD, o);
    case OP_OVERWRITE_PAYLOAD: return parse_set_payload(c, body, OP_OVERWRITE_PAYLOAD, o);
    case OP_DELETE_PAYLOAD: return parse_delete_payload(c, body, o);
    case OP_CLEAR_PAYLOAD: return parse_selector(c, body, OP_CLEAR_PAYLOAD, o);
    case OP_UPDATE_VECTORS: return parse_update_vectors(c, body, prefix, o);
    case OP_DELETE_VECTORS: return parse_delete_vectors(c, body, o);
    case OP_COUNT: break;
    }
    return -1;
}

/* UpdateOperations {"operations": [...]} -> *ops (owned by the caller). */
static int parse_batch(pctx *c, const json_t *body, op **ops, size_t *nops)
{
    *ops = NULL;
    *nops = 0;
    if (!json_is_object(body))
        return type_err(c, body, "struct UpdateOperations");
    const json_t *arr = json_object_get(body, "operations");
    if (!arr)
        return fmt_err(c, body, "missing field `operations`");
    if (!json_is_array(arr))
        return type_err(c, arr, "a sequence");
    *ops = ts_calloc(json_array_size(arr), sizeof **ops);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *item = json_array_get(arr, i);
        int kind = -1;
        for (int k = 0; k < OP_COUNT && kind < 0 && json_is_object(item); k++)
            if (json_object_get(item, op_names[k]))
                kind = k;
        if (kind < 0)
            return fmt_err(c, item, "data did not match any variant of untagged enum UpdateOperation");
        (*nops)++;
        char *prefix = ts_asprintf("operations[%zu].%s.", i, op_names[kind]);
        int rc = parse_op(c, (opkind)kind, json_object_get(item, op_names[kind]), prefix, &(*ops)[i]);
        free(prefix);
        if (rc < 0) {
            /* serde's untagged enum hides the inner error */
            if (c->e->status == 400 && strncmp(c->e->msg, "Format error", 12) == 0) {
                terr_clear(c->e);
                return fmt_err(c, item, "data did not match any variant of untagged enum UpdateOperation");
            }
            return -1;
        }
    }
    return 0;
}

static void put_vectors(const coll *c, point *p, const vecset *vs)
{
    for (size_t i = 0; i < vs->n; i++) {
        vec v;
        store_vector(c, &vs->items[i], &v);
        vecset_put(&p->vs, &v);
    }
}

static json_t *payload_copy(const json_t *payload)
{
    return payload ? json_deep_copy(payload) : json_object();
}

static void merge_into(json_t *dst, const json_t *src)
{
    const char *k;
    json_t *x;
    json_object_foreach ((json_t *)src, k, x)
        json_object_set_new(dst, k, json_deep_copy(x));
}

/* set_payload with a "key": merge into the object at that path (created). */
static void merge_at(json_t *payload, const jpath *key, const json_t *src)
{
    json_t *obj = payload;
    for (size_t i = 0; i < key->n; i++) {
        json_t *next = json_object_get(obj, key->segs[i]);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_set_new(obj, key->segs[i], next);
        }
        obj = next;
    }
    merge_into(obj, src);
}

static void delete_at(json_t *payload, const jpath *path)
{
    json_t *obj = payload;
    for (size_t i = 0; obj && i + 1 < path->n; i++) {
        obj = json_object_get(obj, path->segs[i]);
        if (!json_is_object(obj))
            return;
    }
    json_object_del(obj, path->segs[path->n - 1]);
}

static int apply_upsert(coll *c, const op *o, terr *e)
{
    for (size_t i = 0; i < o->npts; i++)
        if (check_vectors(c, &o->pts[i].vs, e) < 0)
            return -1;
    for (size_t i = 0; i < o->npts; i++) {
        const inpoint *in = &o->pts[i];
        size_t at;
        point *p;
        if (coll_find(c, &in->id, &at)) {
            p = &c->pts[at];
            if (o->mode == UM_INSERT_ONLY || (o->update_filter && !filter_match(o->update_filter, p)))
                continue;
            json_decref(p->payload);
            vecset_free(&p->vs);
            p->payload = payload_copy(in->payload);
        } else {
            if (o->mode == UM_UPDATE_ONLY)
                continue;
            p = coll_insert(c, &in->id, at);
            json_decref(p->payload);
            p->payload = payload_copy(in->payload);
        }
        put_vectors(c, p, &in->vs);
    }
    return 0;
}

/* The action of a payload / vector op on one existing point. */
static void apply_to_point(const coll *c, const op *o, point *p)
{
    switch (o->kind) {
    case OP_SET_PAYLOAD:
        if (o->key.n)
            merge_at(p->payload, &o->key, o->payload);
        else
            merge_into(p->payload, o->payload);
        break;
    case OP_OVERWRITE_PAYLOAD:
        json_decref(p->payload);
        p->payload = json_deep_copy(o->payload);
        break;
    case OP_DELETE_PAYLOAD:
        for (size_t i = 0; i < o->npaths; i++)
            delete_at(p->payload, &o->paths[i]);
        break;
    case OP_CLEAR_PAYLOAD:
        json_decref(p->payload);
        p->payload = json_object();
        break;
    case OP_DELETE_VECTORS:
        for (size_t i = 0; i < o->nvnames; i++)
            vecset_remove(&p->vs, o->vnames[i]);
        break;
    default:
        break;
    }
}

/*
 * Payload and vector ops by ids: existing points are updated, then (like
 * Qdrant's check_unprocessed_points) the first missing id is an error
 * when the caller waits, and silently skipped otherwise.
 */
static int apply_by_target(coll *c, const op *o, bool wait, terr *e)
{
    if (o->kind == OP_DELETE_VECTORS)
        for (size_t i = 0; i < o->nvnames; i++)
            if (!coll_vcfg(c, o->vnames[i]))
                return terr_set(e, 400, "Wrong input: Not existing vector name error: %s", o->vnames[i]);
    if (!o->has_ids) {
        for (size_t i = 0; i < c->npts; i++)
            if (filter_match(o->filter, &c->pts[i]))
                apply_to_point(c, o, &c->pts[i]);
        return 0;
    }
    const pid *missing = NULL;
    for (size_t i = 0; i < o->nids; i++) {
        point *p = coll_get(c, &o->ids[i]);
        if (!p) {
            missing = missing ? missing : &o->ids[i];
            continue;
        }
        if (!o->filter || filter_match(o->filter, p))
            apply_to_point(c, o, p);
    }
    if (missing && wait) {
        char tmp[48];
        pid_format(missing, tmp);
        return terr_set(e, 404, "Not found: No point with id %s found", tmp);
    }
    return 0;
}

static int apply_update_vectors(coll *c, const op *o, bool wait, terr *e)
{
    for (size_t i = 0; i < o->npts; i++)
        if (check_vectors(c, &o->pts[i].vs, e) < 0)
            return -1;
    const pid *missing = NULL;
    for (size_t i = 0; i < o->npts; i++) {
        point *p = coll_get(c, &o->pts[i].id);
        if (!p) {
            missing = missing ? missing : &o->pts[i].id;
            continue;
        }
        if (!o->update_filter || filter_match(o->update_filter, p))
            put_vectors(c, p, &o->pts[i].vs);
    }
    if (missing && wait) {
        char tmp[48];
        pid_format(missing, tmp);
        return terr_set(e, 404, "Not found: No point with id %s found", tmp);
    }
    return 0;
}

static void apply_delete(coll *c, const op *o)
{
    if (o->has_ids) {
        for (size_t i = 0; i < o->nids; i++) {
            size_t at;
            if (coll_find(c, &o->ids[i], &at))
                coll_remove_at(c, at);
        }
        return;
    }
    for (size_t i = c->npts; i-- > 0;)
        if (filter_match(o->filter, &c->pts[i]))
            coll_remove_at(c, i);
}

static int apply_op(coll *c, const op *o, bool wait, terr *e)
{
    /* an operation on no point at all (an empty list, ids given) */
    bool empty = o->kind == OP_UPSERT ? o->npts == 0 : o->kind != OP_UPDATE_VECTORS && o->has_ids && o->nids == 0;
    if (empty)
        return terr_set(e, 400, "Bad request: Empty update request");
    switch (o->kind) {
    case OP_UPSERT: return apply_upsert(c, o, e);
    case OP_DELETE: apply_delete(c, o); return 0;
    case OP_UPDATE_VECTORS: return apply_update_vectors(c, o, wait, e);
    default: return apply_by_target(c, o, wait, e);
    }
}

/* ------------------------------------------------------------------ */
/* Server state                                                        */
/* ------------------------------------------------------------------ */

typedef struct faults {
    long fail_next;      /* write requests still to fail */
    int fail_status;
    char *fail_error;    /* owned */
    long retry_after;    /* seconds for Retry-After, -1: no header */
    long fail_after_ops; /* apply this many ops first, -1: none */
    long delay_next;     /* requests still to delay */
    long delay_ms;
    long drop_next; /* write requests still to drop */
    /* hostile answers that are not Qdrant's (docs/qdrant-test-server.md) */
    long raw_next;       /* requests still to answer raw */
    int raw_status;
    char *raw_body;      /* owned */
    char *raw_type;      /* owned, Content-Type */
    char *raw_location;  /* owned, Location header or NULL */
    char *raw_path;      /* owned, substring the path must contain; NULL: any */
    long raw_bytes;      /* > 0: stream raw_body repeated to this many bytes */
    long scroll_stuck_next; /* scroll answers whose next_page_offset does not advance */
} faults;

/* An alias: another name of a collection (POST /collections/aliases). */
typedef struct alias {
    char *name; /* owned */
    char *coll; /* owned, the collection's name */
} alias;

static struct server {
    pthread_mutex_t mu;
    coll **colls;
    size_t ncolls;
    alias *aliases; /* sorted by collection, then alias name (GET /aliases order) */
    size_t naliases;
    uint64_t next_op_id;
    faults f;
    uint64_t n_requests, n_writes;
    FILE *log;
    const char *api_key;
    bool discard_writes; /* --discard-writes: answer writes, store nothing */
    FILE *apply_log;     /* --apply-log: "collection id unix_us" per applied upsert point */
} g_srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void faults_clear(faults *f)
{
    free(f->fail_error);
    free(f->raw_body);
    free(f->raw_type);
    free(f->raw_location);
    free(f->raw_path);
    memset(f, 0, sizeof *f);
    f->retry_after = -1;
    f->fail_after_ops = -1;
}

/* Drops all collections, faults and counters.  Caller holds the mutex. */
static void state_reset(void)
{
    for (size_t i = 0; i < g_srv.ncolls; i++)
        coll_free(g_srv.colls[i]);
    free(g_srv.colls);
    g_srv.colls = NULL;
    g_srv.ncolls = 0;
    for (size_t i = 0; i < g_srv.naliases; i++) {
        free(g_srv.aliases[i].name);
        free(g_srv.aliases[i].coll);
    }
    free(g_srv.aliases);
    g_srv.aliases = NULL;
    g_srv.naliases = 0;
    g_srv.next_op_id = 0;
    g_srv.n_requests = g_srv.n_writes = 0;
    faults_clear(&g_srv.f);
}

static coll *coll_lookup(const char *name, size_t *idx)
{
    for (size_t i = 0; i < g_srv.ncolls; i++)
        if (strcmp(g_srv.colls[i]->name, name) == 0) {
            if (idx)
                *idx = i;
            return g_srv.colls[i];
        }
    return NULL;
}

static int coll_missing(terr *e, const char *name)
{
    return terr_set(e, 404, "Not found: Collection `%s` doesn't exist!", name);
}

/* Caller holds the mutex. */
static alias *alias_lookup(const char *name, size_t *idx)
{
    for (size_t i = 0; i < g_srv.naliases; i++)
        if (strcmp(g_srv.aliases[i].name, name) == 0) {
            if (idx)
                *idx = i;
            return &g_srv.aliases[i];
        }
    return NULL;
}

static void alias_remove_at(size_t i)
{
    free(g_srv.aliases[i].name);
    free(g_srv.aliases[i].coll);
    memmove(&g_srv.aliases[i], &g_srv.aliases[i + 1], (g_srv.naliases - i - 1) * sizeof *g_srv.aliases);
    g_srv.naliases--;
}

static int alias_cmp(const void *a, const void *b)
{
    const alias *x = a, *y = b;
    int c = strcmp(x->coll, y->coll);
    return c ? c : strcmp(x->name, y->name);
}

/* Points alias name at collection cname (replacing what it named before).
 * Caller holds the mutex. */
static void alias_put(const char *name, const char *cname)
{
    size_t i;
    if (alias_lookup(name, &i))
        alias_remove_at(i);
    g_srv.aliases = ts_realloc(g_srv.aliases, (g_srv.naliases + 1) * sizeof *g_srv.aliases);
    g_srv.aliases[g_srv.naliases].name = ts_strdup(name);
    g_srv.aliases[g_srv.naliases].coll = ts_strdup(cname);
    g_srv.naliases++;
    qsort(g_srv.aliases, g_srv.naliases, sizeof *g_srv.aliases, alias_cmp);
}

/* The collection a name in a URL means (owned): the collection of that
 * name, else the collection an alias of that name points at, else the
 * name itself (which then gives the usual 404). */
static char *resolve_name(const char *name)
{
    pthread_mutex_lock(&g_srv.mu);
    const alias *a = coll_lookup(name, NULL) ? NULL : alias_lookup(name, NULL);
    char *r = ts_strdup(a ? a->coll : name);
    pthread_mutex_unlock(&g_srv.mu);
    return r;
}

/* ------------------------------------------------------------------ */
/* Requests and replies                                                */
/* ------------------------------------------------------------------ */

typedef struct hreq {
    struct MHD_Connection *conn;
    const char *method;
    char *path;  /* raw path, owned */
    char *query; /* raw query string ("" if none), owned */
    char **segs; /* percent-decoded path segments, owned */
    size_t nsegs;
    const char *body; /* raw body (may be NULL when empty) */
    size_t body_len;
    size_t body_total; /* bytes received, > body_len when too large */
    double t0;
    /* the answer */
    int status;
    sbuf out;
    const char *ctype;
    long retry_after;
    bool drop;
    char *location;    /* owned, Location header */
    char *stream;      /* owned: body pattern streamed stream_bytes long */
    long stream_bytes;
} hreq;

static void reply_raw(hreq *h, int status, const char *ctype, const char *text)
{
    sb_free(&h->out);
    h->status = status;
    h->ctype = ctype;
    if (text)
        sb_puts(&h->out, text);
}

static void sb_time(sbuf *b, const hreq *h, bool zero)
{
    double t = now_s() - h->t0;
    if (zero)
        sb_puts(b, "0.0");
    else
        sb_printf(b, "%.9f", t > 1e-9 ? t : 1e-9);
}

/* {"result": <result JSON text>, "status": "ok", "time": ...} */
static void reply_ok(hreq *h, const char *result)
{
    reply_raw(h, 200, "application/json", NULL);
    sb_puts(&h->out, "{\"result\":");
    sb_puts(&h->out, result);
    sb_puts(&h->out, ",\"status\":\"ok\",\"time\":");
    sb_time(&h->out, h, false);
    sb_putc(&h->out, '}');
}

static void reply_err(hreq *h, int status, const char *msg, bool zero_time)
{
    reply_raw(h, status, "application/json", NULL);
    sb_puts(&h->out, "{\"status\":{\"error\":");
    sb_json_str(&h->out, msg, strlen(msg));
    sb_puts(&h->out, "},\"time\":");
    sb_time(&h->out, h, zero_time);
    sb_putc(&h->out, '}');
}

static void reply_terr(hreq *h, const terr *e)
{
    reply_err(h, e->status, e->msg, e->zero_time);
}

static char *pct_decode(const char *s, size_t n, bool plus_space)
{
    char *d = ts_malloc(n + 1), *o = d;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
            hexval((unsigned char)s[i + 2]) >= 0) {
            *o++ = (char)(hexval((unsigned char)s[i + 1]) << 4 | hexval((unsigned char)s[i + 2]));
            i += 2;
        } else if (plus_space && s[i] == '+')
            *o++ = ' ';
        else
            *o++ = s[i];
    }
    *o = '\0';
    return d;
}

/* The decoded value of query parameter name (owned), NULL if absent. */
static char *query_get(const char *q, const char *name)
{
    size_t nl = strlen(name);
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        size_t kl = eq ? (size_t)(eq - q) : len;
        char *k = pct_decode(q, kl, true);
        bool hit = strlen(k) == nl && memcmp(k, name, nl) == 0;
        free(k);
        if (hit)
            return eq ? pct_decode(eq + 1, len - kl - 1, true) : ts_strdup("");
        q += len;
        if (*q == '&')
            q++;
    }
    return NULL;
}

/* wait / ordering / timeout of the point write endpoints (Qdrant 1.18.2
 * accepts timeout=0 there) and of POST /collections/aliases (where it is a
 * 422: zero_timeout_ok false). */
static int query_params(const hreq *h, bool zero_timeout_ok, bool *wait, terr *e)
{
    char *w = query_get(h->query, "wait"), *o = query_get(h->query, "ordering"),
         *t = query_get(h->query, "timeout");
    int rc = -1;
    *wait = false;
    if (w && strcmp(w, "true") && strcmp(w, "false")) {
        terr_set(e, 400, "Deserialize error in query parameters: provided string was not `true` or `false`");
        goto cleanup;
    }
    *wait = w && strcmp(w, "true") == 0;
    if (o && strcmp(o, "weak") && strcmp(o, "medium") && strcmp(o, "strong")) {
        terr_set(e, 400,
                 "Deserialize error in query parameters: unknown variant `%s`, expected one of `weak`, `medium`, "
                 "`strong`",
                 o);
        goto cleanup;
    }
    if (t) {
        if (!*t || strspn(t, "0123456789") != strlen(t)) {
            terr_set(e, 400, "Deserialize error in query parameters: invalid digit found in string");
            goto cleanup;
        }
        if (strtoull(t, NULL, 10) == 0 && !zero_timeout_ok) {
            terr_set(e, 422, "Validation error in query parameters: [timeout: value 0 invalid, must be 1 or larger]");
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    if (rc < 0)
        e->zero_time = true;
    free(w);
    free(o);
    free(t);
    return rc;
}

static int write_params(const hreq *h, bool *wait, terr *e)
{
    return query_params(h, true, wait, e);
}

/*
 * Qdrant (serde_json) holds a payload integer up to u64::MAX exactly and a
 * larger one as f64; jansson stops at int64.  So, before parsing, an
 * integer token in (INT64_MAX, UINT64_MAX] becomes the string "\u0000" +
 * digits (written back as the bare number by sb_json, and read by
 * pid_from_json), a larger integer gets ".0" (an f64), and so does -0
 * (serde_json's -0.0; jansson would read the integer 0).  Returns a new
 * text (caller frees) or NULL when nothing needed it.
 */
static char *u64_mark(const char *in, size_t n, size_t *outlen)
{
    sbuf out = {0};
    size_t i = 0, copied = 0;
    bool changed = false;

    while (i < n) {
        if (in[i] == '"') {
            for (i++; i < n && in[i] != '"'; i++)
                if (in[i] == '\\')
                    i++;
            i++;
            continue;
        }
        if (in[i] != '-' && !(in[i] >= '0' && in[i] <= '9')) {
            i++;
            continue;
        }
        size_t st = i;
        bool integer = true;
        while (i < n && (strchr("+-.eE", in[i]) || (in[i] >= '0' && in[i] <= '9'))) {
            if (!(in[i] >= '0' && in[i] <= '9') && !(i == st && in[i] == '-'))
                integer = false;
            i++;
        }
        bool neg = in[st] == '-';
        size_t nd = i - st - (neg ? 1 : 0);
        const char *d = in + st + (neg ? 1 : 0);
        if (integer && neg && nd == 1 && d[0] == '0') { /* serde_json reads -0 as the f64 -0.0 */
            sb_append(&out, in + copied, st - copied);
            sb_puts(&out, "-0.0");
            copied = i;
            changed = true;
            continue;
        }
        if (!integer || nd < 19 || (nd == 19 && memcmp(d, neg ? "9223372036854775808" : "9223372036854775807", 19) <= 0))
            continue;
        sb_append(&out, in + copied, st - copied);
        if (!neg && (nd < 20 || (nd == 20 && memcmp(d, "18446744073709551615", 20) <= 0))) {
            sb_puts(&out, "\"\\u0000");
            sb_append(&out, in + st, i - st);
            sb_putc(&out, '"');
        } else {
            sb_append(&out, in + st, i - st);
            sb_puts(&out, ".0");
        }
        copied = i;
        changed = true;
    }
    if (!changed)
        return NULL;
    sb_append(&out, in + copied, n - copied);
    *outlen = out.len;
    return sb_steal(&out);
}

/* serde_json's "EOF while parsing ..." for a body cut short. */
static const char *eof_what(const char *s, size_t n)
{
    char stack[64];
    size_t depth = 0, last = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            if (i >= n)
                return "EOF while parsing a string";
        } else if ((s[i] == '{' || s[i] == '[') && depth < sizeof stack)
            stack[depth++] = s[i];
        else if ((s[i] == '}' || s[i] == ']') && depth > 0)
            depth--;
        if (!json_ws(s[i]))
            last = i;
    }
    if (depth == 0 || s[last] == ':' || s[last] == ',')
        return "EOF while parsing a value";
    return stack[depth - 1] == '[' ? "EOF while parsing a list" : "EOF while parsing an object";
}

/* The request body as JSON (owned), or NULL with the 400 in c->e. */
static json_t *load_body(const hreq *h, pctx *c)
{
    json_error_t jerr;
    c->e->zero_time = true;
    /* Qdrant 1.18.2 parses the body whatever the Content-Type (none, text/plain...) */
    if (h->body_total > TS_MAX_BODY) {
        terr_set(c->e, 400, "JSON payload (%zu bytes) is larger than allowed (limit: %u bytes).", h->body_total,
                 TS_MAX_BODY);
        return NULL;
    }
    if (h->body_len == 0) {
        terr_set(c->e, 400, "Format error in JSON body: EOF while parsing a value at line 1 column 0");
        return NULL;
    }
    size_t mlen = 0;
    char *marked = u64_mark(h->body, h->body_len, &mlen);
    json_t *j = marked ? json_loadb(marked, mlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr)
                       : json_loadb(h->body, h->body_len, JSON_DECODE_ANY, &jerr);
    free(marked);
    if (!j) {
        /* serde_json's words where they are known */
        const char *text = strncmp(jerr.text, "real number overflow", 20) == 0 ? "number out of range" : jerr.text;
        if (strstr(jerr.text, "near end of file"))
            text = eof_what(h->body, h->body_len);
        terr_set(c->e, 400, "Format error in JSON body: %s at line %d column %d", text, jerr.line, jerr.column);
        return NULL;
    }
    c->e->zero_time = false;
    return j;
}

/* ------------------------------------------------------------------ */
/* Endpoint handlers (the caller holds no lock; they take it)          */
/* ------------------------------------------------------------------ */

static const char *default_fault_text(int status)
{
    switch (status) {
    case 408: return "Timeout: injected fault";
    case 429: return "Rate limiting exceeded: injected fault";
    case 500: return "Service internal error: injected fault";
    case 503: return "Shard temporarily unavailable: injected fault";
    case 507: return "Insufficient storage: injected fault";
    default: return "injected fault";
    }
}

static void reply_fault(hreq *h, const faults *f)
{
    reply_err(h, f->fail_status, f->fail_error, false);
    h->retry_after = f->retry_after;
}

/* Consumes the drop / fail faults for one write request.  Returns true
 * when the request is dropped; *fail gets a copy of a fail fault. */
static bool take_write_faults(faults *fail, bool *failing)
{
    bool drop = false;
    *failing = false;
    pthread_mutex_lock(&g_srv.mu);
    g_srv.n_writes++;
    if (g_srv.f.drop_next > 0) {
        g_srv.f.drop_next--;
        drop = true;
    } else if (g_srv.f.fail_next > 0) {
        g_srv.f.fail_next--;
        *failing = true;
        *fail = g_srv.f;
        fail->fail_error = ts_strdup(g_srv.f.fail_error);
    }
    pthread_mutex_unlock(&g_srv.mu);
    return drop;
}

/* --apply-log: one line "collection id unix_us" per point of the applied
 * upserts ops[0..n), stamped with the time the batch was applied.  Caller
 * holds the mutex. */
static void log_applied(const char *cname, const op *ops, size_t n)
{
    struct timespec ts;
    char id[48];
    clock_gettime(CLOCK_REALTIME, &ts);
    long long us = (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; ops[i].kind == OP_UPSERT && j < ops[i].npts; j++) {
            pid_format(&ops[i].pts[j].id, id);
            fprintf(g_srv.apply_log, "%s %s %lld\n", cname, id, us);
        }
    fflush(g_srv.apply_log);
}

static bool json_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* --discard-writes: the number of elements of the top-level "operations"
 * array of a batch body, found in one pass that skips strings and tracks
 * nesting; -1 unless the body is one JSON object holding such an array.
 * The operations themselves are not validated. */
static long count_operations(const char *s, size_t n)
{
    long count = -1;
    int depth = 0, arr = 0; /* depth inside the operations array; 0: not seen yet, -1: closed */
    bool elem = false;      /* the current element of the array has started */
    size_t i = 0;

    while (i < n && json_ws(s[i]))
        i++;
    if (i == n || s[i] != '{')
        return -1;
    for (; i < n; i++) {
        char ch = s[i];
        if (arr > 0 && depth == arr && !elem && !json_ws(ch) && ch != ',' && ch != ']') {
            count++;
            elem = true;
        }
        if (ch == '"') {
            size_t start = ++i;
            while (i < n && s[i] != '"')
                i += s[i] == '\\' ? 2 : 1;
            if (i >= n)
                return -1;
            if (arr == 0 && depth == 1 && i - start == 10 && memcmp(s + start, "operations", 10) == 0) {
                size_t j = i + 1;
                while (j < n && json_ws(s[j]))
                    j++;
                if (j < n && s[j] == ':') { /* the key, not a value */
                    for (j++; j < n && json_ws(s[j]); j++)
                        ;
                    if (j >= n || s[j] != '[')
                        return -1;
                    i = j;
                    arr = ++depth;
                    count = 0;
                }
            }
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth == arr)
                arr = -1;
            if (--depth < 0)
                return -1;
        } else if (ch == ',' && depth == arr) {
            elem = false;
        }
        if (depth == 0) { /* the object closed */
            i++;
            break;
        }
    }
    while (i < n && json_ws(s[i]))
        i++;
    return depth == 0 && arr == -1 && i == n ? count : -1;
}

/* --discard-writes: answers a write like a successful one without parsing
 * or storing its points.  Checked: the query parameters, the content type,
 * the body's envelope (a JSON object; for a batch, its "operations" array,
 * whose elements are counted) and that the collection exists. */
static void discard_write(hreq *h, const char *cname, bool batch)
{
    terr e = {0};
    bool wait;
    long nops = -1;
    sbuf res = {0};

    if (write_params(h, &wait, &e) < 0)
        goto cleanup;
    e.zero_time = true;
    if (h->body_len > 0 && batch)
        nops = count_operations(h->body, h->body_len);
    else if (h->body_len > 0)
        nops = h->body[strspn(h->body, " \t\r\n")] == '{' ? 1 : -1;
    if (nops < 0) {
        terr_set(&e, 400, "Format error in JSON body: %s (--discard-writes checks only the envelope)",
                 batch ? "expected an object with an \"operations\" array" : "expected an object");
        goto cleanup;
    }
    e.zero_time = false;
    pthread_mutex_lock(&g_srv.mu);
    if (nops > 0 && !coll_lookup(cname, NULL)) /* an empty batch looks up nothing */
        coll_missing(&e, cname);
    for (long i = 0; !e.msg && i < nops; i++)
        sb_printf(&res, "%s{\"operation_id\":%" PRIu64 ",\"status\":\"%s\"}", i ? "," : "", g_srv.next_op_id++,
                  wait ? "completed" : "acknowledged");
    pthread_mutex_unlock(&g_srv.mu);
    if (e.msg)
        goto cleanup;
    if (batch) {
        char *r = ts_asprintf("[%s]", res.data ? res.data : "");
        reply_ok(h, r);
        free(r);
    } else
        reply_ok(h, res.data);
cleanup:
    if (e.msg)
        reply_terr(h, &e);
    terr_clear(&e);
    sb_free(&res);
}

/* Every point write endpoint: kind for the single-operation ones, or
 * batch (kind unused) for POST /points/batch. */
static void handle_write(hreq *h, const char *cname, opkind kind, bool batch)
{
    terr e = {0};
    pctx c = {.raw = h->body, .rawlen = h->body_len, .e = &e};
    faults fail = {0};
    bool failing, wait = false;
    json_t *body = NULL;
    op *ops = NULL;
    size_t nops = 0, applied = 0;
    sbuf res = {0};

    if (take_write_faults(&fail, &failing)) {
        h->drop = true;
        goto cleanup;
    }
    if (failing && fail.fail_after_ops < 0) {
        reply_fault(h, &fail);
        goto cleanup;
    }
    if (g_srv.discard_writes) {
        if (failing)
            reply_fault(h, &fail);
        else
            discard_write(h, cname, batch);
        goto cleanup;
    }
    if (write_params(h, &wait, &e) < 0 || !(body = load_body(h, &c)))
        goto cleanup;
    if (batch) {
        if (parse_batch(&c, body, &ops, &nops) < 0)
            goto cleanup;
    } else {
        ops = ts_calloc(1, sizeof *ops);
        nops = 1;
        if (parse_op(&c, kind, body, "", ops) < 0)
            goto cleanup;
    }
    if (pctx_finish(&c) < 0)
        goto cleanup;

    pthread_mutex_lock(&g_srv.mu);
    coll *col = coll_lookup(cname, NULL);
    if (!col && nops > 0) /* Qdrant answers an empty batch [] without looking the collection up */
        coll_missing(&e, cname);
    for (; col && applied < nops; applied++) {
        if (failing && (long)applied == fail.fail_after_ops)
            break;
        if (apply_op(col, &ops[applied], wait, &e) < 0)
            break;
        sb_printf(&res, "%s{\"operation_id\":%" PRIu64 ",\"status\":\"%s\"}", applied ? "," : "",
                  g_srv.next_op_id++, wait ? "completed" : "acknowledged");
    }
    if (g_srv.apply_log && col)
        log_applied(cname, ops, applied);
    pthread_mutex_unlock(&g_srv.mu);
    if (e.msg)
        goto cleanup;
    if (failing) {
        reply_fault(h, &fail);
    } else if (batch) {
        char *r = ts_asprintf("[%s]", res.data ? res.data : "");
        reply_ok(h, r);
        free(r);
    } else
        reply_ok(h, res.data);

cleanup:
    if (e.msg)
        reply_terr(h, &e);
    terr_clear(&e);
    sb_free(&c.val);
    free(fail.fail_error);
    json_decref(body);
    for (size_t i = 0; i < nops; i++)
        op_free(&ops[i]);
    free(ops);
    sb_free(&res);
}

/* The request body as a JSON object (owned), or NULL with c->e set. */
static json_t *read_body(const hreq *h, pctx *c)
{
    json_t *body = load_body(h, c);
    if (body && !json_is_object(body)) {
        type_err(c, body, "a map");
        json_decref(body);
        body = NULL;
    }
    return body;
}

/* POST /collections/{c}/points/scroll */
static void handle_scroll(hreq *h, const char *cname)
{
    terr e = {0};
    pctx c = {.raw = h->body, .rawlen = h->body_len, .e = &e};
    json_t *body = read_body(h, &c);
    sel wp, wv;
    pid offset = {0};
    bool has_offset = false;
    long limit = 10;
    sbuf res = {0};

    if (!body)
        goto cleanup;
    const json_t *jl = json_object_get(body, "limit"), *jo = json_object_get(body, "offset"),
                 *f = json_object_get(body, "filter"), *ob = json_object_get(body, "order_by");
    if (jl && !json_is_null(jl)) {
        if (!json_is_integer(jl) || json_integer_value(jl) < 0) {
            type_err(&c, jl, "usize");
            goto cleanup;
        }
        limit = (long)json_integer_value(jl);
    }
    if (jo && !json_is_null(jo)) {
        if (parse_pid(&c, jo, &offset) < 0)
            goto cleanup;
        has_offset = true;
    }
    if (parse_with_payload(&c, json_object_get(body, "with_payload"), SEL_ALL, &wp) < 0 ||
        parse_with_vector(&c, json_object_get(body, "with_vector"), SEL_NONE, &wv) < 0 || filter_check(&c, f) < 0)
        goto cleanup;
    if (ob && !json_is_null(ob)) {
        terr_set(&e, 400, "Bad request: order_by is not supported by the test server");
        goto cleanup;
    }
    if (limit == 0) {
        terr_set(&e, 422, "Validation error in JSON body: [scroll_request.limit: value 0 invalid, must be 1 or larger]");
        e.zero_time = true;
        goto cleanup;
    }
    pthread_mutex_lock(&g_srv.mu);
    coll *col = coll_lookup(cname, NULL);
    if (!col) {
        coll_missing(&e, cname);
    } else {
        size_t at = 0;
        long n = 0;
        const point *next = NULL;
        if (has_offset)
            coll_find(col, &offset, &at);
        sb_puts(&res, "{\"points\":[");
        for (; at < col->npts; at++) {
            if (!filter_match(f, &col->pts[at]))
                continue;
            if (n == limit) {
                next = &col->pts[at];
                break;
            }
            if (n++)
                sb_putc(&res, ',');
            sb_record(&res, col, &col->pts[at], &wp, &wv);
        }
        sb_puts(&res, "],\"next_page_offset\":");
        if (next && g_srv.f.scroll_stuck_next > 0) { /* hostile: the offset asked for again */
            g_srv.f.scroll_stuck_next--;
            sb_pid(&res, has_offset ? &offset : &col->pts[0].id);
        } else if (next)
            sb_pid(&res, &next->id);
        else
            sb_puts(&res, "null");
        sb_putc(&res, '}');
    }
    pthread_mutex_unlock(&g_srv.mu);
    if (!e.msg)
        reply_ok(h, res.data);
cleanup:
    if (e.msg)
        reply_terr(h, &e);
    terr_clear(&e);
    sb_free(&c.val);
    json_decref(body);
    sb_free(&res);
}

/* POST /collections/{c}/points/count */
static void handle_count(hreq *h, const char *cname)
{
    terr e = {0};
    pctx c = {.raw = h->body, .rawlen = h->body_len, .e = &e};
    json_t *body = read_body(h, &c);
    const json_t *f;
    if (!body)
        goto cleanup;
    f = json_object_get(body, "filter");
    if (filter_check(&c, f) < 0)
        goto cleanup;
    pthread_mutex_lock(&g_srv.mu);
    coll *col = coll_lookup(cname, NULL);
    size_t n = 0;
    if (!col)
        coll_missing(&e, cname);
    for (size_t i = 0; col && i < col->npts; i++)
        if (filter_match(f, &col->pts[i]))
            n++;
    pthread_mutex_unlock(&g_srv.mu);
    if (!e.msg) {
        char *r = ts_asprintf("{\"count\":%zu}", n);
        reply_ok(h, r);
        free(r);
    }
cleanup:
    if (e.msg)
        reply_terr(h, &e);
    terr_clear(&e);
    sb_free(&c.val);
    json_decref(body);
}

/* POST /collections/{c}/points (retrieve by ids) */
static void handle_retrieve(hreq *h, const char *cname)
{
    terr e = {0};
    pctx c = {.raw = h->body, .rawlen = h->body_len, .e = &e};
    json_t *body = read_body(h, &c);
    pid *ids = NULL;
    size_t nids = 0;
    sel wp, wv;
    sbuf res = {0};

    if (!body)
        goto cleanup;
    if (!json_object_get(body, "ids")) {
        fmt_err(&c, body, "missing field `ids`");
        goto cleanup;
    }
    if (parse_pid_list(&c, json_object_get(body, "ids"), &ids, &nids) < 0 ||
        parse_with_payload(&c, json_object_get(body, "with_payload"), SEL_NONE, &wp) < 0 ||
        parse_with_vector(&c, json_object_get(body, "with_vector"), SEL_NONE, &wv) < 0)
        goto cleanup;
    pthread_mutex_lock(&g_srv.mu);
    coll *col = coll_lookup(cname, NULL);
    if (!col) {
        coll_missing(&e, cname);
    } else {
        bool first = true;
        sb_putc(&res, '[');
        for (size_t i = 0; i < nids; i++) {
            const point *p = coll_get(col, &ids[i]);
            bool dup = false;
            for (size_t j = 0; j < i; j++)
                dup = dup || pid_cmp(&ids[j], &ids[i]) == 0;
            if (!p || dup)
                continue;
            if (!first)
                sb_putc(&res, ',');
            first = false;
            sb_record(&res, col, p, &wp, &wv);
        }
        sb_putc(&res, ']');
    }
    pthread_mutex_unlock(&g_srv.mu);
    if (!e.msg)
        reply_ok(h, res.data);
cleanup:
    if (e.msg)
        reply_terr(h, &e);
    terr_clear(&e);
    sb_free(&c.val);
    json_decref(body);
    free(ids);
    sb_free(&res);
}

/* GET /collections/{c}/points/{id} */
static void handle_get_point(hreq *h, const char *cname, const char *sid)
{
    terr e = {0};
    pid id;
    sbuf res = {0};
    sel all = {SEL_ALL, NULL};

    if (!pid_from_path(sid, &id)) {
        terr_set(&e, 400, "Wrong input: Can not recognize \"%s\" as point id", sid);
        goto cleanup;
    }
    pthread_mutex_lock(&g_srv.mu);
    coll *col = coll_lookup(cname, NULL);
    const point *p = col ? coll_get(col, &id) : NULL;
    if (!col)
        coll_missing(&e, cname);
    else if (!p) {
        char tmp[48];
        pid_format(&id, tmp);
        terr_set(&e, 404, "Not found: Point with id %s does not exists!", tmp); /* sic */
    } else
        sb_record(&res, col, p, &all, &all);
    pthread_mutex_unlock(&g_srv.mu);
    if (!e.msg)
        reply_ok(h, res.data);
cleanup:
    if (e.msg)
        reply_terr(h, &e);
    terr_clear(&e);
    sb_free(&res);
}

/* CollectionInfo for GET /collections/{c}.  Caller holds the mutex. */
static void sb_collection_info(sbuf *b, const coll *c)
{
    sb_printf(b,
              "{\"status\":\"green\",\"optimizer_status\":\"ok\",\"indexed_vectors_count\":0,"
              "\"points_count\":%zu,\"segments_count\":1,\"config\":{\"params\":{\"vectors\":",
              c->npts);
    if (c->vectors_json)
        sb_json(b, c->vectors_json);
    else
        sb_puts(b, "{}");
    sb_puts(b, ",\"shard_number\":1,\"replication_factor\":1,\"write_consistency_factor\":1,"
               "\"on_disk_payload\":true");
    if (c->sparse_json) {
        sb_puts(b, ",\"sparse_vectors\":");
        sb_json(b, c->sparse_json);
    }
    {
        json_t *h = json_pack("{s:i,s:i,s:i,s:i,s:b}", "m", 16, "ef_construct", 100, "full_scan_threshold", 10000,
                              "max_indexing_threads", 0, "on_disk", 0);
        const char *k;
        json_t *x;
        if (c->hnsw_json)
            json_object_foreach (c->hnsw_json, k, x)
                if (!json_is_null(x))
                    json_object_set(h, k, x);
        sb_puts(b, "},\"hnsw_config\":");
        sb_json(b, h);
        json_decref(h);
    }
    sb_puts(b, ",\"optimizer_config\":{\"deleted_threshold\":0.2,\"vacuum_min_vector_number\":1000,"
               "\"default_segment_number\":0,\"max_segment_size\":null,\"memmap_threshold\":null,"
               "\"indexing_threshold\":10000,\"flush_interval_sec\":5,\"max_optimization_threads\":null},"
               "\"wal_config\":{\"wal_capacity_mb\":32,\"wal_segments_ahead\":0,\"wal_retain_closed\":1},"
               "\"quantization_config\":null,\"strict_mode_config\":{\"enabled\":false}");
    if (c->metadata) {
        sb_puts(b, ",\"metadata\":");
        sb_json(b, c->metadata);
    }
    sb_puts(b, "},\"payload_schema\":");
    sb_json(b, c->payload_schema);
    sb_putc(b, '}');
}

static bool collection_name_ok(hreq *h, const char *name)
{
    size_t n = strlen(name);
    if (n >= 1 && n <= 255 && !strchr(name, '/'))
        return true;
    reply_err(h, 422, "Validation error in path parameters: [name: collection name must be 1 to 255 characters "
                      "without '/']",
              true);
    return false;
}

/* GET / PUT / PATCH / DELETE /collections/{c} */
static void handle_collection(hreq *h, const char *cname)
{
    terr e = {0};
    pctx c = {.raw = h->body, .rawlen = h->body_len, .e = &e};
    json_t *body = NULL;
    coll *created = NULL, *dead = NULL;
    sbuf res = {0};
    size_t idx;

    if (!collection_name_ok(h, cname))
        return;
    if (strcmp(h->method, "PUT") == 0) {
        if (!(body = read_body(h, &c)))
            goto cleanup;
        if (parse_create_collection(&c, body, cname, &created) < 0 || pctx_finish(&c) < 0)
            goto cleanup;
        pthread_mutex_lock(&g_srv.mu);
        if (coll_lookup(cname, NULL)) {
            terr_set(&e, 409, "Wrong input: Collection `%s` already exists!", cname);
        } else if (alias_lookup(cname, NULL)) {
            terr_set(&e, 400, "Wrong input: Can't create collection with name %s. Alias with the same name already exists",
                     cname);
        } else {
            g_srv.colls = ts_realloc(g_srv.colls, (g_srv.ncolls + 1) * sizeof *g_srv.colls);
            g_srv.colls[g_srv.ncolls++] = created;
            created = NULL;
        }
        pthread_mutex_unlock(&g_srv.mu);
        if (!e.msg)
            reply_ok(h, "true");
        goto cleanup;
    }
    pthread_mutex_lock(&g_srv.mu);
    coll *col = coll_lookup(cname, &idx);
    if (strcmp(h->method, "DELETE") == 0) {
        if (col) {
            for (size_t i = g_srv.naliases; i-- > 0;) /* its aliases go with it */
                if (strcmp(g_srv.aliases[i].coll, cname) == 0)
                    alias_remove_at(i);
            dead = col; /* freed after the lock: a big collection does not stall every other request */
            memmove(&g_srv.colls[idx], &g_srv.colls[idx + 1], (g_srv.ncolls - idx - 1) * sizeof *g_srv.colls);
            g_srv.ncolls--;
        }
        sb_puts(&res, col ? "true" : "false");
    } else if (!col) {
        coll_missing(&e, cname);
    } else if (strcmp(h->method, "GET") == 0) {
        sb_collection_info(&res, col);
    } else {
        sb_puts(&res, "true"); /* PATCH: parameters accepted and ignored */
    }
    pthread_mutex_unlock(&g_srv.mu);
    if (!e.msg)
        reply_ok(h, res.data);
cleanup:
    if (e.msg)
        reply_terr(h, &e);
    terr_clear(&e);
    sb_free(&c.val);
    json_decref(body);
    coll_free(created);
    coll_free(dead);
    sb_free(&res);
}

/* PUT /collections/{c}/index, DELETE /collections/{c}/index/{field} */
static void handle_index(hreq *h, const char *cname, const char *field)
{
    terr e = {0};
    pctx c = {.raw = h->body, .rawlen = h->body_len, .e = &e};
    json_t *body = NULL;
    json_t *schema = NULL;
    const char *fname = field;
    bool wait = false;

    if (write_params(h, &wait, &e) < 0)
        goto cleanup;
    if (!field) {
        if (!(body = read_body(h, &c)))
            goto cleanup;
        const json_t *fn = json_object_get(body, "field_name"), *fs = json_object_get(body, "field_schema");
        if (!fn) {
            fmt_err(&c, body, "missing field `field_name`");
            goto cleanup;
        }
        if (!json_is_string(fn)) {
            type_err(&c, fn, "a string");
            goto cleanup;
        }
        fname = json_string_value(fn);
        schema = json_pack("{s:O?,s:i}", "data_type", json_is_object(fs) ? json_object_get(fs, "type") : fs,
                           "points", 0);
    }
    pthread_mutex_lock(&g_srv.mu);
    coll *col = coll_lookup(cname, NULL);
    if (!col)
        coll_missing(&e, cname);
    else if (schema)
        json_object_set(col->payload_schema, fname, schema);
    else
        json_object_del(col->payload_schema, fname);
    uint64_t op_id = col ? g_srv.next_op_id++ : 0;
    pthread_mutex_unlock(&g_srv.mu);
    if (!e.msg) {
        char *r = ts_asprintf("{\"operation_id\":%" PRIu64 ",\"status\":\"%s\"}", op_id,
                              wait ? "completed" : "acknowledged");
        reply_ok(h, r);
        free(r);
    }
cleanup:
    if (e.msg)
        reply_terr(h, &e);
    terr_clear(&e);
    sb_free(&c.val);
    json_decref(body);
    json_decref(schema);
}

static void handle_list(hreq *h)
{
    sbuf res = {0};
    sb_puts(&res, "{\"collections\":[");
    pthread_mutex_lock(&g_srv.mu);
    for (size_t i = 0; i < g_srv.ncolls; i++) {
        sb_puts(&res, i ? ",{\"name\":" : "{\"name\":");
        sb_json_str(&res, g_srv.colls[i]->name, strlen(g_srv.colls[i]->name));
        sb_putc(&res, '}');
    }
    pthread_mutex_unlock(&g_srv.mu);
    sb_puts(&res, "]}");
    reply_ok(h, res.data);
    sb_free(&res);
}

static void handle_exists(hreq *h, const char *cname)
{
    pthread_mutex_lock(&g_srv.mu);
    bool exists = coll_lookup(cname, NULL) != NULL;
    pthread_mutex_unlock(&g_srv.mu);
    reply_ok(h, exists ? "{\"exists\":true}" : "{\"exists\":false}");
}

/* GET /aliases (cname NULL), GET /collections/{c}/aliases: {"aliases": [...]} */
static void handle_alias_list(hreq *h, const char *cname)
{
    sbuf res = {0};
    bool first = true;
    sb_puts(&res, "{\"aliases\":[");
    pthread_mutex_lock(&g_srv.mu);
    for (size_t i = 0; i < g_srv.naliases; i++) {
        const alias *a = &g_srv.aliases[i];
        if (cname && strcmp(a->coll, cname) != 0)
            continue;
        sb_puts(&res, first ? "{\"alias_name\":" : ",{\"alias_name\":");
        first = false;
        sb_json_str(&res, a->name, strlen(a->name));
        sb_puts(&res, ",\"collection_name\":");
        sb_json_str(&res, a->coll, strlen(a->coll));
        sb_putc(&res, '}');
    }
    pthread_mutex_unlock(&g_srv.mu);
    sb_puts(&res, "]}");
    reply_ok(h, res.data);
    sb_free(&res);
}

/* The string members of one alias action, NULL if one is missing or not a string. */
static bool alias_fields(const json_t *a, const char *k1, const char **v1, const char *k2, const char **v2)
{
    *v1 = json_is_object(a) ? json_string_value(json_object_get(a, k1)) : NULL;
    *v2 = k2 && json_is_object(a) ? json_string_value(json_object_get(a, k2)) : NULL;
    return *v1 && (!k2 || *v2);
}

/*
 * POST /collections/aliases {"actions": [create_alias | delete_alias |
 * rename_alias, ...]}.  Like Qdrant 1.18.2 the actions apply one after the
 * other and the first failing one stops the rest (earlier ones stay):
 * create_alias needs the collection and re-points an existing alias,
 * delete_alias of an unknown alias succeeds, rename_alias needs the old one.
 */
static void handle_alias_update(hreq *h)
{
    terr e = {0};
    pctx c = {.raw = h->body, .rawlen = h->body_len, .e = &e};
    json_t *body = NULL;
    bool wait;
    const char *a1, *a2;

    if (query_params(h, false, &wait, &e) < 0 || !(body = read_body(h, &c)))
        goto cleanup;
    const json_t *acts = json_object_get(body, "actions");
    if (!acts) {
        fmt_err(&c, body, "missing field `actions`");
        goto cleanup;
    }
    if (!json_is_array(acts)) {
        type_err(&c, acts, "a sequence");
        goto cleanup;
    }
    for (size_t i = 0; i < json_array_size(acts); i++) {
        const json_t *x = json_array_get(acts, i);
        if (!(alias_fields(json_object_get(x, "create_alias"), "collection_name", &a1, "alias_name", &a2) ||
              alias_fields(json_object_get(x, "delete_alias"), "alias_name", &a1, NULL, &a2) ||
              alias_fields(json_object_get(x, "rename_alias"), "old_alias_name", &a1, "new_alias_name", &a2))) {
            fmt_err(&c, x, "data did not match any variant of untagged enum AliasOperations");
            goto cleanup;
        }
    }
    pthread_mutex_lock(&g_srv.mu);
    for (size_t i = 0; !e.msg && i < json_array_size(acts); i++) {
        const json_t *x = json_array_get(acts, i);
        size_t at;
        if (alias_fields(json_object_get(x, "create_alias"), "collection_name", &a1, "alias_name", &a2)) {
            if (!coll_lookup(a1, NULL))
                coll_missing(&e, a1);
            else if (coll_lookup(a2, NULL))
                terr_set(&e, 409, "Wrong input: Collection `%s` already exists!", a2);
            else
                alias_put(a2, a1);
        } else if (alias_fields(json_object_get(x, "delete_alias"), "alias_name", &a1, NULL, &a2)) {
            if (alias_lookup(a1, &at))
                alias_remove_at(at);
        } else if (alias_fields(json_object_get(x, "rename_alias"), "old_alias_name", &a1, "new_alias_name", &a2)) {
            alias *old = alias_lookup(a1, &at);
            if (!old) {
                terr_set(&e, 404, "Not found: Alias %s does not exists!", a1); /* sic */
            } else {
                char *target = ts_strdup(old->coll);
                alias_remove_at(at);
                alias_put(a2, target);
                free(target);
            }
        }
    }
    pthread_mutex_unlock(&g_srv.mu);
    if (!e.msg)
        reply_ok(h, "true");
cleanup:
    if (e.msg)
        reply_terr(h, &e);
    terr_clear(&e);
    sb_free(&c.val);
    json_decref(body);
}

/* ------------------------------------------------------------------ */
/* Control API: /__test/fault, /__test/reset, /__test/stats            */
/* ------------------------------------------------------------------ */

static bool get_long(const json_t *o, const char *key, long min, long *out)
{
    const json_t *v = json_object_get(o, key);
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return false;
    *out = (long)json_integer_value(v);
    return true;
}

/* POST /__test/fault: merges the given fault groups into the state. */
static void handle_fault(hreq *h)
{
    static const char *const known[] = {"fail_next",  "status",    "error",     "retry_after", "fail_after_ops",
                                        "delay_next", "delay_ms",  "drop_next", "raw_next",    "raw_status",
                                        "raw_body",   "raw_type",  "raw_location", "raw_path", "raw_bytes",
                                        "scroll_stuck_next", NULL};
    json_error_t jerr;
    json_t *body = json_loadb(h->body ? h->body : "", h->body_len, 0, &jerr);
    faults f = {0};
    const char *k;
    json_t *x;
    long status = 503;

    faults_clear(&f);
    if (!json_is_object(body)) {
        reply_err(h, 400, "fault body must be a JSON object", false);
        goto cleanup;
    }
    json_object_foreach (body, k, x) {
        bool ok = false;
        for (int i = 0; known[i]; i++)
            ok = ok || strcmp(k, known[i]) == 0;
        if (!ok) {
            char *m = ts_asprintf("unknown fault key `%s`", k);
            reply_err(h, 400, m, false);
            free(m);
            goto cleanup;
        }
    }
    const json_t *err = json_object_get(body, "error");
    long raw_status = 200;
    const char *const raw_strs[] = {"raw_body", "raw_type", "raw_location", "raw_path"};
    for (int i = 0; i < 4; i++) {
        const json_t *v = json_object_get(body, raw_strs[i]);
        if (v && !json_is_string(v)) {
            reply_err(h, 400, "raw_body, raw_type, raw_location and raw_path must be strings", false);
            goto cleanup;
        }
    }
    if (!get_long(body, "raw_next", 0, &f.raw_next) || !get_long(body, "raw_status", 100, &raw_status) ||
        raw_status > 599 || !get_long(body, "raw_bytes", 0, &f.raw_bytes) ||
        !get_long(body, "scroll_stuck_next", 0, &f.scroll_stuck_next)) {
        reply_err(h, 400, "fault values must be non-negative integers (raw_status 100..599)", false);
        goto cleanup;
    }
    if (!get_long(body, "fail_next", 0, &f.fail_next) || !get_long(body, "status", 100, &status) || status > 599 ||
        !get_long(body, "retry_after", 0, &f.retry_after) || !get_long(body, "fail_after_ops", 0, &f.fail_after_ops) ||
        !get_long(body, "delay_next", 0, &f.delay_next) || !get_long(body, "delay_ms", 0, &f.delay_ms) ||
        !get_long(body, "drop_next", 0, &f.drop_next) || (err && !json_is_string(err))) {
        reply_err(h, 400, "fault values must be non-negative integers (status 100..599, error a string)", false);
        goto cleanup;
    }
    pthread_mutex_lock(&g_srv.mu);
    if (json_object_get(body, "fail_next")) {
        free(g_srv.f.fail_error);
        g_srv.f.fail_next = f.fail_next;
        g_srv.f.fail_status = (int)status;
        g_srv.f.fail_error = ts_strdup(err ? json_string_value(err) : default_fault_text((int)status));
        g_srv.f.retry_after = f.retry_after;
        g_srv.f.fail_after_ops = f.fail_after_ops;
    }
    if (json_object_get(body, "delay_next")) {
        g_srv.f.delay_next = f.delay_next;
        g_srv.f.delay_ms = f.delay_ms;
    }
    if (json_object_get(body, "drop_next"))
        g_srv.f.drop_next = f.drop_next;
    if (json_object_get(body, "raw_next")) {
        const json_t *b = json_object_get(body, "raw_body"), *t = json_object_get(body, "raw_type"),
                     *l = json_object_get(body, "raw_location"), *p = json_object_get(body, "raw_path");
        free(g_srv.f.raw_body);
        free(g_srv.f.raw_type);
        free(g_srv.f.raw_location);
        free(g_srv.f.raw_path);
        g_srv.f.raw_next = f.raw_next;
        g_srv.f.raw_status = (int)raw_status;
        g_srv.f.raw_body = ts_strdup(b ? json_string_value(b) : "");
        g_srv.f.raw_type = ts_strdup(t ? json_string_value(t) : "text/html");
        g_srv.f.raw_location = l ? ts_strdup(json_string_value(l)) : NULL;
        g_srv.f.raw_path = p ? ts_strdup(json_string_value(p)) : NULL;
        g_srv.f.raw_bytes = f.raw_bytes;
    }
    if (json_object_get(body, "scroll_stuck_next"))
        g_srv.f.scroll_stuck_next = f.scroll_stuck_next;
    pthread_mutex_unlock(&g_srv.mu);
    reply_ok(h, "true");
cleanup:
    json_decref(body);
}

static void handle_control(hreq *h)
{
    const char *what = h->nsegs == 2 ? h->segs[1] : "";
    if (strcmp(h->method, "POST") == 0 && strcmp(what, "fault") == 0) {
        handle_fault(h);
    } else if (strcmp(h->method, "POST") == 0 && strcmp(what, "reset") == 0) {
        pthread_mutex_lock(&g_srv.mu);
        state_reset();
        pthread_mutex_unlock(&g_srv.mu);
        reply_ok(h, "true");
    } else if (strcmp(h->method, "GET") == 0 && strcmp(what, "stats") == 0) {
        pthread_mutex_lock(&g_srv.mu);
        char *s = ts_asprintf("{\"requests\":%" PRIu64 ",\"writes\":%" PRIu64 "}", g_srv.n_requests, g_srv.n_writes);
        pthread_mutex_unlock(&g_srv.mu);
        reply_raw(h, 200, "application/json", s);
        free(s);
    } else
        reply_raw(h, 404, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Routing, auth and the request log                                   */
/* ------------------------------------------------------------------ */

static bool seg_is(const hreq *h, size_t i, const char *s)
{
    return i < h->nsegs && strcmp(h->segs[i], s) == 0;
}

static bool method_is(const hreq *h, const char *m)
{
    return strcmp(h->method, m) == 0;
}

/* /collections/{c}/points/... */
static void route_points(hreq *h, const char *c)
{
    size_t n = h->nsegs;
    const char *a = n > 3 ? h->segs[3] : NULL;
    const char *b = n > 4 ? h->segs[4] : NULL;
    if (n == 3 && method_is(h, "PUT"))
        handle_write(h, c, OP_UPSERT, false);
    else if (n == 3 && method_is(h, "POST"))
        handle_retrieve(h, c);
    else if (n == 4 && method_is(h, "POST") && strcmp(a, "delete") == 0)
        handle_write(h, c, OP_DELETE, false);
    else if (n == 4 && method_is(h, "POST") && strcmp(a, "payload") == 0)
        handle_write(h, c, OP_SET_PAYLOAD, false);
    else if (n == 4 && method_is(h, "PUT") && strcmp(a, "payload") == 0)
        handle_write(h, c, OP_OVERWRITE_PAYLOAD, false);
    else if (n == 5 && method_is(h, "POST") && strcmp(a, "payload") == 0 && strcmp(b, "delete") == 0)
        handle_write(h, c, OP_DELETE_PAYLOAD, false);
    else if (n == 5 && method_is(h, "POST") && strcmp(a, "payload") == 0 && strcmp(b, "clear") == 0)
        handle_write(h, c, OP_CLEAR_PAYLOAD, false);
    else if (n == 4 && method_is(h, "PUT") && strcmp(a, "vectors") == 0)
        handle_write(h, c, OP_UPDATE_VECTORS, false);
    else if (n == 5 && method_is(h, "POST") && strcmp(a, "vectors") == 0 && strcmp(b, "delete") == 0)
        handle_write(h, c, OP_DELETE_VECTORS, false);
    else if (n == 4 && method_is(h, "POST") && strcmp(a, "batch") == 0)
        handle_write(h, c, OP_COUNT, true);
    else if (n == 4 && method_is(h, "POST") && strcmp(a, "scroll") == 0)
        handle_scroll(h, c);
    else if (n == 4 && method_is(h, "POST") && strcmp(a, "count") == 0)
        handle_count(h, c);
    else if (n == 4 && method_is(h, "GET"))
        handle_get_point(h, c, a);
    else
        reply_raw(h, 404, NULL, NULL);
}

static void route(hreq *h)
{
    size_t n = h->nsegs;
    if (n == 0 && method_is(h, "GET"))
        reply_raw(h, 200, "application/json",
                  "{\"title\":\"qdrant - vector search engine\",\"version\":\"1.19.0\","
                  "\"commit\":\"74f3e85b9473c62560006c043e13737ce6b48412\"}");
    else if (n == 1 && method_is(h, "GET") && (seg_is(h, 0, "healthz") || seg_is(h, 0, "livez")))
        reply_raw(h, 200, "text/plain; charset=utf-8", "healthz check passed");
    else if (n == 1 && method_is(h, "GET") && seg_is(h, 0, "readyz"))
        reply_raw(h, 200, "text/plain; charset=utf-8", "all shards are ready");
    else if (n == 1 && method_is(h, "GET") && seg_is(h, 0, "aliases"))
        handle_alias_list(h, NULL);
    else if (!seg_is(h, 0, "collections"))
        reply_raw(h, 404, NULL, NULL);
    else if (n == 1 && method_is(h, "GET"))
        handle_list(h);
    else if (n < 2)
        reply_raw(h, 404, NULL, NULL);
    else if (n == 2 && method_is(h, "POST") && seg_is(h, 1, "aliases"))
        handle_alias_update(h);
    else if (n == 2 && (method_is(h, "PUT") || method_is(h, "DELETE")))
        handle_collection(h, h->segs[1]); /* by its own name only: DELETE of an alias answers false */
    else if (n == 3 && method_is(h, "GET") && seg_is(h, 2, "aliases"))
        handle_alias_list(h, h->segs[1]);
    else {
        /* everything else takes an alias where it takes a collection name */
        char *cn = resolve_name(h->segs[1]);
        if (n == 2 && (method_is(h, "GET") || method_is(h, "PATCH")))
            handle_collection(h, cn);
        else if (n == 3 && method_is(h, "GET") && seg_is(h, 2, "exists"))
            handle_exists(h, cn);
        else if (n == 3 && method_is(h, "PUT") && seg_is(h, 2, "index"))
            handle_index(h, cn, NULL);
        else if (n == 4 && method_is(h, "DELETE") && seg_is(h, 2, "index"))
            handle_index(h, cn, h->segs[3]);
        else if (n >= 3 && seg_is(h, 2, "points"))
            route_points(h, cn);
        else
            reply_raw(h, 404, NULL, NULL);
        free(cn);
    }
}

/* 401 plain text unless the request carries the configured key. */
static bool auth_ok(hreq *h)
{
    if (!g_srv.api_key)
        return true;
    const char *p = h->path;
    if (strcmp(p, "/") == 0 || strcmp(p, "/healthz") == 0 || strncmp(p, "/livez", 6) == 0 ||
        strncmp(p, "/readyz", 7) == 0)
        return true;
    const char *key = MHD_lookup_connection_value(h->conn, MHD_HEADER_KIND, "api-key");
    const char *auth = MHD_lookup_connection_value(h->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!key && auth && strncasecmp(auth, "Bearer ", 7) == 0)
        key = auth + 7;
    if (key && strcmp(key, g_srv.api_key) == 0)
        return true;
    reply_raw(h, 401, "text/plain; charset=utf-8",
              key ? "Invalid API key or JWT" : "Must provide an API key or an Authorization bearer token");
    return false;
}

/* One JSON line per request; status 0 for a dropped connection. */
static void log_request(const hreq *h)
{
    sbuf b = {0};
    if (!g_srv.log)
        return;
    sb_puts(&b, "{\"method\":");
    sb_json_str(&b, h->method, strlen(h->method));
    sb_puts(&b, ",\"path\":");
    sb_json_str(&b, h->path, strlen(h->path));
    sb_puts(&b, ",\"query\":");
    sb_json_str(&b, h->query, strlen(h->query));
    /* t_in: the request's line arrived, t_out: its answer is ready (seconds, CLOCK_MONOTONIC): for
     * tests that need the order of sends and answers, whatever their tailing costs */
    sb_printf(&b, ",\"t_in\":%.6f,\"t_out\":%.6f", h->t0, now_s());
    sb_printf(&b, ",\"status\":%d,\"body\":", h->drop ? 0 : h->status);
    sb_json_str(&b, h->body ? h->body : "", h->body_len);
    sb_puts(&b, "}\n");
    pthread_mutex_lock(&g_srv.mu);
    fwrite(b.data, 1, b.len, g_srv.log);
    fflush(g_srv.log);
    pthread_mutex_unlock(&g_srv.mu);
    sb_free(&b);
}

static void split_path(hreq *h)
{
    const char *p = h->path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, "/");
        h->segs = ts_realloc(h->segs, (h->nsegs + 1) * sizeof *h->segs);
        h->segs[h->nsegs++] = pct_decode(p, len, false);
        p += len;
    }
}

static void dispatch(hreq *h)
{
    split_path(h);
    if (seg_is(h, 0, "__test")) {
        handle_control(h);
        return;
    }
    pthread_mutex_lock(&g_srv.mu);
    g_srv.n_requests++;
    long delay = 0;
    if (g_srv.f.delay_next > 0) {
        g_srv.f.delay_next--;
        delay = g_srv.f.delay_ms;
    }
    bool raw = false;
    if (g_srv.f.raw_next > 0 && (!g_srv.f.raw_path || strstr(h->path, g_srv.f.raw_path))) {
        g_srv.f.raw_next--;
        raw = true;
        if (g_srv.f.raw_bytes > 0 && g_srv.f.raw_body[0]) {
            h->stream = ts_strdup(g_srv.f.raw_body);
            h->stream_bytes = g_srv.f.raw_bytes;
        } else {
            sb_puts(&h->out, g_srv.f.raw_body);
        }
        h->status = g_srv.f.raw_status;
        h->ctype = g_srv.f.raw_type[0] ? "text/html; charset=utf-8" : NULL;
        if (strncmp(g_srv.f.raw_type, "text/plain", 10) == 0)
            h->ctype = "text/plain; charset=utf-8";
        else if (strncmp(g_srv.f.raw_type, "application/json", 16) == 0)
            h->ctype = "application/json";
        h->location = g_srv.f.raw_location ? ts_strdup(g_srv.f.raw_location) : NULL;
    }
    pthread_mutex_unlock(&g_srv.mu);
    if (raw) {
        log_request(h);
        return;
    }
    if (delay > 0) {
        struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    if (auth_ok(h))
        route(h);
    log_request(h);
}

/* ------------------------------------------------------------------ */
/* libmicrohttpd glue                                                  */
/* ------------------------------------------------------------------ */

/* Per-request state, created by the URI log callback (which sees the raw
 * request target, query string included) and freed on completion. */
typedef struct conn_req {
    char *uri;
    sbuf body;
    size_t body_total;
    bool started;
    double t0;
} conn_req;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
    conn_req *r = ts_calloc(1, sizeof *r);
    r->uri = ts_strdup(uri);
    r->t0 = now_s();
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *con, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    conn_req *r = *req_cls;
    if (!r)
        return;
    free(r->uri);
    sb_free(&r->body);
    free(r);
    *req_cls = NULL;
}

/* Streams a raw_bytes answer: the pattern repeated, never held whole. */
typedef struct stream_state {
    char *pattern;
    size_t plen;
} stream_state;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_state *st = cls;
    for (size_t i = 0; i < max; i++)
        buf[i] = st->pattern[(pos + i) % st->plen];
    return (ssize_t)max;
}

static void stream_free(void *cls)
{
    stream_state *st = cls;
    free(st->pattern);
    free(st);
}

static enum MHD_Result queue_reply(struct MHD_Connection *conn, hreq *h)
{
    struct MHD_Response *resp;
    char ra[32];
    size_t len = h->out.len;
    if (h->stream) {
        stream_state *st = ts_calloc(1, sizeof *st);
        st->pattern = h->stream;
        st->plen = strlen(h->stream);
        h->stream = NULL;
        resp = MHD_create_response_from_callback((uint64_t)h->stream_bytes, 64 * 1024, stream_read, st, stream_free);
        if (!resp)
            stream_free(st);
    } else if (len)
        resp = MHD_create_response_from_buffer(len, sb_steal(&h->out), MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    if (h->ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, h->ctype);
    if (h->retry_after >= 0) {
        snprintf(ra, sizeof ra, "%ld", h->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (h->location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, h->location);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned int)h->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    conn_req *r = *req_cls;
    if (!r) {
        r = on_uri(NULL, url, conn);
        *req_cls = r;
    }
    if (!r->started) {
        r->started = true;
        return MHD_YES;
    }
    if (*upload_data_size) {
        r->body_total += *upload_data_size;
        if (r->body_total <= TS_MAX_BODY)
            sb_append(&r->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }

    hreq h = {0};
    const char *q = strchr(r->uri, '?');
    h.conn = conn;
    h.method = method;
    h.path = q ? ts_strndup(r->uri, (size_t)(q - r->uri)) : ts_strdup(r->uri);
    h.query = ts_strdup(q ? q + 1 : "");
    h.body = r->body.data;
    h.body_len = r->body_total <= TS_MAX_BODY ? r->body.len : 0;
    h.body_total = r->body_total;
    h.t0 = r->t0;
    h.retry_after = -1;
    h.status = 500;
    dispatch(&h);

    enum MHD_Result rc = h.drop ? MHD_NO : queue_reply(conn, &h);
    free(h.path);
    free(h.query);
    free(h.location);
    free(h.stream);
    for (size_t i = 0; i < h.nsegs; i++)
        free(h.segs[i]);
    free(h.segs);
    sb_free(&h.out);
    return rc;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static void usage(FILE *to)
{
    fputs("usage: qdrant_test_server [--host 127.0.0.1] [--port N] [--port-file FILE] [--api-key KEY]\n"
          "                          [--request-log FILE] [--discard-writes] [--apply-log FILE]\n"
          "An in-memory Qdrant 1.19 REST stand-in for tests; runs until SIGTERM/SIGINT.\n"
          "Control API: POST /__test/fault, POST /__test/reset, GET /__test/stats\n"
          "(see docs/qdrant-test-server.md).\n",
          to);
}

typedef struct options {
    const char *host;
    long port;
    const char *port_file;
    const char *api_key;
    const char *request_log;
    bool discard_writes;
    const char *apply_log;
} options;

static int parse_args(int argc, char **argv, options *o)
{
    o->host = "127.0.0.1";
    o->port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--discard-writes") == 0) {
            o->discard_writes = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "qdrant_test_server: %s: missing value or unknown option\n", a);
            return -1;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--host") == 0)
            o->host = v;
        else if (strcmp(a, "--port") == 0) {
            char *end;
            o->port = strtol(v, &end, 10);
            if (*end || o->port < 0 || o->port > 65535) {
                fprintf(stderr, "qdrant_test_server: bad port '%s'\n", v);
                return -1;
            }
        } else if (strcmp(a, "--port-file") == 0)
            o->port_file = v;
        else if (strcmp(a, "--api-key") == 0)
            o->api_key = v;
        else if (strcmp(a, "--request-log") == 0)
            o->request_log = v;
        else if (strcmp(a, "--apply-log") == 0)
            o->apply_log = v;
        else {
            fprintf(stderr, "qdrant_test_server: unknown option %s\n", a);
            return -1;
        }
    }
    if (o->discard_writes && o->apply_log) {
        fprintf(stderr, "qdrant_test_server: --apply-log logs applied points; --discard-writes applies none\n");
        return -1;
    }
    return 0;
}

/* Writes FILE.tmp, then renames it, so readers never see a partial file. */
static int write_port_file(const char *path, unsigned port)
{
    char *tmp = ts_asprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = -1;
    if (!f) {
        fprintf(stderr, "qdrant_test_server: %s: %s\n", tmp, strerror(errno));
        goto cleanup;
    }
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "qdrant_test_server: %s: %s\n", path, strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    free(tmp);
    return rc;
}

int main(int argc, char **argv)
{
    options o = {0};
    struct sockaddr_storage ss;
    struct MHD_Daemon *d = NULL;
    sigset_t sigs;
    int sig, rc = 1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;

    if (parse_args(argc, argv, &o) < 0) {
        usage(stderr);
        return 2;
    }
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, o.host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)o.port);
    } else if (inet_pton(AF_INET6, o.host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)o.port);
        flags |= MHD_USE_IPv6;
    } else {
        fprintf(stderr, "qdrant_test_server: --host must be a numeric IPv4 or IPv6 address\n");
        return 2;
    }

    /* SIGTERM/SIGINT are taken by sigwait below; MHD's threads inherit the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    faults_clear(&g_srv.f);
    g_srv.api_key = o.api_key && *o.api_key ? o.api_key : NULL;
    if (o.request_log && !(g_srv.log = fopen(o.request_log, "a"))) {
        fprintf(stderr, "qdrant_test_server: %s: %s\n", o.request_log, strerror(errno));
        goto cleanup;
    }
    g_srv.discard_writes = o.discard_writes;
    if (o.apply_log && !(g_srv.apply_log = fopen(o.apply_log, "a"))) {
        fprintf(stderr, "qdrant_test_server: %s: %s\n", o.apply_log, strerror(errno));
        goto cleanup;
    }
    d = MHD_start_daemon(flags, (uint16_t)o.port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&ss, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "qdrant_test_server: cannot listen on %s:%ld\n", o.host, o.port);
        goto cleanup;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : 0;
    if (o.port_file && write_port_file(o.port_file, port) < 0)
        goto cleanup;
    printf("qdrant_test_server listening on %s:%u\n", o.host, port);
    fflush(stdout);

    while (sigwait(&sigs, &sig) != 0)
        ;
    rc = 0;
cleanup:
    if (d)
        MHD_stop_daemon(d);
    pthread_mutex_lock(&g_srv.mu);
    state_reset();
    pthread_mutex_unlock(&g_srv.mu);
    if (g_srv.log)
        fclose(g_srv.log);
    if (g_srv.apply_log)
        fclose(g_srv.apply_log);
    return rc;
}
