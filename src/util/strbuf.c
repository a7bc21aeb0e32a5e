/* The truncating appender (strbuf.h). Every write position is checked against b->cap before it
 * is used; no length is ever computed from a value an append returned without that check. */
#include "util/strbuf.h"

#include <stdio.h>
#include <string.h>

void sbuf_init(sbuf *b, char *buf, size_t cap) {
  b->buf = buf;
  b->cap = cap;
  b->len = 0;
  b->truncated = false;
  if (cap > 0) buf[0] = '\0';
}

size_t sbuf_room(const sbuf *b) { return b->cap > 0 ? b->cap - 1 - b->len : 0; }

bool sbuf_appendn(sbuf *b, const char *s, size_t n) {
  size_t room = sbuf_room(b);
  bool whole = n <= room;
  if (!whole) {
    n = room;
    b->truncated = true;
  }
  if (b->cap == 0) return whole;
  memcpy(b->buf + b->len, s, n);
  b->len += n;
  b->buf[b->len] = '\0';
  return whole;
}

bool sbuf_append(sbuf *b, const char *s) { return sbuf_appendn(b, s, strlen(s)); }

bool sbuf_appendc(sbuf *b, char c) { return sbuf_appendn(b, &c, 1); }

bool sbuf_vappendf(sbuf *b, const char *fmt, va_list ap) {
  if (b->cap == 0) {
    b->truncated = true;
    return false;
  }
  size_t room = sbuf_room(b);
  int n = vsnprintf(b->buf + b->len, room + 1, fmt, ap);
  if (n < 0) { /* an encoding error: keep what was there */
    b->buf[b->len] = '\0';
    b->truncated = true;
    return false;
  }
  if ((size_t)n > room) { /* vsnprintf wrote room bytes and the NUL */
    b->len += room;
    b->truncated = true;
    return false;
  }
  b->len += (size_t)n;
  return true;
}

bool sbuf_appendf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  bool ok = sbuf_vappendf(b, fmt, ap);
  va_end(ap);
  return ok;
}

/* The length of the well-formed UTF-8 sequence at s (2 to 4), or 0 when s does not start one
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). s is NUL-terminated, and
 * NUL is never a continuation byte, so no byte past the terminator is read. */
static size_t utf8_sequence(const unsigned char *s) {
  unsigned char c = s[0];
  unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
  size_t n;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return n;
}

/* The JSON form of the character at s, written to out (at most 6 bytes); returns its length
 * and sets *used to the input bytes it stands for. */
static size_t json_unit(const unsigned char *s, char out[6], size_t *used) {
  static const char hex[] = "0123456789abcdef";
  unsigned char c = s[0];
  *used = 1;
  switch (c) {
    case '"': memcpy(out, "\\\"", 2); return 2;
    case '\\': memcpy(out, "\\\\", 2); return 2;
    case '\n': memcpy(out, "\\n", 2); return 2;
    case '\r': memcpy(out, "\\r", 2); return 2;
    case '\t': memcpy(out, "\\t", 2); return 2;
    case '\b': memcpy(out, "\\b", 2); return 2;
    case '\f': memcpy(out, "\\f", 2); return 2;
    default: break;
  }
  if (c < 0x20 || c == 0x7F) { /* DEL is legal JSON, but a terminal acts on it */
    memcpy(out, "\\u00", 4);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
  }
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  size_t n = utf8_sequence(s);
  if (n == 0) { /* not UTF-8: the replacement character keeps the line decodable */
    memcpy(out, "\\ufffd", 6);
    return 6;
  }
  memcpy(out, s, n);
  *used = n;
  return n;
}

bool sbuf_append_json_string(sbuf *b, const char *s, size_t max) {
  size_t room = sbuf_room(b);
  size_t limit = max < room ? max : room;
  if (!s) {
    if (limit < 4) {
      b->truncated = true;
      return false;
    }
    return sbuf_append(b, "null");
  }
  const size_t mlen = sizeof SBUF_CUT_MARKER - 1;
  if (limit < 2) {
    b->truncated = true;
    return false;
  }
  /* out[0..limit) lies inside buf: limit <= room = cap - 1 - len. The content goes to
   * out[1..1 + n) and must leave room for the closing quote, or, when cut, for the marker and
   * the quote; keep is the content length at the last character boundary where the latter
   * still fits. */
  char *out = b->buf + b->len;
  size_t n = 0, keep = 0;
  bool cut = false;
  out[0] = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    char u[6];
    size_t used;
    size_t k = json_unit(p, u, &used);
    if (1 + n + k + 1 > limit) {
      cut = true;
      break;
    }
    memcpy(out + 1 + n, u, k);
    n += k;
    p += used;
    if (1 + n + mlen + 1 <= limit) keep = n;
  }
  if (cut) {
    b->truncated = true;
    if (limit < 2 + mlen) { /* not even "..." fits: append nothing */
      out[0] = '\0';
      return false;
    }
    memcpy(out + 1 + keep, SBUF_CUT_MARKER, mlen);
    n = keep + mlen;
  }
  out[1 + n] = '"';
  out[2 + n] = '\0';
  b->len += 2 + n;
  return !cut;
}
