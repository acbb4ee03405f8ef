/*
 * sync_policy.c — the run loop's decisions (sync_policy.h).
 */
#include "sync_policy.h"

#include <string.h>

sync_next sync_after_session(p2q_status rc, bool stop_requested, p2q_status *result)
{
    if (rc == P2Q_ERR_FATAL || rc == P2Q_ERR_CONFIG) {
        *result = rc;
        return SYNC_NEXT_EXIT;
    }
    if (rc == P2Q_STOPPED || stop_requested) {
        *result = P2Q_STOPPED;
        return SYNC_NEXT_EXIT;
    }
    return rc == P2Q_STANDBY ? SYNC_NEXT_STANDBY : SYNC_NEXT_BACKOFF;
}

p2q_status sync_start_failure(const char *sqlstate, bool connection_ok)
{
    if (!connection_ok || strcmp(sqlstate, "55006") == 0 || strcmp(sqlstate, "57P03") == 0)
        return P2Q_RETRY;
    return P2Q_ERR_FATAL;
}

bool sync_status_due(int64_t since_last_ms, int64_t status_interval_ms, bool confirmed_moved)
{
    return since_last_ms >= status_interval_ms || (confirmed_moved && since_last_ms >= SYNC_ACK_SEND_MIN_GAP_MS);
}

int sync_poll_timeout_ms(int64_t until_status_ms, bool confirmed_moved, int64_t sink_wait_ms, bool burst_full)
{
    int64_t wait = until_status_ms;

    if (confirmed_moved && wait > SYNC_ACK_SEND_MIN_GAP_MS)
        wait = SYNC_ACK_SEND_MIN_GAP_MS;
    if (sink_wait_ms >= 0 && sink_wait_ms < wait)
        wait = sink_wait_ms;
    if (wait > SYNC_POLL_MAX_MS)
        wait = SYNC_POLL_MAX_MS;
    if (wait < 0 || burst_full)
        wait = 0;
    return (int)wait;
}
