/* The gRPC frontend: gRPC core's server on its own port, driven by a small fixed set of
 * threads polling one completion queue. Serves inference.GRPCInferenceService (the Open
 * Inference Protocol), inferd.ModelService (the application API) and grpc.health.v1.Health. */
#ifndef INFERD_GRPC_FRONTEND_H
#define INFERD_GRPC_FRONTEND_H

#include <stddef.h>

#include "core/app.h"

typedef struct grpcfe grpcfe;

typedef struct grpcfe_options {
  const char *host;
  int port; /* 0: any free port (grpcfe_port tells which) */
  int threads; /* completion-queue threads */
  int max_message_bytes; /* largest message received or sent */
  int drain_timeout_ms;
  struct auth *auth; /* security/auth.h: who may call; NULL or disabled: everyone */
  /* TLS and client certificates (security/tlsconf, the caller's, outliving the frontend);
   * NULL: plaintext */
  struct tlsconf *tls;
} grpcfe_options;

inferd_status grpcfe_create(const grpcfe_options *opts, app *a, grpcfe **out);
int grpcfe_port(const grpcfe *f);
/* Calls under way now (gRPC core does not expose its connections; this is the gauge instead). */
long grpcfe_active_calls(const grpcfe *f);
/* A metrics_collector (observability/metrics.h): the gRPC frontend's gauges; ctx is the grpcfe. */
struct metrics_text;
void grpcfe_metrics_collect(void *ctx, struct metrics_text *out);
/* Stops accepting calls (returns at once); health watchers are told NOT_SERVING. */
void grpcfe_begin_drain(grpcfe *f);
/* Waits for the calls in flight to finish, up to the drain timeout counted from
 * begin_drain; then cancels what is left. */
void grpcfe_drain(grpcfe *f);
/* Waits for every call to be released (call after app_stop_work, which completes what was
 * still queued), stops the threads and frees everything. */
void grpcfe_destroy(grpcfe *f);

#endif
