/* An inference request as the core sees it: which model version, the input tensors, the
 * outputs wanted, a deadline, and whom to tell when it is done. Protocol-free. */
#ifndef INFERD_INFER_H
#define INFERD_INFER_H

#include <stdint.h>

#include "core/model.h"
#include "core/status.h"
#include "core/tensor.h"

typedef struct infer_request infer_request;

/* Called exactly once per submitted request, on a worker thread. */
typedef void (*infer_done_fn)(infer_request *req, void *user);

struct infer_request {
  model_version *mv;
  tensor *inputs; /* owned */
  size_t n_inputs;
  char **output_names; /* owned; never empty: validation fills in every output */
  size_t n_outputs;
  int64_t deadline_ns; /* monotonic; 0: none */
  infer_done_fn on_done;
  void *user;

  /* Filled by the core before on_done. */
  inferd_status status;
  tensor *outputs; /* owned; n_outputs entries when status is OK */
  int64_t queue_ns;   /* time spent waiting for a worker */
  int64_t compute_ns; /* time in the backend */
};

infer_request *infer_request_create(model_version *mv);
void infer_request_destroy(infer_request *req);

/* Checks inputs and outputs against the version's signature: every input present once with
 * its datatype and a compatible shape, element counts matching the data, batch within
 * max_batch_size, no NaN/Inf unless allowed, outputs known. With no outputs named, asks for
 * all of them. */
inferd_status infer_request_validate(infer_request *req);

/* Runs the request on its model now, on the calling thread, filling status and outputs. */
void infer_request_execute(infer_request *req);

int64_t monotonic_ns(void);

#endif
