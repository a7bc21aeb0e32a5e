/* Named features in, labels and probabilities out: the record <-> tensor mapping every
 * application-level frontend shares (HTTP /v1, TF Serving and MLflow routes, gRPC ModelService).
 *
 * A model's config.json "application" section declares its feature schema and how records map
 * onto the model's input tensors; features_compile turns it, with the loaded version's
 * signature, into a `features` that is read-only afterwards (safe to share between threads).
 *
 *   "application": {
 *     "features": [
 *       {"name": "tenure_months", "type": "numeric", "min": 0, "max": 120},
 *       {"name": "contract", "type": "categorical",
 *        "categories": ["month-to-month", "one-year", "two-year"], "encoding": "one_hot"},
 *       {"name": "age", "type": "integer", "required": false, "default": 40}
 *     ],
 *     "input": "input",                 tensor the features go to (default: the only input)
 *     "allow_extra_features": false,     unknown features are errors unless true
 *     "task": "classification",          or "regression" (default: classification when the
 *                                        config has class_labels or a "probabilities" output)
 *     "outputs": {"label": "label", "probabilities": "probabilities"}   or {"value": "..."}
 *   }
 *
 * Feature types: "numeric" (any JSON number), "integer" (a whole number), "boolean",
 * "categorical" (one of "categories", strings), "string" (free text into a BYTES tensor).
 * Keys of a feature: name, type, description, required (default true unless a default is
 * given), default, min, max (numeric, integer), categories and encoding ("one_hot": one column
 * per category, "index": one column holding the category's index, "string": the category
 * itself into a BYTES tensor), max_length (string), tensor (overrides "input"), example.
 *
 * Columns: the features going to one tensor fill its row in the order they are listed. The
 * tensor is [N, columns] (or [N] when it takes a single column) with a variable first
 * dimension; its datatype is the model's (any number type, BOOL or BYTES).
 *
 * Usage (what src/frontends/http/v1.c does; a gRPC frontend does the same):
 *
 *   const features *f = application_features(mv);          // NULL: the model has no schema
 *   feature_errors errs = {0};
 *   tensor *ts; size_t nt;
 *   features_paths paths = {.base = "$.inputs"};
 *   inferd_status st = features_encode(f, records_json_array, &paths, &ts, &nt, &errs);
 *   // st INVALID_ARGUMENT: errs lists every problem with its JSON path (feature_errors_json)
 *   req->inputs = ts; req->n_inputs = nt;  ask for features_output_names(f) ... submit ...
 *   // on completion:
 *   json_t *results;
 *   features_decode_results(f, req->outputs, req->output_names, req->n_outputs, &opts, &results);
 *   // results: [{"label": "churn", "score": 0.9, "probabilities": {"stay": 0.1, ...}}, ...]
 *   //          or [{"value": 3.2}, ...] for a regressor
 *   feature_errors_clear(&errs);
 */
#ifndef INFERD_APP_FEATURES_H
#define INFERD_APP_FEATURES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/model_config.h"
#include "core/status.h"
#include "core/tensor.h"

typedef enum {
  FEATURE_NUMERIC,
  FEATURE_INTEGER,
  FEATURE_BOOLEAN,
  FEATURE_CATEGORICAL,
  FEATURE_STRING,
} feature_type;

typedef enum { ENCODING_VALUE, ENCODING_ONE_HOT, ENCODING_INDEX, ENCODING_STRING } feature_encoding;

typedef enum { TASK_CLASSIFICATION, TASK_REGRESSION } feature_task;

typedef struct feature_def {
  char *name; /* owned */
  feature_type type;
  char *description; /* owned, may be NULL */
  bool required;
  json_t *default_value; /* owned; NULL: none */
  json_t *example;       /* owned; NULL: none */
  bool has_min, has_max;
  double min, max;
  char **categories; /* owned */
  size_t n_categories;
  feature_encoding encoding;
  size_t max_length; /* string; 0: no limit */
  size_t tensor;     /* index into features.tensors */
  size_t column;     /* first column in that tensor's row */
  size_t width;      /* columns it fills */
} feature_def;

typedef struct feature_tensor {
  char *name; /* owned */
  inferd_datatype datatype;
  int ndim; /* 1: [N] (one column), 2: [N, columns] */
  size_t columns;
} feature_tensor;

typedef enum { LABEL_NONE, LABEL_INDEX, LABEL_STRING } feature_label_kind;

typedef struct features {
  feature_def *defs; /* owned, in config order */
  size_t n_defs;
  feature_tensor *tensors; /* owned */
  size_t n_tensors;
  bool allow_extra;
  feature_task task;
  char **labels; /* owned; class names in the model's class order (classification) */
  size_t n_labels;
  char *label_output;         /* owned, NULL: none */
  feature_label_kind label_kind;
  char *probabilities_output; /* owned, NULL: none; float [N, n_labels] */
  char *value_output;         /* owned (regression); float [N] or [N, k] */
  size_t value_width;         /* k; 1 gives a scalar "value" */
  const char *output_names[2]; /* the outputs the model is asked for (point into the above) */
  size_t n_output_names;
} features;

/* Compiles an "application" section against a loaded version's signature (full shapes, as in
 * model_version). Errors are INVALID_ARGUMENT and name the field, e.g.
 * "config.json: application.features[2].categories must be a non-empty array of strings". */
inferd_status features_compile(const json_t *application, const model_config *cfg,
                               const tensor_spec *inputs, size_t n_inputs,
                               const tensor_spec *outputs, size_t n_outputs, features **out);
void features_destroy(features *f);

const feature_def *features_find(const features *f, const char *name);
const char *feature_type_name(feature_type t);

/* ---- validation errors ------------------------------------------------------------------- */

#define FEATURE_ERRORS_MAX 100 /* kept in detail; more are counted in `total` */

typedef struct feature_error {
  char path[200];   /* JSON path, e.g. $.inputs[3].age */
  const char *kind; /* static: missing_feature, unknown_feature, wrong_type, out_of_range,
                       unknown_category, too_long, invalid, empty, too_many */
  char message[300];
} feature_error;

typedef struct feature_errors {
  feature_error *items; /* owned */
  size_t n;
  size_t total;
} feature_errors;

void feature_errors_add(feature_errors *e, const char *path, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void feature_errors_clear(feature_errors *e);
/* Removes the problems of this kind at exactly this path: for a frontend that already reported
 * a value it could not pass on (a NaN over gRPC) and would otherwise also hear it is missing. */
void feature_errors_drop(feature_errors *e, const char *path, const char *kind);
/* [{"path", "kind", "message"}, ...] */
json_t *feature_errors_json(const feature_errors *e);
/* "3 problems: $.inputs[0].age: missing required feature; ..." into buf. */
const char *feature_errors_summary(const feature_errors *e, char *buf, size_t len);

/* JSON path helpers: append ".key" (or ["key"] when it is not an identifier) or "[i]". */
void jpath_key(char *buf, size_t len, const char *key);
void jpath_index(char *buf, size_t len, size_t i);

/* ---- records -> tensors ------------------------------------------------------------------ */

/* Where each value came from, for error paths. With `path` NULL, the value of feature F in
 * record i is at base[i].F and record i itself at base[i]. A frontend whose records were built
 * from another shape (MLflow's dataframe_split, the single-record "features" list) gives its
 * own function; feature is NULL for the record itself. */
typedef struct features_paths {
  const char *base;
  void (*path)(void *user, size_t record, const char *feature, char *buf, size_t len);
  void *user;
} features_paths;

/* A features_paths.path for records made by features_columns_to_records: user is the base
 * (e.g. "$.inputs"); feature F of record i is at base.F[i]. */
void features_columnar_path(void *base, size_t record, const char *feature, char *buf, size_t len);

/* Validates every record (a JSON array of objects: feature name -> value) and encodes them into
 * the model's input tensors. Every problem is added to errs (nothing stops at the first);
 * then the status is INVALID_ARGUMENT and no tensors are returned. On success *tensors (owned
 * by the caller, free with tensors_free) holds n_tensors tensors, batch = number of records.
 * An empty array is an error ("empty"); the caller checks its own record limit first. */
inferd_status features_encode(const features *f, const json_t *records, const features_paths *paths,
                              tensor **tensors, size_t *n_tensors, feature_errors *errs);

/* Converts rows given as arrays of values in feature order (MLflow's dataframe_split without
 * column names, positional instances) into record objects; errors for rows of the wrong
 * length. Returns a new array, or NULL with errors added. */
json_t *features_rows_to_records(const features *f, const json_t *rows, const features_paths *paths,
                                 feature_errors *errs);

/* Converts the columnar form {"feature": [v0, v1, ...], ...} (TF Serving's and MLflow's
 * "inputs") into record objects; every column must be an array of the same length. Errors
 * name base.feature. Returns a new array, or NULL with errors added. */
json_t *features_columns_to_records(const json_t *columns, const char *base, feature_errors *errs);

/* ---- outputs -> results ------------------------------------------------------------------ */

typedef struct features_result_opts {
  bool return_probabilities;
  int top_k; /* 0: every class; else the k most probable, highest first */
} features_result_opts;

/* Turns a completed request's outputs into one result object per record:
 * classification {"label": str, "score": p | null, "probabilities": {label: p, ...}},
 * regression {"value": number | [numbers]}. *results is a new JSON array. */
inferd_status features_decode_results(const features *f, const tensor *outputs,
                                      char *const *output_names, size_t n_outputs,
                                      const features_result_opts *opts, json_t **results);

/* Just the labels (classification) or values (regression), one per record: MLflow's
 * "predictions". With probabilities, each row's class probabilities in class order instead. */
inferd_status features_decode_predictions(const features *f, const tensor *outputs,
                                          char *const *output_names, size_t n_outputs,
                                          bool probabilities, json_t **predictions);

/* ---- describing the schema --------------------------------------------------------------- */

/* The catalogue's view: [{"name", "type", "required", "default"?, "minimum"?, "maximum"?,
 * "categories"?, "encoding"?, "description"?}, ...] */
json_t *features_describe(const features *f);
/* The output schema: {"task", "labels"?, "fields": {...}} */
json_t *features_describe_outputs(const features *f);
/* A JSON Schema (2020-12, as OpenAPI 3.1 uses) of one record, built from the compiled schema
 * the encoder validates with. */
json_t *features_record_schema(const features *f);
/* JSON Schema of one result object. */
json_t *features_result_schema(const features *f);
/* An example record: each feature's example, else its default, else a value in range. */
json_t *features_example_record(const features *f);

#endif
