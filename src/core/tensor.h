/* A named, typed, shaped tensor. Fixed-size elements are stored little-endian and packed; a
 * BYTES tensor stores each element as a 4-byte little-endian length and then its bytes, the
 * layout of the V2 binary extension, so binary requests need no re-encoding. */
#ifndef INFERD_TENSOR_H
#define INFERD_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/datatype.h"
#include "core/status.h"

#define TENSOR_MAX_DIMS 8

typedef struct tensor {
  char *name; /* owned */
  inferd_datatype datatype;
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS];
  uint8_t *data; /* owned */
  size_t byte_size;
  /* BYTES elements that are JSON texts (a model's map outputs): JSON responses embed them
   * as JSON values rather than strings. */
  bool bytes_are_json;
} tensor;

/* Element count of a shape; fails on a negative dimension or on overflow past 2^53. */
inferd_status tensor_shape_count(const int64_t *shape, int ndim, int64_t *count);

/* Initialises t with a copy of name and shape and no data. */
inferd_status tensor_init(tensor *t, const char *name, inferd_datatype dt, const int64_t *shape,
                          int ndim);
/* Allocates zeroed storage of n bytes for t's data. */
inferd_status tensor_alloc(tensor *t, size_t n);
/* Frees what t owns and zeroes it. */
void tensor_clear(tensor *t);
void tensors_free(tensor *ts, size_t n);

int64_t tensor_element_count(const tensor *t);

/* For BYTES: checks that the data holds exactly `count` length-prefixed elements. */
inferd_status tensor_bytes_check(const tensor *t, int64_t count);
/* Iterates BYTES elements: *pos starts at 0; returns false at the end. */
bool tensor_bytes_next(const tensor *t, size_t *pos, const uint8_t **elem, uint32_t *len);

/* Finds the first NaN or infinity in a float tensor; returns its index or -1. */
int64_t tensor_find_non_finite(const tensor *t);

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
/* bfloat16 <-> float. bf16_to_float is exact. double_to_bf16 rounds to nearest, ties to even,
 * once (not via float, which could round twice); a NaN stays a (quiet) NaN. */
float bf16_to_float(uint16_t b);
uint16_t double_to_bf16(double d);
/* The smallest magnitude that rounds to infinity in bfloat16: halfway between its largest
 * finite value (0x1.fep127) and 2^128. */
#define BF16_OVERFLOW 0x1.ffp127

/* "[2,3]" into buf, for messages. */
const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t len);

#endif
