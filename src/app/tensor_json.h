/* Tensors as nested JSON arrays, the form TF Serving's REST API and MLflow's "instances" and
 * "inputs" use: the shape is the nesting, BYTES elements are strings or {"b64": "..."}.
 * Protocol-free, so any frontend that speaks nested-list tensors can share it. */
#ifndef INFERD_APP_TENSOR_JSON_H
#define INFERD_APP_TENSOR_JSON_H

#include <jansson.h>

#include "core/tensor.h"

/* THE conversion of one JSON number into a tensor element, for every route that reads JSON
 * tensors (V2, /v1 records, TF Serving, MLflow), so each checks the same way. is_int: the
 * number was written as an integer and i holds it exactly (d holds it as a double too); else
 * d. Integer datatypes take whole numbers within their range; FP16, BF16 and FP32 take values
 * within their finite range (NaN and the infinities pass: allow_nan is checked later, against
 * the model). BOOL takes 0 and 1. Writes the element to dst only when OK. */
typedef enum { TENSOR_NUMBER_OK, TENSOR_NUMBER_NOT_WHOLE, TENSOR_NUMBER_OUT_OF_RANGE } tensor_number_result;
tensor_number_result tensor_number_store(inferd_datatype dt, bool is_int, long long i, double d, void *dst);

/* Builds `out` (named `name`, datatype dt) from a nested array (or a scalar: shape []).
 * The nesting must be rectangular and at most TENSOR_MAX_DIMS deep; numbers must fit dt.
 * Errors are INVALID_ARGUMENT naming the JSON path (path is where v sits, e.g. "$.inputs.x"). */
inferd_status tensor_from_json(const json_t *v, const char *name, inferd_datatype dt, const char *path, tensor *out);

/* The whole tensor as nested arrays (a new reference). Floats that are NaN or infinite become
 * null; BYTES elements become strings when they are UTF-8 (JSON values when the tensor holds
 * JSON texts), else {"b64": ...}. */
json_t *tensor_to_json(const tensor *t);
/* Row r along the first dimension (a scalar tensor's only value for r 0). */
json_t *tensor_row_to_json(const tensor *t, size_t r);

/* Standard base64 (with padding). decode returns -1 on malformed input. */
char *base64_encode(const uint8_t *data, size_t len);
long base64_decode(const char *s, size_t len, uint8_t *out);

#endif
