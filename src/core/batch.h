/* Running several requests as one batch: their inputs concatenated along the batch dimension,
 * one backend run, and each request given back exactly its own rows of the outputs it asked
 * for. A single request runs as it is. */
#ifndef INFERD_BATCH_H
#define INFERD_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/infer.h"

/* Whether b can join a batch that a is in: same inputs with the same shapes but for the batch
 * dimension. */
bool batch_compatible(const infer_request *a, const infer_request *b);

/* Runs reqs[0..n) (compatible, same model version, batched model when n > 1) and fills each
 * request's status, outputs and compute timings. A failure fails only this batch's requests. */
void batch_execute(infer_request **reqs, size_t n);

#endif
