/* The core's extension points for the layers above it: the backend registry and the
 * version-load hooks (how the application API plugs in without the core calling it). A fake
 * backend and two hooks check the order of calls, the per-hook slots, and that a failing hook
 * makes the version UNAVAILABLE with its reason and releases what earlier hooks kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/backend.h"
#include "core/model.h"

static tensor_spec fake_in[] = {{.name = "x", .datatype = DT_FP32, .ndim = 1, .dims = {3}}};
static tensor_spec fake_out[] = {{.name = "y", .datatype = DT_FP32, .ndim = 1, .dims = {3}}};
static int backend_loads, backend_unloads;

static inferd_status fake_load(const char *path, const model_config *cfg, backend_model **out) {
  (void)path, (void)cfg;
  backend_loads++;
  *out = (backend_model *)&backend_loads; /* any non-NULL handle */
  return status_ok();
}
static void fake_describe(const backend_model *m, const tensor_spec **in, size_t *ni, const tensor_spec **out,
                          size_t *no) {
  (void)m;
  *in = fake_in, *ni = 1, *out = fake_out, *no = 1;
}
static void fake_unload(backend_model *m) {
  (void)m;
  backend_unloads++;
}
static const backend_ops fake_backend = {.name = "fake", .model_filename = "model.fake", .load = fake_load,
                                         .describe = fake_describe, .unload = fake_unload};

/* A log of hook calls, e.g. "L0 L1 U1 U0 ". */
static char calls[256];
static bool fail_second;
static int slot0, slot1;
static int data0, data1;

static inferd_status load0(model_version *mv, void **data) {
  assert_int_equal(mv->n_inputs, 1); /* the signature is resolved before hooks run */
  strcat(calls, "L0 ");
  *data = &data0;
  return status_ok();
}
static void unload0(model_version *mv, void *data) {
  (void)mv;
  assert_ptr_equal(data, &data0);
  strcat(calls, "U0 ");
}
static inferd_status load1(model_version *mv, void **data) {
  assert_ptr_equal(model_version_hook_data(mv, slot0), &data0); /* earlier hooks' data is there */
  strcat(calls, "L1 ");
  if (fail_second) return status_make(INFERD_INVALID_ARGUMENT, "config.json: hook one refuses");
  *data = &data1;
  return status_ok();
}
static void unload1(model_version *mv, void *data) {
  (void)mv;
  assert_ptr_equal(data, &data1);
  strcat(calls, "U1 ");
}
static const model_version_hook hook0 = {.name = "zero", .load = load0, .unload = unload0};
static const model_version_hook hook1 = {.name = "one", .load = load1, .unload = unload1};

static model *fake_model(void) {
  model_config *cfg;
  inferd_status st = model_config_default(&cfg);
  assert_true(status_is_ok(&st));
  free(cfg->backend);
  cfg->backend = strdup("fake");
  return model_create("m", cfg, NULL);
}

static void test_registry(void **state) {
  (void)state;
  assert_null(backend_find("fake"));
  inferd_status st = backend_register(&fake_backend);
  assert_true(status_is_ok(&st));
  assert_ptr_equal(backend_find("fake"), &fake_backend);
  st = backend_register(&fake_backend);
  assert_int_equal(st.code, INFERD_INTERNAL); /* a name is registered once */
  assert_null(backend_find("onnxruntime")); /* the core knows no backend of its own */
}

static void test_unregistered_backend(void **state) {
  (void)state;
  model_config *cfg;
  inferd_status st = model_config_default(&cfg);
  assert_true(status_is_ok(&st));
  model *m = model_create("m", cfg, NULL); /* backend "onnxruntime", not registered here */
  model_version *mv = model_version_create(m, 1, "/nonexistent/model.onnx");
  model_version_load(mv);
  assert_int_equal(model_version_state(mv), MODEL_UNAVAILABLE);
  assert_non_null(strstr(mv->reason, "backend 'onnxruntime' is not registered"));
  model_version_free(mv);
  model_release(m);
}

static void test_hooks(void **state) {
  (void)state;
  slot0 = model_version_hook_register(&hook0);
  slot1 = model_version_hook_register(&hook1);
  assert_true(slot0 >= 0 && slot1 > slot0);

  model *m = fake_model();
  model_version *mv = model_version_create(m, 1, "/x/1/model.fake");
  calls[0] = '\0';
  model_version_load(mv);
  assert_int_equal(model_version_state(mv), MODEL_READY);
  assert_string_equal(calls, "L0 L1 ");
  assert_ptr_equal(model_version_hook_data(mv, slot0), &data0);
  assert_ptr_equal(model_version_hook_data(mv, slot1), &data1);
  assert_null(model_version_hook_data(mv, -1)); /* an unregistered hook's slot */
  model_version_free(mv);
  assert_string_equal(calls, "L0 L1 U1 U0 "); /* unloaded in reverse order */
  assert_int_equal(backend_unloads, backend_loads);

  /* a failing hook fails the version with its reason; the earlier hook's data is released */
  fail_second = true;
  mv = model_version_create(m, 2, "/x/2/model.fake");
  calls[0] = '\0';
  model_version_load(mv);
  assert_int_equal(model_version_state(mv), MODEL_UNAVAILABLE);
  assert_string_equal(mv->reason, "config.json: hook one refuses");
  assert_string_equal(calls, "L0 L1 U0 ");
  assert_null(model_version_hook_data(mv, slot0));
  assert_int_equal(backend_unloads, backend_loads);
  model_version_free(mv);
  assert_string_equal(calls, "L0 L1 U0 "); /* nothing unloaded twice */
  model_release(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_registry),
      cmocka_unit_test(test_unregistered_backend),
      cmocka_unit_test(test_hooks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
