/* The HTTP route table, with the scope each route needs, and the dispatch: CORS, then
 * authentication and the route's scope (security/), then the handler. */
#include "frontends/http/routes.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "frontends/http/server_internal.h"
#include "security/auth.h"
#include "security/cors.h"
#include "security/scope.h"

#include "frontends/http/metrics_http.h"

static const route routes[] = {
    {ROUTE_GET, "/v2", v2_server_metadata, SCOPE_READ, NULL},
    {ROUTE_GET, "/v2/health/live", v2_health_live, SCOPE_OPEN, NULL},
    {ROUTE_GET, "/v2/health/ready", v2_health_ready, SCOPE_OPEN, NULL},
    /* before /v2/models/{model}: the first match wins */
    {ROUTE_GET, "/v2/models/stats", v2_model_stats, SCOPE_READ, NULL},
    {ROUTE_GET, "/v2/models/{model}/stats", v2_model_stats, SCOPE_READ, NULL},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}/stats", v2_model_stats, SCOPE_READ, NULL},
    {ROUTE_GET, "/v2/models/{model}/config", v2_model_config, SCOPE_READ, NULL},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}/config", v2_model_config, SCOPE_READ, NULL},
    {ROUTE_GET, "/v2/models/{model}", v2_model_metadata, SCOPE_READ, NULL},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}", v2_model_metadata, SCOPE_READ, NULL},
    {ROUTE_GET, "/v2/models/{model}/ready", v2_model_ready, SCOPE_READ, NULL},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}/ready", v2_model_ready, SCOPE_READ, NULL},
    {ROUTE_POST, "/v2/models/{model}/infer", v2_model_infer, SCOPE_INFER, NULL},
    {ROUTE_POST, "/v2/models/{model}/versions/{version}/infer", v2_model_infer, SCOPE_INFER, NULL},
    /* Triton's generate extension (openai.c) */
    {ROUTE_POST, "/v2/models/{model}/generate", triton_generate, SCOPE_INFER, NULL},
    {ROUTE_POST, "/v2/models/{model}/versions/{version}/generate", triton_generate, SCOPE_INFER, NULL},
    {ROUTE_POST, "/v2/models/{model}/generate_stream", triton_generate, SCOPE_INFER, NULL},
    {ROUTE_POST, "/v2/models/{model}/versions/{version}/generate_stream", triton_generate, SCOPE_INFER, NULL},
    /* the model repository extension (repository_api.c): admin routes */
    {ROUTE_POST, "/v2/repository/index", repository_index, SCOPE_ADMIN, NULL},
    {ROUTE_POST, "/v2/repository/models/{model}/load", repository_model_load, SCOPE_ADMIN, NULL},
    {ROUTE_POST, "/v2/repository/models/{model}/unload", repository_model_unload, SCOPE_ADMIN, NULL},
    {ROUTE_GET, "/health", health_summary, SCOPE_OPEN, NULL},
    {ROUTE_GET, "/metrics", metrics_get, SCOPE_METRICS, NULL}, /* Prometheus (metrics_http.c) */
    /* the application API (v1.c); TF Serving's model status shares GET /v1/models/{model} */
    {ROUTE_GET, "/v1/models", v1_models_list, SCOPE_READ, NULL},
    {ROUTE_GET, "/v1/models/{model}", v1_model_get, SCOPE_READ, NULL},
    {ROUTE_GET, "/v1/models/{model}/versions/{version}", v1_model_get, SCOPE_READ, NULL},
    {ROUTE_POST, "/v1/models/{model}/predict", v1_predict, SCOPE_INFER, NULL},
    {ROUTE_POST, "/v1/models/{model}/versions/{version}/predict", v1_predict, SCOPE_INFER, NULL},
    {ROUTE_GET, "/v1/models/{model}/drift", v1_model_drift, SCOPE_READ, NULL},
    {ROUTE_GET, "/v1/models/{model}/versions/{version}/drift", v1_model_drift, SCOPE_READ, NULL},
    /* TF Serving's REST predict (tfserving.c) and MLflow's scoring protocol (mlflow.c) */
    {ROUTE_POST, "/v1/models/{model}:predict", tfserving_predict, SCOPE_INFER, NULL},
    {ROUTE_POST, "/v1/models/{model}/versions/{version}:predict", tfserving_predict, SCOPE_INFER, NULL},
    {ROUTE_POST, "/v1/models/{model}/labels/{version}:predict", tfserving_predict, SCOPE_INFER, NULL}, /* a label: an alias */
    /* the traffic admin API (traffic_api.c): admin routes */
    {ROUTE_GET | ROUTE_PUT, "/v1/models/{model}/traffic", traffic_api_policy, SCOPE_ADMIN, NULL},
    {ROUTE_POST, "/v1/models/{model}/traffic/promote", traffic_api_promote, SCOPE_ADMIN, NULL},
    {ROUTE_POST, "/v1/models/{model}/traffic/rollback", traffic_api_rollback, SCOPE_ADMIN, NULL},
    {ROUTE_POST, "/v1/models/{model}/traffic/pause", traffic_api_pause, SCOPE_ADMIN, NULL},
    {ROUTE_POST, "/v1/models/{model}/traffic/resume", traffic_api_resume, SCOPE_ADMIN, NULL},
    {ROUTE_GET, "/v1/models/{model}/traffic/history", traffic_api_history, SCOPE_READ, NULL},
    {ROUTE_GET, "/v1/models/{model}/traffic/report", traffic_api_report, SCOPE_READ, NULL},
    /* OpenAI's API (openai.c): the model is named in the body, so infer:<model> is checked by
     * the admit stage; the model list is GET /v1/models above, which carries OpenAI's fields */
    {ROUTE_POST, "/v1/chat/completions", openai_chat_completions, SCOPE_INFER, NULL},
    {ROUTE_POST, "/v1/completions", openai_completions, SCOPE_INFER, NULL},
    {ROUTE_POST, "/v1/embeddings", openai_embeddings, SCOPE_INFER, NULL},
    /* async batch jobs (jobs_api.c): the uploads take their body as it arrives (open_sink) */
    {ROUTE_POST, "/v1/batch/predict", jobs_api_submit, SCOPE_JOBS, jobs_api_open_upload},
    {ROUTE_GET, "/v1/batch", jobs_api_list, SCOPE_JOBS, NULL},
    {ROUTE_GET, "/v1/batch/{id}/status", jobs_api_status, SCOPE_JOBS, NULL},
    {ROUTE_GET, "/v1/batch/{id}/results", jobs_api_results, SCOPE_JOBS, NULL},
    {ROUTE_DELETE, "/v1/batch/{id}", jobs_api_cancel, SCOPE_JOBS, NULL},
    /* OpenAI's Batch API shape (jobs_api.c) */
    {ROUTE_POST, "/v1/files", jobs_api_file_upload, SCOPE_JOBS, jobs_api_open_file},
    {ROUTE_GET, "/v1/files/{id}", jobs_api_file_get, SCOPE_JOBS, NULL},
    {ROUTE_GET, "/v1/files/{id}/content", jobs_api_file_content, SCOPE_JOBS, NULL},
    {ROUTE_POST | ROUTE_GET, "/v1/batches", jobs_api_batches, SCOPE_JOBS, NULL},
    {ROUTE_GET, "/v1/batches/{id}", jobs_api_batch_get, SCOPE_JOBS, NULL},
    {ROUTE_POST, "/v1/batches/{id}/cancel", jobs_api_batch_cancel, SCOPE_JOBS, NULL},
    {ROUTE_POST, "/invocations", mlflow_invocations, SCOPE_INFER, NULL},
    {ROUTE_GET, "/ping", mlflow_ping, SCOPE_OPEN, NULL},
    /* the API's own documentation (openapi.c, docs_ui.c) */
    {ROUTE_GET, "/openapi.json", openapi_json, SCOPE_READ, NULL},
    {ROUTE_GET, "/docs", docs_swagger_ui, SCOPE_READ, NULL},
    {ROUTE_GET, "/docs/swagger-ui.css", docs_asset, SCOPE_READ, NULL},
    {ROUTE_GET, "/docs/swagger-ui-bundle.js", docs_asset, SCOPE_READ, NULL},
    {ROUTE_GET, "/docs/favicon-32x32.png", docs_asset, SCOPE_READ, NULL},
    {ROUTE_GET, "/redoc", docs_redoc, SCOPE_READ, NULL},
    {ROUTE_GET, "/redoc/redoc.standalone.js", docs_asset, SCOPE_READ, NULL},
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

/* Headers a browser script may read from a cross-origin reply (the simple ones it always may).
 * Every reply header a stage or route adds belongs here unless it only matters to the browser
 * itself (CORS, Vary, the docs pages' security headers): test_cors_exposes_every_reply_header
 * reads the source's header names and fails on one missing. */
#define CORS_EXPOSE                                                                                       \
  "X-Request-ID, X-Model-Version, X-Model-Arm, X-Cache, Retry-After, RateLimit, RateLimit-Policy, "         \
  "Inference-Header-Content-Length, Content-Encoding, traceparent, Server-Timing, WWW-Authenticate, Location, Link, " \
  "X-Next-Offset, X-Total-Records, X-Batch-Status, Idempotent-Replayed"
#define CORS_ALLOW_HEADERS \
  "Authorization, X-API-Key, Content-Type, Content-Encoding, X-Request-ID, X-Request-Timeout-Ms, X-Model-Version, " \
  "Idempotency-Key, " \
  "Inference-Header-Content-Length"

/* CORS (--cors-origins): answers a preflight itself (true), or marks an allowed origin's
 * reply readable. Off, or an Origin not listed: no CORS header, and the browser keeps the
 * reply from the page. Runs before authentication: a preflight carries no credential. */
static bool cors_handle(http_call *c) {
  const cors_policy *cp = c->srv->opts.cors;
  const char *origin = cp ? http_call_header(c, "Origin") : NULL;
  if (origin == NULL) return false;
  bool allowed = cors_allows(cp, origin);
  if (strcmp(c->method, "OPTIONS") == 0 && http_call_header(c, "Access-Control-Request-Method")) {
    if (!allowed) {
      inferd_status st = status_make(INFERD_PERMISSION_DENIED, "the origin is not allowed to call this server (--cors-origins)");
      http_call_add_reply_header(c, "Vary", "Origin");
      http_call_reply_error(c, &st);
      return true;
    }
    const char *want = http_call_header(c, "Access-Control-Request-Headers");
    http_call_add_reply_header(c, "Access-Control-Allow-Origin", origin);
    http_call_add_reply_header(c, "Vary", "Origin");
    http_call_add_reply_header(c, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, HEAD");
    http_call_add_reply_header(c, "Access-Control-Allow-Headers", want && *want && cors_headers_token_list(want) ? want : CORS_ALLOW_HEADERS);
    http_call_add_reply_header(c, "Access-Control-Max-Age", "600");
    /* 200 with no body rather than 204: the wire layer always sends Content-Length, which a
     * 204 must not carry; browsers take any 2xx */
    c->status = 200;
    c->content_type = "text/plain";
    http_call_reply(c);
    return true;
  }
  http_call_add_reply_header(c, "Vary", "Origin");
  if (allowed) {
    http_call_add_reply_header(c, "Access-Control-Allow-Origin", origin);
    http_call_add_reply_header(c, "Access-Control-Expose-Headers", CORS_EXPOSE);
  }
  return false;
}

static const char *call_meta(void *ctx, const char *name) { return http_call_header(ctx, name); }

/* Who is calling, and may they: every route but an open one (and every unknown path, so a
 * caller without a credential learns nothing of the routes) needs a credential; a matched
 * route needs its scope, and an inference route whose path names the model infer:<model>
 * (the admit stage checks it again, for the routes that name the model in the body). */
static inferd_status admit_status(http_call *c, const route *r, const route_params *params) {
  auth *au = c->srv->opts.auth;
  if (!auth_enabled(au)) return status_ok();
  const char *need = r ? (r->scope ? r->scope : scope_for_pattern(r->pattern)) : NULL;
  if (need && scope_is_open(need)) return status_ok();
  bool invalid = false;
  inferd_status st = status_ok();
  if (c->principal == NULL) { /* a route with a body sink authenticated at its head already */
    const principal *p = NULL;
    st = auth_authenticate_memo(au, http_conn_auth_memo(c), call_meta, c, c->client_subject, (int64_t)time(NULL), &p,
                                &invalid);
    if (status_is_ok(&st)) c->principal = p;
  }
  if (status_is_ok(&st) && r) st = auth_check(au, c->principal, need, params->model);
  if (st.code == INFERD_UNAUTHENTICATED) http_call_add_reply_header(c, "WWW-Authenticate", auth_challenge(invalid));
  return st;
}

static bool admit_call(http_call *c, const route *r, const route_params *params) {
  inferd_status st = admit_status(c, r, params);
  if (status_is_ok(&st)) return true;
  http_call_reply_error(c, &st);
  return false;
}

/* Whether path is a body-sink route's (their patterns are literal paths; a trailing slash
 * allowed): a cheap test, so that every other request (nearly all) is not matched against the
 * whole table twice (in http_routes_open_sink and in dispatch). */
static bool sink_path(const char *path) {
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (routes[i].open_sink == NULL) continue;
    size_t len = strlen(routes[i].pattern);
    if (strncmp(path, routes[i].pattern, len) == 0 && (path[len] == '\0' || (path[len] == '/' && path[len + 1] == '\0')))
      return true;
  }
  return false;
}

inferd_status http_routes_open_sink(http_call *c) {
  if (!sink_path(c->path)) return status_ok();
  const route *r = NULL;
  route_params params;
  unsigned allowed = 0;
  if (router_match(routes, sizeof routes / sizeof routes[0], c->path, method_of(c), &r, &params, &allowed) != ROUTE_MATCHED ||
      r->open_sink == NULL)
    return status_ok(); /* buffered as usual (another method: dispatch answers what is wrong) */
  TRY(admit_status(c, r, &params));
  /* cppcheck-suppress returnDanglingLifetime ; a status by value: nothing of params escapes */
  return r->open_sink(c, &params);
}

void http_routes_dispatch(http_call *c) {
  if (cors_handle(c)) return;
  const route *r = NULL;
  route_params params;
  unsigned allowed = 0;
  inferd_status st;
  const char *only = c->srv->opts.only_path;
  if (only && strcmp(c->path, only) != 0) {
    st = status_make(INFERD_NOT_FOUND, "this port serves %s only", only);
    http_call_reply_error(c, &st);
    return;
  }
  route_result rr = router_match(routes, sizeof routes / sizeof routes[0], c->path, method_of(c), &r, &params, &allowed);
  if (rr == ROUTE_MATCHED) snprintf(c->model, sizeof c->model, "%s", params.model); /* logged on a refusal too */
  if (!admit_call(c, rr == ROUTE_MATCHED ? r : NULL, &params)) return;
  switch (rr) {
    case ROUTE_MATCHED:
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
