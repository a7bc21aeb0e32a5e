#include "app/tensor_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/features.h"

tensor_number_result tensor_number_store(inferd_datatype dt, bool is_int, long long i, double d, void *dst) {
  if (datatype_is_float(dt)) {
    if (dt == DT_FP64) {
      memcpy(dst, &d, 8);
    } else if (dt == DT_FP32) {
      if (isfinite(d) && fabs(d) > 3.4028234663852886e38) return TENSOR_NUMBER_OUT_OF_RANGE;
      float f = (float)d;
      memcpy(dst, &f, 4);
    } else if (dt == DT_BF16) {
      if (isfinite(d) && fabs(d) >= BF16_OVERFLOW) return TENSOR_NUMBER_OUT_OF_RANGE;
      uint16_t b = double_to_bf16(d);
      memcpy(dst, &b, 2);
    } else { /* FP16: 65520 and beyond round to infinity; below, to at most 65504 */
      if (isfinite(d) && fabs(d) >= 65520.0) return TENSOR_NUMBER_OUT_OF_RANGE;
      uint16_t h = float_to_half((float)d);
      memcpy(dst, &h, 2);
    }
    return TENSOR_NUMBER_OK;
  }
  if (!is_int) { /* a real: whole, and within range as a double, then exact as an integer */
    if (!isfinite(d) || d != floor(d)) return TENSOR_NUMBER_NOT_WHOLE;
    if (dt == DT_UINT64) {
      if (d < 0 || d >= 18446744073709551616.0) return TENSOR_NUMBER_OUT_OF_RANGE;
      uint64_t u = (uint64_t)d;
      memcpy(dst, &u, 8);
      return TENSOR_NUMBER_OK;
    }
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return TENSOR_NUMBER_OUT_OF_RANGE;
    i = (long long)d;
  }
  long long lo, hi;
  switch (dt) {
    case DT_BOOL: lo = 0; hi = 1; break;
    case DT_UINT8: lo = 0; hi = UINT8_MAX; break;
    case DT_UINT16: lo = 0; hi = UINT16_MAX; break;
    case DT_UINT32: lo = 0; hi = UINT32_MAX; break;
    case DT_UINT64: lo = 0; hi = INT64_MAX; break;
    case DT_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
    case DT_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
    case DT_INT32: lo = INT32_MIN; hi = INT32_MAX; break;
    case DT_INT64: lo = INT64_MIN; hi = INT64_MAX; break;
    default: return TENSOR_NUMBER_OUT_OF_RANGE; /* BYTES: not a number */
  }
  if (i < lo || i > hi) return TENSOR_NUMBER_OUT_OF_RANGE;
  /* little-endian host: the low bytes of i are the element */
  memcpy(dst, &i, datatype_size(dt));
  return TENSOR_NUMBER_OK;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const uint8_t *d, size_t n) {
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  if (out == NULL) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
    out[o++] = B64[v >> 18 & 63];
    out[o++] = B64[v >> 12 & 63];
    out[o++] = i + 1 < n ? B64[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? B64[v & 63] : '=';
  }
  out[o] = '\0';
  return out;
}

static int b64val(char c) {
  const char *p = c ? strchr(B64, c) : NULL;
  return p ? (int)(p - B64) : -1;
}

long base64_decode(const char *s, size_t len, uint8_t *out) {
  while (len > 0 && s[len - 1] == '=') len--;
  if (len % 4 == 1) return -1;
  long o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64val(s[i]);
    if (v < 0) return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  return o;
}

/* ---- JSON -> tensor ---------------------------------------------------------------------- */

typedef struct filler {
  inferd_datatype dt;
  int ndim;
  const int64_t *shape;
  tensor *t;
  size_t elem;  /* next element index (fixed-size types) */
  size_t off;   /* next byte (BYTES) */
  bool sizing;  /* BYTES first pass: only count bytes */
  inferd_status st;
} filler;

static bool put_scalar(filler *f, const json_t *v, const char *path) {
  if (f->dt == DT_BYTES) {
    const char *s = NULL;
    size_t n = 0;
    uint8_t *tmp = NULL;
    long dn;
    if (json_is_string(v)) {
      s = json_string_value(v);
      n = json_string_length(v);
    } else if (json_is_object(v) && json_object_size(v) == 1 && json_is_string(json_object_get(v, "b64"))) {
      const json_t *b = json_object_get(v, "b64");
      tmp = malloc(json_string_length(b) + 1);
      dn = tmp ? base64_decode(json_string_value(b), json_string_length(b), tmp) : -1;
      if (dn < 0) {
        free(tmp);
        f->st = status_make(INFERD_INVALID_ARGUMENT, "%s.b64 is not valid base64", path);
        return false;
      }
      s = (const char *)tmp;
      n = (size_t)dn;
    } else {
      f->st = status_make(INFERD_INVALID_ARGUMENT, "%s must be a string or {\"b64\": ...} (the input is BYTES)", path);
      return false;
    }
    if (!f->sizing) {
      uint32_t len = (uint32_t)n;
      memcpy(f->t->data + f->off, &len, 4);
      memcpy(f->t->data + f->off + 4, s, n);
    }
    f->off += 4 + n;
    free(tmp);
    return true;
  }
  if (f->dt == DT_BOOL) {
    if (!json_is_boolean(v) && !(json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))) {
      f->st = status_make(INFERD_INVALID_ARGUMENT, "%s must be true or false (the input is BOOL)", path);
      return false;
    }
    f->t->data[f->elem++] = json_is_boolean(v) ? json_is_true(v) : json_integer_value(v) == 1;
    return true;
  }
  if (!json_is_number(v)) {
    f->st = status_make(INFERD_INVALID_ARGUMENT, "%s must be a number (the input is %s)", path, datatype_name(f->dt));
    return false;
  }
  uint8_t *p = f->t->data + f->elem * datatype_size(f->dt);
  tensor_number_result r = tensor_number_store(f->dt, json_is_integer(v), json_is_integer(v) ? json_integer_value(v) : 0,
                                               json_number_value(v), p);
  if (r == TENSOR_NUMBER_NOT_WHOLE) {
    f->st = status_make(INFERD_INVALID_ARGUMENT, "%s must be a whole number (the input is %s)", path, datatype_name(f->dt));
    return false;
  }
  if (r == TENSOR_NUMBER_OUT_OF_RANGE) {
    f->st = status_make(INFERD_INVALID_ARGUMENT, "%s: %.17g is out of range for %s", path, json_number_value(v),
                        datatype_name(f->dt));
    return false;
  }
  f->elem++;
  return true;
}

static bool fill(filler *f, const json_t *v, int depth, char *path, size_t plen) {
  if (depth == f->ndim) {
    if (json_is_array(v)) {
      f->st = status_make(INFERD_INVALID_ARGUMENT, "%s is nested deeper than its siblings (the tensor is not rectangular)", path);
      return false;
    }
    return put_scalar(f, v, path);
  }
  if (!json_is_array(v) || (int64_t)json_array_size(v) != f->shape[depth]) {
    f->st = status_make(INFERD_INVALID_ARGUMENT, "%s must be an array of %lld values like its siblings (the tensor is not rectangular)",
                        path, (long long)f->shape[depth]);
    return false;
  }
  size_t base = strlen(path);
  for (size_t i = 0; i < json_array_size(v); i++) {
    jpath_index(path, plen, i);
    bool ok = fill(f, json_array_get(v, i), depth + 1, path, plen);
    path[base] = '\0';
    if (!ok) return false;
  }
  return true;
}

inferd_status tensor_from_json(const json_t *v, const char *name, inferd_datatype dt, const char *path, tensor *out) {
  int64_t shape[TENSOR_MAX_DIMS];
  int ndim = 0;
  const json_t *cur = v;
  while (json_is_array(cur)) {
    if (ndim == TENSOR_MAX_DIMS)
      return status_make(INFERD_INVALID_ARGUMENT, "%s is nested more than %d deep", path, TENSOR_MAX_DIMS);
    shape[ndim++] = (int64_t)json_array_size(cur);
    if (json_array_size(cur) == 0) break;
    cur = json_array_get(cur, 0);
  }
  char p[256];
  snprintf(p, sizeof p, "%s", path);
  filler f = {.dt = dt, .ndim = ndim, .shape = shape, .t = out, .st = status_ok()};
  int64_t count;
  TRY(tensor_shape_count(shape, ndim, &count));
  TRY(tensor_init(out, name, dt, shape, ndim));
  if (dt == DT_BYTES) {
    f.sizing = true;
    if (!fill(&f, v, 0, p, sizeof p)) {
      tensor_clear(out);
      return f.st;
    }
    f.sizing = false;
    /* the fill pass below walks the same value and adds the same sizes, so never passes this */
    inferd_status st = tensor_alloc(out, f.off);
    if (!status_is_ok(&st)) {
      tensor_clear(out);
      return st;
    }
    f.off = 0;
  } else {
    inferd_status st = tensor_alloc(out, (size_t)count * datatype_size(dt));
    if (!status_is_ok(&st)) {
      tensor_clear(out);
      return st;
    }
  }
  if (!fill(&f, v, 0, p, sizeof p)) {
    tensor_clear(out);
    return f.st;
  }
  return status_ok();
}

/* ---- tensor -> JSON ---------------------------------------------------------------------- */

typedef struct emitter {
  const tensor *t;
  size_t elem;
  size_t pos; /* BYTES iteration */
} emitter;

static json_t *scalar_json(emitter *e) {
  const tensor *t = e->t;
  if (t->datatype == DT_BYTES) {
    const uint8_t *p;
    uint32_t len;
    if (!tensor_bytes_next(t, &e->pos, &p, &len)) return json_null();
    if (t->bytes_are_json) {
      json_t *v = json_loadb((const char *)p, len, JSON_DECODE_ANY, NULL);
      if (v) return v;
    }
    json_t *str = json_stringn((const char *)p, len); /* NULL unless valid UTF-8 */
    if (str) return str;
    char *b = base64_encode(p, len);
    json_t *v = json_pack("{ss}", "b64", b ? b : "");
    free(b);
    return v;
  }
  const uint8_t *p = t->data + e->elem * datatype_size(t->datatype);
  e->elem++;
  switch (t->datatype) {
    case DT_BOOL: return json_boolean(*p);
    case DT_UINT8: return json_integer(*p);
    case DT_INT8: return json_integer(*(const int8_t *)p);
    case DT_UINT16: { uint16_t x; memcpy(&x, p, 2); return json_integer(x); }
    case DT_INT16: { int16_t x; memcpy(&x, p, 2); return json_integer(x); }
    case DT_UINT32: { uint32_t x; memcpy(&x, p, 4); return json_integer(x); }
    case DT_INT32: { int32_t x; memcpy(&x, p, 4); return json_integer(x); }
    case DT_UINT64: { uint64_t x; memcpy(&x, p, 8); return x > INT64_MAX ? json_real((double)x) : json_integer((json_int_t)x); }
    case DT_INT64: { int64_t x; memcpy(&x, p, 8); return json_integer(x); }
    case DT_FP16: { uint16_t x; memcpy(&x, p, 2); float f = half_to_float(x); return isfinite(f) ? json_real(f) : json_null(); }
    case DT_BF16: { uint16_t x; memcpy(&x, p, 2); float f = bf16_to_float(x); return isfinite(f) ? json_real(f) : json_null(); }
    case DT_FP32: { float x; memcpy(&x, p, 4); return isfinite(x) ? json_real(x) : json_null(); }
    case DT_FP64: { double x; memcpy(&x, p, 8); return isfinite(x) ? json_real(x) : json_null(); }
    default: return json_null();
  }
}

static json_t *emit(emitter *e, int depth) {
  if (depth == e->t->ndim) return scalar_json(e);
  json_t *a = json_array();
  for (int64_t i = 0; i < e->t->shape[depth]; i++) json_array_append_new(a, emit(e, depth + 1));
  return a;
}

json_t *tensor_to_json(const tensor *t) {
  emitter e = {.t = t};
  return emit(&e, 0);
}

json_t *tensor_row_to_json(const tensor *t, size_t r) {
  emitter e = {.t = t};
  if (t->ndim == 0) return scalar_json(&e);
  int64_t per = 1;
  for (int d = 1; d < t->ndim; d++) per *= t->shape[d];
  if (t->datatype == DT_BYTES) {
    const uint8_t *p;
    uint32_t len;
    for (int64_t i = 0; i < (int64_t)r * per; i++) tensor_bytes_next(t, &e.pos, &p, &len);
  } else {
    e.elem = r * (size_t)per;
  }
  return emit(&e, 1);
}
