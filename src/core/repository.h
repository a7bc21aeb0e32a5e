/* The model repository, live: one control thread scans the folder, loads, reloads and unloads
 * versions, and publishes what is served as immutable, counted snapshots that readers take
 * without ever waiting for a load. docs/model-repository.md is the user's side of it. */
#ifndef INFERD_REPOSITORY_H
#define INFERD_REPOSITORY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/model.h"

struct scheduler;

typedef enum { REPO_CONTROL_NONE, REPO_CONTROL_POLL, REPO_CONTROL_EXPLICIT } repo_control_mode;

typedef struct repo_options {
  const char *root;
  repo_control_mode mode;
  int poll_secs; /* poll mode: seconds between rescans */
  /* explicit mode: the models loaded at start ("*": all of them) */
  const char *const *load_models;
  size_t n_load_models;
  int drain_timeout_ms;   /* how long an unloaded version's queued requests may wait */
  struct scheduler *sched; /* whose queues die with their versions */
} repo_options;

/* A model as a snapshot shows it. */
typedef struct repo_model {
  char *name;               /* owned */
  model *def;               /* a reference: the config versions load with; NULL before the first scan */
  model_version **versions; /* references, ascending by version: serving, loading or failed */
  size_t n_versions;
  char **notes;             /* per version, owned, NULL for none: why its last reload failed */
  char reason[512];         /* the model as a whole: not loaded, unloaded, config.json unusable */
  bool requested;           /* loaded by the control mode or the API */
  bool counts_for_ready;    /* requested at start, or READY once since: server readiness waits for it */
} repo_model;

typedef struct repo_snapshot {
  atomic_int refs;
  repo_model *models; /* sorted by name */
  size_t n_models;
} repo_snapshot;

typedef struct repository repository;

/* Reads the folder and starts the control thread, which loads what the mode asks for. Fails
 * only when root cannot be read. */
inferd_status repo_open(const repo_options *opts, repository **out);
/* Stops the control thread (a load under way finishes first). */
void repo_stop(repository *repo);
/* Frees everything; the scheduler and the frontends must be gone. */
void repo_destroy(repository *repo);
const char *repo_root(const repository *repo);

/* The current snapshot, counted: hold it while reading, then release it. */
repo_snapshot *repo_snapshot_acquire(repository *repo);
void repo_snapshot_release(repo_snapshot *s);
const repo_model *repo_snapshot_find(const repo_snapshot *s, const char *name);
/* Within a snapshot (no reference taken): the newest READY version, else the newest; NULL
 * when the model has none. */
model_version *repo_model_default_version(const repo_model *m);
model_version *repo_model_find_version(const repo_model *m, int64_t version);
/* A version named as a string within a snapshot (no reference taken): NOT_FOUND naming it. */
inferd_status repo_model_version(const repo_model *m, const char *version, model_version **out);

/* A snapshot's i-th model (i < n_models) and a model's j-th version (j < n_versions): how
 * listings walk a snapshot, so the frontends never index its arrays. */
static inline const repo_model *repo_snapshot_model(const repo_snapshot *s, size_t i) { return &s->models[i]; }
static inline model_version *repo_model_version_at(const repo_model *m, size_t j) { return m->versions[j]; }

typedef enum { REPO_ANY_STATE, REPO_READY } repo_acquire_mode;
/* Routes a model name and an optional version ("" or NULL: the default version) to a counted
 * reference (release it with version_release). Unknown model or version: NOT_FOUND; a model
 * with nothing loaded: UNAVAILABLE with the reason; with REPO_READY, a version that is not
 * READY: UNAVAILABLE with why. */
inferd_status repo_acquire(repository *repo, const char *name, const char *version, repo_acquire_mode mode,
                           model_version **out);

/* Scope-bound references, for handlers with many exits: `VERSION_REF model_version *mv = NULL;`
 * then repo_acquire(..., &mv); the reference is dropped when mv goes out of scope (gcc's
 * cleanup attribute). The same for a snapshot with SNAPSHOT_REF. */
static inline void version_release_ptr(model_version **p) { version_release(*p); }
static inline void repo_snapshot_release_ptr(repo_snapshot **p) { repo_snapshot_release(*p); }
#define VERSION_REF __attribute__((cleanup(version_release_ptr)))
#define SNAPSHOT_REF __attribute__((cleanup(repo_snapshot_release_ptr)))

/* Ready: the start-up loads are done and every requested model that has versions has a READY
 * one (models first loaded after start-up count once they have been READY); else why not. A
 * model reloading keeps its READY version meanwhile, so this does not flap. */
bool repo_ready(repository *repo, char *why, size_t why_len);

/* The start-up loads are done (every model found at start has loaded or failed): from then on a
 * model missing from the snapshot is really not there (jobs/ resuming after a restart waits). */
bool repo_started(repository *repo);

/* Asks the control thread to rescan the folder (SIGHUP, poll); returns at once. */
void repo_request_rescan(repository *repo);

/* The repository API. done runs once, on the control thread, when the work is done (load:
 * the model serves or failed; unload: no new request reaches it, draining goes on). */
typedef void (*repo_done_fn)(inferd_status st, void *user);
/* Loads (or reloads what changed of) a model; config_json, when not NULL, replaces its
 * config.json until the next load without one. A bad config_json fails at once. */
void repo_load_model(repository *repo, const char *name, const char *config_json, repo_done_fn done, void *user);
void repo_unload_model(repository *repo, const char *name, repo_done_fn done, void *user);

/* The pure parts, for unit tests. */

/* What identifies a file's content cheaply: all zero when it is missing. */
typedef struct repo_file_sig {
  int64_t mtime_ns, size, ino;
} repo_file_sig;

typedef enum { REPO_KEEP, REPO_ADD, REPO_RELOAD, REPO_REMOVE } repo_change;
typedef struct repo_plan_item {
  int64_t version;
  repo_change change;
} repo_plan_item;

/* Which versions of the folder's (ascending) the config's policy serves: writes them to out
 * (capacity n), returns how many. */
size_t repo_policy_select(const model_config *cfg, const int64_t *found, size_t n, int64_t *out);
/* The rescan's diff: cur (ascending, with the signature each was last loaded from) against
 * want (ascending, the policy's choice, with the files' signatures now). A changed config
 * reloads every kept version. out needs n_cur + n_want entries; returns how many, ascending. */
size_t repo_plan(const int64_t *cur, const repo_file_sig *cur_sig, size_t n_cur, const int64_t *want,
                 const repo_file_sig *want_sig, size_t n_want, bool config_changed, repo_plan_item *out);

#endif
