/* observability/collectors: tracing, drift and capture metrics into the registry's exposition. */
#include "observability/collectors.h"

#include <stdio.h>
#include <stdlib.h>

#include "observability/drift.h"
#include "util/monotime.h"

static void trace_collect(void *ctx, metrics_text *out) {
  trace_counters c;
  trace_stats(ctx, &c);
  metrics_text_family(out, "inferd_trace_requests_sampled_total", "counter", "Requests sampled for tracing.");
  metrics_text_printf(out, "inferd_trace_requests_sampled_total %llu\n", (unsigned long long)c.requests_sampled);
  metrics_text_family(out, "inferd_trace_spans_exported_total", "counter", "Spans the OTLP collector accepted.");
  metrics_text_printf(out, "inferd_trace_spans_exported_total %llu\n", (unsigned long long)c.spans_exported);
  metrics_text_family(out, "inferd_trace_spans_dropped_total", "counter",
                      "Spans dropped: the export queue was full, or the export request failed.");
  metrics_text_printf(out, "inferd_trace_spans_dropped_total{reason=\"queue_full\"} %llu\n",
                      (unsigned long long)c.spans_dropped_queue_full);
  metrics_text_printf(out, "inferd_trace_spans_dropped_total{reason=\"export_failed\"} %llu\n",
                      (unsigned long long)c.spans_dropped_export_failed);
  metrics_text_family(out, "inferd_trace_exports_total", "counter", "OTLP export requests, by result.");
  metrics_text_printf(out, "inferd_trace_exports_total{result=\"ok\"} %llu\n", (unsigned long long)c.exports_ok);
  metrics_text_printf(out, "inferd_trace_exports_total{result=\"failed\"} %llu\n", (unsigned long long)c.exports_failed);
}

/* The FILE*-writing modules, through a memory stream (scrape time only). */
static void append_stream(metrics_text *out, void (*write)(void *ctx, FILE *f), void *ctx) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (f == NULL) {
    out->oom = true;
    return;
  }
  write(ctx, f);
  if (fclose(f) == 0) metrics_text_append(out, buf, len);
  else out->oom = true;
  free(buf);
}

static void drift_write(void *ctx, FILE *f) { drift_metrics_write(((app *)ctx)->repo, f, monotime_ns()); }
static void drift_collect(void *ctx, metrics_text *out) { append_stream(out, drift_write, ctx); }
static void capture_write(void *ctx, FILE *f) { capture_metrics_write(ctx, f); }
static void capture_collect(void *ctx, metrics_text *out) { append_stream(out, capture_write, ctx); }

inferd_status obs_collectors_register(metrics *m, app *a, tracer *t, capture *c) {
  if (m == NULL) return status_ok();
  TRY(metrics_register_collector(m, drift_collect, a));
  if (t) TRY(metrics_register_collector(m, trace_collect, t));
  if (c) TRY(metrics_register_collector(m, capture_collect, c));
  return status_ok();
}

static void stream_collect(void *ctx, metrics_text *out) {
  obs_stream_collector *sc = ctx;
  append_stream(out, sc->write, sc->ctx);
}

inferd_status obs_collectors_register_stream(metrics *m, obs_stream_collector *sc) {
  if (m == NULL) return status_ok();
  return metrics_register_collector(m, stream_collect, sc);
}
