#include "frontends/http/v2_codec.h"

#include "app/tensor_json.h"

#include "frontends/http/json_numbers.h"
#include "util/jsonerr.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NESTING 32

void v2_request_info_clear(v2_request_info *info) {
  free(info->id);
  for (size_t i = 0; i < info->n_requested; i++) free(info->requested[i]);
  free(info->requested);
  free(info->requested_binary);
  memset(info, 0, sizeof *info);
}

static inferd_status bad(const char *fmt, const char *a, const char *b) {
  return status_make(INFERD_INVALID_ARGUMENT, fmt, a, b);
}

/* Growable byte buffer for decoding JSON data into a tensor. */
typedef struct bytes_out {
  uint8_t *p;
  size_t len, cap;
} bytes_out;

static bool bytes_put(bytes_out *b, const void *src, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n) cap *= 2;
    uint8_t *np = realloc(b->p, cap);
    if (np == NULL) return false;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
  return true;
}

/* Appends one number or boolean element as datatype dt. */
static inferd_status put_scalar(const jnum_scalar *v, inferd_datatype dt, bytes_out *out, const char *tname,
                                int64_t idx) {
  char where[64]; /* for messages; formatted only on the error paths below */
#define WHERE (snprintf(where, sizeof where, "element %lld", (long long)idx), where)
  if (dt == DT_BOOL) {
    if (v->kind != JS_TRUE && v->kind != JS_FALSE) return bad("input '%s' %s: BOOL data must be true or false", tname, WHERE);
    uint8_t x = v->kind == JS_TRUE;
    return bytes_put(out, &x, 1) ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
  }
  if (dt == DT_BYTES) return bad("input '%s' %s: BYTES data must be strings", tname, WHERE);
  if (v->kind != JS_INT && v->kind != JS_REAL) return bad("input '%s' %s: must be a number", tname, WHERE);
  uint8_t elem[8];
  tensor_number_result r = tensor_number_store(dt, v->kind == JS_INT, v->i, v->d, elem);
  if (r == TENSOR_NUMBER_NOT_WHOLE) return bad("input '%s' %s: must be an integer", tname, WHERE);
  if (r == TENSOR_NUMBER_OUT_OF_RANGE) {
    (void)WHERE;
    if (datatype_is_float(dt))
      return status_make(INFERD_INVALID_ARGUMENT, "input '%s' %s: value is out of range for %s", tname, where,
                         datatype_name(dt));
    if (v->kind == JS_INT)
      return status_make(INFERD_INVALID_ARGUMENT, "input '%s' %s: %lld is out of range for %s", tname, where, v->i,
                         datatype_name(dt));
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s' %s: %.17g is out of range for %s", tname, where, v->d,
                       datatype_name(dt));
  }
  return bytes_put(out, elem, datatype_size(dt)) ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
}
#undef WHERE

/* Appends one jansson element as datatype dt. */
static inferd_status put_element(json_t *v, inferd_datatype dt, bytes_out *out, const char *tname,
                                 int64_t idx) {
  if (dt == DT_BYTES) {
    if (!json_is_string(v)) {
      char where[64];
      snprintf(where, sizeof where, "element %lld", (long long)idx);
      return bad("input '%s' %s: BYTES data must be strings", tname, where);
    }
    size_t n = json_string_length(v);
    if (n > UINT32_MAX) return bad("input '%s' element: %s string too long", tname, "");
    uint32_t n32 = (uint32_t)n;
    uint8_t len4[4] = {(uint8_t)n32, (uint8_t)(n32 >> 8), (uint8_t)(n32 >> 16), (uint8_t)(n32 >> 24)};
    if (!bytes_put(out, len4, 4) || !bytes_put(out, json_string_value(v), n))
      return status_make(INFERD_INTERNAL, "out of memory");
    return status_ok();
  }
  jnum_scalar sc = {.kind = JS_OTHER};
  if (json_is_integer(v)) {
    sc.kind = JS_INT;
    sc.i = json_integer_value(v);
    sc.d = (double)sc.i;
  } else if (json_is_real(v)) {
    sc.kind = JS_REAL;
    sc.d = json_real_value(v);
  } else if (json_is_boolean(v)) {
    sc.kind = json_is_true(v) ? JS_TRUE : JS_FALSE;
  }
  return put_scalar(&sc, dt, out, tname, idx);
}

/* Checks that "data" is laid out one of the two ways the protocol allows: flat (every value
 * directly in the outer array) or nested exactly as the shape is (arrays down to the last
 * dimension, each as long as its dimension). Fed the array's structure as it is read, by
 * either parser. */
typedef struct nest_check {
  const tensor *t; /* its shape and name */
  int depth;       /* arrays open: 1 inside the outer one */
  enum { NEST_UNKNOWN, NEST_FLAT, NEST_SHAPED } mode;
  int64_t seen[TENSOR_MAX_DIMS + 1]; /* values or arrays so far in the array open at each depth */
} nest_check;

/* "data[0][3]": where the current element sits. */
static const char *nest_path(const nest_check *nc, char *buf, size_t len) {
  size_t off = (size_t)snprintf(buf, len, "data");
  for (int d = 1; d <= nc->depth && off < len; d++)
    off += (size_t)snprintf(buf + off, len - off, "[%lld]", (long long)(nc->seen[d] - 1));
  return buf;
}

static inferd_status nest_error(const nest_check *nc, const char *what) {
  char path[128], sh[96];
  return status_make(INFERD_INVALID_ARGUMENT, "input '%s': %s %s: data must be flat or nested exactly as shape %s",
                     nc->t->name, nest_path(nc, path, sizeof path), what, shape_str(nc->t->shape, nc->t->ndim, sh, sizeof sh));
}

static inferd_status nest_open(nest_check *nc) {
  if (nc->depth == 0) {
    nc->depth = 1;
    nc->seen[1] = 0;
    return status_ok();
  }
  nc->seen[nc->depth]++;
  if (nc->mode == NEST_UNKNOWN) nc->mode = NEST_SHAPED;
  if (nc->mode == NEST_FLAT || nc->depth >= nc->t->ndim) return nest_error(nc, "is an array nested deeper than the shape");
  if (nc->seen[nc->depth] > nc->t->shape[nc->depth - 1]) return nest_error(nc, "is one array more than its dimension");
  nc->depth++;
  nc->seen[nc->depth] = 0;
  return status_ok();
}

static inferd_status nest_leaf(nest_check *nc) {
  nc->seen[nc->depth]++;
  if (nc->mode == NEST_UNKNOWN) nc->mode = nc->depth == 1 ? NEST_FLAT : NEST_SHAPED;
  if (nc->mode == NEST_SHAPED) {
    if (nc->depth != nc->t->ndim) return nest_error(nc, "is a value where the shape needs an array");
    if (nc->seen[nc->depth] > nc->t->shape[nc->depth - 1]) return nest_error(nc, "is one value more than its dimension");
  }
  return status_ok();
}

static inferd_status nest_close(nest_check *nc) {
  if (nc->mode == NEST_SHAPED && nc->seen[nc->depth] != nc->t->shape[nc->depth - 1]) {
    char path[128], sh[96];
    nc->depth--; /* name the array itself */
    inferd_status st = status_make(INFERD_INVALID_ARGUMENT, "input '%s': %s has %lld elements but dimension %d of shape %s is %lld",
                                   nc->t->name, nc->depth ? nest_path(nc, path, sizeof path) : "data",
                                   (long long)nc->seen[nc->depth + 1], nc->depth, shape_str(nc->t->shape, nc->t->ndim, sh, sizeof sh),
                                   (long long)nc->t->shape[nc->depth]);
    return st;
  }
  nc->depth--;
  return status_ok();
}

/* State for the fast scanner's leaves. */
typedef struct fast_fill {
  inferd_datatype dt;
  bytes_out *out;
  const char *tname;
  int64_t count, limit;
  nest_check nest;
  inferd_status st;
} fast_fill;

/* The common cases without building a status: false sends the element to put_scalar, which
 * handles every case and words the error. */
static bool put_number_quick(const jnum_scalar *v, inferd_datatype dt, bytes_out *out) {
  if (out->len + 8 > out->cap) return false;
  uint8_t *dst = out->p + out->len;
  if (dt == DT_FP32 && (v->kind == JS_REAL || v->kind == JS_INT) && fabs(v->d) <= 3.4028234663852886e38) {
    float f = (float)v->d;
    memcpy(dst, &f, 4);
    out->len += 4;
    return true;
  }
  if (dt == DT_FP64 && (v->kind == JS_REAL || v->kind == JS_INT)) {
    memcpy(dst, &v->d, 8);
    out->len += 8;
    return true;
  }
  if ((dt == DT_INT64 || (dt == DT_INT32 && v->i >= INT32_MIN && v->i <= INT32_MAX)) && v->kind == JS_INT) {
    memcpy(dst, &v->i, datatype_size(dt)); /* little-endian: the low bytes */
    out->len += datatype_size(dt);
    return true;
  }
  return false;
}

static bool fast_bracket(bool open, void *ctx) {
  fast_fill *f = ctx;
  f->st = open ? nest_open(&f->nest) : nest_close(&f->nest);
  return status_is_ok(&f->st);
}

static bool fast_emit(const jnum_scalar *v, void *ctx) {
  fast_fill *f = ctx;
  if (f->nest.depth != 1 || f->nest.mode != NEST_FLAT) { /* flat data, the common case, needs no check */
    f->st = nest_leaf(&f->nest);
    if (!status_is_ok(&f->st)) return false;
  } else {
    f->nest.seen[1]++;
  }
  if (f->count < f->limit && put_number_quick(v, f->dt, f->out)) {
    f->count++;
    return true;
  }
  if (f->count >= f->limit) {
    f->st = status_make(INFERD_INVALID_ARGUMENT, "input '%s': data has more elements than its shape's %lld", f->tname,
                        (long long)f->limit);
    return false;
  }
  f->st = put_scalar(v, f->dt, f->out, f->tname, f->count);
  f->count++;
  return status_is_ok(&f->st);
}

static inferd_status flatten(json_t *v, inferd_datatype dt, bytes_out *out, const char *tname,
                             int64_t *count, int64_t limit, int depth, nest_check *nc) {
  if (json_is_array(v)) {
    if (depth > MAX_NESTING) return bad("input '%s': data is nested deeper than %s levels", tname, "32");
    TRY(nest_open(nc));
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      inferd_status st = flatten(e, dt, out, tname, count, limit, depth + 1, nc);
      if (!status_is_ok(&st)) return st;
    }
    return nest_close(nc);
  }
  if (depth == 0) return bad("input '%s': data must be an array%s", tname, "");
  TRY(nest_leaf(nc));
  if (*count >= limit) return status_make(INFERD_INVALID_ARGUMENT, "input '%s': data has more elements than its shape's %lld", tname, (long long)limit);
  inferd_status st = put_element(v, dt, out, tname, *count);
  (*count)++;
  return st;
}

static inferd_status parse_shape(json_t *shape, const char *path, tensor *t, const char *name,
                                 int64_t *count) {
  if (!json_is_array(shape)) return bad("%s.shape must be an array of integers (input '%s')", path, name);
  size_t nd = json_array_size(shape);
  if (nd > TENSOR_MAX_DIMS) return status_make(INFERD_INVALID_ARGUMENT, "input '%s' has %zu dimensions, at most %d are supported", name, nd, TENSOR_MAX_DIMS);
  int64_t dims[TENSOR_MAX_DIMS];
  for (size_t d = 0; d < nd; d++) {
    json_t *x = json_array_get(shape, d);
    if (!json_is_integer(x) || json_integer_value(x) < 0)
      return status_make(INFERD_INVALID_ARGUMENT, "%s.shape[%zu] must be a non-negative integer (input '%s')", path, d, name);
    dims[d] = json_integer_value(x);
  }
  inferd_status st = tensor_shape_count(dims, (int)nd, count);
  if (!status_is_ok(&st)) return status_make(INFERD_INVALID_ARGUMENT, "input '%s': %s", name, st.msg);
  st = tensor_init(t, name, DT_INVALID, dims, (int)nd);
  return st;
}

/* fast: this input's "data" array text when the fast scanner is to read it (the parsed
 * document then holds null there), else NULL. *declined: the scanner could not read it, and
 * the whole request must be parsed again by jansson. */
static inferd_status decode_input(json_t *in, size_t idx, size_t json_len, const char **binary,
                                  size_t *binary_left, const jnum_span *fast, const char *body,
                                  bool *declined, tensor *t) {
  char path[32];
  snprintf(path, sizeof path, "inputs[%zu]", idx);
  if (!json_is_object(in)) return bad("%s must be an object%s", path, "");
  json_t *name = json_object_get(in, "name");
  json_t *dtv = json_object_get(in, "datatype");
  if (!json_is_string(name)) return bad("%s.name must be a string%s", path, "");
  const char *nm = json_string_value(name);
  if (!json_is_string(dtv)) return bad("%s.datatype must be a string (input '%s')", path, nm);
  inferd_datatype dt = datatype_from_name(json_string_value(dtv));
  if (dt == DT_INVALID)
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s': unknown datatype '%s' (one of BOOL, UINT8..UINT64, INT8..INT64, FP16, BF16, FP32, FP64, BYTES)",
                       nm, json_string_value(dtv));
  int64_t count;
  inferd_status st = parse_shape(json_object_get(in, "shape"), path, t, nm, &count);
  if (!status_is_ok(&st)) return st;
  t->datatype = dt;

  json_t *params = json_object_get(in, "parameters");
  if (params && !json_is_object(params)) return bad("%s.parameters must be an object (input '%s')", path, nm);
  json_t *bsize = params ? json_object_get(params, "binary_data_size") : NULL;
  json_t *data = json_object_get(in, "data");
  if (bsize) {
    if (!json_is_integer(bsize) || json_integer_value(bsize) < 0)
      return bad("%s.parameters.binary_data_size must be a non-negative integer (input '%s')", path, nm);
    if (data) return bad("%s has both data and binary_data_size (input '%s')", path, nm);
    if (*binary == NULL) return bad("input '%s' has binary_data_size but the request has no Inference-Header-Content-Length%s", nm, "");
    size_t n = (size_t)json_integer_value(bsize);
    if ((unsigned long long)json_integer_value(bsize) > *binary_left)
      return status_make(INFERD_INVALID_ARGUMENT, "input '%s': binary_data_size %lld is more than the %zu bytes left in the body",
                         nm, (long long)json_integer_value(bsize), *binary_left);
    if (dt != DT_BYTES && (size_t)count * datatype_size(dt) != n)
      return status_make(INFERD_INVALID_ARGUMENT, "input '%s': binary_data_size is %zu bytes but shape and datatype need %lld",
                         nm, n, (long long)count * (long long)datatype_size(dt));
    st = tensor_alloc(t, n);
    if (!status_is_ok(&st)) return st;
    if (n) memcpy(t->data, *binary, n);
    *binary += n;
    *binary_left -= n;
    if (dt == DT_BYTES) return tensor_bytes_check(t, count);
    if (dt == DT_BOOL)
      for (size_t i = 0; i < n; i++)
        if (t->data[i] > 1) return status_make(INFERD_INVALID_ARGUMENT, "input '%s': BOOL element %zu is %u, not 0 or 1", nm, i, t->data[i]);
    return status_ok();
  }
  if (data == NULL) return bad("%s needs \"data\" or parameters.binary_data_size (input '%s')", path, nm);
  /* every JSON element takes at least a byte of the body: a larger shape cannot match, and
   * must not size an allocation */
  if ((uint64_t)count > json_len) {
    char sh[96];
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s': shape %s needs %lld elements, more than a %zu-byte JSON body can hold",
                       nm, shape_str(t->shape, t->ndim, sh, sizeof sh), (long long)count, json_len);
  }
  bytes_out out = {0};
  int64_t got = 0;
  if (dt != DT_BYTES && count > 0) {
    /* reserve up front: no regrowth for the common case */
    out.cap = (size_t)count * datatype_size(dt);
    out.p = malloc(out.cap);
    if (out.p == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  }
  if (fast && fast->end > fast->start && json_is_null(data)) {
    fast_fill f = {.dt = dt, .out = &out, .tname = nm, .limit = count, .nest = {.t = t}, .st = status_ok()};
    scan_result r = jnum_scan_nested(body + fast->start, fast->end - fast->start, MAX_NESTING + 1, fast_emit,
                                             fast_bracket, &f);
    if (r == SCAN_DECLINED) {
      /* this array alone through jansson (a BYTES input's strings, say): the other inputs keep
       * the fast path, and with it the NaN and Infinity literals jansson refuses. What jansson
       * cannot parse here goes to the whole body's parse, which words the error with the
       * body's line and column. */
      json_error_t e;
      json_t *arr = json_loadb(body + fast->start, fast->end - fast->start, JSON_DECODE_ANY, &e);
      if (arr == NULL) {
        free(out.p);
        *declined = true;
        return status_ok();
      }
      out.len = 0;
      nest_check nc = {.t = t};
      st = flatten(arr, dt, &out, nm, &got, count, 0, &nc);
      json_decref(arr);
    } else {
      st = f.st;
      got = f.count;
    }
  } else {
    nest_check nc = {.t = t};
    st = flatten(data, dt, &out, nm, &got, count, 0, &nc);
  }
  if (status_is_ok(&st) && got != count) {
    char sh[96];
    st = status_make(INFERD_INVALID_ARGUMENT, "input '%s' has %lld data elements but shape %s needs %lld", nm,
                     (long long)got, shape_str(t->shape, t->ndim, sh, sizeof sh), (long long)count);
  }
  if (!status_is_ok(&st)) {
    free(out.p);
    return st;
  }
  t->data = out.p ? out.p : calloc(1, 1);
  t->byte_size = out.len;
  return status_ok();
}

static inferd_status decode_outputs(json_t *outs, v2_request_info *info, infer_request *req) {
  if (!json_is_array(outs)) return bad("outputs must be an array%s%s", "", "");
  size_t n = json_array_size(outs);
  info->requested = calloc(n + 1, sizeof(char *));
  info->requested_binary = calloc(n + 1, sizeof(bool));
  req->output_names = calloc(n + 1, sizeof(char *));
  if (!info->requested || !info->requested_binary || !req->output_names) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < n; i++) {
    char path[32];
    snprintf(path, sizeof path, "outputs[%zu]", i);
    json_t *o = json_array_get(outs, i);
    json_t *name = json_is_object(o) ? json_object_get(o, "name") : NULL;
    if (!json_is_string(name)) return bad("%s.name must be a string%s", path, "");
    json_t *params = json_object_get(o, "parameters");
    if (params && !json_is_object(params)) return bad("%s.parameters must be an object%s", path, "");
    json_t *bin = params ? json_object_get(params, "binary_data") : NULL;
    if (bin && !json_is_boolean(bin)) return bad("%s.parameters.binary_data must be true or false%s", path, "");
    info->requested[i] = strdup(json_string_value(name));
    info->requested_binary[i] = bin ? json_is_true(bin) : info->binary_output_all;
    req->output_names[i] = strdup(json_string_value(name));
    info->n_requested = req->n_outputs = i + 1;
  }
  return status_ok();
}

#define MAX_FAST_INPUTS 64

/* Decodes a parsed request. spans (NULL: none) locate the data arrays left null in root. */
static inferd_status decode_root(json_t *root, const char *body, size_t json_len, const char *binary,
                                 size_t binary_left, const jnum_span *spans, int n_spans, bool *declined,
                                 infer_request *req, v2_request_info *info) {
  if (!json_is_object(root)) return bad("the request body must be a JSON object%s%s", "", "");
  json_t *id = json_object_get(root, "id");
  if (id) {
    if (!json_is_string(id)) return bad("id must be a string%s%s", "", "");
    info->id = strdup(json_string_value(id));
  }
  json_t *params = json_object_get(root, "parameters");
  if (params) {
    if (!json_is_object(params)) return bad("parameters must be an object%s%s", "", "");
    json_t *bo = json_object_get(params, "binary_data_output");
    if (bo && !json_is_boolean(bo)) return bad("parameters.binary_data_output must be true or false%s%s", "", "");
    info->binary_output_all = bo && json_is_true(bo);
    json_t *to = json_object_get(params, "timeout");
    if (to && (!json_is_integer(to) || json_integer_value(to) < 0))
      return bad("parameters.timeout must be a non-negative integer (microseconds)%s%s", "", "");
    info->timeout_us = to ? json_integer_value(to) : 0;
    json_t *pr = json_object_get(params, "priority");
    if (pr && (!json_is_integer(pr) || json_integer_value(pr) < 0 || json_integer_value(pr) > 1000000))
      return bad("parameters.priority must be a non-negative integer%s%s", "", "");
    info->priority = pr ? (int)json_integer_value(pr) : 0;
  }
  /* absent or empty for a model that takes no inputs; the signature check says when a model
   * needs some */
  json_t *inputs = json_object_get(root, "inputs");
  if (inputs && !json_is_array(inputs)) return bad("inputs must be an array of tensors%s%s", "", "");
  size_t n = inputs ? json_array_size(inputs) : 0;
  req->inputs = calloc(n ? n : 1, sizeof(tensor));
  if (req->inputs == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  inferd_status st = status_ok();
  for (size_t i = 0; i < n && status_is_ok(&st) && !*declined; i++) {
    req->n_inputs = i + 1;
    const jnum_span *fast = spans && (int)i < n_spans ? &spans[i] : NULL;
    st = decode_input(json_array_get(inputs, i), i, json_len, &binary, &binary_left, fast, body, declined,
                      &req->inputs[i]);
  }
  if (*declined || !status_is_ok(&st)) return st;
  if (binary_left > 0)
    return status_make(INFERD_INVALID_ARGUMENT, "the body has %zu bytes after the inputs' binary data that no input claims", binary_left);
  json_t *outs = json_object_get(root, "outputs");
  if (outs) return decode_outputs(outs, info, req);
  return status_ok();
}

/* The document with each located data array replaced by null: jansson then parses only the
 * small rest. NULL when there is nothing to replace. */
static char *skeleton_of(const char *body, size_t len, const jnum_span *spans, int n, size_t *out_len) {
  size_t cut = 0;
  int k = 0;
  for (int i = 0; i < n; i++)
    if (spans[i].end > spans[i].start) {
      cut += spans[i].end - spans[i].start;
      k++;
    }
  if (k == 0) return NULL;
  char *sk = malloc(len - cut + 4 * (size_t)k + 1);
  if (sk == NULL) return NULL;
  size_t o = 0, from = 0;
  for (int i = 0; i < n; i++) {
    if (spans[i].end <= spans[i].start) continue;
    memcpy(sk + o, body + from, spans[i].start - from);
    o += spans[i].start - from;
    memcpy(sk + o, "null", 4);
    o += 4;
    from = spans[i].end;
  }
  memcpy(sk + o, body + from, len - from);
  o += len - from;
  *out_len = o;
  return sk;
}

static void reset_request(infer_request *req, v2_request_info *info) {
  tensors_free(req->inputs, req->n_inputs);
  req->inputs = NULL;
  req->n_inputs = 0;
  for (size_t i = 0; i < req->n_outputs; i++) free(req->output_names[i]);
  free(req->output_names);
  req->output_names = NULL;
  req->n_outputs = 0;
  v2_request_info_clear(info);
}

inferd_status v2_decode_request(const char *body, size_t len, long long header_len,
                                infer_request *req, v2_request_info *info) {
  size_t json_len = len;
  const char *binary = NULL;
  size_t binary_left = 0;
  if (header_len >= 0) {
    if ((unsigned long long)header_len > len)
      return status_make(INFERD_INVALID_ARGUMENT, "Inference-Header-Content-Length is %lld but the body has only %zu bytes",
                         header_len, len);
    json_len = (size_t)header_len;
    binary = body + json_len;
    binary_left = len - json_len;
  }
  json_error_t err;
  bool declined = false;
  /* Fast path: jansson parses the document without its data arrays, which are scanned
   * straight into tensors (an array the scanner declines is parsed alone by jansson). Any
   * doubt (that fails too, the skeleton does not parse) and the whole body goes through
   * jansson, which words any error. */
  jnum_span spans[MAX_FAST_INPUTS];
  int n_spans = v2_find_data_spans(body, json_len, spans, MAX_FAST_INPUTS);
  size_t sk_len = 0;
  char *sk = n_spans > 0 ? skeleton_of(body, json_len, spans, n_spans, &sk_len) : NULL;
  if (sk) {
    json_t *root = json_loadb(sk, sk_len, JSON_REJECT_DUPLICATES, &err);
    free(sk);
    if (root) {
      inferd_status st = decode_root(root, body, json_len, binary, binary_left, spans, n_spans, &declined, req, info);
      json_decref(root);
      if (!declined) return st;
    }
    reset_request(req, info);
    declined = false;
  }
  json_t *root = json_loadb(body, json_len, JSON_REJECT_DUPLICATES, &err);
  if (root == NULL) {
    char where[JSON_ERROR_TEXT_LENGTH + 128];
    return status_make(INFERD_INVALID_ARGUMENT, "malformed JSON at %s", jsonerr_describe(&err, where, sizeof where));
  }
  inferd_status st = decode_root(root, body, json_len, binary, binary_left, NULL, 0, &declined, req, info);
  json_decref(root);
  return st;
}

/* --- encoding --- */

bool v2_append_json_string(struct evbuffer *out, const char *s, size_t len) {
  char buf[512];
  size_t o = 0;
  buf[o++] = '"';
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (o > sizeof buf - 16) { /* bounded: one step writes at most 6 bytes, the end 1 */
      evbuffer_add(out, buf, o);
      o = 0;
    }
    if (c >= 0x80) { /* copy a whole valid UTF-8 sequence */
      size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
      if (n == 0 || c > 0xf4 || i + n > len) return false;
      for (size_t k = 1; k < n; k++)
        if (((unsigned char)s[i + k] & 0xc0) != 0x80) return false;
      unsigned char c1 = (unsigned char)s[i + 1];
      if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f))
        return false;
      memcpy(buf + o, s + i, n);
      o += n;
      i += n - 1;
    } else if (c == '"' || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c < 0x20) {
      o += (size_t)snprintf(buf + o, 8, "\\u%04x", c);
    } else {
      buf[o++] = (char)c;
    }
  }
  buf[o++] = '"';
  evbuffer_add(out, buf, o);
  return true;
}

static size_t fmt_double(char *dst, double d, int precision) {
  if (isnan(d)) return (size_t)sprintf(dst, "NaN");
  if (isinf(d)) return (size_t)sprintf(dst, d > 0 ? "Infinity" : "-Infinity");
  return (size_t)sprintf(dst, "%.*g", precision, d);
}

static inferd_status append_data(struct evbuffer *out, const tensor *t) {
  char buf[4096];
  size_t o = 0;
  int64_t n = tensor_element_count(t);
  evbuffer_add(out, "[", 1);
  if (t->datatype == DT_BYTES) {
    size_t pos = 0;
    const uint8_t *e;
    uint32_t len;
    int64_t i = 0;
    while (tensor_bytes_next(t, &pos, &e, &len)) {
      if (i++) evbuffer_add(out, ",", 1);
      if (t->bytes_are_json)
        evbuffer_add(out, e, len);
      else if (!v2_append_json_string(out, (const char *)e, len))
        return status_make(INFERD_INVALID_ARGUMENT, "output '%s' element %lld is not valid UTF-8 and cannot be sent as JSON; request it with \"binary_data\": true",
                           t->name, (long long)(i - 1));
    }
    evbuffer_add(out, "]", 1);
    return status_ok();
  }
  for (int64_t i = 0; i < n; i++) {
    if (o > sizeof buf - 40) { /* bounded: one step writes at most 25 bytes (",%.17g"), the end 1 */
      evbuffer_add(out, buf, o);
      o = 0;
    }
    if (i) buf[o++] = ',';
    const uint8_t *p = t->data + (size_t)i * datatype_size(t->datatype);
    switch (t->datatype) {
      case DT_BOOL: o += (size_t)sprintf(buf + o, "%s", *p ? "true" : "false"); break;
      case DT_UINT8: o += (size_t)sprintf(buf + o, "%u", *p); break;
      case DT_UINT16: { uint16_t x; memcpy(&x, p, 2); o += (size_t)sprintf(buf + o, "%u", x); break; }
      case DT_UINT32: { uint32_t x; memcpy(&x, p, 4); o += (size_t)sprintf(buf + o, "%u", x); break; }
      case DT_UINT64: { uint64_t x; memcpy(&x, p, 8); o += (size_t)sprintf(buf + o, "%llu", (unsigned long long)x); break; }
      case DT_INT8: o += (size_t)sprintf(buf + o, "%d", (int8_t)*p); break;
      case DT_INT16: { int16_t x; memcpy(&x, p, 2); o += (size_t)sprintf(buf + o, "%d", x); break; }
      case DT_INT32: { int32_t x; memcpy(&x, p, 4); o += (size_t)sprintf(buf + o, "%d", x); break; }
      case DT_INT64: { int64_t x; memcpy(&x, p, 8); o += (size_t)sprintf(buf + o, "%lld", (long long)x); break; }
      case DT_FP16: { uint16_t x; memcpy(&x, p, 2); o += fmt_double(buf + o, half_to_float(x), 5); break; }
      /* 4 significant digits tell every bfloat16 (8-bit significand) apart */
      case DT_BF16: { uint16_t x; memcpy(&x, p, 2); o += fmt_double(buf + o, bf16_to_float(x), 4); break; }
      case DT_FP32: { float x; memcpy(&x, p, 4); o += fmt_double(buf + o, x, 9); break; }
      case DT_FP64: { double x; memcpy(&x, p, 8); o += fmt_double(buf + o, x, 17); break; }
      default: break;
    }
  }
  buf[o++] = ']';
  evbuffer_add(out, buf, o);
  return status_ok();
}

static bool output_is_binary(const v2_request_info *info, const char *name) {
  for (size_t i = 0; i < info->n_requested; i++)
    if (strcmp(info->requested[i], name) == 0) return info->requested_binary[i];
  return info->binary_output_all;
}

inferd_status v2_encode_response(const infer_request *req, const v2_request_info *info,
                                 struct evbuffer *out, size_t *header_len) {
  const model_version *mv = req->mv;
  size_t start = evbuffer_get_length(out);
  bool any_binary = false;
  evbuffer_add_printf(out, "{\"model_name\":");
  v2_append_json_string(out, mv->model->name, strlen(mv->model->name));
  evbuffer_add_printf(out, ",\"model_version\":\"%s\"", mv->version_str);
  if (info->id) {
    evbuffer_add_printf(out, ",\"id\":");
    v2_append_json_string(out, info->id, strlen(info->id));
  }
  evbuffer_add_printf(out, ",\"outputs\":[");
  for (size_t i = 0; i < req->n_outputs; i++) {
    const tensor *t = &req->outputs[i];
    char shape[256];
    evbuffer_add_printf(out, "%s{\"name\":", i ? "," : "");
    v2_append_json_string(out, t->name, strlen(t->name));
    evbuffer_add_printf(out, ",\"datatype\":\"%s\",\"shape\":%s", datatype_name(t->datatype),
                        shape_str(t->shape, t->ndim, shape, sizeof shape));
    if (output_is_binary(info, t->name)) {
      any_binary = true;
      evbuffer_add_printf(out, ",\"parameters\":{\"binary_data_size\":%zu}}", t->byte_size);
      continue;
    }
    if (t->bytes_are_json) evbuffer_add_printf(out, ",\"parameters\":{\"content_type\":\"json\"}");
    evbuffer_add_printf(out, ",\"data\":");
    inferd_status st = append_data(out, t);
    if (!status_is_ok(&st)) return st;
    evbuffer_add(out, "}", 1);
  }
  evbuffer_add(out, "]}", 2);
  *header_len = 0;
  if (any_binary) {
    *header_len = evbuffer_get_length(out) - start;
    for (size_t i = 0; i < req->n_outputs; i++)
      if (output_is_binary(info, req->outputs[i].name))
        evbuffer_add(out, req->outputs[i].data, req->outputs[i].byte_size);
  }
  return status_ok();
}
