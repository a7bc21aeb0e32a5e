/* observability/collectors: the other observability modules' metrics (tracing's export counters,
 * drift scores, payload capture's drops) as collectors of the metrics registry, so /metrics shows
 * them beside the registry's own families. */
#ifndef INFERD_OBS_COLLECTORS_H
#define INFERD_OBS_COLLECTORS_H

#include <stdio.h>

#include "core/app.h"
#include "core/status.h"
#include "observability/capture.h"
#include "observability/metrics.h"
#include "observability/trace.h"

/* Registers what exists: drift always (versions without a profile show nothing), tracing and
 * capture when they are on (NULL: off). Before serving starts. */
inferd_status obs_collectors_register(metrics *m, app *a, tracer *t, capture *c);

/* A module that writes Prometheus text to a FILE* (one the observability layer may not link,
 * e.g. cache/ or traffic/, registered by main): write(ctx, out) at each scrape. The caller owns
 * the struct, which must outlive the registry. */
typedef struct obs_stream {
  void (*write)(void *ctx, FILE *out);
  void *ctx;
} obs_stream;
inferd_status obs_collectors_register_stream(metrics *m, obs_stream *s);

#endif
