/* Warmup runs: inputs made for the version's signature (or read from the model folder's
 * sample request), run straight on the backend before the version serves. */
#include "core/warmup.h"

#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "core/infer.h"

/* A per-version xorshift state: random data, but the same from run to run of a server. */
static uint64_t next_random(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void store_number(tensor *t, size_t i, double x) {
  uint8_t *p = t->data + i * datatype_size(t->datatype);
  switch (t->datatype) {
    case DT_BOOL: *(uint8_t *)p = x != 0; break;
    case DT_UINT8: *(uint8_t *)p = (uint8_t)x; break;
    case DT_UINT16: { uint16_t v = (uint16_t)x; memcpy(p, &v, 2); break; }
    case DT_UINT32: { uint32_t v = (uint32_t)x; memcpy(p, &v, 4); break; }
    case DT_UINT64: { uint64_t v = (uint64_t)x; memcpy(p, &v, 8); break; }
    case DT_INT8: *(int8_t *)p = (int8_t)x; break;
    case DT_INT16: { int16_t v = (int16_t)x; memcpy(p, &v, 2); break; }
    case DT_INT32: { int32_t v = (int32_t)x; memcpy(p, &v, 4); break; }
    case DT_INT64: { int64_t v = (int64_t)x; memcpy(p, &v, 8); break; }
    case DT_FP16: { uint16_t v = float_to_half((float)x); memcpy(p, &v, 2); break; }
    case DT_FP32: { float v = (float)x; memcpy(p, &v, 4); break; }
    case DT_FP64: memcpy(p, &x, 8); break;
    default: break;
  }
}

/* The range every datatype can hold, so a stored number never overflows its type. */
static bool fits(inferd_datatype dt, double x) {
  switch (dt) {
    case DT_BOOL: return x == 0 || x == 1;
    case DT_UINT8: return x >= 0 && x <= 255 && x == (double)(int64_t)x;
    case DT_UINT16: return x >= 0 && x <= 65535 && x == (double)(int64_t)x;
    case DT_UINT32: return x >= 0 && x <= 4294967295.0 && x == (double)(int64_t)x;
    case DT_UINT64: return x >= 0 && x < 18446744073709551616.0 && x == (double)(uint64_t)x;
    case DT_INT8: return x >= -128 && x <= 127 && x == (double)(int64_t)x;
    case DT_INT16: return x >= -32768 && x <= 32767 && x == (double)(int64_t)x;
    case DT_INT32: return x >= -2147483648.0 && x <= 2147483647.0 && x == (double)(int64_t)x;
    case DT_INT64: return x >= -9223372036854775808.0 && x < 9223372036854775808.0 && x == (double)(int64_t)x;
    default: return true;
  }
}

static void flatten(json_t *v, json_t *out) {
  if (json_is_array(v)) {
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) flatten(e, out);
  } else {
    json_array_append(out, v);
  }
}

inferd_status warmup_fill_from_json(tensor *t, json_t *data) {
  int64_t count;
  TRY(tensor_shape_count(t->shape, t->ndim, &count));
  json_t *flat = json_array();
  if (flat == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  flatten(data, flat);
  inferd_status st = status_ok();
  if ((int64_t)json_array_size(flat) != count) {
    st = status_make(INFERD_INVALID_ARGUMENT, "input '%s' has %zu values for a shape of %lld elements", t->name,
                     json_array_size(flat), (long long)count);
  } else if (t->datatype == DT_BYTES) {
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(flat); i++) {
      json_t *e = json_array_get(flat, i);
      if (!json_is_string(e)) {
        st = status_make(INFERD_INVALID_ARGUMENT, "input '%s' data[%zu] must be a string", t->name, i);
        break;
      }
      n += 4 + json_string_length(e);
    }
    if (status_is_ok(&st)) st = tensor_alloc(t, n);
    for (size_t i = 0, off = 0; status_is_ok(&st) && i < json_array_size(flat); i++) {
      json_t *e = json_array_get(flat, i);
      uint32_t len = (uint32_t)json_string_length(e);
      memcpy(t->data + off, &len, 4);
      memcpy(t->data + off + 4, json_string_value(e), len);
      off += 4 + len;
    }
  } else {
    st = tensor_alloc(t, (size_t)count * datatype_size(t->datatype));
    for (size_t i = 0; status_is_ok(&st) && i < (size_t)count; i++) {
      json_t *e = json_array_get(flat, i);
      double x;
      if (json_is_boolean(e))
        x = json_is_true(e);
      else if (json_is_number(e))
        x = json_number_value(e);
      else {
        st = status_make(INFERD_INVALID_ARGUMENT, "input '%s' data[%zu] must be a number", t->name, i);
        break;
      }
      if (!fits(t->datatype, x)) {
        st = status_make(INFERD_INVALID_ARGUMENT, "input '%s' data[%zu] (%g) does not fit %s", t->name, i, x,
                         datatype_name(t->datatype));
        break;
      }
      store_number(t, i, x);
    }
  }
  json_decref(flat);
  return st;
}

/* Zeros or random data of a spec's shape, a variable dimension taken as 1. */
static inferd_status make_input(const tensor_spec *spec, bool random, uint64_t *seed, tensor *t) {
  int64_t shape[TENSOR_MAX_DIMS];
  for (int d = 0; d < spec->ndim; d++) shape[d] = spec->dims[d] < 0 ? 1 : spec->dims[d];
  TRY(tensor_init(t, spec->name, spec->datatype, shape, spec->ndim));
  int64_t count;
  TRY(tensor_shape_count(shape, spec->ndim, &count));
  if (spec->datatype == DT_BYTES) /* every element empty: a zero length each */
    return tensor_alloc(t, (size_t)count * 4);
  TRY(tensor_alloc(t, (size_t)count * datatype_size(spec->datatype)));
  if (!random) return status_ok();
  for (int64_t i = 0; i < count; i++) {
    uint64_t r = next_random(seed);
    double x = datatype_is_float(spec->datatype) ? (double)(r >> 11) / 9007199254740992.0 : (double)(r % 2);
    store_number(t, (size_t)i, x);
  }
  return status_ok();
}

/* The inputs of a V2 JSON request in the model's folder. */
static inferd_status inputs_from_file(const model_version *mv, tensor **out, size_t *n_out) {
  char dir[4096], path[4400];
  snprintf(dir, sizeof dir, "%s", mv->path);
  char *version_dir = dirname(dir); /* <model>/<version>; the file sits in <model>/ */
  char model_dir[4096];
  snprintf(model_dir, sizeof model_dir, "%s", version_dir);
  snprintf(path, sizeof path, "%s/%s", dirname(model_dir), mv->model->config->warmup.file);
  json_error_t err;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
  if (root == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "warmup.file '%s': line %d: %s", mv->model->config->warmup.file, err.line,
                       err.text);
  json_t *inputs = json_object_get(root, "inputs");
  inferd_status st = status_ok();
  size_t n = json_array_size(inputs);
  tensor *ts = calloc(n + 1, sizeof *ts);
  if (!json_is_array(inputs))
    st = status_make(INFERD_INVALID_ARGUMENT, "warmup.file '%s' must be a V2 request: {\"inputs\": [...]}",
                     mv->model->config->warmup.file);
  else if (ts == NULL)
    st = status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; status_is_ok(&st) && i < n; i++) {
    json_t *in = json_array_get(inputs, i), *shape = json_object_get(in, "shape");
    const char *name = json_string_value(json_object_get(in, "name"));
    inferd_datatype dt = datatype_from_name(json_string_value(json_object_get(in, "datatype")) ?: "");
    int64_t dims[TENSOR_MAX_DIMS];
    size_t nd = json_array_size(shape);
    if (name == NULL || dt == DT_INVALID || !json_is_array(shape) || nd > TENSOR_MAX_DIMS) {
      st = status_make(INFERD_INVALID_ARGUMENT, "warmup.file: inputs[%zu] needs a name, a V2 datatype and a shape", i);
      break;
    }
    for (size_t d = 0; d < nd; d++) dims[d] = json_integer_value(json_array_get(shape, d));
    st = tensor_init(&ts[i], name, dt, dims, (int)nd);
    if (status_is_ok(&st)) st = warmup_fill_from_json(&ts[i], json_object_get(in, "data"));
    if (!status_is_ok(&st)) {
      char msg[sizeof st.msg];
      snprintf(msg, sizeof msg, "%s", st.msg);
      st = status_make(INFERD_INVALID_ARGUMENT, "warmup.file: %s", msg);
    }
  }
  json_decref(root);
  if (!status_is_ok(&st)) {
    tensors_free(ts, n);
    return st;
  }
  *out = ts;
  *n_out = n;
  return st;
}

inferd_status warmup_run(model_version *mv) {
  const warmup_config *w = &mv->model->config->warmup;
  uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)mv->version;
  for (int run = 0; run < w->runs; run++) {
    infer_request *req = infer_request_create(mv);
    if (req == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    inferd_status st = status_ok();
    if (w->data == WARMUP_FILE) {
      st = inputs_from_file(mv, &req->inputs, &req->n_inputs);
    } else {
      req->inputs = calloc(mv->n_inputs + 1, sizeof *req->inputs);
      if (req->inputs == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
      for (size_t i = 0; status_is_ok(&st) && i < mv->n_inputs; i++) {
        req->n_inputs = i + 1;
        st = make_input(&mv->inputs[i], w->data == WARMUP_RANDOM, &seed, &req->inputs[i]);
      }
    }
    if (status_is_ok(&st)) st = infer_request_validate(req);
    if (status_is_ok(&st)) {
      infer_request *one = req;
      batch_execute(&one, 1);
      st = req->status;
    }
    infer_request_destroy(req);
    if (!status_is_ok(&st)) {
      char msg[sizeof st.msg];
      snprintf(msg, sizeof msg, "%s", st.msg);
      return status_make(INFERD_INVALID_ARGUMENT, "warmup run %d of %d failed: %s", run + 1, w->runs, msg);
    }
  }
  return status_ok();
}
