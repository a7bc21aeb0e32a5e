/* The async batch job API (docs/jobs.md): POST /v1/batch/predict takes its records as they
 * arrive (a body sink) into the job store, GET .../status, .../results (JSONL, paginated),
 * DELETE cancels, GET /v1/batch lists the caller's jobs; and OpenAI's Batch API shape
 * (/v1/files, /v1/batches) over the same jobs. The work itself is jobs/jobs.c's. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frontends/http/routes.h"
#include "frontends/http/server_internal.h"
#include "jobs/job_input.h"
#include "jobs/jobs.h"
#include "security/auth.h"

#define UPLOAD_BATCH 1000 /* records per store transaction while uploading */
#define RESULTS_DEFAULT_LIMIT 1000
#define RESULTS_MAX_LIMIT 10000

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void iso(int64_t ms, char *buf, size_t len) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static jobs *jobs_of(http_call *c) { return c->srv->opts.jobs; }

static inferd_status jobs_on(http_call *c) {
  if (jobs_of(c) == NULL) return status_make(INFERD_UNAVAILABLE, "batch jobs are not enabled on this server");
  return status_ok();
}

/* ---- the query string ---- */

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The query parameter `name`, URL-decoded into buf. False when absent. */
static bool query_param(const http_call *c, const char *name, char *buf, size_t len) {
  const char *q = c->target ? strchr(c->target, '?') : NULL;
  if (q == NULL) return false;
  q++;
  size_t nl = strlen(name);
  while (*q) {
    const char *end = q + strcspn(q, "&#");
    if ((size_t)(end - q) >= nl && strncmp(q, name, nl) == 0 && (q[nl] == '=' || q + nl == end)) {
      const char *v = q[nl] == '=' ? q + nl + 1 : end;
      size_t o = 0;
      for (; v < end && o + 1 < len; v++) {
        char ch = *v;
        if (ch == '+') ch = ' ';
        else if (ch == '%' && v + 2 < end + 0 + 1 && hexv(v[1]) >= 0 && hexv(v[2]) >= 0) {
          ch = (char)(hexv(v[1]) * 16 + hexv(v[2]));
          v += 2;
        }
        buf[o++] = ch;
      }
      buf[o] = '\0';
      return true;
    }
    if (*end != '&') break;
    q = end + 1;
  }
  return false;
}

/* A non-negative integer query parameter, def when absent; INVALID_ARGUMENT naming it. */
static inferd_status query_int(const http_call *c, const char *name, int64_t def, int64_t max, int64_t *out) {
  char v[32];
  *out = def;
  if (!query_param(c, name, v, sizeof v)) return status_ok();
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno || *v == '\0' || *end || n < 0 || n > max)
    return status_make(INFERD_INVALID_ARGUMENT, "the query parameter %s must be an integer from 0 to %lld, got '%.40s'",
                       name, (long long)max, v);
  *out = n;
  return status_ok();
}

/* ---- checks shared by the JSON body and the query string ---- */

static inferd_status check_model(http_call *c, const char *model) {
  if (model == NULL || *model == '\0')
    return status_make(INFERD_INVALID_ARGUMENT, "name the model: \"model\" in the JSON body, or ?model= with a JSONL or CSV body");
  SNAPSHOT_REF repo_snapshot *snap = repo_snapshot_acquire(c->app->repo);
  if (repo_snapshot_find(snap, model) == NULL) return status_make(INFERD_NOT_FOUND, "model '%.200s' not found", model);
  return auth_check(c->srv->opts.auth, c->principal, SCOPE_INFER, model);
}

static inferd_status check_callback(const char *url) {
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    return status_make(INFERD_INVALID_ARGUMENT, "callback_url must be an http:// or https:// URL, got '%.100s'", url);
  if (strlen(url) >= sizeof ((job_info *)0)->callback_url)
    return status_make(INFERD_INVALID_ARGUMENT, "callback_url is longer than 1023 bytes");
  for (const char *p = url; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f) return status_make(INFERD_INVALID_ARGUMENT, "callback_url has a space or control character");
  return status_ok();
}

static inferd_status parse_priority(const char *v, bool *low) {
  if (strcmp(v, "low") == 0) *low = true;
  else if (strcmp(v, "normal") == 0) *low = false;
  else return status_make(INFERD_INVALID_ARGUMENT, "priority must be \"low\" or \"normal\", got '%.40s'", v);
  return status_ok();
}

/* The per-principal limits on what is queued (--max-jobs-per-principal, ...). */
static inferd_status check_owner_limits(http_call *c, const char *owner, int64_t *records_room) {
  jobs *j = jobs_of(c);
  const jobs_options *o = jobs_get_options(j);
  int64_t n_jobs = 0, n_records = 0;
  job_store *s = jobs_store(j);
  TRY(s->ops->owner_usage(s, owner, &n_jobs, &n_records));
  if (n_jobs >= o->max_active_jobs)
    return status_make(INFERD_RATE_LIMITED, "'%s' has %lld batch jobs queued or running, the most allowed "
                       "(--max-jobs-per-principal %lld): wait for one to finish", owner, (long long)n_jobs,
                       (long long)o->max_active_jobs);
  int64_t room = o->max_active_records - n_records;
  if (room <= 0)
    return status_make(INFERD_RATE_LIMITED, "'%s' has %lld job records waiting, the most allowed "
                       "(--max-job-records-per-principal %lld)", owner, (long long)n_records, (long long)o->max_active_records);
  *records_room = room;
  return status_ok();
}

/* ---- the upload: a body sink into the store ---- */

typedef struct upload {
  http_call *c;
  jobs *jobs;
  job_store *store;
  job_input *in;
  int format;
  job_info info;
  bool created, committed;
  bool replay;      /* the Idempotency-Key names a job already: the body is read and dropped */
  job_info earlier; /* that job */
  int64_t room;     /* records the caller may still add (per job and per principal) */
  bool room_is_principal;
  int64_t next;     /* index of the next record stored */
  char *pending[UPLOAD_BATCH];
  size_t pending_len[UPLOAD_BATCH];
  int n_pending;
} upload;

static inferd_status flush_pending(upload *u) {
  if (u->n_pending == 0) return status_ok();
  job_record recs[UPLOAD_BATCH];
  for (int i = 0; i < u->n_pending; i++) recs[i] = (job_record){.body = u->pending[i], .body_len = u->pending_len[i]};
  inferd_status st = u->store->ops->append(u->store, u->info.id, u->next, recs, (size_t)u->n_pending);
  u->next += u->n_pending;
  for (int i = 0; i < u->n_pending; i++) free(u->pending[i]);
  u->n_pending = 0;
  return st;
}

static inferd_status take_record(void *user, const char *json, size_t len) {
  upload *u = user;
  if (u->next + u->n_pending >= u->room) {
    if (u->room_is_principal)
      return status_make(INFERD_RATE_LIMITED, "the upload passes the job records '%s' may have waiting "
                         "(--max-job-records-per-principal %lld)", u->info.owner,
                         (long long)jobs_get_options(u->jobs)->max_active_records);
    return status_make(INFERD_TOO_LARGE, "the job has more than %lld records (--max-job-records)", (long long)u->room);
  }
  char *copy = malloc(len + 1);
  if (copy == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  memcpy(copy, json, len + 1);
  u->pending[u->n_pending] = copy;
  u->pending_len[u->n_pending++] = len;
  if (u->n_pending == UPLOAD_BATCH) return flush_pending(u);
  return status_ok();
}

static inferd_status upload_write(void *ctx, const char *data, size_t len) {
  upload *u = ctx;
  if (u->replay) return status_ok();
  return job_input_feed(u->in, data, len);
}

static void upload_release(void *ctx) {
  upload *u = ctx;
  for (int i = 0; i < u->n_pending; i++) free(u->pending[i]);
  if (u->created && !u->committed) u->store->ops->discard(u->store, u->info.id);
  job_input_destroy(u->in);
  free(u);
}

static const char *header_or_query(http_call *c, const char *header, const char *param, char *buf, size_t len) {
  if (query_param(c, param, buf, len)) return buf;
  const char *h = header ? http_call_header(c, header) : NULL;
  return h;
}

inferd_status jobs_api_open_upload(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  TRY(jobs_on(c));
  if (atomic_load(&c->app->draining)) return status_make(INFERD_UNAVAILABLE, "the server is shutting down");
  const char *ce = http_call_header(c, "Content-Encoding");
  if (ce && strcasecmp(ce, "identity") != 0)
    return status_make(INFERD_UNSUPPORTED_MEDIA, "a job upload is read as it arrives: send it without Content-Encoding");
  const char *ct = http_call_header(c, "Content-Type");
  int format = ct ? job_input_format_of(ct) : JOB_INPUT_JSON;
  if (format < 0)
    return status_make(INFERD_UNSUPPORTED_MEDIA, "Content-Type '%.80s' is not supported: send application/json, "
                       "application/x-ndjson (JSON Lines) or text/csv", ct);
  jobs *j = jobs_of(c);
  upload *u = calloc(1, sizeof *u);
  if (u == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  u->c = c;
  u->jobs = j;
  u->store = jobs_store(j);
  u->format = format;
  /* the sink owns u from here: release frees it on every path */
  c->sink = (http_body_sink){.write = upload_write, .release = upload_release, .ctx = u,
                             .max_bytes = c->srv->opts.max_job_body_bytes, .limit_flag = "--max-job-body-bytes"};
  job_info *ji = &u->info;
  jobs_owner_of(c->principal, ji->owner, ji->scopes);
  char v[1100];
  if (query_param(c, "model", v, sizeof v)) snprintf(ji->model, sizeof ji->model, "%s", v);
  if (query_param(c, "version", v, sizeof v)) snprintf(ji->version, sizeof ji->version, "%s", v);
  if (query_param(c, "priority", v, sizeof v)) TRY(parse_priority(v, &ji->low_priority));
  if (query_param(c, "callback_url", v, sizeof v)) {
    TRY(check_callback(v));
    snprintf(ji->callback_url, sizeof ji->callback_url, "%s", v);
  }
  if (format != JOB_INPUT_JSON) {
    if (ji->model[0] == '\0')
      return status_make(INFERD_INVALID_ARGUMENT, "a JSON Lines or CSV upload names its model in the query: "
                         "POST /v1/batch/predict?model=NAME");
    TRY(check_model(c, ji->model));
  }
  const char *key = header_or_query(c, "Idempotency-Key", "idempotency_key", v, sizeof v);
  if (key) {
    if (*key == '\0' || strlen(key) >= sizeof ji->idempotency_key)
      return status_make(INFERD_INVALID_ARGUMENT, "the Idempotency-Key header must be 1 to 255 characters");
    snprintf(ji->idempotency_key, sizeof ji->idempotency_key, "%s", key);
    inferd_status st = u->store->ops->find_idempotent(u->store, ji->owner, ji->idempotency_key, &u->earlier);
    if (status_is_ok(&st)) {
      u->replay = true;
      return status_ok();
    }
    if (st.code != INFERD_NOT_FOUND) return st;
  }
  int64_t room = 0;
  TRY(check_owner_limits(c, ji->owner, &room));
  const jobs_options *o = jobs_get_options(j);
  u->room = room < o->max_job_records ? room : o->max_job_records;
  u->room_is_principal = room < o->max_job_records;
  u->in = job_input_create((job_input_format)format, take_record, u);
  if (u->in == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  jobs_new_id("batch_", ji->id, sizeof ji->id);
  ji->kind = JOB_KIND_BATCH;
  ji->created_ms = wall_ms();
  TRY(u->store->ops->create(u->store, ji));
  u->created = true;
  return status_ok();
}

static json_t *accepted_json(http_call *c, const job_info *ji) {
  char eta[32];
  iso(jobs_estimate_ms(jobs_of(c), wall_ms(), 0), eta, sizeof eta);
  char link[128];
  snprintf(link, sizeof link, "/v1/batch/%s/status", ji->id);
  http_call_add_reply_header(c, "Location", link);
  json_t *doc = json_pack("{ss ss ss sI}", "batch_id", ji->id, "status", job_state_name(ji->state), "model", ji->model,
                          "total_records", (json_int_t)ji->total);
  json_object_set_new(doc, "estimated_completion", job_state_active(ji->state) ? json_string(eta) : json_null());
  json_object_set_new(doc, "status_url", json_string(link));
  snprintf(link, sizeof link, "/v1/batch/%s/results", ji->id);
  json_object_set_new(doc, "results_url", json_string(link));
  return doc;
}

/* The JSON form's fields besides the records. */
static inferd_status read_envelope(http_call *c, upload *u) {
  json_t *env = job_input_envelope(u->in);
  job_info *ji = &u->info;
  const char *k;
  json_t *v;
  json_object_foreach(env, k, v) {
    if (strcmp(k, "model") && strcmp(k, "inputs") && strcmp(k, "callback_url") && strcmp(k, "priority") &&
        strcmp(k, "version"))
      return status_make(INFERD_INVALID_ARGUMENT, "unknown field '$.%.60s' (known: model, inputs, callback_url, priority, version)", k);
  }
  if (!job_input_has_inputs(u->in))
    return status_make(INFERD_INVALID_ARGUMENT, "$.inputs is missing: send \"inputs\": [{feature: value, ...}, ...]");
  v = json_object_get(env, "model");
  if (v && !json_is_string(v)) return status_make(INFERD_INVALID_ARGUMENT, "$.model must be a string");
  if (v) {
    if (ji->model[0] && strcmp(ji->model, json_string_value(v)) != 0)
      return status_make(INFERD_INVALID_ARGUMENT, "$.model ('%.100s') and ?model= ('%.100s') differ", json_string_value(v), ji->model);
    snprintf(ji->model, sizeof ji->model, "%s", json_string_value(v));
  }
  v = json_object_get(env, "version");
  if (v && !json_is_string(v)) return status_make(INFERD_INVALID_ARGUMENT, "$.version must be a string");
  if (v) snprintf(ji->version, sizeof ji->version, "%s", json_string_value(v));
  v = json_object_get(env, "priority");
  if (v && !json_is_string(v)) return status_make(INFERD_INVALID_ARGUMENT, "$.priority must be \"low\" or \"normal\"");
  if (v) TRY(parse_priority(json_string_value(v), &ji->low_priority));
  v = json_object_get(env, "callback_url");
  if (v && !json_is_null(v)) {
    if (!json_is_string(v)) return status_make(INFERD_INVALID_ARGUMENT, "$.callback_url must be a string");
    TRY(check_callback(json_string_value(v)));
    snprintf(ji->callback_url, sizeof ji->callback_url, "%s", json_string_value(v));
  }
  return check_model(c, ji->model);
}

static void reply_accepted(http_call *c, const job_info *ji, bool replayed) {
  if (replayed) http_call_add_reply_header(c, "Idempotent-Replayed", "true");
  http_call_reply_json(c, 202, accepted_json(c, ji));
}

void jobs_api_submit(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  upload *u = c->sink.write == upload_write ? c->sink.ctx : NULL;
  inferd_status st = jobs_on(c);
  if (status_is_ok(&st) && u == NULL) st = status_make(INFERD_INTERNAL, "the upload was not opened");
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  if (u->replay) {
    reply_accepted(c, &u->earlier, true);
    return;
  }
  st = job_input_finish(u->in);
  if (status_is_ok(&st)) st = flush_pending(u);
  if (status_is_ok(&st) && u->format == JOB_INPUT_JSON) st = read_envelope(c, u);
  if (status_is_ok(&st) && u->next == 0)
    st = status_make(INFERD_INVALID_ARGUMENT, "the job has no records: send at least one");
  bool taken = false;
  u->info.total = u->next;
  if (status_is_ok(&st)) st = u->store->ops->commit_upload(u->store, &u->info, &taken);
  if (status_is_ok(&st) && taken) { /* the same key won a race meanwhile: that job is the answer */
    st = u->store->ops->find_idempotent(u->store, u->info.owner, u->info.idempotency_key, &u->earlier);
    if (status_is_ok(&st)) {
      reply_accepted(c, &u->earlier, true);
      return;
    }
  }
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  u->committed = true;
  u->info.state = JOB_QUEUED;
  jobs_wake(u->jobs);
  reply_accepted(c, &u->info, false);
}

/* ---- reading jobs ---- */

/* The caller's job `id`: NOT_FOUND for another caller's (whose existence is not told). */
static inferd_status own_job(http_call *c, const char *id, job_info *out) {
  TRY(jobs_on(c));
  job_store *s = jobs_store(jobs_of(c));
  TRY(s->ops->get(s, id, out));
  char owner[JOB_OWNER_MAX], scopes[1024];
  jobs_owner_of(c->principal, owner, scopes);
  if (strcmp(owner, out->owner) != 0) return status_make(INFERD_NOT_FOUND, "no batch job '%.60s'", id);
  return status_ok();
}

static json_t *status_doc(http_call *c, const job_info *ji) {
  char *s = jobs_status_json(jobs_of(c), ji, wall_ms());
  json_t *doc = s ? json_loads(s, 0, NULL) : NULL;
  free(s);
  return doc ? doc : json_object();
}

void jobs_api_status(void *call, const route_params *p) {
  http_call *c = call;
  job_info *ji = malloc(sizeof *ji);
  inferd_status st = ji ? own_job(c, p->id, ji) : status_make(INFERD_INTERNAL, "out of memory");
  if (status_is_ok(&st)) http_call_reply_json(c, 200, status_doc(c, ji));
  else http_call_reply_error(c, &st);
  free(ji);
}

typedef struct results_ctx {
  struct evbuffer *out;
  const job_info *job;
  int64_t n;
  int want; /* OpenAI files: 1 successes only, 0 failures only, -1 every line */
  /* a running job's chunks may land out of order: a page holds only the results up to its
   * first one not done yet (expect: the next index it may take; -1: take every row) */
  int64_t expect;
  bool oom;
} results_ctx;

static void add_result(void *user, int64_t index, const char *tag, bool ok, const char *body) {
  results_ctx *r = user;
  if (r->expect >= 0) {
    if (index != r->expect) {
      r->expect = INT64_MAX; /* a gap: nothing after it on this page */
      return;
    }
    r->expect++;
  }
  r->n++;
  if (r->want >= 0 && ok != (r->want == 1)) return;
  char *line = jobs_result_line(r->job->kind, r->job->id, index, tag, ok, body);
  if (line == NULL || evbuffer_add(r->out, line, strlen(line)) != 0 || evbuffer_add(r->out, "\n", 1) != 0) r->oom = true;
  free(line);
}

void jobs_api_results(void *call, const route_params *p) {
  http_call *c = call;
  job_info *ji = malloc(sizeof *ji);
  inferd_status st = ji ? own_job(c, p->id, ji) : status_make(INFERD_INTERNAL, "out of memory");
  int64_t offset = 0, limit = 0;
  if (status_is_ok(&st)) st = query_int(c, "offset", 0, INT64_MAX / 4, &offset);
  if (status_is_ok(&st)) st = query_int(c, "limit", RESULTS_DEFAULT_LIMIT, RESULTS_MAX_LIMIT, &limit);
  if (status_is_ok(&st) && limit == 0) st = status_make(INFERD_INVALID_ARGUMENT, "the query parameter limit must be at least 1");
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    free(ji);
    return;
  }
  if (c->body == NULL) c->body = evbuffer_new();
  bool running = job_state_active(ji->state);
  results_ctx r = {.out = c->body, .job = ji, .want = -1, .expect = running ? offset : -1};
  job_store *s = jobs_store(jobs_of(c));
  st = r.out ? s->ops->results(s, ji->id, offset, limit, add_result, &r) : status_make(INFERD_INTERNAL, "out of memory");
  if (status_is_ok(&st) && r.oom) st = status_make(INFERD_INTERNAL, "out of memory");
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    free(ji);
    return;
  }
  /* a running job's next page starts after what this one holds (results not done yet are asked
   * for again from there); a finished one's after the range just read (a cancelled or failed
   * job keeps only the chunks that ran) */
  int64_t next = running ? offset + r.n : offset + limit;
  char v[64];
  snprintf(v, sizeof v, "%lld", (long long)ji->total);
  http_call_add_reply_header(c, "X-Total-Records", v);
  snprintf(v, sizeof v, "%s", job_state_name(ji->state));
  http_call_add_reply_header(c, "X-Batch-Status", v);
  if (next < ji->total) {
    snprintf(v, sizeof v, "%lld", (long long)next);
    http_call_add_reply_header(c, "X-Next-Offset", v);
    char link[160];
    snprintf(link, sizeof link, "</v1/batch/%s/results?offset=%lld&limit=%lld>; rel=\"next\"", ji->id, (long long)next,
             (long long)limit);
    http_call_add_reply_header(c, "Link", link);
  }
  c->status = 200;
  c->content_type = "application/x-ndjson";
  http_call_reply(c);
  free(ji);
}

void jobs_api_cancel(void *call, const route_params *p) {
  http_call *c = call;
  job_info *ji = malloc(sizeof *ji);
  inferd_status st = ji ? own_job(c, p->id, ji) : status_make(INFERD_INTERNAL, "out of memory");
  if (status_is_ok(&st)) st = jobs_cancel(jobs_of(c), ji->id, wall_ms());
  if (status_is_ok(&st)) st = jobs_store(jobs_of(c))->ops->get(jobs_store(jobs_of(c)), p->id, ji);
  if (status_is_ok(&st)) http_call_reply_json(c, 200, status_doc(c, ji));
  else http_call_reply_error(c, &st);
  free(ji);
}

typedef struct list_ctx {
  http_call *c;
  json_t *arr;
  json_t *(*doc)(http_call *c, const job_info *ji);
  int kind; /* -1: all */
} list_ctx;

static void list_one(void *user, const job_info *ji) {
  list_ctx *l = user;
  if (l->kind >= 0 && (int)ji->kind != l->kind) return;
  json_array_append_new(l->arr, l->doc(l->c, ji));
}

static void list_jobs(http_call *c, int kind, json_t *(*doc)(http_call *, const job_info *), bool openai) {
  inferd_status st = jobs_on(c);
  int64_t offset = 0, limit = 0;
  if (status_is_ok(&st)) st = query_int(c, "offset", 0, INT64_MAX / 4, &offset);
  if (status_is_ok(&st)) st = query_int(c, "limit", 100, 1000, &limit);
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  char owner[JOB_OWNER_MAX], scopes[1024];
  jobs_owner_of(c->principal, owner, scopes);
  list_ctx l = {.c = c, .arr = json_array(), .doc = doc, .kind = kind};
  job_store *s = jobs_store(jobs_of(c));
  st = s->ops->list(s, owner, offset, limit + 1, list_one, &l);
  if (!status_is_ok(&st)) {
    json_decref(l.arr);
    http_call_reply_error(c, &st);
    return;
  }
  bool more = (int64_t)json_array_size(l.arr) > limit;
  if (more) json_array_remove(l.arr, json_array_size(l.arr) - 1);
  json_t *out = openai ? json_pack("{ss so sb}", "object", "list", "data", l.arr, "has_more", more)
                       : json_pack("{so sb}", "batches", l.arr, "has_more", more);
  http_call_reply_json(c, 200, out);
}

void jobs_api_list(void *call, const route_params *p) {
  (void)p;
  list_jobs(call, JOB_KIND_BATCH, status_doc, false);
}

/* ---- OpenAI's Batch API shape: /v1/files and /v1/batches ----
 * An input file is JSONL, one request a line: {"custom_id", "method": "POST", "url":
 * "/v1/models/{model}/predict", "body": {"inputs": {record}}} (one record a line; "inputs" may
 * be a one-record array). A batch's endpoint is that url, the same on every line: one batch, one
 * model. Files are kept under --state-dir/files; a batch's output and error files are its
 * results (file-out-..., file-err-...), made when read. */

static void files_dir(http_call *c, char *buf, size_t len) {
  snprintf(buf, len, "%s/files", jobs_get_options(jobs_of(c))->state_dir);
}

static bool valid_file_id(const char *id) {
  if (strncmp(id, "file-", 5) != 0 || strlen(id) > 40) return false;
  for (const char *p = id + 5; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '-') return false;
  return true;
}

typedef struct file_upload {
  int fd;
  char tmp[4200];
} file_upload;

static inferd_status file_write(void *ctx, const char *data, size_t len) {
  file_upload *f = ctx;
  while (len) {
    ssize_t n = write(f->fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return status_make(INFERD_INTERNAL, "cannot store the file: %s", strerror(errno));
    data += n;
    len -= (size_t)n;
  }
  return status_ok();
}

static void file_release(void *ctx) {
  file_upload *f = ctx;
  if (f->fd >= 0) close(f->fd);
  if (f->tmp[0]) unlink(f->tmp);
  free(f);
}

inferd_status jobs_api_open_file(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  TRY(jobs_on(c));
  const char *ce = http_call_header(c, "Content-Encoding");
  if (ce && strcasecmp(ce, "identity") != 0)
    return status_make(INFERD_UNSUPPORTED_MEDIA, "a file upload is read as it arrives: send it without Content-Encoding");
  char dir[4100];
  files_dir(c, dir, sizeof dir);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return status_make(INFERD_INTERNAL, "cannot create %s: %s", dir, strerror(errno));
  file_upload *f = calloc(1, sizeof *f);
  if (f == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  char id[JOB_ID_MAX];
  jobs_new_id("upload-", id, sizeof id);
  snprintf(f->tmp, sizeof f->tmp, "%s/.%s", dir, id);
  f->fd = open(f->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600); /* read back (mapped) for multipart */
  c->sink = (http_body_sink){.write = file_write, .release = file_release, .ctx = f,
                             .max_bytes = c->srv->opts.max_job_body_bytes, .limit_flag = "--max-job-body-bytes"};
  if (f->fd < 0) {
    f->tmp[0] = '\0';
    return status_make(INFERD_INTERNAL, "cannot store the file: %s", strerror(errno));
  }
  return status_ok();
}

static const char *memfind(const char *h, size_t hn, const char *n, size_t nn) {
  if (nn == 0 || hn < nn) return NULL;
  for (const char *p = h; (p = memchr(p, n[0], (size_t)(h + hn - p) - nn + 1)) != NULL; p++)
    if (memcmp(p, n, nn) == 0) return p;
  return NULL;
}

/* multipart/form-data: finds the "file" part's content and the "purpose" field in the stored
 * body (mapped, not read into memory). */
static inferd_status multipart_parts(const char *body, size_t n, const char *boundary, const char **file, size_t *file_len,
                                     char *filename, size_t fn_len, char *purpose, size_t p_len) {
  char delim[300];
  int dl = snprintf(delim, sizeof delim, "--%s", boundary);
  if (dl <= 2 || (size_t)dl >= sizeof delim) return status_make(INFERD_INVALID_ARGUMENT, "the multipart boundary is missing or too long");
  const char *p = memfind(body, n, delim, (size_t)dl);
  *file = NULL;
  purpose[0] = '\0';
  while (p) {
    p += dl;
    if ((size_t)(body + n - p) >= 2 && p[0] == '-' && p[1] == '-') break; /* the closing delimiter */
    const char *head_end = memfind(p, (size_t)(body + n - p), "\r\n\r\n", 4);
    if (head_end == NULL) return status_make(INFERD_INVALID_ARGUMENT, "a multipart part has no end to its headers");
    const char *content = head_end + 4;
    char sep[310];
    int sl = snprintf(sep, sizeof sep, "\r\n%s", delim);
    const char *next = memfind(content, (size_t)(body + n - content), sep, (size_t)sl);
    if (next == NULL) return status_make(INFERD_INVALID_ARGUMENT, "a multipart part is not closed by its boundary");
    size_t hl = (size_t)(head_end - p);
    char *heads = strndup(p, hl);
    if (heads == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    const char *name = strstr(heads, "name=\"");
    if (name && strncmp(name + 6, "file\"", 5) == 0) {
      *file = content;
      *file_len = (size_t)(next - content);
      const char *fnm = strstr(heads, "filename=\"");
      if (fnm) snprintf(filename, fn_len, "%.*s", (int)strcspn(fnm + 10, "\""), fnm + 10);
    } else if (name && strncmp(name + 6, "purpose\"", 8) == 0) {
      snprintf(purpose, p_len, "%.*s", (int)(next - content), content);
    }
    free(heads);
    p = next + 2;
  }
  if (*file == NULL) return status_make(INFERD_INVALID_ARGUMENT, "the multipart body has no \"file\" part");
  return status_ok();
}

static json_t *file_object(const char *id, int64_t bytes, int64_t created_s, const char *filename, const char *purpose) {
  return json_pack("{ss ss sI sI ss ss}", "id", id, "object", "file", "bytes", (json_int_t)bytes, "created_at",
                   (json_int_t)created_s, "filename", filename, "purpose", purpose);
}

void jobs_api_file_upload(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  file_upload *f = c->sink.write == file_write ? c->sink.ctx : NULL;
  inferd_status st = jobs_on(c);
  if (status_is_ok(&st) && f == NULL) st = status_make(INFERD_INTERNAL, "the upload was not opened");
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  char dir[4100], id[JOB_ID_MAX], path[4200], filename[256] = "upload.jsonl", purpose[64] = "";
  files_dir(c, dir, sizeof dir);
  jobs_new_id("file-", id, sizeof id);
  snprintf(path, sizeof path, "%s/%s.jsonl", dir, id);
  const char *ct = http_call_header(c, "Content-Type");
  struct stat sb;
  fstat(f->fd, &sb);
  if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0) {
    const char *b = strstr(ct, "boundary=");
    char boundary[256] = "";
    if (b) snprintf(boundary, sizeof boundary, "%.*s", (int)strcspn(b + 9, "; "), b + 9 + (b[9] == '"'));
    if (boundary[0] && boundary[strlen(boundary) - 1] == '"') boundary[strlen(boundary) - 1] = '\0';
    size_t map_size = (size_t)sb.st_size;
    void *map = map_size > 0 ? mmap(NULL, map_size, PROT_READ, MAP_PRIVATE, f->fd, 0) : MAP_FAILED;
    if (map == MAP_FAILED) {
      st = map_size ? status_make(INFERD_INTERNAL, "cannot read the upload back: %s", strerror(errno))
                    : status_make(INFERD_INVALID_ARGUMENT, "the multipart body is empty");
    } else {
      const char *content = NULL;
      size_t len = 0;
      st = multipart_parts(map, (size_t)sb.st_size, boundary, &content, &len, filename, sizeof filename, purpose, sizeof purpose);
      if (status_is_ok(&st)) {
        int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        file_upload w = {.fd = out};
        st = out >= 0 ? file_write(&w, content, len) : status_make(INFERD_INTERNAL, "cannot store the file: %s", strerror(errno));
        if (out >= 0) close(out);
        sb.st_size = (off_t)len;
      }
      munmap(map, map_size);
    }
  } else {
    query_param(c, "purpose", purpose, sizeof purpose);
    query_param(c, "filename", filename, sizeof filename);
    if (rename(f->tmp, path) != 0) st = status_make(INFERD_INTERNAL, "cannot store the file: %s", strerror(errno));
    else f->tmp[0] = '\0';
  }
  if (status_is_ok(&st) && strcmp(purpose, "batch") != 0)
    st = status_make(INFERD_INVALID_ARGUMENT, "purpose must be \"batch\" (the only files this server keeps), got '%.40s'", purpose);
  char owner[JOB_OWNER_MAX], scopes[1024];
  jobs_owner_of(c->principal, owner, scopes);
  json_t *obj = file_object(id, (int64_t)sb.st_size, (int64_t)time(NULL), filename, purpose);
  if (status_is_ok(&st)) {
    json_t *meta = json_deep_copy(obj);
    json_object_set_new(meta, "owner", json_string(owner));
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/%s.json", dir, id);
    if (json_dump_file(meta, mpath, JSON_COMPACT) != 0) st = status_make(INFERD_INTERNAL, "cannot store the file's description");
    json_decref(meta);
  }
  if (!status_is_ok(&st)) {
    unlink(path);
    json_decref(obj);
    http_call_reply_error(c, &st);
    return;
  }
  http_call_reply_json(c, 200, obj);
}

/* An uploaded file's description, the caller's only. */
static inferd_status own_file(http_call *c, const char *id, json_t **meta, char *path, size_t plen) {
  TRY(jobs_on(c));
  if (!valid_file_id(id)) return status_make(INFERD_NOT_FOUND, "no file '%.60s'", id);
  char dir[4100], mpath[4200];
  files_dir(c, dir, sizeof dir);
  snprintf(mpath, sizeof mpath, "%s/%s.json", dir, id);
  snprintf(path, plen, "%s/%s.jsonl", dir, id);
  json_t *m = json_load_file(mpath, 0, NULL);
  char owner[JOB_OWNER_MAX], scopes[1024];
  jobs_owner_of(c->principal, owner, scopes);
  const char *o = json_string_value(json_object_get(m, "owner"));
  if (m == NULL || o == NULL || strcmp(o, owner) != 0) {
    json_decref(m);
    return status_make(INFERD_NOT_FOUND, "no file '%.60s'", id);
  }
  json_object_del(m, "owner");
  *meta = m;
  return status_ok();
}

/* file-out-<hex> and file-err-<hex>: batch_<hex>'s successes and failures. */
static bool output_file(const char *id, char *batch, size_t len, int *want) {
  if (strncmp(id, "file-out-", 9) == 0) *want = 1;
  else if (strncmp(id, "file-err-", 9) == 0) *want = 0;
  else return false;
  snprintf(batch, len, "batch_%s", id + 9);
  return true;
}

void jobs_api_file_get(void *call, const route_params *p) {
  http_call *c = call;
  char batch[JOB_ID_MAX + 8];
  int want;
  inferd_status st;
  if (output_file(p->id, batch, sizeof batch, &want)) {
    job_info *ji = malloc(sizeof *ji);
    st = ji ? own_job(c, batch, ji) : status_make(INFERD_INTERNAL, "out of memory");
    if (status_is_ok(&st)) {
      int64_t n = want ? ji->completed - ji->failed : ji->failed;
      http_call_reply_json(c, 200, file_object(p->id, n, ji->finished_ms / 1000, want ? "output.jsonl" : "errors.jsonl",
                                               "batch_output"));
    }
    free(ji);
  } else {
    json_t *meta = NULL;
    char path[4200];
    st = own_file(c, p->id, &meta, path, sizeof path);
    if (status_is_ok(&st)) http_call_reply_json(c, 200, meta);
  }
  if (!status_is_ok(&st)) http_call_reply_error(c, &st);
}

void jobs_api_file_content(void *call, const route_params *p) {
  http_call *c = call;
  char batch[JOB_ID_MAX + 8];
  int want;
  inferd_status st;
  if (c->body == NULL) c->body = evbuffer_new();
  if (output_file(p->id, batch, sizeof batch, &want)) {
    job_info *ji = malloc(sizeof *ji);
    st = ji ? own_job(c, batch, ji) : status_make(INFERD_INTERNAL, "out of memory");
    results_ctx r = {.out = c->body, .job = ji, .want = want, .expect = -1};
    if (status_is_ok(&st)) st = jobs_store(jobs_of(c))->ops->results(jobs_store(jobs_of(c)), ji->id, 0, ji->total, add_result, &r);
    if (status_is_ok(&st) && r.oom) st = status_make(INFERD_INTERNAL, "out of memory");
    free(ji);
  } else {
    json_t *meta = NULL;
    char path[4200];
    st = own_file(c, p->id, &meta, path, sizeof path);
    json_decref(meta);
    int fd = status_is_ok(&st) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    struct stat sb;
    if (status_is_ok(&st) && (fd < 0 || fstat(fd, &sb) != 0))
      st = status_make(INFERD_NOT_FOUND, "the content of file '%s' is gone", p->id);
    if (status_is_ok(&st) && sb.st_size > 0 && evbuffer_add_file(c->body, fd, 0, sb.st_size) == 0) fd = -1; /* taken */
    if (fd >= 0) close(fd);
  }
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  c->status = 200;
  c->content_type = "application/jsonl";
  http_call_reply(c);
}

static const char *openai_status(job_state s) {
  switch (s) {
    case JOB_QUEUED: case JOB_PROCESSING: return "in_progress";
    case JOB_COMPLETED: return "completed";
    case JOB_FAILED: return "failed";
    case JOB_CANCELLED: return "cancelled";
    case JOB_UPLOADING: return "validating";
  }
  return "failed";
}

static json_t *batch_object(http_call *c, const job_info *ji) {
  (void)c;
  json_t *meta = json_loads(ji->meta[0] ? ji->meta : "{}", 0, NULL);
  if (meta == NULL) meta = json_object();
  const char *hex = strncmp(ji->id, "batch_", 6) == 0 ? ji->id + 6 : ji->id;
  char out[JOB_ID_MAX + 8], err[JOB_ID_MAX + 8];
  snprintf(out, sizeof out, "file-out-%s", hex);
  snprintf(err, sizeof err, "file-err-%s", hex);
  bool over = !job_state_active(ji->state);
  json_t *o = json_pack("{ss ss sO sO ss ss sI}", "id", ji->id, "object", "batch", "endpoint",
                        json_object_get(meta, "endpoint") ? json_object_get(meta, "endpoint") : json_null(),
                        "input_file_id", json_object_get(meta, "input_file_id") ? json_object_get(meta, "input_file_id") : json_null(),
                        "completion_window", "24h", "status", openai_status(ji->state), "created_at",
                        (json_int_t)(ji->created_ms / 1000));
  json_object_set_new(o, "errors", ji->error[0] ? json_pack("{ss s[{ss ss}]}", "object", "list", "data", "code", "batch_failed",
                                                            "message", ji->error)
                                                : json_null());
  json_object_set_new(o, "output_file_id", over && ji->completed > ji->failed ? json_string(out) : json_null());
  json_object_set_new(o, "error_file_id", over && ji->failed > 0 ? json_string(err) : json_null());
  json_object_set_new(o, "in_progress_at", ji->started_ms ? json_integer(ji->started_ms / 1000) : json_null());
  json_object_set_new(o, "completed_at", ji->state == JOB_COMPLETED ? json_integer(ji->finished_ms / 1000) : json_null());
  json_object_set_new(o, "failed_at", ji->state == JOB_FAILED ? json_integer(ji->finished_ms / 1000) : json_null());
  json_object_set_new(o, "cancelled_at", ji->state == JOB_CANCELLED ? json_integer(ji->finished_ms / 1000) : json_null());
  json_object_set_new(o, "expires_at", json_null());
  json_object_set_new(o, "request_counts", json_pack("{sI sI sI}", "total", (json_int_t)ji->total, "completed",
                                                     (json_int_t)(ji->completed - ji->failed), "failed", (json_int_t)ji->failed));
  json_t *md = json_object_get(meta, "metadata");
  json_object_set(o, "metadata", md ? md : json_null());
  json_decref(meta);
  return o;
}

/* The model an OpenAI line's url names: /v1/models/{model}/predict (or .../versions/{v}/predict). */
static bool predict_url(const char *url, char *model, size_t mlen, char *version, size_t vlen) {
  const char *pre = "/v1/models/";
  if (strncmp(url, pre, strlen(pre)) != 0) return false;
  const char *m = url + strlen(pre), *slash = strchr(m, '/');
  if (slash == NULL || slash == m || (size_t)(slash - m) >= mlen) return false;
  snprintf(model, mlen, "%.*s", (int)(slash - m), m);
  version[0] = '\0';
  if (strcmp(slash, "/predict") == 0) return true;
  if (strncmp(slash, "/versions/", 10) != 0) return false;
  const char *v = slash + 10, *vs = strchr(v, '/');
  if (vs == NULL || vs == v || strcmp(vs, "/predict") != 0 || (size_t)(vs - v) >= vlen) return false;
  snprintf(version, vlen, "%.*s", (int)(vs - v), v);
  return true;
}

typedef struct line_reader {
  upload *u;
  http_call *c;
  const char *endpoint;
  int64_t line;
  job_record recs[UPLOAD_BATCH];
  char *texts[UPLOAD_BATCH];
  char *tags[UPLOAD_BATCH];
  int n;
} line_reader;

static inferd_status lines_flush(line_reader *lr) {
  if (lr->n == 0) return status_ok();
  upload *u = lr->u;
  inferd_status st = u->store->ops->append(u->store, u->info.id, u->next, lr->recs, (size_t)lr->n);
  u->next += lr->n;
  for (int i = 0; i < lr->n; i++) {
    free(lr->texts[i]);
    free(lr->tags[i]);
  }
  lr->n = 0;
  return st;
}

/* One input line into a record with its custom_id. */
static inferd_status take_line(line_reader *lr, const char *text, size_t len) {
  lr->line++;
  while (len && isspace((unsigned char)text[len - 1])) len--;
  if (len == 0) return status_ok();
  json_error_t e;
  json_t *l = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
  inferd_status st = status_ok();
  const json_t *cid = json_object_get(l, "custom_id"), *method = json_object_get(l, "method"),
               *url = json_object_get(l, "url"), *body = json_object_get(l, "body");
  const json_t *inputs = json_object_get(body, "inputs");
  if (l == NULL) st = status_make(INFERD_INVALID_ARGUMENT, "input file line %lld is not valid JSON: %s", (long long)lr->line, e.text);
  else if (!json_is_string(cid)) st = status_make(INFERD_INVALID_ARGUMENT, "input file line %lld: custom_id must be a string", (long long)lr->line);
  else if (method && (!json_is_string(method) || strcmp(json_string_value(method), "POST") != 0))
    st = status_make(INFERD_INVALID_ARGUMENT, "input file line %lld: method must be \"POST\"", (long long)lr->line);
  else if (!json_is_string(url) || strcmp(json_string_value(url), lr->endpoint) != 0)
    st = status_make(INFERD_INVALID_ARGUMENT, "input file line %lld: url must be the batch's endpoint '%.100s'", (long long)lr->line, lr->endpoint);
  else if (json_is_array(inputs) && json_array_size(inputs) == 1) inputs = json_array_get(inputs, 0);
  if (status_is_ok(&st) && !json_is_object(inputs))
    st = status_make(INFERD_INVALID_ARGUMENT, "input file line %lld: body.inputs must be one record (an object of feature values)",
                     (long long)lr->line);
  if (status_is_ok(&st) && lr->u->next + lr->n >= lr->u->room)
    st = status_make(INFERD_TOO_LARGE, "the input file has more than %lld requests (--max-job-records, per-principal limit)", (long long)lr->u->room);
  if (status_is_ok(&st)) {
    char *t = json_dumps(inputs, JSON_COMPACT | JSON_ENSURE_ASCII);
    char *g = strdup(json_string_value(cid));
    if (t == NULL || g == NULL) {
      free(t);
      free(g);
      st = status_make(INFERD_INTERNAL, "out of memory");
    } else {
      lr->texts[lr->n] = t;
      lr->tags[lr->n] = g;
      lr->recs[lr->n] = (job_record){.body = t, .body_len = strlen(t), .tag = g};
      if (++lr->n == UPLOAD_BATCH) st = lines_flush(lr);
    }
  }
  json_decref(l);
  return st;
}

/* A batch being created: the input file is read into the store on the jobs' intake thread
 * (jobs_offload), not on the HTTP loop, so a file of millions of lines holds up no other
 * connection; the task answers the call itself. */
typedef struct batch_intake {
  http_call *c;
  upload *u;
  char path[4200];
  char file_id[128];
  char endpoint[512];
} batch_intake;

/* On the intake thread: the file's lines into a new job, then the answer. */
static void batch_intake_run(void *arg) {
  batch_intake *b = arg;
  upload *u = b->u;
  job_info *ji = &u->info;
  http_call *c = b->c;
  /* queued before a shutdown: answer now, while the loops still take answers */
  inferd_status st = jobs_stopping(u->jobs) ? status_make(INFERD_UNAVAILABLE, "the server is shutting down; send the batch again")
                                            : status_ok();
  FILE *in = status_is_ok(&st) ? fopen(b->path, "r") : NULL;
  if (status_is_ok(&st) && in == NULL) st = status_make(INFERD_NOT_FOUND, "the content of file '%s' is gone", b->file_id);
  if (status_is_ok(&st)) st = u->store->ops->create(u->store, ji);
  if (status_is_ok(&st)) u->created = true;
  line_reader *lr = status_is_ok(&st) ? calloc(1, sizeof *lr) : NULL;
  if (status_is_ok(&st) && lr == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
  if (lr) {
    lr->u = u;
    lr->c = c;
    lr->endpoint = b->endpoint;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (status_is_ok(&st) && (n = getline(&line, &cap, in)) >= 0) {
      st = take_line(lr, line, (size_t)n);
      if (status_is_ok(&st) && lr->line % UPLOAD_BATCH == 0 && jobs_stopping(u->jobs))
        st = status_make(INFERD_UNAVAILABLE, "the server is shutting down; send the batch again");
    }
    free(line);
    if (status_is_ok(&st)) st = lines_flush(lr);
    for (int i = 0; i < lr->n; i++) {
      free(lr->texts[i]);
      free(lr->tags[i]);
    }
    free(lr);
  }
  if (in) fclose(in);
  if (status_is_ok(&st) && u->next == 0) st = status_make(INFERD_INVALID_ARGUMENT, "the input file has no requests");
  bool taken = false;
  if (status_is_ok(&st)) {
    ji->total = u->next;
    st = u->store->ops->commit_upload(u->store, ji, &taken);
  }
  if (status_is_ok(&st)) {
    u->committed = true;
    ji->state = JOB_QUEUED;
    jobs_wake(u->jobs);
    http_call_set_json(c, 200, batch_object(c, ji));
  } else {
    http_call_set_error(c, &st);
  }
  if (u->created && !u->committed) u->store->ops->discard(u->store, ji->id);
  free(u);
  free(b);
  http_call_reply_async(c);
}

static void batches_create(http_call *c) {
  size_t len;
  const char *body = http_call_body(c, &len);
  json_error_t e;
  json_t *req = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &e) : NULL;
  inferd_status st = status_ok();
  const char *file_id = json_string_value(json_object_get(req, "input_file_id"));
  const char *endpoint = json_string_value(json_object_get(req, "endpoint"));
  const json_t *window = json_object_get(req, "completion_window"), *metadata = json_object_get(req, "metadata");
  upload *u = calloc(1, sizeof *u);
  batch_intake *b = calloc(1, sizeof *b);
  char model[256], version[32];
  if (u == NULL || b == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
  else if (!json_is_object(req)) st = status_make(INFERD_INVALID_ARGUMENT, "send a JSON object {\"input_file_id\", \"endpoint\", \"completion_window\"}");
  else if (file_id == NULL) st = status_make(INFERD_INVALID_ARGUMENT, "$.input_file_id must be a file id (POST /v1/files)");
  else if (endpoint == NULL || !predict_url(endpoint, model, sizeof model, version, sizeof version))
    st = status_make(INFERD_INVALID_ARGUMENT, "$.endpoint must be /v1/models/{model}/predict (or .../versions/{version}/predict)");
  else if (window && (!json_is_string(window) || strcmp(json_string_value(window), "24h") != 0))
    st = status_make(INFERD_INVALID_ARGUMENT, "$.completion_window must be \"24h\"");
  else if (metadata && !json_is_object(metadata) && !json_is_null(metadata))
    st = status_make(INFERD_INVALID_ARGUMENT, "$.metadata must be an object");
  json_t *fmeta = NULL;
  if (status_is_ok(&st)) st = own_file(c, file_id, &fmeta, b->path, sizeof b->path);
  json_decref(fmeta);
  if (status_is_ok(&st)) st = check_model(c, model);
  job_info *ji = u ? &u->info : NULL;
  int64_t room = 0;
  if (status_is_ok(&st)) {
    jobs_owner_of(c->principal, ji->owner, ji->scopes);
    st = check_owner_limits(c, ji->owner, &room);
  }
  if (status_is_ok(&st)) {
    const jobs_options *o = jobs_get_options(jobs_of(c));
    u->jobs = jobs_of(c);
    u->store = jobs_store(u->jobs);
    u->room = room < o->max_job_records ? room : o->max_job_records;
    jobs_new_id("batch_", ji->id, sizeof ji->id);
    ji->kind = JOB_KIND_OPENAI;
    ji->created_ms = wall_ms();
    ji->low_priority = true; /* OpenAI's batches are the offline kind */
    snprintf(ji->model, sizeof ji->model, "%s", model);
    snprintf(ji->version, sizeof ji->version, "%s", version);
    snprintf(b->file_id, sizeof b->file_id, "%s", file_id);
    snprintf(b->endpoint, sizeof b->endpoint, "%s", endpoint); /* predict_url bounds it well below */
    json_t *m = json_pack("{ss ss sO}", "endpoint", endpoint, "input_file_id", file_id, "metadata", metadata ? metadata : json_null());
    char *ms = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (ms && strlen(ms) < sizeof ji->meta) snprintf(ji->meta, sizeof ji->meta, "%s", ms);
    else st = status_make(INFERD_INVALID_ARGUMENT, "$.metadata is larger than the 1 KiB kept");
    free(ms);
  }
  json_decref(req);
  if (status_is_ok(&st)) {
    b->c = c;
    b->u = u;
    st = jobs_offload(u->jobs, batch_intake_run, b);
    if (status_is_ok(&st)) return; /* the intake thread answers */
  }
  http_call_reply_error(c, &st);
  free(u);
  free(b);
}

void jobs_api_batches(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  inferd_status st = jobs_on(c);
  if (!status_is_ok(&st)) {
    http_call_reply_error(c, &st);
    return;
  }
  if (strcmp(c->method, "POST") == 0) batches_create(c);
  else list_jobs(c, JOB_KIND_OPENAI, batch_object, true);
}

void jobs_api_batch_get(void *call, const route_params *p) {
  http_call *c = call;
  job_info *ji = malloc(sizeof *ji);
  inferd_status st = ji ? own_job(c, p->id, ji) : status_make(INFERD_INTERNAL, "out of memory");
  if (status_is_ok(&st)) http_call_reply_json(c, 200, batch_object(c, ji));
  else http_call_reply_error(c, &st);
  free(ji);
}

void jobs_api_batch_cancel(void *call, const route_params *p) {
  http_call *c = call;
  job_info *ji = malloc(sizeof *ji);
  inferd_status st = ji ? own_job(c, p->id, ji) : status_make(INFERD_INTERNAL, "out of memory");
  if (status_is_ok(&st)) st = jobs_cancel(jobs_of(c), ji->id, wall_ms());
  if (status_is_ok(&st)) st = jobs_store(jobs_of(c))->ops->get(jobs_store(jobs_of(c)), p->id, ji);
  if (status_is_ok(&st)) http_call_reply_json(c, 200, batch_object(c, ji));
  else http_call_reply_error(c, &st);
  free(ji);
}
