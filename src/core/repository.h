/* The model repository: which models and versions a folder holds, and finding them. */
#ifndef INFERD_REPOSITORY_H
#define INFERD_REPOSITORY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/model.h"

typedef struct repository {
  char *root; /* owned */
  model **models; /* owned, sorted by name */
  size_t n_models;
} repository;

/* Scans root: every sub-folder is a model, its positive-integer sub-folders its versions,
 * narrowed by the version policy. Versions start LOADING; nothing is loaded yet. Fails only
 * when root itself cannot be read. */
inferd_status repo_open(const char *root, repository **out);
/* Loads every version (slow: run off the serving threads). */
void repo_load_all(repository *repo);
void repo_destroy(repository *repo);

model *repo_find_model(const repository *repo, const char *name);
model_version *model_find_version(const model *m, int64_t version);
/* The newest READY version, else the newest version; NULL when the model has none. */
model_version *model_default_version(const model *m);

/* True when every version the policies name is READY; else why not in `why`. */
bool repo_all_ready(const repository *repo, char *why, size_t why_len);

/* Resolves a model name and an optional version string ("" or NULL: the default version). */
inferd_status repo_resolve(const repository *repo, const char *name, const char *version,
                           model_version **out);

#endif
