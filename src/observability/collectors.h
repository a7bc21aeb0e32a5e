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

/* Any module that writes its metrics as Prometheus text to a FILE* (one that may not link this
 * layer, such as traffic) as a collector: sc->write(sc->ctx, f) runs at each scrape, through a
 * memory stream. The caller owns sc (no allocation here), which must outlive the registry's
 * scrapes. Before serving starts. */
typedef struct obs_stream_collector {
  void (*write)(void *ctx, FILE *f);
  void *ctx;
} obs_stream_collector;
inferd_status obs_collectors_register_stream(metrics *m, obs_stream_collector *sc);

#endif
