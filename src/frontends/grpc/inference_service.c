/* inference.GRPCInferenceService: the Open Inference Protocol over gRPC. Inference follows the
 * REST frontend's path: resolve, decode into an infer_request, validate, submit; the worker that
 * ran the model encodes the response and starts the send itself. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/serve.h"
#include "core/version.h"
#include "util/utf8.h"
#include "frontends/grpc/call.h"
#include "frontends/grpc/generate_grpc.h"
#include "frontends/grpc/infer_codec.h"
#include "frontends/grpc/repository_service.h"
#include "inference.pb-c.h"


#define UNPACK(type, desc, c, bb) ((type *)pb_unpack_or_reply((c), &(desc), (bb)))

static inferd_status not_ready(const model_version *mv) {
  if (model_version_state(mv) == MODEL_LOADING)
    return status_make(INFERD_UNAVAILABLE, "model '%s' version %s is still loading", mv->model->name, mv->version_str);
  return status_make(INFERD_UNAVAILABLE, "model '%s' version %s is not ready: %s", mv->model->name, mv->version_str,
                     mv->reason);
}

/* A model name and an optional version, as the protocol's requests carry them. */
static inferd_status resolve(gcall *c, const char *name, const char *version, model_version **mv) {
  if (name == NULL || *name == '\0') return status_make(INFERD_INVALID_ARGUMENT, "the model name is required");
  return repo_acquire(c->app->repo, name, version, REPO_ANY_STATE, mv);
}

static void server_live(gcall *c, grpc_byte_buffer *bb) {
  (void)bb;
  Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
  r.live = 1;
  gcall_reply(c, &r.base);
}

static void server_ready(gcall *c, grpc_byte_buffer *bb) {
  (void)bb;
  Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
  char why[512];
  r.ready = app_ready(c->app, why, sizeof why);
  gcall_reply(c, &r.base);
}

static void model_ready(gcall *c, grpc_byte_buffer *bb) {
  Inference__ModelReadyRequest *q = UNPACK(Inference__ModelReadyRequest, inference__model_ready_request__descriptor, c, bb);
  if (q == NULL) return;
  VERSION_REF model_version *mv = NULL;
  inferd_status st = resolve(c, q->name, q->version, &mv);
  inference__model_ready_request__free_unpacked(q, NULL);
  /* an unknown model or version is not ready (as Triton answers), not an error; a request
   * without a name still is one */
  if (!status_is_ok(&st) && st.code == INFERD_INVALID_ARGUMENT) {
    gcall_reply_status(c, &st);
    return;
  }
  Inference__ModelReadyResponse r = INFERENCE__MODEL_READY_RESPONSE__INIT;
  r.ready = mv && model_version_state(mv) == MODEL_READY && !grpcfe_draining(c->fe);
  gcall_reply(c, &r.base);
}

static char *const server_extensions[] = {"statistics", "model_repository"};

static void server_metadata(gcall *c, grpc_byte_buffer *bb) {
  (void)bb;
  Inference__ServerMetadataResponse r = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
  r.name = "inferd";
  r.version = INFERD_VERSION;
  r.extensions = (char **)server_extensions;
  r.n_extensions = sizeof server_extensions / sizeof server_extensions[0];
  gcall_reply(c, &r.base);
}

static void tensor_metadata(const tensor_spec *specs, size_t n, Inference__ModelMetadataResponse__TensorMetadata *tm,
                            Inference__ModelMetadataResponse__TensorMetadata **ptrs) {
  for (size_t i = 0; i < n; i++) {
    inference__model_metadata_response__tensor_metadata__init(&tm[i]);
    tm[i].name = specs[i].name;
    tm[i].datatype = (char *)datatype_name(specs[i].datatype);
    tm[i].shape = (int64_t *)specs[i].dims;
    tm[i].n_shape = (size_t)specs[i].ndim;
    ptrs[i] = &tm[i];
  }
}

static void model_metadata(gcall *c, grpc_byte_buffer *bb) {
  Inference__ModelMetadataRequest *q =
      UNPACK(Inference__ModelMetadataRequest, inference__model_metadata_request__descriptor, c, bb);
  if (q == NULL) return;
  VERSION_REF model_version *mv = NULL;
  inferd_status st = resolve(c, q->name, q->version, &mv);
  inference__model_metadata_request__free_unpacked(q, NULL);
  if (status_is_ok(&st) && model_version_state(mv) != MODEL_READY) st = not_ready(mv);
  if (!status_is_ok(&st)) {
    gcall_reply_status(c, &st);
    return;
  }
  SNAPSHOT_REF repo_snapshot *snap = repo_snapshot_acquire(c->app->repo);
  const repo_model *m = repo_snapshot_find(snap, mv->model->name);
  repo_model none = {.name = mv->model->name}; /* unloaded since the resolve: only the name */
  if (m == NULL) m = &none;
  size_t nt = mv->n_inputs + mv->n_outputs;
  char **versions = calloc(m->n_versions + 1, sizeof *versions);
  Inference__ModelMetadataResponse__TensorMetadata *tm = calloc(nt + 1, sizeof *tm);
  Inference__ModelMetadataResponse__TensorMetadata **ptrs = calloc(nt + 1, sizeof *ptrs);
  if (versions == NULL || tm == NULL || ptrs == NULL) {
    gcall_reply_error(c, INFERD_INTERNAL, "out of memory");
  } else {
    Inference__ModelMetadataResponse r = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
    r.name = m->name;
    for (size_t i = 0; i < m->n_versions; i++) versions[i] = repo_model_version_at(m, i)->version_str;
    r.versions = versions;
    r.n_versions = m->n_versions;
    r.platform = (char *)mv->backend->platform;
    tensor_metadata(mv->inputs, mv->n_inputs, tm, ptrs);
    tensor_metadata(mv->outputs, mv->n_outputs, tm + mv->n_inputs, ptrs + mv->n_inputs);
    r.inputs = ptrs;
    r.n_inputs = mv->n_inputs;
    r.outputs = ptrs + mv->n_inputs;
    r.n_outputs = mv->n_outputs;
    gcall_reply(c, &r.base);
  }
  free(versions);
  free(tm);
  free(ptrs);
}

/* ---------------------------------------------------------------------------------------- */
/* inference, unary and streaming */

typedef struct infer_call {
  gcall *call;
  gstream_item *item; /* streams: this request's place among the responses; NULL: unary */
  infer_request *req;
  grpcfe_infer_info info;
  char model[256]; /* for a stream error response */
  char version[24];
  Inference__ModelInferRequest *msg; /* during serve_submit only: what decode reads */
} infer_call;

static void infer_call_free(infer_call *ic) {
  infer_request_destroy(ic->req);
  grpcfe_infer_info_clear(&ic->info);
  free(ic);
}

/* A stream's answer for a request that failed: the stream itself goes on. */
static grpc_byte_buffer *stream_error(const infer_call *ic, const inferd_status *st) {
  Inference__ModelInferResponse ir = INFERENCE__MODEL_INFER_RESPONSE__INIT;
  ir.model_name = (char *)ic->model;
  ir.model_version = (char *)ic->version;
  ir.id = ic->info.id ? ic->info.id : "";
  Inference__ModelStreamInferResponse r = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
  r.error_message = (char *)st->msg;
  r.infer_response = &ir;
  return pb_pack(&r.base);
}

/* Answers a request that did not reach the scheduler (or came back failed) and frees it. */
static void infer_fail(infer_call *ic, const inferd_status *st) {
  if (ic->item)
    gstream_send(ic->call, ic->item, stream_error(ic, st));
  else
    gcall_reply_status(ic->call, st);
  infer_call_free(ic);
}

/* On a worker thread: encode here and start the send; the completion queue does the rest. */
static void on_infer_done(infer_request *req, void *user) {
  infer_call *ic = user;
  inferd_status st = req->status;
  if (!status_is_ok(&st)) {
    infer_fail(ic, &st);
    return;
  }
  grpcfe_infer_response r;
  st = grpcfe_build_infer_response(req, &ic->info, &r);
  if (!status_is_ok(&st)) {
    infer_fail(ic, &st);
    return;
  }
  grpc_byte_buffer *bb;
  if (ic->item) {
    Inference__ModelStreamInferResponse sr = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    sr.error_message = "";
    sr.infer_response = &r.msg;
    bb = pb_pack(&sr.base);
  } else {
    bb = pb_pack(&r.msg.base);
  }
  grpcfe_infer_response_clear(&r);
  gcall_answer(ic->call, ic->item, bb);
  infer_call_free(ic);
}

/* serve's decode stage: the message into req, once the version is known. */
static inferd_status infer_decode(serve_request *sr, infer_request *req) {
  infer_call *ic = sr->user;
  ic->req = req;
  snprintf(ic->version, sizeof ic->version, "%s", sr->routed_version);
  gcall_set_model(ic->call, ic->model, ic->version);
  TRY(grpcfe_decode_infer_request(ic->msg, req, &ic->info));
  sr->deadline.param_timeout_us = ic->info.timeout_us;
  sr->priority = ic->info.priority;
  return status_ok();
}

static void infer_start(gcall *c, gstream_item *item, grpc_byte_buffer *bb) {
  infer_call *ic = calloc(1, sizeof *ic);
  if (ic == NULL) {
    gcall_fail_alloc(c, item);
    return;
  }
  ic->call = c;
  ic->item = item;
  inferd_status st;
  Inference__ModelInferRequest *q =
      (Inference__ModelInferRequest *)pb_unpack(&inference__model_infer_request__descriptor, bb);
  if (q == NULL) {
    st = status_make(INFERD_INVALID_ARGUMENT, "the request is not a valid inference.ModelInferRequest message");
    infer_fail(ic, &st);
    return;
  }
  /* a generative model's requests are generations (text_input in, text_output out) */
  if (grpcfe_is_generative(c->app, q->model_name)) {
    free(ic);
    grpcfe_generate_start(c, item, q);
    inference__model_infer_request__free_unpacked(q, NULL);
    return;
  }
  /* echoed in a stream's error response, whose string fields must be UTF-8 */
  utf8_sanitize(ic->model, sizeof ic->model, q->model_name ? q->model_name : "");
  utf8_sanitize(ic->version, sizeof ic->version, q->model_version ? q->model_version : "");
  gcall_set_model(c, ic->model, "");
  ic->msg = q;
  serve_request sr = {.model = q->model_name,
                      .version = q->model_version,
                      .deadline = {.param_timeout_what = "parameter 'timeout'"},
                      .priority_what = "parameter 'priority'",
                      .decode = infer_decode,
                      .on_done = on_infer_done,
                      .user = ic};
  st = gcall_submit(c, &sr);
  if (status_is_ok(&st)) {
    /* ic belongs to the completion now (it may have run already): only the message is ours */
    inference__model_infer_request__free_unpacked(q, NULL);
    return;
  }
  ic->req = NULL; /* serve has freed it */
  ic->msg = NULL;
  if (ic->info.id == NULL && q->id && *q->id && utf8_valid(q->id, strlen(q->id), NULL)) ic->info.id = strdup(q->id);
  inference__model_infer_request__free_unpacked(q, NULL);
  infer_fail(ic, &st);
}

static void model_infer(gcall *c, grpc_byte_buffer *bb) { infer_start(c, NULL, bb); }

static void model_stream_infer(gcall *c, grpc_byte_buffer *bb) {
  gstream_item *item = gstream_reserve(c);
  if (item == NULL) return; /* out of memory, or the stream is going away */
  infer_start(c, item, bb);
}

/* ---------------------------------------------------------------------------------------- */
/* statistics and the repository */

static void duration(Inference__StatisticDuration *d, duration_stat s) {
  inference__statistic_duration__init(d);
  d->count = s.count;
  d->ns = s.ns;
}

/* Everything one version's statistics message points to, freed together. */
typedef struct version_stats {
  Inference__ModelStatistics msg;
  Inference__InferStatistics infer;
  Inference__StatisticDuration d[6];
  Inference__InferBatchStatistics *batches;
  Inference__StatisticDuration *bd;
  Inference__InferBatchStatistics **batch_ptrs;
} version_stats;

static bool version_stats_fill(version_stats *v, model_version *mv) {
  model_stats s;
  stats_snapshot(&mv->stats, &s);
  inference__model_statistics__init(&v->msg);
  inference__infer_statistics__init(&v->infer);
  v->msg.name = mv->model->name;
  v->msg.version = mv->version_str;
  v->msg.last_inference = (uint64_t)s.last_inference_ms;
  v->msg.inference_count = s.inference_count;
  v->msg.execution_count = s.execution_count;
  duration_stat all[6] = {s.success, s.fail, s.queue, s.compute_input, s.compute_infer, s.compute_output};
  for (int i = 0; i < 6; i++) duration(&v->d[i], all[i]);
  v->infer.success = &v->d[0], v->infer.fail = &v->d[1], v->infer.queue = &v->d[2];
  v->infer.compute_input = &v->d[3], v->infer.compute_infer = &v->d[4], v->infer.compute_output = &v->d[5];
  v->msg.inference_stats = &v->infer;
  v->batches = calloc(s.n_batches + 1, sizeof *v->batches);
  v->bd = calloc(3 * s.n_batches + 1, sizeof *v->bd);
  v->batch_ptrs = calloc(s.n_batches + 1, sizeof *v->batch_ptrs);
  bool ok = v->batches && v->bd && v->batch_ptrs;
  for (size_t i = 0; ok && i < s.n_batches; i++) {
    Inference__InferBatchStatistics *b = &v->batches[i];
    inference__infer_batch_statistics__init(b);
    b->batch_size = (uint64_t)s.batches[i].batch_size;
    duration(&v->bd[3 * i], s.batches[i].compute_input);
    duration(&v->bd[3 * i + 1], s.batches[i].compute_infer);
    duration(&v->bd[3 * i + 2], s.batches[i].compute_output);
    b->compute_input = &v->bd[3 * i], b->compute_infer = &v->bd[3 * i + 1], b->compute_output = &v->bd[3 * i + 2];
    v->batch_ptrs[i] = b;
  }
  if (ok) {
    v->msg.batch_stats = v->batch_ptrs;
    v->msg.n_batch_stats = s.n_batches;
  }
  free(s.batches);
  return ok;
}

static void version_stats_free(version_stats *v) {
  free(v->batches);
  free(v->bd);
  free(v->batch_ptrs);
}

static void model_statistics(gcall *c, grpc_byte_buffer *bb) {
  Inference__ModelStatisticsRequest *q =
      UNPACK(Inference__ModelStatisticsRequest, inference__model_statistics_request__descriptor, c, bb);
  if (q == NULL) return;
  SNAPSHOT_REF repo_snapshot *repo = repo_snapshot_acquire(c->app->repo);
  /* which versions: all of every model, all of one model, or one version */
  model_version **list = NULL;
  size_t n = 0;
  inferd_status st = status_ok();
  if (q->name == NULL || *q->name == '\0') {
    if (q->version && *q->version) st = status_make(INFERD_INVALID_ARGUMENT, "a version needs a model name");
    size_t total = 0;
    for (size_t i = 0; i < repo->n_models; i++) total += repo_snapshot_model(repo, i)->n_versions;
    list = calloc(total + 1, sizeof *list);
    for (size_t i = 0; list && i < repo->n_models; i++)
      for (size_t j = 0; j < repo_snapshot_model(repo, i)->n_versions; j++) list[n++] = repo_model_version_at(repo_snapshot_model(repo, i), j);
  } else if (q->version == NULL || *q->version == '\0') {
    const repo_model *m = repo_snapshot_find(repo, q->name);
    if (m == NULL) st = status_make(INFERD_NOT_FOUND, "model '%s' not found", q->name);
    list = calloc(m ? m->n_versions + 1 : 1, sizeof *list);
    for (size_t j = 0; m && list && j < m->n_versions; j++) list[n++] = repo_model_version_at(m, j);
  } else {
    model_version *mv = NULL;
    const repo_model *m = repo_snapshot_find(repo, q->name);
    st = m ? repo_model_version(m, q->version, &mv) : status_make(INFERD_NOT_FOUND, "model '%s' not found", q->name);
    list = calloc(2, sizeof *list);
    if (status_is_ok(&st) && list) list[n++] = mv;
  }
  inference__model_statistics_request__free_unpacked(q, NULL);
  if (status_is_ok(&st) && list == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
  version_stats *vs = status_is_ok(&st) ? calloc(n + 1, sizeof *vs) : NULL;
  Inference__ModelStatistics **ptrs = status_is_ok(&st) ? calloc(n + 1, sizeof *ptrs) : NULL;
  if (status_is_ok(&st) && (vs == NULL || ptrs == NULL)) st = status_make(INFERD_INTERNAL, "out of memory");
  size_t filled = 0;
  for (; status_is_ok(&st) && filled < n; filled++) {
    if (!version_stats_fill(&vs[filled], list[filled])) st = status_make(INFERD_INTERNAL, "out of memory");
    ptrs[filled] = &vs[filled].msg;
  }
  if (status_is_ok(&st)) {
    Inference__ModelStatisticsResponse r = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
    r.model_stats = ptrs;
    r.n_model_stats = n;
    gcall_reply(c, &r.base);
  } else {
    gcall_reply_status(c, &st);
  }
  for (size_t i = 0; vs && i < filled; i++) version_stats_free(&vs[i]);
  free(vs);
  free(ptrs);
  free(list);
}

#define SVC "/inference.GRPCInferenceService/"

rpc_method inference_service_methods[] = {
    {.path = SVC "ServerLive", .kind = RPC_UNARY, .slots = 2, .on_unary = server_live, .scope = SCOPE_OPEN},
    {.path = SVC "ServerReady", .kind = RPC_UNARY, .slots = 2, .on_unary = server_ready, .scope = SCOPE_OPEN},
    {.path = SVC "ModelReady", .kind = RPC_UNARY, .slots = 2, .on_unary = model_ready, .scope = SCOPE_READ},
    {.path = SVC "ServerMetadata", .kind = RPC_UNARY, .slots = 2, .on_unary = server_metadata, .scope = SCOPE_READ},
    {.path = SVC "ModelMetadata", .kind = RPC_UNARY, .slots = 2, .on_unary = model_metadata, .scope = SCOPE_READ},
    {.path = SVC "ModelInfer", .kind = RPC_UNARY, .slots = 32, .on_unary = model_infer, .scope = SCOPE_INFER},
    {.path = SVC "ModelStreamInfer", .kind = RPC_STREAM, .slots = 4, .on_message = model_stream_infer, .scope = SCOPE_INFER},
    {.path = SVC "ModelStatistics", .kind = RPC_UNARY, .slots = 1, .on_unary = model_statistics, .scope = SCOPE_READ},
    {.path = SVC "RepositoryIndex", .kind = RPC_UNARY, .slots = 1, .on_unary = grpcfe_repository_index, .scope = SCOPE_ADMIN},
    {.path = SVC "RepositoryModelLoad", .kind = RPC_UNARY, .slots = 1, .on_unary = grpcfe_repository_model_load, .scope = SCOPE_ADMIN},
    {.path = SVC "RepositoryModelUnload", .kind = RPC_UNARY, .slots = 1, .on_unary = grpcfe_repository_model_unload, .scope = SCOPE_ADMIN},
    {.path = SVC "ModelConfig", .kind = RPC_UNARY, .slots = 1, .on_unary = grpcfe_model_config, .scope = SCOPE_READ},
    {0}};
