/* Text generation over the Open Inference Protocol's gRPC ModelInfer / ModelStreamInfer, for
 * generative models (generate_grpc.c; docs/grpc-api.md, docs/generate.md). */
#ifndef INFERD_GRPC_GENERATE_H
#define INFERD_GRPC_GENERATE_H

#include <stdbool.h>

#include "frontends/grpc/call.h"
#include "inference.pb-c.h"

/* Whether the model (any of its versions: config.json is the model's) is generative. */
bool grpcfe_is_generative(app *a, const char *model);

/* Starts a generation for q (text_input and parameters): item NULL for ModelInfer (one reply),
 * else the stream's reserved slot (a response per piece of text, then the final one). Answers
 * every failure itself. q stays the caller's. */
void grpcfe_generate_start(gcall *c, gstream_item *item, const Inference__ModelInferRequest *q);

#endif
