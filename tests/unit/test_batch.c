/* Batching: inputs concatenated along the batch dimension, each request given back exactly its
 * own rows (fixed-size and BYTES), the union of requested outputs, and a failing run failing
 * only its own batch. The backend here echoes its inputs, so what each request gets back can
 * be checked against what it sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/batch.h"

static int runs;
static int last_rows;
static bool fail_next;

/* Outputs "out_<input>" are copies of the inputs; "rows" is an INT32 [N] of row indexes. */
static inferd_status echo_run(backend_model *m, const tensor *inputs, size_t n_inputs,
                              const char *const *names, size_t n_outputs, tensor *results) {
  (void)m;
  runs++;
  last_rows = (int)inputs[0].shape[0];
  if (fail_next) return status_make(INFERD_INTERNAL, "echo backend told to fail");
  for (size_t o = 0; o < n_outputs; o++) {
    if (strcmp(names[o], "rows") == 0) {
      int64_t shape[1] = {inputs[0].shape[0]};
      tensor_init(&results[o], "rows", DT_INT32, shape, 1);
      tensor_alloc(&results[o], (size_t)shape[0] * 4);
      for (int32_t r = 0; r < shape[0]; r++) memcpy(results[o].data + r * 4, &r, 4);
      continue;
    }
    for (size_t i = 0; i < n_inputs; i++)
      if (strcmp(names[o] + 4, inputs[i].name) == 0) {
        tensor_init(&results[o], names[o], inputs[i].datatype, inputs[i].shape, inputs[i].ndim);
        tensor_alloc(&results[o], inputs[i].byte_size);
        memcpy(results[o].data, inputs[i].data, inputs[i].byte_size);
      }
  }
  return status_ok();
}

static const backend_ops echo_backend = {.name = "echo", .run = echo_run};
static model_config cfg = {.max_batch_size = 16, .instance_count = 1};
static model test_model = {.name = "m", .config = &cfg};
static tensor_spec outs[] = {{.name = "out_x"}, {.name = "out_s"}, {.name = "rows"}};
static model_version mv = {.model = &test_model, .backend = &echo_backend, .outputs = outs, .n_outputs = 3};

/* A request of `rows` rows: x FP32 [rows,2] = base+k, s BYTES [rows] = "r<base+k>". */
static infer_request *make_request(int rows, int base, const char *want) {
  infer_request *r = infer_request_create(&mv);
  r->rows = rows;
  r->n_inputs = 2;
  r->inputs = calloc(2, sizeof(tensor));
  int64_t xs[2] = {rows, 2};
  tensor_init(&r->inputs[0], "x", DT_FP32, xs, 2);
  tensor_alloc(&r->inputs[0], (size_t)rows * 8);
  for (int k = 0; k < rows * 2; k++) {
    float v = (float)(base + k);
    memcpy(r->inputs[0].data + k * 4, &v, 4);
  }
  int64_t ss[1] = {rows};
  tensor_init(&r->inputs[1], "s", DT_BYTES, ss, 1);
  char buf[256];
  size_t off = 0;
  for (int k = 0; k < rows; k++) {
    char e[16];
    int n = snprintf(e, sizeof e, "r%d", base + k);
    uint32_t len = (uint32_t)n;
    memcpy(buf + off, &len, 4);
    memcpy(buf + off + 4, e, (size_t)n);
    off += 4 + (size_t)n;
  }
  tensor_alloc(&r->inputs[1], off);
  memcpy(r->inputs[1].data, buf, off);
  r->n_outputs = 1;
  r->output_names = calloc(1, sizeof(char *));
  r->output_names[0] = strdup(want);
  return r;
}

static void test_rows_go_back_to_their_requests(void **state) {
  (void)state;
  infer_request *reqs[3] = {make_request(1, 100, "out_x"), make_request(2, 200, "out_s"), make_request(3, 300, "out_x")};
  runs = 0;
  batch_execute(reqs, 3);
  assert_int_equal(runs, 1);
  assert_int_equal(last_rows, 6);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(reqs[i]->status.code, INFERD_OK);
    assert_int_equal(reqs[i]->batch_size, 6);
    const tensor *in = strcmp(reqs[i]->output_names[0], "out_x") == 0 ? &reqs[i]->inputs[0] : &reqs[i]->inputs[1];
    const tensor *out = &reqs[i]->outputs[0];
    assert_int_equal(out->shape[0], reqs[i]->rows);
    assert_int_equal(out->byte_size, in->byte_size);
    assert_memory_equal(out->data, in->data, in->byte_size);
  }
  for (int i = 0; i < 3; i++) infer_request_destroy(reqs[i]);
}

static void test_compatibility(void **state) {
  (void)state;
  infer_request *a = make_request(1, 0, "out_x"), *b = make_request(4, 0, "out_x");
  assert_true(batch_compatible(a, b));
  b->inputs[0].shape[1] = 3; /* another row width cannot share a tensor */
  assert_false(batch_compatible(a, b));
  infer_request_destroy(a);
  infer_request_destroy(b);
}

static void test_failure_fails_only_the_batch(void **state) {
  (void)state;
  infer_request *bad[2] = {make_request(1, 0, "out_x"), make_request(1, 1, "out_x")};
  infer_request *good[1] = {make_request(2, 5, "out_x")};
  fail_next = true;
  batch_execute(bad, 2);
  fail_next = false;
  batch_execute(good, 1);
  assert_int_equal(bad[0]->status.code, INFERD_INTERNAL);
  assert_int_equal(bad[1]->status.code, INFERD_INTERNAL);
  assert_non_null(strstr(bad[1]->status.msg, "told to fail"));
  assert_null(bad[0]->outputs);
  assert_int_equal(good[0]->status.code, INFERD_OK);
  assert_memory_equal(good[0]->outputs[0].data, good[0]->inputs[0].data, 16);
  infer_request_destroy(bad[0]);
  infer_request_destroy(bad[1]);
  infer_request_destroy(good[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rows_go_back_to_their_requests),
      cmocka_unit_test(test_compatibility),
      cmocka_unit_test(test_failure_fails_only_the_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
