/*
 * preflight.h — before any row moves: the configured tables (existence,
 * keys, replica identity, vector and payload columns) against the live
 * PostgreSQL, and their collections (vector names, kinds and sizes)
 * against Qdrant.  check-config lists every problem (preflight_check);
 * run and the snapshot command prepare with the same checks, creating the
 * collections that are missing (preflight_prepare).  docs/check-config.md
 * lists each check and its fix.
 */
#ifndef P2Q_PREFLIGHT_H
#define P2Q_PREFLIGHT_H

#include <signal.h>
#include <stdbool.h>

#include "config.h"
#include "qdrant_client.h"
#include "status.h"

/* Checks cfg against the live PostgreSQL (a normal, non-replication connection from
 * cfg->source.dsn) and Qdrant, changing nothing: server, publication, slot, tables,
 * collections (aliases, [table] create_params against the vector columns).  Appends one
 * message per problem to problems (strlist from config.h) and facts worth showing (the
 * database encoding; each table's collection as an alias or a plain one) to notes (may be NULL); returns the number
 * of problems (0 = all good).  Logs nothing itself.  Messages never contain the password
 * of the DSN or the Qdrant API key. */
int preflight_check(const p2q_config *cfg, strlist *problems, strlist *notes);

/*
 * What `run` and `snapshot` check before they move rows: the configured
 * tables (existence, keys, replica identity, vector columns) and their
 * collections (missing, vector names, kinds and sizes; alias = true on a
 * plain collection; create_params against the vector columns), creating a
 * missing collection when create_collections is set and its sizes are
 * known (with alias = true: <alias>_g1 and the alias, collection.h).  With
 * streaming (run, not the snapshot command) also what decides whether
 * changes arrive at all, with check-config's words: an existing
 * publication must publish insert, update, delete and truncate, include
 * each table, set publish_via_partition_root for a partitioned one; no
 * table may be UNLOGGED.  Server and slot are left to run; a missing
 * publication too (run creates it, or says why not).  qd: the caller's
 * client (borrowed); stop: seen while connecting.  Appends one message
 * per problem to problems and returns P2Q_OK (none), P2Q_ERR_CONFIG, or
 * P2Q_RETRY when a side could not be reached (retry rather than stop).
 * Logs nothing itself.
 */
p2q_status preflight_prepare(const p2q_config *cfg, qd_client *qd, bool streaming, volatile sig_atomic_t *stop,
                             strlist *problems);

#endif
