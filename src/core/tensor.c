#include "core/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"

/* Counts stay below 2^53 so they survive a trip through a JSON number. */
#define MAX_ELEMENTS (INT64_C(1) << 53)

inferd_status tensor_shape_count(const int64_t *shape, int ndim, int64_t *count) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return status_make(INFERD_INVALID_ARGUMENT, "negative dimension %lld", (long long)shape[i]);
    if (shape[i] != 0 && n > MAX_ELEMENTS / shape[i])
      return status_make(INFERD_INVALID_ARGUMENT, "shape has too many elements");
    n *= shape[i];
  }
  *count = n;
  return status_ok();
}

inferd_status tensor_init(tensor *t, const char *name, inferd_datatype dt, const int64_t *shape,
                          int ndim) {
  memset(t, 0, sizeof *t);
  if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
    return status_make(INFERD_INVALID_ARGUMENT, "tensor '%s' has %d dimensions, at most %d are supported",
                       name, ndim, TENSOR_MAX_DIMS);
  t->name = strdup(name);
  if (t->name == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  t->datatype = dt;
  t->ndim = ndim;
  if (ndim > 0) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
  return status_ok();
}

inferd_status tensor_alloc(tensor *t, size_t n) {
  t->data = calloc(1, n ? n : 1);
  if (t->data == NULL) return status_make(INFERD_INTERNAL, "out of memory for tensor '%s'", t->name);
  t->byte_size = n;
  return status_ok();
}

void tensor_clear(tensor *t) {
  free(t->name);
  free(t->data);
  memset(t, 0, sizeof *t);
}

void tensors_free(tensor *ts, size_t n) {
  if (ts == NULL) return;
  for (size_t i = 0; i < n; i++) tensor_clear(&ts[i]);
  free(ts);
}

int64_t tensor_element_count(const tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

static uint32_t read_u32le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

bool tensor_bytes_next(const tensor *t, size_t *pos, const uint8_t **elem, uint32_t *len) {
  if (*pos + 4 > t->byte_size) return false;
  uint32_t n = read_u32le(t->data + *pos);
  if (n > t->byte_size - *pos - 4) return false;
  *elem = t->data + *pos + 4;
  *len = n;
  *pos += 4 + (size_t)n;
  return true;
}

inferd_status tensor_bytes_check(const tensor *t, int64_t count) {
  size_t pos = 0;
  const uint8_t *e;
  uint32_t len;
  int64_t seen = 0;
  while (seen < count && tensor_bytes_next(t, &pos, &e, &len)) seen++;
  if (seen != count || pos != t->byte_size)
    return status_make(INFERD_INVALID_ARGUMENT,
                       "input '%s': BYTES data does not hold %lld length-prefixed elements as its shape says",
                       t->name, (long long)count);
  return status_ok();
}

int64_t tensor_find_non_finite(const tensor *t) {
  int64_t n = (int64_t)(t->byte_size / (datatype_size(t->datatype) ? datatype_size(t->datatype) : 1));
  for (int64_t i = 0; i < n; i++) {
    double v;
    switch (t->datatype) {
      case DT_FP16: {
        uint16_t h;
        memcpy(&h, t->data + i * 2, 2);
        /* exponent all ones is Inf or NaN */
        if ((h & 0x7c00) == 0x7c00) return i;
        continue;
      }
      case DT_BF16: {
        uint16_t b;
        memcpy(&b, t->data + i * 2, 2);
        if ((b & 0x7f80) == 0x7f80) return i;
        continue;
      }
      case DT_FP32: {
        float f;
        memcpy(&f, t->data + i * 4, 4);
        v = f;
        break;
      }
      case DT_FP64:
        memcpy(&v, t->data + i * 8, 8);
        break;
      default:
        return -1;
    }
    if (!isfinite(v)) return i;
  }
  return -1;
}

float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { /* subnormal: renormalise */
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        exp--;
      }
      mant &= 0x3ff;
      bits = sign | exp << 23 | mant << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) /* Inf or NaN */
    return sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0);
  if (absx >= 0x477ff000u) return sign | 0x7c00; /* rounds past the largest half: Inf */
  if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
    if (absx < 0x33000000u) return sign;
    uint32_t mant = (absx & 0x7fffff) | 0x800000;
    int shift = 126 - (int)(absx >> 23); /* half subnormals count units of 2^-24 */
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return sign | (uint16_t)half;
  }
  uint32_t half = ((absx >> 13) - ((127 - 15) << 10));
  uint32_t rem = absx & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
  return sign | (uint16_t)half;
}

const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t len) {
  sbuf b;
  sbuf_init(&b, buf, len);
  sbuf_append(&b, "[");
  for (int i = 0; i < ndim; i++) sbuf_appendf(&b, "%s%lld", i ? "," : "", (long long)shape[i]);
  sbuf_append(&b, "]");
  return buf;
}

float bf16_to_float(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t double_to_bf16(double d) {
  if (isnan(d)) return signbit(d) ? 0xffc0 : 0x7fc0;
  /* Round to odd into float first (truncate, then set the last bit when anything was cut):
   * float keeps 16 more bits than bfloat16, so the one rounding below to nearest-even then
   * gives what rounding d directly would. */
  float f = (float)d;
  if (fabs((double)f) > fabs(d)) f = nextafterf(f, 0.0f);
  uint32_t bits;
  memcpy(&bits, &f, 4);
  if ((double)f != d) bits |= 1;
  bits += 0x7fff + ((bits >> 16) & 1);
  return (uint16_t)(bits >> 16);
}
