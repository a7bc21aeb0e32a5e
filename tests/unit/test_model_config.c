/* config.json parsing: defaults, every field, errors that name the field, version policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "core/model_config.h"

static model_config *parse_ok(const char *json) {
  model_config *cfg = NULL;
  inferd_status st = model_config_parse(json, strlen(json), &cfg);
  if (!status_is_ok(&st)) fail_msg("unexpected error: %s", st.msg);
  return cfg;
}

static void expect_error(const char *json, const char *fragment) {
  model_config *cfg = NULL;
  inferd_status st = model_config_parse(json, strlen(json), &cfg);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_null(cfg);
  if (strstr(st.msg, fragment) == NULL) fail_msg("message '%s' lacks '%s'", st.msg, fragment);
}

static void test_defaults(void **state) {
  (void)state;
  model_config *cfg = parse_ok("{}");
  assert_string_equal(cfg->backend, "onnxruntime");
  assert_int_equal(cfg->max_batch_size, 0);
  assert_null(cfg->inputs);
  assert_int_equal(cfg->policy, POLICY_LATEST);
  assert_int_equal(cfg->latest_n, 1);
  assert_int_equal(cfg->instance_count, 1);
  assert_false(cfg->allow_nan);
  model_config_destroy(cfg);
}

static void test_full(void **state) {
  (void)state;
  model_config *cfg = parse_ok(
      "{\"backend\":\"onnxruntime\",\"max_batch_size\":8,"
      "\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"dims\":[4,-1]}],"
      "\"outputs\":[{\"name\":\"y\",\"datatype\":\"INT64\",\"dims\":[]}],"
      "\"class_labels\":[\"a\",\"b\"],\"version_policy\":{\"specific\":[1,3]},"
      "\"instance_count\":2,\"onnxruntime\":{\"intra_op_threads\":4,\"inter_op_threads\":0},"
      "\"allow_nan\":true,\"description\":\"d\"}");
  assert_int_equal(cfg->max_batch_size, 8);
  assert_int_equal(cfg->n_inputs, 1);
  assert_string_equal(cfg->inputs[0].name, "x");
  assert_int_equal(cfg->inputs[0].datatype, DT_FP32);
  assert_int_equal(cfg->inputs[0].ndim, 2);
  assert_int_equal(cfg->inputs[0].dims[1], -1);
  assert_int_equal(cfg->outputs[0].ndim, 0);
  assert_int_equal(cfg->n_class_labels, 2);
  assert_string_equal(cfg->class_labels[1], "b");
  assert_int_equal(cfg->policy, POLICY_SPECIFIC);
  assert_int_equal(cfg->instance_count, 2);
  assert_int_equal(cfg->intra_op_threads, 4);
  assert_int_equal(cfg->inter_op_threads, 0);
  assert_true(cfg->allow_nan);
  assert_string_equal(cfg->description, "d");
  model_config_destroy(cfg);
}

static void test_errors_name_the_field(void **state) {
  (void)state;
  expect_error("{\"max_batch\":1}", "unknown field max_batch");
  expect_error("{\"max_batch_size\":-1}", "max_batch_size");
  expect_error("{\"max_batch_size\":\"8\"}", "max_batch_size must be an integer");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FLOAT\",\"dims\":[1]}]}", "inputs[0].datatype");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"dims\":[0]}]}", "inputs[0].dims[0]");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"dims\":[1],\"shape\":[1]}]}", "inputs[0].shape");
  expect_error("{\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"dims\":[1]},{\"name\":\"y\",\"datatype\":\"FP32\",\"dims\":[1]}]}", "twice");
  expect_error("{\"backend\":\"tensorflow\"}", "backend 'tensorflow'");
  expect_error("{\"version_policy\":{\"latest\":0}}", "version_policy.latest");
  expect_error("{\"version_policy\":{\"latest\":1,\"all\":true}}", "version_policy");
  expect_error("{\"onnxruntime\":{\"threads\":1}}", "onnxruntime.threads");
  expect_error("{\"allow_nan\":1}", "allow_nan");
  expect_error("{\"a\":1,}", "line 1");
  expect_error("[]", "JSON object");
}

static void test_version_policy(void **state) {
  (void)state;
  const int64_t found[] = {1, 2, 5};
  model_config *cfg = parse_ok("{}");
  assert_false(model_config_serves_version(cfg, found, 3, 1));
  assert_false(model_config_serves_version(cfg, found, 3, 2));
  assert_true(model_config_serves_version(cfg, found, 3, 5));
  model_config_destroy(cfg);
  cfg = parse_ok("{\"version_policy\":{\"latest\":2}}");
  assert_false(model_config_serves_version(cfg, found, 3, 1));
  assert_true(model_config_serves_version(cfg, found, 3, 2));
  assert_true(model_config_serves_version(cfg, found, 3, 5));
  model_config_destroy(cfg);
  cfg = parse_ok("{\"version_policy\":{\"all\":true}}");
  assert_true(model_config_serves_version(cfg, found, 3, 1));
  model_config_destroy(cfg);
  cfg = parse_ok("{\"version_policy\":{\"specific\":[2]}}");
  assert_false(model_config_serves_version(cfg, found, 3, 5));
  assert_true(model_config_serves_version(cfg, found, 3, 2));
  model_config_destroy(cfg);
}

static void test_missing_file_is_default(void **state) {
  (void)state;
  model_config *cfg = NULL;
  inferd_status st = model_config_load("/nonexistent/config.json", &cfg);
  assert_int_equal(st.code, INFERD_OK);
  assert_int_equal(cfg->latest_n, 1);
  model_config_destroy(cfg);
}

static void test_batching_and_queue(void **state) {
  (void)state;
  model_config *cfg = parse_ok("{\"max_batch_size\":16,\"dynamic_batching\":{\"max_queue_delay_us\":500,"
                               "\"preferred_batch_sizes\":[4,8],\"max_queue_size\":10,\"priority_levels\":3,"
                               "\"default_priority_level\":2,\"default_timeout_us\":1000}}");
  assert_true(cfg->batching.enabled);
  assert_int_equal(cfg->batching.max_queue_delay_us, 500);
  assert_int_equal(cfg->batching.n_preferred_batch_sizes, 2);
  assert_int_equal(cfg->batching.preferred_batch_sizes[1], 8);
  assert_int_equal(cfg->batching.max_queue_size, 10);
  assert_int_equal(cfg->batching.priority_levels, 3);
  assert_int_equal(cfg->batching.default_priority_level, 2);
  assert_int_equal(cfg->batching.default_timeout_us, 1000);
  model_config_destroy(cfg);
  cfg = parse_ok("{\"queue_policy\":{\"max_queue_size\":2}}");
  assert_false(cfg->batching.enabled);
  assert_int_equal(cfg->batching.max_queue_size, 2);
  assert_int_equal(cfg->batching.priority_levels, 1);
  model_config_destroy(cfg);
  expect_error("{\"dynamic_batching\":{}}", "needs max_batch_size");
  expect_error("{\"max_batch_size\":4,\"dynamic_batching\":{\"preferred_batch_sizes\":[8]}}", "preferred_batch_sizes[0]");
  expect_error("{\"max_batch_size\":4,\"dynamic_batching\":{\"delay\":1}}", "dynamic_batching.delay");
  expect_error("{\"max_batch_size\":4,\"dynamic_batching\":{\"priority_levels\":2,\"default_priority_level\":3}}", "default_priority_level");
  expect_error("{\"queue_policy\":{\"max_queue_size\":0}}", "queue_policy.max_queue_size");
  expect_error("{\"max_batch_size\":4,\"dynamic_batching\":{},\"queue_policy\":{}}", "queue_policy");
  expect_error("{\"application\":[]}", "application");
}

static void test_warmup(void **state) {
  (void)state;
  model_config *cfg = parse_ok("{}");
  assert_int_equal(cfg->warmup.runs, 0); /* no section: no warmup */
  model_config_destroy(cfg);
  cfg = parse_ok("{\"warmup\":{}}");
  assert_int_equal(cfg->warmup.runs, 1);
  assert_int_equal(cfg->warmup.data, WARMUP_ZEROS);
  assert_null(cfg->warmup.file);
  model_config_destroy(cfg);
  cfg = parse_ok("{\"warmup\":{\"runs\":5,\"data\":\"random\"}}");
  assert_int_equal(cfg->warmup.runs, 5);
  assert_int_equal(cfg->warmup.data, WARMUP_RANDOM);
  model_config_destroy(cfg);
  cfg = parse_ok("{\"warmup\":{\"runs\":2,\"data\":\"file\",\"file\":\"w.json\"}}");
  assert_int_equal(cfg->warmup.data, WARMUP_FILE);
  assert_string_equal(cfg->warmup.file, "w.json");
  model_config_destroy(cfg);
  cfg = parse_ok("{\"warmup\":{\"file\":\"sub/w.json\"}}"); /* a file alone means data: file */
  assert_int_equal(cfg->warmup.data, WARMUP_FILE);
  model_config_destroy(cfg);
  expect_error("{\"warmup\":3}", "warmup");
  expect_error("{\"warmup\":{\"runs\":-1}}", "warmup.runs");
  expect_error("{\"warmup\":{\"runs\":1001}}", "warmup.runs");
  expect_error("{\"warmup\":{\"data\":\"ones\"}}", "warmup.data");
  expect_error("{\"warmup\":{\"data\":\"file\"}}", "warmup.file");
  expect_error("{\"warmup\":{\"data\":\"zeros\",\"file\":\"w.json\"}}", "warmup.file");
  expect_error("{\"warmup\":{\"file\":\"../../etc/passwd\"}}", "warmup.file");
  expect_error("{\"warmup\":{\"file\":\"/etc/passwd\"}}", "warmup.file");
  expect_error("{\"warmup\":{\"runs\":1,\"count\":2}}", "warmup.count");
}

/* Triton's shapes of version_policy parse to the same policies as the short ones. */
static void test_version_policy_triton_shapes(void **state) {
  (void)state;
  model_config *cfg = parse_ok("{\"version_policy\":{\"latest\":{\"num_versions\":3}}}");
  assert_int_equal(cfg->policy, POLICY_LATEST);
  assert_int_equal(cfg->latest_n, 3);
  model_config_destroy(cfg);
  cfg = parse_ok("{\"version_policy\":{\"all\":{}}}");
  assert_int_equal(cfg->policy, POLICY_ALL);
  model_config_destroy(cfg);
  cfg = parse_ok("{\"version_policy\":{\"specific\":{\"versions\":[2,5]}}}");
  assert_int_equal(cfg->policy, POLICY_SPECIFIC);
  assert_int_equal(cfg->n_specific_versions, 2);
  assert_int_equal(cfg->specific_versions[1], 5);
  model_config_destroy(cfg);
  expect_error("{\"version_policy\":{\"latest\":{}}}", "version_policy.latest.num_versions");
  expect_error("{\"version_policy\":{\"latest\":{\"num_versions\":0}}}", "num_versions");
  expect_error("{\"version_policy\":{\"latest\":{\"n\":1}}}", "version_policy.latest.n");
  expect_error("{\"version_policy\":{\"all\":{\"x\":1}}}", "version_policy.all");
  expect_error("{\"version_policy\":{\"specific\":{\"versions\":[]}}}", "version_policy.specific");
  expect_error("{\"version_policy\":{\"specific\":{\"v\":[1]}}}", "version_policy.specific.v");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_full),
      cmocka_unit_test(test_errors_name_the_field),
      cmocka_unit_test(test_version_policy),
      cmocka_unit_test(test_missing_file_is_default),
      cmocka_unit_test(test_batching_and_queue),
      cmocka_unit_test(test_warmup),
      cmocka_unit_test(test_version_policy_triton_shapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
