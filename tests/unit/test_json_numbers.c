/* The fast scanner of JSON number arrays: values equal to strtod's, strict JSON grammar
 * (anything else is declined, never guessed), and locating inputs[k].data in a V2 body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "frontends/http/json_numbers.h"

typedef struct collected {
  jnum_scalar v[64];
  int n;
} collected;

static bool collect(const jnum_scalar *v, void *ctx) {
  collected *c = ctx;
  if (c->n == 64) return false;
  c->v[c->n++] = *v;
  return true;
}

static scan_result scan(const char *text, collected *c) {
  c->n = 0;
  return jnum_scan(text, strlen(text), 8, collect, c);
}

static void test_values_and_nesting(void **state) {
  (void)state;
  collected c;
  assert_int_equal(scan(" [[1, -2.5e3], [true,false], [ 0.1 , -0 ]] ", &c), SCAN_OK);
  assert_int_equal(c.n, 6);
  assert_int_equal(c.v[0].kind, JS_INT);
  assert_int_equal(c.v[0].i, 1);
  assert_int_equal(c.v[1].kind, JS_REAL);
  assert_true(c.v[1].d == -2500.0);
  assert_int_equal(c.v[2].kind, JS_TRUE);
  assert_int_equal(c.v[3].kind, JS_FALSE);
  assert_true(c.v[4].d == 0.1);
  assert_int_equal(c.v[5].kind, JS_INT);
  assert_int_equal(scan("[]", &c), SCAN_OK);
  assert_int_equal(c.n, 0);
  assert_int_equal(scan("[[],[]]", &c), SCAN_OK);
  assert_int_equal(scan("[9223372036854775807, -9223372036854775808]", &c), SCAN_OK);
  assert_int_equal(c.v[1].i, INT64_MIN);
}

static void expect_strtod(const char *text) {
  collected c;
  if (scan(text, &c) != SCAN_OK) fail_msg("%s: declined", text);
  double want = strtod(text + 1, NULL);
  if (memcmp(&c.v[0].d, &want, sizeof want) != 0) fail_msg("%s: got %.17g, strtod %.17g", text, c.v[0].d, want);
}

static void test_reals_equal_strtod(void **state) {
  (void)state;
  srand(7);
  char text[80];
  /* every digit count from 1 to 20 (past the fast path's 19) and exponents past its +-27 */
  for (int k = 0; k < 200000; k++) {
    double x = ((double)rand() / RAND_MAX - 0.5) * pow(10.0, rand() % 70 - 35);
    snprintf(text, sizeof text, k % 2 ? "[%.*g]" : "[%.*e]", 1 + rand() % 20, x);
    if (strpbrk(text, ".e")) expect_strtod(text); /* not integers, which may leave int64's range */
  }
  /* float32 values as clients print them (numpy's tolist() then json: float64 repr) */
  for (int k = 0; k < 100000; k++) {
    float f = (float)(((double)rand() / RAND_MAX - 0.5) * pow(10.0, rand() % 12 - 6));
    snprintf(text, sizeof text, "[%.17g]", (double)f);
    expect_strtod(text);
  }
  /* halfway between two doubles, to 19 digits: the cases a second rounding could get wrong */
  for (int k = 0; k < 20000; k++) {
    double a = ((double)rand() / RAND_MAX + 0.01) * pow(10.0, rand() % 20 - 10);
    long double mid = ((long double)a + (long double)nextafter(a, 2 * a)) / 2;
    snprintf(text, sizeof text, "[%.18Le]", mid);
    expect_strtod(text);
  }
  expect_strtod("[-0.0]");
  expect_strtod("[0.0e5]");
  expect_strtod("[9999999999999999999.0]");
  expect_strtod("[1e27]");
  expect_strtod("[-1.5e-27]");
}

static void test_declines_what_is_not_plain_numbers(void **state) {
  (void)state;
  const char *const bad[] = {"[1 2]", "[1,]", "[,1]", "[01]", "[1.]", "[.5]", "[-]", "[1e]", "[+1]", "[\"a\"]",
                             "[null]", "[{}]", "[1]x", "[1", "1", "[nan]", "[-NaN]", "[+Infinity]", "[Inf]", "[NaNx]",
                             "[Infinityy]", "[Infinit]", "[-infinity]", "[0x10]",
                             "[99999999999999999999]", "[[[[[[[[[1]]]]]]]]]", "[tru]", "[1e999]"};
  collected c;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (scan(bad[i], &c) != SCAN_DECLINED) fail_msg("accepted %s", bad[i]);
}

/* The literals the server writes for non-finite values are read back (issue 10, item 7). */
static void test_non_finite_literals(void **state) {
  (void)state;
  collected c;
  assert_int_equal(scan("[NaN, Infinity,-Infinity ,[1]]", &c), SCAN_OK);
  assert_int_equal(c.n, 4);
  assert_int_equal(c.v[0].kind, JS_REAL);
  assert_true(isnan(c.v[0].d));
  assert_int_equal(c.v[1].kind, JS_REAL);
  assert_true(isinf(c.v[1].d) && c.v[1].d > 0);
  assert_int_equal(c.v[2].kind, JS_REAL);
  assert_true(isinf(c.v[2].d) && c.v[2].d < 0);
  assert_int_equal(c.v[3].kind, JS_INT);
}

static void test_finds_data_spans(void **state) {
  (void)state;
  const char *body = "{\"id\":\"x\",\"inputs\":[{\"name\":\"a\",\"data\":[1,2],\"shape\":[2]},"
                     "{\"data\":\"not an array\",\"name\":\"b\"},{\"name\":\"c\",\"data\" : [[3]] }],\"outputs\":[]}";
  jnum_span spans[4];
  int n = v2_find_data_spans(body, strlen(body), spans, 4);
  assert_int_equal(n, 3);
  assert_int_equal(spans[0].end - spans[0].start, 5);
  assert_memory_equal(body + spans[0].start, "[1,2]", 5);
  assert_int_equal(spans[1].end, spans[1].start);
  assert_memory_equal(body + spans[2].start, "[[3]]", 5);
  assert_int_equal(v2_find_data_spans("{\"inputs\":[{\"data\":[1]}", 22, spans, 4), -1);
  assert_int_equal(v2_find_data_spans("[1]", 3, spans, 4), -1);
  assert_int_equal(v2_find_data_spans("{\"inputs\":[{},{},{}]}", 21, spans, 2), -1);
  /* a body ending right after a key's colon: nothing may be read past it (found by
   * tests/fuzz/fuzz_json_numbers; the ASan build sees a read past this exact-size buffer) */
  static const char cut[] = "{\"inputs\":";
  char *exact = malloc(sizeof cut - 1);
  memcpy(exact, cut, sizeof cut - 1);
  assert_int_equal(v2_find_data_spans(exact, sizeof cut - 1, spans, 4), -1);
  free(exact);
}

typedef struct brackets {
  char trace[64];
  int n;
  int stop_at; /* stop at this bracket (-1: never) */
} brackets;

static bool on_leaf(const jnum_scalar *v, void *ctx) {
  (void)v;
  brackets *b = ctx;
  if (b->n < 63) b->trace[b->n++] = 'v';
  return true;
}

static bool on_bracket(bool open, void *ctx) {
  brackets *b = ctx;
  if (b->n < 63) b->trace[b->n++] = open ? '[' : ']';
  return b->n != b->stop_at;
}

/* The nested scan reports the structure in order, the outermost array included, and a false
 * from the bracket callback stops it. */
static void test_nested_scan_reports_brackets(void **state) {
  (void)state;
  brackets b = {.stop_at = -1};
  const char *text = "[[1,2],[],[[3]]]";
  assert_int_equal(jnum_scan_nested(text, strlen(text), 8, on_leaf, on_bracket, &b), SCAN_OK);
  b.trace[b.n] = '\0';
  assert_string_equal(b.trace, "[[vv][][[v]]]");
  b = (brackets){.stop_at = 2};
  assert_int_equal(jnum_scan_nested(text, strlen(text), 8, on_leaf, on_bracket, &b), SCAN_STOPPED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nested_scan_reports_brackets),
      cmocka_unit_test(test_values_and_nesting),
      cmocka_unit_test(test_reals_equal_strtod),
      cmocka_unit_test(test_declines_what_is_not_plain_numbers),
      cmocka_unit_test(test_non_finite_literals),
      cmocka_unit_test(test_finds_data_spans),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
