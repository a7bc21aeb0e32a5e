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
  free(tc);
  http_call_reply_async(c);
}

static void reply_feature_errors(http_call *c, int status, const feature_errors *errs) {
  char summary[1024];
  feature_errors_summary(errs, summary, sizeof summary);
  http_call_reply_json(c, status, json_pack("{ss so}", "error", summary, "errors", feature_errors_json(errs)));
}

void tfserving_predict(void *call, const route_params *p) {
  http_call *c = call;
  VERSION_REF model_version *mv = NULL;
  json_t *body = NULL;
  inferd_status st = appapi_precheck(c);
  if (status_is_ok(&st)) st = appapi_resolve(c, p->model, p->version, &mv);
  if (status_is_ok(&st)) st = appapi_parse_body(c, &body);
  json_t *instances = body ? json_object_get(body, "instances") : NULL;
  json_t *inputs = body ? json_object_get(body, "inputs") : NULL;
  if (status_is_ok(&st)) {
    json_t *sig = json_object_get(body, "signature_name");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
      if (strcmp(key, "instances") && strcmp(key, "inputs") && strcmp(key, "signature_name")) {
        st = status_make(INFERD_INVALID_ARGUMENT, "unknown field '%.60s' in the request (known: signature_name, instances, inputs)", key);
        break;
      }
    }
    if (!status_is_ok(&st)) {
    } else if (sig && !(json_is_string(sig) && (strcmp(json_string_value(sig), "serving_default") == 0 ||
                                                json_string_value(sig)[0] == '\0'))) {
      st = status_make(INFERD_INVALID_ARGUMENT, "signature_name: model '%s' has only the \"serving_default\" signature",
                       mv->model->name);
    } else if (instances == NULL && inputs == NULL) {
      st = status_make(INFERD_INVALID_ARGUMENT, "the request has neither \"instances\" (row form) nor \"inputs\" (columnar form): send one of them");
    } else if (instances && inputs) {
      st = status_make(INFERD_INVALID_ARGUMENT, "the request has both \"instances\" (row form) and \"inputs\" (columnar form): send only one");
    }
  }
  if (!status_is_ok(&st)) {
    json_decref(body);
    http_call_reply_error(c, &st);
    return;
  }
  bool columnar = inputs != NULL;
  appapi_inputs in;
  feature_errors errs = {0};
  st = appapi_decode_inputs(c, mv, columnar ? inputs : instances, columnar, columnar ? "$.inputs" : "$.instances", false,
                            &in, &errs);
  json_decref(body);
  if (!status_is_ok(&st)) {
    appapi_inputs_clear(&in);
    if (errs.total) reply_feature_errors(c, st.code == INFERD_TOO_LARGE ? 413 : 400, &errs);
    else http_call_reply_error(c, &st);
    feature_errors_clear(&errs);
    return;
  }
  tf_call *tc = calloc(1, sizeof *tc);
  if (tc == NULL) {
    appapi_inputs_clear(&in);
    st = status_make(INFERD_INTERNAL, "out of memory");
    http_call_reply_error(c, &st);
    return;
  }
  *tc = (tf_call){.http = c, .columnar = columnar};
  http_call_add_reply_header(c, "X-Model-Version", mv->version_str);
  st = appapi_submit(c, mv, in.tensors, in.n_tensors, NULL, 0, on_tf_done, tc);
  if (!status_is_ok(&st)) {
    free(tc);
    http_call_reply_error(c, &st);
  }
}
