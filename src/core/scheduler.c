#include "core/scheduler.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct queued {
  infer_request *req;
  struct queued *next;
} queued;

struct scheduler {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  queued *head, *tail;
  bool stopping;
  pthread_t *workers;
  int n_workers;
};

static void finish(infer_request *req) { req->on_done(req, req->user); }

static void run_one(infer_request *req, int64_t enqueued_at) {
  int64_t now = monotonic_ns();
  req->queue_ns = now - enqueued_at;
  if (req->deadline_ns && now > req->deadline_ns) {
    req->status = status_make(INFERD_DEADLINE_EXCEEDED, "the request's deadline passed while it was queued");
  } else if (model_version_state(req->mv) != MODEL_READY) {
    req->status = status_make(INFERD_UNAVAILABLE, "model '%s' version %lld is not ready", req->mv->model->name,
                              (long long)req->mv->version);
  } else {
    infer_request_execute(req);
  }
  finish(req);
}

/* The first queued request whose model version has an instance free (instance_count
 * bounds how many runs of one version go at once), unlinked; NULL when none can run. */
static queued *take_runnable(scheduler *s) {
  queued *prev = NULL;
  for (queued *q = s->head; q; prev = q, q = q->next) {
    model_version *mv = q->req->mv;
    if (mv->running >= mv->model->config->instance_count) continue;
    mv->running++;
    if (prev)
      prev->next = q->next;
    else
      s->head = q->next;
    if (s->tail == q) s->tail = prev;
    return q;
  }
  return NULL;
}

static void *worker_main(void *arg) {
  scheduler *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    queued *q;
    while ((q = take_runnable(s)) == NULL && !s->stopping) pthread_cond_wait(&s->cv, &s->mu);
    if (s->stopping) { /* what is still queued is cancelled by sched_destroy */
      if (q) { /* put it back at the head: it has not run */
        q->req->mv->running--;
        q->next = s->head;
        s->head = q;
        if (s->tail == NULL) s->tail = q;
      }
      pthread_mutex_unlock(&s->mu);
      return NULL;
    }
    pthread_mutex_unlock(&s->mu);
    infer_request *req = q->req;
    model_version *mv = req->mv;
    free(q);
    run_one(req, req->queue_ns);
    pthread_mutex_lock(&s->mu);
    mv->running--;
    /* a request that waited for this instance may run now */
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
}

inferd_status sched_create(int n_workers, scheduler **out) {
  scheduler *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->workers = calloc((size_t)n_workers, sizeof(pthread_t));
  for (int i = 0; s->workers && i < n_workers; i++) {
    if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0) break;
    s->n_workers++;
  }
  if (s->n_workers == 0) {
    sched_destroy(s);
    return status_make(INFERD_INTERNAL, "cannot start worker threads");
  }
  *out = s;
  return status_ok();
}

void sched_submit(scheduler *s, infer_request *req) {
  queued *q = malloc(sizeof *q);
  if (q == NULL) {
    req->status = status_make(INFERD_RESOURCE_EXHAUSTED, "out of memory for the request queue");
    finish(req);
    return;
  }
  /* queue_ns holds the enqueue time until a worker turns it into the wait */
  req->queue_ns = monotonic_ns();
  q->req = req;
  q->next = NULL;
  pthread_mutex_lock(&s->mu);
  if (s->tail)
    s->tail->next = q;
  else
    s->head = q;
  s->tail = q;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

void sched_destroy(scheduler *s) {
  if (s == NULL) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < s->n_workers; i++) pthread_join(s->workers[i], NULL);
  while (s->head) {
    queued *q = s->head;
    s->head = q->next;
    q->req->status = status_make(INFERD_UNAVAILABLE, "the server is shutting down");
    finish(q->req);
    free(q);
  }
  free(s->workers);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}
