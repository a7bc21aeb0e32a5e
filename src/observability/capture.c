/* observability/capture: sampled request/response records into rotating JSONL files, from a
 * bounded queue drained by one writer thread. */
#include "observability/capture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app/tensor_json.h"
#include "core/infer.h"
#include "core/serve.h"
#include "util/log.h"
#include "util/monotime.h"
#include "util/request_id.h"

struct capture {
  capture_options o;
  char dir[4096];
  uint64_t threshold; /* sampled when a uniform 64-bit draw is below it */
  /* the queue: a ring of record lines, owned */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char **ring;
  size_t *ring_len;
  size_t head, n;
  bool stopping;
  pthread_t writer;
  /* the writer's */
  int fd;
  uint64_t seq;
  size_t file_bytes;
  int64_t last_drop_log_ns;
  uint64_t drops_logged;
  /* counters */
  atomic_uint_fast64_t sampled, written, bytes, dropped_queue, dropped_write, dropped_size, files;
};

/* ---- the writer ------------------------------------------------------------------------------- */

static void file_path(const capture *c, uint64_t seq, char *buf, size_t len) {
  snprintf(buf, len, "%s/capture-%06llu.jsonl", c->dir, (unsigned long long)seq);
}

static bool open_next(capture *c) {
  char path[4200];
  c->seq++;
  file_path(c, c->seq, path, sizeof path);
  /* Non-blocking open: a FIFO at this name (a consumer streaming the records) with no reader yet
   * fails now and is retried with the next record, rather than hanging the writer; its writes
   * then block as a file's would. */
  c->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0644);
  c->file_bytes = 0;
  if (c->fd < 0) return false;
  fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
  atomic_fetch_add(&c->files, 1);
  if (c->o.max_files > 0 && c->seq > (uint64_t)c->o.max_files) { /* the oldest beyond max_files */
    file_path(c, c->seq - (uint64_t)c->o.max_files, path, sizeof path);
    unlink(path);
  }
  return true;
}

static bool write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* Says, at most every 10 s, how many records were dropped since the last time. */
static void log_drops(capture *c) {
  uint64_t d = atomic_load(&c->dropped_queue) + atomic_load(&c->dropped_write) + atomic_load(&c->dropped_size);
  int64_t now = monotime_ns();
  if (d == c->drops_logged || now - c->last_drop_log_ns < INT64_C(10000000000)) return;
  log_msg(LOG_WARN, NULL,
          "payload capture: %llu records dropped so far (%llu queue full, %llu write errors, %llu too large)",
          (unsigned long long)d, (unsigned long long)atomic_load(&c->dropped_queue),
          (unsigned long long)atomic_load(&c->dropped_write), (unsigned long long)atomic_load(&c->dropped_size));
  c->drops_logged = d;
  c->last_drop_log_ns = now;
}

static void write_record(capture *c, const char *line, size_t len) {
  if (c->fd >= 0 && c->file_bytes > 0 && c->file_bytes + len > c->o.max_file_bytes) {
    close(c->fd);
    c->fd = -1;
  }
  if (c->fd < 0 && !open_next(c)) {
    atomic_fetch_add(&c->dropped_write, 1);
    c->seq--; /* retry the same file next time */
    return;
  }
  if (!write_all(c->fd, line, len)) {
    atomic_fetch_add(&c->dropped_write, 1);
    return;
  }
  c->file_bytes += len;
  atomic_fetch_add(&c->written, 1);
  atomic_fetch_add(&c->bytes, len);
}

static void *writer_main(void *arg) {
  capture *c = arg;
  pthread_setname_np(pthread_self(), "capture-writer");
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (c->n == 0 && !c->stopping) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 1;
      pthread_cond_timedwait(&c->cv, &c->mu, &ts);
      pthread_mutex_unlock(&c->mu);
      log_drops(c);
      pthread_mutex_lock(&c->mu);
    }
    if (c->n == 0 && c->stopping) break;
    char *line = c->ring[c->head];
    size_t len = c->ring_len[c->head];
    c->head = (c->head + 1) % c->o.queue_records;
    c->n--;
    pthread_mutex_unlock(&c->mu);
    write_record(c, line, len);
    free(line);
    log_drops(c);
    pthread_mutex_lock(&c->mu);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* ---- the request path ------------------------------------------------------------------------- */

/* Hands a line to the writer, or drops it: the lock is held for a pointer copy, never for I/O. */
static void enqueue(capture *c, char *line, size_t len) {
  pthread_mutex_lock(&c->mu);
  if (c->n == c->o.queue_records || c->stopping) {
    pthread_mutex_unlock(&c->mu);
    atomic_fetch_add(&c->dropped_queue, 1);
    free(line);
    return;
  }
  size_t tail = (c->head + c->n) % c->o.queue_records;
  c->ring[tail] = line;
  c->ring_len[tail] = len;
  c->n++;
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static uint64_t draw(void) {
  static _Thread_local request_ids g;
  static _Thread_local bool seeded;
  if (!seeded) {
    request_ids_init(&g);
    seeded = true;
  }
  /* xorshift64* as request_ids uses; its state is the generator's */
  g.state ^= g.state >> 12;
  g.state ^= g.state << 25;
  g.state ^= g.state >> 27;
  return g.state * UINT64_C(2685821657736338717);
}

static bool is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

/* fork: whether the request is sampled and, when it is, its ids while the request is at hand:
 * the frontend's request id (the one its access log line carries: the client's X-Request-ID
 * when usable, else one made for it) and the W3C trace id of a traceparent the client sent. */
static inferd_status capture_fork(void *ctx, const serve_request *sr, infer_request *req) {
  const capture *c = ctx;
  /* sampled here, so that a request not sampled costs one draw, not a header lookup */
  if (c->threshold == 0 || draw() >= c->threshold) return status_ok();
  req->capture = true;
  if (sr->request_id) snprintf(req->request_id, sizeof req->request_id, "%s", sr->request_id);
  const char *tp = serve_meta(sr, "traceparent");
  if (tp && strlen(tp) >= 55 && tp[2] == '-' && tp[35] == '-' && is_hex(tp + 3, 32)) {
    memcpy(req->trace_id, tp + 3, 32);
    req->trace_id[32] = '\0';
  }
  return status_ok();
}

static json_t *tensors_json(const tensor *ts, size_t n, char *const *names) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *shape = json_array();
    for (int d = 0; d < ts[i].ndim; d++) json_array_append_new(shape, json_integer(ts[i].shape[d]));
    json_array_append_new(a, json_pack("{ss ss so so}", "name", names ? names[i] : ts[i].name, "datatype",
                                       datatype_name(ts[i].datatype), "shape", shape, "data", tensor_to_json(&ts[i])));
  }
  return a;
}

static void iso_time(char *buf, size_t len) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* log: a sampled request's record. Built here (the request's tensors are freed after the reply),
 * written by the writer thread. */
static inferd_status capture_log(void *ctx, const serve_request *sr, infer_request *req) {
  (void)sr;
  capture *c = ctx;
  if (!req->capture) return status_ok();
  atomic_fetch_add(&c->sampled, 1);
  int64_t now = monotime_ns();
  char when[40];
  iso_time(when, sizeof when);
  bool ok = status_is_ok(&req->status);
  json_t *rec = json_pack(
      "{ss ss ss ss ss ss sI sI sI sI s{so}}", "time", when, "request_id", req->request_id, "trace_id", req->trace_id, "model",
      req->mv->model->name, "version", req->mv->version_str, "arm", req->arm, "latency_us",
      (json_int_t)(req->start_ns ? (now - req->start_ns) / 1000 : 0), "queue_us", (json_int_t)(req->queue_ns / 1000),
      "compute_us", (json_int_t)((req->compute_input_ns + req->compute_infer_ns + req->compute_output_ns) / 1000),
      "batch_size", (json_int_t)req->batch_size, "request", "inputs", tensors_json(req->inputs, req->n_inputs, NULL));
  if (rec == NULL) return status_ok();
  if (ok)
    json_object_set_new(rec, "response",
                        json_pack("{so}", "outputs", tensors_json(req->outputs, req->n_outputs, req->output_names)));
  else
    json_object_set_new(rec, "error", json_string(req->status.msg));
  json_object_set_new(rec, "status", json_integer(status_http_code(req->status.code)));
  char *text = json_dumps(rec, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(rec);
  if (text == NULL) return status_ok();
  size_t len = strlen(text);
  if (len + 1 > c->o.max_record_bytes) {
    free(text);
    atomic_fetch_add(&c->dropped_size, 1);
    return status_ok();
  }
  char *line = realloc(text, len + 2);
  if (line == NULL) {
    free(text);
    return status_ok();
  }
  line[len] = '\n';
  line[len + 1] = '\0';
  enqueue(c, line, len + 1);
  return status_ok();
}

inferd_status capture_serve_register(capture *c, struct serve *s) {
  TRY(serve_register(s, SERVE_STAGE_FORK, capture_fork, c));
  return serve_register(s, SERVE_STAGE_LOG, capture_log, c);
}

/* ---- life ------------------------------------------------------------------------------------- */

static uint64_t highest_seq(const char *dir) {
  uint64_t best = 0;
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    unsigned long long n;
    char tail[16];
    struct stat sb;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    /* regular files only: a FIFO or a link to a device placed at the next name is written to */
    if (sscanf(e->d_name, "capture-%llu.%15s", &n, tail) == 2 && strcmp(tail, "jsonl") == 0 && n > best &&
        lstat(path, &sb) == 0 && S_ISREG(sb.st_mode))
      best = n;
  }
  closedir(d);
  return best;
}

inferd_status capture_create(const capture_options *opts, capture **out) {
  *out = NULL;
  if (opts->dir == NULL || opts->dir[0] == '\0') return status_make(INFERD_INVALID_ARGUMENT, "--capture-dir is empty");
  if (!(opts->percent >= 0 && opts->percent <= 100))
    return status_make(INFERD_INVALID_ARGUMENT, "--capture-percent must be from 0 to 100");
  if (opts->queue_records < 1 || opts->max_file_bytes < 1 || opts->max_record_bytes < 1 || opts->max_files < 0)
    return status_make(INFERD_INVALID_ARGUMENT, "capture: queue, file and record sizes must be positive");
  if (mkdir(opts->dir, 0755) != 0 && errno != EEXIST)
    return status_make(INFERD_INVALID_ARGUMENT, "--capture-dir '%s' cannot be created: %s", opts->dir, strerror(errno));
  struct stat sb;
  if (stat(opts->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return status_make(INFERD_INVALID_ARGUMENT, "--capture-dir '%s' is not a directory", opts->dir);
  capture *c = calloc(1, sizeof *c);
  if (c == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  c->o = *opts;
  snprintf(c->dir, sizeof c->dir, "%s", opts->dir);
  c->o.dir = c->dir;
  /* percent of 2^64, exactly 0 for 0 % and saturated for 100 % */
  c->threshold = opts->percent >= 100 ? UINT64_MAX : (uint64_t)(opts->percent / 100.0 * 18446744073709551616.0);
  c->ring = calloc(opts->queue_records, sizeof *c->ring);
  c->ring_len = calloc(opts->queue_records, sizeof *c->ring_len);
  c->fd = -1;
  c->seq = highest_seq(c->dir);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  if (c->ring == NULL || c->ring_len == NULL || pthread_create(&c->writer, NULL, writer_main, c) != 0) {
    free(c->ring);
    free(c->ring_len);
    free(c);
    return status_make(INFERD_INTERNAL, "capture: cannot start the writer thread");
  }
  *out = c;
  return status_ok();
}

void capture_get_counts(capture *c, capture_counts *o) {
  *o = (capture_counts){.sampled = atomic_load(&c->sampled), .written = atomic_load(&c->written),
                        .bytes = atomic_load(&c->bytes), .dropped_queue = atomic_load(&c->dropped_queue),
                        .dropped_write = atomic_load(&c->dropped_write), .dropped_size = atomic_load(&c->dropped_size),
                        .files = atomic_load(&c->files)};
}

void capture_destroy(capture *c) {
  if (c == NULL) return;
  pthread_mutex_lock(&c->mu);
  c->stopping = true;
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->writer, NULL);
  if (c->fd >= 0) close(c->fd);
  capture_counts n;
  capture_get_counts(c, &n);
  log_msg(LOG_INFO, NULL,
          "payload capture: %llu records sampled, %llu written (%llu bytes, %llu files); dropped: %llu queue full, "
          "%llu write errors, %llu too large",
          (unsigned long long)n.sampled, (unsigned long long)n.written, (unsigned long long)n.bytes,
          (unsigned long long)n.files, (unsigned long long)n.dropped_queue, (unsigned long long)n.dropped_write,
          (unsigned long long)n.dropped_size);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c->ring);
  free(c->ring_len);
  free(c);
}

void capture_metrics_write(capture *c, FILE *out) {
  capture_counts n;
  capture_get_counts(c, &n);
  fprintf(out,
          "# HELP inferd_capture_records_total Payload capture records written\n"
          "# TYPE inferd_capture_records_total counter\ninferd_capture_records_total %llu\n"
          "# HELP inferd_capture_bytes_total Payload capture bytes written\n"
          "# TYPE inferd_capture_bytes_total counter\ninferd_capture_bytes_total %llu\n"
          "# HELP inferd_capture_dropped_total Payload capture records dropped, by reason\n"
          "# TYPE inferd_capture_dropped_total counter\n"
          "inferd_capture_dropped_total{reason=\"queue_full\"} %llu\n"
          "inferd_capture_dropped_total{reason=\"write_error\"} %llu\n"
          "inferd_capture_dropped_total{reason=\"too_large\"} %llu\n",
          (unsigned long long)n.written, (unsigned long long)n.bytes, (unsigned long long)n.dropped_queue,
          (unsigned long long)n.dropped_write, (unsigned long long)n.dropped_size);
}
