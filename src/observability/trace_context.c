/* observability/trace_context: the W3C Trace Context rules (https://www.w3.org/TR/trace-context/)
 * and the id and sampling arithmetic, kept pure so tests can hold them to the spec's examples. */
#include "observability/trace_context.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1; /* uppercase is invalid in traceparent */
}

static bool hex_bytes(const char *s, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}

static bool all_zero(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b[i]) return false;
  return true;
}

static bool ows(char c) { return c == ' ' || c == '\t'; }

bool trace_parent_parse(const char *s, trace_context *ctx) {
  if (s == NULL) return false;
  while (ows(*s)) s++;
  size_t len = strlen(s);
  while (len > 0 && ows(s[len - 1])) len--;
  if (len < TRACEPARENT_LEN) return false;
  uint8_t version;
  if (!hex_bytes(s, 1, &version) || version == 0xff || s[2] != '-' || s[35] != '-' || s[52] != '-') return false;
  /* version 00 is exactly 55 characters; a later one may go on, but only after a '-' */
  if (version == 0 ? len != TRACEPARENT_LEN : (len > TRACEPARENT_LEN && s[TRACEPARENT_LEN] != '-')) return false;
  trace_context c;
  if (!hex_bytes(s + 3, 16, c.trace_id) || !hex_bytes(s + 36, 8, c.span_id) || !hex_bytes(s + 53, 1, &c.flags))
    return false;
  if (all_zero(c.trace_id, 16) || all_zero(c.span_id, 8)) return false;
  *ctx = c;
  return true;
}

void trace_hex(const uint8_t *bytes, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  out[2 * n] = '\0';
}

void trace_parent_format(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags,
                         char out[TRACEPARENT_LEN + 1]) {
  memcpy(out, "00-", 3);
  trace_hex(trace_id, 16, out + 3);
  out[35] = '-';
  trace_hex(span_id, 8, out + 36);
  out[52] = '-';
  trace_hex(&flags, 1, out + 53);
}

/* tracestate's grammar (the spec's section 3.3.1). */
static bool lcalpha(char c) { return c >= 'a' && c <= 'z'; }
static bool digit(char c) { return c >= '0' && c <= '9'; }
static bool keychar(char c) { return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/'; }
static bool nblk(char c) { return c >= 0x21 && c <= 0x7e && c != ',' && c != '='; }

static bool key_valid(const char *k, size_t n) {
  const char *at = memchr(k, '@', n);
  if (at == NULL) { /* simple-key: lcalpha 0*255(keychar) */
    if (n < 1 || n > 256 || !lcalpha(k[0])) return false;
    for (size_t i = 1; i < n; i++)
      if (!keychar(k[i])) return false;
    return true;
  }
  size_t tn = (size_t)(at - k), sn = n - tn - 1; /* tenant-id "@" system-id */
  if (tn < 1 || tn > 241 || sn < 1 || sn > 14) return false;
  if (!lcalpha(k[0]) && !digit(k[0])) return false;
  for (size_t i = 1; i < tn; i++)
    if (!keychar(k[i])) return false;
  if (!lcalpha(at[1])) return false;
  for (size_t i = 1; i < sn; i++)
    if (!keychar(at[1 + i])) return false;
  return true;
}

static bool value_valid(const char *v, size_t n) {
  /* 0*255(chr) nblk-chr: 1 to 256 characters, spaces allowed inside but not at the end */
  if (n < 1 || n > 256 || !nblk(v[n - 1])) return false;
  for (size_t i = 0; i + 1 < n; i++)
    if (v[i] != ' ' && !nblk(v[i])) return false;
  return true;
}

bool trace_state_parse(const char *s, char out[TRACESTATE_MAX + 1]) {
  if (s == NULL) return false;
  while (ows(*s)) s++;
  size_t len = strlen(s);
  while (len > 0 && ows(s[len - 1])) len--;
  if (len > TRACESTATE_MAX) return false;
  struct {
    const char *k;
    size_t n;
  } keys[TRACESTATE_MAX_MEMBERS];
  int members = 0;
  size_t i = 0;
  while (i <= len) {
    size_t end = i;
    while (end < len && s[end] != ',') end++;
    size_t a = i, b = end; /* the member, OWS trimmed */
    while (a < b && ows(s[a])) a++;
    while (b > a && ows(s[b - 1])) b--;
    if (a < b) { /* an empty member is allowed and ignored */
      const char *eq = memchr(s + a, '=', b - a);
      if (eq == NULL) return false;
      size_t kn = (size_t)(eq - (s + a));
      if (!key_valid(s + a, kn) || !value_valid(eq + 1, b - a - kn - 1)) return false;
      if (members == TRACESTATE_MAX_MEMBERS) return false;
      for (int m = 0; m < members; m++)
        if (keys[m].n == kn && memcmp(keys[m].k, s + a, kn) == 0) return false; /* duplicate key */
      keys[members].k = s + a;
      keys[members].n = kn;
      members++;
    }
    i = end + 1;
  }
  memcpy(out, s, len);
  out[len] = '\0';
  return true;
}

void trace_rng_seed(trace_rng *r, uint64_t seed) { r->state = seed ? seed : 0x9e3779b97f4a7c15ULL; }

uint64_t trace_rng_next(trace_rng *r) {
  uint64_t x = r->state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static void put64(uint8_t *out, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) out[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | in[i];
  return v;
}

void trace_new_trace_id(trace_rng *r, uint8_t out[16]) {
  uint64_t hi = trace_rng_next(r), lo = trace_rng_next(r);
  if ((hi | lo) == 0) lo = 1;
  put64(out, hi);
  put64(out + 8, lo);
}

void trace_new_span_id(trace_rng *r, uint8_t out[8]) {
  uint64_t v = trace_rng_next(r);
  put64(out, v ? v : 1);
}

bool trace_should_sample(const trace_context *parent, const uint8_t trace_id[16], double ratio) {
  if (parent) return (parent->flags & TRACE_FLAG_SAMPLED) != 0;
  if (!(ratio > 0)) return false; /* also NaN */
  if (ratio >= 1) return true;
  uint64_t bound = (uint64_t)(ratio * 18446744073709551616.0);
  return get64(trace_id + 8) < bound;
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void trace_batch_ids(uint64_t salt, uint64_t batch_id, uint8_t trace_id[16], uint8_t span_id[8]) {
  uint64_t hi = splitmix64(salt), lo = splitmix64(salt ^ splitmix64(batch_id)), sp = splitmix64(lo ^ 0x5bd1e995);
  if ((hi | lo) == 0) lo = 1;
  put64(trace_id, hi);
  put64(trace_id + 8, lo);
  put64(span_id, sp ? sp : 1);
}

/* ns as milliseconds with three decimals ("12.345"), by hand: printf's floating point costs
 * thousands of instructions, and this runs on every response when tracing is on. */
static size_t put_ms(char *out, int64_t ns) {
  if (ns < 0) ns = 0;
  int64_t us = (ns + 500) / 1000;
  char digits[24];
  size_t n = 0;
  int64_t whole = us / 1000;
  do {
    digits[n++] = (char)('0' + whole % 10);
    whole /= 10;
  } while (whole);
  size_t len = 0;
  while (n) out[len++] = digits[--n];
  int frac = (int)(us % 1000);
  out[len++] = '.';
  out[len++] = (char)('0' + frac / 100);
  out[len++] = (char)('0' + frac / 10 % 10);
  out[len++] = (char)('0' + frac % 10);
  return len;
}

void trace_server_timing(int64_t queue_ns, int64_t compute_ns, char *out, size_t cap) {
  char buf[96];
  size_t len = 0;
  memcpy(buf, "queue;dur=", 10);
  len = 10;
  len += put_ms(buf + len, queue_ns);
  memcpy(buf + len, ", compute;dur=", 14);
  len += 14;
  len += put_ms(buf + len, compute_ns);
  if (cap == 0) return;
  if (len >= cap) len = cap - 1;
  memcpy(out, buf, len);
  out[len] = '\0';
}
