/* The pure limiter (security/ratelimit.h): GCRA through bursts, steady rates, refills, costs and
 * clock edges to the nanosecond; the concurrency counter; the IETF field items; the rate parser
 * and the per-principal policy (security/limits.h); the local store's keys, eviction and locking
 * (security/limits_store.h). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/principal.h"
#include "security/limits.h"
#include "security/limits_store.h"
#include "security/ratelimit.h"

#define US INT64_C(1000)
#define MS INT64_C(1000000)
#define SEC INT64_C(1000000000)
#define T0 (INT64_C(5000) * SEC) /* an arbitrary monotonic "now" */

/* How many of n takes at now pass. */
static int takes(int64_t *tat, const ratelimit_rule *r, int n, int64_t now) {
  int ok = 0;
  for (int i = 0; i < n; i++) ok += ratelimit_take(tat, r, 1, now).allowed;
  return ok;
}

static void test_burst_then_refused(void **state) {
  (void)state;
  ratelimit_rule r = {.rate_per_s = 10, .burst = 20};
  int64_t tat = 0; /* never seen: a full bucket */
  for (int i = 0; i < 20; i++) {
    ratelimit_decision d = ratelimit_take(&tat, &r, 1, T0);
    assert_true(d.allowed);
    assert_int_equal(d.limit, 20);
    assert_int_equal(d.remaining, 19 - i);
    assert_int_equal(d.reset_ns, (i + 1) * 100 * MS); /* a full bucket again after (i+1) intervals */
    assert_int_equal(d.retry_after_ns, 0);
  }
  ratelimit_decision d = ratelimit_take(&tat, &r, 1, T0);
  assert_false(d.allowed);
  assert_false(d.never);
  assert_int_equal(d.remaining, 0);
  assert_int_equal(d.retry_after_ns, 100 * MS); /* the next unit refills in one interval */
  assert_int_equal(d.reset_ns, 2 * SEC);
  int64_t before = tat;
  assert_false(ratelimit_take(&tat, &r, 1, T0).allowed);
  assert_int_equal(tat, before); /* a refusal costs nothing */
}

static void test_refill_to_the_nanosecond(void **state) {
  (void)state;
  ratelimit_rule r = {.rate_per_s = 10, .burst = 1};
  int64_t tat = 0;
  assert_true(ratelimit_take(&tat, &r, 1, T0).allowed);
  ratelimit_decision d = ratelimit_take(&tat, &r, 1, T0 + 100 * MS - 1);
  assert_false(d.allowed);
  assert_int_equal(d.retry_after_ns, 1); /* one nanosecond early */
  d = ratelimit_take(&tat, &r, 1, T0 + 100 * MS - US);
  assert_false(d.allowed);
  assert_int_equal(d.retry_after_ns, US); /* one microsecond early */
  assert_true(ratelimit_take(&tat, &r, 1, T0 + 100 * MS).allowed); /* exactly due */
  /* after a long pause the bucket is full, never fuller */
  assert_int_equal(takes(&tat, &r, 5, T0 + 3600 * SEC), 1);
}

static void test_steady_rate_over_ten_seconds(void **state) {
  (void)state;
  /* 5x the allowed rate for 10 s: burst + rate * time pass, whatever the rate's rounding */
  double rates[] = {50, 3, 7.5, 1000, 0.5};
  for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
    ratelimit_rule r = {.rate_per_s = rates[k], .burst = 4};
    int64_t tat = 0, step = (int64_t)(1e9 / (5 * rates[k]));
    int ok = 0, n = (int)(10 * 5 * rates[k]);
    for (int i = 0; i < n; i++) ok += ratelimit_take(&tat, &r, 1, T0 + i * step).allowed;
    double span = (double)(n - 1) * (double)step / 1e9;
    int expect = 4 + (int)(rates[k] * span + 1e-6);
    assert_in_range(ok, expect - 1, expect + 1);
  }
}

static void test_costs(void **state) {
  (void)state;
  /* records per minute: 600 a minute (10/s), a minute's worth of burst */
  ratelimit_rule r = {.rate_per_s = 10, .burst = 600};
  int64_t tat = 0;
  ratelimit_decision d = ratelimit_take(&tat, &r, 400, T0);
  assert_true(d.allowed);
  assert_int_equal(d.remaining, 200);
  d = ratelimit_take(&tat, &r, 300, T0);
  assert_false(d.allowed);
  assert_int_equal(d.retry_after_ns, 10 * SEC); /* 100 records short at 10/s */
  d = ratelimit_take(&tat, &r, 300, T0 + 10 * SEC - 1);
  assert_false(d.allowed);
  d = ratelimit_take(&tat, &r, 300, T0 + 10 * SEC);
  assert_true(d.allowed);
  assert_int_equal(d.remaining, 0);
  assert_int_equal(d.reset_ns, 60 * SEC);
  /* a cost of zero passes and reports */
  d = ratelimit_take(&tat, &r, 0, T0 + 10 * SEC);
  assert_true(d.allowed);
  assert_int_equal(d.remaining, 0);
  /* a negative cost is zero, not a refill */
  d = ratelimit_take(&tat, &r, -1000, T0 + 10 * SEC);
  assert_int_equal(d.remaining, 0);
  /* more than the bucket holds: never, and the state is untouched */
  int64_t before = tat;
  d = ratelimit_take(&tat, &r, 601, T0 + 1000 * SEC);
  assert_false(d.allowed);
  assert_true(d.never);
  assert_int_equal(d.retry_after_ns, 0);
  assert_int_equal(tat, before);
  d = ratelimit_take(&tat, &r, INT64_MAX, T0 + 1000 * SEC);
  assert_true(d.never);
  /* exactly the bucket, from full */
  assert_true(ratelimit_take(&tat, &r, 600, T0 + 1000 * SEC).allowed);
}

static void test_fractional_rates_are_exact_over_a_burst(void **state) {
  (void)state;
  /* 1e9/3 ns is not whole: the burst is still exactly 3 takes, then one every 333333333 ns */
  ratelimit_rule r = {.rate_per_s = 3, .burst = 3};
  int64_t tat = 0;
  assert_int_equal(takes(&tat, &r, 10, T0), 3);
  ratelimit_decision d = ratelimit_take(&tat, &r, 1, T0);
  assert_int_equal(d.retry_after_ns, 333333333);
  assert_true(ratelimit_take(&tat, &r, 1, T0 + 333333333).allowed);
  /* records per minute that do not divide a minute: 7 a minute */
  ratelimit_rule rec = {.rate_per_s = 7.0 / 60.0, .burst = 7};
  tat = 0;
  assert_true(ratelimit_take(&tat, &rec, 7, T0).allowed);
  d = ratelimit_take(&tat, &rec, 1, T0);
  assert_false(d.allowed);
  assert_int_equal(ratelimit_seconds(d.retry_after_ns), 9); /* 60/7 = 8.57 s, rounded up */
}

static void test_clock_edges(void **state) {
  (void)state;
  ratelimit_rule r = {.rate_per_s = 1, .burst = 2};
  /* a clock at zero, and a state of zero, are a full bucket */
  int64_t tat = 0;
  assert_int_equal(takes(&tat, &r, 3, 0), 2);
  /* a state written by a clock far ahead (another replica's, or before a clock step): the
   * caller waits at most one full refill, not until that clock's future */
  tat = T0 + 3600 * SEC;
  ratelimit_decision d = ratelimit_take(&tat, &r, 1, T0);
  assert_false(d.allowed);
  assert_int_equal(d.retry_after_ns, 1 * SEC);
  assert_int_equal(d.reset_ns, 2 * SEC);
  assert_true(ratelimit_take(&tat, &r, 1, T0 + 1 * SEC).allowed);
  /* a clock that steps back by less than a window: still refused at once (the state is brought
   * to at most a full bucket ahead of the new clock) */
  tat = 0;
  assert_int_equal(takes(&tat, &r, 2, T0), 2);
  assert_false(ratelimit_take(&tat, &r, 1, T0 - 500 * MS).allowed);
  /* near the end of int64's range: no overflow */
  int64_t late = INT64_MAX - 10 * SEC;
  tat = 0;
  assert_int_equal(takes(&tat, &r, 5, late), 2);
  d = ratelimit_take(&tat, &r, 1, late);
  assert_int_equal(d.retry_after_ns, 1 * SEC);
  /* the slowest rule the bounds allow: 1 per 1000000 s */
  ratelimit_rule slow = {.rate_per_s = 1e-6, .burst = 1};
  assert_null(ratelimit_rule_check(&slow));
  tat = 0;
  assert_true(ratelimit_take(&tat, &slow, 1, T0).allowed);
  d = ratelimit_take(&tat, &slow, 1, T0);
  assert_int_equal(d.retry_after_ns, INT64_C(1000000) * SEC);
  /* and the fastest: one per microsecond */
  ratelimit_rule fast = {.rate_per_s = 1e6, .burst = 1};
  tat = 0;
  assert_true(ratelimit_take(&tat, &fast, 1, T0).allowed);
  assert_false(ratelimit_take(&tat, &fast, 1, T0 + US - 1).allowed);
  assert_true(ratelimit_take(&tat, &fast, 1, T0 + US).allowed);
}

static void test_return_and_idle(void **state) {
  (void)state;
  ratelimit_rule r = {.rate_per_s = 10, .burst = 2};
  int64_t tat = 0;
  assert_true(ratelimit_idle(tat, T0));
  assert_int_equal(takes(&tat, &r, 2, T0), 2);
  assert_false(ratelimit_idle(tat, T0));
  ratelimit_return(&tat, &r, 1, T0);
  assert_int_equal(ratelimit_take(&tat, &r, 0, T0).remaining, 1);
  ratelimit_return(&tat, &r, 5, T0); /* never fuller than full */
  assert_true(ratelimit_idle(tat, T0));
  assert_int_equal(takes(&tat, &r, 3, T0), 2);
  assert_true(ratelimit_idle(tat, T0 + 200 * MS));
  assert_false(ratelimit_idle(tat, T0 + 200 * MS - 1));
}

static void test_rule_check(void **state) {
  (void)state;
  assert_non_null(ratelimit_rule_check(&(ratelimit_rule){.rate_per_s = 0, .burst = 1}));
  assert_non_null(ratelimit_rule_check(&(ratelimit_rule){.rate_per_s = -1, .burst = 1}));
  assert_non_null(ratelimit_rule_check(&(ratelimit_rule){.rate_per_s = 2e6, .burst = 1}));
  assert_non_null(ratelimit_rule_check(&(ratelimit_rule){.rate_per_s = 1, .burst = 0}));
  assert_non_null(ratelimit_rule_check(&(ratelimit_rule){.rate_per_s = 1, .burst = 2000000}));
  assert_null(ratelimit_rule_check(&(ratelimit_rule){.rate_per_s = 1, .burst = 1000000}));
}

static void test_concurrency(void **state) {
  (void)state;
  int64_t n = 0;
  ratelimit_decision d = ratelimit_concurrency_take(&n, 2);
  assert_true(d.allowed);
  assert_int_equal(d.remaining, 1);
  assert_true(ratelimit_concurrency_take(&n, 2).allowed);
  d = ratelimit_concurrency_take(&n, 2);
  assert_false(d.allowed);
  assert_int_equal(d.remaining, 0);
  assert_int_equal(d.retry_after_ns, SEC);
  assert_int_equal(n, 2);
  ratelimit_concurrency_return(&n);
  assert_true(ratelimit_concurrency_take(&n, 2).allowed);
  ratelimit_concurrency_return(&n);
  ratelimit_concurrency_return(&n);
  ratelimit_concurrency_return(&n); /* one too many: never below zero */
  assert_int_equal(n, 0);
}

static void test_seconds(void **state) {
  (void)state;
  assert_int_equal(ratelimit_seconds(0), 0);
  assert_int_equal(ratelimit_seconds(-5), 0);
  assert_int_equal(ratelimit_seconds(1), 1);
  assert_int_equal(ratelimit_seconds(SEC), 1);
  assert_int_equal(ratelimit_seconds(SEC + 1), 2);
  assert_int_equal(ratelimit_seconds(30 * SEC - US), 30);
}

static void test_fields(void **state) {
  (void)state;
  char buf[224] = "";
  assert_true(ratelimit_policy_item(buf, sizeof buf, "requests", 10, 1, NULL, 20));
  assert_true(ratelimit_policy_item(buf, sizeof buf, "concurrency", 4, 0, "concurrent-requests", 0));
  assert_true(ratelimit_policy_item(buf, sizeof buf, "records", 1000, 60, "records", 0));
  assert_string_equal(buf, "\"requests\";q=10;w=1;inferd-burst=20, \"concurrency\";q=4;qu=\"concurrent-requests\", "
                           "\"records\";q=1000;w=60;inferd-unit=\"records\"");
  char lim[64] = "";
  assert_true(ratelimit_limit_item(lim, sizeof lim, "requests", 0, 1));
  assert_true(ratelimit_limit_item(lim, sizeof lim, "concurrency", 3, -1));
  assert_true(ratelimit_limit_item(lim, sizeof lim, "records", -4, 0)); /* never negative */
  assert_string_equal(lim, "\"requests\";r=0;t=1, \"concurrency\";r=3, \"records\";r=0;t=0");
  /* an item that does not fit leaves the field as it was */
  char small[24] = "";
  assert_true(ratelimit_limit_item(small, sizeof small, "requests", 5, 1));
  assert_false(ratelimit_limit_item(small, sizeof small, "requests", 5, 1));
  assert_string_equal(small, "\"requests\";r=5;t=1");
  /* the numbers, two digits a step: every width, against printf */
  int64_t nums[64];
  size_t nn = 0;
  for (int64_t t = 1; t > 0 && t <= INT64_MAX / 10; t *= 10) {
    nums[nn++] = t - 1;
    nums[nn++] = t;
    nums[nn++] = t + 1;
  }
  nums[nn++] = INT64_MAX;
  for (size_t i = 0; i < nn; i++) {
    char got[64] = "", want[64];
    snprintf(want, sizeof want, "\"requests\";r=%lld;t=%lld", (long long)nums[i], (long long)nums[nn - 1 - i]);
    assert_true(ratelimit_limit_item(got, sizeof got, "requests", nums[i], nums[nn - 1 - i]));
    assert_string_equal(got, want);
  }
  for (int64_t v = 0; v < 20000; v += 7) {
    char got[64] = "", want[64];
    snprintf(want, sizeof want, "\"r\";q=%lld;w=1", (long long)v + 1);
    assert_true(ratelimit_policy_item(got, sizeof got, "r", v + 1, 1, NULL, 0));
    assert_string_equal(got, want);
  }
  /* items are written in place: at every capacity, an item is there whole or not at all */
  const char *one = "\"requests\";r=123456;t=7", *two = "\"requests\";r=123456;t=7, \"concurrency\";r=9",
             *alone = "\"concurrency\";r=9"; /* the second item when the first did not fit */
  for (size_t cap = 0; cap <= strlen(two) + 2; cap++) {
    char b[64];
    memset(b, 'x', sizeof b);
    b[0] = '\0';
    bool a1 = ratelimit_limit_item(b, cap, "requests", 123456, 7);
    bool a2 = ratelimit_limit_item(b, cap, "concurrency", 9, -1);
    assert_int_equal(a1, cap > strlen(one));
    assert_int_equal(a2, cap > strlen(a1 ? two : alone));
    if (cap > 0) assert_string_equal(b, a1 ? (a2 ? two : one) : (a2 ? alone : ""));
    if (cap > 0) assert_int_equal(b[cap], 'x'); /* nothing written at or past cap */
    char p[64];
    memset(p, 'x', sizeof p);
    p[0] = '\0';
    bool p1 = ratelimit_policy_item(p, cap, "requests", 10, 1, NULL, 20);
    assert_int_equal(p1, cap > strlen("\"requests\";q=10;w=1;inferd-burst=20"));
    if (cap > 0) assert_string_equal(p, p1 ? "\"requests\";q=10;w=1;inferd-burst=20" : "");
  }
  /* a name that would break the sf-string is refused */
  char q[64] = "";
  assert_false(ratelimit_policy_item(q, sizeof q, "a\"b", 1, 1, NULL, 0));
  assert_false(ratelimit_policy_item(q, sizeof q, "a\\b", 1, 1, NULL, 0));
  assert_false(ratelimit_policy_item(q, sizeof q, "", 1, 1, NULL, 0));
  assert_false(ratelimit_policy_item(q, sizeof q, "ok", 1, 1, "un\"it", 0));
  assert_string_equal(q, "");
}

static void test_rate_window(void **state) {
  (void)state;
  struct { double rate; int64_t q, w; } cases[] = {
      {10, 10, 1}, {2.5, 5, 2}, {0.5, 1, 2}, {1.0 / 3, 1, 3}, {1000000, 1000000, 1}, {0.01, 1, 100}, {1e-6, 1, 1000000}, {7.0 / 60, 7, 60}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t q, w;
    ratelimit_rate_window(cases[i].rate, &q, &w);
    assert_int_equal(q, cases[i].q);
    assert_int_equal(w, cases[i].w);
  }
}

static void test_parse_rate(void **state) {
  (void)state;
  double v;
  inferd_status st = limits_parse_rate("--rate-limit", "10", &v);
  assert_true(status_is_ok(&st));
  assert_true(v == 10);
  st = limits_parse_rate("--rate-limit", "10/s", &v);
  assert_true(status_is_ok(&st) && v == 10);
  st = limits_parse_rate("--rate-limit", "600/m", &v);
  assert_true(status_is_ok(&st) && v == 10);
  st = limits_parse_rate("--rate-limit", "30/min", &v);
  assert_true(status_is_ok(&st) && v == 0.5);
  st = limits_parse_rate("--rate-limit", "3600/h", &v);
  assert_true(status_is_ok(&st) && v == 1);
  st = limits_parse_rate("--rate-limit", "0.5", &v);
  assert_true(status_is_ok(&st) && v == 0.5);
  const char *bad[] = {"", "/s", "10/d", "10/", "ten", "0", "-1", "nan", "inf", "2000000", "10 /s", "1/s/s"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    st = limits_parse_rate("--rate-limit", bad[i], &v);
    assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
    assert_non_null(strstr(st.msg, "--rate-limit"));
  }
}

static void test_policy_of(void **state) {
  (void)state;
  limits_options d = {.rate_per_s = 10, .burst = 30, .max_concurrent = 4, .records_per_min = 600};
  limits_policy p;
  limits_policy_of(&d, NULL, &p); /* anonymous: the defaults */
  assert_true(p.has_requests && p.has_records);
  assert_true(p.requests.rate_per_s == 10);
  assert_int_equal(p.requests.burst, 30);
  assert_int_equal(p.max_concurrent, 4);
  assert_true(p.records.rate_per_s == 10);
  assert_int_equal(p.records.burst, 600);
  principal *k = principal_create(PRINCIPAL_API_KEY, "alice");
  k->rate_per_s = 2; /* a key's rate comes with its own burst: a second's worth */
  k->max_concurrent = 1;
  limits_policy_of(&d, k, &p);
  assert_true(p.requests.rate_per_s == 2);
  assert_int_equal(p.requests.burst, 2);
  assert_int_equal(p.max_concurrent, 1);
  assert_int_equal(p.records.burst, 600);
  k->burst = 7;
  k->records_per_min = 60;
  limits_policy_of(&d, k, &p);
  assert_int_equal(p.requests.burst, 7);
  assert_int_equal(p.records.burst, 60);
  assert_true(p.records.rate_per_s == 1);
  /* no defaults: only what the key says */
  limits_options none = {0};
  limits_policy_of(&none, NULL, &p);
  assert_false(p.has_requests || p.has_records || p.max_concurrent);
  k->rate_per_s = 0.5; /* under one a second: a burst of one */
  k->burst = 0;
  limits_policy_of(&none, k, &p);
  assert_true(p.has_requests);
  assert_int_equal(p.requests.burst, 1);
  /* values out of the limiter's range are brought into it */
  k->rate_per_s = 1e12;
  k->burst = 1e12;
  limits_policy_of(&none, k, &p);
  assert_null(ratelimit_rule_check(&p.requests));
  k->rate_per_s = 1e-9;
  k->burst = 1;
  limits_policy_of(&none, k, &p);
  assert_null(ratelimit_rule_check(&p.requests));
  principal_unref(k);
}

/* ---- the local store ---- */

static void test_store_keys_are_separate(void **state) {
  (void)state;
  limit_store *s;
  inferd_status st = limit_store_local_create(0, &s);
  assert_true(status_is_ok(&st));
  ratelimit_rule r = {.rate_per_s = 1, .burst = 2};
  ratelimit_decision d;
  for (int i = 0; i < 2; i++) {
    s->ops->rate_take(s, "api_key:a", LIMIT_REQUESTS, &r, 1, T0, &d);
    assert_true(d.allowed);
  }
  s->ops->rate_take(s, "api_key:a", LIMIT_REQUESTS, &r, 1, T0, &d);
  assert_false(d.allowed);
  s->ops->rate_take(s, "api_key:b", LIMIT_REQUESTS, &r, 1, T0, &d); /* another key: its own budget */
  assert_true(d.allowed);
  s->ops->rate_take(s, "api_key:a", LIMIT_RECORDS, &r, 2, T0, &d); /* another kind: its own bucket */
  assert_true(d.allowed);
  s->ops->rate_return(s, "api_key:a", LIMIT_REQUESTS, &r, 1, T0);
  s->ops->rate_take(s, "api_key:a", LIMIT_REQUESTS, &r, 1, T0, &d);
  assert_true(d.allowed);
  void *lease1, *lease2, *lease3;
  s->ops->concurrency_take(s, "api_key:a", 2, T0, &d, &lease1);
  assert_true(d.allowed && lease1);
  s->ops->concurrency_take(s, "api_key:a", 2, T0, &d, &lease2);
  assert_true(d.allowed);
  s->ops->concurrency_take(s, "api_key:a", 2, T0, &d, &lease3);
  assert_false(d.allowed);
  assert_null(lease3);
  s->ops->concurrency_return(s, lease1);
  s->ops->concurrency_take(s, "api_key:a", 2, T0, &d, &lease3);
  assert_true(d.allowed);
  s->ops->concurrency_return(s, lease2);
  s->ops->concurrency_return(s, lease3);
  assert_int_equal(limit_store_local_size(s), 2);
  limit_store_destroy(s);
}

static void test_store_eviction(void **state) {
  (void)state;
  limit_store *s;
  inferd_status st = limit_store_local_create(64, &s); /* 2 keys a stripe */
  assert_true(status_is_ok(&st));
  ratelimit_rule r = {.rate_per_s = 1, .burst = 1};
  ratelimit_decision d;
  char key[32];
  /* many keys at once: the store never holds more than its bound */
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "k%d", i);
    s->ops->rate_take(s, key, LIMIT_REQUESTS, &r, 1, T0 + i, &d);
    assert_true(d.allowed);
  }
  assert_in_range(limit_store_local_size(s), 1, 64);
  /* a key with a request in flight is never dropped, however many keys come after */
  void *lease;
  s->ops->concurrency_take(s, "busy", 1, T0, &d, &lease);
  assert_true(d.allowed);
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "x%d", i);
    s->ops->rate_take(s, key, LIMIT_REQUESTS, &r, 1, T0 + 2000 + i, &d);
  }
  s->ops->concurrency_take(s, "busy", 1, T0 + 5000, &d, &lease);
  assert_false(d.allowed); /* still counted: the slot was not forgotten */
  /* idle keys go first, and losslessly: a key whose bucket has refilled answers as a new one */
  s->ops->rate_take(s, "k999", LIMIT_REQUESTS, &r, 1, T0 + 10 * SEC, &d);
  assert_true(d.allowed);
  limit_store_destroy(s);
}

typedef struct {
  limit_store *s;
  int allowed;
  int max_seen;
} worker_arg;

static _Atomic int in_flight_now;

static void *worker(void *p) {
  worker_arg *w = p;
  ratelimit_decision d;
  for (int i = 0; i < 20000; i++) {
    void *lease;
    w->s->ops->concurrency_take(w->s, "shared", 3, T0, &d, &lease);
    if (!d.allowed) continue;
    int now = atomic_fetch_add(&in_flight_now, 1) + 1;
    if (now > w->max_seen) w->max_seen = now;
    atomic_fetch_sub(&in_flight_now, 1);
    w->s->ops->concurrency_return(w->s, lease);
    w->allowed++;
  }
  return NULL;
}

static void test_store_concurrency_under_threads(void **state) {
  (void)state;
  limit_store *s;
  inferd_status st = limit_store_local_create(0, &s);
  assert_true(status_is_ok(&st));
  pthread_t t[8];
  worker_arg a[8];
  for (int i = 0; i < 8; i++) {
    a[i] = (worker_arg){.s = s};
    pthread_create(&t[i], NULL, worker, &a[i]);
  }
  int total = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(t[i], NULL);
    assert_in_range(a[i].max_seen, 0, 3);
    total += a[i].allowed;
  }
  assert_true(total > 0);
  /* every slot came back */
  ratelimit_decision d;
  void *leases[3];
  for (int i = 0; i < 3; i++) {
    s->ops->concurrency_take(s, "shared", 3, T0, &d, &leases[i]);
    assert_true(d.allowed);
  }
  for (int i = 0; i < 3; i++) s->ops->concurrency_return(s, leases[i]);
  limit_store_destroy(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_refused),
      cmocka_unit_test(test_refill_to_the_nanosecond),
      cmocka_unit_test(test_steady_rate_over_ten_seconds),
      cmocka_unit_test(test_costs),
      cmocka_unit_test(test_fractional_rates_are_exact_over_a_burst),
      cmocka_unit_test(test_clock_edges),
      cmocka_unit_test(test_return_and_idle),
      cmocka_unit_test(test_rule_check),
      cmocka_unit_test(test_concurrency),
      cmocka_unit_test(test_seconds),
      cmocka_unit_test(test_fields),
      cmocka_unit_test(test_rate_window),
      cmocka_unit_test(test_parse_rate),
      cmocka_unit_test(test_policy_of),
      cmocka_unit_test(test_store_keys_are_separate),
      cmocka_unit_test(test_store_eviction),
      cmocka_unit_test(test_store_concurrency_under_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
