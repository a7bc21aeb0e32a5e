/* Request values the core checks for every protocol (issue 9): the deadline arithmetic, the
 * timeout header, UTF-8 checks and repair, status messages that stay UTF-8 when cut, BYTES
 * inputs of ONNX string tensors, zero-element inputs, and jansson errors in our words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/infer.h"
#include "util/jsonerr.h"
#include "util/utf8.h"

static void test_deadline_after(void **state) {
  (void)state;
  int64_t d = 42;
  assert_int_equal(infer_deadline_after(1000, 0, "t", &d).code, INFERD_OK);
  assert_int_equal(d, 0); /* no timeout: no deadline */
  assert_int_equal(infer_deadline_after(1000, 5, "t", &d).code, INFERD_OK);
  assert_int_equal(d, 1000 + 5000);
  assert_int_equal(infer_deadline_after(1000, INFER_MAX_TIMEOUT_US, "t", &d).code, INFERD_OK);
  assert_int_equal(d, 1000 + INFER_MAX_TIMEOUT_US * 1000);
  /* the values that overflowed µs -> ns before (2^63-1 from HTTP, 2^62 from gRPC) are refused,
   * with the number as sent */
  inferd_status st = infer_deadline_after(1000, INT64_MAX, "parameters.timeout", &d);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "parameters.timeout is 9223372036854775807 microseconds"));
  assert_non_null(strstr(st.msg, "one day"));
  assert_int_equal(d, 0);
  st = infer_deadline_after(1000, INT64_C(1) << 62, "parameter 'timeout'", &d);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "4611686018427387904"));
  assert_int_equal(infer_deadline_after(1000, INFER_MAX_TIMEOUT_US + 1, "t", &d).code, INFERD_INVALID_ARGUMENT);
  assert_int_equal(infer_deadline_after(1000, -1, "t", &d).code, INFERD_INVALID_ARGUMENT);
  /* a start near the end of the clock saturates instead of wrapping into the past */
  assert_int_equal(infer_deadline_after(INT64_MAX - 10, 1000, "t", &d).code, INFERD_OK);
  assert_true(d == INT64_MAX);
}

static void test_timeout_header(void **state) {
  (void)state;
  int64_t us = -1;
  assert_int_equal(infer_timeout_ms_parse("H", "250", &us).code, INFERD_OK);
  assert_int_equal(us, 250000);
  assert_int_equal(infer_timeout_ms_parse("H", "0", &us).code, INFERD_OK);
  assert_int_equal(us, 0);
  assert_int_equal(infer_timeout_ms_parse("H", "86400000", &us).code, INFERD_OK);
  inferd_status st = infer_timeout_ms_parse("X-Request-Timeout-Ms", "99999999999999999999999", &us);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "'99999999999999999999999' is more than the maximum of 86400000"));
  const char *bad[] = {"", "-1", "+5", " 5", "5 ", "1e3", "0x10", "12ms"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    st = infer_timeout_ms_parse("H", bad[i], &us);
    if (st.code != INFERD_INVALID_ARGUMENT || strstr(st.msg, "not a whole number") == NULL)
      fail_msg("'%s': %s", bad[i], st.msg);
  }
}

static void test_utf8(void **state) {
  (void)state;
  size_t at = 99;
  assert_true(utf8_valid("", 0, NULL));
  assert_true(utf8_valid("a\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80", 10, NULL));
  assert_false(utf8_valid("ab\xff", 3, &at));
  assert_int_equal(at, 2);
  assert_false(utf8_valid("\xc0\xaf", 2, &at)); /* overlong '/' */
  assert_false(utf8_valid("\xed\xa0\x80", 3, &at)); /* surrogate */
  assert_false(utf8_valid("\xf4\x90\x80\x80", 4, &at)); /* beyond U+10FFFF */
  assert_false(utf8_valid("\xe2\x98", 2, &at)); /* cut short */
  assert_int_equal(at, 0);
  char out[16];
  assert_int_equal(utf8_sanitize(out, sizeof out, "a\xff" "b"), 5);
  assert_string_equal(out, "a\xef\xbf\xbd" "b");
  /* never cuts a character: "é" does not fit in the last 1 byte */
  assert_int_equal(utf8_sanitize(out, 4, "ab\xc3\xa9"), 2);
  assert_string_equal(out, "ab");
}

/* A message that quotes the request stays UTF-8, even when cut to fit (it used to make the JSON
 * encoder refuse the error body: an empty 404). */
static void test_status_messages_stay_utf8(void **state) {
  (void)state;
  inferd_status st = status_make(INFERD_NOT_FOUND, "model '%s' not found", "\xff\xfe");
  assert_true(utf8_valid(st.msg, strlen(st.msg), NULL));
  assert_string_equal(st.msg, "model '\xef\xbf\xbd\xef\xbf\xbd' not found");
  char name[600];
  memset(name, 'x', 1);
  for (size_t i = 1; i + 2 < sizeof name; i += 2) memcpy(name + i, "\xc3\xa9", 2);
  name[sizeof name - 2] = '\0';
  for (int shift = 0; shift < 4; shift++) { /* cut at every offset within a character */
    st = status_make(INFERD_INVALID_ARGUMENT, "%.*s%s", shift, "abc", name);
    assert_true(utf8_valid(st.msg, strlen(st.msg), NULL));
    assert_true(strlen(st.msg) >= sizeof st.msg - 4);
  }
}

static model_config cfg = {.max_batch_size = 8};
static model test_model = {.name = "m", .config = &cfg};
static tensor_spec specs[] = {{.name = "s", .datatype = DT_BYTES, .ndim = 1, .dims = {-1}},
                              {.name = "x", .datatype = DT_FP32, .ndim = 2, .dims = {-1, 2}}};
static model_version mv = {.model = &test_model, .version_str = "1", .backend = &onnxruntime_backend,
                           .inputs = specs, .n_inputs = 1};

static inferd_status validate_bytes(const char *elems[], const uint32_t lens[], int n) {
  infer_request *req = infer_request_create(&mv);
  req->inputs = calloc(1, sizeof(tensor));
  req->n_inputs = 1;
  int64_t shape[1] = {n};
  tensor_init(&req->inputs[0], "s", DT_BYTES, shape, 1);
  size_t total = 0;
  for (int i = 0; i < n; i++) total += 4 + lens[i];
  tensor_alloc(&req->inputs[0], total);
  uint8_t *p = req->inputs[0].data;
  for (int i = 0; i < n; i++) {
    memcpy(p, &lens[i], 4);
    memcpy(p + 4, elems[i], lens[i]);
    p += 4 + lens[i];
  }
  inferd_status st = infer_request_validate(req);
  infer_request_destroy(req);
  return st;
}

static void test_bytes_inputs_are_utf8_text(void **state) {
  (void)state;
  const char *good[] = {"ok", "\xc3\xa9t\xc3\xa9", ""};
  const uint32_t good_len[] = {2, 5, 0};
  assert_int_equal(validate_bytes(good, good_len, 3).code, INFERD_OK);
  const char *bad[] = {"ok", "a\0b", "bad \xff"};
  const uint32_t bad_len[] = {2, 3, 5};
  inferd_status st = validate_bytes(bad, bad_len, 3);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "input 's' element 2 is not valid UTF-8 (byte 4 is 0xff)"));
}

static void test_zero_elements_are_refused(void **state) {
  (void)state;
  const char *none[] = {NULL};
  const uint32_t none_len[] = {0};
  inferd_status st = validate_bytes(none, none_len, 0);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "input 's' has shape [0], which holds no elements"));
}

static void test_jansson_errors_in_our_words(void **state) {
  (void)state;
  const struct {
    const char *text, *want;
  } cases[] = {
      {"{\"a\":\"\\u0000\"}", "line 1, column 13: \\u0000 (a NUL character) is not allowed in a string"},
      {"{} x", "line 1, column 4: unexpected text after the JSON value"},
      {"\xff", "line 1, column 1: the text is not valid UTF-8 at byte 0xff"},
      {"", "line 1, column 1: "},
      {"[1,\n 2", "line 2, column 2: ']' expected"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_error_t e;
    json_t *doc = json_loadb(cases[i].text, strlen(cases[i].text), 0, &e);
    assert_null(doc);
    char buf[256];
    jsonerr_describe(&e, buf, sizeof buf);
    if (strncmp(buf, cases[i].want, strlen(cases[i].want)) != 0) fail_msg("'%s': got '%s'", cases[i].text, buf);
    assert_null(strstr(buf, "JSON_ALLOW_NUL"));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deadline_after),
      cmocka_unit_test(test_timeout_header),
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_status_messages_stay_utf8),
      cmocka_unit_test(test_bytes_inputs_are_utf8_text),
      cmocka_unit_test(test_zero_elements_are_refused),
      cmocka_unit_test(test_jansson_errors_in_our_words),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
