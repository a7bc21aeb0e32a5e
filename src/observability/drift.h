/* observability/drift: data drift of a model version's inputs and predictions, in the server.
 * Each loaded version with a reference_profile.json (drift_profile.h) gets a sliding window —
 * a ring of time buckets of atomic counters over the profile's bins — that the DRIFT
 * completion stage feeds from every request served (/v1 records by feature name through the
 * application schema, V2 tensors too; by position when the model declares no schema). The
 * scores (PSI, Jensen-Shannon distance, KS) are computed when asked: by the drift route, the
 * metrics, and once per bucket period to log threshold crossings (once per window each). */
#ifndef INFERD_DRIFT_H
#define INFERD_DRIFT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "core/infer.h"
#include "core/model.h"
#include "core/repository.h"
#include "core/status.h"

struct serve;

typedef struct drift_options {
  int64_t window_ms;  /* the sliding window (default 300000: 5 minutes) */
  int buckets;        /* time buckets it is made of (default 10): it slides by window / buckets */
  double psi_warn;    /* PSI from which a feature is "warn" (default 0.1) */
  double psi_alert;   /* and "alert" (default 0.25) */
  long min_samples;   /* below this many rows in the window no feature is flagged (default 500):
                         PSI's own sampling noise is about (bins - 1) / rows, 0.02 at 500 rows
                         over 10 bins, but 0.09 at 100, near the warn threshold */
} drift_options;

#define DRIFT_DEFAULT_OPTIONS \
  ((drift_options){.window_ms = 300000, .buckets = 10, .psi_warn = 0.1, .psi_alert = 0.25, .min_samples = 500})

/* Registers the version-load hook that reads each version's reference profile (call once at
 * start, after application_register, whose feature schema it binds to, and before the
 * repository opens). The options are fixed from then on. A missing profile turns drift off for
 * that version; an unusable one is logged and reported by the route, and the version serves. */
inferd_status drift_register(const drift_options *opts);
/* Loads the drift data of a version built outside the repository (unit tests; signature
 * already set) into its slot, registering the hook first with the options if needed. */
inferd_status drift_attach(model_version *mv, const drift_options *opts);
/* Adds the DRIFT completion handler to the pipeline. */
inferd_status drift_serve_register(struct serve *s);

/* The pure window update and evaluation, for tests: observe one completed request at now_ns. */
void drift_observe_at(const model_version *mv, const infer_request *req, int64_t now_ns);

/* The report of the drift route (GET /v1/models/{m}/drift):
 *   {"model", "version", "window_seconds", "bucket_seconds", "samples", "reference_rows",
 *    "thresholds": {"psi_warn", "psi_alert", "min_samples"},
 *    "features": [{"name", "type", "samples", "psi", "js_distance", "ks", "level"}, ...],
 *    "prediction": {...} | null, "warn": [features], "alert": [features], "warnings_logged"}
 * level: "ok", "warn", "alert", or "insufficient_data" (fewer than min_samples rows).
 * NOT_FOUND (naming the version) when it has no usable profile. Logs the crossings it sees,
 * once per window each, as the request path does. */
inferd_status drift_report_json(const model_version *mv, int64_t now_ns, json_t **out);

/* Prometheus text lines for every loaded version with a profile:
 *   inferd_feature_drift{model,version,feature,statistic="psi"|"js_distance"|"ks"} (gauge;
 *   feature "prediction" is the predictions' distribution), inferd_drift_window_samples{model,version}
 *   (gauge), inferd_drift_warnings_total{model,version} (counter). */
void drift_metrics_write(repository *repo, FILE *out, int64_t now_ns);
/* The same for the given versions (the snapshot's READY ones above; a test's own). */
void drift_metrics_write_versions(const model_version *const *mvs, size_t n, FILE *out, int64_t now_ns);

#endif
