#include "frontends/http/appapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/infer.h"
#include "app/tensor_json.h"
#include "core/serve.h"
#include "util/jsonerr.h"

inferd_status appapi_precheck(http_call *c) {
  if (atomic_load(&c->app->draining)) return status_make(INFERD_UNAVAILABLE, "the server is shutting down");
  const char *ct = http_call_header(c, "Content-Type");
  if (ct) {
    size_t n = strlen("application/json");
    if (!(strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ')))
      return status_make(INFERD_UNSUPPORTED_MEDIA, "Content-Type '%s' is not supported: send application/json", ct);
  }
  return status_ok();
}

inferd_status appapi_parse_body(http_call *c, json_t **out) {
  size_t len;
  const char *body = http_call_body(c, &len);
  if (len == 0) return status_make(INFERD_INVALID_ARGUMENT, "the request has no body: send a JSON object");
  json_error_t je;
  json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (doc == NULL) {
    char where[JSON_ERROR_TEXT_LENGTH + 128];
    return status_make(INFERD_INVALID_ARGUMENT, "malformed JSON at %s", jsonerr_describe(&je, where, sizeof where));
  }
  if (!json_is_object(doc)) {
    json_decref(doc);
    return status_make(INFERD_INVALID_ARGUMENT, "the body must be a JSON object");
  }
  *out = doc;
  return status_ok();
}

size_t appapi_max_records(const http_call *c, const model_version *mv) {
  size_t n = c->app->max_records > 0 ? (size_t)c->app->max_records : APPAPI_DEFAULT_MAX_RECORDS;
  int mb = mv->model->config->max_batch_size;
  if (mb > 0 && (size_t)mb < n) n = (size_t)mb;
  return n;
}

inferd_status appapi_serve(http_call *c, const char *model, const char *version,
                          inferd_status (*decode)(serve_request *sr, infer_request *req), infer_done_fn done,
                          void *user) {
  return appapi_serve_records(c, model, version, decode, done, user, NULL);
}

inferd_status appapi_serve_records(http_call *c, const char *model, const char *version,
                                   inferd_status (*decode)(serve_request *sr, infer_request *req), infer_done_fn done,
                                   void *user,
                                   inferd_status (*record_field)(void *user, const char *name, const char **value)) {
  const char *v = version && version[0] ? version : http_call_header(c, "X-Model-Version");
  snprintf(c->model, sizeof c->model, "%s", model ? model : "");
  serve_request sr = {.model = model,
                      .version = v,
                      .deadline = {.timeout_header = http_call_header(c, "X-Request-Timeout-Ms")},
                      .decode = decode,
                      .on_done = done,
                      .user = user,
                      .record_field = record_field,
                      .record_ctx = user};
  http_call_serve_init(c, &sr);
  return serve_submit(c->app->serve, &sr);
}

void appapi_routed(http_call *c, const serve_request *sr) {
  snprintf(c->version, sizeof c->version, "%s", sr->routed_version); /* X-Model-Version: serve's route */
}

inferd_status appapi_fill(infer_request *req, appapi_inputs *in, const char *const *outputs, size_t n_outputs) {
  req->inputs = in->tensors;
  req->n_inputs = in->n_tensors;
  in->tensors = NULL;
  in->n_tensors = 0;
  if (n_outputs) {
    req->output_names = calloc(n_outputs + 1, sizeof(char *));
    if (req->output_names == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    for (size_t i = 0; i < n_outputs; i++)
      if ((req->output_names[req->n_outputs++] = strdup(outputs[i])) == NULL)
        return status_make(INFERD_INTERNAL, "out of memory");
  }
  return status_ok();
}

void appapi_iso_time(time_t t, char *buf, size_t len) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}


/* True when v is an object naming input tensors only (not a {"b64": ...} value). */
static bool names_inputs(const model_version *mv, const json_t *obj) {
  if (json_object_size(obj) == 0) return false;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) if (model_version_find_input(mv, key) == NULL) return false;
  return true;
}

static bool is_b64(const json_t *v) { return json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "b64"); }

static inferd_status records_to_tensors(const features *f, json_t *records, const features_paths *paths,
                                        size_t max, appapi_inputs *out, feature_errors *errs) {
  out->records = true;
  out->n_records = json_array_size(records);
  if (out->n_records > max)
    return status_make(INFERD_TOO_LARGE, "%zu records, more than the %zu one request may carry", out->n_records, max);
  return features_encode(f, records, paths, &out->tensors, &out->n_tensors, errs);
}

static inferd_status decode_inputs(http_call *c, model_version *mv, const json_t *v, bool columnar, const char *base,
                                   bool rows_as_features, appapi_inputs *out, feature_errors *errs);

inferd_status appapi_decode_inputs(http_call *c, model_version *mv, const json_t *v, bool columnar, const char *base,
                                   bool rows_as_features, appapi_inputs *out, feature_errors *errs) {
  TRY(decode_inputs(c, mv, v, columnar, base, rows_as_features, out, errs));
  /* an empty batch is nothing to run (and some models fail on it) */
  for (size_t i = 0; i < out->n_tensors; i++)
    if (out->tensors[i].ndim >= 1 && out->tensors[i].shape[0] == 0)
      return status_make(INFERD_INVALID_ARGUMENT, "%s: input '%s' has no rows", base, out->tensors[i].name);
  return status_ok();
}

static inferd_status decode_inputs(http_call *c, model_version *mv, const json_t *v, bool columnar, const char *base,
                                   bool rows_as_features, appapi_inputs *out, feature_errors *errs) {
  memset(out, 0, sizeof *out);
  const features *f = application_features(mv);
  size_t max = appapi_max_records(c, mv);
  bool named = json_is_object(v) && !is_b64(v);
  if (columnar) {
    if (named && f && !names_inputs(mv, v)) { /* columns of features */
      json_t *recs = features_columns_to_records(v, base, errs);
      if (recs == NULL) return status_make(INFERD_INVALID_ARGUMENT, "invalid columns");
      features_paths paths = {.base = base, .path = features_columnar_path, .user = (void *)base};
      inferd_status st = records_to_tensors(f, recs, &paths, max, out, errs);
      json_decref(recs);
      return st;
    }
  } else {
    if (!json_is_array(v) || json_array_size(v) == 0)
      return status_make(INFERD_INVALID_ARGUMENT, "%s must be a non-empty list of instances", base);
    const json_t *first = json_array_get(v, 0);
    bool rows_named = json_is_object(first) && !is_b64(first);
    if (f && ((rows_named && !names_inputs(mv, first)) || (rows_as_features && json_is_array(first)))) {
      features_paths paths = {.base = base};
      json_t *recs = rows_named ? json_incref((json_t *)v) : features_rows_to_records(f, v, &paths, errs);
      if (recs == NULL) return status_make(INFERD_INVALID_ARGUMENT, "invalid rows");
      inferd_status st = records_to_tensors(f, recs, &paths, max, out, errs);
      json_decref(recs);
      return st;
    }
    if (rows_named) { /* named tensors, one object per row: gather each input's rows */
      out->tensors = calloc(mv->n_inputs + 1, sizeof(tensor));
      if (out->tensors == NULL) return status_make(INFERD_INTERNAL, "out of memory");
      const char *key;
      json_t *val;
      json_object_foreach((json_t *)first, key, val) {
        const tensor_spec *spec = model_version_find_input(mv, key);
        if (spec == NULL)
          return status_make(INFERD_INVALID_ARGUMENT, "%s[0] names '%s', which is not an input of model '%s'", base, key,
                             mv->model->name);
        json_t *rows = json_array();
        for (size_t r = 0; r < json_array_size(v); r++) {
          const json_t *inst = json_array_get(v, r);
          json_t *x = json_is_object(inst) ? json_object_get(inst, key) : NULL;
          if (x == NULL) {
            json_decref(rows);
            return status_make(INFERD_INVALID_ARGUMENT, "%s[%zu] has no '%s' (every instance must name the same inputs)",
                               base, r, key);
          }
          json_array_append(rows, x);
        }
        char path[200];
        snprintf(path, sizeof path, "%s[*]", base);
        jpath_key(path, sizeof path, key);
        inferd_status st = tensor_from_json(rows, key, spec->datatype, path, &out->tensors[out->n_tensors]);
        json_decref(rows);
        if (!status_is_ok(&st)) return st;
        out->n_tensors++;
      }
      out->n_records = json_array_size(v);
      return status_ok();
    }
  }
  if (named) { /* columnar tensors by name */
    out->tensors = calloc(json_object_size(v) + 1, sizeof(tensor));
    if (out->tensors == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
      const tensor_spec *spec = model_version_find_input(mv, key);
      if (spec == NULL)
        return status_make(INFERD_INVALID_ARGUMENT, "%s names '%s', which is not an input of model '%s'", base, key,
                           mv->model->name);
      char path[200];
      snprintf(path, sizeof path, "%s", base);
      jpath_key(path, sizeof path, key);
      TRY(tensor_from_json(val, key, spec->datatype, path, &out->tensors[out->n_tensors]));
      out->n_tensors++;
    }
    out->n_records = out->tensors[0].ndim ? (size_t)out->tensors[0].shape[0] : 1;
    return status_ok();
  }
  /* one bare tensor: the model's only input */
  if (mv->n_inputs != 1)
    return status_make(INFERD_INVALID_ARGUMENT, "model '%s' has %zu inputs: name them (%s as an object)", mv->model->name,
                       mv->n_inputs, base);
  out->tensors = calloc(2, sizeof(tensor));
  if (out->tensors == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  TRY(tensor_from_json(v, mv->inputs[0].name, mv->inputs[0].datatype, base, &out->tensors[0]));
  out->n_tensors = 1;
  out->n_records = out->tensors[0].ndim ? (size_t)out->tensors[0].shape[0] : 1;
  return status_ok();
}

json_t *appapi_outputs_rows(const infer_request *req) {
  if (req->n_outputs == 1) return tensor_to_json(&req->outputs[0]);
  size_t n = req->outputs[0].ndim ? (size_t)req->outputs[0].shape[0] : 1;
  json_t *rows = json_array();
  for (size_t r = 0; r < n; r++) {
    json_t *o = json_object();
    for (size_t k = 0; k < req->n_outputs; k++)
      json_object_set_new(o, req->output_names[k], tensor_row_to_json(&req->outputs[k], r));
    json_array_append_new(rows, o);
  }
  return rows;
}

json_t *appapi_outputs_columns(const infer_request *req) {
  if (req->n_outputs == 1) return tensor_to_json(&req->outputs[0]);
  json_t *o = json_object();
  for (size_t k = 0; k < req->n_outputs; k++) json_object_set_new(o, req->output_names[k], tensor_to_json(&req->outputs[k]));
  return o;
}

void appapi_inputs_clear(appapi_inputs *in) {
  if (in->tensors) tensors_free(in->tensors, in->n_tensors);
  in->tensors = NULL;
  in->n_tensors = 0;
}
