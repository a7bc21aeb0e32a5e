/* An inference request as the core sees it: which model version, the input tensors, the
 * outputs wanted, a deadline, and whom to tell when it is done. Protocol-free. */
#ifndef INFERD_INFER_H
#define INFERD_INFER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/model.h"
#include "core/status.h"
#include "core/tensor.h"

typedef struct infer_request infer_request;
struct principal;
struct serve_headers;
struct serve_record;

/* core/serve's end hooks (serve_on_end): what must run once when a request ends, however it
 * ends. Kept in the request so that the hand-off carries them to the worker that completes it. */
typedef void (*infer_end_fn)(void *ctx, void *arg, const inferd_status *st);
#define INFER_MAX_END_HOOKS 4
typedef struct infer_end_hooks {
  int n;
  struct {
    infer_end_fn fn;
    void *ctx, *arg;
  } h[INFER_MAX_END_HOOKS];
} infer_end_hooks;

/* Called exactly once per submitted request, on a worker thread. */
typedef void (*infer_done_fn)(infer_request *req, void *user);

struct infer_request {
  model_version *mv;
  tensor *inputs; /* owned */
  size_t n_inputs;
  char **output_names; /* owned; never empty: validation fills in every output */
  size_t n_outputs;
  int64_t deadline_ns; /* monotonic; 0: none */
  int priority;        /* 1 (highest) .. the model's priority_levels; 0: the model's default */
  /* Set by the frontend when the client has gone: a queued request is then dropped. The flag
   * outlives the request (it lives in the frontend's call). May be NULL. */
  const _Atomic bool *cancelled;
  infer_done_fn on_done;
  void *user;
  /* core/serve's: the frontend's reply, run after the completion stages (serve sets on_done to
   * its completion and keeps the frontend's here). */
  infer_done_fn reply_done;
  void *reply_user;
  /* core/serve's copies of the serve_request's caller and reply headers, for the completion
   * stages (the serve_request itself lives only as long as serve_submit). */
  const struct principal *principal; /* a counted reference, dropped by infer_request_destroy */
  struct serve_headers *reply_headers;
  struct serve_record *record; /* the frontend's access-log record (core/serve.h); may be NULL */
  int protocol;                /* serve_protocol (core/serve.h) */
  int64_t start_ns;            /* arrival at the frontend, monotonic */
  char arm[32]; /* traffic/'s: the arm of the model's split that answered ("" when none) */
  infer_end_hooks ends; /* core/serve's: run once when the request ends (serve_on_end) */
  /* observability/'s per-request trace data (tracing on and the request sampled), set by its
   * route handler: one allocation holding no pointers of its own, so infer_request_destroy
   * frees it with free() whether or not the request reached its completion. NULL: none. */
  void *trace;
  char request_id[64];  /* the request's id for completion stages (capture): the trace id or the
                           client's X-Request-ID when a stage fills it in; "" when none did */
  bool capture;         /* payload capture sampled this request (observability/capture) */
  /* cache/'s: the request leads a run that identical requests wait on (coalescing); its key. */
  bool cache_leader;
  uint8_t cache_key[16];

  /* core/serve's copy of serve_request.generate: a generation (generate/engine.h), NULL for a
   * tensor inference. */
  void *generate;

  /* The scheduler's. */
  int64_t enqueue_ns;
  int64_t rows; /* rows along the batch dimension (1 for a model without one) */
  struct infer_request *next;

  /* Filled by the core before on_done. */
  inferd_status status;
  tensor *outputs; /* owned; n_outputs entries when status is OK */
  int64_t queue_ns;          /* arrival in the scheduler to the start of its batch (batch_wait_ns included) */
  int64_t batch_wait_ns;     /* the part of queue_ns the batcher held it, an instance being free,
                                for the batch to fill (max_queue_delay_us); 0 with batching off */
  int64_t compute_input_ns;  /* gathering the batch's inputs */
  int64_t compute_infer_ns;  /* in the backend */
  int64_t compute_output_ns; /* handing each request its rows */
  int64_t batch_size;        /* rows of the batch it ran in */
  /* The batch it ran in, shared by the batch's requests (a trace links each request's span to
   * the batch's own): a scheduler-wide id (0: it never ran), when the run started (monotonic),
   * how many requests it joined, and whether this request reports the batch (the first of
   * them with trace data, so one span per batch is exported). */
  uint64_t batch_id;
  int64_t batch_start_ns;
  int batch_requests;
  bool batch_reporter;
};

/* The request takes its own reference on mv, dropped by infer_request_destroy. */
infer_request *infer_request_create(model_version *mv);
void infer_request_destroy(infer_request *req);

/* Checks inputs and outputs against the version's signature: every input present once with
 * its datatype and a compatible shape, element counts matching the data, batch within
 * max_batch_size, no NaN/Inf unless allowed, outputs known. With no outputs named, asks for
 * all of them. */
inferd_status infer_request_validate(infer_request *req);

/* The longest timeout a request may ask for, in µs: one day. A larger one is a client's
 * mistake (or a probe for overflow), refused rather than silently capped. */
#define INFER_MAX_TIMEOUT_US (INT64_C(86400) * 1000000)

/* The monotonic deadline timeout_us after start_ns, for every protocol's timeout (V2
 * parameters.timeout, gRPC "timeout", X-Request-Timeout-Ms). 0 µs: none (*deadline_ns = 0).
 * INVALID_ARGUMENT naming `what` when timeout_us is negative or above INFER_MAX_TIMEOUT_US;
 * the sum saturates, so no input overflows. */
inferd_status infer_deadline_after(int64_t start_ns, int64_t timeout_us, const char *what, int64_t *deadline_ns);

/* Parses a timeout header's text: a decimal count of milliseconds, 0 .. one day. Reports the
 * text as sent when it is not. */
inferd_status infer_timeout_ms_parse(const char *name, const char *text, int64_t *timeout_us);


#endif
