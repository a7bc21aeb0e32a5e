/* A model and its versions: loading one version through its backend, its state, and the
 * signature it serves (the model file's, narrowed by config.json). */
#ifndef INFERD_MODEL_H
#define INFERD_MODEL_H

#include <stdatomic.h>
#include <time.h>
#include <stdint.h>

#include "backends/backend.h"
#include "core/model_config.h"
#include "core/stats.h"

typedef enum { MODEL_LOADING, MODEL_READY, MODEL_UNAVAILABLE } model_state;

const char *model_state_name(model_state s);

typedef struct model model;

typedef struct model_version {
  model *model;
  int64_t version;
  char version_str[24];
  char path[4096]; /* the model file */
  /* Written by the loader thread before state is stored; read after state is loaded. */
  _Atomic int state;
  char reason[512];
  time_t loaded_at;
  const backend_ops *backend;
  backend_model *backend_model;
  int running; /* runs under way; the scheduler's lock guards it */
  struct version_queue *queue; /* the scheduler's, created on first use */
  model_stats stats;
  /* The served signature, full shapes (batch dimension included as -1). Owned. */
  tensor_spec *inputs;
  size_t n_inputs;
  tensor_spec *outputs;
  size_t n_outputs;
  /* The application API's view (src/app/application.h): feature schema, artifact digest,
   * model card. Owned; set when the version loads. */
  struct application *application;
} model_version;

struct model {
  char *name;          /* owned */
  model_config *config; /* owned; the default config when config.json was unusable */
  char config_error[512]; /* non-empty: config.json was unusable, no version loads */
  model_version **versions; /* owned, ascending by version: those the policy serves */
  size_t n_versions;
};

/* Loads one version: sets state READY, or UNAVAILABLE with the reason. Never fails outright. */
void model_version_load(model_version *mv);
void model_version_unload(model_version *mv);

model_state model_version_state(const model_version *mv);

/* Merges the model file's signature with config.json's declarations: config tensors must
 * exist in the model with the same datatype and compatible dims. */
inferd_status model_resolve_signature(const model_config *cfg, const tensor_spec *model_in,
                                      size_t n_in, const tensor_spec *model_out, size_t n_out,
                                      tensor_spec **inputs, size_t *n_inputs,
                                      tensor_spec **outputs, size_t *n_outputs);

const tensor_spec *model_version_find_input(const model_version *mv, const char *name);
const tensor_spec *model_version_find_output(const model_version *mv, const char *name);

void model_destroy(model *m);

#endif
