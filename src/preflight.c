/*
 * preflight.c — the checks and preparation of tables and collections
 * before any row moves: every problem the sync would hit at start (or,
 * worse, later), found up front and listed at once.  check-config lists
 * them (preflight_check, read-only); run and snapshot prepare with them
 * (preflight_prepare: only what they need, creating missing collections).
 *
 * Two phases.  The PostgreSQL phase opens a normal connection and checks
 * the server (wal_level, the role's REPLICATION attribute), the publication,
 * the slot and each configured table (existence, publication coverage,
 * replica identity, key / vector / payload columns), remembering each
 * vector column's kind and size.  The Qdrant phase reads every collection
 * and compares its vector names, kinds and sizes with those columns.  A
 * problem never stops the checks that do not depend on it.
 *
 * Catalog queries pass names as parameters; the one query that samples a
 * table's row quotes its identifiers with PQescapeIdentifier.  Messages
 * carry the DSN only through config_redact_dsn and never the API key.
 */
#include "preflight.h"

#include "collection.h"
#include "qdrant_client.h"
#include "rebuild.h"
#include "replication.h"
#include "util.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    VEC_UNKNOWN,     /* PostgreSQL not checked */
    VEC_MISSING,     /* no such column */
    VEC_UNSUPPORTED, /* a type pg2qdrant cannot map to a vector */
    VEC_DENSE,
    VEC_SPARSE,
} vec_kind;

typedef struct vec_state {
    vec_kind kind;
    int64_t dims;        /* dense size; -1 when unknown */
    const char *dims_of; /* where dims came from: "its type" or "its first non-NULL row" */
} vec_state;

/* One column of a table, from pg_attribute. */
typedef struct column_info {
    const char *name;
    const char *type;    /* format_type(): "vector(3)", "real[]" */
    const char *typname; /* pg_type.typname */
    const char *elem;    /* element typname of an array type, else NULL */
    int typmod;
} column_info;

typedef struct checker {
    const p2q_config *cfg;
    strlist *problems;
    PGconn *conn; /* NULL when PostgreSQL is unreachable */
    bool pub_exists;
    bool pub_via_root; /* publish_via_partition_root */
    bool pub_all_tables;
    vec_state **vecs; /* per table, per configured vector */
    bool run_mode;    /* preflight_prepare: only what run/snapshot need, create collections */
    bool streaming;   /* run_mode: also the publication and UNLOGGED checks (run, not the snapshot command) */
    volatile sig_atomic_t *stop; /* run_mode: seen while connecting */
    strlist *notes;   /* check-config: facts worth printing (the server encoding); NULL: none */
    bool transient;   /* run_mode: a side was unreachable; try again later */
    qd_client *qd;    /* run_mode: the sync's client (borrowed) */
} checker;

static void problem(checker *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(checker *ck, const char *fmt, ...)
{
    va_list ap;
    char *m;

    va_start(ap, fmt);
    m = xvasprintf(fmt, ap);
    va_end(ap);
    strlist_add(ck->problems, "%s", m);
    free(m);
}

static int pg_connect(checker *ck)
{
    const char *dsn = ck->cfg->source.dsn ? ck->cfg->source.dsn : "";
    repl_conn_opts co = {.appname = "pg2qdrant check-config", .stop = ck->stop};
    char *redacted = NULL;
    char err[600];
    p2q_status rc = repl_open(dsn, &co, &ck->conn, err, sizeof err);

    if (rc == P2Q_OK)
        return 0;
    redacted = config_redact_dsn(dsn);
    if (rc == P2Q_ERR_CONFIG)
        problem(ck, "PostgreSQL (%s): %s", redacted, err);
    else
        problem(ck, "PostgreSQL: cannot connect (%s): %s", redacted, err);
    ck->transient = rc != P2Q_ERR_CONFIG;
    free(redacted);
    return -1;
}

/* Runs a catalog query with text parameters.  NULL (problem recorded)
 * when it fails.  Caller PQclears. */
static PGresult *pg_query(checker *ck, const char *what, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(ck->conn, sql, n, NULL, params, NULL, NULL, 0);
    char *msg;

    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    msg = str_one_line(PQresultErrorMessage(res));
    problem(ck, "PostgreSQL: cannot read %s: %s", what, msg);
    free(msg);
    PQclear(res);
    return NULL;
}

static bool is_true(const PGresult *res, int row, int col)
{
    return strcmp(PQgetvalue(res, row, col), "t") == 0;
}

/* The database encoding: SQL_ASCII is refused when connecting (repl_open);
 * any other is converted to UTF-8 by the server. */
static void check_encoding(checker *ck)
{
    const char *enc = PQparameterStatus(ck->conn, "server_encoding");

    if (ck->notes && enc)
        strlist_add(ck->notes,
                    "PostgreSQL: database \"%s\" has encoding %s%s", PQdb(ck->conn), enc,
                    strcmp(enc, "UTF8") == 0 ? "" : "; pg2qdrant reads it as UTF-8 (client_encoding = UTF8, converted "
                                                    "by the server)");
}

static void check_server(checker *ck)
{
    PGresult *res = pg_query(ck, "wal_level", "SELECT pg_catalog.current_setting('wal_level')", 0, NULL);

    if (res && strcmp(PQgetvalue(res, 0, 0), "logical") != 0)
        problem(ck,
                "PostgreSQL: wal_level is '%s', logical decoding needs 'logical' "
                "(ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)",
                PQgetvalue(res, 0, 0));
    PQclear(res);
    res = pg_query(ck, "the role's attributes",
                   "SELECT rolname, rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user",
                   0, NULL);
    if (res && PQntuples(res) == 1 && !is_true(res, 0, 1))
        problem(ck, "PostgreSQL: role \"%s\" lacks the REPLICATION attribute (ALTER ROLE \"%s\" REPLICATION)",
                PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void check_publication(checker *ck)
{
    const char *pub = ck->cfg->source.publication;
    static const char *const ops[] = {"insert", "update", "delete", "truncate"};
    PGresult *res = pg_query(ck, "pg_publication",
                             "SELECT pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot, puballtables "
                             "FROM pg_catalog.pg_publication WHERE pubname = $1",
                             1, &pub);

    if (!res)
        return;
    ck->pub_exists = PQntuples(res) == 1;
    if (ck->pub_exists) {
        ck->pub_via_root = is_true(res, 0, 4);
        ck->pub_all_tables = is_true(res, 0, 5);
    }
    /* run creates a missing publication itself (or says why not). */
    if (!ck->pub_exists && !ck->cfg->source.create_publication && !ck->run_mode)
        problem(ck,
                "publication \"%s\" does not exist (CREATE PUBLICATION \"%s\" FOR TABLE ..., "
                "or set create_publication = true)",
                pub, pub);
    for (int i = 0; ck->pub_exists && i < 4; i++)
        if (!is_true(res, 0, i))
            problem(ck,
                    "publication \"%s\" does not publish %s operations, so those changes never reach Qdrant "
                    "(ALTER PUBLICATION \"%s\" SET (publish = 'insert, update, delete, truncate'))",
                    pub, ops[i], pub);
    PQclear(res);
}

static void check_slot(checker *ck)
{
    const char *slot = ck->cfg->source.slot;
    PGresult *res = pg_query(ck, "pg_replication_slots",
                             "SELECT slot_type, plugin, database, pg_catalog.current_database() "
                             "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                             1, &slot);

    if (!res)
        return;
    if (PQntuples(res) == 0) {
        if (!ck->cfg->source.create_slot)
            problem(ck,
                    "slot \"%s\" does not exist and create_slot = false "
                    "(pg2qdrant slot create, or set create_slot = true)",
                    slot);
    } else if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0) {
        problem(ck, "slot \"%s\" is a %s slot, pg2qdrant needs a logical slot with plugin pgoutput", slot,
                PQgetvalue(res, 0, 0));
    } else if (strcmp(PQgetvalue(res, 0, 1), "pgoutput") != 0) {
        problem(ck,
                "slot \"%s\" uses plugin %s, pg2qdrant needs pgoutput "
                "(use another slot name, or drop the slot if nothing else uses it)",
                slot, PQgetvalue(res, 0, 1));
    } else if (strcmp(PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3)) != 0) {
        problem(ck, "slot \"%s\" belongs to database \"%s\", the DSN connects to \"%s\"", slot,
                PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
    }
    PQclear(res);
}

/* ---- tables ---- */

typedef struct table_ctx {
    checker *ck;
    const table_cfg *t;
    int index;
    const char *qname; /* t->qualified: schema.name for messages */
    char oid[16];
    char relkind;
    char replident;
    char persistence; /* relpersistence: 'p', 'u' (UNLOGGED), 't' */
    PGresult *cols; /* rows of column_info */
} table_ctx;

static bool column_get(const table_ctx *tc, const char *name, column_info *out)
{
    for (int i = 0; i < PQntuples(tc->cols); i++) {
        if (strcmp(PQgetvalue(tc->cols, i, 0), name) != 0)
            continue;
        out->name = PQgetvalue(tc->cols, i, 0);
        out->type = PQgetvalue(tc->cols, i, 1);
        out->typname = PQgetvalue(tc->cols, i, 2);
        out->elem = PQgetisnull(tc->cols, i, 3) ? NULL : PQgetvalue(tc->cols, i, 3);
        out->typmod = atoi(PQgetvalue(tc->cols, i, 4));
        return true;
    }
    return false;
}

static bool table_has_column(const table_ctx *tc, const char *name)
{
    column_info ci;
    return column_get(tc, name, &ci);
}

/* 0 when the table exists (oid, relkind, replident and cols filled). */
static int table_lookup(table_ctx *tc)
{
    const char *params[2] = {tc->t->schema, tc->t->name};
    const char *oid;
    PGresult *res = pg_query(tc->ck, "pg_class",
                             "SELECT c.oid, c.relkind, c.relreplident, c.relpersistence FROM pg_catalog.pg_class c "
                             "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname = $1 AND c.relname = $2",
                             2, params);
    int rc = -1;

    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        problem(tc->ck, "table %s does not exist", tc->qname);
        goto cleanup;
    }
    snprintf(tc->oid, sizeof tc->oid, "%s", PQgetvalue(res, 0, 0));
    tc->relkind = PQgetvalue(res, 0, 1)[0];
    tc->replident = PQgetvalue(res, 0, 2)[0];
    tc->persistence = PQgetvalue(res, 0, 3)[0];
    if (tc->relkind != 'r' && tc->relkind != 'p') {
        problem(tc->ck, "%s is not a table (relkind '%c'); only tables can be replicated", tc->qname,
                tc->relkind);
        goto cleanup;
    }
    oid = tc->oid;
    tc->cols = pg_query(tc->ck, "pg_attribute",
                        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), t.typname, "
                        "CASE WHEN t.typcategory = 'A' THEN e.typname END, a.atttypmod "
                        "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
                        "LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem "
                        "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                        1, &oid);
    if (tc->cols)
        rc = 0;
cleanup:
    PQclear(res);
    return rc;
}

/* A column pg2qdrant must receive, checked against the publication's
 * column list (rows of published). */
static void published_column_check(table_ctx *tc, const PGresult *published, const char *col)
{
    if (!table_has_column(tc, col))
        return; /* reported as a missing column */
    for (int r = 0; r < PQntuples(published); r++)
        if (strcmp(PQgetvalue(published, r, 0), col) == 0)
            return;
    problem(tc->ck, "publication \"%s\" has a column list for table %s that leaves out column %s",
            tc->ck->cfg->source.publication, tc->qname, col);
}

/* The ids, the vectors and the listed payload columns must be published. */
static void published_columns_check(table_ctx *tc, const PGresult *published)
{
    const table_cfg *t = tc->t;

    for (int i = 0; i < t->n_id_columns; i++)
        published_column_check(tc, published, t->id_columns[i]);
    for (int i = 0; i < t->n_vectors; i++)
        published_column_check(tc, published, t->vectors[i].column);
    for (int i = 0; i < t->n_payload_columns; i++)
        published_column_check(tc, published, t->payload_columns[i]);
}

static void table_check_publication(table_ctx *tc)
{
    const char *params[3] = {tc->ck->cfg->source.publication, tc->t->schema, tc->t->name};
    /* PostgreSQL 15 publications can carry column lists (attnames). */
    bool column_lists = PQserverVersion(tc->ck->conn) >= 150000;
    PGresult *res = pg_query(tc->ck, "pg_publication_tables",
                             column_lists ? "SELECT a FROM pg_catalog.pg_publication_tables pt, "
                                            "unnest(pt.attnames) a "
                                            "WHERE pt.pubname = $1 AND pt.schemaname = $2 AND pt.tablename = $3"
                                          : "SELECT NULL FROM pg_catalog.pg_publication_tables "
                                            "WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                             3, params);

    if (!res)
        return;
    if (tc->persistence == 'u')
        ; /* never published; reported by table_check_logged */
    else if (tc->relkind == 'p' && !tc->ck->pub_via_root)
        problem(tc->ck,
                "publication \"%s\" does not set publish_via_partition_root, so the changes of partitioned table %s "
                "arrive under its partitions' names and are skipped (ALTER PUBLICATION \"%s\" SET "
                "(publish_via_partition_root = true))",
                params[0], tc->qname, params[0]);
    else if (PQntuples(res) == 0)
        problem(tc->ck, "publication \"%s\" does not include table %s (ALTER PUBLICATION \"%s\" ADD TABLE %s)",
                params[0], tc->qname, params[0], tc->qname);
    else if (column_lists)
        published_columns_check(tc, res);
    PQclear(res);
}

static void table_check_ids(table_ctx *tc)
{
    for (int i = 0; i < tc->t->n_id_columns; i++)
        if (!table_has_column(tc, tc->t->id_columns[i]))
            problem(tc->ck, "table %s: id column %s does not exist", tc->qname, tc->t->id_columns[i]);
}

static void table_check_identity(table_ctx *tc)
{
    const table_cfg *t = tc->t;
    const char *params[2] = {tc->oid, tc->replident == 'd' ? "d" : "i"};
    PGresult *res = NULL;

    if (tc->replident == 'n') {
        problem(tc->ck,
                "table %s has REPLICA IDENTITY NOTHING: updates and deletes cannot be replicated "
                "(ALTER TABLE %s REPLICA IDENTITY DEFAULT, with a primary key)",
                tc->qname, tc->qname);
        return;
    }
    if (tc->replident == 'f') {
        if (t->n_id_columns == 0)
            problem(tc->ck,
                    "table %s has REPLICA IDENTITY FULL and no id configured: set id = <key columns> in "
                    "[table %s]",
                    tc->qname, tc->qname);
        return;
    }
    res = pg_query(tc->ck, "the replica identity index",
                   "SELECT a.attname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a "
                   "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
                   "WHERE i.indrelid = $1 AND CASE WHEN $2 = 'd' THEN i.indisprimary ELSE i.indisreplident END",
                   2, params);
    if (!res)
        return;
    if (PQntuples(res) == 0) {
        if (tc->replident == 'd')
            problem(tc->ck,
                    "table %s has REPLICA IDENTITY DEFAULT but no primary key: updates and deletes cannot be "
                    "replicated (add a primary key, or ALTER TABLE %s REPLICA IDENTITY USING INDEX <unique index>)",
                    tc->qname, tc->qname);
        else
            problem(tc->ck,
                    "table %s: its REPLICA IDENTITY index no longer exists (ALTER TABLE %s REPLICA IDENTITY ...)",
                    tc->qname, tc->qname);
        goto cleanup;
    }
    for (int i = 0; i < t->n_id_columns; i++) {
        bool found = false;
        if (!table_has_column(tc, t->id_columns[i]))
            continue;
        for (int r = 0; r < PQntuples(res) && !found; r++)
            found = strcmp(PQgetvalue(res, r, 0), t->id_columns[i]) == 0;
        if (!found)
            problem(tc->ck,
                    "table %s: id column %s is not part of the replica identity (%s), so deletes do not carry it "
                    "(use the key columns as id, or ALTER TABLE %s REPLICA IDENTITY USING INDEX / FULL)",
                    tc->qname, t->id_columns[i], tc->replident == 'd' ? "the primary key" : "its identity index",
                    tc->qname);
    }
cleanup:
    PQclear(res);
}

static bool is_numeric_elem(const char *elem)
{
    static const char *const ok[] = {"float4", "float8", "numeric", "int2", "int4", "int8"};
    for (size_t i = 0; elem && i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(elem, ok[i]) == 0)
            return true;
    return false;
}

/* Counts the elements of a pgvector text form "[1,2,3]". */
static int64_t vector_text_dims(const char *s)
{
    int64_t n = 1;

    if (strcmp(s, "[]") == 0)
        return 0;
    for (; *s; s++)
        if (*s == ',')
            n++;
    return n;
}

/* Size of a dense vector column from its first non-NULL row; -1 when the
 * table has none (or the query fails, recorded as a problem). */
static int64_t vector_sample_dims(table_ctx *tc, const column_info *ci, bool is_array)
{
    PGconn *conn = tc->ck->conn;
    char *col = PQescapeIdentifier(conn, ci->name, strlen(ci->name));
    char *sql = NULL;
    char *what = NULL;
    PGresult *res = NULL;
    int64_t dims = -1;

    if (!col)
        goto cleanup;
    if (is_array)
        sql = xasprintf("SELECT pg_catalog.array_length(%s, 1), pg_catalog.array_ndims(%s) FROM %s "
                        "WHERE %s IS NOT NULL LIMIT 1",
                        col, col, tc->t->quoted, col);
    else
        sql = xasprintf("SELECT %s::text FROM %s WHERE %s IS NOT NULL LIMIT 1", col, tc->t->quoted, col);
    what = xasprintf("a row of %s", tc->qname);
    res = pg_query(tc->ck, what, sql, 0, NULL);
    if (!res || PQntuples(res) == 0)
        goto cleanup;
    if (!is_array)
        dims = vector_text_dims(PQgetvalue(res, 0, 0));
    else if (atoi(PQgetvalue(res, 0, 1)) > 1)
        problem(tc->ck, "table %s: vector column %s holds %s-dimensional arrays; a vector needs one dimension",
                tc->qname, ci->name, PQgetvalue(res, 0, 1));
    else
        dims = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
cleanup:
    PQclear(res);
    PQfreemem(col);
    free(sql);
    free(what);
    return dims;
}

static void table_check_vectors(table_ctx *tc)
{
    for (int i = 0; i < tc->t->n_vectors; i++) {
        const vector_cfg *v = &tc->t->vectors[i];
        vec_state *st = &tc->ck->vecs[tc->index][i];
        column_info ci;

        if (!column_get(tc, v->column, &ci)) {
            st->kind = VEC_MISSING;
            problem(tc->ck, "table %s: vector column %s does not exist", tc->qname, v->column);
        } else if (strcmp(ci.typname, "sparsevec") == 0) {
            st->kind = VEC_SPARSE;
        } else if (strcmp(ci.typname, "vector") == 0 || strcmp(ci.typname, "halfvec") == 0) {
            st->kind = VEC_DENSE;
            st->dims = ci.typmod > 0 ? ci.typmod : vector_sample_dims(tc, &ci, false);
            st->dims_of = ci.typmod > 0 ? "its type" : "its first non-NULL row";
        } else if (is_numeric_elem(ci.elem)) {
            st->kind = VEC_DENSE;
            st->dims = vector_sample_dims(tc, &ci, true);
            st->dims_of = "its first non-NULL row";
        } else {
            st->kind = VEC_UNSUPPORTED;
            problem(tc->ck,
                    "table %s: vector column %s has type %s; supported are real[], double precision[], numeric[], "
                    "smallint[], integer[], bigint[], vector, halfvec and sparsevec",
                    tc->qname, v->column, ci.type);
        }
    }
}

static void table_check_payload(table_ctx *tc)
{
    for (int i = 0; i < tc->t->n_payload_columns; i++)
        if (!table_has_column(tc, tc->t->payload_columns[i]))
            problem(tc->ck, "table %s: payload column %s does not exist", tc->qname, tc->t->payload_columns[i]);
}

/* An UNLOGGED table writes no WAL: logical decoding never sees its changes
 * (a FOR ALL TABLES publication leaves it out, ADD TABLE is refused). */
static void table_check_logged(table_ctx *tc)
{
    if (tc->persistence == 'u')
        problem(tc->ck,
                "table %s is UNLOGGED: its changes are not written to WAL, so none reach Qdrant "
                "(ALTER TABLE %s SET LOGGED)",
                tc->qname, tc->qname);
}

static void check_table(checker *ck, int index)
{
    table_ctx tc = {.ck = ck, .t = &ck->cfg->tables[index], .index = index};

    tc.qname = tc.t->qualified;
    if (table_lookup(&tc) != 0)
        goto cleanup;
    if (!ck->run_mode || ck->streaming) {
        table_check_logged(&tc);
        if (ck->pub_exists)
            table_check_publication(&tc);
    }
    table_check_ids(&tc);
    table_check_identity(&tc);
    table_check_vectors(&tc);
    table_check_payload(&tc);
cleanup:
    PQclear(tc.cols);
}

static void check_postgres(checker *ck)
{
    if (pg_connect(ck) != 0)
        return;
    check_encoding(ck);
    if (!ck->run_mode) { /* run creates the slot itself, or says why not */
        check_server(ck);
        check_slot(ck);
    }
    /* run: an existing publication must carry every table and operation (a
     * missing one is created by run with all of them). */
    if (!ck->run_mode || ck->streaming)
        check_publication(ck);
    for (int i = 0; i < ck->cfg->n_tables; i++)
        check_table(ck, i);
}

/* ---- Qdrant ---- */

static const qd_vector_param *param_find(const qd_collection_info *info, const char *name)
{
    for (int i = 0; i < info->n_vectors; i++)
        if (strcmp(info->vectors[i].name, name) == 0)
            return &info->vectors[i];
    return NULL;
}

/* "a, b (sparse)" for messages.  Caller frees. */
static char *param_names(const qd_collection_info *info)
{
    buf b;

    buf_init(&b);
    for (int i = 0; i < info->n_vectors; i++)
        buf_printf(&b, "%s%s%s", i ? ", " : "", info->vectors[i].name[0] ? info->vectors[i].name : "(unnamed)",
                   info->vectors[i].sparse ? " (sparse)" : "");
    if (b.len == 0)
        buf_puts(&b, "none");
    return buf_steal(&b);
}

static void vector_name_problem(checker *ck, const table_cfg *t, const vector_cfg *v, const qd_collection_info *info)
{
    char *names = param_names(info);

    if (v->name[0] == '\0')
        problem(ck,
                "collection \"%s\" has no unnamed vector (its vectors: %s), but table %s maps column %s as the "
                "unnamed vector: use vector.<name> = %s",
                t->collection, names, t->qualified, v->column, v->column);
    else if (param_find(info, ""))
        problem(ck,
                "collection \"%s\" has one unnamed vector, but table %s maps column %s as vector \"%s\": use "
                "vector = %s",
                t->collection, t->qualified, v->column, v->name, v->column);
    else
        problem(ck, "collection \"%s\" has no vector named \"%s\" (its vectors: %s) for column %s of table %s",
                t->collection, v->name, names, v->column, t->qualified);
    free(names);
}

static void check_collection_vectors(checker *ck, int index, const qd_collection_info *info)
{
    const table_cfg *t = &ck->cfg->tables[index];

    for (int i = 0; i < t->n_vectors; i++) {
        const vector_cfg *v = &t->vectors[i];
        const vec_state *st = &ck->vecs[index][i];
        const qd_vector_param *p = param_find(info, v->name);
        const char *label = v->name[0] ? v->name : "(unnamed)";

        if (!p) {
            vector_name_problem(ck, t, v, info);
        } else if (st->kind == VEC_SPARSE && !p->sparse) {
            problem(ck, "collection \"%s\": vector %s is dense, but column %s.%s is a sparsevec", t->collection,
                    label, t->qualified, v->column);
        } else if (st->kind == VEC_DENSE && p->sparse) {
            problem(ck, "collection \"%s\": vector %s is sparse, but column %s.%s is a dense vector",
                    t->collection, label, t->qualified, v->column);
        } else if (st->kind == VEC_DENSE && st->dims >= 0 && st->dims != p->size) {
            problem(ck,
                    "vector size mismatch: column %s.%s has %lld dimensions (from %s), collection \"%s\" vector "
                    "%s has size %lld",
                    t->qualified, v->column, (long long)st->dims, st->dims_of, t->collection, label,
                    (long long)p->size);
        }
    }
}

/* [table] create_params against the table's vector columns (both modes:
 * a rebuild or create_collections would make a collection the sync cannot
 * write to). */
static void check_create_params(checker *ck)
{
    for (int i = 0; i < ck->cfg->n_tables; i++) {
        const table_cfg *t = &ck->cfg->tables[i];
        int64_t *dims;

        if (!t->create_params)
            continue;
        dims = xcalloc((size_t)t->n_vectors + 1, sizeof *dims);
        for (int j = 0; j < t->n_vectors; j++) {
            const vec_state *st = &ck->vecs[i][j];
            dims[j] = st->kind == VEC_SPARSE ? 0 : st->kind != VEC_DENSE ? -2 : st->dims > 0 ? st->dims : -1;
        }
        collection_check_params(t, dims, ck->problems);
        free(dims);
    }
}

/* With create_collections, the dense sizes must be known to create it
 * (not with alias = true and create_params: generation 1 is made from
 * create_params). */
static void check_creatable(checker *ck, int index)
{
    const table_cfg *t = &ck->cfg->tables[index];

    for (int i = 0; i < t->n_vectors; i++) {
        const vec_state *st = &ck->vecs[index][i];
        if (st->kind == VEC_DENSE && st->dims < 0 && !(t->alias && t->create_params))
            problem(ck,
                    "collection \"%s\" does not exist and cannot be created: the size of vector column %s.%s is "
                    "unknown (its type has no dimension and it has no non-NULL row)",
                    t->collection, t->qualified, t->vectors[i].column);
        else if (st->kind == VEC_SPARSE && t->vectors[i].name[0] == '\0')
            problem(ck,
                    "collection \"%s\" cannot be created: sparse column %s.%s must be mapped as a named vector "
                    "(vector.<name> = %s)",
                    t->collection, t->qualified, t->vectors[i].column, t->vectors[i].column);
    }
}

/* run_mode: creates a missing collection whose vector sizes are known (or,
 * with alias = true, generation 1 and the alias: collection_create); one
 * whose sizes are not (an empty table of real[] rows) is created when its
 * first upsert is sent. */
static void create_collection(checker *ck, int index)
{
    const table_cfg *t = &ck->cfg->tables[index];
    int64_t *dims = xcalloc((size_t)t->n_vectors + 1, sizeof *dims);
    char err[900];
    bool transient;

    for (int i = 0; i < t->n_vectors; i++) {
        const vec_state *st = &ck->vecs[index][i];
        dims[i] = st->kind == VEC_SPARSE ? 0 : st->dims;
        if (dims[i] < 0 && !(t->alias && t->create_params))
            goto cleanup;
    }
    if (collection_create(ck->qd, t, dims, &transient, err, sizeof err) != 0) {
        problem(ck, "%s", err);
        ck->transient = ck->transient || transient;
    }
cleanup:
    free(dims);
}

/*
 * Whether t's collection is an alias (check-config: a note for every table;
 * both modes: alias = true on a plain collection is a problem, with the
 * steps to move it behind an alias).  Called for a collection that exists.
 */
static void check_alias(checker *ck, const table_cfg *t, const strlist *anames, const strlist *atargets)
{
    const char *target = collection_alias_target(anames, atargets, t->collection);

    if (target && ck->notes)
        strlist_add(ck->notes, "Qdrant: table %s: \"%s\" is an alias of collection \"%s\"", t->qualified,
                    t->collection, target);
    else if (!target && ck->notes)
        strlist_add(ck->notes, "Qdrant: table %s: \"%s\" is a plain collection, not an alias", t->qualified,
                    t->collection);
    if (!target && t->alias) {
        char *steps = collection_alias_steps(t);
        problem(ck, "table %s: alias = true, but \"%s\" is a plain collection, not an alias; to move it behind an "
                    "alias: %s",
                t->qualified, t->collection, steps);
        free(steps);
    }
}

/* A missing collection of table t. */
static void missing_collection(checker *ck, int index)
{
    const p2q_config *cfg = ck->cfg;
    const table_cfg *t = &cfg->tables[index];

    if (ck->run_mode && cfg->qdrant.create_collections) {
        create_collection(ck, index);
        return;
    }
    if (!cfg->qdrant.create_collections && t->alias) {
        char *g1 = rb_generation_name(t->collection, 1);
        problem(ck,
                "alias \"%s\" (table %s) does not exist in Qdrant (create it, or set create_collections = true "
                "to create collection \"%s\" behind it)",
                t->collection, t->qualified, g1);
        free(g1);
    } else if (!cfg->qdrant.create_collections) {
        problem(ck,
                "collection \"%s\" (table %s) does not exist in Qdrant (create it, or set "
                "create_collections = true)",
                t->collection, t->qualified);
    } else {
        if (ck->notes && t->alias) {
            char *g1 = rb_generation_name(t->collection, 1);
            strlist_add(ck->notes,
                        "Qdrant: table %s: alias \"%s\" does not exist; run creates collection \"%s\" and the "
                        "alias (create_collections = true)",
                        t->qualified, t->collection, g1);
            free(g1);
        } else if (ck->notes) {
            strlist_add(ck->notes,
                        "Qdrant: table %s: collection \"%s\" does not exist; run creates it (create_collections "
                        "= true)",
                        t->qualified, t->collection);
        }
        check_creatable(ck, index);
    }
}

static void check_qdrant(checker *ck)
{
    const p2q_config *cfg = ck->cfg;
    qd_client *qd = ck->qd ? ck->qd : qd_client_new(cfg->qdrant.url, cfg->qdrant.api_key, cfg->qdrant.timeout_ms);
    qd_collection_info info;
    qd_result res;
    strlist anames = {0}, atargets = {0};
    bool aliases_read = false, aliases_ok = false;
    char desc[700];

    if (!qd) {
        problem(ck, "Qdrant: cannot initialise the HTTP client");
        return;
    }
    if (!ck->qd && qd_client_set_ca_file(qd, cfg->qdrant.ca_file) != 0)
        problem(ck, "Qdrant: cannot use ca_file %s", cfg->qdrant.ca_file);
    for (int i = 0; i < cfg->n_tables; i++) {
        const table_cfg *t = &cfg->tables[i];

        if (qd_get_collection(qd, t->collection, &info, &res) != 0) {
            problem(ck, "Qdrant at %s: cannot read collection \"%s\": %s", cfg->qdrant.url, t->collection,
                    qd_result_describe(&res, desc, sizeof desc));
            qd_result_clear(&res);
            if (qd_result_transient(&res))
                ck->transient = true;
            /* No answer or no access: every other collection fails the same way. */
            if ((res.outcome == QD_TRANSIENT && res.http_status == 0) || res.outcome == QD_AUTH ||
                res.outcome == QD_NOT_QDRANT)
                break;
            continue;
        }
        qd_result_clear(&res);
        /* the aliases, once, when a report or an alias = true table needs them */
        if (info.exists && (!ck->run_mode || t->alias) && !aliases_read) {
            aliases_read = true;
            aliases_ok = collection_aliases(qd, &anames, &atargets, &res) == 0;
            if (!aliases_ok) {
                problem(ck, "Qdrant at %s: cannot list the aliases: %s", cfg->qdrant.url,
                        qd_result_describe(&res, desc, sizeof desc));
                ck->transient = ck->transient || qd_result_transient(&res);
            }
            qd_result_clear(&res);
        }
        if (!info.exists) {
            missing_collection(ck, i);
        } else {
            if (aliases_ok)
                check_alias(ck, t, &anames, &atargets);
            check_collection_vectors(ck, i, &info);
        }
        qd_collection_info_free(&info);
    }
    strlist_free(&anames);
    strlist_free(&atargets);
    if (!ck->qd)
        qd_client_free(qd);
}

static int check_all(checker *ck);

int preflight_check(const p2q_config *cfg, strlist *problems, strlist *notes)
{
    checker ck = {.cfg = cfg, .problems = problems, .notes = notes};

    return check_all(&ck);
}

p2q_status preflight_prepare(const p2q_config *cfg, qd_client *qd, bool streaming, volatile sig_atomic_t *stop,
                             strlist *problems)
{
    checker ck = {.cfg = cfg, .problems = problems, .run_mode = true, .streaming = streaming, .stop = stop, .qd = qd};
    int n = check_all(&ck);

    return n == 0 ? P2Q_OK : ck.transient ? P2Q_RETRY : P2Q_ERR_CONFIG;
}

static int check_all(checker *ck_)
{
    checker ck = *ck_;
    const p2q_config *cfg = ck.cfg;
    strlist *problems = ck.problems;
    int before = problems->n;

    ck.vecs = xcalloc((size_t)cfg->n_tables + 1, sizeof *ck.vecs);
    for (int i = 0; i < cfg->n_tables; i++) {
        ck.vecs[i] = xcalloc((size_t)cfg->tables[i].n_vectors + 1, sizeof **ck.vecs);
        for (int j = 0; j < cfg->tables[i].n_vectors; j++)
            ck.vecs[i][j].dims = -1;
    }
    check_postgres(&ck);
    check_create_params(&ck);
    check_qdrant(&ck);
    PQfinish(ck.conn);
    for (int i = 0; i < cfg->n_tables; i++)
        free(ck.vecs[i]);
    free(ck.vecs);
    ck_->transient = ck.transient;
    return problems->n - before;
}
