#include "frontends/grpc/infer_codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

void grpcfe_infer_info_clear(grpcfe_infer_info *info) {
  free(info->id);
  memset(info, 0, sizeof *info);
}

/* Which InferTensorContents field carries a datatype's values. */
typedef enum { F_NONE, F_BOOL, F_INT, F_INT64, F_UINT, F_UINT64, F_FP32, F_FP64, F_BYTES } contents_field;

static contents_field field_for(inferd_datatype dt) {
  switch (dt) {
    case DT_BOOL: return F_BOOL;
    case DT_INT8: case DT_INT16: case DT_INT32: return F_INT;
    case DT_INT64: return F_INT64;
    case DT_UINT8: case DT_UINT16: case DT_UINT32: return F_UINT;
    case DT_UINT64: return F_UINT64;
    case DT_FP16: case DT_FP32: return F_FP32; /* FP16 as fp32_contents: an inferd leniency */
    case DT_FP64: return F_FP64;
    case DT_BYTES: return F_BYTES;
    default: return F_NONE;
  }
}

static const char *field_name(contents_field f) {
  static const char *const names[] = {"", "bool_contents", "int_contents", "int64_contents", "uint_contents",
                                      "uint64_contents", "fp32_contents", "fp64_contents", "bytes_contents"};
  return names[f];
}

static size_t field_count(const Inference__InferTensorContents *c, contents_field f) {
  switch (f) {
    case F_BOOL: return c->n_bool_contents;
    case F_INT: return c->n_int_contents;
    case F_INT64: return c->n_int64_contents;
    case F_UINT: return c->n_uint_contents;
    case F_UINT64: return c->n_uint64_contents;
    case F_FP32: return c->n_fp32_contents;
    case F_FP64: return c->n_fp64_contents;
    case F_BYTES: return c->n_bytes_contents;
    default: return 0;
  }
}

static inferd_status decode_typed(const Inference__InferTensorContents *c, tensor *t, int64_t count) {
  contents_field want = field_for(t->datatype);
  if (want == F_NONE && count > 0)
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s' is %s, which has no typed contents field: send its values in raw_input_contents",
                       t->name, datatype_name(t->datatype));
  for (contents_field f = F_BOOL; f <= F_BYTES; f++)
    if (f != want && field_count(c, f) > 0)
      return status_make(INFERD_INVALID_ARGUMENT, "input '%s' is %s: its values go in contents.%s, not contents.%s",
                         t->name, datatype_name(t->datatype), field_name(want), field_name(f));
  size_t n = field_count(c, want);
  if ((uint64_t)count != n)
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s': contents.%s has %zu values but shape needs %lld", t->name,
                       field_name(want), n, (long long)count);
  if (t->datatype == DT_BYTES) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
      if (c->bytes_contents[i].len > UINT32_MAX)
        return status_make(INFERD_INVALID_ARGUMENT, "input '%s': element %zu is longer than 4 GiB", t->name, i);
      total += 4 + c->bytes_contents[i].len;
    }
    TRY(tensor_alloc(t, total));
    uint8_t *p = t->data;
    for (size_t i = 0; i < n; i++) {
      uint32_t len = (uint32_t)c->bytes_contents[i].len;
      p[0] = (uint8_t)len, p[1] = (uint8_t)(len >> 8), p[2] = (uint8_t)(len >> 16), p[3] = (uint8_t)(len >> 24);
      if (len) memcpy(p + 4, c->bytes_contents[i].data, len);
      p += 4 + len;
    }
    return status_ok();
  }
  size_t es = datatype_size(t->datatype);
  TRY(tensor_alloc(t, n * es));
  uint8_t *p = t->data;
  for (size_t i = 0; i < n; i++, p += es) {
    switch (t->datatype) {
      case DT_BOOL: *p = c->bool_contents[i] ? 1 : 0; break;
      case DT_INT8: case DT_INT16: case DT_INT32: {
        int32_t x = c->int_contents[i];
        int32_t lo = t->datatype == DT_INT8 ? INT8_MIN : t->datatype == DT_INT16 ? INT16_MIN : INT32_MIN;
        int32_t hi = t->datatype == DT_INT8 ? INT8_MAX : t->datatype == DT_INT16 ? INT16_MAX : INT32_MAX;
        if (x < lo || x > hi)
          return status_make(INFERD_INVALID_ARGUMENT, "input '%s' element %zu: %d is out of range for %s", t->name, i,
                             (int)x, datatype_name(t->datatype));
        if (es == 1) { int8_t v = (int8_t)x; memcpy(p, &v, 1); }
        else if (es == 2) { int16_t v = (int16_t)x; memcpy(p, &v, 2); }
        else memcpy(p, &x, 4);
        break;
      }
      case DT_UINT8: case DT_UINT16: case DT_UINT32: {
        uint32_t x = c->uint_contents[i];
        uint32_t hi = t->datatype == DT_UINT8 ? UINT8_MAX : t->datatype == DT_UINT16 ? UINT16_MAX : UINT32_MAX;
        if (x > hi)
          return status_make(INFERD_INVALID_ARGUMENT, "input '%s' element %zu: %u is out of range for %s", t->name, i,
                             (unsigned)x, datatype_name(t->datatype));
        if (es == 1) { uint8_t v = (uint8_t)x; memcpy(p, &v, 1); }
        else if (es == 2) { uint16_t v = (uint16_t)x; memcpy(p, &v, 2); }
        else memcpy(p, &x, 4);
        break;
      }
      case DT_INT64: memcpy(p, &c->int64_contents[i], 8); break;
      case DT_UINT64: memcpy(p, &c->uint64_contents[i], 8); break;
      case DT_FP32: memcpy(p, &c->fp32_contents[i], 4); break;
      case DT_FP64: memcpy(p, &c->fp64_contents[i], 8); break;
      case DT_FP16: {
        float f = c->fp32_contents[i];
        /* 65520 and beyond round to infinity in half precision; below, to at most 65504 */
        if (isfinite(f) && fabsf(f) >= 65520.0f)
          return status_make(INFERD_INVALID_ARGUMENT, "input '%s' element %zu: %g is out of range for FP16", t->name, i,
                             (double)f);
        uint16_t h = float_to_half(f);
        memcpy(p, &h, 2);
        break;
      }
      default: return status_make(INFERD_INTERNAL, "input '%s': unhandled datatype", t->name);
    }
  }
  return status_ok();
}

static inferd_status decode_raw(ProtobufCBinaryData *raw, tensor *t, int64_t count) {
  if (t->datatype == DT_BYTES) {
    /* the tensor takes the buffer protobuf-c allocated for it: no copy */
    t->data = raw->data;
    t->byte_size = raw->len;
    raw->data = NULL;
    raw->len = 0;
    if (t->data == NULL) TRY(tensor_alloc(t, 0));
    inferd_status st = tensor_bytes_check(t, count);
    if (!status_is_ok(&st))
      return status_make(INFERD_INVALID_ARGUMENT, "raw_input_contents of input '%s': %s (each BYTES element is a 4-byte little-endian length and then its bytes)",
                         t->name, st.msg);
    return st;
  }
  size_t need = (size_t)count * datatype_size(t->datatype);
  if (raw->len != need)
    return status_make(INFERD_INVALID_ARGUMENT, "raw_input_contents of input '%s' has %zu bytes but shape and datatype need %zu",
                       t->name, raw->len, need);
  t->data = raw->data;
  t->byte_size = raw->len;
  raw->data = NULL;
  raw->len = 0;
  if (t->data == NULL) TRY(tensor_alloc(t, 0));
  if (t->datatype == DT_BOOL)
    for (size_t i = 0; i < t->byte_size; i++)
      if (t->data[i] > 1)
        return status_make(INFERD_INVALID_ARGUMENT, "input '%s': BOOL element %zu is %u, not 0 or 1", t->name, i, t->data[i]);
  return status_ok();
}

static bool contents_empty(const Inference__InferTensorContents *c) {
  if (c == NULL) return true;
  for (contents_field f = F_BOOL; f <= F_BYTES; f++)
    if (field_count(c, f)) return false;
  return true;
}

/* The scheduling parameters the REST API takes too; others are not ours to refuse. Integers
 * come as int64_param or uint64_param (tritonclient sends priority as uint64_param). */
static inferd_status parameter_integer(const char *key, const Inference__InferParameter *v, uint64_t max,
                                       const char *meaning, int64_t *out) {
  bool is_int = v && v->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
  bool is_uint = v && v->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM;
  if (!is_int && !is_uint)
    return status_make(INFERD_INVALID_ARGUMENT, "parameter '%s' must be an int64_param or uint64_param: %s", key, meaning);
  if (is_int ? v->int64_param < 0 || (uint64_t)v->int64_param > max : v->uint64_param > max) {
    char val[32];
    if (is_int)
      snprintf(val, sizeof val, "%lld", (long long)v->int64_param);
    else
      snprintf(val, sizeof val, "%llu", (unsigned long long)v->uint64_param);
    return status_make(INFERD_INVALID_ARGUMENT, "parameter '%s' is %s, out of range: %s", key, val, meaning);
  }
  *out = is_int ? v->int64_param : (int64_t)v->uint64_param;
  return status_ok();
}

static inferd_status decode_parameters(const Inference__ModelInferRequest *msg, grpcfe_infer_info *info) {
  for (size_t i = 0; i < msg->n_parameters; i++) {
    const Inference__ModelInferRequest__ParametersEntry *e = msg->parameters[i];
    size_t bad;
    if (e->key && !utf8_valid(e->key, strlen(e->key), &bad)) /* proto3 map keys are strings */
      return status_make(INFERD_INVALID_ARGUMENT, "a parameter name is not valid UTF-8 (byte %zu is 0x%02x): proto3 strings must be UTF-8",
                         bad, (unsigned char)e->key[bad]);
    int64_t x;
    if (e->key && strcmp(e->key, "timeout") == 0) {
      /* up to INT64_MAX here; the deadline rule then refuses more than its maximum */
      TRY(parameter_integer("timeout", e->value, INT64_MAX, "microseconds, 0 or more", &x));
      info->timeout_us = x;
    } else if (e->key && strcmp(e->key, "priority") == 0) {
      TRY(parameter_integer("priority", e->value, 1000000, "1 (highest) to 1000000; 0 for the model's default", &x));
      info->priority = (int)x;
    }
  }
  return status_ok();
}

inferd_status grpcfe_decode_infer_request(Inference__ModelInferRequest *msg, infer_request *req,
                                        grpcfe_infer_info *info) {
  memset(info, 0, sizeof *info);
  size_t bad;
  /* the id is echoed in the response's proto3 string field, which strict clients refuse to
   * decode unless it is UTF-8 */
  if (msg->id && !utf8_valid(msg->id, strlen(msg->id), &bad))
    return status_make(INFERD_INVALID_ARGUMENT, "id is not valid UTF-8 (byte %zu is 0x%02x): proto3 strings must be UTF-8",
                       bad, (unsigned char)msg->id[bad]);
  if (msg->id && *msg->id && (info->id = strdup(msg->id)) == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  TRY(decode_parameters(msg, info));
  bool raw = msg->n_raw_input_contents > 0;
  info->raw_output = raw;
  if (raw && msg->n_raw_input_contents != msg->n_inputs)
    return status_make(INFERD_INVALID_ARGUMENT, "raw_input_contents has %zu entries but the request has %zu inputs: give one per input, in order",
                       msg->n_raw_input_contents, msg->n_inputs);
  /* no inputs is right for a model that takes none; the signature check names what is missing */
  req->inputs = calloc(msg->n_inputs + 1, sizeof(tensor));
  if (req->inputs == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < msg->n_inputs; i++) {
    const Inference__ModelInferRequest__InferInputTensor *in = msg->inputs[i];
    tensor *t = &req->inputs[i];
    req->n_inputs = i + 1;
    const char *name = in->name ? in->name : "";
    if (*name == '\0') return status_make(INFERD_INVALID_ARGUMENT, "inputs[%zu] has no name", i);
    inferd_datatype dt = datatype_from_name(in->datatype ? in->datatype : "");
    if (dt == DT_INVALID)
      return status_make(INFERD_INVALID_ARGUMENT, "input '%s': unknown datatype '%s' (one of BOOL, UINT8..UINT64, INT8..INT64, FP16, BF16, FP32, FP64, BYTES)",
                         name, in->datatype ? in->datatype : "");
    if (in->n_shape > TENSOR_MAX_DIMS)
      return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has %zu dimensions, at most %d are supported", name, in->n_shape,
                         TENSOR_MAX_DIMS);
    int64_t count;
    inferd_status st = tensor_shape_count(in->shape, (int)in->n_shape, &count);
    if (!status_is_ok(&st)) return status_make(INFERD_INVALID_ARGUMENT, "input '%s': %s", name, st.msg);
    TRY(tensor_init(t, name, dt, in->shape, (int)in->n_shape));
    if (raw) {
      if (!contents_empty(in->contents))
        return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has contents but the request uses raw_input_contents: use one or the other for all inputs",
                           name);
      TRY(decode_raw(&msg->raw_input_contents[i], t, count));
    } else {
      if (in->contents == NULL && count > 0)
        return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has no contents (and the request has no raw_input_contents)", name);
      static const Inference__InferTensorContents empty = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
      TRY(decode_typed(in->contents ? in->contents : &empty, t, count));
    }
  }
  if (msg->n_outputs) {
    req->output_names = calloc(msg->n_outputs + 1, sizeof(char *));
    if (req->output_names == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    for (size_t i = 0; i < msg->n_outputs; i++) {
      const char *name = msg->outputs[i]->name ? msg->outputs[i]->name : "";
      if (*name == '\0') return status_make(INFERD_INVALID_ARGUMENT, "outputs[%zu] has no name", i);
      if ((req->output_names[i] = strdup(name)) == NULL) return status_make(INFERD_INTERNAL, "out of memory");
      req->n_outputs = i + 1;
    }
  }
  return status_ok();
}

/* ---------------------------------------------------------------------------------------- */

static void *scratch_alloc(grpcfe_infer_response *r, size_t n) { return arena_alloc(&r->scratch, n); }

void grpcfe_infer_response_clear(grpcfe_infer_response *r) {
  arena_free(&r->scratch);
  free(r->outs);
  free(r->out_ptrs);
  free(r->contents);
  free(r->raw);
  memset(r, 0, sizeof *r);
}

static inferd_status encode_typed(grpcfe_infer_response *r, const tensor *t, Inference__InferTensorContents *c) {
  int64_t count = tensor_element_count(t);
  size_t n = (size_t)count;
  const uint8_t *p = t->data;
  switch (t->datatype) {
    case DT_BOOL: {
      protobuf_c_boolean *v = scratch_alloc(r, n * sizeof *v);
      if (v == NULL) break;
      for (size_t i = 0; i < n; i++) v[i] = p[i] != 0;
      c->bool_contents = v, c->n_bool_contents = n;
      return status_ok();
    }
    case DT_INT8: case DT_INT16: case DT_INT32: {
      int32_t *v = scratch_alloc(r, n * sizeof *v);
      if (v == NULL) break;
      for (size_t i = 0; i < n; i++) {
        if (t->datatype == DT_INT8) { int8_t x; memcpy(&x, p + i, 1); v[i] = x; }
        else if (t->datatype == DT_INT16) { int16_t x; memcpy(&x, p + 2 * i, 2); v[i] = x; }
        else memcpy(&v[i], p + 4 * i, 4);
      }
      c->int_contents = v, c->n_int_contents = n;
      return status_ok();
    }
    case DT_UINT8: case DT_UINT16: case DT_UINT32: {
      uint32_t *v = scratch_alloc(r, n * sizeof *v);
      if (v == NULL) break;
      for (size_t i = 0; i < n; i++) {
        if (t->datatype == DT_UINT8) v[i] = p[i];
        else if (t->datatype == DT_UINT16) { uint16_t x; memcpy(&x, p + 2 * i, 2); v[i] = x; }
        else memcpy(&v[i], p + 4 * i, 4);
      }
      c->uint_contents = v, c->n_uint_contents = n;
      return status_ok();
    }
    /* 8- and 4-byte elements are already what protobuf-c reads (little-endian host, malloc'd
     * so aligned): point at the tensor itself */
    case DT_INT64: c->int64_contents = (int64_t *)(void *)t->data, c->n_int64_contents = n; return status_ok();
    case DT_UINT64: c->uint64_contents = (uint64_t *)(void *)t->data, c->n_uint64_contents = n; return status_ok();
    case DT_FP32: c->fp32_contents = (float *)(void *)t->data, c->n_fp32_contents = n; return status_ok();
    case DT_FP64: c->fp64_contents = (double *)(void *)t->data, c->n_fp64_contents = n; return status_ok();
    case DT_BYTES: {
      ProtobufCBinaryData *v = scratch_alloc(r, n * sizeof *v);
      if (v == NULL) break;
      size_t pos = 0;
      for (size_t i = 0; i < n; i++) {
        const uint8_t *e;
        uint32_t len;
        if (!tensor_bytes_next(t, &pos, &e, &len))
          return status_make(INFERD_INTERNAL, "output '%s' has fewer BYTES elements than its shape", t->name);
        v[i].data = (uint8_t *)e;
        v[i].len = len;
      }
      c->bytes_contents = v, c->n_bytes_contents = n;
      return status_ok();
    }
    default: return status_make(INFERD_INTERNAL, "output '%s' has datatype %s, which has no typed contents", t->name,
                                datatype_name(t->datatype));
  }
  return status_make(INFERD_INTERNAL, "out of memory");
}

inferd_status grpcfe_build_infer_response(const infer_request *req, const grpcfe_infer_info *info,
                                        grpcfe_infer_response *r) {
  memset(r, 0, sizeof *r);
  inference__model_infer_response__init(&r->msg);
  size_t n = req->n_outputs;
  /* FP16 and BF16 have no typed field in the protocol: a response with one goes raw as a whole */
  bool raw = info->raw_output;
  for (size_t i = 0; i < n && !raw; i++) raw = req->outputs[i].datatype == DT_FP16 || req->outputs[i].datatype == DT_BF16;
  r->outs = calloc(n + 1, sizeof *r->outs);
  r->out_ptrs = calloc(n + 1, sizeof *r->out_ptrs);
  if (raw)
    r->raw = calloc(n + 1, sizeof *r->raw);
  else
    r->contents = calloc(n + 1, sizeof *r->contents);
  if (r->outs == NULL || r->out_ptrs == NULL || (raw ? (void *)r->raw : (void *)r->contents) == NULL) {
    grpcfe_infer_response_clear(r);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  const model_version *mv = req->mv;
  r->msg.model_name = mv->model->name;
  r->msg.model_version = (char *)mv->version_str;
  r->msg.id = info->id ? info->id : (char *)"";
  for (size_t i = 0; i < n; i++) {
    const tensor *t = &req->outputs[i];
    Inference__ModelInferResponse__InferOutputTensor *o = &r->outs[i];
    inference__model_infer_response__infer_output_tensor__init(o);
    o->name = t->name;
    o->datatype = (char *)datatype_name(t->datatype);
    o->shape = (int64_t *)t->shape;
    o->n_shape = (size_t)t->ndim;
    if (raw) {
      r->raw[i].data = t->data;
      r->raw[i].len = t->byte_size;
    } else {
      inference__infer_tensor_contents__init(&r->contents[i]);
      inferd_status st = encode_typed(r, t, &r->contents[i]);
      if (!status_is_ok(&st)) {
        grpcfe_infer_response_clear(r);
        return st;
      }
      o->contents = &r->contents[i];
    }
    r->out_ptrs[i] = o;
  }
  r->msg.outputs = r->out_ptrs;
  r->msg.n_outputs = n;
  if (raw) {
    r->msg.raw_output_contents = r->raw;
    r->msg.n_raw_output_contents = n;
  }
  return status_ok();
}
