/* A model and its versions: loading one version through its backend, its state, and the
 * signature it serves (the model file's, narrowed by config.json). */
#ifndef INFERD_MODEL_H
#define INFERD_MODEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>
#include <stdint.h>

#include "core/backend.h"
#include "core/model_config.h"
#include "core/stats.h"

typedef enum { MODEL_LOADING, MODEL_READY, MODEL_UNAVAILABLE } model_state;

#define MODEL_VERSION_MAX_HOOKS 8

const char *model_state_name(model_state s);

/* A model's name and the config its versions were loaded with. Shared by those versions and
 * the repository's snapshots, counted; immutable once made. A changed config.json makes a new
 * one, and the versions loaded with the old one keep it until they are freed. */
typedef struct model {
  char *name;             /* owned */
  model_config *config;   /* owned; the default config when config.json was unusable */
  char config_error[512]; /* non-empty: config.json was unusable, no version loads */
  atomic_int refs;
} model;

/* A new model with one reference; takes config. NULL when out of memory (config freed). */
model *model_create(const char *name, model_config *config, const char *config_error);
void model_retain(model *m);
void model_release(model *m);

/* One loaded instance of a model version. Counted: the repository's snapshots that list it and
 * every request routed to it hold a reference (version_retain/version_release). The repository
 * frees it, on its control thread, once only its own reference is left; a release never frees,
 * so a frontend or worker thread never pays for unloading a session. */
typedef struct model_version {
  model *model; /* a reference */
  atomic_int refs;
  int64_t version;
  char version_str[24];
  char path[4096]; /* the model file */
  /* Written by the loader thread before state is stored; read after state is loaded. */
  _Atomic int state;
  char reason[512];
  time_t loaded_at;
  int64_t load_ns; /* how long the load took, warmup included (set before state turns READY) */
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
  /* One opaque slot per registered version hook (model_version_hook_register): what a feature
   * above the core (the application API's schema, digest, model card) keeps per version. Set
   * while the version loads, read-only once it is READY, freed by the hook's unload. */
  void *hook_data[MODEL_VERSION_MAX_HOOKS];
} model_version;

/* A feature above the core that keeps data per loaded version registers a hook, so the core
 * never calls up into it: load runs once the signature is resolved and before warmup (an error
 * makes the version UNAVAILABLE with that reason), unload when the version unloads or its load
 * fails; both run on the repository's loader thread. */
typedef struct model_version_hook {
  const char *name;
  inferd_status (*load)(model_version *mv, void **data);
  void (*unload)(model_version *mv, void *data);
} model_version_hook;

/* Registers a hook and returns its slot in hook_data, or -1 when there are too many. Call at
 * start, before the repository opens (the hook table is read without a lock afterwards). */
int model_version_hook_register(const model_version_hook *h);
/* The data hook `slot` keeps for this version; NULL when none (or slot < 0). */
static inline void *model_version_hook_data(const model_version *mv, int slot) {
  return slot >= 0 && slot < MODEL_VERSION_MAX_HOOKS ? mv->hook_data[slot] : NULL;
}

/* A version in state LOADING with one reference (the caller's); takes a reference on m. */
model_version *model_version_create(model *m, int64_t version, const char *path);
static inline void version_retain(model_version *mv) { atomic_fetch_add_explicit(&mv->refs, 1, memory_order_relaxed); }
static inline void version_release(model_version *mv) {
  if (mv) atomic_fetch_sub_explicit(&mv->refs, 1, memory_order_release);
}
static inline int version_refs(model_version *mv) { return atomic_load_explicit(&mv->refs, memory_order_acquire); }
/* Frees a version nobody else holds (its session, signature, stats, model reference). */
void model_version_free(model_version *mv);

/* Loads one version and runs its warmup: sets state READY, or UNAVAILABLE with the reason.
 * Never fails outright. */
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

#endif
