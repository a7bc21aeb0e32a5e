/* The Open Inference Protocol's REST body <-> infer_request: JSON tensors (flat or nested) and
 * the binary tensor data extension, in both directions. */
#ifndef INFERD_V2_CODEC_H
#define INFERD_V2_CODEC_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/infer.h"

typedef struct v2_request_info {
  char *id; /* owned; the body's "id", NULL when absent */
  bool binary_output_all;
  int64_t timeout_us; /* parameters.timeout; 0: none */
  int priority;       /* parameters.priority; 0: the model's default */
  /* requested output names and their binary_data flags, as the request listed them */
  char **requested; /* owned */
  bool *requested_binary;
  size_t n_requested;
} v2_request_info;

/* Parses body[0..len). header_len is the Inference-Header-Content-Length (-1 when absent: all
 * JSON). Fills req's inputs and output_names and info. Errors are INVALID_ARGUMENT naming the
 * JSON path or tensor. */
inferd_status v2_decode_request(const char *body, size_t len, long long header_len,
                                infer_request *req, v2_request_info *info);
void v2_request_info_clear(v2_request_info *info);

/* Writes the response for a completed request. *header_len is the JSON part's length when
 * any output is binary, else 0. */
inferd_status v2_encode_response(const infer_request *req, const v2_request_info *info,
                                 struct evbuffer *out, size_t *header_len);

/* Appends s[0..len) as a JSON string literal; false when s is not valid UTF-8. */
bool v2_append_json_string(struct evbuffer *out, const char *s, size_t len);

#endif
