/*
 * check_config.h — `pg2qdrant check-config` (SPEC §1): checks a loaded
 * configuration against the live PostgreSQL and Qdrant and lists every
 * problem found (docs/check-config.md lists each check and its fix).
 */
#ifndef P2Q_CHECK_CONFIG_H
#define P2Q_CHECK_CONFIG_H

#include <stdbool.h>

#include "config.h"
#include "qdrant_client.h"

/* Checks cfg against the live PostgreSQL (a normal, non-replication connection from
 * cfg->source.dsn) and Qdrant. Appends one message per problem to problems (strlist from
 * config.h); returns the number of problems (0 = all good). Logs nothing itself.
 * Messages never contain the password of the DSN or the Qdrant API key. */
int check_config_run(const p2q_config *cfg, strlist *problems);

/*
 * What `run` checks before it streams: the configured tables (existence,
 * keys, replica identity, vector columns) and their collections (missing,
 * vector names, kinds and sizes), creating a missing collection when
 * create_collections is set and its sizes are known.  Server, publication
 * and slot are left to run.  qd: the sync's client (borrowed).  Returns the
 * number of problems appended; *transient tells that a side could not be
 * reached, so the caller should retry rather than stop.
 */
int check_config_prepare_run(const p2q_config *cfg, qd_client *qd, strlist *problems, bool *transient);

#endif
