#include "core/datatype.h"

#include <string.h>

static const struct {
  const char *name;
  size_t size;
} datatypes[DT_COUNT] = {
    [DT_INVALID] = {"INVALID", 0}, [DT_BOOL] = {"BOOL", 1},    [DT_UINT8] = {"UINT8", 1},
    [DT_UINT16] = {"UINT16", 2},   [DT_UINT32] = {"UINT32", 4}, [DT_UINT64] = {"UINT64", 8},
    [DT_INT8] = {"INT8", 1},       [DT_INT16] = {"INT16", 2},   [DT_INT32] = {"INT32", 4},
    [DT_INT64] = {"INT64", 8},     [DT_FP16] = {"FP16", 2},     [DT_FP32] = {"FP32", 4},
    [DT_FP64] = {"FP64", 8},       [DT_BYTES] = {"BYTES", 0},
    [DT_BF16] = {"BF16", 2},
};

const char *datatype_name(inferd_datatype dt) {
  return dt < DT_COUNT ? datatypes[dt].name : "INVALID";
}

inferd_datatype datatype_from_name(const char *name) {
  if (name == NULL) return DT_INVALID;
  for (int i = 1; i < DT_COUNT; i++)
    if (strcmp(datatypes[i].name, name) == 0) return (inferd_datatype)i;
  return DT_INVALID;
}

size_t datatype_size(inferd_datatype dt) { return dt < DT_COUNT ? datatypes[dt].size : 0; }

int datatype_is_float(inferd_datatype dt) {
  return dt == DT_FP16 || dt == DT_BF16 || dt == DT_FP32 || dt == DT_FP64;
}
