/*
 * txgen — single-statement transactions at a steady rate, for bench_latency.py.
 *
 *   txgen CONNINFO RATE SECONDS FIRST_ID SQL
 *
 * Sends SQL (one statement with one parameter, $1 = FIRST_ID, FIRST_ID+1,
 * ...) RATE times a second for SECONDS seconds on one connection, each in
 * its own implicit transaction (libpq pipeline mode, a Sync after every
 * statement), so the rate does not depend on the round trip.  Transaction
 * k is due at start + k/RATE; the program sends whatever is due, never
 * ahead of time, with at most MAX_OUTSTANDING transactions unanswered.
 * Prints one JSON object: the transactions committed, the rate achieved
 * (committed / time from the first send to the last answer) and how far
 * sending fell behind the schedule at worst.
 *
 * Build: cc -O2 -o txgen txgen.c $(pkg-config --cflags --libs libpq)
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_OUTSTANDING 2000

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(PGconn *c, const char *what)
{
    fprintf(stderr, "txgen: %s: %s", what, c ? PQerrorMessage(c) : "\n");
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: txgen CONNINFO RATE SECONDS FIRST_ID SQL\n");
        return 2;
    }
    double rate = atof(argv[2]), seconds = atof(argv[3]);
    long long first = atoll(argv[4]);
    const char *sql = argv[5];
    int64_t total = (int64_t)(rate * seconds + 0.5), sent = 0, done = 0, worst_lag_ns = 0;
    if (rate <= 0 || total <= 0) {
        fprintf(stderr, "txgen: RATE and SECONDS must be positive\n");
        return 2;
    }
    PGconn *c = PQconnectdb(argv[1]);
    if (PQstatus(c) != CONNECTION_OK)
        die(c, "connect");
    PGresult *prep = PQprepare(c, "tx", sql, 1, NULL);
    if (PQresultStatus(prep) != PGRES_COMMAND_OK)
        die(c, "prepare");
    PQclear(prep);
    if (PQsetnonblocking(c, 1) != 0 || PQenterPipelineMode(c) != 1)
        die(c, "pipeline mode");

    int64_t start = now_ns(), last_answer = start;
    double interval_ns = 1e9 / rate;
    while (done < total) {
        int64_t now = now_ns();
        int64_t due = (int64_t)((double)(now - start) / interval_ns) + 1;
        if (due > total)
            due = total;
        while (sent < due && sent - done < MAX_OUTSTANDING) {
            char id[32];
            const char *vals[1] = {id};
            int64_t lag = now - (start + (int64_t)((double)sent * interval_ns));
            if (lag > worst_lag_ns)
                worst_lag_ns = lag;
            snprintf(id, sizeof id, "%lld", first + (long long)sent);
            if (PQsendQueryPrepared(c, "tx", 1, vals, NULL, NULL, 0) != 1 || PQpipelineSync(c) != 1)
                die(c, "send");
            sent++;
        }
        int flushing = PQflush(c);
        if (flushing < 0)
            die(c, "flush");
        int64_t next = sent < total ? start + (int64_t)((double)sent * interval_ns) : now + 100000000LL;
        int timeout_ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
        if (sent - done >= MAX_OUTSTANDING)
            timeout_ms = 100;
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN | (flushing ? POLLOUT : 0)};
        if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
            die(NULL, "poll");
        if (!(pfd.revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        if (PQconsumeInput(c) != 1)
            die(c, "read");
        int nulls = 0;
        while (!PQisBusy(c)) {
            PGresult *r = PQgetResult(c);
            if (!r) {
                if (++nulls > 1 || done == sent)
                    break;
                continue;
            }
            nulls = 0;
            switch (PQresultStatus(r)) {
            case PGRES_PIPELINE_SYNC:
                done++;
                last_answer = now_ns();
                break;
            case PGRES_COMMAND_OK:
            case PGRES_TUPLES_OK:
                break;
            default:
                fprintf(stderr, "txgen: transaction %" PRId64 " failed: %s", done, PQresultErrorMessage(r));
                exit(1);
            }
            PQclear(r);
        }
    }
    double elapsed = (double)(last_answer - start) / 1e9;
    printf("{\"committed\":%" PRId64 ",\"seconds\":%.3f,\"target_rate\":%.1f,\"achieved_rate\":%.1f,"
           "\"worst_send_lag_ms\":%.2f}\n",
           done, elapsed, rate, elapsed > 0 ? (double)done / elapsed : 0.0, (double)worst_lag_ns / 1e6);
    PQexitPipelineMode(c);
    PQfinish(c);
    return 0;
}
