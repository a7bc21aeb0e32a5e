/* Nested-list tensors (TF Serving's and MLflow's form): shape from the nesting, datatypes,
 * BYTES as strings or {"b64"}, errors at the JSON path, and back to JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "app/tensor_json.h"

static tensor from(const char *text, inferd_datatype dt, inferd_status *st) {
  json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
  assert_non_null(v);
  tensor t = {0};
  *st = tensor_from_json(v, "x", dt, "$.instances", &t);
  json_decref(v);
  return t;
}

static void test_numbers_and_shape(void **state) {
  (void)state;
  inferd_status st;
  tensor t = from("[[1, 2.5, -3], [4, 5, 6]]", DT_FP32, &st);
  assert_int_equal(st.code, INFERD_OK);
  assert_int_equal(t.ndim, 2);
  assert_int_equal(t.shape[0], 2);
  assert_int_equal(t.shape[1], 3);
  const float want[6] = {1, 2.5f, -3, 4, 5, 6};
  assert_memory_equal(t.data, want, sizeof want);
  json_t *back = tensor_to_json(&t);
  char *s = json_dumps(back, JSON_COMPACT);
  assert_string_equal(s, "[[1.0,2.5,-3.0],[4.0,5.0,6.0]]");
  free(s);
  json_decref(back);
  json_t *row = tensor_row_to_json(&t, 1);
  s = json_dumps(row, JSON_COMPACT);
  assert_string_equal(s, "[4.0,5.0,6.0]");
  free(s);
  json_decref(row);
  tensor_clear(&t);

  t = from("[7, 8]", DT_INT64, &st);
  assert_int_equal(st.code, INFERD_OK);
  const int64_t w[2] = {7, 8};
  assert_memory_equal(t.data, w, sizeof w);
  tensor_clear(&t);

  t = from("[true, false]", DT_BOOL, &st);
  assert_int_equal(st.code, INFERD_OK);
  assert_int_equal(t.data[0], 1);
  assert_int_equal(t.data[1], 0);
  tensor_clear(&t);
}

static void test_errors_name_the_path(void **state) {
  (void)state;
  inferd_status st;
  tensor t = from("[[1, 2], [3]]", DT_FP32, &st);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "$.instances[1]"));
  assert_non_null(strstr(st.msg, "not rectangular"));
  t = from("[[1, \"a\"]]", DT_FP32, &st);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "$.instances[0][1]"));
  t = from("[1.5]", DT_INT32, &st);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "whole number"));
  t = from("[[1], 2]", DT_FP32, &st);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  t = from("[{\"b64\": \"!!\"}]", DT_BYTES, &st);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "base64"));
  (void)t;
}

static void test_bytes_and_b64(void **state) {
  (void)state;
  inferd_status st;
  tensor t = from("[\"hi\", {\"b64\": \"/wA=\"}]", DT_BYTES, &st);
  assert_int_equal(st.code, INFERD_OK);
  assert_int_equal(t.shape[0], 2);
  assert_int_equal(t.byte_size, 4 + 2 + 4 + 2);
  json_t *back = tensor_to_json(&t);
  char *s = json_dumps(back, JSON_COMPACT);
  assert_string_equal(s, "[\"hi\",{\"b64\":\"/wA=\"}]"); /* 0xff 0x00 is not UTF-8 */
  free(s);
  json_decref(back);
  tensor_clear(&t);

  uint8_t out[16];
  char *enc = base64_encode((const uint8_t *)"hello", 5);
  assert_string_equal(enc, "aGVsbG8=");
  assert_int_equal(base64_decode(enc, strlen(enc), out), 5);
  assert_memory_equal(out, "hello", 5);
  free(enc);
  assert_int_equal(base64_decode("a", 1, out), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_numbers_and_shape),
      cmocka_unit_test(test_errors_name_the_path),
      cmocka_unit_test(test_bytes_and_b64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
