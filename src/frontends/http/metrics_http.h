/* GET /metrics (on the HTTP port, and on the --metrics-port server, which main.c starts as a
 * second http_server serving that path alone), and the HTTP frontend's own gauges for the
 * registry (observability/metrics.h). */
#ifndef INFERD_HTTP_METRICS_H
#define INFERD_HTTP_METRICS_H

#include "core/app.h"
#include "frontends/http/router.h"
#include "observability/metrics.h"

/* The route handler (routes.c). */
void metrics_get(void *call, const route_params *p);

/* A metrics_collector: the connections gauge of the http_server passed as ctx. */
void http_metrics_collect(void *ctx, metrics_text *out);

#endif
