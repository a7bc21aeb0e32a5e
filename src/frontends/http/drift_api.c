/* GET /v1/models/{model}[/versions/{version}]/drift: the drift report of a model version
 * (observability/drift.h): the window, its sample counts, each feature's scores and levels. */
#include <jansson.h>
#include <stdio.h>

#include "core/repository.h"
#include "frontends/http/routes.h"
#include "observability/drift.h"
#include "util/monotime.h"

void v1_model_drift(void *call, const route_params *p) {
  http_call *c = call;
  VERSION_REF model_version *mv = NULL;
  inferd_status st = repo_acquire(c->app->repo, p->model, p->version, REPO_READY, &mv);
  json_t *doc = NULL;
  if (status_is_ok(&st)) {
    snprintf(c->version, sizeof c->version, "%s", mv->version_str);
    st = drift_report_json(mv, monotime_ns(), &doc);
  }
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  http_call_reply_json(c, 200, doc);
}
