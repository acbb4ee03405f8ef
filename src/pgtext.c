/*
 * pgtext.c — PostgreSQL output-function text forms to JSON.
 *
 * Values are validated and copied, never parsed into C numbers and printed
 * again: Postgres' float, numeric and integer text forms are already JSON
 * number syntax (except NaN and the infinities, which become strings).
 */
#include "pgtext.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pgtypes.h"

/* Postgres' MAXDIM: no array literal nests deeper. */
#define PGT_MAX_DIMS 6
/* A numeric with more integer digits than this is out of double range,
 * which Qdrant's JSON parser rejects: keep it as a string. */
#define PGT_MAX_NUMERIC_INT_DIGITS 308

typedef struct array_oid {
    uint32_t oid;
    pgt_kind elem;
} array_oid;

/* Built-in array types whose text form pgtext parses (comma delimiter;
 * box[] uses ';' and stays a plain string). */
static const array_oid array_oids[] = {
    {BOOLARRAYOID, PGT_BOOL},
    {BYTEAARRAYOID, PGT_BYTEA},
    {1002, PGT_STRING}, /* "char" */
    {1003, PGT_STRING}, /* name */
    {INT2ARRAYOID, PGT_INT},
    {INT4ARRAYOID, PGT_INT},
    {TEXTARRAYOID, PGT_STRING},
    {1028, PGT_INT}, /* oid */
    {BPCHARARRAYOID, PGT_STRING},
    {VARCHARARRAYOID, PGT_STRING},
    {INT8ARRAYOID, PGT_INT},
    {1017, PGT_STRING}, /* point */
    {1018, PGT_STRING}, /* lseg */
    {1019, PGT_STRING}, /* path */
    {1027, PGT_STRING}, /* polygon */
    {629, PGT_STRING},  /* line */
    {719, PGT_STRING},  /* circle */
    {FLOAT4ARRAYOID, PGT_FLOAT},
    {FLOAT8ARRAYOID, PGT_FLOAT},
    {791, PGT_STRING},  /* money */
    {1040, PGT_STRING}, /* macaddr */
    {775, PGT_STRING},  /* macaddr8 */
    {1041, PGT_STRING}, /* inet */
    {651, PGT_STRING},  /* cidr */
    {143, PGT_STRING},  /* xml */
    {TIMESTAMPARRAYOID, PGT_TIMESTAMP},
    {DATEARRAYOID, PGT_STRING},
    {1183, PGT_STRING}, /* time */
    {TIMESTAMPTZARRAYOID, PGT_TIMESTAMPTZ},
    {1187, PGT_STRING}, /* interval */
    {1270, PGT_STRING}, /* timetz */
    {1561, PGT_STRING}, /* bit */
    {1563, PGT_STRING}, /* varbit */
    {NUMERICARRAYOID, PGT_NUMERIC},
    {UUIDARRAYOID, PGT_STRING},
    {JSONARRAYOID, PGT_JSON},
    {JSONBARRAYOID, PGT_JSON},
    {3643, PGT_STRING}, /* tsvector */
    {3645, PGT_STRING}, /* tsquery */
    {4073, PGT_STRING}, /* jsonpath */
    {3905, PGT_STRING}, /* int4range */
    {3907, PGT_STRING}, /* numrange */
    {3909, PGT_STRING}, /* tsrange */
    {3911, PGT_STRING}, /* tstzrange */
    {3913, PGT_STRING}, /* daterange */
    {3927, PGT_STRING}, /* int8range */
};

static pgt_kind scalar_kind(uint32_t typid)
{
    switch (typid) {
    case BOOLOID: return PGT_BOOL;
    case INT2OID:
    case INT4OID:
    case INT8OID:
    case OIDOID: return PGT_INT;
    case FLOAT4OID:
    case FLOAT8OID: return PGT_FLOAT;
    case NUMERICOID: return PGT_NUMERIC;
    case JSONOID:
    case JSONBOID: return PGT_JSON;
    case TIMESTAMPOID: return PGT_TIMESTAMP;
    case TIMESTAMPTZOID: return PGT_TIMESTAMPTZ;
    case BYTEAOID: return PGT_BYTEA;
    default: return PGT_STRING; /* date's ISO form is already YYYY-MM-DD */
    }
}

pgt_rule pgtext_rule(uint32_t typid, const char *udt_name)
{
    pgt_rule r = {PGT_STRING, false};

    if (udt_name) {
        r.array = udt_name[0] == '_';
        return r;
    }
    for (size_t i = 0; i < sizeof(array_oids) / sizeof(array_oids[0]); i++) {
        if (array_oids[i].oid == typid) {
            r.kind = array_oids[i].elem;
            r.array = true;
            return r;
        }
    }
    r.kind = scalar_kind(typid);
    return r;
}

/* ---- small scanners ------------------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static size_t digits(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && is_digit(s[i]))
        i++;
    return i;
}

/* Length of the JSON number (RFC 8259) at the start of s, 0 if none. */
static size_t json_number_len(const char *s, size_t n)
{
    size_t i = 0, d;

    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if ((d = digits(s + i, n - i)) > 0)
        i += d;
    else
        return 0;
    if (i < n && s[i] == '.') {
        if ((d = digits(s + i + 1, n - i - 1)) == 0)
            return 0;
        i += 1 + d;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;

        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if ((d = digits(s + j, n - j)) == 0)
            return 0;
        i = j + d;
    }
    return i;
}

/*
 * Whether s[0..n) is JSON numbers separated by single commas ("1.5,-2e-05,0"),
 * the text PostgreSQL sends for a float array: one pass of a table-driven
 * automaton (the vectors' hot path; json_number_len per element cost a
 * fifth of a backfill's CPU).
 */
enum { NC_OTHER, NC_ZERO, NC_DIGIT, NC_MINUS, NC_PLUS, NC_DOT, NC_EXP, NC_COMMA, NC_N };
enum { NS_START, NS_SIGN, NS_INT, NS_ZERO, NS_DOT, NS_FRAC, NS_E, NS_ESIGN, NS_EXP, NS_FAIL };

static const unsigned char number_next[NS_FAIL][NC_N] = {
    /*           other    0        1-9     -        +        .        e/E      ,        */
    [NS_START] = {NS_FAIL, NS_ZERO, NS_INT, NS_SIGN, NS_FAIL, NS_FAIL, NS_FAIL, NS_FAIL},
    [NS_SIGN] = {NS_FAIL, NS_ZERO, NS_INT, NS_FAIL, NS_FAIL, NS_FAIL, NS_FAIL, NS_FAIL},
    [NS_INT] = {NS_FAIL, NS_INT, NS_INT, NS_FAIL, NS_FAIL, NS_DOT, NS_E, NS_START},
    [NS_ZERO] = {NS_FAIL, NS_FAIL, NS_FAIL, NS_FAIL, NS_FAIL, NS_DOT, NS_E, NS_START},
    [NS_DOT] = {NS_FAIL, NS_FRAC, NS_FRAC, NS_FAIL, NS_FAIL, NS_FAIL, NS_FAIL, NS_FAIL},
    [NS_FRAC] = {NS_FAIL, NS_FRAC, NS_FRAC, NS_FAIL, NS_FAIL, NS_FAIL, NS_E, NS_START},
    [NS_E] = {NS_FAIL, NS_EXP, NS_EXP, NS_ESIGN, NS_ESIGN, NS_FAIL, NS_FAIL, NS_FAIL},
    [NS_ESIGN] = {NS_FAIL, NS_EXP, NS_EXP, NS_FAIL, NS_FAIL, NS_FAIL, NS_FAIL, NS_FAIL},
    [NS_EXP] = {NS_FAIL, NS_EXP, NS_EXP, NS_FAIL, NS_FAIL, NS_FAIL, NS_FAIL, NS_START},
};

static const unsigned char number_class[256] = {
    ['0'] = NC_ZERO, ['1'] = NC_DIGIT, ['2'] = NC_DIGIT, ['3'] = NC_DIGIT, ['4'] = NC_DIGIT,
    ['5'] = NC_DIGIT, ['6'] = NC_DIGIT, ['7'] = NC_DIGIT, ['8'] = NC_DIGIT, ['9'] = NC_DIGIT,
    ['-'] = NC_MINUS, ['+'] = NC_PLUS, ['.'] = NC_DOT, ['e'] = NC_EXP, ['E'] = NC_EXP, [','] = NC_COMMA,
};

static bool is_json_number_list(const char *s, size_t n)
{
    unsigned st = NS_START;

    for (size_t i = 0; i < n; i++) {
        st = number_next[st][number_class[(unsigned char)s[i]]];
        if (st == NS_FAIL)
            return false;
    }
    return st == NS_INT || st == NS_ZERO || st == NS_FRAC || st == NS_EXP;
}

static bool is_json_number(const char *s, size_t n)
{
    return n > 0 && json_number_len(s, n) == n;
}

static bool is_json_integer(const char *s, size_t n)
{
    size_t i = (n > 0 && s[0] == '-') ? 1 : 0;

    return is_json_number(s, n) && digits(s + i, n - i) == n - i;
}

/* Reads exactly w digits at s[*i] into *v. */
static bool fixed_digits(const char *s, size_t n, size_t *i, size_t w, int *v)
{
    int x = 0;

    if (*i + w > n)
        return false;
    for (size_t k = 0; k < w; k++) {
        if (!is_digit(s[*i + k]))
            return false;
        x = x * 10 + (s[*i + k] - '0');
    }
    *i += w;
    *v = x;
    return true;
}

static bool expect(const char *s, size_t n, size_t *i, char c)
{
    if (*i < n && s[*i] == c) {
        (*i)++;
        return true;
    }
    return false;
}

/* ---- timestamps ------------------------------------------------------- */

/* An ISO timestamp "Y...Y-MM-DD HH:MM:SS[.f]" at the start of s.  Sets the
 * fields, the fraction (with its dot) and the index after it. */
typedef struct iso_ts {
    long year;
    int mon, day, hour, min, sec;
    const char *frac;
    size_t frac_len;
    size_t end;
} iso_ts;

static bool parse_iso_ts(const char *s, size_t n, iso_ts *t)
{
    size_t i = digits(s, n), f;

    if (i < 4 || i > 9)
        return false;
    t->year = 0;
    for (size_t k = 0; k < i; k++)
        t->year = t->year * 10 + (s[k] - '0');
    if (!expect(s, n, &i, '-') || !fixed_digits(s, n, &i, 2, &t->mon) || !expect(s, n, &i, '-') ||
        !fixed_digits(s, n, &i, 2, &t->day) || !expect(s, n, &i, ' ') || !fixed_digits(s, n, &i, 2, &t->hour) ||
        !expect(s, n, &i, ':') || !fixed_digits(s, n, &i, 2, &t->min) || !expect(s, n, &i, ':') ||
        !fixed_digits(s, n, &i, 2, &t->sec))
        return false;
    t->frac = s + i;
    t->frac_len = 0;
    if (i < n && s[i] == '.') {
        if ((f = digits(s + i + 1, n - i - 1)) == 0)
            return false;
        t->frac_len = 1 + f;
        i += 1 + f;
    }
    t->end = i;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static long days_from_civil(long y, int m, int d)
{
    long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, long *y, int *m, int *d)
{
    long era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Two digits of v (0..99). */
static void put2(buf *out, int v)
{
    buf_putc(out, (char)('0' + v / 10));
    buf_putc(out, (char)('0' + v % 10));
}

static void put_iso(buf *out, long year, int mon, int day, int hour, int min, int sec, const iso_ts *t)
{
    if (year >= 0 && year <= 9999) { /* the common case, without printf (a column of every row) */
        buf_putc(out, '"');
        put2(out, (int)(year / 100));
        put2(out, (int)(year % 100));
    } else {
        buf_printf(out, "\"%04ld", year);
    }
    buf_putc(out, '-');
    put2(out, mon);
    buf_putc(out, '-');
    put2(out, day);
    buf_putc(out, 'T');
    put2(out, hour);
    buf_putc(out, ':');
    put2(out, min);
    buf_putc(out, ':');
    put2(out, sec);
    buf_append(out, t->frac, t->frac_len);
}

static bool timestamp_to_json(buf *out, const char *s, size_t n)
{
    iso_ts t;

    if (!parse_iso_ts(s, n, &t) || t.end != n)
        return false;
    put_iso(out, t.year, t.mon, t.day, t.hour, t.min, t.sec, &t);
    buf_putc(out, '"');
    return true;
}

static bool timestamptz_to_json(buf *out, const char *s, size_t n)
{
    iso_ts t;
    size_t i;
    int sign, oh, om = 0, os = 0, mon, day;
    long secs, days, year;

    if (!parse_iso_ts(s, n, &t))
        return false;
    i = t.end;
    if (i >= n || (s[i] != '+' && s[i] != '-'))
        return false;
    sign = s[i++] == '-' ? -1 : 1;
    if (!fixed_digits(s, n, &i, 2, &oh))
        return false;
    if (expect(s, n, &i, ':')) {
        if (!fixed_digits(s, n, &i, 2, &om))
            return false;
        if (expect(s, n, &i, ':') && !fixed_digits(s, n, &i, 2, &os))
            return false;
    }
    if (i != n)
        return false; /* " BC" and anything unexpected */
    /* UTC = local time - offset */
    secs = t.hour * 3600L + t.min * 60L + t.sec - sign * (oh * 3600L + om * 60L + os);
    days = days_from_civil(t.year, t.mon, t.day);
    while (secs < 0) {
        secs += 86400;
        days--;
    }
    while (secs >= 86400) {
        secs -= 86400;
        days++;
    }
    civil_from_days(days, &year, &mon, &day);
    if (year < 1)
        return false; /* would be a BC date: keep the text */
    put_iso(out, year, mon, day, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), &t);
    buf_puts(out, "Z\"");
    return true;
}

/* ---- bytea ----------------------------------------------------------- */

static bool is_octal(char c)
{
    return c >= '0' && c <= '7';
}

/* Decodes bytea's hex ("\x0a1b") or escape ("a\\b\001") output into raw. */
static bool bytea_decode(const char *s, size_t n, buf *raw)
{
    if (n >= 2 && s[0] == '\\' && s[1] == 'x') {
        if ((n - 2) % 2)
            return false;
        for (size_t i = 2; i < n; i += 2) {
            int hi = hex_digit((unsigned char)s[i]), lo = hex_digit((unsigned char)s[i + 1]);

            if (hi < 0 || lo < 0)
                return false;
            buf_putc(raw, (char)(hi << 4 | lo));
        }
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            buf_putc(raw, s[i]);
        } else if (i + 1 < n && s[i + 1] == '\\') {
            buf_putc(raw, '\\');
            i++;
        } else if (i + 3 < n && is_octal(s[i + 1]) && is_octal(s[i + 2]) && is_octal(s[i + 3]) && s[i + 1] <= '3') {
            buf_putc(raw, (char)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 | (s[i + 3] - '0')));
            i += 3;
        } else {
            return false;
        }
    }
    return true;
}

static void base64_json(buf *out, const unsigned char *p, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;

    buf_reserve(out, (n + 2) / 3 * 4 + 2);
    buf_putc(out, '"');
    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = {b64[v >> 18], b64[v >> 12 & 63], b64[v >> 6 & 63], b64[v & 63]};

        buf_append(out, q, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[4] = {b64[v >> 18], b64[v >> 12 & 63], '=', '='};

        buf_append(out, q, 4);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char q[4] = {b64[v >> 18], b64[v >> 12 & 63], b64[v >> 6 & 63], '='};

        buf_append(out, q, 4);
    }
    buf_putc(out, '"');
}

static bool bytea_to_json(buf *out, const char *s, size_t n)
{
    buf raw;
    bool ok;

    buf_init(&raw);
    ok = bytea_decode(s, n, &raw);
    if (ok)
        base64_json(out, (const unsigned char *)raw.data, raw.len);
    buf_free(&raw);
    return ok;
}

/* ---- scalars ---------------------------------------------------------- */

static bool numeric_in_range(const char *s, size_t n)
{
    size_t i = (n > 0 && s[0] == '-') ? 1 : 0;

    return digits(s + i, n - i) <= PGT_MAX_NUMERIC_INT_DIGITS;
}

/* json_rewrite_numbers callback: out-of-range numbers as strings. */
static void json_number_out(const char *tok, size_t len, json_num_class cls, buf *out)
{
    if (cls == JSON_NUM_OVERFLOW)
        buf_json_str(out, tok, len);
    else
        buf_append(out, tok, len);
}

/* Writes s as its kind demands; false when s does not have that kind's
 * shape (the caller then writes it as a string). */
static bool scalar_to_json(buf *out, pgt_kind kind, const char *s, size_t n)
{
    switch (kind) {
    case PGT_STRING: return false; /* the caller's fallback is the rule */
    case PGT_BOOL:
        if (n == 1 && (s[0] == 't' || s[0] == 'f')) {
            buf_puts(out, s[0] == 't' ? "true" : "false");
            return true;
        }
        return false;
    case PGT_INT:
        if (!is_json_integer(s, n))
            return false;
        buf_append(out, s, n);
        return true;
    case PGT_FLOAT:
    case PGT_NUMERIC:
        if (!is_json_number(s, n) || (kind == PGT_NUMERIC && !numeric_in_range(s, n)))
            return false;
        buf_append(out, s, n);
        return true;
    case PGT_JSON:
        if (n == 0)
            return false;
        /* A number Qdrant cannot parse (beyond double range, e.g. 1e400 or a
         * 400-digit integer) goes out as a string of its text, as a numeric
         * column's does (docs/mapping.md). */
        if (!json_rewrite_numbers(s, n, out, json_number_out))
            buf_append(out, s, n);
        return true;
    case PGT_TIMESTAMP: return timestamp_to_json(out, s, n);
    case PGT_TIMESTAMPTZ: return timestamptz_to_json(out, s, n);
    case PGT_BYTEA: return bytea_to_json(out, s, n);
    }
    return false;
}

static void value_to_json(buf *out, pgt_kind kind, const char *s, size_t n)
{
    if (!scalar_to_json(out, kind, s, n))
        buf_json_str(out, s, n);
}

/* ---- array literals --------------------------------------------------- */

typedef struct arr_parser {
    const char *s;
    size_t n;
    size_t i;
    buf *out;
    buf elem; /* scratch: one element, unescaped */
    pgt_kind kind;
} arr_parser;

static void arr_skip_space(arr_parser *p)
{
    while (p->i < p->n && is_space(p->s[p->i]))
        p->i++;
}

/* Skips an optional dimension decoration "[1:2][0:3]=". */
static bool arr_skip_dims(const char *s, size_t n, size_t *i)
{
    while (*i < n && is_space(s[*i]))
        (*i)++;
    if (*i >= n || s[*i] != '[')
        return true;
    while (*i < n && s[*i] != '=') {
        if (s[*i] != '[' && s[*i] != ']' && s[*i] != ':' && s[*i] != '-' && !is_digit(s[*i]))
            return false;
        (*i)++;
    }
    return expect(s, n, i, '=');
}

/* A quoted element: "..." with backslash escapes. */
static bool arr_quoted(arr_parser *p)
{
    p->i++; /* opening quote */
    while (p->i < p->n && p->s[p->i] != '"') {
        if (p->s[p->i] == '\\' && ++p->i >= p->n)
            return false;
        buf_putc(&p->elem, p->s[p->i++]);
    }
    if (!expect(p->s, p->n, &p->i, '"'))
        return false;
    value_to_json(p->out, p->kind, p->elem.data, p->elem.len);
    return true;
}

/* An unquoted element: up to ',' or '}', backslash escapes allowed,
 * surrounding white space dropped; NULL (any case, unescaped) is null. */
static bool arr_unquoted(arr_parser *p)
{
    bool escaped = false;
    size_t keep = 0; /* elem length up to the last escaped or non-space char */

    while (p->i < p->n && p->s[p->i] != ',' && p->s[p->i] != '}') {
        char c = p->s[p->i++];

        if (c == '{' || c == '"')
            return false;
        if (c == '\\') {
            if (p->i >= p->n)
                return false;
            buf_putc(&p->elem, p->s[p->i++]);
            escaped = true;
            keep = p->elem.len;
        } else {
            buf_putc(&p->elem, c);
            if (!is_space(c))
                keep = p->elem.len;
        }
    }
    p->elem.len = keep;
    if (keep == 0)
        return false;
    if (!escaped && keep == 4 && strncasecmp(p->elem.data, "NULL", 4) == 0)
        buf_puts(p->out, "null");
    else
        value_to_json(p->out, p->kind, p->elem.data, keep);
    return true;
}

static bool arr_level(arr_parser *p, int depth)
{
    if (depth > PGT_MAX_DIMS || !expect(p->s, p->n, &p->i, '{'))
        return false;
    buf_putc(p->out, '[');
    arr_skip_space(p);
    if (expect(p->s, p->n, &p->i, '}')) {
        buf_putc(p->out, ']');
        return true;
    }
    for (;;) {
        bool ok;

        arr_skip_space(p);
        buf_reset(&p->elem);
        if (p->i >= p->n)
            return false;
        if (p->s[p->i] == '{')
            ok = arr_level(p, depth + 1);
        else if (p->s[p->i] == '"')
            ok = arr_quoted(p);
        else
            ok = arr_unquoted(p);
        if (!ok)
            return false;
        arr_skip_space(p);
        if (expect(p->s, p->n, &p->i, '}'))
            break;
        if (!expect(p->s, p->n, &p->i, ','))
            return false;
        buf_putc(p->out, ',');
    }
    buf_putc(p->out, ']');
    return true;
}

static bool array_to_json(buf *out, pgt_kind kind, const char *s, size_t n)
{
    arr_parser p = {.s = s, .n = n, .i = 0, .out = out, .kind = kind};
    bool ok;

    buf_init(&p.elem);
    buf_reserve(&p.elem, 32); /* elem.data is never NULL, even for "" */
    ok = arr_skip_dims(s, n, &p.i) && arr_level(&p, 1);
    if (ok) {
        arr_skip_space(&p);
        ok = p.i == n;
    }
    buf_free(&p.elem);
    return ok;
}

void pgtext_to_json(buf *out, pgt_rule rule, const char *s, size_t n)
{
    size_t start = out->len;

    if (!rule.array) {
        value_to_json(out, rule.kind, s, n);
        return;
    }
    if (array_to_json(out, rule.kind, s, n))
        return;
    out->len = start; /* malformed literal: drop the partial output */
    buf_json_str(out, s, n);
}

/* ---- vectors ---------------------------------------------------------- */

static int vec_fail(buf *out, size_t start, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Drops what was appended since start and reports the error. */
static int vec_fail(buf *out, size_t start, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    out->len = start;
    if (out->data)
        out->data[start] = '\0';
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Checks and copies one vector element s[0..n) (the n-th, 1-based pos). */
static int vec_elem(buf *out, size_t start, const char *s, size_t n, size_t pos, char *err, size_t errlen)
{
    if (n == 4 && strncasecmp(s, "NULL", 4) == 0)
        return vec_fail(out, start, err, errlen, "NULL element at position %zu", pos);
    if (n > 0 && s[0] == '{')
        return vec_fail(out, start, err, errlen, "nested array at position %zu: not one-dimensional", pos);
    if (!is_json_number(s, n))
        return vec_fail(out, start, err, errlen, "element %zu is not a finite number", pos);
    buf_append(out, s, n);
    return 0;
}

/* The comma-separated elements of s[i..close) into [...], close being the
 * position of the closing bracket. */
static int vec_list(buf *out, const char *s, size_t i, size_t close, char *err, size_t errlen)
{
    size_t start = out->len, pos = 1;

    if (i == close)
        return vec_fail(out, start, err, errlen, "empty vector");
    /* The text PostgreSQL sends for a float array (and pgvector's) is JSON
     * numbers separated by single commas: check that in one pass and copy
     * the span as it is.  Anything else takes the element-by-element path
     * below, which names the element at fault. */
    if (is_json_number_list(s + i, close - i)) {
        buf_putc(out, '[');
        buf_append(out, s + i, close - i);
        buf_putc(out, ']');
        return 0;
    }
    buf_putc(out, '[');
    for (;;) {
        size_t e = i;

        while (e < close && s[e] != ',')
            e++;
        if (vec_elem(out, start, s + i, e - i, pos, err, errlen) < 0)
            return -1;
        if (e == close)
            break;
        buf_putc(out, ',');
        i = e + 1;
        pos++;
    }
    buf_putc(out, ']');
    return 0;
}

int pgtext_dense_array(buf *out, const char *s, size_t n, char *err, size_t errlen)
{
    size_t i = 0;

    if (!arr_skip_dims(s, n, &i) || !expect(s, n, &i, '{') || n == 0 || s[n - 1] != '}')
        return vec_fail(out, out->len, err, errlen, "not an array literal");
    return vec_list(out, s, i, n - 1, err, errlen);
}

int pgtext_pgvector(buf *out, const char *s, size_t n, char *err, size_t errlen)
{
    if (n < 2 || s[0] != '[' || s[n - 1] != ']')
        return vec_fail(out, out->len, err, errlen, "not a vector literal [...]");
    return vec_list(out, s, 1, n - 1, err, errlen);
}

/* One "index:value" pair of a sparsevec at s[*i]; sets the pieces. */
static bool sparse_pair(const char *s, size_t n, size_t *i, uint64_t *index, const char **val, size_t *val_len)
{
    size_t d = digits(s + *i, n - *i);

    if (d == 0 || d > 10)
        return false;
    *index = 0;
    for (size_t k = 0; k < d; k++)
        *index = *index * 10 + (uint64_t)(s[*i + k] - '0');
    *i += d;
    if (!expect(s, n, i, ':'))
        return false;
    *val = s + *i;
    *val_len = json_number_len(s + *i, n - *i);
    if (*val_len == 0)
        return false;
    *i += *val_len;
    return true;
}

int pgtext_sparsevec(buf *out, const char *s, size_t n, char *err, size_t errlen)
{
    size_t start = out->len, close, i, pos;
    uint64_t dim = 0, index;
    const char *val;
    size_t val_len;

    /* "{...}/dim": read dim first so indices can be checked against it */
    for (close = n; close > 0 && s[close - 1] != '/'; close--)
        ;
    if (close < 3 || s[0] != '{' || s[close - 2] != '}' || digits(s + close, n - close) != n - close ||
        n - close == 0 || n - close > 10)
        return vec_fail(out, start, err, errlen, "not a sparsevec literal {i:v,...}/dim");
    for (i = close; i < n; i++)
        dim = dim * 10 + (uint64_t)(s[i] - '0');
    close -= 2; /* index of '}' */

    buf_puts(out, "{\"indices\":[");
    for (i = 1, pos = 1; i < close; pos++) {
        if (!sparse_pair(s, close, &i, &index, &val, &val_len) ||
            (i < close && (s[i++] != ',' || i == close)))
            return vec_fail(out, start, err, errlen, "sparsevec element %zu is not index:number", pos);
        if (index < 1 || index > dim)
            return vec_fail(out, start, err, errlen, "sparsevec index %llu out of range 1..%llu",
                            (unsigned long long)index, (unsigned long long)dim);
        buf_printf(out, "%s%llu", pos > 1 ? "," : "", (unsigned long long)(index - 1));
    }
    buf_puts(out, "],\"values\":[");
    for (i = 1, pos = 1; i < close; pos++) {
        sparse_pair(s, close, &i, &index, &val, &val_len);
        i++; /* ',' or past '}' */
        if (pos > 1)
            buf_putc(out, ',');
        buf_append(out, val, val_len);
    }
    buf_puts(out, "]}");
    return 0;
}
