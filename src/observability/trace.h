/* observability/trace: OpenTelemetry tracing of inferences. Plugs into core/serve's route and
 * trace stages: reads W3C trace context, answers traceparent and Server-Timing, and hands each
 * sampled request's spans (request, queue, batch, compute, and the batch's own) to a background
 * exporter that posts them as OTLP/HTTP (docs/observability.md, "Tracing"). */
#ifndef INFERD_TRACE_H
#define INFERD_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

struct serve;
typedef struct tracer tracer;

typedef struct trace_options {
  const char *otlp_endpoint;  /* required: http(s)://host:port[/path]; no path: /v1/traces */
  bool otlp_json;             /* http/json instead of http/protobuf */
  double sample_ratio;        /* head sampling of requests without a parent context, 0..1 */
  const char *service_name;   /* the service.name resource attribute */
  const char *service_version;
  int queue_size;             /* sampled requests waiting for export, at most (bounded memory) */
  int batch_size;             /* spans per export request, at most */
  int export_interval_ms;     /* a batch smaller than batch_size waits at most this long */
  int timeout_ms;             /* one export request, connect included */
} trace_options;

/* What tracing did, for /metrics (monotonic counters). Spans dropped are those of sampled
 * requests that never reached the collector: the queue was full (the collector slow or down
 * for long), or the export request failed (refused, timed out, answered non-2xx). */
typedef struct trace_counters {
  uint64_t requests_sampled;
  uint64_t spans_exported;
  uint64_t spans_dropped_queue_full;
  uint64_t spans_dropped_export_failed;
  uint64_t exports_ok;
  uint64_t exports_failed;
} trace_counters;

/* Registers the handlers with s (before serving starts) and starts the export thread. */
inferd_status trace_create(const trace_options *o, struct serve *s, tracer **out);
void trace_stats(const tracer *t, trace_counters *out);
/* After the last request has completed: one last export of what is queued (what it cannot send
 * is counted dropped), then the thread stops. */
void trace_destroy(tracer *t);

/* The URL exports go to: endpoint as given when it has a path, else endpoint + "/v1/traces".
 * INVALID_ARGUMENT when it is not an http:// or https:// URL. */
inferd_status trace_export_url(const char *endpoint, char *out, size_t cap);

#endif
