/* The scheduler's background worker (infer_request.background, traffic's shadow copies): such
 * work runs on a thread of its own at nice 19 / SCHED_IDLE while live work keeps the normal
 * workers, so a background run never holds up a live one; it runs even while every live worker
 * is busy; and an instance one kind gives back is taken up by the other kind's waiting work. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/scheduler.h"

/* The backend: each run records the thread's nice and policy, and a run of a version whose
 * `hold` is set waits until the test clears it. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool hold[2];
  int running[2];
  int nice[2], policy[2];
} probe;
static probe pr = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {false, false}, {0, 0}, {0, 0}, {0, 0}};

static inferd_status probe_run(backend_model *m, const tensor *inputs, size_t n_inputs, const char *const *names,
                               size_t n_outputs, tensor *results) {
  (void)inputs, (void)n_inputs, (void)names, (void)n_outputs, (void)results;
  int v = (int)(intptr_t)m;
  pthread_mutex_lock(&pr.mu);
  pr.nice[v] = getpriority(PRIO_PROCESS, (id_t)gettid());
  pr.policy[v] = sched_getscheduler(0);
  pr.running[v]++;
  pthread_cond_broadcast(&pr.cv);
  while (pr.hold[v]) pthread_cond_wait(&pr.cv, &pr.mu);
  pthread_mutex_unlock(&pr.mu);
  return status_ok();
}

static const backend_ops probe_backend = {.name = "probe", .run = probe_run};
static model_config cfg = {.max_batch_size = 0, .instance_count = 1};
static model test_model = {.name = "m", .config = &cfg};
static model_version mv[2] = {
    {.model = &test_model, .backend = &probe_backend, .backend_model = (backend_model *)0, .state = MODEL_READY, .version = 1},
    {.model = &test_model, .backend = &probe_backend, .backend_model = (backend_model *)1, .state = MODEL_READY, .version = 2},
};

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  inferd_status st;
} waiter;

static void on_done(infer_request *req, void *user) {
  waiter *w = user;
  pthread_mutex_lock(&w->mu);
  w->st = req->status;
  w->done++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  infer_request_destroy(req);
}

static void waiter_init(waiter *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

/* Whether it finished within ms. */
static bool waiter_wait(waiter *w, int ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&w->mu);
  while (w->done == 0 && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0) {
  }
  bool done = w->done > 0;
  pthread_mutex_unlock(&w->mu);
  return done;
}

static void submit(scheduler *s, int v, bool background, waiter *w) {
  infer_request *r = infer_request_create(&mv[v]);
  r->rows = 1;
  r->background = background;
  r->on_done = on_done;
  r->user = w;
  sched_submit(s, r);
}

static void set_hold(int v, bool hold) {
  pthread_mutex_lock(&pr.mu);
  pr.hold[v] = hold;
  pthread_cond_broadcast(&pr.cv);
  pthread_mutex_unlock(&pr.mu);
}

static void wait_running(int v, int n) {
  pthread_mutex_lock(&pr.mu);
  while (pr.running[v] < n) pthread_cond_wait(&pr.cv, &pr.mu);
  pthread_mutex_unlock(&pr.mu);
}

/* A scheduler with one live worker; the probe's run counts start again from 0. */
static scheduler *one_worker(void) {
  scheduler *s = NULL;
  inferd_status st = sched_create(1, &s);
  assert_true(status_is_ok(&st));
  memset(pr.running, 0, sizeof pr.running);
  return s;
}

/* Submits w's request for version v and waits until it runs (the version's n-th run), holding
 * the instance until set_hold(v, false). */
static void submit_held(scheduler *s, int v, bool background, waiter *w, int n) {
  set_hold(v, true);
  submit(s, v, background, w);
  wait_running(v, n);
}

static void test_background_runs_beside_a_busy_live_worker(void **state) {
  (void)state;
  scheduler *s = one_worker();
  /* the one live worker is busy with version 1 ... */
  waiter live, bg;
  waiter_init(&live);
  waiter_init(&bg);
  submit_held(s, 0, false, &live, 1);
  /* ... and background work for version 2 still runs, on a thread of its own at low priority */
  submit(s, 1, true, &bg);
  assert_true(waiter_wait(&bg, 5000));
  assert_true(status_is_ok(&bg.st));
  assert_int_equal(pr.nice[1], 19);
  assert_int_equal(pr.policy[1], SCHED_IDLE);
  assert_int_equal(pr.nice[0], 0);
  assert_int_equal(pr.policy[0], SCHED_OTHER);
  assert_false(waiter_wait(&live, 1));
  set_hold(0, false);
  assert_true(waiter_wait(&live, 5000));
  assert_true(status_is_ok(&live.st));
  sched_destroy(s);
}

static void test_an_instance_given_back_serves_the_other_kind(void **state) {
  (void)state;
  scheduler *s = one_worker();
  /* background holds version 1's only instance; a live request for it waits, then runs when
   * the background run gives the instance back (the live worker is woken for it) */
  waiter live, bg;
  waiter_init(&live);
  waiter_init(&bg);
  submit_held(s, 0, true, &bg, 1);
  submit(s, 0, false, &live);
  assert_false(waiter_wait(&live, 50));
  set_hold(0, false);
  assert_true(waiter_wait(&bg, 5000));
  assert_true(waiter_wait(&live, 5000));
  /* and the other way round */
  waiter live2, bg2;
  waiter_init(&live2);
  waiter_init(&bg2);
  submit_held(s, 0, false, &live2, 3);
  submit(s, 0, true, &bg2);
  assert_false(waiter_wait(&bg2, 50));
  set_hold(0, false);
  assert_true(waiter_wait(&live2, 5000));
  assert_true(waiter_wait(&bg2, 5000));
  sched_destroy(s);
}

static void test_destroy_fails_queued_background_work(void **state) {
  (void)state;
  scheduler *s = one_worker();
  waiter first, queued;
  waiter_init(&first);
  waiter_init(&queued);
  submit_held(s, 1, true, &first, 1);
  submit(s, 1, true, &queued); /* the instance is busy: it stays queued */
  sched_fail_queued(s, &mv[1], "unloading");
  assert_true(waiter_wait(&queued, 5000));
  assert_int_equal(queued.st.code, INFERD_UNAVAILABLE);
  set_hold(1, false);
  assert_true(waiter_wait(&first, 5000));
  /* forgotten only once nothing holds the version (the worker's own reference included) */
  for (int i = 0; i < 5000 && version_refs(&mv[1]) > 0; i++) usleep(1000);
  assert_int_equal(version_refs(&mv[1]), 0);
  sched_forget_version(s, &mv[1]);
  assert_null(mv[1].queue);
  sched_destroy(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_background_runs_beside_a_busy_live_worker),
      cmocka_unit_test(test_an_instance_given_back_serves_the_other_kind),
      cmocka_unit_test(test_destroy_fails_queued_background_work),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
