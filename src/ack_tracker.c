/*
 * ack_tracker.c — the FIFO of in-flight transactions (PROTOCOL.md §2.4).
 *
 * Entries live in a ring buffer; ticket i is at ring[(head + i - head_ticket)
 * % cap], so a ticket is found in O(1).  Only transactions that handed an
 * operation to the sink have an entry: the open transaction gets its entry
 * at its first operation (its ticket, head_ticket + count, was reserved at
 * Begin and does not change when older entries pop), and a transaction
 * that commits without one costs no entry (see ack_tracker.h).
 */
#include "ack_tracker.h"

#include <stdbool.h>
#include <stdlib.h>

#include "util.h"

typedef struct ack_entry {
    size_t pending;  /* operations handed to the sink, not yet acknowledged */
    bool committed;
    lsn_t end_lsn;
    lsn_t empty_end; /* end of the newest transaction without operations committed after this one */
} ack_entry;

struct ack_tracker {
    ack_entry *ring;
    size_t cap;
    size_t head;        /* index of the oldest entry */
    size_t count;
    ack_txn head_ticket; /* ticket of ring[head] */
    bool open;          /* a Begin was seen and not its Commit */
    ack_txn open_ticket; /* its ticket (head_ticket + count, or + count - 1 once it has an entry) */
    lsn_t confirmed;
    lsn_t keepalive;    /* newest keepalive walEnd seen while something was open or in flight */
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

/* txn's entry, or NULL when txn has none (unknown, popped, or without operations). */
static ack_entry *entry(ack_tracker *t, ack_txn txn)
{
    if (txn < t->head_ticket || txn - t->head_ticket >= t->count)
        return NULL;
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

static void raise_confirmed(ack_tracker *t, lsn_t lsn)
{
    if (lsn > t->confirmed)
        t->confirmed = lsn;
}

/* Pops the fully acknowledged, committed prefix. */
static void pop_done(ack_tracker *t)
{
    while (t->count > 0) {
        ack_entry *e = &t->ring[t->head];
        if (!e->committed || e->pending > 0)
            break;
        raise_confirmed(t, e->end_lsn);
        raise_confirmed(t, e->empty_end);
        t->head = (t->head + 1) % t->cap;
        t->count--;
        t->head_ticket++;
    }
    /* Everything received before that keepalive is acknowledged now: the
     * walsender, believing we have it (we report it as written), will not
     * send it again while idle. */
    if (t->count == 0 && !t->open)
        raise_confirmed(t, t->keepalive);
}

ack_txn ack_begin(ack_tracker *t)
{
    if (t->open) /* a Begin without Commit before it: the caller's protocol error */
        return ACK_NO_TXN;
    t->open = true;
    t->open_ticket = t->head_ticket + t->count;
    return t->open_ticket;
}

int ack_add_ops(ack_tracker *t, ack_txn txn, size_t n)
{
    ack_entry *e;

    if (!t->open || txn != t->open_ticket)
        return -1;
    if (n == 0)
        return 0;
    if (!(e = entry(t, txn))) { /* the first operation: the entry */
        if (t->count == t->cap)
            grow(t);
        e = &t->ring[(t->head + t->count) % t->cap];
        *e = (ack_entry){0};
        t->count++;
    }
    e->pending += n;
    return 0;
}

int ack_commit(ack_tracker *t, ack_txn txn, lsn_t end_lsn)
{
    ack_entry *e;

    if (!t->open || txn != t->open_ticket)
        return -1;
    t->open = false;
    if ((e = entry(t, txn))) {
        e->committed = true;
        e->end_lsn = end_lsn;
    } else if (t->count > 0) {
        /* Without operations, behind transactions still in flight: it is
         * confirmed with the newest of them (all before it acknowledged). */
        e = &t->ring[(t->head + t->count - 1) % t->cap];
        if (end_lsn > e->empty_end)
            e->empty_end = end_lsn;
    } else {
        raise_confirmed(t, end_lsn); /* nothing in flight: confirmed at once */
    }
    pop_done(t);
    return 0;
}

int ack_done_ops(ack_tracker *t, ack_txn txn, size_t n)
{
    ack_entry *e = entry(t, txn);

    if (!e || e->pending < n)
        return -1;
    e->pending -= n;
    pop_done(t);
    return 0;
}

void ack_keepalive(ack_tracker *t, lsn_t wal_end)
{
    if (t->count == 0 && !t->open)
        raise_confirmed(t, wal_end);
    else if (wal_end > t->keepalive)
        t->keepalive = wal_end;
}

void ack_reset_inflight(ack_tracker *t)
{
    /* Tickets handed out before (also the open one's) are never valid again. */
    ack_txn next = t->head_ticket + t->count;

    if (t->open && t->open_ticket >= next)
        next = t->open_ticket + 1;
    t->head_ticket = next;
    t->head = 0;
    t->count = 0;
    t->open = false;
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
