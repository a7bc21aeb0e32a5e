#include "core/infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

infer_request *infer_request_create(model_version *mv) {
  infer_request *req = calloc(1, sizeof *req);
  if (req == NULL) return NULL;
  /* the request's own reference: held until it is destroyed, after its completion */
  version_retain(mv);
  req->mv = mv;
  return req;
}

void infer_request_destroy(infer_request *req) {
  if (req == NULL) return;
  tensors_free(req->inputs, req->n_inputs);
  if (req->outputs) tensors_free(req->outputs, req->n_outputs);
  for (size_t i = 0; i < req->n_outputs; i++) free(req->output_names[i]);
  free(req->output_names);
  version_release(req->mv);
  free(req);
}

static inferd_status check_input(const model_version *mv, const tensor *t) {
  const tensor_spec *spec = model_version_find_input(mv, t->name);
  char a[96], b[96];
  if (spec == NULL) {
    char names[256] = "";
    size_t off = 0;
    for (size_t i = 0; i < mv->n_inputs && off < sizeof names; i++)
      off += (size_t)snprintf(names + off, sizeof names - off, "%s'%s'", i ? ", " : "", mv->inputs[i].name);
    return status_make(INFERD_INVALID_ARGUMENT, "unknown input '%s' for model '%s' (inputs: %s)", t->name,
                       mv->model->name, names);
  }
  if (spec->datatype != t->datatype)
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has datatype %s, the model expects %s", t->name,
                       datatype_name(t->datatype), datatype_name(spec->datatype));
  bool ok = spec->ndim == t->ndim;
  for (int d = 0; ok && d < t->ndim; d++)
    if (spec->dims[d] != -1 && spec->dims[d] != t->shape[d]) ok = false;
  if (!ok)
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has shape %s, the model expects %s (-1: any size)",
                       t->name, shape_str(t->shape, t->ndim, a, sizeof a), shape_str(spec->dims, spec->ndim, b, sizeof b));
  int max_batch = mv->model->config->max_batch_size;
  if (max_batch > 0 && t->shape[0] > max_batch)
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has a batch of %lld rows, more than the model's max_batch_size %d",
                       t->name, (long long)t->shape[0], max_batch);
  if (datatype_is_float(t->datatype) && !mv->model->config->allow_nan) {
    int64_t at = tensor_find_non_finite(t);
    if (at >= 0)
      return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has NaN or Inf at element %lld (this model's config does not set allow_nan)",
                         t->name, (long long)at);
  }
  return status_ok();
}

inferd_status infer_request_validate(infer_request *req) {
  const model_version *mv = req->mv;
  for (size_t i = 0; i < req->n_inputs; i++) {
    for (size_t j = 0; j < i; j++)
      if (strcmp(req->inputs[i].name, req->inputs[j].name) == 0)
        return status_make(INFERD_INVALID_ARGUMENT, "input '%s' is given twice", req->inputs[i].name);
    TRY(check_input(mv, &req->inputs[i]));
  }
  for (size_t i = 0; i < mv->n_inputs; i++) {
    bool given = false;
    for (size_t j = 0; j < req->n_inputs && !given; j++)
      given = strcmp(req->inputs[j].name, mv->inputs[i].name) == 0;
    if (!given) return status_make(INFERD_INVALID_ARGUMENT, "missing input '%s'", mv->inputs[i].name);
  }
  if (mv->model->config->max_batch_size > 0)
    for (size_t i = 1; i < req->n_inputs; i++)
      if (req->inputs[i].shape[0] != req->inputs[0].shape[0])
        return status_make(INFERD_INVALID_ARGUMENT, "inputs '%s' and '%s' have different batch sizes (%lld and %lld)",
                           req->inputs[0].name, req->inputs[i].name, (long long)req->inputs[0].shape[0],
                           (long long)req->inputs[i].shape[0]);
  for (size_t i = 0; i < req->n_outputs; i++) {
    if (model_version_find_output(mv, req->output_names[i]) == NULL)
      return status_make(INFERD_INVALID_ARGUMENT, "unknown output '%s' for model '%s'", req->output_names[i], mv->model->name);
    for (size_t j = 0; j < i; j++)
      if (strcmp(req->output_names[i], req->output_names[j]) == 0)
        return status_make(INFERD_INVALID_ARGUMENT, "output '%s' is requested twice", req->output_names[i]);
  }
  req->rows = mv->model->config->max_batch_size > 0 && req->n_inputs ? req->inputs[0].shape[0] : 1;
  if (req->n_outputs == 0) {
    req->output_names = calloc(mv->n_outputs + 1, sizeof(char *));
    if (req->output_names == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    for (size_t i = 0; i < mv->n_outputs; i++) req->output_names[i] = strdup(mv->outputs[i].name);
    req->n_outputs = mv->n_outputs;
  }
  return status_ok();
}

