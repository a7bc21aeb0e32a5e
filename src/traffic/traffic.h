/* traffic/traffic: the live traffic layer of one server: each model's policy as an immutable
 * published snapshot, the route stage's resolver, per-arm statistics from the completion
 * stage, the rollout tick, the durable store and audit log, and the admin operations the
 * HTTP API and the CLI drive (docs/traffic.md). */
#ifndef INFERD_TRAFFIC_H
#define INFERD_TRAFFIC_H

#include <jansson.h>
#include <stdio.h>

#include "core/app.h"
#include "core/status.h"

typedef struct traffic traffic;

typedef struct traffic_options {
  const char *state_dir;        /* the SQLite store and the audit log; NULL: beside the repository */
  const char *model_repository; /* read for config.json "traffic" start-up defaults */
  int tick_ms;                  /* the rollout tick; 0: 100 */
  struct rstore *rstore;        /* shared state in Redis (docs/redis.md); NULL: the local store only */
} traffic_options;

/* Loads the stored state (and config.json defaults for models without one), registers the
 * route resolver and the completion handler with a->serve, and starts the rollout tick. */
inferd_status traffic_create(app *a, const traffic_options *o, traffic **out);
void traffic_destroy(traffic *t);

/* The admin operations. who: the caller's name ("anonymous" when NULL); why: free text or NULL.
 * Each returns a JSON document for the reply in *out. */
inferd_status traffic_get(traffic *t, const char *model, json_t **out);
/* body: a policy (traffic/policy.h's JSON) plus an optional "reason". */
inferd_status traffic_put(traffic *t, const char *model, const json_t *body, const char *who, json_t **out);
/* action: promote, rollback, pause or resume. */
inferd_status traffic_action(traffic *t, const char *model, const char *action, const char *why, const char *who,
                             json_t **out);
inferd_status traffic_history(traffic *t, const char *model, int limit, json_t **out);
inferd_status traffic_report(traffic *t, const char *model, json_t **out);

/* The report's figures as Prometheus text (format 0.0.4), for /metrics: per arm (requests,
 * errors, a latency histogram, labels, mean score, weight, the version answering), each rollout's
 * state, step and candidate share, and the shadow comparison. Labels: model, arm, and bounded
 * ones (state, stat, a classifier's first 32 labels, FP32 output names). Scrape time only. */
void traffic_metrics_write(traffic *t, FILE *out);

#endif
