/* The Open Inference Protocol's gRPC messages <-> infer_request: ModelInferRequest with typed
 * `contents` or `raw_input_contents` in, ModelInferResponse with typed `contents` or
 * `raw_output_contents` out. Protocol-level only: no gRPC call, no scheduling. */
#ifndef INFERD_GRPC_INFER_CODEC_H
#define INFERD_GRPC_INFER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/infer.h"
#include "inference.pb-c.h"
#include "util/arena.h"

typedef struct grpcfe_infer_info {
  char *id;        /* owned; the request's id, NULL when empty */
  bool raw_output; /* answer in raw_output_contents (the request sent raw inputs, or asked) */
  int64_t timeout_us; /* the request's "timeout" parameter; 0: none */
  int priority;       /* the request's "priority" parameter; 0: the model's default */
} grpcfe_infer_info;

/* Fills req's inputs and output_names and info from msg. The raw_input_contents buffers move
 * into the tensors (msg keeps empty entries). Errors are INVALID_ARGUMENT naming the tensor. */
inferd_status grpcfe_decode_infer_request(Inference__ModelInferRequest *msg, infer_request *req,
                                        grpcfe_infer_info *info);
void grpcfe_infer_info_clear(grpcfe_infer_info *info);

/* A ModelInferResponse pointing into a completed request's outputs, and what was allocated to
 * build it. Valid while req lives; grpcfe_infer_response_clear frees the allocations only. */
typedef struct grpcfe_infer_response {
  Inference__ModelInferResponse msg;
  Inference__ModelInferResponse__InferOutputTensor *outs; /* owned */
  Inference__ModelInferResponse__InferOutputTensor **out_ptrs; /* owned */
  Inference__InferTensorContents *contents;                   /* owned */
  ProtobufCBinaryData *raw;                                   /* owned */
  arena scratch; /* converted element arrays */
} grpcfe_infer_response;

inferd_status grpcfe_build_infer_response(const infer_request *req, const grpcfe_infer_info *info,
                                        grpcfe_infer_response *out);
void grpcfe_infer_response_clear(grpcfe_infer_response *r);

#endif
