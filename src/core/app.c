/* The server instance: the scheduler first (versions' queues live in it), then the repository. */
#include "core/app.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/serve.h"

inferd_status app_create(const app_options *opts, app **out) {
  app *a = calloc(1, sizeof *a);
  if (a == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  inferd_status st = sched_create(opts->worker_threads, &a->sched);
  if (status_is_ok(&st)) st = serve_create(a, &a->serve);
  if (status_is_ok(&st)) {
    repo_options ro = {.root = opts->model_repository, .mode = opts->control_mode, .poll_secs = opts->poll_secs,
                       .load_models = opts->load_models, .n_load_models = opts->n_load_models,
                       .drain_timeout_ms = opts->drain_timeout_ms, .sched = a->sched};
    st = repo_open(&ro, &a->repo);
  }
  if (!status_is_ok(&st)) {
    app_destroy(a);
    return st;
  }
  *out = a;
  return st;
}

bool app_ready(app *a, char *why, size_t why_len) {
  if (atomic_load(&a->draining)) {
    snprintf(why, why_len, "the server is shutting down");
    return false;
  }
  return repo_ready(a->repo, why, why_len);
}

void app_stop_work(app *a) {
  repo_stop(a->repo);
  sched_destroy(a->sched);
  a->sched = NULL;
}

void app_destroy(app *a) {
  if (a == NULL) return;
  app_stop_work(a);
  repo_destroy(a->repo);
  serve_destroy(a->serve);
  free(a);
}
