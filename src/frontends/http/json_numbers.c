#include "frontends/http/json_numbers.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* m × 10^exp10 to double without strtod, for the numbers clients send: at most 19
 * significant digits (shortest round-trip printing gives at most 9 for a float32 and 17 for a
 * float64) and a power of ten within ±27. Both are exact in x87's long double (64-bit
 * significand; 10^27 = 2^27 * 5^27 and 5^27 < 2^64), so one multiplication or division rounds
 * once, to long double. Rounding that again to double gives strtod's correctly rounded double
 * unless the long double lies exactly halfway between two doubles (its 11 extra bits
 * 10000000000): a halfway point is itself a long double, so any other result sits on the same
 * side of every halfway point as the exact value. Those, and all else, decline (to strtod).
 * Elsewhere than x87 this always declines. */
static bool decimal_to_double(uint64_t m, int exp10, bool neg, double *out) {
#if LDBL_MANT_DIG == 64
  static const long double pow10[] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
                                      1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
                                      1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
  if (exp10 > 27 || exp10 < -27) return false;
  long double r = (long double)m; /* exact: m < 10^19 < 2^64 */
  r = exp10 < 0 ? r / pow10[-exp10] : r * pow10[exp10];
  uint64_t significand; /* x87 layout: the 64-bit significand comes first */
  memcpy(&significand, &r, sizeof significand);
  if (m != 0 && (significand & 0x7ff) == 0x400) return false;
  double d = (double)r;
  *out = neg ? -d : d;
  return true;
#else
  (void)m;
  (void)exp10;
  (void)neg;
  (void)out;
  return false;
#endif
}

/* The slow way, for what the single pass below leaves: the text through strtoll/strtod. */
static const char *leaf_by_libc(const char *p, const char *e, bool is_int, jnum_scalar *v) {
  char tmp[64]; /* strtod needs a terminated string; numbers this long are rare: decline */
  size_t n = (size_t)(e - p);
  if (n >= sizeof tmp) return NULL;
  memcpy(tmp, p, n);
  tmp[n] = '\0';
  errno = 0;
  if (is_int) {
    v->kind = JS_INT;
    v->i = strtoll(tmp, NULL, 10);
    if (errno == ERANGE) return NULL; /* jansson refuses it: let it word the error */
    v->d = (double)v->i;
  } else {
    v->kind = JS_REAL;
    v->d = strtod(tmp, NULL);
    if (errno == ERANGE && (v->d > 1.0 || v->d < -1.0)) return NULL; /* overflow, as jansson */
  }
  return e;
}

#define IS_DIGIT(c) ((unsigned)((c) - '0') < 10u)

/* NaN, Infinity and -Infinity: not JSON, but what the server writes for such values (as
 * Python's json and JavaScript's JSON5 do), so clients can send back what they got. Reached
 * only where a number has no digit: ordinary numbers pay nothing for it. */
static const char *scan_non_finite(const char *s, const char *end, bool neg, jnum_scalar *v) {
  if (!neg && end - s >= 3 && memcmp(s, "NaN", 3) == 0) {
    v->kind = JS_REAL;
    v->d = NAN;
    return s + 3;
  }
  if (end - s >= 8 && memcmp(s, "Infinity", 8) == 0) {
    v->kind = JS_REAL;
    v->d = neg ? -INFINITY : INFINITY;
    return s + 8;
  }
  return NULL;
}

/* Reads one number or boolean leaf into v; returns its end, or NULL to decline. Numbers are
 * checked against JSON's grammar -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? and converted
 * in the same pass; what is too long for that goes to libc. */
static const char *scan_leaf(const char *p, const char *end, jnum_scalar *v) {
  if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
    v->kind = JS_TRUE;
    return p + 4;
  }
  if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
    v->kind = JS_FALSE;
    return p + 5;
  }
  const char *s = p;
  bool neg = s < end && *s == '-';
  if (neg) s++;
  if (s >= end || !IS_DIGIT(*s)) return scan_non_finite(s, end, neg, v);
  uint64_t m = 0; /* the significant digits, while there are at most 19 */
  int digits = 0, exp10 = 0;
  bool is_int = true;
  if (*s == '0') {
    s++;
  } else {
    for (; s < end && IS_DIGIT(*s); s++)
      if (digits++ < 19) m = m * 10 + (uint64_t)(*s - '0');
  }
  if (s < end && *s == '.') {
    is_int = false;
    s++;
    if (s >= end || !IS_DIGIT(*s)) return NULL;
    for (; s < end && IS_DIGIT(*s); s++) {
      if (m == 0 && *s == '0') { /* leading zeros carry no digits */
        exp10--;
        continue;
      }
      if (digits++ < 19) {
        m = m * 10 + (uint64_t)(*s - '0');
        exp10--;
      }
    }
  }
  if (s < end && (*s == 'e' || *s == 'E')) {
    is_int = false;
    s++;
    bool eneg = s < end && *s == '-';
    if (s < end && (*s == '+' || *s == '-')) s++;
    if (s >= end || !IS_DIGIT(*s)) return NULL;
    int e = 0;
    for (; s < end && IS_DIGIT(*s); s++)
      if (e < 100000) e = e * 10 + (*s - '0');
    exp10 += eneg ? -e : e;
  }
  if (digits > 19) return leaf_by_libc(p, s, is_int, v);
  if (is_int) {
    if (digits > 18) return leaf_by_libc(p, s, is_int, v); /* may leave int64: let strtoll say */
    v->kind = JS_INT;
    v->i = neg ? -(long long)m : (long long)m;
    v->d = neg ? -(double)(long long)m : (double)(long long)m; /* "-0" is -0.0 for a float input */
    return s;
  }
  v->kind = JS_REAL;
  if (decimal_to_double(m, exp10, neg, &v->d)) return s;
  return leaf_by_libc(p, s, is_int, v);
}

scan_result jnum_scan(const char *p, size_t len, int max_depth,
                              bool (*emit)(const jnum_scalar *v, void *ctx), void *ctx) {
  return jnum_scan_nested(p, len, max_depth, emit, NULL, ctx);
}

scan_result jnum_scan_nested(const char *p, size_t len, int max_depth,
                                     bool (*emit)(const jnum_scalar *v, void *ctx),
                                     bool (*bracket)(bool open, void *ctx), void *ctx) {
  const char *end = p + len;
  int depth = 0;
  p = skip_ws(p, end);
  if (p >= end || *p != '[') return SCAN_DECLINED;
  /* after '[' a value or ']'; after a value ',' or ']'; after ',' a value */
  enum { WANT_FIRST, WANT_VALUE, WANT_SEP } want = WANT_FIRST;
  while (p < end) {
    p = skip_ws(p, end);
    if (p >= end) return SCAN_DECLINED;
    char c = *p;
    if (want == WANT_SEP) {
      if (c == ',') {
        want = WANT_VALUE;
        p++;
      } else if (c == ']') {
        p++;
        if (bracket && !bracket(false, ctx)) return SCAN_STOPPED;
        if (--depth == 0) return skip_ws(p, end) == end ? SCAN_OK : SCAN_DECLINED;
      } else {
        return SCAN_DECLINED;
      }
      continue;
    }
    if (c == '[') {
      if (++depth > max_depth) return SCAN_DECLINED;
      if (bracket && !bracket(true, ctx)) return SCAN_STOPPED;
      want = WANT_FIRST;
      p++;
    } else if (c == ']' && want == WANT_FIRST) {
      p++;
      want = WANT_SEP;
      if (bracket && !bracket(false, ctx)) return SCAN_STOPPED;
      if (--depth == 0) return skip_ws(p, end) == end ? SCAN_OK : SCAN_DECLINED;
    } else {
      jnum_scalar v;
      p = scan_leaf(p, end, &v);
      if (p == NULL) return SCAN_DECLINED;
      if (!emit(&v, ctx)) return SCAN_STOPPED;
      want = WANT_SEP;
    }
  }
  return SCAN_DECLINED;
}

/* --- locating inputs[k].data --- */

static bool is_delimiter(char c) {
  switch (c) {
    case ',': case ']': case '}': case ' ': case '\t': case '\r': case '\n': return true;
    default: return false;
  }
}

/* Skips a JSON string at p (which is '"'); returns its end, or NULL. */
static const char *skip_string(const char *p, const char *end) {
  for (p++; p < end; p++) {
    if (*p == '\\') {
      p++;
      continue;
    }
    if (*p == '"') return p + 1;
    if ((unsigned char)*p < 0x20) return NULL;
  }
  return NULL;
}

/* Skips any JSON value loosely: a container by counting brackets (strings skipped whole),
 * since what matters is only where it ends; jansson checks the skeleton around the data arrays
 * and the scanner checks each array strictly. Returns its end, or NULL. */
static const char *skip_value(const char *p, const char *end, int depth) {
  p = skip_ws(p, end);
  if (p >= end) return NULL;
  if (*p == '"') return skip_string(p, end);
  if (*p == '[' || *p == '{') {
    int open = 0;
    while (p < end) {
      char c = *p;
      if (c == '"') {
        if ((p = skip_string(p, end)) == NULL) return NULL;
        continue;
      }
      if (c == '[' || c == '{') {
        if (depth + ++open > 64) return NULL;
      } else if ((c == ']' || c == '}') && --open == 0) {
        return p + 1;
      }
      p++;
    }
    return NULL;
  }
  while (p < end && !is_delimiter(*p)) p++; /* a number or literal */
  return p;
}

/* Calls visit(key, key_len, value_start) for each member of the object at p; returns the
 * object's end, or NULL. visit returns the value's end (or NULL). */
typedef const char *(*member_fn)(const char *key, size_t klen, const char *v, const char *end, void *ctx);

static const char *each_member(const char *p, const char *end, member_fn visit, void *ctx) {
  p = skip_ws(p, end);
  if (p >= end || *p != '{') return NULL;
  p = skip_ws(p + 1, end);
  if (p < end && *p == '}') return p + 1;
  for (;;) {
    p = skip_ws(p, end);
    if (p >= end || *p != '"') return NULL;
    const char *k = p + 1, *ke = skip_string(p, end);
    if (ke == NULL) return NULL;
    p = skip_ws(ke, end);
    if (p >= end || *p != ':') return NULL;
    p = skip_ws(p + 1, end);
    if ((p = visit(k, (size_t)(ke - 1 - k), p, end, ctx)) == NULL) return NULL;
    p = skip_ws(p, end);
    if (p >= end) return NULL;
    if (*p == '}') return p + 1;
    if (*p != ',') return NULL;
    p++;
  }
}

typedef struct span_search {
  const char *body;
  jnum_span *spans;
  size_t max, n;
} span_search;

static const char *visit_input_member(const char *key, size_t klen, const char *v, const char *end, void *ctx) {
  span_search *s = ctx;
  const char *e = skip_value(v, end, 2);
  if (e && klen == 4 && memcmp(key, "data", 4) == 0 && *v == '[') {
    s->spans[s->n].start = (size_t)(v - s->body);
    s->spans[s->n].end = (size_t)(e - s->body);
  }
  return e;
}

static const char *visit_root_member(const char *key, size_t klen, const char *v, const char *end, void *ctx) {
  span_search *s = ctx;
  if (!(klen == 6 && memcmp(key, "inputs", 6) == 0 && v < end && *v == '[')) return skip_value(v, end, 1);
  const char *p = skip_ws(v + 1, end);
  if (p < end && *p == ']') return p + 1;
  for (;;) {
    if (s->n == s->max) return NULL;
    s->spans[s->n].start = s->spans[s->n].end = 0;
    p = skip_ws(p, end);
    const char *e = p < end && *p == '{' ? each_member(p, end, visit_input_member, s) : skip_value(p, end, 1);
    if (e == NULL) return NULL;
    s->n++;
    p = skip_ws(e, end);
    if (p >= end) return NULL;
    if (*p == ']') return p + 1;
    if (*p != ',') return NULL;
    p++;
  }
}

int v2_find_data_spans(const char *body, size_t len, jnum_span *spans, size_t max) {
  span_search s = {.body = body, .spans = spans, .max = max};
  const char *end = body + len;
  const char *e = each_member(body, end, visit_root_member, &s);
  if (e == NULL || skip_ws(e, end) != end) return -1;
  return (int)s.n;
}
