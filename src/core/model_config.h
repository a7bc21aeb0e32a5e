/* A model's config.json: what the server needs to know beyond the ONNX file. Every field is
 * optional; docs/model-repository.md is the user's reference. */
#ifndef INFERD_MODEL_CONFIG_H
#define INFERD_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

typedef struct tensor_spec {
  char *name; /* owned */
  inferd_datatype datatype;
  int ndim;
  int64_t dims[TENSOR_MAX_DIMS]; /* -1: variable */
  /* A non-tensor output (a sequence of maps) served as one JSON text per row. */
  bool is_map_sequence;
} tensor_spec;

typedef enum { POLICY_LATEST, POLICY_ALL, POLICY_SPECIFIC } version_policy_kind;

#define MAX_PREFERRED_BATCH_SIZES 8

/* Queueing and dynamic batching (config.json "dynamic_batching"). */
typedef struct batching_config {
  bool enabled; /* "dynamic_batching" present (needs max_batch_size > 0) */
  int64_t max_queue_delay_us;
  int preferred_batch_sizes[MAX_PREFERRED_BATCH_SIZES];
  int n_preferred_batch_sizes;
  int max_queue_size;      /* requests waiting; 0: the server's default */
  int priority_levels;     /* 1: no priorities; requests name 1 (highest) .. levels */
  int default_priority_level;
  int64_t default_timeout_us; /* 0: none */
} batching_config;

/* config.json "warmup": inferences run on a version before it turns READY. */
typedef enum { WARMUP_ZEROS, WARMUP_RANDOM, WARMUP_FILE } warmup_data;
typedef struct warmup_config {
  int runs; /* 0: no warmup */
  warmup_data data;
  char *file; /* owned; with WARMUP_FILE, a V2 JSON request inside the model's folder */
} warmup_config;

/* config.json "response_cache": the prediction cache (cache/, docs/cache.md), off unless
 * enabled. Bounds are per model version. */
typedef struct response_cache_config {
  bool enabled;
  int64_t max_bytes; /* what the version's entries may hold; default 64 MiB */
  int64_t ttl_ms;    /* an entry's life; 0: until evicted or the version unloads */
} response_cache_config;

typedef struct model_config {
  char *backend; /* owned; "onnxruntime" */
  int max_batch_size;
  tensor_spec *inputs; /* owned; NULL when the config leaves them to the model */
  size_t n_inputs;
  tensor_spec *outputs;
  size_t n_outputs;
  char **class_labels; /* owned */
  size_t n_class_labels;
  version_policy_kind policy;
  int latest_n;
  int64_t *specific_versions; /* owned */
  size_t n_specific_versions;
  int instance_count;
  int intra_op_threads;
  int inter_op_threads;
  bool allow_nan;
  char *description; /* owned, may be NULL */
  batching_config batching;
  warmup_config warmup;
  response_cache_config response_cache;
  /* config.json "application": the application API's section (feature schema and how records
   * map onto input tensors), kept as JSON for that module to read. Owned; may be NULL. */
  struct json_t *application;
  /* config.json "drift": drift detection's settings for this model (window, buckets,
   * thresholds), kept as JSON for observability/drift to read. Owned; may be NULL. */
  struct json_t *drift;
  /* config.json "generate": a generative model's settings (eos ids, context length, chat
   * template, sampling defaults), kept as JSON for generate/ to read. Owned; may be NULL. */
  struct json_t *generate;
} model_config;

/* The config of a model without config.json. */
inferd_status model_config_default(model_config **out);
/* Parses config.json text; errors name the field. */
inferd_status model_config_parse(const char *text, size_t len, model_config **out);
/* Reads path; a missing file gives the default config. */
inferd_status model_config_load(const char *path, model_config **out);
void model_config_destroy(model_config *cfg);

/* Which of the versions found on disk (sorted ascending) the policy serves. */
bool model_config_serves_version(const model_config *cfg, const int64_t *versions, size_t n,
                                 int64_t version);

void tensor_specs_free(tensor_spec *specs, size_t n);
/* The spec named name among specs[0..n); NULL when none is. */
const tensor_spec *tensor_specs_find(const tensor_spec *specs, size_t n, const char *name);

#endif
