/* The registry of backends: filled at start by backends/ (from main), read by model loading. */
#include "core/backend.h"

#include <string.h>

#define BACKEND_MAX 8

static const backend_ops *backends[BACKEND_MAX];
static size_t n_backends;

inferd_status backend_register(const backend_ops *ops) {
  if (backend_find(ops->name) != NULL)
    return status_make(INFERD_INTERNAL, "backend '%s' is registered twice", ops->name);
  if (n_backends == BACKEND_MAX) return status_make(INFERD_INTERNAL, "too many backends (at most %d)", BACKEND_MAX);
  backends[n_backends++] = ops;
  return status_ok();
}

const backend_ops *backend_find(const char *name) {
  for (size_t i = 0; i < n_backends; i++)
    if (strcmp(backends[i]->name, name) == 0) return backends[i];
  return NULL;
}
