/*
 * sync.h — `pg2qdrant run`: the replication loop that turns a logical slot
 * into Qdrant writes.
 *
 * One thread, one poll over the PostgreSQL socket with a deadline for the
 * next forced status update, PQgetCopyData, dispatch on the first byte
 * (pg_recvlogical's shape).  Operations are pushed to the sink as they are
 * decoded and sent in batches while the stream goes on (sink.h); the
 * position confirmed to PostgreSQL is the end_lsn of the newest transaction
 * that Qdrant acknowledged along with everything before it (ack_tracker.h).
 */
#ifndef P2Q_SYNC_H
#define P2Q_SYNC_H

#include <signal.h>

#include "config.h"
#include "metrics.h"
#include "status.h"

/*
 * Streams until *stop becomes non-zero (set by the SIGTERM/SIGINT handler)
 * or a fatal error.  Reconnects with capped backoff when the connection
 * drops.  Returns P2Q_STOPPED (a clean stop), P2Q_ERR_FATAL or
 * P2Q_ERR_CONFIG; the error is logged here.  metrics (borrowed; NULL:
 * none) receives state, positions and counters for the endpoint server.
 */
p2q_status sync_run(const p2q_config *cfg, volatile sig_atomic_t *stop, p2q_metrics *metrics);

#endif
