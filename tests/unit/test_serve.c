/* core/serve: the one deadline rule as a table (sources + now -> deadline or error), the one
 * JSON-number conversion every JSON route uses, and the stage registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "app/tensor_json.h"
#include "core/serve.h"

#define MS (INT64_C(1000000)) /* ns */
#define NOW (INT64_C(1000) * MS)

typedef struct deadline_case {
  const char *what;
  serve_deadline_sources src;
  int64_t want;           /* deadline in ns, 0: none */
  const char *error;      /* non-NULL: INVALID_ARGUMENT whose message holds this */
} deadline_case;

static void test_deadline_rule(void **state) {
  (void)state;
  static const deadline_case cases[] = {
      {"nothing", {0}, 0, NULL},
      {"gRPC deadline only", {.client_deadline_ns = NOW + 70 * MS}, NOW + 70 * MS, NULL},
      {"header only", {.timeout_header = "250"}, NOW + 250 * MS, NULL},
      {"parameter only", {.param_timeout_us = 40000}, NOW + 40 * MS, NULL},
      {"model default only", {.model_default_us = 100000}, NOW + 100 * MS, NULL},
      {"header earlier than parameter", {.timeout_header = "10", .param_timeout_us = 40000}, NOW + 10 * MS, NULL},
      {"parameter earlier than header", {.timeout_header = "100", .param_timeout_us = 5000}, NOW + 5 * MS, NULL},
      {"gRPC deadline earlier than parameter", {.client_deadline_ns = NOW + 3 * MS, .param_timeout_us = 40000},
       NOW + 3 * MS, NULL},
      {"parameter earlier than gRPC deadline", {.client_deadline_ns = NOW + 90 * MS, .param_timeout_us = 40000},
       NOW + 40 * MS, NULL},
      {"all three: the earliest", {.client_deadline_ns = NOW + 30 * MS, .timeout_header = "20", .param_timeout_us = 25000},
       NOW + 20 * MS, NULL},
      {"a client's longer timeout overrides the model default", {.param_timeout_us = 20000000, .model_default_us = 100000},
       NOW + 20000 * MS, NULL},
      {"a client's shorter timeout wins over the model default", {.timeout_header = "5", .model_default_us = 100000},
       NOW + 5 * MS, NULL},
      {"gRPC deadline earlier than the model default", {.client_deadline_ns = NOW + 7 * MS, .model_default_us = 100000},
       NOW + 7 * MS, NULL},
      {"the model default earlier than the gRPC deadline", {.client_deadline_ns = NOW + 30000 * MS, .model_default_us = 100000},
       NOW + 100 * MS, NULL},
      {"a longer parameter overrides the default, the gRPC deadline still bounds it",
       {.client_deadline_ns = NOW + 500 * MS, .param_timeout_us = 20000000, .model_default_us = 100000}, NOW + 500 * MS, NULL},
      {"header 0 is no timeout: the default applies", {.timeout_header = "0", .model_default_us = 100000},
       NOW + 100 * MS, NULL},
      {"malformed header", {.timeout_header = "1e3"}, 0, "not a whole number"},
      {"malformed header even when the gRPC deadline is earlier", {.client_deadline_ns = NOW + 1, .timeout_header = "x"}, 0,
       "X-Request-Timeout-Ms"},
      {"negative parameter", {.param_timeout_us = -1, .param_timeout_what = "parameters.timeout"}, 0,
       "parameters.timeout is -1"},
      {"parameter over a day", {.param_timeout_us = INFER_MAX_TIMEOUT_US + 1}, 0, "one day"},
      {"header over a day", {.timeout_header = "86400001"}, 0, "more than the maximum"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const deadline_case *c = &cases[i];
    int64_t got = -1;
    inferd_status st = serve_deadline(&c->src, NOW, &got);
    if (c->error) {
      if (st.code != INFERD_INVALID_ARGUMENT || strstr(st.msg, c->error) == NULL)
        fail_msg("%s: want an error with '%s', got code %d '%s'", c->what, c->error, st.code, st.msg);
    } else {
      if (!status_is_ok(&st)) fail_msg("%s: unexpected error '%s'", c->what, st.msg);
      if (got != c->want)
        fail_msg("%s: deadline %lld, want %lld", c->what, (long long)(got - NOW), (long long)(c->want - NOW));
    }
  }
}

typedef struct number_case {
  inferd_datatype dt;
  bool is_int;
  long long i;
  double d;
  tensor_number_result want;
} number_case;

static void test_json_number_conversion(void **state) {
  (void)state;
  static const number_case cases[] = {
      {DT_UINT8, true, 255, 255, TENSOR_NUMBER_OK},
      {DT_UINT8, true, 300, 300, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_UINT8, false, 0, 300.0, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_UINT8, true, -1, -1, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_UINT8, false, 0, 2.5, TENSOR_NUMBER_NOT_WHOLE},
      {DT_UINT8, false, 0, 7.0, TENSOR_NUMBER_OK},
      {DT_INT8, true, -128, -128, TENSOR_NUMBER_OK},
      {DT_INT8, true, 128, 128, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_UINT16, true, 65536, 65536, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_INT32, false, 0, 2147483648.0, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_UINT64, false, 0, 1e19, TENSOR_NUMBER_OK},
      {DT_UINT64, false, 0, 1e20, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_INT64, false, 0, 1e19, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_INT64, false, 0, 1.0 / 0.0, TENSOR_NUMBER_NOT_WHOLE},
      {DT_BOOL, true, 1, 1, TENSOR_NUMBER_OK},
      {DT_BOOL, true, 2, 2, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_FP16, false, 0, 65504.0, TENSOR_NUMBER_OK},
      {DT_FP16, false, 0, 70000.0, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_FP32, false, 0, 1e39, TENSOR_NUMBER_OUT_OF_RANGE},
      {DT_FP32, false, 0, 0.5, TENSOR_NUMBER_OK},
      {DT_FP64, false, 0, 1e300, TENSOR_NUMBER_OK},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const number_case *c = &cases[k];
    uint8_t dst[8] = {0};
    tensor_number_result r = tensor_number_store(c->dt, c->is_int, c->i, c->d, dst);
    if (r != c->want)
      fail_msg("case %zu (%s %g): result %d, want %d", k, datatype_name(c->dt), c->is_int ? (double)c->i : c->d, r, c->want);
  }
  uint8_t u = 0;
  assert_int_equal(tensor_number_store(DT_UINT8, true, 200, 200, &u), TENSOR_NUMBER_OK);
  assert_int_equal(u, 200);
  int16_t s = 0;
  assert_int_equal(tensor_number_store(DT_INT16, false, 0, -300.0, &s), TENSOR_NUMBER_OK);
  assert_int_equal(s, -300);
}

static void test_stage_names(void **state) {
  (void)state;
  static const char *const want[] = {"admit", "route", "check", "lookup", "schedule", "fork",
                                     "stats", "trace", "drift", "cache_store", "log"};
  assert_int_equal(SERVE_STAGE_COUNT, sizeof want / sizeof want[0]);
  for (int i = 0; i < SERVE_STAGE_COUNT; i++) assert_string_equal(serve_stage_name((serve_stage)i), want[i]);
}

/* Reply headers: added whole or dropped (too long, or past the bound), with or without the
 * lengths given. */
static void test_reply_headers(void **state) {
  (void)state;
  serve_headers h = {0};
  serve_headers_add(&h, "RateLimit", "\"requests\";r=9");
  assert_int_equal(h.n, 1);
  assert_string_equal(h.h[0].name, "RateLimit");
  assert_string_equal(h.h[0].value, "\"requests\";r=9");
  /* addn copies exactly the lengths given: the source needs no terminator */
  serve_headers_addn(&h, "RateLimit-Policy-and-more", 16, "\"requests\";q=5;w=1, more", 18);
  assert_int_equal(h.n, 2);
  assert_string_equal(h.h[1].name, "RateLimit-Policy");
  assert_string_equal(h.h[1].value, "\"requests\";q=5;w=1");
  char name[40], value[240];
  memset(name, 'N', sizeof name);
  memset(value, 'v', sizeof value);
  size_t ncap = sizeof h.h[0].name, vcap = sizeof h.h[0].value;
  serve_headers_addn(&h, name, ncap, "v", 1); /* no room for the terminator: dropped */
  serve_headers_addn(&h, "X", 1, value, vcap);
  assert_int_equal(h.n, 2);
  serve_headers_addn(&h, name, ncap - 1, value, vcap - 1); /* the longest that fit */
  assert_int_equal(h.n, 3);
  assert_int_equal(strlen(h.h[2].name), ncap - 1);
  assert_int_equal(strlen(h.h[2].value), vcap - 1);
  while (h.n < SERVE_MAX_REPLY_HEADERS) serve_headers_add(&h, "X-A", "b");
  serve_headers_add(&h, "X-B", "c");
  serve_headers_addn(&h, "X-B", 3, "c", 1);
  assert_int_equal(h.n, SERVE_MAX_REPLY_HEADERS);
  serve_headers_add(NULL, "X", "y"); /* a frontend without reply headers */
  serve_headers_addn(NULL, "X", 1, "y", 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deadline_rule),
      cmocka_unit_test(test_json_number_conversion),
      cmocka_unit_test(test_stage_names),
      cmocka_unit_test(test_reply_headers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
