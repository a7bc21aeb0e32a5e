/* TensorFlow Serving's REST predict: POST /v1/models/{model}[/versions/{v}]:predict with
 * "instances" (row form) or "inputs" (columnar form), answering {"predictions": ...} or
 * {"outputs": ...}, and errors as {"error": "..."} as TF Serving does. The model's status
 * (GET /v1/models/{model}) is the catalogue's "model_version_status" (v1.c). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/http/appapi.h"
#include "frontends/http/routes.h"

typedef struct tf_call {
  http_call *http;
  bool columnar;
  feature_errors errs; /* the problems decode found, answered in the protocol's form */
} tf_call;

static void on_tf_done(infer_request *req, void *user) {
  tf_call *tc = user;
  http_call *c = tc->http;
  if (status_is_ok(&req->status)) {
    json_t *doc = tc->columnar ? json_pack("{so}", "outputs", appapi_outputs_columns(req))
                               : json_pack("{so}", "predictions", appapi_outputs_rows(req));
    http_call_set_json(c, 200, doc);
  } else {
    http_call_set_error(c, &req->status);
  }
  infer_request_destroy(req);
  feature_errors_clear(&tc->errs);
  free(tc);
  http_call_reply_async(c);
}

static void reply_feature_errors(http_call *c, int status, const feature_errors *errs) {
  char summary[1024];
  feature_errors_summary(errs, summary, sizeof summary);
  http_call_reply_json(c, status, json_pack("{ss so}", "error", summary, "errors", feature_errors_json(errs)));
}

/* The body's checks and its instances or inputs into req: serve's decode stage, once the
 * version is known (so an unknown model is 404 whatever the body). */
static inferd_status tf_decode_body(tf_call *tc, json_t *body, infer_request *req) {
  model_version *mv = req->mv;
  json_t *instances = json_object_get(body, "instances");
  json_t *inputs = json_object_get(body, "inputs");
  json_t *sig = json_object_get(body, "signature_name");
  const char *key;
  json_t *v;
  json_object_foreach(body, key, v) {
    if (strcmp(key, "instances") && strcmp(key, "inputs") && strcmp(key, "signature_name"))
      return status_make(INFERD_INVALID_ARGUMENT, "unknown field '%.60s' in the request (known: signature_name, instances, inputs)", key);
  }
  if (sig && !(json_is_string(sig) && (strcmp(json_string_value(sig), "serving_default") == 0 ||
                                       json_string_value(sig)[0] == '\0')))
    return status_make(INFERD_INVALID_ARGUMENT, "signature_name: model '%s' has only the \"serving_default\" signature",
                       mv->model->name);
  if (instances == NULL && inputs == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "the request has neither \"instances\" (row form) nor \"inputs\" (columnar form): send one of them");
  if (instances && inputs)
    return status_make(INFERD_INVALID_ARGUMENT, "the request has both \"instances\" (row form) and \"inputs\" (columnar form): send only one");
  tc->columnar = inputs != NULL;
  appapi_inputs in;
  inferd_status st = appapi_decode_inputs(tc->http, mv, tc->columnar ? inputs : instances, tc->columnar,
                                          tc->columnar ? "$.inputs" : "$.instances", false, &in, &tc->errs);
  if (status_is_ok(&st)) st = appapi_fill(req, &in, NULL, 0);
  appapi_inputs_clear(&in);
  return st;
}

static inferd_status tf_decode(serve_request *sr, infer_request *req) {
  tf_call *tc = sr->user;
  appapi_routed(tc->http, sr);
  json_t *body = NULL;
  TRY(appapi_parse_body(tc->http, &body));
  inferd_status st = tf_decode_body(tc, body, req);
  json_decref(body);
  return st;
}

void tfserving_predict(void *call, const route_params *p) {
  http_call *c = call;
  inferd_status st = appapi_precheck(c);
  tf_call *tc = status_is_ok(&st) ? calloc(1, sizeof *tc) : NULL;
  if (status_is_ok(&st) && tc == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
  if (tc == NULL) {
    http_call_reply_error(c, &st);
    return;
  }
  tc->http = c;
  st = appapi_serve(c, p->model, p->version, tf_decode, on_tf_done, tc);
  if (status_is_ok(&st)) return; /* tc is the completion's now */
  feature_errors errs = tc->errs;
  free(tc);
  if (errs.total) reply_feature_errors(c, status_http_code(st.code), &errs);
  else http_call_reply_error(c, &st);
  feature_errors_clear(&errs);
}
