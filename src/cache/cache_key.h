/* cache/cache_key: the prediction cache's key: a 128-bit hash (SHA-256, truncated) of the
 * model version's identity and the request's canonical form, and the version's identity. */
#ifndef INFERD_CACHE_KEY_H
#define INFERD_CACHE_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache_lru.h"
#include "core/status.h"
#include "core/tensor.h"

/* The canonical request: the inputs in byte order of their names, each as its name, datatype,
 * shape and raw bytes (every length fixed-width little-endian, so no two requests share a
 * byte form), then the output names asked for, sorted too. So the order a client lists
 * inputs, outputs or JSON keys in, and JSON against binary encoding, give one key. */
inferd_status cache_key_compute(const uint8_t identity[CACHE_KEY_SIZE], const tensor *inputs, size_t n_inputs,
                                char *const *output_names, size_t n_outputs, uint8_t key[CACHE_KEY_SIZE]);

/* A model version's identity: the hash of its model name, version and the model file's
 * bytes, so it changes when a reload brings a different file, and replicas serving the same
 * file agree on it. */
inferd_status cache_identity_of_file(const char *model, const char *version, const char *path,
                                     uint8_t identity[CACHE_KEY_SIZE]);

#endif
