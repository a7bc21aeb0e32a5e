/* The model repository extension over gRPC: the index from the current snapshot; load and
 * unload handed to the repository's control thread, which answers when the work is done. */
#include "frontends/grpc/repository_service.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inference.pb-c.h"

/* One repository: its name is its folder's (or the path given to --model-repository). */
static inferd_status check_repository(gcall *c, const char *name) {
  if (name == NULL || *name == '\0') return status_ok();
  const char *root = repo_root(c->app->repo);
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", root);
  if (strcmp(name, root) == 0 || strcmp(name, basename(copy)) == 0) return status_ok();
  return status_make(INFERD_NOT_FOUND, "no repository '%s' (this server serves one: '%s')", name, root);
}

void grpcfe_repository_index(gcall *c, grpc_byte_buffer *bb) {
  Inference__RepositoryIndexRequest *q =
      pb_unpack_or_reply(c, &inference__repository_index_request__descriptor, bb);
  if (q == NULL) return;
  inferd_status st = check_repository(c, q->repository_name);
  bool only_ready = q->ready;
  inference__repository_index_request__free_unpacked(q, NULL);
  if (!status_is_ok(&st)) {
    gcall_reply_status(c, &st);
    return;
  }
  SNAPSHOT_REF repo_snapshot *snap = repo_snapshot_acquire(c->app->repo);
  size_t n = 0;
  for (size_t i = 0; i < snap->n_models; i++) {
    size_t nv = repo_snapshot_model(snap, i)->n_versions;
    n += nv ? nv : 1;
  }
  Inference__RepositoryIndexResponse__ModelIndex *e = calloc(n + 1, sizeof *e);
  Inference__RepositoryIndexResponse__ModelIndex **ptrs = calloc(n + 1, sizeof *ptrs);
  if (e == NULL || ptrs == NULL) {
    free(e);
    free(ptrs);
    gcall_reply_error(c, INFERD_INTERNAL, "out of memory");
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < snap->n_models; i++) {
    const repo_model *m = repo_snapshot_model(snap, i);
    if (m->n_versions == 0) { /* a model folder that serves nothing: say why */
      if (only_ready) continue;
      inference__repository_index_response__model_index__init(&e[k]);
      e[k].name = m->name;
      e[k].state = "UNAVAILABLE";
      e[k].reason = m->reason[0]                           ? (char *)m->reason
                    : m->def && m->def->config_error[0] ? m->def->config_error
                                                         : "no version folder with a model file";
      ptrs[k] = &e[k];
      k++;
      continue;
    }
    for (size_t j = 0; j < m->n_versions; j++) {
      model_version *mv = repo_model_version_at(m, j);
      model_state s = model_version_state(mv);
      if (only_ready && s != MODEL_READY) continue;
      inference__repository_index_response__model_index__init(&e[k]);
      e[k].name = m->name;
      e[k].version = mv->version_str;
      e[k].state = (char *)model_state_name(s);
      e[k].reason = s == MODEL_UNAVAILABLE ? mv->reason : m->notes[j] ? m->notes[j] : (char *)m->reason;
      ptrs[k] = &e[k];
      k++;
    }
  }
  Inference__RepositoryIndexResponse r = INFERENCE__REPOSITORY_INDEX_RESPONSE__INIT;
  r.models = ptrs;
  r.n_models = k;
  gcall_reply(c, &r.base);
  free(e);
  free(ptrs);
}

/* On the repository's control thread, when the load or unload is done. */
static void on_load_done(inferd_status st, void *user) {
  gcall *c = user;
  if (!status_is_ok(&st)) {
    gcall_reply_status(c, &st);
    return;
  }
  Inference__RepositoryModelLoadResponse r = INFERENCE__REPOSITORY_MODEL_LOAD_RESPONSE__INIT;
  gcall_reply(c, &r.base);
}

static void on_unload_done(inferd_status st, void *user) {
  gcall *c = user;
  if (!status_is_ok(&st)) {
    gcall_reply_status(c, &st);
    return;
  }
  Inference__RepositoryModelUnloadResponse r = INFERENCE__REPOSITORY_MODEL_UNLOAD_RESPONSE__INIT;
  gcall_reply(c, &r.base);
}

void grpcfe_repository_model_load(gcall *c, grpc_byte_buffer *bb) {
  Inference__RepositoryModelLoadRequest *q =
      pb_unpack_or_reply(c, &inference__repository_model_load_request__descriptor, bb);
  if (q == NULL) return;
  inferd_status st = check_repository(c, q->repository_name);
  const char *config = NULL;
  if (status_is_ok(&st) && (q->model_name == NULL || *q->model_name == '\0'))
    st = status_make(INFERD_INVALID_ARGUMENT, "model_name is required");
  for (size_t i = 0; status_is_ok(&st) && i < q->n_parameters; i++) {
    const char *key = q->parameters[i]->key;
    const Inference__ModelRepositoryParameter *v = q->parameters[i]->value;
    if (strcmp(key, "config") != 0)
      st = status_make(INFERD_INVALID_ARGUMENT, "parameters['%s'] is not supported (only 'config', a config.json text)", key);
    else if (v == NULL || v->parameter_choice_case != INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_STRING_PARAM)
      st = status_make(INFERD_INVALID_ARGUMENT, "parameters['config'] must be a string_param holding config.json's text");
    else
      config = v->string_param;
  }
  if (status_is_ok(&st)) repo_load_model(c->app->repo, q->model_name, config, on_load_done, c);
  inference__repository_model_load_request__free_unpacked(q, NULL);
  if (!status_is_ok(&st)) gcall_reply_status(c, &st);
}

void grpcfe_repository_model_unload(gcall *c, grpc_byte_buffer *bb) {
  Inference__RepositoryModelUnloadRequest *q =
      pb_unpack_or_reply(c, &inference__repository_model_unload_request__descriptor, bb);
  if (q == NULL) return;
  inferd_status st = check_repository(c, q->repository_name);
  if (status_is_ok(&st) && (q->model_name == NULL || *q->model_name == '\0'))
    st = status_make(INFERD_INVALID_ARGUMENT, "model_name is required");
  /* unload_dependents is accepted: a model here has no dependents (no ensembles) */
  for (size_t i = 0; status_is_ok(&st) && i < q->n_parameters; i++)
    if (strcmp(q->parameters[i]->key, "unload_dependents") != 0)
      st = status_make(INFERD_INVALID_ARGUMENT, "parameters['%s'] is not supported (only 'unload_dependents')",
                       q->parameters[i]->key);
  if (status_is_ok(&st)) repo_unload_model(c->app->repo, q->model_name, on_unload_done, c);
  inference__repository_model_unload_request__free_unpacked(q, NULL);
  if (!status_is_ok(&st)) gcall_reply_status(c, &st);
}

/* ---- ModelConfig: the served configuration, as Triton's ModelConfig message ---- */

static Inference__DataType triton_type(inferd_datatype dt) {
  switch (dt) {
    case DT_BOOL: return INFERENCE__DATA_TYPE__TYPE_BOOL;
    case DT_UINT8: return INFERENCE__DATA_TYPE__TYPE_UINT8;
    case DT_UINT16: return INFERENCE__DATA_TYPE__TYPE_UINT16;
    case DT_UINT32: return INFERENCE__DATA_TYPE__TYPE_UINT32;
    case DT_UINT64: return INFERENCE__DATA_TYPE__TYPE_UINT64;
    case DT_INT8: return INFERENCE__DATA_TYPE__TYPE_INT8;
    case DT_INT16: return INFERENCE__DATA_TYPE__TYPE_INT16;
    case DT_INT32: return INFERENCE__DATA_TYPE__TYPE_INT32;
    case DT_INT64: return INFERENCE__DATA_TYPE__TYPE_INT64;
    case DT_FP16: return INFERENCE__DATA_TYPE__TYPE_FP16;
    case DT_FP32: return INFERENCE__DATA_TYPE__TYPE_FP32;
    case DT_FP64: return INFERENCE__DATA_TYPE__TYPE_FP64;
    case DT_BYTES: return INFERENCE__DATA_TYPE__TYPE_STRING;
    default: return INFERENCE__DATA_TYPE__TYPE_INVALID;
  }
}

void grpcfe_model_config(gcall *c, grpc_byte_buffer *bb) {
  Inference__ModelConfigRequest *q = pb_unpack_or_reply(c, &inference__model_config_request__descriptor, bb);
  if (q == NULL) return;
  VERSION_REF model_version *mv = NULL;
  inferd_status st = q->name && *q->name ? repo_acquire(c->app->repo, q->name, q->version, REPO_READY, &mv)
                                         : status_make(INFERD_INVALID_ARGUMENT, "the model name is required");
  inference__model_config_request__free_unpacked(q, NULL);
  if (!status_is_ok(&st)) {
    gcall_reply_status(c, &st);
    return;
  }
  const model_config *cfg = mv->model->config;
  bool batched = cfg->max_batch_size > 0;
  size_t n_io = mv->n_inputs + mv->n_outputs;
  Inference__ModelInput *in = calloc(mv->n_inputs + 1, sizeof *in);
  Inference__ModelInput **inp = calloc(mv->n_inputs + 1, sizeof *inp);
  Inference__ModelOutput *out = calloc(mv->n_outputs + 1, sizeof *out);
  Inference__ModelOutput **outp = calloc(mv->n_outputs + 1, sizeof *outp);
  int64_t *dims = calloc(n_io * TENSOR_MAX_DIMS + 1, sizeof *dims);
  int64_t *versions = calloc(cfg->n_specific_versions + 1, sizeof *versions);
  int32_t *preferred = calloc((size_t)cfg->batching.n_preferred_batch_sizes + 1, sizeof *preferred);
  if (in && inp && out && outp && dims && versions && preferred) {
    Inference__ModelConfig m = INFERENCE__MODEL_CONFIG__INIT;
    m.name = mv->model->name;
    m.platform = "onnxruntime_onnx";
    m.backend = cfg->backend;
    m.max_batch_size = cfg->max_batch_size;
    int skip = batched ? 1 : 0; /* dims leave the batch dimension out, as Triton's do */
    int64_t *d = dims;
    for (size_t i = 0; i < mv->n_inputs; i++) {
      inference__model_input__init(&in[i]);
      in[i].name = mv->inputs[i].name;
      in[i].data_type = triton_type(mv->inputs[i].datatype);
      in[i].n_dims = (size_t)(mv->inputs[i].ndim - skip);
      in[i].dims = d;
      for (int k = skip; k < mv->inputs[i].ndim; k++) *d++ = mv->inputs[i].dims[k];
      inp[i] = &in[i];
    }
    for (size_t i = 0; i < mv->n_outputs; i++) {
      inference__model_output__init(&out[i]);
      out[i].name = mv->outputs[i].name;
      out[i].data_type = triton_type(mv->outputs[i].datatype);
      out[i].n_dims = (size_t)(mv->outputs[i].ndim - skip);
      out[i].dims = d;
      for (int k = skip; k < mv->outputs[i].ndim; k++) *d++ = mv->outputs[i].dims[k];
      outp[i] = &out[i];
    }
    m.input = inp;
    m.n_input = mv->n_inputs;
    m.output = outp;
    m.n_output = mv->n_outputs;
    Inference__ModelVersionPolicy policy = INFERENCE__MODEL_VERSION_POLICY__INIT;
    Inference__ModelVersionPolicy__Latest latest = INFERENCE__MODEL_VERSION_POLICY__LATEST__INIT;
    Inference__ModelVersionPolicy__All all = INFERENCE__MODEL_VERSION_POLICY__ALL__INIT;
    Inference__ModelVersionPolicy__Specific specific = INFERENCE__MODEL_VERSION_POLICY__SPECIFIC__INIT;
    if (cfg->policy == POLICY_ALL) {
      policy.policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_ALL;
      policy.all = &all;
    } else if (cfg->policy == POLICY_SPECIFIC) {
      for (size_t i = 0; i < cfg->n_specific_versions; i++) versions[i] = cfg->specific_versions[i];
      specific.versions = versions;
      specific.n_versions = cfg->n_specific_versions;
      policy.policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_SPECIFIC;
      policy.specific = &specific;
    } else {
      latest.num_versions = (uint32_t)cfg->latest_n;
      policy.policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST;
      policy.latest = &latest;
    }
    m.version_policy = &policy;
    Inference__ModelInstanceGroup group = INFERENCE__MODEL_INSTANCE_GROUP__INIT, *groups[1] = {&group};
    group.count = cfg->instance_count;
    group.kind = INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_CPU;
    m.instance_group = groups;
    m.n_instance_group = 1;
    Inference__ModelDynamicBatching db = INFERENCE__MODEL_DYNAMIC_BATCHING__INIT;
    if (cfg->batching.enabled) {
      for (int i = 0; i < cfg->batching.n_preferred_batch_sizes; i++) preferred[i] = cfg->batching.preferred_batch_sizes[i];
      db.preferred_batch_size = preferred;
      db.n_preferred_batch_size = (size_t)cfg->batching.n_preferred_batch_sizes;
      db.max_queue_delay_microseconds = (uint64_t)cfg->batching.max_queue_delay_us;
      m.scheduling_choice_case = INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING;
      m.dynamic_batching = &db;
    }
    Inference__ModelConfigResponse r = INFERENCE__MODEL_CONFIG_RESPONSE__INIT;
    r.config = &m;
    gcall_reply(c, &r.base);
  } else {
    gcall_reply_error(c, INFERD_INTERNAL, "out of memory");
  }
  free(in);
  free(inp);
  free(out);
  free(outp);
  free(dims);
  free(versions);
  free(preferred);
}
