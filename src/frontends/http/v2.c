/* The Open Inference Protocol (KServe V2) REST endpoints. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/serve.h"
#include "core/version.h"
#include "frontends/http/routes.h"
#include "frontends/http/v2_codec.h"

void v2_server_metadata(void *call, const route_params *p) {
  (void)p;
  http_call_reply_json(call, 200,
                       json_pack("{ss ss s[sss]}", "name", "inferd", "version", INFERD_VERSION, "extensions",
                                 "binary_tensor_data", "statistics", "model_repository"));
}

void v2_health_live(void *call, const route_params *p) {
  (void)p;
  http_call_reply_json(call, 200, json_pack("{sb}", "live", 1));
}

void v2_health_ready(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  char why[512];
  if (app_ready(c->app, why, sizeof why))
    http_call_reply_json(c, 200, json_pack("{sb}", "ready", 1));
  else
    http_call_reply_json(c, status_http_code(INFERD_UNAVAILABLE), json_pack("{sb ss}", "ready", 0, "error", why));
}

/* Resolves the path's model and version to a counted reference (hold it in a VERSION_REF);
 * on failure replies and returns NULL. */
static model_version *resolve(http_call *c, const route_params *p) {
  model_version *mv;
  inferd_status st = repo_acquire(c->app->repo, p->model, p->version, REPO_ANY_STATE, &mv);
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return NULL;
  }
  snprintf(c->version, sizeof c->version, "%s", mv->version_str);
  return mv;
}

static inferd_status not_ready(const model_version *mv) {
  model_state s = model_version_state(mv);
  if (s == MODEL_LOADING)
    return status_make(INFERD_UNAVAILABLE, "model '%s' version %s is still loading", mv->model->name, mv->version_str);
  return status_make(INFERD_UNAVAILABLE, "model '%s' version %s is not ready: %s", mv->model->name, mv->version_str,
                     mv->reason);
}

static json_t *tensor_specs_json(const tensor_spec *specs, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *shape = json_array();
    for (int d = 0; d < specs[i].ndim; d++) json_array_append_new(shape, json_integer(specs[i].dims[d]));
    json_array_append_new(arr, json_pack("{ss ss so}", "name", specs[i].name, "datatype",
                                         datatype_name(specs[i].datatype), "shape", shape));
  }
  return arr;
}

void v2_model_metadata(void *call, const route_params *p) {
  http_call *c = call;
  VERSION_REF model_version *mv = resolve(c, p);
  if (mv == NULL) return;
  if (model_version_state(mv) != MODEL_READY) {
    inferd_status st = not_ready(mv);
    http_call_reply_error(c, &st);
    return;
  }
  const model *m = mv->model;
  json_t *versions = json_array();
  SNAPSHOT_REF repo_snapshot *snap = repo_snapshot_acquire(c->app->repo);
  const repo_model *rm = repo_snapshot_find(snap, m->name);
  for (size_t i = 0; rm && i < rm->n_versions; i++) json_array_append_new(versions, json_string(repo_model_version_at(rm, i)->version_str));
  json_t *doc = json_pack("{ss so ss so so}", "name", m->name, "versions", versions, "platform", mv->backend->platform,
                          "inputs", tensor_specs_json(mv->inputs, mv->n_inputs), "outputs",
                          tensor_specs_json(mv->outputs, mv->n_outputs));
  if (m->config->description) json_object_set_new(doc, "description", json_string(m->config->description));
  http_call_reply_json(c, 200, doc);
}

void v2_model_ready(void *call, const route_params *p) {
  http_call *c = call;
  VERSION_REF model_version *mv = resolve(c, p);
  if (mv == NULL) return;
  if (model_version_state(mv) == MODEL_READY) {
    http_call_reply_json(c, 200, json_pack("{ss ss sb}", "name", mv->model->name, "version", mv->version_str, "ready", 1));
    return;
  }
  inferd_status st = not_ready(mv);
  http_call_reply_json(c, status_http_code(st.code), json_pack("{ss ss sb ss}", "name", mv->model->name, "version", mv->version_str, "ready",
                                         0, "error", st.msg));
}

/* What an inference keeps between the loop thread and the worker that completes it. */
typedef struct v2_infer_call {
  http_call *http;
  infer_request *req;
  v2_request_info info;
  const struct v2_decode_ctx *decode; /* during serve_submit only */
} v2_infer_call;

static void v2_infer_call_free(v2_infer_call *ic) {
  infer_request_destroy(ic->req);
  v2_request_info_clear(&ic->info);
  free(ic);
}

/* On a worker thread: encode here, so the I/O thread only writes bytes. */
static void on_infer_done(infer_request *req, void *user) {
  v2_infer_call *ic = user;
  http_call *c = ic->http;
  inferd_status st = req->status;
  if (status_is_ok(&st)) {
    c->body = evbuffer_new();
    size_t header_len = 0;
    st = c->body ? v2_encode_response(req, &ic->info, c->body, &header_len)
                 : status_make(INFERD_INTERNAL, "out of memory");
    if (status_is_ok(&st)) {
      c->status = 200;
      c->content_type = header_len ? "application/octet-stream" : "application/json";
      c->header_len = header_len ? (long long)header_len : -1;
    }
  }
  if (!status_is_ok(&st)) http_call_set_error(c, &st);
  v2_infer_call_free(ic);
  http_call_reply_async(c);
}

static bool content_type_ok(const char *ct) {
  if (ct == NULL) return true;
  static const char *const ok[] = {"application/json", "application/octet-stream"};
  for (size_t i = 0; i < 2; i++) {
    size_t n = strlen(ok[i]);
    if (strncasecmp(ct, ok[i], n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ')) return true;
  }
  return false;
}

/* serve's decode stage: the body into req, now that the version (its signature) is known. */
typedef struct v2_decode_ctx {
  const char *body;
  size_t len;
  long long header_len;
} v2_decode_ctx;

static inferd_status v2_decode(serve_request *sr, infer_request *req) {
  v2_infer_call *ic = sr->user;
  const v2_decode_ctx *d = ic->decode;
  ic->req = req;
  snprintf(ic->http->version, sizeof ic->http->version, "%s", sr->routed_version);
  TRY(v2_decode_request(d->body, d->len, d->header_len, req, &ic->info));
  sr->deadline.param_timeout_us = ic->info.timeout_us;
  sr->priority = ic->info.priority;
  return status_ok();
}

void v2_model_infer(void *call, const route_params *p) {
  http_call *c = call;
  inferd_status st;
  if (atomic_load(&c->app->draining)) {
    st = status_make(INFERD_UNAVAILABLE, "the server is shutting down");
    http_call_reply_error(c, &st);
    return;
  }
  const char *ct = http_call_header(c, "Content-Type");
  if (!content_type_ok(ct)) {
    st = status_make(INFERD_UNSUPPORTED_MEDIA, "Content-Type '%s' is not supported: send application/json, or application/octet-stream with Inference-Header-Content-Length", ct);
    http_call_reply_error(c, &st);
    return;
  }
  size_t len;
  const char *body = http_call_body(c, &len);
  st = status_ok();
  long long header_len = -1;
  const char *hl = http_call_header(c, "Inference-Header-Content-Length");
  if (hl) {
    /* read by hand, so a number beyond 64 bits is reported as sent, not as strtoll's limit */
    unsigned long long v = 0;
    bool over = false;
    const char *q = hl;
    for (; *q >= '0' && *q <= '9'; q++) {
      if (v > len) over = true; /* already more than the body: stop growing */
      else v = v * 10 + (unsigned)(*q - '0');
    }
    if (q == hl || *q != '\0')
      st = status_make(INFERD_INVALID_ARGUMENT, "Inference-Header-Content-Length '%.64s' is not a non-negative integer", hl);
    else if (over || v > len)
      st = status_make(INFERD_INVALID_ARGUMENT, "Inference-Header-Content-Length is %.64s but the body has only %zu bytes", hl, len);
    else
      header_len = (long long)v;
  } else if (ct && strncasecmp(ct, "application/octet-stream", 24) == 0) {
    st = status_make(INFERD_INVALID_ARGUMENT, "the Inference-Header-Content-Length header is missing: an application/octet-stream body is JSON followed by binary tensor data, and the header gives the length of the JSON part");
  }
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  v2_infer_call *ic = calloc(1, sizeof *ic);
  if (ic == NULL) {
    st = status_make(INFERD_INTERNAL, "out of memory");
    http_call_reply_error(c, &st);
    return;
  }
  ic->http = c;
  v2_decode_ctx d = {body, len, header_len};
  ic->decode = &d;
  serve_request sr = {.model = p->model,
                      .version = p->version,
                      .deadline = {.timeout_header = http_call_header(c, "X-Request-Timeout-Ms"),
                                   .param_timeout_what = "parameters.timeout"},
                      .priority_what = "parameters.priority",
                      .decode = v2_decode,
                      .on_done = on_infer_done,
                      .user = ic};
  http_call_serve_init(c, &sr);
  st = serve_submit(c->app->serve, &sr);
  if (!status_is_ok(&st)) {
    ic->req = NULL; /* serve has freed it */
    v2_infer_call_free(ic);
    http_call_reply_error(c, &st);
  }
}

/* --- the statistics extension --- */

static json_t *duration_json(duration_stat d) {
  return json_pack("{sI sI}", "count", (json_int_t)d.count, "ns", (json_int_t)d.ns);
}

static json_t *version_stats_json(model_version *mv) {
  model_stats s;
  stats_snapshot(&mv->stats, &s);
  json_t *batches = json_array();
  for (size_t i = 0; i < s.n_batches; i++)
    json_array_append_new(batches, json_pack("{sI so so so}", "batch_size", (json_int_t)s.batches[i].batch_size,
                                             "compute_input", duration_json(s.batches[i].compute_input),
                                             "compute_infer", duration_json(s.batches[i].compute_infer),
                                             "compute_output", duration_json(s.batches[i].compute_output)));
  free(s.batches);
  json_t *inference = json_pack("{so so so so so so}", "success", duration_json(s.success), "fail", duration_json(s.fail),
                                "queue", duration_json(s.queue), "compute_input", duration_json(s.compute_input),
                                "compute_infer", duration_json(s.compute_infer), "compute_output",
                                duration_json(s.compute_output));
  return json_pack("{ss ss sI sI sI so so}", "name", mv->model->name, "version", mv->version_str, "last_inference",
                   (json_int_t)s.last_inference_ms, "inference_count", (json_int_t)s.inference_count,
                   "execution_count", (json_int_t)s.execution_count, "inference_stats", inference, "batch_stats",
                   batches);
}

void v2_model_stats(void *call, const route_params *p) {
  http_call *c = call;
  SNAPSHOT_REF repo_snapshot *repo = repo_snapshot_acquire(c->app->repo);
  json_t *list = json_array();
  if (p->model[0] == '\0') { /* every model */
    for (size_t i = 0; i < repo->n_models; i++)
      for (size_t j = 0; j < repo_snapshot_model(repo, i)->n_versions; j++)
        json_array_append_new(list, version_stats_json(repo_model_version_at(repo_snapshot_model(repo, i), j)));
  } else if (p->version[0] == '\0') { /* every version of one model */
    const repo_model *m = repo_snapshot_find(repo, p->model);
    if (m == NULL) {
      json_decref(list);
      inferd_status st = status_make(INFERD_NOT_FOUND, "model '%s' not found", p->model);
      http_call_reply_error(c, &st);
      return;
    }
    for (size_t j = 0; j < m->n_versions; j++) json_array_append_new(list, version_stats_json(repo_model_version_at(m, j)));
  } else {
    VERSION_REF model_version *mv = resolve(c, p);
    if (mv == NULL) {
      json_decref(list);
      return;
    }
    json_array_append_new(list, version_stats_json(mv));
  }
  http_call_reply_json(c, 200, json_pack("{so}", "model_stats", list));
}
