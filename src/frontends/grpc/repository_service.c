/* The model repository extension over gRPC: the index from the current snapshot; load and
 * unload handed to the repository's control thread, which answers when the work is done. */
#include "frontends/grpc/repository_service.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inference.pb-c.h"

static void *unpack_or_reply(gcall *c, const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb) {
  ProtobufCMessage *m = pb_unpack(d, bb);
  if (m == NULL) {
    char msg[256];
    snprintf(msg, sizeof msg, "the request is not a valid %s message", d->name);
    gcall_reply_code(c, GRPC_INVALID_ARGUMENT, msg);
  }
  return m;
}

/* One repository: its name is its folder's (or the path given to --model-repository). */
static inferd_status check_repository(gcall *c, const char *name) {
  if (name == NULL || *name == '\0') return status_ok();
  const char *root = repo_root(c->app->repo);
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", root);
  if (strcmp(name, root) == 0 || strcmp(name, basename(copy)) == 0) return status_ok();
  return status_make(INFERD_NOT_FOUND, "no repository '%s' (this server serves one: '%s')", name, root);
}

void grpc_repository_index(gcall *c, grpc_byte_buffer *bb) {
  Inference__RepositoryIndexRequest *q =
      unpack_or_reply(c, &inference__repository_index_request__descriptor, bb);
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
  for (size_t i = 0; i < snap->n_models; i++) n += snap->models[i].n_versions ? snap->models[i].n_versions : 1;
  Inference__RepositoryIndexResponse__ModelIndex *e = calloc(n + 1, sizeof *e);
  Inference__RepositoryIndexResponse__ModelIndex **ptrs = calloc(n + 1, sizeof *ptrs);
  if (e == NULL || ptrs == NULL) {
    free(e);
    free(ptrs);
    gcall_reply_code(c, GRPC_INTERNAL, "out of memory");
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < snap->n_models; i++) {
    const repo_model *m = &snap->models[i];
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
      model_version *mv = m->versions[j];
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

void grpc_repository_model_load(gcall *c, grpc_byte_buffer *bb) {
  Inference__RepositoryModelLoadRequest *q =
      unpack_or_reply(c, &inference__repository_model_load_request__descriptor, bb);
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

void grpc_repository_model_unload(gcall *c, grpc_byte_buffer *bb) {
  Inference__RepositoryModelUnloadRequest *q =
      unpack_or_reply(c, &inference__repository_model_unload_request__descriptor, bb);
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
