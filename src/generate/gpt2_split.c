/* GPT-2's pre-tokenizer split (see gpt2_split.h) and the Unicode class lookup it needs. */
#include "generate/gpt2_split.h"

#include "generate/unicode_classes.h"

static bool in_ranges(const unicode_range *r, size_t n, uint32_t cp) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cp < r[mid].first)
      hi = mid;
    else if (cp > r[mid].last)
      lo = mid + 1;
    else
      return true;
  }
  return false;
}

unicode_class unicode_class_of(uint32_t cp) {
  if (cp < 0x80) { /* the common case without a search */
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20) return UNICODE_SPACE;
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return UNICODE_LETTER;
    if (cp >= '0' && cp <= '9') return UNICODE_NUMBER;
    return UNICODE_OTHER;
  }
  /* Oniguruma's \s for Unicode: U+0085 and the separators (Zs, Zl, Zp). */
  if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
      cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
    return UNICODE_SPACE;
  if (in_ranges(unicode_letters, unicode_letters_count, cp)) return UNICODE_LETTER;
  if (in_ranges(unicode_numbers, unicode_numbers_count, cp)) return UNICODE_NUMBER;
  return UNICODE_OTHER;
}

size_t gpt2_utf8_decode(const char *s, size_t len, size_t pos, uint32_t *cp) {
  const unsigned char *u = (const unsigned char *)s + pos;
  size_t avail = len - pos;
  if (u[0] < 0x80 || avail < 2) {
    *cp = u[0];
    return 1;
  }
  if (u[0] < 0xE0) {
    *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    return 2;
  }
  if (u[0] < 0xF0 || avail < 4) {
    if (avail < 3) {
      *cp = u[0];
      return 1;
    }
    *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    return 3;
  }
  *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) | ((uint32_t)(u[2] & 0x3F) << 6) |
        (u[3] & 0x3F);
  return 4;
}

static unicode_class class_at(const char *s, size_t len, size_t pos, size_t *n) {
  uint32_t cp;
  *n = gpt2_utf8_decode(s, len, pos, &cp);
  return unicode_class_of(cp);
}

/* The end of the run of class k that starts at pos. */
static size_t run_end(const char *s, size_t len, size_t pos, unicode_class k) {
  while (pos < len) {
    size_t n;
    if (class_at(s, len, pos, &n) != k) break;
    pos += n;
  }
  return pos;
}

size_t gpt2_split_next(const char *s, size_t len, size_t pos) {
  /* 's 't 're 've 'm 'll 'd: tried first, case-sensitive. */
  if (s[pos] == '\'' && pos + 1 < len) {
    char a = s[pos + 1], b = pos + 2 < len ? s[pos + 2] : '\0';
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return pos + 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return pos + 3;
  }
  size_t n;
  unicode_class k = class_at(s, len, pos, &n);
  size_t word = pos;
  /* " ?X+": a space joins the run of letters, numbers or other characters right after it. */
  if (s[pos] == ' ' && pos + 1 < len) {
    size_t n2;
    unicode_class k2 = class_at(s, len, pos + 1, &n2);
    if (k2 != UNICODE_SPACE) {
      k = k2;
      word = pos + 1;
    }
  }
  if (k != UNICODE_SPACE) return run_end(s, len, word, k);
  /* \s+(?!\S) then \s+: a whitespace run up to the end of the text is one piece; one followed
   * by a non-space gives up its last character (which then prefixes the next word, when it is a
   * space), unless that would leave nothing. */
  size_t end = pos, last = pos;
  while (end < len) {
    size_t m;
    if (class_at(s, len, end, &m) != UNICODE_SPACE) break;
    last = end;
    end += m;
  }
  if (end == len || last == pos) return end;
  return last;
}

size_t unicode_to_lower(uint32_t cp, uint32_t out[2]) {
  if (cp < 0x80) {
    out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    return 1;
  }
  size_t lo = 0, hi = unicode_lowercase_count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cp < unicode_lowercase[mid].cp)
      hi = mid;
    else if (cp > unicode_lowercase[mid].cp)
      lo = mid + 1;
    else {
      out[0] = unicode_lowercase[mid].lower[0];
      out[1] = unicode_lowercase[mid].lower[1];
      return out[1] ? 2 : 1;
    }
  }
  out[0] = cp;
  return 1;
}
