/*
 * config.h — the INI configuration of SPEC §2.
 *
 * Sources, weakest first: built-in defaults, the INI file (libinih), then
 * PG2QDRANT_<SECTION>_<KEY> environment variables for the sections source,
 * qdrant, sync and http.  Secret keys (source.dsn, qdrant.api_key) also take
 * PG2QDRANT_<SECTION>_<KEY>_FILE, and <key>_file in the INI file, naming a
 * file whose content (trailing newline stripped) is the value.
 *
 * Every problem is collected, not only the first, each message naming the
 * file and line ("/etc/x.ini:12: unknown key 'bach_points' in [sync]") or
 * the environment variable.
 */
#ifndef P2Q_CONFIG_H
#define P2Q_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH "/etc/pg2qdrant/pg2qdrant.ini"

typedef enum { SNAPSHOT_INITIAL, SNAPSHOT_NEVER, SNAPSHOT_ALWAYS } snapshot_mode;
typedef enum { ON_ERROR_STOP, ON_ERROR_DEAD_LETTER } on_error_mode;

/* vector = col  -> name "" ; vector.image = col -> name "image" */
typedef struct vector_cfg {
    char *name;
    char *column;
} vector_cfg;

typedef struct table_cfg {
    char *schema;       /* from [table schema.name]; "public" when no dot */
    char *name;
    char *qualified;    /* "schema.name", for messages; config.c fills it */
    char *quoted;       /* "\"schema\".\"name\"", for SQL; config.c fills it */
    char *collection;   /* default: name */
    char *distance;     /* Cosine | Dot | Euclid | Manhattan, for create_collections (default Cosine) */
    char **id_columns;  /* n_id_columns == 0: use the replica identity */
    int n_id_columns;
    bool id_mode_uuid5; /* id_mode = uuid5 (default: auto) */
    vector_cfg *vectors;
    int n_vectors;
    bool payload_all;   /* payload = *  (the default) */
    char **payload_columns;
    int n_payload_columns;
    bool alias;         /* `collection` is a Qdrant alias (create_collections makes generation 1 behind it, SPEC §10) */
    char *create_params; /* JSON object, the body of PUT /collections/{c} for new generations; NULL: copy the old one's */
    bool keep_old_collections; /* a rebuild keeps the previous generation */
    char *file;         /* where the section starts, for error messages */
    int line;
} table_cfg;

typedef struct p2q_config {
    char *path; /* the file that was read */
    struct {
        char *dsn; /* secret: may hold a password */
        char *slot;
        char *publication;
        bool create_slot;
        bool create_publication;
        int64_t status_interval_ms;
    } source;
    struct {
        char *url;
        char *api_key; /* secret */
        int64_t timeout_ms;
        bool create_collections;
        char *ca_file; /* CA bundle for https ("" = the system's) */
    } qdrant;
    struct {
        snapshot_mode snapshot;
        int64_t batch_points;
        int64_t parallel_requests; /* Qdrant requests in flight at once (pipelining), 1..8 */
        int64_t batch_bytes;
        int64_t flush_interval_ms;
        int64_t max_inflight;
        on_error_mode on_error;
        char *dead_letter_file;
        int64_t shutdown_timeout_ms;
        int64_t backfill_chunk_rows; /* rows per watermarked chunk of an online backfill (SPEC §9) */
    } sync;
    struct {
        char *listen; /* "" disables */
    } http;
    table_cfg *tables;
    int n_tables;
} p2q_config;

/* A list of error messages (owned strings). */
typedef struct strlist {
    char **items;
    int n;
} strlist;
void strlist_add(strlist *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strlist_free(strlist *l);
/* Whether s is one of l's strings. */
bool strlist_has(const strlist *l, const char *s);

/*
 * Fills *cfg with the defaults of SPEC §2.  Always succeeds.
 */
void config_defaults(p2q_config *cfg);

/*
 * Loads the configuration.  path: the -c argument or NULL (then
 * $PG2QDRANT_CONFIG, then CONFIG_DEFAULT_PATH).  On return *cfg is always
 * initialised (free it with config_free).  Returns 0 when errs stays empty,
 * -1 otherwise; messages are appended to errs, never logged here.
 */
int config_load(const char *path, p2q_config *cfg, strlist *errs);
void config_free(p2q_config *cfg);

/* The table section for schema.name, or NULL. */
const table_cfg *config_find_table(const p2q_config *cfg, const char *schema, const char *name);
/* The table section named "schema.name" (or "name" for public), or NULL. */
const table_cfg *config_find_qualified(const p2q_config *cfg, const char *qualified);

/* Unit parsers (exported for tests and for CLI flags such as --warn 1GB).
 * Sizes: integer with optional B kB MB GB (1024-based, as PostgreSQL).
 * Durations: integer with optional ms s min h d (bare number = milliseconds).
 * Return 0 ok, -1 on a bad value or overflow. */
int config_parse_size(const char *s, int64_t *bytes);
int config_parse_duration(const char *s, int64_t *ms);
int config_parse_bool(const char *s, bool *out);

/* A copy of a libpq conninfo string (key=value or URI) with any password
 * replaced by "********", safe for logs and errors.  Caller frees. */
char *config_redact_dsn(const char *dsn);

#endif
