/* traffic/traffic: the threads, locks and I/O around the pure policy (policy.c): the published
 * policy snapshot the route stage reads, per-arm statistics, the rollout tick, the store and
 * the audit log, and the admin operations. */
#include "traffic/traffic.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "core/model.h"
#include "core/principal.h"
#include "core/repository.h"
#include "core/scheduler.h"
#include "core/serve.h"
#include "core/tensor.h"
#include "traffic/policy.h"
#include "traffic/store.h"
#include "util/log.h"

/* ---- the published snapshot ------------------------------------------------------------- */

/* A model's guard breaker: set by the completion stage the moment a running rollout's
 * candidate has failed more than its guard allows, read by the route stage, which then sends
 * the candidate's share to the baseline until the tick has recorded and published the rollback.
 * This is what bounds the candidate's failures by the guard's minimum sample rather than by
 * the tick's period and the store's fsync. One per model, alive as long as the server. */
typedef struct traffic_breaker {
  char model[256];
  _Atomic bool tripped;
  struct traffic_breaker *next;
} traffic_breaker;

typedef struct traffic_entry {
  char model[256];
  traffic_policy policy;
  traffic_breaker *breaker;
} traffic_entry;

typedef struct traffic_snap {
  _Atomic int refs;
  size_t n;
  traffic_entry *e; /* owned */
} traffic_snap;

/* ---- per-arm statistics (the completion stage's, read by the report and the tick) --------- */

#define ARM_MAX_LABELS 32

typedef struct arm_stats {
  char model[256];
  char arm[TRAFFIC_NAME_MAX];
  char version[TRAFFIC_NAME_MAX]; /* the last version that answered for it */
  int64_t requests, errors;
  int64_t hist[TRAFFIC_HIST_BUCKETS];
  double sum_ms; /* of the latencies in hist: the metrics histogram's _sum */
  /* classifiers: the label output's values and the top probability */
  struct arm_label {
    int64_t label;
    int64_t count;
  } labels[ARM_MAX_LABELS];
  int n_labels;
  int64_t labels_other;
  double score_sum;
  int64_t score_n;
  /* the current rollout step's window (reset when a step starts) */
  int64_t win_requests, win_errors;
  int64_t win_hist[TRAFFIC_HIST_BUCKETS];
  struct arm_stats *next;
} arm_stats;

/* ---- shadow traffic ---------------------------------------------------------------------- */

#define SHADOW_MAX_OUTPUTS 8

/* What the shadow copies of one model did, compared with their live requests. */
typedef struct shadow_stats {
  char model[256];
  char version[TRAFFIC_NAME_MAX];
  int64_t sent, dropped, errors, compared;
  int64_t label_rows, label_agree; /* classifiers: rows whose labels agree */
  int64_t disagreed;               /* compared requests with a label that differs */
  struct {
    char name[64];
    double sum_abs, max_abs;
    int64_t n;
  } out[SHADOW_MAX_OUTPUTS]; /* regressors: |shadow - live| per FP32 output */
  int n_out;
  int64_t hist[TRAFFIC_HIST_BUCKETS]; /* the shadow's own server time */
  double sum_ms;
  int64_t win_compared, win_disagreed;
  _Atomic int in_flight;
  struct shadow_stats *next;
} shadow_stats;

/* A live request and its shadow copy, until both have finished. */
typedef struct shadow_pair {
  const infer_request *live; /* the key the live completion finds it by; never dereferenced */
  shadow_stats *stats;
  bool live_done, shadow_done, live_ok, shadow_ok;
  tensor *live_out, *shadow_out; /* owned copies / taken outputs */
  size_t n_live, n_shadow;
  struct shadow_pair *next;
} shadow_pair;

struct traffic {
  app *app;
  char state_dir[PATH_MAX];
  pthread_mutex_t snap_mu; /* held only to take a reference on cur or to swap it */
  traffic_snap *cur;
  pthread_mutex_t admin_mu; /* one change at a time: admin API and tick */
  traffic_store *store;     /* NULL until the first change when no state existed */
  int audit_fd;             /* -1 until the first change */
  _Atomic uint64_t draws;   /* unpinned, key-less requests: a counter mixed into [0, 1) */
  atomic_size_t n_policies; /* models in cur: 0 lets the route stage skip the snapshot */
  pthread_mutex_t stats_mu;
  arm_stats *stats;
  traffic_breaker *breakers; /* admin_mu (or start-up) adds; never removed until destroy */
  shadow_stats *shadows;     /* stats_mu */
  shadow_pair *pending;      /* stats_mu: pairs whose live request has not finished */
  _Atomic int n_pending;
  /* the rollout tick */
  pthread_t tick;
  bool tick_started;
  pthread_mutex_t tick_mu;
  pthread_cond_t tick_cv;
  bool stop, poked;
  int tick_ms;
  /* a shared store: the generation last applied, and when it was last polled */
  int64_t shared_generation, shared_polled_ms;
};

static int64_t now_unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static traffic_snap *snap_acquire(traffic *t) {
  pthread_mutex_lock(&t->snap_mu);
  traffic_snap *s = t->cur;
  atomic_fetch_add(&s->refs, 1);
  pthread_mutex_unlock(&t->snap_mu);
  return s;
}

static void snap_release(traffic_snap *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
    free(s->e);
    free(s);
  }
}

static const traffic_entry *snap_find(const traffic_snap *s, const char *model) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->e[i].model, model) == 0) return &s->e[i];
  return NULL;
}

/* Publishes a copy of the current snapshot with model's policy replaced (admin_mu held). */
static inferd_status publish(traffic *t, const char *model, const traffic_policy *p) {
  traffic_snap *old = t->cur; /* only admin_mu holders swap it, and we hold it */
  traffic_snap *s = calloc(1, sizeof *s);
  size_t n = old->n + (snap_find(old, model) ? 0 : 1);
  if (s == NULL || (s->e = calloc(n, sizeof *s->e)) == NULL) {
    free(s);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  if (old->n) memcpy(s->e, old->e, old->n * sizeof *s->e);
  s->n = old->n;
  traffic_entry *e = (traffic_entry *)snap_find(s, model);
  if (e == NULL) {
    e = &s->e[s->n++];
    snprintf(e->model, sizeof e->model, "%s", model);
  }
  e->policy = *p;
  if (e->breaker == NULL) {
    for (traffic_breaker *b = t->breakers; b && !e->breaker; b = b->next)
      if (strcmp(b->model, model) == 0) e->breaker = b;
    if (e->breaker == NULL && (e->breaker = calloc(1, sizeof *e->breaker)) != NULL) {
      snprintf(e->breaker->model, sizeof e->breaker->model, "%s", model);
      e->breaker->next = t->breakers;
      t->breakers = e->breaker;
    }
  }
  atomic_store(&s->refs, 1);
  pthread_mutex_lock(&t->snap_mu);
  t->cur = s;
  pthread_mutex_unlock(&t->snap_mu);
  atomic_store(&t->n_policies, s->n);
  snap_release(old);
  return status_ok();
}

/* ---- the route stage -------------------------------------------------------------------- */

static inferd_status route(void *ctx, const serve_request *sr, char version[32], char arm[32]) {
  traffic *t = ctx;
  const char *req = sr->version ? sr->version : "";
  version[0] = arm[0] = '\0';
  if (atomic_load_explicit(&t->n_policies, memory_order_relaxed) == 0) { /* no policy anywhere */
    size_t n = strlen(req);
    if (n >= 32) return status_make(INFERD_NOT_FOUND, "model '%s' has no version '%.40s...'", sr->model, req);
    memcpy(version, req, n + 1);
    return status_ok();
  }
  traffic_snap *s = snap_acquire(t);
  const traffic_entry *e = snap_find(s, sr->model);
  inferd_status st = status_ok();
  if (e == NULL) {
    /* no policy: the version as asked (the repository words what is wrong with it) */
    if (strlen(req) >= 32) st = status_make(INFERD_NOT_FOUND, "model '%s' has no version '%.40s...'", sr->model, req);
    else memcpy(version, req, strlen(req) + 1);
  } else {
    const traffic_policy *p = &e->policy;
    double u;
    const char *key = NULL;
    if (p->sticky == TRAFFIC_STICKY_HEADER) key = serve_meta(sr, p->sticky_header);
    else if (p->sticky == TRAFFIC_STICKY_PRINCIPAL && sr->principal) key = sr->principal->name;
    else if (p->sticky == TRAFFIC_STICKY_RECORD_FIELD && sr->record_field && req[0] == '\0') /* pinned: no split */
      st = sr->record_field(sr->record_ctx, p->sticky_header, &key);
    if (!status_is_ok(&st)) {
      snap_release(s);
      return st;
    }
    if (key && *key) u = traffic_hash_unit(key, strlen(key));
    else u = traffic_unit_of(traffic_mix64(atomic_fetch_add_explicit(&t->draws, 1, memory_order_relaxed)));
    st = traffic_route(p, sr->model, req, u, version, arm);
    /* the breaker: a tripped candidate's share goes to the baseline until the rollback lands */
    if (status_is_ok(&st) && e->breaker && strcmp(arm, "canary") == 0 && atomic_load(&e->breaker->tripped)) {
      const char *v = p->rollout.baseline[0] ? traffic_resolve_version(p, p->rollout.baseline) : NULL;
      if (v) {
        snprintf(version, 32, "%s", v);
        snprintf(arm, 32, "stable");
      }
    }
  }
  snap_release(s);
  return st;
}

/* ---- the completion stage: per-arm statistics ------------------------------------------- */

static arm_stats *stats_find(traffic *t, const char *model, const char *arm, bool create) {
  for (arm_stats *a = t->stats; a; a = a->next)
    if (strcmp(a->arm, arm) == 0 && strcmp(a->model, model) == 0) return a;
  if (!create) return NULL;
  arm_stats *a = calloc(1, sizeof *a);
  if (a == NULL) return NULL;
  snprintf(a->model, sizeof a->model, "%s", model);
  snprintf(a->arm, sizeof a->arm, "%s", arm);
  a->next = t->stats;
  t->stats = a;
  return a;
}

/* A classifier's answer: an integer label output with one value per row, and a probability
 * output [rows, classes]; false when the outputs do not look like that. */
static bool classifier_outputs(const infer_request *req, const tensor **label, const tensor **probs) {
  *label = *probs = NULL;
  for (size_t i = 0; i < req->n_outputs; i++) {
    const tensor *o = &req->outputs[i];
    int64_t n = 1;
    for (int d = 0; d < o->ndim; d++) n *= o->shape[d];
    if (*label == NULL && o->datatype == DT_INT64 && o->ndim >= 1 && n == o->shape[0] && n > 0) *label = o;
    else if (*probs == NULL && o->datatype == DT_FP32 && o->ndim == 2 && o->shape[1] >= 2) *probs = o;
  }
  return *label != NULL;
}

static void stats_add_label(arm_stats *a, int64_t label) {
  for (int i = 0; i < a->n_labels; i++)
    if (a->labels[i].label == label) {
      a->labels[i].count++;
      return;
    }
  if (a->n_labels < ARM_MAX_LABELS) a->labels[a->n_labels++] = (struct arm_label){label, 1};
  else a->labels_other++;
}

static void poke_tick(traffic *t) {
  pthread_mutex_lock(&t->tick_mu);
  t->poked = true;
  pthread_cond_signal(&t->tick_cv);
  pthread_mutex_unlock(&t->tick_mu);
}

static shadow_stats *shadow_find(traffic *t, const char *model, bool create) {
  for (shadow_stats *x = t->shadows; x; x = x->next)
    if (strcmp(x->model, model) == 0) return x;
  if (!create) return NULL;
  shadow_stats *x = calloc(1, sizeof *x);
  if (x == NULL) return NULL;
  snprintf(x->model, sizeof x->model, "%s", model);
  x->next = t->shadows;
  t->shadows = x;
  return x;
}

static const tensor *find_output(const tensor *ts, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(ts[i].name, name) == 0) return &ts[i];
  return NULL;
}

/* Both answers are in (stats_mu held): labels (INT64) agree row by row, FP32 outputs differ by
 * how much. Outputs are matched by name and shape; others are not compared. */
static void shadow_compare(shadow_pair *p) {
  shadow_stats *x = p->stats;
  if (!p->shadow_ok) {
    x->errors++;
    return;
  }
  if (!p->live_ok) return; /* nothing to compare with */
  x->compared++;
  x->win_compared++;
  bool disagreed = false;
  for (size_t i = 0; i < p->n_live; i++) {
    const tensor *l = &p->live_out[i], *sh = find_output(p->shadow_out, p->n_shadow, l->name);
    if (sh == NULL || sh->datatype != l->datatype || sh->byte_size != l->byte_size) continue;
    if (l->datatype == DT_INT64) {
      const int64_t *a = (const int64_t *)l->data, *b = (const int64_t *)sh->data;
      for (size_t k = 0; k < l->byte_size / 8; k++) {
        x->label_rows++;
        if (a[k] == b[k]) x->label_agree++;
        else disagreed = true;
      }
    } else if (l->datatype == DT_FP32) {
      int j = 0;
      while (j < x->n_out && strcmp(x->out[j].name, l->name) != 0) j++;
      if (j == x->n_out) {
        if (x->n_out == SHADOW_MAX_OUTPUTS) continue;
        snprintf(x->out[j].name, sizeof x->out[j].name, "%s", l->name);
        x->n_out++;
      }
      for (size_t k = 0; k < l->byte_size / 4; k++) {
        float a, b; /* tensor data is bytes: copied out, as its alignment is not promised */
        memcpy(&a, l->data + 4 * k, 4);
        memcpy(&b, sh->data + 4 * k, 4);
        double d = a > b ? (double)a - b : (double)b - a;
        x->out[j].sum_abs += d;
        x->out[j].n++;
        if (d > x->out[j].max_abs) x->out[j].max_abs = d;
      }
    }
  }
  if (disagreed) {
    x->disagreed++;
    x->win_disagreed++;
  }
}

static void shadow_pair_free(shadow_pair *p) {
  if (p->live_out) tensors_free(p->live_out, p->n_live);
  if (p->shadow_out) tensors_free(p->shadow_out, p->n_shadow);
  free(p);
}

/* A deep copy of n tensors (the live outputs are freed with the live request). */
static tensor *tensors_copy(const tensor *src, size_t n) {
  tensor *dst = calloc(n ? n : 1, sizeof *dst);
  if (dst == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    inferd_status st = tensor_init(&dst[i], src[i].name, src[i].datatype, src[i].shape, src[i].ndim);
    if (status_is_ok(&st)) st = tensor_alloc(&dst[i], src[i].byte_size);
    if (!status_is_ok(&st)) {
      tensors_free(dst, i + 1);
      return NULL;
    }
    if (src[i].byte_size) memcpy(dst[i].data, src[i].data, src[i].byte_size);
    dst[i].bytes_are_json = src[i].bytes_are_json;
  }
  return dst;
}

/* The shadow copy finished, on a worker: record it, compare when the live one is in too. */
static void shadow_done(infer_request *sreq, void *user) {
  shadow_pair *p = user;
  traffic *t = (traffic *)sreq->reply_user;
  double ms = (double)(sreq->queue_ns + sreq->compute_input_ns + sreq->compute_infer_ns + sreq->compute_output_ns) / 1e6;
  bool ok = status_is_ok(&sreq->status);
  pthread_mutex_lock(&t->stats_mu);
  p->shadow_ok = ok;
  if (ok) { /* take the outputs: the request is destroyed below */
    p->shadow_out = sreq->outputs;
    p->n_shadow = sreq->n_outputs;
    sreq->outputs = NULL;
    p->stats->hist[traffic_hist_bucket(ms)]++;
    p->stats->sum_ms += ms;
  }
  p->shadow_done = true;
  bool both = p->live_done;
  if (both) shadow_compare(p);
  atomic_fetch_sub(&p->stats->in_flight, 1);
  pthread_mutex_unlock(&t->stats_mu);
  if (both) shadow_pair_free(p);
  infer_request_destroy(sreq);
}

/* The fork stage: a copy of the live request to the shadow version, at the lowest priority,
 * never waited on. Its status is ignored by serve, and nothing here changes the live request. */
static inferd_status on_fork(void *ctx, const serve_request *sr, infer_request *req) {
  traffic *t = ctx;
  if (req->arm[0] == '\0') return status_ok(); /* no policy */
  char version[TRAFFIC_NAME_MAX] = "";
  double percent = 0;
  int max_in_flight = 0;
  traffic_snap *s = snap_acquire(t);
  const traffic_entry *e = snap_find(s, sr->model);
  if (e && e->policy.shadow.on) {
    const char *v = traffic_resolve_version(&e->policy, e->policy.shadow.version);
    if (v) snprintf(version, sizeof version, "%s", v);
    percent = e->policy.shadow.percent;
    max_in_flight = e->policy.shadow.max_in_flight;
  }
  snap_release(s);
  if (version[0] == '\0' || strcmp(version, req->mv->version_str) == 0) return status_ok();
  uint64_t draw = atomic_fetch_add_explicit(&t->draws, 1, memory_order_relaxed);
  if (traffic_unit_of(traffic_mix64(draw ^ 0x5eed5eedULL)) * 100 >= percent) return status_ok();
  pthread_mutex_lock(&t->stats_mu);
  shadow_stats *x = shadow_find(t, sr->model, true);
  if (x) {
    snprintf(x->version, sizeof x->version, "%s", version);
    x->sent++;
  }
  pthread_mutex_unlock(&t->stats_mu);
  if (x == NULL) return status_ok();
  /* under load the shadow goes first: past its in-flight bound, or when its version cannot
   * take it, the copy is dropped (counted), never queued behind the live traffic */
  model_version *mv = NULL;
  infer_request *sreq = NULL;
  shadow_pair *p = NULL;
  bool sent = false;
  if (atomic_fetch_add(&x->in_flight, 1) < max_in_flight &&
      repo_acquire(t->app->repo, sr->model, version, REPO_READY, &mv).code == INFERD_OK &&
      (sreq = infer_request_create(mv)) != NULL && (p = calloc(1, sizeof *p)) != NULL &&
      (sreq->inputs = tensors_copy(req->inputs, req->n_inputs)) != NULL) {
    sreq->n_inputs = req->n_inputs;
    inferd_status st = infer_request_validate(sreq); /* the shadow's signature; all its outputs */
    if (status_is_ok(&st)) {
      int levels = mv->model->config->batching.priority_levels;
      sreq->priority = levels > 1 ? levels : 0; /* the lowest the version has */
      sreq->deadline_ns = req->deadline_ns;
      snprintf(sreq->arm, sizeof sreq->arm, "shadow");
      p->live = req;
      p->stats = x;
      sreq->on_done = shadow_done;
      sreq->user = p;
      sreq->reply_user = t;
      pthread_mutex_lock(&t->stats_mu);
      p->next = t->pending;
      t->pending = p;
      atomic_fetch_add(&t->n_pending, 1);
      pthread_mutex_unlock(&t->stats_mu);
      sched_submit(t->app->sched, sreq);
      sent = true;
    }
  }
  if (mv) version_release(mv);
  if (!sent) {
    atomic_fetch_sub(&x->in_flight, 1);
    pthread_mutex_lock(&t->stats_mu);
    x->dropped++;
    pthread_mutex_unlock(&t->stats_mu);
    free(p);
    infer_request_destroy(sreq);
  }
  return status_ok();
}

/* The live side of a shadowed request finished (stats_mu held). */
static shadow_pair *live_finished(traffic *t, const infer_request *req) {
  for (shadow_pair **pp = &t->pending; *pp; pp = &(*pp)->next) {
    shadow_pair *p = *pp;
    if (p->live != req) continue;
    *pp = p->next;
    atomic_fetch_sub(&t->n_pending, 1);
    p->live_ok = status_is_ok(&req->status);
    if (p->live_ok) {
      p->live_out = tensors_copy(req->outputs, req->n_outputs);
      p->n_live = p->live_out ? req->n_outputs : 0;
    }
    p->live_done = true;
    if (!p->shadow_done) return NULL; /* the shadow side frees it */
    shadow_compare(p);
    return p;
  }
  return NULL;
}

static inferd_status on_complete(void *ctx, const serve_request *sr, infer_request *req) {
  (void)sr;
  traffic *t = ctx;
  if (req->arm[0] == '\0') return status_ok(); /* a model without a policy pays only this */
  bool ok = status_is_ok(&req->status);
  /* the server's own time on it: queueing and compute (the network is the client's) */
  double ms = (double)(req->queue_ns + req->compute_input_ns + req->compute_infer_ns + req->compute_output_ns) / 1e6;
  int b = traffic_hist_bucket(ms);
  const tensor *label = NULL, *probs = NULL;
  bool cls = ok && classifier_outputs(req, &label, &probs);
  traffic_window win = {0};
  shadow_pair *done_pair = NULL;
  pthread_mutex_lock(&t->stats_mu);
  if (atomic_load(&t->n_pending) > 0) done_pair = live_finished(t, req);
  arm_stats *a = stats_find(t, req->mv->model->name, req->arm, true);
  if (a) {
    snprintf(a->version, sizeof a->version, "%s", req->mv->version_str);
    a->requests++;
    a->win_requests++;
    a->hist[b]++;
    a->sum_ms += ms;
    a->win_hist[b]++;
    if (!ok) {
      a->errors++;
      a->win_errors++;
    }
    if (cls) {
      const int64_t *lv = (const int64_t *)label->data;
      int64_t rows = label->shape[0];
      for (int64_t r = 0; r < rows; r++) stats_add_label(a, lv[r]);
      if (probs && probs->shape[0] == rows) {
        int64_t k = probs->shape[1];
        for (int64_t r = 0; r < rows; r++) {
          float best, v;
          memcpy(&best, probs->data + 4 * (size_t)(r * k), 4);
          for (int64_t j = 1; j < k; j++) {
            memcpy(&v, probs->data + 4 * (size_t)(r * k + j), 4);
            if (v > best) best = v;
          }
          a->score_sum += best;
          a->score_n++;
        }
      }
    }
    win.requests = a->win_requests;
    win.errors = a->win_errors;
  }
  pthread_mutex_unlock(&t->stats_mu);
  if (done_pair) shadow_pair_free(done_pair);
  /* a failing candidate is judged at once, not at the next tick: its errors alone decide the
   * error guards (the baseline and the clock only matter to the latency guard and the step) */
  if (!ok && strcmp(req->arm, "canary") == 0) {
    traffic_snap *s = snap_acquire(t);
    const traffic_entry *e = snap_find(s, req->mv->model->name);
    if (e && e->breaker && e->policy.rollout.state == ROLLOUT_RUNNING) {
      traffic_observation obs = {.candidate = win};
      char why[512];
      if (traffic_rollout_decide(&e->policy.rollout, e->policy.rollout.step_started_ms, &obs, why, sizeof why) ==
          ROLLOUT_ROLLBACK)
        atomic_store(&e->breaker->tripped, true);
    }
    snap_release(s);
    poke_tick(t);
  }
  return status_ok();
}

static void window_of(traffic *t, const char *model, const char *arm, traffic_window *w) {
  *w = (traffic_window){0};
  arm_stats *a = stats_find(t, model, arm, false);
  if (a == NULL) return;
  w->requests = a->win_requests;
  w->errors = a->win_errors;
  w->p99_ms = traffic_hist_quantile(a->win_hist, 0.99);
}

static void windows_reset(traffic *t, const char *model) {
  pthread_mutex_lock(&t->stats_mu);
  for (arm_stats *a = t->stats; a; a = a->next)
    if (strcmp(a->model, model) == 0) {
      a->win_requests = a->win_errors = 0;
      memset(a->win_hist, 0, sizeof a->win_hist);
    }
  shadow_stats *x = shadow_find(t, model, false);
  if (x) x->win_compared = x->win_disagreed = 0;
  pthread_mutex_unlock(&t->stats_mu);
}

/* ---- changes: store, audit log, publication --------------------------------------------- */

static inferd_status ensure_store(traffic *t) {
  if (t->store && t->audit_fd >= 0) return status_ok();
  if (mkdir(t->state_dir, 0755) != 0 && errno != EEXIST)
    return status_make(INFERD_INTERNAL, "cannot create the state directory %s: %s", t->state_dir, strerror(errno));
  char path[PATH_MAX + 32];
  if (t->store == NULL) {
    snprintf(path, sizeof path, "%s/traffic.db", t->state_dir);
    TRY(traffic_store_sqlite_open(path, &t->store));
  }
  if (t->audit_fd < 0) {
    snprintf(path, sizeof path, "%s/traffic-audit.jsonl", t->state_dir);
    t->audit_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (t->audit_fd < 0) return status_make(INFERD_INTERNAL, "cannot open the audit log %s: %s", path, strerror(errno));
  }
  return status_ok();
}

static void iso_time(int64_t ms, char *buf, size_t len) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, len, "%s.%03dZ", base, (int)(ms % 1000));
}

static const traffic_policy *current_policy(traffic *t, const char *model) {
  const traffic_entry *e = snap_find(t->cur, model); /* admin_mu held: cur cannot change */
  return e ? &e->policy : NULL;
}

/* Records and publishes model's new policy (admin_mu held): durable first (store, with its
 * history event, then the audit log), visible after, so an acknowledged change survives a
 * crash and a crash never leaves the server routing by a policy nobody can find. */
static inferd_status commit(traffic *t, const char *model, const traffic_policy *p, const char *who,
                            const char *action, const char *why) {
  int64_t at = now_unix_ms();
  const traffic_policy *old = current_policy(t, model);
  char when[40];
  iso_time(at, when, sizeof when);
  json_t *ev = json_pack("{ss sI ss ss ss ss so so}", "at", when, "at_ms", (json_int_t)at, "model", model, "who",
                         who && *who ? who : "anonymous", "action", action, "why", why ? why : "", "from",
                         old ? traffic_policy_to_json(old) : json_null(), "to", traffic_policy_to_json(p));
  json_t *pj = traffic_policy_to_json(p);
  char *evs = json_dumps(ev, JSON_COMPACT), *ps = json_dumps(pj, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(ev);
  json_decref(pj);
  inferd_status st = status_ok();
  if (evs == NULL || ps == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
  if (status_is_ok(&st)) st = ensure_store(t);
  if (status_is_ok(&st)) st = t->store->ops->save(t->store, model, ps, at, evs);
  if (status_is_ok(&st)) {
    size_t n = strlen(evs);
    evs[n] = '\n'; /* the audit log is one JSON object a line */
    if (write(t->audit_fd, evs, n + 1) != (ssize_t)(n + 1) || fdatasync(t->audit_fd) != 0)
      log_msg(LOG_WARN, model, "traffic: could not append to the audit log in %s: %s", t->state_dir, strerror(errno));
    evs[n] = '\0';
  }
  if (status_is_ok(&st)) {
    bool new_window = old == NULL || old->rollout.step != p->rollout.step || old->rollout.state != p->rollout.state ||
                      old->rollout.step_started_ms != p->rollout.step_started_ms;
    st = publish(t, model, p);
    if (status_is_ok(&st) && new_window) windows_reset(t, model);
    const traffic_entry *e = status_is_ok(&st) ? snap_find(t->cur, model) : NULL;
    if (e && e->breaker && new_window) atomic_store(&e->breaker->tripped, false); /* the new policy decides */
    if (status_is_ok(&st))
      log_msg(LOG_INFO, model, "traffic: %s by %s%s%s", action, who && *who ? who : "anonymous", why && *why ? ": " : "",
              why ? why : "");
  }
  free(evs);
  free(ps);
  return st;
}

/* ---- the rollout tick ------------------------------------------------------------------- */

static void tick_once(traffic *t) {
  pthread_mutex_lock(&t->admin_mu);
  int64_t now = now_unix_ms();
  for (size_t i = 0; i < t->cur->n; i++) {
    const traffic_entry *e = &t->cur->e[i];
    if (e->policy.rollout.state != ROLLOUT_RUNNING) continue;
    traffic_observation obs = {0};
    pthread_mutex_lock(&t->stats_mu);
    window_of(t, e->model, "canary", &obs.candidate);
    window_of(t, e->model, "stable", &obs.baseline);
    const shadow_stats *x = shadow_find(t, e->model, false);
    if (x && x->win_compared > 0) {
      obs.has_shadow = true;
      obs.shadow_disagreement = (double)x->win_disagreed / (double)x->win_compared;
    }
    pthread_mutex_unlock(&t->stats_mu);
    char why[512];
    traffic_decision d = traffic_rollout_decide(&e->policy.rollout, now, &obs, why, sizeof why);
    if (d == ROLLOUT_HOLD) continue;
    traffic_policy p = e->policy;
    char model[256];
    snprintf(model, sizeof model, "%s", e->model);
    traffic_rollout_apply(&p, d, now, why);
    static const char *const actions[] = {"hold", "advance", "promote", "guard_rollback"};
    inferd_status st = commit(t, model, &p, "rollout", actions[d], why);
    if (!status_is_ok(&st)) log_msg(LOG_ERROR, model, "traffic: the rollout tick could not %s: %s", actions[d], st.msg);
    else if (d == ROLLOUT_ROLLBACK) log_msg(LOG_WARN, model, "traffic: rolled back: %s", why);
    /* commit replaced the snapshot: the loop's e is stale, and i still indexes the same model */
  }
  pthread_mutex_unlock(&t->admin_mu);
}

/* ---- the shared store: the other replicas' changes -------------------------------------- */

#define SHARED_POLL_MS 500

/* One stored policy from the shared store (admin_mu held): published when it differs from ours. */
static void apply_shared(void *user, const char *model, const char *policy_json) {
  traffic *t = user;
  const traffic_policy *cur = current_policy(t, model);
  if (cur) {
    json_t *cj = traffic_policy_to_json(cur);
    char *cs = cj ? json_dumps(cj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(cj);
    bool same = cs && strcmp(cs, policy_json) == 0; /* commit stores the same canonical form */
    free(cs);
    if (same) return;
  }
  json_error_t err;
  json_t *doc = json_loads(policy_json, 0, &err);
  traffic_policy p;
  inferd_status st = doc ? traffic_policy_from_json(doc, "policy", &p) : status_make(INFERD_INTERNAL, "not JSON");
  json_decref(doc);
  if (!status_is_ok(&st)) {
    log_msg(LOG_ERROR, model, "traffic: a shared policy is unreadable, ignored: %s", st.msg);
    return;
  }
  bool new_window = cur == NULL || cur->rollout.step != p.rollout.step || cur->rollout.state != p.rollout.state ||
                    cur->rollout.step_started_ms != p.rollout.step_started_ms;
  st = publish(t, model, &p);
  if (!status_is_ok(&st)) return;
  if (new_window) windows_reset(t, model);
  const traffic_entry *e = snap_find(t->cur, model);
  if (e && e->breaker && new_window) atomic_store(&e->breaker->tripped, false);
  log_msg(LOG_INFO, model, "traffic: policy changed by another replica, applied");
}

/* Polls a shared store every SHARED_POLL_MS (tick thread): a GET of a counter when nothing
 * changed. Polling rather than pub/sub: a replica that was disconnected catches up on its next
 * poll with no message to lose, and there is no second connection to keep subscribed. */
static void refresh_shared(traffic *t) {
  if (t->store == NULL || t->store->ops->refresh == NULL) return;
  int64_t now = now_unix_ms();
  if (now - t->shared_polled_ms < SHARED_POLL_MS) return;
  t->shared_polled_ms = now;
  pthread_mutex_lock(&t->admin_mu);
  (void)t->store->ops->refresh(t->store, &t->shared_generation, apply_shared, t); /* down: ours stands */
  pthread_mutex_unlock(&t->admin_mu);
}

static void *tick_main(void *arg) {
  traffic *t = arg;
  pthread_setname_np(pthread_self(), "traffic-tick");
  pthread_mutex_lock(&t->tick_mu);
  while (!t->stop) {
    if (!t->poked) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += (long)t->tick_ms * 1000000L;
      ts.tv_sec += ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      pthread_cond_timedwait(&t->tick_cv, &t->tick_mu, &ts);
    }
    if (t->stop) break;
    t->poked = false;
    pthread_mutex_unlock(&t->tick_mu);
    tick_once(t);
    refresh_shared(t);
    pthread_mutex_lock(&t->tick_mu);
  }
  pthread_mutex_unlock(&t->tick_mu);
  return NULL;
}

/* ---- start-up ----------------------------------------------------------------------------- */

typedef struct load_ctx {
  traffic *t;
  size_t n;
} load_ctx;

static void load_one(void *user, const char *model, const char *policy_json) {
  load_ctx *lc = user;
  json_error_t err;
  json_t *doc = json_loads(policy_json, 0, &err);
  traffic_policy p;
  inferd_status st = doc ? traffic_policy_from_json(doc, "policy", &p)
                         : status_make(INFERD_INTERNAL, "not JSON: %s", err.text);
  json_decref(doc);
  if (!status_is_ok(&st)) {
    log_msg(LOG_ERROR, model, "traffic: the stored policy is unreadable, ignored: %s", st.msg);
    return;
  }
  st = publish(lc->t, model, &p); /* at start, before any reader: no lock needed */
  if (status_is_ok(&st)) lc->n++;
}

/* config.json "traffic" of each model folder, for models the store has no policy for. */
static void load_config_defaults(traffic *t, const char *repo_dir) {
  DIR *d = repo_dir ? opendir(repo_dir) : NULL;
  if (d == NULL) return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/config.json", repo_dir, de->d_name);
    json_t *cfg = json_load_file(path, 0, NULL);
    const json_t *tj = cfg ? json_object_get(cfg, "traffic") : NULL;
    if (tj && current_policy(t, de->d_name) == NULL) {
      traffic_policy p;
      inferd_status st = traffic_policy_from_json(tj, "traffic", &p);
      if (status_is_ok(&st) && p.rollout.state == ROLLOUT_RUNNING && p.rollout.step_started_ms == 0)
        p.rollout.step_started_ms = now_unix_ms();
      /* a default that nobody changed needs no store: it is re-read at every start */
      if (status_is_ok(&st)) st = publish(t, de->d_name, &p);
      if (!status_is_ok(&st)) log_msg(LOG_ERROR, de->d_name, "traffic: config.json's traffic is ignored: %s", st.msg);
      else log_msg(LOG_INFO, de->d_name, "traffic: the policy from config.json applies");
    }
    json_decref(cfg);
  }
  closedir(d);
}

inferd_status traffic_create(app *a, const traffic_options *o, traffic **out) {
  traffic *t = calloc(1, sizeof *t);
  if (t == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  t->app = a;
  t->audit_fd = -1;
  t->tick_ms = o->tick_ms > 0 ? o->tick_ms : 100;
  if (o->state_dir && *o->state_dir) {
    snprintf(t->state_dir, sizeof t->state_dir, "%s", o->state_dir);
  } else { /* beside the repository: <parent>/inferd-state */
    char repo[PATH_MAX];
    snprintf(repo, sizeof repo, "%s", o->model_repository ? o->model_repository : ".");
    size_t n = strlen(repo);
    while (n > 1 && repo[n - 1] == '/') repo[--n] = '\0';
    char *slash = strrchr(repo, '/');
    if (slash == NULL) snprintf(t->state_dir, sizeof t->state_dir, "inferd-state");
    else if (slash == repo) snprintf(t->state_dir, sizeof t->state_dir, "/inferd-state");
    else {
      *slash = '\0';
      snprintf(t->state_dir, sizeof t->state_dir, "%s/inferd-state", repo);
    }
  }
  pthread_mutex_init(&t->snap_mu, NULL);
  pthread_mutex_init(&t->admin_mu, NULL);
  pthread_mutex_init(&t->stats_mu, NULL);
  pthread_mutex_init(&t->tick_mu, NULL);
  pthread_cond_init(&t->tick_cv, NULL);
  t->cur = calloc(1, sizeof *t->cur);
  if (t->cur == NULL) {
    traffic_destroy(t);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  atomic_store(&t->cur->refs, 1);
  /* the store is opened at start only when state exists, so a server nobody configured
   * traffic on leaves no files behind */
  char db[PATH_MAX + 16];
  snprintf(db, sizeof db, "%s/traffic.db", t->state_dir);
  struct stat sb;
  if (o->rstore) { /* shared: the policies in Redis (and the local ones, its fallback) */
    inferd_status st = traffic_store_redis_open(o->rstore, db, &t->store);
    load_ctx lc = {.t = t};
    if (status_is_ok(&st)) st = t->store->ops->load(t->store, load_one, &lc);
    if (!status_is_ok(&st)) {
      traffic_destroy(t);
      return st;
    }
    if (lc.n) log_msg(LOG_INFO, NULL, "traffic: %zu model policies restored (Redis and %s)", lc.n, db);
  } else if (stat(db, &sb) == 0) {
    inferd_status st = ensure_store(t);
    load_ctx lc = {.t = t};
    if (status_is_ok(&st)) st = t->store->ops->load(t->store, load_one, &lc);
    if (!status_is_ok(&st)) {
      traffic_destroy(t);
      return st;
    }
    if (lc.n) log_msg(LOG_INFO, NULL, "traffic: %zu model policies restored from %s", lc.n, db);
  }
  load_config_defaults(t, o->model_repository);
  inferd_status st = serve_register(a->serve, SERVE_STAGE_STATS, on_complete, t);
  if (status_is_ok(&st)) st = serve_register(a->serve, SERVE_STAGE_FORK, on_fork, t);
  if (!status_is_ok(&st)) {
    traffic_destroy(t);
    return st;
  }
  if (pthread_create(&t->tick, NULL, tick_main, t) != 0) {
    traffic_destroy(t);
    return status_make(INFERD_INTERNAL, "cannot start the rollout tick thread");
  }
  serve_set_router(a->serve, route, t); /* last: nothing above can fail once requests use it */
  t->tick_started = true;
  a->traffic = t;
  *out = t;
  return status_ok();
}

void traffic_destroy(traffic *t) {
  if (t == NULL) return;
  if (t->tick_started) {
    pthread_mutex_lock(&t->tick_mu);
    t->stop = true;
    pthread_cond_signal(&t->tick_cv);
    pthread_mutex_unlock(&t->tick_mu);
    pthread_join(t->tick, NULL);
  }
  if (t->app && t->app->traffic == t) t->app->traffic = NULL;
  if (t->store) t->store->ops->close(t->store);
  if (t->audit_fd >= 0) close(t->audit_fd);
  snap_release(t->cur);
  for (arm_stats *a = t->stats, *next; a; a = next) {
    next = a->next;
    free(a);
  }
  for (shadow_pair *p = t->pending, *next; p; p = next) { /* a live side that never finished */
    next = p->next;
    if (p->shadow_done) shadow_pair_free(p);
  }
  for (shadow_stats *x = t->shadows, *next; x; x = next) {
    next = x->next;
    free(x);
  }
  for (traffic_breaker *b = t->breakers, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  pthread_mutex_destroy(&t->snap_mu);
  pthread_mutex_destroy(&t->admin_mu);
  pthread_mutex_destroy(&t->stats_mu);
  pthread_mutex_destroy(&t->tick_mu);
  pthread_cond_destroy(&t->tick_cv);
  free(t);
}

/* ---- admin operations --------------------------------------------------------------------- */

static inferd_status model_exists(traffic *t, const char *model) {
  repo_snapshot *s = repo_snapshot_acquire(t->app->repo);
  bool found = repo_snapshot_find(s, model) != NULL;
  repo_snapshot_release(s);
  return found ? status_ok() : status_make(INFERD_NOT_FOUND, "model '%s' not found", model);
}

/* Blue-green's rule: traffic moves only to a version that is READY (loaded and warmed). */
static inferd_status version_ready(traffic *t, const char *model, const char *version, const char *what) {
  model_version *mv = NULL;
  inferd_status st = repo_acquire(t->app->repo, model, version, REPO_READY, &mv);
  if (!status_is_ok(&st))
    return status_make(INFERD_INVALID_ARGUMENT, "%s: version %s cannot take traffic: %s", what, version, st.msg);
  version_release(mv);
  return status_ok();
}

/* Every version p would send traffic to that old did not, must be ready. */
static inferd_status check_targets(traffic *t, const char *model, const traffic_policy *p, const traffic_policy *old) {
  char what[96];
  for (int i = 0; i < p->n_aliases; i++) {
    const char *was = old ? traffic_resolve_version(old, p->aliases[i].name) : NULL;
    if (was && strcmp(was, p->aliases[i].version) == 0) continue;
    snprintf(what, sizeof what, "alias '%s'", p->aliases[i].name);
    TRY(version_ready(t, model, p->aliases[i].version, what));
  }
  for (int i = 0; i < p->n_arms; i++) {
    if (p->arms[i].weight <= 0) continue;
    const char *v = traffic_resolve_version(p, p->arms[i].version);
    bool had = false;
    for (int j = 0; old && j < old->n_arms; j++)
      if (old->arms[j].weight > 0 && traffic_resolve_version(old, old->arms[j].version) &&
          strcmp(traffic_resolve_version(old, old->arms[j].version), v) == 0)
        had = true;
    if (had) continue;
    snprintf(what, sizeof what, "arm '%s'", p->arms[i].name);
    TRY(version_ready(t, model, v, what));
  }
  if (p->rollout.state == ROLLOUT_RUNNING) TRY(version_ready(t, model, p->rollout.candidate, "rollout candidate"));
  return status_ok();
}

static json_t *policy_reply(const char *model, const traffic_policy *p) {
  json_t *doc = p ? traffic_policy_to_json(p) : json_pack("{s{} s[]}", "aliases", "arms");
  json_object_set_new(doc, "model", json_string(model));
  return doc;
}

inferd_status traffic_get(traffic *t, const char *model, json_t **out) {
  TRY(model_exists(t, model));
  traffic_snap *s = snap_acquire(t);
  const traffic_entry *e = snap_find(s, model);
  *out = policy_reply(model, e ? &e->policy : NULL);
  snap_release(s);
  return status_ok();
}

inferd_status traffic_put(traffic *t, const char *model, const json_t *body, const char *who, json_t **out) {
  TRY(model_exists(t, model));
  if (!json_is_object(body)) return status_make(INFERD_INVALID_ARGUMENT, "the body must be a JSON object (a traffic policy)");
  json_t *doc = json_copy((json_t *)body);
  const json_t *r = json_object_get(doc, "reason");
  char why[256] = "";
  if (r && !json_is_string(r)) {
    json_decref(doc);
    return status_make(INFERD_INVALID_ARGUMENT, "$.reason must be a string");
  }
  if (r) snprintf(why, sizeof why, "%s", json_string_value(r));
  json_object_del(doc, "reason");
  traffic_policy p;
  inferd_status st = traffic_policy_from_json(doc, "$", &p);
  json_decref(doc);
  TRY(st);
  pthread_mutex_lock(&t->admin_mu);
  const traffic_policy *old = current_policy(t, model);
  /* a rollout the client restates keeps its progress; a new one starts its first step now */
  if (p.rollout.state == ROLLOUT_RUNNING && p.rollout.step_started_ms == 0) {
    if (old && old->rollout.state == ROLLOUT_RUNNING && strcmp(old->rollout.candidate, p.rollout.candidate) == 0 &&
        !json_object_get(json_object_get(body, "rollout"), "step")) {
      p.rollout.step = old->rollout.step < p.rollout.n_steps ? old->rollout.step : 0;
      p.rollout.step_started_ms = old->rollout.step_started_ms;
    } else {
      p.rollout.step_started_ms = now_unix_ms();
    }
    traffic_rollout_set_arms(&p);
  }
  st = check_targets(t, model, &p, old);
  if (status_is_ok(&st)) st = commit(t, model, &p, who, "put", why);
  if (status_is_ok(&st)) *out = policy_reply(model, current_policy(t, model));
  pthread_mutex_unlock(&t->admin_mu);
  return st;
}

inferd_status traffic_action(traffic *t, const char *model, const char *action, const char *why, const char *who,
                             json_t **out) {
  TRY(model_exists(t, model));
  pthread_mutex_lock(&t->admin_mu);
  inferd_status st = status_ok();
  const traffic_policy *old = current_policy(t, model);
  traffic_policy p;
  if (old) p = *old;
  const traffic_rollout_state s = old ? old->rollout.state : ROLLOUT_NONE;
  int64_t now = now_unix_ms();
  char reason[300];
  if (s == ROLLOUT_NONE) {
    st = status_make(INFERD_INVALID_ARGUMENT, "model '%s' has no rollout to %s (PUT one in its traffic policy)", model,
                     action);
  } else if (strcmp(action, "promote") == 0) {
    if (s == ROLLOUT_COMPLETE) st = status_make(INFERD_INVALID_ARGUMENT, "model '%s': the rollout is already complete", model);
    else st = version_ready(t, model, p.rollout.candidate, "promote");
    snprintf(reason, sizeof reason, "promoted by hand%s%s", why && *why ? ": " : "", why ? why : "");
    if (status_is_ok(&st)) traffic_rollout_apply(&p, ROLLOUT_PROMOTE, now, reason);
  } else if (strcmp(action, "rollback") == 0) {
    if (s == ROLLOUT_ROLLED_BACK) st = status_make(INFERD_INVALID_ARGUMENT, "model '%s': the rollout is already rolled back", model);
    snprintf(reason, sizeof reason, "rolled back by hand%s%s", why && *why ? ": " : "", why ? why : "");
    if (status_is_ok(&st)) {
      if (s == ROLLOUT_COMPLETE) { /* undo the promotion: the baseline alias back to where it was */
        for (int i = 0; i < p.n_aliases; i++)
          if (strcmp(p.aliases[i].name, p.rollout.baseline) == 0) {
            /* the version before is in the history; the policy keeps only the candidate */
            st = status_make(INFERD_INVALID_ARGUMENT,
                             "model '%s': the rollout completed; flip alias '%s' back with PUT (see the history)", model,
                             p.rollout.baseline);
          }
      }
      if (status_is_ok(&st)) traffic_rollout_apply(&p, ROLLOUT_ROLLBACK, now, reason);
    }
  } else if (strcmp(action, "pause") == 0) {
    if (s != ROLLOUT_RUNNING) st = status_make(INFERD_INVALID_ARGUMENT, "model '%s': the rollout is %s, not running", model,
                                               traffic_rollout_state_name(s));
    snprintf(reason, sizeof reason, "paused by hand%s%s", why && *why ? ": " : "", why ? why : "");
    if (status_is_ok(&st)) {
      p.rollout.state = ROLLOUT_PAUSED;
      snprintf(p.rollout.reason, sizeof p.rollout.reason, "%s", reason);
    }
  } else if (strcmp(action, "resume") == 0) {
    if (s != ROLLOUT_PAUSED && s != ROLLOUT_ROLLED_BACK)
      st = status_make(INFERD_INVALID_ARGUMENT, "model '%s': the rollout is %s; only a paused or rolled-back one resumes",
                       model, traffic_rollout_state_name(s));
    else st = version_ready(t, model, p.rollout.candidate, "resume");
    snprintf(reason, sizeof reason, "resumed by hand%s%s", why && *why ? ": " : "", why ? why : "");
    if (status_is_ok(&st)) {
      /* a rolled-back rollout starts over from its first step; a paused one restarts its step */
      if (s == ROLLOUT_ROLLED_BACK) p.rollout.step = 0;
      p.rollout.state = ROLLOUT_RUNNING;
      p.rollout.step_started_ms = now;
      snprintf(p.rollout.reason, sizeof p.rollout.reason, "%s", reason);
      traffic_rollout_set_arms(&p);
    }
  } else {
    st = status_make(INFERD_NOT_FOUND, "no traffic action '%s' (promote, rollback, pause, resume)", action);
  }
  if (status_is_ok(&st)) st = commit(t, model, &p, who, action, reason);
  if (status_is_ok(&st)) *out = policy_reply(model, current_policy(t, model));
  pthread_mutex_unlock(&t->admin_mu);
  return st;
}

static void history_one(void *user, const char *event_json) {
  json_t *ev = json_loads(event_json, 0, NULL);
  if (ev) json_array_append_new(user, ev);
}

inferd_status traffic_history(traffic *t, const char *model, int limit, json_t **out) {
  TRY(model_exists(t, model));
  json_t *events = json_array();
  pthread_mutex_lock(&t->admin_mu);
  inferd_status st = t->store ? t->store->ops->history(t->store, model, limit, history_one, events) : status_ok();
  pthread_mutex_unlock(&t->admin_mu);
  if (!status_is_ok(&st)) {
    json_decref(events);
    return st;
  }
  *out = json_pack("{ss so}", "model", model, "events", events);
  return status_ok();
}

inferd_status traffic_report(traffic *t, const char *model, json_t **out) {
  TRY(model_exists(t, model));
  json_t *policy;
  TRY(traffic_get(t, model, &policy));
  json_t *arms = json_array();
  pthread_mutex_lock(&t->stats_mu);
  for (arm_stats *a = t->stats; a; a = a->next) {
    if (strcmp(a->model, model) != 0) continue;
    json_t *arm = json_pack("{ss ss sI sI sf s{sf sf} s{sI sI sf}}", "arm", a->arm, "version", a->version, "requests",
                            (json_int_t)a->requests, "errors", (json_int_t)a->errors, "error_rate",
                            a->requests ? (double)a->errors / (double)a->requests : 0.0, "latency_ms", "p50",
                            traffic_hist_quantile(a->hist, 0.5), "p99", traffic_hist_quantile(a->hist, 0.99), "window",
                            "requests", (json_int_t)a->win_requests, "errors", (json_int_t)a->win_errors, "p99_ms",
                            traffic_hist_quantile(a->win_hist, 0.99));
    if (a->n_labels) {
      json_t *labels = json_object();
      for (int i = 0; i < a->n_labels; i++) {
        char k[32];
        snprintf(k, sizeof k, "%lld", (long long)a->labels[i].label);
        json_object_set_new(labels, k, json_integer(a->labels[i].count));
      }
      if (a->labels_other) json_object_set_new(labels, "other", json_integer(a->labels_other));
      json_object_set_new(arm, "labels", labels);
    }
    if (a->score_n) json_object_set_new(arm, "mean_score", json_real(a->score_sum / (double)a->score_n));
    json_array_append_new(arms, arm);
  }
  json_t *shadow = NULL;
  const shadow_stats *x = shadow_find(t, model, false);
  if (x) {
    shadow = json_pack("{ss sI sI sI sI s{sf sf}}", "version", x->version, "sent", (json_int_t)x->sent, "dropped",
                       (json_int_t)x->dropped, "errors", (json_int_t)x->errors, "compared", (json_int_t)x->compared,
                       "latency_ms", "p50", traffic_hist_quantile(x->hist, 0.5), "p99", traffic_hist_quantile(x->hist, 0.99));
    if (x->label_rows)
      json_object_set_new(shadow, "label_agreement", json_real((double)x->label_agree / (double)x->label_rows));
    if (x->compared) json_object_set_new(shadow, "disagreement", json_real((double)x->disagreed / (double)x->compared));
    json_t *outs = json_object();
    for (int i = 0; i < x->n_out; i++)
      json_object_set_new(outs, x->out[i].name,
                          json_pack("{sf sf}", "mean_abs_diff", x->out[i].n ? x->out[i].sum_abs / (double)x->out[i].n : 0.0,
                                    "max_abs_diff", x->out[i].max_abs));
    json_object_set_new(shadow, "outputs", outs);
  }
  pthread_mutex_unlock(&t->stats_mu);
  *out = json_pack("{ss so so}", "model", model, "arms", arms, "policy", policy);
  if (shadow) json_object_set_new(*out, "shadow", shadow);
  return status_ok();
}

/* ---- Prometheus metrics ----------------------------------------------------------------- */

/* A label value as the text format 0.0.4 wants it (backslash, quote and newline escaped): model
 * and output names come from the repository, not from a checked alphabet. */
static void prom_label(FILE *out, const char *name, const char *v) {
  fprintf(out, "%s=\"", name);
  for (const char *c = v; *c; c++) {
    if (*c == '\\') fputs("\\\\", out);
    else if (*c == '"') fputs("\\\"", out);
    else if (*c == '\n') fputs("\\n", out);
    else fputc(*c, out);
  }
  fputc('"', out);
}

static void prom_family(FILE *out, const char *name, const char *type, const char *help) {
  fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One labelled series' start: name{model="m"[,arm="a"] */
static void prom_series(FILE *out, const char *name, const char *model, const char *arm) {
  fprintf(out, "%s{", name);
  prom_label(out, "model", model);
  if (arm) {
    fputc(',', out);
    prom_label(out, "arm", arm);
  }
}

/* Every fourth bucket edge of the report's histogram (10 µs × 1.25^4k, a factor of about 2.4
 * apart, 10 µs .. 39 s) as cumulative buckets: the counts are the report's own, so the two
 * agree exactly, and the series stay few. */
#define PROM_BUCKET_STRIDE 4

static void prom_histogram(FILE *out, const char *name, const char *model, const char *arm, const int64_t *hist,
                           double sum_ms) {
  char bucket[96], sum[96], count[96];
  snprintf(bucket, sizeof bucket, "%s_bucket", name);
  snprintf(sum, sizeof sum, "%s_sum", name);
  snprintf(count, sizeof count, "%s_count", name);
  int64_t cum = 0;
  for (int i = 0; i < TRAFFIC_HIST_BUCKETS - 1; i++) {
    cum += hist[i];
    if (i % PROM_BUCKET_STRIDE != 0) continue;
    prom_series(out, bucket, model, arm);
    fprintf(out, ",le=\"%.9g\"} %lld\n", traffic_hist_upper_ms(i) / 1000.0, (long long)cum);
  }
  cum += hist[TRAFFIC_HIST_BUCKETS - 1];
  prom_series(out, bucket, model, arm);
  fprintf(out, ",le=\"+Inf\"} %lld\n", (long long)cum);
  prom_series(out, sum, model, arm);
  fprintf(out, "} %.9g\n", sum_ms / 1000.0);
  prom_series(out, count, model, arm);
  fprintf(out, "} %lld\n", (long long)cum);
}

static const char *const rollout_states[] = {"running", "paused", "rolled_back", "complete"};

void traffic_metrics_write(traffic *t, FILE *out) {
  /* the policies: arm weights and rollout progress, from the published snapshot */
  traffic_snap *s = snap_acquire(t);
  bool any_arm = false, any_rollout = false;
  for (size_t i = 0; i < s->n; i++) {
    any_arm |= s->e[i].policy.n_arms > 0;
    any_rollout |= s->e[i].policy.rollout.state != ROLLOUT_NONE;
  }
  if (any_arm) {
    prom_family(out, "inferd_traffic_arm_weight", "gauge",
                "The arm's share of the model's unpinned requests in its traffic policy (0..1).");
    for (size_t i = 0; i < s->n; i++) {
      const traffic_policy *p = &s->e[i].policy;
      double total = 0;
      for (int k = 0; k < p->n_arms; k++) total += p->arms[k].weight;
      for (int k = 0; k < p->n_arms; k++) {
        prom_series(out, "inferd_traffic_arm_weight", s->e[i].model, p->arms[k].name);
        fprintf(out, "} %.9g\n", total > 0 ? p->arms[k].weight / total : 0.0);
      }
    }
  }
  if (any_rollout) {
    prom_family(out, "inferd_traffic_rollout_state", "gauge",
                "1 for the state the model's progressive rollout is in (running, paused, rolled_back, complete).");
    for (size_t i = 0; i < s->n; i++) {
      const traffic_rollout *r = &s->e[i].policy.rollout;
      if (r->state == ROLLOUT_NONE) continue;
      for (int k = 0; k < 4; k++) {
        prom_series(out, "inferd_traffic_rollout_state", s->e[i].model, NULL);
        fputc(',', out);
        prom_label(out, "state", rollout_states[k]);
        fprintf(out, "} %d\n", (int)r->state == k + 1 ? 1 : 0);
      }
    }
    prom_family(out, "inferd_traffic_rollout_step", "gauge", "The rollout's current step (0: the first).");
    for (size_t i = 0; i < s->n; i++) {
      const traffic_rollout *r = &s->e[i].policy.rollout;
      if (r->state == ROLLOUT_NONE) continue;
      prom_series(out, "inferd_traffic_rollout_step", s->e[i].model, NULL);
      fprintf(out, "} %d\n", r->step);
    }
    prom_family(out, "inferd_traffic_rollout_candidate_percent", "gauge",
                "The share of unpinned requests the rollout gives its candidate now (0 once rolled back).");
    for (size_t i = 0; i < s->n; i++) {
      const traffic_policy *p = &s->e[i].policy;
      if (p->rollout.state == ROLLOUT_NONE) continue;
      double total = 0, cand = 0;
      for (int k = 0; k < p->n_arms; k++) {
        total += p->arms[k].weight;
        if (strcmp(p->arms[k].name, "canary") == 0) cand += p->arms[k].weight;
      }
      if (p->rollout.state == ROLLOUT_COMPLETE) cand = total = 1;
      prom_series(out, "inferd_traffic_rollout_candidate_percent", s->e[i].model, NULL);
      fprintf(out, "} %.9g\n", total > 0 ? 100.0 * cand / total : 0.0);
    }
  }
  snap_release(s);

  /* the per-arm and shadow counters (stats_mu: the completion stage's; held for the scrape's
   * few lines per arm) */
  pthread_mutex_lock(&t->stats_mu);
  if (t->stats) {
    prom_family(out, "inferd_traffic_arm_info", "gauge", "The version that last answered for the arm (always 1).");
    for (arm_stats *a = t->stats; a; a = a->next) {
      prom_series(out, "inferd_traffic_arm_info", a->model, a->arm);
      fputc(',', out);
      prom_label(out, "version", a->version);
      fputs("} 1\n", out);
    }
    prom_family(out, "inferd_traffic_arm_requests_total", "counter", "Requests routed to the arm that finished.");
    for (arm_stats *a = t->stats; a; a = a->next) {
      prom_series(out, "inferd_traffic_arm_requests_total", a->model, a->arm);
      fprintf(out, "} %lld\n", (long long)a->requests);
    }
    prom_family(out, "inferd_traffic_arm_errors_total", "counter", "Requests routed to the arm that failed.");
    for (arm_stats *a = t->stats; a; a = a->next) {
      prom_series(out, "inferd_traffic_arm_errors_total", a->model, a->arm);
      fprintf(out, "} %lld\n", (long long)a->errors);
    }
    prom_family(out, "inferd_traffic_arm_latency_seconds", "histogram",
                "The server's time on the arm's requests: queue and compute.");
    for (arm_stats *a = t->stats; a; a = a->next)
      prom_histogram(out, "inferd_traffic_arm_latency_seconds", a->model, a->arm, a->hist, a->sum_ms);
    bool labels = false, scores = false;
    for (arm_stats *a = t->stats; a; a = a->next) {
      labels |= a->n_labels > 0 || a->labels_other > 0;
      scores |= a->score_n > 0;
    }
    if (labels) {
      prom_family(out, "inferd_traffic_arm_labels_total", "counter",
                  "A classifier arm's predicted labels (the first 32 distinct, then \"other\").");
      for (arm_stats *a = t->stats; a; a = a->next) {
        for (int i = 0; i <= a->n_labels; i++) {
          char v[32];
          int64_t n;
          if (i < a->n_labels) {
            snprintf(v, sizeof v, "%lld", (long long)a->labels[i].label);
            n = a->labels[i].count;
          } else {
            if (a->labels_other == 0) break;
            snprintf(v, sizeof v, "other");
            n = a->labels_other;
          }
          prom_series(out, "inferd_traffic_arm_labels_total", a->model, a->arm);
          fputc(',', out);
          prom_label(out, "label", v);
          fprintf(out, "} %lld\n", (long long)n);
        }
      }
    }
    if (scores) {
      prom_family(out, "inferd_traffic_arm_mean_score", "gauge", "A classifier arm's mean top probability.");
      for (arm_stats *a = t->stats; a; a = a->next) {
        if (a->score_n == 0) continue;
        prom_series(out, "inferd_traffic_arm_mean_score", a->model, a->arm);
        fprintf(out, "} %.17g\n", a->score_sum / (double)a->score_n);
      }
    }
  }
  if (t->shadows) {
    prom_family(out, "inferd_traffic_shadow_info", "gauge", "The version shadow copies of the model go to (always 1).");
    for (shadow_stats *x = t->shadows; x; x = x->next) {
      prom_series(out, "inferd_traffic_shadow_info", x->model, NULL);
      fputc(',', out);
      prom_label(out, "version", x->version);
      fputs("} 1\n", out);
    }
    static const struct {
      const char *name, *help;
      size_t off;
    } counters[] = {
        {"inferd_traffic_shadow_sent_total", "Shadow copies handed to the scheduler.", offsetof(shadow_stats, sent)},
        {"inferd_traffic_shadow_dropped_total",
         "Shadow copies not made: past max_in_flight, or the shadow version not ready.", offsetof(shadow_stats, dropped)},
        {"inferd_traffic_shadow_errors_total", "Shadow copies that failed.", offsetof(shadow_stats, errors)},
        {"inferd_traffic_shadow_comparisons_total", "Shadow copies compared with their live answer.",
         offsetof(shadow_stats, compared)},
        {"inferd_traffic_shadow_disagreements_total",
         "Compared shadow copies with a label that differs from the live answer's.", offsetof(shadow_stats, disagreed)},
    };
    for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
      prom_family(out, counters[c].name, "counter", counters[c].help);
      for (shadow_stats *x = t->shadows; x; x = x->next) {
        prom_series(out, counters[c].name, x->model, NULL);
        fprintf(out, "} %lld\n", (long long)*(const int64_t *)((const char *)x + counters[c].off));
      }
    }
    bool rows = false, outs = false;
    for (shadow_stats *x = t->shadows; x; x = x->next) {
      rows |= x->label_rows > 0;
      outs |= x->n_out > 0;
    }
    if (rows) {
      prom_family(out, "inferd_traffic_shadow_label_agreement_ratio", "gauge",
                  "The share of compared label rows (INT64 outputs) where the shadow agreed with the live answer.");
      for (shadow_stats *x = t->shadows; x; x = x->next) {
        if (x->label_rows == 0) continue;
        prom_series(out, "inferd_traffic_shadow_label_agreement_ratio", x->model, NULL);
        fprintf(out, "} %.17g\n", (double)x->label_agree / (double)x->label_rows);
      }
    }
    if (outs) {
      prom_family(out, "inferd_traffic_shadow_abs_diff", "gauge",
                  "The mean and max absolute difference between the shadow's and the live answer's FP32 output.");
      for (shadow_stats *x = t->shadows; x; x = x->next) {
        for (int i = 0; i < x->n_out; i++) {
          for (int k = 0; k < 2; k++) {
            prom_series(out, "inferd_traffic_shadow_abs_diff", x->model, NULL);
            fputc(',', out);
            prom_label(out, "output", x->out[i].name);
            fprintf(out, ",stat=\"%s\"} %.17g\n", k == 0 ? "mean" : "max",
                    k == 0 ? (x->out[i].n ? x->out[i].sum_abs / (double)x->out[i].n : 0.0) : x->out[i].max_abs);
          }
        }
      }
    }
    prom_family(out, "inferd_traffic_shadow_latency_seconds", "histogram",
                "The server's time on the shadow copies that succeeded: queue and compute.");
    for (shadow_stats *x = t->shadows; x; x = x->next)
      prom_histogram(out, "inferd_traffic_shadow_latency_seconds", x->model, NULL, x->hist, x->sum_ms);
  }
  pthread_mutex_unlock(&t->stats_mu);
}
