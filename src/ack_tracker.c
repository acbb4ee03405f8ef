/*
 * ack_tracker.c — the FIFO of in-flight transactions (PROTOCOL.md §2.4).
 *
 * Entries live in a ring buffer; ticket i is at ring[(head + i - head_ticket)
 * % cap], so a ticket is found in O(1).
 */
#include "ack_tracker.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util.h"

typedef struct ack_entry {
    size_t pending;  /* operations handed to the sink, not yet acknowledged */
    bool committed;
    lsn_t end_lsn;
} ack_entry;

struct ack_tracker {
    ack_entry *ring;
    size_t cap;
    size_t head;        /* index of the oldest entry */
    size_t count;
    ack_txn head_ticket; /* ticket of ring[head] */
    lsn_t confirmed;
    lsn_t keepalive;    /* newest keepalive walEnd seen while something was in flight */
};

ack_tracker *ack_new(void)
{
    ack_tracker *t = xcalloc(1, sizeof *t);

    t->cap = 16;
    t->ring = xcalloc(t->cap, sizeof(ack_entry));
    t->head_ticket = 1;
    return t;
}

void ack_free(ack_tracker *t)
{
    if (!t)
        return;
    free(t->ring);
    free(t);
}

void ack_seed(ack_tracker *t, lsn_t confirmed)
{
    if (confirmed > t->confirmed)
        t->confirmed = confirmed;
}

static ack_entry *entry(ack_tracker *t, ack_txn txn)
{
    assert(txn >= t->head_ticket && txn - t->head_ticket < t->count);
    return &t->ring[(t->head + (size_t)(txn - t->head_ticket)) % t->cap];
}

static void grow(ack_tracker *t)
{
    ack_entry *ring = xcalloc(t->cap * 2, sizeof(ack_entry));

    for (size_t i = 0; i < t->count; i++)
        ring[i] = t->ring[(t->head + i) % t->cap];
    free(t->ring);
    t->ring = ring;
    t->head = 0;
    t->cap *= 2;
}

/* Pops the fully acknowledged, committed prefix. */
static void pop_done(ack_tracker *t)
{
    while (t->count > 0) {
        ack_entry *e = &t->ring[t->head];
        if (!e->committed || e->pending > 0)
            break;
        if (e->end_lsn > t->confirmed)
            t->confirmed = e->end_lsn;
        t->head = (t->head + 1) % t->cap;
        t->count--;
        t->head_ticket++;
    }
    /* Everything received before that keepalive is acknowledged now: the
     * walsender, believing we have it (we report it as written), will not
     * send it again while idle. */
    if (t->count == 0 && t->keepalive > t->confirmed)
        t->confirmed = t->keepalive;
}

ack_txn ack_begin(ack_tracker *t)
{
    ack_entry *e;

    if (t->count == t->cap)
        grow(t);
    e = &t->ring[(t->head + t->count) % t->cap];
    e->pending = 0;
    e->committed = false;
    e->end_lsn = LSN_INVALID;
    t->count++;
    return t->head_ticket + t->count - 1;
}

void ack_add_ops(ack_tracker *t, ack_txn txn, size_t n)
{
    entry(t, txn)->pending += n;
}

void ack_commit(ack_tracker *t, ack_txn txn, lsn_t end_lsn)
{
    ack_entry *e = entry(t, txn);

    e->committed = true;
    e->end_lsn = end_lsn;
    pop_done(t);
}

void ack_done_ops(ack_tracker *t, ack_txn txn, size_t n)
{
    ack_entry *e = entry(t, txn);

    assert(e->pending >= n);
    e->pending -= n;
    pop_done(t);
}

void ack_keepalive(ack_tracker *t, lsn_t wal_end)
{
    if (t->count == 0 && wal_end > t->confirmed)
        t->confirmed = wal_end;
    else if (t->count > 0 && wal_end > t->keepalive)
        t->keepalive = wal_end;
}

void ack_reset_inflight(ack_tracker *t)
{
    t->head_ticket += t->count;
    t->head = 0;
    t->count = 0;
    t->keepalive = LSN_INVALID; /* the transactions before it come again */
}

lsn_t ack_confirmed(const ack_tracker *t)
{
    return t->confirmed;
}

size_t ack_inflight_txns(const ack_tracker *t)
{
    return t->count;
}
