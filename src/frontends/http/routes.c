#include "frontends/http/routes.h"

#include <stdio.h>
#include <string.h>

#include "frontends/http/metrics_http.h"

static const route routes[] = {
    {ROUTE_GET, "/v2", v2_server_metadata},
    {ROUTE_GET, "/v2/health/live", v2_health_live},
    {ROUTE_GET, "/v2/health/ready", v2_health_ready},
    /* before /v2/models/{model}: the first match wins */
    {ROUTE_GET, "/v2/models/stats", v2_model_stats},
    {ROUTE_GET, "/v2/models/{model}/stats", v2_model_stats},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}/stats", v2_model_stats},
    {ROUTE_GET, "/v2/models/{model}/config", v2_model_config},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}/config", v2_model_config},
    {ROUTE_GET, "/v2/models/{model}", v2_model_metadata},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}", v2_model_metadata},
    {ROUTE_GET, "/v2/models/{model}/ready", v2_model_ready},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}/ready", v2_model_ready},
    {ROUTE_POST, "/v2/models/{model}/infer", v2_model_infer},
    {ROUTE_POST, "/v2/models/{model}/versions/{version}/infer", v2_model_infer},
    /* the model repository extension (repository_api.c): admin routes */
    {ROUTE_POST, "/v2/repository/index", repository_index},
    {ROUTE_POST, "/v2/repository/models/{model}/load", repository_model_load},
    {ROUTE_POST, "/v2/repository/models/{model}/unload", repository_model_unload},
    {ROUTE_GET, "/health", health_summary},
    {ROUTE_GET, "/metrics", metrics_get}, /* Prometheus (metrics_http.c) */
    /* the application API (v1.c); TF Serving's model status shares GET /v1/models/{model} */
    {ROUTE_GET, "/v1/models", v1_models_list},
    {ROUTE_GET, "/v1/models/{model}", v1_model_get},
    {ROUTE_GET, "/v1/models/{model}/versions/{version}", v1_model_get},
    {ROUTE_POST, "/v1/models/{model}/predict", v1_predict},
    {ROUTE_POST, "/v1/models/{model}/versions/{version}/predict", v1_predict},
    /* TF Serving's REST predict (tfserving.c) and MLflow's scoring protocol (mlflow.c) */
    {ROUTE_POST, "/v1/models/{model}:predict", tfserving_predict},
    {ROUTE_POST, "/v1/models/{model}/versions/{version}:predict", tfserving_predict},
    {ROUTE_POST, "/invocations", mlflow_invocations},
    {ROUTE_GET, "/ping", mlflow_ping},
    /* the API's own documentation (openapi.c, docs_ui.c) */
    {ROUTE_GET, "/openapi.json", openapi_json},
    {ROUTE_GET, "/docs", docs_swagger_ui},
    {ROUTE_GET, "/docs/swagger-ui.css", docs_asset},
    {ROUTE_GET, "/docs/swagger-ui-bundle.js", docs_asset},
    {ROUTE_GET, "/docs/favicon-32x32.png", docs_asset},
    {ROUTE_GET, "/redoc", docs_redoc},
    {ROUTE_GET, "/redoc/redoc.standalone.js", docs_asset},
};

const route *http_routes_table(size_t *n) {
  *n = sizeof routes / sizeof routes[0];
  return routes;
}

static unsigned method_of(const http_call *c) {
  static const struct {
    const char *name;
    unsigned bit;
  } m[] = {{"GET", ROUTE_GET}, {"POST", ROUTE_POST}, {"HEAD", ROUTE_HEAD}, {"PUT", ROUTE_PUT}, {"DELETE", ROUTE_DELETE}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (strcmp(c->method, m[i].name) == 0) return m[i].bit;
  return ROUTE_OTHER;
}

void http_routes_dispatch(http_call *c) {
  const route *r;
  route_params params;
  unsigned allowed = 0;
  inferd_status st;
  switch (router_match(routes, sizeof routes / sizeof routes[0], c->path, method_of(c), &r, &params, &allowed)) {
    case ROUTE_MATCHED:
      snprintf(c->model, sizeof c->model, "%s", params.model);
      r->handler(c, &params);
      return;
    case ROUTE_BAD_METHOD: {
      char list[64];
      http_call_add_reply_header(c, "Allow", router_methods_str(allowed, list, sizeof list));
      st = status_make(INFERD_METHOD_NOT_ALLOWED, "%s is not allowed on %s (allowed: %s)", c->method, c->path, list);
      break;
    }
    case ROUTE_BAD_PARAM:
      st = status_make(INFERD_NOT_FOUND, "malformed model name or version in path '%s'", c->path);
      break;
    default:
      st = status_make(INFERD_NOT_FOUND, "no route for %s %s", c->method, c->path);
      break;
  }
  http_call_reply_error(c, &st);
}
