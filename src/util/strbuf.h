/* A truncating string appender over a caller's fixed buffer: no append can write past the
 * buffer's end, whatever the sizes involved, and the text stays NUL-terminated. */
#ifndef INFERD_STRBUF_H
#define INFERD_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct sbuf {
  char *buf;
  size_t cap;     /* bytes of buf, the NUL included */
  size_t len;     /* len < cap whenever cap > 0, and buf[len] == '\0' */
  bool truncated; /* some append did not fit whole */
} sbuf;

/* The marker a cut JSON string ends with (inside its quotes). */
#define SBUF_CUT_MARKER "..."

/* Starts an empty string in buf[0..cap). cap 0 is allowed: every append is then dropped. */
void sbuf_init(sbuf *b, char *buf, size_t cap);
/* Bytes that can still be appended (the NUL aside). */
size_t sbuf_room(const sbuf *b);

/* Each append writes what fits; when that is not all of it, it sets b->truncated and returns
 * false. Plain appends may cut inside a multi-byte character: use them for ASCII. */
bool sbuf_append(sbuf *b, const char *s);
bool sbuf_appendn(sbuf *b, const char *s, size_t n);
bool sbuf_appendc(sbuf *b, char c);
bool sbuf_appendf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool sbuf_vappendf(sbuf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Appends s as a JSON string literal, quotes included, of at most `max` bytes (and at most the
 * room left): always valid JSON and valid UTF-8. Quotes, backslashes and control characters are
 * escaped; a byte that is not part of valid UTF-8 becomes \ufffd. When s does not fit, it is cut
 * between characters (never inside an escape or a UTF-8 sequence) and SBUF_CUT_MARKER is added
 * before the closing quote. s NULL appends null. Returns false (and sets b->truncated) when s
 * was cut, or when not even "..." fits (then nothing is appended). */
bool sbuf_append_json_string(sbuf *b, const char *s, size_t max);

#endif
