/*
 * lsn.c — WAL positions and the replication protocol's clock.
 */
#include "lsn.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

char *lsn_fmt(lsn_t lsn, char out[LSN_BUFSZ])
{
    snprintf(out, LSN_BUFSZ, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xFFFFFFFFu));
    return out;
}

int lsn_parse(const char *s, lsn_t *out)
{
    unsigned hi, lo;
    int n = 0;

    if (!s || sscanf(s, "%X/%X%n", &hi, &lo, &n) != 2 || s[n] != '\0')
        return -1;
    *out = ((lsn_t)hi << 32) | lo;
    return 0;
}

int64_t pg_now_us(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec - PG_EPOCH_OFFSET_US;
}
