/* security/limits' tokens per minute for text generation: a reservation (prompt + max_tokens)
 * at the hand-off, what a generation did not use given back at its end, refusals that say which
 * budget and when it fits, a key's own budget over the default, anonymous callers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "core/principal.h"
#include "security/limits.h"

static void test_reserve_and_give_back(void **state) {
  (void)state;
  limits_options o = {.tokens_per_min = 100};
  limits *l;
  inferd_status st = limits_create(&o, NULL, &l);
  assert_int_equal(st.code, INFERD_OK);
  principal *p = principal_create(PRINCIPAL_API_KEY, "alice");
  st = limits_tokens_take(l, p, "tinylm", 60);
  assert_int_equal(st.code, INFERD_OK);
  st = limits_tokens_take(l, p, "tinylm", 60);
  assert_int_equal(st.code, INFERD_RATE_LIMITED);
  assert_non_null(strstr(st.msg, "token limit: 'alice' may use 100 tokens per minute"));
  /* the first generation used 10 of its 60: 50 come back, and 60 fit again */
  limits_tokens_give_back(l, p, "tinylm", 50);
  st = limits_tokens_take(l, p, "tinylm", 60);
  assert_int_equal(st.code, INFERD_OK);
  /* more than a minute's budget can never fit */
  st = limits_tokens_take(l, p, "tinylm", 101);
  assert_int_equal(st.code, INFERD_TOO_LARGE);
  assert_non_null(strstr(st.msg, "lower max_tokens"));
  /* another caller has its own budget; anonymous too */
  principal *b = principal_create(PRINCIPAL_API_KEY, "bob");
  assert_int_equal(limits_tokens_take(l, b, "tinylm", 90).code, INFERD_OK);
  assert_int_equal(limits_tokens_take(l, NULL, "tinylm", 90).code, INFERD_OK);
  assert_int_equal(limits_tokens_take(l, NULL, "tinylm", 90).code, INFERD_RATE_LIMITED);
  /* a key's own limit over the default */
  principal *c = principal_create(PRINCIPAL_API_KEY, "carol");
  c->tokens_per_min = 1000;
  assert_int_equal(limits_tokens_take(l, c, "tinylm", 900).code, INFERD_OK);
  principal_unref(p);
  principal_unref(b);
  principal_unref(c);
  limits_destroy(l);
}

static void test_no_budget(void **state) {
  (void)state;
  limits_options o = {0};
  limits *l;
  assert_int_equal(limits_create(&o, NULL, &l).code, INFERD_OK);
  for (int i = 0; i < 100; i++) assert_int_equal(limits_tokens_take(l, NULL, "m", 1000000).code, INFERD_OK);
  limits_tokens_give_back(l, NULL, "m", 5); /* nothing to give back to: no effect, no crash */
  limits_destroy(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_reserve_and_give_back), cmocka_unit_test(test_no_budget)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
