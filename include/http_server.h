/*
 * http_server.h — the endpoint server of SPEC §6 ([http] listen).
 *
 *   GET /livez    200 "ok" while the sync loop's heartbeat is at most
 *                 live_bound_ms old, else 503 naming the stall
 *   GET /readyz   200 "ok" when ready (metrics_ready), else 503 with the reason
 *   GET /status   the JSON of metrics_render_status
 *   GET /metrics  Prometheus text format 0.0.4 (metrics_render_prometheus)
 *
 * GET and HEAD only (405 with Allow otherwise); any other path is 404.
 * libmicrohttpd runs with MHD_USE_INTERNAL_POLLING_THREAD (epoll): one extra
 * thread that serves every connection and only reads the mutex-protected
 * metrics store.  At most 16 connections per peer address, 256 in all (or a
 * quarter of RLIMIT_NOFILE), closed after 5 s idle: slow clients from one
 * address cannot starve a probe from another (docs/endpoints.md).  Nothing it answers comes from the configuration except the slot
 * name, so no secret can reach a response.
 */
#ifndef P2Q_HTTP_SERVER_H
#define P2Q_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

typedef struct http_server http_server;

/*
 * Listens on addr ("HOST:PORT" or "[IPv6]:PORT", as config.c accepts) and
 * starts serving.  m is borrowed and must outlive the server.  Returns 0
 * with *out (caller stops it with http_stop), or -1 with a message naming
 * the address in err (not logged here).
 */
int http_start(const char *addr, p2q_metrics *m, int64_t live_bound_ms, http_server **out, char *err,
               size_t errlen);

/* Stops serving, closes the socket and frees s (NULL: nothing). */
void http_stop(http_server *s);

/* The port actually bound (useful when listen asked for a free one). */
unsigned http_port(const http_server *s);

#endif
