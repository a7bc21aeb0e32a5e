/* core/serve: the request pipeline every protocol goes through (admit, route, check, lookup,
 * schedule, fork; then the completion stages), and the one deadline rule. */
#include "core/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/app.h"
#include "core/principal.h"
#include "core/repository.h"
#include "core/scheduler.h"
#include "core/stats.h"
#include "util/monotime.h"

#define SERVE_MAX_HANDLERS 8

typedef struct serve_slot {
  serve_handler fn;
  void *ctx;
} serve_slot;

struct serve {
  struct app *app;
  serve_slot slots[SERVE_STAGE_COUNT][SERVE_MAX_HANDLERS];
  int n_slots[SERVE_STAGE_COUNT];
  char test_refuse_model[256]; /* INFERD_TEST_ADMIT_REFUSE_MODEL: test-only, empty: off */
  serve_router_fn router;      /* traffic/'s resolver; NULL: versions as requested */
  void *router_ctx;
  serve_generate_fn generator; /* generate/'s hand-off; NULL: generation refused */
  void *generator_ctx;
};

void serve_set_generator(serve *s, serve_generate_fn fn, void *ctx) {
  s->generator = fn;
  s->generator_ctx = ctx;
}

void serve_set_router(serve *s, serve_router_fn fn, void *ctx) {
  s->router = fn;
  s->router_ctx = ctx;
}

static const char *const stage_names[SERVE_STAGE_COUNT] = {
    "admit", "route", "check", "lookup", "schedule", "fork", "stats", "trace", "drift", "cache_store", "log"};

const char *serve_stage_name(serve_stage s) { return s < SERVE_STAGE_COUNT ? stage_names[s] : "?"; }

const char *serve_protocol_name(serve_protocol p) {
  static const char *const names[SERVE_PROTOCOL_COUNT] = {"other", "http", "grpc"};
  return (unsigned)p < SERVE_PROTOCOL_COUNT ? names[p] : "other";
}

inferd_status serve_register(serve *s, serve_stage stage, serve_handler fn, void *ctx) {
  if (stage >= SERVE_STAGE_COUNT || fn == NULL)
    return status_make(INFERD_INTERNAL, "serve_register: no such stage or no handler");
  if (s->n_slots[stage] == SERVE_MAX_HANDLERS)
    return status_make(INFERD_INTERNAL, "stage '%s' has %d handlers already", stage_names[stage], SERVE_MAX_HANDLERS);
  s->slots[stage][s->n_slots[stage]++] = (serve_slot){fn, ctx};
  return status_ok();
}

/* The registered handlers of a request stage, in order; true (with *st) when one ends the
 * request. An empty stage costs a compare: no status is built (an inferd_status is 516 bytes,
 * and building one per empty stage showed in the per-request instruction count). */
static bool stage_ends(serve *s, serve_stage stage, const serve_request *sr, infer_request *req, inferd_status *st) {
  for (int i = 0; i < s->n_slots[stage]; i++) {
    *st = s->slots[stage][i].fn(s->slots[stage][i].ctx, sr, req);
    if (!status_is_ok(st)) return true;
  }
  return false;
}

/* How the lookup handler running on this thread took its request. Thread-local rather than a
 * field of the request: a parked request may be completed and freed by another thread before
 * its handler has even returned, so serve_submit must not read it after the handler. */
enum { TAKEN_NO, TAKEN_ANSWERED, TAKEN_PARKED };
static _Thread_local int lookup_taken;

void serve_answer(infer_request *req) {
  (void)req;
  lookup_taken = TAKEN_ANSWERED;
}
void serve_park(infer_request *req) {
  (void)req;
  lookup_taken = TAKEN_PARKED;
}

/* The lookup stage: like stage_ends, but a handler that takes the request stops the stage
 * (the later handlers never see a request that is no longer going on). *taken: how. */
static bool lookup_ends(serve *s, const serve_request *sr, infer_request *req, inferd_status *st, int *taken) {
  *taken = TAKEN_NO;
  for (int i = 0; i < s->n_slots[SERVE_STAGE_LOOKUP]; i++) {
    lookup_taken = TAKEN_NO;
    *st = s->slots[SERVE_STAGE_LOOKUP][i].fn(s->slots[SERVE_STAGE_LOOKUP][i].ctx, sr, req);
    *taken = lookup_taken;
    if (*taken != TAKEN_NO) {
      *st = status_ok();
      return false;
    }
    if (!status_is_ok(st)) return true;
  }
  return false;
}

/* A bounded copy (snprintf's "%s" costs a formatter run per request). */
static void copy_str(char *dst, size_t cap, const char *src) {
  size_t n = strnlen(src, cap - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static void run_completion_stage(serve *s, serve_stage stage, infer_request *req) {
  for (int i = 0; i < s->n_slots[stage]; i++) (void)s->slots[stage][i].fn(s->slots[stage][i].ctx, NULL, req);
}

void serve_headers_addn(serve_headers *h, const char *name, size_t nl, const char *value, size_t vl) {
  if (h == NULL || h->n == SERVE_MAX_REPLY_HEADERS) return;
  if (nl >= sizeof h->h[0].name || vl >= sizeof h->h[0].value) return;
  memcpy(h->h[h->n].name, name, nl);
  h->h[h->n].name[nl] = '\0';
  memcpy(h->h[h->n].value, value, vl);
  h->h[h->n].value[vl] = '\0';
  h->n++;
}

void serve_headers_add(serve_headers *h, const char *name, const char *value) {
  if (h == NULL) return;
  serve_headers_addn(h, name, strlen(name), value, strlen(value));
}

inferd_status serve_on_end(const serve_request *sr, infer_end_fn fn, void *ctx, void *arg) {
  infer_end_hooks *e = sr->ends;
  if (e == NULL || fn == NULL) return status_make(INFERD_INTERNAL, "serve_on_end: no request being submitted");
  if (e->n == INFER_MAX_END_HOOKS)
    return status_make(INFERD_INTERNAL, "a request has %d end hooks already", INFER_MAX_END_HOOKS);
  e->h[e->n].fn = fn;
  e->h[e->n].ctx = ctx;
  e->h[e->n].arg = arg;
  e->n++;
  return status_ok();
}

/* Last taken, first given back, as nested resources are. */
static void run_end_hooks(infer_end_hooks *e, const inferd_status *st) {
  while (e->n > 0) {
    e->n--;
    e->h[e->n].fn(e->h[e->n].ctx, e->h[e->n].arg, st);
  }
}

const char *serve_meta(const serve_request *sr, const char *name) {
  return sr->meta ? sr->meta(sr->meta_ctx, name) : NULL;
}

/* Test-only (see serve.h): refuses the named model at admit. */
static inferd_status test_refuse_admit(void *ctx, const serve_request *sr, infer_request *req) {
  (void)req;
  const serve *s = ctx;
  if (sr->model && strcmp(sr->model, s->test_refuse_model) == 0)
    return status_make(INFERD_UNAVAILABLE, "model '%s': refused by the test admit handler", sr->model);
  return status_ok();
}

inferd_status serve_create(struct app *a, serve **out) {
  serve *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  s->app = a;
  const char *t = getenv("INFERD_TEST_ADMIT_REFUSE_MODEL");
  if (t && *t) {
    snprintf(s->test_refuse_model, sizeof s->test_refuse_model, "%s", t);
    TRY(serve_register(s, SERVE_STAGE_ADMIT, test_refuse_admit, s));
  }
  *out = s;
  return status_ok();
}

void serve_destroy(serve *s) { free(s); }

inferd_status serve_deadline(const serve_deadline_sources *src, int64_t start_ns, int64_t *deadline_ns) {
  *deadline_ns = 0;
  int64_t asked = 0, t; /* the request's own timeout: the earlier of header and parameter */
#define EARLIER(best, x) \
  if ((x) > 0 && ((best) == 0 || (x) < (best))) (best) = (x)
  /* every source is checked, even when another is earlier, so an absurd value never passes */
  TRY(infer_deadline_after(start_ns, src->param_timeout_us,
                           src->param_timeout_what ? src->param_timeout_what : "parameter 'timeout'", &t));
  EARLIER(asked, t);
  if (src->timeout_header) {
    int64_t us;
    TRY(infer_timeout_ms_parse("X-Request-Timeout-Ms", src->timeout_header, &us));
    TRY(infer_deadline_after(start_ns, us, "X-Request-Timeout-Ms", &t));
    EARLIER(asked, t);
  }
  /* the model's default stands in for a timeout the request did not ask for (a request may
   * ask for longer, as Triton's default_timeout_microseconds allows); the gRPC deadline is the
   * transport's: past it nobody waits for the answer, so it bounds whatever was asked */
  if (asked == 0) TRY(infer_deadline_after(start_ns, src->model_default_us, "the model's default_timeout_us", &asked));
  int64_t best = asked;
  EARLIER(best, src->client_deadline_ns);
#undef EARLIER
  *deadline_ns = best;
  return status_ok();
}

/* route: an explicit version, else the model's default (the repository's policy: the newest
 * READY version). The router (traffic/) first turns an alias, or the model's split for an
 * unpinned request, into a version number, before repo_acquire. */
static inferd_status route(serve *s, serve_request *sr, model_version **mv, char arm[32]) {
  if (sr->model == NULL || sr->model[0] == '\0') return status_make(INFERD_INVALID_ARGUMENT, "the model name is required");
  const char *version = sr->version ? sr->version : "";
  char routed[32];
  arm[0] = '\0';
  if (s->router) {
    TRY(s->router(s->router_ctx, sr, routed, arm));
    version = routed;
  }
  TRY(repo_acquire(s->app->repo, sr->model, version, REPO_ANY_STATE, mv));
  copy_str(sr->routed_version, sizeof sr->routed_version, (*mv)->version_str);
  return status_ok();
}

static inferd_status check_ready(const model_version *mv) {
  model_state st = model_version_state(mv);
  if (st == MODEL_READY) return status_ok();
  if (st == MODEL_LOADING)
    return status_make(INFERD_UNAVAILABLE, "model '%s' version %s is still loading", mv->model->name, mv->version_str);
  return status_make(INFERD_UNAVAILABLE, "model '%s' version %s is not ready: %s", mv->model->name, mv->version_str,
                     mv->reason);
}

/* check: the signature, the priority against the model's levels, the deadline. */
static inferd_status check(serve_request *sr, infer_request *req) {
  const model_version *mv = req->mv;
  /* a generation carries no tensors: the generator checks its prompt and parameters */
  if (req->generate == NULL) TRY(infer_request_validate(req));
  int levels = mv->model->config->batching.priority_levels;
  if (sr->priority < 0 || sr->priority > levels)
    return status_make(INFERD_INVALID_ARGUMENT, "%s is %d but model '%s' has %d priority level%s (1 is the highest)",
                       sr->priority_what ? sr->priority_what : "priority", sr->priority, mv->model->name, levels,
                       levels == 1 ? "" : "s");
  req->priority = sr->priority;
  serve_deadline_sources src = sr->deadline;
  src.model_default_us = mv->model->config->batching.default_timeout_us;
  return serve_deadline(&src, sr->start_ns, &req->deadline_ns);
}

/* On the worker that finished the request: the completion stages, then the reply. */
static void complete(infer_request *req, void *user) {
  serve *s = user;
  /* first: what a request holds (a concurrency slot) is free before its client hears the answer
   * and sends its next request */
  run_end_hooks(&req->ends, &req->status);
  int64_t now = monotime_ns();
  stats_record_request(&req->mv->stats, req, now);
  serve_record *r = req->record;
  if (r) {
    r->done_ns = now;
    r->queue_ns = req->queue_ns;
    r->compute_ns = req->compute_input_ns + req->compute_infer_ns + req->compute_output_ns;
    r->batch_size = req->batch_size;
    copy_str(r->arm, sizeof r->arm, req->arm);
  }
  run_completion_stage(s, SERVE_STAGE_STATS, req);
  for (serve_stage st = SERVE_STAGE_TRACE; st <= SERVE_STAGE_LOG; st++) run_completion_stage(s, st, req);
  req->reply_done(req, req->reply_user);
}

/* A request that ends before the hand-off: its end hooks run with the status it ends with. */
static inferd_status ended_early(serve_request *sr, inferd_status st) {
  run_end_hooks(sr->ends, &st);
  sr->ends = NULL; /* the list lived in serve_submit's frame */
  return st;
}

void serve_complete(infer_request *req) { complete(req, req->user); }

void serve_resume(infer_request *req) {
  serve *s = req->user;
  sched_submit(s->app->sched, req);
}

inferd_status serve_submit(serve *s, serve_request *sr) {
  sr->routed_version[0] = '\0';
  infer_end_hooks ends;
  ends.n = 0;
  /* cppcheck-suppress autoVariables ; handlers add to it inside this call only: every return
   * below runs the hooks or moves them into the request, and sets sr->ends back to NULL */
  sr->ends = &ends;
  /* draining is the frontends' (each protocol drains its own way: HTTP refuses new requests,
   * a gRPC stream already open keeps being served), so it is not checked here */
  inferd_status st;
  if (stage_ends(s, SERVE_STAGE_ADMIT, sr, NULL, &st)) return ended_early(sr, st);

  VERSION_REF model_version *mv = NULL;
  char arm[32];
  st = route(s, sr, &mv, arm);
  if (status_is_ok(&st)) st = check_ready(mv);
  if (!status_is_ok(&st)) return ended_early(sr, st);
  infer_request *req = infer_request_create(mv);
  if (req == NULL) return ended_early(sr, status_make(INFERD_INTERNAL, "out of memory"));
  req->principal = principal_ref(sr->principal);
  req->reply_headers = sr->reply_headers;
  /* which version answered, on every protocol (HTTP header, gRPC metadata) */
  serve_headers_add(sr->reply_headers, "X-Model-Version", sr->routed_version);
  if (arm[0]) {
    memcpy(req->arm, arm, sizeof req->arm);
    serve_headers_add(sr->reply_headers, "X-Model-Arm", arm);
  }
  req->record = sr->record;
  req->protocol = sr->protocol;
  req->start_ns = sr->start_ns;
  req->generate = sr->generate;
  bool ended = stage_ends(s, SERVE_STAGE_ROUTE, sr, req, &st);
  if (!ended && sr->decode) {
    st = sr->decode(sr, req);
    ended = !status_is_ok(&st);
  }
  if (!ended) {
    st = check(sr, req);
    ended = !status_is_ok(&st);
  }
  ended = ended || stage_ends(s, SERVE_STAGE_CHECK, sr, req, &st);
  if (ended) {
    infer_request_destroy(req);
    return ended_early(sr, st);
  }
  /* from here the request carries its end hooks: its completion runs them (on the worker, or
   * on this thread for a lookup handler's answer) */
  req->ends.n = ends.n;
  memcpy(req->ends.h, ends.h, (size_t)ends.n * sizeof ends.h[0]);
  sr->ends = NULL;
  /* completable from here on: a lookup handler that takes the request (serve_answer,
   * serve_park) completes it through these */
  req->cancelled = sr->cancelled;
  req->reply_done = sr->on_done;
  req->reply_user = sr->user;
  req->on_done = complete;
  req->user = s;
  int taken = TAKEN_NO;
  /* a generation is neither cached nor shadowed: its hand-off is the generator's */
  if (req->generate) {
    ended = stage_ends(s, SERVE_STAGE_SCHEDULE, sr, req, &st);
    if (!ended) {
      st = s->generator ? s->generator(s->generator_ctx, req)
                        : status_make(INFERD_INVALID_ARGUMENT, "model '%s' is not a generative model", sr->model);
      ended = !status_is_ok(&st);
    }
    if (ended) {
      run_end_hooks(&req->ends, &st);
      infer_request_destroy(req);
      return st;
    }
    return status_ok(); /* the generator's now: not touched */
  }
  if (s->n_slots[SERVE_STAGE_LOOKUP]) {
    /* the statistics' success time of a taken request counts from here (the scheduler sets
     * it again for one it queues) */
    req->enqueue_ns = monotime_ns();
    ended = lookup_ends(s, sr, req, &st, &taken);
  }
  if (taken == TAKEN_ANSWERED) complete(req, s);
  if (taken != TAKEN_NO) return status_ok(); /* a parked request is the handler's now: not touched */
  ended = ended || stage_ends(s, SERVE_STAGE_SCHEDULE, sr, req, &st);
  if (ended) {
    run_end_hooks(&req->ends, &st);
    infer_request_destroy(req);
    return st;
  }
  (void)stage_ends(s, SERVE_STAGE_FORK, sr, req, &st); /* never fails the request */
  sched_submit(s->app->sched, req);
  return status_ok();
}
