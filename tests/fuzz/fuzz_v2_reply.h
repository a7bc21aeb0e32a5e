/* The V2 harnesses' second half: a validated request answered with outputs of zeros (empty
 * strings for BYTES), as the backend would fill them, and encoded by v2_encode_response under
 * the request's own choices (which outputs, binary_data per output or for all, its id). The
 * reply's JSON part must parse, list every output, echo the id, and its binary_data_size
 * parameters must add up to the bytes after the JSON part. */
#ifndef INFERD_FUZZ_V2_REPLY_H
#define INFERD_FUZZ_V2_REPLY_H

#include <event2/buffer.h>
#include <jansson.h>

#include "frontends/http/v2_codec.h"
#include "fuzz_model.h"

static inline void fuzz_v2_reply(infer_request *req, const v2_request_info *info) {
  if (req->rows > 64) return; /* enough to exercise the encoder; keeps the harness fast */
  req->outputs = calloc(req->n_outputs + 1, sizeof(tensor));
  for (size_t k = 0; k < req->n_outputs; k++) {
    const tensor_spec *spec = model_version_find_output(req->mv, req->output_names[k]);
    if (spec == NULL) abort(); /* validation accepted an unknown output */
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < spec->ndim; d++)
      shape[d] = spec->dims[d] >= 0 ? spec->dims[d] : (d == 0 && req->mv->model->config->max_batch_size > 0 ? req->rows : 1);
    tensor *t = &req->outputs[k];
    inferd_status st = tensor_init(t, spec->name, spec->datatype, shape, spec->ndim);
    int64_t count = 0;
    if (status_is_ok(&st)) st = tensor_shape_count(shape, spec->ndim, &count);
    if (status_is_ok(&st))
      st = tensor_alloc(t, (size_t)count * (spec->datatype == DT_BYTES ? 4 : datatype_size(spec->datatype)));
    if (!status_is_ok(&st)) abort();
  }
  struct evbuffer *out = evbuffer_new();
  size_t header_len = 0;
  inferd_status st = v2_encode_response(req, info, out, &header_len);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "v2_encode_response: %s\n", st.msg);
    abort();
  }
  size_t total = evbuffer_get_length(out);
  const char *body = (const char *)evbuffer_pullup(out, -1);
  size_t json_len = header_len ? header_len : total;
  json_error_t err;
  json_t *doc = json_loadb(body, json_len, 0, &err);
  json_t *outs = json_object_get(doc, "outputs");
  if (!json_is_array(outs) || json_array_size(outs) != req->n_outputs) {
    fprintf(stderr, "reply JSON: %s: %.*s\n", doc ? "outputs" : err.text, (int)(json_len < 500 ? json_len : 500), body);
    abort();
  }
  json_t *id = json_object_get(doc, "id");
  if (info->id ? !(json_is_string(id) && strcmp(json_string_value(id), info->id) == 0) : id != NULL) abort();
  size_t binary = 0;
  for (size_t k = 0; k < req->n_outputs; k++) {
    json_t *size = json_object_get(json_object_get(json_array_get(outs, k), "parameters"), "binary_data_size");
    if (size) binary += (size_t)json_integer_value(size);
  }
  if (binary != total - json_len) {
    fprintf(stderr, "binary_data_size adds up to %zu, %zu bytes follow the JSON\n", binary, total - json_len);
    abort();
  }
  json_decref(doc);
  evbuffer_free(out);
}

#endif
