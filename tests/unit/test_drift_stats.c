/* Drift detection's pure parts (observability/drift_stats.h, drift_profile.h) and the sliding
 * window driven with explicit times (drift_observe_at): edge cases. The statistics' values are
 * checked against numpy/scipy in tests/e2e/test_drift.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "core/infer.h"
#include "core/model.h"
#include "core/model_config.h"
#include "observability/drift.h"
#include "observability/drift_profile.h"
#include "observability/drift_stats.h"

static void test_psi_identical_and_empty(void **state) {
  (void)state;
  double a[] = {10, 20, 30, 40}, b[] = {1, 2, 3, 4}, z[] = {0, 0, 0, 0};
  assert_true(fabs(drift_psi(a, b, 4)) < 1e-12); /* same proportions, different totals */
  assert_true(isnan(drift_psi(a, z, 4)));
  assert_true(isnan(drift_psi(z, a, 4)));
  assert_true(isnan(drift_js_distance(z, a, 4)));
  assert_true(isnan(drift_ks(a, z, 4)));
  assert_true(isnan(drift_psi(a, b, 0)));
}

/* An emptied bin is floored at DRIFT_EPSILON, so PSI stays finite (and large). */
static void test_psi_epsilon_for_zero_bins(void **state) {
  (void)state;
  double ref[] = {50, 50}, cur[] = {100, 0};
  double p0 = 0.5, p1 = 0.5, q0 = 1.0, q1 = DRIFT_EPSILON;
  double want = (q0 - p0) * log(q0 / p0) + (q1 - p1) * log(q1 / p1);
  assert_true(isfinite(drift_psi(ref, cur, 2)));
  assert_true(fabs(drift_psi(ref, cur, 2) - want) < 1e-12);
  /* zero in the reference too: the same floor on that side */
  double ref2[] = {100, 0}, cur2[] = {100, 0};
  assert_true(fabs(drift_psi(ref2, cur2, 2)) < 1e-12);
  /* negative counts (a hand-edited profile is rejected, but never trusted here) count as 0 */
  double ref3[] = {100, -5};
  assert_true(fabs(drift_psi(ref3, cur2, 2)) < 1e-12);
}

static void test_js_and_ks_bounds(void **state) {
  (void)state;
  double a[] = {1, 0, 0}, b[] = {0, 0, 1}, c[] = {5, 5, 5};
  assert_true(fabs(drift_js_distance(a, b, 3) - 1.0) < 1e-12); /* disjoint: the maximum, base 2 */
  assert_true(fabs(drift_js_distance(c, c, 3)) < 1e-12);
  assert_true(fabs(drift_ks(a, b, 3) - 1.0) < 1e-12);
  assert_true(fabs(drift_ks(c, c, 3)) < 1e-12);
  double d[] = {1, 1, 2}; /* cdfs 1/3, 2/3, 1 against 1/4, 1/2, 1 */
  assert_true(fabs(drift_ks(c, d, 3) - (2.0 / 3 - 0.5)) < 1e-12);
}

static void test_bin_of_boundaries(void **state) {
  (void)state;
  double e[] = {1, 2, 3};
  assert_int_equal(drift_bin_of(e, 3, 0.5), 0);
  assert_int_equal(drift_bin_of(e, 3, 1), 1); /* an edge belongs to the bin above it */
  assert_int_equal(drift_bin_of(e, 3, 2.5), 2);
  assert_int_equal(drift_bin_of(e, 3, 3), 3);
  assert_int_equal(drift_bin_of(e, 3, 1e300), 3);
  assert_int_equal(drift_bin_of(e, 3, -INFINITY), 0);
  assert_int_equal(drift_bin_of(e, 3, NAN), 0);
  assert_int_equal(drift_bin_of(e, 0, 42), 0);
}

static void test_quantile_edges(void **state) {
  (void)state;
  double v[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, e[9];
  assert_int_equal(drift_quantile_edges(v, 10, 10, e), 9);
  assert_true(fabs(e[0] - 0.9) < 1e-12 && fabs(e[8] - 8.1) < 1e-12); /* linear interpolation */
  double ties[] = {1, 1, 1, 1, 1, 1, 1, 1, 2, 3};
  size_t n = drift_quantile_edges(ties, 10, 10, e);
  for (size_t i = 1; i < n; i++) assert_true(e[i] > e[i - 1]); /* repeats removed */
  assert_true(n < 9);
  double one[] = {7};
  assert_int_equal(drift_quantile_edges(one, 1, 10, e), 1);
  assert_true(e[0] == 7);
  assert_int_equal(drift_quantile_edges(one, 0, 10, e), 0);
}

static void test_hist_numeric_skips_nan(void **state) {
  (void)state;
  double v[] = {NAN, 1, 2, NAN, 3, 4};
  drift_hist h;
  assert_int_equal(drift_hist_numeric("x", v, 6, 2, &h).code, INFERD_OK);
  double total = 0;
  for (size_t i = 0; i < h.n_bins; i++) total += h.counts[i];
  assert_true(total == 4);
  drift_hist_clear(&h);
  double nan_only[] = {NAN, NAN};
  inferd_status st = drift_hist_numeric("empty_feature", nan_only, 2, 10, &h);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "empty_feature"));
  drift_hist_clear(&h);
}

static void expect_parse_error(const char *text, const char *needle) {
  drift_profile *p = NULL;
  inferd_status st = drift_profile_parse(text, strlen(text), &p);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_null(p);
  if (strstr(st.msg, needle) == NULL) fail_msg("'%s' does not mention '%s'", st.msg, needle);
}

static void test_profile_parse_errors(void **state) {
  (void)state;
  expect_parse_error("[]", "JSON object");
  expect_parse_error("{\"format\": \"v0\", \"features\": []}", "format");
  expect_parse_error("{\"format\": \"inferd-reference-profile/1\"}", "features must be an array");
  expect_parse_error("{\"format\": \"inferd-reference-profile/1\", \"features\": [{\"name\": \"a\", \"type\": \"numeric\","
                     " \"edges\": [1, 2], \"counts\": [1, 2]}]}",
                     "features[0].counts must have 3");
  expect_parse_error("{\"format\": \"inferd-reference-profile/1\", \"features\": [{\"name\": \"a\", \"type\": \"numeric\","
                     " \"edges\": [2, 1], \"counts\": [1, 2, 3]}]}",
                     "ascending");
  expect_parse_error("{\"format\": \"inferd-reference-profile/1\", \"features\": [{\"name\": \"a\", \"type\": \"numeric\","
                     " \"edges\": [1], \"counts\": [0, 0]}]}",
                     "all zero");
  expect_parse_error("{\"format\": \"inferd-reference-profile/1\", \"features\": [{\"name\": \"a\", \"type\": \"numeric\","
                     " \"edges\": [1], \"counts\": [1, -1]}]}",
                     "counts[1]");
  expect_parse_error("{\"format\": \"inferd-reference-profile/1\", \"features\": [{\"name\": \"c\", \"type\": "
                     "\"categorical\", \"categories\": [], \"counts\": [1]}]}",
                     "must not be empty");
  expect_parse_error("{\"format\": \"inferd-reference-profile/1\", \"features\": [{\"name\": \"a\", \"type\": \"numeric\","
                     " \"edges\": [1], \"counts\": [1, 1]}, {\"name\": \"a\", \"type\": \"numeric\","
                     " \"edges\": [1], \"counts\": [1, 1]}]}",
                     "twice");
  expect_parse_error("{\"format\": \"inferd-reference-profile/1\", \"features\": [{\"type\": \"numeric\"}]}",
                     "features[0].name");
}

static void test_profile_roundtrip(void **state) {
  (void)state;
  const char *text = "{\"format\": \"inferd-reference-profile/1\", \"rows\": 4, \"features\": ["
                     "{\"name\": \"a\", \"type\": \"numeric\", \"edges\": [0.5], \"counts\": [1, 3]},"
                     "{\"name\": \"c\", \"type\": \"categorical\", \"categories\": [\"x\", \"y\"], \"counts\": [2, 2, 0]}],"
                     "\"prediction\": {\"name\": \"prediction\", \"type\": \"categorical\", \"categories\": [\"no\"],"
                     " \"counts\": [4, 0]}}";
  drift_profile *p;
  assert_int_equal(drift_profile_parse(text, strlen(text), &p).code, INFERD_OK);
  json_t *j = drift_profile_json(p, "m", "1", NULL);
  char *dumped = json_dumps(j, 0);
  drift_profile *q;
  assert_int_equal(drift_profile_parse(dumped, strlen(dumped), &q).code, INFERD_OK);
  assert_int_equal(q->n_features, 2);
  assert_int_equal(q->features[1].n_bins, 3);
  assert_string_equal(q->features[1].categories[1], "y");
  assert_non_null(q->prediction);
  assert_true(q->features[0].edges[0] == 0.5 && q->features[0].counts[1] == 3);
  free(dumped);
  json_decref(j);
  drift_profile_destroy(p);
  drift_profile_destroy(q);
}

/* ---- the window, driven with explicit times ---------------------------------------------------- */

#define SEC INT64_C(1000000000)

typedef struct window_fixture {
  char dir[128];
  model_version *mv;
} window_fixture;

/* A version of a model without a schema, one input x [N, 1], profiled as "x[0]" over two bins
 * (below 0.5, from 0.5) with half of the reference in each. */
static int window_setup(void **state) {
  window_fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/inferd-test-drift-%d", (int)getpid());
  char path[256];
  mkdir(f->dir, 0755);
  snprintf(path, sizeof path, "%s/1", f->dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/1/%s", f->dir, DRIFT_PROFILE_FILE);
  FILE *out = fopen(path, "w");
  fputs("{\"format\": \"inferd-reference-profile/1\", \"features\": [{\"name\": \"x[0]\", \"type\": \"numeric\","
        " \"edges\": [0.5], \"counts\": [50, 50]}]}",
        out);
  fclose(out);
  model_config *cfg;
  assert_int_equal(model_config_default(&cfg).code, INFERD_OK);
  model *m = model_create("w", cfg, NULL);
  snprintf(path, sizeof path, "%s/1/model.onnx", f->dir);
  f->mv = model_version_create(m, 1, path);
  model_release(m);
  f->mv->inputs = calloc(1, sizeof *f->mv->inputs);
  f->mv->inputs[0] = (tensor_spec){.name = strdup("x"), .datatype = DT_FP32, .ndim = 2, .dims = {-1, 1}};
  f->mv->n_inputs = 1;
  drift_options o = DRIFT_DEFAULT_OPTIONS;
  o.window_ms = 10000; /* ten buckets of a second */
  o.min_samples = 10;
  assert_int_equal(drift_attach(f->mv, &o).code, INFERD_OK);
  *state = f;
  return 0;
}

static int window_teardown(void **state) {
  window_fixture *f = *state;
  model_version_unload(f->mv);
  model_version_free(f->mv);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

/* Sends n rows of value v at time t. */
static void observe(model_version *mv, float v, int n, int64_t t) {
  infer_request req = {.mv = mv, .status = status_ok()};
  tensor x = {0};
  int64_t shape[2] = {n, 1};
  assert_int_equal(tensor_init(&x, "x", DT_FP32, shape, 2).code, INFERD_OK);
  assert_int_equal(tensor_alloc(&x, (size_t)n * sizeof v).code, INFERD_OK);
  for (int i = 0; i < n; i++) memcpy(x.data + (size_t)i * sizeof v, &v, sizeof v);
  req.inputs = &x;
  req.n_inputs = 1;
  drift_observe_at(mv, &req, t);
  tensor_clear(&x);
}

static json_t *report(model_version *mv, int64_t t) {
  json_t *doc;
  assert_int_equal(drift_report_json(mv, t, &doc).code, INFERD_OK);
  return doc;
}

static double feature_num(json_t *doc, const char *key) {
  return json_number_value(json_object_get(json_array_get(json_object_get(doc, "features"), 0), key));
}

static void test_window_slides(void **state) {
  window_fixture *f = *state;
  int64_t t0 = 1000 * SEC;
  observe(f->mv, 0.0f, 20, t0); /* bin 0 */
  observe(f->mv, 1.0f, 20, t0 + SEC / 2); /* bin 1, same bucket */
  json_t *d = report(f->mv, t0 + SEC);
  assert_int_equal(json_integer_value(json_object_get(d, "samples")), 40);
  assert_true(fabs(feature_num(d, "psi")) < 1e-12); /* half and half, as the reference */
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(d, "features"), 0), "level")), "ok");
  json_decref(d);
  /* 5 s later: only bin 1, the old rows still in the window */
  observe(f->mv, 2.0f, 60, t0 + 5 * SEC);
  d = report(f->mv, t0 + 5 * SEC);
  assert_int_equal(json_integer_value(json_object_get(d, "samples")), 100);
  double p = 0.2, q = 0.8; /* 20 of 100 below the edge, against half */
  double want = (p - 0.5) * log(p / 0.5) + (q - 0.5) * log(q / 0.5);
  assert_true(fabs(feature_num(d, "psi") - want) < 1e-12);
  json_decref(d);
  /* 10.5 s after t0 the first bucket has left the window */
  d = report(f->mv, t0 + 10 * SEC + SEC / 2);
  assert_int_equal(json_integer_value(json_object_get(d, "samples")), 60);
  assert_string_equal(json_string_value(json_array_get(json_object_get(d, "alert"), 0)), "x[0]");
  json_decref(d);
  /* and long after, nothing: no data, no score */
  d = report(f->mv, t0 + 100 * SEC);
  assert_int_equal(json_integer_value(json_object_get(d, "samples")), 0);
  assert_true(json_is_null(json_object_get(json_array_get(json_object_get(d, "features"), 0), "psi")));
  json_decref(d);
}

/* A bucket reused a window later starts from zero (its old counts do not leak in). */
static void test_bucket_reuse_resets(void **state) {
  window_fixture *f = *state;
  int64_t t0 = 5000 * SEC;
  observe(f->mv, 0.0f, 30, t0);
  observe(f->mv, 1.0f, 7, t0 + 10 * SEC); /* the same bucket, ten periods on */
  json_t *d = report(f->mv, t0 + 10 * SEC);
  assert_int_equal(json_integer_value(json_object_get(d, "samples")), 7);
  assert_true(feature_num(d, "samples") == 7);
  json_decref(d);
}

/* The Prometheus lines of one version: names, labels (escaped), NaN for an empty window. */
static void test_metrics_lines(void **state) {
  window_fixture *f = *state;
  int64_t t0 = 9000 * SEC;
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  const model_version *mvs[] = {f->mv};
  drift_metrics_write_versions(mvs, 1, out, t0);
  fclose(out);
  assert_non_null(strstr(text, "# TYPE inferd_feature_drift gauge\n"));
  assert_non_null(strstr(text, "inferd_feature_drift{model=\"w\",version=\"1\",feature=\"x[0]\",statistic=\"psi\"} NaN\n"));
  free(text);
  observe(f->mv, 0.0f, 30, t0);
  observe(f->mv, 1.0f, 10, t0);
  out = open_memstream(&text, &len);
  drift_metrics_write_versions(mvs, 1, out, t0);
  fclose(out);
  char want[200];
  double p = 0.75, q = 0.25;
  snprintf(want, sizeof want, "statistic=\"psi\"} %.17g\n", (p - 0.5) * log(p / 0.5) + (q - 0.5) * log(q / 0.5));
  assert_non_null(strstr(text, want));
  assert_non_null(strstr(text, "statistic=\"js_distance\"} "));
  assert_non_null(strstr(text, "statistic=\"ks\"} 0.25\n"));
  assert_non_null(strstr(text, "# TYPE inferd_drift_window_samples gauge\ninferd_drift_window_samples{model=\"w\",version=\"1\"} 40\n"));
  assert_non_null(strstr(text, "# TYPE inferd_drift_warnings_total counter\ninferd_drift_warnings_total{model=\"w\",version=\"1\"} 1\n"));
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_psi_identical_and_empty),
      cmocka_unit_test(test_psi_epsilon_for_zero_bins),
      cmocka_unit_test(test_js_and_ks_bounds),
      cmocka_unit_test(test_bin_of_boundaries),
      cmocka_unit_test(test_quantile_edges),
      cmocka_unit_test(test_hist_numeric_skips_nan),
      cmocka_unit_test(test_profile_parse_errors),
      cmocka_unit_test(test_profile_roundtrip),
      cmocka_unit_test_setup_teardown(test_window_slides, window_setup, window_teardown),
      cmocka_unit_test_setup_teardown(test_bucket_reuse_resets, window_setup, window_teardown),
      cmocka_unit_test_setup_teardown(test_metrics_lines, window_setup, window_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
