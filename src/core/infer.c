#include "core/infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/principal.h"
#include "util/monotime.h"
#include "util/strbuf.h"
#include "util/utf8.h"

inferd_status infer_deadline_after(int64_t start_ns, int64_t timeout_us, const char *what, int64_t *deadline_ns) {
  *deadline_ns = 0;
  if (timeout_us < 0)
    return status_make(INFERD_INVALID_ARGUMENT, "%s is %lld: a timeout cannot be negative", what, (long long)timeout_us);
  if (timeout_us > INFER_MAX_TIMEOUT_US)
    return status_make(INFERD_INVALID_ARGUMENT, "%s is %lld microseconds, more than the maximum of %lld (one day)", what,
                       (long long)timeout_us, (long long)INFER_MAX_TIMEOUT_US);
  if (timeout_us == 0) return status_ok();
  int64_t ns = timeout_us * 1000; /* at most 8.64e16: no overflow */
  *deadline_ns = start_ns > INT64_MAX - ns ? INT64_MAX : start_ns + ns;
  return status_ok();
}

inferd_status infer_timeout_ms_parse(const char *name, const char *text, int64_t *timeout_us) {
  const char *p = text;
  int64_t ms = 0;
  bool digits = false;
  for (; *p >= '0' && *p <= '9'; p++, digits = true) {
    if (ms > INFER_MAX_TIMEOUT_US / 1000) continue; /* already too large: keep reading digits only */
    ms = ms * 10 + (*p - '0');
  }
  if (!digits || *p != '\0')
    return status_make(INFERD_INVALID_ARGUMENT, "%s '%.64s' is not a whole number of milliseconds", name, text);
  if (ms > INFER_MAX_TIMEOUT_US / 1000)
    return status_make(INFERD_INVALID_ARGUMENT, "%s '%.64s' is more than the maximum of %lld milliseconds (one day)", name,
                       text, (long long)(INFER_MAX_TIMEOUT_US / 1000));
  *timeout_us = ms * 1000;
  return status_ok();
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
  principal_unref(req->principal);
  free(req->trace);
  free(req);
}

static inferd_status check_input(const model_version *mv, const tensor *t) {
  const tensor_spec *spec = model_version_find_input(mv, t->name);
  if (spec == NULL && mv->n_inputs == 0)
    return status_make(INFERD_INVALID_ARGUMENT, "unknown input '%s': model '%s' takes no inputs", t->name, mv->model->name);
  if (spec == NULL) {
    char names[256];
    sbuf nb;
    sbuf_init(&nb, names, sizeof names);
    for (size_t i = 0; i < mv->n_inputs; i++) sbuf_appendf(&nb, "%s'%s'", i ? ", " : "", mv->inputs[i].name);
    return status_make(INFERD_INVALID_ARGUMENT, "unknown input '%s' for model '%s' (inputs: %s)", t->name,
                       mv->model->name, names);
  }
  if (spec->datatype != t->datatype)
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has datatype %s, the model expects %s", t->name,
                       datatype_name(t->datatype), datatype_name(spec->datatype));
  bool ok = spec->ndim == t->ndim;
  for (int d = 0; ok && d < t->ndim; d++)
    if (spec->dims[d] != -1 && spec->dims[d] != t->shape[d]) ok = false;
  if (!ok) {
    char a[96], b[96];
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has shape %s, the model expects %s (-1: any size)",
                       t->name, shape_str(t->shape, t->ndim, a, sizeof a), shape_str(spec->dims, spec->ndim, b, sizeof b));
  }
  /* Zero-row (and any zero-element) requests are refused the same way on every route: there
   * is nothing to run, and models differ in what they make of an empty tensor (some fail). */
  if (tensor_element_count(t) == 0) {
    char a[96];
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has shape %s, which holds no elements: send at least one row",
                       t->name, shape_str(t->shape, t->ndim, a, sizeof a));
  }
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
  if (t->datatype == DT_BYTES && mv->backend && mv->backend->bytes_are_utf8) {
    size_t pos = 0, bad;
    const uint8_t *e;
    uint32_t len;
    for (int64_t i = 0; tensor_bytes_next(t, &pos, &e, &len); i++)
      if (!utf8_valid((const char *)e, len, &bad))
        return status_make(INFERD_INVALID_ARGUMENT, "input '%s' element %lld is not valid UTF-8 (byte %zu is 0x%02x); this model's BYTES inputs are text",
                           t->name, (long long)i, bad, e[bad]);
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

