/* MLflow's /invocations payload (frontends/http/mlflow.c): "instances" and "inputs" (tensors
 * or records, a row of values being one record in feature order), "dataframe_records" and
 * "dataframe_split" without columns, decoded and validated as that route does. (Its
 * dataframe_split with "columns" is a static function of mlflow.c and is not reached here.) */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_app_payloads.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_app_payloads_init();
  return 0;
}

static void encode_records(const features *f, json_t *recs, const features_paths *paths) {
  feature_errors errs = {0};
  tensor *ts = NULL;
  size_t nt = 0;
  inferd_status st = features_encode(f, recs, paths, &ts, &nt, &errs);
  if (status_is_ok(&st)) tensors_free(ts, nt);
  json_decref(feature_errors_json(&errs));
  feature_errors_clear(&errs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_error_t err;
  json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
  if (!json_is_object(body)) {
    json_decref(body);
    return 0;
  }
  model_version *mv = fuzz_models[size % 4];
  const features *f = application_features(mv);
  json_t *v;
  if ((v = json_object_get(body, "instances"))) fuzz_decode(mv, v, false, "$.instances", true);
  if ((v = json_object_get(body, "inputs"))) {
    bool columnar = json_is_object(v) && json_object_get(v, "b64") == NULL;
    fuzz_decode(mv, v, columnar, "$.inputs", true);
  }
  if ((v = json_object_get(body, "dataframe_records")) && f) {
    features_paths paths = {.base = "$.dataframe_records"};
    encode_records(f, v, &paths);
  }
  json_t *split = json_object_get(body, "dataframe_split");
  json_t *rows = json_is_object(split) ? json_object_get(split, "data") : NULL;
  if (json_is_array(rows)) {
    if (f) {
      feature_errors errs = {0};
      features_paths paths = {.base = "$.dataframe_split.data"};
      json_t *recs = features_rows_to_records(f, rows, &paths, &errs);
      if (recs) encode_records(f, recs, &paths);
      json_decref(recs);
      feature_errors_clear(&errs);
    } else {
      fuzz_decode(mv, rows, false, "$.dataframe_split.data", false);
    }
  }
  json_decref(body);
  return 0;
}
