/* TF Serving's REST predict payload ({"instances": rows} or {"inputs": columns}, as
 * frontends/http/tfserving.c reads it): nested-list tensors by input name or bare, and records
 * through the feature schema, decoded by appapi_decode_inputs and validated against a
 * hand-built signature. */
#include <jansson.h>
#include <stdint.h>

#include "fuzz_app_payloads.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_app_payloads_init();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_error_t err;
  json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
  if (!json_is_object(body)) {
    json_decref(body);
    return 0;
  }
  model_version *mv = fuzz_models[size % 4];
  json_t *instances = json_object_get(body, "instances"), *inputs = json_object_get(body, "inputs");
  if (instances) fuzz_decode(mv, instances, false, "$.instances", false);
  if (inputs) fuzz_decode(mv, inputs, true, "$.inputs", false);
  json_decref(body);
  return 0;
}
