/*
 * status.h — the one result type of the engine's functions (preflight,
 * sync, snapshot, reconcile, sink, the connection helper of replication.h).
 * Each value says what the caller does next; the error itself is logged
 * once where it is found.  main.c alone turns a status into an exit code
 * (SPEC §1), per command.  Pure modules (pgoutput, ack_tracker, ...) keep
 * their plain 0 / -1 with an error buffer.
 */
#ifndef P2Q_STATUS_H
#define P2Q_STATUS_H

typedef enum {
    P2Q_OK = 0,          /* done: go on */
    P2Q_ERR_FATAL = -1,  /* a runtime error (logged): stop; the process exits 1 */
    P2Q_ERR_CONFIG = -2, /* the configuration cannot apply (logged): stop; the process exits 2 */
    P2Q_STOPPED = -3,    /* *stop was set (SIGTERM/SIGINT) or a deadline passed: wind down, nothing is wrong */
    P2Q_RETRY = -4,      /* a side cannot be reached or the connection dropped: reconnect after a backoff */
    P2Q_STANDBY = -5,    /* the server is a standby: connect again in a few seconds, without backoff */
} p2q_status;

#endif
