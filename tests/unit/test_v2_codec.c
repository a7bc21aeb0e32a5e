/* The V2 tensor codec: JSON data flat and nested for each datatype, binary data, the errors
 * that name the tensor, and encoding back to JSON and binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "frontends/http/v2_codec.h"

static model test_model = {.name = "m"};
static model_version test_mv = {.model = &test_model, .version = 3, .version_str = "3"};

typedef struct decoded {
  infer_request *req;
  v2_request_info info;
  inferd_status st;
} decoded;

static decoded decode(const char *body, size_t len, long long header_len) {
  decoded d = {.req = infer_request_create(&test_mv)};
  memset(&d.info, 0, sizeof d.info);
  d.st = v2_decode_request(body, len, header_len, d.req, &d.info);
  return d;
}

static decoded decode_json(const char *json) { return decode(json, strlen(json), -1); }

static void release(decoded *d) {
  infer_request_destroy(d->req);
  v2_request_info_clear(&d->info);
}

static void expect_error(const char *json, const char *fragment) {
  decoded d = decode_json(json);
  assert_int_equal(d.st.code, INFERD_INVALID_ARGUMENT);
  if (strstr(d.st.msg, fragment) == NULL) fail_msg("message '%s' lacks '%s'", d.st.msg, fragment);
  release(&d);
}

static void test_nested_and_flat_fp32(void **state) {
  (void)state;
  decoded a = decode_json("{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2],\"data\":[[1,2.5],[3,-4]]}]}");
  decoded b = decode_json("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2],\"data\":[1,2.5,3,-4]}]}");
  assert_int_equal(a.st.code, INFERD_OK);
  assert_int_equal(b.st.code, INFERD_OK);
  assert_string_equal(a.info.id, "r1");
  assert_int_equal(a.req->n_inputs, 1);
  tensor *t = &a.req->inputs[0];
  assert_int_equal(t->ndim, 2);
  assert_int_equal(t->byte_size, 16);
  float want[] = {1, 2.5f, 3, -4};
  assert_memory_equal(t->data, want, 16);
  assert_memory_equal(b.req->inputs[0].data, want, 16);
  release(&a);
  release(&b);
}

static void test_integer_types_and_ranges(void **state) {
  (void)state;
  decoded d = decode_json("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"INT8\",\"shape\":[2],\"data\":[-128,127]},"
                          "{\"name\":\"b\",\"datatype\":\"UINT16\",\"shape\":[1],\"data\":[65535]},"
                          "{\"name\":\"c\",\"datatype\":\"INT64\",\"shape\":[1],\"data\":[-9223372036854775807]},"
                          "{\"name\":\"d\",\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,false]}]}");
  assert_int_equal(d.st.code, INFERD_OK);
  int8_t a[] = {-128, 127};
  assert_memory_equal(d.req->inputs[0].data, a, 2);
  uint16_t b = 65535;
  assert_memory_equal(d.req->inputs[1].data, &b, 2);
  int64_t c = -9223372036854775807LL;
  assert_memory_equal(d.req->inputs[2].data, &c, 8);
  uint8_t bl[] = {1, 0};
  assert_memory_equal(d.req->inputs[3].data, bl, 2);
  release(&d);
  expect_error("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[256]}]}", "out of range for UINT8");
  expect_error("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[1.5]}]}", "must be an integer");
  expect_error("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"BOOL\",\"shape\":[1],\"data\":[1]}]}", "true or false");
  expect_error("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP16\",\"shape\":[1],\"data\":[70000]}]}", "out of range for FP16");
}

static void test_bytes_layout(void **state) {
  (void)state;
  decoded d = decode_json("{\"inputs\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[3],\"data\":[\"ab\",\"\",\"\\u00e9\"]}]}");
  assert_int_equal(d.st.code, INFERD_OK);
  const uint8_t want[] = {2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0, 2, 0, 0, 0, 0xc3, 0xa9};
  assert_int_equal(d.req->inputs[0].byte_size, sizeof want);
  assert_memory_equal(d.req->inputs[0].data, want, sizeof want);
  assert_int_equal(tensor_bytes_check(&d.req->inputs[0], 3).code, INFERD_OK);
  assert_int_equal(tensor_bytes_check(&d.req->inputs[0], 2).code, INFERD_INVALID_ARGUMENT);
  release(&d);
}

static void test_errors_name_the_tensor(void **state) {
  (void)state;
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2],\"data\":[1,2,3]}]}", "input 'x' has 3 data elements but shape [2,2] needs 4");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1,2]}]}", "more elements");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FLOAT\",\"shape\":[1],\"data\":[1]}]}", "unknown datatype 'FLOAT'");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1],\"data\":[1]}]}", "inputs[0].shape[0]");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[4294967296,4294967296],\"data\":[]}]}", "too many elements");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1]}]}", "needs \"data\"");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[\"a\"]}]}", "must be a number");
  expect_error("{\"inputs\":{}}", "inputs must be an array of tensors");
  expect_error("{\"inputs\":[1]}", "inputs[0] must be an object");
  expect_error("{\"inputs\":[{\"datatype\":\"FP32\"}]}", "inputs[0].name");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}],\"outputs\":[{}]}", "outputs[0].name");
  expect_error("{\"inputs\":", "malformed JSON at line 1");
  expect_error("[1]", "JSON object");
  expect_error("{\"id\":5,\"inputs\":[]}", "id must be a string");
}

static void test_binary_inputs(void **state) {
  (void)state;
  const char *hdr = "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[2],\"parameters\":{\"binary_data_size\":8}},"
                    "{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1],\"parameters\":{\"binary_data_size\":7}}]}";
  size_t hl = strlen(hdr);
  char body[512];
  memcpy(body, hdr, hl);
  int32_t x[] = {7, -9};
  memcpy(body + hl, x, 8);
  memcpy(body + hl + 8, "\x03\x00\x00\x00" "abc", 7);
  decoded d = decode(body, hl + 15, (long long)hl);
  assert_int_equal(d.st.code, INFERD_OK);
  assert_memory_equal(d.req->inputs[0].data, x, 8);
  assert_int_equal(d.req->inputs[1].byte_size, 7);
  release(&d);

  d = decode(body, hl + 14, (long long)hl); /* one byte short */
  assert_int_equal(d.st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(d.st.msg, "binary_data_size 7"));
  release(&d);
  d = decode(body, hl + 15, (long long)hl + 100); /* header length past the body */
  assert_int_equal(d.st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(d.st.msg, "Inference-Header-Content-Length"));
  release(&d);
  memcpy(body + hl + 8, "\x09\x00\x00\x00" "abc", 7); /* element length past its data */
  d = decode(body, hl + 15, (long long)hl);
  assert_int_equal(d.st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(d.st.msg, "input 's'"));
  release(&d);
}

static char *encode(infer_request *req, v2_request_info *info, size_t *header_len, size_t *total) {
  struct evbuffer *out = evbuffer_new();
  inferd_status st = v2_encode_response(req, info, out, header_len);
  assert_int_equal(st.code, INFERD_OK);
  *total = evbuffer_get_length(out);
  char *s = calloc(1, *total + 1);
  evbuffer_remove(out, s, *total);
  evbuffer_free(out);
  return s;
}

static void test_encode_json_and_binary(void **state) {
  (void)state;
  infer_request *req = infer_request_create(&test_mv);
  req->n_outputs = 2;
  req->output_names = calloc(2, sizeof(char *));
  req->output_names[0] = strdup("y");
  req->output_names[1] = strdup("b");
  req->outputs = calloc(2, sizeof(tensor));
  int64_t shape[] = {2};
  tensor_init(&req->outputs[0], "y", DT_FP32, shape, 1);
  tensor_alloc(&req->outputs[0], 8);
  float y[] = {0.5f, -2};
  memcpy(req->outputs[0].data, y, 8);
  tensor_init(&req->outputs[1], "b", DT_BOOL, shape, 1);
  tensor_alloc(&req->outputs[1], 2);
  req->outputs[1].data[0] = 1;

  v2_request_info info = {.id = strdup("q")};
  size_t hl, total;
  char *s = encode(req, &info, &hl, &total);
  assert_int_equal(hl, 0);
  assert_string_equal(s, "{\"model_name\":\"m\",\"model_version\":\"3\",\"id\":\"q\",\"outputs\":["
                         "{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[0.5,-2]},"
                         "{\"name\":\"b\",\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,false]}]}");
  free(s);

  info.binary_output_all = true;
  s = encode(req, &info, &hl, &total);
  assert_int_equal(total, hl + 10);
  assert_non_null(strstr(s, "\"parameters\":{\"binary_data_size\":8}"));
  assert_memory_equal(s + hl, y, 8);
  free(s);
  v2_request_info_clear(&info);
  infer_request_destroy(req);
}

static void test_json_string_escaping(void **state) {
  (void)state;
  struct evbuffer *out = evbuffer_new();
  assert_true(v2_append_json_string(out, "a\"\\\n\xc3\xa9", 6));
  assert_false(v2_append_json_string(out, "\xff", 1));
  assert_false(v2_append_json_string(out, "\xc3", 1));
  char s[64] = {0};
  evbuffer_remove(out, s, sizeof s - 1);
  assert_string_equal(s, "\"a\\\"\\\\\\u000a\xc3\xa9\"");
  evbuffer_free(out);
}

static void test_half_precision(void **state) {
  (void)state;
  const float values[] = {0.0f, 1.0f, -2.5f, 65504.0f, 0.000061035156f, 5.9604645e-08f, 0.333251953125f};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
    assert_true(half_to_float(float_to_half(values[i])) == values[i]);
  assert_int_equal(float_to_half(1.0f), 0x3c00);
  assert_int_equal(float_to_half(-2.0f), 0xc000);
  assert_true(isinf(half_to_float(float_to_half(1e6f))));
  assert_true(isnan(half_to_float(float_to_half(NAN))));
}

/* bfloat16: JSON numbers rounded once to nearest, ties to even; every value written back to
 * JSON reads back to itself. */
static void test_bf16(void **state) {
  (void)state;
  /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1); a hair above goes up; 1 + 3*2^-8
   * is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up. 1.00390625000001 is rounded to float
   * 1.00390625 (a tie) on the way through float: rounding once must still go up. */
  decoded d = decode_json("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BF16\",\"shape\":[7],"
                          "\"data\":[1.00390625,1.0039063,1.01171875,1.00390625000001,-0.0,3.3895313892515355e38,NaN]}]}");
  assert_int_equal(d.st.code, INFERD_OK);
  uint16_t want[] = {0x3f80, 0x3f81, 0x3f82, 0x3f81, 0x8000, 0x7f7f, 0x7fc0};
  assert_int_equal(d.req->inputs[0].byte_size, sizeof want);
  assert_memory_equal(d.req->inputs[0].data, want, sizeof want);
  release(&d);
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BF16\",\"shape\":[1],\"data\":[3.3961775292305e38]}]}",
               "input 'x' element 0: value is out of range for BF16");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BF16\",\"shape\":[1],\"data\":[true]}]}", "must be a number");
  assert_int_equal(double_to_bf16(3.3961775292303e38), 0x7f7f); /* just below the overflow point */
  assert_int_equal(double_to_bf16(1e-45), 0x0000);              /* below half the least subnormal */
  assert_int_equal(double_to_bf16(9.2e-41), 0x0001);            /* the least subnormal, 2^-133 */

  /* every bfloat16 but NaNs: JSON out, JSON in, same bits */
  infer_request *req = infer_request_create(&test_mv);
  req->n_outputs = 1;
  req->output_names = calloc(1, sizeof(char *));
  req->output_names[0] = strdup("b");
  req->outputs = calloc(1, sizeof(tensor));
  int64_t shape[] = {65536};
  tensor_init(&req->outputs[0], "b", DT_BF16, shape, 1);
  tensor_alloc(&req->outputs[0], 2 * 65536);
  for (uint32_t i = 0; i < 65536; i++) {
    uint16_t b = (uint16_t)i;
    if ((b & 0x7f80) == 0x7f80 && (b & 0x7f)) b = 0x3f80; /* NaN payloads are not kept */
    memcpy(req->outputs[0].data + 2 * i, &b, 2);
  }
  v2_request_info info = {0};
  size_t hl, total;
  char *js = encode(req, &info, &hl, &total);
  const char *data = strstr(js, "\"data\":");
  assert_non_null(data);
  size_t dlen = strlen(data + 7) - 3; /* without the closing }]} */
  char *body = malloc(dlen + 128);
  int n = snprintf(body, 128, "{\"inputs\":[{\"name\":\"b\",\"datatype\":\"BF16\",\"shape\":[65536],\"data\":");
  memcpy(body + n, data + 7, dlen);
  memcpy(body + n + dlen, "}]}", 4);
  decoded back = decode_json(body);
  if (back.st.code != INFERD_OK) fail_msg("%s", back.st.msg);
  for (uint32_t i = 0; i < 65536; i++) {
    uint16_t a, b;
    memcpy(&a, req->outputs[0].data + 2 * i, 2);
    memcpy(&b, back.req->inputs[0].data + 2 * i, 2);
    if (a != b) fail_msg("bf16 0x%04x came back as 0x%04x", a, b);
  }
  release(&back);
  free(body);
  free(js);
  v2_request_info_clear(&info);
  infer_request_destroy(req);
}

/* NaN, Infinity and -Infinity are read on the fast path, and with a BYTES input beside them
 * (whose strings the fast path leaves to jansson) too; the model's allow_nan is checked later,
 * in the core, for every route. */
static void test_non_finite_literals(void **state) {
  (void)state;
  const char *bodies[] = {
      "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[3],\"data\":[NaN,Infinity,-Infinity]}]}",
      "{\"inputs\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"a\"]},"
      "{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,3],\"data\":[[NaN,Infinity,-Infinity]]}]}",
  };
  for (size_t k = 0; k < 2; k++) {
    decoded d = decode_json(bodies[k]);
    if (d.st.code != INFERD_OK) fail_msg("%s: %s", bodies[k], d.st.msg);
    const float *f = (const float *)(const void *)d.req->inputs[d.req->n_inputs - 1].data;
    assert_true(isnan(f[0]));
    assert_true(isinf(f[1]) && f[1] > 0);
    assert_true(isinf(f[2]) && f[2] < 0);
    release(&d);
  }
  decoded d = decode_json("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP16\",\"shape\":[1],\"data\":[-Infinity]},"
                          "{\"name\":\"y\",\"datatype\":\"FP64\",\"shape\":[1],\"data\":[NaN]}]}");
  assert_int_equal(d.st.code, INFERD_OK);
  assert_true(isinf(half_to_float(*(const uint16_t *)(const void *)d.req->inputs[0].data)));
  assert_true(isnan(*(const double *)(const void *)d.req->inputs[1].data));
  release(&d);
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[NaN]}]}",
               "input 'x' element 0: must be an integer");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[nan]}]}", "malformed JSON");
}

/* A model with no inputs: no "inputs", or an empty array, decodes to a request with none. */
static void test_no_inputs(void **state) {
  (void)state;
  const char *bodies[] = {"{}", "{\"inputs\":[]}", "{\"id\":\"a\",\"outputs\":[{\"name\":\"c\"}]}"};
  for (size_t k = 0; k < 3; k++) {
    decoded d = decode_json(bodies[k]);
    if (d.st.code != INFERD_OK) fail_msg("%s: %s", bodies[k], d.st.msg);
    assert_int_equal(d.req->n_inputs, 0);
    release(&d);
  }
  decoded d = decode("{}", 2, 2); /* binary extension, nothing after the header */
  assert_int_equal(d.st.code, INFERD_OK);
  release(&d);
  expect_error("{\"inputs\":null}", "inputs must be an array of tensors");
}

/* "data" is flat or nested exactly as the shape (issue 9, defect 6): numbers go through the fast
 * scanner, strings and a scanner-declined array (a null in it) through jansson; both check. */
static void test_nesting_must_match_the_shape(void **state) {
  (void)state;
  const char *ok[] = {
      "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3],\"data\":[1,2,3,4,5,6]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3],\"data\":[[1,2,3],[4,5,6]]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,2,2],\"data\":[[[1,2],[3,4]]]}]}",
      "{\"inputs\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1,2],\"data\":[[\"a\",\"b\"]]}]}",
      "{\"inputs\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[2],\"data\":[\"a\",\"b\"]}]}",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    decoded d = decode_json(ok[i]);
    if (d.st.code != INFERD_OK) fail_msg("%s: %s", ok[i], d.st.msg);
    release(&d);
  }
  /* deeper than the shape */
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,2],\"data\":[[[0],[1]]]}]}",
               "input 'x': data[0][0] is an array nested deeper than the shape");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[[1,2]]}]}",
               "nested deeper");
  expect_error("{\"inputs\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[[\"a\"]]}]}",
               "input 's': data[0] is an array nested deeper");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,2],\"data\":[[[0],[null]]]}]}",
               "nested deeper");
  /* nested, but not as the shape is */
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3],\"data\":[[1,2],[3,4],[5,6]]}]}",
               "data[0] has 2 elements but dimension 1 of shape [2,3] is 3");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3],\"data\":[[1,2,3],4,5,6]}]}",
               "data[1] is a value where the shape needs an array");
  expect_error("{\"inputs\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[2,1],\"data\":[[\"a\"],\"b\"]}]}",
               "data[1] is a value where the shape needs an array");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,2],\"data\":[[1,2],[3,4]]}]}",
               "one array more than its dimension");
  expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,2],\"data\":5}]}",
               "data must be an array");
}

/* Malformed JSON is reported in our words, position 1-based (issue 9, defect 7). */
static void test_json_errors_in_our_words(void **state) {
  (void)state;
  decoded d = decode_json("{\"id\":\"a\\u0000b\",\"inputs\":[]}");
  assert_int_equal(d.st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(d.st.msg, "malformed JSON at line 1, column "));
  assert_non_null(strstr(d.st.msg, "NUL"));
  assert_null(strstr(d.st.msg, "JSON_ALLOW_NUL"));
  release(&d);
  expect_error("{\"inputs\":[]} x", "unexpected text after the JSON value");
  expect_error("\xff", "line 1, column 1: the text is not valid UTF-8");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nested_and_flat_fp32),
      cmocka_unit_test(test_integer_types_and_ranges),
      cmocka_unit_test(test_bytes_layout),
      cmocka_unit_test(test_errors_name_the_tensor),
      cmocka_unit_test(test_binary_inputs),
      cmocka_unit_test(test_encode_json_and_binary),
      cmocka_unit_test(test_json_string_escaping),
      cmocka_unit_test(test_half_precision),
      cmocka_unit_test(test_bf16),
      cmocka_unit_test(test_non_finite_literals),
      cmocka_unit_test(test_no_inputs),
      cmocka_unit_test(test_nesting_must_match_the_shape),
      cmocka_unit_test(test_json_errors_in_our_words),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
