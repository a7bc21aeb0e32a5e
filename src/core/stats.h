/* Per model version statistics, in the shape of Triton's statistics extension: request
 * outcomes, where the time went, and executions by batch size. */
#ifndef INFERD_STATS_H
#define INFERD_STATS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct duration_stat {
  uint64_t count;
  uint64_t ns;
} duration_stat;

typedef struct batch_stat {
  int64_t batch_size;
  duration_stat compute_input, compute_infer, compute_output;
} batch_stat;

typedef struct model_stats {
  pthread_mutex_t mu;
  uint64_t inference_count; /* rows inferred */
  uint64_t execution_count; /* backend runs */
  int64_t last_inference_ms; /* unix time in ms; 0: never */
  duration_stat success, fail, queue, compute_input, compute_infer, compute_output;
  batch_stat *batches; /* owned, ascending by batch_size */
  size_t n_batches;
} model_stats;

struct infer_request;

void stats_init(model_stats *s);
void stats_destroy(model_stats *s);
/* One request done: success (its time from enqueue to completion) or failure. */
void stats_record_request(model_stats *s, const struct infer_request *req, int64_t done_ns);
/* One backend run of batch_size rows. */
void stats_record_execution(model_stats *s, int64_t batch_size, int64_t input_ns, int64_t infer_ns,
                            int64_t output_ns);
/* A consistent copy; free its batches with free(). */
void stats_snapshot(model_stats *s, model_stats *out);

#endif
