/*
 * config.c — the INI configuration of SPEC §2 (reference: docs/configuration.md).
 *
 * libinih splits the file into key = value pairs and strips comments.  It is
 * fed through ini_parse_stream() with our own line reader, which
 *   - counts physical lines, so every message can name FILE:LINE;
 *   - takes each [section] header itself and hands inih a short token such
 *     as "[3]" instead: inih truncates section names to 49 bytes, too short
 *     for [table schema.name] with PostgreSQL's 63-byte identifiers;
 *   - strips leading whitespace, so an indented line is an ordinary line and
 *     never an inih continuation line;
 *   - reports a malformed line (or one too long for inih's line buffer)
 *     itself and hands inih an empty line, so every bad line is reported and
 *     not only inih's first.
 * The handler validates and stores each value as it comes, so the messages
 * follow the file's order.  Environment variables and the secrets' *_file
 * forms are applied after the file.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "util.h"

extern char **environ;

#define ENV_PREFIX "PG2QDRANT_"
#define ENV_CONFIG "PG2QDRANT_CONFIG"
#define ENV_NAME_MAX 64
#define PG_NAME_MAX 63 /* NAMEDATALEN - 1 */
#define COLLECTION_NAME_MAX 255
#define SECRET_FILE_MAX (64 * 1024)
#define REDACTED "********"

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define TIB (GIB * 1024)
#define HOUR_MS INT64_C(3600000)

/* ------------------------------------------------------------------ */
/* strlist                                                             */

void strlist_add(strlist *l, const char *fmt, ...)
{
    va_list ap;

    l->items = xrealloc(l->items, (size_t)(l->n + 1) * sizeof(char *));
    va_start(ap, fmt);
    l->items[l->n++] = xvasprintf(fmt, ap);
    va_end(ap);
}

void strlist_free(strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

bool strlist_has(const strlist *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->items[i], s) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* Unit parsers                                                        */

typedef struct unit_def {
    const char *name;
    int64_t factor;
} unit_def;

static const unit_def SIZE_UNITS[] = {
    {"", 1}, {"B", 1}, {"kB", KIB}, {"MB", MIB}, {"GB", GIB}, {"TB", TIB}, {NULL, 0},
};

static const unit_def DURATION_UNITS[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", HOUR_MS}, {"d", 24 * HOUR_MS}, {NULL, 0},
};

/* "  <digits> [whitespace] <unit>  " with a unit of units (case-insensitive). */
static int parse_scaled(const char *s, const unit_def *units, int64_t *out)
{
    int64_t v = 0;
    size_t ulen;

    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return -1;
    for (; isdigit((unsigned char)*s); s++) {
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    while (isspace((unsigned char)*s))
        s++;
    ulen = strlen(s);
    while (ulen > 0 && isspace((unsigned char)s[ulen - 1]))
        ulen--;
    for (const unit_def *u = units; u->name; u++) {
        if (strlen(u->name) != ulen || strncasecmp(u->name, s, ulen) != 0)
            continue;
        if (v > INT64_MAX / u->factor)
            return -1;
        *out = v * u->factor;
        return 0;
    }
    return -1;
}

int config_parse_size(const char *s, int64_t *bytes)
{
    return parse_scaled(s, SIZE_UNITS, bytes);
}

int config_parse_duration(const char *s, int64_t *ms)
{
    return parse_scaled(s, DURATION_UNITS, ms);
}

static bool word_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

int config_parse_bool(const char *s, bool *out)
{
    size_t n;

    while (isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (word_is(s, n, "true") || word_is(s, n, "on") || word_is(s, n, "yes") || word_is(s, n, "1")) {
        *out = true;
        return 0;
    }
    if (word_is(s, n, "false") || word_is(s, n, "off") || word_is(s, n, "no") || word_is(s, n, "0")) {
        *out = false;
        return 0;
    }
    return -1;
}

/* A plain non-negative integer, no unit. */
static int parse_count(const char *s, int64_t *out)
{
    static const unit_def none[] = {{"", 1}, {NULL, 0}};
    return parse_scaled(s, none, out);
}

/* ------------------------------------------------------------------ */
/* Value checks: each returns NULL when fine, else why it is not.      */

#define IDENT_RULE "expected a name of 1 to 63 bytes without spaces, quotes or commas"

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* A table, column or publication name as PostgreSQL reports it (no quoting). */
static const char *check_ident(const char *s, size_t n)
{
    if (n == 0 || n > PG_NAME_MAX)
        return IDENT_RULE;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || isspace(c) || c == '"' || c == ',')
            return IDENT_RULE;
    }
    return NULL;
}

static const char *check_slot(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > PG_NAME_MAX || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != n)
        return "expected 1 to 63 lower-case letters, digits or underscores";
    return NULL;
}

static const char *check_collection(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > COLLECTION_NAME_MAX || has_control(s) || strpbrk(s, "<>:\"/\\|?*"))
        return "expected a Qdrant collection name of 1 to 255 bytes without <>:\"/\\|?*";
    return NULL;
}

static const char *check_url(const char *s)
{
    size_t skip = 0;

    if (strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    if (skip == 0 || s[skip] == '\0' || s[skip] == '/' || has_control(s) || strchr(s, ' '))
        return "expected an http:// or https:// URL";
    return NULL;
}

static const char *check_listen(const char *s)
{
    static const char *rule = "expected HOST:PORT (127.0.0.1:9930, [::1]:9930) or empty to disable";
    const char *colon;
    int64_t port;

    if (*s == '\0')
        return NULL;
    if (has_control(s) || strchr(s, ' '))
        return rule;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb == s + 1 || rb[1] != ':')
            return rule;
        colon = rb + 1;
    } else {
        colon = strchr(s, ':');
        if (!colon || colon == s || strchr(colon + 1, ':'))
            return rule;
    }
    if (strlen(colon + 1) > 5 || parse_count(colon + 1, &port) < 0 || port < 1 || port > 65535)
        return rule;
    return NULL;
}

/* The DSN must parse; libpq's message is not passed on, it may quote the password. */
static const char *check_dsn(const char *s)
{
    char *pqerr = NULL;
    PQconninfoOption *opts = PQconninfoParse(s, &pqerr);

    PQfreemem(pqerr);
    if (!opts)
        return "not a valid libpq connection string (key=value pairs or a postgresql:// URI)";
    PQconninfoFree(opts);
    return NULL;
}

static const char *check_api_key(const char *s)
{
    return has_control(s) ? "contains control characters" : NULL;
}

/* ------------------------------------------------------------------ */
/* The keys of [source] [qdrant] [sync] [http]                         */

typedef enum {
    V_DSN,         /* secret */
    V_API_KEY,     /* secret */
    V_SECRET_FILE, /* <secret>_file: directly follows its secret in KEYS */
    V_BOOL,
    V_DURATION,
    V_SIZE,
    V_COUNT,
    V_SNAPSHOT,
    V_ON_ERROR,
    V_SLOT,
    V_NAME,
    V_URL,
    V_LISTEN,
    V_PATH,
    V_OPT_PATH, /* a file name, or empty for none */
} value_kind;

typedef struct key_spec {
    const char *section;
    const char *key;
    value_kind kind;
    size_t offset;     /* of the field in p2q_config (unused for V_SECRET_FILE) */
    int64_t min, max;  /* V_DURATION, V_SIZE, V_COUNT */
    const char *range; /* min and max as a user writes them */
} key_spec;

#define FIELD(m) offsetof(p2q_config, m)

static const key_spec KEYS[] = {
    {"source", "dsn", V_DSN, FIELD(source.dsn), 0, 0, NULL},
    {"source", "dsn_file", V_SECRET_FILE, 0, 0, 0, NULL},
    {"source", "slot", V_SLOT, FIELD(source.slot), 0, 0, NULL},
    {"source", "publication", V_NAME, FIELD(source.publication), 0, 0, NULL},
    {"source", "create_slot", V_BOOL, FIELD(source.create_slot), 0, 0, NULL},
    {"source", "create_publication", V_BOOL, FIELD(source.create_publication), 0, 0, NULL},
    {"source", "status_interval", V_DURATION, FIELD(source.status_interval_ms), 1, HOUR_MS, "1ms and 1h"},
    {"qdrant", "url", V_URL, FIELD(qdrant.url), 0, 0, NULL},
    {"qdrant", "api_key", V_API_KEY, FIELD(qdrant.api_key), 0, 0, NULL},
    {"qdrant", "api_key_file", V_SECRET_FILE, 0, 0, 0, NULL},
    {"qdrant", "timeout", V_DURATION, FIELD(qdrant.timeout_ms), 100, HOUR_MS, "100ms and 1h"},
    {"qdrant", "create_collections", V_BOOL, FIELD(qdrant.create_collections), 0, 0, NULL},
    {"qdrant", "ca_file", V_OPT_PATH, FIELD(qdrant.ca_file), 0, 0, NULL},
    {"sync", "snapshot", V_SNAPSHOT, FIELD(sync.snapshot), 0, 0, NULL},
    {"sync", "batch_points", V_COUNT, FIELD(sync.batch_points), 1, 100000, "1 and 100000"},
    {"sync", "parallel_requests", V_COUNT, FIELD(sync.parallel_requests), 1, 8, "1 and 8"},
    {"sync", "batch_bytes", V_SIZE, FIELD(sync.batch_bytes), KIB, GIB, "1kB and 1GB"},
    {"sync", "flush_interval", V_DURATION, FIELD(sync.flush_interval_ms), 1, HOUR_MS, "1ms and 1h"},
    {"sync", "max_inflight", V_SIZE, FIELD(sync.max_inflight), MIB, TIB, "1MB and 1TB"},
    {"sync", "on_error", V_ON_ERROR, FIELD(sync.on_error), 0, 0, NULL},
    {"sync", "dead_letter_file", V_PATH, FIELD(sync.dead_letter_file), 0, 0, NULL},
    {"sync", "shutdown_timeout", V_DURATION, FIELD(sync.shutdown_timeout_ms), 0, HOUR_MS, "0 and 1h"},
    {"sync", "backfill_chunk_rows", V_COUNT, FIELD(sync.backfill_chunk_rows), 1, 1000000, "1 and 1000000"},
    {"http", "listen", V_LISTEN, FIELD(http.listen), 0, 0, NULL},
};

#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

static bool is_secret(value_kind kind)
{
    return kind == V_DSN || kind == V_API_KEY;
}

static const key_spec *key_find(const char *section, const char *key)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].key, key) == 0)
            return &KEYS[i];
    return NULL;
}

/* PG2QDRANT_<SECTION>_<KEY>, upper case. */
static void key_env_name(const key_spec *k, char out[ENV_NAME_MAX])
{
    snprintf(out, ENV_NAME_MAX, ENV_PREFIX "%s_%s", k->section, k->key);
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

/* Frees a string that may hold a secret, zeroed first (no copy of an API
 * key or password is left in freed memory). */
static void free_secret(char *p)
{
    if (p)
        wipe(p, strlen(p));
    free(p);
}

static void set_string(char **field, const char *value, size_t n)
{
    free_secret(*field); /* any field: the cost is nothing, the secrets are covered */
    *field = xstrndup(value, n);
}

/*
 * Validates value for key k and stores it in cfg.  where is "FILE:LINE" or
 * the environment variable's name; a secret's value is never quoted.
 */
static void key_set(p2q_config *cfg, strlist *errs, const key_spec *k, const char *value, const char *where)
{
    void *field = (char *)cfg + k->offset;
    const char *why = NULL;
    char range[64];
    bool is_text = false; /* a char * field: keep the first keep bytes of value */
    size_t keep = strlen(value);
    int64_t num = 0;
    bool flag = false;

    switch (k->kind) {
    case V_DSN:
        why = check_dsn(value);
        is_text = true;
        break;
    case V_API_KEY:
        why = check_api_key(value);
        is_text = true;
        break;
    case V_BOOL:
        if (config_parse_bool(value, &flag) < 0)
            why = "expected a boolean (true/false, on/off, yes/no, 1/0)";
        else
            *(bool *)field = flag;
        break;
    case V_DURATION:
    case V_SIZE:
    case V_COUNT:
        if (k->kind == V_DURATION && config_parse_duration(value, &num) < 0) {
            why = "expected a duration (ms, s, min, h)";
        } else if (k->kind == V_SIZE && config_parse_size(value, &num) < 0) {
            why = "expected a size (B, kB, MB, GB)";
        } else if (k->kind == V_COUNT && parse_count(value, &num) < 0) {
            why = "expected a whole number";
        } else if (num < k->min || num > k->max) {
            snprintf(range, sizeof range, "must be between %s", k->range);
            why = range;
        } else {
            *(int64_t *)field = num;
        }
        break;
    case V_SNAPSHOT:
        if (strcmp(value, "initial") == 0)
            *(snapshot_mode *)field = SNAPSHOT_INITIAL;
        else if (strcmp(value, "never") == 0)
            *(snapshot_mode *)field = SNAPSHOT_NEVER;
        else if (strcmp(value, "always") == 0)
            *(snapshot_mode *)field = SNAPSHOT_ALWAYS;
        else
            why = "expected initial, never or always";
        break;
    case V_ON_ERROR:
        if (strcmp(value, "stop") == 0)
            *(on_error_mode *)field = ON_ERROR_STOP;
        else if (strcmp(value, "dead_letter") == 0)
            *(on_error_mode *)field = ON_ERROR_DEAD_LETTER;
        else
            why = "expected stop or dead_letter";
        break;
    case V_SLOT:
        why = check_slot(value);
        is_text = true;
        break;
    case V_NAME:
        why = check_ident(value, keep);
        is_text = true;
        break;
    case V_URL:
        why = check_url(value);
        is_text = true;
        while (!why && value[keep - 1] == '/') /* check_url ensured a host before any '/' */
            keep--;
        break;
    case V_LISTEN:
        why = check_listen(value);
        is_text = true;
        break;
    case V_PATH:
        why = *value ? NULL : "expected a file name";
        is_text = true;
        break;
    case V_OPT_PATH:
        is_text = true;
        break;
    case V_SECRET_FILE: /* only checked here: resolve_secrets() reads it */
        why = *value ? NULL : "expected a file name";
        break;
    }

    if (why && is_secret(k->kind))
        strlist_add(errs, "%s: bad value for [%s] %s: %s", where, k->section, k->key, why);
    else if (why)
        strlist_add(errs, "%s: bad value '%s' for [%s] %s: %s", where, value, k->section, k->key, why);
    else if (is_text)
        set_string(field, value, keep);
}

/* ------------------------------------------------------------------ */
/* Loading state                                                       */

typedef enum { SEC_KEYS, SEC_TABLE, SEC_SKIP } section_kind;

enum { TK_COLLECTION = 1, TK_ID = 2, TK_ID_MODE = 4, TK_PAYLOAD = 8, TK_DISTANCE = 16, TK_ALIAS = 32,
       TK_CREATE_PARAMS = 64, TK_KEEP_OLD = 128 };

typedef struct section {
    section_kind kind;
    char *title; /* as written, trimmed: "sync", "table public.products" */
    int table;   /* SEC_TABLE: index into cfg->tables */
    unsigned seen; /* SEC_TABLE: TK_* keys already set */
} section;

typedef struct load_state {
    p2q_config *cfg;
    strlist *errs;
    const char *file;
    FILE *fp;
    int read_errno;          /* errno of a failed read, 0 at EOF */
    int line;                /* physical line last handed to inih */
    char *text;              /* getline buffer */
    size_t text_cap;
    section *sections;
    int n_sections;
    int key_line[N_KEYS];    /* line of each key in the file, 0 = not set there */
    char *key_raw[N_KEYS];   /* secrets and *_file keys: the text from the file */
    bool key_env[N_KEYS];    /* set from the environment */
} load_state;

static void load_state_free(load_state *st)
{
    if (st->text)
        wipe(st->text, st->text_cap); /* the last line read may be a secret's */
    free(st->text);
    for (int i = 0; i < st->n_sections; i++)
        free(st->sections[i].title);
    free(st->sections);
    for (int i = 0; i < N_KEYS; i++)
        free_secret(st->key_raw[i]);
}

static char *trim(char *s)
{
    size_t n;

    while (isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void add_list_item(char ***items, int *n, const char *s, size_t len)
{
    *items = xrealloc(*items, (size_t)(*n + 1) * sizeof(char *));
    (*items)[(*n)++] = xstrndup(s, len);
}

static void free_list(char **items, int n)
{
    for (int i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

/* ------------------------------------------------------------------ */
/* Sections                                                            */

/* [table schema.name] or [table name]: registers the table, or reports why not. */
static section_kind table_open(load_state *st, const char *title, const char *spec, int *table)
{
    p2q_config *cfg = st->cfg;
    const char *dot = strchr(spec, '.');
    const char *schema = "public", *name = spec;
    size_t schema_len = 6, name_len = strlen(spec);
    table_cfg *t;

    if (dot) {
        schema = spec;
        schema_len = (size_t)(dot - spec);
        name = dot + 1;
        name_len = strlen(name);
    }
    if (*spec == '\0' || (dot && strchr(name, '.')) || check_ident(schema, schema_len) ||
        check_ident(name, name_len)) {
        strlist_add(st->errs, "%s:%d: bad section [%s]: expected [table schema.name] or [table name]", st->file,
                    st->line, title);
        return SEC_SKIP;
    }
    for (int i = 0; i < cfg->n_tables; i++) {
        t = &cfg->tables[i];
        if (strlen(t->schema) == schema_len && strncmp(t->schema, schema, schema_len) == 0 &&
            strlen(t->name) == name_len && strncmp(t->name, name, name_len) == 0) {
            strlist_add(st->errs, "%s:%d: duplicate section [table %s.%s]: already at line %d", st->file, st->line,
                        t->schema, t->name, t->line);
            return SEC_SKIP;
        }
    }
    cfg->tables = xrealloc(cfg->tables, (size_t)(cfg->n_tables + 1) * sizeof(table_cfg));
    t = &cfg->tables[cfg->n_tables];
    memset(t, 0, sizeof *t);
    t->schema = xstrndup(schema, schema_len);
    t->name = xstrndup(name, name_len);
    t->qualified = xasprintf("%s.%s", t->schema, t->name);
    {
        buf q;
        buf_init(&q);
        buf_quote_ident(&q, t->schema);
        buf_putc(&q, '.');
        buf_quote_ident(&q, t->name);
        t->quoted = buf_steal(&q);
    }
    t->payload_all = true;
    t->file = xstrdup(st->file);
    t->line = st->line;
    *table = cfg->n_tables++;
    return SEC_TABLE;
}

/* Registers the section titled title; returns its index (the token inih sees). */
static int section_open(load_state *st, const char *title, bool malformed)
{
    section *sec;

    st->sections = xrealloc(st->sections, (size_t)(st->n_sections + 1) * sizeof(section));
    sec = &st->sections[st->n_sections];
    memset(sec, 0, sizeof *sec);
    sec->title = xstrdup(title);
    sec->kind = SEC_SKIP;
    if (malformed)
        return st->n_sections++;
    if (strcmp(title, "source") == 0 || strcmp(title, "qdrant") == 0 || strcmp(title, "sync") == 0 ||
        strcmp(title, "http") == 0)
        sec->kind = SEC_KEYS;
    else if (strncmp(title, "table", 5) == 0 && (title[5] == '\0' || isspace((unsigned char)title[5])))
        sec->kind = table_open(st, title, trim(sec->title + 5), &sec->table);
    else
        strlist_add(st->errs, "%s:%d: unknown section [%s]", st->file, st->line, title);
    return st->n_sections++;
}

/* ------------------------------------------------------------------ */
/* The line reader handed to inih                                      */

/* Whether inih will find '=' or ':' before an inline ';' comment. */
static bool has_separator(const char *s)
{
    bool was_space = false;

    for (; *s; s++) {
        if (*s == '=' || *s == ':')
            return true;
        if (was_space && *s == ';')
            return false;
        was_space = isspace((unsigned char)*s);
    }
    return false;
}

/* "[title] ; comment": opens the section and writes its token to out. */
static void read_section_header(load_state *st, char *s, char *out, int num)
{
    char *close = strchr(s, ']');
    char *rest = close ? close + 1 : NULL;
    bool malformed = false;

    while (rest && isspace((unsigned char)*rest))
        rest++;
    if (!close) {
        strlist_add(st->errs, "%s:%d: syntax error: missing ']' in section header", st->file, st->line);
        malformed = true;
    } else if (*rest && *rest != ';' && *rest != '#') {
        strlist_add(st->errs, "%s:%d: syntax error: unexpected text after ']'", st->file, st->line);
        malformed = true;
    }
    if (close)
        *close = '\0';
    /* A malformed header still opens a section, so its keys are not taken for the previous one's. */
    snprintf(out, (size_t)num, "[%d]\n", section_open(st, trim(s + 1), malformed));
}

static char *read_line(char *out, int num, void *stream)
{
    load_state *st = stream;
    ssize_t n = getline(&st->text, &st->text_cap, st->fp);
    char *s = st->text;

    if (n < 0) {
        st->read_errno = ferror(st->fp) ? errno : 0;
        return NULL;
    }
    st->line++;
    out[0] = '\0';
    if (st->line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        n -= 3;
    }
    if (memchr(s, '\0', (size_t)n)) {
        strlist_add(st->errs, "%s:%d: syntax error: NUL byte in line", st->file, st->line);
        return out;
    }
    s = trim(s);
    if (*s == '\0' || *s == ';' || *s == '#')
        return out;
    if (*s == '[') {
        read_section_header(st, s, out, num);
    } else if (!has_separator(s)) {
        strlist_add(st->errs, "%s:%d: syntax error: expected 'key = value' or '[section]'", st->file, st->line);
    } else if (strlen(s) + 2 > (size_t)num) {
        strlist_add(st->errs, "%s:%d: line is longer than %d characters, the INI parser's limit", st->file, st->line,
                    num - 2);
    } else {
        snprintf(out, (size_t)num, "%s\n", s);
    }
    return out;
}

/* ------------------------------------------------------------------ */
/* Keys of a [table ...] section                                       */

/*
 * "a, b ,c" -> {"a","b","c"}.  An empty text gives an empty list.  Returns
 * NULL or why the list is bad; *items is set only when it is good.
 */
static const char *parse_column_list(const char *text, char ***items, int *n)
{
    char **list = NULL;
    int count = 0;
    const char *why = NULL;
    const char *p = text;

    while (*text) { /* until the last item; an empty text is an empty list */
        const char *end = strchr(p, ',');
        const char *a = p, *b = end ? end : p + strlen(p);

        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if ((why = check_ident(a, (size_t)(b - a))) != NULL) {
            why = a == b ? "empty column name in list" : IDENT_RULE;
            goto cleanup;
        }
        for (int i = 0; i < count; i++) {
            if (strlen(list[i]) == (size_t)(b - a) && strncmp(list[i], a, (size_t)(b - a)) == 0) {
                why = "column listed twice";
                goto cleanup;
            }
        }
        add_list_item(&list, &count, a, (size_t)(b - a));
        if (!end)
            break;
        p = end + 1;
    }
    *items = list;
    *n = count;
    list = NULL;
    count = 0;
cleanup:
    free_list(list, count);
    return why;
}

static bool table_seen(load_state *st, section *sec, unsigned bit, const char *key)
{
    if (sec->seen & bit) {
        strlist_add(st->errs, "%s:%d: duplicate key '%s' in section [%s]", st->file, st->line, key, sec->title);
        return true;
    }
    sec->seen |= bit;
    return false;
}

static void table_key(load_state *st, section *sec, const char *key, const char *value)
{
    table_cfg *t = &st->cfg->tables[sec->table];
    const char *why = NULL;

    if (strcmp(key, "collection") == 0) {
        if (table_seen(st, sec, TK_COLLECTION, key))
            return;
        if ((why = check_collection(value)) == NULL)
            t->collection = xstrdup(value);
    } else if (strcmp(key, "id") == 0) {
        if (table_seen(st, sec, TK_ID, key))
            return;
        why = parse_column_list(value, &t->id_columns, &t->n_id_columns);
        if (!why && t->n_id_columns == 0)
            why = "expected a comma-separated list of key columns";
    } else if (strcmp(key, "id_mode") == 0) {
        if (table_seen(st, sec, TK_ID_MODE, key))
            return;
        if (strcmp(value, "uuid5") == 0 || strcmp(value, "auto") == 0)
            t->id_mode_uuid5 = value[0] == 'u';
        else
            why = "expected auto or uuid5";
    } else if (strcmp(key, "distance") == 0) {
        static const char *const names[] = {"Cosine", "Dot", "Euclid", "Manhattan"};
        if (table_seen(st, sec, TK_DISTANCE, key))
            return;
        why = "expected Cosine, Dot, Euclid or Manhattan";
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(value, names[i]) == 0) {
                free(t->distance);
                t->distance = xstrdup(names[i]);
                why = NULL;
            }
        }
    } else if (strcmp(key, "alias") == 0 || strcmp(key, "keep_old_collections") == 0) {
        bool alias = key[0] == 'a';
        if (table_seen(st, sec, alias ? TK_ALIAS : TK_KEEP_OLD, key))
            return;
        if (config_parse_bool(value, alias ? &t->alias : &t->keep_old_collections) < 0)
            why = "expected true or false";
    } else if (strcmp(key, "create_params") == 0) {
        json_error_t jerr;
        json_t *j;
        if (table_seen(st, sec, TK_CREATE_PARAMS, key))
            return;
        j = json_loads(value, 0, &jerr);
        if (!j)
            why = "expected a JSON object (the body of PUT /collections/{name}); it does not parse";
        else if (!json_is_object(j))
            why = "expected a JSON object (the body of PUT /collections/{name})";
        else
            t->create_params = xstrdup(value);
        json_decref(j);
    } else if (strcmp(key, "payload") == 0) {
        if (table_seen(st, sec, TK_PAYLOAD, key))
            return;
        t->payload_all = strcmp(value, "*") == 0;
        if (!t->payload_all && strchr(value, '*'))
            why = "expected * alone or a comma-separated list of columns";
        else if (!t->payload_all)
            why = parse_column_list(value, &t->payload_columns, &t->n_payload_columns);
    } else if (strcmp(key, "vector") == 0 || strncmp(key, "vector.", 7) == 0) {
        const char *name = key[6] == '.' ? key + 7 : "";
        if (key[6] == '.' && (*name == '\0' || has_control(name))) {
            strlist_add(st->errs, "%s:%d: bad key '%s' in section [%s]: expected vector or vector.NAME", st->file,
                        st->line, key, sec->title);
            return;
        }
        for (int i = 0; i < t->n_vectors; i++) {
            if (strcmp(t->vectors[i].name, name) == 0) {
                strlist_add(st->errs, "%s:%d: duplicate key '%s' in section [%s]", st->file, st->line, key,
                            sec->title);
                return;
            }
        }
        if ((why = check_ident(value, strlen(value))) == NULL) {
            t->vectors = xrealloc(t->vectors, (size_t)(t->n_vectors + 1) * sizeof(vector_cfg));
            t->vectors[t->n_vectors].name = xstrdup(name);
            t->vectors[t->n_vectors].column = xstrdup(value);
            t->n_vectors++;
        }
    } else {
        strlist_add(st->errs, "%s:%d: unknown key '%s' in section [%s]", st->file, st->line, key, sec->title);
        return;
    }
    if (why)
        strlist_add(st->errs, "%s:%d: bad value '%s' for [%s] %s: %s", st->file, st->line, value, sec->title, key,
                    why);
}

/* ------------------------------------------------------------------ */
/* The inih handler                                                    */

static void scalar_key(load_state *st, section *sec, const char *key, const char *value)
{
    const key_spec *k = key_find(sec->title, key);
    int i;
    char *where;

    if (!k) {
        strlist_add(st->errs, "%s:%d: unknown key '%s' in section [%s]", st->file, st->line, key, sec->title);
        return;
    }
    i = (int)(k - KEYS);
    if (st->key_line[i]) {
        strlist_add(st->errs, "%s:%d: duplicate key '%s' in section [%s]", st->file, st->line, key, sec->title);
        return;
    }
    st->key_line[i] = st->line;
    if (is_secret(k->kind)) {
        st->key_raw[i] = xstrdup(value); /* resolved after the environment is known */
        return;
    }
    if (k->kind == V_SECRET_FILE)
        st->key_raw[i] = xstrdup(value);
    where = xasprintf("%s:%d", st->file, st->line);
    key_set(st->cfg, st->errs, k, value, where);
    free(where);
}

static int on_pair(void *user, const char *section_token, const char *key, const char *value)
{
    load_state *st = user;
    section *sec;

    if (*key == '\0') {
        strlist_add(st->errs, "%s:%d: syntax error: no key before '='", st->file, st->line);
        return 1;
    }
    if (*section_token == '\0') {
        strlist_add(st->errs, "%s:%d: key '%s' is outside any section", st->file, st->line, key);
        return 1;
    }
    sec = &st->sections[atoi(section_token)];
    if (sec->kind == SEC_KEYS)
        scalar_key(st, sec, key, value);
    else if (sec->kind == SEC_TABLE)
        table_key(st, sec, key, value);
    return 1; /* errors are collected in st->errs, never inih's */
}

/* ------------------------------------------------------------------ */
/* After the file: environment, secrets, cross-checks                  */

static void apply_env(load_state *st)
{
    char name[ENV_NAME_MAX];

    for (int i = 0; i < N_KEYS; i++) {
        const char *v;

        key_env_name(&KEYS[i], name);
        v = getenv(name);
        if (!v)
            continue;
        st->key_env[i] = true;
        if (!is_secret(KEYS[i].kind))
            key_set(st->cfg, st->errs, &KEYS[i], v, name);
    }
}

static void check_env_names(load_state *st)
{
    char name[ENV_NAME_MAX];

    for (char **e = environ; *e; e++) {
        size_t n = strcspn(*e, "=");
        bool known = n == strlen(ENV_CONFIG) && strncmp(*e, ENV_CONFIG, n) == 0;

        if (strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
            continue;
        for (int i = 0; i < N_KEYS && !known; i++) {
            key_env_name(&KEYS[i], name);
            known = strlen(name) == n && strncmp(*e, name, n) == 0;
        }
        if (!known)
            strlist_add(st->errs, "%.*s: unknown environment variable (not a pg2qdrant setting)", (int)n, *e);
    }
}

/*
 * The content of a secret file, one trailing newline ("\n" or "\r\n")
 * removed.  where names the setting that gave path.  Caller frees *out.
 */
static int read_secret_file(const char *path, const char *where, strlist *errs, char **out)
{
    FILE *f = NULL;
    char *data = xmalloc(SECRET_FILE_MAX + 1);
    size_t n;
    int rc = -1;

    f = fopen(path, "rb");
    if (!f) {
        strlist_add(errs, "%s: cannot read secret file '%s': %s", where, path, strerror(errno));
        goto cleanup;
    }
    n = fread(data, 1, SECRET_FILE_MAX + 1, f);
    if (ferror(f)) {
        strlist_add(errs, "%s: cannot read secret file '%s': %s", where, path, strerror(errno));
        goto cleanup;
    }
    if (n > SECRET_FILE_MAX) {
        strlist_add(errs, "%s: secret file '%s' is larger than 64kB", where, path);
        goto cleanup;
    }
    if (memchr(data, '\0', n)) {
        strlist_add(errs, "%s: secret file '%s' contains a NUL byte", where, path);
        goto cleanup;
    }
    if (n > 0 && data[n - 1] == '\n') {
        n--;
        if (n > 0 && data[n - 1] == '\r')
            n--;
    }
    data[n] = '\0';
    *out = data;
    data = NULL;
    rc = 0;
cleanup:
    if (f)
        fclose(f);
    free(data);
    return rc;
}

/*
 * For each secret: environment value > environment _FILE > the file's key
 * or its _file key; setting both forms in one place is an error.
 */
static void resolve_secrets(load_state *st)
{
    char env_key[ENV_NAME_MAX], env_file[ENV_NAME_MAX];

    for (int i = 0; i < N_KEYS; i++) {
        const key_spec *k = &KEYS[i];
        char *where = NULL, *content = NULL;
        const char *value = NULL, *path = NULL;

        if (!is_secret(k->kind))
            continue;
        key_env_name(k, env_key);
        key_env_name(&KEYS[i + 1], env_file);
        if (st->key_env[i] && st->key_env[i + 1])
            strlist_add(st->errs, "%s: %s is set too; set only one of them", env_key, env_file);
        if (st->key_line[i] && st->key_line[i + 1])
            strlist_add(st->errs, "%s:%d: [%s] sets both %s and %s; set only one", st->file,
                        st->key_line[i] > st->key_line[i + 1] ? st->key_line[i] : st->key_line[i + 1], k->section,
                        k->key, KEYS[i + 1].key);

        if (st->key_env[i]) {
            value = getenv(env_key);
            where = xstrdup(env_key);
        } else if (st->key_env[i + 1]) {
            path = getenv(env_file);
            where = xstrdup(env_file);
        } else if (st->key_line[i]) {
            value = st->key_raw[i];
            where = xasprintf("%s:%d", st->file, st->key_line[i]);
        } else if (st->key_line[i + 1]) {
            path = st->key_raw[i + 1];
            where = xasprintf("%s:%d", st->file, st->key_line[i + 1]);
        } else {
            continue;
        }
        if (path && *path && read_secret_file(path, where, st->errs, &content) == 0)
            value = content;
        if (value)
            key_set(st->cfg, st->errs, k, value, where);
        free_secret(content);
        free(where);
    }
}

/* Where key i got its value: the variable, FILE:LINE, or NULL for the default. */
static char *key_origin(const load_state *st, int i)
{
    char name[ENV_NAME_MAX];

    if (st->key_env[i]) {
        key_env_name(&KEYS[i], name);
        return xstrdup(name);
    }
    return st->key_line[i] ? xasprintf("%s:%d", st->file, st->key_line[i]) : NULL;
}

static void check_limits(load_state *st)
{
    const p2q_config *cfg = st->cfg;
    int inflight = (int)(key_find("sync", "max_inflight") - KEYS);
    int batch = (int)(key_find("sync", "batch_bytes") - KEYS);
    char *where;

    if (cfg->sync.max_inflight >= cfg->sync.batch_bytes)
        return;
    where = key_origin(st, inflight);
    if (!where)
        where = key_origin(st, batch);
    strlist_add(st->errs, "%s: [sync] max_inflight (%" PRId64 " bytes) must be at least batch_bytes (%" PRId64
                " bytes)", where, cfg->sync.max_inflight, cfg->sync.batch_bytes);
    free(where);
}

static void finish_tables(load_state *st)
{
    p2q_config *cfg = st->cfg;

    for (int i = 0; i < cfg->n_tables; i++) {
        table_cfg *t = &cfg->tables[i];

        for (int j = 0; j < t->n_vectors && t->n_vectors > 1; j++) {
            if (t->vectors[j].name[0] == '\0') {
                strlist_add(st->errs, "%s:%d: [table %s.%s]: the unnamed vector (vector = %s) cannot be combined "
                            "with named vectors (vector.NAME = COLUMN)", t->file, t->line, t->schema, t->name,
                            t->vectors[j].column);
                break;
            }
        }
        if (!t->collection)
            t->collection = xstrdup(t->name);
        if (!t->distance)
            t->distance = xstrdup("Cosine");
        for (int j = 0; j < i; j++) {
            const table_cfg *o = &cfg->tables[j];
            if (strcmp(o->collection, t->collection) == 0) {
                strlist_add(st->errs, "%s:%d: [table %s.%s] uses collection '%s', already used by [table %s.%s]",
                            t->file, t->line, t->schema, t->name, t->collection, o->schema, o->name);
                break;
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* Public entry points                                                 */

void config_defaults(p2q_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->source.dsn = xstrdup("");
    cfg->source.slot = xstrdup("pg2qdrant");
    cfg->source.publication = xstrdup("pg2qdrant");
    cfg->source.create_slot = true;
    cfg->source.create_publication = false;
    cfg->source.status_interval_ms = 10 * 1000;
    cfg->qdrant.url = xstrdup("http://127.0.0.1:6333");
    cfg->qdrant.api_key = xstrdup("");
    cfg->qdrant.timeout_ms = 30 * 1000;
    cfg->qdrant.create_collections = false;
    cfg->qdrant.ca_file = xstrdup("");
    cfg->sync.snapshot = SNAPSHOT_INITIAL;
    cfg->sync.batch_points = 256;
    cfg->sync.parallel_requests = 4;
    cfg->sync.batch_bytes = 8 * MIB;
    cfg->sync.flush_interval_ms = 100;
    cfg->sync.max_inflight = 64 * MIB;
    cfg->sync.on_error = ON_ERROR_STOP;
    cfg->sync.dead_letter_file = xstrdup("/var/lib/pg2qdrant/dead-letter.jsonl");
    cfg->sync.shutdown_timeout_ms = 20 * 1000;
    cfg->sync.backfill_chunk_rows = 10000;
    cfg->http.listen = xstrdup("127.0.0.1:9930");
}

int config_load(const char *path, p2q_config *cfg, strlist *errs)
{
    load_state st;
    int errs_before = errs->n;

    config_defaults(cfg);
    if (!path) {
        path = getenv(ENV_CONFIG);
        if (!path || !*path)
            path = CONFIG_DEFAULT_PATH;
    }
    cfg->path = xstrdup(path);

    memset(&st, 0, sizeof st);
    st.cfg = cfg;
    st.errs = errs;
    st.file = cfg->path;
    st.fp = fopen(path, "r");
    if (!st.fp) {
        strlist_add(errs, "%s: cannot open: %s", path, strerror(errno));
    } else {
        int r = ini_parse_stream(read_line, &st, on_pair, &st);
        if (st.read_errno)
            strlist_add(errs, "%s: cannot read: %s", path, strerror(st.read_errno));
        else if (r > 0) /* a line inih refused that read_line let through */
            strlist_add(errs, "%s:%d: syntax error", path, r);
        fclose(st.fp);
    }

    apply_env(&st);
    check_env_names(&st);
    resolve_secrets(&st);
    finish_tables(&st);
    check_limits(&st);
    load_state_free(&st);
    return errs->n == errs_before ? 0 : -1;
}

void config_free(p2q_config *cfg)
{
    free(cfg->path);
    free_secret(cfg->source.dsn); /* may hold a password */
    free(cfg->source.slot);
    free(cfg->source.publication);
    free(cfg->qdrant.url);
    free_secret(cfg->qdrant.api_key);
    free(cfg->qdrant.ca_file);
    free(cfg->sync.dead_letter_file);
    free(cfg->http.listen);
    for (int i = 0; i < cfg->n_tables; i++) {
        table_cfg *t = &cfg->tables[i];
        free(t->schema);
        free(t->name);
        free(t->qualified);
        free(t->quoted);
        free(t->collection);
        free(t->distance);
        free(t->create_params);
        free_list(t->id_columns, t->n_id_columns);
        for (int j = 0; j < t->n_vectors; j++) {
            free(t->vectors[j].name);
            free(t->vectors[j].column);
        }
        free(t->vectors);
        free_list(t->payload_columns, t->n_payload_columns);
        free(t->file);
    }
    free(cfg->tables);
    memset(cfg, 0, sizeof *cfg);
}

const table_cfg *config_find_table(const p2q_config *cfg, const char *schema, const char *name)
{
    for (int i = 0; i < cfg->n_tables; i++)
        if (strcmp(cfg->tables[i].schema, schema) == 0 && strcmp(cfg->tables[i].name, name) == 0)
            return &cfg->tables[i];
    return NULL;
}

const table_cfg *config_find_qualified(const p2q_config *cfg, const char *qualified)
{
    const char *dot = strchr(qualified, '.');
    const table_cfg *t;
    char *schema;

    if (!dot)
        return config_find_table(cfg, "public", qualified);
    schema = xstrndup(qualified, (size_t)(dot - qualified));
    t = config_find_table(cfg, schema, dot + 1);
    free(schema);
    return t;
}

/* ------------------------------------------------------------------ */
/* DSN redaction                                                       */

static bool is_password_key(const char *k, size_t n)
{
    return word_is(k, n, "password") || word_is(k, n, "sslpassword");
}

static void mask_range(bool *mask, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        mask[i] = true;
}

/*
 * key = value pairs, quoted and escaped as libpq reads them.  From a point
 * where the text stops making sense, everything is masked.
 */
static void mask_keyword_form(const char *s, size_t len, bool *mask)
{
    size_t i = 0, token = 0;

    for (;;) {
        size_t key_len, value;

        while (i < len && isspace((unsigned char)s[i]))
            i++;
        if (i == len)
            return;
        token = i;
        while (i < len && s[i] != '=' && !isspace((unsigned char)s[i]))
            i++;
        key_len = i - token;
        while (i < len && isspace((unsigned char)s[i]))
            i++;
        if (i == len || s[i] != '=' || key_len == 0)
            break;
        i++;
        while (i < len && isspace((unsigned char)s[i]))
            i++;
        value = i;
        if (i < len && s[i] == '\'') {
            for (i++; i < len && s[i] != '\''; i++)
                if (s[i] == '\\' && i + 1 < len)
                    i++;
            if (i == len)
                break;
            i++;
        } else {
            for (; i < len && !isspace((unsigned char)s[i]); i++)
                if (s[i] == '\\' && i + 1 < len)
                    i++;
        }
        if (is_password_key(s + token, key_len))
            mask_range(mask, value, i);
    }
    mask_range(mask, token, len); /* malformed from token on */
}

/* A URI query key as libpq reads it: percent-encoding decoded (pass%77ord
 * is password).  An undecodable key is kept as written. */
static bool is_password_uri_key(const char *k, size_t n)
{
    char key[32];
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (o + 1 >= sizeof key)
            return false; /* longer than any password key */
        if (k[i] == '%' && i + 2 < n && (hi = hex_digit((unsigned char)k[i + 1])) >= 0 &&
            (lo = hex_digit((unsigned char)k[i + 2])) >= 0) {
            key[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            key[o++] = k[i];
        }
    }
    return is_password_key(key, o);
}

/*
 * postgresql://user:password@host/db?password=x&sslpassword=y.  The user
 * info ends at the last '@' (a raw '@' or '?' in a password then cannot
 * leak; an '@' in a query value only masks more than needed).
 */
static void mask_uri_form(const char *s, size_t len, size_t prefix, bool *mask)
{
    const char *at = strrchr(s + prefix, '@');
    const char *q = strchr(s + prefix, '?');

    if (at) {
        const char *colon = memchr(s + prefix, ':', (size_t)(at - (s + prefix)));
        if (colon)
            mask_range(mask, (size_t)(colon + 1 - s), (size_t)(at - s));
    }
    if (!q)
        return;
    for (size_t i = (size_t)(q + 1 - s); i < len;) {
        size_t param_len = strcspn(s + i, "&");
        size_t key_len = strcspn(s + i, "=&");

        if (key_len < param_len && is_password_uri_key(s + i, key_len))
            mask_range(mask, i + key_len + 1, i + param_len);
        i += param_len + 1;
    }
}

char *config_redact_dsn(const char *dsn)
{
    size_t len = strlen(dsn);
    bool *mask = xcalloc(len + 1, sizeof(bool));
    buf out;

    if (strncmp(dsn, "postgresql://", 13) == 0)
        mask_uri_form(dsn, len, 13, mask);
    else if (strncmp(dsn, "postgres://", 11) == 0)
        mask_uri_form(dsn, len, 11, mask);
    else
        mask_keyword_form(dsn, len, mask);

    buf_init(&out);
    for (size_t i = 0; i < len; i++) {
        if (!mask[i])
            buf_putc(&out, dsn[i]);
        else if (i == 0 || !mask[i - 1])
            buf_puts(&out, REDACTED);
    }
    free(mask);
    return buf_steal(&out);
}
