/* The tensor element types of the Open Inference Protocol, by their V2 names. */
#ifndef INFERD_DATATYPE_H
#define INFERD_DATATYPE_H

#include <stddef.h>

typedef enum {
  DT_INVALID = 0,
  DT_BOOL,
  DT_UINT8,
  DT_UINT16,
  DT_UINT32,
  DT_UINT64,
  DT_INT8,
  DT_INT16,
  DT_INT32,
  DT_INT64,
  DT_FP16,
  DT_FP32,
  DT_FP64,
  DT_BYTES,
  DT_BF16, /* bfloat16: the top half of an FP32; last so the order above stays */
  DT_COUNT
} inferd_datatype;

/* "FP32" etc.; "INVALID" for DT_INVALID. */
const char *datatype_name(inferd_datatype dt);
/* DT_INVALID when the name is not a V2 datatype. */
inferd_datatype datatype_from_name(const char *name);
/* Bytes per element; 0 for BYTES, whose elements vary in length. */
size_t datatype_size(inferd_datatype dt);
int datatype_is_float(inferd_datatype dt);

#endif
