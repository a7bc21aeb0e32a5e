/* observability/metrics' pure parts: the duration buckets, status classes, the gRPC-to-HTTP
 * mapping, the exposition's escaping; and util/log's text (logfmt) format and new access fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "observability/metrics.h"
#include "util/log.h"

static void test_duration_buckets(void **state) {
  (void)state;
  /* a bound belongs to its own bucket (le is "less or equal"), one more ns to the next */
  for (int b = 0; b < METRICS_DURATION_BUCKETS; b++) {
    int64_t bound = metrics_duration_bounds_ns[b];
    assert_int_equal(metrics_duration_bucket(bound), b);
    assert_int_equal(metrics_duration_bucket(bound + 1), b + 1);
    if (b > 0) assert_true(metrics_duration_bounds_ns[b - 1] < bound);
  }
  assert_int_equal(metrics_duration_bucket(0), 0);
  assert_int_equal(metrics_duration_bucket(INT64_MAX), METRICS_DURATION_BUCKETS); /* +Inf */
}

static void test_status_classes(void **state) {
  (void)state;
  assert_string_equal(metrics_status_class_name(metrics_status_class(200)), "2xx");
  assert_string_equal(metrics_status_class_name(metrics_status_class(404)), "4xx");
  assert_string_equal(metrics_status_class_name(metrics_status_class(503)), "5xx");
  assert_string_equal(metrics_status_class_name(metrics_status_class(101)), "other");
  assert_int_equal(metrics_grpc_http_status(0), 200);
  assert_int_equal(metrics_grpc_http_status(3), 400);  /* INVALID_ARGUMENT */
  assert_int_equal(metrics_grpc_http_status(5), 404);  /* NOT_FOUND */
  assert_int_equal(metrics_grpc_http_status(14), 503); /* UNAVAILABLE */
  assert_int_equal(metrics_grpc_http_status(13), 500); /* INTERNAL */
  assert_int_equal(metrics_grpc_http_status(16), 401); /* UNAUTHENTICATED */
}

static void test_escaping(void **state) {
  (void)state;
  metrics_text t;
  metrics_text_init(&t);
  metrics_text_family(&t, "x_total", "counter", "a \\ b\nc \"q\"");
  metrics_text_puts(&t, "x_total{model=");
  metrics_text_label_value(&t, "we\"ird\\na\nme");
  metrics_text_puts(&t, "} 1\n");
  assert_false(t.oom);
  assert_string_equal(t.buf, "# HELP x_total a \\\\ b\\nc \"q\"\n# TYPE x_total counter\n"
                             "x_total{model=\"we\\\"ird\\\\na\\nme\"} 1\n");
  metrics_text_free(&t);
  /* growth past the first allocation */
  metrics_text_init(&t);
  for (int i = 0; i < 5000; i++) metrics_text_printf(&t, "line %d\n", i);
  assert_false(t.oom);
  assert_non_null(strstr(t.buf, "line 4999\n"));
  metrics_text_free(&t);
}

static void test_access_fields_json(void **state) {
  (void)state;
  log_set_format(LOG_FORMAT_JSON);
  access_record r = {.request_id = "r1", .method = "POST", .path = "/v2/models/m/infer", .model = "m", .version = "2",
                     .status = 200, .latency_us = 900, .bytes_in = 10, .bytes_out = 20, .trace_id = "0af7651916cd43dd8448eb211c80319c",
                     .principal = "svc-a", .arm = "canary", .timed = true, .queue_us = 30, .compute_us = 400};
  char line[LOG_ACCESS_LINE_MAX];
  size_t n = log_access_format(&r, line, sizeof line);
  json_error_t err;
  json_t *v = json_loadb(line, n, 0, &err);
  assert_non_null(v);
  assert_string_equal(json_string_value(json_object_get(v, "trace_id")), r.trace_id);
  assert_string_equal(json_string_value(json_object_get(v, "principal")), "svc-a");
  assert_string_equal(json_string_value(json_object_get(v, "arm")), "canary");
  assert_int_equal(json_integer_value(json_object_get(v, "queue_us")), 30);
  assert_int_equal(json_integer_value(json_object_get(v, "compute_us")), 400);
  assert_int_equal(json_integer_value(json_object_get(v, "latency_us")), 900);
  json_decref(v);
  r.timed = false; /* never ran: no stage times, rather than zeros */
  r.principal = NULL;
  n = log_access_format(&r, line, sizeof line);
  v = json_loadb(line, n, 0, &err);
  assert_non_null(v);
  assert_true(json_is_null(json_object_get(v, "queue_us")));
  assert_string_equal(json_string_value(json_object_get(v, "principal")), "");
  json_decref(v);
}

static void test_access_text_format(void **state) {
  (void)state;
  log_set_format(LOG_FORMAT_TEXT);
  access_record r = {.request_id = "r1", .method = "GET", .path = "/a b\n\"c\"", .model = NULL, .version = NULL,
                     .status = 404, .latency_us = 5, .bytes_in = 0, .bytes_out = 30};
  char line[LOG_ACCESS_LINE_MAX];
  size_t n = log_access_format(&r, line, sizeof line);
  log_set_format(LOG_FORMAT_JSON);
  line[n] = '\0';
  /* one line, key=value, strings quoted and escaped */
  assert_int_equal(line[n - 1], '\n');
  assert_null(memchr(line, '\n', n - 1));
  assert_true(strncmp(line, "time=", 5) == 0);
  assert_non_null(strstr(line, " type=\"access\" request_id=\"r1\" method=\"GET\" path=\"/a b\\n\\\"c\\\"\" model=null"));
  assert_non_null(strstr(line, " status=404 latency_us=5 queue_us=null"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_duration_buckets),   cmocka_unit_test(test_status_classes),
      cmocka_unit_test(test_escaping),           cmocka_unit_test(test_access_fields_json),
      cmocka_unit_test(test_access_text_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
