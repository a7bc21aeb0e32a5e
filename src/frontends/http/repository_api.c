/* The model repository extension over REST (admin routes, kept together so one guard can cover
 * them): POST /v2/repository/index, POST /v2/repository/models/{m}/load and /unload, and
 * GET /v2/models/{m}/config. Loads and unloads run on the repository's control thread, which
 * answers through http_call_reply_async when the work is done. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "frontends/http/routes.h"
#include "util/jsonkeys.h"

/* The body as a JSON object; an empty body is an empty object. NULL after replying 400. */
static json_t *body_object(http_call *c) {
  size_t len;
  const char *body = http_call_body(c, &len);
  if (len == 0) return json_object();
  json_error_t je;
  json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  inferd_status st;
  if (doc == NULL)
    st = status_make(INFERD_INVALID_ARGUMENT, "the body is not valid JSON: line %d, column %d: %s", je.line, je.column, je.text);
  else if (!json_is_object(doc))
    st = status_make(INFERD_INVALID_ARGUMENT, "the body must be a JSON object");
  else
    return doc;
  json_decref(doc);
  http_call_reply_error(c, &st);
  return NULL;
}

/* Only the keys listed; names the first other one. */
static inferd_status only_keys(json_t *obj, const char *path, const char *const *keys) {
  const char *key = jsonkeys_unknown(obj, keys);
  if (key) return status_make(INFERD_INVALID_ARGUMENT, "unknown field %s%s (allowed: %s%s)", path, key, keys[0], keys[1] ? ", ..." : "");
  return status_ok();
}

void repository_index(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  json_t *body = body_object(c);
  if (body == NULL) return;
  static const char *const keys[] = {"ready", NULL};
  inferd_status st = only_keys(body, "$.", keys);
  json_t *ready = json_object_get(body, "ready");
  if (status_is_ok(&st) && ready && !json_is_boolean(ready))
    st = status_make(INFERD_INVALID_ARGUMENT, "$.ready must be true or false");
  bool only_ready = json_is_true(ready);
  json_decref(body);
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  SNAPSHOT_REF repo_snapshot *snap = repo_snapshot_acquire(c->app->repo);
  json_t *list = json_array();
  for (size_t i = 0; i < snap->n_models; i++) {
    const repo_model *m = repo_snapshot_model(snap, i);
    if (m->n_versions == 0) { /* a model folder that serves nothing: say why */
      if (only_ready) continue;
      const char *why = m->reason[0] ? m->reason : m->def && m->def->config_error[0] ? m->def->config_error : "no version folders";
      json_array_append_new(list, json_pack("{ss ss ss}", "name", m->name, "state", "UNAVAILABLE", "reason", why));
      continue;
    }
    for (size_t j = 0; j < m->n_versions; j++) {
      model_version *mv = repo_model_version_at(m, j);
      model_state s = model_version_state(mv);
      if (only_ready && s != MODEL_READY) continue;
      /* a serving version's reason: its failed reload, else the model's (an unusable config.json) */
      const char *why = s == MODEL_UNAVAILABLE ? mv->reason : m->notes[j] ? m->notes[j] : m->reason;
      json_array_append_new(list, json_pack("{ss ss ss ss}", "name", m->name, "version", mv->version_str, "state",
                                            model_state_name(s), "reason", why));
    }
  }
  http_call_reply_json(c, 200, list);
}

/* On the repository's control thread. */
static void on_done(inferd_status st, void *user) {
  http_call *c = user;
  if (status_is_ok(&st))
    http_call_set_json(c, 200, json_object());
  else
    http_call_set_error(c, &st);
  http_call_reply_async(c);
}

void repository_model_load(void *call, const route_params *p) {
  http_call *c = call;
  json_t *body = body_object(c);
  if (body == NULL) return;
  static const char *const keys[] = {"parameters", NULL}, *const pkeys[] = {"config", NULL};
  inferd_status st = only_keys(body, "$.", keys);
  json_t *params = json_object_get(body, "parameters"), *config = NULL;
  if (status_is_ok(&st) && params) {
    if (!json_is_object(params))
      st = status_make(INFERD_INVALID_ARGUMENT, "$.parameters must be an object");
    else
      st = only_keys(params, "$.parameters.", pkeys);
    config = json_object_get(params, "config");
  }
  /* Triton sends config.json's text as a string; an object is taken as the same thing */
  char *config_text = NULL;
  if (status_is_ok(&st) && config) {
    if (json_is_string(config))
      config_text = strdup(json_string_value(config));
    else if (json_is_object(config))
      config_text = json_dumps(config, JSON_COMPACT);
    else
      st = status_make(INFERD_INVALID_ARGUMENT, "$.parameters.config must be a string holding config.json's text");
    if (status_is_ok(&st) && config_text == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
  }
  json_decref(body);
  if (!status_is_ok(&st)) {
    free(config_text);
    http_call_reply_error(c, &st);
    return;
  }
  repo_load_model(c->app->repo, p->model, config_text, on_done, c);
  free(config_text);
}

void repository_model_unload(void *call, const route_params *p) {
  http_call *c = call;
  json_t *body = body_object(c);
  if (body == NULL) return;
  static const char *const keys[] = {"parameters", NULL}, *const pkeys[] = {"unload_dependents", NULL};
  inferd_status st = only_keys(body, "$.", keys);
  json_t *params = json_object_get(body, "parameters");
  if (status_is_ok(&st) && params) {
    if (!json_is_object(params))
      st = status_make(INFERD_INVALID_ARGUMENT, "$.parameters must be an object");
    else
      st = only_keys(params, "$.parameters.", pkeys);
    json_t *dep = json_object_get(params, "unload_dependents");
    if (status_is_ok(&st) && dep && !json_is_boolean(dep))
      st = status_make(INFERD_INVALID_ARGUMENT, "$.parameters.unload_dependents must be true or false");
    /* accepted either way: a model here has no dependents (no ensembles) */
  }
  json_decref(body);
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  repo_unload_model(c->app->repo, p->model, on_done, c);
}

/* ---- GET /v2/models/{m}/config: the served configuration, in Triton's field names ---- */

static const char *triton_type(inferd_datatype dt) {
  switch (dt) {
    case DT_BOOL: return "TYPE_BOOL";
    case DT_UINT8: return "TYPE_UINT8";
    case DT_UINT16: return "TYPE_UINT16";
    case DT_UINT32: return "TYPE_UINT32";
    case DT_UINT64: return "TYPE_UINT64";
    case DT_INT8: return "TYPE_INT8";
    case DT_INT16: return "TYPE_INT16";
    case DT_INT32: return "TYPE_INT32";
    case DT_INT64: return "TYPE_INT64";
    case DT_FP16: return "TYPE_FP16";
    case DT_FP32: return "TYPE_FP32";
    case DT_FP64: return "TYPE_FP64";
    case DT_BYTES: return "TYPE_STRING";
    default: return "TYPE_INVALID";
  }
}

/* Dims without the batch dimension when the model batches, as Triton writes them. */
static json_t *io_json(const tensor_spec *specs, size_t n, bool batched) {
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *dims = json_array();
    for (int d = batched ? 1 : 0; d < specs[i].ndim; d++) json_array_append_new(dims, json_integer(specs[i].dims[d]));
    json_array_append_new(arr, json_pack("{ss ss so}", "name", specs[i].name, "data_type", triton_type(specs[i].datatype),
                                         "dims", dims));
  }
  return arr;
}

static json_t *policy_json(const model_config *cfg) {
  switch (cfg->policy) {
    case POLICY_ALL: return json_pack("{s{}}", "all");
    case POLICY_SPECIFIC: {
      json_t *v = json_array();
      for (size_t i = 0; i < cfg->n_specific_versions; i++) json_array_append_new(v, json_integer(cfg->specific_versions[i]));
      return json_pack("{s{so}}", "specific", "versions", v);
    }
    default: return json_pack("{s{si}}", "latest", "num_versions", cfg->latest_n);
  }
}

void v2_model_config(void *call, const route_params *p) {
  http_call *c = call;
  VERSION_REF model_version *mv = NULL;
  inferd_status st = repo_acquire(c->app->repo, p->model, p->version, REPO_READY, &mv);
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  const model_config *cfg = mv->model->config;
  bool batched = cfg->max_batch_size > 0;
  json_t *doc = json_pack("{ss ss ss si so so so s[{si ss}]}", "name", mv->model->name, "platform", "onnxruntime_onnx",
                          "backend", cfg->backend, "max_batch_size", cfg->max_batch_size, "version_policy",
                          policy_json(cfg), "input", io_json(mv->inputs, mv->n_inputs, batched), "output",
                          io_json(mv->outputs, mv->n_outputs, batched), "instance_group", "count", cfg->instance_count,
                          "kind", "KIND_CPU");
  if (cfg->batching.enabled) {
    json_t *pref = json_array();
    for (int i = 0; i < cfg->batching.n_preferred_batch_sizes; i++)
      json_array_append_new(pref, json_integer(cfg->batching.preferred_batch_sizes[i]));
    json_object_set_new(doc, "dynamic_batching", json_pack("{so sI}", "preferred_batch_size", pref,
                                                          "max_queue_delay_microseconds",
                                                          (json_int_t)cfg->batching.max_queue_delay_us));
  }
  if (cfg->warmup.runs > 0) {
    static const char *const kinds[] = {"zeros", "random", "file"};
    json_t *w = json_pack("{si ss}", "runs", cfg->warmup.runs, "data", kinds[cfg->warmup.data]);
    if (cfg->warmup.file) json_object_set_new(w, "file", json_string(cfg->warmup.file));
    json_object_set_new(doc, "warmup", w);
  }
  if (cfg->description) json_object_set_new(doc, "description", json_string(cfg->description));
  http_call_reply_json(c, 200, doc);
}
