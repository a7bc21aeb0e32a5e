#include "frontends/http/json_numbers.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* Scans a JSON number at p by the grammar -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?;
 * returns its end, or NULL. */
static const char *scan_number(const char *p, const char *end, bool *is_int) {
  const char *s = p;
  *is_int = true;
  if (s < end && *s == '-') s++;
  if (s >= end) return NULL;
  if (*s == '0') {
    s++;
  } else if (*s >= '1' && *s <= '9') {
    while (s < end && *s >= '0' && *s <= '9') s++;
  } else {
    return NULL;
  }
  if (s < end && *s == '.') {
    *is_int = false;
    s++;
    if (s >= end || *s < '0' || *s > '9') return NULL;
    while (s < end && *s >= '0' && *s <= '9') s++;
  }
  if (s < end && (*s == 'e' || *s == 'E')) {
    *is_int = false;
    s++;
    if (s < end && (*s == '+' || *s == '-')) s++;
    if (s >= end || *s < '0' || *s > '9') return NULL;
    while (s < end && *s >= '0' && *s <= '9') s++;
  }
  return s;
}

/* Clinger's fast path: a decimal of at most 15 significant digits with a power of ten within
 * ±22 converts exactly, as one multiplication or division of two exact doubles, to the same
 * double strtod gives. s is a valid JSON number. */
static bool exact_decimal(const char *s, double *out) {
  static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  bool neg = *s == '-';
  if (neg) s++;
  uint64_t m = 0;
  int digits = 0, exp10 = 0;
  bool frac = false;
  for (; *s && *s != 'e' && *s != 'E'; s++) {
    if (*s == '.') {
      frac = true;
      continue;
    }
    if (m == 0 && *s == '0') { /* leading zeros carry no digits */
      if (frac) exp10--;
      continue;
    }
    if (++digits > 15) return false;
    m = m * 10 + (uint64_t)(*s - '0');
    if (frac) exp10--;
  }
  if (*s) { /* the exponent part */
    long e = strtol(s + 1, NULL, 10);
    if (e > 400 || e < -400) return false;
    exp10 += (int)e;
  }
  if (exp10 > 22 || exp10 < -22) return false;
  double d = (double)m; /* exact: m < 10^15 < 2^53 */
  d = exp10 < 0 ? d / pow10[-exp10] : d * pow10[exp10];
  *out = neg ? -d : d;
  return true;
}

/* Reads one number or boolean leaf into v; returns its end, or NULL to decline. */
static const char *scan_leaf(const char *p, const char *end, json_scalar *v) {
  if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
    v->kind = JS_TRUE;
    return p + 4;
  }
  if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
    v->kind = JS_FALSE;
    return p + 5;
  }
  bool is_int;
  const char *e = scan_number(p, end, &is_int);
  if (e == NULL) return NULL;
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
  } else if (exact_decimal(tmp, &v->d)) {
    v->kind = JS_REAL;
  } else {
    v->kind = JS_REAL;
    v->d = strtod(tmp, NULL);
    if (errno == ERANGE && (v->d > 1.0 || v->d < -1.0)) return NULL; /* overflow, as jansson */
  }
  return e;
}

scan_result json_numbers_scan(const char *p, size_t len, int max_depth,
                              bool (*emit)(const json_scalar *v, void *ctx), void *ctx) {
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
        if (--depth == 0) return skip_ws(p, end) == end ? SCAN_OK : SCAN_DECLINED;
      } else {
        return SCAN_DECLINED;
      }
      continue;
    }
    if (c == '[') {
      if (++depth > max_depth) return SCAN_DECLINED;
      want = WANT_FIRST;
      p++;
    } else if (c == ']' && want == WANT_FIRST) {
      p++;
      want = WANT_SEP;
      if (--depth == 0) return skip_ws(p, end) == end ? SCAN_OK : SCAN_DECLINED;
    } else {
      json_scalar v;
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

/* Skips any JSON value loosely (jansson checks it later); returns its end, or NULL. */
static const char *skip_value(const char *p, const char *end, int depth) {
  p = skip_ws(p, end);
  if (p >= end || depth > 64) return NULL;
  if (*p == '"') return skip_string(p, end);
  if (*p == '[' || *p == '{') {
    char close = *p == '[' ? ']' : '}';
    p = skip_ws(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        p = skip_ws(p, end);
        if (p >= end || *p != '"' || (p = skip_string(p, end)) == NULL) return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p++;
      }
      if ((p = skip_value(p, end, depth + 1)) == NULL) return NULL;
      p = skip_ws(p, end);
      if (p >= end) return NULL;
      if (*p == close) return p + 1;
      if (*p != ',') return NULL;
      p++;
    }
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
  json_span *spans;
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
  if (!(klen == 6 && memcmp(key, "inputs", 6) == 0 && *v == '[')) return skip_value(v, end, 1);
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

int v2_find_data_spans(const char *body, size_t len, json_span *spans, size_t max) {
  span_search s = {.body = body, .spans = spans, .max = max};
  const char *end = body + len;
  const char *e = each_member(body, end, visit_root_member, &s);
  if (e == NULL || skip_ws(e, end) != end) return -1;
  return (int)s.n;
}
