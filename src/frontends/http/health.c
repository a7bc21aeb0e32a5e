/* GET /health: one look at the whole server, for orchestrators and people. */
#include <jansson.h>

#include "frontends/http/routes.h"
#include "store/rstore.h"

void health_summary(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  char why[512];
  bool ready = app_ready(c->app, why, sizeof why);
  const char *status = ready ? "ready" : atomic_load(&c->app->draining) ? "draining" : "not_ready";
  json_t *models = json_array();
  SNAPSHOT_REF repo_snapshot *repo = repo_snapshot_acquire(c->app->repo);
  for (size_t i = 0; i < repo->n_models; i++) {
    const repo_model *m = repo_snapshot_model(repo, i);
    for (size_t j = 0; j < m->n_versions; j++) {
      const model_version *mv = repo_model_version_at(m, j);
      model_state s = model_version_state(mv);
      json_t *entry = json_pack("{ss ss ss}", "name", m->name, "version", mv->version_str, "state", model_state_name(s));
      json_object_set_new(entry, "reason", s == MODEL_UNAVAILABLE ? json_string(mv->reason) : json_null());
      json_array_append_new(models, entry);
    }
  }
  json_t *doc = json_pack("{ss sb sb so}", "status", status, "live", 1, "ready", ready, "models", models);
  if (!ready) json_object_set_new(doc, "reason", json_string(why));
  /* shared state: whether Redis answers and which features use their local state meanwhile
   * (not part of readiness: a replica on fallback still serves every prediction) */
  if (c->app->rstore) json_object_set_new(doc, "redis", rstore_health_json(c->app->rstore));
  http_call_reply_json(c, ready ? 200 : 503, doc);
}
