/* The one server instance every frontend is handed: the repository, the scheduler and the
 * lifecycle (models loading, serving, draining). */
#ifndef INFERD_APP_H
#define INFERD_APP_H

#include <stdatomic.h>
#include <stdbool.h>

#include "core/repository.h"
#include "core/scheduler.h"

typedef struct app {
  repository *repo;
  scheduler *sched;
  struct serve *serve; /* the request pipeline (core/serve.h): every inference enters here */
  struct traffic *traffic; /* traffic/'s policies and their admin API, set by main; NULL: none */
  struct metrics *metrics; /* observability's registry (observability/metrics.h), set by main; may be NULL */
  struct rstore *rstore;   /* the shared-state Redis (store/rstore.h, --redis-url), set by main; NULL: none */
  atomic_bool draining;
  /* The application API's settings (src/frontends/http/v1*.c, mlflow.c), set by main. */
  const char *default_model; /* /invocations' model; NULL: the only model */
  int max_records;           /* records per predict request; 0: the default (1000) */
} app;

typedef struct app_options {
  const char *model_repository;
  int worker_threads;
  repo_control_mode control_mode;
  int poll_secs;
  const char *const *load_models; /* explicit mode: loaded at start; "*" for all */
  size_t n_load_models;
  int drain_timeout_ms;
} app_options;

/* Creates the scheduler and opens the repository, whose thread loads the models in the
 * background, so the frontends can answer liveness at once. */
inferd_status app_create(const app_options *opts, app **out);
/* Ready: not draining, and the repository ready; else why not. */
bool app_ready(app *a, char *why, size_t why_len);
/* Stops taking work: stops the repository's thread, waits for the runs under way, fails what
 * is queued. */
void app_stop_work(app *a);
void app_destroy(app *a);

#endif
