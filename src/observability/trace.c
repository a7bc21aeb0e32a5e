/* observability/trace: the tracer. Its route handler (frontend thread) decides a request's trace
 * (kept from the caller's traceparent or new) and sampling; its trace-stage handler (worker)
 * answers Server-Timing and copies a sampled request's record into a bounded ring; one export
 * thread turns the ring into OTLP/HTTP posts with libcurl. A request thread never waits on the
 * network: when the ring is full the record is dropped and counted. */
#include "observability/trace.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/model.h"
#include "core/serve.h"
#include "observability/trace_context.h"
#include "observability/trace_otlp.h"
#include "observability/trace_record.h"
#include "util/log.h"
#include "util/monotime.h"

/* A sampled request's data from route to completion (infer_request.trace): one allocation with
 * no pointers inside, so the core frees it with free() whatever becomes of the request. */
typedef struct trace_req {
  uint8_t trace_id[16], span_id[8], parent_id[8];
  bool has_parent;
  uint8_t flags;
  int64_t start_ns; /* arrival, monotonic */
  char request_id[130];
  char protocol[8];
  char tracestate[]; /* "" when none */
} trace_req;

struct tracer {
  trace_options o;
  char url[2048];
  char service_name[256];
  uint64_t salt; /* the batch spans' ids (trace_batch_ids) */

  pthread_mutex_t mu;
  pthread_cond_t cv;
  trace_record *ring; /* queue_size slots, allocated once */
  size_t head, count; /* records [head, head + count) wait; the exporter owns those it is sending */
  bool stopping;
  pthread_t thread;
  bool started;

  atomic_uint_fast64_t requests_sampled, spans_exported, dropped_queue, dropped_export, exports_ok, exports_failed;
  int64_t last_warn_ns; /* export thread only */
};

static uint64_t random_u64(void) {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != sizeof v) v = (uint64_t)monotime_ns() ^ (uint64_t)(uintptr_t)&v;
  return v;
}

/* Ids are made on frontend and worker threads alike: one generator per thread, seeded from
 * getrandom on first use, so making an id takes no lock and no system call. */
static _Thread_local trace_rng thread_rng;
static _Thread_local bool thread_rng_seeded;

static trace_rng *rng(void) {
  if (!thread_rng_seeded) {
    trace_rng_seed(&thread_rng, random_u64());
    thread_rng_seeded = true;
  }
  return &thread_rng;
}

static void copy_str(char *dst, size_t cap, const char *src) {
  size_t n = src ? strnlen(src, cap - 1) : 0;
  if (n) memcpy(dst, src, n);
  dst[n] = '\0';
}

/* route stage: the request's trace context, its reply traceparent, and (sampled) its data. */
static inferd_status on_route(void *ctx, const serve_request *sr, infer_request *req) {
  tracer *t = ctx;
  trace_context parent;
  bool has_parent = trace_parent_parse(serve_meta(sr, "traceparent"), &parent);
  uint8_t trace_id[16], span_id[8];
  if (has_parent)
    memcpy(trace_id, parent.trace_id, 16);
  else
    trace_new_trace_id(rng(), trace_id);
  trace_new_span_id(rng(), span_id);
  bool sampled = trace_should_sample(has_parent ? &parent : NULL, trace_id, t->o.sample_ratio);
  uint8_t flags = sampled ? TRACE_FLAG_SAMPLED : 0;
  char tp[TRACEPARENT_LEN + 1];
  trace_parent_format(trace_id, span_id, flags, tp);
  serve_headers_add(sr->reply_headers, "traceparent", tp);
  if (sr->trace_id) trace_hex(trace_id, 16, sr->trace_id);
  if (!sampled || req->trace) return status_ok();

  char state[TRACESTATE_MAX + 1] = "";
  /* tracestate goes with a valid traceparent only; one that does not parse is dropped */
  if (!has_parent || !trace_state_parse(serve_meta(sr, "tracestate"), state)) state[0] = '\0';
  size_t sl = strlen(state);
  trace_req *tr = malloc(sizeof *tr + sl + 1);
  if (tr == NULL) return status_ok(); /* not traced; the request goes on */
  memcpy(tr->trace_id, trace_id, 16);
  memcpy(tr->span_id, span_id, 8);
  if (has_parent) memcpy(tr->parent_id, parent.span_id, 8);
  tr->has_parent = has_parent;
  tr->flags = flags;
  tr->start_ns = sr->start_ns;
  copy_str(tr->request_id, sizeof tr->request_id, sr->request_id);
  copy_str(tr->protocol, sizeof tr->protocol, serve_protocol_name(sr->protocol));
  memcpy(tr->tracestate, state, sl + 1);
  req->trace = tr;
  return status_ok();
}

static int64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int record_spans(const trace_record *r) {
  return r->batch_seq == 0 ? 2 : r->batch_reporter ? 5 : 4;
}

static void fill_record(trace_record *r, const trace_req *tr, const infer_request *req) {
  /* span times are on the Unix clock; the request's stamps are monotonic: one offset for all */
  int64_t mono = monotime_ns(), off = realtime_ns() - mono;
  memcpy(r->trace_id, tr->trace_id, 16);
  memcpy(r->span_id, tr->span_id, 8);
  memcpy(r->parent_id, tr->parent_id, 8);
  r->has_parent = tr->has_parent;
  r->flags = tr->flags;
  trace_rng *g = rng();
  trace_new_span_id(g, r->queue_id);
  trace_new_span_id(g, r->batch_id);
  trace_new_span_id(g, r->compute_id);
  copy_str(r->tracestate, sizeof r->tracestate, tr->tracestate);
  copy_str(r->request_id, sizeof r->request_id, tr->request_id);
  copy_str(r->protocol, sizeof r->protocol, tr->protocol);
  copy_str(r->model, sizeof r->model, req->mv->model->name);
  copy_str(r->version, sizeof r->version, req->mv->version_str);
  copy_str(r->arm, sizeof r->arm, req->arm);
  r->code = (int)req->status.code;
  r->wire_status = strcmp(tr->protocol, "grpc") == 0 ? status_grpc_code(req->status.code)
                                                    : status_http_code(req->status.code);
  copy_str(r->status_msg, sizeof r->status_msg, req->status.code == INFERD_OK ? "" : req->status.msg);
  r->start = tr->start_ns + off;
  r->enqueue = req->enqueue_ns + off;
  r->batch_seq = req->batch_id;
  r->run_start = (req->batch_id ? req->batch_start_ns : req->enqueue_ns + req->queue_ns) + off;
  r->input_ns = req->compute_input_ns;
  r->infer_ns = req->compute_infer_ns;
  r->output_ns = req->compute_output_ns;
  r->end = mono + off;
  r->batch_rows = req->batch_size;
  r->batch_requests = req->batch_requests;
  r->batch_reporter = req->batch_reporter;
}

/* trace stage (worker): Server-Timing for every traced request, the record for a sampled one. */
static inferd_status on_complete(void *ctx, const serve_request *sr, infer_request *req) {
  (void)sr;
  tracer *t = ctx;
  if (req->reply_headers) {
    char timing[96];
    trace_server_timing(req->queue_ns, req->compute_input_ns + req->compute_infer_ns + req->compute_output_ns, timing,
                        sizeof timing);
    serve_headers_add(req->reply_headers, "Server-Timing", timing);
  }
  const trace_req *tr = req->trace;
  if (tr == NULL) return status_ok();
  atomic_fetch_add(&t->requests_sampled, 1);
  pthread_mutex_lock(&t->mu);
  if (t->count == (size_t)t->o.queue_size) {
    pthread_mutex_unlock(&t->mu);
    atomic_fetch_add(&t->dropped_queue, (uint64_t)(req->batch_id == 0 ? 2 : req->batch_reporter ? 5 : 4)); /* record_spans' */
    return status_ok();
  }
  trace_record *r = &t->ring[(t->head + t->count) % (size_t)t->o.queue_size];
  fill_record(r, tr, req);
  t->count++;
  /* wake the exporter once a full batch waits (each record is up to 5 spans) */
  if (t->count * TRACE_RECORD_SPANS >= (size_t)t->o.batch_size) pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  return status_ok();
}

static size_t discard(void *p, size_t size, size_t n, void *u) {
  (void)p;
  (void)u;
  return size * n;
}

/* One POST; true on a 2xx. *err says why not. */
static bool post(tracer *t, CURL *h, struct curl_slist *hdrs, const otlp_buf *body, char *err, size_t errcap) {
  curl_easy_setopt(h, CURLOPT_URL, t->url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)body->p);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)t->o.timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)t->o.timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* a thread: no SIGALRM for timeouts */
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    snprintf(err, errcap, "%s", curl_easy_strerror(rc));
    return false;
  }
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  if (code < 200 || code > 299) {
    snprintf(err, errcap, "the collector answered HTTP %ld", code);
    return false;
  }
  return true;
}

/* Sends the records [head, head + n) of the ring (the exporter's until it advances head). */
static bool export_records(tracer *t, CURL *h, struct curl_slist *hdrs, size_t head, size_t n, otlp_span *spans,
                           otlp_buf *body) {
  size_t ns = 0;
  for (size_t i = 0; i < n; i++) ns += trace_record_spans(&t->ring[(head + i) % (size_t)t->o.queue_size], t->salt, spans + ns);
  otlp_resource res = {.service_name = t->service_name, .service_version = t->o.service_version,
                       .scope_name = "inferd", .scope_version = t->o.service_version};
  bool encoded = t->o.otlp_json ? otlp_encode_json(&res, spans, ns, body) : otlp_encode_proto(&res, spans, ns, body);
  char err[256] = "out of memory";
  if (encoded && post(t, h, hdrs, body, err, sizeof err)) {
    atomic_fetch_add(&t->exports_ok, 1);
    atomic_fetch_add(&t->spans_exported, ns);
    return true;
  }
  atomic_fetch_add(&t->exports_failed, 1);
  atomic_fetch_add(&t->dropped_export, ns);
  /* a collector that is down fails every export: say so at once, then at most once a minute */
  int64_t now = monotime_ns();
  if (t->last_warn_ns == 0 || now - t->last_warn_ns > 60 * INT64_C(1000000000)) {
    t->last_warn_ns = now;
    log_msg(LOG_WARN, NULL,
            "tracing: exporting %zu spans to %s failed: %s; spans dropped so far: %llu (export failed), %llu (queue full)",
            ns, t->url, err, (unsigned long long)atomic_load(&t->dropped_export),
            (unsigned long long)atomic_load(&t->dropped_queue));
  }
  return false;
}

static void *export_main(void *arg) {
  tracer *t = arg;
  CURL *h = curl_easy_init();
  struct curl_slist *hdrs = curl_slist_append(NULL, t->o.otlp_json ? "Content-Type: application/json"
                                                                   : "Content-Type: application/x-protobuf");
  hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
  size_t per_batch = (size_t)t->o.batch_size / TRACE_RECORD_SPANS;
  if (per_batch == 0) per_batch = 1;
  otlp_span *spans = malloc(per_batch * TRACE_RECORD_SPANS * sizeof *spans);
  otlp_buf body = {0};
  pthread_mutex_lock(&t->mu);
  for (;;) {
    if (!t->stopping && t->count < per_batch) {
      struct timespec ts;
      int64_t due = monotime_ns() + (int64_t)t->o.export_interval_ms * 1000000;
      ts.tv_sec = due / 1000000000;
      ts.tv_nsec = due % 1000000000;
      /* a full batch or the interval, whichever comes first */
      while (!t->stopping && t->count < per_batch && pthread_cond_timedwait(&t->cv, &t->mu, &ts) == 0) {
      }
    }
    bool stopping = t->stopping;
    if (t->count == 0) {
      if (stopping) break;
      continue;
    }
    size_t head = t->head, n = t->count < per_batch ? t->count : per_batch;
    pthread_mutex_unlock(&t->mu);
    bool sent = false;
    if (h && hdrs && spans) {
      sent = export_records(t, h, hdrs, head, n, spans, &body);
    } else {
      size_t ns = 0;
      for (size_t i = 0; i < n; i++) ns += (size_t)record_spans(&t->ring[(head + i) % (size_t)t->o.queue_size]);
      atomic_fetch_add(&t->dropped_export, ns);
    }
    pthread_mutex_lock(&t->mu);
    t->head = (t->head + n) % (size_t)t->o.queue_size;
    t->count -= n;
    if (stopping && !sent && t->count) {
      /* shutting down with the collector failing: what is left is dropped, not retried */
      size_t ns = 0;
      for (size_t i = 0; i < t->count; i++) ns += (size_t)record_spans(&t->ring[(t->head + i) % (size_t)t->o.queue_size]);
      atomic_fetch_add(&t->dropped_export, ns);
      t->count = 0;
    }
  }
  pthread_mutex_unlock(&t->mu);
  otlp_buf_free(&body);
  free(spans);
  curl_slist_free_all(hdrs);
  if (h) curl_easy_cleanup(h);
  return NULL;
}

inferd_status trace_export_url(const char *endpoint, char *out, size_t cap) {
  if (endpoint == NULL || (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0))
    return status_make(INFERD_INVALID_ARGUMENT, "--otlp-endpoint must be an http:// or https:// URL, got '%s'",
                       endpoint ? endpoint : "");
  const char *host = strstr(endpoint, "://") + 3;
  const char *path = strchr(host, '/');
  if (*host == '\0' || host[0] == '/')
    return status_make(INFERD_INVALID_ARGUMENT, "--otlp-endpoint '%s' has no host", endpoint);
  int n;
  if (path == NULL || strcmp(path, "/") == 0)
    n = snprintf(out, cap, "%.*s/v1/traces", (int)(path ? (size_t)(path - endpoint) : strlen(endpoint)), endpoint);
  else
    n = snprintf(out, cap, "%s", endpoint);
  if (n < 0 || (size_t)n >= cap) return status_make(INFERD_INVALID_ARGUMENT, "--otlp-endpoint is too long");
  return status_ok();
}

inferd_status trace_create(const trace_options *o, struct serve *s, tracer **out) {
  tracer *t = calloc(1, sizeof *t);
  if (t == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  t->o = *o;
  inferd_status st = trace_export_url(o->otlp_endpoint, t->url, sizeof t->url);
  if (!status_is_ok(&st)) {
    free(t);
    return st;
  }
  copy_str(t->service_name, sizeof t->service_name, o->service_name && *o->service_name ? o->service_name : "inferd");
  t->o.service_name = t->service_name;
  if (t->o.queue_size < 1) t->o.queue_size = 2048;
  if (t->o.batch_size < 1) t->o.batch_size = 512;
  if (t->o.export_interval_ms < 1) t->o.export_interval_ms = 1000;
  if (t->o.timeout_ms < 1) t->o.timeout_ms = 2000;
  t->salt = random_u64();
  t->ring = malloc((size_t)t->o.queue_size * sizeof *t->ring);
  if (t->ring == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    free(t->ring);
    free(t);
    return status_make(INFERD_INTERNAL, "tracing: cannot allocate the export queue or start libcurl");
  }
  pthread_mutex_init(&t->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&t->cv, &ca);
  pthread_condattr_destroy(&ca);
  st = serve_register(s, SERVE_STAGE_ROUTE, on_route, t);
  if (status_is_ok(&st)) st = serve_register(s, SERVE_STAGE_TRACE, on_complete, t);
  if (status_is_ok(&st) && pthread_create(&t->thread, NULL, export_main, t) != 0)
    st = status_make(INFERD_INTERNAL, "tracing: cannot start the export thread");
  if (!status_is_ok(&st)) {
    trace_destroy(t); /* the handlers stay registered only on a failed start, which ends the server */
    return st;
  }
  t->started = true;
  pthread_setname_np(t->thread, "otlp-export");
  *out = t;
  return status_ok();
}

void trace_stats(const tracer *t, trace_counters *out) {
  tracer *m = (tracer *)t; /* atomics are read, never written */
  *out = (trace_counters){
      .requests_sampled = atomic_load(&m->requests_sampled),
      .spans_exported = atomic_load(&m->spans_exported),
      .spans_dropped_queue_full = atomic_load(&m->dropped_queue),
      .spans_dropped_export_failed = atomic_load(&m->dropped_export),
      .exports_ok = atomic_load(&m->exports_ok),
      .exports_failed = atomic_load(&m->exports_failed),
  };
}

void trace_destroy(tracer *t) {
  if (t == NULL) return;
  if (t->started) {
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    trace_counters c;
    trace_stats(t, &c);
    log_msg(LOG_INFO, NULL,
            "tracing: %llu requests sampled, %llu spans exported, %llu dropped (queue full), %llu dropped (export "
            "failed)",
            (unsigned long long)c.requests_sampled, (unsigned long long)c.spans_exported,
            (unsigned long long)c.spans_dropped_queue_full, (unsigned long long)c.spans_dropped_export_failed);
  }
  curl_global_cleanup();
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t->ring);
  free(t);
}
