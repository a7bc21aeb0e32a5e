/* The live repository's pure parts: which versions a policy serves from a folder, the rescan's
 * diff (add, reload, remove, keep), and warmup data read from a V2 JSON sample. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "core/repository.h"
#include "core/warmup.h"

static model_config *cfg_of(const char *json) {
  model_config *cfg = NULL;
  inferd_status st = model_config_parse(json, strlen(json), &cfg);
  if (!status_is_ok(&st)) fail_msg("%s", st.msg);
  return cfg;
}

static void expect_select(const char *json, const int64_t *found, size_t n, const int64_t *want, size_t n_want) {
  model_config *cfg = cfg_of(json);
  int64_t out[16];
  size_t k = repo_policy_select(cfg, found, n, out);
  assert_int_equal(k, n_want);
  for (size_t i = 0; i < k; i++) assert_int_equal(out[i], want[i]);
  model_config_destroy(cfg);
}

static void test_policy_select(void **state) {
  (void)state;
  const int64_t found[] = {1, 2, 5, 9};
  expect_select("{}", found, 4, (int64_t[]){9}, 1); /* default: the latest one */
  expect_select("{\"version_policy\":{\"latest\":2}}", found, 4, (int64_t[]){5, 9}, 2);
  expect_select("{\"version_policy\":{\"latest\":{\"num_versions\":9}}}", found, 4, found, 4);
  expect_select("{\"version_policy\":{\"all\":true}}", found, 4, found, 4);
  /* specific: only the named versions that have folders */
  expect_select("{\"version_policy\":{\"specific\":{\"versions\":[2,3,9]}}}", found, 4, (int64_t[]){2, 9}, 2);
  expect_select("{\"version_policy\":{\"specific\":[7]}}", found, 4, NULL, 0);
  expect_select("{}", found, 0, NULL, 0);
}

static const repo_file_sig A = {100, 10, 1}, B = {200, 10, 1}, C = {100, 11, 1}, D = {100, 10, 2};

static void expect_plan(const int64_t *cur, const repo_file_sig *cs, size_t nc, const int64_t *want,
                        const repo_file_sig *ws, size_t nw, bool cfg_changed, const repo_plan_item *exp, size_t ne) {
  repo_plan_item out[16];
  size_t k = repo_plan(cur, cs, nc, want, ws, nw, cfg_changed, out);
  assert_int_equal(k, ne);
  for (size_t i = 0; i < k; i++) {
    assert_int_equal(out[i].version, exp[i].version);
    assert_int_equal(out[i].change, exp[i].change);
  }
}

static void test_plan(void **state) {
  (void)state;
  /* nothing changed */
  expect_plan((int64_t[]){1, 2}, (repo_file_sig[]){A, A}, 2, (int64_t[]){1, 2}, (repo_file_sig[]){A, A}, 2, false,
              (repo_plan_item[]){{1, REPO_KEEP}, {2, REPO_KEEP}}, 2);
  /* a new folder, a removed one */
  expect_plan((int64_t[]){1, 2}, (repo_file_sig[]){A, A}, 2, (int64_t[]){2, 3}, (repo_file_sig[]){A, A}, 2, false,
              (repo_plan_item[]){{1, REPO_REMOVE}, {2, REPO_KEEP}, {3, REPO_ADD}}, 3);
  /* a file changed: its mtime, its size, or its inode (replaced by a rename) */
  expect_plan((int64_t[]){1, 2, 3}, (repo_file_sig[]){A, A, A}, 3, (int64_t[]){1, 2, 3}, (repo_file_sig[]){B, C, D}, 3,
              false, (repo_plan_item[]){{1, REPO_RELOAD}, {2, REPO_RELOAD}, {3, REPO_RELOAD}}, 3);
  /* a changed config reloads every kept version, and still adds and removes */
  expect_plan((int64_t[]){1, 2}, (repo_file_sig[]){A, A}, 2, (int64_t[]){2, 4}, (repo_file_sig[]){A, A}, 2, true,
              (repo_plan_item[]){{1, REPO_REMOVE}, {2, REPO_RELOAD}, {4, REPO_ADD}}, 3);
  /* from nothing, to nothing */
  expect_plan(NULL, NULL, 0, (int64_t[]){5}, (repo_file_sig[]){A}, 1, false, (repo_plan_item[]){{5, REPO_ADD}}, 1);
  expect_plan((int64_t[]){5}, (repo_file_sig[]){A}, 1, NULL, NULL, 0, false, (repo_plan_item[]){{5, REPO_REMOVE}}, 1);
  expect_plan(NULL, NULL, 0, NULL, NULL, 0, true, NULL, 0);
}

static inferd_status fill(inferd_datatype dt, const int64_t *shape, int ndim, const char *data, tensor *t) {
  json_t *j = json_loads(data, JSON_DECODE_ANY, NULL);
  assert_non_null(j);
  inferd_status st = tensor_init(t, "x", dt, shape, ndim);
  if (status_is_ok(&st)) st = warmup_fill_from_json(t, j);
  json_decref(j);
  return st;
}

static void test_warmup_fill(void **state) {
  (void)state;
  tensor t;
  inferd_status st = fill(DT_FP32, (int64_t[]){2, 2}, 2, "[[1, 2], [3.5, -4]]", &t);
  assert_true(status_is_ok(&st));
  float f[4];
  memcpy(f, t.data, sizeof f);
  assert_true(f[0] == 1.0f && f[2] == 3.5f && f[3] == -4.0f);
  tensor_clear(&t);
  st = fill(DT_BYTES, (int64_t[]){2}, 1, "[\"ab\", \"\"]", &t);
  assert_true(status_is_ok(&st));
  assert_int_equal(t.byte_size, 4 + 2 + 4);
  tensor_clear(&t);
  st = fill(DT_BOOL, (int64_t[]){2}, 1, "[true, 0]", &t);
  assert_true(status_is_ok(&st) && t.data[0] == 1 && t.data[1] == 0);
  tensor_clear(&t);
  /* wrong count, a value out of range, a non-number: each named */
  st = fill(DT_FP32, (int64_t[]){3}, 1, "[1, 2]", &t);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "2 values"));
  tensor_clear(&t);
  st = fill(DT_UINT8, (int64_t[]){1}, 1, "[300]", &t);
  assert_non_null(strstr(st.msg, "does not fit UINT8"));
  tensor_clear(&t);
  st = fill(DT_INT32, (int64_t[]){1}, 1, "[1.5]", &t);
  assert_non_null(strstr(st.msg, "does not fit INT32"));
  tensor_clear(&t);
  st = fill(DT_FP32, (int64_t[]){1}, 1, "[\"a\"]", &t);
  assert_non_null(strstr(st.msg, "data[0] must be a number"));
  tensor_clear(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_policy_select),
      cmocka_unit_test(test_plan),
      cmocka_unit_test(test_warmup_fill),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
