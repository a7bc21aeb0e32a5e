/* observability/metrics: the Prometheus registry (counters, gauges, cumulative histograms with
 * bounded label sets) fed by the pipeline's stages and the frontends' replies, and its text
 * exposition (format 0.0.4). docs/observability.md lists every metric. */
#ifndef INFERD_METRICS_H
#define INFERD_METRICS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/serve.h"
#include "core/status.h"

struct app;
typedef struct metrics metrics;

/* A growing text buffer the exposition is written into (scrape time only). */
typedef struct metrics_text {
  char *buf; /* owned */
  size_t len, cap;
  bool oom; /* an append failed: the text is incomplete */
} metrics_text;

void metrics_text_init(metrics_text *t);
void metrics_text_free(metrics_text *t);
void metrics_text_append(metrics_text *t, const char *s, size_t n);
void metrics_text_puts(metrics_text *t, const char *s);
void metrics_text_printf(metrics_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "# HELP name help" (help escaped) and "# TYPE name type" (counter, gauge, histogram). */
void metrics_text_family(metrics_text *t, const char *name, const char *type, const char *help);
/* A label value, quoted, with \, " and newline escaped as the format requires. */
void metrics_text_label_value(metrics_text *t, const char *v);

/* Another module's metrics: at each scrape, after the registry's own families, the collector
 * appends whole families (metrics_text_family, then its samples) to out. It runs on the
 * scraping thread, so it must only read what it counts (atomics, or a lock held briefly). */
typedef void (*metrics_collector)(void *ctx, metrics_text *out);

/* The registry of one server: registers its handlers on a->serve (route, fork and stats
 * stages), so call it before serving starts. */
inferd_status metrics_create(struct app *a, metrics **out);
void metrics_destroy(metrics *m);
/* Register before serving starts; at most METRICS_MAX_COLLECTORS. */
#define METRICS_MAX_COLLECTORS 16
inferd_status metrics_register_collector(metrics *m, metrics_collector fn, void *ctx);

/* The whole exposition into out (appended). */
void metrics_render(metrics *m, metrics_text *out);
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A reply went out (the frontends' access-log point, any thread): counts its bytes and status
 * class by protocol, and, for an inference whose version was routed (r->metrics set), its total
 * duration (arrival to reply) and its serialize time (completion to reply) in the version's
 * histograms; a request that ended before the hand-off counts as a failure there. `status` is
 * the reply's HTTP status (metrics_grpc_http_status maps a gRPC code). r may be NULL. */
void metrics_observe_reply(metrics *m, serve_protocol protocol, const serve_record *r, int status, int64_t start_ns,
                           int64_t now_ns, size_t bytes_in, size_t bytes_out);
/* The HTTP status a gRPC status code corresponds to (the inverse of core/status.c's table), for
 * the status-class label. */
int metrics_grpc_http_status(int grpc_code);

/* Pure helpers, unit-tested: the bucket a duration falls in (0 .. METRICS_DURATION_BUCKETS,
 * the last being +Inf), and the status-class index of an HTTP status (2xx, 4xx, 5xx, other). */
#define METRICS_DURATION_BUCKETS 32
extern const int64_t metrics_duration_bounds_ns[METRICS_DURATION_BUCKETS];
int metrics_duration_bucket(int64_t ns);
int metrics_status_class(int http_status);
const char *metrics_status_class_name(int cls);

#endif
