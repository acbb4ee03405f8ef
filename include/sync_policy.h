/*
 * sync_policy.h — the run loop's decisions, as pure functions: what to do
 * after a session ended, when a failed START_REPLICATION is worth a retry,
 * when a standby status update is due and how long the loop's poll may
 * wait.  sync.c acts on them; test/unit/test_sync_policy.c pins them.
 * No I/O, no clock: times come in as arguments.
 */
#ifndef P2Q_SYNC_POLICY_H
#define P2Q_SYNC_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

/* A standby: connect again after this long (no backoff: it may be promoted any time). */
#define SYNC_STANDBY_RECHECK_MS 5000
/* After the confirmed position moved, the status update that tells it waits at least this long
 * after the previous one (so a burst of acknowledgements costs one message, not one each: at most
 * 50 small messages a second).  Short, because what the slot has not been told is read again
 * after a crash: a backfill at 100,000 rows/s re-read 0.4x its table with 100 ms. */
#define SYNC_ACK_SEND_MIN_GAP_MS 20
/* The poll never sleeps longer than this, so a signal is noticed soon. */
#define SYNC_POLL_MAX_MS 1000

typedef enum {
    SYNC_NEXT_EXIT,    /* sync_run returns *result */
    SYNC_NEXT_BACKOFF, /* reconnect after backoff_jitter_ms(attempt) */
    SYNC_NEXT_STANDBY, /* reconnect after SYNC_STANDBY_RECHECK_MS */
} sync_next;

/*
 * A session ended with rc (stop_requested: *stop was set).  P2Q_STOPPED, or
 * any end once a stop was requested, exits with P2Q_STOPPED; P2Q_ERR_FATAL
 * and P2Q_ERR_CONFIG exit with themselves; P2Q_STANDBY waits for a
 * promotion; anything else (P2Q_RETRY: connection lost, slot busy, a side
 * unreachable) reconnects with backoff.  *result is set for SYNC_NEXT_EXIT.
 */
sync_next sync_after_session(p2q_status rc, bool stop_requested, p2q_status *result);

/*
 * START_REPLICATION failed with sqlstate ("" when none).  P2Q_RETRY when
 * the slot is active for another process (55006), the server is starting
 * up (57P03) or the connection was lost meanwhile (connection_ok false:
 * the server restarting); P2Q_ERR_FATAL otherwise.
 */
p2q_status sync_start_failure(const char *sqlstate, bool connection_ok);

/*
 * A standby status update is due since_last_ms after the previous one:
 * when status_interval_ms passed, or when the confirmed position moved
 * since (confirmed_moved) and SYNC_ACK_SEND_MIN_GAP_MS passed.  (A
 * keepalive that asks for a reply is answered at once, whatever this says.)
 */
bool sync_status_due(int64_t since_last_ms, int64_t status_interval_ms, bool confirmed_moved);

/*
 * The loop's poll timeout: until the next status update is due
 * (until_status_ms, may be negative: overdue), sooner when the confirmed
 * position moved (SYNC_ACK_SEND_MIN_GAP_MS) or the sink needs a turn
 * (sink_wait_ms, -1: it waits for nothing), at most SYNC_POLL_MAX_MS;
 * 0 when overdue or when the last read burst was cut short (burst_full:
 * more is waiting in libpq's buffer).
 */
int sync_poll_timeout_ms(int64_t until_status_ms, bool confirmed_moved, int64_t sink_wait_ms, bool burst_full);

#endif
