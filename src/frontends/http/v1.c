/* The application API: a model catalogue and predict with named features (/v1/models...).
 * Records are validated and encoded by src/app/features.c; this file is only the HTTP side. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontends/http/appapi.h"
#include "frontends/http/routes.h"

/* ---- catalogue --------------------------------------------------------------------------- */

/* TF Serving's names for version states (ModelVersionStatus.State). */
static const char *tf_state(model_state s) {
  switch (s) {
    case MODEL_LOADING: return "LOADING";
    case MODEL_READY: return "AVAILABLE";
    case MODEL_UNAVAILABLE: return "END";
  }
  return "UNKNOWN";
}

static json_t *tf_version_status(const model_version *mv) {
  model_state s = model_version_state(mv);
  return json_pack("{ss ss s{ss ss}}", "version", mv->version_str, "state", tf_state(s), "status", "error_code",
                   s == MODEL_UNAVAILABLE ? "UNKNOWN" : "OK", "error_message", s == MODEL_UNAVAILABLE ? mv->reason : "");
}

static json_t *version_json(const model_version *mv, bool detail) {
  model_state s = model_version_state(mv);
  json_t *o = json_pack("{ss ss}", "version", mv->version_str, "state", model_state_name(s));
  if (!detail) return o;
  json_object_set_new(o, "reason", s == MODEL_UNAVAILABLE ? json_string(mv->reason) : json_null());
  if (s == MODEL_READY) {
    char t[32];
    appapi_iso_time(mv->loaded_at, t, sizeof t);
    json_object_set_new(o, "loaded_at", json_string(t));
    const application *a = application_of(mv);
    json_object_set_new(o, "sha256", a && a->sha256[0] ? json_string(a->sha256) : json_null());
  } else {
    json_object_set_new(o, "loaded_at", json_null());
    json_object_set_new(o, "sha256", json_null());
  }
  return o;
}

static const model_version *ready_default(const repo_model *m) {
  const model_version *mv = repo_model_default_version(m);
  return mv && model_version_state(mv) == MODEL_READY ? mv : NULL;
}

static const char *model_description(const repo_model *m, const model_version *mv) {
  const application *a = mv ? application_of(mv) : NULL;
  const json_t *d = a && a->model_card ? json_object_get(a->model_card, "description") : NULL;
  if (json_is_string(d)) return json_string_value(d);
  return m->def ? m->def->config->description : NULL;
}

/* OpenAI's Model object ({id, object: "model", created, owned_by}): GET /v1/models is also the
 * list OpenAI's SDKs read (models.list() takes "data"), GET /v1/models/{m} their
 * models.retrieve(); the catalogue's own fields stay beside them (docs/generate.md). */
static void openai_model_fields(json_t *o, const model_version *def) {
  json_object_set_new(o, "object", json_string("model"));
  json_object_set_new(o, "created", json_integer(def ? (json_int_t)def->loaded_at : 0));
  json_object_set_new(o, "owned_by", json_string("inferd"));
}

void v1_models_list(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  SNAPSHOT_REF repo_snapshot *repo = repo_snapshot_acquire(c->app->repo);
  json_t *models = json_array(), *data = json_array();
  for (size_t i = 0; i < repo->n_models; i++) {
    const repo_model *m = repo_snapshot_model(repo, i);
    const model_version *def = ready_default(m);
    json_t *versions = json_array();
    for (size_t j = 0; j < m->n_versions; j++) json_array_append_new(versions, version_json(repo_model_version_at(m, j), false));
    const char *desc = model_description(m, def);
    const features *f = def ? application_features(def) : NULL;
    json_t *o = json_pack("{ss so so so}", "id", m->name, "default_version", def ? json_string(def->version_str) : json_null(),
                          "versions", versions, "description", desc ? json_string(desc) : json_null());
    json_object_set_new(o, "task", f ? json_string(f->task == TASK_REGRESSION ? "regression" : "classification") : json_null());
    json_object_set_new(o, "predict", f ? json_true() : json_false());
    json_array_append_new(models, o);
    json_t *d = json_pack("{ss}", "id", m->name);
    openai_model_fields(d, def);
    json_array_append_new(data, d);
  }
  http_call_reply_json(c, 200, json_pack("{so ss so}", "models", models, "object", "list", "data", data));
}

static json_t *tensor_specs_json(const tensor_spec *specs, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *shape = json_array();
    for (int d = 0; d < specs[i].ndim; d++) json_array_append_new(shape, json_integer(specs[i].dims[d]));
    json_array_append_new(arr, json_pack("{ss ss so}", "name", specs[i].name, "datatype", datatype_name(specs[i].datatype),
                                         "shape", shape));
  }
  return arr;
}

void v1_model_get(void *call, const route_params *p) {
  http_call *c = call;
  SNAPSHOT_REF repo_snapshot *snap = repo_snapshot_acquire(c->app->repo);
  const repo_model *m = repo_snapshot_find(snap, p->model);
  inferd_status st;
  if (m == NULL) {
    st = status_make(INFERD_NOT_FOUND, "model '%s' not found", p->model);
    http_call_reply_error(c, &st);
    return;
  }
  const model_version *only = NULL, *shown = ready_default(m);
  if (p->version[0]) {
    model_version *mv;
    st = repo_model_version(m, p->version, &mv);
    if (!status_is_ok(&st)) {
      http_call_reply_error(c, &st);
      return;
    }
    only = shown = mv;
    snprintf(c->version, sizeof c->version, "%s", mv->version_str);
  }
  bool ready = shown && model_version_state(shown) == MODEL_READY;
  json_t *versions = json_array(), *tf = json_array();
  for (size_t j = 0; j < m->n_versions; j++) {
    if (only && repo_model_version_at(m, j) != only) continue;
    json_array_append_new(versions, version_json(repo_model_version_at(m, j), true));
    json_array_append_new(tf, tf_version_status(repo_model_version_at(m, j)));
  }
  const model_version *def = ready_default(m);
  const char *desc = model_description(m, ready ? shown : NULL);
  json_t *doc = json_pack("{ss so so ss so}", "id", m->name, "description", desc ? json_string(desc) : json_null(),
                          "default_version", def ? json_string(def->version_str) : json_null(), "backend",
                          m->def ? m->def->config->backend : "onnxruntime", "versions", versions);
  const features *f = ready ? application_features(shown) : NULL;
  openai_model_fields(doc, def);
  json_object_set_new(doc, "schema_version", ready ? json_string(shown->version_str) : json_null());
  if (f) {
    json_object_set_new(doc, "task", json_string(f->task == TASK_REGRESSION ? "regression" : "classification"));
    json_object_set_new(doc, "input_schema", json_pack("{so sb}", "features", features_describe(f), "allow_extra_features",
                                                       f->allow_extra));
    json_object_set_new(doc, "output_schema", features_describe_outputs(f));
  } else {
    json_object_set_new(doc, "task", json_null());
    json_object_set_new(doc, "input_schema", json_null());
    json_object_set_new(doc, "output_schema", json_null());
  }
  json_t *labels = json_array();
  for (size_t i = 0; m->def && i < m->def->config->n_class_labels; i++)
    json_array_append_new(labels, json_string(m->def->config->class_labels[i]));
  json_object_set_new(doc, "class_labels", labels);
  if (ready) {
    json_object_set_new(doc, "inputs", tensor_specs_json(shown->inputs, shown->n_inputs));
    json_object_set_new(doc, "outputs", tensor_specs_json(shown->outputs, shown->n_outputs));
  }
  const application *a = ready ? application_of(shown) : NULL;
  json_t *card = a ? a->model_card : NULL;
  json_object_set_new(doc, "model_card", card ? json_incref(card) : json_null());
  json_t *metrics = card ? json_object_get(card, "metrics") : NULL;
  json_object_set_new(doc, "metrics", metrics ? json_incref(metrics) : json_null());
  if (a && a->model_card_error[0]) json_object_set_new(doc, "model_card_error", json_string(a->model_card_error));
  json_object_set_new(doc, "model_version_status", tf);
  http_call_reply_json(c, 200, doc);
}

/* ---- predict ----------------------------------------------------------------------------- */

typedef struct v1_call {
  http_call *http;
  const features *features;
  features_result_opts opts;
  size_t n_records;
  feature_errors errs; /* the problems decode found, answered in the protocol's form */
  json_t *body;        /* parsed at route for a record-field sticky key; decode takes it */
  char key[24];        /* that key when it is an integer: its digits */
} v1_call;

static void reply_errors(http_call *c, int status, const feature_errors *errs) {
  char summary[1024];
  feature_errors_summary(errs, summary, sizeof summary);
  json_t *doc = json_pack("{ss so}", "error", summary, "errors", feature_errors_json(errs));
  if (errs->total > errs->n) json_object_set_new(doc, "errors_omitted", json_integer((json_int_t)(errs->total - errs->n)));
  http_call_reply_json(c, status, doc);
}

static void on_predict_done(infer_request *req, void *user) {
  v1_call *vc = user;
  http_call *c = vc->http;
  inferd_status st = req->status;
  json_t *results = NULL;
  if (status_is_ok(&st))
    st = features_decode_results(vc->features, req->outputs, req->output_names, req->n_outputs, &vc->opts, &results);
  if (status_is_ok(&st)) {
    char id[160];
    snprintf(id, sizeof id, "pred_%s", c->request_id);
    for (char *q = id + 5; *q; q++)
      if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '_')) *q = '_';
    json_t *doc = json_pack("{ss ss ss sI so s{sI} sf}", "id", id, "model", req->mv->model->name, "model_version",
                            req->mv->version_str, "created", (json_int_t)time(NULL), "results", results, "usage",
                            "records", (json_int_t)vc->n_records, "inference_time_ms",
                            (double)req->compute_infer_ns / 1e6);
    http_call_set_json(c, 200, doc);
  } else {
    http_call_set_error(c, &st);
  }
  infer_request_destroy(req);
  feature_errors_clear(&vc->errs);
  free(vc);
  http_call_reply_async(c);
}

/* Error paths of the single-record form: feature F's value sits at $.features[j].value. */
typedef struct single_paths {
  const json_t *index; /* name -> j */
} single_paths;

static void single_path(void *user, size_t record, const char *feature, char *buf, size_t len) {
  (void)record;
  const single_paths *sp = user;
  const json_t *j = feature ? json_object_get(sp->index, feature) : NULL;
  if (j)
    snprintf(buf, len, "$.features[%lld].value", (long long)json_integer_value(j));
  else
    snprintf(buf, len, "$.features");
}

static void parse_parameters(const json_t *params, features_result_opts *opts, feature_errors *errs) {
  opts->return_probabilities = true;
  opts->top_k = 0;
  if (params == NULL) return;
  if (!json_is_object(params)) {
    feature_errors_add(errs, "$.parameters", "wrong_type", "parameters must be an object");
    return;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)params, key, v) {
    char path[200] = "$.parameters";
    jpath_key(path, sizeof path, key);
    if (strcmp(key, "return_probabilities") == 0) {
      if (!json_is_boolean(v)) feature_errors_add(errs, path, "wrong_type", "return_probabilities must be true or false");
      else opts->return_probabilities = json_is_true(v);
    } else if (strcmp(key, "top_k") == 0) {
      if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
        feature_errors_add(errs, path, "wrong_type", "top_k must be a positive integer");
      else opts->top_k = (int)json_integer_value(v);
    } else {
      feature_errors_add(errs, path, "unknown_field", "unknown parameter '%.60s' (known: return_probabilities, top_k)", key);
    }
  }
}

/* serve's decode stage: the records (or the one record) through the feature schema into req,
 * once the version is known. */
static inferd_status v1_decode_body(serve_request *sr, infer_request *req, json_t *body) {
  v1_call *vc = sr->user;
  http_call *c = vc->http;
  model_version *mv = req->mv;
  appapi_routed(c, sr);
  const features *f = vc->features = application_features(mv);
  if (f == NULL)
    return status_make(INFERD_INVALID_ARGUMENT,
                       "model '%s' has no feature schema (config.json \"application\"): send tensors to "
                       "POST /v2/models/%s/infer or POST /v1/models/%s:predict",
                       mv->model->name, mv->model->name, mv->model->name);
  feature_errors *errs = &vc->errs;
  features_result_opts opts;
  inferd_status st;
  const char *key;
  json_t *v;
  json_object_foreach(body, key, v) {
    if (strcmp(key, "inputs") && strcmp(key, "features") && strcmp(key, "parameters")) {
      char path[200] = "$";
      jpath_key(path, sizeof path, key);
      feature_errors_add(errs, path, "unknown_field", "unknown field '%.60s' (known: inputs, features, parameters)", key);
    }
  }
  parse_parameters(json_object_get(body, "parameters"), &opts, errs);

  json_t *inputs = json_object_get(body, "inputs"), *single = json_object_get(body, "features");
  json_t *records = NULL, *index = NULL;
  features_paths paths = {.base = "$.inputs"};
  single_paths sp = {0};
  if (inputs && single) {
    feature_errors_add(errs, "$", "invalid", "send either \"inputs\" (records) or \"features\" (one record), not both");
  } else if (inputs) {
    if (json_is_array(inputs)) {
      records = json_incref(inputs);
    } else if (json_is_object(inputs)) { /* one record given bare */
      records = json_pack("[O]", inputs);
    } else {
      feature_errors_add(errs, "$.inputs", "wrong_type", "inputs must be an array of records (objects of feature values)");
    }
  } else if (single) {
    if (!json_is_array(single)) {
      feature_errors_add(errs, "$.features", "wrong_type", "features must be an array of {\"name\": ..., \"value\": ...}");
    } else {
      json_t *rec = json_object();
      index = json_object();
      size_t j;
      json_t *e;
      json_array_foreach(single, j, e) {
        char path[200]; /* "$.features[<20 digits>].name": 37 bytes at most, so strcat below fits */
        snprintf(path, sizeof path, "$.features[%zu]", j);
        json_t *name = json_is_object(e) ? json_object_get(e, "name") : NULL;
        if (!json_is_object(e)) {
          feature_errors_add(errs, path, "wrong_type", "must be an object {\"name\": ..., \"value\": ...}");
        } else if (!json_is_string(name)) {
          strcat(path, ".name");
          feature_errors_add(errs, path, name ? "wrong_type" : "missing_feature", "name must be a string");
        } else if (json_object_get(rec, json_string_value(name))) {
          strcat(path, ".name");
          feature_errors_add(errs, path, "invalid", "feature '%.60s' is given twice", json_string_value(name));
        } else if (!f->allow_extra && features_find(f, json_string_value(name)) == NULL) {
          strcat(path, ".name");
          feature_errors_add(errs, path, "unknown_feature", "unknown feature '%.60s'", json_string_value(name));
        } else {
          json_t *val = json_object_get(e, "value");
          json_object_set(rec, json_string_value(name), val ? val : json_null());
          json_object_set_new(index, json_string_value(name), json_integer((json_int_t)j));
          const char *k2;
          json_t *v2;
          json_object_foreach(e, k2, v2) {
            if (strcmp(k2, "name") && strcmp(k2, "value")) {
              char p2[200];
              snprintf(p2, sizeof p2, "$.features[%zu]", j);
              jpath_key(p2, sizeof p2, k2);
              feature_errors_add(errs, p2, "unknown_field", "unknown field '%.60s' (known: name, value)", k2);
            }
          }
        }
      }
      records = json_pack("[o]", rec);
      sp.index = index;
      paths = (features_paths){.base = "$.features", .path = single_path, .user = &sp};
    }
  } else {
    feature_errors_add(errs, "$.inputs", "missing_field",
                       "send \"inputs\": [{feature: value, ...}, ...] or \"features\": [{\"name\": ..., \"value\": ...}]");
  }

  size_t n = records ? json_array_size(records) : 0;
  size_t max = appapi_max_records(c, mv);
  if (records && n > max) {
    feature_errors_clear(errs);
    feature_errors_add(errs, "$.inputs", "too_many", "%zu records, more than the %zu one request may carry", n, max);
    json_decref(records);
    json_decref(index);
    return status_make(INFERD_TOO_LARGE, "too many records");
  }
  tensor *ts = NULL;
  size_t nt = 0;
  if (records) {
    st = features_encode(f, records, &paths, &ts, &nt, errs);
    if (!status_is_ok(&st) && st.code != INFERD_INVALID_ARGUMENT) {
      feature_errors_clear(errs);
      json_decref(records);
      json_decref(index);
      return st;
    }
  }
  json_decref(records);
  json_decref(index);
  appapi_inputs in = {.tensors = ts, .n_tensors = nt};
  if (errs->total > 0) {
    appapi_inputs_clear(&in);
    return status_make(INFERD_INVALID_ARGUMENT, "invalid request");
  }
  vc->opts = opts;
  vc->n_records = n;
  st = appapi_fill(req, &in, f->output_names, f->n_output_names);
  appapi_inputs_clear(&in);
  return st;
}

static inferd_status v1_decode(serve_request *sr, infer_request *req) {
  v1_call *vc = sr->user;
  json_t *body = vc->body; /* when route parsed it already */
  vc->body = NULL;
  /* after route (an unknown model is 404 whatever the body), before the schema's checks */
  if (application_features(req->mv) == NULL) {
    json_decref(body);
    body = NULL;
  } else if (body == NULL) {
    TRY(appapi_parse_body(vc->http, &body));
  }
  inferd_status st = v1_decode_body(sr, req, body);
  json_decref(body);
  return st;
}

/* One record's sticky field as text (an integer's digits go to buf[24]); NULL when it is
 * absent or null. */
static inferd_status record_key(const json_t *v, const char *name, const char *where, char *buf, const char **out) {
  *out = NULL;
  if (v == NULL || json_is_null(v)) return status_ok();
  if (json_is_string(v)) {
    *out = json_string_value(v);
  } else if (json_is_integer(v)) {
    snprintf(buf, 24, "%lld", (long long)json_integer_value(v));
    *out = buf;
  } else {
    return status_make(INFERD_INVALID_ARGUMENT,
                       "%s.%.60s is the traffic policy's sticky key: it must be a string or an integer", where, name);
  }
  return status_ok();
}

/* serve_request.record_field: the records' field `name`, the traffic policy's sticky key. A
 * request is routed whole, so its records must agree: all with the same value, or none with it
 * (then the split draws at random, as for a request without the sticky header). The body is
 * parsed here and kept for decode; a body that does not parse has no key, and decode answers
 * what is wrong with it. */
static inferd_status v1_record_field(void *user, const char *name, const char **value) {
  v1_call *vc = user;
  *value = NULL;
  if (vc->body == NULL) {
    inferd_status st = appapi_parse_body(vc->http, &vc->body);
    if (!status_is_ok(&st)) {
      vc->body = NULL;
      return status_ok();
    }
  }
  json_t *inputs = json_object_get(vc->body, "inputs"), *single = json_object_get(vc->body, "features");
  if (json_is_object(inputs)) return record_key(json_object_get(inputs, name), name, "$.inputs", vc->key, value);
  if (json_is_array(single) && inputs == NULL) { /* one record as [{name, value}] */
    size_t j;
    json_t *e;
    json_array_foreach(single, j, e) {
      const json_t *n = json_is_object(e) ? json_object_get(e, "name") : NULL;
      if (json_is_string(n) && strcmp(json_string_value(n), name) == 0) {
        char where[48];
        snprintf(where, sizeof where, "$.features[%zu]", j);
        const json_t *v = json_object_get(e, "value");
        if (v != NULL && !json_is_null(v) && !json_is_string(v) && !json_is_integer(v))
          return status_make(INFERD_INVALID_ARGUMENT,
                             "%s.value (feature '%.60s') is the traffic policy's sticky key: it must be a string or "
                             "an integer", where, name);
        return record_key(v, name, where, vc->key, value);
      }
    }
    return status_ok();
  }
  if (!json_is_array(inputs)) return status_ok(); /* decode says what is wrong */
  const char *first = NULL;
  size_t first_at = 0, without = 0, without_at = 0, n = json_array_size(inputs);
  for (size_t i = 0; i < n; i++) {
    const json_t *rec = json_array_get(inputs, i);
    if (!json_is_object(rec)) continue; /* decode reports it */
    char where[48], digits[24] = ""; /* record_key writes an integer key here */
    snprintf(where, sizeof where, "$.inputs[%zu]", i);
    const char *k;
    TRY(record_key(json_object_get(rec, name), name, where, first ? digits : vc->key, &k));
    if (k == NULL) {
      if (without++ == 0) without_at = i;
    } else if (first == NULL) {
      first = k; /* a string in the body, or its digits in vc->key: both alive until decode */
      first_at = i;
    } else if (strcmp(first, k) != 0) {
      return status_make(INFERD_INVALID_ARGUMENT,
                         "$.inputs[%zu].%.60s is '%.40s' but $.inputs[%zu].%.60s is '%.40s': the records of one request "
                         "must share the traffic policy's sticky key (a request is routed whole); send them separately",
                         first_at, name, first, i, name, k);
    }
  }
  if (first != NULL && without > 0)
    return status_make(INFERD_INVALID_ARGUMENT,
                       "$.inputs[%zu] has no '%.60s' but $.inputs[%zu] has: the records of one request must share the "
                       "traffic policy's sticky key (a request is routed whole)",
                       without_at, name, first_at);
  *value = first;
  return status_ok();
}

void v1_predict(void *call, const route_params *p) {
  http_call *c = call;
  inferd_status st = appapi_precheck(c);
  v1_call *vc = status_is_ok(&st) ? calloc(1, sizeof *vc) : NULL;
  if (status_is_ok(&st) && vc == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
  if (vc == NULL) {
    http_call_reply_error(c, &st);
    return;
  }
  vc->http = c;
  st = appapi_serve_records(c, p->model, p->version, v1_decode, on_predict_done, vc, v1_record_field);
  if (status_is_ok(&st)) return; /* vc is the completion's now */
  json_decref(vc->body); /* route parsed it, and the request ended before decode */
  feature_errors errs = vc->errs;
  free(vc);
  if (errs.total && (st.code == INFERD_INVALID_ARGUMENT || st.code == INFERD_TOO_LARGE))
    reply_errors(c, status_http_code(st.code), &errs);
  else
    http_call_reply_error(c, &st);
  feature_errors_clear(&errs);
}
