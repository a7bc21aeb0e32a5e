/* The TF Serving and MLflow harnesses' shared part: the HTTP call appapi_decode_inputs reads
 * (only its app's record limit) and the models it decodes for. */
#ifndef INFERD_FUZZ_APP_PAYLOADS_H
#define INFERD_FUZZ_APP_PAYLOADS_H

#include "frontends/http/appapi.h"
#include "fuzz_model.h"

static app fuzz_app;
static http_call fuzz_call = {.app = &fuzz_app};
static model_version *fuzz_models[4];

static inline void fuzz_app_payloads_init(void) {
  fuzz_app.max_records = 50;
  fuzz_models[0] = fuzz_model_create("churn", FUZZ_CHURN_CONFIG);
  fuzz_models[1] = fuzz_model_create("mixed", FUZZ_MIXED_CONFIG);
  fuzz_models[2] = fuzz_model_create("tensors", FUZZ_TENSORS_CONFIG);
  fuzz_models[3] = fuzz_model_create("text", FUZZ_TEXT_CONFIG);
}

/* Decodes v as appapi_decode_inputs does for the routes, then validates the tensors against
 * the signature as appapi_submit does. */
static inline void fuzz_decode(model_version *mv, const json_t *v, bool columnar, const char *base,
                               bool rows_as_features) {
  appapi_inputs in;
  feature_errors errs = {0};
  inferd_status st = appapi_decode_inputs(&fuzz_call, mv, v, columnar, base, rows_as_features, &in, &errs);
  if (status_is_ok(&st)) {
    infer_request *req = infer_request_create(mv);
    req->inputs = in.tensors;
    req->n_inputs = in.n_tensors;
    in.tensors = NULL;
    st = infer_request_validate(req);
    if (status_is_ok(&st)) fuzz_check_valid_request(req);
    infer_request_destroy(req);
  } else {
    appapi_inputs_clear(&in);
    json_decref(feature_errors_json(&errs));
    char summary[1024];
    feature_errors_summary(&errs, summary, sizeof summary);
  }
  feature_errors_clear(&errs);
}

#endif
