#include "core/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool batch_compatible(const infer_request *a, const infer_request *b) {
  if (a->mv != b->mv || a->n_inputs != b->n_inputs) return false;
  for (size_t i = 0; i < a->n_inputs; i++) {
    const tensor *x = &a->inputs[i];
    const tensor *y = NULL;
    for (size_t j = 0; j < b->n_inputs && !y; j++)
      if (strcmp(b->inputs[j].name, x->name) == 0) y = &b->inputs[j];
    if (y == NULL || y->ndim != x->ndim || y->ndim == 0) return false;
    for (int d = 1; d < x->ndim; d++)
      if (x->shape[d] != y->shape[d]) return false;
  }
  return true;
}

static void fail_all(infer_request **reqs, size_t n, inferd_status st) {
  for (size_t i = 0; i < n; i++) reqs[i]->status = st;
}

/* Elements per row of a tensor whose first dimension is the batch. */
static int64_t row_elements(const tensor *t) {
  int64_t e = 1;
  for (int d = 1; d < t->ndim; d++) e *= t->shape[d];
  return e;
}

/* Concatenates input `name` of every request along dimension 0 into dst. */
static inferd_status gather_input(infer_request **reqs, size_t n, const char *name, tensor *dst) {
  size_t total = 0;
  int64_t rows = 0;
  const tensor *first = NULL;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < reqs[i]->n_inputs; j++)
      if (strcmp(reqs[i]->inputs[j].name, name) == 0) {
        const tensor *t = &reqs[i]->inputs[j];
        if (!first) first = t;
        total += t->byte_size;
        rows += t->shape[0];
      }
  if (first == NULL) return status_make(INFERD_INTERNAL, "input '%s' is in no request of the batch", name);
  TRY(tensor_init(dst, name, first->datatype, first->shape, first->ndim));
  dst->shape[0] = rows;
  TRY(tensor_alloc(dst, total));
  size_t off = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < reqs[i]->n_inputs; j++)
      if (strcmp(reqs[i]->inputs[j].name, name) == 0) {
        /* BYTES data is length-prefixed elements: concatenation is the batch's layout too */
        /* bounded: the same tensors' byte_size summed to total above */
        memcpy(dst->data + off, reqs[i]->inputs[j].data, reqs[i]->inputs[j].byte_size);
        off += reqs[i]->inputs[j].byte_size;
      }
  return status_ok();
}

/* Byte offset of row `row` in t (BYTES: walks the elements). */
static size_t row_offset(const tensor *t, int64_t row) {
  if (t->datatype != DT_BYTES) return (size_t)(row * row_elements(t)) * datatype_size(t->datatype);
  size_t pos = 0;
  const uint8_t *e;
  uint32_t len;
  for (int64_t k = 0, skip = row * row_elements(t); k < skip && tensor_bytes_next(t, &pos, &e, &len); k++) {
  }
  return pos;
}

/* Copies rows [first, first+rows) of src into dst. */
static inferd_status slice_rows(const tensor *src, int64_t first, int64_t rows, tensor *dst) {
  TRY(tensor_init(dst, src->name, src->datatype, src->shape, src->ndim));
  dst->shape[0] = rows;
  dst->bytes_are_json = src->bytes_are_json;
  size_t from = row_offset(src, first), to = row_offset(src, first + rows);
  TRY(tensor_alloc(dst, to - from));
  if (to > from) memcpy(dst->data, src->data + from, to - from);
  return status_ok();
}

static bool wants(const infer_request *r, const char *name) {
  for (size_t i = 0; i < r->n_outputs; i++)
    if (strcmp(r->output_names[i], name) == 0) return true;
  return false;
}

/* One request: its own inputs and outputs, nothing copied. */
static void execute_one(infer_request *req) {
  model_version *mv = req->mv;
  req->outputs = calloc(req->n_outputs + 1, sizeof(tensor));
  if (req->outputs == NULL) {
    req->status = status_make(INFERD_INTERNAL, "out of memory");
    return;
  }
  int64_t t0 = monotonic_ns();
  req->status = mv->backend->run(mv->backend_model, req->inputs, req->n_inputs,
                                 (const char *const *)req->output_names, req->n_outputs, req->outputs);
  req->compute_infer_ns = monotonic_ns() - t0;
  req->batch_size = req->rows;
  if (!status_is_ok(&req->status)) {
    free(req->outputs);
    req->outputs = NULL;
  }
}

void batch_execute(infer_request **reqs, size_t n) {
  if (n == 1) {
    execute_one(reqs[0]);
    return;
  }
  model_version *mv = reqs[0]->mv;
  int64_t t0 = monotonic_ns();
  int64_t rows = 0;
  for (size_t i = 0; i < n; i++) rows += reqs[i]->rows;

  /* the union of the outputs the requests asked for, in the model's order */
  const char **names = calloc(mv->n_outputs + 1, sizeof *names);
  tensor *inputs = calloc(reqs[0]->n_inputs + 1, sizeof *inputs);
  tensor *outputs = calloc(mv->n_outputs + 1, sizeof *outputs);
  size_t n_names = 0, n_in = 0;
  inferd_status st = names && inputs && outputs ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
  for (size_t k = 0; k < mv->n_outputs && status_is_ok(&st); k++)
    for (size_t i = 0; i < n; i++)
      if (wants(reqs[i], mv->outputs[k].name)) {
        names[n_names++] = mv->outputs[k].name;
        break;
      }
  for (size_t j = 0; j < reqs[0]->n_inputs && status_is_ok(&st); j++, n_in++)
    st = gather_input(reqs, n, reqs[0]->inputs[j].name, &inputs[j]);
  int64_t t1 = monotonic_ns();
  bool ran = false;
  if (status_is_ok(&st)) {
    st = mv->backend->run(mv->backend_model, inputs, n_in, names, n_names, outputs);
    ran = status_is_ok(&st);
  }
  int64_t t2 = monotonic_ns();
  for (size_t k = 0; k < n_names && status_is_ok(&st); k++)
    if (outputs[k].ndim == 0 || outputs[k].shape[0] != rows)
      st = status_make(INFERD_INTERNAL, "output '%s' of a batch of %lld rows does not have %lld rows along its first dimension",
                       names[k], (long long)rows, (long long)rows);
  if (status_is_ok(&st)) {
    int64_t first = 0;
    for (size_t i = 0; i < n; i++) {
      infer_request *r = reqs[i];
      r->outputs = calloc(r->n_outputs + 1, sizeof(tensor));
      r->status = r->outputs ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
      for (size_t o = 0; o < r->n_outputs && status_is_ok(&r->status); o++)
        for (size_t k = 0; k < n_names; k++)
          if (strcmp(names[k], r->output_names[o]) == 0) r->status = slice_rows(&outputs[k], first, r->rows, &r->outputs[o]);
      if (!status_is_ok(&r->status) && r->outputs) {
        tensors_free(r->outputs, r->n_outputs);
        r->outputs = NULL;
      }
      first += r->rows;
    }
  } else if (!ran && st.code == INFERD_INVALID_ARGUMENT) {
    /* The model refused the batch's values: one request's values, most likely, and only that
     * request should hear of it. Run each alone so the others get their answers. */
    tensors_free(inputs, n_in);
    free(outputs);
    free(names);
    for (size_t i = 0; i < n; i++) {
      execute_one(reqs[i]);
      reqs[i]->compute_input_ns = t1 - t0;
    }
    return;
  } else {
    fail_all(reqs, n, st);
  }
  int64_t t3 = monotonic_ns();
  for (size_t i = 0; i < n; i++) {
    reqs[i]->compute_input_ns = t1 - t0;
    reqs[i]->compute_infer_ns = t2 - t1;
    reqs[i]->compute_output_ns = t3 - t2;
    reqs[i]->batch_size = rows;
  }
  tensors_free(inputs, n_in);
  if (ran)
    tensors_free(outputs, n_names);
  else
    free(outputs);
  free(names);
}
