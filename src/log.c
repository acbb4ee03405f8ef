/*
 * log.c — one event per line on stderr, logfmt or JSON (SPEC §8).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "util.h"

static log_level min_level = LOG_INFO;
static bool as_json = false;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_setup(log_level lvl, bool json)
{
    min_level = lvl;
    as_json = json;
}

int log_parse_level(const char *s, log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -1;
}

bool log_enabled(log_level lvl)
{
    return lvl >= min_level;
}

/* logfmt value: bare when it has no space, quote, '=' or control char. */
static void put_logfmt_value(buf *b, const char *v)
{
    bool quote = (*v == '\0');

    for (const char *p = v; *p && !quote; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=' || *p == '\\')
            quote = true;
    if (quote)
        buf_json_str(b, v, strlen(v));
    else
        buf_puts(b, v);
}

const char *log_timestamp(char *out, size_t outlen)
{
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
    return out;
}

void log_event(log_level lvl, const char *msg, ...)
{
    char ts[64];
    buf b;
    va_list ap;
    const char *k;

    if (lvl < min_level)
        return;
    log_timestamp(ts, sizeof ts);

    buf_init(&b);
    if (as_json) {
        buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[lvl]);
        buf_json_str(&b, msg, strlen(msg));
    } else {
        buf_printf(&b, "ts=%s level=%s msg=", ts, level_names[lvl]);
        buf_json_str(&b, msg, strlen(msg));
    }
    va_start(ap, msg);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        if (!v)
            v = "";
        if (as_json) {
            buf_putc(&b, ',');
            buf_json_str(&b, k, strlen(k));
            buf_putc(&b, ':');
            buf_json_str(&b, v, strlen(v));
        } else {
            buf_printf(&b, " %s=", k);
            put_logfmt_value(&b, v);
        }
    }
    va_end(ap);
    buf_puts(&b, as_json ? "}\n" : "\n");
    fwrite(b.data, 1, b.len, stderr);
    fflush(stderr);
    buf_free(&b);
}
