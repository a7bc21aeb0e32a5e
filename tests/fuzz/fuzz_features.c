/* /v1 records and feature validation (app/features.c): a JSON document validated and encoded
 * against a compiled feature schema, in each form the frontends hand it over: an array of
 * records (/v1 "inputs", MLflow dataframe_records), rows of values in feature order (MLflow
 * dataframe_split without columns) and columns (TF Serving / MLflow "inputs"); then the
 * error list is rendered as the 400 body does. Successful encodes must give one row per
 * record. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_model.h"

static model_version *models[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  models[0] = fuzz_model_create("churn", FUZZ_CHURN_CONFIG);
  models[1] = fuzz_model_create("mixed", FUZZ_MIXED_CONFIG);
  return 0;
}

static void encode(const features *f, const json_t *records, const features_paths *paths, feature_errors *errs) {
  tensor *ts = NULL;
  size_t nt = 0;
  inferd_status st = features_encode(f, records, paths, &ts, &nt, errs);
  if (status_is_ok(&st)) {
    if (nt != f->n_tensors || errs->total != 0) abort();
    for (size_t i = 0; i < nt; i++)
      if (ts[i].ndim < 1 || (size_t)ts[i].shape[0] != json_array_size(records)) abort();
    for (size_t i = 0; i < nt; i++) fuzz_check_tensor(&ts[i]);
    tensors_free(ts, nt);
  } else if (ts != NULL) {
    abort(); /* no tensors on failure */
  }
  json_decref(feature_errors_json(errs));
  char summary[1024];
  feature_errors_summary(errs, summary, sizeof summary);
  feature_errors_clear(errs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const features *f = application_features(models[size % 2]);
  json_error_t err;
  json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
  if (doc == NULL) return 0;
  feature_errors errs = {0};
  features_paths plain = {.base = "$.inputs"};
  if (json_is_array(doc)) {
    encode(f, doc, &plain, &errs);
    features_paths rows_paths = {.base = "$.dataframe_split.data"};
    json_t *recs = features_rows_to_records(f, doc, &rows_paths, &errs);
    if (recs) encode(f, recs, &rows_paths, &errs);
    json_decref(recs);
    feature_errors_clear(&errs);
  } else if (json_is_object(doc)) {
    json_t *recs = features_columns_to_records(doc, "$.inputs", &errs);
    features_paths cols = {.base = "$.inputs", .path = features_columnar_path, .user = (void *)"$.inputs"};
    if (recs) encode(f, recs, &cols, &errs);
    json_decref(recs);
    feature_errors_clear(&errs);
    json_t *one = json_pack("[O]", doc); /* /v1 "inputs" given as one bare record */
    encode(f, one, &plain, &errs);
    json_decref(one);
  } else {
    encode(f, doc, &plain, &errs);
  }
  json_decref(doc);
  return 0;
}
