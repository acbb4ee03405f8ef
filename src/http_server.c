/*
 * http_server.c — /livez, /readyz, /status, /metrics over libmicrohttpd.
 *
 * The listening socket is opened here (getaddrinfo, bind, listen) rather
 * than by libmicrohttpd, so a failure names the address and the system's
 * reason ("cannot listen on 127.0.0.1:9930: Address already in use").  The
 * daemon then runs its own polling thread over that socket; each request
 * takes a metrics snapshot (a copy under the store's mutex) and formats it.
 *
 * Slow clients (docs/endpoints.md "Slow clients"): a connection costs a
 * slot until it is closed, and libmicrohttpd's timeout only counts idle
 * time (each byte received restarts it), so a client dribbling a header
 * holds its slot for ever.  What keeps /livez answering is that one peer
 * address holds at most HTTP_PER_IP_LIMIT slots while the total is far
 * above that (HTTP_CONNECTION_LIMIT, or a quarter of the descriptor limit);
 * the idle timeout is short and a connection's memory pool small.  The
 * polling thread uses epoll (MHD_USE_AUTO on Linux), so idle connections
 * cost no time; requests are answered from memory in microseconds, so one
 * thread serves them all (a thread pool would add nothing but threads).
 */
#include "http_server.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define HTTP_CONNECTION_LIMIT 256     /* total, lowered to a quarter of RLIMIT_NOFILE */
#define HTTP_PER_IP_LIMIT 16          /* per peer address */
#define HTTP_CONNECTION_TIMEOUT_S 5   /* idle time before a connection is closed */
#define HTTP_CONNECTION_MEMORY 8192   /* per-connection pool: request line, headers, reply headers */
#define HTTP_LOG_GAP_S 60             /* libmicrohttpd's complaints: one line a minute at most */

struct http_server {
    struct MHD_Daemon *daemon;
    p2q_metrics *metrics; /* borrowed */
    int64_t live_bound_ms;
    unsigned port;
};

static const int sync_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
static const char *const paths[] = {"/livez", "/readyz", "/status", "/metrics"};

/*
 * libmicrohttpd's own complaints (accept failures, connections refused at a
 * limit).  A flood of clients would turn them into a flood of log lines, so
 * at most one is logged per HTTP_LOG_GAP_S, with the number left out since
 * the last one.  Called by the polling thread only.
 */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    static time_t last;
    static unsigned long suppressed;
    struct timespec now;
    char msg[512], more[24];
    size_t n;

    (void)cls;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (last != 0 && now.tv_sec - last < HTTP_LOG_GAP_S) {
        suppressed++;
        return;
    }
    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    snprintf(more, sizeof more, "%lu", suppressed);
    log_warn("endpoint server", "error", msg, suppressed ? "similar_since_last" : NULL, more, NULL);
    last = now.tv_sec > 0 ? now.tv_sec : 1;
    suppressed = 0;
}

/* HTTP_CONNECTION_LIMIT, or a quarter of the soft descriptor limit when
 * that is lower, so the endpoint server cannot take the descriptors the
 * PostgreSQL and Qdrant connections need. */
static unsigned connection_limit(void)
{
    struct rlimit rl;
    unsigned limit = HTTP_CONNECTION_LIMIT;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < limit)
        limit = rl.rlim_cur / 4 > HTTP_PER_IP_LIMIT ? (unsigned)(rl.rlim_cur / 4) : HTTP_PER_IP_LIMIT;
    return limit;
}

/* Queues status + body (taken from b) with content type ctype. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype, buf *b)
{
    size_t len = b->len;
    char *data = buf_steal(b);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result rc;

    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    http_server *s = cls;
    const char *text = "text/plain; charset=utf-8";
    metrics_snap snap;
    buf b;
    unsigned status = MHD_HTTP_OK;
    int which = -1;
    enum MHD_Result rc;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    for (int i = 0; i < (int)(sizeof paths / sizeof paths[0]); i++)
        if (strcmp(url, paths[i]) == 0)
            which = i;
    buf_init(&b);
    if (which < 0) {
        buf_puts(&b, "not found: try /livez, /readyz, /status or /metrics\n");
        return reply(conn, MHD_HTTP_NOT_FOUND, text, &b);
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        buf_puts(&b, "method not allowed: GET only\n");
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, &b);
    }

    metrics_snapshot(s->metrics, &snap);
    switch (which) {
    case 0: /* /livez */
        if (metrics_live(&snap, s->live_bound_ms)) {
            buf_puts(&b, "ok\n");
        } else {
            status = MHD_HTTP_SERVICE_UNAVAILABLE;
            buf_printf(&b, "main loop stalled: no heartbeat for %lld ms (bound %lld ms)\n",
                       (long long)snap.heartbeat_age_ms, (long long)s->live_bound_ms);
        }
        break;
    case 1: /* /readyz */
        if (metrics_ready(&snap, &b)) {
            buf_puts(&b, "ok\n");
        } else {
            status = MHD_HTTP_SERVICE_UNAVAILABLE;
            buf_putc(&b, '\n');
        }
        break;
    case 2:
        metrics_render_status(&snap, &b);
        text = "application/json";
        break;
    default:
        metrics_render_prometheus(&snap, &b);
        text = "text/plain; version=0.0.4; charset=utf-8";
        break;
    }
    metrics_snap_free(&snap);
    rc = reply(conn, status, text, &b);
    buf_free(&b);
    return rc;
}

/* Splits "HOST:PORT" / "[V6]:PORT" into host and port (both into caller buffers). */
static int split_listen(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon, *h = addr;
    size_t hl;

    if (*addr == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':')
            return -1;
        h = addr + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - h);
    }
    if (hl == 0 || hl >= hostlen || strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

/* A bound, listening, non-blocking socket for addr, or -1 with err set. */
static int open_listener(const char *addr, bool *v6, unsigned *bound_port, char *err, size_t errlen)
{
    char host[256], port[16];
    struct addrinfo hints, *res = NULL;
    int fd = -1, gai, saved = 0;

    if (split_listen(addr, host, sizeof host, port, sizeof port) != 0) {
        snprintf(err, errlen, "cannot listen on '%s': expected HOST:PORT or [IPv6]:PORT", addr);
        goto cleanup;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((gai = getaddrinfo(host, port, &hints, &res)) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, gai_strerror(gai));
        goto cleanup;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;

            *v6 = ai->ai_family == AF_INET6;
            *bound_port = 0;
            if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
                *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
            goto cleanup;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(saved ? saved : EADDRNOTAVAIL));
cleanup:
    if (res)
        freeaddrinfo(res);
    return fd;
}

int http_start(const char *addr, p2q_metrics *m, int64_t live_bound_ms, http_server **out, char *err,
               size_t errlen)
{
    http_server *s = NULL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    sigset_t block, old;
    bool v6 = false;
    unsigned port = 0;
    int fd, rc = -1;

    *out = NULL;
    if ((fd = open_listener(addr, &v6, &port, err, errlen)) < 0)
        goto cleanup;
    s = xcalloc(1, sizeof *s);
    s->metrics = m;
    s->live_bound_ms = live_bound_ms;
    s->port = port;
    if (v6)
        flags |= MHD_USE_IPv6;
    /* The server thread inherits this mask: SIGTERM/SIGINT go to the sync
     * thread, whose poll() they interrupt. */
    sigfillset(&block);
    for (size_t i = 0; i < sizeof sync_signals / sizeof sync_signals[0]; i++)
        sigdelset(&block, sync_signals[i]); /* faults stay deliverable to the thread that causes them */
    pthread_sigmask(SIG_BLOCK, &block, &old);
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
                                 MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
                                 connection_limit(), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                 (unsigned)HTTP_PER_IP_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)HTTP_CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                 (size_t)HTTP_CONNECTION_MEMORY, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s: the HTTP server did not start", addr);
        close(fd);
        goto cleanup;
    }
    *out = s;
    s = NULL;
    rc = 0;
cleanup:
    free(s);
    return rc;
}

void http_stop(http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}

unsigned http_port(const http_server *s)
{
    return s ? s->port : 0;
}
