/*
 * check_config.h — `pg2qdrant check-config` (SPEC §1): checks a loaded
 * configuration against the live PostgreSQL and Qdrant and lists every
 * problem found (docs/check-config.md lists each check and its fix).
 */
#ifndef P2Q_CHECK_CONFIG_H
#define P2Q_CHECK_CONFIG_H

#include "config.h"

/* Checks cfg against the live PostgreSQL (a normal, non-replication connection from
 * cfg->source.dsn) and Qdrant. Appends one message per problem to problems (strlist from
 * config.h); returns the number of problems (0 = all good). Logs nothing itself.
 * Messages never contain the password of the DSN or the Qdrant API key. */
int check_config_run(const p2q_config *cfg, strlist *problems);

#endif
