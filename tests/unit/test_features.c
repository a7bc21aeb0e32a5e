/* The feature schema: compiling config.json "application", encoding records into tensors with
 * every error reported at its JSON path, and decoding outputs into labels and probabilities. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "app/features.h"

/* churn's signature: input FP32 [-1, 12]; label INT64 [-1], probabilities FP32 [-1, 2] */
static tensor_spec churn_in[] = {{.name = "input", .datatype = DT_FP32, .ndim = 2, .dims = {-1, 12}}};
static tensor_spec churn_out[] = {{.name = "label", .datatype = DT_INT64, .ndim = 1, .dims = {-1}},
                                  {.name = "probabilities", .datatype = DT_FP32, .ndim = 2, .dims = {-1, 2}}};

static const char *CHURN_APP =
    "{\"features\": ["
    " {\"name\": \"tenure_months\", \"type\": \"numeric\", \"min\": 0, \"max\": 600},"
    " {\"name\": \"monthly_charges\", \"type\": \"numeric\", \"min\": 0},"
    " {\"name\": \"total_charges\", \"type\": \"numeric\"},"
    " {\"name\": \"support_calls\", \"type\": \"integer\", \"min\": 0},"
    " {\"name\": \"age\", \"type\": \"integer\", \"min\": 18, \"max\": 120, \"required\": false, \"default\": 40},"
    " {\"name\": \"contract\", \"type\": \"categorical\", \"categories\": [\"month-to-month\", \"one-year\", \"two-year\"]},"
    " {\"name\": \"payment_method\", \"type\": \"categorical\","
    "  \"categories\": [\"card\", \"bank_transfer\", \"electronic_check\", \"mailed_check\"], \"encoding\": \"one_hot\"}"
    "]}";

static model_config *config_with_labels(const char *labels_json) {
  char text[256];
  snprintf(text, sizeof text, "{\"class_labels\": %s}", labels_json);
  model_config *cfg;
  inferd_status st = model_config_parse(text, strlen(text), &cfg);
  assert_int_equal(st.code, INFERD_OK);
  return cfg;
}

static inferd_status compile_text(const char *app_text, const model_config *cfg, const tensor_spec *in, size_t ni,
                                  const tensor_spec *out, size_t no, features **f) {
  json_error_t je;
  json_t *app = json_loads(app_text, 0, &je);
  if (app == NULL) fail_msg("bad test JSON: %s", je.text);
  inferd_status st = features_compile(app, cfg, in, ni, out, no, f);
  json_decref(app);
  return st;
}

static features *churn(model_config **cfg) {
  *cfg = config_with_labels("[\"stay\", \"churn\"]");
  features *f;
  inferd_status st = compile_text(CHURN_APP, *cfg, churn_in, 1, churn_out, 2, &f);
  if (st.code != INFERD_OK) fail_msg("%s", st.msg);
  return f;
}

static void test_compile_churn(void **state) {
  (void)state;
  model_config *cfg;
  features *f = churn(&cfg);
  assert_int_equal(f->n_defs, 7);
  assert_int_equal(f->n_tensors, 1);
  assert_int_equal(f->tensors[0].columns, 12);
  assert_int_equal(f->task, TASK_CLASSIFICATION);
  assert_int_equal(f->n_labels, 2);
  assert_string_equal(f->labels[1], "churn");
  assert_int_equal(f->n_output_names, 2);
  const feature_def *pm = features_find(f, "payment_method");
  assert_non_null(pm);
  assert_int_equal(pm->column, 8);
  assert_int_equal(pm->width, 4);
  assert_false(features_find(f, "age")->required);
  features_destroy(f);
  model_config_destroy(cfg);
}

static void test_encode_churn_row(void **state) {
  (void)state;
  model_config *cfg;
  features *f = churn(&cfg);
  json_t *recs = json_loads("[{\"tenure_months\": 3, \"monthly_charges\": 89.5, \"total_charges\": 268.5,"
                            " \"support_calls\": 2, \"age\": 29, \"contract\": \"month-to-month\","
                            " \"payment_method\": \"electronic_check\"},"
                            " {\"tenure_months\": 24, \"monthly_charges\": 70.5, \"total_charges\": 1692,"
                            " \"support_calls\": 0, \"contract\": \"two-year\", \"payment_method\": \"card\", \"age\": null}]",
                            0, NULL);
  feature_errors errs = {0};
  tensor *ts;
  size_t nt;
  inferd_status st = features_encode(f, recs, NULL, &ts, &nt, &errs);
  assert_int_equal(st.code, INFERD_OK);
  assert_int_equal(errs.total, 0);
  assert_int_equal(nt, 1);
  assert_int_equal(ts[0].datatype, DT_FP32);
  assert_int_equal(ts[0].ndim, 2);
  assert_int_equal(ts[0].shape[0], 2);
  assert_int_equal(ts[0].shape[1], 12);
  const float want[24] = {3, 89.5f, 268.5f, 2, 29, 1, 0, 0, 0, 0, 1, 0,
                          24, 70.5f, 1692, 0, 40 /* default */, 0, 0, 1, 1, 0, 0, 0};
  assert_memory_equal(ts[0].data, want, sizeof want);
  tensors_free(ts, nt);
  json_decref(recs);
  features_destroy(f);
  model_config_destroy(cfg);
}

static bool has_error(const feature_errors *e, const char *path, const char *kind) {
  for (size_t i = 0; i < e->n; i++)
    if (strcmp(e->items[i].path, path) == 0 && strcmp(e->items[i].kind, kind) == 0) return true;
  return false;
}

static void test_encode_reports_every_error(void **state) {
  (void)state;
  model_config *cfg;
  features *f = churn(&cfg);
  json_t *recs = json_loads("[{\"tenure_months\": -1, \"monthly_charges\": \"a lot\", \"support_calls\": 1.5,"
                            " \"age\": 200, \"contract\": \"weekly\", \"payment_method\": \"card\", \"colour\": \"red\","
                            " \"odd key\": 1},"
                            " 7,"
                            " {\"tenure_months\": 1, \"monthly_charges\": 1, \"total_charges\": 1, \"support_calls\": 1,"
                            "  \"contract\": 3, \"payment_method\": \"card\"}]",
                            0, NULL);
  feature_errors errs = {0};
  tensor *ts;
  size_t nt;
  features_paths paths = {.base = "$.inputs"};
  inferd_status st = features_encode(f, recs, &paths, &ts, &nt, &errs);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_null(ts);
  assert_true(has_error(&errs, "$.inputs[0].tenure_months", "out_of_range"));
  assert_true(has_error(&errs, "$.inputs[0].monthly_charges", "wrong_type"));
  assert_true(has_error(&errs, "$.inputs[0].total_charges", "missing_feature"));
  assert_true(has_error(&errs, "$.inputs[0].support_calls", "wrong_type"));
  assert_true(has_error(&errs, "$.inputs[0].age", "out_of_range"));
  assert_true(has_error(&errs, "$.inputs[0].contract", "unknown_category"));
  assert_true(has_error(&errs, "$.inputs[0].colour", "unknown_feature"));
  assert_true(has_error(&errs, "$.inputs[0][\"odd key\"]", "unknown_feature"));
  assert_true(has_error(&errs, "$.inputs[1]", "wrong_type"));
  assert_true(has_error(&errs, "$.inputs[2].contract", "wrong_type"));
  assert_int_equal(errs.total, 10);
  char buf[2048];
  feature_errors_summary(&errs, buf, sizeof buf);
  assert_non_null(strstr(buf, "10 problems"));
  assert_non_null(strstr(buf, "and 5 more"));
  json_t *ej = feature_errors_json(&errs);
  assert_int_equal(json_array_size(ej), 10);
  json_decref(ej);
  feature_errors_clear(&errs);

  json_t *empty = json_array();
  st = features_encode(f, empty, &paths, &ts, &nt, &errs);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_true(has_error(&errs, "$.inputs", "empty"));
  feature_errors_clear(&errs);
  json_decref(empty);
  json_decref(recs);
  features_destroy(f);
  model_config_destroy(cfg);
}

static void test_error_cap(void **state) {
  (void)state;
  model_config *cfg;
  features *f = churn(&cfg);
  json_t *recs = json_array();
  for (int i = 0; i < 50; i++) json_array_append_new(recs, json_object()); /* 6 missing each */
  feature_errors errs = {0};
  tensor *ts;
  size_t nt;
  assert_int_equal(features_encode(f, recs, NULL, &ts, &nt, &errs).code, INFERD_INVALID_ARGUMENT);
  assert_int_equal(errs.total, 300);
  assert_int_equal(errs.n, FEATURE_ERRORS_MAX);
  feature_errors_clear(&errs);
  json_decref(recs);
  features_destroy(f);
  model_config_destroy(cfg);
}

/* Several tensors: an INT64 [N, 2] (index-encoded categorical, boolean), a BYTES [N] text. */
static void test_index_bool_string_tensors(void **state) {
  (void)state;
  tensor_spec in[] = {{.name = "codes", .datatype = DT_INT64, .ndim = 2, .dims = {-1, 2}},
                      {.name = "text", .datatype = DT_BYTES, .ndim = 1, .dims = {-1}}};
  tensor_spec out[] = {{.name = "value", .datatype = DT_FP32, .ndim = 2, .dims = {-1, 1}}};
  model_config *cfg;
  assert_int_equal(model_config_default(&cfg).code, INFERD_OK);
  features *f;
  inferd_status st = compile_text(
      "{\"input\": \"codes\", \"features\": ["
      " {\"name\": \"colour\", \"type\": \"categorical\", \"categories\": [\"red\", \"green\", \"blue\"], \"encoding\": \"index\"},"
      " {\"name\": \"member\", \"type\": \"boolean\", \"required\": false, \"default\": false},"
      " {\"name\": \"note\", \"type\": \"string\", \"tensor\": \"text\", \"max_length\": 5}]}",
      cfg, in, 2, out, 1, &f);
  assert_int_equal(st.code, INFERD_OK);
  assert_int_equal(f->task, TASK_REGRESSION);
  assert_string_equal(f->value_output, "value");
  json_t *recs = json_loads("[{\"colour\": \"blue\", \"member\": true, \"note\": \"héllo\"}, {\"colour\": \"red\", \"note\": \"\"}]",
                            0, NULL);
  feature_errors errs = {0};
  tensor *ts;
  size_t nt;
  st = features_encode(f, recs, NULL, &ts, &nt, &errs);
  assert_int_equal(st.code, INFERD_OK);
  assert_int_equal(nt, 2);
  const int64_t codes[4] = {2, 1, 0, 0};
  assert_memory_equal(ts[0].data, codes, sizeof codes);
  assert_string_equal(ts[1].name, "text");
  assert_int_equal(ts[1].ndim, 1);
  assert_int_equal(ts[1].shape[0], 2);
  assert_int_equal(ts[1].byte_size, 4 + 6 + 4);
  assert_int_equal(tensor_bytes_check(&ts[1], 2).code, INFERD_OK);
  tensors_free(ts, nt);
  json_decref(recs);

  recs = json_loads("[{\"colour\": \"red\", \"member\": 1, \"note\": \"toolong\"}]", 0, NULL);
  st = features_encode(f, recs, NULL, &ts, &nt, &errs);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_true(has_error(&errs, "$[0].member", "wrong_type"));
  assert_true(has_error(&errs, "$[0].note", "too_long"));
  feature_errors_clear(&errs);
  json_decref(recs);

  /* a regressor's [N, 1] output gives a scalar value */
  tensor o = {0};
  int64_t shape[2] = {2, 1};
  tensor_init(&o, "value", DT_FP32, shape, 2);
  tensor_alloc(&o, 8);
  const float vals[2] = {1.5f, -2.0f};
  memcpy(o.data, vals, 8);
  char *names[] = {"value"};
  json_t *results;
  assert_int_equal(features_decode_results(f, &o, names, 1, NULL, &results).code, INFERD_OK);
  char *s = json_dumps(results, JSON_COMPACT);
  assert_string_equal(s, "[{\"value\":1.5},{\"value\":-2.0}]");
  free(s);
  json_decref(results);
  tensor_clear(&o);
  features_destroy(f);
  model_config_destroy(cfg);
}

/* An input with any number of columns, so one feature is enough to reach the field tested. */
static tensor_spec var_in[] = {{.name = "input", .datatype = DT_FP32, .ndim = 2, .dims = {-1, -1}}};

static void expect_error_with(const tensor_spec *in, const char *app, const char *needle) {
  model_config *cfg = config_with_labels("[\"stay\", \"churn\"]");
  features *f = NULL;
  inferd_status st = compile_text(app, cfg, in, 1, churn_out, 2, &f);
  if (st.code != INFERD_INVALID_ARGUMENT) fail_msg("expected an error mentioning '%s' for %s", needle, app);
  if (strstr(st.msg, needle) == NULL) fail_msg("error '%s' does not mention '%s'", st.msg, needle);
  assert_non_null(strstr(st.msg, "config.json: application"));
  assert_null(f);
  model_config_destroy(cfg);
}

static void expect_compile_error(const char *app, const char *needle) { expect_error_with(var_in, app, needle); }

static void test_compile_errors_name_the_field(void **state) {
  (void)state;
  expect_compile_error("{\"features\": []}", "application.features must be a non-empty array");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"numeric\"}], \"colour\": 1}", "unknown field \"colour\"");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"number\"}]}", "application.features[0].type");
  expect_compile_error("{\"features\": [{\"type\": \"numeric\"}]}", "application.features[0].name");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"categorical\"}]}", "application.features[0].categories");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"numeric\", \"tensor\": \"x\"}]}",
                       "application.features[0].tensor: the model has no input 'x'");
  expect_error_with(churn_in, "{\"features\": [{\"name\": \"a\", \"type\": \"numeric\"}]}", "has 12 columns but the features fill 1");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"numeric\", \"required\": false}]}",
                       "application.features[0]: an optional feature");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"numeric\", \"min\": 5, \"default\": 1}]}",
                       "application.features[0].default");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"numeric\"}, {\"name\": \"a\", \"type\": \"numeric\"}]}",
                       "application.features[1].name: feature 'a' is listed twice");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"string\"}]}", "needs a BYTES input");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"numeric\"}], \"outputs\": {\"label\": \"nope\"}}",
                       "application.outputs.label: the model has no output 'nope'");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"numeric\"}], \"task\": \"ranking\"}", "application.task");
  expect_compile_error("{\"features\": [{\"name\": \"a\", \"type\": \"numeric\", \"min\": 3, \"max\": 1}]}", "min is greater than max");

  /* class_labels must agree with the probabilities' columns */
  model_config *cfg = config_with_labels("[\"a\", \"b\", \"c\"]");
  features *f = NULL;
  inferd_status st = compile_text(CHURN_APP, cfg, churn_in, 1, churn_out, 2, &f);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "class_labels has 3 names"));
  model_config_destroy(cfg);
}

static void make_outputs(tensor out[2]) {
  int64_t s1[1] = {2}, s2[2] = {2, 2};
  memset(out, 0, 2 * sizeof *out);
  tensor_init(&out[0], "label", DT_INT64, s1, 1);
  tensor_alloc(&out[0], 16);
  const int64_t labels[2] = {1, 0};
  memcpy(out[0].data, labels, 16);
  tensor_init(&out[1], "probabilities", DT_FP32, s2, 2);
  tensor_alloc(&out[1], 16);
  const float p[4] = {0.25f, 0.75f, 0.875f, 0.125f};
  memcpy(out[1].data, p, 16);
}

static void test_decode_classification(void **state) {
  (void)state;
  model_config *cfg;
  features *f = churn(&cfg);
  tensor out[2];
  make_outputs(out);
  char *names[] = {"label", "probabilities"};
  json_t *results;
  features_result_opts opts = {.return_probabilities = true};
  assert_int_equal(features_decode_results(f, out, names, 2, &opts, &results).code, INFERD_OK);
  char *s = json_dumps(results, JSON_COMPACT);
  assert_string_equal(s, "[{\"label\":\"churn\",\"score\":0.75,\"probabilities\":{\"stay\":0.25,\"churn\":0.75}},"
                         "{\"label\":\"stay\",\"score\":0.875,\"probabilities\":{\"stay\":0.875,\"churn\":0.125}}]");
  free(s);
  json_decref(results);

  opts = (features_result_opts){.return_probabilities = true, .top_k = 1};
  assert_int_equal(features_decode_results(f, out, names, 2, &opts, &results).code, INFERD_OK);
  s = json_dumps(results, JSON_COMPACT);
  assert_string_equal(s, "[{\"label\":\"churn\",\"score\":0.75,\"probabilities\":{\"churn\":0.75}},"
                         "{\"label\":\"stay\",\"score\":0.875,\"probabilities\":{\"stay\":0.875}}]");
  free(s);
  json_decref(results);

  opts = (features_result_opts){.return_probabilities = false};
  assert_int_equal(features_decode_results(f, out, names, 2, &opts, &results).code, INFERD_OK);
  assert_null(json_object_get(json_array_get(results, 0), "probabilities"));
  json_decref(results);

  json_t *preds;
  assert_int_equal(features_decode_predictions(f, out, names, 2, false, &preds).code, INFERD_OK);
  s = json_dumps(preds, JSON_COMPACT);
  assert_string_equal(s, "[\"churn\",\"stay\"]");
  free(s);
  json_decref(preds);
  assert_int_equal(features_decode_predictions(f, out, names, 2, true, &preds).code, INFERD_OK);
  s = json_dumps(preds, JSON_COMPACT);
  assert_string_equal(s, "[[0.25,0.75],[0.875,0.125]]");
  free(s);
  json_decref(preds);
  tensors_free(NULL, 0);
  tensor_clear(&out[0]);
  tensor_clear(&out[1]);
  features_destroy(f);
  model_config_destroy(cfg);
}

static void test_rows_schema_example(void **state) {
  (void)state;
  model_config *cfg;
  features *f = churn(&cfg);
  json_t *rows = json_loads("[[3, 89.5, 268.5, 2, 29, \"month-to-month\", \"card\"], [1, 2]]", 0, NULL);
  feature_errors errs = {0};
  features_paths paths = {.base = "$.instances"};
  assert_null(features_rows_to_records(f, rows, &paths, &errs));
  assert_true(has_error(&errs, "$.instances[1]", "invalid"));
  feature_errors_clear(&errs);
  json_array_remove(rows, 1);
  json_t *recs = features_rows_to_records(f, rows, &paths, &errs);
  assert_non_null(recs);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(recs, 0), "age")), 29);
  json_decref(recs);
  json_decref(rows);

  json_t *schema = features_record_schema(f);
  assert_string_equal(json_string_value(json_object_get(schema, "type")), "object");
  assert_false(json_is_true(json_object_get(schema, "additionalProperties")));
  json_t *contract = json_object_get(json_object_get(schema, "properties"), "contract");
  assert_int_equal(json_array_size(json_object_get(contract, "enum")), 3);
  assert_int_equal(json_array_size(json_object_get(schema, "required")), 6); /* age is optional */
  json_decref(schema);

  /* the example record passes the encoder */
  json_t *ex = features_example_record(f);
  json_t *arr = json_pack("[o]", ex);
  tensor *ts;
  size_t nt;
  assert_int_equal(features_encode(f, arr, NULL, &ts, &nt, &errs).code, INFERD_OK);
  tensors_free(ts, nt);
  json_decref(arr);

  char path[64] = "$";
  jpath_key(path, sizeof path, "a\"b");
  assert_string_equal(path, "$[\"a\\\"b\"]");
  features_destroy(f);
  model_config_destroy(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compile_churn),
      cmocka_unit_test(test_encode_churn_row),
      cmocka_unit_test(test_encode_reports_every_error),
      cmocka_unit_test(test_error_cap),
      cmocka_unit_test(test_index_bool_string_tensors),
      cmocka_unit_test(test_compile_errors_name_the_field),
      cmocka_unit_test(test_decode_classification),
      cmocka_unit_test(test_rows_schema_example),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
