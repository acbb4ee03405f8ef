/*
 * check_config.h — `pg2qdrant check-config` (SPEC §1): checks a loaded
 * configuration against the live PostgreSQL and Qdrant (preflight.h) and
 * prints every problem found (docs/check-config.md lists each check and
 * its fix).
 */
#ifndef P2Q_CHECK_CONFIG_H
#define P2Q_CHECK_CONFIG_H

#include "config.h"
#include "status.h"

/* Prints the notes and "configuration OK" to stdout, each problem and their
 * count to stderr.  Returns P2Q_OK (all good) or P2Q_ERR_CONFIG (problems found). */
p2q_status check_config_command(const p2q_config *cfg);

#endif
