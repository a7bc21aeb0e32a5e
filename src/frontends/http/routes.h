/* The HTTP route table: every path the server answers and the handler for it. */
#ifndef INFERD_HTTP_ROUTES_H
#define INFERD_HTTP_ROUTES_H

#include "frontends/http/server.h"

/* Routes the call to its handler, or answers 404/405 itself. */
void http_routes_dispatch(http_call *c);

/* Handlers, each in the module of its API. */
void v2_server_metadata(void *call, const route_params *p);
void v2_health_live(void *call, const route_params *p);
void v2_health_ready(void *call, const route_params *p);
void v2_model_metadata(void *call, const route_params *p);
void v2_model_ready(void *call, const route_params *p);
void v2_model_infer(void *call, const route_params *p);
void v2_model_stats(void *call, const route_params *p);
void health_summary(void *call, const route_params *p);

#endif
