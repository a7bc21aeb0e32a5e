/* UTF-8 validation and repair (see utf8.h). */
#include "util/utf8.h"

#include <string.h>

/* Length of the valid sequence at s[0..len), or 0 when the byte at s starts none. */
static size_t seq_len(const unsigned char *s, size_t len) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
  if (n == 0 || c > 0xf4 || n > len) return 0;
  for (size_t k = 1; k < n; k++)
    if ((s[k] & 0xc0) != 0x80) return 0;
  unsigned char c1 = s[1];
  /* overlong 3- and 4-byte forms, UTF-16 surrogates, and beyond U+10FFFF */
  if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f))
    return 0;
  return n;
}

bool utf8_valid(const char *s, size_t len, size_t *bad_at) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    if (p[i] < 0x80) { /* the common case, a byte at a time */
      i++;
      continue;
    }
    size_t n = seq_len(p + i, len - i);
    if (n == 0) {
      if (bad_at) *bad_at = i;
      return false;
    }
    i += n;
  }
  return true;
}

size_t utf8_sanitize(char *dst, size_t cap, const char *src) {
  if (cap == 0) return 0;
  const unsigned char *p = (const unsigned char *)src;
  size_t len = strlen(src), i = 0, o = 0;
  while (i < len) {
    size_t n = seq_len(p + i, len - i);
    const char *piece = n ? src + i : "\xef\xbf\xbd";
    size_t plen = n ? n : 3;
    if (o + plen >= cap) break;
    memcpy(dst + o, piece, plen);
    o += plen;
    i += n ? n : 1;
  }
  dst[o] = '\0';
  return o;
}
