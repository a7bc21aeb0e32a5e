#include "core/scheduler.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/batch.h"
#include "util/monotime.h"

#define MAX_LEVELS 16

typedef struct version_queue {
  model_version *mv;
  bool background;               /* background work (infer_request.background): the background worker's */
  struct version_queue *sibling; /* the same version's queue of the other kind; NULL: none yet */
  infer_request *head[MAX_LEVELS], *tail[MAX_LEVELS]; /* level 0 is priority 1, the highest */
  int size;
  int64_t rows;
  /* since when the batcher has been holding this queue's work back, an instance being free,
   * for the batch to fill; 0: it is not (for infer_request.batch_wait_ns) */
  int64_t held_since;
  /* when the version last went from every instance running to one free (0: never full). The
   * hold starts when the work could first have run, not when a worker first looked: a worker
   * woken late on a busy machine changes nothing about when the batcher lets the batch go
   * (the oldest request's arrival + max_queue_delay_us), so its lag is the batcher's wait too,
   * not a wait for an instance. */
  int64_t freed_at;
  struct version_queue *next;
} version_queue;

typedef struct sched_worker {
  struct scheduler *s;
  bool background;
} sched_worker;

struct scheduler {
  pthread_mutex_t mu;
  pthread_cond_t cv;    /* the live workers wait here */
  pthread_cond_t bg_cv; /* the background worker waits here */
  version_queue *queues;
  bool stopping;
  atomic_ulong submits; /* counts submits, for a spinning worker to notice new work */
  atomic_uint_fast64_t batches; /* batch ids (infer_request.batch_id), from 1 */
  pthread_t *workers;
  int n_workers;
  pthread_t bg_worker;
  bool bg_started;
  sched_worker live_arg, bg_arg;
};

static pthread_cond_t *cv_of(scheduler *s, bool background) { return background ? &s->bg_cv : &s->cv; }

static const batching_config *batching_of(const model_version *mv) { return &mv->model->config->batching; }

static int max_queue_of(const model_version *mv) {
  int m = batching_of(mv)->max_queue_size;
  return m > 0 ? m : SCHED_DEFAULT_MAX_QUEUE;
}

/* The request's statistics are recorded by core/serve's completion (its stats stage). */
static void finish(infer_request *req) {
  req->on_done(req, req->user);
}

static version_queue *queue_new(scheduler *s, model_version *mv, bool background) {
  version_queue *q = calloc(1, sizeof *q);
  if (q == NULL) return NULL;
  q->mv = mv;
  q->background = background;
  q->next = s->queues;
  s->queues = q;
  return q;
}

/* mv->queue is the version's live queue; its background queue, made on first use, hangs off
 * it as its sibling. */
static version_queue *queue_of(scheduler *s, model_version *mv, bool background) {
  if (mv->queue == NULL && (mv->queue = queue_new(s, mv, false)) == NULL) return NULL;
  version_queue *q = mv->queue;
  if (!background) return q;
  if (q->sibling == NULL && (q->sibling = queue_new(s, mv, true)) != NULL) q->sibling->sibling = q;
  return q->sibling;
}

static void unlink_req(version_queue *q, int level, infer_request *prev, infer_request *r) {
  if (prev)
    prev->next = r->next;
  else
    q->head[level] = r->next;
  if (q->tail[level] == r) q->tail[level] = prev;
  r->next = NULL;
  q->size--;
  q->rows -= r->rows;
}

/* Moves requests that must not run (deadline passed, client gone) onto *dropped; lowers
 * *wake_at to the earliest deadline still queued, so it is answered on time even while the
 * version's instances are busy. */
static void purge(version_queue *q, int64_t now, infer_request **dropped, int64_t *wake_at) {
  for (int l = 0; l < MAX_LEVELS; l++) {
    infer_request *prev = NULL, *r = q->head[l];
    while (r) {
      infer_request *next = r->next;
      bool gone = r->cancelled && atomic_load(r->cancelled);
      if (gone || (r->deadline_ns && now >= r->deadline_ns)) {
        unlink_req(q, l, prev, r);
        r->queue_ns = now - r->enqueue_ns;
        r->status = gone ? status_make(INFERD_UNAVAILABLE, "the client went away while the request was queued")
                         : status_make(INFERD_DEADLINE_EXCEEDED, "the deadline passed after %lld us in the queue; the request did not run",
                                       (long long)(r->queue_ns / 1000));
        r->next = *dropped;
        *dropped = r;
      } else {
        if (r->deadline_ns && (*wake_at == 0 || r->deadline_ns < *wake_at)) *wake_at = r->deadline_ns;
        prev = r;
      }
      r = next;
    }
  }
}

static infer_request *oldest(const version_queue *q) {
  infer_request *o = NULL;
  for (int l = 0; l < MAX_LEVELS; l++)
    if (q->head[l] && (!o || q->head[l]->enqueue_ns < o->enqueue_ns)) o = q->head[l];
  return o;
}

/* Rows the batch should reach now, or 0 when it is better to wait (until *wake_at). */
static int64_t batch_target(const version_queue *q, int64_t now, int64_t *wake_at) {
  const model_version *mv = q->mv;
  const batching_config *b = batching_of(mv);
  int64_t max = mv->model->config->max_batch_size;
  if (!b->enabled) return 1;
  if (q->rows >= max) return max;
  int64_t best = 0; /* the largest preferred size the queue can fill */
  for (int i = 0; i < b->n_preferred_batch_sizes; i++)
    if (b->preferred_batch_sizes[i] <= q->rows && b->preferred_batch_sizes[i] > best) best = b->preferred_batch_sizes[i];
  if (best) return best;
  int64_t due = oldest(q)->enqueue_ns + b->max_queue_delay_us * 1000;
  if (now >= due) return max;
  if (*wake_at == 0 || due < *wake_at) *wake_at = due;
  return 0;
}

/* Work waits that an idle worker could take now, or time (a batching delay, a deadline). */
static bool has_free_instance(const version_queue *q) {
  return q->size > 0 && q->mv->running < q->mv->model->config->instance_count;
}

/* Takes requests in priority order, FIFO within a level, up to target rows; with batching
 * off, just the first. Returns how many. */
static size_t take_batch(version_queue *q, int64_t target, infer_request **batch, size_t cap) {
  size_t n = 0;
  int64_t rows = 0;
  bool batching = batching_of(q->mv)->enabled;
  for (int l = 0; l < MAX_LEVELS && n < cap; l++) {
    infer_request *prev = NULL, *r = q->head[l];
    while (r && n < cap) {
      infer_request *next = r->next;
      bool fits = n == 0 || (batching && rows + r->rows <= target && batch_compatible(batch[0], r));
      if (fits) {
        unlink_req(q, l, prev, r);
        batch[n++] = r;
        rows += r->rows;
        if (!batching || rows >= target) return n;
      } else {
        prev = r;
      }
      r = next;
    }
  }
  return n;
}

static void finish_list(infer_request *r) {
  while (r) {
    infer_request *next = r->next;
    finish(r);
    r = next;
  }
}

static void run_batch(scheduler *s, infer_request **batch, size_t n) {
  model_version *mv = batch[0]->mv;
  int64_t now = monotime_ns();
  uint64_t id = atomic_fetch_add(&s->batches, 1) + 1;
  bool reporter = false; /* the first request with trace data reports the batch */
  for (size_t i = 0; i < n; i++) {
    batch[i]->queue_ns = now - batch[i]->enqueue_ns;
    batch[i]->batch_id = id;
    batch[i]->batch_start_ns = now;
    batch[i]->batch_requests = (int)n;
    batch[i]->batch_reporter = !reporter && batch[i]->trace != NULL;
    reporter = reporter || batch[i]->trace != NULL;
  }
  if (model_version_state(mv) != MODEL_READY) {
    for (size_t i = 0; i < n; i++)
      batch[i]->status = status_make(INFERD_UNAVAILABLE, "model '%s' version %lld is not ready", mv->model->name,
                                     (long long)mv->version);
  } else {
    batch_execute(batch, n);
    /* as Triton's statistics do, count only runs that succeeded (a failed run fails them all) */
    bool ran = false;
    for (size_t i = 0; i < n; i++) ran = ran || status_is_ok(&batch[i]->status);
    if (ran)
      stats_record_execution(&mv->stats, batch[0]->batch_size, batch[0]->compute_input_ns, batch[0]->compute_infer_ns,
                             batch[0]->compute_output_ns);
  }
  for (size_t i = 0; i < n; i++) finish(batch[i]);
}

/* A timed wait wakes late on a virtual machine (~100 µs and more): sleep until shortly before
 * wake_at, then spin the rest, watching for new work, so a batching delay is what it says. */
#define SPIN_NS 100000

static void wait_until(scheduler *s, pthread_cond_t *cv, int64_t wake_at) {
  if (wake_at == 0) {
    pthread_cond_wait(cv, &s->mu);
    return;
  }
  int64_t now = monotime_ns();
  if (wake_at - now > SPIN_NS) {
    int64_t t = wake_at - SPIN_NS;
    struct timespec ts = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};
    pthread_cond_timedwait(cv, &s->mu, &ts);
    return;
  }
  unsigned long seen = atomic_load(&s->submits);
  pthread_mutex_unlock(&s->mu);
  while (monotime_ns() < wake_at && atomic_load(&s->submits) == seen) sched_yield();
  pthread_mutex_lock(&s->mu);
}

/* The background worker's thread: nice 19 (Linux's nice is per thread) and SCHED_IDLE, which
 * the kernel preempts as soon as any other thread of the core wakes with work, so a shadow
 * copy running when the next live request arrives gives the core up at once instead of
 * finishing first (on one core, the live request waited a whole run). Neither needs privilege;
 * a kernel that refuses leaves the worker at normal priority (still off the live workers). */
static void lower_own_priority(void) {
  (void)setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
  struct sched_param sp = {0};
  (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
}

static void *worker_main(void *arg) {
  const sched_worker *w = arg;
  scheduler *s = w->s;
  const bool bg = w->background;
  pthread_cond_t *my_cv = cv_of(s, bg);
  if (bg) lower_own_priority();
  /* batching delays are hundreds of µs: the default 50 µs timer slack would add to each */
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  size_t cap = 0;
  infer_request **batch = NULL;
  pthread_mutex_lock(&s->mu);
  while (!s->stopping) {
    int64_t now = monotime_ns(), wake_at = 0;
    infer_request *dropped = NULL;
    version_queue *chosen = NULL;
    size_t n = 0;
    for (version_queue *q = s->queues; q; q = q->next) {
      if (q->size == 0 || q->background != bg) continue; /* each worker takes its own kind */
      purge(q, now, &dropped, &wake_at);
      if (q->size == 0 || q->mv->running >= q->mv->model->config->instance_count) continue;
      int64_t target = batch_target(q, now, &wake_at);
      if (target == 0) {
        if (q->held_since == 0) {
          int64_t arrived = oldest(q)->enqueue_ns;
          q->held_since = arrived > q->freed_at ? arrived : q->freed_at;
        }
        continue;
      }
      size_t want = (size_t)(q->mv->model->config->max_batch_size > 0 ? q->mv->model->config->max_batch_size : 1);
      if (want > cap) {
        infer_request **nb = realloc(batch, want * sizeof *nb);
        if (nb == NULL) continue;
        batch = nb;
        cap = want;
      }
      n = take_batch(q, target, batch, cap);
      for (size_t i = 0; i < n; i++) {
        int64_t from = batch[i]->enqueue_ns > q->held_since ? batch[i]->enqueue_ns : q->held_since;
        batch[i]->batch_wait_ns = q->held_since && now > from ? now - from : 0;
      }
      q->held_since = 0;
      chosen = q;
      q->mv->running++;
      /* the worker's own reference: the batch's requests may be destroyed (and the version
       * unloaded with its queue) before this worker gives the instance back below */
      version_retain(q->mv);
      /* the next worker starts from the queue after this one: versions take turns */
      if (q->next && s->queues != q->next) {
        version_queue **pp = &s->queues;
        while (*pp != q) pp = &(*pp)->next;
        *pp = q->next;
        version_queue *last = q->next;
        while (last->next) last = last->next;
        last->next = q;
        q->next = NULL;
      }
      break;
    }
    if (dropped || chosen) {
      /* more work another worker could start: hand it on (one wake of each kind at most,
       * not one per worker) */
      bool woke[2] = {false, false};
      for (version_queue *q = s->queues; q && !(woke[0] && woke[1]); q = q->next)
        if (!woke[q->background] && has_free_instance(q)) {
          pthread_cond_signal(cv_of(s, q->background));
          woke[q->background] = true;
        }
      pthread_mutex_unlock(&s->mu);
      finish_list(dropped);
      if (chosen) run_batch(s, batch, n);
      pthread_mutex_lock(&s->mu);
      /* this worker looks at the queues again itself: no one else need wake for the freed instance */
      if (chosen) {
        if (chosen->mv->running-- == chosen->mv->model->config->instance_count) {
          int64_t t = monotime_ns();
          chosen->freed_at = t;
          if (chosen->sibling) chosen->sibling->freed_at = t;
        }
        /* the instance given back may be what the version's other queue waits for, and its
         * workers do not look at this one */
        if (chosen->sibling && has_free_instance(chosen->sibling)) pthread_cond_signal(cv_of(s, !bg));
        version_release(chosen->mv);
      }
      continue;
    }
    wait_until(s, my_cv, wake_at);
  }
  pthread_mutex_unlock(&s->mu);
  free(batch);
  return NULL;
}

inferd_status sched_create(int n_workers, scheduler **out) {
  scheduler *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines are monotime_ns() */
  pthread_cond_init(&s->cv, &ca);
  pthread_cond_init(&s->bg_cv, &ca);
  pthread_condattr_destroy(&ca);
  s->live_arg = (sched_worker){.s = s, .background = false};
  s->bg_arg = (sched_worker){.s = s, .background = true};
  s->workers = calloc((size_t)n_workers, sizeof(pthread_t));
  for (int i = 0; s->workers && i < n_workers; i++) {
    if (pthread_create(&s->workers[i], NULL, worker_main, &s->live_arg) != 0) break;
    pthread_setname_np(s->workers[i], "sched-worker");
    s->n_workers++;
  }
  if (s->n_workers > 0 && pthread_create(&s->bg_worker, NULL, worker_main, &s->bg_arg) == 0) {
    pthread_setname_np(s->bg_worker, "sched-backgrnd");
    s->bg_started = true;
  }
  if (s->n_workers == 0 || !s->bg_started) {
    sched_destroy(s);
    return status_make(INFERD_INTERNAL, "cannot start worker threads");
  }
  *out = s;
  return status_ok();
}

void sched_submit(scheduler *s, infer_request *req) {
  model_version *mv = req->mv;
  const batching_config *b = batching_of(mv);
  int level = (req->priority ? req->priority : b->default_priority_level) - 1;
  if (level < 0) level = 0;
  if (level >= MAX_LEVELS) level = MAX_LEVELS - 1;
  req->enqueue_ns = monotime_ns();
  req->next = NULL;
  pthread_mutex_lock(&s->mu);
  version_queue *q = queue_of(s, mv, req->background);
  if (q == NULL || q->size >= max_queue_of(mv)) {
    pthread_mutex_unlock(&s->mu);
    req->status = status_make(INFERD_RESOURCE_EXHAUSTED, "the queue of model '%s' version %lld is full (%d requests); retry later",
                              mv->model->name, (long long)mv->version, max_queue_of(mv));
    finish(req);
    return;
  }
  if (q->tail[level])
    q->tail[level]->next = req;
  else
    q->head[level] = req;
  q->tail[level] = req;
  q->size++;
  q->rows += req->rows;
  /* One worker is enough: whichever wakes looks at every queue, and passes on what it leaves
   * (waking them all costs a context switch each, per request). None when every instance of
   * the version is running: the worker that finishes one comes back to the queue, and a woken
   * worker could only go back to sleep. A deadline still wakes one, to time its 504. */
  if (has_free_instance(q) || req->deadline_ns) pthread_cond_signal(cv_of(s, q->background));
  pthread_mutex_unlock(&s->mu);
  atomic_fetch_add(&s->submits, 1);
}

/* Takes every request queued for mv off its queues (live and background), under the lock. */
static infer_request *take_all(scheduler *s, model_version *mv) {
  infer_request *list = NULL;
  pthread_mutex_lock(&s->mu);
  version_queue *qs[2] = {mv->queue, mv->queue ? mv->queue->sibling : NULL};
  for (int k = 0; k < 2; k++) {
    version_queue *q = qs[k];
    for (int l = 0; q && l < MAX_LEVELS; l++) {
      infer_request *r = q->head[l];
      while (r) {
        infer_request *next = r->next;
        r->next = list;
        list = r;
        r = next;
      }
      q->head[l] = q->tail[l] = NULL;
    }
    if (q) q->size = 0, q->rows = 0;
  }
  pthread_mutex_unlock(&s->mu);
  return list;
}

static void fail_list(infer_request *r, const char *msg) {
  int64_t now = monotime_ns();
  while (r) {
    infer_request *next = r->next;
    r->next = NULL;
    r->queue_ns = now - r->enqueue_ns;
    r->status = status_make(INFERD_UNAVAILABLE, "%s", msg);
    finish(r);
    r = next;
  }
}

void sched_fail_queued(scheduler *s, model_version *mv, const char *msg) {
  fail_list(take_all(s, mv), msg);
}

void sched_forget_version(scheduler *s, model_version *mv) {
  fail_list(take_all(s, mv), "the model version was unloaded");
  pthread_mutex_lock(&s->mu);
  version_queue *qs[2] = {mv->queue, mv->queue ? mv->queue->sibling : NULL};
  for (int k = 0; k < 2; k++) {
    version_queue *q = qs[k];
    if (q == NULL) continue;
    version_queue **pp = &s->queues;
    while (*pp && *pp != q) pp = &(*pp)->next;
    if (*pp) *pp = q->next;
    free(q);
  }
  mv->queue = NULL;
  pthread_mutex_unlock(&s->mu);
}

void sched_destroy(scheduler *s) {
  if (s == NULL) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_broadcast(&s->cv);
  pthread_cond_broadcast(&s->bg_cv);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < s->n_workers; i++) pthread_join(s->workers[i], NULL);
  if (s->bg_started) pthread_join(s->bg_worker, NULL);
  while (s->queues) {
    version_queue *q = s->queues;
    s->queues = q->next;
    for (int l = 0; l < MAX_LEVELS; l++) {
      infer_request *r = q->head[l];
      while (r) {
        infer_request *next = r->next;
        r->status = status_make(INFERD_UNAVAILABLE, "the server is shutting down");
        finish(r);
        r = next;
      }
    }
    q->mv->queue = NULL;
    free(q);
  }
  free(s->workers);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_cond_destroy(&s->bg_cv);
  free(s);
}
