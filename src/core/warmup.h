/* Warmup: the inferences config.json's "warmup" asks for, run on a freshly loaded version
 * before it turns READY (zeros, random data of the signature's shapes, or a V2 JSON file). */
#ifndef INFERD_WARMUP_H
#define INFERD_WARMUP_H

#include "core/model.h"

/* Runs the version's warmup (nothing when runs is 0); a failure says which run and why. */
inferd_status warmup_run(model_version *mv);

/* Fills t (already initialised with name, datatype and shape, no data) with a JSON array of
 * numbers, booleans or strings, flattened; errors name the tensor. Exposed for the unit test. */
inferd_status warmup_fill_from_json(tensor *t, struct json_t *data);

#endif
