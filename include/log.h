/*
 * log.h — structured logging to stderr (SPEC §8).
 *
 * One event per line, logfmt by default:
 *     ts=2026-11-22T10:00:00.123Z level=info msg="slot created" slot=pg2qdrant
 * or JSON lines with log_setup(..., true).  Fields are given as key, value
 * string pairs terminated by NULL:
 *     log_info("slot created", "slot", name, NULL);
 * A NULL value prints as an empty string.  Secrets must never be passed.
 */
#ifndef P2Q_LOG_H
#define P2Q_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

void log_setup(log_level min_level, bool json);
/* "debug|info|warn|error" -> level; 0 ok, -1 unknown. */
int log_parse_level(const char *s, log_level *out);
bool log_enabled(log_level lvl);

void log_event(log_level lvl, const char *msg, ...) __attribute__((sentinel));
/* The current time as the logs print it (2026-11-22T10:00:00.123Z) into out. */
const char *log_timestamp(char *out, size_t outlen);
#define log_debug(...) log_event(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_event(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_event(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_event(LOG_ERROR, __VA_ARGS__)

#endif
