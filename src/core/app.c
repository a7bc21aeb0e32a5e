#include "core/app.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/log.h"

static void *loader_main(void *arg) {
  app *a = arg;
  int64_t t0 = monotonic_ns();
  repo_load_all(a->repo);
  atomic_store(&a->loading_done, true);
  char why[512];
  if (repo_all_ready(a->repo, why, sizeof why))
    log_msg(LOG_INFO, NULL, "all models loaded in %lld ms; ready", (long long)((monotonic_ns() - t0) / 1000000));
  else
    log_msg(LOG_WARN, NULL, "models loaded in %lld ms, not ready: %s", (long long)((monotonic_ns() - t0) / 1000000), why);
  return NULL;
}

inferd_status app_create(const app_options *opts, app **out) {
  app *a = calloc(1, sizeof *a);
  if (a == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  inferd_status st = repo_open(opts->model_repository, &a->repo);
  if (status_is_ok(&st)) st = sched_create(opts->worker_threads, &a->sched);
  if (status_is_ok(&st)) {
    if (pthread_create(&a->loader, NULL, loader_main, a) != 0)
      st = status_make(INFERD_INTERNAL, "cannot start the model loader thread");
    else {
      pthread_setname_np(a->loader, "model-loader");
      a->loader_started = true;
    }
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
  return repo_all_ready(a->repo, why, why_len);
}

void app_stop_work(app *a) {
  if (a->loader_started) pthread_join(a->loader, NULL);
  a->loader_started = false;
  sched_destroy(a->sched);
  a->sched = NULL;
}

void app_destroy(app *a) {
  if (a == NULL) return;
  app_stop_work(a);
  repo_destroy(a->repo);
  free(a);
}
