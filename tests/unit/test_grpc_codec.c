/* The gRPC ModelInfer codec: typed and raw contents into tensors, the errors that name the
 * tensor, and responses back, typed or raw, through a protobuf pack/unpack round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "frontends/grpc/infer_codec.h"

static model test_model = {.name = "m"};
static model_version test_mv = {.model = &test_model, .version = 2, .version_str = "2"};

/* A request as a client would send it, through pack and unpack (protobuf-c owns the result). */
static Inference__ModelInferRequest *roundtrip(const Inference__ModelInferRequest *q) {
  size_t n = inference__model_infer_request__get_packed_size(q);
  uint8_t *buf = malloc(n + 1);
  inference__model_infer_request__pack(q, buf);
  Inference__ModelInferRequest *out = inference__model_infer_request__unpack(NULL, n, buf);
  free(buf);
  assert_non_null(out);
  return out;
}

typedef struct decoded {
  infer_request *req;
  grpcfe_infer_info info;
  inferd_status st;
} decoded;

static decoded decode(const Inference__ModelInferRequest *q) {
  decoded d = {.req = infer_request_create(&test_mv)};
  Inference__ModelInferRequest *m = roundtrip(q);
  d.st = grpcfe_decode_infer_request(m, d.req, &d.info);
  inference__model_infer_request__free_unpacked(m, NULL);
  return d;
}

static void release(decoded *d) {
  infer_request_destroy(d->req);
  grpcfe_infer_info_clear(&d->info);
}

static void expect_error(const Inference__ModelInferRequest *q, const char *fragment) {
  decoded d = decode(q);
  assert_int_equal(d.st.code, INFERD_INVALID_ARGUMENT);
  if (strstr(d.st.msg, fragment) == NULL) fail_msg("message '%s' lacks '%s'", d.st.msg, fragment);
  release(&d);
}

/* One input tensor named x of the given datatype and shape [1, n]. */
typedef struct one_input {
  Inference__ModelInferRequest q;
  Inference__ModelInferRequest__InferInputTensor in;
  Inference__ModelInferRequest__InferInputTensor *ins[1];
  Inference__InferTensorContents c;
  int64_t shape[2];
  ProtobufCBinaryData raw;
} one_input;

static void one_input_init(one_input *o, const char *dt, int64_t n) {
  inference__model_infer_request__init(&o->q);
  inference__model_infer_request__infer_input_tensor__init(&o->in);
  inference__infer_tensor_contents__init(&o->c);
  o->shape[0] = 1;
  o->shape[1] = n;
  o->in.name = "x";
  o->in.datatype = (char *)dt;
  o->in.shape = o->shape;
  o->in.n_shape = 2;
  o->in.contents = &o->c;
  o->ins[0] = &o->in;
  o->q.model_name = "m";
  o->q.id = "abc";
  o->q.inputs = o->ins;
  o->q.n_inputs = 1;
}

static void use_raw(one_input *o, const void *data, size_t len) {
  o->in.contents = NULL;
  o->raw.data = (uint8_t *)data;
  o->raw.len = len;
  o->q.raw_input_contents = &o->raw;
  o->q.n_raw_input_contents = 1;
}

static void test_typed_int8_and_uint16(void **state) {
  (void)state;
  one_input o;
  one_input_init(&o, "INT8", 3);
  int32_t v[3] = {-128, 0, 127};
  o.c.int_contents = v;
  o.c.n_int_contents = 3;
  decoded d = decode(&o.q);
  assert_true(status_is_ok(&d.st));
  assert_string_equal(d.info.id, "abc");
  assert_false(d.info.raw_output);
  assert_int_equal(d.req->inputs[0].byte_size, 3);
  assert_int_equal((int8_t)d.req->inputs[0].data[0], -128);
  assert_int_equal((int8_t)d.req->inputs[0].data[2], 127);
  release(&d);
  v[1] = 128;
  expect_error(&o.q, "128 is out of range for INT8");

  one_input_init(&o, "UINT16", 2);
  uint32_t u[2] = {65535, 7};
  o.c.uint_contents = u;
  o.c.n_uint_contents = 2;
  d = decode(&o.q);
  assert_true(status_is_ok(&d.st));
  uint16_t got[2];
  memcpy(got, d.req->inputs[0].data, 4);
  assert_int_equal(got[0], 65535);
  assert_int_equal(got[1], 7);
  release(&d);
  u[0] = 65536;
  expect_error(&o.q, "65536 is out of range for UINT16");
}

static void test_typed_bytes_and_fp16(void **state) {
  (void)state;
  one_input o;
  one_input_init(&o, "BYTES", 2);
  ProtobufCBinaryData b[2] = {{.len = 3, .data = (uint8_t *)"a\0b"}, {.len = 0, .data = NULL}};
  o.c.bytes_contents = b;
  o.c.n_bytes_contents = 2;
  decoded d = decode(&o.q);
  assert_true(status_is_ok(&d.st));
  static const uint8_t want[] = {3, 0, 0, 0, 'a', 0, 'b', 0, 0, 0, 0};
  assert_int_equal(d.req->inputs[0].byte_size, sizeof want);
  assert_memory_equal(d.req->inputs[0].data, want, sizeof want);
  release(&d);

  one_input_init(&o, "FP16", 2);
  float f[2] = {1.5f, 65504.0f};
  o.c.fp32_contents = f;
  o.c.n_fp32_contents = 2;
  d = decode(&o.q);
  assert_true(status_is_ok(&d.st));
  uint16_t h[2];
  memcpy(h, d.req->inputs[0].data, 4);
  assert_true(half_to_float(h[0]) == 1.5f);
  assert_true(half_to_float(h[1]) == 65504.0f);
  release(&d);
  f[1] = 70000.0f;
  expect_error(&o.q, "out of range for FP16");
}

static void test_typed_errors(void **state) {
  (void)state;
  one_input o;
  one_input_init(&o, "FP32", 3);
  float f[2] = {1, 2};
  o.c.fp32_contents = f;
  o.c.n_fp32_contents = 2;
  expect_error(&o.q, "contents.fp32_contents has 2 values but shape needs 3");
  int64_t i64[3] = {1, 2, 3};
  o.c.n_fp32_contents = 0;
  o.c.int64_contents = i64;
  o.c.n_int64_contents = 3;
  expect_error(&o.q, "its values go in contents.fp32_contents, not contents.int64_contents");
  o.in.datatype = "FLOAT32";
  expect_error(&o.q, "unknown datatype 'FLOAT32'");
  o.in.datatype = "FP32";
  o.in.contents = NULL;
  expect_error(&o.q, "input 'x' has no contents");
  /* no inputs is a request for a model that takes none: the codec passes it on */
  Inference__ModelInferRequest empty = INFERENCE__MODEL_INFER_REQUEST__INIT;
  empty.model_name = "m";
  decoded d = decode(&empty);
  assert_int_equal(d.st.code, INFERD_OK);
  assert_int_equal(d.req->n_inputs, 0);
  release(&d);
}

static void test_raw(void **state) {
  (void)state;
  one_input o;
  one_input_init(&o, "FP32", 2);
  float f[2] = {0.25f, -8};
  use_raw(&o, f, sizeof f);
  decoded d = decode(&o.q);
  assert_true(status_is_ok(&d.st));
  assert_true(d.info.raw_output);
  assert_memory_equal(d.req->inputs[0].data, f, sizeof f);
  release(&d);
  use_raw(&o, f, 7);
  expect_error(&o.q, "has 7 bytes but shape and datatype need 8");
  use_raw(&o, f, sizeof f);
  o.in.contents = &o.c;
  o.c.fp32_contents = f;
  o.c.n_fp32_contents = 2;
  expect_error(&o.q, "use one or the other");

  one_input_init(&o, "BYTES", 1);
  static const uint8_t ok[] = {2, 0, 0, 0, 'h', 'i'}, bad[] = {9, 0, 0, 0, 'h'};
  use_raw(&o, ok, sizeof ok);
  d = decode(&o.q);
  assert_true(status_is_ok(&d.st));
  release(&d);
  use_raw(&o, bad, sizeof bad);
  expect_error(&o.q, "4-byte little-endian length");
  one_input_init(&o, "BOOL", 1);
  static const uint8_t two[] = {2};
  use_raw(&o, two, 1);
  expect_error(&o.q, "BOOL element 0 is 2");
}

static void test_parameters(void **state) {
  (void)state;
  one_input o;
  one_input_init(&o, "INT64", 1);
  int64_t v = 5;
  o.c.int64_contents = &v;
  o.c.n_int64_contents = 1;
  Inference__InferParameter p = INFERENCE__INFER_PARAMETER__INIT, s = INFERENCE__INFER_PARAMETER__INIT;
  p.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
  p.int64_param = 2500;
  s.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
  s.string_param = "x";
  Inference__ModelInferRequest__ParametersEntry e1 = INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT,
                                                e2 = INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT;
  e1.key = "timeout", e1.value = &p;
  e2.key = "other", e2.value = &s;
  Inference__ModelInferRequest__ParametersEntry *es[2] = {&e1, &e2};
  o.q.parameters = es;
  o.q.n_parameters = 2;
  decoded d = decode(&o.q);
  assert_true(status_is_ok(&d.st));
  assert_int_equal(d.info.timeout_us, 2500);
  release(&d);
  e1.value = &s;
  expect_error(&o.q, "parameter 'timeout' must be an int64_param or uint64_param");
}

static Inference__ModelInferResponse *encode(tensor *outs, size_t n, bool raw_out);
static void make_tensor(tensor *t, const char *name, inferd_datatype dt, int64_t n, const void *data, size_t len);

/* tritonclient sends priority (and may send timeout) as uint64_param: both integer kinds are
 * taken, and a value out of range is refused naming the parameter. */
static void test_parameters_uint64(void **state) {
  (void)state;
  one_input o;
  one_input_init(&o, "INT64", 1);
  int64_t v = 5;
  o.c.int64_contents = &v;
  o.c.n_int64_contents = 1;
  Inference__InferParameter pr = INFERENCE__INFER_PARAMETER__INIT, to = INFERENCE__INFER_PARAMETER__INIT;
  pr.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM;
  pr.uint64_param = 2;
  to.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM;
  to.uint64_param = 7000;
  Inference__ModelInferRequest__ParametersEntry e1 = INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT,
                                                e2 = INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT;
  e1.key = "priority", e1.value = &pr;
  e2.key = "timeout", e2.value = &to;
  Inference__ModelInferRequest__ParametersEntry *es[2] = {&e1, &e2};
  o.q.parameters = es;
  o.q.n_parameters = 2;
  decoded d = decode(&o.q);
  assert_true(status_is_ok(&d.st));
  assert_int_equal(d.info.priority, 2);
  assert_int_equal(d.info.timeout_us, 7000);
  release(&d);
  pr.uint64_param = 1000001;
  expect_error(&o.q, "parameter 'priority' is 1000001, out of range");
  pr.uint64_param = UINT64_MAX;
  expect_error(&o.q, "parameter 'priority' is 18446744073709551615, out of range");
  pr.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
  pr.int64_param = -1;
  expect_error(&o.q, "parameter 'priority' is -1, out of range");
  pr.int64_param = 3;
  to.uint64_param = (uint64_t)INT64_MAX + 1;
  expect_error(&o.q, "parameter 'timeout' is 9223372036854775808, out of range");
  to.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM;
  expect_error(&o.q, "parameter 'timeout' must be an int64_param or uint64_param");
}

/* BF16 has no typed contents field: raw only, both ways. */
static void test_bf16_raw_only(void **state) {
  (void)state;
  one_input o;
  one_input_init(&o, "BF16", 2);
  float f[2] = {1.5f, -2.0f};
  o.c.fp32_contents = f;
  o.c.n_fp32_contents = 2;
  expect_error(&o.q, "input 'x' is BF16, which has no typed contents field: send its values in raw_input_contents");
  uint16_t b[2] = {double_to_bf16(1.5), double_to_bf16(-2.0)};
  use_raw(&o, b, sizeof b);
  decoded d = decode(&o.q);
  assert_true(status_is_ok(&d.st));
  assert_int_equal(d.req->inputs[0].datatype, DT_BF16);
  assert_memory_equal(d.req->inputs[0].data, b, sizeof b);
  release(&d);
  use_raw(&o, b, 3);
  expect_error(&o.q, "has 3 bytes but shape and datatype need 4");

  tensor outs[2];
  int32_t x = 9;
  make_tensor(&outs[0], "x", DT_INT32, 1, &x, 4);
  make_tensor(&outs[1], "b", DT_BF16, 2, b, sizeof b);
  Inference__ModelInferResponse *m = encode(outs, 2, false);
  assert_int_equal(m->n_raw_output_contents, 2);
  assert_string_equal(m->outputs[1]->datatype, "BF16");
  assert_memory_equal(m->raw_output_contents[1].data, b, sizeof b);
  inference__model_infer_response__free_unpacked(m, NULL);
  for (int i = 0; i < 2; i++) tensor_clear(&outs[i]);
}

/* Builds a completed request with the given outputs, encodes it and unpacks the result. */
static Inference__ModelInferResponse *encode(tensor *outs, size_t n, bool raw_out) {
  infer_request *req = infer_request_create(&test_mv);
  req->outputs = outs;
  req->n_outputs = n;
  grpcfe_infer_info info = {.id = strdup("id-1"), .raw_output = raw_out};
  grpcfe_infer_response r;
  inferd_status st = grpcfe_build_infer_response(req, &info, &r);
  assert_true(status_is_ok(&st));
  size_t len = inference__model_infer_response__get_packed_size(&r.msg);
  uint8_t *buf = malloc(len + 1);
  inference__model_infer_response__pack(&r.msg, buf);
  grpcfe_infer_response_clear(&r);
  grpcfe_infer_info_clear(&info);
  req->outputs = NULL; /* the caller's */
  req->n_outputs = 0;
  infer_request_destroy(req);
  Inference__ModelInferResponse *m = inference__model_infer_response__unpack(NULL, len, buf);
  free(buf);
  assert_non_null(m);
  return m;
}

static void make_tensor(tensor *t, const char *name, inferd_datatype dt, int64_t n, const void *data, size_t len) {
  int64_t shape[1] = {n};
  inferd_status st = tensor_init(t, name, dt, shape, 1);
  assert_true(status_is_ok(&st));
  tensor_alloc(t, len);
  memcpy(t->data, data, len);
}

static void test_response_typed_and_raw(void **state) {
  (void)state;
  tensor outs[3];
  int16_t i16[2] = {-5, 300};
  double f64[2] = {0.5, -1e300};
  static const uint8_t by[] = {1, 0, 0, 0, 'z'};
  make_tensor(&outs[0], "a", DT_INT16, 2, i16, sizeof i16);
  make_tensor(&outs[1], "b", DT_FP64, 2, f64, sizeof f64);
  make_tensor(&outs[2], "c", DT_BYTES, 1, by, sizeof by);
  Inference__ModelInferResponse *m = encode(outs, 3, false);
  assert_string_equal(m->model_name, "m");
  assert_string_equal(m->model_version, "2");
  assert_string_equal(m->id, "id-1");
  assert_int_equal(m->n_outputs, 3);
  assert_int_equal(m->n_raw_output_contents, 0);
  assert_string_equal(m->outputs[0]->datatype, "INT16");
  assert_int_equal(m->outputs[0]->contents->n_int_contents, 2);
  assert_int_equal(m->outputs[0]->contents->int_contents[0], -5);
  assert_int_equal(m->outputs[0]->contents->int_contents[1], 300);
  assert_true(m->outputs[1]->contents->fp64_contents[1] == -1e300);
  assert_int_equal(m->outputs[2]->contents->bytes_contents[0].len, 1);
  assert_int_equal(m->outputs[2]->contents->bytes_contents[0].data[0], 'z');
  inference__model_infer_response__free_unpacked(m, NULL);

  m = encode(outs, 3, true);
  assert_int_equal(m->n_raw_output_contents, 3);
  assert_null(m->outputs[0]->contents);
  assert_memory_equal(m->raw_output_contents[0].data, i16, sizeof i16);
  assert_memory_equal(m->raw_output_contents[2].data, by, sizeof by);
  inference__model_infer_response__free_unpacked(m, NULL);
  for (int i = 0; i < 3; i++) tensor_clear(&outs[i]);
}

static void test_fp16_output_makes_the_response_raw(void **state) {
  (void)state;
  tensor outs[2];
  uint16_t h = float_to_half(2.0f);
  int32_t x = 9;
  make_tensor(&outs[0], "h", DT_FP16, 1, &h, 2);
  make_tensor(&outs[1], "x", DT_INT32, 1, &x, 4);
  Inference__ModelInferResponse *m = encode(outs, 2, false);
  assert_int_equal(m->n_raw_output_contents, 2);
  assert_memory_equal(m->raw_output_contents[1].data, &x, 4);
  inference__model_infer_response__free_unpacked(m, NULL);
  for (int i = 0; i < 2; i++) tensor_clear(&outs[i]);
}

/* The id is echoed into a proto3 string: one that is not UTF-8 is refused (issue 9, defect 6). */
static void test_id_must_be_utf8(void **state) {
  (void)state;
  one_input o;
  one_input_init(&o, "INT32", 1);
  int32_t v = 1;
  o.c.int_contents = &v;
  o.c.n_int_contents = 1;
  o.q.id = "ok \xc3\xa9";
  decoded d = decode(&o.q);
  assert_int_equal(d.st.code, INFERD_OK);
  assert_string_equal(d.info.id, "ok \xc3\xa9");
  release(&d);
  o.q.id = "bad \xff";
  expect_error(&o.q, "id is not valid UTF-8 (byte 4 is 0xff)");
  o.q.id = "\xed\xa0\x80"; /* a UTF-16 surrogate */
  expect_error(&o.q, "id is not valid UTF-8");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_typed_int8_and_uint16),
      cmocka_unit_test(test_typed_bytes_and_fp16),
      cmocka_unit_test(test_typed_errors),
      cmocka_unit_test(test_raw),
      cmocka_unit_test(test_parameters),
      cmocka_unit_test(test_parameters_uint64),
      cmocka_unit_test(test_bf16_raw_only),
      cmocka_unit_test(test_response_typed_and_raw),
      cmocka_unit_test(test_fp16_output_makes_the_response_raw),
      cmocka_unit_test(test_id_must_be_utf8),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
