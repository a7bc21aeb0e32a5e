#include "backends/backend.h"

#include <string.h>

static const backend_ops *const backends[] = {&onnxruntime_backend};

const backend_ops *backend_find(const char *name) {
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
    if (strcmp(backends[i]->name, name) == 0) return backends[i];
  return NULL;
}
