/* observability/collectors: the other observability modules' metrics (tracing's export counters,
 * drift scores, payload capture's drops) as collectors of the metrics registry, so /metrics shows
 * them beside the registry's own families. */
#ifndef INFERD_OBS_COLLECTORS_H
#define INFERD_OBS_COLLECTORS_H

#include "core/app.h"
#include "core/status.h"
#include "observability/capture.h"
#include "observability/metrics.h"
#include "observability/trace.h"

/* Registers what exists: drift always (versions without a profile show nothing), tracing and
 * capture when they are on (NULL: off). Before serving starts. */
inferd_status obs_collectors_register(metrics *m, app *a, tracer *t, capture *c);

#endif
