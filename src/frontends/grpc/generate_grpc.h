/* Text generation over gRPC: the one implementation of a generation's call (the engine's
 * request, its pieces of text on a stream, its final response), used by the Open Inference
 * Protocol's ModelInfer / ModelStreamInfer (generate_grpc.c) and inferd.ModelService's
 * StreamPredict (model_service.c), each passing its own message encoding (docs/grpc-api.md,
 * docs/generate.md). */
#ifndef INFERD_GRPC_GENERATE_H
#define INFERD_GRPC_GENERATE_H

#include <stdbool.h>

#include "frontends/grpc/call.h"
#include "generate/engine.h"
#include "inference.pb-c.h"

typedef struct grpcfe_gen grpcfe_gen;

/* How a protocol encodes a generation's responses (each may return NULL when out of memory). */
typedef struct grpcfe_gen_encoder {
  /* a piece of text, on a stream */
  grpc_byte_buffer *(*piece)(const grpcfe_gen *gg, const char *text, size_t len);
  /* the last response of a successful generation: finish reason and usage in gg->g, and the
   * whole text (gg->g.text) when it was not streamed */
  grpc_byte_buffer *(*final)(const grpcfe_gen *gg);
  /* a failure on a stream (a unary call's failure is its gRPC status) */
  grpc_byte_buffer *(*failure)(const grpcfe_gen *gg, const char *msg);
} grpcfe_gen_encoder;

/* One generation's call; the protocol fills the prompt and parameters before the submit. */
struct grpcfe_gen {
  gcall *call;
  gstream_item *item; /* streams: the next response's slot, reserved one ahead (the stream stays
                         open until the final response, whatever the client half-closes); NULL:
                         a unary call, answered once */
  bool stream;        /* a response per piece of text (only with item) */
  const grpcfe_gen_encoder *enc;
  gen_request g;
  char model[256], version[32], id[128]; /* as the responses echo them (UTF-8) */
  char *text;                            /* the prompt, owned */
  char *stops[GEN_MAX_STOP];             /* owned */
};

/* Whether the model (any of its versions: config.json is the model's) is generative. */
bool grpcfe_is_generative(app *a, const char *model);

/* A generation for call c: item NULL for a unary call, else the stream's reserved slot (then
 * it streams unless the protocol clears gg->stream). model is the request's model name (shown
 * sanitized). NULL when out of memory, after answering that itself. */
grpcfe_gen *grpcfe_gen_new(gcall *c, gstream_item *item, const grpcfe_gen_encoder *enc, const char *model);

/* Hands the generation to serve (model and version as the request named them); from here on
 * gg is the completion's, which sends the responses. A failure is answered and gg freed. */
void grpcfe_gen_submit(grpcfe_gen *gg, const char *model, const char *version);

/* Answers st (an encoder's failure on a stream, the status on a unary call) and frees gg. */
void grpcfe_gen_fail(grpcfe_gen *gg, const inferd_status *st);

void grpcfe_gen_free(grpcfe_gen *gg);

/* The Open Inference Protocol's generation for q (text_input and parameters): item NULL for
 * ModelInfer (one reply), else the stream's reserved slot (a response per piece of text, then
 * the final one). Answers every failure itself. q stays the caller's. */
void grpcfe_generate_start(gcall *c, gstream_item *item, const Inference__ModelInferRequest *q);

#endif
