/* GET /metrics on the HTTP port, the --metrics-port listener, and the HTTP frontend's own gauges
 * for the registry (observability/metrics.h). */
#ifndef INFERD_HTTP_METRICS_H
#define INFERD_HTTP_METRICS_H

#include "core/app.h"
#include "frontends/http/router.h"
#include "observability/metrics.h"

/* The route handler (routes.c). */
void metrics_get(void *call, const route_params *p);

/* A metrics_collector: the connections gauge of the http_server passed as ctx. */
void http_metrics_collect(void *ctx, metrics_text *out);

/* --metrics-port: GET /metrics alone, on its own port and thread. port 0: any free port. */
typedef struct metrics_port metrics_port;
inferd_status metrics_port_start(const char *host, int port, app *a, metrics_port **out);
int metrics_port_port(const metrics_port *mp);
void metrics_port_stop(metrics_port *mp);

#endif
