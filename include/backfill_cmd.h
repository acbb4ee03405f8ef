/*
 * backfill_cmd.h — `pg2qdrant backfill [--table T]... [--wait] [--timeout DUR]`
 * (SPEC §1, §9; docs/backfill.md): writes the request message into the
 * WAL and, with --wait, follows the `run`'s /status until it is done.
 */
#ifndef P2Q_BACKFILL_CMD_H
#define P2Q_BACKFILL_CMD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "status.h"

/*
 * tables[0..ntables): "schema.name" or "name" (public); none: every
 * configured table.  timeout_ms: for --wait, 0 = none.  Returns P2Q_OK
 * (requested; with wait: done), P2Q_ERR_CONFIG (a table not configured,
 * --wait without [http] listen; logged), P2Q_ERR_FATAL (cannot write the
 * request, the backfill failed, or the timeout passed) or P2Q_STOPPED.
 */
p2q_status bf_command(const p2q_config *cfg, char *const *tables, int ntables, bool wait, int64_t timeout_ms,
                      volatile sig_atomic_t *stop);

/*
 * Follows the /status of [http] listen (set) until every one of ids[0..nids)
 * shows up in backfill.finished (also for reconcile --fix with an active
 * slot).  timeout_ms 0: none.  Returns P2Q_OK (all done), P2Q_ERR_FATAL (one
 * failed, or the timeout passed; logged) or P2Q_STOPPED.
 */
p2q_status bf_wait_done(const p2q_config *cfg, const char *const *ids, int nids, int64_t timeout_ms,
                        volatile sig_atomic_t *stop);

/*
 * `pg2qdrant rebuild --table T... [--wait] [--timeout DUR]` (SPEC §10,
 * docs/rebuild.md): checks that each table's collection is a Qdrant alias
 * (else P2Q_ERR_CONFIG with the steps to move it behind one, logged),
 * writes {"type":"rebuild",...} into the WAL and prints its id; with wait,
 * follows /status "rebuild" until it is finished.  Returns as bf_command.
 */
p2q_status rb_command(const p2q_config *cfg, char *const *tables, int ntables, bool wait, int64_t timeout_ms,
                      volatile sig_atomic_t *stop);

#endif
