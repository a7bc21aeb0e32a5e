/* security/ratelimit: GCRA and the concurrency counter as pure functions, and the IETF
 * RateLimit / RateLimit-Policy items (ratelimit.h). */
#include "security/ratelimit.h"

#include <math.h>
#include <string.h>

#define NS_PER_S INT64_C(1000000000)

const char *ratelimit_rule_check(const ratelimit_rule *r) {
  if (!(r->rate_per_s > 0) || !isfinite(r->rate_per_s)) return "the rate must be a positive number";
  if (r->rate_per_s > RATELIMIT_MAX_RATE) return "the rate must be at most 1000000 per second";
  if (r->burst < 1) return "the burst must be at least 1";
  if ((double)r->burst / r->rate_per_s > RATELIMIT_MAX_REFILL_S)
    return "burst / rate (the time a full burst takes to refill) must be at most 1000000 seconds";
  return NULL;
}

/* One unit's interval in whole ns. Every cost and the capacity are multiples of it, so GCRA's
 * comparisons are exact: a burst of B is B takes, never B-1 by a rounding. */
static int64_t interval_ns(const ratelimit_rule *r) {
  int64_t t = llround(1e9 / r->rate_per_s);
  return t > 0 ? t : 1;
}

/* The key's state as of now: never earlier than now (an idle bucket is simply full), and never
 * more than a full bucket ahead (a state written from a clock ahead of ours). */
static int64_t clamp_tat(int64_t tat, int64_t now, int64_t cap) {
  if (tat < now) return now;
  if (tat - now > cap) return now + cap;
  return tat;
}

ratelimit_decision ratelimit_take(int64_t *tat_ns, const ratelimit_rule *r, int64_t cost, int64_t now_ns) {
  int64_t t = interval_ns(r);
  int64_t cap = r->burst * t;
  int64_t tat = clamp_tat(*tat_ns, now_ns, cap);
  if (tat < *tat_ns) *tat_ns = tat; /* a state from a clock ahead is brought back once, for good */
  ratelimit_decision d = {.limit = r->burst};
  if (cost < 0) cost = 0;
  if (cost > r->burst) { /* more than a full bucket: no wait will do */
    d.never = true;
    d.remaining = (cap - (tat - now_ns)) / t;
    d.reset_ns = tat - now_ns;
    return d;
  }
  int64_t next = tat + cost * t; /* cost * t <= cap: no overflow */
  if (next - now_ns <= cap) {
    d.allowed = true;
    *tat_ns = next;
    tat = next;
  } else {
    d.retry_after_ns = next - now_ns - cap;
  }
  d.remaining = (cap - (tat - now_ns)) / t;
  d.reset_ns = tat - now_ns;
  return d;
}

void ratelimit_return(int64_t *tat_ns, const ratelimit_rule *r, int64_t cost, int64_t now_ns) {
  if (cost <= 0) return;
  int64_t t = interval_ns(r);
  int64_t cap = r->burst * t;
  if (cost > r->burst) cost = r->burst;
  int64_t tat = clamp_tat(*tat_ns, now_ns, cap) - cost * t;
  *tat_ns = tat < now_ns ? now_ns : tat;
}

bool ratelimit_idle(int64_t tat_ns, int64_t now_ns) { return tat_ns <= now_ns; }

ratelimit_decision ratelimit_concurrency_take(int64_t *in_flight, int64_t max) {
  ratelimit_decision d = {.limit = max};
  if (*in_flight < max) {
    d.allowed = true;
    (*in_flight)++;
  } else {
    d.retry_after_ns = NS_PER_S;
  }
  d.remaining = max > *in_flight ? max - *in_flight : 0;
  return d;
}

void ratelimit_concurrency_return(int64_t *in_flight) {
  if (*in_flight > 0) (*in_flight)--;
}

int64_t ratelimit_seconds(int64_t ns) {
  if (ns <= 0) return 0;
  return ns / NS_PER_S + (ns % NS_PER_S != 0);
}

void ratelimit_rate_window(double rate_per_s, int64_t *quota, int64_t *window_s) {
  for (int64_t w = 1; w <= 60; w++) {
    double q = rate_per_s * (double)w;
    if (q >= 1 && fabs(q - nearbyint(q)) < 1e-9 * q) {
      *quota = llround(q);
      *window_s = w;
      return;
    }
  }
  if (rate_per_s * 60 >= 1) {
    *quota = (int64_t)floor(rate_per_s * 60);
    *window_s = 60;
  } else { /* slower than one a minute: one per its interval */
    *quota = 1;
    *window_s = (int64_t)ceil(1 / rate_per_s - 1e-9);
  }
}

/* The fields are built without printf: a formatter run costs more than everything else the
 * limiter does (callgrind: ~12,000 instructions a request with snprintf, a few hundred without).
 * A policy item (built once per policy) is written in place after the list's end; when it does
 * not fit, the list's terminator goes back where it was, so nothing is added. A RateLimit item
 * (every limited request) is measured first and written once, with no scratch copy to join
 * (~350 instructions before, ~120 now). */
typedef struct item {
  char *b;
  size_t base; /* the list's length before this item */
  size_t n, cap;
  bool over;
} item;

/* Starts an item at the end of buf's list (with ", " after an item already there). */
static void item_start(item *it, char *buf, size_t cap) {
  it->b = buf;
  it->cap = cap;
  it->base = it->n = strnlen(buf, cap);
  it->over = it->n == cap; /* no terminator within cap: not a list to add to */
  if (!it->over && it->n) {
    if (it->n + 2 >= cap) {
      it->over = true;
      return;
    }
    it->b[it->n++] = ',';
    it->b[it->n++] = ' ';
  }
}

static void put_n(item *it, const char *s, size_t l) {
  if (it->over || l >= it->cap - it->n) { /* room for the terminator is kept */
    it->over = true;
    return;
  }
  memcpy(it->b + it->n, s, l);
  it->n += l;
}

static void put(item *it, const char *s) { put_n(it, s, strlen(s)); }
#define PUT_LIT(it, lit) put_n((it), lit, sizeof lit - 1) /* a literal's length is known */

/* The decimal digits of v (never negative here), written backwards to end where they end (a
 * buffer of 20 bytes or more before it holds any); their count. Two digits a step: a key's
 * remaining budget is often six or seven digits. */
static size_t digits(char *end, int64_t v) {
  static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                              "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                              "8081828384858687888990919293949596979899";
  char *p = end;
  uint64_t u = v < 0 ? 0 : (uint64_t)v;
  for (; u >= 100; u /= 100) {
    p -= 2;
    memcpy(p, pairs + 2 * (u % 100), 2);
  }
  if (u >= 10) {
    p -= 2;
    memcpy(p, pairs + 2 * u, 2);
  } else {
    *--p = (char)('0' + u);
  }
  return (size_t)(end - p);
}

static void put_int(item *it, int64_t v) {
  char d[24];
  size_t n = digits(d + sizeof d, v);
  put_n(it, d + sizeof d - n, n);
}

/* A policy name is an sf-string: printable ASCII without '"' and '\\' here (our names are fixed
 * words, but a caller's name must never break the field). */
static bool name_ok(const char *name) {
  for (const char *p = name; *p; p++)
    if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') return false;
  return *name != '\0';
}

static void put_name(item *it, const char *name) {
  PUT_LIT(it, "\"");
  put(it, name);
  PUT_LIT(it, "\"");
}

/* Ends the item: terminated after it, or the list as it was when it did not fit. */
static bool item_end(item *it) {
  if (it->over) {
    if (it->base < it->cap) it->b[it->base] = '\0';
    return false;
  }
  it->b[it->n] = '\0';
  return true;
}

static bool registered_unit(const char *u) {
  return strcmp(u, "requests") == 0 || strcmp(u, "content-bytes") == 0 || strcmp(u, "concurrent-requests") == 0;
}

bool ratelimit_policy_item(char *buf, size_t cap, const char *name, int64_t quota, int64_t window_s,
                           const char *unit, int64_t burst) {
  if (!name_ok(name) || (unit && !name_ok(unit))) return false;
  item it;
  item_start(&it, buf, cap);
  put_name(&it, name);
  PUT_LIT(&it, ";q=");
  put_int(&it, quota);
  if (window_s > 0) {
    PUT_LIT(&it, ";w=");
    put_int(&it, window_s);
  }
  if (unit) { /* qu takes only the draft's registered units; others go in a parameter of ours */
    put(&it, registered_unit(unit) ? ";qu=" : ";inferd-unit=");
    put_name(&it, unit);
  }
  if (burst > 0) {
    PUT_LIT(&it, ";inferd-burst=");
    put_int(&it, burst);
  }
  return item_end(&it);
}

bool ratelimit_limit_item(char *buf, size_t cap, const char *name, int64_t remaining, int64_t reset_s) {
  /* the name is one ratelimit_policy_item has checked (built per request: no second scan). Every
   * piece's length is known first, so the item is written once, or not at all. */
  char r[24], t[24];
  size_t rl = digits(r + sizeof r, remaining), tl = reset_s >= 0 ? digits(t + sizeof t, reset_s) : 0;
  size_t nl = strlen(name), len = strnlen(buf, cap);
  size_t sep = len ? 2 : 0;
  size_t need = sep + 1 + nl + 4 + rl + (reset_s >= 0 ? 3 + tl : 0); /* , "name";r=R;t=T */
  if (len >= cap || need >= cap - len) return false;                 /* and the terminator */
  char *o = buf + len;
  if (sep) {
    memcpy(o, ", ", 2);
    o += 2;
  }
  *o++ = '"';
  memcpy(o, name, nl);
  o += nl;
  memcpy(o, "\";r=", 4);
  o += 4;
  memcpy(o, r + sizeof r - rl, rl);
  o += rl;
  if (reset_s >= 0) {
    memcpy(o, ";t=", 3);
    o += 3;
    memcpy(o, t + sizeof t - tl, tl);
    o += tl;
  }
  *o = '\0';
  return true;
}
