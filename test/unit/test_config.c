/*
 * test_config.c — the INI configuration (SPEC §2): parsing, defaults, units,
 * error messages with FILE:LINE, environment overrides, secrets, redaction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "util.h"

extern char **environ;

#define SECRET_PW "Sup3r-Secret-PW"
#define SECRET_KEY "qdr-api-Key-42"

/* ---- helpers ---- */

/* Writes text to a new temporary file; returns its path (caller unlinks and frees). */
static char *write_tmp(const char *text)
{
    char *path = xstrdup("/tmp/p2q_config_test_XXXXXX");
    int fd = mkstemp(path);
    size_t n = strlen(text);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

/* Removes every PG2QDRANT_* variable, so tests do not leak into each other. */
static void clear_env(void)
{
    for (;;) {
        char **e = environ;
        char *name = NULL;

        for (; *e; e++)
            if (strncmp(*e, "PG2QDRANT_", 10) == 0)
                break;
        if (!*e)
            return;
        name = xstrndup(*e, strcspn(*e, "="));
        unsetenv(name);
        free(name);
    }
}

static int reset_env(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

typedef struct loaded {
    char *path;
    p2q_config cfg;
    strlist errs;
    int rc;
} loaded;

static void load_text(loaded *l, const char *text)
{
    memset(l, 0, sizeof *l);
    l->path = write_tmp(text);
    l->rc = config_load(l->path, &l->cfg, &l->errs);
}

static void unload(loaded *l)
{
    unlink(l->path);
    free(l->path);
    config_free(&l->cfg);
    strlist_free(&l->errs);
}

static void print_errs(const strlist *errs)
{
    for (int i = 0; i < errs->n; i++)
        fprintf(stderr, "  err[%d]: %s\n", i, errs->items[i]);
}

/* Asserts that one message equals "<path>:<suffix>" exactly. */
static void assert_err(const loaded *l, const char *suffix)
{
    char *want = xasprintf("%s:%s", l->path, suffix);

    for (int i = 0; i < l->errs.n; i++) {
        if (strcmp(l->errs.items[i], want) == 0) {
            free(want);
            return;
        }
    }
    fprintf(stderr, "missing error: %s\n", want);
    print_errs(&l->errs);
    free(want);
    fail();
}

/* Asserts that some message contains needle. */
static void assert_err_has(const strlist *errs, const char *needle)
{
    for (int i = 0; i < errs->n; i++)
        if (strstr(errs->items[i], needle))
            return;
    fprintf(stderr, "no error contains: %s\n", needle);
    print_errs(errs);
    fail();
}

static void assert_no_secret(const strlist *errs)
{
    for (int i = 0; i < errs->n; i++) {
        assert_null(strstr(errs->items[i], SECRET_PW));
        assert_null(strstr(errs->items[i], SECRET_KEY));
    }
}

static void assert_ok(const loaded *l)
{
    if (l->rc != 0 || l->errs.n != 0)
        print_errs(&l->errs);
    assert_int_equal(l->rc, 0);
    assert_int_equal(l->errs.n, 0);
}

#define MINIMAL_TABLE "[table t]\nvector = v\n"

/* ---- the SPEC example and defaults ---- */

static const char SPEC_EXAMPLE[] =
    "[source]\n"
    "dsn = host=127.0.0.1 port=5432 dbname=shop user=cdc   ; libpq conninfo\n"
    "slot = pg2qdrant                                      ; logical slot\n"
    "publication = pg2qdrant\n"
    "create_slot = true\n"
    "create_publication = false\n"
    "status_interval = 10s\n"
    "\n"
    "[qdrant]\n"
    "url = http://127.0.0.1:6333\n"
    "api_key =                                             ; sent as the api-key header\n"
    "timeout = 30s\n"
    "create_collections = false\n"
    "\n"
    "[sync]\n"
    "snapshot = initial                                    ; initial | never | always\n"
    "batch_points = 256\n"
    "batch_bytes = 8MB\n"
    "flush_interval = 100ms\n"
    "max_inflight = 64MB\n"
    "on_error = stop\n"
    "dead_letter_file = /var/lib/pg2qdrant/dead-letter.jsonl\n"
    "shutdown_timeout = 20s\n"
    "backfill_chunk_rows = 10000                           ; rows per watermarked chunk (§9)\n"
    "\n"
    "[http]\n"
    "listen = 127.0.0.1:9930\n"
    "\n"
    "[table public.products]                               ; one section per synced table\n"
    "collection = products\n"
    "id = article_id\n"
    "vector = embedding                                    ; unnamed dense vector column\n"
    "; vector.image = img_embedding\n"
    "payload = *\n";

static void test_spec_example(void **state)
{
    loaded l;
    const table_cfg *t;

    (void)state;
    load_text(&l, SPEC_EXAMPLE);
    assert_ok(&l);
    assert_string_equal(l.cfg.path, l.path);
    assert_string_equal(l.cfg.source.dsn, "host=127.0.0.1 port=5432 dbname=shop user=cdc");
    assert_string_equal(l.cfg.source.slot, "pg2qdrant");
    assert_string_equal(l.cfg.source.publication, "pg2qdrant");
    assert_true(l.cfg.source.create_slot);
    assert_false(l.cfg.source.create_publication);
    assert_int_equal(l.cfg.source.status_interval_ms, 10000);
    assert_string_equal(l.cfg.qdrant.url, "http://127.0.0.1:6333");
    assert_string_equal(l.cfg.qdrant.api_key, "");
    assert_int_equal(l.cfg.qdrant.timeout_ms, 30000);
    assert_false(l.cfg.qdrant.create_collections);
    assert_string_equal(l.cfg.qdrant.ca_file, "");
    assert_int_equal(l.cfg.sync.snapshot, SNAPSHOT_INITIAL);
    assert_int_equal(l.cfg.sync.batch_points, 256);
    assert_int_equal(l.cfg.sync.batch_bytes, 8 * 1024 * 1024);
    assert_int_equal(l.cfg.sync.flush_interval_ms, 100);
    assert_int_equal(l.cfg.sync.max_inflight, 64 * 1024 * 1024);
    assert_int_equal(l.cfg.sync.on_error, ON_ERROR_STOP);
    assert_string_equal(l.cfg.sync.dead_letter_file, "/var/lib/pg2qdrant/dead-letter.jsonl");
    assert_int_equal(l.cfg.sync.shutdown_timeout_ms, 20000);
    assert_int_equal(l.cfg.sync.backfill_chunk_rows, 10000);
    assert_string_equal(l.cfg.http.listen, "127.0.0.1:9930");

    assert_int_equal(l.cfg.n_tables, 1);
    t = config_find_table(&l.cfg, "public", "products");
    assert_non_null(t);
    assert_string_equal(t->collection, "products");
    assert_int_equal(t->n_id_columns, 1);
    assert_string_equal(t->id_columns[0], "article_id");
    assert_false(t->id_mode_uuid5);
    assert_int_equal(t->n_vectors, 1);
    assert_string_equal(t->vectors[0].name, "");
    assert_string_equal(t->vectors[0].column, "embedding");
    assert_true(t->payload_all);
    assert_int_equal(t->n_payload_columns, 0);
    assert_string_equal(t->file, l.path);
    assert_int_equal(t->line, 29);
    assert_null(config_find_table(&l.cfg, "public", "orders"));
    assert_null(config_find_table(&l.cfg, "shop", "products"));
    unload(&l);
}

static void test_defaults(void **state)
{
    loaded l;
    p2q_config d;
    const table_cfg *t;

    (void)state;
    load_text(&l, "[table items]\nvector = v\n");
    assert_ok(&l);
    config_defaults(&d);
    assert_string_equal(l.cfg.source.dsn, "");
    assert_string_equal(d.source.dsn, "");
    assert_string_equal(l.cfg.source.slot, "pg2qdrant");
    assert_string_equal(l.cfg.source.publication, "pg2qdrant");
    assert_true(l.cfg.source.create_slot);
    assert_false(l.cfg.source.create_publication);
    assert_int_equal(l.cfg.source.status_interval_ms, 10000);
    assert_string_equal(l.cfg.qdrant.url, "http://127.0.0.1:6333");
    assert_string_equal(l.cfg.qdrant.api_key, "");
    assert_int_equal(l.cfg.qdrant.timeout_ms, 30000);
    assert_false(l.cfg.qdrant.create_collections);
    assert_string_equal(l.cfg.qdrant.ca_file, "");
    assert_int_equal(l.cfg.sync.snapshot, SNAPSHOT_INITIAL);
    assert_int_equal(l.cfg.sync.batch_points, d.sync.batch_points);
    assert_int_equal(l.cfg.sync.batch_bytes, 8 << 20);
    assert_int_equal(l.cfg.sync.flush_interval_ms, 100);
    assert_int_equal(l.cfg.sync.max_inflight, 64 << 20);
    assert_int_equal(l.cfg.sync.on_error, ON_ERROR_STOP);
    assert_string_equal(l.cfg.sync.dead_letter_file, "/var/lib/pg2qdrant/dead-letter.jsonl");
    assert_int_equal(l.cfg.sync.shutdown_timeout_ms, 20000);
    assert_string_equal(l.cfg.http.listen, "127.0.0.1:9930");

    /* table defaults: schema public, collection = name, replica identity, auto ids, payload * */
    t = config_find_table(&l.cfg, "public", "items");
    assert_non_null(t);
    assert_string_equal(t->schema, "public");
    assert_string_equal(t->collection, "items");
    assert_int_equal(t->n_id_columns, 0);
    assert_false(t->id_mode_uuid5);
    assert_true(t->payload_all);
    assert_string_equal(t->distance, "Cosine");
    config_free(&d);
    unload(&l);
}

static void test_every_key_set(void **state)
{
    loaded l;

    (void)state;
    load_text(&l, "[source]\n"
                  "slot = my_slot_2\n"
                  "publication = MyPub\n"
                  "create_slot = off\n"
                  "create_publication = YES\n"
                  "status_interval = 250\n"
                  "[qdrant]\n"
                  "url = https://qdrant.example.com:6333//\n"
                  "timeout = 2 min\n"
                  "create_collections = 1\n"
                  "ca_file = /etc/ssl/qdrant-ca.pem\n"
                  "[sync]\n"
                  "snapshot = always\n"
                  "batch_points = 1000\n"
                  "batch_bytes = 512 kB\n"
                  "flush_interval = 1s\n"
                  "max_inflight = 1GB\n"
                  "on_error = dead_letter\n"
                  "dead_letter_file = /tmp/dl.jsonl\n"
                  "shutdown_timeout = 0\n"
                  "[http]\n"
                  "listen =\n" MINIMAL_TABLE);
    assert_ok(&l);
    assert_string_equal(l.cfg.source.slot, "my_slot_2");
    assert_string_equal(l.cfg.source.publication, "MyPub");
    assert_false(l.cfg.source.create_slot);
    assert_true(l.cfg.source.create_publication);
    assert_int_equal(l.cfg.source.status_interval_ms, 250);
    /* trailing slashes are dropped so callers can append "/collections/..." */
    assert_string_equal(l.cfg.qdrant.url, "https://qdrant.example.com:6333");
    assert_int_equal(l.cfg.qdrant.timeout_ms, 120000);
    assert_true(l.cfg.qdrant.create_collections);
    assert_string_equal(l.cfg.qdrant.ca_file, "/etc/ssl/qdrant-ca.pem");
    assert_int_equal(l.cfg.sync.snapshot, SNAPSHOT_ALWAYS);
    assert_int_equal(l.cfg.sync.batch_points, 1000);
    assert_int_equal(l.cfg.sync.batch_bytes, 512 * 1024);
    assert_int_equal(l.cfg.sync.flush_interval_ms, 1000);
    assert_int_equal(l.cfg.sync.max_inflight, 1024 * 1024 * 1024);
    assert_int_equal(l.cfg.sync.on_error, ON_ERROR_DEAD_LETTER);
    assert_string_equal(l.cfg.sync.dead_letter_file, "/tmp/dl.jsonl");
    assert_int_equal(l.cfg.sync.shutdown_timeout_ms, 0);
    assert_string_equal(l.cfg.http.listen, "");
    unload(&l);
}

/* ---- unit parsers ---- */

static void test_sizes(void **state)
{
    static const struct {
        const char *text;
        int64_t bytes;
    } ok[] = {
        {"0", 0},           {"17", 17},          {"17B", 17},         {"1kB", 1024},
        {"1 kB", 1024},     {"8MB", 8 << 20},    {"8 MB", 8 << 20},   {"2GB", INT64_C(2) << 30},
        {"3TB", INT64_C(3) << 40}, {" 64MB ", 64 << 20}, {"1kb", 1024}, {"1mb", 1 << 20},
        {"9223372036854775807", INT64_MAX}, {"8388607TB", INT64_C(8388607) << 40},
    };
    static const char *const bad[] = {
        "", "   ", "MB", "-1", "-1MB", "+1", "1.5MB", "1e3", "ten", "10 XB", "10 K", "10 k B",
        "1MB2", "0x10", "9223372036854775808", "8388608TB", "99999999999999999999GB", "1 MB x",
    };
    int64_t v;

    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        v = -1;
        assert_int_equal(config_parse_size(ok[i].text, &v), 0);
        assert_int_equal(v, ok[i].bytes);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 12345;
        if (config_parse_size(bad[i], &v) == 0)
            fail_msg("size '%s' accepted", bad[i]);
        assert_int_equal(v, 12345);
    }
}

static void test_durations(void **state)
{
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {
        {"0", 0},           {"250", 250},       {"250ms", 250},       {"250 ms", 250},
        {"10s", 10000},     {"10 s", 10000},    {"2min", 120000},     {"1h", 3600000},
        {"1d", 86400000},   {"5S", 5000},       {" 3 min ", 180000},
    };
    static const char *const bad[] = {
        "", "s", "ten", "-1s", "1.5s", "10m", "10 sec", "1 hour", "10 ms x", "10x",
        "9223372036854775807s", "106751991167301d",
    };
    int64_t v;

    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        v = -1;
        assert_int_equal(config_parse_duration(ok[i].text, &v), 0);
        assert_int_equal(v, ok[i].ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (config_parse_duration(bad[i], &v) == 0)
            fail_msg("duration '%s' accepted", bad[i]);
    }
}

static void test_bools(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "on", "On", "yes", "1", " true "};
    static const char *const no[] = {"false", "False", "off", "no", "NO", "0"};
    static const char *const bad[] = {"", "t", "f", "y", "2", "truee", "enabled", "-1"};
    bool b;

    (void)state;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        b = false;
        assert_int_equal(config_parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        b = true;
        assert_int_equal(config_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(config_parse_bool(bad[i], &b), -1);
}

/* ---- values rejected in the file ---- */

static void test_bad_values(void **state)
{
    static const struct {
        const char *line;
        const char *error; /* after "FILE:2: " */
    } cases[] = {
        {"[source]\nstatus_interval = ten",
         "2: bad value 'ten' for [source] status_interval: expected a duration (ms, s, min, h)"},
        {"[source]\nstatus_interval = 0", "2: bad value '0' for [source] status_interval: must be between 1ms and 1h"},
        {"[source]\nstatus_interval = 2h", "2: bad value '2h' for [source] status_interval: must be between 1ms and 1h"},
        {"[source]\ncreate_slot = maybe",
         "2: bad value 'maybe' for [source] create_slot: expected a boolean (true/false, on/off, yes/no, 1/0)"},
        {"[source]\nslot = My-Slot",
         "2: bad value 'My-Slot' for [source] slot: expected 1 to 63 lower-case letters, digits or underscores"},
        {"[source]\nslot =",
         "2: bad value '' for [source] slot: expected 1 to 63 lower-case letters, digits or underscores"},
        {"[source]\npublication = a b",
         "2: bad value 'a b' for [source] publication: expected a name of 1 to 63 bytes without spaces, quotes or "
         "commas"},
        {"[qdrant]\nurl = localhost:6333", "2: bad value 'localhost:6333' for [qdrant] url: expected an http:// or "
                                           "https:// URL"},
        {"[qdrant]\ntimeout = 50ms", "2: bad value '50ms' for [qdrant] timeout: must be between 100ms and 1h"},
        {"[sync]\nsnapshot = sometimes",
         "2: bad value 'sometimes' for [sync] snapshot: expected initial, never or always"},
        {"[sync]\nbatch_points = 0", "2: bad value '0' for [sync] batch_points: must be between 1 and 100000"},
        {"[sync]\nbatch_points = 10k", "2: bad value '10k' for [sync] batch_points: expected a whole number"},
        {"[sync]\nbatch_bytes = 100B", "2: bad value '100B' for [sync] batch_bytes: must be between 1kB and 1GB"},
        {"[sync]\nbatch_bytes = -8MB", "2: bad value '-8MB' for [sync] batch_bytes: expected a size (B, kB, MB, GB)"},
        {"[sync]\nflush_interval = 0", "2: bad value '0' for [sync] flush_interval: must be between 1ms and 1h"},
        {"[sync]\nmax_inflight = 512kB", "2: bad value '512kB' for [sync] max_inflight: must be between 1MB and 1TB"},
        {"[sync]\non_error = ignore", "2: bad value 'ignore' for [sync] on_error: expected stop or dead_letter"},
        {"[sync]\ndead_letter_file =", "2: bad value '' for [sync] dead_letter_file: expected a file name"},
        {"[source]\ndsn_file =", "2: bad value '' for [source] dsn_file: expected a file name"},
        {"[sync]\nshutdown_timeout = 5h", "2: bad value '5h' for [sync] shutdown_timeout: must be between 0 and 1h"},
        {"[sync]\nbackfill_chunk_rows = 0", "2: bad value '0' for [sync] backfill_chunk_rows: must be between 1 and 1000000"},
        {"[http]\nlisten = 9930", "2: bad value '9930' for [http] listen: expected HOST:PORT (127.0.0.1:9930, "
                                  "[::1]:9930) or empty to disable"},
        {"[http]\nlisten = host:70000", "2: bad value 'host:70000' for [http] listen: expected HOST:PORT "
                                        "(127.0.0.1:9930, [::1]:9930) or empty to disable"},
        {"[http]\nlisten = ::1:9930", "2: bad value '::1:9930' for [http] listen: expected HOST:PORT "
                                      "(127.0.0.1:9930, [::1]:9930) or empty to disable"},
        {"[table t]\nvector = v\nid_mode = random", "3: bad value 'random' for [table t] id_mode: expected auto or "
                                                    "uuid5"},
        {"[table t]\nvector = v\ncollection = a/b", "3: bad value 'a/b' for [table t] collection: expected a Qdrant "
                                                    "collection name of 1 to 255 bytes without <>:\"/\\|?*"},
        {"[table t]\nvector = v\nid = a,,b", "3: bad value 'a,,b' for [table t] id: empty column name in list"},
        {"[table t]\nvector = v\nid = a, b, a", "3: bad value 'a, b, a' for [table t] id: column listed twice"},
        {"[table t]\nvector = v\npayload = a,", "3: bad value 'a,' for [table t] payload: empty column name in list"},
        {"[table t]\nvector = v\npayload = *, a", "3: bad value '*, a' for [table t] payload: expected * alone or a "
                                                  "comma-separated list of columns"},
        {"[table t]\nvector = my col", "2: bad value 'my col' for [table t] vector: expected a name of 1 to 63 bytes "
                                       "without spaces, quotes or commas"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        loaded l;
        char *text = xasprintf("%s\n%s", cases[i].line, strstr(cases[i].line, "[table") ? "" : MINIMAL_TABLE);

        load_text(&l, text);
        if (l.rc != -1)
            fail_msg("accepted: %s", cases[i].line);
        assert_err(&l, cases[i].error);
        if (l.errs.n != 1)
            print_errs(&l.errs);
        assert_int_equal(l.errs.n, 1);
        free(text);
        unload(&l);
    }
}

static void test_good_listen_values(void **state)
{
    static const char *const ok[] = {"0.0.0.0:9930", "[::1]:9930", "localhost:1", "[::]:65535", ""};

    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        loaded l;
        char *text = xasprintf("[http]\nlisten = %s\n" MINIMAL_TABLE, ok[i]);

        load_text(&l, text);
        assert_ok(&l);
        assert_string_equal(l.cfg.http.listen, ok[i]);
        free(text);
        unload(&l);
    }
}

/* ---- structure errors, with FILE:LINE, all collected ---- */

static void test_unknown_key_and_section(void **state)
{
    loaded l;

    (void)state;
    load_text(&l, "[sync]\n"
                  "batch_points = 10\n"
                  "bach_points = 10\n"
                  "[sources]\n"
                  "dsn = x\n"
                  "[table t]\n"
                  "vector = v\n"
                  "colection = c\n");
    assert_int_equal(l.rc, -1);
    assert_err(&l, "3: unknown key 'bach_points' in section [sync]");
    assert_err(&l, "4: unknown section [sources]");
    assert_err(&l, "8: unknown key 'colection' in section [table t]");
    /* keys of an unknown section are not reported one by one */
    assert_int_equal(l.errs.n, 3);
    /* the good value on line 2 still applies */
    assert_int_equal(l.cfg.sync.batch_points, 10);
    unload(&l);
}

static void test_errors_collected(void **state)
{
    loaded l;

    (void)state;
    load_text(&l, "top = 1\n"                  /* 1 */
                  "[source]\n"                 /* 2 */
                  "status_interval = ten\n"    /* 3 */
                  "slot = pg2qdrant\n"         /* 4 */
                  "slot = other\n"             /* 5 */
                  "just some words\n"          /* 6 */
                  "[qdrant\n"                  /* 7 */
                  "timeout = nonsense\n"       /* 8: in the malformed section, ignored */
                  "[sync] trailing\n"          /* 9 */
                  "[sync]\n"                   /* 10 */
                  "batch_bytes = lots\n"       /* 11 */
                  "= 5\n"                      /* 12 */
                  "[table a.b.c]\n"            /* 13 */
                  "vector = v\n"               /* 14 */
                  "[table x]\n"                /* 15 */
                  "vector.a = v\n"             /* 16 */
                  "vector = w\n");             /* 17: unnamed and named */
    assert_int_equal(l.rc, -1);
    assert_err(&l, "1: key 'top' is outside any section");
    assert_err(&l, "3: bad value 'ten' for [source] status_interval: expected a duration (ms, s, min, h)");
    assert_err(&l, "5: duplicate key 'slot' in section [source]");
    assert_err(&l, "6: syntax error: expected 'key = value' or '[section]'");
    assert_err(&l, "7: syntax error: missing ']' in section header");
    assert_err(&l, "9: syntax error: unexpected text after ']'");
    assert_err(&l, "11: bad value 'lots' for [sync] batch_bytes: expected a size (B, kB, MB, GB)");
    assert_err(&l, "12: syntax error: no key before '='");
    assert_err(&l, "13: bad section [table a.b.c]: expected [table schema.name] or [table name]");
    assert_err(&l, "15: [table public.x]: the unnamed vector (vector = w) cannot be combined with named vectors "
                   "(vector.NAME = COLUMN)");
    assert_int_equal(l.errs.n, 10);
    /* the first of a duplicate key is kept */
    assert_string_equal(l.cfg.source.slot, "pg2qdrant");
    unload(&l);
}

static void test_comments_and_syntax(void **state)
{
    loaded l;
    const table_cfg *t;

    (void)state;
    load_text(&l, "\xEF\xBB\xBF; a comment\r\n"
                  "# another comment\r\n"
                  "   [ source ]   ; section comment\r\n"
                  "   slot = s1 ; inline comment\r\n"
                  "\tpublication=pub;no_comment_without_space\r\n"
                  "[table public.t] # hash after a header is a comment too\n"
                  "vector = v\n"
                  "collection = c#1\n"
                  "payload: a ; colon separator and inline comment\n");
    assert_ok(&l);
    assert_string_equal(l.cfg.source.slot, "s1");
    /* ';' starts a comment only after whitespace */
    assert_string_equal(l.cfg.source.publication, "pub;no_comment_without_space");
    t = config_find_table(&l.cfg, "public", "t");
    assert_non_null(t);
    /* '#' starts a comment only at the beginning of a line */
    assert_string_equal(t->collection, "c#1");
    assert_int_equal(t->n_payload_columns, 1);
    assert_string_equal(t->payload_columns[0], "a");
    unload(&l);
}

static void test_long_lines(void **state)
{
    loaded l;
    buf text;
    const table_cfg *t;
    /* 63-byte schema and table names: longer than inih's 49-byte section names */
    static const char schema[] = "s23456789012345678901234567890123456789012345678901234567890123";
    static const char name[] = "t23456789012345678901234567890123456789012345678901234567890123";

    (void)state;
    buf_init(&text);
    buf_printf(&text, "[table %s.%s]\nvector = v\n[source]\ndsn = host=x application_name=", schema, name);
    for (int i = 0; i < 300; i++)
        buf_putc(&text, 'a');
    buf_puts(&text, "\nslot = after_long_line\n");
    load_text(&l, text.data);
    assert_int_equal(l.rc, -1);
    assert_err(&l, "4: line is longer than 198 characters, the INI parser's limit");
    assert_int_equal(l.errs.n, 1);
    /* the rest of the long line is not taken for another line */
    assert_string_equal(l.cfg.source.slot, "after_long_line");
    t = config_find_table(&l.cfg, schema, name);
    assert_non_null(t);
    assert_string_equal(t->collection, name);
    buf_free(&text);
    unload(&l);
}

/* ---- tables ---- */

static void test_tables(void **state)
{
    loaded l;
    const table_cfg *t;

    (void)state;
    load_text(&l, "[table shop.items]\n"
                  "collection = shop_items\n"
                  "id = region ,  article_id\t, Code\n"
                  "id_mode = uuid5\n"
                  "vector.text = text_emb\n"
                  "vector.image = img_emb\n"
                  "payload = name, price , tags\n"
                  "distance = dot\n"
                  "[table orders]\n"
                  "vector.sparse = sv\n"
                  "payload =\n"
                  "id_mode = auto\n"
                  "[table audit.log]\n"
                  "id = id\n");
    assert_ok(&l);
    assert_int_equal(l.cfg.n_tables, 3);

    t = config_find_table(&l.cfg, "shop", "items");
    assert_non_null(t);
    assert_string_equal(t->collection, "shop_items");
    assert_int_equal(t->n_id_columns, 3);
    assert_string_equal(t->id_columns[0], "region");
    assert_string_equal(t->id_columns[1], "article_id");
    assert_string_equal(t->id_columns[2], "Code");
    assert_true(t->id_mode_uuid5);
    assert_int_equal(t->n_vectors, 2);
    assert_string_equal(t->vectors[0].name, "text");
    assert_string_equal(t->vectors[0].column, "text_emb");
    assert_string_equal(t->vectors[1].name, "image");
    assert_string_equal(t->vectors[1].column, "img_emb");
    assert_false(t->payload_all);
    assert_int_equal(t->n_payload_columns, 3);
    assert_string_equal(t->payload_columns[0], "name");
    assert_string_equal(t->payload_columns[1], "price");
    assert_string_equal(t->payload_columns[2], "tags");
    assert_string_equal(t->distance, "Dot");
    assert_int_equal(t->line, 1);

    t = config_find_table(&l.cfg, "public", "orders");
    assert_non_null(t);
    assert_string_equal(t->collection, "orders");
    assert_false(t->id_mode_uuid5);
    assert_int_equal(t->n_vectors, 1);
    assert_string_equal(t->vectors[0].name, "sparse");
    /* an empty payload list: points without payload */
    assert_false(t->payload_all);
    assert_int_equal(t->n_payload_columns, 0);
    assert_int_equal(t->line, 9);

    /* no vector: payload-only points */
    t = config_find_table(&l.cfg, "audit", "log");
    assert_non_null(t);
    assert_int_equal(t->n_vectors, 0);
    unload(&l);
}

static void test_table_errors(void **state)
{
    loaded l;

    (void)state;
    load_text(&l, "[table public.a]\n"  /* 1 */
                  "vector = v\n"        /* 2 */
                  "vector = w\n"        /* 3 */
                  "vector.x = v\n"      /* 4 */
                  "vector.x = w\n"      /* 5 */
                  "vector. = w\n"       /* 6 */
                  "payload = *\n"       /* 7 */
                  "payload = a\n"       /* 8 */
                  "[table a]\n"         /* 9: same table as public.a */
                  "vector = z\n"        /* 10 */
                  "[table b]\n"         /* 11 */
                  "vector = v\n"        /* 12 */
                  "collection = a\n"    /* 13 */
                  "[table]\n"           /* 14 */
                  "vector = v\n"        /* 15 */
                  "[table \"Q\".t]\n"   /* 16 */
                  "[table c]\n"         /* 17 */
                  "vector = v\n"
                  "id =\n"              /* 19 */
                  "distance = L2\n"     /* 20 */
                  "distance = Dot\n");  /* 21 */
    assert_int_equal(l.rc, -1);
    assert_err(&l, "3: duplicate key 'vector' in section [table public.a]");
    assert_err(&l, "5: duplicate key 'vector.x' in section [table public.a]");
    assert_err(&l, "6: bad key 'vector.' in section [table public.a]: expected vector or vector.NAME");
    assert_err(&l, "8: duplicate key 'payload' in section [table public.a]");
    assert_err(&l, "9: duplicate section [table public.a]: already at line 1");
    assert_err(&l, "11: [table public.b] uses collection 'a', already used by [table public.a]");
    assert_err(&l, "14: bad section [table]: expected [table schema.name] or [table name]");
    assert_err(&l, "16: bad section [table \"Q\".t]: expected [table schema.name] or [table name]");
    assert_err(&l, "19: bad value '' for [table c] id: expected a comma-separated list of key columns");
    assert_err(&l, "1: [table public.a]: the unnamed vector (vector = v) cannot be combined with named vectors "
                   "(vector.NAME = COLUMN)");
    assert_err(&l, "20: bad value 'L2' for [table c] distance: expected Cosine, Dot, Euclid or Manhattan");
    assert_err(&l, "21: duplicate key 'distance' in section [table c]");
    assert_int_equal(l.errs.n, 12);
    assert_int_equal(l.cfg.n_tables, 3);
    /* the duplicate section's keys are ignored */
    assert_string_equal(config_find_table(&l.cfg, "public", "a")->vectors[0].column, "v");
    unload(&l);
}

static void test_inflight_below_batch(void **state)
{
    loaded l;

    (void)state;
    load_text(&l, "[sync]\nbatch_bytes = 4MB\nmax_inflight = 2MB\n" MINIMAL_TABLE);
    assert_int_equal(l.rc, -1);
    assert_err(&l, "3: [sync] max_inflight (2097152 bytes) must be at least batch_bytes (4194304 bytes)");
    assert_int_equal(l.errs.n, 1);
    unload(&l);
}

/* ---- environment ---- */

static void test_env_overrides(void **state)
{
    loaded l;

    (void)state;
    setenv("PG2QDRANT_SOURCE_SLOT", "env_slot", 1);
    setenv("PG2QDRANT_SYNC_BATCH_POINTS", "42", 1);
    setenv("PG2QDRANT_SYNC_ON_ERROR", "dead_letter", 1);
    setenv("PG2QDRANT_HTTP_LISTEN", "", 1);
    setenv("PG2QDRANT_QDRANT_URL", "http://qdrant:6333/", 1);
    setenv("PG2QDRANT_QDRANT_CREATE_COLLECTIONS", "on", 1);
    setenv("PG2QDRANT_SOURCE_STATUS_INTERVAL", "1 s", 1);
    load_text(&l, "[source]\nslot = file_slot\n[sync]\nbatch_points = 7\n" MINIMAL_TABLE);
    assert_ok(&l);
    assert_string_equal(l.cfg.source.slot, "env_slot");
    assert_int_equal(l.cfg.sync.batch_points, 42);
    assert_int_equal(l.cfg.sync.on_error, ON_ERROR_DEAD_LETTER);
    assert_string_equal(l.cfg.http.listen, "");
    assert_string_equal(l.cfg.qdrant.url, "http://qdrant:6333");
    assert_true(l.cfg.qdrant.create_collections);
    assert_int_equal(l.cfg.source.status_interval_ms, 1000);
    unload(&l);
}

static void test_env_errors(void **state)
{
    loaded l;

    (void)state;
    setenv("PG2QDRANT_SYNC_BATCH_POINTS", "ten", 1);
    setenv("PG2QDRANT_SYNC_BACH_POINTS", "10", 1);
    setenv("PG2QDRANT_TABLE_PUBLIC_T_VECTOR", "x", 1);
    setenv("PG2QDRANT_SYNC_BATCH_POINTS_FILE", "/tmp/x", 1);
    setenv("PG2QDRANT_SYNC_MAX_INFLIGHT", "1MB", 1);
    setenv("PG2QDRANT_QDRANT_API_KEY_FILE", "", 1);
    setenv("PG2QDRANT_CONFIG", "/nonexistent/ignored-because-a-path-is-given.ini", 1);
    load_text(&l, MINIMAL_TABLE);
    assert_int_equal(l.rc, -1);
    assert_err_has(&l.errs, "PG2QDRANT_SYNC_BATCH_POINTS: bad value 'ten' for [sync] batch_points: expected a "
                            "whole number");
    assert_err_has(&l.errs, "PG2QDRANT_SYNC_BACH_POINTS: unknown environment variable");
    assert_err_has(&l.errs, "PG2QDRANT_TABLE_PUBLIC_T_VECTOR: unknown environment variable");
    assert_err_has(&l.errs, "PG2QDRANT_SYNC_BATCH_POINTS_FILE: unknown environment variable");
    /* a cross-check names the variable that set the value */
    assert_err_has(&l.errs, "PG2QDRANT_SYNC_MAX_INFLIGHT: [sync] max_inflight (1048576 bytes) must be at least "
                            "batch_bytes (8388608 bytes)");
    assert_err_has(&l.errs, "PG2QDRANT_QDRANT_API_KEY_FILE: bad value '' for [qdrant] api_key_file: expected a "
                            "file name");
    assert_int_equal(l.errs.n, 6);
    /* env messages name the variable, not the file */
    for (int i = 0; i < l.errs.n; i++)
        assert_int_equal(strncmp(l.errs.items[i], "PG2QDRANT_", 10), 0);
    unload(&l);
}

/* ---- secrets ---- */

static void test_secret_files(void **state)
{
    loaded l;
    char *dsn_file = write_tmp("host=db user=cdc password=" SECRET_PW "\n");
    char *key_file = write_tmp(SECRET_KEY "\r\n");
    char *two_nl = write_tmp("k1\n\n");
    char *text;

    (void)state;
    text = xasprintf("[source]\ndsn_file = %s\n[qdrant]\napi_key_file = %s\n" MINIMAL_TABLE, dsn_file, key_file);
    load_text(&l, text);
    assert_ok(&l);
    assert_string_equal(l.cfg.source.dsn, "host=db user=cdc password=" SECRET_PW);
    assert_string_equal(l.cfg.qdrant.api_key, SECRET_KEY);
    unload(&l);
    free(text);

    /* only one trailing newline is stripped: the second one is kept (and rejected) */
    text = xasprintf("[qdrant]\napi_key_file = %s\n" MINIMAL_TABLE, two_nl);
    load_text(&l, text);
    assert_int_equal(l.rc, -1);
    assert_err(&l, "2: bad value for [qdrant] api_key: contains control characters");
    unload(&l);
    free(text);

    unlink(dsn_file);
    unlink(key_file);
    unlink(two_nl);
    free(dsn_file);
    free(key_file);
    free(two_nl);
}

static void test_secret_precedence(void **state)
{
    loaded l;
    char *env_file = write_tmp("from-env-file\n");
    char *ini_file = write_tmp("from-ini-file\n");
    char *text = xasprintf("[qdrant]\napi_key_file = %s\n" MINIMAL_TABLE, ini_file);

    (void)state;
    /* ini _file alone */
    load_text(&l, text);
    assert_ok(&l);
    assert_string_equal(l.cfg.qdrant.api_key, "from-ini-file");
    unload(&l);

    /* env _FILE beats the file's setting */
    setenv("PG2QDRANT_QDRANT_API_KEY_FILE", env_file, 1);
    load_text(&l, text);
    assert_ok(&l);
    assert_string_equal(l.cfg.qdrant.api_key, "from-env-file");
    unload(&l);

    /* env value beats both; setting value and _FILE in the environment is an error */
    setenv("PG2QDRANT_QDRANT_API_KEY", "from-env", 1);
    load_text(&l, text);
    assert_int_equal(l.rc, -1);
    assert_string_equal(l.cfg.qdrant.api_key, "from-env");
    assert_int_equal(l.errs.n, 1);
    assert_string_equal(l.errs.items[0], "PG2QDRANT_QDRANT_API_KEY: PG2QDRANT_QDRANT_API_KEY_FILE is set too; "
                                         "set only one of them");
    unload(&l);

    unsetenv("PG2QDRANT_QDRANT_API_KEY_FILE");
    load_text(&l, text);
    assert_ok(&l);
    assert_string_equal(l.cfg.qdrant.api_key, "from-env");
    unload(&l);

    unlink(env_file);
    unlink(ini_file);
    free(env_file);
    free(ini_file);
    free(text);
}

static void test_secret_errors_hide_values(void **state)
{
    loaded l;
    char *unreadable = xstrdup("/tmp/p2q_config_test_missing_secret");
    char *text;

    (void)state;
    unlink(unreadable);
    /* both forms in the file; a bad dsn; a bad api key; an unreadable env file */
    text = xasprintf("[source]\n"
                     "dsn = host=db password=" SECRET_PW " bogus\n"
                     "[qdrant]\n"
                     "api_key = " SECRET_KEY "\n"
                     "api_key_file = /run/secrets/key\n" MINIMAL_TABLE);
    setenv("PG2QDRANT_SOURCE_DSN_FILE", unreadable, 1);
    load_text(&l, text);
    assert_int_equal(l.rc, -1);
    assert_err(&l, "5: [qdrant] sets both api_key and api_key_file; set only one");
    assert_err_has(&l.errs, "PG2QDRANT_SOURCE_DSN_FILE: cannot read secret file "
                            "'/tmp/p2q_config_test_missing_secret': No such file or directory");
    assert_int_equal(l.errs.n, 2);
    assert_no_secret(&l.errs);
    unload(&l);

    /* without the env override the bad dsn in the file is reported, without its text */
    unsetenv("PG2QDRANT_SOURCE_DSN_FILE");
    setenv("PG2QDRANT_QDRANT_API_KEY", SECRET_KEY "\nX", 1);
    load_text(&l, text);
    assert_int_equal(l.rc, -1);
    assert_err(&l, "2: bad value for [source] dsn: not a valid libpq connection string (key=value pairs or a "
                   "postgresql:// URI)");
    assert_err_has(&l.errs, "PG2QDRANT_QDRANT_API_KEY: bad value for [qdrant] api_key: contains control characters");
    assert_no_secret(&l.errs);
    unload(&l);
    free(text);

    /* unreadable: a directory */
    unsetenv("PG2QDRANT_QDRANT_API_KEY");
    load_text(&l, "[source]\ndsn_file = /tmp\n" MINIMAL_TABLE);
    assert_int_equal(l.rc, -1);
    assert_err(&l, "2: cannot read secret file '/tmp': Is a directory");
    unload(&l);
    free(unreadable);
}

static void test_secret_env_value(void **state)
{
    loaded l;

    (void)state;
    setenv("PG2QDRANT_SOURCE_DSN", "postgresql://cdc:" SECRET_PW "@db/shop", 1);
    load_text(&l, "[source]\ndsn = host=file\n" MINIMAL_TABLE);
    assert_ok(&l);
    assert_string_equal(l.cfg.source.dsn, "postgresql://cdc:" SECRET_PW "@db/shop");
    unload(&l);
}

/* ---- file location ---- */

static void test_config_path(void **state)
{
    loaded l;
    char *path = write_tmp("[source]\nslot = from_env_path\n" MINIMAL_TABLE);
    p2q_config cfg;
    strlist errs = {0};

    (void)state;
    setenv("PG2QDRANT_CONFIG", path, 1);
    assert_int_equal(config_load(NULL, &cfg, &errs), 0);
    assert_string_equal(cfg.path, path);
    assert_string_equal(cfg.source.slot, "from_env_path");
    config_free(&cfg);

    /* an explicit path beats $PG2QDRANT_CONFIG */
    load_text(&l, "[source]\nslot = explicit\n" MINIMAL_TABLE);
    assert_ok(&l);
    assert_string_equal(l.cfg.source.slot, "explicit");
    unload(&l);

    /* a missing file */
    assert_int_equal(config_load("/nonexistent/p2q.ini", &cfg, &errs), -1);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.items[0], "/nonexistent/p2q.ini: cannot open: No such file or directory");
    config_free(&cfg);
    strlist_free(&errs);

    /* neither: the default path */
    unsetenv("PG2QDRANT_CONFIG");
    config_load(NULL, &cfg, &errs);
    assert_string_equal(cfg.path, CONFIG_DEFAULT_PATH);
    config_free(&cfg);
    strlist_free(&errs);

    /* an empty PG2QDRANT_CONFIG counts as unset */
    setenv("PG2QDRANT_CONFIG", "", 1);
    config_load(NULL, &cfg, &errs);
    assert_string_equal(cfg.path, CONFIG_DEFAULT_PATH);
    config_free(&cfg);
    strlist_free(&errs);

    unlink(path);
    free(path);
}

/* ---- redaction ---- */

static void test_redact_dsn(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"host=db dbname=shop user=cdc", "host=db dbname=shop user=cdc"},
        {"host=db user=cdc password=s3cret dbname=shop", "host=db user=cdc password=******** dbname=shop"},
        {"password = 'a b\\' c' host=db", "password = ******** host=db"},
        {"host=db password=a\\ b port=5432", "host=db password=******** port=5432"},
        {"host=db sslpassword=k3y sslmode=verify-full", "host=db sslpassword=******** sslmode=verify-full"},
        {"application_name='my app' password=x", "application_name='my app' password=********"},
        {"host=db password='unterminated", "host=db ********"},
        {"host=db oops password=x", "host=db ********"},
        {"password=", "password="},
        {"postgresql://cdc:s3cret@db:5432/shop", "postgresql://cdc:********@db:5432/shop"},
        {"postgres://cdc@db/shop?password=s3cret&sslmode=require",
         "postgres://cdc@db/shop?password=********&sslmode=require"},
        {"postgresql://u:p@h1,h2/db?sslpassword=x", "postgresql://u:********@h1,h2/db?sslpassword=********"},
        {"postgresql://db/shop", "postgresql://db/shop"},
        {"postgresql://u:pa?ss@db/shop", "postgresql://u:********@db/shop"},
        /* libpq decodes percent-encoded query keys: pass%77ord is password. */
        {"postgresql://u@h/db?pass%77ord=s3cret", "postgresql://u@h/db?pass%77ord=********"},
        {"postgresql://u@h/db?sslmode=require&%70assword=s3cret",
         "postgresql://u@h/db?sslmode=require&%70assword=********"},
        {"postgresql://u@h/db?%73sl%70ass%77ord=k3y&%70ort=5432", "postgresql://u@h/db?%73sl%70ass%77ord=********&%70ort=5432"},
        {"postgresql://u@h/db?pass%7=x&passwor%2=y", "postgresql://u@h/db?pass%7=x&passwor%2=y"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = config_redact_dsn(cases[i].in);
        if (strcmp(r, cases[i].out) != 0)
            fail_msg("redact(%s) = %s, want %s", cases[i].in, r, cases[i].out);
        free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spec_example, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_defaults, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_every_key_set, reset_env, reset_env),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_bools),
        cmocka_unit_test_setup_teardown(test_bad_values, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_good_listen_values, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_unknown_key_and_section, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_errors_collected, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_comments_and_syntax, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_long_lines, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_tables, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_table_errors, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_inflight_below_batch, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_env_overrides, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_env_errors, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_secret_files, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_secret_precedence, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_secret_errors_hide_values, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_secret_env_value, reset_env, reset_env),
        cmocka_unit_test_setup_teardown(test_config_path, reset_env, reset_env),
        cmocka_unit_test(test_redact_dsn),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
