#include "core/stats.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/infer.h"

void stats_init(model_stats *s) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
}

void stats_destroy(model_stats *s) {
  free(s->batches);
  pthread_mutex_destroy(&s->mu);
}

static void add(duration_stat *d, int64_t ns) {
  d->count++;
  d->ns += ns > 0 ? (uint64_t)ns : 0;
}

void stats_record_request(model_stats *s, const infer_request *req, int64_t done_ns) {
  pthread_mutex_lock(&s->mu);
  if (status_is_ok(&req->status)) {
    add(&s->success, done_ns - req->enqueue_ns);
    add(&s->queue, req->queue_ns);
    add(&s->compute_input, req->compute_input_ns);
    add(&s->compute_infer, req->compute_infer_ns);
    add(&s->compute_output, req->compute_output_ns);
  } else {
    add(&s->fail, done_ns - req->enqueue_ns);
  }
  pthread_mutex_unlock(&s->mu);
}

void stats_record_execution(model_stats *s, int64_t batch_size, int64_t input_ns, int64_t infer_ns,
                            int64_t output_ns) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  pthread_mutex_lock(&s->mu);
  s->execution_count++;
  s->inference_count += batch_size > 0 ? (uint64_t)batch_size : 0;
  s->last_inference_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
  size_t i = 0;
  while (i < s->n_batches && s->batches[i].batch_size < batch_size) i++;
  if (i == s->n_batches || s->batches[i].batch_size != batch_size) {
    batch_stat *nb = realloc(s->batches, (s->n_batches + 1) * sizeof *nb);
    if (nb == NULL) {
      pthread_mutex_unlock(&s->mu);
      return;
    }
    s->batches = nb;
    memmove(&s->batches[i + 1], &s->batches[i], (s->n_batches - i) * sizeof *nb);
    memset(&s->batches[i], 0, sizeof *nb);
    s->batches[i].batch_size = batch_size;
    s->n_batches++;
  }
  add(&s->batches[i].compute_input, input_ns);
  add(&s->batches[i].compute_infer, infer_ns);
  add(&s->batches[i].compute_output, output_ns);
  pthread_mutex_unlock(&s->mu);
}

void stats_snapshot(model_stats *s, model_stats *out) {
  pthread_mutex_lock(&s->mu);
  *out = *s;
  out->batches = NULL;
  if (s->n_batches) {
    out->batches = malloc(s->n_batches * sizeof *out->batches);
    if (out->batches)
      memcpy(out->batches, s->batches, s->n_batches * sizeof *out->batches);
    else
      out->n_batches = 0;
  }
  pthread_mutex_unlock(&s->mu);
  memset(&out->mu, 0, sizeof out->mu);
}
