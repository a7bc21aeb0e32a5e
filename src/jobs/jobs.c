/* jobs/jobs: the executor of async batch jobs (jobs.h). One thread owns the job being worked:
 * it reads chunks of records from the store, submits each through serve_submit, and commits
 * each finished chunk's results with the job's progress. Workers only decode outputs and hand
 * finished chunks back through a list under the mutex. The executor runs at idle priority; its
 * store writes run on a helper thread at normal priority (the store's write lock is never held
 * by a thread starved of CPU), and a second helper takes the API's long store work off the
 * HTTP loops (jobs_offload). */
#include "jobs/jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app/application.h"
#include "core/serve.h"
#include "util/log.h"
#include "util/monotime.h"

typedef struct run run;

/* One chunk: records [first, first+n) of a job, a pipeline request while in flight. */
typedef struct chunk {
  struct jobs *jobs;
  run *run;
  int64_t index, first, n;
  char **records; /* owned, n */
  char **out;     /* owned, n: each record's result or error JSON */
  bool *ok;
  size_t *good; /* which records went to the model, in order */
  size_t n_good;
  inferd_status st; /* the request as a whole (not OK: it failed, retried or recorded per record) */
  /* the completed request's outputs, taken from it by the worker and decoded on the executor
   * thread (which runs at idle priority: decoding a chunk is job work, not the worker's) */
  model_version *mv; /* a reference while outputs are held */
  tensor *outputs;
  char **output_names;
  size_t n_outputs;
  bool all_invalid; /* decode found every record wrong: nothing went to the model */
  int attempts;
  int64_t not_before_ns; /* a retry waits until then */
  char request_id[64];
  struct chunk *next;
} chunk;

/* The job being worked. Freed once nothing is in flight for it. */
struct run {
  job_info info;
  principal *who; /* the owner as the pipeline sees it; NULL with security off */
  uint8_t *done;  /* a bit per chunk committed */
  int64_t n_chunks, next;
  int inflight;
  chunk *retry; /* chunks to submit again */
  _Atomic bool cancelled;
  bool failed;
  char fail_msg[512];
  int64_t started_ns, records_done; /* this run's, for the rate */
  /* a low-priority run a queued normal job pre-empts: no new chunks; once those in flight have
   * landed it is put down (still PROCESSING, claimed again after the normal work) */
  bool preempted;
};

/* A thread at the normal scheduling policy running tasks in order (helper_post). */
typedef struct task {
  void (*fn)(void *arg);
  void *arg;
  struct task *next;
} task;

typedef struct helper {
  pthread_t thread;
  bool started, quit;
  pthread_mutex_t mu;
  pthread_cond_t cv, done_cv;
  task *head, *tail;
  uint64_t posted, finished; /* for helper_call's wait */
} helper;

struct jobs {
  app *a;
  job_store *store;
  jobs_options o;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stopping, exiting;
  chunk *finished; /* from workers, under mu */
  run *cur;        /* the executor's; the pointer is read under mu by cancel */
  atomic_llong records_ok, records_err, chunks_retried;
  atomic_int inflight;
  _Atomic double rate; /* records/s of the last run that measured one */
  atomic_bool woken;    /* jobs_wake since the executor last looked for normal work */
  atomic_bool stop_flag; /* jobs_stop was called (read without mu: the executor, offloaded tasks) */
  /* the executor is inside serve_submit: jobs_stop waits for it to leave, so that no chunk goes
   * to the scheduler once the server's stop has gone past jobs_stop (the pipeline is torn down
   * next, and a starved idle-priority executor could otherwise arrive there late) */
  atomic_bool submitting;
  helper io;     /* the executor's store writes, at normal priority */
  helper intake; /* jobs_offload's tasks */
  atomic_llong preemptions;
};

/* -- helper threads -- */

static void *helper_main(void *arg) {
  helper *h = arg;
  pthread_mutex_lock(&h->mu);
  for (;;) {
    while (h->head == NULL && !h->quit) pthread_cond_wait(&h->cv, &h->mu);
    task *t = h->head;
    if (t == NULL) break; /* quit, and every task posted has run */
    h->head = t->next;
    if (h->head == NULL) h->tail = NULL;
    pthread_mutex_unlock(&h->mu);
    t->fn(t->arg);
    free(t);
    pthread_mutex_lock(&h->mu);
    h->finished++;
    pthread_cond_broadcast(&h->done_cv);
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

static bool helper_start(helper *h) {
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  pthread_cond_init(&h->done_cv, NULL);
  h->started = pthread_create(&h->thread, NULL, helper_main, h) == 0;
  return h->started;
}

/* Queues fn(arg); the sequence number helper_call waits for, 0 when it could not queue. */
static uint64_t helper_post(helper *h, void (*fn)(void *), void *arg) {
  task *t = calloc(1, sizeof *t);
  if (t == NULL) return 0;
  t->fn = fn;
  t->arg = arg;
  pthread_mutex_lock(&h->mu);
  if (h->quit || !h->started) {
    pthread_mutex_unlock(&h->mu);
    free(t);
    return 0;
  }
  if (h->tail) h->tail->next = t;
  else h->head = t;
  h->tail = t;
  uint64_t seq = ++h->posted;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
  return seq;
}

/* Runs fn(arg) on the helper and waits for it (the executor's store writes: the write lock is
 * taken and released at normal priority). Runs it here when the helper cannot take it. */
static void helper_call(helper *h, void (*fn)(void *), void *arg) {
  uint64_t seq = helper_post(h, fn, arg);
  if (seq == 0) {
    fn(arg);
    return;
  }
  pthread_mutex_lock(&h->mu);
  while (h->finished < seq) pthread_cond_wait(&h->done_cv, &h->mu);
  pthread_mutex_unlock(&h->mu);
}

/* Runs what is queued, then ends the thread. */
static void helper_stop(helper *h) {
  if (!h->started) return;
  pthread_mutex_lock(&h->mu);
  h->quit = true;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
  pthread_join(h->thread, NULL);
  h->started = false;
  pthread_cond_destroy(&h->done_cv);
  pthread_cond_destroy(&h->cv);
  pthread_mutex_destroy(&h->mu);
}

/* -- the executor's store writes, through j->io -- */

typedef struct write_op {
  jobs *j;
  enum { W_START, W_COMMIT, W_FINISH, W_WEBHOOK } kind;
  const char *id;
  int64_t a, b, c; /* start: chunk_records, at_ms; commit: chunk, first; finish: at_ms */
  const job_result *res;
  size_t n;
  bool *dup;
  job_state to;
  const char *text; /* finish: error; webhook: state */
  const char *text2; /* webhook: error */
  int attempts;
  inferd_status st;
} write_op;

static void write_run(void *arg) {
  write_op *w = arg;
  job_store *s = w->j->store;
  switch (w->kind) {
    case W_START: w->st = s->ops->start(s, w->id, w->a, w->b); break;
    case W_COMMIT: w->st = s->ops->commit_chunk(s, w->id, w->a, w->b, w->res, w->n, w->dup); break;
    case W_FINISH: w->st = s->ops->finish(s, w->id, w->to, w->text, w->c); break;
    case W_WEBHOOK: w->st = s->ops->set_webhook(s, w->id, w->text, w->attempts, w->text2); break;
  }
}

static inferd_status x_write(write_op *w) {
  helper_call(&w->j->io, write_run, w);
  return w->st;
}

static inferd_status x_start(jobs *j, const char *id, int64_t chunk_records, int64_t at_ms) {
  return x_write(&(write_op){.j = j, .kind = W_START, .id = id, .a = chunk_records, .b = at_ms});
}

static inferd_status x_commit_chunk(jobs *j, const char *id, int64_t chunk, int64_t first, const job_result *res, size_t n,
                                    bool *dup) {
  return x_write(&(write_op){.j = j, .kind = W_COMMIT, .id = id, .a = chunk, .b = first, .res = res, .n = n, .dup = dup});
}

static inferd_status x_finish(jobs *j, const char *id, job_state to, const char *error, int64_t at_ms) {
  return x_write(&(write_op){.j = j, .kind = W_FINISH, .id = id, .to = to, .text = error, .c = at_ms});
}

static inferd_status x_set_webhook(jobs *j, const char *id, const char *state, int attempts, const char *error) {
  return x_write(&(write_op){.j = j, .kind = W_WEBHOOK, .id = id, .text = state, .attempts = attempts, .text2 = error});
}

/* -- pure parts -- */

int64_t jobs_chunk_size(int64_t configured, int max_batch_size) {
  int64_t n = configured > 0 ? configured : (max_batch_size > 0 ? max_batch_size : 1);
  if (max_batch_size > 0 && n > max_batch_size) n = max_batch_size; /* one chunk is one request */
  if (max_batch_size <= 0) n = 1;
  return n > JOBS_MAX_CHUNK ? JOBS_MAX_CHUNK : n;
}

int64_t jobs_chunk_count(int64_t total, int64_t chunk_records) {
  if (total <= 0 || chunk_records <= 0) return 0;
  return (total + chunk_records - 1) / chunk_records;
}

char *jobs_result_line(job_kind kind, const char *job_id, int64_t index, const char *tag, bool ok, const char *body) {
  json_error_t e;
  json_t *b = json_loads(body ? body : "null", JSON_DECODE_ANY, &e);
  if (b == NULL) b = json_string(body ? body : "");
  json_t *line;
  if (kind == JOB_KIND_OPENAI) {
    char id[96];
    snprintf(id, sizeof id, "%s_req_%lld", job_id, (long long)index);
    if (ok) {
      line = json_pack("{ss ss? s{si so} sn}", "id", id, "custom_id", tag, "response", "status_code", 200, "body", b,
                       "error");
    } else {
      const char *msg = json_string_value(json_object_get(b, "error"));
      line = json_pack("{ss ss? s{si sO} s{ss ss}}", "id", id, "custom_id", tag, "response", "status_code", 400, "body", b,
                       "error", "code", "invalid_request", "message", msg ? msg : "invalid record");
      json_decref(b);
    }
  } else if (ok) {
    line = json_pack("{sI so}", "index", (json_int_t)index, "result", b);
  } else {
    line = json_pack("{sI}", "index", (json_int_t)index);
    if (json_is_object(b)) json_object_update(line, b);
    else json_object_set(line, "error", b);
    json_decref(b);
  }
  char *s = line ? json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
  json_decref(line);
  return s;
}

/* -- ids and owners -- */

void jobs_new_id(const char *prefix, char *id, size_t len) {
  unsigned char r[12];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) { /* never expected; still unique enough */
    uint64_t t = (uint64_t)monotime_ns() ^ ((uint64_t)getpid() << 40);
    for (size_t i = 0; i < sizeof r; i++) r[i] = (unsigned char)(t >> (8 * (i % 8))) ^ (unsigned char)(i * 37);
  }
  char hex[25];
  for (size_t i = 0; i < sizeof r; i++) snprintf(hex + 2 * i, 3, "%02x", r[i]);
  snprintf(id, len, "%s%s", prefix, hex);
}

void jobs_owner_of(const principal *p, char owner[JOB_OWNER_MAX], char scopes[1024]) {
  scopes[0] = '\0';
  if (p == NULL) {
    snprintf(owner, JOB_OWNER_MAX, "anonymous");
    return;
  }
  snprintf(owner, JOB_OWNER_MAX, "%s:%s", principal_kind_name(p->kind), p->name);
  size_t n = 0;
  for (size_t i = 0; i < p->n_scopes; i++) {
    int w = snprintf(scopes + n, 1024 - n, "%s%s", n ? "," : "", p->scopes[i]);
    if (w < 0 || (size_t)w >= 1024 - n) break;
    n += (size_t)w;
  }
}

/* The owner back as a principal, with the scopes it had when the job was accepted. */
static principal *principal_of_owner(const job_info *job) {
  if (strcmp(job->owner, "anonymous") == 0) return NULL;
  const char *colon = strchr(job->owner, ':');
  principal_kind kind = PRINCIPAL_API_KEY;
  for (int k = PRINCIPAL_ANONYMOUS; k <= PRINCIPAL_CERT; k++)
    if (colon && strncmp(job->owner, principal_kind_name((principal_kind)k), (size_t)(colon - job->owner)) == 0 &&
        principal_kind_name((principal_kind)k)[colon - job->owner] == '\0')
      kind = (principal_kind)k;
  principal *p = principal_create(kind, colon ? colon + 1 : job->owner);
  if (p == NULL) return NULL;
  char buf[sizeof job->scopes];
  snprintf(buf, sizeof buf, "%s", job->scopes);
  char *save = NULL;
  for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) principal_add_scope(p, s);
  return p;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -- chunks -- */

static void chunk_drop_outputs(chunk *c) {
  if (c->outputs) tensors_free(c->outputs, c->n_outputs);
  for (size_t i = 0; c->output_names && i < c->n_outputs; i++) free(c->output_names[i]);
  free(c->output_names);
  if (c->mv) version_release(c->mv);
  c->outputs = NULL;
  c->output_names = NULL;
  c->n_outputs = 0;
  c->mv = NULL;
}

static void chunk_free(chunk *c) {
  if (c == NULL) return;
  chunk_drop_outputs(c);
  for (int64_t i = 0; i < c->n; i++) {
    if (c->records) free(c->records[i]);
    if (c->out) free(c->out[i]);
  }
  free(c->records);
  free(c->out);
  free(c->ok);
  free(c->good);
  free(c);
}

typedef struct read_ctx {
  chunk *c;
  bool oom;
} read_ctx;

static void take_record(void *user, int64_t index, const char *tag, const char *body) {
  (void)tag;
  read_ctx *r = user;
  int64_t i = index - r->c->first;
  if (i < 0 || i >= r->c->n || r->c->records[i]) return;
  if ((r->c->records[i] = strdup(body ? body : "{}")) == NULL) r->oom = true;
}

static inferd_status chunk_read(jobs *j, run *r, int64_t k, chunk **out) {
  int64_t cr = r->info.chunk_records;
  chunk *c = calloc(1, sizeof *c);
  if (c == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  c->jobs = j;
  c->run = r;
  c->index = k;
  c->first = k * cr;
  c->n = r->info.total - c->first < cr ? r->info.total - c->first : cr;
  c->records = calloc((size_t)c->n, sizeof *c->records);
  c->out = calloc((size_t)c->n, sizeof *c->out);
  c->ok = calloc((size_t)c->n, sizeof *c->ok);
  c->good = calloc((size_t)c->n, sizeof *c->good);
  if (!c->records || !c->out || !c->ok || !c->good) {
    chunk_free(c);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  read_ctx rc = {.c = c};
  inferd_status st = j->store->ops->records(j->store, r->info.id, c->first, c->n, take_record, &rc);
  if (status_is_ok(&st) && rc.oom) st = status_make(INFERD_INTERNAL, "out of memory");
  for (int64_t i = 0; status_is_ok(&st) && i < c->n; i++)
    if (c->records[i] == NULL)
      st = status_make(INFERD_INTERNAL, "job '%s' is missing record %lld in its store", r->info.id, (long long)(c->first + i));
  if (!status_is_ok(&st)) {
    chunk_free(c);
    return st;
  }
  snprintf(c->request_id, sizeof c->request_id, "%s-%lld", r->info.id, (long long)k);
  *out = c;
  return status_ok();
}

/* A record's error paths are the record's own: $.age, not the chunk's $.inputs[17].age. */
static void record_path(void *user, size_t record, const char *feature, char *buf, size_t len) {
  (void)user;
  (void)record;
  if (feature) snprintf(buf, len, "$.%s", feature);
  else snprintf(buf, len, "$");
}

static char *error_json(const feature_errors *errs, const char *msg) {
  json_t *doc;
  if (errs && errs->total) {
    char summary[1024];
    feature_errors_summary(errs, summary, sizeof summary);
    doc = json_pack("{ss so}", "error", summary, "errors", feature_errors_json(errs));
  } else {
    doc = json_pack("{ss}", "error", msg);
  }
  char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  return s;
}

static json_t *records_array(chunk *c, const size_t *which, size_t n, bool all) {
  json_t *arr = json_array();
  for (size_t k = 0; k < n; k++) {
    size_t i = all || which == NULL ? k : which[k];
    json_t *rec = json_loads(c->records[i], 0, NULL);
    json_array_append_new(arr, rec ? rec : json_object());
  }
  return arr;
}

/* serve's decode stage, on the executor thread: the chunk's records through the model's
 * feature schema. Records the schema refuses get their error now and stay out of the batch;
 * when none is left the request ends here (INVALID_ARGUMENT) and the executor commits the
 * errors itself. */
static inferd_status chunk_decode(serve_request *sr, infer_request *req) {
  chunk *c = sr->user;
  const features *f = application_features(req->mv);
  if (f == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "model '%s' has no feature schema (config.json \"application\"): batch jobs "
                       "take records", req->mv->model->name);
  const model_config *cfg = req->mv->model->config;
  if (cfg && cfg->batching.priority_levels > 1) sr->priority = cfg->batching.priority_levels; /* the lowest */
  features_paths paths = {.base = "$", .path = record_path};
  feature_errors errs = {0};
  tensor *ts = NULL;
  size_t nt = 0;
  json_t *all = records_array(c, NULL, (size_t)c->n, true);
  inferd_status st = features_encode(f, all, &paths, &ts, &nt, &errs);
  json_decref(all);
  feature_errors_clear(&errs);
  c->n_good = 0;
  if (status_is_ok(&st)) {
    for (int64_t i = 0; i < c->n; i++) c->good[c->n_good++] = (size_t)i;
  } else if (st.code == INFERD_INVALID_ARGUMENT) {
    /* some records are wrong: find them one by one (only chunks with errors pay for this) */
    for (int64_t i = 0; i < c->n; i++) {
      json_t *one = records_array(c, (size_t[]){(size_t)i}, 1, false);
      tensor *t1 = NULL;
      size_t n1 = 0;
      feature_errors e1 = {0};
      inferd_status s1 = features_encode(f, one, &paths, &t1, &n1, &e1);
      json_decref(one);
      if (t1) tensors_free(t1, n1);
      if (status_is_ok(&s1)) {
        c->good[c->n_good++] = (size_t)i;
      } else {
        free(c->out[i]);
        c->out[i] = error_json(&e1, s1.msg);
        c->ok[i] = false;
      }
      feature_errors_clear(&e1);
    }
    if (c->n_good == 0) {
      c->all_invalid = true;
      return status_make(INFERD_INVALID_ARGUMENT, "every record of the chunk is invalid");
    }
    json_t *good = records_array(c, c->good, c->n_good, false);
    st = features_encode(f, good, &paths, &ts, &nt, &errs);
    json_decref(good);
    feature_errors_clear(&errs);
    if (!status_is_ok(&st)) return st;
  } else {
    return st;
  }
  req->inputs = ts;
  req->n_inputs = nt;
  req->output_names = calloc(f->n_output_names + 1, sizeof(char *));
  if (req->output_names == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < f->n_output_names; i++)
    if ((req->output_names[req->n_outputs++] = strdup(f->output_names[i])) == NULL)
      return status_make(INFERD_INTERNAL, "out of memory");
  return status_ok();
}

static void post_finished(jobs *j, chunk *c) {
  pthread_mutex_lock(&j->mu);
  c->next = j->finished;
  j->finished = c;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
}

/* The pipeline's completion, on a worker: takes the outputs and hands the chunk back; the
 * executor decodes them (chunk_results). */
static void chunk_done(infer_request *req, void *user) {
  chunk *c = user;
  c->st = req->status;
  if (status_is_ok(&c->st)) {
    c->outputs = req->outputs;
    c->output_names = req->output_names;
    c->n_outputs = req->n_outputs;
    c->mv = req->mv;
    version_retain(c->mv);
    req->outputs = NULL;
    req->output_names = NULL;
    req->n_outputs = 0;
  }
  infer_request_destroy(req);
  post_finished(c->jobs, c);
}

/* One result per record sent, as /v1 predict makes them (executor thread). */
static void chunk_results(chunk *c) {
  if (!status_is_ok(&c->st) || c->mv == NULL) return;
  const features *f = application_features(c->mv);
  features_result_opts opts = {.return_probabilities = true, .top_k = 0};
  json_t *results = NULL;
  c->st = f ? features_decode_results(f, c->outputs, c->output_names, c->n_outputs, &opts, &results)
            : status_make(INFERD_INTERNAL, "the model lost its feature schema");
  if (status_is_ok(&c->st) && json_array_size(results) != c->n_good)
    c->st = status_make(INFERD_INTERNAL, "the model answered %zu results for %zu records", json_array_size(results), c->n_good);
  for (size_t k = 0; status_is_ok(&c->st) && k < c->n_good; k++) {
    size_t i = c->good[k];
    free(c->out[i]);
    c->out[i] = json_dumps(json_array_get(results, k), JSON_COMPACT | JSON_REAL_PRECISION(9)); /* as /v1 predict answers */
    c->ok[i] = c->out[i] != NULL;
  }
  json_decref(results);
  chunk_drop_outputs(c);
}

/* -- the executor -- */

static bool retryable(const jobs *j, inferd_code code) {
  /* a model not found before the repository's start-up loads are done may still appear */
  if (code == INFERD_NOT_FOUND) return !repo_started(j->a->repo);
  return code == INFERD_UNAVAILABLE || code == INFERD_RESOURCE_EXHAUSTED || code == INFERD_RATE_LIMITED ||
         code == INFERD_DEADLINE_EXCEEDED || code == INFERD_INTERNAL;
}

#define MAX_ATTEMPTS 5
#define MAX_TRANSIENT_ATTEMPTS 200 /* about 5 minutes at the longest backoff */

static void run_free(run *r) {
  if (r == NULL) return;
  while (r->retry) {
    chunk *c = r->retry;
    r->retry = c->next;
    chunk_free(c);
  }
  principal_unref(r->who);
  free(r->done);
  free(r);
}

static void mark_done(void *user, int64_t k) {
  run *r = user;
  if (k >= 0 && k < r->n_chunks) r->done[k / 8] |= (uint8_t)(1u << (k % 8));
}

static bool is_done(const run *r, int64_t k) { return (r->done[k / 8] >> (k % 8)) & 1; }

/* Claims the next job and loads what it has done already. NULL when there is none. */
static run *run_claim(jobs *j) {
  run *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  inferd_status st = j->store->ops->claim(j->store, NULL, 0, &r->info);
  if (!status_is_ok(&st)) {
    if (st.code != INFERD_NOT_FOUND) log_msg(LOG_ERROR, NULL, "jobs: %s", st.msg);
    free(r);
    return NULL;
  }
  /* the chunk size from the model's default version (a resumed job keeps the one it had) */
  int mbs = 0;
  {
    SNAPSHOT_REF repo_snapshot *snap = repo_snapshot_acquire(j->a->repo);
    const repo_model *m = repo_snapshot_find(snap, r->info.model);
    if (m && m->def && m->def->config) mbs = m->def->config->max_batch_size;
  }
  int64_t cr = r->info.chunk_records > 0 ? r->info.chunk_records : jobs_chunk_size(j->o.chunk_records, mbs);
  st = x_start(j, r->info.id, cr, now_ms());
  if (status_is_ok(&st)) st = j->store->ops->get(j->store, r->info.id, &r->info);
  if (status_is_ok(&st)) {
    r->n_chunks = jobs_chunk_count(r->info.total, r->info.chunk_records);
    r->done = calloc((size_t)(r->n_chunks / 8 + 1), 1);
    if (r->done == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
  }
  if (status_is_ok(&st)) st = j->store->ops->chunks_done(j->store, r->info.id, mark_done, r);
  if (!status_is_ok(&st)) {
    log_msg(LOG_ERROR, NULL, "jobs: cannot start job %s: %s", r->info.id, st.msg);
    run_free(r);
    return NULL;
  }
  r->who = principal_of_owner(&r->info);
  r->started_ns = monotime_ns();
  if (r->info.completed > 0)
    log_msg(LOG_INFO, NULL, "jobs: resuming %s at %lld of %lld records", r->info.id, (long long)r->info.completed,
            (long long)r->info.total);
  return r;
}

static void run_fail(run *r, const char *msg) {
  if (r->failed) return;
  r->failed = true;
  snprintf(r->fail_msg, sizeof r->fail_msg, "%s", msg);
}

/* Commits a finished chunk (executor thread). */
static void chunk_commit(jobs *j, chunk *c) {
  run *r = c->run;
  chunk_results(c);
  if (!status_is_ok(&c->st) && !c->all_invalid) {
    if (atomic_load(&r->cancelled) || r->failed) {
      chunk_free(c);
      return;
    }
    /* not ready, queue full, over a rate limit: wait and try again for minutes (a restarted
     * server's models are still loading); a failed run: a few times only */
    bool transient = c->st.code == INFERD_UNAVAILABLE || c->st.code == INFERD_RESOURCE_EXHAUSTED ||
                     c->st.code == INFERD_RATE_LIMITED || (c->st.code == INFERD_NOT_FOUND && !repo_started(j->a->repo));
    if (retryable(j, c->st.code) && c->attempts + 1 < (transient ? MAX_TRANSIENT_ATTEMPTS : MAX_ATTEMPTS) && !atomic_load(&j->stop_flag)) {
      c->attempts++;
      int shift = c->attempts < 5 ? c->attempts - 1 : 4;
      c->not_before_ns = monotime_ns() + ((int64_t)100000000 << shift); /* 0.1, 0.2, 0.4, 0.8, 1.6 s */
      c->next = r->retry;
      r->retry = c;
      atomic_fetch_add(&j->chunks_retried, 1);
      return;
    }
    if (atomic_load(&j->stop_flag)) { /* the server is going down: the chunk runs again after the restart */
      chunk_free(c);
      return;
    }
    if (!retryable(j, c->st.code)) { /* the model went away, the caller lost its scope... */
      run_fail(r, c->st.msg);
      chunk_free(c);
      return;
    }
    /* still failing after retries: its records get the error inline, the job goes on */
    for (size_t k = 0; k < c->n_good; k++) {
      size_t i = c->good[k];
      free(c->out[i]);
      c->out[i] = error_json(NULL, c->st.msg);
      c->ok[i] = false;
    }
  }
  job_result *res = calloc((size_t)c->n, sizeof *res);
  inferd_status st = res ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
  int64_t bad = 0;
  for (int64_t i = 0; status_is_ok(&st) && i < c->n; i++) {
    if (c->out[i] == NULL) st = status_make(INFERD_INTERNAL, "record %lld has no result", (long long)(c->first + i));
    res[i] = (job_result){.ok = c->ok[i], .body = c->out[i]};
    if (!c->ok[i]) bad++;
  }
  bool dup = false;
  if (status_is_ok(&st)) st = x_commit_chunk(j, r->info.id, c->index, c->first, res, (size_t)c->n, &dup);
  free(res);
  if (!status_is_ok(&st)) {
    log_msg(LOG_ERROR, NULL, "jobs: %s: %s", r->info.id, st.msg);
    run_fail(r, st.msg);
  } else {
    mark_done(r, c->index);
    if (!dup) {
      atomic_fetch_add(&j->records_ok, c->n - bad);
      atomic_fetch_add(&j->records_err, bad);
      r->records_done += c->n;
      int64_t el = monotime_ns() - r->started_ns;
      if (el > 100000000) atomic_store(&j->rate, (double)r->records_done * 1e9 / (double)el);
    }
  }
  chunk_free(c);
}

/* Hands chunk c to the pipeline. False when it did not go (committed, retried or failed). */
static void chunk_submit(jobs *j, chunk *c) {
  run *r = c->run;
  serve_request sr = {.model = r->info.model,
                      .version = r->info.version[0] ? r->info.version : NULL,
                      .start_ns = monotime_ns(),
                      .decode = chunk_decode,
                      .cancelled = &r->cancelled,
                      .on_done = chunk_done,
                      .user = c,
                      .principal = r->who,
                      .request_id = c->request_id,
                      .protocol = SERVE_PROTOCOL_OTHER};
  c->n_good = 0;
  c->all_invalid = false;
  /* the gate with jobs_stop (both sequentially consistent: one of the two sees the other) */
  atomic_store(&j->submitting, true);
  if (atomic_load(&j->stop_flag)) {
    atomic_store(&j->submitting, false);
    chunk_free(c); /* not committed: it runs after the restart */
    return;
  }
  r->inflight++;
  atomic_fetch_add(&j->inflight, 1);
  inferd_status st = serve_submit(j->a->serve, &sr);
  atomic_store(&j->submitting, false);
  if (status_is_ok(&st)) return;
  /* ended at a stage: nothing was handed over, on_done will not run */
  r->inflight--;
  atomic_fetch_sub(&j->inflight, 1);
  c->st = st;
  chunk_commit(j, c);
}

/* Takes the chunks workers finished (under mu) and commits them. */
static void drain_finished(jobs *j) {
  pthread_mutex_lock(&j->mu);
  chunk *list = j->finished;
  j->finished = NULL;
  pthread_mutex_unlock(&j->mu);
  /* oldest first, so a job's chunks commit roughly in order */
  chunk *rev = NULL;
  while (list) {
    chunk *n = list->next;
    list->next = rev;
    rev = list;
    list = n;
  }
  while (rev) {
    chunk *c = rev;
    rev = c->next;
    c->run->inflight--;
    atomic_fetch_sub(&j->inflight, 1);
    chunk_commit(j, c);
  }
}

/* -- the completion webhook (jobs.h) -- */

typedef struct hook_ctx {
  jobs *j;
  char id[JOB_ID_MAX];
} hook_ctx;

/* On the webhook thread, once: the delivery's outcome into the job's status. A delivery cut by
 * a shutdown stays pending, to go again at the next start. */
static void webhook_done(void *ctx, const char *msg_id, bool delivered, int attempts, const char *last_error) {
  (void)msg_id;
  hook_ctx *h = ctx;
  bool again = !delivered && last_error && strcmp(last_error, "shutting down") == 0;
  h->j->store->ops->set_webhook(h->j->store, h->id, delivered ? "delivered" : again ? "pending" : "failed", attempts,
                                last_error);
  free(h);
}

static void webhook_send(jobs *j, const job_info *job) {
  if (j->o.hooks == NULL) {
    x_set_webhook(j, job->id, "failed", 0, "webhooks are not configured on this server");
    return;
  }
  char *status = jobs_status_json(j, job, now_ms());
  json_t *data = status ? json_loads(status, 0, NULL) : NULL;
  free(status);
  char type[32], ts[32];
  snprintf(type, sizeof type, "batch.%s", job_state_name(job->state));
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_t *doc = json_pack("{ss ss so}", "type", type, "timestamp", ts, "data", data ? data : json_object());
  char *payload = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  hook_ctx *h = calloc(1, sizeof *h);
  inferd_status st = payload && h ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
  char msg_id[JOB_ID_MAX + 8];
  snprintf(msg_id, sizeof msg_id, "msg_%s", job->id);
  if (status_is_ok(&st)) {
    h->j = j;
    snprintf(h->id, sizeof h->id, "%s", job->id);
    x_set_webhook(j, job->id, "sending", 0, NULL);
    st = webhooks_send(j->o.hooks, job->callback_url, msg_id, payload, webhook_done, h);
  }
  free(payload);
  if (!status_is_ok(&st)) {
    free(h);
    /* stopping: the next start sends it; refused (queue full, a bad url): recorded as failed */
    x_set_webhook(j, job->id, st.code == INFERD_UNAVAILABLE ? "pending" : "failed", 0, st.msg);
  }
}

static void resend_one(void *user, const job_info *job) { webhook_send(user, job); }

/* The job is over (all chunks committed, failed or cancelled, nothing in flight): its final
 * state, then the webhook. */
static void run_finish(jobs *j, run *r) {
  job_info info;
  inferd_status st = j->store->ops->get(j->store, r->info.id, &info);
  if (!status_is_ok(&st)) return;
  if (job_state_active(info.state) && !atomic_load(&j->stop_flag)) {
    bool complete = info.completed >= info.total;
    if (r->failed || complete) {
      st = x_finish(j, info.id, r->failed ? JOB_FAILED : JOB_COMPLETED, r->failed ? r->fail_msg : NULL, now_ms());
      if (!status_is_ok(&st)) log_msg(LOG_ERROR, NULL, "jobs: %s: %s", info.id, st.msg);
      log_msg(LOG_INFO, NULL, "jobs: %s %s: %lld records, %lld failed", info.id, r->failed ? "failed" : "completed",
              (long long)info.completed, (long long)info.failed);
    }
  }
  if (info.callback_url[0] && status_is_ok(&st) && j->store->ops->get(j->store, r->info.id, &info).code == INFERD_OK &&
      strcmp(info.webhook_state, "pending") == 0)
    webhook_send(j, &info);
}

/* The executor's next step on the current job: submit what fits. Returns the time to wait
 * (ns) before something could be done, 0 when it did something, -1 to wait for a signal. */
static int64_t run_step(jobs *j, run *r) {
  /* a low job yields to normal work queued since: checked at a chunk boundary, after a wake */
  if (r->info.low_priority && !r->preempted && j->store->ops->normal_waiting && atomic_exchange(&j->woken, false)) {
    bool waiting = false;
    inferd_status st = j->store->ops->normal_waiting(j->store, &waiting);
    if (status_is_ok(&st) && waiting) {
      r->preempted = true;
      atomic_fetch_add(&j->preemptions, 1);
      log_msg(LOG_INFO, NULL, "jobs: %s (low priority) yields to a queued normal job after %lld of %lld records",
              r->info.id, (long long)(r->info.completed + r->records_done), (long long)r->info.total);
    }
  }
  bool stop = atomic_load(&r->cancelled) || r->failed || atomic_load(&j->stop_flag) || r->preempted;
  int64_t now = monotime_ns(), wait = -1;
  if (!stop) {
    /* retries whose time has come first */
    chunk **pp = &r->retry;
    while (*pp && r->inflight < j->o.max_inflight) {
      chunk *c = *pp;
      if (c->not_before_ns > now) {
        int64_t w = c->not_before_ns - now;
        if (wait < 0 || w < wait) wait = w;
        pp = &c->next;
        continue;
      }
      *pp = c->next;
      chunk_submit(j, c);
      return 0;
    }
    while (r->inflight < j->o.max_inflight && r->next < r->n_chunks) {
      int64_t k = r->next++;
      if (is_done(r, k)) continue;
      chunk *c = NULL;
      inferd_status st = chunk_read(j, r, k, &c);
      if (!status_is_ok(&st)) {
        run_fail(r, st.msg);
        return 0;
      }
      chunk_submit(j, c);
      return 0;
    }
  }
  return wait;
}

static bool run_over(jobs *j, run *r) {
  if (r->inflight > 0) return false;
  if (atomic_load(&r->cancelled) || r->failed || atomic_load(&j->stop_flag) || r->preempted) return true;
  return r->next >= r->n_chunks && r->retry == NULL;
}

static void *executor(void *arg) {
  jobs *j = arg;
  /* Job work (parsing records, encoding features, decoding results, SQLite) runs only when no
   * online thread wants the CPU: jobs fill idle capacity (docs/jobs.md). Linux: SCHED_IDLE for
   * this thread alone; elsewhere the normal policy. */
  struct sched_param sp = {0};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
  /* deliveries a previous run did not finish (a shutdown, kill -9 mid-delivery) */
  inferd_status wst = j->store->ops->pending_webhooks(j->store, resend_one, j);
  if (!status_is_ok(&wst)) log_msg(LOG_ERROR, NULL, "jobs: %s", wst.msg);
  for (;;) {
    drain_finished(j);
    run *r = j->cur;
    if (r && run_over(j, r)) {
      run_finish(j, r);
      pthread_mutex_lock(&j->mu);
      j->cur = NULL;
      pthread_mutex_unlock(&j->mu);
      run_free(r);
      r = NULL;
    }
    pthread_mutex_lock(&j->mu);
    bool stopping = j->stopping, exiting = j->exiting;
    pthread_mutex_unlock(&j->mu);
    if (exiting && r == NULL) break;
    if (r == NULL && !stopping) {
      r = run_claim(j);
      pthread_mutex_lock(&j->mu);
      j->cur = r;
      pthread_mutex_unlock(&j->mu);
    }
    int64_t wait = -1;
    if (r) {
      wait = run_step(j, r);
      if (wait == 0) continue;
    }
    pthread_mutex_lock(&j->mu);
    if (j->finished == NULL && !(j->exiting && (r == NULL || r->inflight == 0))) {
      /* a new job, a finished chunk, a cancel or a stop signals; idle, look again now and then */
      if (wait < 0 || wait > 1000000000) wait = r ? 1000000000 : 2000000000;
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t ns = ts.tv_nsec + wait;
      ts.tv_sec += ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    pthread_mutex_unlock(&j->mu);
  }
  return NULL;
}

/* -- the API -- */

inferd_status jobs_create(app *a, const jobs_options *o, jobs **out) {
  jobs *j = calloc(1, sizeof *j);
  if (j == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  j->a = a;
  j->o = *o;
  if (j->o.max_job_records <= 0) j->o.max_job_records = JOBS_DEFAULT_MAX_JOB_RECORDS;
  if (j->o.max_active_jobs <= 0) j->o.max_active_jobs = JOBS_DEFAULT_MAX_ACTIVE_JOBS;
  if (j->o.max_active_records <= 0) j->o.max_active_records = JOBS_DEFAULT_MAX_ACTIVE_RECORDS;
  if (j->o.max_inflight <= 0) j->o.max_inflight = JOBS_DEFAULT_MAX_INFLIGHT;
  pthread_mutex_init(&j->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_cond_init(&j->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (o->rstore) { /* shared by the replicas: no local state */
    inferd_status st = job_store_redis_open(o->rstore, o->claim_timeout_ms, o->ttl_seconds, &j->store);
    if (!status_is_ok(&st)) {
      jobs_destroy(j);
      return st;
    }
  } else if (o->state_dir == NULL || mkdir(o->state_dir, 0755) != 0) {
    if (o->state_dir == NULL || errno != EEXIST) {
      inferd_status st = status_make(INFERD_INTERNAL, "cannot create the state directory %s: %s",
                                     o->state_dir ? o->state_dir : "(none)", strerror(errno));
      jobs_destroy(j);
      return st;
    }
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/jobs.db", o->state_dir);
  inferd_status st = j->store ? status_ok() : job_store_sqlite_open(path, &j->store);
  if (!status_is_ok(&st)) {
    jobs_destroy(j);
    return st;
  }
  if (!helper_start(&j->io) || !helper_start(&j->intake)) {
    jobs_destroy(j);
    return status_make(INFERD_INTERNAL, "cannot start the jobs helper threads");
  }
  if (pthread_create(&j->thread, NULL, executor, j) != 0) {
    jobs_destroy(j);
    return status_make(INFERD_INTERNAL, "cannot start the jobs executor");
  }
  j->thread_started = true;
  *out = j;
  return status_ok();
}

void jobs_stop(jobs *j) {
  if (j == NULL) return;
  atomic_store(&j->stop_flag, true);
  pthread_mutex_lock(&j->mu);
  j->stopping = true;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
  /* a submission under way finishes before the pipeline can go (see jobs.submitting) */
  while (atomic_load(&j->submitting)) nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
}

void jobs_destroy(jobs *j) {
  if (j == NULL) return;
  atomic_store(&j->stop_flag, true);
  if (j->thread_started) {
    pthread_mutex_lock(&j->mu);
    j->stopping = j->exiting = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
  }
  atomic_store(&j->stop_flag, true);
  helper_stop(&j->intake); /* offloaded tasks end early once stopping (jobs_stopping) */
  helper_stop(&j->io);
  run_free(j->cur);
  if (j->store) j->store->ops->close(j->store);
  pthread_cond_destroy(&j->cv);
  pthread_mutex_destroy(&j->mu);
  free(j);
}

job_store *jobs_store(jobs *j) { return j->store; }
const jobs_options *jobs_get_options(const jobs *j) { return &j->o; }

void jobs_wake(jobs *j) {
  atomic_store(&j->woken, true);
  pthread_mutex_lock(&j->mu);
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
}

inferd_status jobs_cancel(jobs *j, const char *id, int64_t at_ms) {
  TRY(j->store->ops->finish(j->store, id, JOB_CANCELLED, NULL, at_ms));
  pthread_mutex_lock(&j->mu);
  if (j->cur && strcmp(j->cur->info.id, id) == 0) atomic_store(&j->cur->cancelled, true);
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
  return status_ok();
}

double jobs_rate(jobs *j) { return atomic_load(&j->rate); }

inferd_status jobs_offload(jobs *j, void (*fn)(void *arg), void *arg) {
  if (atomic_load(&j->stop_flag)) return status_make(INFERD_UNAVAILABLE, "the server is shutting down");
  if (helper_post(&j->intake, fn, arg) == 0) return status_make(INFERD_UNAVAILABLE, "the server is shutting down");
  return status_ok();
}

bool jobs_stopping(jobs *j) { return atomic_load(&j->stop_flag); }

int64_t jobs_estimate_ms(jobs *j, int64_t now, int64_t records) {
  int64_t by[JOB_CANCELLED + 1], left = 0;
  j->store->ops->counts(j->store, by, &left);
  double rate = jobs_rate(j);
  if (rate <= 0) rate = 2000; /* nothing measured yet: a modest guess, corrected once chunks run */
  return now + (int64_t)((double)(left + records) * 1000.0 / rate);
}

static void iso_ms(int64_t ms, char *buf, size_t len) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *time_or_null(int64_t ms) {
  if (ms <= 0) return json_null();
  char b[32];
  iso_ms(ms, b, sizeof b);
  return json_string(b);
}

char *jobs_status_json(jobs *j, const job_info *job, int64_t now) {
  json_t *doc = json_pack("{ss ss ss s{sI sI sI}}", "batch_id", job->id, "status", job_state_name(job->state), "model",
                          job->model, "progress", "completed", (json_int_t)(job->completed - job->failed), "failed",
                          (json_int_t)job->failed, "total", (json_int_t)job->total);
  if (doc == NULL) return NULL;
  json_object_set_new(doc, "priority", json_string(job->low_priority ? "low" : "normal"));
  json_object_set_new(doc, "created_at", time_or_null(job->created_ms));
  json_object_set_new(doc, "started_at", time_or_null(job->started_ms));
  json_object_set_new(doc, "finished_at", time_or_null(job->finished_ms));
  int64_t left = job->total - job->completed;
  double rate = jobs_rate(j);
  if (job_state_active(job->state)) {
    int64_t eta = job->state == JOB_PROCESSING && rate > 0 ? now + (int64_t)((double)left * 1000.0 / rate)
                                                           : jobs_estimate_ms(j, now, 0);
    json_object_set_new(doc, "estimated_completion", time_or_null(eta));
    json_object_set_new(doc, "eta_seconds", json_real((double)(eta - now) / 1000.0));
  } else {
    json_object_set_new(doc, "estimated_completion", json_null());
    json_object_set_new(doc, "eta_seconds", json_null());
  }
  if (job->started_ms > 0) {
    int64_t end = job->finished_ms > 0 ? job->finished_ms : now;
    double secs = (double)(end - job->started_ms) / 1000.0;
    json_object_set_new(doc, "timing", json_pack("{sf sf}", "elapsed_seconds", secs, "records_per_second",
                                                 secs > 0 ? (double)job->completed / secs : 0.0));
  } else {
    json_object_set_new(doc, "timing", json_pack("{sn sn}", "elapsed_seconds", "records_per_second"));
  }
  json_object_set_new(doc, "error", job->error[0] ? json_string(job->error) : json_null());
  if (job->callback_url[0])
    json_object_set_new(doc, "webhook",
                        json_pack("{ss ss si so}", "url", job->callback_url, "state",
                                  job->webhook_state[0] ? job->webhook_state : "waiting", "attempts", job->webhook_attempts,
                                  "last_error", job->webhook_error[0] ? json_string(job->webhook_error) : json_null()));
  char *s = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  return s;
}

void jobs_metrics_write(void *ctx, FILE *f) {
  jobs *j = ctx;
  int64_t by[JOB_CANCELLED + 1], left = 0;
  inferd_status st = j->store->ops->counts(j->store, by, &left);
  if (!status_is_ok(&st)) return;
  fprintf(f, "# HELP inferd_jobs Async batch jobs by state.\n# TYPE inferd_jobs gauge\n");
  for (int s = JOB_QUEUED; s <= JOB_CANCELLED; s++)
    fprintf(f, "inferd_jobs{state=\"%s\"} %lld\n", job_state_name((job_state)s), (long long)by[s]);
  fprintf(f, "# HELP inferd_job_records_pending Records of queued and processing jobs not done yet.\n"
             "# TYPE inferd_job_records_pending gauge\ninferd_job_records_pending %lld\n", (long long)left);
  fprintf(f, "# HELP inferd_job_records_total Job records done by this process, by result.\n"
             "# TYPE inferd_job_records_total counter\n"
             "inferd_job_records_total{result=\"ok\"} %lld\ninferd_job_records_total{result=\"error\"} %lld\n",
          (long long)atomic_load(&j->records_ok), (long long)atomic_load(&j->records_err));
  fprintf(f, "# HELP inferd_job_chunks_in_flight Job chunks handed to the scheduler now.\n"
             "# TYPE inferd_job_chunks_in_flight gauge\ninferd_job_chunks_in_flight %d\n", atomic_load(&j->inflight));
  fprintf(f, "# HELP inferd_job_chunk_retries_total Job chunks submitted again after a transient failure.\n"
             "# TYPE inferd_job_chunk_retries_total counter\ninferd_job_chunk_retries_total %lld\n",
          (long long)atomic_load(&j->chunks_retried));
  fprintf(f, "# HELP inferd_job_records_per_second The executor's recent throughput.\n"
             "# TYPE inferd_job_records_per_second gauge\ninferd_job_records_per_second %.1f\n", jobs_rate(j));
  fprintf(f, "# HELP inferd_job_preemptions_total Low-priority jobs put down at a chunk boundary for a queued normal one.\n"
             "# TYPE inferd_job_preemptions_total counter\ninferd_job_preemptions_total %lld\n",
          (long long)atomic_load(&j->preemptions));
}
