/*
 * util.h — allocation helpers and a growable byte buffer.
 *
 * Allocation failure is not recoverable for pg2qdrant (the slot simply stays
 * where it is), so every x* helper aborts with a message on ENOMEM instead of
 * returning NULL.  This keeps every caller free of out-of-memory branches.
 */
#ifndef P2Q_UTIL_H
#define P2Q_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Returns a malloc'd copy; NULL in gives NULL out. Caller frees. */
char *xstrdup(const char *s);
/* Copies n bytes and NUL-terminates. Caller frees. */
char *xstrndup(const char *s, size_t n);
/* printf into a new malloc'd string. Caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap);

/* A growable buffer.  data is always NUL-terminated (when cap > 0) so it
 * can be used as a C string; len excludes the terminator.  The struct is
 * caller-owned; buf_free releases data. */
typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf;

void buf_init(buf *b);
void buf_free(buf *b);
void buf_reset(buf *b);                 /* len = 0, keeps the allocation */
void buf_reserve(buf *b, size_t extra); /* room for extra more bytes + NUL */
void buf_append(buf *b, const void *p, size_t n);
void buf_puts(buf *b, const char *s);
void buf_putc(buf *b, char c);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf *b, const char *fmt, va_list ap);
/* Appends s[0..n) as a JSON string literal: quotes, escapes for '"', '\\'
 * and control characters (\n \r \t \b \f and \u00XX).  Bytes >= 0x80 are
 * copied as they are: text from PostgreSQL is UTF-8 (every connection sets
 * client_encoding = UTF8 and a SQL_ASCII database is refused: repl_open in
 * replication.c). */
void buf_json_str(buf *b, const char *s, size_t n);
/* Takes ownership of the data: returns it (never NULL) and re-inits b. */
char *buf_steal(buf *b);

/* snprintf whose truncation never splits a UTF-8 character: when the text
 * does not fit, an incomplete multi-byte sequence at the cut is dropped.
 * Returns what snprintf returns. */
int snprintf_utf8(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The largest k <= n such that s[0..k) does not end inside a UTF-8
 * multi-byte sequence (bytes that are not UTF-8 count as characters of
 * their own). */
size_t utf8_cut(const char *s, size_t n);

/*
 * Number tokens of a JSON text (outside strings) that a plain parser
 * cannot hold exactly (docs/reconcile.md, docs/mapping.md):
 *   JSON_NUM_FIT       an integer in int64 range, or a real within double range
 *   JSON_NUM_U64       an integer in (INT64_MAX, UINT64_MAX]
 *   JSON_NUM_BIG_INT   an integer beyond those ranges, within double range
 *   JSON_NUM_OVERFLOW  beyond double range (e.g. 1e400, a 400-digit integer)
 */
typedef enum { JSON_NUM_FIT, JSON_NUM_U64, JSON_NUM_BIG_INT, JSON_NUM_OVERFLOW } json_num_class;
json_num_class json_number_class(const char *tok, size_t n);

/*
 * Copies the JSON text in[0..n) to out, each number token replaced by
 * rewrite(tok, len, class, out) when its class is not JSON_NUM_FIT (the
 * callback appends the replacement).  Returns false, leaving out
 * untouched, when no token needed it.  The text is not validated: a
 * malformed text is copied as it is for the parser to refuse.
 */
bool json_rewrite_numbers(const char *in, size_t n, buf *out,
                          void (*rewrite)(const char *tok, size_t len, json_num_class cls, buf *out));

/* The first line of m (NULL: "") into out, at most outlen - 1 bytes (libpq's
 * messages: the first line is the error, the rest DETAIL/HINT).  Returns out. */
const char *str_first_line(const char *m, char *out, size_t outlen);
/* m on one line: each run of line breaks and tabs (libpq's DETAIL/HINT lines
 * and their tab indentation) becomes one space, trailing space is cut (NULL:
 * "").  Caller frees. */
char *str_one_line(const char *m);

/* Appends s as a double-quoted SQL identifier ('"' doubled); quote_ident
 * returns it as a new string (caller frees).  For the replication commands
 * and the SELECTs built from configured names (which take no parameters). */
void buf_quote_ident(buf *b, const char *s);
char *quote_ident(const char *s);

/* The value of the hex digit c (either case), or -1. */
int hex_digit(int c);

/* Overwrites n bytes of p with zeros in a way the compiler keeps (secrets). */
void wipe(void *p, size_t n);

/* msg with every occurrence of secret (NULL or "": none) replaced by
 * ********.  Takes ownership of msg (malloc'd) and returns the result. */
char *str_mask_secret(char *msg, const char *secret);

/*
 * A counting set of nonzero 64-bit keys (the sink's points in flight): each
 * key has a count, added by keyset_add and taken by keyset_del; a key
 * whose count drops to 0 leaves, so the set holds only keys with a count.
 * Open addressing with linear probing, at most half full, backward-shift
 * deletion.  Zero-initialise; keyset_free releases.  Key 0 is not allowed.
 */
typedef struct keyset {
    uint64_t *slots; /* key, count pairs; key 0 = empty */
    size_t cap;      /* pairs, a power of two (0 before the first add) */
    size_t n;        /* keys in the set */
} keyset;

void keyset_add(keyset *k, uint64_t key);
void keyset_del(keyset *k, uint64_t key);
bool keyset_has(const keyset *k, uint64_t key);
void keyset_clear(keyset *k);
void keyset_free(keyset *k);

/* Monotonic clock in milliseconds. */
int64_t now_ms(void);

/* Capped exponential backoff with "equal jitter": attempt 0 waits 0.25–0.5 s,
 * doubling up to 15–30 s.  Used for Qdrant retries and reconnects. */
int64_t backoff_jitter_ms(int attempt);

#endif
