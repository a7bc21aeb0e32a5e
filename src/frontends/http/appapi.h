/* What the application-level HTTP routes share (/v1 predict and catalogue, TF Serving's
 * :predict, MLflow's /invocations): reading the JSON body, the record limit, decoding inputs,
 * and handing an inference to core/serve. Each route answers errors in its
 * own protocol's format, so these return a status instead of replying. */
#ifndef INFERD_HTTP_APPAPI_H
#define INFERD_HTTP_APPAPI_H

#include <jansson.h>

#include "app/application.h"
#include "core/infer.h"
#include "core/serve.h"
#include "frontends/http/server.h"

#define APPAPI_DEFAULT_MAX_RECORDS 1000

/* Refuses work while draining, and bodies that are not JSON (415). */
inferd_status appapi_precheck(http_call *c);
/* Parses the body; 400 with line and column when it is not JSON, or not an object. */
inferd_status appapi_parse_body(http_call *c, json_t **out);
/* Records one request may carry: --max-records, and the model's max_batch_size. */
size_t appapi_max_records(const http_call *c, const model_version *mv);
/* "2026-11-22T15:30:00Z" */
void appapi_iso_time(time_t t, char *buf, size_t len);



/* Input given as TF Serving's "instances" (rows) or "inputs" (columns), also MLflow's:
 * when the model has a feature schema and the body's objects name features (not input
 * tensors), it is records, validated and encoded by features_encode (errors into errs);
 * otherwise tensors as nested lists, by input name (or bare for a one-input model). */
typedef struct appapi_inputs {
  bool records;       /* went through the feature schema */
  size_t n_records;   /* rows along the batch dimension */
  tensor *tensors;    /* owned */
  size_t n_tensors;
} appapi_inputs;

/* Returns INVALID_ARGUMENT (the message, or errs when it holds the problems), TOO_LARGE over
 * the record limit, or OK with out filled. rows_as_features: a row that is an array of values
 * is one record in feature order (MLflow), rather than one tensor row (TF Serving). */
inferd_status appapi_decode_inputs(http_call *c, model_version *mv, const json_t *v, bool columnar,
                                   const char *base, bool rows_as_features, appapi_inputs *out,
                                   feature_errors *errs);
/* TF Serving's response forms of a completed request: row ("predictions": one output bare,
 * several as a list of per-row objects) or columnar ("outputs": bare or by name). */
json_t *appapi_outputs_rows(const infer_request *req);
/* Frees what a failed appapi_decode_inputs left. */
void appapi_inputs_clear(appapi_inputs *in);
json_t *appapi_outputs_columns(const infer_request *req);

/* Hands an inference to core/serve: the model, the path's version (else the X-Model-Version
 * header, else the default), X-Request-Timeout-Ms. decode (the route's, run once the version
 * is known) fills the request; done(req, user) runs on a worker and must destroy req. Not OK:
 * nothing was handed over, the route answers the status. */
/* appapi_serve with the records' field lookup the route stage reads a sticky key from
 * (serve_request.record_field, called with user): the /v1 route's. */
inferd_status appapi_serve_records(http_call *c, const char *model, const char *version,
                                   inferd_status (*decode)(serve_request *sr, infer_request *req), infer_done_fn done,
                                   void *user,
                                   inferd_status (*record_field)(void *user, const char *name, const char **value));
inferd_status appapi_serve(http_call *c, const char *model, const char *version,
                          inferd_status (*decode)(serve_request *sr, infer_request *req), infer_done_fn done,
                          void *user);
/* In a decode: the routed version for the access log (serve adds the X-Model-Version header). */
void appapi_routed(http_call *c, const serve_request *sr);
/* In a decode: moves in's tensors into req and names the outputs wanted (none: all). */
inferd_status appapi_fill(infer_request *req, appapi_inputs *in, const char *const *outputs, size_t n_outputs);
#endif
