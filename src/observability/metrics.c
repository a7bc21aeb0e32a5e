/* observability/metrics: the registry and its Prometheus text exposition. Per model version
 * ("series") the request-path counts live in fixed arrays of atomics, found once per request by
 * a lock-free hash lookup and then carried in the frontend's serve_record; the Triton-named
 * counters come from the core's own statistics at scrape time, so they cost the request path
 * nothing more. */
#include "observability/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/app.h"
#include "core/repository.h"
#include "core/stats.h"
#include "util/log.h"
#include "util/monotime.h"

/* ---------------------------------------------------------------------------------------- */
/* the text buffer */

void metrics_text_init(metrics_text *t) { *t = (metrics_text){0}; }
void metrics_text_free(metrics_text *t) {
  free(t->buf);
  *t = (metrics_text){0};
}

void metrics_text_append(metrics_text *t, const char *s, size_t n) {
  if (t->oom) return;
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 16384;
    while (cap < t->len + n + 1) cap *= 2;
    char *nb = realloc(t->buf, cap);
    if (nb == NULL) {
      t->oom = true;
      return;
    }
    t->buf = nb;
    t->cap = cap;
  }
  memcpy(t->buf + t->len, s, n);
  t->len += n;
  t->buf[t->len] = '\0';
}

void metrics_text_puts(metrics_text *t, const char *s) { metrics_text_append(t, s, strlen(s)); }

void metrics_text_printf(metrics_text *t, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    metrics_text_append(t, small, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (big == NULL) {
    t->oom = true;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  metrics_text_append(t, big, (size_t)n);
  free(big);
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static void append_escaped(metrics_text *t, const char *s, bool quote) {
  const char *run = s;
  for (; *s; s++) {
    const char *rep = NULL;
    if (*s == '\\') rep = "\\\\";
    else if (*s == '\n') rep = "\\n";
    else if (quote && *s == '"') rep = "\\\"";
    if (rep) {
      metrics_text_append(t, run, (size_t)(s - run));
      metrics_text_puts(t, rep);
      run = s + 1;
    }
  }
  metrics_text_append(t, run, (size_t)(s - run));
}

void metrics_text_family(metrics_text *t, const char *name, const char *type, const char *help) {
  metrics_text_printf(t, "# HELP %s ", name);
  append_escaped(t, help, false);
  metrics_text_printf(t, "\n# TYPE %s %s\n", name, type);
}

void metrics_text_label_value(metrics_text *t, const char *v) {
  metrics_text_append(t, "\"", 1);
  append_escaped(t, v ? v : "", true);
  metrics_text_append(t, "\"", 1);
}

/* ---------------------------------------------------------------------------------------- */
/* buckets and classes */

/* 10 µs .. 10 s, about three buckets per factor of ten below a second: fine enough that a
 * quantile read from them is within a bucket's width of the true one. */
#define US 1000LL
#define MS 1000000LL
const int64_t metrics_duration_bounds_ns[METRICS_DURATION_BUCKETS] = {
    10 * US,  25 * US,  50 * US,  75 * US,  100 * US, 150 * US, 200 * US, 300 * US,
    500 * US, 750 * US, 1 * MS,   1500 * US, 2 * MS,  3 * MS,   5 * MS,   7500 * US,
    10 * MS,  15 * MS,  20 * MS,  30 * MS,  50 * MS,  75 * MS,  100 * MS, 150 * MS,
    200 * MS, 300 * MS, 500 * MS, 750 * MS, 1000 * MS, 2500 * MS, 5000 * MS, 10000 * MS};

int metrics_duration_bucket(int64_t ns) {
  int lo = 0, hi = METRICS_DURATION_BUCKETS; /* the first bound >= ns; hi: +Inf */
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (metrics_duration_bounds_ns[mid] >= ns) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

enum { CLASS_2XX, CLASS_4XX, CLASS_5XX, CLASS_OTHER, CLASS_COUNT };
static const char *const class_names[CLASS_COUNT] = {"2xx", "4xx", "5xx", "other"};

int metrics_status_class(int http_status) {
  switch (http_status / 100) {
    case 2: return CLASS_2XX;
    case 4: return CLASS_4XX;
    case 5: return CLASS_5XX;
    default: return CLASS_OTHER;
  }
}
const char *metrics_status_class_name(int cls) { return cls >= 0 && cls < CLASS_COUNT ? class_names[cls] : "other"; }

int metrics_grpc_http_status(int grpc_code) {
  switch (grpc_code) {
    case 0: return 200;  /* OK */
    case 1: return 499;  /* CANCELLED: the client's doing */
    case 3: case 11: return 400; /* INVALID_ARGUMENT, OUT_OF_RANGE */
    case 4: return 504;  /* DEADLINE_EXCEEDED */
    case 5: return 404;  /* NOT_FOUND */
    case 6: case 10: return 409; /* ALREADY_EXISTS, ABORTED */
    case 7: return 403;  /* PERMISSION_DENIED */
    case 8: return 429;  /* RESOURCE_EXHAUSTED */
    case 9: return 400;  /* FAILED_PRECONDITION */
    case 12: return 501; /* UNIMPLEMENTED */
    case 14: return 503; /* UNAVAILABLE */
    case 16: return 401; /* UNAUTHENTICATED */
    default: return 500; /* UNKNOWN, INTERNAL, DATA_LOSS */
  }
}

/* Triton's failure reasons (nv_inference_request_failure{reason}). */
enum { REASON_REJECTED, REASON_CANCELED, REASON_BACKEND, REASON_OTHER, REASON_COUNT };
static const char *const reason_names[REASON_COUNT] = {"REJECTED", "CANCELED", "BACKEND", "OTHER"};

static int reason_of_code(inferd_code code) {
  switch (code) {
    case INFERD_RESOURCE_EXHAUSTED: case INFERD_DEADLINE_EXCEEDED: case INFERD_RATE_LIMITED: return REASON_REJECTED;
    case INFERD_INTERNAL: return REASON_BACKEND;
    default: return REASON_OTHER;
  }
}
static int reason_of_http(int status) {
  switch (status) {
    case 429: case 503: case 504: return REASON_REJECTED;
    case 499: return REASON_CANCELED;
    case 500: return REASON_BACKEND;
    default: return REASON_OTHER;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* series: one per model version ever routed to, kept for the registry's life (so a reload never
 * resets a counter); bounded by the table's size */

enum { H_TOTAL, H_QUEUE, H_BATCH, H_COMPUTE, H_SERIALIZE, H_COUNT };
static const char *const stage_label[H_COUNT] = {"total", "queue", "batch", "compute", "serialize"};

typedef struct mhist {
  _Atomic uint64_t bucket[METRICS_DURATION_BUCKETS + 1]; /* per bucket, not cumulative: summed at scrape */
  _Atomic uint64_t sum_ns;
} mhist;

typedef struct mseries {
  char model[256];
  int64_t version;
  char version_str[24];
  mhist h[SERVE_PROTOCOL_COUNT][CLASS_COUNT][H_COUNT];
  _Atomic int64_t pending;
  _Atomic uint64_t failure[REASON_COUNT];
  struct mseries *next; /* the scrape's list; immutable once published */
} mseries;

#define SERIES_SLOTS 4096 /* power of two; at most 3/4 used */
#define SERIES_MAX (SERIES_SLOTS / 4 * 3)

struct metrics {
  app *app;
  pthread_mutex_t mu; /* inserts only */
  _Atomic(mseries *) slots[SERIES_SLOTS];
  _Atomic(mseries *) head;
  int n_series;
  bool full_logged;
  _Atomic uint64_t requests[SERVE_PROTOCOL_COUNT][CLASS_COUNT];
  _Atomic uint64_t bytes_in[SERVE_PROTOCOL_COUNT], bytes_out[SERVE_PROTOCOL_COUNT];
  struct {
    metrics_collector fn;
    void *ctx;
  } collectors[METRICS_MAX_COLLECTORS];
  int n_collectors;
  double start_time; /* unix seconds */
  char le[METRICS_DURATION_BUCKETS + 1][16]; /* the buckets' le texts, made once */
  _Atomic size_t last_page; /* the last page's size: the next one's buffer starts there */
  _Atomic int64_t last_render_ns; /* how long the last page took to render */
};

static uint64_t series_hash(const char *model, int64_t version) {
  uint64_t h = 1469598103934665603ULL;
  for (const unsigned char *p = (const unsigned char *)model; *p; p++) h = (h ^ *p) * 1099511628211ULL;
  h ^= (uint64_t)version * 0x9E3779B97F4A7C15ULL;
  return h ^ (h >> 29);
}

static mseries *series_find(metrics *m, const char *model, int64_t version, uint64_t h) {
  for (size_t i = h & (SERIES_SLOTS - 1);; i = (i + 1) & (SERIES_SLOTS - 1)) {
    mseries *s = atomic_load_explicit(&m->slots[i], memory_order_acquire);
    if (s == NULL) return NULL;
    if (s->version == version && strcmp(s->model, model) == 0) return s;
  }
}

/* The series of (model, version), made on first use; NULL when the table is full. */
static mseries *series_get(metrics *m, const char *model, int64_t version, const char *version_str) {
  uint64_t h = series_hash(model, version);
  mseries *s = series_find(m, model, version, h);
  if (s) return s;
  pthread_mutex_lock(&m->mu);
  s = series_find(m, model, version, h); /* another thread may have made it */
  if (s == NULL && m->n_series < SERIES_MAX && (s = calloc(1, sizeof *s)) != NULL) {
    snprintf(s->model, sizeof s->model, "%s", model);
    s->version = version;
    snprintf(s->version_str, sizeof s->version_str, "%s", version_str);
    s->next = atomic_load_explicit(&m->head, memory_order_relaxed);
    size_t i = h & (SERIES_SLOTS - 1);
    while (atomic_load_explicit(&m->slots[i], memory_order_relaxed)) i = (i + 1) & (SERIES_SLOTS - 1);
    atomic_store_explicit(&m->slots[i], s, memory_order_release);
    atomic_store_explicit(&m->head, s, memory_order_release);
    m->n_series++;
  } else if (s == NULL && !m->full_logged) {
    m->full_logged = true;
    log_msg(LOG_WARN, model, "metrics: %d model versions have series already; later ones are not counted", SERIES_MAX);
  }
  pthread_mutex_unlock(&m->mu);
  return s;
}

static mseries *series_of(metrics *m, const model_version *mv) {
  return series_get(m, mv->model->name, mv->version, mv->version_str);
}

static void hist_observe(mhist *h, int64_t ns) {
  if (ns < 0) ns = 0;
  atomic_fetch_add_explicit(&h->bucket[metrics_duration_bucket(ns)], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)ns, memory_order_relaxed);
}

static int proto_index(int p) { return p >= 0 && p < SERVE_PROTOCOL_COUNT ? p : SERVE_PROTOCOL_OTHER; }

/* ---------------------------------------------------------------------------------------- */
/* the pipeline's handlers */

/* route: the version is known; its series goes into the frontend's record, so the reply
 * finds it without another lookup (and a request that fails later still counts). */
static inferd_status on_route(void *ctx, const serve_request *sr, infer_request *req) {
  if (sr->record && req && req->mv) sr->record->metrics = series_of(ctx, req->mv);
  return status_ok();
}

/* The request's series: the record's when it still names the version that ran (a later route
 * handler may have changed it), else a lookup. */
static mseries *req_series(metrics *m, infer_request *req) {
  mseries *s = req->record ? req->record->metrics : NULL;
  if (s && s->version == req->mv->version && strcmp(s->model, req->mv->model->name) == 0) return s;
  s = series_of(m, req->mv);
  if (req->record) req->record->metrics = s;
  return s;
}

/* fork runs just before the hand-off: from here until its completion the request is pending. */
static inferd_status on_fork(void *ctx, const serve_request *sr, infer_request *req) {
  (void)sr;
  mseries *s = req_series(ctx, req);
  if (s) atomic_fetch_add_explicit(&s->pending, 1, memory_order_relaxed);
  return status_ok();
}

static inferd_status on_stats(void *ctx, const serve_request *sr, infer_request *req) {
  (void)sr;
  mseries *s = req_series(ctx, req);
  if (s == NULL) return status_ok();
  atomic_fetch_sub_explicit(&s->pending, 1, memory_order_relaxed);
  int cls = metrics_status_class(status_http_code(req->status.code));
  mhist *h = s->h[proto_index(req->protocol)][cls];
  /* queue: waiting for an instance; batch: held, an instance free, for the batch to fill */
  hist_observe(&h[H_QUEUE], req->queue_ns - req->batch_wait_ns);
  if (req->batch_size > 0) hist_observe(&h[H_BATCH], req->batch_wait_ns);
  if (status_is_ok(&req->status) || req->batch_size > 0)
    hist_observe(&h[H_COMPUTE], req->compute_input_ns + req->compute_infer_ns + req->compute_output_ns);
  if (!status_is_ok(&req->status)) {
    bool gone = req->cancelled && atomic_load(req->cancelled);
    atomic_fetch_add_explicit(&s->failure[gone ? REASON_CANCELED : reason_of_code(req->status.code)], 1,
                              memory_order_relaxed);
  }
  if (req->record) {
    req->record->observed = true; /* the reply counts the total and the serialize time */
  } else {
    hist_observe(&h[H_TOTAL], monotime_ns() - req->start_ns); /* a stream message: no reply point of its own */
  }
  return status_ok();
}

void metrics_observe_reply(metrics *m, serve_protocol protocol, const serve_record *r, int status, int64_t start_ns,
                           int64_t now_ns, size_t bytes_in, size_t bytes_out) {
  if (m == NULL) return;
  int p = proto_index(protocol), cls = metrics_status_class(status);
  atomic_fetch_add_explicit(&m->requests[p][cls], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->bytes_in[p], bytes_in, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->bytes_out[p], bytes_out, memory_order_relaxed);
  mseries *s = r ? r->metrics : NULL;
  if (s == NULL) return;
  mhist *h = s->h[p][cls];
  hist_observe(&h[H_TOTAL], now_ns - start_ns);
  if (r->observed) {
    hist_observe(&h[H_SERIALIZE], now_ns - r->done_ns);
  } else if (status >= 400) { /* ended before the hand-off: the completion never saw it */
    atomic_fetch_add_explicit(&s->failure[reason_of_http(status)], 1, memory_order_relaxed);
  }
}

/* ---------------------------------------------------------------------------------------- */
/* lifecycle */

/* A duration in seconds as a short decimal ("0.0075", "10"): the le label's text, identical in
 * every scrape and on every replica, so sums by le line up. */
static void seconds_str(int64_t ns, char *out, size_t cap) {
  snprintf(out, cap, "%.6f", (double)ns / 1e9);
  char *dot = strchr(out, '.');
  if (dot == NULL) return;
  char *end = out + strlen(out) - 1;
  while (end > dot && *end == '0') *end-- = '\0';
  if (end == dot) *end = '\0';
}


inferd_status metrics_create(app *a, metrics **out) {
  metrics *m = calloc(1, sizeof *m);
  if (m == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  m->app = a;
  pthread_mutex_init(&m->mu, NULL);
  struct timeval tv;
  gettimeofday(&tv, NULL);
  m->start_time = (double)tv.tv_sec + tv.tv_usec / 1e6;
  for (int b = 0; b < METRICS_DURATION_BUCKETS; b++) seconds_str(metrics_duration_bounds_ns[b], m->le[b], sizeof m->le[b]);
  snprintf(m->le[METRICS_DURATION_BUCKETS], sizeof m->le[0], "+Inf");
  inferd_status st = serve_register(a->serve, SERVE_STAGE_ROUTE, on_route, m);
  if (status_is_ok(&st)) st = serve_register(a->serve, SERVE_STAGE_FORK, on_fork, m);
  if (status_is_ok(&st)) st = serve_register(a->serve, SERVE_STAGE_STATS, on_stats, m);
  if (!status_is_ok(&st)) {
    metrics_destroy(m);
    return st;
  }
  *out = m;
  return status_ok();
}

void metrics_destroy(metrics *m) {
  if (m == NULL) return;
  mseries *s = atomic_load(&m->head);
  while (s) {
    mseries *next = s->next;
    free(s);
    s = next;
  }
  pthread_mutex_destroy(&m->mu);
  free(m);
}

inferd_status metrics_register_collector(metrics *m, metrics_collector fn, void *ctx) {
  if (fn == NULL) return status_make(INFERD_INTERNAL, "metrics_register_collector: no function");
  if (m->n_collectors == METRICS_MAX_COLLECTORS)
    return status_make(INFERD_INTERNAL, "metrics: %d collectors registered already", METRICS_MAX_COLLECTORS);
  m->collectors[m->n_collectors].fn = fn;
  m->collectors[m->n_collectors].ctx = ctx;
  m->n_collectors++;
  return status_ok();
}

/* ---------------------------------------------------------------------------------------- */
/* the exposition */

static void labels_mv(metrics_text *t, const char *model, const char *version) {
  metrics_text_puts(t, "model=");
  metrics_text_label_value(t, model);
  metrics_text_puts(t, ",version=");
  metrics_text_label_value(t, version);
}

static bool hist_empty(const mhist *h) {
  for (int b = 0; b <= METRICS_DURATION_BUCKETS; b++)
    if (atomic_load_explicit(&h->bucket[b], memory_order_relaxed)) return false;
  return true;
}

/* Decimal digits of v at the end of buf[24]; returns where they start (printf is the bulk of a
 * scrape's time otherwise: a page with 100 models has some 20,000 lines). */
static char *u64_digits(uint64_t v, char *end) {
  char *p = end;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return p;
}

/* One histogram's _bucket, _sum and _count lines. +Inf is the count, so the two always agree. */
static void hist_render(metrics *m, metrics_text *t, const char *name, const mseries *s, int proto, int cls,
                        const char *stage, const mhist *h) {
  /* the labels but le, once: {model="..",version="..",protocol="..",status_class=".."[,stage=".."] */
  metrics_text lbl;
  metrics_text_init(&lbl);
  labels_mv(&lbl, s->model, s->version_str);
  metrics_text_puts(&lbl, ",protocol=\"");
  metrics_text_puts(&lbl, serve_protocol_name(proto));
  metrics_text_puts(&lbl, "\",status_class=\"");
  metrics_text_puts(&lbl, class_names[cls]);
  metrics_text_puts(&lbl, "\"");
  if (stage) {
    metrics_text_puts(&lbl, ",stage=\"");
    metrics_text_puts(&lbl, stage);
    metrics_text_puts(&lbl, "\"");
  }
  if (lbl.oom) {
    t->oom = true;
    metrics_text_free(&lbl);
    return;
  }
  /* every bucket line is prefix + le text + count: the prefix once, the lines written in place
   * into room reserved for all of them */
  size_t nl = strlen(name), pre = nl + 8 + lbl.len + 5;
  size_t need = (METRICS_DURATION_BUCKETS + 1) * (pre + 16 + 3 + 21 + 1);
  if (t->oom) {
    metrics_text_free(&lbl);
    return;
  }
  if (t->len + need + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 16384;
    while (cap < t->len + need + 1) cap *= 2;
    char *nb = realloc(t->buf, cap);
    if (nb == NULL) {
      t->oom = true;
      metrics_text_free(&lbl);
      return;
    }
    t->buf = nb;
    t->cap = cap;
  }
  char *w = t->buf + t->len, *line0 = w;
  memcpy(w, name, nl);
  memcpy(w + nl, "_bucket{", 8);
  memcpy(w + nl + 8, lbl.buf, lbl.len);
  memcpy(w + nl + 8 + lbl.len, ",le=\"", 5);
  uint64_t cum = 0;
  char num[24];
  for (int b = 0; b <= METRICS_DURATION_BUCKETS; b++) {
    cum += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
    if (w != line0) memcpy(w, line0, pre);
    w += pre;
    size_t ll = strlen(m->le[b]);
    memcpy(w, m->le[b], ll);
    w += ll;
    memcpy(w, "\"} ", 3);
    w += 3;
    char *d = u64_digits(cum, num + sizeof num);
    size_t dl = (size_t)(num + sizeof num - d);
    memcpy(w, d, dl);
    w += dl;
    *w++ = '\n';
  }
  t->len = (size_t)(w - t->buf);
  t->buf[t->len] = '\0';
  metrics_text_printf(t, "%s_sum{%s} %.9f\n", name, lbl.buf,
                      (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
  metrics_text_printf(t, "%s_count{%s} %llu\n", name, lbl.buf, (unsigned long long)cum);
  metrics_text_free(&lbl);
}

static void render_series(metrics *m, metrics_text *t) {
  mseries *head = atomic_load_explicit(&m->head, memory_order_acquire);
  metrics_text_family(t, "inferd_request_duration_seconds", "histogram",
                      "Inference request duration from arrival to reply, by model version, protocol and status class.");
  for (mseries *s = head; s; s = s->next)
    for (int p = 0; p < SERVE_PROTOCOL_COUNT; p++)
      for (int c = 0; c < CLASS_COUNT; c++)
        if (!hist_empty(&s->h[p][c][H_TOTAL]))
          hist_render(m, t, "inferd_request_duration_seconds", s, p, c, NULL, &s->h[p][c][H_TOTAL]);
  metrics_text_family(t, "inferd_request_stage_duration_seconds", "histogram",
                      "Time an inference request spent in one stage: queue (waiting in the scheduler, batching "
                      "delay included), compute (its batch's input gathering, run and output hand-out), serialize "
                      "(encoding the reply and handing it to the connection).");
  for (mseries *s = head; s; s = s->next)
    for (int p = 0; p < SERVE_PROTOCOL_COUNT; p++)
      for (int c = 0; c < CLASS_COUNT; c++)
        for (int st = H_QUEUE; st < H_COUNT; st++)
          if (!hist_empty(&s->h[p][c][st]))
            hist_render(m, t, "inferd_request_stage_duration_seconds", s, p, c, stage_label[st], &s->h[p][c][st]);
}

static void render_traffic(metrics *m, metrics_text *t) {
  metrics_text_family(t, "inferd_requests_total", "counter",
                      "Requests answered (every route, inference or not), by protocol and status class.");
  for (int p = 0; p < SERVE_PROTOCOL_COUNT; p++)
    for (int c = 0; c < CLASS_COUNT; c++) {
      uint64_t v = atomic_load_explicit(&m->requests[p][c], memory_order_relaxed);
      if (v)
        metrics_text_printf(t, "inferd_requests_total{protocol=\"%s\",status_class=\"%s\"} %llu\n",
                            serve_protocol_name(p), class_names[c], (unsigned long long)v);
    }
  metrics_text_family(t, "inferd_received_bytes_total", "counter", "Request body bytes received, by protocol.");
  for (int p = SERVE_PROTOCOL_HTTP; p < SERVE_PROTOCOL_COUNT; p++)
    metrics_text_printf(t, "inferd_received_bytes_total{protocol=\"%s\"} %llu\n", serve_protocol_name(p),
                        (unsigned long long)atomic_load_explicit(&m->bytes_in[p], memory_order_relaxed));
  metrics_text_family(t, "inferd_sent_bytes_total", "counter", "Response body bytes sent, by protocol.");
  for (int p = SERVE_PROTOCOL_HTTP; p < SERVE_PROTOCOL_COUNT; p++)
    metrics_text_printf(t, "inferd_sent_bytes_total{protocol=\"%s\"} %llu\n", serve_protocol_name(p),
                        (unsigned long long)atomic_load_explicit(&m->bytes_out[p], memory_order_relaxed));
}

/* One loaded version's figures, copied under its statistics' lock. */
typedef struct version_view {
  const char *model;
  char version[24];
  model_state state;
  int64_t load_ns;
  model_stats st; /* st.batches owned */
  mseries *series;
} version_view;

static void sample_mv(metrics_text *t, const char *name, const version_view *v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sample_mv(metrics_text *t, const char *name, const version_view *v, const char *fmt, ...) {
  metrics_text_printf(t, "%s{", name);
  labels_mv(t, v->model, v->version);
  metrics_text_puts(t, "} ");
  char val[64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(val, sizeof val, fmt, ap);
  va_end(ap);
  metrics_text_puts(t, val);
  metrics_text_puts(t, "\n");
}

#define LLU(x) ((unsigned long long)(x))

static void render_versions(metrics *m, metrics_text *t) {
  SNAPSHOT_REF repo_snapshot *snap = repo_snapshot_acquire(m->app->repo);
  size_t n = 0;
  for (size_t i = 0; i < snap->n_models; i++) n += repo_snapshot_model(snap, i)->n_versions;
  version_view *vs = calloc(n ? n : 1, sizeof *vs);
  if (vs == NULL) {
    t->oom = true;
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < snap->n_models; i++) {
    const repo_model *rm = repo_snapshot_model(snap, i);
    for (size_t j = 0; j < rm->n_versions; j++) {
      model_version *mv = repo_model_version_at(rm, j);
      version_view *v = &vs[k++];
      v->model = rm->name;
      snprintf(v->version, sizeof v->version, "%s", mv->version_str);
      v->state = model_version_state(mv);
      v->load_ns = v->state == MODEL_READY ? mv->load_ns : 0;
      stats_snapshot(&mv->stats, &v->st);
      v->series = series_find(m, rm->name, mv->version, series_hash(rm->name, mv->version));
    }
  }

  /* Triton's names, with its meaning (docs/observability.md) */
  metrics_text_family(t, "nv_inference_request_success", "counter", "Number of successful inference requests, all batch sizes");
  for (size_t i = 0; i < n; i++) sample_mv(t, "nv_inference_request_success", &vs[i], "%llu", LLU(vs[i].st.success.count));
  metrics_text_family(t, "nv_inference_request_failure", "counter", "Number of failed inference requests, all batch sizes");
  for (size_t i = 0; i < n; i++)
    for (int r = 0; r < REASON_COUNT; r++) {
      metrics_text_puts(t, "nv_inference_request_failure{");
      labels_mv(t, vs[i].model, vs[i].version);
      metrics_text_printf(t, ",reason=\"%s\"} %llu\n", reason_names[r],
                          LLU(vs[i].series ? atomic_load_explicit(&vs[i].series->failure[r], memory_order_relaxed) : 0));
    }
  metrics_text_family(t, "nv_inference_count", "counter", "Number of inferences performed (does not include cached requests)");
  for (size_t i = 0; i < n; i++) sample_mv(t, "nv_inference_count", &vs[i], "%llu", LLU(vs[i].st.inference_count));
  metrics_text_family(t, "nv_inference_exec_count", "counter", "Number of model executions performed (does not include cached requests)");
  for (size_t i = 0; i < n; i++) sample_mv(t, "nv_inference_exec_count", &vs[i], "%llu", LLU(vs[i].st.execution_count));
  metrics_text_family(t, "nv_inference_pending_request_count", "gauge", "Instantaneous number of pending requests awaiting execution per-model.");
  for (size_t i = 0; i < n; i++) {
    int64_t p = vs[i].series ? atomic_load_explicit(&vs[i].series->pending, memory_order_relaxed) : 0;
    sample_mv(t, "nv_inference_pending_request_count", &vs[i], "%lld", (long long)(p > 0 ? p : 0));
  }
  static const struct {
    const char *name, *help;
    size_t off;
  } durs[] = {
      {"nv_inference_request_duration_us", "Cumulative inference request duration in microseconds (includes cached requests)", offsetof(model_stats, success)},
      {"nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds (includes cached requests)", offsetof(model_stats, queue)},
      {"nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds (does not include cached requests)", offsetof(model_stats, compute_input)},
      {"nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds (does not include cached requests)", offsetof(model_stats, compute_infer)},
      {"nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds (does not include cached requests)", offsetof(model_stats, compute_output)},
  };
  for (size_t d = 0; d < sizeof durs / sizeof durs[0]; d++) {
    metrics_text_family(t, durs[d].name, "counter", durs[d].help);
    for (size_t i = 0; i < n; i++) {
      const duration_stat *ds = (const duration_stat *)((const char *)&vs[i].st + durs[d].off);
      sample_mv(t, durs[d].name, &vs[i], "%llu", LLU(ds->ns / 1000));
    }
  }

  /* inferd's own, per version */
  metrics_text_family(t, "inferd_model_ready", "gauge", "1 when the model version is READY (serving), else 0.");
  for (size_t i = 0; i < n; i++) sample_mv(t, "inferd_model_ready", &vs[i], "%d", vs[i].state == MODEL_READY);
  metrics_text_family(t, "inferd_model_state", "gauge", "The model version's state: 1 for the current one of LOADING, READY, UNAVAILABLE.");
  static const model_state states[] = {MODEL_LOADING, MODEL_READY, MODEL_UNAVAILABLE};
  for (size_t i = 0; i < n; i++)
    for (size_t s = 0; s < 3; s++) {
      metrics_text_puts(t, "inferd_model_state{");
      labels_mv(t, vs[i].model, vs[i].version);
      metrics_text_printf(t, ",state=\"%s\"} %d\n", model_state_name(states[s]), vs[i].state == states[s]);
    }
  metrics_text_family(t, "inferd_model_load_duration_seconds", "gauge",
                      "How long the model version took to load, warmup included (READY versions).");
  for (size_t i = 0; i < n; i++)
    if (vs[i].state == MODEL_READY) sample_mv(t, "inferd_model_load_duration_seconds", &vs[i], "%.6f", (double)vs[i].load_ns / 1e9);

  /* batch sizes: the core counts executions per batch size already; the histogram is built
   * from those counts here, so the request path pays nothing for it */
  static const int64_t batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  const size_t nbb = sizeof batch_bounds / sizeof batch_bounds[0];
  metrics_text_family(t, "inferd_batch_size", "histogram", "Rows per model execution (the dynamic batcher's batches).");
  for (size_t i = 0; i < n; i++) {
    const model_stats *st = &vs[i].st;
    if (st->n_batches == 0) continue;
    uint64_t total = 0, rows = 0;
    for (size_t b = 0; b < st->n_batches; b++) {
      total += st->batches[b].compute_infer.count;
      rows += st->batches[b].compute_infer.count * (uint64_t)st->batches[b].batch_size;
    }
    for (size_t bb = 0; bb <= nbb; bb++) {
      uint64_t cum = 0;
      for (size_t b = 0; b < st->n_batches; b++)
        if (bb == nbb || st->batches[b].batch_size <= batch_bounds[bb]) cum += st->batches[b].compute_infer.count;
      metrics_text_puts(t, "inferd_batch_size_bucket{");
      labels_mv(t, vs[i].model, vs[i].version);
      if (bb < nbb) metrics_text_printf(t, ",le=\"%lld\"} %llu\n", (long long)batch_bounds[bb], LLU(cum));
      else metrics_text_printf(t, ",le=\"+Inf\"} %llu\n", LLU(total));
    }
    sample_mv(t, "inferd_batch_size_sum", &vs[i], "%llu", LLU(rows));
    sample_mv(t, "inferd_batch_size_count", &vs[i], "%llu", LLU(total));
  }
  for (size_t i = 0; i < n; i++) free(vs[i].st.batches);
  free(vs);
}

/* process_* as the Prometheus client libraries name them. */
static void render_process(metrics *m, metrics_text *t) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    metrics_text_family(t, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    metrics_text_printf(t, "process_cpu_seconds_total %.6f\n",
                        (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                            ru.ru_stime.tv_usec / 1e6);
  }
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    unsigned long long size = 0, rss = 0;
    if (fscanf(f, "%llu %llu", &size, &rss) == 2) {
      long page = sysconf(_SC_PAGESIZE);
      metrics_text_family(t, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
      metrics_text_printf(t, "process_virtual_memory_bytes %llu\n", size * (unsigned long long)page);
      metrics_text_family(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
      metrics_text_printf(t, "process_resident_memory_bytes %llu\n", rss * (unsigned long long)page);
    }
    fclose(f);
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    long fds = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
      if (e->d_name[0] != '.') fds++;
    closedir(d);
    metrics_text_family(t, "process_open_fds", "gauge", "Number of open file descriptors.");
    metrics_text_printf(t, "process_open_fds %ld\n", fds - 1); /* not the one reading the folder */
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    metrics_text_family(t, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    metrics_text_printf(t, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
  }
  metrics_text_family(t, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
  metrics_text_printf(t, "process_start_time_seconds %.3f\n", m->start_time);
}

void metrics_render(metrics *m, metrics_text *t) {
  int64_t start = monotime_ns();
  /* one allocation for the page, most times: the last page's size and some room */
  size_t want = atomic_load_explicit(&m->last_page, memory_order_relaxed);
  if (t->cap < want + want / 8 + 4096) {
    char *nb = realloc(t->buf, want + want / 8 + 4096);
    if (nb) {
      t->buf = nb;
      t->cap = want + want / 8 + 4096;
    }
  }
  render_series(m, t);
  render_versions(m, t);
  render_traffic(m, t);
  render_process(m, t);
  for (int i = 0; i < m->n_collectors; i++) m->collectors[i].fn(m->collectors[i].ctx, t);
  metrics_text_family(t, "inferd_metrics_render_seconds", "gauge",
                      "How long the previous /metrics page took to render in the server.");
  metrics_text_printf(t, "inferd_metrics_render_seconds %.6f\n",
                      (double)atomic_load_explicit(&m->last_render_ns, memory_order_relaxed) / 1e9);
  atomic_store_explicit(&m->last_page, t->len, memory_order_relaxed);
  atomic_store_explicit(&m->last_render_ns, monotime_ns() - start, memory_order_relaxed);
}
