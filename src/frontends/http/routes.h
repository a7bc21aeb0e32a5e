/* The HTTP route table: every path the server answers and the handler for it. */
#ifndef INFERD_HTTP_ROUTES_H
#define INFERD_HTTP_ROUTES_H

#include "frontends/http/server.h"
#include "security/scope.h"

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
/* the model repository extension (repository_api.c): admin routes */
void repository_index(void *call, const route_params *p);
void repository_model_load(void *call, const route_params *p);
void repository_model_unload(void *call, const route_params *p);
void v2_model_config(void *call, const route_params *p);
void v1_models_list(void *call, const route_params *p);
void v1_model_get(void *call, const route_params *p);
void v1_predict(void *call, const route_params *p);
void v1_model_drift(void *call, const route_params *p); /* drift_api.c */
void tfserving_predict(void *call, const route_params *p);
void mlflow_invocations(void *call, const route_params *p);
void mlflow_ping(void *call, const route_params *p);
/* the traffic admin API (traffic_api.c): admin routes */
void traffic_api_policy(void *call, const route_params *p);
void traffic_api_promote(void *call, const route_params *p);
void traffic_api_rollback(void *call, const route_params *p);
void traffic_api_pause(void *call, const route_params *p);
void traffic_api_resume(void *call, const route_params *p);
void traffic_api_history(void *call, const route_params *p);
void traffic_api_report(void *call, const route_params *p);
/* async batch jobs and OpenAI's Batch API shape (jobs_api.c) */
void jobs_api_submit(void *call, const route_params *p);
inferd_status jobs_api_open_upload(void *call, const route_params *p);
void jobs_api_list(void *call, const route_params *p);
void jobs_api_status(void *call, const route_params *p);
void jobs_api_results(void *call, const route_params *p);
void jobs_api_cancel(void *call, const route_params *p);
void jobs_api_file_upload(void *call, const route_params *p);
inferd_status jobs_api_open_file(void *call, const route_params *p);
void jobs_api_file_get(void *call, const route_params *p);
void jobs_api_file_content(void *call, const route_params *p);
void jobs_api_batches(void *call, const route_params *p);
void jobs_api_batch_get(void *call, const route_params *p);
void jobs_api_batch_cancel(void *call, const route_params *p);
void openapi_json(void *call, const route_params *p);
void docs_swagger_ui(void *call, const route_params *p);
void docs_redoc(void *call, const route_params *p);
void docs_asset(void *call, const route_params *p);

/* The route table itself, for the OpenAPI document generated from it (openapi.c). */
const route *http_routes_table(size_t *n);

#endif
