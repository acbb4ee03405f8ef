/*
 * lsn.h — PostgreSQL WAL positions (XLogRecPtr) and timestamps.
 */
#ifndef P2Q_LSN_H
#define P2Q_LSN_H

#include <stdint.h>

typedef uint64_t lsn_t;
#define LSN_INVALID ((lsn_t)0)
#define LSN_BUFSZ 24

/* Formats as "%X/%X" into out (LSN_BUFSZ bytes); returns out. */
char *lsn_fmt(lsn_t lsn, char out[LSN_BUFSZ]);
/* Parses "%X/%X"; 0 on success, -1 on malformed input. */
int lsn_parse(const char *s, lsn_t *out);

/* Microseconds since 2000-01-01 00:00:00 UTC, the replication protocol's clock. */
int64_t pg_now_us(void);
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)

#endif
