/* The gRPC frontend: gRPC core's server on its own port, driven by a small fixed set of
 * threads polling one completion queue. Serves inference.GRPCInferenceService (the Open
 * Inference Protocol), inferd.ModelService (the application API) and grpc.health.v1.Health. */
#ifndef INFERD_GRPC_FRONTEND_H
#define INFERD_GRPC_FRONTEND_H

#include <stddef.h>

#include "core/app.h"

typedef struct grpc_frontend grpc_frontend;

typedef struct grpc_options {
  const char *host;
  int port; /* 0: any free port (grpc_frontend_port tells which) */
  int threads; /* completion-queue threads */
  int max_message_bytes; /* largest message received or sent */
  int drain_timeout_ms;
} grpc_options;

inferd_status grpc_frontend_create(const grpc_options *opts, app *a, grpc_frontend **out);
int grpc_frontend_port(const grpc_frontend *f);
/* Stops accepting calls (returns at once); health watchers are told NOT_SERVING. */
void grpc_frontend_begin_drain(grpc_frontend *f);
/* Waits for the calls in flight to finish, up to the drain timeout counted from
 * begin_drain; then cancels what is left. */
void grpc_frontend_drain(grpc_frontend *f);
/* Waits for every call to be released (call after app_stop_work, which completes what was
 * still queued), stops the threads and frees everything. */
void grpc_frontend_destroy(grpc_frontend *f);

#endif
