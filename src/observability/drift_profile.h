/* observability/drift_profile: a model version's reference profile (reference_profile.json in
 * the version's folder): per feature a histogram of the training data — numeric features over
 * fixed quantile bins, categorical ones over their categories — and the same for the model's
 * predictions. Written by `inferd profile` (src/profile_cmd.c), read when the version loads.
 *
 *   {
 *     "format": "inferd-reference-profile/1",
 *     "model": "churn", "version": "1", "source": "training.csv", "rows": 6000,
 *     "features": [
 *       {"name": "tenure_months", "type": "numeric",
 *        "edges": [3, 7, ...],               ascending, distinct; bins = edges + 1
 *        "counts": [570, 612, ...]},         bin i: edges[i-1] <= x < edges[i]
 *       {"name": "contract", "type": "categorical",
 *        "categories": ["month-to-month", "one-year", "two-year"],
 *        "counts": [3300, 1500, 1200, 0]}    one per category, then one for any other value
 *     ],
 *     "prediction": {"name": "prediction", "type": "categorical",
 *                    "categories": ["stay", "churn"], "counts": [4400, 1600, 0]}
 *   }
 *
 * Feature names are the application schema's (config.json "application.features"); for a
 * model without one, "<input>[<column>]" for column j of a 2-D input (or "<input>" for a 1-D
 * one), by position. "prediction" is optional: the predicted label (classifiers) or the score
 * (regressors, numeric bins). model, version, source and rows are informative. */
#ifndef INFERD_DRIFT_PROFILE_H
#define INFERD_DRIFT_PROFILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

#define DRIFT_PROFILE_FORMAT "inferd-reference-profile/1"
#define DRIFT_PROFILE_FILE "reference_profile.json"
#define DRIFT_MAX_BINS 256   /* numeric edges + 1, or categories + 1 (the "other" bin) */
#define DRIFT_MAX_FEATURES 1024

typedef enum { DRIFT_NUMERIC, DRIFT_CATEGORICAL } drift_kind;

typedef struct drift_hist {
  char *name; /* owned */
  drift_kind kind;
  double *edges; /* owned; numeric: n_bins - 1 ascending distinct edges */
  char **categories; /* owned; categorical: n_bins - 1 names, the last bin is "other" */
  double *counts;    /* owned; n_bins reference counts */
  size_t n_bins;
} drift_hist;

typedef struct drift_profile {
  drift_hist *features; /* owned */
  size_t n_features;
  drift_hist *prediction; /* owned; NULL: none */
  double rows;
} drift_profile;

/* Parses a profile; errors are INVALID_ARGUMENT naming the field, e.g.
 * "reference_profile.json: features[2].counts must have 11 numbers (edges + 1)". */
inferd_status drift_profile_parse(const char *text, size_t len, drift_profile **out);
/* Reads path: NOT_FOUND when there is no such file, else as drift_profile_parse. */
inferd_status drift_profile_load(const char *path, drift_profile **out);
void drift_profile_destroy(drift_profile *p);
/* The profile as JSON (the format above); model/version/source are added when not NULL. */
json_t *drift_profile_json(const drift_profile *p, const char *model, const char *version, const char *source);

/* Builds a numeric histogram from n values (sorted in place; NaN skipped) over `bins`
 * quantile bins (drift_quantile_edges). INVALID_ARGUMENT naming the feature when no value is
 * finite. */
inferd_status drift_hist_numeric(const char *name, double *values, size_t n, size_t bins, drift_hist *out);
/* A categorical histogram: index[i] is the category of row i (n_categories: "other"). */
inferd_status drift_hist_categorical(const char *name, const char *const *categories, size_t n_categories,
                                     const size_t *index, size_t n, drift_hist *out);
void drift_hist_clear(drift_hist *h);

#endif
