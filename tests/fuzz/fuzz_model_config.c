/* A model's config.json (core/model_config.c), and what loading a version does with it next:
 * its declared tensors resolved against themselves as the model file's signature
 * (model_resolve_signature), the "application" section compiled (features_compile) and
 * described as the catalogue and OpenAPI pages do. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_model.h"

static void check_application(const model_config *cfg, const tensor_spec *in, size_t ni, const tensor_spec *out,
                        size_t no) {
  features *f = NULL;
  inferd_status st = features_compile(cfg->application, cfg, in, ni, out, no, &f);
  if (!status_is_ok(&st)) return;
  json_decref(features_describe(f));
  json_decref(features_describe_outputs(f));
  json_decref(features_record_schema(f));
  json_decref(features_result_schema(f));
  json_t *example = features_example_record(f);
  json_t *records = json_pack("[o]", example);
  tensor *ts = NULL;
  size_t nt = 0;
  feature_errors errs = {0};
  features_paths paths = {.base = "$.inputs"};
  st = features_encode(f, records, &paths, &ts, &nt, &errs);
  if (status_is_ok(&st)) tensors_free(ts, nt);
  feature_errors_clear(&errs);
  json_decref(records);
  features_destroy(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  model_config *cfg = NULL;
  inferd_status st = model_config_parse((const char *)data, size, &cfg);
  if (!status_is_ok(&st)) return 0;
  int64_t versions[] = {1, 2, 3, 7, 100};
  for (int i = 0; i < 5; i++) (void)model_config_serves_version(cfg, versions, 5, versions[i]);

  bool fits = true; /* a batch dimension added must stay within TENSOR_MAX_DIMS */
  for (size_t i = 0; i < cfg->n_inputs; i++) fits = fits && cfg->inputs[i].ndim < TENSOR_MAX_DIMS;
  for (size_t i = 0; i < cfg->n_outputs; i++) fits = fits && cfg->outputs[i].ndim < TENSOR_MAX_DIMS;
  if (fits) {
    tensor_spec *in = fuzz_full_specs(cfg, cfg->inputs, cfg->n_inputs);
    tensor_spec *out = fuzz_full_specs(cfg, cfg->outputs, cfg->n_outputs);
    tensor_spec *ri = NULL, *ro = NULL;
    size_t ni = 0, no = 0;
    st = model_resolve_signature(cfg, in, cfg->n_inputs, out, cfg->n_outputs, &ri, &ni, &ro, &no);
    if (status_is_ok(&st)) {
      if (cfg->application) check_application(cfg, ri, ni, ro, no);
      tensor_specs_free(ri, ni);
      tensor_specs_free(ro, no);
    }
    tensor_specs_free(in, cfg->n_inputs);
    tensor_specs_free(out, cfg->n_outputs);
  }
  model_config_destroy(cfg);
  return 0;
}
