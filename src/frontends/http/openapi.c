/* GET /openapi.json: an OpenAPI 3.1 document generated on each request from the route table the
 * router dispatches with (routes.c) and the feature schemas the validators use (one per loaded
 * model, src/app/features.c). This file only adds words: a summary and the request and
 * response schemas of each route; a route without words here is still listed. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "app/application.h"
#include "core/version.h"
#include "frontends/http/appapi.h"
#include "frontends/http/routes.h"
#include "security/scope.h"

typedef struct route_doc {
  unsigned method;
  const char *pattern;
  const char *tag;
  const char *summary;
  const char *request;  /* component schema of the JSON body; NULL: none */
  const char *response; /* component schema of the 200 answer; NULL: a generic object */
  const char *errors;   /* the error statuses it answers, e.g. "400 404 503" */
  const char *error_schema; /* component of the error bodies; NULL: Error */
  bool hidden;          /* static assets of the docs pages */
} route_doc;

static const route_doc docs[] = {
    {ROUTE_GET, "/v1/models", "Application API", "List the models with their versions and states", NULL, "ModelList", "", NULL, false},
    {ROUTE_GET, "/v1/models/{model}", "Application API",
     "A model: versions (state, load time, sha256), feature schema, outputs, labels, model card; also TF Serving's model status",
     NULL, "ModelDetail", "404", NULL, false},
    {ROUTE_GET, "/v1/models/{model}/versions/{version}", "Application API", "One version of a model", NULL, "ModelDetail",
     "404", NULL, false},
    {ROUTE_POST, "/v1/models/{model}/predict", "Application API",
     "Predict from records of named features (the newest ready version, or X-Model-Version)", "PredictRequest",
     "PredictResponse", "400 404 413 415 503", "ValidationError", false},
    {ROUTE_POST, "/v1/models/{model}/versions/{version}/predict", "Application API", "Predict with one version",
     "PredictRequest", "PredictResponse", "400 404 413 415 503", "ValidationError", false},
    {ROUTE_GET, "/v1/models/{model}/drift", "Application API",
     "Drift of the served data against the version's reference profile: per-feature PSI, Jensen-Shannon distance, KS "
     "over the sliding window, and which features exceed the thresholds (docs/observability.md)",
     NULL, NULL, "404", NULL, false},
    {ROUTE_GET, "/v1/models/{model}/versions/{version}/drift", "Application API", "Drift of one version", NULL, NULL,
     "404", NULL, false},
    {ROUTE_POST, "/v1/models/{model}:predict", "TensorFlow Serving", "TF Serving's REST predict (row or columnar form)",
     "TFPredictRequest", "TFPredictResponse", "400 404 413 415 503", NULL, false},
    {ROUTE_POST, "/v1/models/{model}/versions/{version}:predict", "TensorFlow Serving", "TF Serving's REST predict on one version",
     "TFPredictRequest", "TFPredictResponse", "400 404 413 415 503", NULL, false},
    {ROUTE_POST, "/v1/models/{model}/labels/{version}:predict", "TensorFlow Serving",
     "TF Serving's REST predict on a version label (a traffic alias such as production)", "TFPredictRequest",
     "TFPredictResponse", "400 404 413 415 503", NULL, false},
    {ROUTE_GET, "/v1/models/{model}/traffic", "Traffic", "The model's traffic policy: aliases, weighted arms, sticky key, rollout",
     NULL, NULL, "404 503", NULL, false},
    {ROUTE_PUT, "/v1/models/{model}/traffic", "Traffic",
     "Replace the traffic policy (docs/traffic.md); a version gains traffic only once READY; audited (optional \"reason\")",
     NULL, NULL, "400 404 503", NULL, false},
    {ROUTE_POST, "/v1/models/{model}/traffic/promote", "Traffic", "Promote the rollout's candidate now (body {\"reason\": ...})",
     NULL, NULL, "400 404", NULL, false},
    {ROUTE_POST, "/v1/models/{model}/traffic/rollback", "Traffic", "Send the rollout's candidate back to 0 % now", NULL, NULL,
     "400 404", NULL, false},
    {ROUTE_POST, "/v1/models/{model}/traffic/pause", "Traffic", "Hold the rollout at its step", NULL, NULL, "400 404", NULL,
     false},
    {ROUTE_POST, "/v1/models/{model}/traffic/resume", "Traffic", "Resume a paused rollout (a rolled-back one restarts)", NULL,
     NULL, "400 404", NULL, false},
    {ROUTE_GET, "/v1/models/{model}/traffic/history", "Traffic", "Every change: who, when, action, why, from, to (?limit=N)",
     NULL, NULL, "400 404", NULL, false},
    {ROUTE_GET, "/v1/models/{model}/traffic/report", "Traffic",
     "Per arm: requests, errors, latency p50/p99, and for classifiers the label distribution and mean score", NULL, NULL,
     "404", NULL, false},
    {ROUTE_POST, "/v1/batch/predict", "Batch jobs",
     "Queue an async batch job: {\"model\", \"inputs\": [records], \"callback_url\", \"priority\": \"low\"|\"normal\"}, "
     "or a JSON Lines (application/x-ndjson) or CSV (text/csv) body with ?model=; read as it arrives, up to "
     "--max-job-body-bytes; optional Idempotency-Key header. Answers 202 {batch_id, status, estimated_completion} "
     "(docs/jobs.md)",
     NULL, NULL, "400 404 413 415 429 503", NULL, false},
    {ROUTE_GET, "/v1/batch", "Batch jobs", "The caller's batch jobs, newest first (?offset=&limit=)", NULL, NULL, "400 503", NULL,
     false},
    {ROUTE_GET, "/v1/batch/{id}/status", "Batch jobs",
     "A job's status (queued, processing, completed, failed, cancelled), progress {completed, failed, total}, ETA, timing, webhook",
     NULL, NULL, "404", NULL, false},
    {ROUTE_GET, "/v1/batch/{id}/results", "Batch jobs",
     "Results as JSON Lines in input order, per-record errors inline, ?offset=&limit= (at most 10000); X-Next-Offset and "
     "Link rel=next name the next page",
     NULL, NULL, "400 404", NULL, false},
    {ROUTE_DELETE, "/v1/batch/{id}", "Batch jobs", "Cancel a queued or running job (results so far are kept)", NULL, NULL,
     "400 404", NULL, false},
    {ROUTE_POST, "/v1/files", "OpenAI Batch API",
     "Upload a batch input file (multipart \"file\" + purpose=batch, or a raw JSONL body with ?purpose=batch)", NULL, NULL,
     "400 413 503", NULL, false},
    {ROUTE_GET, "/v1/files/{id}", "OpenAI Batch API", "A file's description", NULL, NULL, "404", NULL, false},
    {ROUTE_GET, "/v1/files/{id}/content", "OpenAI Batch API",
     "A file's content: an input file, or a batch's output (file-out-...) or error (file-err-...) file", NULL, NULL, "404",
     NULL, false},
    {ROUTE_POST, "/v1/batches", "OpenAI Batch API",
     "Create a batch from an input file: {input_file_id, endpoint: /v1/models/{model}/predict, completion_window: 24h}",
     NULL, NULL, "400 404 413 429 503", NULL, false},
    {ROUTE_GET, "/v1/batches", "OpenAI Batch API", "The caller's batches", NULL, NULL, "503", NULL, false},
    {ROUTE_GET, "/v1/batches/{id}", "OpenAI Batch API", "A batch object", NULL, NULL, "404", NULL, false},
    {ROUTE_POST, "/v1/batches/{id}/cancel", "OpenAI Batch API", "Cancel a batch", NULL, NULL, "400 404", NULL, false},
    {ROUTE_POST, "/invocations", "MLflow", "MLflow's scoring protocol on the default model (--default-model)",
     "MLflowRequest", "MLflowResponse", "400 404 413 415 503", "MLflowError", false},
    {ROUTE_GET, "/ping", "MLflow", "MLflow's health check: 200 once every model is loaded", NULL, NULL, "503", NULL, false},
    {ROUTE_GET, "/v2", "Open Inference Protocol", "Server metadata", NULL, NULL, "", NULL, false},
    {ROUTE_GET, "/v2/health/live", "Open Inference Protocol", "Liveness", NULL, NULL, "", NULL, false},
    {ROUTE_GET, "/v2/health/ready", "Open Inference Protocol", "Readiness", NULL, NULL, "503", NULL, false},
    {ROUTE_GET, "/v2/models/{model}", "Open Inference Protocol", "Model metadata (tensors)", NULL, NULL, "404 503", NULL, false},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}", "Open Inference Protocol", "Model version metadata", NULL, NULL,
     "404 503", NULL, false},
    {ROUTE_GET, "/v2/models/{model}/ready", "Open Inference Protocol", "Model readiness", NULL, NULL, "404 503", NULL, false},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}/ready", "Open Inference Protocol", "Model version readiness", NULL,
     NULL, "404 503", NULL, false},
    {ROUTE_POST, "/v2/models/{model}/infer", "Open Inference Protocol", "Inference on tensors (JSON or binary tensor data)",
     "V2InferRequest", "V2InferResponse", "400 404 413 415 503", NULL, false},
    {ROUTE_POST, "/v2/models/{model}/versions/{version}/infer", "Open Inference Protocol", "Inference on one version",
     "V2InferRequest", "V2InferResponse", "400 404 413 415 503", NULL, false},
    {ROUTE_POST, "/v2/repository/index", "Model repository", "Every model version with its state and why (body {\"ready\": true}: ready ones only)",
     NULL, NULL, "400", NULL, false},
    {ROUTE_POST, "/v2/repository/models/{model}/load", "Model repository",
     "Load or reload a model (body {\"parameters\": {\"config\": \"<config.json text>\"}} replaces config.json)", NULL, NULL,
     "400 404 503", NULL, false},
    {ROUTE_POST, "/v2/repository/models/{model}/unload", "Model repository", "Stop serving a model; its versions drain", NULL,
     NULL, "400 404", NULL, false},
    {ROUTE_GET, "/v2/models/{model}/config", "Model repository", "The configuration the model serves with (Triton's field names)",
     NULL, NULL, "404 503", NULL, false},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}/config", "Model repository", "The configuration of one version", NULL,
     NULL, "404 503", NULL, false},
    {ROUTE_GET, "/metrics", "Operations", "Prometheus metrics (text exposition format 0.0.4; docs/observability.md)", NULL,
     NULL, "", NULL, false},
    {ROUTE_GET, "/health", "Operations", "One look at the server and every model version", NULL, NULL, "503", NULL, false},
    {ROUTE_GET, "/openapi.json", "Operations", "This document", NULL, NULL, "", NULL, false},
    {ROUTE_GET, "/docs", "Operations", "Swagger UI", NULL, NULL, "", NULL, false},
    {ROUTE_GET, "/redoc", "Operations", "ReDoc", NULL, NULL, "", NULL, false},
    {ROUTE_GET, "/docs/swagger-ui.css", NULL, NULL, NULL, NULL, NULL, NULL, true},
    {ROUTE_GET, "/docs/swagger-ui-bundle.js", NULL, NULL, NULL, NULL, NULL, NULL, true},
    {ROUTE_GET, "/docs/favicon-32x32.png", NULL, NULL, NULL, NULL, NULL, NULL, true},
    {ROUTE_GET, "/redoc/redoc.standalone.js", NULL, NULL, NULL, NULL, NULL, NULL, true},
};

static const route_doc *find_doc(unsigned method, const char *pattern) {
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
    if ((docs[i].method & method) && strcmp(docs[i].pattern, pattern) == 0) return &docs[i];
  return NULL;
}

static json_t *ref(const char *name) {
  char b[300];
  snprintf(b, sizeof b, "#/components/schemas/%s", name);
  return json_pack("{ss}", "$ref", b);
}

static json_t *json_content(json_t *schema) { return json_pack("{s{so}}", "application/json", "schema", schema); }

/* Component names allow [A-Za-z0-9._-]; other characters of a model name become '_'. */
static void component_name(char *buf, size_t len, const char *model, const char *suffix) {
  snprintf(buf, len, "%s.%s", model, suffix);
  for (char *p = buf; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
      *p = '_';
}

static json_t *generic_schemas(void) {
  json_t *s = json_object();
  json_object_set_new(s, "Error", json_pack("{ss s{s{ss}} s[s]}", "type", "object", "properties", "error", "type", "string",
                                            "required", "error"));
  json_object_set_new(
      s, "ValidationError",
      json_pack("{ss ss s{s{ss} s{ss s{ss s{s{ss} s{ss} s{ss}}}}} s[s]}", "type", "object", "description",
                "Every problem in the body at once, each with its JSON path", "properties", "error", "type", "string",
                "errors", "type", "array", "items", "type", "object", "properties", "path", "type", "string", "kind",
                "type", "string", "message", "type", "string", "required", "error"));
  json_object_set_new(s, "MLflowError", json_pack("{ss s{s{ss} s{ss} s{ss}} s[ss]}", "type", "object", "properties",
                                                  "error_code", "type", "string", "message", "type", "string", "errors",
                                                  "type", "array", "required", "error_code", "message"));
  json_object_set_new(s, "PredictParameters",
                      json_pack("{ss s{s{ss sb} s{ss si}} sb}", "type", "object", "properties", "return_probabilities",
                                "type", "boolean", "default", 1, "top_k", "type", "integer", "minimum", 1,
                                "additionalProperties", 0));
  json_object_set_new(
      s, "PredictRequest",
      json_pack("{ss ss s{s{ss s{ss}} s{ss s{ss s{s{ss} s{}}}} so}}", "type", "object", "description",
                "Records of named features as \"inputs\", or one record as \"features\"; the model's own record schema "
                "is under /v1/models/<name>/predict",
                "properties", "inputs", "type", "array", "items", "type", "object", "features", "type", "array", "items",
                "type", "object", "properties", "name", "type", "string", "value", "parameters",
                ref("PredictParameters")));
  json_object_set_new(
      s, "PredictResponse",
      json_pack("{ss s{s{ss} s{ss} s{ss} s{ss} s{ss s{ss}} s{ss s{s{ss}}} s{ss}} s[sssssss]}", "type", "object",
                "properties", "id", "type", "string", "model", "type", "string", "model_version", "type", "string",
                "created", "type", "integer", "results", "type", "array", "items", "type", "object", "usage", "type",
                "object", "properties", "records", "type", "integer", "inference_time_ms", "type", "number", "required",
                "id", "model", "model_version", "created", "results", "usage", "inference_time_ms"));
  json_object_set_new(s, "ModelList", json_pack("{ss s{s{ss s{ss}}}}", "type", "object", "properties", "models", "type",
                                                "array", "items", "type", "object"));
  json_object_set_new(s, "ModelDetail",
                      json_pack("{ss s{s{ss} s{ss} s{ss} s{} s{} s{} s{ss}}}", "type", "object", "properties", "id",
                                "type", "string", "versions", "type", "array", "model_version_status", "type", "array",
                                "input_schema", "output_schema", "model_card", "class_labels", "type", "array"));
  json_object_set_new(s, "TFPredictRequest",
                      json_pack("{ss ss s{s{ss} s{ss} s{}}}", "type", "object", "description",
                                "Either \"instances\" (one entry per row) or \"inputs\" (columns by input name), not both",
                                "properties", "signature_name", "type", "string", "instances", "type", "array", "inputs"));
  json_object_set_new(s, "TFPredictResponse", json_pack("{ss s{s{} s{}}}", "type", "object", "properties", "predictions",
                                                        "outputs"));
  json_object_set_new(s, "MLflowRequest",
                      json_pack("{ss ss s{s{ss s{s{ss s{ss}} s{ss}}} s{ss s{ss}} s{ss} s{} s{ss}}}", "type", "object",
                                "description", "One of dataframe_split, dataframe_records, instances, inputs", "properties",
                                "dataframe_split", "type", "object", "properties", "columns", "type", "array", "items",
                                "type", "string", "data", "type", "array", "dataframe_records", "type", "array", "items",
                                "type", "object", "instances", "type", "array", "inputs", "params", "type", "object"));
  json_object_set_new(s, "MLflowResponse", json_pack("{ss s{s{ss}} s[s]}", "type", "object", "properties", "predictions",
                                                     "type", "array", "required", "predictions"));
  json_object_set_new(s, "V2InferRequest",
                      json_pack("{ss s{s{ss} s{ss s{ss s{s{ss} s{ss} s{ss s{ss}} s{}}}} s{ss} s{ss}} s[s]}", "type",
                                "object", "properties", "id", "type", "string", "inputs", "type", "array", "items", "type",
                                "object", "properties", "name", "type", "string", "datatype", "type", "string", "shape",
                                "type", "array", "items", "type", "integer", "data", "outputs", "type", "array",
                                "parameters", "type", "object", "required", "inputs"));
  json_object_set_new(s, "V2InferResponse", json_pack("{ss s{s{ss} s{ss} s{ss}}}", "type", "object", "properties",
                                                      "model_name", "type", "string", "model_version", "type", "string",
                                                      "outputs", "type", "array"));
  return s;
}

static json_t *path_parameters(const char *pattern) {
  json_t *params = json_array();
  if (strstr(pattern, "{model}"))
    json_array_append_new(params, json_pack("{ss ss sb s{ss} ss}", "name", "model", "in", "path", "required", 1, "schema",
                                            "type", "string", "description", "model name (a folder of the repository)"));
  if (strstr(pattern, "{id}"))
    json_array_append_new(params, json_pack("{ss ss sb s{ss} ss}", "name", "id", "in", "path", "required", 1, "schema",
                                            "type", "string", "description", "a batch job's id (batch_...) or a file's (file-...)"));
  if (strstr(pattern, "{version}"))
    json_array_append_new(params, json_pack("{ss ss sb s{ss} ss}", "name", "version", "in", "path", "required", 1,
                                            "schema", "type", "string", "description", "model version (a positive integer)"));
  return params;
}

static const char *status_text(int code) {
  switch (code) {
    case 400: return "The request is wrong; the body says what and where";
    case 404: return "No such model or version";
    case 413: return "Too many records, or the body is too large";
    case 415: return "The body is not JSON";
    case 401: return "No credential, or a bad one (WWW-Authenticate says how to authenticate)";
    case 403: return "The credential lacks the scope this needs (x-required-scope)";
    case 503: return "The model is not ready, or the server is draining";
    case 429: return "Over the caller's limits (Retry-After says when to try again)";
    default: return "Error";
  }
}

static const char *route_scope(const route *r) { return r->scope ? r->scope : scope_for_pattern(r->pattern); }

/* What the caller needs, the table's scope (security/scope.h) in the document: "security" lists
 * the schemes with the scope (OpenAPI 3.1 lets non-OAuth schemes name roles), x-required-scope
 * says it plainly, and 401/403 are documented. An open route (a health probe) has an empty
 * "security". Inference needs infer:<model>, the model of the path. */
static void add_security(json_t *op, json_t *responses, const char *scope, const char *pattern) {
  if (scope_is_open(scope)) {
    json_object_set_new(op, "security", json_array());
    return;
  }
  char need[300];
  if (strcmp(scope, SCOPE_INFER) == 0)
    snprintf(need, sizeof need, "%s%s", SCOPE_INFER_PREFIX, strstr(pattern, "{model}") ? "{model}" : "<the model>");
  else
    snprintf(need, sizeof need, "%s", scope);
  json_object_set_new(op, "x-required-scope", json_string(need));
  json_object_set_new(op, "security", json_pack("[{s[s]} {s[s]}]", "apiKey", need, "bearer", need));
  json_object_set_new(responses, "401", json_pack("{ss so}", "description", status_text(401), "content", json_content(ref("Error"))));
  json_object_set_new(responses, "403", json_pack("{ss so}", "description", status_text(403), "content", json_content(ref("Error"))));
}

static json_t *operation(const route *r, const route_doc *d, const char *method) {
  char op_id[300];
  snprintf(op_id, sizeof op_id, "%s %s", method, r->pattern);
  json_t *op = json_pack("{ss ss}", "operationId", op_id, "summary", d && d->summary ? d->summary : r->pattern);
  if (d && d->tag) json_object_set_new(op, "tags", json_pack("[s]", d->tag));
  json_t *params = path_parameters(r->pattern);
  if (d && d->request && strstr(r->pattern, "{version}") == NULL && strncmp(r->pattern, "/v1/models/", 11) == 0)
    json_array_append_new(params, json_pack("{ss ss sb s{ss} ss}", "name", "X-Model-Version", "in", "header", "required", 0,
                                            "schema", "type", "string", "description",
                                            "the version to use when the path names none"));
  if (json_array_size(params)) json_object_set_new(op, "parameters", params);
  else json_decref(params);
  if (d && d->request)
    json_object_set_new(op, "requestBody", json_pack("{sb so}", "required", 1, "content", json_content(ref(d->request))));
  json_t *responses = json_object();
  json_object_set_new(responses, "200", json_pack("{ss so}", "description", "OK", "content",
                                                  json_content(d && d->response ? ref(d->response) : json_pack("{ss}", "type", "object"))));
  const char *errs = d && d->errors ? d->errors : "";
  for (const char *p = errs; *p;) {
    int code = 0, n = 0;
    if (sscanf(p, "%d%n", &code, &n) != 1) break;
    char key[8];
    snprintf(key, sizeof key, "%d", code);
    json_object_set_new(responses, key, json_pack("{ss so}", "description", status_text(code), "content",
                                                  json_content(ref(d->error_schema && code != 404 && code != 503 && code != 415
                                                                       ? d->error_schema
                                                                       : strcmp(d->pattern, "/invocations") == 0 ? "MLflowError"
                                                                                                                 : "Error"))));
    p += n;
  }
  add_security(op, responses, route_scope(r), r->pattern);
  json_object_set_new(op, "responses", responses);
  return op;
}

/* /v1/models/<name>/predict for a model with a feature schema: its own record and result
 * schemas, and an example body Swagger UI's "Try it out" sends as it is. */
static void add_model_paths(json_t *paths, json_t *schemas, const model *m, const model_version *mv, size_t max_records) {
  const features *f = application_features(mv);
  if (f == NULL) return;
  char rec[300], res[300], req[300];
  component_name(rec, sizeof rec, m->name, "Record");
  component_name(res, sizeof res, m->name, "Result");
  component_name(req, sizeof req, m->name, "PredictRequest");
  json_object_set_new(schemas, rec, features_record_schema(f));
  json_object_set_new(schemas, res, features_result_schema(f));
  json_object_set_new(schemas, req,
                      json_pack("{ss s{s{ss so si si} s{ss so} so} sb}", "type", "object", "properties", "inputs", "type",
                                "array", "items", ref(rec), "minItems", 1, "maxItems", (int)max_records, "features", "type",
                                "array", "items", json_pack("{ss s{s{ss} s{}} s[s]}", "type", "object", "properties", "name",
                                                            "type", "string", "value", "required", "name"),
                                "parameters", ref("PredictParameters"), "additionalProperties", 0));
  json_t *resp = json_pack("{ss s{s{ss so}} s[o]}", "type", "object", "properties", "results", "type", "array", "items",
                           ref(res), "allOf", ref("PredictResponse"));
  json_t *example = json_pack("{s[o]}", "inputs", features_example_record(f));
  char path[600], summary[600];
  snprintf(path, sizeof path, "/v1/models/%s/predict", m->name);
  const char *desc = m->config->description;
  snprintf(summary, sizeof summary, "Predict with %s%s%s", m->name, desc ? ": " : "", desc ? desc : "");
  char op_id[700];
  snprintf(op_id, sizeof op_id, "predict %s", m->name);
  json_t *content = json_pack("{s{so so}}", "application/json", "schema", ref(req), "example", example);
  json_t *op = json_pack("{ss ss s[s] s{sb so} s{s{ss so} s{ss so} s{ss so} s{ss so}}}", "operationId", op_id, "summary",
                         summary, "tags", "Models", "requestBody", "required", 1, "content", content, "responses", "200",
                         "description", "One result per record, in order", "content", json_content(resp), "400",
                         "description", status_text(400), "content", json_content(ref("ValidationError")), "413",
                         "description", status_text(413), "content", json_content(ref("ValidationError")), "503",
                         "description", status_text(503), "content", json_content(ref("Error")));
  char need[300];
  snprintf(need, sizeof need, "%s%s", SCOPE_INFER_PREFIX, m->name);
  json_object_set_new(op, "x-required-scope", json_string(need));
  json_object_set_new(op, "security", json_pack("[{s[s]} {s[s]}]", "apiKey", need, "bearer", need));
  json_t *responses = json_object_get(op, "responses");
  json_object_set_new(responses, "401", json_pack("{ss so}", "description", status_text(401), "content", json_content(ref("Error"))));
  json_object_set_new(responses, "403", json_pack("{ss so}", "description", status_text(403), "content", json_content(ref("Error"))));
  json_object_set_new(paths, path, json_pack("{so}", "post", op));
}


static json_t *openapi_document(const app *a) {
  json_t *paths = json_object(), *schemas = generic_schemas();
  size_t n;
  const route *table = http_routes_table(&n);
  static const struct {
    unsigned bit;
    const char *name;
  } methods[] = {{ROUTE_GET, "get"}, {ROUTE_POST, "post"}, {ROUTE_PUT, "put"}, {ROUTE_DELETE, "delete"}};
  for (size_t i = 0; i < n; i++) {
    const route *r = &table[i];
    for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
      if (!(r->methods & methods[k].bit)) continue;
      const route_doc *d = find_doc(methods[k].bit, r->pattern);
      if (d && d->hidden) continue;
      json_t *item = json_object_get(paths, r->pattern);
      if (item == NULL) {
        item = json_object();
        json_object_set_new(paths, r->pattern, item);
      }
      char upper[16];
      snprintf(upper, sizeof upper, "%s", methods[k].name);
      for (char *p = upper; *p; p++) *p = (char)(*p - 'a' + 'A');
      json_object_set_new(item, methods[k].name, operation(r, d, upper));
    }
  }
  SNAPSHOT_REF repo_snapshot *repo = repo_snapshot_acquire(a->repo);
  for (size_t i = 0; i < repo->n_models; i++) {
    const repo_model *m = repo_snapshot_model(repo, i);
    const model_version *mv = repo_model_default_version(m);
    if (mv && model_version_state(mv) == MODEL_READY) {
      size_t max = a->max_records > 0 ? (size_t)a->max_records : APPAPI_DEFAULT_MAX_RECORDS;
      if (mv->model->config->max_batch_size > 0 && (size_t)mv->model->config->max_batch_size < max) max = (size_t)mv->model->config->max_batch_size;
      add_model_paths(paths, schemas, mv->model, mv, max);
    }
  }
  /* the schemes a credential may come in (docs/security.md); whether the server asks for one
   * depends on its flags, so the document describes them always */
  json_t *schemes = json_pack(
      "{s{ss ss ss ss} s{ss ss ss}}", "apiKey", "type", "apiKey", "in", "header", "name", "X-API-Key", "description",
      "An API key made by `inferd keys create` (also accepted as Authorization: Bearer <key>)", "bearer", "type", "http",
      "scheme", "bearer", "description", "Authorization: Bearer <API key or JWT>");
  return json_pack("{ss s{ss ss ss} s[{ss}{ss}{ss}{ss}{ss}{ss}{ss}] so s{so so} s[{s[]}{s[]}]}", "openapi", "3.1.0", "info", "title", "inferd",
                   "version", INFERD_VERSION, "description",
                   "Model inference server: named-feature predictions (/v1), TF Serving and MLflow compatible routes, "
                   "and the Open Inference Protocol (/v2). Generated from the server's route table and each loaded "
                   "model's feature schema.",
                   "tags", "name", "Models", "name", "Application API", "name", "TensorFlow Serving", "name", "MLflow",
                   "name", "Open Inference Protocol", "name", "Batch jobs", "name", "OpenAI Batch API", "paths", paths, "components", "schemas", schemas,
                   "securitySchemes", schemes, "security", "apiKey", "bearer");
}

void openapi_json(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  http_call_reply_json(c, 200, openapi_document(c->app));
}
