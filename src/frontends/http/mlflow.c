/* MLflow's scoring protocol: POST /invocations on the default model (--default-model, else the
 * only model), with a JSON body holding one of dataframe_split, dataframe_records, instances or
 * inputs (and optional params), answering {"predictions": [...]}. Errors are MLflow's
 * {"error_code": "BAD_REQUEST", "message": "..."}. GET /ping is its health check. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/http/appapi.h"
#include "frontends/http/routes.h"
#include "util/strbuf.h"

static const char *mlflow_code(inferd_code code) {
  switch (code) {
    case INFERD_INVALID_ARGUMENT:
    case INFERD_UNSUPPORTED_MEDIA:
    case INFERD_METHOD_NOT_ALLOWED: return "BAD_REQUEST";
    case INFERD_TOO_LARGE: return "REQUEST_LIMIT_EXCEEDED";
    case INFERD_NOT_FOUND: return "RESOURCE_DOES_NOT_EXIST";
    case INFERD_UNAVAILABLE: return "TEMPORARILY_UNAVAILABLE";
    case INFERD_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case INFERD_DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    default: return "INTERNAL_ERROR";
  }
}

static void set_mlflow_error(http_call *c, const inferd_status *st, const feature_errors *errs) {
  char summary[1024];
  json_t *doc = json_pack("{ss ss}", "error_code", mlflow_code(st->code), "message",
                          errs && errs->total ? feature_errors_summary(errs, summary, sizeof summary) : st->msg);
  /* "error" too, the shape every other inferd error has, for clients that read that */
  json_object_set(doc, "error", json_object_get(doc, "message"));
  if (errs && errs->total) json_object_set_new(doc, "errors", feature_errors_json(errs));
  if (st->code == INFERD_RESOURCE_EXHAUSTED) http_call_add_reply_header(c, "Retry-After", "1");
  http_call_set_json(c, status_http_code(st->code), doc);
}

static void reply_mlflow_error(http_call *c, const inferd_status *st, const feature_errors *errs) {
  set_mlflow_error(c, st, errs);
  http_call_reply(c);
}

typedef struct mlflow_call {
  http_call *http;
  const features *features; /* NULL: tensor outputs */
  bool proba;
  /* during serve_submit only: the body's form decode reads, and the problems it found */
  const char *form;
  const json_t *v;
  feature_errors errs;
} mlflow_call;

static void on_mlflow_done(infer_request *req, void *user) {
  mlflow_call *mc = user;
  http_call *c = mc->http;
  inferd_status st = req->status;
  json_t *preds = NULL;
  if (status_is_ok(&st)) {
    if (mc->features)
      st = features_decode_predictions(mc->features, req->outputs, req->output_names, req->n_outputs, mc->proba, &preds);
    else
      preds = appapi_outputs_rows(req);
  }
  if (status_is_ok(&st))
    http_call_set_json(c, 200, json_pack("{so}", "predictions", preds));
  else
    set_mlflow_error(c, &st, NULL);
  infer_request_destroy(req);
  feature_errors_clear(&mc->errs);
  free(mc);
  http_call_reply_async(c);
}

/* dataframe_split with columns: feature F of row i sits at data[i][column of F]; a feature
 * no column names is missing from columns. */
typedef struct split_paths {
  const json_t *columns;
} split_paths;

static void split_path(void *user, size_t record, const char *feature, char *buf, size_t len) {
  const split_paths *sp = user;
  if (feature == NULL) {
    snprintf(buf, len, "$.dataframe_split.data[%zu]", record);
    return;
  }
  for (size_t j = 0; j < json_array_size(sp->columns); j++)
    if (strcmp(json_string_value(json_array_get(sp->columns, j)), feature) == 0) {
      snprintf(buf, len, "$.dataframe_split.data[%zu][%zu]", record, j);
      return;
    }
  snprintf(buf, len, "$.dataframe_split.columns");
}

/* The model /invocations serves: --default-model, else the only one. */
static inferd_status default_name(http_call *c, char *name, size_t len) {
  SNAPSHOT_REF repo_snapshot *repo = repo_snapshot_acquire(c->app->repo);
  if (c->app->default_model) {
    snprintf(name, len, "%s", c->app->default_model);
    return status_ok();
  }
  if (repo->n_models != 1) {
    char names[256];
    sbuf nb;
    sbuf_init(&nb, names, sizeof names);
    for (size_t i = 0; i < repo->n_models; i++) sbuf_appendf(&nb, "%s%s", i ? ", " : "", repo_snapshot_model(repo, i)->name);
    return status_make(INFERD_NOT_FOUND, "/invocations serves one model: start inferd with --default-model NAME (models: %s)",
                       names);
  }
  snprintf(name, len, "%s", repo_snapshot_model(repo, 0)->name);
  return status_ok();
}

/* Records from dataframe_split: {"columns": [...]?, "data": [[...], ...], "index": [...]?}. */
static json_t *split_records(const features *f, const json_t *split, split_paths *sp, features_paths *paths,
                             feature_errors *errs) {
  if (!json_is_object(split)) {
    feature_errors_add(errs, "$.dataframe_split", "wrong_type", "dataframe_split must be an object {\"columns\", \"data\"}");
    return NULL;
  }
  const json_t *data = json_object_get(split, "data"), *cols = json_object_get(split, "columns");
  if (!json_is_array(data)) {
    feature_errors_add(errs, "$.dataframe_split.data", data ? "wrong_type" : "missing_field", "data must be an array of rows");
    return NULL;
  }
  if (cols == NULL) {
    *paths = (features_paths){.base = "$.dataframe_split.data"};
    return features_rows_to_records(f, data, paths, errs);
  }
  bool ok = json_is_array(cols);
  for (size_t j = 0; ok && j < json_array_size(cols); j++) ok = json_is_string(json_array_get(cols, j));
  if (!ok) {
    feature_errors_add(errs, "$.dataframe_split.columns", "wrong_type", "columns must be an array of feature names");
    return NULL;
  }
  json_t *recs = json_array();
  size_t before = errs->total;
  for (size_t i = 0; i < json_array_size(data); i++) {
    const json_t *row = json_array_get(data, i);
    if (!json_is_array(row) || json_array_size(row) != json_array_size(cols)) {
      char path[200];
      snprintf(path, sizeof path, "$.dataframe_split.data[%zu]", i);
      feature_errors_add(errs, path, "invalid", "a row must be an array of %zu values, one per column", json_array_size(cols));
      continue;
    }
    json_t *rec = json_object();
    for (size_t j = 0; j < json_array_size(cols); j++)
      json_object_set(rec, json_string_value(json_array_get(cols, j)), json_array_get(row, j));
    json_array_append_new(recs, rec);
  }
  if (errs->total > before) {
    json_decref(recs);
    return NULL;
  }
  sp->columns = cols;
  *paths = (features_paths){.base = "$.dataframe_split.data", .path = split_path, .user = sp};
  return recs;
}

/* The body's values (in mc->form) into req. */
static inferd_status mlflow_decode_values(serve_request *sr, infer_request *req) {
  mlflow_call *mc = sr->user;
  http_call *c = mc->http;
  model_version *mv = req->mv;
  appapi_routed(c, sr);
  const features *f = application_features(mv);
  const json_t *v = mc->v;
  const char *form = mc->form;
  bool proba = mc->proba;
  feature_errors *errs = &mc->errs;
  appapi_inputs in = {0};
  inferd_status st;
  if (proba && (f == NULL || f->probabilities_output == NULL))
    st = status_make(INFERD_INVALID_ARGUMENT, "model '%s' has no class probabilities for predict_proba", mv->model->name);
  else if (strcmp(form, "instances") == 0 || strcmp(form, "inputs") == 0) {
    bool columnar = strcmp(form, "inputs") == 0 && json_is_object(v) && json_object_get(v, "b64") == NULL;
    st = appapi_decode_inputs(c, mv, v, columnar, strcmp(form, "inputs") == 0 ? "$.inputs" : "$.instances", true, &in, errs);
  } else if (f == NULL) {
    if (strcmp(form, "dataframe_split") == 0 && json_is_object(v) && json_object_get(v, "data"))
      st = appapi_decode_inputs(c, mv, json_object_get(v, "data"), false, "$.dataframe_split.data", false, &in, errs);
    else
      st = status_make(INFERD_INVALID_ARGUMENT, "model '%s' has no feature schema (config.json \"application\"): send its tensor as \"inputs\" or dataframe_split data",
                       mv->model->name);
  } else {
    split_paths sp = {0};
    features_paths paths = {.base = "$.dataframe_records"};
    json_t *recs = strcmp(form, "dataframe_split") == 0 ? split_records(f, v, &sp, &paths, errs) : json_incref((json_t *)v);
    if (recs) {
      in.records = true;
      in.n_records = json_is_array(recs) ? json_array_size(recs) : 0;
      size_t max = appapi_max_records(c, mv);
      if (in.n_records > max)
        st = status_make(INFERD_TOO_LARGE, "%zu records, more than the %zu one request may carry", in.n_records, max);
      else
        st = features_encode(f, recs, &paths, &in.tensors, &in.n_tensors, errs);
      json_decref(recs);
    } else {
      st = status_make(INFERD_INVALID_ARGUMENT, "invalid dataframe");
    }
  }
  if (status_is_ok(&st)) {
    mc->features = in.records ? f : NULL;
    st = in.records ? appapi_fill(req, &in, f->output_names, f->n_output_names) : appapi_fill(req, &in, NULL, 0);
  }
  appapi_inputs_clear(&in);
  return st;
}

/* serve's decode stage, once the version is known (an unknown model answers before the
 * body is looked at): the body's form and params, then its values into req. */
static inferd_status mlflow_decode(serve_request *sr, infer_request *req) {
  mlflow_call *mc = sr->user;
  json_t *body = NULL;
  TRY(appapi_parse_body(mc->http, &body));
  inferd_status st = status_ok();
  static const char *const forms[] = {"dataframe_split", "dataframe_records", "instances", "inputs"};
  const char *form = NULL;
  bool proba = false;
  if (status_is_ok(&st)) {
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
      bool known = strcmp(key, "params") == 0;
      for (size_t i = 0; i < 4 && !known; i++)
        if (strcmp(key, forms[i]) == 0) {
          known = true;
          if (form) st = status_make(INFERD_INVALID_ARGUMENT, "the request holds both '%s' and '%s': send exactly one", form, key);
          form = forms[i];
        }
      if (!known && status_is_ok(&st))
        st = status_make(INFERD_INVALID_ARGUMENT,
                         "unknown field '%.60s': the body holds one of dataframe_split, dataframe_records, instances, inputs (and optional params)",
                         key);
    }
    if (status_is_ok(&st) && form == NULL)
      st = status_make(INFERD_INVALID_ARGUMENT, "the body must hold one of dataframe_split, dataframe_records, instances or inputs");
    json_t *params = json_object_get(body, "params");
    json_t *method = params ? json_object_get(params, "predict_method") : NULL;
    if (status_is_ok(&st) && params && !json_is_object(params))
      st = status_make(INFERD_INVALID_ARGUMENT, "params must be an object");
    if (status_is_ok(&st) && method) {
      if (json_is_string(method) && strcmp(json_string_value(method), "predict_proba") == 0) proba = true;
      else if (!(json_is_string(method) && strcmp(json_string_value(method), "predict") == 0))
        st = status_make(INFERD_INVALID_ARGUMENT, "params.predict_method must be \"predict\" or \"predict_proba\"");
    }
  }
  if (status_is_ok(&st)) {
    mc->form = form;
    mc->proba = proba;
    mc->v = json_object_get(body, form);
    st = mlflow_decode_values(sr, req);
  }
  json_decref(body);
  return st;
}

void mlflow_invocations(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  char name[256];
  inferd_status st = appapi_precheck(c);
  if (status_is_ok(&st)) st = default_name(c, name, sizeof name);
  mlflow_call *mc = status_is_ok(&st) ? calloc(1, sizeof *mc) : NULL;
  if (status_is_ok(&st) && mc == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
  if (mc == NULL) {
    reply_mlflow_error(c, &st, NULL);
    return;
  }
  mc->http = c;
  st = appapi_serve(c, name, NULL, mlflow_decode, on_mlflow_done, mc);
  if (status_is_ok(&st)) return; /* mc is the completion's now */
  feature_errors errs = mc->errs;
  free(mc);
  reply_mlflow_error(c, &st, &errs);
  feature_errors_clear(&errs);
}

void mlflow_ping(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  char why[512];
  bool ready = app_ready(c->app, why, sizeof why);
  http_call_reply_json(c, ready ? 200 : status_http_code(INFERD_UNAVAILABLE), ready ? json_pack("{ss}", "status", "ok") : json_pack("{ss}", "error", why));
}
